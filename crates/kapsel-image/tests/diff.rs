//! A container's changes through a real overlayfs mount (root): `docker diff`'s list, the
//! layer `docker commit` writes of them, and that layer unpacked and stacked again giving
//! the container's view back (whiteouts, opaque directories, hard links, symlinks,
//! security.capability and user xattrs, fifos, device nodes, owners, modes, mtimes).
//! Then the store's commit, import, history, disk usage and prune.

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::io::Read;
use std::os::unix::fs::{symlink, FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use common::TempDir;
use kapsel_image::commit::{CommitOptions, ImportOptions};
use kapsel_image::diff::{Change, ChangeKind, DiffOptions, Scan};
use kapsel_image::digest::Digest;
use kapsel_image::reference::Reference;
use kapsel_image::snapshot::{chain_ids, Snapshots};
use kapsel_image::store::{ImageStore, RemoveEvent};
use kapsel_image::ImageError;
use nix::sys::stat::{makedev, mknod, Mode, SFlag};
use serde_json::json;

const IMAGE: &str = "diffbase:latest";

/// A file capability blob (VFS_CAP_REVISION_2, effective) granting cap_net_raw.
const CAP_NET_RAW: [u8; 20] = [
    0x01, 0x00, 0x00, 0x02, 0x00, 0x20, 0x00, 0x00, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
];

/// Tar building for the test image: entries with optional PAX xattrs.
struct Layer(tar::Builder<Vec<u8>>);

impl Layer {
    fn new() -> Self {
        Layer(tar::Builder::new(Vec::new()))
    }

    fn entry(
        &mut self,
        name: &str,
        kind: tar::EntryType,
        mode: u32,
        data: &[u8],
        link: Option<&str>,
        xattrs: &[(&str, &[u8])],
    ) -> &mut Self {
        if !xattrs.is_empty() {
            let mut records = Vec::new();
            for (k, v) in xattrs {
                let rest = format!(" SCHILY.xattr.{k}=").len() + v.len() + 1;
                let mut len = rest + 1;
                while len != rest + len.to_string().len() {
                    len = rest + len.to_string().len();
                }
                records.extend_from_slice(format!("{len} SCHILY.xattr.{k}=").as_bytes());
                records.extend_from_slice(v);
                records.push(b'\n');
            }
            let mut h = tar::Header::new_ustar();
            h.set_entry_type(tar::EntryType::XHeader);
            h.set_size(records.len() as u64);
            h.set_mode(0o644);
            self.0
                .append_data(&mut h, "PaxHeaders/x", records.as_slice())
                .unwrap();
        }
        let mut h = tar::Header::new_ustar();
        h.set_entry_type(kind);
        h.set_mode(mode);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(1_600_000_000);
        h.set_size(data.len() as u64);
        match link {
            Some(target) => self.0.append_link(&mut h, name, target).unwrap(),
            None => self.0.append_data(&mut h, name, data).unwrap(),
        }
        self
    }

    fn dir(&mut self, name: &str) -> &mut Self {
        self.entry(name, tar::EntryType::Directory, 0o755, b"", None, &[])
    }

    fn file(&mut self, name: &str, data: &[u8]) -> &mut Self {
        self.entry(name, tar::EntryType::Regular, 0o644, data, None, &[])
    }

    fn finish(&mut self) -> Vec<u8> {
        std::mem::replace(&mut self.0, tar::Builder::new(Vec::new()))
            .into_inner()
            .unwrap()
    }
}

/// Two layers: a base, and one that deletes `old.txt`, adds `app/` and changes a file.
fn image_layers() -> [Vec<u8>; 2] {
    let bottom = Layer::new()
        .dir("bin/")
        .entry(
            "bin/ping",
            tar::EntryType::Regular,
            0o755,
            b"ping",
            None,
            &[("security.capability", &CAP_NET_RAW)],
        )
        .dir("etc/")
        .file("etc/passwd", b"root:x:0:0::/root:/bin/sh\n")
        .file("etc/group", b"root:x:0:\n")
        .file("etc/keep", b"keep\n")
        .dir("data/")
        .file("data/a", b"a")
        .file("data/b", b"b")
        .dir("data/sub/")
        .file("data/sub/c", b"c")
        .dir("del/")
        .file("del/x", b"x")
        .file("gone.txt", b"gone")
        .file("old.txt", b"old")
        .entry(
            "lnk",
            tar::EntryType::Symlink,
            0o777,
            b"",
            Some("etc/passwd"),
            &[],
        )
        .finish();
    let top = Layer::new()
        .file(".wh.old.txt", b"")
        .dir("app/")
        .entry(
            "app/run.sh",
            tar::EntryType::Regular,
            0o755,
            b"#!/bin/sh\n",
            None,
            &[],
        )
        .dir("etc/")
        .file("etc/group", b"root:x:0:\nstaff:x:50:\n")
        .finish();
    [bottom, top]
}

fn archive() -> Vec<u8> {
    let [bottom, top] = image_layers();
    let config = json!({
        "architecture": "amd64", "os": "linux",
        "config": {"Cmd": ["/bin/sh"], "Env": ["PATH=/bin"]},
        "rootfs": {"type": "layers", "diff_ids": [Digest::of_bytes(&bottom), Digest::of_bytes(&top)]},
    })
    .to_string();
    let manifest =
        json!([{"Config": "config.json", "RepoTags": [IMAGE], "Layers": ["b.tar", "t.tar"]}])
            .to_string();
    let mut out = Layer::new();
    out.file("config.json", config.as_bytes())
        .file("b.tar", &bottom)
        .file("t.tar", &top)
        .file("manifest.json", manifest.as_bytes());
    out.finish()
}

/// Container root filesystems released (unmounted and removed) even when a test fails.
struct Containers<'a> {
    store: &'a ImageStore,
    ids: Vec<String>,
}

