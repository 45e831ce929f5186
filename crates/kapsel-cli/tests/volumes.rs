//! `kapsel volume` against a private kapseld: create, ls, inspect, rm, and the backup
//! round trip (export → rm → import) checked with a manifest of paths, types, modes,
//! owners, xattrs, link targets, hard links and content hashes; hostile archives; and
//! the freeze of running writers during an export.

mod common;

use std::collections::BTreeMap;
use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use common::{busybox_archive, Daemon};

fn daemon_with_busybox(name: &str) -> Option<Daemon> {
    let d = Daemon::start(name);
    let Some(archive) = busybox_archive(&d.dir) else {
        eprintln!("SKIP: no /bin/busybox (install busybox-static)");
        return None;
    };
    d.ok(&["load", "-i", &archive.to_string_lossy()]);
    Some(d)
}

fn mountpoint(d: &Daemon, volume: &str) -> String {
    d.ok(&["volume", "inspect", "-f", "{{.Mountpoint}}", volume])
        .trim()
        .to_string()
}

/// One line per entry below `root` (and `root` itself as `.`): path, type, mode, owner,
/// user xattrs, and the content hash, link target or hard-link group.
fn manifest(root: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut first_name_of_inode: BTreeMap<u64, String> = BTreeMap::new();
    let mut pending = vec![root.to_path_buf()];
    while let Some(path) = pending.pop() {
        let meta = std::fs::symlink_metadata(&path).unwrap();
        let rel = path
            .strip_prefix(root)
            .unwrap()
            .to_string_lossy()
            .into_owned();
        let rel = if rel.is_empty() { ".".to_string() } else { rel };
        let kind = meta.file_type();
        let what = if kind.is_dir() {
            for entry in std::fs::read_dir(&path).unwrap() {
                pending.push(entry.unwrap().path());
            }
            "dir".to_string()
        } else if kind.is_symlink() {
            format!("link->{}", std::fs::read_link(&path).unwrap().display())
        } else if kind.is_file() {
            let data = std::fs::read(&path).unwrap();
            let hash = kapsel_image::digest::Digest::of_bytes(&data);
            let group = if meta.nlink() > 1 {
                let first = first_name_of_inode
                    .entry(meta.ino())
                    .or_insert_with(|| rel.clone());
                format!(" nlink={} group={}", meta.nlink(), first)
            } else {
                String::new()
            };
            format!("file {hash}{group}")
        } else {
            "other".to_string()
        };
        out.insert(
            rel,
            format!(
                "{what} mode={:o} owner={}:{} xattr={}",
                meta.mode() & 0o7777,
                meta.uid(),
                meta.gid(),
                user_xattr(&path)
            ),
        );
    }
    out
}

fn user_xattr(path: &Path) -> String {
    let c = CString::new(path.as_os_str().as_bytes()).unwrap();
    let mut value = [0u8; 256];
    // SAFETY: a valid C path and buffer.
    let n = unsafe {
        libc::lgetxattr(
            c.as_ptr(),
            c"user.backup".as_ptr(),
            value.as_mut_ptr().cast(),
            value.len(),
        )
    };
    if n < 0 {
        String::new()
    } else {
        String::from_utf8_lossy(&value[..n as usize]).into_owned()
    }
}

fn set_user_xattr(path: &Path, value: &str) {
    let c = CString::new(path.as_os_str().as_bytes()).unwrap();
    // SAFETY: a valid C path and value.
    let r = unsafe {
        libc::setxattr(
            c.as_ptr(),
            c"user.backup".as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            0,
        )
    };
    assert_eq!(
        r,
        0,
        "setxattr on {}: {}",
        path.display(),
        std::io::Error::last_os_error()
    );
}

#[test]
fn export_remove_import_round_trip_is_identical() {
    let Some(d) = daemon_with_busybox("vol-backup") else {
        return;
    };
    assert_eq!(
        d.ok(&["volume", "create", "--label", "k=v", "backup"]),
        "backup\n"
    );
    let populate = "cd /v && mkdir -p a/b empty && echo one > a/f && echo two > a/b/g \
        && printf '\\000\\001binary' > bin && ln a/f a/hard && ln -s a/f rel && ln -s /etc/passwd abs \
        && chown 1234:5678 a/f && chown -R 42:43 a/b && chmod 0600 a/f && chmod 4755 bin \
        && chmod 0700 a/b && mkfifo pipe && chmod 0711 /v && chown 7:8 /v";
    d.ok(&[
        "run",
        "--rm",
        "-v",
        "backup:/v",
        "busybox",
        "sh",
        "-c",
        populate,
    ]);
    let data = mountpoint(&d, "backup");
    set_user_xattr(&Path::new(&data).join("a/b/g"), "kept");
    let before = manifest(Path::new(&data));
    assert!(before["a/hard"].contains("nlink=2"), "{before:?}");
    assert!(before["."].contains("mode=711 owner=7:8"), "{before:?}");

    let file = d.dir.join("backup.tar");
    d.ok(&["volume", "export", "backup", "-o", &file.to_string_lossy()]);
    // Through stdout too, byte for byte the same archive.
    let piped = d.kapsel(&["volume", "export", "backup"]);
    assert_eq!(piped.code, 0, "{piped:?}");
    assert_eq!(piped.raw, std::fs::read(&file).unwrap());

    assert_eq!(d.ok(&["volume", "rm", "backup"]), "backup\n");
    assert!(d.kapsel(&["volume", "inspect", "backup"]).code != 0);
    let out = d.kapsel_in(
        &["volume", "import", "backup"],
        Some(&std::fs::read(&file).unwrap()),
    );
    assert_eq!(out.code, 0, "{out:?}");
    let after = manifest(Path::new(&mountpoint(&d, "backup")));
    assert_eq!(before, after);
    // And from a file, over the data that is there: still the same.
    d.ok(&["volume", "import", "backup", "-i", &file.to_string_lossy()]);
    assert_eq!(before, manifest(Path::new(&mountpoint(&d, "backup"))));
    let listed = d.ok(&[
        "volume",
        "ls",
        "--filter",
        "dangling=true",
        "--format",
        "{{.Name}} {{.Driver}}",
    ]);
    assert_eq!(listed, "backup local\n");
}

