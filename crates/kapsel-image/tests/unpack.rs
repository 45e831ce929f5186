//! Applying layers onto a real filesystem, as root: hostile archives, limits, atomicity,
//! overlay whiteouts (checked through a real overlayfs mount) and metadata round trips.

mod common;

use std::fs;
use std::io::{self, Cursor, Read, Write};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use common::{tree, TempDir};
use kapsel_image::digest::Digest;
use kapsel_image::unpack::{
    apply_layer, remove_stale_staging, Compression, UnpackOptions, UnpackSummary, WhiteoutMode,
};
use kapsel_image::ImageError;
use nix::fcntl::{Flock, FlockArg};
use tar::{EntryType, Header};

/// Builds tar archives byte by byte, so hostile names the tar crate would refuse to write
/// (`..`, absolute paths) can be made.
struct Tar(tar::Builder<Vec<u8>>);

impl Tar {
    fn new() -> Self {
        Tar(tar::Builder::new(Vec::new()))
    }

    fn entry(
        &mut self,
        path: &str,
        kind: EntryType,
        data: &[u8],
        adjust: impl FnOnce(&mut Header),
    ) -> &mut Self {
        let mut header = Header::new_gnu();
        let name = &mut header.as_old_mut().name;
        name[..path.len()].copy_from_slice(path.as_bytes());
        header.set_entry_type(kind);
        header.set_size(data.len() as u64);
        header.set_mode(if kind == EntryType::Directory {
            0o755
        } else {
            0o644
        });
        header.set_mtime(1_600_000_000);
        header.set_uid(0);
        header.set_gid(0);
        adjust(&mut header);
        header.set_cksum();
        self.0.append(&header, data).unwrap();
        self
    }

    fn file(&mut self, path: &str, data: &[u8]) -> &mut Self {
        self.entry(path, EntryType::Regular, data, |_| {})
    }

    fn dir(&mut self, path: &str) -> &mut Self {
        self.entry(path, EntryType::Directory, b"", |_| {})
    }

    fn link(&mut self, path: &str, kind: EntryType, target: &str) -> &mut Self {
        self.entry(path, kind, b"", |h| {
            h.set_link_name_literal(target).unwrap()
        })
    }

    /// A PAX extended header describing the next entry.
    fn pax(&mut self, records: &[(&str, &[u8])]) -> &mut Self {
        let mut data = Vec::new();
        for (key, value) in records {
            let body_len = key.len() + value.len() + 3; // ' ', '=', '\n'
            let mut len = body_len + 1;
            while len != body_len + len.to_string().len() {
                len = body_len + len.to_string().len();
            }
            write!(data, "{len} {key}=").unwrap();
            data.extend_from_slice(value);
            data.push(b'\n');
        }
        self.entry("pax", EntryType::XHeader, &data, |_| {})
    }

    fn bytes(&mut self) -> Vec<u8> {
        let mut builder = std::mem::replace(&mut self.0, tar::Builder::new(Vec::new()));
        builder.finish().unwrap();
        builder.into_inner().unwrap()
    }
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(data).unwrap();
    encoder.finish().unwrap()
}

fn zstd(data: &[u8]) -> Vec<u8> {
    zstd::encode_all(data, 3).unwrap()
}

fn apply(layer: &[u8], target: &Path) -> kapsel_image::Result<UnpackSummary> {
    apply_layer(layer, target, &UnpackOptions::default())
}

/// A sandbox holding a sentinel file `outside` and the `layers/` dir snapshots go in, so
/// anything written outside a snapshot shows up in its listing.
struct Sandbox {
    dir: TempDir,
}

impl Sandbox {
    fn new() -> Self {
        let dir = TempDir::new("unpack");
        fs::write(dir.path().join("outside"), b"sentinel").unwrap();
        fs::create_dir(dir.path().join("layers")).unwrap();
        Sandbox { dir }
    }

    fn target(&self) -> PathBuf {
        self.dir.path().join("layers/snap")
    }

    fn listing(&self) -> Vec<PathBuf> {
        tree(self.dir.path())
    }
}

const EVIL: &str = "/etc/kapsel-unpack-evil";

