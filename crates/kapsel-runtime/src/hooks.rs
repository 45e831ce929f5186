//! Running config.json's hooks: each gets the container's state JSON on stdin; a timeout
//! kills it.

use std::io::Write;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use oci_spec::runtime::{Hook, Hooks};

use crate::error::{Result, RuntimeError};

/// The six hook points of the runtime spec.
#[derive(Clone, Copy, Debug)]
pub enum HookKind {
    Prestart,
    CreateRuntime,
    CreateContainer,
    StartContainer,
    Poststart,
    Poststop,
}

impl HookKind {
    pub fn name(self) -> &'static str {
        match self {
            HookKind::Prestart => "prestart",
            HookKind::CreateRuntime => "createRuntime",
            HookKind::CreateContainer => "createContainer",
            HookKind::StartContainer => "startContainer",
            HookKind::Poststart => "poststart",
            HookKind::Poststop => "poststop",
        }
    }

    fn select(self, hooks: &Hooks) -> &[Hook] {
        let list = match self {
            #[allow(deprecated)]
            HookKind::Prestart => hooks.prestart(),
            HookKind::CreateRuntime => hooks.create_runtime(),
            HookKind::CreateContainer => hooks.create_container(),
            HookKind::StartContainer => hooks.start_container(),
            HookKind::Poststart => hooks.poststart(),
            HookKind::Poststop => hooks.poststop(),
        };
        list.as_deref().unwrap_or(&[])
    }
}

/// Runs the hooks of one kind in order; the first failure stops the list.
pub fn run(hooks: Option<&Hooks>, kind: HookKind, state: &serde_json::Value) -> Result<()> {
    let Some(hooks) = hooks else {
        return Ok(());
    };
    let input = serde_json::to_vec(state).expect("serializable");
    for hook in kind.select(hooks) {
        run_one(hook, kind, &input)?;
    }
    Ok(())
}

/// Runs every hook of a kind whose failures are only warnings (poststart, poststop): a
/// failing hook is reported and the rest still run.
pub fn run_warn(hooks: Option<&Hooks>, kind: HookKind, state: &serde_json::Value) {
    let Some(hooks) = hooks else {
        return;
    };
    let input = serde_json::to_vec(state).expect("serializable");
    for hook in kind.select(hooks) {
        if let Err(e) = run_one(hook, kind, &input) {
            tracing::warn!("{e}");
            eprintln!("warning: {e}");
        }
    }
}

fn run_one(hook: &Hook, kind: HookKind, input: &[u8]) -> Result<()> {
    let fail = |reason: String| RuntimeError::Hook {
        kind: kind.name(),
        path: hook.path().clone(),
        reason,
    };
    let args = hook.args().clone().unwrap_or_default();
    let mut cmd = Command::new(hook.path());
    if let Some((arg0, rest)) = args.split_first() {
        cmd.arg0(arg0).args(rest);
    }
    cmd.env_clear()
        .envs(
            hook.env()
                .iter()
                .flatten()
                .filter_map(|e| e.split_once('=')),
        )
        .stdin(Stdio::piped());
    let mut child = cmd
        .spawn()
        .map_err(|e| fail(format!("cannot start: {e}")))?;
    // A hook that does not read its stdin must not fail the write (EPIPE is fine).
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(input);
    }
    let status = match hook.timeout() {
        Some(secs) if secs > 0 => {
            wait_with_timeout(&mut child, Duration::from_secs(secs as u64))
                .ok_or_else(|| fail(format!("timed out after {secs}s and was killed")))?
        }
        Some(secs) => return Err(fail(format!("timeout {secs} must be greater than zero"))),
        None => child.wait().map_err(|e| fail(e.to_string()))?,
    };
    if status.success() {
        Ok(())
    } else {
        Err(fail(format!("exited with {status}")))
    }
}

/// Waits for the hook; kills and reaps it when the time is up (None).
fn wait_with_timeout(
    child: &mut std::process::Child,
    timeout: Duration,
) -> Option<std::process::ExitStatus> {
    let deadline = Instant::now() + timeout;
    let mut pause = Duration::from_millis(1);
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Some(status);
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(50));
    }
}
