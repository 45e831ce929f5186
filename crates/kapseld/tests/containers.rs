//! Containers through the real docker CLI: run (attached, detached, --rm, -i), logs, exec,
//! stop, kill, restart, wait, rm, ps filters, inspect templates, limits, mounts.

mod common;

use std::time::Duration;

use common::{
    daemon_with_busybox, daemon_with_cli, docker_full, docker_py, inspect, ok, run_sh,
    run_sleeping, wait_for,
};

#[test]
fn run_rm_passes_output_streams_and_exit_code() {
    let Some(d) = daemon_with_busybox("run-rm") else {
        return;
    };
    let (code, out, err) = docker_full(
        &d,
        &[
            "run",
            "--rm",
            "busybox",
            "sh",
            "-c",
            "echo to-stdout; echo to-stderr >&2; exit 3",
        ],
        None,
    );
    assert_eq!(code, 3, "{out}{err}");
    assert_eq!(out, "to-stdout\n");
    assert!(err.contains("to-stderr"), "{err}");
    wait_for(
        || ok(&d, &["ps", "-aq"]).trim().is_empty(),
        "--rm to remove the container",
    );
}

#[test]
fn hello_world_runs_from_the_built_in_image() {
    let Some(d) = daemon_with_cli("hello") else {
        return;
    };
    let (code, out, err) = docker_full(&d, &["run", "hello-world"], None);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("Hello from kapsel!"), "{out}");
    assert!(ok(&d, &["images"]).contains("hello-world"));
}

#[test]
fn container_sees_its_own_namespaces_identity_and_config() {
    let Some(d) = daemon_with_busybox("identity") else {
        return;
    };
    let out = run_sh(
        &d,
        &[
            "--rm",
            "--hostname",
            "box",
            "-e",
            "GREETING=hi",
            "-w",
            "/tmp",
            "-u",
            "nobody",
            "busybox",
        ],
        "echo $(hostname) $GREETING $(pwd) $(id -u) $$ $HOME",
    );
    assert_eq!(out.trim(), "box hi /tmp 65534 1 /home");
}

/// A missing working directory is made at start (root's, 0755), also through a symlink
/// of the image, which resolves inside the container; a file in its place fails the start.
#[test]
fn a_missing_working_dir_is_created_inside_the_container() {
    let Some(d) = daemon_with_busybox("workdir") else {
        return;
    };
    let out = run_sh(
        &d,
        &["--rm", "-w", "/new/dir", "-u", "nobody", "busybox"],
        "pwd; stat -c '%u %a' /new/dir /new",
    );
    assert_eq!(out, "/new/dir\n0 755\n0 755\n");
    assert_eq!(
        ok(&d, &["run", "--rm", "-w", "/new/dir", "busybox", "pwd"]),
        "/new/dir\n"
    );

    // An image whose /link points at the host's /tmp by absolute path: the directory is
    // made in the container's /tmp, never on the host.
    let host_dir = format!("/tmp/kapsel-workdir-escape-{}", std::process::id());
    ok(
        &d,
        &[
            "run", "--name", "linked", "busybox", "ln", "-s", "/tmp", "/link",
        ],
    );
    ok(&d, &["commit", "linked", "linked:1"]);
    let leaf = host_dir.trim_start_matches("/tmp/");
    let out = run_sh(
        &d,
        &["--rm", "-w", &format!("/link/{leaf}"), "linked:1"],
        "pwd; ls -d /tmp/kapsel-workdir-*",
    );
    assert!(out.ends_with(&format!("{host_dir}\n")), "{out}");
    assert!(
        !std::path::Path::new(&host_dir).exists(),
        "made on the host"
    );

    let (code, out, err) = docker_full(
        &d,
        &["run", "--rm", "-w", "/etc/passwd", "busybox", "pwd"],
        None,
    );
    assert_ne!(code, 0, "{out}");
    assert!(err.contains("Cannot mkdir"), "{err}");
}

