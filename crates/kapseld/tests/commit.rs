//! Images made from containers and tarballs, through the real docker CLI: `docker diff`,
//! `commit` (with `--change`, pausing a running container), `save | load` of a committed
//! image, `import`, `history`, `rmi` of an image in use, `image prune`, `system df`; and
//! a committed image run by podman.

mod common;

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use common::{
    daemon_with_busybox, daemon_with_cli, docker_full, fails, inspect, ok, run_sh, run_sleeping,
    wait_for, Daemon,
};
use serde_json::Value;

/// A GET through the API socket, its JSON body decoded (chunked or not).
fn api_json(d: &Daemon, path: &str) -> Value {
    let body = api_get(d, path);
    serde_json::from_slice(&body).unwrap_or_else(|e| panic!("GET {path}: {e}"))
}

/// A GET through the API socket that must answer 200; its body (chunked or not).
fn api_get(d: &Daemon, path: &str) -> Vec<u8> {
    let raw = d.http_bytes("GET", path, None);
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let head = String::from_utf8_lossy(&raw[..split]).to_ascii_lowercase();
    assert!(head.starts_with("http/1.1 200"), "GET {path}: {head}");
    let mut body = raw[split + 4..].to_vec();
    if head.contains("transfer-encoding: chunked") {
        let mut decoded = Vec::new();
        let mut rest = &body[..];
        loop {
            let line_end = rest.windows(2).position(|w| w == b"\r\n").unwrap();
            let size = usize::from_str_radix(String::from_utf8_lossy(&rest[..line_end]).trim(), 16)
                .unwrap();
            if size == 0 {
                break;
            }
            let start = line_end + 2;
            decoded.extend_from_slice(&rest[start..start + size]);
            rest = &rest[start + size + 2..];
        }
        body = decoded;
    }
    body
}

/// The image ID (`sha256:…`) a name resolves to.
fn image_id(d: &Daemon, name: &str) -> String {
    ok(d, &["image", "inspect", "-f", "{{.Id}}", name])
        .trim()
        .to_string()
}

/// The layers (diff IDs) of an image.
fn image_layers(d: &Daemon, image: &str) -> Vec<String> {
    let json = ok(
        d,
        &["image", "inspect", "-f", "{{json .RootFS.Layers}}", image],
    );
    serde_json::from_str(&json).unwrap_or_else(|e| panic!("{json}: {e}"))
}

/// `docker diff` of a container that added, changed and deleted files, in Docker's
/// format and order; then its commit runs with the change and without the deleted file.
#[test]
fn diff_then_commit_and_run_the_image() {
    let Some(d) = daemon_with_busybox("commit-diff") else {
        return;
    };
    run_sh(
        &d,
        &["--name", "ctr", "busybox"],
        "echo hello > /greeting; echo extra:x:1:1::/:/bin/false >> /etc/passwd; \
         rm /etc/group; mkdir -p /tmp/d; touch /tmp/d/f",
    );
    let diff = ok(&d, &["diff", "ctr"]);
    assert_eq!(
        diff, "C /etc\nD /etc/group\nC /etc/passwd\nA /greeting\nC /tmp\nA /tmp/d\nA /tmp/d/f\n",
        "the runtime's mount points (/etc/hostname, ...) are not changes"
    );
    let changes = api_json(&d, "/containers/ctr/changes");
    assert_eq!(changes[0], serde_json::json!({"Path": "/etc", "Kind": 0}));
    assert_eq!(
        changes[1],
        serde_json::json!({"Path": "/etc/group", "Kind": 2})
    );
    assert_eq!(
        changes[3],
        serde_json::json!({"Path": "/greeting", "Kind": 1})
    );
    let out = fails(&d, &["diff", "no-such-container"]);
    assert!(
        out.contains("No such container: no-such-container"),
        "{out}"
    );

    let out = ok(
        &d,
        &[
            "commit",
            "--change",
            r#"CMD ["cat","/greeting"]"#,
            "ctr",
            "img:1",
        ],
    );
    let id = out.trim();
    assert!(
        id.starts_with("sha256:") && id.len() == 71,
        "commit prints the image ID: {out}"
    );
    assert_eq!(image_id(&d, "img:1"), id);
    assert_eq!(ok(&d, &["run", "--rm", "img:1"]), "hello\n");
    assert_eq!(
        run_sh(
            &d,
            &["--rm", "img:1"],
            "test -e /etc/group && echo present || echo gone; grep -c extra /etc/passwd; \
             ls /tmp/d"
        ),
        "gone\n1\nf\n"
    );
    let layers = image_layers(&d, "img:1");
    let base = image_layers(&d, "busybox");
    assert_eq!(layers.len(), base.len() + 1);
    assert_eq!(layers[..base.len()], base[..]);
    // The new container of the committed image starts with no changes.
    ok(&d, &["create", "--name", "fresh", "img:1"]);
    ok(&d, &["start", "-a", "fresh"]);
    assert_eq!(ok(&d, &["diff", "fresh"]), "");

    // A commit with nothing changed adds no layer, and without a name is dangling.
    let out = ok(&d, &["commit", "fresh"]);
    let untagged = out.trim().to_string();
    assert_eq!(image_layers(&d, &untagged), layers);
    assert_eq!(
        ok(
            &d,
            &["image", "inspect", "-f", "{{json .RepoTags}}", &untagged]
        )
        .trim(),
        "[]"
    );
}

