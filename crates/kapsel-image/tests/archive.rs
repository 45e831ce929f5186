//! Image archives: docker-archive and OCI layouts written by hand, by kapsel, and by podman.

mod common;

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::{tree, TempDir};
use flate2::write::GzEncoder;
use kapsel_image::archive::{load, save, LoadedImage, SaveFormat, SaveImage};
use kapsel_image::content::ContentStore;
use kapsel_image::digest::Digest;
use kapsel_image::reference::Reference;
use kapsel_image::ImageError;
use serde_json::{json, Value};

// ---------------------------------------------------------------------------------------
// A tiny image, built by hand.

/// A layer tar holding the given files.
fn layer_tar(files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut tar = tar::Builder::new(Vec::new());
    for (name, data) in files {
        let mut header = tar::Header::new_ustar();
        header.set_size(data.len() as u64);
        header.set_mode(0o644);
        header.set_entry_type(tar::EntryType::Regular);
        tar.append_data(&mut header, name, *data).unwrap();
    }
    tar.into_inner().unwrap()
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut gz = GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(data).unwrap();
    gz.finish().unwrap()
}

/// An image's parts: layer blobs as they are shipped, their diff_ids, and the config.
struct TestImage {
    layers: Vec<Vec<u8>>,
    diff_ids: Vec<Digest>,
    config: Vec<u8>,
}

impl TestImage {
    /// Two layers; with `gzip_top`, the second is shipped gzip-compressed.
    fn new(gzip_top: bool) -> TestImage {
        let base = layer_tar(&[("etc/hostname", b"kapsel\n")]);
        let top = layer_tar(&[("hello.txt", b"hello from an archive\n")]);
        let diff_ids = vec![Digest::of_bytes(&base), Digest::of_bytes(&top)];
        let top = if gzip_top { gzip(&top) } else { top };
        TestImage {
            config: config_json(&diff_ids),
            layers: vec![base, top],
            diff_ids,
        }
    }

    fn config_digest(&self) -> Digest {
        Digest::of_bytes(&self.config)
    }

    fn layer_digests(&self) -> Vec<Digest> {
        self.layers.iter().map(|l| Digest::of_bytes(l)).collect()
    }

    /// An OCI manifest for the image.
    fn manifest(&self) -> Vec<u8> {
        let layers: Vec<Value> = self
            .layers
            .iter()
            .map(|l| {
                let media_type = if l.starts_with(&[0x1f, 0x8b]) {
                    "application/vnd.oci.image.layer.v1.tar+gzip"
                } else {
                    "application/vnd.oci.image.layer.v1.tar"
                };
                descriptor(media_type, l)
            })
            .collect();
        serde_json::to_vec(&json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": descriptor("application/vnd.oci.image.config.v1+json", &self.config),
            "layers": layers,
        }))
        .unwrap()
    }
}

fn config_json(diff_ids: &[Digest]) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "architecture": "amd64",
        "os": "linux",
        "config": {"Cmd": ["/bin/sh"]},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    }))
    .unwrap()
}

fn descriptor(media_type: &str, blob: &[u8]) -> Value {
    json!({
        "mediaType": media_type,
        "digest": Digest::of_bytes(blob),
        "size": blob.len(),
    })
}

/// Builds archives member by member.
struct ArchiveBuilder(tar::Builder<Vec<u8>>);

impl ArchiveBuilder {
    fn new() -> Self {
        ArchiveBuilder(tar::Builder::new(Vec::new()))
    }

    fn file(&mut self, name: &str, data: &[u8]) -> &mut Self {
        let mut header = tar::Header::new_gnu();
        header.set_size(data.len() as u64);
        header.set_mode(0o644);
        header.set_entry_type(tar::EntryType::Regular);
        self.0.append_data(&mut header, name, data).unwrap();
        self
    }

    fn symlink(&mut self, name: &str, target: &str) -> &mut Self {
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(tar::EntryType::Symlink);
        header.set_size(0);
        header.set_mode(0o777);
        self.0.append_link(&mut header, name, target).unwrap();
        self
    }

