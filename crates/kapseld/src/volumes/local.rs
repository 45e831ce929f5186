//! The `local` driver's options, as `docker volume create -o` gives them: `type` (a
//! filesystem type, or `none` with `o=bind`), `device` (what is mounted) and `o` (mount
//! options: flags such as `ro`, `nosuid`, `bind`, the rest passed to the filesystem, such
//! as tmpfs's `size=100m`).

use std::collections::BTreeMap;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use nix::mount::{MntFlags, MsFlags};

const KNOWN: &[&str] = &["type", "device", "o"];

/// Checks the options a volume is created with (dockerd refuses unknown keys at create).
pub fn validate(options: &BTreeMap<String, String>) -> Result<(), String> {
    if let Some(key) = options.keys().find(|k| !KNOWN.contains(&k.as_str())) {
        return Err(format!(
            "invalid option key: {key:?}: the local driver knows type, device and o"
        ));
    }
    if options.is_empty() {
        return Ok(());
    }
    let kind = options.get("type").map(String::as_str).unwrap_or("");
    let device = options.get("device").map(String::as_str).unwrap_or("");
    if kind.is_empty() {
        return Err("missing option \"type\" (e.g. type=tmpfs, or type=none with o=bind)".into());
    }
    if device.is_empty() && kind != "tmpfs" {
        return Err(format!("missing option \"device\" for type {kind:?}"));
    }
    let (flags, _) = split_options(options.get("o").map(String::as_str).unwrap_or(""));
    if flags.contains(MsFlags::MS_BIND) && !Path::new(device).exists() {
        return Err(format!(
            "failed to mount local volume: mount {device}: no such file or directory"
        ));
    }
    Ok(())
}

/// Mounts what the options describe over `target` (the volume's `_data`).
pub fn mount(options: &BTreeMap<String, String>, target: &Path) -> io::Result<()> {
    let kind = options.get("type").map(String::as_str).unwrap_or("");
    let device = options
        .get("device")
        .map(String::as_str)
        .filter(|d| !d.is_empty())
        .unwrap_or(kind);
    let (flags, data) = split_options(options.get("o").map(String::as_str).unwrap_or(""));
    let fstype = (!flags.contains(MsFlags::MS_BIND) && kind != "none").then_some(kind);
    let data = (!data.is_empty()).then_some(data.as_str());
    nix::mount::mount(Some(device), target, fstype, flags, data)?;
    Ok(())
}

pub fn unmount(target: &Path) -> io::Result<()> {
    nix::mount::umount2(target, MntFlags::MNT_DETACH)?;
    Ok(())
}

/// Whether something is mounted at `path` (it is on another device than its parent, or
/// it is a bind of a directory of the same filesystem: then /proc/self/mountinfo says).
pub fn is_mounted(path: &Path) -> bool {
    match (std::fs::metadata(path), std::fs::metadata(path.join(".."))) {
        (Ok(a), Ok(b)) if a.dev() != b.dev() => true,
        _ => std::fs::read_to_string("/proc/self/mountinfo").is_ok_and(|info| {
            let wanted = path.to_string_lossy();
            info.lines()
                .any(|l| l.split(' ').nth(4) == Some(wanted.as_ref()))
        }),
    }
}

/// `o=` split into mount(2) flags and the filesystem's own data.
fn split_options(o: &str) -> (MsFlags, String) {
    let mut flags = MsFlags::empty();
    let mut data = Vec::new();
    for opt in o.split(',').filter(|s| !s.is_empty()) {
        match opt {
            "bind" => flags |= MsFlags::MS_BIND,
            "rbind" => flags |= MsFlags::MS_BIND | MsFlags::MS_REC,
            "ro" => flags |= MsFlags::MS_RDONLY,
            "rw" => {}
            "nosuid" => flags |= MsFlags::MS_NOSUID,
            "nodev" => flags |= MsFlags::MS_NODEV,
            "noexec" => flags |= MsFlags::MS_NOEXEC,
            "noatime" => flags |= MsFlags::MS_NOATIME,
            other => data.push(other),
        }
    }
    (flags, data.join(","))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn options_are_checked_as_dockers_local_driver_does() {
        assert!(validate(&opts(&[])).is_ok());
        assert!(validate(&opts(&[("type", "tmpfs"), ("o", "size=1m")])).is_ok());
        assert!(validate(&opts(&[
            ("type", "none"),
            ("o", "bind"),
            ("device", "/tmp")
        ]))
        .is_ok());
        assert!(validate(&opts(&[
            ("type", "none"),
            ("o", "bind"),
            ("device", "/nonexistent/x")
        ]))
        .is_err());
        assert!(validate(&opts(&[("size", "1")])).is_err());
        assert!(validate(&opts(&[("o", "size=1m")])).is_err());
    }

    #[test]
    fn mount_flags_and_data_split() {
        let (flags, data) = split_options("ro,size=10m,bind,mode=0700");
        assert!(flags.contains(MsFlags::MS_RDONLY | MsFlags::MS_BIND));
        assert_eq!(data, "size=10m,mode=0700");
    }
}