#[test]
fn hostile_entries_are_refused_and_nothing_escapes() {
    type Build = fn(&mut Tar);
    let cases: [(&str, Build); 11] = [
        ("../escape", |t| {
            t.file("../escape", b"x");
        }),
        ("a/../../escape", |t| {
            t.file("a/../../escape", b"x");
        }),
        ("link/etc/kapsel-unpack-evil", |t| {
            t.link("link", EntryType::Symlink, "/")
                .file("link/etc/kapsel-unpack-evil", b"x");
        }),
        ("dir/x", |t| {
            t.link("dir", EntryType::Symlink, "../..")
                .file("dir/x", b"x");
        }),
        ("pw", |t| {
            t.link("pw", EntryType::Link, "/etc/passwd");
        }),
        ("out", |t| {
            t.link("out", EntryType::Link, "../../outside");
        }),
        ("pw2", |t| {
            t.link("etc", EntryType::Symlink, "/etc")
                .link("pw2", EntryType::Link, "etc/passwd");
        }),
        ("l/escape", |t| {
            t.link("l", EntryType::Symlink, "..").dir("l/escape");
        }),
        // Whiteouts are written too (a device node, an xattr): same rules.
        ("w/.wh.outside", |t| {
            t.link("w", EntryType::Symlink, "../..")
                .file("w/.wh.outside", b"");
        }),
        ("o/.wh..wh..opq", |t| {
            t.link("o", EntryType::Symlink, "../..")
                .file("o/.wh..wh..opq", b"");
        }),
        ("../.wh.outside", |t| {
            t.file("../.wh.outside", b"");
        }),
    ];
    let passwd_links = fs::metadata("/etc/passwd").unwrap().nlink();
    for (hostile, build) in cases {
        let sandbox = Sandbox::new();
        let before = sandbox.listing();
        let mut tar = Tar::new();
        // A good entry first: the failure must also undo what was already written.
        tar.file("fine", b"ok");
        build(&mut tar);
        let err = apply(&tar.bytes(), &sandbox.target()).unwrap_err();
        match &err {
            ImageError::EntryRefused { entry, .. } => assert_eq!(entry, hostile, "{err}"),
            other => panic!("{hostile}: expected EntryRefused, got {other}"),
        }
        assert!(err.to_string().contains(hostile), "{err}");
        assert_eq!(
            sandbox.listing(),
            before,
            "{hostile}: something was left behind"
        );
        assert!(!sandbox.target().exists());
        assert!(!Path::new(EVIL).exists(), "{hostile}: wrote {EVIL}");
        assert_eq!(fs::metadata("/etc/passwd").unwrap().nlink(), passwd_links);
        assert_eq!(
            fs::read(sandbox.dir.path().join("outside")).unwrap(),
            b"sentinel"
        );
        let opaque = xattr::get(sandbox.dir.path(), "trusted.overlay.opaque").unwrap();
        assert_eq!(opaque, None, "{hostile}: marked a directory outside opaque");
    }
}

#[test]
fn absolute_and_dotted_paths_land_inside() {
    let sandbox = Sandbox::new();
    let mut tar = Tar::new();
    tar.file("/abs/path", b"abs")
        .file("./dot", b"dot")
        .file("a/../b", b"b");
    apply(&tar.bytes(), &sandbox.target()).unwrap();
    let target = sandbox.target();
    assert_eq!(fs::read(target.join("abs/path")).unwrap(), b"abs");
    assert_eq!(fs::read(target.join("dot")).unwrap(), b"dot");
    assert_eq!(fs::read(target.join("b")).unwrap(), b"b");
    let expected: Vec<PathBuf> = ["abs", "abs/path", "b", "dot"]
        .iter()
        .map(PathBuf::from)
        .collect();
    assert_eq!(tree(&target), expected);
}

/// Data that does not compress to nothing, so a cut lands inside the compressed payload.
fn noise(len: usize) -> Vec<u8> {
    let mut state = 0x2545_f491_4f6c_dd1du64;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect()
}

#[test]
fn truncated_gzip_fails_cleanly() {
    let layer = gzip(&Tar::new().file("noise", &noise(256 << 10)).bytes());
    // Mid-data, just before the trailer (CRC and size), and its last byte missing.
    for cut in [layer.len() / 2, layer.len() - 8, layer.len() - 1] {
        let sandbox = Sandbox::new();
        let before = sandbox.listing();
        match apply(&layer[..cut], &sandbox.target()) {
            Err(ImageError::LayerRead { .. }) => {}
            other => panic!(
                "cut at {cut}/{}: expected LayerRead, got {other:?}",
                layer.len()
            ),
        }
        assert!(!sandbox.target().exists());
        assert_eq!(sandbox.listing(), before);
    }
}