/// `--change` in every supported form, author and message, and the history they leave.
#[test]
fn commit_changes_author_message_and_history() {
    let Some(d) = daemon_with_busybox("commit-changes") else {
        return;
    };
    run_sh(
        &d,
        &["--name", "ctr", "-e", "FROM_RUN=1", "busybox"],
        "echo hi > /hi",
    );
    ok(
        &d,
        &[
            "commit",
            "-a",
            "Jane Doe <jane@example.org>",
            "-m",
            "a message",
            "--change",
            "ENV FOO=bar GREETING=\"hello world\"",
            "--change",
            "WORKDIR /",
            "--change",
            "WORKDIR tmp",
            "--change",
            "EXPOSE 8080 53/udp",
            "--change",
            "LABEL com.example.a=b",
            "--change",
            "USER nobody",
            "--change",
            "VOLUME /data",
            "--change",
            "STOPSIGNAL SIGINT",
            "--change",
            "ENTRYPOINT [\"/bin/sh\", \"-c\"]",
            "--change",
            "CMD echo $FOO from $(pwd)",
            "ctr",
            "changed:1",
        ],
    );
    let config: Value = serde_json::from_str(&ok(
        &d,
        &["image", "inspect", "-f", "{{json .Config}}", "changed:1"],
    ))
    .unwrap();
    let env: Vec<&str> = config["Env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    for var in ["FROM_RUN=1", "FOO=bar", "GREETING=hello world"] {
        assert!(env.contains(&var), "{var} in {env:?}");
    }
    assert!(env.iter().any(|e| e.starts_with("PATH=")), "{env:?}");
    assert_eq!(config["WorkingDir"], "/tmp");
    assert_eq!(
        config["ExposedPorts"],
        serde_json::json!({"8080/tcp": {}, "53/udp": {}})
    );
    assert_eq!(config["Labels"]["com.example.a"], "b");
    assert_eq!(config["User"], "nobody");
    assert_eq!(config["Volumes"], serde_json::json!({"/data": {}}));
    assert_eq!(config["StopSignal"], "SIGINT");
    assert_eq!(config["Entrypoint"], serde_json::json!(["/bin/sh", "-c"]));
    assert_eq!(
        config["Cmd"],
        serde_json::json!(["/bin/sh", "-c", "echo $FOO from $(pwd)"])
    );
    assert_eq!(
        ok(&d, &["image", "inspect", "-f", "{{.Author}}", "changed:1"]).trim(),
        "Jane Doe <jane@example.org>"
    );
    // The image runs with all of it: workdir, env.
    let out = ok(
        &d,
        &[
            "run",
            "--rm",
            "--user",
            "root",
            "changed:1",
            "echo $FOO/$GREETING/$(pwd)/$(cat /hi)",
        ],
    );
    assert_eq!(out, "bar/hello world//tmp/hi\n");

    let out = fails(&d, &["commit", "--change", "RUN echo nope", "ctr", "bad:1"]);
    assert!(out.contains("run is not a valid change command"), "{out}");
    let out = fails(
        &d,
        &["commit", "--change", "EXPOSE 80/nope", "ctr", "bad:1"],
    );
    assert!(out.contains("invalid proto"), "{out}");
    assert!(!ok(&d, &["images"]).contains("bad"));

    // History: the commit on top with its command, size and message; the image it was
    // made from below it; the base's own layers unknown.
    let history = ok(
        &d,
        &[
            "history",
            "--no-trunc",
            "--format",
            "{{.ID}}|{{.CreatedBy}}|{{.Size}}|{{.Comment}}|{{.CreatedSince}}",
            "changed:1",
        ],
    );
    let rows: Vec<Vec<&str>> = history.lines().map(|l| l.split('|').collect()).collect();
    assert_eq!(rows.len(), 2, "{history}");
    assert_eq!(rows[0][0], image_id(&d, "changed:1"));
    assert_eq!(rows[0][1], "sh -c echo hi > /hi");
    assert_ne!(
        rows[0][2], "0B",
        "the committed layer has a size: {history}"
    );
    assert_eq!(rows[0][3], "a message");
    assert!(
        rows[0][4].contains("second") || rows[0][4].contains("Less than"),
        "{history}"
    );
    assert_eq!(rows[1][0], image_id(&d, "busybox"), "{history}");
    let raw = api_json(&d, "/images/changed:1/history");
    assert_eq!(raw[0]["Tags"], serde_json::json!(["changed:1"]));
    assert_eq!(raw[1]["Tags"], serde_json::json!(["busybox:latest"]));
    assert!(raw[0]["Size"].as_u64().unwrap() > 0);
    assert!(
        raw[1]["Size"].as_u64().unwrap() > 1_000_000,
        "busybox's layer"
    );
    let out = fails(&d, &["history", "nope:1"]);
    assert!(out.contains("No such image"), "{out}");
}