#[test]
fn stdin_reaches_the_container_and_its_end_closes_it() {
    let Some(d) = daemon_with_busybox("stdin") else {
        return;
    };
    let (code, out, err) = docker_full(
        &d,
        &["run", "-i", "--rm", "busybox", "sh", "-c", "cat; echo done"],
        Some(b"line one\nline two\n"),
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, "line one\nline two\ndone\n");
}

#[test]
fn detached_container_logs_stops_restarts_and_is_removed() {
    let Some(d) = daemon_with_busybox("detached") else {
        return;
    };
    let id = run_sh(
        &d,
        &["-d", "--name", "ticker", "--label", "role=test", "busybox"],
        "i=0; while true; echo tick $i; i=$((i+1)); do sleep 0.05; done",
    );
    let id = id.trim();
    assert_eq!(id.len(), 64, "{id}");
    let ps = ok(
        &d,
        &[
            "ps",
            "--filter",
            "label=role=test",
            "--format",
            "{{.Names}} {{.Status}}",
        ],
    );
    assert!(ps.starts_with("ticker Up"), "{ps}");
    assert_eq!(
        inspect(&d, "{{.State.Running}} {{.Name}}", "ticker"),
        "true /ticker"
    );
    wait_for(
        || ok(&d, &["logs", "ticker"]).contains("tick 3\n"),
        "log lines",
    );
    let logs = ok(&d, &["logs", "ticker"]);
    assert!(logs.starts_with("tick 0\ntick 1\ntick 2\n"), "{logs}");
    assert_eq!(
        ok(&d, &["logs", "--tail", "1", "ticker"]).lines().count(),
        1
    );
    // sh as PID 1 ignores SIGTERM: stop falls back to SIGKILL after the timeout.
    ok(&d, &["stop", "-t", "1", "ticker"]);
    assert_eq!(
        inspect(&d, "{{.State.Status}} {{.State.ExitCode}}", "ticker"),
        "exited 137"
    );
    assert!(ok(&d, &["ps", "--format", "{{.Names}}"]).trim().is_empty());
    assert!(ok(
        &d,
        &[
            "ps",
            "-a",
            "--filter",
            "exited=137",
            "--format",
            "{{.Names}}"
        ]
    )
    .contains("ticker"));
    ok(&d, &["start", "ticker"]);
    assert_eq!(inspect(&d, "{{.State.Status}}", "ticker"), "running");
    let (code, _, err) = docker_full(&d, &["rm", "ticker"], None);
    assert_ne!(code, 0);
    assert!(err.contains("container is running"), "{err}");
    ok(&d, &["kill", "ticker"]);
    assert_eq!(ok(&d, &["wait", "ticker"]).trim(), "137");
    ok(&d, &["rm", "ticker"]);
    let (code, _, err) = docker_full(&d, &["inspect", "ticker"], None);
    assert_ne!(code, 0);
    assert!(err.contains("No such"), "{err}");
}

#[test]
fn exec_runs_in_the_container_with_its_exit_code_and_stdin() {
    let Some(d) = daemon_with_busybox("exec") else {
        return;
    };
    run_sleeping(&d, "host");
    let (code, out, _) = docker_full(
        &d,
        &[
            "exec",
            "host",
            "sh",
            "-c",
            "echo pid1=$(cat /proc/1/comm); exit 5",
        ],
        None,
    );
    assert_eq!((code, out.trim()), (5, "pid1=sleep"));
    let (code, out, _) = docker_full(&d, &["exec", "-i", "host", "wc", "-l"], Some(b"a\nb\nc\n"));
    assert_eq!((code, out.trim()), (0, "3"));
    let top = ok(&d, &["top", "host"]);
    assert!(top.contains("sleep 1000"), "{top}");
    ok(&d, &["rm", "-f", "host"]);
}

