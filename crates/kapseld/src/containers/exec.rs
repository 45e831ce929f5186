//! `docker exec`: processes started in a running container, each under its own
//! kapsel-shim (in exec mode), with the container's process settings and the exec's own
//! command, environment, user and terminal.

use std::collections::HashMap;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde::Deserialize;
use serde_json::{json, Value};

use super::supervisor::{self, LogOptions, Target};
use super::{bind_listener, user, write_json, ContainerError, Engine};

/// `POST /containers/{id}/exec`'s body.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct ExecConfig {
    pub attach_stdin: bool,
    pub attach_stdout: bool,
    pub attach_stderr: bool,
    pub tty: bool,
    pub cmd: Vec<String>,
    pub env: Option<Vec<String>>,
    pub working_dir: String,
    pub user: String,
    pub privileged: bool,
    pub detach_keys: String,
    /// The terminal's [height, width] (API 1.42); the start request may give it instead.
    pub console_size: Option<[u32; 2]>,
}

#[derive(Debug, Clone, Default)]
struct ExecState {
    started: bool,
    running: bool,
    exit_code: Option<i64>,
    pid: i32,
}

pub struct Exec {
    pub id: String,
    pub container_id: String,
    pub config: ExecConfig,
    dir: PathBuf,
    state: Mutex<ExecState>,
    /// The exit code once the watcher has seen the shim end.
    exit: tokio::sync::watch::Sender<Option<i64>>,
}

/// The exec instances, by ID (kept in memory, as dockerd keeps them).
#[derive(Default)]
pub struct Execs {
    map: Mutex<HashMap<String, Arc<Exec>>>,
}

impl Execs {
    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Exec>>> {
        self.map.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn get(&self, id: &str) -> Result<Arc<Exec>, ContainerError> {
        self.map()
            .get(id)
            .cloned()
            .ok_or_else(|| ContainerError::NotFound(format!("exec instance {id}")))
    }

    pub fn ids_of(&self, container_id: &str) -> Vec<String> {
        self.map()
            .values()
            .filter(|e| e.container_id == container_id)
            .map(|e| e.id.clone())
            .collect()
    }

    pub fn forget_container(&self, container_id: &str) {
        self.map().retain(|_, e| e.container_id != container_id);
    }

    /// Drops an exec and its shim's directory (health probes, which nobody inspects).
    pub fn discard(&self, id: &str) {
        if let Some(exec) = self.map().remove(id) {
            let _ = std::fs::remove_dir_all(&exec.dir);
        }
    }
}

impl Exec {
    fn state(&self) -> std::sync::MutexGuard<'_, ExecState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Waits until the process has ended and its shim is gone; its exit code.
    pub async fn wait(&self) -> Option<i64> {
        let mut rx = self.exit.subscribe();
        rx.wait_for(Option::is_some)
            .await
            .ok()
            .and_then(|code| *code)
    }

    /// SIGKILL to the process, if it runs.
    pub fn kill(&self) {
        let s = self.state();
        if s.running {
            super::signal_process(s.pid, nix::sys::signal::Signal::SIGKILL);
        }
    }

    /// `GET /exec/{id}/json`. An exit the shim recorded counts even before the watcher
    /// has seen it, so a client reading this right after the stream ends gets the code.
    pub fn inspect(&self) -> Value {
        let mut s = self.state().clone();
        if s.running {
            if let Some(exit) = supervisor::read_exit(&self.dir) {
                s.running = false;
                s.exit_code = Some(exit.exit_code);
            }
        }
        let c = &self.config;
        json!({
            "ID": self.id,
            "Running": s.running,
            "ExitCode": s.exit_code,
            "ProcessConfig": {
                "tty": c.tty,
                "entrypoint": c.cmd.first(),
                "arguments": c.cmd.get(1..).unwrap_or(&[]),
                "privileged": c.privileged,
                "user": c.user,
            },
            "OpenStdin": c.attach_stdin,
            "OpenStderr": c.attach_stderr,
            "OpenStdout": c.attach_stdout,
            "CanRemove": false,
            "ContainerID": self.container_id,
            "DetachKeys": c.detach_keys,
            "Pid": s.pid,
        })
    }
}

impl Engine {
    /// `POST /containers/{id}/exec`.
    pub fn exec_create(&self, name: &str, config: ExecConfig) -> Result<String, ContainerError> {
        let container = self.get(name)?;
        let record = container.snapshot();
        if record.state.status != super::record::Status::Running {
            return Err(ContainerError::NotRunning(record.id));
        }
        if config.cmd.is_empty() {
            return Err(ContainerError::InvalidConfig(
                "No exec command specified".into(),
            ));
        }
        let id = super::names::new_id(|_| false);
        let dir = self.run_dir(&record.id).join(format!("e-{}", &id[..12]));
        let exec = Arc::new(Exec {
            id: id.clone(),
            container_id: record.id,
            config,
            dir,
            state: Mutex::new(ExecState::default()),
            exit: tokio::sync::watch::channel(None).0,
        });
        self.emit(
            &container.snapshot(),
            &format!("exec_create: {}", exec.config.cmd.join(" ")),
            &[("execID", id.clone())],
        );
        self.execs.map().insert(id.clone(), exec);
        Ok(id)
    }

