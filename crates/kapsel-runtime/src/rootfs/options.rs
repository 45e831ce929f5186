//! Turning an OCI mount's `options` into mount(2) flags, propagation and data.

use nix::mount::MsFlags;

/// One mount's options, split the way mount(2) wants them.
#[derive(Debug, PartialEq)]
pub struct MountOptions {
    /// Flags for the mount call itself.
    pub flags: MsFlags,
    /// Propagation changes, each applied with its own mount call after the mount.
    pub propagation: Vec<MsFlags>,
    /// Filesystem-specific options (`mode=755`, `size=64k`, …), comma-joined.
    pub data: String,
    /// `tmpcopyup` (a runc extension podman uses): a tmpfs starts with a copy of what the
    /// image has at that path.
    pub copy_up: bool,
}

impl Default for MountOptions {
    fn default() -> Self {
        MountOptions {
            flags: MsFlags::empty(),
            propagation: Vec::new(),
            data: String::new(),
            copy_up: false,
        }
    }
}

impl MountOptions {
    pub fn is_bind(&self) -> bool {
        self.flags.contains(MsFlags::MS_BIND)
    }

    /// Flags that a bind mount only gets through a second, remounting call.
    pub fn remount_flags(&self) -> MsFlags {
        self.flags - (MsFlags::MS_BIND | MsFlags::MS_REC | MsFlags::MS_REMOUNT)
    }
}

pub fn parse(options: &[String]) -> MountOptions {
    let mut out = MountOptions::default();
    let mut data = Vec::new();
    for opt in options {
        if opt == "tmpcopyup" || opt == "notmpcopyup" {
            out.copy_up = opt == "tmpcopyup";
        } else if let Some(p) = propagation(opt) {
            out.propagation.push(p);
        } else if let Some((clear, flag)) = flag(opt) {
            if clear {
                out.flags.remove(flag);
            } else {
                out.flags.insert(flag);
            }
        } else {
            data.push(opt.as_str());
        }
    }
    out.data = data.join(",");
    out
}

/// (clears?, flag) for the options mount(8) knows as flags.
fn flag(opt: &str) -> Option<(bool, MsFlags)> {
    use MsFlags as F;
    Some(match opt {
        "defaults" => (false, F::empty()),
        "ro" => (false, F::MS_RDONLY),
        "rw" => (true, F::MS_RDONLY),
        "nosuid" => (false, F::MS_NOSUID),
        "suid" => (true, F::MS_NOSUID),
        "nodev" => (false, F::MS_NODEV),
        "dev" => (true, F::MS_NODEV),
        "noexec" => (false, F::MS_NOEXEC),
        "exec" => (true, F::MS_NOEXEC),
        "sync" => (false, F::MS_SYNCHRONOUS),
        "async" => (true, F::MS_SYNCHRONOUS),
        "dirsync" => (false, F::MS_DIRSYNC),
        "remount" => (false, F::MS_REMOUNT),
        "mand" => (false, F::MS_MANDLOCK),
        "nomand" => (true, F::MS_MANDLOCK),
        "atime" => (true, F::MS_NOATIME),
        "noatime" => (false, F::MS_NOATIME),
        "diratime" => (true, F::MS_NODIRATIME),
        "nodiratime" => (false, F::MS_NODIRATIME),
        "relatime" => (false, F::MS_RELATIME),
        "norelatime" => (true, F::MS_RELATIME),
        "strictatime" => (false, F::MS_STRICTATIME),
        "nostrictatime" => (true, F::MS_STRICTATIME),
        "silent" => (false, F::MS_SILENT),
        "loud" => (true, F::MS_SILENT),
        "bind" => (false, F::MS_BIND),
        "rbind" => (false, F::MS_BIND | F::MS_REC),
        _ => return None,
    })
}

fn propagation(opt: &str) -> Option<MsFlags> {
    use MsFlags as F;
    Some(match opt {
        "private" => F::MS_PRIVATE,
        "rprivate" => F::MS_PRIVATE | F::MS_REC,
        "shared" => F::MS_SHARED,
        "rshared" => F::MS_SHARED | F::MS_REC,
        "slave" => F::MS_SLAVE,
        "rslave" => F::MS_SLAVE | F::MS_REC,
        "unbindable" => F::MS_UNBINDABLE,
        "runbindable" => F::MS_UNBINDABLE | F::MS_REC,
        _ => return None,
    })
}

/// Propagation for a `rootfsPropagation` value.
pub fn rootfs_propagation(value: &str) -> Option<MsFlags> {
    propagation(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_data_and_propagation_are_split() {
        let o: Vec<String> = ["rbind", "ro", "nosuid", "mode=755", "rslave", "size=1k"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let m = parse(&o);
        assert!(m.is_bind());
        assert_eq!(m.remount_flags(), MsFlags::MS_RDONLY | MsFlags::MS_NOSUID);
        assert_eq!(m.data, "mode=755,size=1k");
        assert_eq!(m.propagation, vec![MsFlags::MS_SLAVE | MsFlags::MS_REC]);
        assert_eq!(parse(&["ro".into(), "rw".into()]).flags, MsFlags::empty());
    }
}
