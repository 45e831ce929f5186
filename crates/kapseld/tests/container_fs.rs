//! A container's filesystem through the real docker CLI and raw HTTP: docker cp both ways
//! (running and stopped containers), symlink and `..` escapes, docker export, docker
//! update and docker container prune.

mod common;

use std::io::Read;
use std::path::Path;

use common::{
    daemon_with_busybox, docker_bytes, inspect, ok, run_sh, run_sleeping, wait_for, Daemon,
};

/// `docker exec NAME sh -c SCRIPT`'s output.
fn sh(d: &Daemon, name: &str, script: &str) -> String {
    ok(d, &["exec", name, "sh", "-c", script])
}

/// One entry of a tar, read whole.
#[derive(Debug)]
struct Entry {
    name: String,
    kind: tar::EntryType,
    link: Option<String>,
    data: Vec<u8>,
    uid: u64,
    gid: u64,
    mode: u32,
    mtime: u64,
    device: Option<(u32, u32)>,
}

fn entries(tar_bytes: &[u8]) -> Vec<Entry> {
    let mut archive = tar::Archive::new(tar_bytes);
    archive
        .entries()
        .unwrap()
        .map(|e| {
            let mut e = e.unwrap();
            let mut data = Vec::new();
            e.read_to_end(&mut data).unwrap();
            let h = e.header();
            Entry {
                name: String::from_utf8_lossy(&e.path_bytes()).into_owned(),
                kind: h.entry_type(),
                link: e
                    .link_name_bytes()
                    .map(|l| String::from_utf8_lossy(&l).into_owned()),
                data,
                uid: h.uid().unwrap(),
                gid: h.gid().unwrap(),
                mode: h.mode().unwrap(),
                mtime: h.mtime().unwrap(),
                device: h
                    .device_major()
                    .ok()
                    .flatten()
                    .zip(h.device_minor().ok().flatten()),
            }
        })
        .collect()
}

fn find<'a>(entries: &'a [Entry], name: &str) -> &'a Entry {
    entries
        .iter()
        .find(|e| e.name == name)
        .unwrap_or_else(|| panic!("no {name} in {:?}", names(entries)))
}

fn names(entries: &[Entry]) -> Vec<&str> {
    entries.iter().map(|e| e.name.as_str()).collect()
}

/// `docker cp NAME:PATH -`, which writes the tar to stdout.
fn cp_out(d: &Daemon, source: &str, follow: bool) -> Result<Vec<Entry>, String> {
    let mut args = vec!["cp"];
    if follow {
        args.push("-L");
    }
    args.extend([source, "-"]);
    let (code, out, err) = docker_bytes(d, &args, None);
    if code != 0 {
        return Err(err);
    }
    Ok(entries(&out))
}

/// A raw request with a body; (status, body).
fn http_with_body(d: &Daemon, method: &str, path: &str, body: &[u8]) -> (u16, String) {
    let out = d.http_bytes(method, path, Some(("application/x-tar", body)));
    let text = String::from_utf8_lossy(&out).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, text)
}

/// A tar built by hand, so names may hold `..` (the tar crate refuses to write those).
fn raw_tar(items: &[(&str, tar::EntryType, &str)]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (name, kind, data) in items {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(*kind);
        h.set_mode(0o644);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(1_700_000_000);
        let field = &mut h.as_old_mut().name;
        field[..name.len()].copy_from_slice(name.as_bytes());
        let body: &[u8] = if matches!(kind, tar::EntryType::Symlink | tar::EntryType::Link) {
            let link = &mut h.as_old_mut().linkname;
            link[..data.len()].copy_from_slice(data.as_bytes());
            b""
        } else {
            data.as_bytes()
        };
        h.set_size(body.len() as u64);
        h.set_cksum();
        b.append(&h, body).unwrap();
    }
    b.into_inner().unwrap()
}

/// A host path that must never be written; removed if a broken engine wrote it anyway.
struct MustNotExist(std::path::PathBuf);

impl MustNotExist {
    fn new(name: &str) -> Self {
        let path = std::path::PathBuf::from(format!("/tmp/{name}-{}", std::process::id()));
        let _ = std::fs::remove_file(&path);
        MustNotExist(path)
    }

    fn name(&self) -> String {
        self.0.file_name().unwrap().to_string_lossy().into_owned()
    }

    fn check(&self) {
        assert!(
            !self.0.exists(),
            "{} was written on the host",
            self.0.display()
        );
    }
}

