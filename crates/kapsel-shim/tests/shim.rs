//! The shim with real containers: logs, attach, stdin, exit statuses, terminals,
//! rotation, exec, and its resilience. Needs root and a built kapsel-runtime.

mod common;

use std::fs;
use std::io::Read;
use std::path::Path;

use common::{
    entries, read_frames, send_frame, stream_text, wait_for, Env, Shim, ShimSpec, Target,
};
use serde_json::Value;

#[test]
fn stdout_and_stderr_reach_the_json_log() {
    let env = Env::new("log");
    let b = env.bundle(
        "b",
        &[
            "sh",
            "-c",
            r#"echo out1; echo err1 >&2; printf 'tab\t<&> "q" \\ caf\303\251 bad\377\n'; printf 'no newline'"#,
        ],
    );
    let mut shim = ShimSpec::container(&env, "c", &b).spawn();
    assert!(shim.pid.is_some(), "readiness: {}", shim.ready);
    let (code, exit) = shim.wait();
    assert_eq!(code, 0);
    assert_eq!(exit["exit_code"], 0);
    assert_eq!(exit["signal"], Value::Null);
    assert!(exit["finished_at"].as_str().unwrap().ends_with('Z'));

    let raw = fs::read_to_string(shim.spec.log_path()).unwrap();
    let lines: Vec<&str> = raw.lines().collect();
    assert_eq!(lines.len(), 4, "{raw}");
    let stdout: Vec<&str> = lines
        .iter()
        .copied()
        .filter(|l| l.contains("\"stdout\""))
        .collect();
    let stderr: Vec<&str> = lines
        .iter()
        .copied()
        .filter(|l| l.contains("\"stderr\""))
        .collect();
    assert_eq!(stderr.len(), 1);
    assert!(stderr[0].starts_with(r#"{"log":"err1\n","stream":"stderr","time":""#));
    assert!(stdout[0].starts_with(r#"{"log":"out1\n","stream":"stdout","time":""#));
    // Docker's escaping, byte for byte.
    assert!(
        stdout[1].starts_with(
            r#"{"log":"tab\u0009\u003c\u0026\u003e \"q\" \\ café bad\ufffd\n","stream":"stdout","time":""#
        ),
        "{}",
        stdout[1]
    );
    // The unfinished last line is written at EOF as it is.
    assert!(stdout[2].starts_with(r#"{"log":"no newline","stream":"stdout""#));
    for e in entries(raw.as_bytes()) {
        let t = e["time"].as_str().unwrap();
        assert!(
            t.len() >= 20 && t.ends_with('Z') && &t[10..11] == "T",
            "{t}"
        );
    }
    let mode = fs::metadata(shim.spec.log_path()).unwrap();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&mode.permissions()) & 0o777,
        0o640
    );
}

#[test]
fn a_client_connected_before_the_spawn_gets_all_output() {
    let env = Env::new("attach");
    let b = env.bundle("b", &["sh", "-c", "seq 1 3000; echo done >&2"]);
    let mut spec = ShimSpec::container(&env, "c", &b).flags(&["--log-driver", "none"]);
    spec.early_clients = 2;
    let mut shim = spec.spawn();
    let want: String = (1..=3000).map(|i| format!("{i}\n")).collect();
    for mut client in std::mem::take(&mut shim.early) {
        let frames = read_frames(&mut client);
        assert_eq!(stream_text(&frames, 1), want);
        assert_eq!(stream_text(&frames, 2), "done\n");
        assert!(frames
            .iter()
            .all(|(s, d)| (*s == 1 || *s == 2) && !d.is_empty()));
    }
    assert_eq!(shim.wait().1["exit_code"], 0);
    assert!(
        !shim.spec.log_path().exists(),
        "--log-driver none writes no log"
    );
}

#[test]
fn a_stalled_client_is_dropped_and_nothing_else_suffers() {
    const LINES: usize = 30_000;
    let line = "0123456789".repeat(10);
    let env = Env::new("stalled");
    let b = env.bundle("b", &["sh", "-c", &format!("yes {line} | head -n {LINES}")]);
    let mut spec = ShimSpec::container(&env, "c", &b);
    // The first never reads; the second reads everything.
    spec.early_clients = 2;
    let mut shim = spec.spawn();
    let mut reader = shim.early.pop().unwrap();
    let stalled = shim.early.pop().unwrap();
    let frames = read_frames(&mut reader);
    let want = format!("{line}\n").repeat(LINES);
    assert!(
        stream_text(&frames, 1) == want,
        "the reading client got everything"
    );
    assert_eq!(shim.wait().1["exit_code"], 0);
    let logged = shim.log_text("stdout");
    assert!(logged == want, "the log has every line");
    // About 3 MB were sent; the stalled client got at most what its socket holds plus
    // its 1 MiB allowance before it was dropped.
    let mut got = Vec::new();
    let _ = (&stalled).read_to_end(&mut got);
    assert!(got.len() < want.len(), "the stalled client was dropped");
}

#[test]
fn stdin_comes_from_client_frames() {
    let env = Env::new("stdin");
    let b = env.bundle("b", &["cat"]);
    let mut shim = ShimSpec::container(&env, "c", &b)
        .flags(&["--stdin"])
        .spawn();
    // A client that sends and goes away only detaches: stdin stays open.
    let mut first = shim.connect();
    send_frame(&mut first, 0, b"one\n");
    drop(first);
    wait_for("the first line in the log", || {
        (shim.log_text("stdout") == "one\n").then_some(())
    });
    let mut second = shim.connect();
    send_frame(&mut second, 0, b"two ");
    send_frame(&mut second, 0, b"three\n");
    // Unknown kinds are skipped.
    send_frame(&mut second, 9, b"ignored");
    send_frame(&mut second, 1, b"");
    let frames = read_frames(&mut second);
    assert_eq!(stream_text(&frames, 1), "two three\n");
    let (_, exit) = shim.wait();
    assert_eq!(exit["exit_code"], 0, "cat ends at the closed stdin");
    assert_eq!(shim.log_text("stdout"), "one\ntwo three\n");
}

#[test]
fn exit_codes_and_signals_are_recorded() {
    let env = Env::new("exit");
    let b = env.bundle("b", &["sh", "-c", "exit 3"]);
    let mut shim = ShimSpec::container(&env, "code", &b).spawn();
    let (code, exit) = shim.wait();
    assert_eq!((code, exit["exit_code"].as_i64()), (0, Some(3)));
    assert_eq!(exit["signal"], Value::Null);

    let b = env.bundle("b2", &["sleep", "1000"]);
    let mut shim = ShimSpec::container(&env, "killed", &b).spawn();
    shim.kill_process(libc::SIGKILL);
    let (_, exit) = shim.wait();
    assert_eq!(exit["exit_code"], 137);
    assert_eq!(exit["signal"], 9);
    // The runtime's state was deleted after the exit.
    assert!(!env.root.join(&shim.spec.id).exists());
}

#[test]
fn a_failed_start_reports_the_runtime_error() {
    let env = Env::new("fail");
    let b = env.bundle("b", &["no-such-command-here"]);
    let mut shim = ShimSpec::container(&env, "c", &b).spawn();
    let report: Value = serde_json::from_str(shim.ready.trim()).expect(&shim.ready);
    let msg = report["error"].as_str().expect("an error report");
    assert!(msg.contains("executable file not found"), "{msg}");
    assert!(shim.ready.ends_with("}\n"));
    let mut child = shim.child.take().unwrap();
    assert_eq!(child.wait().unwrap().code(), Some(1));
    assert!(!shim.spec.dir.join("exit.json").exists());
    assert!(!shim.spec.dir.join("console.sock").exists());
}

#[test]
fn a_terminal_with_resize() {
    let env = Env::new("tty");
    let b = env.bundle("b", &["sh", "-c", "read line; stty size; echo got $line"]);
    env.edit_process(&b, |p| p["terminal"] = true.into());
    let mut shim = ShimSpec::container(&env, "c", &b)
        .flags(&["--tty", "--stdin"])
        .spawn();
    assert!(shim.pid.is_some(), "readiness: {}", shim.ready);
    let mut client = shim.connect();
    // In order: the resize is done before the line that lets the container go on.
    send_frame(&mut client, 2, &[0, 40, 0, 132]);
    send_frame(&mut client, 0, b"hello\n");
    let frames = read_frames(&mut client);
    assert!(
        frames.iter().all(|(s, _)| *s == 1),
        "a terminal is stdout only"
    );
    let text = stream_text(&frames, 1);
    assert!(text.contains("40 132\r\n"), "{text:?}");
    assert!(text.contains("got hello\r\n"), "{text:?}");
    assert_eq!(shim.wait().1["exit_code"], 0);
    assert!(shim.log_text("stdout").contains("40 132"));
    assert!(!shim.spec.dir.join("console.sock").exists());
}

#[test]
fn closing_stdin_on_a_terminal_sends_eof() {
    let env = Env::new("ttyeof");
    let b = env.bundle("b", &["sh", "-c", "cat; echo cat-ended"]);
    env.edit_process(&b, |p| p["terminal"] = true.into());
    let mut shim = ShimSpec::container(&env, "c", &b)
        .flags(&["--tty", "--stdin"])
        .spawn();
    let mut client = shim.connect();
    send_frame(&mut client, 0, b"typed\n");
    send_frame(&mut client, 1, b"");
    let text = stream_text(&read_frames(&mut client), 1);
    assert!(text.contains("cat-ended"), "{text:?}");
    assert_eq!(shim.wait().1["exit_code"], 0);
}

/// Every numbered line, from the rotated files oldest first and then the live one.
fn numbers_in_rotated_logs(log: &Path, max_file: u32, compress: bool) -> Vec<u64> {
    let mut texts = Vec::new();
    for n in (1..max_file).rev() {
        let name = format!("{}.{n}{}", log.display(), if compress { ".gz" } else { "" });
        let Ok(f) = fs::File::open(&name) else {
            continue;
        };
        let mut bytes = Vec::new();
        if compress {
            flate2::read::GzDecoder::new(f)
                .read_to_end(&mut bytes)
                .unwrap();
        } else {
            std::io::BufReader::new(f).read_to_end(&mut bytes).unwrap();
        }
        texts.push(bytes);
    }
    texts.push(fs::read(log).unwrap());
    texts
        .iter()
        .flat_map(|t| entries(t))
        .map(|e| {
            let line = e["log"].as_str().unwrap();
            assert!(line.ends_with('\n'), "{line:?}");
            line.trim_end().parse().unwrap()
        })
        .collect()
}

#[test]
fn rotation_keeps_every_line_once_in_order() {
    const LINES: u64 = 20_000;
    let env = Env::new("rotate");
    let b = env.bundle("b", &["seq", "1", "20000"]);
    for (name, compress) in [("plain", false), ("gzip", true)] {
        let mut flags = vec!["--log-max-size", "100000", "--log-max-file", "30"];
        if compress {
            flags.push("--log-compress");
        }
        let mut shim = ShimSpec::container(&env, name, &b).flags(&flags).spawn();
        assert_eq!(shim.wait().1["exit_code"], 0);
        let log = shim.spec.log_path();
        let numbers = numbers_in_rotated_logs(&log, 30, compress);
        assert_eq!(numbers, (1..=LINES).collect::<Vec<_>>(), "{name}");
        // Several rotations happened, and no file grew past the limit.
        let rotated = format!("{}.5{}", log.display(), if compress { ".gz" } else { "" });
        assert!(Path::new(&rotated).exists(), "{rotated}");
        if !compress {
            for n in 1..30 {
                if let Ok(m) = fs::metadata(format!("{}.{n}", log.display())) {
                    assert!(m.len() <= 100_000);
                }
            }
        }
    }
    // Few files: the oldest are dropped and what is left is the newest lines, in order.
    let mut shim = ShimSpec::container(&env, "few", &b)
        .flags(&[
            "--log-max-size",
            "100000",
            "--log-max-file",
            "3",
            "--log-compress",
        ])
        .spawn();
    assert_eq!(shim.wait().1["exit_code"], 0);
    let log = shim.spec.log_path();
    let numbers = numbers_in_rotated_logs(&log, 3, true);
    let first = numbers[0];
    assert!(first > 1);
    assert_eq!(numbers, (first..=LINES).collect::<Vec<_>>());
    assert!(!Path::new(&format!("{}.3.gz", log.display())).exists());
    assert!(!Path::new(&format!("{}.1", log.display())).exists());
}

#[test]
fn a_40k_line_is_split_into_16k_entries() {
    let env = Env::new("long");
    let b = env.bundle(
        "b",
        &[
            "sh",
            "-c",
            "head -c 40960 /dev/zero | tr '\\0' x; echo; echo short",
        ],
    );
    let mut shim = ShimSpec::container(&env, "c", &b).spawn();
    assert_eq!(shim.wait().1["exit_code"], 0);
    let logs: Vec<String> = shim
        .log_entries()
        .iter()
        .map(|e| e["log"].as_str().unwrap().to_owned())
        .collect();
    let x = |n| "x".repeat(n);
    assert_eq!(
        logs,
        [x(16384), x(16384), x(8192) + "\n", "short\n".to_owned()]
    );
}

/// A shim for an exec of `process` in the container `id`, spawned with one client attached
/// so that none of the output is missed.
fn spawn_exec(env: &Env, id: &str, name: &str, process: &Value) -> Shim {
    let process_file = env.dir.join(format!("{name}.json"));
    fs::write(&process_file, serde_json::to_vec(process).unwrap()).unwrap();
    ShimSpec {
        id: id.to_string(),
        dir: env.shim_dir(name),
        root: env.root.clone(),
        target: Target::Exec(process_file),
        flags: Vec::new(),
        early_clients: 1,
        through_sh: false,
    }
    .spawn()
}

#[test]
fn exec_into_a_running_container() {
    let env = Env::new("exec");
    let b = env.bundle("b", &["sleep", "1000"]);
    let container = ShimSpec::container(&env, "c", &b).spawn();
    assert!(container.pid.is_some(), "readiness: {}", container.ready);

    let config: Value = serde_json::from_slice(&fs::read(b.join("config.json")).unwrap()).unwrap();
    let mut process = config["process"].clone();
    process["args"] = serde_json::json!(["sh", "-c", "echo from exec; echo oops >&2; exit 7"]);
    let mut exec = spawn_exec(&env, &container.spec.id, "exec-1", &process);
    assert!(exec.pid.is_some(), "readiness: {}", exec.ready);
    assert_ne!(exec.pid, container.pid);
    let frames = read_frames(&mut exec.early[0]);
    assert_eq!(stream_text(&frames, 1), "from exec\n");
    assert_eq!(stream_text(&frames, 2), "oops\n");
    let (code, exit) = exec.wait();
    assert_eq!((code, exit["exit_code"].as_i64()), (0, Some(7)));
    assert_eq!(exec.log_text("stdout"), "from exec\n");
    // A daemonised grandchild keeps the output pipes open forever: the shim still ends
    // (after a short grace time) and records the exec'd process's status.
    process["args"] = serde_json::json!(["sh", "-c", "sleep 100000 & echo parent done"]);
    let mut exec = spawn_exec(&env, &container.spec.id, "exec-2", &process);
    let frames = read_frames(&mut exec.early[0]);
    assert_eq!(stream_text(&frames, 1), "parent done\n");
    let (code, exit) = exec.wait();
    assert_eq!((code, exit["exit_code"].as_i64()), (0, Some(0)));
    assert_eq!(exec.log_text("stdout"), "parent done\n");

    // The exec's end is not the container's: it still runs, its state still exists.
    let pid = container.pid.unwrap();
    assert!(Path::new(&format!("/proc/{pid}")).exists());
    assert!(env.root.join(&container.spec.id).exists());
    assert!(!container.spec.dir.join("exit.json").exists());
    container.kill_process(libc::SIGKILL);
    let mut container = container;
    assert_eq!(container.wait().1["exit_code"], 137);
}

#[test]
fn the_shim_survives_signals_and_its_parent() {
    let env = Env::new("survive");
    let b = env.bundle("b", &["cat"]);
    let mut spec = ShimSpec::container(&env, "c", &b).flags(&["--stdin"]);
    spec.through_sh = true;
    let mut shim = spec.spawn();
    let pid = shim.pid.expect("started");
    // The shim is the container's parent: it is the subreaper the process was left to.
    let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let shim_pid: i32 = status
        .lines()
        .find_map(|l| l.strip_prefix("PPid:"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let comm = fs::read_to_string(format!("/proc/{shim_pid}/comm")).unwrap();
    assert_eq!(comm.trim(), "kapsel-shim");

    // Kill the process that started it, then signal the shim the way a terminal or a
    // careless `kill` would.
    let mut sh = shim.child.take().unwrap();
    sh.kill().unwrap();
    sh.wait().unwrap();
    for sig in [libc::SIGTERM, libc::SIGINT, libc::SIGHUP, libc::SIGPIPE] {
        // SAFETY: signals to the shim this test started (its pid, checked above).
        assert_eq!(unsafe { libc::kill(shim_pid, sig) }, 0);
    }
    let mut client = shim.connect();
    send_frame(&mut client, 0, b"still here\n");
    wait_for("the line in the log", || {
        shim.log_text("stdout").contains("still here").then_some(())
    });
    send_frame(&mut client, 1, b"");
    let frames = read_frames(&mut client);
    assert_eq!(stream_text(&frames, 1), "still here\n");
    assert_eq!(shim.exit_json()["exit_code"], 0);
    wait_for("the shim's exit", || {
        (!Path::new(&format!("/proc/{shim_pid}/comm")).exists()
            || fs::read_to_string(format!("/proc/{shim_pid}/stat"))
                .is_ok_and(|s| s.contains(") Z ")))
        .then_some(())
    });
}
