//! Where a container's cgroup goes and what is written to it at create time.

use kapsel_cgroups::{Cgroup, CgroupPath, Hierarchy};
use oci_spec::runtime::{LinuxDeviceCgroup, LinuxDeviceType, LinuxResources, Spec};

use crate::error::Result;
use crate::rootfs::devices::DEFAULT_DEVICES;

/// The container's cgroup: `linux.cgroupsPath`, or `/kapsel/<id>` when unset.
pub fn for_container(spec: &Spec, id: &str) -> Result<Cgroup> {
    let hierarchy = Hierarchy::detect()?;
    let configured = spec
        .linux()
        .as_ref()
        .and_then(|l| l.cgroups_path().as_ref());
    let path = match configured {
        Some(p) => CgroupPath::parse(&p.to_string_lossy())?,
        None => CgroupPath::parse(&format!("/kapsel/{id}"))?,
    };
    Ok(Cgroup::new(&hierarchy, &path)?)
}

/// config.json's resources, with device rules completed so the container can always use
/// the devices every container has (the default devices, its pty, `linux.devices`).
pub fn resources(spec: &Spec) -> LinuxResources {
    let linux = spec.linux().as_ref();
    let mut res = linux
        .and_then(|l| l.resources().clone())
        .unwrap_or_default();
    let mut rules = res.devices().clone().unwrap_or_default();
    if rules.is_empty() {
        return res;
    }
    let char_rule = |major: Option<i64>, minor: Option<i64>, access: &str| {
        let mut r = LinuxDeviceCgroup::default();
        r.set_allow(true);
        r.set_typ(Some(LinuxDeviceType::C));
        r.set_major(major);
        r.set_minor(minor);
        r.set_access(Some(access.to_string()));
        r
    };
    for (_, major, minor) in DEFAULT_DEVICES {
        rules.push(char_rule(Some(major), Some(minor), "rwm"));
    }
    rules.push(char_rule(Some(5), Some(1), "rwm")); // /dev/console
    rules.push(char_rule(Some(5), Some(2), "rwm")); // /dev/ptmx
    rules.push(char_rule(Some(136), None, "rwm")); // /dev/pts/*
    for d in linux.and_then(|l| l.devices().as_deref()).unwrap_or(&[]) {
        rules.push(d.into());
    }
    res.set_devices(Some(rules));
    res
}