#[test]
fn names_conflict_and_missing_things_get_dockers_errors() {
    let Some(d) = daemon_with_busybox("errors") else {
        return;
    };
    ok(&d, &["create", "--name", "same", "busybox", "true"]);
    let (code, _, err) = docker_full(&d, &["create", "--name", "same", "busybox", "true"], None);
    assert_ne!(code, 0);
    assert!(err.contains("is already in use"), "{err}");
    let (code, _, err) = docker_full(&d, &["run", "--rm", "busybox", "no-such-program"], None);
    assert_eq!(code, 127, "{err}");
    assert!(err.contains("executable file not found"), "{err}");
    let (code, _, err) = docker_full(&d, &["start", "nope"], None);
    assert_ne!(code, 0);
    assert!(err.contains("No such container: nope"), "{err}");
    let (code, _, err) = docker_full(&d, &["create", "--name", "bad name", "busybox"], None);
    assert_ne!(code, 0);
    assert!(err.contains("Invalid container name"), "{err}");
}

#[test]
fn limits_read_only_root_and_bind_mounts_hold_in_the_container() {
    let Some(d) = daemon_with_busybox("limits") else {
        return;
    };
    let shared = d.dir.join("shared");
    std::fs::create_dir_all(&shared).unwrap();
    let bind = format!("{}:/data", shared.display());
    let out = run_sh(
        &d,
        &[
            "--rm",
            "--memory",
            "64m",
            "--pids-limit",
            "50",
            "--read-only",
            "-v",
            &bind,
            "busybox",
        ],
        "cat /sys/fs/cgroup/memory/memory.limit_in_bytes /sys/fs/cgroup/memory.max 2>/dev/null; \
         cat /sys/fs/cgroup/pids/pids.max /sys/fs/cgroup/pids.max 2>/dev/null; \
         touch /root-write 2>/dev/null || echo read-only; echo written > /data/f",
    );
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines, ["67108864", "50", "read-only"], "{out}");
    assert_eq!(
        std::fs::read_to_string(shared.join("f")).unwrap(),
        "written\n"
    );
}

