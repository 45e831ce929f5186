//! A container's root filesystem from a loaded image: layers unpacked on demand, stacked
//! with overlayfs (real mounts, so root).

mod common;

use std::fs;
use std::path::Path;

use common::{tree, TempDir};
use kapsel_image::digest::Digest;
use kapsel_image::store::ImageStore;
use serde_json::json;

const IMAGE: &str = "whiteouts:latest";

/// One tar entry: a directory (name ends in `/`) or a file with its data.
fn append(tar: &mut tar::Builder<Vec<u8>>, name: &str, data: &[u8]) {
    let mut header = tar::Header::new_gnu();
    if name.ends_with('/') {
        header.set_entry_type(tar::EntryType::Directory);
        header.set_mode(0o755);
    } else {
        header.set_entry_type(tar::EntryType::Regular);
        header.set_mode(0o644);
    }
    header.set_size(data.len() as u64);
    header.set_uid(0);
    header.set_gid(0);
    header.set_mtime(0);
    tar.append_data(&mut header, name, data).unwrap();
}

fn layer_tar(entries: &[(&str, &[u8])]) -> Vec<u8> {
    let mut tar = tar::Builder::new(Vec::new());
    for (name, data) in entries {
        append(&mut tar, name, data);
    }
    tar.into_inner().unwrap()
}

/// The image's two layers: the top one deletes a file of the bottom one and replaces a
/// directory's contents (an opaque whiteout).
fn layers() -> [Vec<u8>; 2] {
    let bottom = layer_tar(&[
        ("base", b"ID=kapsel-test\n"),
        ("gone", b"deleted by the top layer\n"),
        ("d/", b""),
        ("d/old", b"hidden by the opaque dir\n"),
    ]);
    let top = layer_tar(&[
        (".wh.gone", b""),
        ("d/", b""),
        ("d/.wh..wh..opq", b""),
        ("d/new", b"new\n"),
        ("added", b"added\n"),
    ]);
    [bottom, top]
}

/// A docker-archive of the image.
fn two_layer_archive() -> Vec<u8> {
    let [bottom, top] = layers();
    let config = json!({
        "architecture": "amd64",
        "os": "linux",
        "config": {"Cmd": ["/bin/sh"]},
        "rootfs": {"type": "layers", "diff_ids": [Digest::of_bytes(&bottom), Digest::of_bytes(&top)]},
    })
    .to_string();
    let manifest = json!([{
        "Config": "config.json",
        "RepoTags": [IMAGE],
        "Layers": ["bottom.tar", "top.tar"],
    }])
    .to_string();
    layer_tar(&[
        ("config.json", config.as_bytes()),
        ("bottom.tar", &bottom),
        ("top.tar", &top),
        ("manifest.json", manifest.as_bytes()),
    ])
}

fn loaded_store(dir: &TempDir) -> ImageStore {
    let store = ImageStore::open(dir.path().join("data")).unwrap();
    store.load(two_layer_archive().as_slice()).unwrap();
    store
}

fn is_mounted(path: &Path) -> bool {
    let mounts = fs::read_to_string("/proc/self/mountinfo").unwrap();
    let path = path.display().to_string();
    mounts.lines().any(|l| l.split(' ').nth(4) == Some(&path))
}

#[test]
fn rootfs_applies_whiteouts_and_keeps_writes_per_container() {
    let dir = TempDir::new("store-rootfs");
    let store = loaded_store(&dir);

    let rootfs = store.prepare_rootfs(IMAGE, "c1").unwrap();
    assert!(is_mounted(&rootfs));
    let read = |p: &str| fs::read_to_string(rootfs.join(p)).unwrap();
    assert_eq!(read("base"), "ID=kapsel-test\n");
    assert_eq!(read("added"), "added\n");
    assert_eq!(read("d/new"), "new\n");
    assert!(!rootfs.join("gone").exists(), "a whiteout hides the file");
    assert!(
        !rootfs.join("d/old").exists(),
        "an opaque dir hides its old contents"
    );

    fs::write(rootfs.join("written"), "c1 only").unwrap();
    let other = store.prepare_rootfs(IMAGE, "c2").unwrap();
    assert!(
        !other.join("written").exists(),
        "writes stay in their container"
    );
    assert_eq!(
        fs::read_to_string(other.join("base")).unwrap(),
        "ID=kapsel-test\n"
    );

    store.release_rootfs("c1").unwrap();
    store.release_rootfs("c2").unwrap();
    assert!(!is_mounted(&rootfs) && !is_mounted(&other));
    assert!(!rootfs.exists(), "the container's upper dir is removed");

    // Removing the image takes its layer snapshots with it.
    let layers = dir.path().join("data/snapshots/layers");
    assert_eq!(
        tree(&layers)
            .iter()
            .filter(|p| p.components().count() == 1)
            .count(),
        2
    );
    store.remove(IMAGE, false).unwrap();
    assert!(tree(&layers).is_empty(), "{:?}", tree(&layers));
}

#[test]
fn concurrent_containers_share_layers_unpacked_once() {
    let dir = TempDir::new("store-concurrent");
    let store = loaded_store(&dir);

    let rootfs: Vec<_> = std::thread::scope(|scope| {
        let handles: Vec<_> = ["a", "b"]
            .map(|id| {
                let store = &store;
                scope.spawn(move || store.prepare_rootfs(IMAGE, id).unwrap())
            })
            .into_iter()
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for r in &rootfs {
        assert_eq!(fs::read_to_string(r.join("added")).unwrap(), "added\n");
    }

    // Exactly the two layer directories: no duplicate and no leftover staging dir.
    let layers = dir.path().join("data/snapshots/layers");
    let names: Vec<String> = fs::read_dir(&layers)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(names.len(), 2, "{names:?}");
    assert!(
        names.iter().all(|n| Digest::from_hex(n).is_ok()),
        "{names:?}"
    );

    store.release_rootfs("a").unwrap();
    store.release_rootfs("b").unwrap();
    assert!(rootfs.iter().all(|r| !is_mounted(r)));
}

#[test]
fn a_layer_not_matching_its_diff_id_is_refused_and_not_kept() {
    let dir = TempDir::new("store-corrupt");
    let store = loaded_store(&dir);
    // Corrupt the stored top layer behind the content store's back (it does not re-hash
    // blobs on read): still a valid tar, but not the layer the image config names.
    let top = Digest::of_bytes(&layers()[1]);
    let blob = dir.path().join("data/content/blobs/sha256").join(top.hex());
    fs::write(&blob, layer_tar(&[("evil", b"not this image's layer")])).unwrap();

    let err = store.prepare_rootfs(IMAGE, "c").unwrap_err().to_string();
    assert!(err.contains(&top.to_string()), "names the layer: {err}");
    assert!(err.contains(IMAGE), "names the image: {err}");
    assert!(err.contains("load or pull it again"), "says the fix: {err}");
    let layers = dir.path().join("data/snapshots/layers");
    let names: Vec<_> = fs::read_dir(&layers).unwrap().collect();
    assert_eq!(
        names.len(),
        1,
        "only the good bottom layer stays: {names:?}"
    );
    assert!(!dir.path().join("data/snapshots/containers/c").exists());
}