impl<'a> Containers<'a> {
    fn new(store: &'a ImageStore) -> Self {
        Containers {
            store,
            ids: Vec::new(),
        }
    }

    fn mount(&mut self, image: &str, id: &str) -> PathBuf {
        if !self.ids.iter().any(|i| i == id) {
            self.ids.push(id.to_string());
        }
        self.store.prepare_rootfs(image, id).unwrap()
    }
}

impl Drop for Containers<'_> {
    fn drop(&mut self) {
        for id in &self.ids {
            let _ = self.store.release_rootfs(id);
        }
    }
}

/// What the container does to its filesystem: every kind of change.
fn make_changes(root: &Path) {
    let w = |p: &str, data: &str| fs::write(root.join(p), data).unwrap();
    w(
        "etc/passwd",
        "root:x:0:0::/root:/bin/sh\nnew:x:1:1::/:/bin/false\n",
    );
    w("new.txt", "new");
    xattr::set(root.join("new.txt"), "user.test", b"hello").unwrap();
    nix::unistd::chown(
        &root.join("new.txt"),
        Some(nix::unistd::Uid::from_raw(1000)),
        Some(nix::unistd::Gid::from_raw(1001)),
    )
    .unwrap();
    let when = nix::sys::time::TimeSpec::new(1_234_567_890, 0);
    nix::sys::stat::utimensat(
        nix::fcntl::AT_FDCWD,
        &root.join("new.txt"),
        &when,
        &when,
        nix::sys::stat::UtimensatFlags::NoFollowSymlink,
    )
    .unwrap();
    fs::create_dir(root.join("newdir")).unwrap();
    w("newdir/inner.txt", "inner");
    fs::remove_file(root.join("gone.txt")).unwrap();
    fs::remove_dir_all(root.join("del")).unwrap();
    fs::remove_dir_all(root.join("data")).unwrap();
    fs::create_dir(root.join("data")).unwrap();
    w("data/fresh", "fresh");
    fs::set_permissions(root.join("etc/keep"), fs::Permissions::from_mode(0o600)).unwrap();
    w("hl_a", "linked");
    fs::hard_link(root.join("hl_a"), root.join("hl_b")).unwrap();
    symlink("/etc/passwd", root.join("newlink")).unwrap();
    w("bin/newcap", "cap");
    xattr::set(root.join("bin/newcap"), "security.capability", &CAP_NET_RAW).unwrap();
    nix::unistd::mkfifo(&root.join("fifo"), Mode::from_bits_truncate(0o640)).unwrap();
    fs::create_dir(root.join("nodes")).unwrap();
    mknod(
        &root.join("nodes/null"),
        SFlag::S_IFCHR,
        Mode::from_bits_truncate(0o666),
        makedev(1, 3),
    )
    .unwrap();
    // What the runtime creates to mount on: left out of changes and layer.
    w("etc/hostname", "");
    fs::create_dir(root.join("proc")).unwrap();
}