#[test]
fn containers_outlive_a_crashed_daemon_and_are_adopted() {
    let Some(mut d) = daemon_with_busybox("crash") else {
        return;
    };
    // The crash moments are random; the seed in a failure message repeats them.
    let seed = std::env::var("KAPSEL_TEST_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| fastrand::u64(..));
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut moments = Vec::new();
    run_sh(
        &d,
        &["-d", "--name", "counter", "busybox"],
        "i=0; while true; do echo $i; i=$((i+1)); usleep 2000; done",
    );
    let pid = inspect(&d, "{{.State.Pid}}", "counter");
    let mut logged = 0;
    for round in 0..4 {
        let (pause, mut down) = (rng.u64(50..1500), rng.u64(0..600));
        std::thread::sleep(Duration::from_millis(pause));
        if round == 1 {
            // This one ends while no daemon runs.
            run_sh(
                &d,
                &["-d", "--name", "short", "busybox"],
                "sleep 0.2; exit 7",
            );
            down += 1000;
        }
        moments.push((pause, down));
        let context = format!("KAPSEL_TEST_SEED={seed}: pauses and down times {moments:?}");
        d.crash_and_restart(Duration::from_millis(down));
        assert_eq!(
            inspect(&d, "{{.State.Pid}} {{.State.Status}}", "counter"),
            format!("{pid} running"),
            "the counter kept its process; {context}"
        );
        let numbers = logged_numbers(&d, "counter");
        assert!(
            numbers.iter().enumerate().all(|(i, n)| *n == i as u64),
            "every number once and in order; {context}"
        );
        assert!(numbers.len() > logged, "the log grew; {context}");
        logged = numbers.len();
    }
    wait_for(
        || inspect(&d, "{{.State.Status}}", "short") == "exited",
        "the short container to be seen exited",
    );
    assert_eq!(inspect(&d, "{{.State.ExitCode}}", "short"), "7");
    let exec = ok(&d, &["exec", "counter", "echo", "still-here"]);
    assert_eq!(exec.trim(), "still-here");
    ok(&d, &["stop", "-t", "1", "counter"]);
    assert_eq!(inspect(&d, "{{.State.ExitCode}}", "counter"), "137");
    let numbers = logged_numbers(&d, "counter");
    assert!(numbers.len() > logged, "{} lines", numbers.len());
    assert!(
        numbers.iter().enumerate().all(|(i, n)| *n == i as u64),
        "every number once and in order (KAPSEL_TEST_SEED={seed})"
    );
}

#[test]
fn restart_policies_restart_failures_and_stop_ends_them() {
    let Some(d) = daemon_with_busybox("restart") else {
        return;
    };
    run_sh(
        &d,
        &[
            "-d",
            "--name",
            "flaky",
            "--restart",
            "on-failure:2",
            "busybox",
        ],
        "echo run; exit 3",
    );
    wait_for(
        || inspect(&d, "{{.State.Status}} {{.RestartCount}}", "flaky") == "exited 2",
        "two restarts, then the policy gives up",
    );
    assert_eq!(ok(&d, &["logs", "flaky"]), "run\nrun\nrun\n");
    run_sh(
        &d,
        &["-d", "--name", "forever", "--restart", "always", "busybox"],
        "sleep 0.2",
    );
    wait_for(
        || {
            inspect(&d, "{{.RestartCount}}", "forever")
                .parse::<u32>()
                .unwrap()
                >= 2
        },
        "an always container to be restarted",
    );
    ok(&d, &["stop", "-t", "1", "forever"]);
    let count = inspect(&d, "{{.RestartCount}}", "forever");
    std::thread::sleep(std::time::Duration::from_millis(800));
    assert_eq!(
        inspect(&d, "{{.State.Status}} {{.RestartCount}}", "forever"),
        format!("exited {count}")
    );
}

#[test]
fn events_report_the_life_of_a_container() {
    let Some(d) = daemon_with_busybox("events") else {
        return;
    };
    let since = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        .to_string();
    let (code, _, err) = docker_full(
        &d,
        &["run", "--name", "brief", "busybox", "sh", "-c", "exit 4"],
        None,
    );
    assert_eq!(code, 4, "{err}");
    ok(&d, &["rm", "brief"]);
    let now = common::unix_now() + 0.5;
    let out = ok(
        &d,
        &[
            "events",
            "--since",
            &since,
            "--until",
            &format!("{now:.3}"),
            "--filter",
            "container=brief",
            "--format",
            "{{.Action}} {{.Actor.Attributes.exitCode}}",
        ],
    );
    let actions: Vec<&str> = out.lines().map(str::trim).collect();
    assert_eq!(
        actions,
        [
            "create <no value>",
            "attach <no value>",
            "start <no value>",
            "die 4",
            "destroy <no value>"
        ],
        "{out}"
    );
}

#[test]
fn docker_py_drives_containers() {
    let Some(d) = daemon_with_busybox("docker-py") else {
        return;
    };
    let Some(text) = docker_py(&d, "docker_py_flow.py") else {
        return;
    };
    assert!(text.contains("docker-py flow ok"), "{text}");
}

/// The numbers `docker logs NAME` prints, one per line.
#[track_caller]
fn logged_numbers(d: &common::Daemon, name: &str) -> Vec<u64> {
    ok(d, &["logs", name])
        .lines()
        .map(|l| l.parse().unwrap_or_else(|_| panic!("not a number: {l:?}")))
        .collect()
}

/// The sizes of a container's json-file log and its rotated files.
fn log_file_sizes(d: &common::Daemon, name: &str) -> Vec<u64> {
    let path = inspect(d, "{{.LogPath}}", name);
    let dir = std::path::Path::new(&path).parent().unwrap();
    let base = std::path::Path::new(&path)
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| e.file_name().to_string_lossy().starts_with(&base))
        .map(|e| e.metadata().unwrap().len())
        .collect()
}