impl Drop for MustNotExist {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

#[test]
fn cp_into_a_running_container_and_back_out() {
    let Some(d) = daemon_with_busybox("cp-running") else {
        return;
    };
    run_sleeping(&d, "web");
    let input = d.dir.join("in");
    std::fs::create_dir_all(input.join("tree/sub")).unwrap();
    std::fs::write(input.join("greeting.txt"), "hello from the host\n").unwrap();
    std::fs::write(input.join("tree/a"), "A\n").unwrap();
    std::fs::write(input.join("tree/sub/b"), "B\n").unwrap();

    // A file into an existing directory, a directory to a new name.
    ok(
        &d,
        &[
            "cp",
            &input.join("greeting.txt").to_string_lossy(),
            "web:/tmp/",
        ],
    );
    assert_eq!(
        sh(&d, "web", "cat /tmp/greeting.txt"),
        "hello from the host\n"
    );
    ok(
        &d,
        &[
            "cp",
            &input.join("tree").to_string_lossy(),
            "web:/root/copied",
        ],
    );
    assert_eq!(
        sh(&d, "web", "cat /root/copied/a /root/copied/sub/b"),
        "A\nB\n"
    );

    // What the container writes comes back out, to a file and as a tar.
    sh(&d, "web", "echo made inside > /tmp/inside.txt");
    let out = d.dir.join("inside.txt");
    ok(&d, &["cp", "web:/tmp/inside.txt", &out.to_string_lossy()]);
    assert_eq!(std::fs::read_to_string(&out).unwrap(), "made inside\n");
    let tar = cp_out(&d, "web:/root/copied", false).unwrap();
    assert_eq!(find(&tar, "copied/sub/b").data, b"B\n");
    assert_eq!(find(&tar, "copied/").kind, tar::EntryType::Directory);

    // /etc/hostname is the engine's file the container sees, as with Docker.
    let hostname = sh(&d, "web", "cat /etc/hostname");
    assert_eq!(hostname.trim(), sh(&d, "web", "hostname").trim());
    let tar = cp_out(&d, "web:/etc/hostname", false).unwrap();
    assert_eq!(
        String::from_utf8_lossy(&find(&tar, "hostname").data),
        hostname
    );

    // Docker's error for a missing path.
    let err = cp_out(&d, "web:/no/such/file", false).unwrap_err();
    assert!(
        err.contains("Could not find the file /no/such/file in container web"),
        "{err}"
    );
    // The stat alone (HEAD): 404 without the path, 200 with Docker's header.
    let head = d.http("HEAD", "/containers/web/archive?path=/nope");
    assert!(head.starts_with("HTTP/1.1 404"), "{head}");
    let head = d.http("HEAD", "/containers/web/archive?path=/tmp/greeting.txt");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(
        head.to_ascii_lowercase()
            .contains("x-docker-container-path-stat: "),
        "{head}"
    );
}

#[test]
fn cp_works_on_stopped_containers_and_unmounts_after() {
    let Some(d) = daemon_with_busybox("cp-stopped") else {
        return;
    };
    run_sh(
        &d,
        &["--name", "maker", "busybox"],
        "mkdir -p /data/sub && echo one > /data/a && echo two > /data/sub/b && \
         ln -s a /data/link && chmod 640 /data/a",
    );
    let id = inspect(&d, "{{.Id}}", "maker");
    let out = d.dir.join("out");
    ok(&d, &["cp", "maker:/data", &out.to_string_lossy()]);
    assert_eq!(std::fs::read_to_string(out.join("a")).unwrap(), "one\n");
    assert_eq!(std::fs::read_to_string(out.join("sub/b")).unwrap(), "two\n");
    assert_eq!(
        std::fs::read_link(out.join("link")).unwrap(),
        Path::new("a")
    );
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(out.join("a"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o640);

    // Into a container that never ran; it sees the file when it starts.
    ok(
        &d,
        &["create", "--name", "reader", "busybox", "cat", "/etc/note"],
    );
    let note = d.dir.join("note");
    std::fs::write(&note, "copied before the start\n").unwrap();
    ok(&d, &["cp", &note.to_string_lossy(), "reader:/etc/note"]);
    let reader = inspect(&d, "{{.Id}}", "reader");
    assert_eq!(
        ok(&d, &["start", "-a", "reader"]),
        "copied before the start\n"
    );

    // The root filesystems mounted for the copies are gone again.
    for id in [&id, &reader] {
        wait_for(
            || {
                !std::fs::read_to_string("/proc/self/mountinfo")
                    .unwrap()
                    .contains(id.as_str())
            },
            "the rootfs to be unmounted",
        );
    }
}

#[test]
fn cp_resolves_container_symlinks_inside_the_container() {
    let Some(d) = daemon_with_busybox("cp-symlinks") else {
        return;
    };
    // Paths the host has and the container does not: reaching them would be an escape.
    assert!(Path::new("/etc/os-release").exists());
    run_sh(
        &d,
        &["-d", "--name", "sym", "busybox"],
        "echo inside > /etc/marker; ln -s / /escape; ln -s /etc/hostname /hn; \
         ln -s ../../../../../../etc/os-release /rel; touch /ready; sleep 1000",
    );
    wait_for(
        || sh(&d, "sym", "ls /ready 2>/dev/null") == "/ready\n",
        "the links",
    );
    let hostname = sh(&d, "sym", "cat /etc/hostname");
    let host_hostname = std::fs::read_to_string("/etc/hostname").unwrap_or_default();
    assert_ne!(hostname, host_hostname);

    // Through `/escape` (-> /): the container's root, never the host's.
    let tar = cp_out(&d, "sym:/escape/etc/hostname", false).unwrap();
    assert_eq!(
        String::from_utf8_lossy(&find(&tar, "hostname").data),
        hostname
    );
    let tar = cp_out(&d, "sym:/escape/etc/marker", false).unwrap();
    assert_eq!(find(&tar, "marker").data, b"inside\n");
    let err = cp_out(&d, "sym:/escape/etc/os-release", false).unwrap_err();
    assert!(err.contains("Could not find the file"), "{err}");
    let err = cp_out(&d, "sym:/escape/../../../../etc/os-release", false).unwrap_err();
    assert!(err.contains("Could not find the file"), "{err}");

    // A relative link climbing out: as a link it is copied as a link; followed (-L), it
    // ends inside the container, where there is nothing.
    let tar = cp_out(&d, "sym:/rel", false).unwrap();
    assert_eq!(tar.len(), 1, "{:?}", names(&tar));
    assert_eq!(tar[0].kind, tar::EntryType::Symlink);
    assert_eq!(
        tar[0].link.as_deref(),
        Some("../../../../../../etc/os-release")
    );
    assert!(tar[0].data.is_empty());
    let err = cp_out(&d, "sym:/rel", true).unwrap_err();
    assert!(err.contains("Could not find the file"), "{err}");
    // -L follows the link target the stat reports, resolved in the container.
    let tar = cp_out(&d, "sym:/hn", true).unwrap();
    assert_eq!(String::from_utf8_lossy(&tar[0].data), hostname);
}

#[test]
fn put_archives_cannot_write_outside_the_container() {
    let Some(d) = daemon_with_busybox("cp-put-escape") else {
        return;
    };
    run_sh(
        &d,
        &["-d", "--name", "target", "busybox"],
        "mkdir /dst && ln -s /../../../../../../tmp /dst/up && touch /ready; sleep 1000",
    );
    wait_for(
        || sh(&d, "target", "ls /ready 2>/dev/null") == "/ready\n",
        "the link",
    );
    let put = |tar: &[u8]| http_with_body(&d, "PUT", "/containers/target/archive?path=/dst", tar);

    // `..` in a name: refused.
    let dotdot = MustNotExist::new("kapsel-dotdot");
    let name = format!("../../../../../../../../tmp/{}", dotdot.name());
    let (status, text) = put(&raw_tar(&[(&name, tar::EntryType::Regular, "x")]));
    assert_eq!(status, 400, "{text}");
    dotdot.check();

    // A symlink to / in the archive, then a file through it: inside the container.
    let via_archive = MustNotExist::new("kapsel-via-archive-link");
    let name = format!("s/tmp/{}", via_archive.name());
    let (status, text) = put(&raw_tar(&[
        ("s", tar::EntryType::Symlink, "/"),
        (
            &name,
            tar::EntryType::Regular,
            "through the archive's link\n",
        ),
    ]));
    assert_eq!(status, 200, "{text}");
    via_archive.check();
    assert_eq!(
        sh(&d, "target", &format!("cat /tmp/{}", via_archive.name())),
        "through the archive's link\n"
    );

    // The container's own symlink climbing out: inside the container too.
    let via_container = MustNotExist::new("kapsel-via-container-link");
    let name = format!("up/{}", via_container.name());
    let (status, text) = put(&raw_tar(&[(&name, tar::EntryType::Regular, "contained\n")]));
    assert_eq!(status, 200, "{text}");
    via_container.check();
    assert_eq!(
        sh(&d, "target", &format!("cat /tmp/{}", via_container.name())),
        "contained\n"
    );

    // A hard link to a host file: refused, nothing linked.
    let (status, text) = put(&raw_tar(&[(
        "h",
        tar::EntryType::Link,
        "../../../../../../etc/os-release",
    )]));
    assert_eq!(status, 400, "{text}");
    assert_eq!(sh(&d, "target", "ls /dst/h 2>/dev/null; echo end"), "end\n");

    // An absolute name is taken from the extraction directory.
    let absolute = MustNotExist::new("kapsel-absolute");
    let name = format!("/tmp/{}", absolute.name());
    let (status, text) = put(&raw_tar(&[(&name, tar::EntryType::Regular, "abs\n")]));
    assert_eq!(status, 200, "{text}");
    absolute.check();
    assert_eq!(
        sh(&d, "target", &format!("cat /dst/tmp/{}", absolute.name())),
        "abs\n"
    );

    // The engine's bind-mounted /etc/hostname is busy, as in Docker.
    let (status, text) = http_with_body(
        &d,
        "PUT",
        "/containers/target/archive?path=/etc",
        &raw_tar(&[("hostname", tar::EntryType::Regular, "evil\n")]),
    );
    assert_eq!(status, 500, "{text}");
    assert!(text.contains("busy"), "{text}");
    assert_ne!(sh(&d, "target", "cat /etc/hostname"), "evil\n");
    // A missing extraction point is Docker's 404; a file is "not a directory".
    let (status, _) = http_with_body(
        &d,
        "PUT",
        "/containers/target/archive?path=/nope",
        &raw_tar(&[]),
    );
    assert_eq!(status, 404);
    let (status, text) = http_with_body(
        &d,
        "PUT",
        "/containers/target/archive?path=/ready",
        &raw_tar(&[]),
    );
    assert_eq!(status, 400, "{text}");
}

#[test]
fn export_streams_the_whole_filesystem_with_its_metadata() {
    let Some(d) = daemon_with_busybox("export") else {
        return;
    };
    run_sh(
        &d,
        &["--name", "exp", "busybox"],
        "echo written > /written && chown 1234:5678 /written && ln /written /x-hard && \
         mkfifo /fifo && mknod /null2 c 1 3",
    );
    let file = d.dir.join("exp.tar");
    ok(&d, &["export", "exp", "-o", &file.to_string_lossy()]);
    let tar = entries(&std::fs::read(&file).unwrap());

    let busybox = find(&tar, "bin/busybox");
    assert_eq!(busybox.kind, tar::EntryType::Regular);
    assert_eq!(busybox.data, std::fs::read("/bin/busybox").unwrap());
    assert_eq!((busybox.uid, busybox.mode & 0o7777), (0, 0o755));
    assert_eq!(busybox.mtime, 1_700_000_000, "the image's mtime is kept");
    let sh_link = find(&tar, "bin/sh");
    assert_eq!(sh_link.kind, tar::EntryType::Symlink);
    assert_eq!(sh_link.link.as_deref(), Some("/bin/busybox"));
    let written = find(&tar, "written");
    assert_eq!(
        (written.data.as_slice(), written.uid, written.gid),
        (&b"written\n"[..], 1234, 5678)
    );
    // Archived after "written" (names are walked in order): a link to it.
    let hard = find(&tar, "x-hard");
    assert_eq!(
        (hard.kind, hard.link.as_deref()),
        (tar::EntryType::Link, Some("written"))
    );
    assert_eq!(find(&tar, "fifo").kind, tar::EntryType::Fifo);
    let node = find(&tar, "null2");
    assert_eq!(
        (node.kind, node.device),
        (tar::EntryType::Char, Some((1, 3)))
    );
    // The rootfs only: mount points, not the pseudo-filesystems mounted on them.
    assert_eq!(find(&tar, "proc/").kind, tar::EntryType::Directory);
    assert!(!tar
        .iter()
        .any(|e| e.name.starts_with("proc/") && e.name != "proc/"));
    assert!(!tar
        .iter()
        .any(|e| e.name.starts_with("sys/") && e.name != "sys/"));
    assert!(!tar
        .iter()
        .any(|e| e.name.starts_with('/') || e.name.starts_with("./")));

    // A running container exports too, with what it wrote so far.
    run_sh(
        &d,
        &["-d", "--name", "live", "busybox"],
        "echo now > /now; sleep 1000",
    );
    wait_for(
        || sh(&d, "live", "cat /now 2>/dev/null") == "now\n",
        "the write",
    );
    let (code, out, err) = docker_bytes(&d, &["export", "live"], None);
    assert_eq!(code, 0, "{err}");
    let tar = entries(&out);
    assert_eq!(find(&tar, "now").data, b"now\n");
    let err = docker_bytes(&d, &["export", "nope"], None).2;
    assert!(err.contains("No such container: nope"), "{err}");
}

/// The memory limit and pids limit the container sees in its cgroup (v1 or v2 files).
const CGROUP_LIMITS: &str =
    "cat /sys/fs/cgroup/memory/memory.limit_in_bytes /sys/fs/cgroup/memory.max 2>/dev/null; \
     cat /sys/fs/cgroup/pids/pids.max /sys/fs/cgroup/pids.max 2>/dev/null; true";

#[test]
fn update_changes_limits_of_running_and_stopped_containers() {
    let Some(d) = daemon_with_busybox("update") else {
        return;
    };
    run_sleeping(&d, "lim");
    let before = sh(&d, "lim", CGROUP_LIMITS);
    assert!(!before.contains("33554432"), "{before}");
    ok(
        &d,
        &["update", "--memory", "32m", "--pids-limit", "20", "lim"],
    );
    let lines: Vec<String> = sh(&d, "lim", CGROUP_LIMITS)
        .lines()
        .map(String::from)
        .collect();
    assert_eq!(lines, ["33554432", "20"]);
    assert_eq!(
        inspect(
            &d,
            "{{.HostConfig.Memory}} {{.HostConfig.PidsLimit}}",
            "lim"
        ),
        "33554432 20"
    );
    ok(&d, &["update", "--restart", "on-failure:3", "lim"]);
    assert_eq!(
        inspect(
            &d,
            "{{.HostConfig.RestartPolicy.Name}} {{.HostConfig.RestartPolicy.MaximumRetryCount}}",
            "lim"
        ),
        "on-failure 3"
    );
    let (succeeded, out) = d.docker(&["update", "--memory", "1k", "lim"]);
    assert!(!succeeded && out.contains("Minimum memory limit"), "{out}");

    // A stopped container keeps the update for its next start.
    ok(
        &d,
        &[
            "create",
            "--name",
            "later",
            "busybox",
            "sh",
            "-c",
            CGROUP_LIMITS,
        ],
    );
    ok(
        &d,
        &["update", "--memory", "48m", "--pids-limit", "30", "later"],
    );
    let lines: Vec<String> = ok(&d, &["start", "-a", "later"])
        .lines()
        .map(String::from)
        .collect();
    assert_eq!(lines, ["50331648", "30"]);
}

#[test]
fn prune_removes_only_stopped_containers() {
    let Some(d) = daemon_with_busybox("prune") else {
        return;
    };
    run_sleeping(&d, "alive");
    ok(
        &d,
        &[
            "run", "--name", "done-a", "--label", "group=a", "busybox", "true",
        ],
    );
    run_sh(&d, &["--name", "done-b", "busybox"], "echo data > /f");
    ok(&d, &["create", "--name", "fresh", "busybox", "true"]);
    let (a, b) = (
        inspect(&d, "{{.Id}}", "done-a"),
        inspect(&d, "{{.Id}}", "done-b"),
    );
    let all_names = || {
        let mut v: Vec<String> = ok(&d, &["ps", "-a", "--format", "{{.Names}}"])
            .lines()
            .map(String::from)
            .collect();
        v.sort();
        v
    };

    let out = ok(
        &d,
        &["container", "prune", "-f", "--filter", "label=group=a"],
    );
    assert!(out.contains(&a) && !out.contains(&b), "{out}");
    assert_eq!(all_names(), ["alive", "done-b", "fresh"]);

    let out = ok(&d, &["container", "prune", "-f"]);
    assert!(out.contains(&b), "{out}");
    assert!(out.contains("Total reclaimed space"), "{out}");
    assert_eq!(all_names(), ["alive"]);
    assert_eq!(inspect(&d, "{{.State.Status}}", "alive"), "running");
}
