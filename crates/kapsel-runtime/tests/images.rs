//! Containers whose root filesystem comes from an image: loaded into kapsel-image's
//! store, mounted as an overlay of its layers, and run by the runtime under test.

mod common;

use std::fs;
use std::path::{Path, PathBuf};

use kapsel_image::digest::Digest;
use kapsel_image::store::ImageStore;
use serde_json::{json, Value};

/// A docker-archive of a one-layer image named `tag` that runs `cmd`.
fn docker_archive(layer: &[u8], cmd: &[&str], tag: &str) -> Vec<u8> {
    let config = json!({
        "architecture": "amd64",
        "os": "linux",
        "config": {"Cmd": cmd},
        "rootfs": {"type": "layers", "diff_ids": [Digest::of_bytes(layer)]},
    })
    .to_string();
    let manifest = json!([{
        "Config": "config.json",
        "RepoTags": [tag],
        "Layers": ["layer.tar"],
    }])
    .to_string();
    let mut archive = tar::Builder::new(Vec::new());
    for (name, data) in [
        ("config.json", config.as_bytes()),
        ("layer.tar", layer),
        ("manifest.json", manifest.as_bytes()),
    ] {
        let mut header = tar::Header::new_gnu();
        header.set_size(data.len() as u64);
        header.set_mode(0o644);
        header.set_mtime(0);
        archive.append_data(&mut header, name, data).unwrap();
    }
    archive.into_inner().unwrap()
}

/// The tests' shared busybox rootfs as one layer (symlinks kept as symlinks).
fn busybox_layer() -> Vec<u8> {
    let mut layer = tar::Builder::new(Vec::new());
    layer.follow_symlinks(false);
    layer.append_dir_all(".", common::shared_rootfs()).unwrap();
    layer.into_inner().unwrap()
}

/// An image store under the test's directory holding the one image of `archive`.
fn store_with(t: &common::Test, archive: &[u8]) -> ImageStore {
    let store = ImageStore::open(t.dir.join("images")).unwrap();
    store.load(archive).unwrap();
    store
}

/// The test's default config, rooted (writable) at `rootfs`.
fn spec_on(t: &common::Test, id: &str, args: &[&str], rootfs: &Path) -> Value {
    let mut cfg = t.spec(id, args);
    cfg["root"] = json!({"path": rootfs, "readonly": false});
    cfg
}

/// Mount points on the host below `dir`.
fn mounts_below(dir: &Path) -> Vec<PathBuf> {
    let mountinfo = fs::read_to_string("/proc/self/mountinfo").unwrap();
    common::parse_mountinfo(&mountinfo)
        .into_iter()
        .map(|m| PathBuf::from(m.mount_point))
        .filter(|mp| mp.starts_with(dir))
        .collect()
}

#[test]
fn hello_world_runs_from_its_image() {
    let t = test_env!();
    let archive = docker_archive(
        &kapsel_image::hello::layer(),
        &["/hello"],
        "hello-world:latest",
    );
    let store = store_with(&t, &archive);
    let id = t.id();
    let rootfs = store.prepare_rootfs("hello-world", &id).unwrap();

    let out = t
        .run(&id, &spec_on(&t, &id, &["/hello"], &rootfs))
        .ok("run hello-world");
    assert_eq!(out.stdout, kapsel_image::hello::GREETING);

    store.release_rootfs(&id).unwrap();
    let left = mounts_below(&t.dir.join("images"));
    assert!(left.is_empty(), "still mounted: {left:?}");
}

#[test]
fn busybox_runs_through_the_overlay_and_writes_to_its_upper_dir() {
    let t = test_env!();
    let store = store_with(
        &t,
        &docker_archive(&busybox_layer(), &["/bin/sh"], "busybox"),
    );
    let id = t.id();
    let rootfs = store.prepare_rootfs("busybox", &id).unwrap();

    let script = "echo hi; cat /etc/passwd | head -1; echo kept > /root/written";
    let out = t
        .run(&id, &spec_on(&t, &id, &["sh", "-c", script], &rootfs))
        .ok("run busybox");
    assert_eq!(out.stdout, "hi\nroot:x:0:0:root:/root:/bin/sh\n");

    // The write is the container's: in its upper dir, not in the shared layer.
    let upper = rootfs.with_file_name("upper");
    assert_eq!(
        fs::read_to_string(upper.join("root/written")).unwrap(),
        "kept\n"
    );
    let layers = t.dir.join("images/snapshots/layers");
    for layer in fs::read_dir(&layers).unwrap() {
        let layer = layer.unwrap().path();
        assert!(layer.join("bin/busybox").is_file(), "{}", layer.display());
        assert!(!layer.join("root/written").exists(), "{}", layer.display());
    }

    store.release_rootfs(&id).unwrap();
    let left = mounts_below(&t.dir.join("images"));
    assert!(left.is_empty(), "still mounted: {left:?}");
    assert!(!upper.exists(), "the container's writes go with it");
}