fn change(kind: char, path: &str) -> Change {
    Change {
        path: path.to_string(),
        kind: match kind {
            'A' => ChangeKind::Added,
            'C' => ChangeKind::Modified,
            _ => ChangeKind::Deleted,
        },
    }
}

/// Everything observable about a tree, by relative path (not following symlinks).
fn describe(root: &Path) -> BTreeMap<PathBuf, String> {
    let mut out = BTreeMap::new();
    let mut inodes: BTreeMap<u64, PathBuf> = BTreeMap::new();
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        for entry in fs::read_dir(root.join(&rel)).unwrap() {
            let entry = entry.unwrap();
            let rel = rel.join(entry.file_name());
            let path = root.join(&rel);
            let m = fs::symlink_metadata(&path).unwrap();
            let t = m.file_type();
            let mut xattrs: Vec<String> = xattr::list(&path)
                .unwrap()
                .filter(|k| !k.to_string_lossy().starts_with("trusted.overlay."))
                .map(|k| {
                    let v = xattr::get(&path, &k).unwrap().unwrap_or_default();
                    format!("{}={}", k.to_string_lossy(), hex(&v))
                })
                .collect();
            xattrs.sort();
            let content = if t.is_file() {
                format!(
                    "data={}",
                    String::from_utf8_lossy(&fs::read(&path).unwrap())
                )
            } else if t.is_symlink() {
                format!("target={}", fs::read_link(&path).unwrap().display())
            } else if t.is_char_device() || t.is_block_device() {
                format!("rdev={}", m.rdev())
            } else {
                String::new()
            };
            let link = if !t.is_dir() && m.nlink() > 1 {
                let first = inodes.entry(m.ino()).or_insert_with(|| rel.clone());
                format!(" links-with={}", first.display())
            } else {
                String::new()
            };
            let mtime = if t.is_dir() {
                String::new()
            } else {
                format!(" mtime={}", m.mtime())
            };
            out.insert(
                rel.clone(),
                format!(
                    "mode={:o} owner={}:{}{mtime} {content} xattrs=[{}]{link}",
                    m.mode(),
                    m.uid(),
                    m.gid(),
                    xattrs.join(",")
                ),
            );
            if t.is_dir() {
                stack.push(rel);
            }
        }
    }
    out
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The entries of a tar: (name, type, link name, PAX xattrs).
fn tar_entries(tar: &[u8]) -> Vec<(String, tar::EntryType, String, Vec<String>)> {
    let mut archive = tar::Archive::new(tar);
    archive
        .entries()
        .unwrap()
        .map(|e| {
            let mut e = e.unwrap();
            let name = e.path().unwrap().display().to_string();
            let kind = e.header().entry_type();
            let link = e
                .link_name()
                .unwrap()
                .map(|l| l.display().to_string())
                .unwrap_or_default();
            let xattrs = e
                .pax_extensions()
                .unwrap()
                .into_iter()
                .flatten()
                .map(|x| x.unwrap().key().unwrap().to_string())
                .filter(|k| k.starts_with("SCHILY.xattr."))
                .collect();
            (name, kind, link, xattrs)
        })
        .collect()
}

fn lowers(store_root: &Path, diff_ids: &[Digest]) -> Vec<PathBuf> {
    let snaps = Snapshots::new(store_root.join("snapshots"));
    chain_ids(diff_ids)
        .iter()
        .rev()
        .map(|c| snaps.layer_dir(c))
        .collect()
}

fn diff_ids_of(store: &ImageStore, image: &str) -> Vec<Digest> {
    let (_, config) = store.config(image).unwrap();
    serde_json::from_value(config["rootfs"]["diff_ids"].clone()).unwrap()
}

/// A store in a new temporary directory, with the test image loaded; returns the
/// directory (removed on drop), the store's data root and the store.
fn store_with_image(name: &str) -> (TempDir, PathBuf, ImageStore) {
    let dir = TempDir::new(name);
    let data = dir.path().join("data");
    let store = ImageStore::open(&data).unwrap();
    store.load(archive().as_slice()).unwrap();
    (dir, data, store)
}