    fn hardlink(&mut self, name: &str, target: &str) -> &mut Self {
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(tar::EntryType::Link);
        header.set_size(0);
        header.set_mode(0o644);
        self.0.append_link(&mut header, name, target).unwrap();
        self
    }

    /// A member with a name written raw: the tar crate refuses to write `..` itself.
    fn raw_name(&mut self, name: &str, data: &[u8]) -> &mut Self {
        let mut header = tar::Header::new_old();
        header.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
        header.set_size(data.len() as u64);
        header.set_mode(0o644);
        header.set_entry_type(tar::EntryType::Regular);
        header.set_cksum();
        self.0.append(&header, data).unwrap();
        self
    }

    fn finish(&mut self) -> Vec<u8> {
        self.0.finish().unwrap();
        std::mem::replace(&mut self.0, tar::Builder::new(Vec::new()))
            .into_inner()
            .unwrap()
    }
}

/// A docker-archive as docker before 25 writes it: `<config hex>.json`, `<id>/layer.tar`,
/// and (to cover links) the top layer's directory holding a symlink to its real file.
fn docker_archive(image: &TestImage, repo_tags: &[&str]) -> Vec<u8> {
    let config_name = format!("{}.json", image.config_digest().hex());
    let mut archive = ArchiveBuilder::new();
    archive
        .file(&config_name, &image.config)
        .file("aaa/layer.tar", &image.layers[0])
        .file("real/top.tar", &image.layers[1])
        .symlink("bbb/layer.tar", "../real/top.tar");
    let manifest = json!([{
        "Config": config_name,
        "RepoTags": repo_tags,
        "Layers": ["aaa/layer.tar", "bbb/layer.tar"],
    }]);
    archive.file("manifest.json", manifest.to_string().as_bytes());
    archive.finish()
}

