//! The image store survives a daemon killed (SIGKILL) in the middle of storing an image:
//! after the restart it is usable, nothing half-stored shows or stays behind, and the
//! same work then completes. Concurrent loads of one archive share its blobs.

mod common;

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::*;

const DATA_LAYERS: usize = 4;
const LAYER_BYTES: usize = 16 << 20;
/// With busybox and big:1 loaded: each one's manifest and config, busybox's layer (which
/// big:1 shares) and big:1's data layers, each once.
const STORED_BLOBS: usize = 2 + 2 + 1 + DATA_LAYERS;
/// How long a stage of a load may take: hashing ~70 MB more than once is slow in a debug
/// build on a busy machine.
const PATIENCE: Duration = Duration::from_secs(180);

/// `big:1`: busybox's layer and [`DATA_LAYERS`] layers of [`LAYER_BYTES`] random
/// (incompressible) bytes each, `/data/N`, ~70 MB in all.
fn big_archive(dir: &Path) -> PathBuf {
    let path = dir.join("big.tar");
    let data_layer = |n: usize| {
        let mut bytes = vec![0u8; LAYER_BYTES];
        std::fs::File::open("/dev/urandom")
            .unwrap()
            .read_exact(&mut bytes)
            .unwrap();
        let mut layer = tar::Builder::new(Vec::new());
        append_file(&mut layer, &format!("data/{n}"), 0o644, &bytes);
        layer.into_inner().unwrap()
    };
    let layers = std::iter::once(busybox_layer()).chain((0..DATA_LAYERS).map(data_layer));
    write_docker_archive(&path, "big:1", layers);
    path
}

fn content(d: &Daemon) -> PathBuf {
    d.dir.join("data/content")
}

/// The files under `dir` (recursively), none if it is missing.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .flatten()
        .flat_map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => files_under(&e.path()),
            _ => vec![e.path()],
        })
        .collect()
}

fn blob_count(d: &Daemon) -> usize {
    files_under(&content(d).join("blobs/sha256")).len()
}

/// After a restart: busybox runs, `big:1` is either absent or complete, and no
/// temporary file of the killed daemon is left in the content store.
#[track_caller]
fn check_store_usable(d: &Daemon) {
    let images = ok(d, &["images", "--format", "{{.Repository}}:{{.Tag}}"]);
    assert!(images.lines().any(|l| l == "busybox:latest"), "{images}");
    assert_eq!(
        ok(d, &["run", "--rm", "busybox", "echo", "alive"]),
        "alive\n"
    );
    if images.lines().any(|l| l == "big:1") {
        check_big_runs(d);
    }
    for leftovers in ["ingest", "archive-staging"] {
        let left = files_under(&content(d).join(leftovers));
        assert!(left.is_empty(), "{leftovers}: {left:?}");
    }
}

#[track_caller]
fn check_big_runs(d: &Daemon) {
    let total = run_sh(d, &["--rm", "big:1"], "cat /data/* | wc -c");
    assert_eq!(total.trim(), (DATA_LAYERS * LAYER_BYTES).to_string());
}

/// `POST /images/load` of `archive` on a raw connection: the first `upto` bytes are
/// sent, then `at_moment` runs (it kills the daemon), then the rest is sent as far as the
/// dead daemon takes it.
fn load_and_kill(d: &mut Daemon, archive: &Path, upto: u64, at_moment: impl FnOnce(&mut Daemon)) {
    let size = std::fs::metadata(archive).unwrap().len();
    let mut conn = std::os::unix::net::UnixStream::connect(d.socket()).unwrap();
    write!(
        conn,
        "POST /v1.47/images/load?quiet=1 HTTP/1.1\r\nHost: docker\r\n\
         Content-Type: application/x-tar\r\nContent-Length: {size}\r\n\r\n"
    )
    .unwrap();
    let mut file = std::fs::File::open(archive).unwrap();
    std::io::copy(&mut (&mut file).take(upto), &mut conn).unwrap();
    // The connection stays open until the kill: a client that hangs up cancels its load.
    let rest = std::thread::spawn(move || {
        let _ = std::io::copy(&mut file, &mut conn);
        conn
    });
    at_moment(d);
    drop(rest.join().unwrap());
}

#[test]
fn a_load_killed_midway_leaves_a_usable_store_and_then_completes() {
    let Some(mut d) = daemon_with_busybox("crash-load") else {
        return;
    };
    let archive = big_archive(&d.dir);
    let size = std::fs::metadata(&archive).unwrap().len();
    let staging = content(&d).join("archive-staging");

    // While the archive streams in: half of it sent and being staged.
    load_and_kill(&mut d, &archive, size / 2, |d| {
        wait_for(
            || !files_under(&staging).is_empty(),
            "the archive to be staged",
        );
        d.crash_and_restart(std::time::Duration::ZERO);
    });
    check_store_usable(&d);
    assert!(!ok(&d, &["images"]).contains("big"));

    // With all of it sent: killed as soon as the first data layer is being stored.
    let before = blob_count(&d);
    load_and_kill(&mut d, &archive, size, |d| {
        wait_for_within(
            PATIENCE,
            || blob_count(d) > before,
            "the first blob to be stored",
        );
        d.crash_and_restart(std::time::Duration::ZERO);
    });
    check_store_usable(&d);

    assert_eq!(
        ok(&d, &["load", "-i", &archive.to_string_lossy()]),
        "Loaded image: big:1\n"
    );
    check_big_runs(&d);
    assert_eq!(blob_count(&d), STORED_BLOBS);
}

#[test]
fn concurrent_loads_of_one_archive_both_succeed_and_store_blobs_once() {
    let Some(d) = daemon_with_busybox("concurrent-load") else {
        return;
    };
    let archive = big_archive(&d.dir);
    let archive = archive.to_string_lossy();
    std::thread::scope(|s| {
        let loads: Vec<_> = (0..2)
            .map(|_| s.spawn(|| docker_full(&d, &["load", "-i", &archive], None)))
            .collect();
        for load in loads {
            let (code, out, err) = load.join().unwrap();
            assert_eq!((code, out.as_str()), (0, "Loaded image: big:1\n"), "{err}");
        }
    });
    assert_eq!(blob_count(&d), STORED_BLOBS);
    check_store_usable(&d);
}

/// `docker commit` of a container with a large change, killed while the layer is being
/// written; then the container is still there and the commit succeeds.
#[test]
fn a_commit_killed_midway_leaves_a_usable_store_and_then_completes() {
    let Some(mut d) = daemon_with_busybox("crash-commit") else {
        return;
    };
    ok(
        &d,
        &[
            "run",
            "--name",
            "changed",
            "busybox",
            "sh",
            "-c",
            "mkdir /data && head -c 67108864 /dev/urandom > /data/0",
        ],
    );
    let ingest = content(&d).join("ingest");
    let mut commit = d
        .docker_command()
        .args(["commit", "changed", "big:1"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    wait_for_within(
        PATIENCE,
        || !files_under(&ingest).is_empty(),
        "the commit to write its layer",
    );
    d.crash_and_restart(std::time::Duration::ZERO);
    let _ = commit.wait();
    check_store_usable(&d);
    assert_eq!(inspect(&d, "{{.State.Status}}", "changed"), "exited");

    ok(&d, &["commit", "changed", "big:1"]);
    let total = run_sh(&d, &["--rm", "big:1"], "cat /data/* | wc -c");
    assert_eq!(total.trim(), "67108864");
}