#[test]
fn logs_keep_every_line_of_a_fast_writer_through_rotation() {
    let Some(d) = daemon_with_busybox("log-load") else {
        return;
    };
    const LINES: u64 = 120_000;
    let script = format!("seq 0 {}", LINES - 1);
    // Room for all of it (about 9 MB of JSON) in 1 MB files.
    run_sh(
        &d,
        &[
            "-d",
            "--name",
            "all",
            "--log-opt",
            "max-size=1m",
            "--log-opt",
            "max-file=15",
            "busybox",
        ],
        &script,
    );
    // Room for a part: the newest lines survive.
    run_sh(
        &d,
        &[
            "-d",
            "--name",
            "capped",
            "--log-opt",
            "max-size=100k",
            "--log-opt",
            "max-file=3",
            "busybox",
        ],
        &script,
    );
    for name in ["all", "capped"] {
        assert_eq!(ok(&d, &["wait", name]).trim(), "0");
    }
    let all = logged_numbers(&d, "all");
    assert_eq!(all.len() as u64, LINES);
    assert!(
        all.iter().enumerate().all(|(i, n)| *n == i as u64),
        "every number once and in order"
    );
    let sizes = log_file_sizes(&d, "all");
    assert!(sizes.len() > 5 && sizes.len() <= 15, "{sizes:?}");
    assert!(sizes.iter().all(|s| *s <= 1_000_000), "{sizes:?}");

    let capped = logged_numbers(&d, "capped");
    let first = capped[0];
    assert!(first > 0, "older lines rotated away");
    assert!(
        capped
            .iter()
            .enumerate()
            .all(|(i, n)| *n == first + i as u64),
        "the newest lines, each once and in order"
    );
    assert_eq!(capped.last(), Some(&(LINES - 1)));
    let sizes = log_file_sizes(&d, "capped");
    assert!(sizes.len() <= 3, "{sizes:?}");
    assert!(sizes.iter().all(|s| *s <= 100_000), "{sizes:?}");
}

#[test]
fn an_oom_kill_is_reported_in_inspect_and_events() {
    let Some(d) = daemon_with_busybox("oom") else {
        return;
    };
    let since = common::unix_now() - 1.0;
    // tail keeps every byte of an endless line: the memory limit stops it.
    let (code, _, err) = docker_full(
        &d,
        &[
            "run",
            "--name",
            "hog",
            "-m",
            "8m",
            "busybox",
            "sh",
            "-c",
            "tail /dev/zero",
        ],
        None,
    );
    assert_eq!(code, 137, "{err}");
    assert_eq!(
        inspect(&d, "{{.State.OOMKilled}} {{.State.ExitCode}}", "hog"),
        "true 137"
    );
    run_sh(&d, &["--name", "frugal", "-m", "8m", "busybox"], "true");
    assert_eq!(inspect(&d, "{{.State.OOMKilled}}", "frugal"), "false");
    let events = common::events_since(&d, since, &["event=oom", "event=die"]);
    assert_eq!(events, ["oom hog", "die hog", "die frugal"], "{events:?}");
    // The flag belongs to one run: a start that ends well clears it.
    let (code, _, err) = docker_full(
        &d,
        &[
            "run",
            "--name",
            "once",
            "-m",
            "8m",
            "busybox",
            "sh",
            "-c",
            "test -e /once || { touch /once; tail /dev/zero; }",
        ],
        None,
    );
    assert_eq!(code, 137, "{err}");
    assert_eq!(inspect(&d, "{{.State.OOMKilled}}", "once"), "true");
    ok(&d, &["start", "-a", "once"]);
    assert_eq!(
        inspect(&d, "{{.State.OOMKilled}} {{.State.ExitCode}}", "once"),
        "false 0"
    );
}
