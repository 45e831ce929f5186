//! Switching to the container's user: groups, gid, uid and umask.

use nix::sys::stat::{umask, Mode};
use nix::unistd::{setgroups, setresgid, setresuid, Gid, Uid};
use oci_spec::runtime::User;

use crate::error::{Result, SysContext};

/// Switches to `user` keeping the permitted capabilities, so the capability sets can be
/// applied afterwards.
pub fn switch_user(user: &User) -> Result<()> {
    let gids: Vec<Gid> = user
        .additional_gids()
        .iter()
        .flatten()
        .map(|g| Gid::from_raw(*g))
        .collect();
    // In a user namespace with setgroups denied, an empty list cannot be set either; only
    // fail when the config asked for groups.
    if let Err(e) = setgroups(&gids) {
        if !gids.is_empty() {
            return Err(e).ctx(|| format!("setgroups {:?}", user.additional_gids()));
        }
    }
    keep_caps(true)?;
    let gid = Gid::from_raw(user.gid());
    setresgid(gid, gid, gid).ctx(|| format!("setgid {}", user.gid()))?;
    let uid = Uid::from_raw(user.uid());
    setresuid(uid, uid, uid).ctx(|| format!("setuid {}", user.uid()))?;
    keep_caps(false)
}

fn keep_caps(on: bool) -> Result<()> {
    nix::sys::prctl::set_keepcaps(on).ctx(|| "prctl PR_SET_KEEPCAPS")
}

/// `user.umask`, 0022 when unset (as runc).
pub fn apply_umask(user: &User) {
    umask(Mode::from_bits_truncate(user.umask().unwrap_or(0o022)));
}

/// The home directory of `uid` in the container's /etc/passwd, "/" when it has none (as
/// runc and Docker set HOME when config.json does not).
pub fn home_dir(uid: u32) -> String {
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
    passwd
        .lines()
        .map(|l| l.split(':').collect::<Vec<_>>())
        .find(|f| f.len() >= 6 && f[2].parse() == Ok(uid))
        .map(|f| f[5].to_string())
        .unwrap_or_else(|| "/".to_string())
}