    /// `POST /exec/{id}/start`: starts the process; with `attach`, returns a stream
    /// connected before the start (so it sees all output).
    pub async fn exec_start(
        self: &Arc<Self>,
        id: &str,
        attach: bool,
        console_size: Option<[u32; 2]>,
    ) -> Result<(Arc<Exec>, Option<UnixStream>), ContainerError> {
        let exec = self.execs.get(id)?;
        {
            let mut s = exec.state();
            if s.started {
                return Err(ContainerError::InvalidConfig(format!(
                    "exec {id} has already been started"
                )));
            }
            s.started = true;
        }
        let container = self.get(&exec.container_id)?;
        let record = container.snapshot();
        let run_dir = self.run_dir(&record.id);
        std::fs::create_dir_all(&exec.dir)
            .map_err(|e| ContainerError::io(&format!("creating {}", exec.dir.display()), e))?;
        let mut process = exec_process(&run_dir.join("config.json"), &exec.config)?;
        if let Some(size) = console_size.or(exec.config.console_size) {
            super::spec::set_console_size(&mut process, size);
        }
        let process_path = exec.dir.join("process.json");
        write_json(&process_path, &process)?;
        let socket = exec.dir.join("attach.sock");
        let listener = bind_listener(&socket)?;
        let stream = if attach {
            Some(
                UnixStream::connect(&socket)
                    .map_err(|e| ContainerError::io("connecting to the exec's socket", e))?,
            )
        } else {
            None
        };
        let started = supervisor::launch(
            &self.config.programs,
            supervisor::Launch {
                id: &record.id,
                dir: &exec.dir,
                target: Target::Exec(&process_path),
                tty: exec.config.tty,
                stdin: exec.config.attach_stdin,
                log: &LogOptions {
                    driver: "none".into(),
                    ..LogOptions::default()
                },
                attach: listener,
                oom_file: None,
            },
        )
        .await?;
        {
            let mut s = exec.state();
            s.running = true;
            s.pid = started.pid;
        }
        let command = exec.config.cmd.join(" ");
        self.emit(
            &record,
            &format!("exec_start: {command}"),
            &[("execID", exec.id.clone())],
        );
        let (watched, engine) = (exec.clone(), self.clone());
        tokio::spawn(async move {
            let _ = supervisor::wait_for_exit(started.shim_pid, started.shim_start_time).await;
            let exit_code = supervisor::read_exit(&watched.dir).map_or(126, |e| e.exit_code);
            {
                let mut s = watched.state();
                s.running = false;
                s.exit_code = Some(exit_code);
            }
            watched.exit.send_replace(Some(exit_code));
            engine.emit(
                &record,
                "exec_die",
                &[
                    ("execID", watched.id.clone()),
                    ("exitCode", exit_code.to_string()),
                ],
            );
        });
        Ok((exec, stream))
    }
}

/// The container's process (from its config.json) with the exec's settings.
fn exec_process(config_path: &Path, exec: &ExecConfig) -> Result<Value, ContainerError> {
    let text = std::fs::read_to_string(config_path)
        .map_err(|e| ContainerError::io(&format!("reading {}", config_path.display()), e))?;
    let spec: Value = serde_json::from_str(&text)
        .map_err(|e| ContainerError::InvalidConfig(format!("{}: {e}", config_path.display())))?;
    let mut process = spec["process"].clone();
    if let Some(p) = process.as_object_mut() {
        // The container's own terminal size is not the exec client's.
        p.remove("consoleSize");
    }
    process["args"] = json!(exec.cmd);
    process["terminal"] = json!(exec.tty);
    let mut env: Vec<String> = serde_json::from_value(process["env"].clone()).unwrap_or_default();
    super::override_env(&mut env, exec.env.iter().flatten().cloned());
    process["env"] = json!(env);
    if !exec.working_dir.is_empty() {
        process["cwd"] = json!(exec.working_dir);
    }
    if !exec.user.is_empty() {
        let rootfs = spec["root"]["path"].as_str().unwrap_or("/");
        let u = user::resolve(Path::new(rootfs), &exec.user, &[])?;
        process["user"] = json!({"uid": u.uid, "gid": u.gid, "additionalGids": u.additional_gids});
    }
    if exec.privileged {
        let all: Vec<String> = caps::all().iter().map(|c| c.to_string()).collect();
        process["capabilities"] = json!({"bounding": all, "effective": all, "permitted": all});
    }
    Ok(process)
}
