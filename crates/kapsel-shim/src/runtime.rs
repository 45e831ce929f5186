//! Invoking the OCI runtime (runc's command line): `run --detach` or `exec --detach` to
//! start the process, and `delete --force` after a container's end.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::Path;
use std::process::{Command, Stdio};

use crate::args::{Args, Mode};
use crate::error::{Context, Error, Result};

/// `RUNTIME --root ROOT`, with the shim's ignored signals restored to their defaults in
/// the child.
fn command(args: &Args) -> Command {
    let mut cmd = Command::new(&args.runtime);
    cmd.arg("--root").arg(&args.runtime_root);
    // SAFETY: the closure only makes async-signal-safe calls.
    unsafe {
        cmd.pre_exec(|| {
            crate::process::reset_ignored_signals();
            Ok(())
        });
    }
    cmd
}

/// Starts the container (or the exec'd process) and waits for the runtime to exit;
/// returns the process's pid. `stdio` becomes the runtime's stdin, stdout and stderr;
/// `console` is the socket it sends the pty master to. On failure the error is the
/// runtime's own message, as it logged it.
pub fn start(args: &Args, stdio: [Stdio; 3], console: Option<&Path>) -> Result<i32> {
    let log = args.dir.join("runtime.log");
    let pid_file = args.dir.join("pid");
    let _ = std::fs::remove_file(&pid_file);
    // Only what this invocation logs counts: the file may hold an earlier run's errors.
    let log_start = std::fs::metadata(&log).map_or(0, |m| m.len());
    let mut cmd = command(args);
    cmd.arg("--log").arg(&log).args(["--log-format", "json"]);
    match &args.mode {
        Mode::Container { bundle } => cmd
            .args(["run", "--detach", "--pid-file"])
            .arg(&pid_file)
            .arg("--bundle")
            .arg(bundle),
        Mode::Exec { process } => cmd
            .args(["exec", "--detach", "--pid-file"])
            .arg(&pid_file)
            .arg("--process")
            .arg(process),
    };
    if let Some(socket) = console {
        cmd.arg("--console-socket").arg(socket);
    }
    cmd.arg(&args.id);
    let [stdin, stdout, stderr] = stdio;
    cmd.stdin(stdin).stdout(stdout).stderr(stderr);
    let mut child = cmd
        .spawn()
        .ctx(|| format!("run the runtime {}", args.runtime.display()))?;
    // The Command holds the runtime's ends of the stdio pipes: the shim must not keep
    // them, or it would never see EOF.
    drop(cmd);
    let status = child
        .wait()
        .ctx(|| format!("wait for the runtime {}", args.runtime.display()))?;
    if !status.success() {
        return Err(Error::msg(failure_message(&log, log_start, status)));
    }
    let text = std::fs::read_to_string(&pid_file)
        .ctx(|| format!("read the pid file {}", pid_file.display()))?;
    text.trim()
        .parse()
        .ok()
        .filter(|&pid: &i32| pid > 0)
        .ok_or_else(|| {
            Error::msg(format!(
                "the pid file {} holds {text:?}, not a pid",
                pid_file.display()
            ))
        })
}

/// The runtime's last logged message (its log lines are JSON with a `msg` field), or how
/// it ended when it logged nothing.
fn failure_message(log: &Path, from: u64, status: std::process::ExitStatus) -> String {
    let mut text = String::new();
    if let Ok(mut f) = File::open(log) {
        if f.seek(SeekFrom::Start(from)).is_ok() {
            let _ = f.read_to_string(&mut text);
        }
    }
    if let Some(line) = text.lines().rev().find(|l| !l.trim().is_empty()) {
        return crate::json::string_field(line, "msg").unwrap_or_else(|| line.trim().to_owned());
    }
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("the runtime exited with status {code}"),
        (None, Some(sig)) => format!("the runtime was killed by signal {sig}"),
        _ => format!("the runtime failed ({status})"),
    }
}

/// `delete --force ID` after the container's end: removes what the runtime keeps for it
/// (state, cgroup) and runs its poststop hooks. Failures only go to shim.log.
pub fn delete(args: &Args) {
    let mut cmd = command(args);
    cmd.args(["delete", "--force"]).arg(&args.id);
    cmd.stdin(Stdio::null()).stdout(Stdio::null());
    match cmd.output() {
        Ok(out) if out.status.success() => {}
        Ok(out) => crate::diag::log(format_args!(
            "{} delete --force {}: {}: {}",
            args.runtime.display(),
            args.id,
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )),
        Err(e) => crate::diag::log(format_args!(
            "run {} delete --force {}: {e}",
            args.runtime.display(),
            args.id
        )),
    }
}