/// Yields `chunk` `times` times without holding more than one copy.
struct RepeatChunk {
    chunk: Vec<u8>,
    pos: usize,
    times: usize,
}

impl Read for RepeatChunk {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.times == 0 {
            return Ok(0);
        }
        let n = buf.len().min(self.chunk.len() - self.pos);
        buf[..n].copy_from_slice(&self.chunk[self.pos..self.pos + n]);
        self.pos += n;
        if self.pos == self.chunk.len() {
            self.pos = 0;
            self.times -= 1;
        }
        Ok(n)
    }
}

/// A gzip layer whose one entry is 1 GiB of zeros, as concatenated gzip members, so it is
/// generated on the fly from a few KiB.
fn zero_bomb() -> impl Read {
    let mut header = Header::new_gnu();
    header.set_path("zeros").unwrap();
    header.set_size(1 << 30);
    header.set_mode(0o644);
    header.set_uid(0);
    header.set_gid(0);
    header.set_mtime(0);
    header.set_cksum();
    let zeros = RepeatChunk {
        chunk: gzip(&vec![0u8; 1 << 20]),
        pos: 0,
        times: 1 << 10,
    };
    Cursor::new(gzip(header.as_bytes()))
        .chain(zeros)
        .chain(Cursor::new(gzip(&[0u8; 1024]))) // end-of-archive blocks
}

#[test]
fn decompression_bomb_stops_at_the_byte_limit() {
    let sandbox = Sandbox::new();
    let before = sandbox.listing();
    let options = UnpackOptions {
        max_bytes: 8 << 20,
        ..UnpackOptions::default()
    };
    let err = apply_layer(zero_bomb(), &sandbox.target(), &options).unwrap_err();
    match &err {
        ImageError::LayerTooLarge { what, limit, .. } => {
            assert_eq!((*what, *limit), ("uncompressed bytes", 8 << 20));
        }
        other => panic!("expected LayerTooLarge, got {other}"),
    }
    assert!(err.to_string().contains("max_bytes"), "{err}");
    assert!(!sandbox.target().exists());
    assert_eq!(sandbox.listing(), before);
}

#[test]
fn entry_count_limit_is_enforced() {
    let sandbox = Sandbox::new();
    let mut tar = Tar::new();
    for i in 0..50 {
        tar.file(&format!("f{i}"), b"");
    }
    let options = UnpackOptions {
        max_entries: 10,
        ..UnpackOptions::default()
    };
    let err = apply_layer(&tar.bytes()[..], &sandbox.target(), &options).unwrap_err();
    assert!(
        matches!(
            err,
            ImageError::LayerTooLarge {
                what: "entries",
                limit: 10,
                ..
            }
        ),
        "{err}"
    );
    assert!(!sandbox.target().exists());
}

#[test]
fn existing_snapshot_and_unsupported_compression_are_refused() {
    let sandbox = Sandbox::new();
    fs::create_dir(sandbox.target()).unwrap();
    let layer = Tar::new().file("f", b"x").bytes();
    assert!(matches!(
        apply(&layer, &sandbox.target()),
        Err(ImageError::SnapshotExists { .. })
    ));
    let xz = [0xfd, b'7', b'z', b'X', b'Z', 0x00, 0, 0];
    let other = sandbox.dir.path().join("layers/other");
    assert!(matches!(
        apply(&xz, &other),
        Err(ImageError::UnsupportedCompression { format: "xz" })
    ));
    assert!(!other.exists());
}

/// Unmounts on drop, so a failing assertion does not leave the mount behind.
struct Mount(PathBuf);

impl Drop for Mount {
    fn drop(&mut self) {
        nix::mount::umount(&self.0).unwrap();
    }
}