/// The scan of container `id`'s upper directory over the test image's layers.
fn scan_container(store: &ImageStore, data: &Path, id: &str) -> Scan {
    let upper = Snapshots::new(data.join("snapshots")).upper_dir(id);
    Scan::new(
        &upper,
        &lowers(data, &diff_ids_of(store, IMAGE)),
        &DiffOptions::default(),
    )
    .unwrap()
}

#[test]
fn changes_commit_and_come_back_through_a_layer() {
    let (_dir, data, store) = store_with_image("diff-roundtrip");
    let base = store.resolve(IMAGE).unwrap();
    let mut containers = Containers::new(&store);
    let root = containers.mount(IMAGE, "c1");
    make_changes(&root);
    store.unmount_rootfs("c1").unwrap();

    let changes = store
        .container_changes(&base.id.to_string(), "c1", &DiffOptions::default())
        .unwrap();
    let expected = vec![
        change('C', "/bin"),
        change('A', "/bin/newcap"),
        change('C', "/data"),
        change('D', "/data/a"),
        change('D', "/data/b"),
        change('A', "/data/fresh"),
        change('D', "/data/sub"),
        change('D', "/del"),
        change('C', "/etc"),
        change('C', "/etc/keep"),
        change('C', "/etc/passwd"),
        change('A', "/fifo"),
        change('D', "/gone.txt"),
        change('A', "/hl_a"),
        change('A', "/hl_b"),
        change('A', "/new.txt"),
        change('A', "/newdir"),
        change('A', "/newdir/inner.txt"),
        change('A', "/newlink"),
        change('A', "/nodes"),
        change('A', "/nodes/null"),
    ];
    assert_eq!(changes, expected);

    // The layer: OCI whiteouts, the opaque marker, a hard link, xattrs; no mount points.
    let scan = scan_container(&store, &data, "c1");
    let mut layer = Vec::new();
    scan.write_layer(&mut layer).unwrap();
    let mut again = Vec::new();
    scan.write_layer(&mut again).unwrap();
    assert_eq!(
        layer, again,
        "the same upper directory gives the same layer"
    );
    let entries = tar_entries(&layer);
    let names: Vec<&str> = entries.iter().map(|e| e.0.as_str()).collect();
    for wanted in [
        ".wh.gone.txt",
        ".wh.del",
        "data/",
        "data/.wh..wh..opq",
        "data/fresh",
        "etc/keep",
        "etc/passwd",
        "hl_a",
        "hl_b",
        "newlink",
        "nodes/null",
        "fifo",
    ] {
        assert!(names.contains(&wanted), "{wanted} missing from {names:?}");
    }
    for unwanted in ["etc/hostname", "proc/", "data/a", ".wh.proc"] {
        assert!(!names.contains(&unwanted), "{unwanted} in {names:?}");
    }
    let find = |name: &str| entries.iter().find(|e| e.0 == name).unwrap();
    assert_eq!(find("hl_b").1, tar::EntryType::Link);
    assert_eq!(find("hl_b").2, "hl_a");
    assert_eq!(find("newlink").2, "/etc/passwd");
    assert_eq!(find("nodes/null").1, tar::EntryType::Char);
    assert_eq!(find("fifo").1, tar::EntryType::Fifo);
    assert_eq!(find("bin/newcap").3, ["SCHILY.xattr.security.capability"]);
    assert_eq!(find("new.txt").3, ["SCHILY.xattr.user.test"]);
    assert!(
        entries
            .iter()
            .all(|e| e.3.iter().all(|k| !k.contains("overlay"))),
        "overlayfs's own xattrs stay out: {entries:?}"
    );

    // Committed, the image runs with the container's view.
    let committed = store
        .commit(&CommitOptions {
            container_id: "c1".into(),
            image: base.id.to_string(),
            config: json!({"Cmd": ["cat", "/new.txt"]})
                .as_object()
                .cloned()
                .unwrap(),
            author: "tester".into(),
            comment: "all kinds of changes".into(),
            created_by: "sh -c make-changes".into(),
            tags: vec![Reference::parse("committed:1").unwrap()],
            diff: DiffOptions::default(),
        })
        .unwrap();
    let (record, config) = store.config("committed:1").unwrap();
    assert_eq!(record.id, committed);
    let diff_ids = diff_ids_of(&store, "committed:1");
    assert_eq!(diff_ids.len(), 3);
    assert_eq!(diff_ids[..2], diff_ids_of(&store, IMAGE)[..]);
    assert_eq!(
        diff_ids[2],
        Digest::of_bytes(&layer),
        "the layer written is the one stored"
    );
    assert_eq!(config["config"]["Cmd"], json!(["cat", "/new.txt"]));
    assert_eq!(config["author"], "tester");
    let history = config["history"].as_array().unwrap();
    assert_eq!(history.len(), 3, "one entry per layer: {history:?}");
    assert_eq!(history[2]["created_by"], "sh -c make-changes");
    assert_eq!(history[2]["comment"], "all kinds of changes");

    let original = containers.mount(IMAGE, "c1");
    let mut before = describe(&original);
    before.remove(Path::new("etc/hostname"));
    before.remove(Path::new("proc"));
    let copy = containers.mount("committed:1", "c2");
    let after = describe(&copy);
    assert_eq!(
        before, after,
        "the committed image shows the container's files"
    );
    assert_eq!(
        fs::metadata(copy.join("hl_a")).unwrap().ino(),
        fs::metadata(copy.join("hl_b")).unwrap().ino()
    );
    assert!(!copy.join("gone.txt").exists() && !copy.join("del").exists());
    assert!(!copy.join("data/a").exists() && copy.join("data/fresh").exists());
    store.unmount_rootfs("c2").unwrap();
    assert!(
        store
            .container_changes("committed:1", "c2", &DiffOptions::default())
            .unwrap()
            .is_empty(),
        "a fresh container of the image has no changes"
    );

    // History: the commit and its parent are known, the layers below are not.
    let items = store.history("committed:1").unwrap();
    assert_eq!(items.len(), 3);
    assert_eq!(items[0].id.as_ref(), Some(&committed));
    assert_eq!(items[0].tags, ["committed:1"]);
    assert_eq!(items[0].created_by, "sh -c make-changes");
    assert_eq!(items[0].size, layer.len() as u64);
    assert_eq!(items[1].id.as_ref(), Some(&base.id));
    assert_eq!(items[1].tags, [IMAGE]);
    assert_eq!(items[2].id, None);
    assert!(items.iter().all(|i| i.size > 0));
}