/// A running container is frozen while committed (the default) and runs on after.
#[test]
fn commit_pauses_a_running_container_and_resumes_it() {
    let Some(d) = daemon_with_busybox("commit-pause") else {
        return;
    };
    run_sh(
        &d,
        &["-d", "--name", "runner", "busybox"],
        "echo live > /live; while true; do date +%s%N > /tick; sleep 0.05; done",
    );
    wait_for(
        || ok(&d, &["diff", "runner"]).contains("A /tick"),
        "the container to write",
    );
    let start = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    ok(&d, &["commit", "runner", "live:1"]);
    let until = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 1;
    assert_eq!(
        inspect(&d, "{{.State.Status}}", "runner"),
        "running",
        "resumed after the commit"
    );
    let events = ok(
        &d,
        &[
            "events",
            "--since",
            &start.to_string(),
            "--until",
            &until.to_string(),
            "--filter",
            "container=runner",
            "--format",
            "{{.Action}}",
        ],
    );
    // `--since` counts whole seconds: the container's create and start may be in it.
    let actions: Vec<&str> = events
        .lines()
        .filter(|a| matches!(*a, "pause" | "commit" | "unpause"))
        .collect();
    assert_eq!(actions, ["pause", "commit", "unpause"], "{events}");
    assert_eq!(ok(&d, &["run", "--rm", "live:1", "cat", "/live"]), "live\n");
    // --pause=false leaves it running throughout.
    ok(&d, &["commit", "--pause=false", "runner", "live:2"]);
    assert_eq!(ok(&d, &["run", "--rm", "live:2", "cat", "/live"]), "live\n");
    // A paused container stays paused.
    ok(&d, &["pause", "runner"]);
    ok(&d, &["commit", "runner", "live:3"]);
    assert_eq!(inspect(&d, "{{.State.Status}}", "runner"), "paused");
    ok(&d, &["unpause", "runner"]);
}

/// `docker save | docker load` of a committed image keeps its ID and layer digests, and
/// it still runs.
#[test]
fn save_and_load_keep_a_committed_image() {
    let Some(d) = daemon_with_busybox("commit-save") else {
        return;
    };
    run_sh(
        &d,
        &["--name", "ctr", "busybox"],
        "echo saved > /greeting; rm /etc/group",
    );
    ok(
        &d,
        &[
            "commit",
            "--change",
            r#"CMD ["cat","/greeting"]"#,
            "ctr",
            "img:1",
        ],
    );
    let id = image_id(&d, "img:1");
    let layers = image_layers(&d, "img:1");
    let archive = d.dir.join("img.tar");
    ok(&d, &["save", "-o", &archive.to_string_lossy(), "img:1"]);
    let out = ok(&d, &["rmi", "img:1"]);
    assert!(
        out.contains("Untagged: img:1") && out.contains("Deleted:"),
        "{out}"
    );
    let out = ok(&d, &["load", "-i", &archive.to_string_lossy()]);
    assert!(out.contains("Loaded image: img:1"), "{out}");
    assert_eq!(image_id(&d, "img:1"), id);
    assert_eq!(image_layers(&d, "img:1"), layers);
    assert_eq!(ok(&d, &["run", "--rm", "img:1"]), "saved\n");
    let listing = run_sh(&d, &["--rm", "img:1"], "ls /etc/group 2>&1 || true");
    assert!(listing.contains("No such file"), "{listing}");
    // Into a daemon that never had it: the same image.
    let other = Daemon::start("commit-save-other");
    ok(&other, &["load", "-i", &archive.to_string_lossy()]);
    assert_eq!(image_id(&other, "img:1"), id);
    assert_eq!(ok(&other, &["run", "--rm", "img:1"]), "saved\n");
    podman_runs_the_saved_image(&archive);

    // An OCI archive (`format=oci-archive`, a kapsel extension; `kapsel save --format`):
    // an OCI layout only, which kapsel, skopeo, umoci and podman read with the same
    // layers.
    let oci = d.dir.join("img-oci.tar");
    std::fs::write(
        &oci,
        api_get(&d, "/v1.47/images/get?names=img:1&format=oci-archive"),
    )
    .unwrap();
    let members: Vec<String> = tar::Archive::new(std::fs::File::open(&oci).unwrap())
        .entries()
        .unwrap()
        .map(|e| e.unwrap().path().unwrap().display().to_string())
        .collect();
    assert!(members.iter().any(|m| m == "oci-layout"), "{members:?}");
    assert!(!members.iter().any(|m| m == "manifest.json"), "{members:?}");
    let third = Daemon::start("commit-save-oci");
    let out = ok(&third, &["load", "-i", &oci.to_string_lossy()]);
    assert!(out.contains("img:1"), "{out}");
    assert_eq!(image_id(&third, "img:1"), id);
    assert_eq!(image_layers(&third, "img:1"), layers);
    assert_eq!(ok(&third, &["run", "--rm", "img:1"]), "saved\n");
    skopeo_copies_the_layers(&oci, &layers);
    umoci_unpacks_the_layout(&oci);
    podman_runs_the_saved_image(&oci);
}

