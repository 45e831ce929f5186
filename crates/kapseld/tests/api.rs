//! kapseld answers the real docker CLI and speaks the Engine API's version rules.

mod common;

use common::{daemon_with_cli, Daemon};

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