#[test]
fn nothing_changed_gives_an_empty_layer_and_no_new_layer() {
    let (_dir, data, store) = store_with_image("diff-empty");
    let mut containers = Containers::new(&store);
    let root = containers.mount(IMAGE, "c1");
    // Only what the runtime creates to mount on.
    fs::write(root.join("etc/hostname"), "").unwrap();
    fs::write(root.join("etc/resolv.conf"), "").unwrap();
    fs::create_dir_all(root.join("dev/pts")).unwrap();
    store.unmount_rootfs("c1").unwrap();
    assert!(store
        .container_changes(IMAGE, "c1", &DiffOptions::default())
        .unwrap()
        .is_empty());
    let scan = scan_container(&store, &data, "c1");
    assert!(scan.is_empty());
    let mut layer = Vec::new();
    assert_eq!(scan.write_layer(&mut layer).unwrap(), 0);
    assert_eq!(layer, vec![0u8; 1024], "an empty tar");

    let id = store
        .commit(&CommitOptions {
            container_id: "c1".into(),
            image: IMAGE.into(),
            created_by: "true".into(),
            ..CommitOptions::default()
        })
        .unwrap();
    let (_, config) = store.config(&id.to_string()).unwrap();
    assert_eq!(config["rootfs"]["diff_ids"].as_array().unwrap().len(), 2);
    let history = config["history"].as_array().unwrap();
    assert_eq!(history.last().unwrap()["empty_layer"], json!(true));
    assert!(store.resolve(&id.to_string()).unwrap().is_dangling());
    // A container never started has no upper directory: no changes either.
    assert!(store
        .container_changes(IMAGE, "never-started", &DiffOptions::default())
        .unwrap()
        .is_empty());
}

