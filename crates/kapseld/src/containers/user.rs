//! `--user` as Docker resolves it: `name`, `uid`, `name:group`, `uid:gid`, looked up in
//! the container's own /etc/passwd and /etc/group.

use std::io::Read;
use std::os::fd::OwnedFd;
use std::path::Path;

use super::ContainerError;

/// The uid, gid and supplementary groups a container's process runs with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub uid: u32,
    pub gid: u32,
    pub additional_gids: Vec<u32>,
    pub home: String,
}

/// Resolves `spec` (empty means root) and `group_add` against the files in `rootfs`.
pub fn resolve(rootfs: &Path, spec: &str, group_add: &[String]) -> Result<User, ContainerError> {
    let passwd = read_in_root(rootfs, "etc/passwd");
    let group = read_in_root(rootfs, "etc/group");
    let (user_part, group_part) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    let entry = match user_part {
        "" => passwd_entry(&passwd, |name, uid| name == "root" || uid == 0),
        u => match u.parse::<u32>() {
            Ok(uid) => passwd_entry(&passwd, |_, id| id == uid).or(Some((uid, uid, "/".into()))),
            Err(_) => passwd_entry(&passwd, |name, _| name == u),
        },
    };
    let (uid, mut gid, home) = match entry {
        Some(found) => found,
        None if user_part.is_empty() => (0, 0, "/root".into()),
        None => return Err(unknown_user(spec, "no matching entries in passwd file")),
    };
    if let Some(g) = group_part {
        gid = group_id(&group, g).ok_or_else(|| unknown_user(spec, "no matching group"))?;
    }
    let user_name = passwd_name(&passwd, uid);
    let mut additional_gids: Vec<u32> = group_lines(&group)
        .filter(|(_, _, members)| user_name.as_ref().is_some_and(|n| members.contains(n)))
        .map(|(_, id, _)| id)
        .collect();
    for g in group_add {
        let id = group_id(&group, g).ok_or_else(|| unknown_user(g, "no matching group"))?;
        additional_gids.push(id);
    }
    additional_gids.retain(|g| *g != gid);
    additional_gids.sort_unstable();
    additional_gids.dedup();
    Ok(User {
        uid,
        gid,
        additional_gids,
        home,
    })
}

fn unknown_user(spec: &str, why: &str) -> ContainerError {
    ContainerError::InvalidConfig(format!("unable to find user {spec}: {why}"))
}

/// `(uid, gid, home)` of the first passwd line that matches.
fn passwd_entry(passwd: &str, matches: impl Fn(&str, u32) -> bool) -> Option<(u32, u32, String)> {
    passwd.lines().find_map(|line| {
        let f: Vec<&str> = line.split(':').collect();
        let uid = f.get(2)?.parse().ok()?;
        let gid = f.get(3)?.parse().ok()?;
        matches(f[0], uid).then(|| (uid, gid, f.get(5).unwrap_or(&"/").to_string()))
    })
}

fn passwd_name(passwd: &str, uid: u32) -> Option<String> {
    passwd.lines().find_map(|line| {
        let f: Vec<&str> = line.split(':').collect();
        (f.get(2)?.parse::<u32>().ok()? == uid).then(|| f[0].to_string())
    })
}

/// `(name, gid, members)` of each group line.
fn group_lines(group: &str) -> impl Iterator<Item = (&str, u32, Vec<String>)> {
    group.lines().filter_map(|line| {
        let f: Vec<&str> = line.split(':').collect();
        let id = f.get(2)?.parse().ok()?;
        let members = f
            .get(3)
            .map(|m| {
                m.split(',')
                    .filter(|s| !s.is_empty())
                    .map(String::from)
                    .collect()
            })
            .unwrap_or_default();
        Some((f[0], id, members))
    })
}

fn group_id(group: &str, name_or_id: &str) -> Option<u32> {
    name_or_id.parse().ok().or_else(|| {
        group_lines(group)
            .find(|(name, _, _)| *name == name_or_id)
            .map(|(_, id, _)| id)
    })
}

/// A file of the container's root filesystem, resolved inside it (openat2 with
/// RESOLVE_IN_ROOT: a hostile image's symlink cannot point the daemon at a host file);
/// empty when missing or larger than 1 MiB.
fn read_in_root(rootfs: &Path, relative: &str) -> String {
    use rustix::fs::{openat2, Mode, OFlags, ResolveFlags};
    let open = || -> std::io::Result<OwnedFd> {
        let root = std::fs::File::open(rootfs)?;
        // Non-blocking and regular files only: the container owns these files and could
        // make them a FIFO (a daemon stuck reading) or a device node (host data).
        let fd = openat2(
            &root,
            relative,
            OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NONBLOCK | OFlags::NOFOLLOW,
            Mode::empty(),
            ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS,
        )?;
        if !rustix::fs::FileType::from_raw_mode(rustix::fs::fstat(&fd)?.st_mode).is_file() {
            return Err(std::io::Error::other("not a regular file"));
        }
        Ok(fd)
    };
    let mut text = String::new();
    if let Ok(fd) = open() {
        let _ = std::fs::File::from(fd)
            .take(1 << 20)
            .read_to_string(&mut text);
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rootfs(name: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("kapseld-user-{name}-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("etc")).unwrap();
        std::fs::write(
            dir.join("etc/passwd"),
            "root:x:0:0:root:/root:/bin/sh\nweb:x:1000:1000::/home/web:/bin/sh\n",
        )
        .unwrap();
        std::fs::write(
            dir.join("etc/group"),
            "root:x:0:\nweb:x:1000:\naudio:x:29:web\nstaff:x:50:\n",
        )
        .unwrap();
        dir
    }

    #[test]
    fn names_and_numbers_resolve_as_docker_does() {
        let dir = rootfs("resolve");
        let root = resolve(&dir, "", &[]).unwrap();
        assert_eq!((root.uid, root.gid, root.home.as_str()), (0, 0, "/root"));
        let web = resolve(&dir, "web", &[]).unwrap();
        assert_eq!(
            (web.uid, web.gid, web.additional_gids.clone()),
            (1000, 1000, vec![29])
        );
        assert_eq!(web.home, "/home/web");
        let numeric = resolve(&dir, "4242:staff", &["audio".into()]).unwrap();
        assert_eq!((numeric.uid, numeric.gid), (4242, 50));
        assert_eq!(numeric.additional_gids, vec![29]);
        assert!(resolve(&dir, "nobody", &[]).is_err());
        assert!(resolve(&dir, "web:nogroup", &[]).is_err());
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_fifo_in_place_of_passwd_is_not_read() {
        let dir = rootfs("fifo");
        std::fs::remove_file(dir.join("etc/passwd")).unwrap();
        nix::unistd::mkfifo(&dir.join("etc/passwd"), nix::sys::stat::Mode::S_IRWXU).unwrap();
        // Would block for ever if the FIFO were opened for reading.
        assert!(resolve(&dir, "web", &[]).is_err());
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_symlink_to_a_host_file_resolves_inside_the_rootfs() {
        let dir = rootfs("symlink");
        std::fs::remove_file(dir.join("etc/passwd")).unwrap();
        // Outside the rootfs this would be the host's passwd file.
        std::os::unix::fs::symlink("/etc/passwd", dir.join("etc/passwd")).unwrap();
        assert!(resolve(&dir, "web", &[]).is_err());
        std::fs::remove_dir_all(dir).unwrap();
    }
}