#[test]
fn whiteouts_hide_lower_files_through_overlayfs() {
    let sandbox = Sandbox::new();
    let layers = sandbox.dir.path().join("layers");
    let lower = layers.join("lower");
    let mut first = Tar::new();
    first
        .file("gone", b"old")
        .file("keep", b"keep")
        .file("dir/old", b"old")
        .file(".wh.ignored", b"");
    let drop = UnpackOptions {
        whiteouts: WhiteoutMode::Drop,
        ..UnpackOptions::default()
    };
    apply_layer(&first.bytes()[..], &lower, &drop).unwrap();
    assert!(!lower.join(".wh.ignored").exists() && !lower.join("ignored").exists());

    let upper = layers.join("upper");
    let mut second = Tar::new();
    second
        .file(".wh.gone", b"")
        .file("dir/.wh..wh..opq", b"")
        .file("dir/new", b"new");
    apply(&second.bytes(), &upper).unwrap();

    let gone = fs::symlink_metadata(upper.join("gone")).unwrap();
    assert!(gone.file_type().is_char_device());
    assert_eq!(gone.rdev(), 0);
    assert!(!upper.join(".wh.gone").exists());
    assert!(!upper.join("dir/.wh..wh..opq").exists());
    let opaque = xattr::get(upper.join("dir"), "trusted.overlay.opaque").unwrap();
    assert_eq!(opaque.as_deref(), Some(&b"y"[..]));

    let (work, merged) = (layers.join("work"), layers.join("merged"));
    fs::create_dir(&work).unwrap();
    fs::create_dir(&merged).unwrap();
    let data = format!(
        "lowerdir={},upperdir={},workdir={}",
        lower.display(),
        upper.display(),
        work.display()
    );
    nix::mount::mount(
        Some("overlay"),
        &merged,
        Some("overlay"),
        nix::mount::MsFlags::empty(),
        Some(data.as_str()),
    )
    .unwrap();
    let _mount = Mount(merged.clone());
    assert!(!merged.join("gone").exists(), "whiteout must hide gone");
    assert!(
        !merged.join("dir/old").exists(),
        "opaque dir must hide dir/old"
    );
    assert_eq!(fs::read(merged.join("dir/new")).unwrap(), b"new");
    assert_eq!(fs::read(merged.join("keep")).unwrap(), b"keep");
}

/// `security.capability` granting CAP_NET_BIND_SERVICE (vfs_cap_data, revision 2).
fn net_bind_capability() -> Vec<u8> {
    let mut cap = Vec::new();
    cap.extend(0x0200_0000u32.to_le_bytes()); // VFS_CAP_REVISION_2, not effective
    cap.extend((1u32 << 10).to_le_bytes()); // permitted, low word
    cap.extend(0u32.to_le_bytes()); // inheritable, low word
    cap.extend(0u32.to_le_bytes()); // permitted, high word
    cap.extend(0u32.to_le_bytes()); // inheritable, high word
    cap
}

fn metadata_layer() -> Vec<u8> {
    let cap = net_bind_capability();
    let mut tar = Tar::new();
    tar.entry("./", EntryType::Directory, b"", |h| h.set_mode(0o711))
        .entry("d", EntryType::Directory, b"", |h| {
            h.set_mode(0o750);
            h.set_uid(1000);
            h.set_gid(2000);
            h.set_mtime(1_500_000_000);
        })
        .pax(&[
            ("SCHILY.xattr.user.kapsel", b"yes"),
            ("SCHILY.xattr.security.capability", &cap),
        ])
        .entry("d/f", EntryType::Regular, b"payload", |h| {
            h.set_mode(0o4755);
            h.set_uid(1234);
            h.set_gid(5678);
            h.set_mtime(1_400_000_000);
        })
        .link("d/f-link", EntryType::Link, "d/f")
        .entry("s", EntryType::Symlink, b"", |h| {
            h.set_link_name_literal("/nowhere/at/all").unwrap();
            h.set_uid(42);
            h.set_gid(43);
            h.set_mtime(1_300_000_000);
        })
        .entry("dev/null2", EntryType::Char, b"", |h| {
            h.set_mode(0o666);
            h.set_device_major(1).unwrap();
            h.set_device_minor(3).unwrap();
        })
        .entry("dev/loop9", EntryType::Block, b"", |h| {
            h.set_mode(0o660);
            h.set_device_major(7).unwrap();
            h.set_device_minor(9).unwrap();
        })
        .entry("p", EntryType::Fifo, b"", |h| h.set_mode(0o640))
        .file("implicit/child", b"c");
    tar.bytes()
}

