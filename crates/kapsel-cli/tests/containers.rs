//! `kapsel` container commands against a private kapseld running busybox containers,
//! compared with the docker CLI against the same daemon where output is deterministic.
//! Skipped (with a note) when busybox-static is missing or the daemon does not serve
//! container endpoints yet.

mod common;
#[path = "../../kapseld/tests/common/pty.rs"]
mod pty;

use common::{daemon_with_busybox, have_docker_cli, Daemon};

/// Whether the daemon routes `path` at all (a 404 "page not found" means it does not).
fn routes(d: &Daemon, method: &str, path: &str) -> bool {
    !d.http(method, path).contains("page not found")
}

#[test]
fn run_streams_output_and_exits_with_the_container_status() {
    let Some(d) = daemon_with_busybox("run") else {
        return;
    };
    let out = d.kapsel(&[
        "run",
        "--rm",
        "busybox",
        "sh",
        "-c",
        "echo out; echo err >&2; exit 3",
    ]);
    assert_eq!(
        (out.code, out.stdout.as_str(), out.stderr.as_str()),
        (3, "out\n", "err\n")
    );
    assert_eq!(d.ok(&["ps", "-aq"]), "", "--rm removed the container");

    // stdin is copied to the container and closed at EOF, so `cat` ends.
    let out = d.kapsel_in(
        &["run", "-i", "--rm", "busybox", "sh", "-c", "cat; echo done"],
        Some(b"line one\nline two\n"),
    );
    assert_eq!(
        (out.code, out.stdout.as_str()),
        (0, "line one\nline two\ndone\n"),
        "{out:?}"
    );

    // Flags reach the container.
    let out = d.ok(&[
        "run",
        "--rm",
        "-e",
        "GREETING=hi",
        "-w",
        "/tmp",
        "-h",
        "box",
        "-u",
        "0",
        "busybox",
        "sh",
        "-c",
        "echo $GREETING $(pwd) $(hostname) $(id -u)",
    ]);
    assert_eq!(out, "hi /tmp box 0\n");

    // A TTY: raw output, \r\n line ends.
    let out = d.ok(&[
        "run",
        "--rm",
        "-t",
        "busybox",
        "sh",
        "-c",
        "tty >/dev/null && echo tty",
    ]);
    assert_eq!(out, "tty\r\n");
}

#[test]
fn run_failures_exit_as_docker_run_does() {
    let Some(d) = daemon_with_busybox("run-fail") else {
        return;
    };
    let out = d.kapsel(&["run", "--rm", "busybox", "no-such-command"]);
    assert_eq!(out.code, 127, "{out:?}");
    assert!(
        out.stderr
            .starts_with("kapsel: Error response from daemon: "),
        "{out:?}"
    );
    assert!(out.stderr.contains("executable file not found"), "{out:?}");
    let out = d.kapsel(&["run", "--rm", "--cpus", "lots", "busybox", "true"]);
    assert_eq!(out.code, 125, "{out:?}");
    assert!(out.stderr.contains("--cpus"), "{out:?}");
}