/// `skopeo copy` of the OCI archive into a `dir:` keeps every layer's digest (the
/// layers are uncompressed, so their digests are the diff IDs).
fn skopeo_copies_the_layers(archive: &Path, layers: &[String]) {
    let Some(skopeo) = which("skopeo") else {
        eprintln!("SKIP (skopeo part): skopeo not installed");
        return;
    };
    let dir = archive.with_extension("skopeo-dir");
    let source = format!("oci-archive:{}:1", archive.display());
    let out = Command::new(&skopeo)
        .args(["copy", "-q", &source, &format!("dir:{}", dir.display())])
        .output()
        .unwrap();
    assert!(out.status.success(), "skopeo copy: {out:?}");
    for layer in layers {
        let hex = layer.trim_start_matches("sha256:");
        assert!(
            dir.join(hex).is_file(),
            "layer {layer} in {}",
            dir.display()
        );
    }
    let out = Command::new(&skopeo)
        .args(["inspect", &source])
        .output()
        .unwrap();
    assert!(out.status.success(), "skopeo inspect: {out:?}");
    let seen: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(seen["Layers"], serde_json::json!(layers));
}

/// `umoci unpack` of the OCI layout: the committed file is there, the deleted one not.
fn umoci_unpacks_the_layout(archive: &Path) {
    let Some(umoci) = which("umoci") else {
        eprintln!("SKIP (umoci part): umoci not installed");
        return;
    };
    let layout = archive.with_extension("layout");
    std::fs::create_dir_all(&layout).unwrap();
    tar::Archive::new(std::fs::File::open(archive).unwrap())
        .unpack(&layout)
        .unwrap();
    let bundle = archive.with_extension("bundle");
    let out = Command::new(&umoci)
        .args(["unpack", "--image", &format!("{}:1", layout.display())])
        .arg(&bundle)
        .output()
        .unwrap();
    assert!(out.status.success(), "umoci unpack: {out:?}");
    let rootfs = bundle.join("rootfs");
    assert_eq!(
        std::fs::read_to_string(rootfs.join("greeting")).unwrap(),
        "saved\n"
    );
    assert!(!rootfs.join("etc/group").exists());
}

/// A rootfs tarball: busybox, a shell link and /etc/motd.
fn rootfs_tar() -> Vec<u8> {
    let busybox = std::fs::read("/bin/busybox").unwrap();
    let mut tar = tar::Builder::new(Vec::new());
    let mut add = |name: &str, kind: tar::EntryType, mode: u32, data: &[u8], link: Option<&str>| {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        h.set_mode(mode);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(1_700_000_000);
        h.set_size(data.len() as u64);
        match link {
            Some(l) => tar.append_link(&mut h, name, l).unwrap(),
            None => tar.append_data(&mut h, name, data).unwrap(),
        }
    };
    add("./", tar::EntryType::Directory, 0o755, b"", None);
    add("./bin/", tar::EntryType::Directory, 0o755, b"", None);
    add(
        "./bin/busybox",
        tar::EntryType::Regular,
        0o755,
        &busybox,
        None,
    );
    add(
        "./bin/sh",
        tar::EntryType::Symlink,
        0o777,
        b"",
        Some("busybox"),
    );
    add(
        "./bin/cat",
        tar::EntryType::Symlink,
        0o777,
        b"",
        Some("busybox"),
    );
    add("./etc/", tar::EntryType::Directory, 0o755, b"", None);
    add(
        "./etc/motd",
        tar::EntryType::Regular,
        0o644,
        b"imported rootfs\n",
        None,
    );
    tar.into_inner().unwrap()
}