#[test]
fn metadata_round_trips() {
    let sandbox = Sandbox::new();
    let target = sandbox.target();
    let summary = apply(&metadata_layer(), &target).unwrap();
    assert_eq!(summary.entries, 9, "the PAX header is not an entry");

    let meta = |p: &str| fs::symlink_metadata(target.join(p)).unwrap();
    assert_eq!(
        meta("").mode() & 0o7777,
        0o711,
        "the ./ entry sets the root"
    );

    let d = meta("d");
    assert!(d.is_dir());
    assert_eq!((d.mode() & 0o7777, d.uid(), d.gid()), (0o750, 1000, 2000));
    assert_eq!(
        d.mtime(),
        1_500_000_000,
        "set after its children were created"
    );

    let f = meta("d/f");
    assert_eq!((f.mode() & 0o7777, f.uid(), f.gid()), (0o4755, 1234, 5678));
    assert_eq!(f.mtime(), 1_400_000_000);
    assert_eq!(fs::read(target.join("d/f")).unwrap(), b"payload");
    let f_path = target.join("d/f");
    assert_eq!(
        xattr::get(&f_path, "user.kapsel").unwrap().as_deref(),
        Some(&b"yes"[..])
    );
    assert_eq!(
        xattr::get(&f_path, "security.capability").unwrap(),
        Some(net_bind_capability()),
        "file capabilities survive (set after chown, which clears them)"
    );

    let link = meta("d/f-link");
    assert_eq!((link.ino(), link.nlink()), (f.ino(), 2));

    let s = meta("s");
    assert!(s.file_type().is_symlink());
    assert_eq!(
        fs::read_link(target.join("s")).unwrap(),
        Path::new("/nowhere/at/all")
    );
    assert_eq!((s.uid(), s.gid(), s.mtime()), (42, 43, 1_300_000_000));

    let null = meta("dev/null2");
    assert!(null.file_type().is_char_device());
    assert_eq!(
        (null.rdev(), null.mode() & 0o7777),
        (libc::makedev(1, 3), 0o666)
    );
    let blk = meta("dev/loop9");
    assert!(blk.file_type().is_block_device());
    assert_eq!(
        (blk.rdev(), blk.mode() & 0o7777),
        (libc::makedev(7, 9), 0o660)
    );
    let fifo = meta("p");
    assert!(fifo.file_type().is_fifo());
    assert_eq!(fifo.mode() & 0o7777, 0o640);

    assert_eq!(meta("implicit").mode() & 0o7777, 0o755);
    assert_eq!(meta("dev").mode() & 0o7777, 0o755);
}

#[test]
fn plain_gzip_and_zstd_layers_unpack_alike() {
    let tar = metadata_layer();
    let sandbox = Sandbox::new();
    let layers = sandbox.dir.path().join("layers");
    let runs = [
        (tar.clone(), Compression::None, layers.join("plain")),
        (gzip(&tar), Compression::Gzip, layers.join("gzip")),
        (zstd(&tar), Compression::Zstd, layers.join("zstd")),
    ];
    for (layer, compression, target) in &runs {
        let summary = apply(layer, target).unwrap();
        assert_eq!(summary.compression, *compression);
        assert_eq!(
            summary.diff_id,
            Digest::of_bytes(&tar),
            "diffID is of the uncompressed tar"
        );
        assert_eq!(summary.bytes, tar.len() as u64);
        assert_eq!(tree(target), tree(&runs[0].2));
    }
}

#[test]
fn later_entries_replace_earlier_ones() {
    let sandbox = Sandbox::new();
    let mut tar = Tar::new();
    tar.file("x", b"file")
        .dir("x")
        .file("x/inner", b"i")
        .file("x", b"file again")
        .link("y", EntryType::Symlink, "/etc/passwd")
        .file("y", b"not through the symlink");
    apply(&tar.bytes(), &sandbox.target()).unwrap();
    let target = sandbox.target();
    assert_eq!(fs::read(target.join("x")).unwrap(), b"file again");
    assert!(!fs::symlink_metadata(target.join("y"))
        .unwrap()
        .file_type()
        .is_symlink());
    assert_eq!(
        fs::read(target.join("y")).unwrap(),
        b"not through the symlink"
    );
}