#[test]
fn a_directory_swapped_for_a_symlink_after_the_scan_is_not_followed() {
    let dir = TempDir::new("diff-swap");
    let upper = dir.path().join("upper");
    let outside = dir.path().join("outside");
    fs::create_dir_all(upper.join("a")).unwrap();
    fs::write(upper.join("a/secret"), "container data").unwrap();
    fs::create_dir_all(&outside).unwrap();
    fs::write(outside.join("secret"), "HOST SECRET!!!").unwrap();
    let scan = Scan::new(&upper, &[], &DiffOptions::default()).unwrap();
    assert_eq!(
        scan.changes(),
        [change('A', "/a"), change('A', "/a/secret")]
    );
    // The container swaps the directory for a symlink to the host between scan and read.
    fs::remove_dir_all(upper.join("a")).unwrap();
    symlink(&outside, upper.join("a")).unwrap();
    let mut layer = Vec::new();
    let err = scan.write_layer(&mut layer).unwrap_err();
    assert!(
        matches!(err, ImageError::ContainerFileChanged { .. }),
        "{err}"
    );
    let text = String::from_utf8_lossy(&layer);
    assert!(
        !text.contains("HOST SECRET"),
        "host data leaked into the layer"
    );
}

#[test]
fn import_history_disk_usage_and_prune() {
    let (_dir, data, store) = store_with_image("diff-import");

    // A gzip'd root filesystem tarball, as `docker import` gets it.
    let rootfs = Layer::new()
        .dir("./")
        .dir("./etc/")
        .file("./etc/motd", b"imported\n")
        .finish();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(&mut gz, &rootfs).unwrap();
    let gz = gz.finish().unwrap();
    let mut config = serde_json::Map::new();
    config.insert("Cmd".into(), json!(["cat", "/etc/motd"]));
    let imported = store
        .import(
            gz.as_slice(),
            &ImportOptions {
                config,
                comment: "Imported from -".into(),
                tags: vec![Reference::parse("imported:1").unwrap()],
            },
        )
        .unwrap();
    let (_, config) = store.config("imported:1").unwrap();
    assert_eq!(
        config["rootfs"]["diff_ids"],
        json!([Digest::of_bytes(&rootfs)])
    );
    assert_eq!(config["comment"], "Imported from -");
    assert_eq!(config["config"]["Cmd"], json!(["cat", "/etc/motd"]));
    let history = store.history("imported:1").unwrap();
    assert_eq!(history.len(), 1);
    assert_eq!(history[0].id.as_ref(), Some(&imported));
    assert_eq!(history[0].comment, "Imported from -");
    assert_eq!(history[0].size, rootfs.len() as u64);
    assert!(history[0].created > 1_700_000_000);
    {
        let mut containers = Containers::new(&store);
        let root = containers.mount("imported:1", "i1");
        assert_eq!(
            fs::read_to_string(root.join("etc/motd")).unwrap(),
            "imported\n"
        );
    }
    // Not a tar at all: refused, and nothing kept.
    let blobs_before = fs::read_dir(data.join("content/blobs/sha256"))
        .unwrap()
        .count();
    let err = store
        .import(
            &b"this is not a tarball, it is a sentence long enough to be read as one"[..],
            &ImportOptions::default(),
        )
        .unwrap_err();
    assert!(!err.to_string().is_empty());
    assert_eq!(
        fs::read_dir(data.join("content/blobs/sha256"))
            .unwrap()
            .count(),
        blobs_before
    );

    // A commit of nothing on top of the base shares its layers.
    let mut containers = Containers::new(&store);
    let root = containers.mount(IMAGE, "c1");
    fs::write(root.join("big"), vec![7u8; 100_000]).unwrap();
    store.unmount_rootfs("c1").unwrap();
    assert!(store.container_rw_size("c1").unwrap() >= 100_000);
    let child = store
        .commit(&CommitOptions {
            container_id: "c1".into(),
            image: IMAGE.into(),
            tags: vec![Reference::parse("child:1").unwrap()],
            ..CommitOptions::default()
        })
        .unwrap();
    drop(containers);
    let usage = store.disk_usage().unwrap();
    assert_eq!(usage.images.len(), 3);
    let of = |id: &Digest| usage.images.iter().find(|i| i.record.id == *id).unwrap();
    let base = store.resolve(IMAGE).unwrap();
    assert_eq!(of(&base.id).size, base.size);
    assert_eq!(
        of(&base.id).shared_size,
        base.size,
        "all its layers are the child's too"
    );
    assert!(of(&child).size > base.size + 100_000);
    assert_eq!(of(&child).shared_size, base.size);
    assert_eq!(of(&imported).shared_size, 0);
    assert_eq!(
        usage.layers_size,
        of(&child).size + of(&imported).size,
        "each layer counted once"
    );

    // Prune everything but the base: tags go, then images, then their data.
    let report = store.prune(|record, _| record.id != base.id).unwrap();
    let mut events = report.events.clone();
    events.sort_by_key(|e| format!("{e:?}"));
    let mut expected = vec![
        RemoveEvent::Untagged("child:1".into()),
        RemoveEvent::Deleted(child.clone()),
        RemoveEvent::Untagged("imported:1".into()),
        RemoveEvent::Deleted(imported.clone()),
    ];
    expected.sort_by_key(|e| format!("{e:?}"));
    assert_eq!(events, expected);
    assert!(report.reclaimed > 100_000, "{report:?}");
    assert!(store.resolve("child:1").is_err() && store.resolve("imported:1").is_err());
    assert!(store.resolve(IMAGE).is_ok());
    let snaps = Snapshots::new(data.join("snapshots"));
    assert!(
        !snaps.has_layer(&Digest::of_bytes(&rootfs)),
        "the imported layer's snapshot is gone"
    );
    // What is left is exactly what the base needs: garbage collection finds nothing.
    assert_eq!(store.gc().unwrap(), 0);
    let mut containers = Containers::new(&store);
    let root = containers.mount(IMAGE, "c3");
    let mut text = String::new();
    fs::File::open(root.join("etc/group"))
        .unwrap()
        .read_to_string(&mut text)
        .unwrap();
    assert!(text.contains("staff"), "the base still runs: {text}");
}

