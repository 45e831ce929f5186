//! Docker seccomp profiles (the JSON of moby's profiles/seccomp/default.json) turned into
//! config.json's `linux.seccomp` the way moby's setupSeccomp does: the OCI fields are copied,
//! `archMap` becomes the host's architectures, and each syscall entry is kept only when its
//! `includes` all hold and none of its `excludes` does, for this host and capability set.

use std::path::PathBuf;

use oci_spec::runtime::{
    Arch, LinuxSeccomp, LinuxSeccompAction, LinuxSeccompArg, LinuxSeccompFilterFlag, LinuxSyscall,
};
use serde::Deserialize;

use crate::error::SeccompError;
use crate::host::{Host, KernelVersion};

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Profile {
    default_action: Option<LinuxSeccompAction>,
    default_errno_ret: Option<u32>,
    architectures: Option<Vec<Arch>>,
    arch_map: Option<Vec<ArchMapEntry>>,
    flags: Option<Vec<LinuxSeccompFilterFlag>>,
    listener_path: Option<PathBuf>,
    listener_metadata: Option<String>,
    syscalls: Option<Vec<ProfileSyscall>>,
}

/// The sub-architectures that come with a native one (x86_64 brings x86 and x32).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ArchMapEntry {
    architecture: Arch,
    sub_architectures: Option<Vec<Arch>>,
}

/// An OCI syscall rule plus Docker's conditions. `name` is the old single-name form.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ProfileSyscall {
    name: Option<String>,
    names: Option<Vec<String>>,
    action: LinuxSeccompAction,
    errno_ret: Option<u32>,
    args: Option<Vec<LinuxSeccompArg>>,
    includes: Option<Conditions>,
    excludes: Option<Conditions>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Conditions {
    caps: Option<Vec<String>>,
    arches: Option<Vec<String>>,
    min_kernel: Option<KernelVersion>,
}

impl Conditions {
    fn caps(&self) -> &[String] {
        self.caps.as_deref().unwrap_or(&[])
    }

    fn arches(&self) -> &[String] {
        self.arches.as_deref().unwrap_or(&[])
    }

    /// `includes`: every condition given holds — the host is one of the arches, the
    /// container has all the capabilities, the kernel is at least minKernel.
    fn all_hold(&self, caps: &[String], host: &Host) -> bool {
        (self.arches().is_empty() || self.arches().iter().any(|a| a == host.arch))
            && self.caps().iter().all(|c| caps.contains(c))
            && self.min_kernel.is_none_or(|min| host.kernel >= min)
    }

    /// `excludes`: any condition given holds — the host is one of the arches, the container
    /// has any of the capabilities, or the kernel is at least minKernel.
    fn any_holds(&self, caps: &[String], host: &Host) -> bool {
        self.arches().iter().any(|a| a == host.arch)
            || self.caps().iter().any(|c| caps.contains(c))
            || self.min_kernel.is_some_and(|min| host.kernel >= min)
    }
}

/// Converts `json` for `host` and a container whose capability (bounding) set is `caps`.
pub fn convert(json: &str, caps: &[String], host: &Host) -> Result<LinuxSeccomp, SeccompError> {
    let profile: Profile = serde_json::from_str(json)?;
    let default_action = profile
        .default_action
        .ok_or(SeccompError::ProfileNoDefaultAction)?;
    let architectures = architectures(&profile, host)?;
    let syscalls = syscalls(profile.syscalls.unwrap_or_default(), caps, host)?;
    let mut seccomp = LinuxSeccomp::default();
    seccomp
        .set_default_action(default_action)
        .set_default_errno_ret(profile.default_errno_ret)
        .set_architectures(architectures)
        .set_flags(profile.flags)
        .set_listener_path(profile.listener_path)
        .set_listener_metadata(profile.listener_metadata)
        .set_syscalls(Some(syscalls));
    Ok(seccomp)
}

/// `architectures` as given, or the `archMap` entry of the host's architecture with its
/// sub-architectures; neither leaves the filter to the native architecture alone.
fn architectures(profile: &Profile, host: &Host) -> Result<Option<Vec<Arch>>, SeccompError> {
    let arch_map = profile.arch_map.as_deref().unwrap_or(&[]);
    let listed = profile.architectures.as_deref().unwrap_or(&[]);
    if !listed.is_empty() && !arch_map.is_empty() {
        return Err(SeccompError::ProfileArchitecturesAndArchMap);
    }
    if !listed.is_empty() {
        return Ok(Some(listed.to_vec()));
    }
    let entry = arch_map
        .iter()
        .find(|entry| Some(entry.architecture) == host.seccomp_arch);
    Ok(entry.map(|entry| {
        let subs = entry.sub_architectures.iter().flatten();
        std::iter::once(entry.architecture)
            .chain(subs.copied())
            .collect()
    }))
}

