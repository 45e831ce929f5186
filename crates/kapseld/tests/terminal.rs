//! `docker run -it` and `docker exec -it` with the real docker CLI under a real pty.

mod common;

use common::pty::check_interactive_shell;
use common::*;

#[test]
fn docker_run_it_is_an_interactive_terminal() {
    let Some(d) = daemon_with_busybox("run-it") else {
        return;
    };
    let mut client = d.docker_command();
    client.args(["run", "-it", "--rm", "--name", "tty", "busybox", "sh"]);
    check_interactive_shell(client);
    wait_for(
        || !ok(&d, &["ps", "-a"]).contains("tty"),
        "--rm to remove it",
    );
}

#[test]
fn docker_exec_it_is_an_interactive_terminal() {
    let Some(d) = daemon_with_busybox("exec-it") else {
        return;
    };
    run_sleeping(&d, "host");
    let mut client = d.docker_command();
    client.args(["exec", "-it", "host", "sh"]);
    check_interactive_shell(client);
    assert_eq!(inspect(&d, "{{.State.Running}}", "host"), "true");
}