#[test]
fn import_a_tarball_then_run_it() {
    let Some(d) = daemon_with_cli("commit-import") else {
        return;
    };
    let plain = rootfs_tar();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&plain).unwrap();
    let gz = gz.finish().unwrap();
    let file = d.dir.join("rootfs.tar.gz");
    std::fs::write(&file, &gz).unwrap();
    let out = ok(
        &d,
        &[
            "import",
            "--change",
            "CMD [\"/bin/cat\", \"/etc/motd\"]",
            "--change",
            "ENV PATH=/bin",
            "-m",
            "from a test",
            &file.to_string_lossy(),
            "imp:1",
        ],
    );
    let id = image_id(&d, "imp:1");
    assert_eq!(out.trim(), id, "import prints the image ID");
    assert_eq!(ok(&d, &["run", "--rm", "imp:1"]), "imported rootfs\n");
    assert_eq!(
        ok(&d, &["run", "--rm", "imp:1", "sh", "-c", "echo $PATH"]),
        "/bin\n"
    );
    let history = ok(
        &d,
        &[
            "history",
            "--no-trunc",
            "--format",
            "{{.ID}}|{{.Comment}}",
            "imp:1",
        ],
    );
    assert_eq!(history, format!("{id}|from a test\n"));
    let layers = image_layers(&d, "imp:1");
    let plain_digest = kapsel_image::digest::Digest::of_bytes(&plain).to_string();
    assert_eq!(layers, [plain_digest], "the layer is the uncompressed tar");

    // From stdin, uncompressed, default message.
    let (code, out, err) = docker_full(&d, &["import", "-", "imp:2"], Some(&plain));
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(
        ok(&d, &["history", "--format", "{{.Comment}}", "imp:2"]),
        "Imported from -\n"
    );
    assert_eq!(
        ok(&d, &["run", "--rm", "imp:2", "/bin/cat", "/etc/motd"]),
        "imported rootfs\n"
    );
    // Not a tarball: refused, nothing named.
    let (code, out, err) = docker_full(
        &d,
        &["import", "-", "broken:1"],
        Some(
            &b"\x7fELF not a tar archive at all, but long enough to be read as a header."
                .repeat(20),
        ),
    );
    assert_ne!(code, 0, "{out}{err}");
    assert!(!ok(&d, &["images"]).contains("broken"));
    let out = fails(
        &d,
        &["import", "https://example.invalid/rootfs.tar", "url:1"],
    );
    assert!(out.contains("not supported"), "{out}");
    let out = fails(&d, &["pull", "busybox"]);
    assert!(out.contains("not supported"), "{out}");
}