#[test]
fn detached_containers_list_log_exec_and_stop() {
    let Some(d) = daemon_with_busybox("detached") else {
        return;
    };
    let id = d.ok(&[
        "run",
        "-d",
        "--name",
        "ticker",
        "-l",
        "role=test",
        "busybox",
        "sh",
        "-c",
        "echo started; echo oops >&2; exec sleep 1000",
    ]);
    let id = id.trim();
    assert_eq!(id.len(), 64, "{id}");
    assert!(id.bytes().all(|b| b.is_ascii_hexdigit()));

    let ps = d.ok(&["ps"]);
    let mut lines = ps.lines();
    let header = lines.next().unwrap();
    for column in [
        "CONTAINER ID",
        "IMAGE",
        "COMMAND",
        "CREATED",
        "STATUS",
        "PORTS",
        "NAMES",
    ] {
        assert!(header.contains(column), "{ps}");
    }
    let row = lines.next().expect(&ps);
    assert!(row.starts_with(&id[..12]), "{ps}");
    assert!(
        row.contains("\"sh -c 'echo starte…\"") || row.contains("\"sh -c "),
        "{ps}"
    );
    assert!(row.trim_end().ends_with("ticker"), "{ps}");
    assert_eq!(d.ok(&["ps", "-q"]), format!("{}\n", &id[..12]));
    assert_eq!(
        d.ok(&["container", "ls", "-q", "--no-trunc"]),
        format!("{id}\n")
    );
    assert_eq!(
        d.ok(&["ps", "--format", "{{.Names}} {{.Labels}} {{.State}}"]),
        "ticker role=test running\n"
    );
    assert_eq!(d.ok(&["ps", "-f", "label=role=other", "-q"]), "");

    let logs = d.kapsel(&["logs", "ticker"]);
    assert_eq!(
        (logs.stdout.as_str(), logs.stderr.as_str()),
        ("started\n", "oops\n")
    );

    let out = d.kapsel(&["exec", "ticker", "sh", "-c", "echo in; exit 7"]);
    assert_eq!((out.code, out.stdout.as_str()), (7, "in\n"));
    let out = d.kapsel_in(&["exec", "-i", "ticker", "cat"], Some(b"piped\n"));
    assert_eq!((out.code, out.stdout.as_str()), (0, "piped\n"));
    assert_eq!(
        d.ok(&[
            "exec",
            "-e",
            "X=1",
            "-w",
            "/etc",
            "ticker",
            "sh",
            "-c",
            "echo $X $(pwd)"
        ]),
        "1 /etc\n"
    );

    let top = d.ok(&["top", "ticker"]);
    assert!(top.lines().next().unwrap().contains("PID"), "{top}");
    assert!(top.contains("sleep 1000"), "{top}");

    assert_eq!(
        d.ok(&[
            "inspect",
            "-f",
            "{{.State.Status}} {{.Name}} {{.Config.Labels}}",
            "ticker"
        ]),
        "running /ticker map[role:test]\n"
    );
    if have_docker_cli() {
        for args in [
            &["ps"][..],
            &[
                "ps",
                "-a",
                "--no-trunc",
                "--format",
                // CREATED and STATUS move with the clock between the two commands.
                "table {{.ID}}\t{{.Image}}\t{{.Command}}\t{{.Ports}}\t{{.Names}}",
            ],
            &[
                "ps",
                "--format",
                "table {{.ID}}\\t{{.Image}}\\t{{.Command}}\\t{{.Names}}\\t{{.Labels}}",
            ],
            &["container", "inspect", "ticker"],
            // (a whole object as {{json}} is key-sorted here, in struct order in docker)
            &[
                "inspect",
                "--format",
                "{{json .Config.Cmd}} {{json .Config.Labels}} {{.Id}}",
                "ticker",
            ],
            &["logs", "ticker"],
            &["top", "ticker"],
        ] {
            let (ours, theirs) = (d.kapsel(args), d.docker(args));
            assert_eq!(
                (ours.code, &ours.stdout, &ours.stderr),
                (theirs.code, &theirs.stdout, &theirs.stderr),
                "kapsel and docker differ for {args:?}"
            );
        }
    }

    assert_eq!(d.ok(&["stop", "-t", "1", "ticker"]), "ticker\n");
    assert_eq!(d.ok(&["wait", "ticker"]), "137\n");
    let status = d.ok(&["ps", "-a", "--format", "{{.Status}}"]);
    assert!(status.starts_with("Exited (137)"), "{status}");
    assert_eq!(d.ok(&["rm", "ticker"]), "ticker\n");
    assert_eq!(d.ok(&["ps", "-aq"]), "");

    let out = d.kapsel(&["stop", "ticker", "nope"]);
    assert_eq!(out.code, 1);
    assert!(out.stderr.contains("No such container: ticker"), "{out:?}");
    assert!(out.stderr.contains("No such container: nope"), "{out:?}");
}

