//! Creating and joining Linux namespaces.

use std::os::fd::AsFd;
use std::os::unix::fs::MetadataExt;

use nix::sched::{setns, unshare, CloneFlags};
use oci_spec::runtime::{LinuxNamespace, LinuxNamespaceType};

use crate::error::{Result, RuntimeError, SysContext};

pub fn clone_flag(typ: LinuxNamespaceType) -> CloneFlags {
    CloneFlags::from_bits_retain(typ as i32)
}

/// The name of a namespace type under /proc/PID/ns.
pub fn proc_name(typ: LinuxNamespaceType) -> &'static str {
    match typ {
        LinuxNamespaceType::Mount => "mnt",
        LinuxNamespaceType::Cgroup => "cgroup",
        LinuxNamespaceType::Uts => "uts",
        LinuxNamespaceType::Ipc => "ipc",
        LinuxNamespaceType::User => "user",
        LinuxNamespaceType::Pid => "pid",
        LinuxNamespaceType::Network => "net",
        LinuxNamespaceType::Time => "time",
    }
}

/// The user namespace goes first: joining it grants the capabilities needed to join the
/// others, which it owns.
fn user_first(a: &LinuxNamespace, b: &LinuxNamespace) -> std::cmp::Ordering {
    let key = |n: &LinuxNamespace| n.typ() != LinuxNamespaceType::User;
    key(a).cmp(&key(b))
}

/// Joins every namespace config.json names by path. All are opened before any is joined:
/// after joining a mount namespace the paths would resolve in the container's filesystem.
pub fn join_paths(namespaces: &[LinuxNamespace]) -> Result<()> {
    let mut joins: Vec<&LinuxNamespace> =
        namespaces.iter().filter(|n| n.path().is_some()).collect();
    joins.sort_by(|a, b| user_first(a, b));
    let opened = joins
        .iter()
        .map(|ns| {
            let path = ns.path().as_ref().expect("filtered");
            let file = std::fs::File::open(path).map_err(|e| {
                RuntimeError::invalid(
                    "linux.namespaces",
                    format!(
                        "{} namespace path {}: {e}",
                        proc_name(ns.typ()),
                        path.display()
                    ),
                )
            })?;
            Ok((file, ns))
        })
        .collect::<Result<Vec<_>>>()?;
    for (file, ns) in opened {
        setns(file.as_fd(), clone_flag(ns.typ())).ctx(|| {
            format!(
                "joining the {} namespace at {}",
                proc_name(ns.typ()),
                ns.path().as_ref().expect("filtered").display()
            )
        })?;
    }
    Ok(())
}

/// Unshares the new namespaces config.json asks for, except user, which the caller handles
/// first.
pub fn unshare_new(namespaces: &[LinuxNamespace]) -> Result<()> {
    let flags = namespaces
        .iter()
        .filter(|n| n.path().is_none() && n.typ() != LinuxNamespaceType::User)
        .fold(CloneFlags::empty(), |acc, n| acc | clone_flag(n.typ()));
    if flags.is_empty() {
        return Ok(());
    }
    unshare(flags).ctx(|| format!("unshare of new namespaces ({flags:?})"))
}

pub fn unshare_user() -> Result<()> {
    unshare(CloneFlags::CLONE_NEWUSER).ctx(|| "unshare of a new user namespace")
}

/// Namespaces of a running container that differ from the caller's, user namespace first:
/// what `exec` must join. Joining one's own user namespace is an error, hence the filter.
pub fn of_process(pid: i32) -> Result<Vec<LinuxNamespace>> {
    use LinuxNamespaceType::*;
    let mut out = Vec::new();
    for typ in [User, Mount, Cgroup, Uts, Ipc, Network, Pid, Time] {
        let theirs = format!("/proc/{pid}/ns/{}", proc_name(typ));
        let mine = format!("/proc/self/ns/{}", proc_name(typ));
        let (Ok(a), Ok(b)) = (std::fs::metadata(&theirs), std::fs::metadata(&mine)) else {
            continue; // namespace type not supported by this kernel
        };
        if a.ino() != b.ino() || a.dev() != b.dev() {
            let mut ns = LinuxNamespace::default();
            ns.set_typ(typ);
            ns.set_path(Some(theirs.into()));
            out.push(ns);
        }
    }
    Ok(out)
}
