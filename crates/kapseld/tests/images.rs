//! The image endpoints, driven by the real docker CLI: load, list, inspect, tag, remove
//! and save.

mod common;

use std::path::PathBuf;
use std::process::Command;

use common::{daemon_with_cli, ok, Daemon};
use kapsel_image::digest::Digest;

/// A docker-archive of one image, `hello-test:1`, with the built-in hello layer; returns
/// its path, the config digest (the image ID) and the layer's diff ID.
fn hello_archive(d: &Daemon) -> (PathBuf, Digest, Digest) {
    let layer = kapsel_image::hello::layer();
    let diff_id = Digest::of_bytes(&layer);
    let config = serde_json::json!({
        "architecture": "amd64",
        "os": "linux",
        "created": "2024-02-29T12:30:15Z",
        "config": {"Cmd": ["/hello"], "Labels": {"test": "yes"}},
        "rootfs": {"type": "layers", "diff_ids": [diff_id.to_string()]},
    })
    .to_string();
    let config_id = Digest::of_bytes(config.as_bytes());
    let manifest = serde_json::json!([{
        "Config": format!("blobs/sha256/{}", config_id.hex()),
        "RepoTags": ["hello-test:1"],
        "Layers": [format!("blobs/sha256/{}", diff_id.hex())],
    }])
    .to_string();
    let mut tar = tar::Builder::new(Vec::new());
    for (name, data) in [
        (format!("blobs/sha256/{}", diff_id.hex()), layer.as_slice()),
        (
            format!("blobs/sha256/{}", config_id.hex()),
            config.as_bytes(),
        ),
        ("manifest.json".to_string(), manifest.as_bytes()),
    ] {
        let mut header = tar::Header::new_ustar();
        header.set_size(data.len() as u64);
        header.set_mode(0o644);
        header.set_entry_type(tar::EntryType::Regular);
        tar.append_data(&mut header, name, data).unwrap();
    }
    let path = d.dir.join("hello.tar");
    std::fs::write(&path, tar.into_inner().unwrap()).unwrap();
    (path, config_id, diff_id)
}

/// A daemon with `hello-test:1` loaded, or `None` (after saying so) without a docker CLI.
fn daemon_with_hello(name: &str) -> Option<(Daemon, Digest, Digest)> {
    let d = daemon_with_cli(name)?;
    let (archive, id, diff_id) = hello_archive(&d);
    let (ok, out) = d.docker(&["load", "-i", &archive.to_string_lossy()]);
    assert!(ok, "{out}");
    assert_eq!(out.trim(), "Loaded image: hello-test:1");
    Some((d, id, diff_id))
}

#[test]
fn load_list_inspect_tag_save_and_remove() {
    let Some((d, id, diff_id)) = daemon_with_hello("images-flow") else {
        return;
    };
    let list = ok(&d, &["images"]);
    let line = list
        .lines()
        .find(|l| l.starts_with("hello-test"))
        .expect(&list);
    let fields: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(fields[1], "1", "{list}");
    assert_eq!(fields[2], &id.hex()[..12], "{list}");
    assert!(line.ends_with('B'), "a size: {list}");

    let inspect = ok(
        &d,
        &[
            "image",
            "inspect",
            "-f",
            "{{.Id}} {{json .RootFS.Layers}} {{.Os}}",
            "hello-test:1",
        ],
    );
    assert_eq!(inspect.trim(), format!("{id} [\"{diff_id}\"] linux"));

    ok(&d, &["tag", "hello-test:1", "other/name:2"]);
    let list = ok(
        &d,
        &["images", "--format", "{{.Repository}}:{{.Tag}} {{.ID}}"],
    );
    assert!(
        list.contains(&format!("hello-test:1 {}", &id.hex()[..12])),
        "{list}"
    );
    assert!(
        list.contains(&format!("other/name:2 {}", &id.hex()[..12])),
        "{list}"
    );

    assert_eq!(
        ok(&d, &["rmi", "other/name:2"]).trim(),
        "Untagged: other/name:2"
    );

    let saved = d.dir.join("saved.tar");
    ok(
        &d,
        &["save", "-o", &saved.to_string_lossy(), "hello-test:1"],
    );
    let out = Command::new("tar").arg("tf").arg(&saved).output().unwrap();
    let members = String::from_utf8_lossy(&out.stdout);
    assert!(members.contains("manifest.json"), "{members}");
    assert!(
        members.contains(&format!("blobs/sha256/{}", id.hex())),
        "{members}"
    );
    assert!(
        members.contains(&format!("blobs/sha256/{}", diff_id.hex())),
        "{members}"
    );

    let removed = ok(&d, &["rmi", "hello-test:1"]);
    assert_eq!(
        removed.trim(),
        format!("Untagged: hello-test:1\nDeleted: {id}")
    );
    assert_eq!(ok(&d, &["images", "-q"]).trim(), "");
    let blobs = d.dir.join("data/content/blobs/sha256");
    assert_eq!(std::fs::read_dir(&blobs).unwrap().count(), 0, "blobs left");

    // What was saved loads again.
    let out = ok(&d, &["load", "-i", &saved.to_string_lossy()]);
    assert_eq!(out.trim(), "Loaded image: hello-test:1");
}

#[test]
fn unknown_images_are_reported_as_docker_does() {
    let Some(d) = daemon_with_cli("images-unknown") else {
        return;
    };
    let saved = d.dir.join("saved.tar").to_string_lossy().into_owned();
    for args in [
        &["image", "inspect", "nope"][..],
        &["rmi", "nope"],
        &["tag", "nope", "other:1"],
        &["save", "-o", &saved, "nope"],
    ] {
        let (ok, out) = d.docker(args);
        assert!(!ok, "docker {args:?} succeeded: {out}");
        assert!(out.contains("No such image"), "docker {args:?}: {out}");
    }
    std::fs::write(&saved, "not an archive").unwrap();
    let (ok, out) = d.docker(&["load", "-i", &saved]);
    assert!(!ok, "{out}");
    assert!(out.contains("image archive"), "{out}");
    let (ok, out) = d.docker(&["pull", "busybox"]);
    assert!(!ok, "{out}");
    assert!(
        out.contains("pulling from registries is not supported yet"),
        "{out}"
    );
    let r = d.http("GET", "/v1.47/images/nope/json");
    assert!(r.starts_with("HTTP/1.1 404"), "{r}");
    assert!(r.contains(r#"{"message":"No such image: nope"}"#), "{r}");
}

#[test]
fn names_with_registry_and_path_work_and_ids_need_force_when_shared() {
    let Some((d, id, _)) = daemon_with_hello("images-names") else {
        return;
    };
    ok(&d, &["tag", "hello-test:1", "localhost:5000/a/b:t"]);
    let inspect = ok(
        &d,
        &[
            "image",
            "inspect",
            "-f",
            "{{json .RepoTags}}",
            "localhost:5000/a/b:t",
        ],
    );
    assert_eq!(inspect.trim(), r#"["hello-test:1","localhost:5000/a/b:t"]"#);

    let short = &id.hex()[..12];
    let (refused, out) = d.docker(&["rmi", short]);
    assert!(!refused, "{out}");
    assert!(out.contains("must be forced"), "{out}");

    let removed = ok(&d, &["rmi", "-f", short]);
    assert!(
        removed.contains("Untagged: localhost:5000/a/b:t"),
        "{removed}"
    );
    assert!(removed.contains("Untagged: hello-test:1"), "{removed}");
    assert!(removed.contains(&format!("Deleted: {id}")), "{removed}");
    assert_eq!(ok(&d, &["images", "-q"]).trim(), "");
}