#[test]
fn create_then_start_attached() {
    let Some(d) = daemon_with_busybox("create") else {
        return;
    };
    let id = d.ok(&[
        "create",
        "--name",
        "c1",
        "busybox",
        "sh",
        "-c",
        "echo hello; exit 4",
    ]);
    assert_eq!(id.trim().len(), 64);
    assert!(d
        .ok(&["ps", "-a", "--format", "{{.Status}}"])
        .starts_with("Created"));
    let out = d.kapsel(&["start", "-a", "c1"]);
    assert_eq!((out.code, out.stdout.as_str()), (4, "hello\n"), "{out:?}");
    assert_eq!(d.ok(&["start", "c1"]), "c1\n");
    assert_eq!(d.ok(&["wait", "c1"]), "4\n");
    assert_eq!(d.ok(&["logs", "--tail", "1", "c1"]), "hello\n");
    let out = d.kapsel(&["start", "nope"]);
    assert_eq!(out.code, 1);
    assert!(
        out.stderr
            .ends_with("Error: failed to start containers: nope\n"),
        "{out:?}"
    );
    assert_eq!(d.ok(&["container", "rm", "-f", "c1"]), "c1\n");
}

#[test]
fn attach_follows_a_running_container_to_its_exit() {
    let Some(d) = daemon_with_busybox("attach") else {
        return;
    };
    d.ok(&[
        "run",
        "-d",
        "--name",
        "att",
        "busybox",
        "sh",
        "-c",
        "sleep 1; echo one; echo two >&2; exit 5",
    ]);
    let out = d.kapsel(&["attach", "att"]);
    assert_eq!(
        (out.code, out.stdout.as_str(), out.stderr.as_str()),
        (5, "one\n", "two\n")
    );
    let out = d.kapsel(&["attach", "att"]);
    assert_eq!(out.code, 1);
    assert_eq!(
        out.stderr,
        "You cannot attach to a stopped container, start it first\n"
    );
}

#[test]
fn cp_copies_both_ways() {
    let Some(d) = daemon_with_busybox("cp") else {
        return;
    };
    if !routes(&d, "GET", "/v1.47/containers/x/archive?path=/") {
        eprintln!("SKIP: this kapseld does not serve /containers/{{id}}/archive yet");
        return;
    }
    d.ok(&["run", "-d", "--name", "box", "busybox", "sleep", "1000"]);
    let src = d.dir.join("local.txt");
    std::fs::write(&src, "from the host\n").unwrap();
    d.ok(&["cp", &src.to_string_lossy(), "box:/tmp/copied.txt"]);
    assert_eq!(
        d.ok(&["exec", "box", "cat", "/tmp/copied.txt"]),
        "from the host\n"
    );
    let back = d.dir.join("back.txt");
    d.ok(&["cp", "box:/tmp/copied.txt", &back.to_string_lossy()]);
    assert_eq!(std::fs::read_to_string(&back).unwrap(), "from the host\n");
    d.ok(&["rm", "-f", "box"]);
}

/// `kapsel ARGS…` against `d`, to run under a pty.
fn kapsel_command(d: &Daemon, args: &[&str]) -> std::process::Command {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_kapsel"));
    cmd.arg("-H").arg(d.host()).args(args);
    cmd
}

#[test]
fn run_it_and_exec_it_are_interactive_terminals() {
    let Some(d) = daemon_with_busybox("tty-it") else {
        return;
    };
    pty::check_interactive_shell(
        kapsel_command(
            &d,
            &["run", "-it", "--rm", "--name", "tty", "busybox", "sh"],
        ),
        pty::InitialSize::AtCreate,
    );
    d.ok(&["run", "-d", "--name", "host", "busybox", "sleep", "1000"]);
    pty::check_interactive_shell(
        kapsel_command(&d, &["exec", "-it", "host", "sh"]),
        pty::InitialSize::AtCreate,
    );
    assert_eq!(d.ok(&["ps", "--format", "{{.Names}}"]), "host\n");
}