/// Entries of one directory in a row, then the directory replaced: later entries land in
/// the replacement, never in the removed directory.
#[test]
fn a_replaced_directory_is_not_written_through() {
    let sandbox = Sandbox::new();
    let mut tar = Tar::new();
    tar.dir("d")
        .file("d/a", b"a")
        .file("d/b", b"b")
        .file("d", b"now a file")
        .dir("d")
        .file("d/c", b"c");
    apply(&tar.bytes(), &sandbox.target()).unwrap();
    let target = sandbox.target();
    assert!(!target.join("d/a").exists());
    assert_eq!(fs::read(target.join("d/c")).unwrap(), b"c");

    let sandbox = Sandbox::new();
    let mut tar = Tar::new();
    tar.dir("d")
        .file("d/a", b"a")
        .link("d", EntryType::Symlink, "/tmp")
        .file("d/b", b"through the symlink");
    assert!(matches!(
        apply(&tar.bytes(), &sandbox.target()),
        Err(ImageError::EntryRefused { .. })
    ));
}

#[test]
fn pax_records_override_the_header() {
    let sandbox = Sandbox::new();
    let long = format!("{}/{}", "d".repeat(120), "f".repeat(120));
    let mut tar = Tar::new();
    tar.pax(&[
        ("path", long.as_bytes()),
        ("uid", b"3000000"),
        ("gid", b"3000001"),
        ("mtime", b"1234567890.75"),
    ])
    .file("short-name-in-header", b"long");
    apply(&tar.bytes(), &sandbox.target()).unwrap();
    let file = sandbox.target().join(&long);
    assert_eq!(fs::read(&file).unwrap(), b"long");
    let meta = fs::metadata(&file).unwrap();
    assert_eq!((meta.uid(), meta.gid()), (3_000_000, 3_000_001));
    assert_eq!(meta.mtime(), 1_234_567_890);
    assert!(!sandbox.target().join("short-name-in-header").exists());
}

#[test]
fn stale_staging_dirs_are_removed_but_live_ones_kept() {
    let sandbox = Sandbox::new();
    let layers = sandbox.dir.path().join("layers");
    let stale = layers.join(".snap.unpacking-1-2-3");
    fs::create_dir_all(stale.join("half/unpacked")).unwrap();
    // An unpack still running (in another process, say) holds its staging dir locked.
    let live = layers.join(".other.unpacking-4-5-6");
    fs::create_dir(&live).unwrap();
    let _lock = Flock::lock(fs::File::open(&live).unwrap(), FlockArg::LockExclusive).unwrap();
    let snapshot = layers.join("done");
    apply(&Tar::new().file("f", b"x").bytes(), &snapshot).unwrap();
    fs::create_dir(layers.join(".hidden-but-not-staging")).unwrap();

    assert_eq!(remove_stale_staging(&layers).unwrap(), 1);
    let names: Vec<PathBuf> = [".hidden-but-not-staging", ".other.unpacking-4-5-6", "done"]
        .iter()
        .map(PathBuf::from)
        .collect();
    let top: Vec<PathBuf> = tree(&layers)
        .into_iter()
        .filter(|p| p.parent() == Some(Path::new("")))
        .collect();
    assert_eq!(top, names);
    assert_eq!(fs::read(snapshot.join("f")).unwrap(), b"x");
}

#[test]
fn concurrent_unpacks_to_one_snapshot_publish_exactly_one() {
    let sandbox = Sandbox::new();
    let layer = Tar::new().file("big", &noise(4 << 20)).bytes();
    let target = sandbox.target();
    let results: Vec<_> = std::thread::scope(|scope| {
        let runs: Vec<_> = (0..2)
            .map(|_| scope.spawn(|| apply(&layer, &target)))
            .collect();
        runs.into_iter().map(|r| r.join().unwrap()).collect()
    });
    let published = results.iter().filter(|r| r.is_ok()).count();
    let refused = results
        .iter()
        .filter(|r| matches!(r, Err(ImageError::SnapshotExists { .. })))
        .count();
    assert_eq!((published, refused), (1, 1), "{results:?}");
    assert_eq!(
        tree(&sandbox.dir.path().join("layers")),
        vec![PathBuf::from("snap"), PathBuf::from("snap/big")]
    );
}
