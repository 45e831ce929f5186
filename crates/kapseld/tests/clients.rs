//! The everyday docker flows, driven by each docker CLI kapseld must serve: the current
//! one (28, API 1.47) and Debian 12's (20.10, API 1.41, older request shapes).

mod common;

use std::path::Path;

use common::*;

/// run --rm, run -d, ps, logs, exec, inspect -f, stop, rm, images, save and load with
/// the docker CLI at `client`.
fn basic_flows(name: &str, client: &'static str) {
    if !Path::new(client).exists() {
        eprintln!("SKIP: no docker CLI at {client} (scripts/install-deps.sh)");
        return;
    }
    let Some(mut d) = daemon_with_busybox(name) else {
        return;
    };
    d.use_client(client);

    let script = "echo out; echo err >&2; exit 3";
    let (code, out, err) = docker_full(&d, &["run", "--rm", "busybox", "sh", "-c", script], None);
    assert_eq!((code, out.as_str(), err.as_str()), (3, "out\n", "err\n"));
    let (code, out, _) = docker_full(&d, &["run", "--rm", "-i", "busybox", "cat"], Some(b"piped"));
    assert_eq!((code, out.as_str()), (0, "piped"));

    let id = ok(
        &d,
        &[
            "run",
            "-d",
            "--name",
            "bg",
            "busybox",
            "sh",
            "-c",
            "echo hello; exec sleep 1000",
        ],
    );
    let id = id.trim();
    assert_eq!(id.len(), 64, "{id}");
    wait_for(
        || ok(&d, &["logs", "bg"]) == "hello\n",
        "the container's log",
    );
    let ps = ok(
        &d,
        &[
            "ps",
            "--format",
            "{{.ID}} {{.Names}} {{.Image}} {{.Status}}",
        ],
    );
    assert!(
        ps.starts_with(&format!("{} bg busybox Up", &id[..12])),
        "{ps}"
    );
    assert_eq!(
        ok(&d, &["exec", "bg", "cat", "/etc/hostname"]),
        format!("{}\n", &id[..12])
    );
    let (code, _, _) = docker_full(&d, &["exec", "bg", "sh", "-c", "exit 5"], None);
    assert_eq!(code, 5);
    assert_eq!(
        inspect(&d, "{{.State.Running}} {{.Config.Image}} {{.Name}}", "bg"),
        "true busybox /bg"
    );
    assert_eq!(ok(&d, &["stop", "-t", "1", "bg"]), "bg\n");
    assert_eq!(
        inspect(&d, "{{.State.Running}} {{.State.ExitCode}}", "bg"),
        "false 137"
    );
    assert_eq!(ok(&d, &["rm", "bg"]), "bg\n");
    assert_eq!(ok(&d, &["ps", "-aq"]), "");

    let images = ok(&d, &["images", "--format", "{{.Repository}}:{{.Tag}}"]);
    assert!(images.lines().any(|l| l == "busybox:latest"), "{images}");
    let image_id = inspect(&d, "{{.Id}}", "busybox");
    let archive = d.dir.join("saved.tar");
    ok(&d, &["save", "-o", &archive.to_string_lossy(), "busybox"]);
    let (code, piped, err) = docker_bytes(&d, &["save", "busybox"], None);
    assert_eq!(code, 0, "{err}");
    ok(&d, &["rmi", "busybox"]);
    assert!(fails(&d, &["inspect", "busybox"]).contains("No such"));
    assert_eq!(
        ok(&d, &["load", "-i", &archive.to_string_lossy()]),
        "Loaded image: busybox:latest\n"
    );
    ok(&d, &["rmi", "busybox"]);
    let (code, out, err) = docker_full(&d, &["load"], Some(&piped));
    assert_eq!(
        (code, out.as_str()),
        (0, "Loaded image: busybox:latest\n"),
        "{err}"
    );
    assert_eq!(inspect(&d, "{{.Id}}", "busybox"), image_id);
    assert_eq!(
        ok(&d, &["run", "--rm", "busybox", "echo", "again"]),
        "again\n"
    );
}

#[test]
fn docker_28_basic_flows() {
    basic_flows("flows-28", DOCKER);
}

#[test]
fn docker_20_10_basic_flows() {
    basic_flows("flows-20", DOCKER_20_10);
}
