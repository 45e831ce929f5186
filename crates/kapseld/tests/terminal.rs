//! `docker run -it` and `docker exec -it` with the real docker CLIs (28 and Debian's 20.10,
//! which has no ConsoleSize and only resizes after the start) under a real pty.

mod common;

use std::path::Path;

use common::pty::{check_interactive_shell, InitialSize};
use common::*;

/// A daemon with busybox whose helpers drive `client`, or `None` after saying why not.
fn daemon_for(name: &str, client: &'static str) -> Option<Daemon> {
    if !Path::new(client).exists() {
        eprintln!("SKIP: no docker CLI at {client} (scripts/install-deps.sh)");
        return None;
    }
    let mut d = daemon_with_busybox(name)?;
    d.use_client(client);
    Some(d)
}

fn run_it(name: &str, client: &'static str, initial: InitialSize) {
    let Some(d) = daemon_for(name, client) else {
        return;
    };
    let mut cmd = d.docker_command();
    cmd.args(["run", "-it", "--rm", "--name", "tty", "busybox", "sh"]);
    check_interactive_shell(cmd, initial);
    wait_for(
        || !ok(&d, &["ps", "-a"]).contains("tty"),
        "--rm to remove it",
    );
}

fn exec_it(name: &str, client: &'static str, initial: InitialSize) {
    let Some(d) = daemon_for(name, client) else {
        return;
    };
    run_sleeping(&d, "host");
    let mut cmd = d.docker_command();
    cmd.args(["exec", "-it", "host", "sh"]);
    check_interactive_shell(cmd, initial);
    assert_eq!(inspect(&d, "{{.State.Running}}", "host"), "true");
}

#[test]
fn docker_run_it_is_an_interactive_terminal() {
    run_it("run-it", DOCKER, InitialSize::AtCreate);
}

#[test]
fn docker_exec_it_is_an_interactive_terminal() {
    exec_it("exec-it", DOCKER, InitialSize::AtCreate);
}

#[test]
fn docker_20_10_run_it_is_an_interactive_terminal() {
    run_it("run-it-20", DOCKER_20_10, InitialSize::AfterStart);
}

#[test]
fn docker_20_10_exec_it_is_an_interactive_terminal() {
    exec_it("exec-it-20", DOCKER_20_10, InitialSize::AfterStart);
}