#[test]
fn hostile_archives_cannot_write_outside_the_volume() {
    let Some(d) = daemon_with_busybox("vol-hostile") else {
        return;
    };
    let outside = d.dir.join("outside");
    std::fs::create_dir_all(&outside).unwrap();
    let entry = |b: &mut tar::Builder<Vec<u8>>,
                 name: &str,
                 kind: tar::EntryType,
                 link: &str,
                 data: &[u8]| {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        h.set_mode(0o644);
        h.set_size(data.len() as u64);
        {
            let raw = h.as_old_mut();
            raw.name[..name.len()].copy_from_slice(name.as_bytes());
            raw.linkname[..link.len()].copy_from_slice(link.as_bytes());
        }
        h.set_cksum();
        b.append(&h, data).unwrap();
    };
    // A symlink to the host directory, then a file written through it: the link
    // resolves in the volume's root, where that path does not exist, so the entry is
    // refused; nothing reaches the host.
    let mut through_link = tar::Builder::new(Vec::new());
    let target = outside.to_string_lossy().into_owned();
    entry(
        &mut through_link,
        "escape",
        tar::EntryType::Symlink,
        &target,
        b"",
    );
    entry(
        &mut through_link,
        "escape/pwned",
        tar::EntryType::Regular,
        "",
        b"x",
    );
    let archive = through_link.into_inner().unwrap();
    let out = d.kapsel_in(&["volume", "import", "hostile"], Some(&archive));
    assert_ne!(out.code, 0, "{out:?}");
    assert!(!outside.join("pwned").exists());
    // With that path made inside the volume, the same archive writes there.
    let data = mountpoint(&d, "hostile");
    std::fs::create_dir_all(Path::new(&data).join(target.trim_start_matches('/'))).unwrap();
    let out = d.kapsel_in(&["volume", "import", "hostile"], Some(&archive));
    assert_eq!(out.code, 0, "{out:?}");
    assert!(!outside.join("pwned").exists());
    assert!(Path::new(&data)
        .join(target.trim_start_matches('/'))
        .join("pwned")
        .exists());
    // `..` in names and hard links out of the volume are refused.
    for (name, kind, link) in [
        ("../../pwned", tar::EntryType::Regular, ""),
        ("hard", tar::EntryType::Link, "../../../../etc/passwd"),
    ] {
        let mut b = tar::Builder::new(Vec::new());
        entry(&mut b, name, kind, link, b"");
        let out = d.kapsel_in(
            &["volume", "import", "hostile"],
            Some(&b.into_inner().unwrap()),
        );
        assert_ne!(out.code, 0, "{name}: {out:?}");
    }
    assert!(!d.dir.join("pwned").exists());
    assert!(!d.dir.join("data/pwned").exists());
}

#[test]
fn export_freezes_running_writers_and_import_refuses_them() {
    let Some(d) = daemon_with_busybox("vol-freeze") else {
        return;
    };
    d.ok(&[
        "run",
        "-d",
        "--name",
        "writer",
        "-v",
        "busy:/v",
        "busybox",
        "sh",
        "-c",
        "while true; do echo line >> /v/log; done",
    ]);
    let out = d.kapsel(&[
        "volume",
        "export",
        "busy",
        "-o",
        &d.dir.join("busy.tar").to_string_lossy(),
    ]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(
        out.stderr.contains("WARNING") && out.stderr.contains("paused"),
        "{out:?}"
    );
    let status = d.ok(&["inspect", "-f", "{{.State.Status}}", "writer"]);
    assert_eq!(status, "running\n");
    let refused = d.kapsel_in(
        &["volume", "import", "busy"],
        Some(&std::fs::read(d.dir.join("busy.tar")).unwrap()),
    );
    assert_ne!(refused.code, 0);
    assert!(
        refused.stderr.contains("in use by running container"),
        "{refused:?}"
    );
    // The writer runs on after the freeze: its log still grows.
    let size = || {
        std::fs::metadata(Path::new(&mountpoint(&d, "busy")).join("log"))
            .unwrap()
            .len()
    };
    let first = size();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while size() == first {
        assert!(
            std::time::Instant::now() < deadline,
            "the writer stayed frozen"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}