/// `rmi` refuses an image a container uses (running or stopped) unless forced, and then
/// only untags it; `image prune` removes dangling, `-a` every unused image, and nothing
/// any container uses, leaving exactly the data the remaining images need.
#[test]
fn rmi_refuses_images_in_use_and_prune_removes_only_unused_ones() {
    let Some(d) = daemon_with_busybox("commit-prune") else {
        return;
    };
    let busybox = image_id(&d, "busybox");
    let short_image = &busybox[7..19];
    run_sh(&d, &["--name", "stopped", "busybox"], "echo x > /x");
    let stopped = inspect(&d, "{{.Id}}", "stopped");
    let out = fails(&d, &["rmi", &busybox]);
    assert!(
        out.contains(&format!(
            "conflict: unable to delete {short_image} (must be forced) - image is being used by stopped container {}",
            &stopped[..12]
        )),
        "{out}"
    );
    let out = fails(&d, &["rmi", "busybox"]);
    assert!(
        out.contains("conflict: unable to remove repository reference \"busybox\" (must force)")
            && out.contains(&stopped[..12]),
        "{out}"
    );
    run_sleeping(&d, "running");
    let running = inspect(&d, "{{.Id}}", "running");
    let out = fails(&d, &["rmi", &busybox[7..19]]);
    assert!(
        out.contains(&format!(
            "(must be forced) - image is being used by running container {}",
            &running[..12]
        )),
        "{out}"
    );

    // Images: img:1 (unused), imp:1 (unused, imported), a dangling commit (unused), and a
    // second tag of busybox.
    ok(&d, &["commit", "stopped", "img:1"]);
    let img = image_id(&d, "img:1");
    ok(&d, &["commit", "stopped"]);
    let (code, out, err) = docker_full(&d, &["import", "-", "imp:1"], Some(&rootfs_tar()));
    assert_eq!(code, 0, "{out}{err}");
    let imp = image_id(&d, "imp:1");
    ok(&d, &["tag", "busybox", "bb:other"]);
    let images = |d: &Daemon| {
        let mut list: Vec<String> =
            ok(d, &["images", "-a", "--format", "{{.Repository}}:{{.Tag}}"])
                .lines()
                .map(String::from)
                .collect();
        list.sort();
        list
    };
    assert_eq!(
        images(&d),
        [
            "<none>:<none>",
            "bb:other",
            "busybox:latest",
            "img:1",
            "imp:1"
        ]
    );
    // A second tag of a used image can go.
    let out = ok(&d, &["rmi", "bb:other"]);
    assert_eq!(out.trim(), "Untagged: bb:other");

    let out = ok(&d, &["image", "prune", "-f"]);
    assert!(out.contains("deleted: sha256:"), "{out}");
    assert!(out.contains("Total reclaimed space:"), "{out}");
    assert_eq!(
        images(&d),
        ["busybox:latest", "img:1", "imp:1"],
        "only the dangling one"
    );

    let out = ok(&d, &["image", "prune", "-a", "-f"]);
    for line in [
        "untagged: img:1".to_string(),
        format!("deleted: {img}"),
        "untagged: imp:1".to_string(),
        format!("deleted: {imp}"),
    ] {
        assert!(out.contains(&line), "{line} in {out}");
    }
    assert!(!out.contains(&busybox), "{out}");
    let reclaimed = out
        .lines()
        .find_map(|l| l.strip_prefix("Total reclaimed space: "))
        .unwrap();
    assert_ne!(reclaimed, "0B", "{out}");
    assert_eq!(images(&d), ["busybox:latest"]);
    // Exactly busybox's blobs (config, manifest, layer) and layer snapshot are left.
    let data = d.dir.join("data");
    let blobs = std::fs::read_dir(data.join("content/blobs/sha256"))
        .unwrap()
        .count();
    assert_eq!(blobs, 3, "blobs left");
    let layers: Vec<String> = std::fs::read_dir(data.join("snapshots/layers"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(layers.len(), 1, "{layers:?}");
    // Nothing more to prune, and the containers still work.
    let out = ok(&d, &["image", "prune", "-a", "-f"]);
    assert!(out.contains("Total reclaimed space: 0B"), "{out}");
    assert_eq!(
        ok(&d, &["exec", "running", "echo", "still here"]),
        "still here\n"
    );
    ok(&d, &["start", "stopped"]);

    // Forced: only the tag goes; the image stays for its containers.
    let out = ok(&d, &["rmi", "-f", "busybox"]);
    assert_eq!(out.trim(), "Untagged: busybox:latest");
    assert_eq!(image_id(&d, &busybox), busybox);
    // With no tag left, forcing cannot help: the image is not deleted from under them.
    let out = fails(&d, &["rmi", "-f", &busybox]);
    assert!(
        out.contains("(cannot be forced) - image is being used by running container"),
        "{out}"
    );
    ok(&d, &["rm", "-f", "running"]);
    ok(&d, &["restart", "stopped"]);
    ok(&d, &["rm", "-f", "stopped"]);
    // No container left: the dangling image is pruned.
    let out = ok(&d, &["image", "prune", "-f"]);
    assert!(out.contains(&format!("deleted: {busybox}")), "{out}");
    assert!(
        ok(&d, &["images", "-aq"]).trim().is_empty(),
        "no image left"
    );
}

/// `docker system df` (and `-v`) numbers match what is on disk.
#[test]
fn system_df_reports_image_and_container_sizes() {
    let Some(d) = daemon_with_busybox("commit-df") else {
        return;
    };
    ok(&d, &["create", "--name", "idle", "busybox", "true"]);
    ok(
        &d,
        &[
            "run",
            "--name",
            "writer",
            "busybox",
            "dd",
            "if=/dev/zero",
            "of=/blob",
            "bs=1024",
            "count=1024",
        ],
    );
    let df = api_json(&d, "/system/df");
    let busybox_size = std::fs::metadata("/bin/busybox").unwrap().len();
    let layers_size = df["LayersSize"].as_u64().unwrap();
    assert!(layers_size > busybox_size, "{df}");
    let images = df["Images"].as_array().unwrap();
    assert_eq!(images.len(), 1, "{df}");
    assert_eq!(images[0]["Id"], image_id(&d, "busybox"));
    assert_eq!(images[0]["Size"].as_u64().unwrap(), layers_size);
    assert_eq!(images[0]["SharedSize"], 0);
    assert_eq!(images[0]["Containers"], 2);
    assert_eq!(images[0]["RepoTags"], serde_json::json!(["busybox:latest"]));
    let containers: BTreeMap<String, &Value> = df["Containers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["Names"][0].as_str().unwrap().to_string(), c))
        .collect();
    let writer = containers["/writer"];
    let rw = writer["SizeRw"].as_u64().unwrap();
    assert!(
        (1_048_576..1_048_576 + 64 * 1024).contains(&rw),
        "1 MiB written, SizeRw {rw}"
    );
    assert_eq!(writer["SizeRootFs"].as_u64().unwrap(), rw + layers_size);
    assert_eq!(containers["/idle"]["SizeRw"], 0);
    assert_eq!(df["Volumes"], serde_json::json!([]));
    assert_eq!(df["BuildCache"], serde_json::json!([]));

    // A commit of the writer shares busybox's layer and adds the 1 MiB one.
    ok(&d, &["commit", "writer", "big:1"]);
    let df = api_json(&d, "/system/df");
    let by_tag = |tag: &str| {
        df["Images"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["RepoTags"][0] == tag)
            .unwrap()
            .clone()
    };
    let big = by_tag("big:1");
    let base = by_tag("busybox:latest");
    assert_eq!(big["SharedSize"], base["Size"]);
    assert_eq!(base["SharedSize"], base["Size"]);
    let big_size = big["Size"].as_u64().unwrap();
    assert!(big_size >= layers_size + 1_048_576, "{big}");
    assert_eq!(
        df["LayersSize"].as_u64().unwrap(),
        big_size,
        "busybox's layer counted once"
    );
    assert_eq!(big["Containers"], 0);

    let out = ok(&d, &["system", "df"]);
    for word in ["Images", "Containers", "Local Volumes", "Build Cache"] {
        assert!(out.contains(word), "{word} in {out}");
    }
    let images_row: Vec<&str> = out
        .lines()
        .find(|l| l.starts_with("Images"))
        .unwrap()
        .split_whitespace()
        .collect();
    assert_eq!(images_row[1..3], ["2", "1"], "total and active: {out}");
    let containers_row: Vec<&str> = out
        .lines()
        .find(|l| l.starts_with("Containers"))
        .unwrap()
        .split_whitespace()
        .collect();
    assert_eq!(containers_row[1..4], ["2", "0", "1.049MB"], "{out}");
    let out = ok(&d, &["system", "df", "-v"]);
    assert!(out.contains("busybox") && out.contains("big"), "{out}");
    let writer_row = out.lines().find(|l| l.contains("writer")).unwrap();
    assert!(writer_row.contains("1.05MB"), "{writer_row}");
    let big_row = out.lines().find(|l| l.starts_with("big")).unwrap();
    assert!(
        big_row.contains("1.05MB"),
        "unique size of big:1: {big_row}"
    );
}

// -----------------------------------------------------------------------------------
// podman

/// The hard limit of an rlimit of this process (what podman may give containers; root
/// here may lack CAP_SYS_RESOURCE to raise it).
fn hard_limit(resource: libc::__rlimit_resource_t) -> u64 {
    let mut rl = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes one rlimit.
    let r = unsafe { libc::getrlimit(resource, &mut rl) };
    assert_eq!(r, 0);
    if rl.rlim_max == libc::RLIM_INFINITY {
        1_048_576
    } else {
        rl.rlim_max
    }
}

fn which(prog: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_else(|| "/usr/sbin:/usr/bin:/sbin:/bin".into());
    std::env::split_paths(&path)
        .map(|d| d.join(prog))
        .find(|p| p.is_file())
}

/// Loads the archive into a private podman store (vfs, its own run root, tmp dir and
/// config; kapsel-runtime as the runtime, through a wrapper that keeps its state private)
/// and runs the image: podman must see the committed file.
fn podman_runs_the_saved_image(archive: &Path) {
    let Some(podman) = which("podman") else {
        eprintln!("SKIP (podman part): podman not installed");
        return;
    };
    let dir = std::env::temp_dir().join(format!("kapsel-commit-podman-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    for sub in ["storage", "run", "tmp", "xdg", "runtime-state", "networks"] {
        std::fs::create_dir_all(dir.join(sub)).unwrap();
    }
    let runtime = Path::new(env!("CARGO_BIN_EXE_kapseld"))
        .with_file_name("kapsel-runtime")
        .canonicalize()
        .unwrap();
    let wrapper = dir.join("runtime");
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\nexec '{}' --root '{}' \"$@\"\n",
            runtime.display(),
            dir.join("runtime-state").display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(
        &wrapper,
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let p = |name: &str| dir.join(name).display().to_string();
    std::fs::write(
        dir.join("containers.conf"),
        format!(
            "[containers]\nlog_driver = \"k8s-file\"\n\
             default_ulimits = [\"nofile={nofile}:{nofile}\", \"nproc={nproc}:{nproc}\"]\n\n\
             [engine]\nruntime = \"kapsel\"\n\
             cgroup_manager = \"cgroupfs\"\nevents_logger = \"file\"\n\
             events_logfile_path = \"{}\"\nlock_type = \"file\"\ntmp_dir = \"{}\"\n\
             static_dir = \"{}\"\nvolume_path = \"{}\"\nimage_copy_tmp_dir = \"{}\"\n\n\
             [engine.runtimes]\nkapsel = [\"{}\"]\n\n[network]\nnetwork_config_dir = \"{}\"\n",
            p("events.log"),
            p("tmp"),
            p("storage/libpod"),
            p("storage/volumes"),
            p("tmp"),
            wrapper.display(),
            p("networks"),
            nofile = hard_limit(libc::RLIMIT_NOFILE),
            // As kapsel-runtime's podman tests: no more than pid_max.
            nproc = hard_limit(libc::RLIMIT_NPROC).min(
                std::fs::read_to_string("/proc/sys/kernel/pid_max")
                    .ok()
                    .and_then(|m| m.trim().parse().ok())
                    .unwrap_or(32768)
            ),
        ),
    )
    .unwrap();
    std::fs::write(
        dir.join("storage.conf"),
        format!(
            "[storage]\ndriver = \"vfs\"\ngraphroot = \"{}\"\nrunroot = \"{}\"\n",
            p("storage"),
            p("run")
        ),
    )
    .unwrap();
    std::fs::write(
        dir.join("registries.conf"),
        "unqualified-search-registries = []\n",
    )
    .unwrap();
    let cgroup_parent = format!("/kapsel-commit-podman-{}", std::process::id());
    let podman_cmd = |args: &[&str]| {
        let out = Command::new(&podman)
            .args(["--root", &p("storage"), "--runroot", &p("run")])
            .args(["--storage-driver", "vfs", "--tmpdir", &p("tmp")])
            .args(args)
            .env("CONTAINERS_CONF", dir.join("containers.conf"))
            .env("CONTAINERS_STORAGE_CONF", dir.join("storage.conf"))
            .env("CONTAINERS_REGISTRIES_CONF", dir.join("registries.conf"))
            .env("TMPDIR", dir.join("tmp"))
            .env("XDG_RUNTIME_DIR", dir.join("xdg"))
            .env("XDG_CONFIG_HOME", dir.join("xdg"))
            .env("XDG_DATA_HOME", dir.join("xdg"))
            .env_remove("CONTAINER_HOST")
            .env_remove("CONTAINERS_STORAGE_OPTS")
            .stdin(Stdio::null())
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned()
                + &String::from_utf8_lossy(&out.stderr),
        )
    };
    let (loaded, out) = podman_cmd(&["load", "-i", &archive.to_string_lossy()]);
    let result = std::panic::catch_unwind(|| {
        assert!(loaded, "podman load: {out}");
        let name = out
            .lines()
            .find_map(|l| l.strip_prefix("Loaded image: "))
            .unwrap_or_else(|| panic!("podman load names the image: {out}"))
            .trim()
            .to_string();
        assert!(name.ends_with(":1"), "{out}");
        let (ran, out) = podman_cmd(&[
            "run",
            "--rm",
            "--network",
            "none",
            "--cgroup-parent",
            &cgroup_parent,
            &name,
        ]);
        assert!(ran, "podman run: {out}");
        assert_eq!(out, "saved\n", "podman sees the committed file");
        let (ran, out) = podman_cmd(&[
            "run",
            "--rm",
            "--network",
            "none",
            "--cgroup-parent",
            &cgroup_parent,
            &name,
            "sh",
            "-c",
            "test -e /etc/group && echo present || echo gone",
        ]);
        assert!(ran, "podman run: {out}");
        assert_eq!(out, "gone\n", "podman sees the deletion (a whiteout)");
    });
    let _ = podman_cmd(&["rm", "-af"]);
    let _ = podman_cmd(&["rmi", "-af"]);
    for hierarchy in std::fs::read_dir("/sys/fs/cgroup")
        .into_iter()
        .flatten()
        .flatten()
    {
        remove_cgroup_tree(&hierarchy.path().join(cgroup_parent.trim_start_matches('/')));
    }
    let _ = Command::new("umount")
        .args(["-R", &dir.join("storage").display().to_string()])
        .stderr(Stdio::null())
        .status();
    let _ = std::fs::remove_dir_all(&dir);
    if let Err(panic) = result {
        std::panic::resume_unwind(panic);
    }
}

/// Removes an (empty of processes) cgroup directory and the ones below it, deepest first:
/// podman puts conmon in a child cgroup of the parent it was given.
fn remove_cgroup_tree(dir: &std::path::Path) {
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                remove_cgroup_tree(&entry.path());
            }
        }
    }
    let _ = std::fs::remove_dir(dir);
}
