//! kapseld answers the real docker CLI and speaks the Engine API's version rules.

mod common;

use common::*;

#[test]
fn the_docker_cli_sees_a_kapsel_server() {
    let Some(d) = daemon_with_cli("cli") else {
        return;
    };
    let (ok, version) = d.docker(&["version"]);
    assert!(ok, "{version}");
    assert!(version.contains("Server: kapsel"), "{version}");
    assert!(version.contains("1.47"), "{version}");
    let (ok, info) = d.docker(&["info"]);
    assert!(ok, "{info}");
    assert!(info.contains("Cgroup Driver: cgroupfs"), "{info}");
    assert!(
        info.contains(&d.dir.join("data").display().to_string()),
        "{info}"
    );
    let (ok, format) = d.docker(&["version", "--format", "{{.Server.APIVersion}}"]);
    assert!(ok && format.trim() == "1.47", "{format}");
}

#[test]
fn ping_answers_get_and_head_with_the_negotiation_headers() {
    let d = Daemon::start("ping");
    for method in ["GET", "HEAD"] {
        let r = d.http(method, "/_ping");
        assert!(r.starts_with("HTTP/1.1 200"), "{method}: {r}");
        let lower = r.to_ascii_lowercase();
        assert!(lower.contains("api-version: 1.47"), "{method}: {r}");
        assert!(lower.contains("ostype: linux"), "{method}: {r}");
    }
    assert!(d.http("GET", "/_ping").ends_with("OK"));
}

#[test]
fn api_versions_out_of_range_are_refused_as_docker_does() {
    let d = Daemon::start("versions");
    let too_new = d.http("GET", "/v1.99/version");
    assert!(too_new.starts_with("HTTP/1.1 400"), "{too_new}");
    assert!(
        too_new.contains("client version 1.99 is too new. Maximum supported API version is 1.47"),
        "{too_new}"
    );
    let too_old = d.http("GET", "/v1.12/version");
    assert!(too_old.starts_with("HTTP/1.1 400"), "{too_old}");
    assert!(
        too_old.contains("is too old. Minimum supported API version is 1.24"),
        "{too_old}"
    );
    for path in ["/v1.24/info", "/v1.47/version", "/version"] {
        assert!(d.http("GET", path).starts_with("HTTP/1.1 200"), "{path}");
    }
    let missing = d.http("GET", "/v1.47/nonexistent");
    assert!(missing.starts_with("HTTP/1.1 404"), "{missing}");
    assert!(missing.contains("\"message\""), "{missing}");
}

#[test]
fn the_socket_is_removed_on_shutdown() {
    let mut d = Daemon::start("shutdown");
    d.stop();
    assert!(!d.socket().exists(), "socket left behind");
    assert!(d.dir.exists(), "only the socket goes; the data root stays");
}

/// JSON requests over 2 MiB are refused with 413 and Docker's error shape, whatever the
/// endpoint; archives far larger than that still stream in (load, import, cp).
#[test]
fn oversized_json_bodies_are_refused_and_archives_are_not_limited() {
    let Some(d) = daemon_with_busybox("big-bodies") else {
        return;
    };
    const LIMIT: usize = 2 << 20;
    let message = "request body too large: JSON requests may hold 2 MiB at most";

    // The docker CLI's own request: an environment of `lines` variables of 1 kB.
    let env_file = d.dir.join("big.env");
    let create_with_env = |lines: usize| {
        let line = |i: usize| format!("V{i}={}\n", "x".repeat(1000));
        std::fs::write(&env_file, (0..lines).map(line).collect::<String>()).unwrap();
        let env_file = env_file.to_string_lossy();
        d.docker(&[
            "create",
            "--name",
            "big",
            "--env-file",
            &env_file,
            "busybox",
        ])
    };
    let (created, out) = create_with_env(3500);
    assert!(!created && out.contains(message), "{out}");
    // Under the limit, the same kind of request is fine.
    let (created, out) = create_with_env(1500);
    assert!(created, "{out}");
    assert_eq!(inspect(&d, "{{len .Config.Env}}", "big"), "1501");

    run_sleeping(&d, "up");
    let exec_id = {
        let answer = d.http_bytes(
            "POST",
            "/containers/up/exec",
            Some(("application/json", br#"{"Cmd":["true"]}"#)),
        );
        let answer = String::from_utf8_lossy(&answer).into_owned();
        assert!(answer.starts_with("HTTP/1.1 201"), "{answer}");
        answer
            .split("\"Id\":\"")
            .nth(1)
            .unwrap()
            .split('"')
            .next()
            .unwrap()
            .to_string()
    };
    let padding = format!("{{\"Pad\":\"{}\"}}", "x".repeat(LIMIT));
    for path in [
        "/v1.47/containers/create".to_string(),
        "/v1.47/containers/up/exec".to_string(),
        format!("/v1.47/exec/{exec_id}/start"),
        "/v1.47/containers/up/update".to_string(),
        "/v1.47/commit?container=up".to_string(),
    ] {
        let answer = d.http_bytes(
            "POST",
            &path,
            Some(("application/json", padding.as_bytes())),
        );
        let answer = String::from_utf8_lossy(&answer);
        assert!(answer.starts_with("HTTP/1.1 413"), "{path}: {answer}");
        assert!(
            answer.ends_with(&format!("{{\"message\":\"{message}\"}}")),
            "{path}: {answer}"
        );
    }
    assert_eq!(inspect(&d, "{{.State.Running}}", "up"), "true");

    // Archives: a 3 MiB file copied in, committed, saved, loaded back; and imported.
    let big_file = d.dir.join("big.bin");
    std::fs::write(&big_file, vec![7u8; 3 << 20]).unwrap();
    ok(&d, &["cp", &big_file.to_string_lossy(), "up:/big.bin"]);
    ok(&d, &["commit", "up", "big:1"]);
    let saved = d.dir.join("big.tar");
    ok(&d, &["save", "-o", &saved.to_string_lossy(), "big:1"]);
    assert!(std::fs::metadata(&saved).unwrap().len() > LIMIT as u64);
    d.remove_all_containers();
    ok(&d, &["rmi", "big:1"]);
    ok(&d, &["load", "-i", &saved.to_string_lossy()]);
    assert_eq!(
        run_sh(&d, &["--rm", "big:1"], "wc -c < /big.bin").trim(),
        (3 << 20).to_string()
    );
    let rootfs = d.dir.join("rootfs.tar");
    let mut tar = tar::Builder::new(std::fs::File::create(&rootfs).unwrap());
    tar.append_path_with_name(&big_file, "big.bin").unwrap();
    tar.finish().unwrap();
    ok(&d, &["import", &rootfs.to_string_lossy(), "imported:1"]);
    let size: u64 = inspect(&d, "{{.Size}}", "imported:1").parse().unwrap();
    assert!(size >= 3 << 20, "{size}");
}