fn syscalls(
    entries: Vec<ProfileSyscall>,
    caps: &[String],
    host: &Host,
) -> Result<Vec<LinuxSyscall>, SeccompError> {
    let mut kept = Vec::new();
    for (index, entry) in entries.into_iter().enumerate() {
        // Checked before the conditions, as moby does, so a bad entry is reported even on
        // hosts where it would be dropped.
        let names = names(index, entry.name, entry.names)?;
        let excluded = entry.excludes.is_some_and(|c| c.any_holds(caps, host));
        let included = entry.includes.is_none_or(|c| c.all_hold(caps, host));
        if included && !excluded {
            let mut syscall = LinuxSyscall::default();
            syscall
                .set_names(names)
                .set_action(entry.action)
                .set_errno_ret(entry.errno_ret)
                .set_args(entry.args);
            kept.push(syscall);
        }
    }
    Ok(kept)
}

fn names(
    index: usize,
    name: Option<String>,
    names: Option<Vec<String>>,
) -> Result<Vec<String>, SeccompError> {
    let names = names.unwrap_or_default();
    match name.filter(|name| !name.is_empty()) {
        Some(name) if !names.is_empty() => Err(SeccompError::ProfileNameAndNames { index, name }),
        Some(name) => Ok(vec![name]),
        None => Ok(names),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const DEFAULT_CAPS: &[&str] = crate::DOCKER_DEFAULT_CAPABILITIES;

    fn amd64(kernel: u32, major: u32) -> Host {
        Host {
            arch: "amd64",
            seccomp_arch: Some(Arch::ScmpArchX86_64),
            kernel: KernelVersion { kernel, major },
        }
    }

    fn arm64() -> Host {
        Host {
            arch: "arm64",
            seccomp_arch: Some(Arch::ScmpArchAarch64),
            kernel: KernelVersion {
                kernel: 6,
                major: 1,
            },
        }
    }

    fn caps(extra: &[&str]) -> Vec<String> {
        DEFAULT_CAPS
            .iter()
            .chain(extra)
            .map(|c| c.to_string())
            .collect()
    }

    /// Converts a profile whose only entries are `syscalls`.
    fn convert_entries(
        syscalls: serde_json::Value,
        caps: &[String],
        host: &Host,
    ) -> Result<LinuxSeccomp, SeccompError> {
        let profile = json!({ "defaultAction": "SCMP_ACT_ERRNO", "syscalls": syscalls });
        convert(&profile.to_string(), caps, host)
    }

    /// The names of the rules kept, in order.
    fn kept(seccomp: &LinuxSeccomp) -> Vec<String> {
        seccomp
            .syscalls()
            .iter()
            .flatten()
            .map(|s| s.names().join(","))
            .collect()
    }

    fn kept_entries(syscalls: serde_json::Value, caps: &[String], host: &Host) -> Vec<String> {
        kept(&convert_entries(syscalls, caps, host).unwrap())
    }

    /// Every action the embedded default profile gives `name`, in profile order.
    fn actions_for(seccomp: &LinuxSeccomp, name: &str) -> Vec<LinuxSyscall> {
        seccomp
            .syscalls()
            .iter()
            .flatten()
            .filter(|s| s.names().iter().any(|n| n == name))
            .cloned()
            .collect()
    }

    fn docker_default(caps: &[String], host: &Host) -> LinuxSeccomp {
        convert(crate::DOCKER_DEFAULT_PROFILE, caps, host).unwrap()
    }

    #[test]
    fn include_caps_need_every_capability() {
        let entries = json!([{ "names": ["a"], "action": "SCMP_ACT_ALLOW",
                               "includes": { "caps": ["CAP_SYS_ADMIN", "CAP_BPF"] } }]);
        let host = amd64(6, 1);
        assert!(kept_entries(entries.clone(), &caps(&["CAP_SYS_ADMIN"]), &host).is_empty());
        assert_eq!(
            kept_entries(entries, &caps(&["CAP_SYS_ADMIN", "CAP_BPF"]), &host),
            ["a"]
        );
    }

    #[test]
    fn exclude_caps_drop_on_any_capability() {
        let entries = json!([{ "names": ["a"], "action": "SCMP_ACT_ALLOW",
                               "excludes": { "caps": ["CAP_SYS_ADMIN", "CAP_BPF"] } }]);
        let host = amd64(6, 1);
        assert_eq!(kept_entries(entries.clone(), &caps(&[]), &host), ["a"]);
        assert!(kept_entries(entries, &caps(&["CAP_BPF"]), &host).is_empty());
    }

    #[test]
    fn arches_match_the_host_by_go_name() {
        let entries = json!([
            { "names": ["x86only"], "action": "SCMP_ACT_ALLOW", "includes": { "arches": ["amd64", "x32"] } },
            { "names": ["armonly"], "action": "SCMP_ACT_ALLOW", "includes": { "arches": ["arm", "arm64"] } },
            { "names": ["notarm"], "action": "SCMP_ACT_ALLOW", "excludes": { "arches": ["arm64"] } },
        ]);
        let caps = caps(&[]);
        assert_eq!(
            kept_entries(entries.clone(), &caps, &amd64(6, 1)),
            ["x86only", "notarm"]
        );
        assert_eq!(kept_entries(entries, &caps, &arm64()), ["armonly"]);
    }

    #[test]
    fn min_kernel_compares_kernel_and_major() {
        let entries = json!([
            { "names": ["new"], "action": "SCMP_ACT_ALLOW", "includes": { "minKernel": "4.8" } },
            { "names": ["old"], "action": "SCMP_ACT_ALLOW", "excludes": { "minKernel": "4.8" } },
        ]);
        let caps = caps(&[]);
        assert_eq!(kept_entries(entries.clone(), &caps, &amd64(4, 7)), ["old"]);
        assert_eq!(kept_entries(entries.clone(), &caps, &amd64(4, 8)), ["new"]);
        assert_eq!(kept_entries(entries, &caps, &amd64(5, 0)), ["new"]);
    }

    #[test]
    fn includes_and_excludes_combine() {
        let entries = json!([{ "names": ["a"], "action": "SCMP_ACT_ALLOW",
            "includes": { "arches": ["amd64"], "minKernel": "5.0" },
            "excludes": { "caps": ["CAP_SYS_ADMIN"] } }]);
        assert_eq!(
            kept_entries(entries.clone(), &caps(&[]), &amd64(5, 4)),
            ["a"]
        );
        assert!(kept_entries(entries.clone(), &caps(&[]), &amd64(4, 19)).is_empty());
        assert!(kept_entries(entries.clone(), &caps(&[]), &arm64()).is_empty());
        assert!(kept_entries(entries, &caps(&["CAP_SYS_ADMIN"]), &amd64(5, 4)).is_empty());
    }

    #[test]
    fn invalid_min_kernel_fails_even_when_the_entry_is_dropped() {
        let entries = json!([{ "names": ["a"], "action": "SCMP_ACT_ALLOW",
            "includes": { "arches": ["s390x"], "minKernel": "4.8.1" } }]);
        let err = convert_entries(entries, &caps(&[]), &amd64(6, 1)).unwrap_err();
        assert!(err.to_string().contains("minKernel"), "{err}");
    }

    #[test]
    fn rules_keep_action_errno_and_args() {
        let entries = json!([{ "names": ["clone"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38,
            "args": [{ "index": 0, "value": 2114060288, "valueTwo": 0, "op": "SCMP_CMP_MASKED_EQ" }],
            "comment": "ignored" }]);
        let seccomp = convert_entries(entries, &caps(&[]), &amd64(6, 1)).unwrap();
        let rule = &seccomp.syscalls().as_ref().unwrap()[0];
        assert_eq!(rule.action(), LinuxSeccompAction::ScmpActErrno);
        assert_eq!(rule.errno_ret(), Some(38));
        let arg = rule.args().as_ref().unwrap()[0];
        assert_eq!((arg.index(), arg.value()), (0, 2114060288));
        assert_eq!(arg.value_two(), Some(0));
    }

    #[test]
    fn name_is_the_single_name_form() {
        let host = amd64(6, 1);
        let old = json!([{ "name": "getpid", "action": "SCMP_ACT_ALLOW" }]);
        assert_eq!(kept_entries(old, &caps(&[]), &host), ["getpid"]);
        let both = json!([{ "name": "a", "names": ["b"], "action": "SCMP_ACT_ALLOW" }]);
        let err = convert_entries(both, &caps(&[]), &host).unwrap_err();
        assert!(matches!(
            err,
            SeccompError::ProfileNameAndNames { index: 0, .. }
        ));
    }

    #[test]
    fn oci_fields_are_copied() {
        let profile = json!({
            "defaultAction": "SCMP_ACT_KILL_PROCESS",
            "defaultErrnoRet": 5,
            "architectures": ["SCMP_ARCH_X86_64"],
            "flags": ["SECCOMP_FILTER_FLAG_LOG"],
            "listenerPath": "/run/agent.sock",
            "listenerMetadata": "meta",
        });
        let seccomp = convert(&profile.to_string(), &[], &amd64(6, 1)).unwrap();
        assert_eq!(
            seccomp.default_action(),
            LinuxSeccompAction::ScmpActKillProcess
        );
        assert_eq!(seccomp.default_errno_ret(), Some(5));
        assert_eq!(
            seccomp.architectures().as_deref(),
            Some(&[Arch::ScmpArchX86_64][..])
        );
        assert_eq!(
            seccomp.flags().as_deref(),
            Some(&[LinuxSeccompFilterFlag::SeccompFilterFlagLog][..])
        );
        assert_eq!(
            seccomp.listener_path().as_deref(),
            Some(std::path::Path::new("/run/agent.sock"))
        );
        assert_eq!(seccomp.listener_metadata().as_deref(), Some("meta"));
    }

    #[test]
    fn architectures_and_arch_map_conflict() {
        let profile = json!({
            "defaultAction": "SCMP_ACT_ERRNO",
            "architectures": ["SCMP_ARCH_X86_64"],
            "archMap": [{ "architecture": "SCMP_ARCH_X86_64", "subArchitectures": null }],
        });
        let err = convert(&profile.to_string(), &[], &amd64(6, 1)).unwrap_err();
        assert!(matches!(err, SeccompError::ProfileArchitecturesAndArchMap));
    }

    #[test]
    fn missing_default_action_is_an_error() {
        let err = convert("{}", &[], &amd64(6, 1)).unwrap_err();
        assert!(matches!(err, SeccompError::ProfileNoDefaultAction));
    }

    #[test]
    fn arch_map_gives_the_host_and_its_sub_architectures() {
        let caps = caps(&[]);
        let x86 = docker_default(&caps, &amd64(6, 1));
        assert_eq!(
            x86.architectures().as_deref(),
            Some(&[Arch::ScmpArchX86_64, Arch::ScmpArchX86, Arch::ScmpArchX32][..])
        );
        let arm = docker_default(&caps, &arm64());
        assert_eq!(
            arm.architectures().as_deref(),
            Some(&[Arch::ScmpArchAarch64, Arch::ScmpArchArm][..])
        );
        let unknown = Host {
            arch: "",
            seccomp_arch: None,
            ..amd64(6, 1)
        };
        assert_eq!(docker_default(&caps, &unknown).architectures(), &None);
    }

    #[test]
    fn default_profile_with_default_caps() {
        let seccomp = docker_default(&caps(&[]), &amd64(6, 1));
        assert_eq!(seccomp.default_action(), LinuxSeccompAction::ScmpActErrno);
        assert_eq!(seccomp.default_errno_ret(), Some(1));
        for blocked in [
            "mount", "unshare", "setns", "bpf", "keyctl", "syslog", "reboot",
        ] {
            assert!(
                actions_for(&seccomp, blocked).is_empty(),
                "{blocked} allowed"
            );
        }
        // clone only without namespace flags, clone3 answers ENOSYS so libc falls back.
        let clone = actions_for(&seccomp, "clone");
        assert_eq!(clone.len(), 1);
        assert!(clone[0].args().is_some());
        let clone3 = actions_for(&seccomp, "clone3");
        assert_eq!(clone3.len(), 1);
        assert_eq!(clone3[0].errno_ret(), Some(38));
        // CAP_SYS_CHROOT is a default capability; arch_prctl is amd64's.
        assert_eq!(actions_for(&seccomp, "chroot").len(), 1);
        assert_eq!(actions_for(&seccomp, "arch_prctl").len(), 1);
        assert!(actions_for(&seccomp, "s390_runtime_instr").is_empty());
        assert_eq!(actions_for(&seccomp, "personality").len(), 5);
    }

    #[test]
    fn default_profile_ptrace_needs_kernel_4_8_or_the_capability() {
        let old_kernel = amd64(4, 7);
        assert!(actions_for(&docker_default(&caps(&[]), &old_kernel), "ptrace").is_empty());
        assert_eq!(
            actions_for(
                &docker_default(&caps(&["CAP_SYS_PTRACE"]), &old_kernel),
                "ptrace"
            )
            .len(),
            1
        );
        assert_eq!(
            actions_for(&docker_default(&caps(&[]), &amd64(4, 8)), "ptrace").len(),
            1
        );
    }

    #[test]
    fn default_profile_with_sys_admin() {
        let seccomp = docker_default(&caps(&["CAP_SYS_ADMIN"]), &amd64(6, 1));
        for allowed in ["mount", "umount2", "unshare", "setns", "bpf", "sethostname"] {
            assert_eq!(actions_for(&seccomp, allowed).len(), 1, "{allowed}");
        }
        // The unconditional clone/clone3 of the CAP_SYS_ADMIN group replace the restricted ones.
        for name in ["clone", "clone3"] {
            let rules = actions_for(&seccomp, name);
            assert_eq!(rules.len(), 1, "{name}");
            assert_eq!(rules[0].action(), LinuxSeccompAction::ScmpActAllow);
            assert!(rules[0].args().is_none());
        }
    }

    #[test]
    fn default_profile_on_arm64() {
        let seccomp = docker_default(&caps(&[]), &arm64());
        assert_eq!(actions_for(&seccomp, "cacheflush").len(), 1);
        assert!(actions_for(&seccomp, "arch_prctl").is_empty());
    }
}