/// An OCI layout with one manifest, named through containerd's annotation.
fn oci_archive(image: &TestImage, name: &str) -> Vec<u8> {
    let manifest = image.manifest();
    let mut archive = ArchiveBuilder::new();
    archive.file("oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#);
    for blob in image.layers.iter().chain([&image.config, &manifest]) {
        let name = format!("blobs/sha256/{}", Digest::of_bytes(blob).hex());
        archive.file(&name, blob);
    }
    let mut entry = descriptor("application/vnd.oci.image.manifest.v1+json", &manifest);
    entry["annotations"] = json!({
        "io.containerd.image.name": name,
        "org.opencontainers.image.ref.name": "ignored-when-the-full-name-is-there",
    });
    let index = json!({"schemaVersion": 2, "manifests": [entry]});
    archive.file("index.json", index.to_string().as_bytes());
    archive.finish()
}

fn reference(s: &str) -> Reference {
    Reference::parse(s).unwrap()
}

fn store_in(dir: &TempDir) -> ContentStore {
    ContentStore::open(dir.path().join("store")).unwrap()
}

/// Every blob the image names is stored and verifies, and the manifest describes it.
fn assert_stored(store: &ContentStore, image: &LoadedImage) {
    for digest in image.layers.iter().chain([&image.config, &image.manifest]) {
        store
            .verify(digest)
            .unwrap_or_else(|e| panic!("blob {digest}: {e}"));
    }
    let manifest: Value =
        serde_json::from_reader(store.open_blob(&image.manifest).unwrap()).unwrap();
    assert_eq!(manifest["config"]["digest"], image.config.to_string());
    let layers: Vec<String> = image.layers.iter().map(Digest::to_string).collect();
    let listed: Vec<&str> = manifest["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["digest"].as_str().unwrap())
        .collect();
    assert_eq!(listed, layers);
}

/// Nothing is left of a load but blobs: no staging directory, no ingest file.
fn assert_no_leftovers(dir: &TempDir) {
    let store = dir.path().join("store");
    assert!(tree(&store.join("ingest")).is_empty());
    let staging = store.join("archive-staging");
    assert!(!staging.exists() || tree(&staging).is_empty());
}

// ---------------------------------------------------------------------------------------
// Loading and saving.

#[test]
fn docker_archive_loads_with_tags_and_verified_layers() {
    let dir = TempDir::new("archive-docker");
    let store = store_in(&dir);
    let image = TestImage::new(false);
    let archive = docker_archive(&image, &["busybox:latest", "localhost:5000/app:1"]);

    let loaded = load(&store, &archive[..]).unwrap();

    assert_eq!(loaded.len(), 1);
    let l = &loaded[0];
    assert_eq!(l.config, image.config_digest());
    assert_eq!(l.layers, image.layer_digests());
    assert_eq!(l.diff_ids, image.diff_ids);
    assert_eq!(
        l.tags,
        [
            reference("docker.io/library/busybox:latest"),
            reference("localhost:5000/app:1")
        ]
    );
    assert_stored(&store, l);
    let manifest: Value = serde_json::from_reader(store.open_blob(&l.manifest).unwrap()).unwrap();
    assert_eq!(
        manifest["layers"][0]["mediaType"],
        "application/vnd.oci.image.layer.v1.tar"
    );
    assert_eq!(manifest["layers"][1]["size"], image.layers[1].len());
    assert_no_leftovers(&dir);
}

#[test]
fn oci_archive_loads_compressed_layers_as_shipped() {
    let dir = TempDir::new("archive-oci");
    let store = store_in(&dir);
    let image = TestImage::new(true);
    let archive = oci_archive(&image, "quay.io/org/app:v2");

    let loaded = load(&store, &archive[..]).unwrap();

    assert_eq!(loaded.len(), 1);
    let l = &loaded[0];
    assert_eq!(l.manifest, Digest::of_bytes(&image.manifest()));
    assert_eq!(l.layers, image.layer_digests());
    assert_ne!(
        l.layers[1], l.diff_ids[1],
        "the top layer is stored compressed"
    );
    assert_eq!(l.diff_ids, image.diff_ids);
    assert_eq!(l.tags, [reference("quay.io/org/app:v2")]);
    assert_stored(&store, l);
    assert_no_leftovers(&dir);
}

#[test]
fn gzip_compressed_archives_load() {
    let dir = TempDir::new("archive-gzip");
    let store = store_in(&dir);
    let image = TestImage::new(false);

    let docker = load(&store, &gzip(&docker_archive(&image, &["a:1"]))[..]).unwrap();
    let oci = load(&store, &gzip(&oci_archive(&image, "b:2"))[..]).unwrap();

    assert_eq!(docker[0].layers, image.layer_digests());
    assert_eq!(oci[0].layers, image.layer_digests());
    assert_eq!(oci[0].tags, [reference("b:2")]);
}

#[test]
fn every_image_of_a_multi_image_archive_loads() {
    let dir = TempDir::new("archive-multi");
    let store = store_in(&dir);
    let one = TestImage::new(false);
    let two = {
        let layer = layer_tar(&[("other", b"second image")]);
        let diff_ids = vec![Digest::of_bytes(&layer)];
        TestImage {
            config: config_json(&diff_ids),
            layers: vec![layer],
            diff_ids,
        }
    };
    let mut archive = ArchiveBuilder::new();
    let mut manifest = Vec::new();
    for (n, image) in [&one, &two].into_iter().enumerate() {
        let config = format!("{}.json", image.config_digest().hex());
        archive.file(&config, &image.config);
        let mut layers = Vec::new();
        for (i, layer) in image.layers.iter().enumerate() {
            let name = format!("img{n}-{i}/layer.tar");
            archive.file(&name, layer);
            layers.push(name);
        }
        manifest
            .push(json!({"Config": config, "RepoTags": [format!("img:{n}")], "Layers": layers}));
    }
    archive.file("manifest.json", json!(manifest).to_string().as_bytes());

    let loaded = load(&store, &archive.finish()[..]).unwrap();

    assert_eq!(loaded.len(), 2);
    assert_eq!(loaded[0].config, one.config_digest());
    assert_eq!(loaded[1].config, two.config_digest());
    assert_eq!(loaded[1].tags, [reference("img:1")]);
    loaded.iter().for_each(|l| assert_stored(&store, l));
}

#[test]
fn save_then_load_keeps_every_digest() {
    for format in [SaveFormat::DockerArchive, SaveFormat::OciArchive] {
        let dir = TempDir::new("archive-roundtrip");
        let store = store_in(&dir);
        let image = TestImage::new(true);
        let original = load(&store, &oci_archive(&image, "busybox:1.36")[..])
            .unwrap()
            .remove(0);
        let tags = vec![reference("busybox:1.36"), reference("localhost/mine:dev")];
        let mut archive = Vec::new();
        let images = [SaveImage {
            manifest: original.manifest.clone(),
            tags: tags.clone(),
        }];
        save(&store, &images, format, &mut archive).unwrap();

        let other = TempDir::new("archive-roundtrip-target");
        let target = store_in(&other);
        let again = load(&target, &archive[..]).unwrap();

        assert_eq!(again.len(), 1, "{format:?}");
        let again = &again[0];
        assert_eq!(again.manifest, original.manifest, "{format:?}");
        assert_eq!(again.config, original.config, "{format:?}");
        assert_eq!(again.layers, original.layers, "{format:?}");
        assert_eq!(again.diff_ids, original.diff_ids, "{format:?}");
        assert_eq!(again.tags, tags, "{format:?}");
        assert_stored(&target, again);
    }
}

#[test]
fn saved_docker_archive_has_both_readers_metadata() {
    let dir = TempDir::new("archive-save-docker");
    let store = store_in(&dir);
    let image = TestImage::new(false);
    let loaded = load(&store, &docker_archive(&image, &["busybox:latest"])[..])
        .unwrap()
        .remove(0);
    let mut out = Vec::new();
    let images = [SaveImage {
        manifest: loaded.manifest.clone(),
        tags: loaded.tags.clone(),
    }];
    save(&store, &images, SaveFormat::DockerArchive, &mut out).unwrap();

    let mut members = std::collections::HashMap::new();
    let mut archive = tar::Archive::new(&out[..]);
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        let name = entry.path().unwrap().to_string_lossy().into_owned();
        let mut data = Vec::new();
        std::io::Read::read_to_end(&mut entry, &mut data).unwrap();
        members.insert(name, data);
    }
    let manifest: Value = serde_json::from_slice(&members["manifest.json"]).unwrap();
    let blob = |d: &Digest| format!("blobs/sha256/{}", d.hex());
    assert_eq!(
        manifest,
        json!([{
            "Config": blob(&loaded.config),
            "RepoTags": ["busybox:latest"],
            "Layers": loaded.layers.iter().map(blob).collect::<Vec<_>>(),
        }])
    );
    let index: Value = serde_json::from_slice(&members["index.json"]).unwrap();
    let annotations = &index["manifests"][0]["annotations"];
    assert_eq!(
        annotations["io.containerd.image.name"],
        "docker.io/library/busybox:latest"
    );
    assert_eq!(annotations["org.opencontainers.image.ref.name"], "latest");
    assert!(members.contains_key("oci-layout"));
    for d in loaded
        .layers
        .iter()
        .chain([&loaded.config, &loaded.manifest])
    {
        assert_eq!(Digest::of_bytes(&members[&blob(d)]), *d);
    }
}

/// An OCI layout whose index.json names a multi-platform index, as docker's containerd
/// image store saves: the host's platform is in the archive, another one is not.
fn multi_platform_archive(image: &TestImage, host_blobs: bool) -> Vec<u8> {
    let manifest = image.manifest();
    let host = oci_spec::image::Arch::default().to_string();
    let other = if host == "s390x" { "riscv64" } else { "s390x" };
    let entry = |arch: &str, m: &[u8]| {
        let mut d = descriptor("application/vnd.oci.image.manifest.v1+json", m);
        d["platform"] = json!({"os": "linux", "architecture": arch});
        d
    };
    let absent = br#"{"schemaVersion":2,"layers":[]}"#;
    let index = json!({"schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [entry(other, absent), entry(&host, &manifest)]});
    let index = index.to_string().into_bytes();
    let mut archive = ArchiveBuilder::new();
    archive.file("oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#);
    archive.file(
        &format!("blobs/sha256/{}", Digest::of_bytes(&index).hex()),
        &index,
    );
    if host_blobs {
        for blob in image.layers.iter().chain([&image.config, &manifest]) {
            archive.file(
                &format!("blobs/sha256/{}", Digest::of_bytes(blob).hex()),
                blob,
            );
        }
    }
    let mut top = descriptor("application/vnd.oci.image.index.v1+json", &index);
    top["annotations"] = json!({"io.containerd.image.name": "docker.io/library/multi:1"});
    archive.file(
        "index.json",
        json!({"schemaVersion": 2, "manifests": [top]})
            .to_string()
            .as_bytes(),
    );
    archive.finish()
}

#[test]
fn multi_platform_index_loads_the_hosts_image() {
    let dir = TempDir::new("archive-multiplatform");
    let store = store_in(&dir);
    let image = TestImage::new(false);

    let loaded = load(&store, &multi_platform_archive(&image, true)[..]).unwrap();

    assert_eq!(loaded.len(), 1);
    assert_eq!(loaded[0].manifest, Digest::of_bytes(&image.manifest()));
    assert_eq!(loaded[0].tags, [reference("multi:1")]);
    assert_stored(&store, &loaded[0]);

    let other = TempDir::new("archive-multiplatform-none");
    let store = store_in(&other);
    let err = load(&store, &multi_platform_archive(&image, false)[..]).unwrap_err();
    assert!(matches!(err, ImageError::InvalidArchive { .. }), "{err:?}");
    assert!(err.to_string().contains("--platform"), "{err}");
}

/// As `tar -x` would: a later member of a name replaces an earlier one, `./` prefixes do
/// not matter, and hard links name their target from the archive's root.
#[test]
fn member_names_resolve_as_tar_extraction_would() {
    let dir = TempDir::new("archive-names");
    let store = store_in(&dir);
    let image = TestImage::new(false);
    let config_name = format!("{}.json", image.config_digest().hex());
    let manifest = json!([{"Config": config_name, "RepoTags": ["dup:1"],
        "Layers": ["./l0/layer.tar", "l1/layer.tar"]}]);
    let archive = ArchiveBuilder::new()
        .file("manifest.json", b"not json")
        .file("./manifest.json", manifest.to_string().as_bytes())
        .file(&config_name, &image.config)
        .file("l0/layer.tar", &image.layers[0])
        .file("real/top.tar", &image.layers[1])
        .hardlink("l1/layer.tar", "real/top.tar")
        .finish();

    let loaded = load(&store, &archive[..]).unwrap();

    assert_eq!(loaded[0].layers, image.layer_digests());
}

// ---------------------------------------------------------------------------------------
// Refusals.

#[test]
fn layer_not_matching_its_diff_id_is_refused_and_nothing_stored() {
    let dir = TempDir::new("archive-diffid");
    let store = store_in(&dir);
    let mut image = TestImage::new(false);
    image.layers[1] = layer_tar(&[("hello.txt", b"tampered\n")]);

    let err = load(&store, &docker_archive(&image, &["a:1"])[..]).unwrap_err();

    match &err {
        ImageError::DiffIdMismatch {
            layer,
            expected,
            actual,
        } => {
            assert_eq!(layer, "bbb/layer.tar");
            assert_eq!(*expected, image.diff_ids[1]);
            assert_eq!(*actual, Digest::of_bytes(&image.layers[1]));
        }
        other => panic!("expected DiffIdMismatch, got {other:?}"),
    }
    assert!(err.to_string().contains("bbb/layer.tar"), "{err}");
    assert!(store.list().unwrap().is_empty(), "nothing may be stored");
    assert_no_leftovers(&dir);
}

#[test]
fn oci_blob_not_matching_its_name_is_refused() {
    let dir = TempDir::new("archive-oci-digest");
    let store = store_in(&dir);
    let image = TestImage::new(false);
    let manifest = image.manifest();
    let mut archive = ArchiveBuilder::new();
    archive.file("oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#);
    archive.file(
        &format!("blobs/sha256/{}", Digest::of_bytes(&manifest).hex()),
        &manifest,
    );
    archive.file(
        &format!("blobs/sha256/{}", image.config_digest().hex()),
        b"{}",
    );
    let index = json!({"schemaVersion": 2, "manifests": [
        descriptor("application/vnd.oci.image.manifest.v1+json", &manifest)]});
    archive.file("index.json", index.to_string().as_bytes());

    let err = load(&store, &archive.finish()[..]).unwrap_err();

    assert!(
        matches!(&err, ImageError::ArchiveMemberRefused { member, .. }
            if *member == format!("blobs/sha256/{}", image.config_digest().hex())),
        "{err:?}"
    );
    assert!(store.list().unwrap().is_empty());
}

#[test]
fn hostile_member_names_are_refused() {
    for (name, why) in [
        ("../evil", "'..'"),
        ("/etc/evil", "absolute"),
        ("a/../../evil", "'..'"),
    ] {
        let dir = TempDir::new("archive-hostile");
        let store = store_in(&dir);
        let mut archive = ArchiveBuilder::new();
        archive.raw_name(name, b"pwned");

        let err = load(&store, &archive.finish()[..]).unwrap_err();

        match &err {
            ImageError::ArchiveMemberRefused { member, reason } => {
                assert_eq!(member, name);
                assert!(reason.contains(why), "{reason}");
            }
            other => panic!("{name}: expected ArchiveMemberRefused, got {other:?}"),
        }
        assert!(!dir.path().join("evil").exists());
        assert_no_leftovers(&dir);
    }
}

#[test]
fn symlinks_leaving_the_archive_are_refused() {
    let dir = TempDir::new("archive-symlink");
    let store = store_in(&dir);
    let mut archive = ArchiveBuilder::new();
    archive.symlink("a/layer.tar", "../../etc/passwd");

    let err = load(&store, &archive.finish()[..]).unwrap_err();

    assert!(
        matches!(&err, ImageError::ArchiveMemberRefused { member, .. } if member == "a/layer.tar"),
        "{err:?}"
    );
}

#[test]
fn truncated_archive_is_refused_and_nothing_stored() {
    let dir = TempDir::new("archive-truncated");
    let store = store_in(&dir);
    let archive = docker_archive(&TestImage::new(false), &["a:1"]);
    // Cut inside the first layer's data (after its 512-byte header).
    let layer_offset = 512 * 3 + 512;

    let err = load(&store, &archive[..layer_offset + 100]).unwrap_err();

    assert!(matches!(err, ImageError::ArchiveIo { .. }), "{err:?}");
    assert!(store.list().unwrap().is_empty());
    assert_no_leftovers(&dir);
}

#[test]
fn a_tar_that_is_no_image_archive_is_refused() {
    let dir = TempDir::new("archive-none");
    let store = store_in(&dir);
    let archive = ArchiveBuilder::new().file("hello.txt", b"hi").finish();

    let err = load(&store, &archive[..]).unwrap_err();

    assert!(matches!(err, ImageError::InvalidArchive { .. }), "{err:?}");
    assert!(err.to_string().contains("manifest.json"), "{err}");
}

#[test]
fn missing_layer_member_is_named() {
    let dir = TempDir::new("archive-missing");
    let store = store_in(&dir);
    let image = TestImage::new(false);
    let config_name = format!("{}.json", image.config_digest().hex());
    let manifest = json!([{"Config": config_name, "RepoTags": null,
        "Layers": ["aaa/layer.tar", "gone/layer.tar"]}]);
    let archive = ArchiveBuilder::new()
        .file(&config_name, &image.config)
        .file("aaa/layer.tar", &image.layers[0])
        .file("manifest.json", manifest.to_string().as_bytes())
        .finish();

    let err = load(&store, &archive[..]).unwrap_err();

    assert!(
        matches!(&err, ImageError::ArchiveMemberMissing { member, .. } if member == "gone/layer.tar"),
        "{err:?}"
    );
    assert!(store.list().unwrap().is_empty());
}

// ---------------------------------------------------------------------------------------
// Interoperability with podman, skopeo and umoci.

fn which(prog: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_else(|| "/usr/sbin:/usr/bin:/sbin:/bin".into());
    std::env::split_paths(&path)
        .map(|d| d.join(prog))
        .find(|p| p.is_file())
}

fn output_text(o: &Output) -> String {
    format!(
        "status {}\nstdout: {}\nstderr: {}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// podman with all its state under one private directory.
struct Podman {
    dir: PathBuf,
}

impl Podman {
    fn new(dir: &Path) -> Podman {
        for d in ["storage", "run", "tmp", "xdg"] {
            fs::create_dir_all(dir.join(d)).unwrap();
        }
        let p = |name: &str| dir.join(name).display().to_string();
        let conf = format!(
            "[containers]\nlog_driver = \"k8s-file\"\n\n[engine]\nevents_logger = \"file\"\n\
             events_logfile_path = \"{}\"\ntmp_dir = \"{}\"\nstatic_dir = \"{}\"\n\
             image_copy_tmp_dir = \"{}\"\n",
            p("events.log"),
            p("tmp"),
            p("storage/libpod"),
            p("tmp"),
        );
        fs::write(dir.join("containers.conf"), conf).unwrap();
        let storage = format!(
            "[storage]\ndriver = \"vfs\"\ngraphroot = \"{}\"\nrunroot = \"{}\"\n",
            p("storage"),
            p("run")
        );
        fs::write(dir.join("storage.conf"), storage).unwrap();
        fs::write(
            dir.join("registries.conf"),
            "unqualified-search-registries = []\n",
        )
        .unwrap();
        Podman {
            dir: dir.to_path_buf(),
        }
    }

    /// Runs `podman <private storage> args` in a private mount namespace with a tmpfs
    /// over /var/lib/containers/cache (or its nearest existing parent): containers/image
    /// keeps a blob-info cache there for root that podman 4.3 cannot be told to move.
    fn run(&self, args: &[&str]) -> String {
        let shield = [
            "/var/lib/containers/cache",
            "/var/lib/containers",
            "/var/lib",
        ]
        .into_iter()
        .find(|d| Path::new(d).is_dir())
        .expect("/var/lib exists");
        let p = |name: &str| self.dir.join(name).display().to_string();
        let mut c = Command::new("unshare");
        c.args(["--mount", "--propagation", "private", "sh", "-c"])
            .arg("mount -t tmpfs kapsel-test-archive \"$0\" && exec \"$@\"")
            .arg(shield)
            .arg("podman")
            .args(["--root", &p("storage"), "--runroot", &p("run")])
            .args(["--storage-driver", "vfs", "--tmpdir", &p("tmp")])
            .args(args)
            .env("CONTAINERS_CONF", self.dir.join("containers.conf"))
            .env("CONTAINERS_STORAGE_CONF", self.dir.join("storage.conf"))
            .env(
                "CONTAINERS_REGISTRIES_CONF",
                self.dir.join("registries.conf"),
            )
            .env("TMPDIR", self.dir.join("tmp"))
            .env("XDG_RUNTIME_DIR", self.dir.join("xdg"))
            .env("XDG_CONFIG_HOME", self.dir.join("xdg"))
            .env("XDG_DATA_HOME", self.dir.join("xdg"))
            .env_remove("CONTAINER_HOST")
            .env_remove("CONTAINERS_STORAGE_OPTS");
        let o = c.output().expect("run podman");
        assert!(o.status.success(), "podman {args:?}: {}", output_text(&o));
        String::from_utf8(o.stdout).unwrap()
    }

    /// `RootFS.Layers`: the image's diff_ids as podman sees them.
    fn diff_ids(&self, image: &str) -> Vec<Digest> {
        let out = self.run(&["inspect", "--format", "{{json .RootFS.Layers}}", image]);
        serde_json::from_str(out.trim()).unwrap()
    }
}

fn load_file(store: &ContentStore, path: &Path) -> Vec<LoadedImage> {
    load(store, File::open(path).unwrap()).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn podman_archives_load_and_kapsel_archives_load_in_podman() {
    if which("podman").is_none() {
        eprintln!("SKIP: podman not installed");
        return;
    }
    let dir = TempDir::new("archive-podman");
    // Its own short directory: podman refuses a runroot longer than 50 characters.
    let podman_dir = TempDir::new("pm");
    let podman = Podman::new(podman_dir.path());
    let rootfs = dir.path().join("rootfs.tar");
    fs::write(
        &rootfs,
        layer_tar(&[
            ("bin/hello", b"#!/bin/sh\necho hi\n"),
            ("etc/hostname", b"podman\n"),
        ]),
    )
    .unwrap();
    let name = "localhost/kapsel-archive-test:latest";
    podman.run(&["import", "-q", &rootfs.display().to_string(), name]);
    let podman_layers = podman.diff_ids(name);
    let path = |n: &str| dir.path().join(n).display().to_string();
    podman.run(&[
        "save",
        "-q",
        "--format",
        "docker-archive",
        "-o",
        &path("d.tar"),
        name,
    ]);
    podman.run(&[
        "save",
        "-q",
        "--format",
        "oci-archive",
        "-o",
        &path("o.tar"),
        name,
    ]);

    let store = store_in(&dir);
    for file in ["d.tar", "o.tar"] {
        let loaded = load_file(&store, &dir.path().join(file));
        assert_eq!(loaded.len(), 1, "{file}");
        assert_eq!(loaded[0].diff_ids, podman_layers, "{file}");
        assert_stored(&store, &loaded[0]);
        if file == "d.tar" {
            assert_eq!(loaded[0].tags, [reference(name)], "{file}");
        }
    }

    // kapsel's docker-archive goes back into podman with the same layers.
    let from_docker = load_file(&store, &dir.path().join("d.tar")).remove(0);
    let saved_name = "localhost/kapsel-saved:1";
    let images = [SaveImage {
        manifest: from_docker.manifest.clone(),
        tags: vec![reference(saved_name)],
    }];
    for (format, file) in [
        (SaveFormat::DockerArchive, "k-docker.tar"),
        (SaveFormat::OciArchive, "k-oci.tar"),
    ] {
        save(
            &store,
            &images,
            format,
            File::create(dir.path().join(file)).unwrap(),
        )
        .unwrap();
    }
    podman.run(&["load", "-q", "-i", &path("k-docker.tar")]);
    assert_eq!(podman.diff_ids(saved_name), podman_layers);

    inspect_with_skopeo(&dir.path().join("k-oci.tar"), &from_docker);
    unpack_with_umoci(dir.path(), &dir.path().join("k-oci.tar"));
    // Every image podman stored is removed with its private storage (TempDir's drop).
}

/// skopeo reads kapsel's OCI archive and sees its layers.
fn inspect_with_skopeo(archive: &Path, image: &LoadedImage) {
    if which("skopeo").is_none() {
        eprintln!("SKIP: skopeo not installed (apt-get install skopeo)");
        return;
    }
    // The OCI ref.name annotation is the tag alone, as containerd and docker write it.
    let target = format!("oci-archive:{}:1", archive.display());
    let o = Command::new("skopeo")
        .args(["inspect", "--raw", &target])
        .output()
        .unwrap();
    assert!(o.status.success(), "skopeo inspect: {}", output_text(&o));
    assert_eq!(Digest::of_bytes(&o.stdout), image.manifest);
}

/// umoci unpacks kapsel's OCI layout into a runtime bundle.
fn unpack_with_umoci(dir: &Path, archive: &Path) {
    if which("umoci").is_none() {
        eprintln!("SKIP: umoci not installed (apt-get install umoci)");
        return;
    }
    let layout = dir.join("layout");
    fs::create_dir_all(&layout).unwrap();
    let o = Command::new("tar")
        .args([
            "-xf",
            &archive.display().to_string(),
            "-C",
            &layout.display().to_string(),
        ])
        .output()
        .unwrap();
    assert!(o.status.success(), "tar: {}", output_text(&o));
    let bundle = dir.join("bundle");
    let o = Command::new("umoci")
        .args([
            "unpack",
            "--image",
            &format!("{}:1", layout.display()),
            &bundle.display().to_string(),
        ])
        .output()
        .unwrap();
    assert!(o.status.success(), "umoci unpack: {}", output_text(&o));
    assert_eq!(
        fs::read(bundle.join("rootfs/etc/hostname")).unwrap(),
        b"podman\n"
    );
}
