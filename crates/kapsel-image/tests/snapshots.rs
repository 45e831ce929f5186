//! A container's rootfs as an overlayfs mount of shared layer snapshots (real mounts, root).

use std::fs;
use std::path::PathBuf;

use kapsel_image::digest::Digest;
use kapsel_image::snapshot::{chain_ids, Snapshots};

struct TempRoot(PathBuf);

impl Drop for TempRoot {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn temp_root(name: &str) -> TempRoot {
    let dir = std::env::temp_dir().join(format!("kapsel-snap-{name}-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    TempRoot(dir)
}

#[test]
fn rootfs_stacks_layers_and_keeps_writes_in_the_container() {
    let root = temp_root("stack");
    let snaps = Snapshots::new(&root.0);
    let chain = chain_ids(&[Digest::of_bytes(b"base"), Digest::of_bytes(b"app")]);
    let (base, app) = (snaps.layer_dir(&chain[0]), snaps.layer_dir(&chain[1]));
    fs::create_dir_all(base.join("etc")).unwrap();
    fs::write(base.join("etc/os"), "base").unwrap();
    fs::write(base.join("etc/shadowed"), "old").unwrap();
    fs::create_dir_all(app.join("etc")).unwrap();
    fs::write(app.join("etc/shadowed"), "new").unwrap();

    let rootfs = snaps.mount_rootfs("c1", &chain).unwrap();
    let read = |p: &str| fs::read_to_string(rootfs.join(p)).unwrap();
    assert_eq!(read("etc/os"), "base");
    assert_eq!(read("etc/shadowed"), "new", "the upper layer must win");
    fs::write(rootfs.join("etc/os"), "changed").unwrap();
    assert_eq!(read("etc/os"), "changed");
    assert_eq!(
        fs::read_to_string(base.join("etc/os")).unwrap(),
        "base",
        "layers stay read-only"
    );

    // A second container over the same layers sees none of the first one's writes.
    let other = snaps.mount_rootfs("c2", &chain).unwrap();
    assert_eq!(fs::read_to_string(other.join("etc/os")).unwrap(), "base");

    snaps.remove_rootfs("c1").unwrap();
    snaps.remove_rootfs("c2").unwrap();
    assert!(!rootfs.exists(), "the container's dirs are removed");
    let mounts = fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(
        !mounts.contains(&root.0.display().to_string()),
        "nothing stays mounted"
    );
    assert!(
        base.join("etc/os").exists(),
        "removing a container keeps the layers"
    );
}

#[test]
fn a_missing_layer_is_an_error_and_mounts_nothing() {
    let root = temp_root("missing");
    let snaps = Snapshots::new(&root.0);
    let chain = chain_ids(&[Digest::of_bytes(b"never unpacked")]);
    let err = snaps.mount_rootfs("c", &chain).unwrap_err().to_string();
    assert!(err.contains("not unpacked"), "{err}");
}