#[test]
fn garbage_left_by_a_crash_is_collected() {
    let (_dir, data, store) = store_with_image("diff-gc");
    // A commit killed after writing its layer blob, before recording the image.
    let stray = kapsel_image::content::ContentStore::open(data.join("content"))
        .unwrap()
        .write_blob(None, &b"a layer no image references"[..])
        .unwrap()
        .0;
    let stray_dir = Snapshots::new(data.join("snapshots")).layer_dir(&stray);
    fs::create_dir_all(stray_dir.join("etc")).unwrap();
    assert!(store.gc().unwrap() > 0);
    assert!(!data.join("content/blobs/sha256").join(stray.hex()).exists());
    assert!(!stray_dir.exists());
    assert!(store.resolve(IMAGE).is_ok());
    assert_eq!(store.gc().unwrap(), 0);
}

#[test]
fn import_takes_plain_gzip_and_zstd_tarballs_as_the_same_layer() {
    let dir = TempDir::new("diff-import-formats");
    let store = ImageStore::open(dir.path().join("data")).unwrap();
    let rootfs = Layer::new()
        .dir("etc/")
        .file("etc/motd", b"any compression\n")
        .finish();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(&mut gz, &rootfs).unwrap();
    let gz = gz.finish().unwrap();
    let zst = zstd::encode_all(rootfs.as_slice(), 3).unwrap();
    let mut ids = Vec::new();
    for (tag, input) in [("plain:1", &rootfs), ("gzip:1", &gz), ("zstd:1", &zst)] {
        let options = ImportOptions {
            tags: vec![Reference::parse(tag).unwrap()],
            ..ImportOptions::default()
        };
        ids.push(store.import(input.as_slice(), &options).unwrap());
        assert_eq!(
            diff_ids_of(&store, tag),
            [Digest::of_bytes(&rootfs)],
            "{tag}: the layer is the uncompressed tar"
        );
    }
    let mut containers = Containers::new(&store);
    let root = containers.mount("zstd:1", "z1");
    assert_eq!(
        fs::read_to_string(root.join("etc/motd")).unwrap(),
        "any compression\n"
    );
    // xz is refused with a clear error.
    let xz_magic = [0xfd, b'7', b'z', b'X', b'Z', 0x00, 0, 0];
    let err = store
        .import(&xz_magic[..], &ImportOptions::default())
        .unwrap_err();
    assert!(err.to_string().contains("xz"), "{err}");
}
