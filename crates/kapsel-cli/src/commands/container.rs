//! Container commands: run, create, start, stop, exec, ps, logs, attach, cp and the rest,
//! each the same sequence of Engine API calls the docker CLI makes.

use std::io;
use std::path::{Path, PathBuf};

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use clap::{ArgAction, Args};
use hyper::Method;
use serde_json::{json, Value};
use tokio::io::AsyncWriteExt;

use super::{
    each, failed, filters_json, list_format, prune_report, short_id, write_stdout, CmdError,
    InspectArgs, Outcome,
};
use crate::client::{self, Client, ClientError, Query};
use crate::format::{self, Template};
use crate::opts::{ContainerOpts, Resources};
use crate::stream::{self, EscapeDetector, Hijacked, StdinEnd};
use crate::tty;

/// `run`: `create`'s arguments and two of its own.
#[derive(Args, Debug)]
pub struct RunArgs {
    #[command(flatten)]
    pub create: CreateArgs,
    /// Run container in background and print container ID
    #[arg(short = 'd', long)]
    pub detach: bool,
    /// Proxy received signals to the process
    #[arg(long = "sig-proxy", default_value_t = true, action = ArgAction::Set,
          num_args = 0..=1, default_missing_value = "true")]
    pub sig_proxy: bool,
}

/// `-h` is `--hostname` here, as in docker: help is `--help` only.
#[derive(Args, Debug)]
#[command(disable_help_flag = true)]
pub struct CreateArgs {
    #[command(flatten)]
    pub opts: ContainerOpts,
    /// Print help
    #[arg(long, action = ArgAction::Help)]
    pub help: Option<bool>,
    pub image: String,
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub command: Vec<String>,
}

#[derive(Args, Debug)]
pub struct StartArgs {
    /// Attach STDOUT/STDERR and forward signals
    #[arg(short = 'a', long)]
    pub attach: bool,
    /// Attach container's STDIN
    #[arg(short = 'i', long)]
    pub interactive: bool,
    /// Override the key sequence for detaching a container
    #[arg(long = "detach-keys")]
    pub detach_keys: Option<String>,
    #[arg(required = true, value_name = "CONTAINER")]
    pub names: Vec<String>,
}

#[derive(Args, Debug)]
pub struct StopArgs {
    /// Signal to send to the container
    #[arg(short = 's', long)]
    pub signal: Option<String>,
    /// Seconds to wait before killing the container
    #[arg(
        short = 't',
        long = "time",
        alias = "timeout",
        allow_negative_numbers = true
    )]
    pub time: Option<i64>,
    #[arg(required = true, value_name = "CONTAINER")]
    pub names: Vec<String>,
}

#[derive(Args, Debug)]
pub struct KillArgs {
    /// Signal to send to the container
    #[arg(short = 's', long)]
    pub signal: Option<String>,
    #[arg(required = true, value_name = "CONTAINER")]
    pub names: Vec<String>,
}

#[derive(Args, Debug)]
pub struct NamesArgs {
    #[arg(required = true, value_name = "CONTAINER")]
    pub names: Vec<String>,
}

#[derive(Args, Debug)]
pub struct OneArg {
    #[arg(value_name = "CONTAINER")]
    pub name: String,
}

#[derive(Args, Debug)]
pub struct RmArgs {
    /// Force the removal of a running container (uses SIGKILL)
    #[arg(short = 'f', long)]
    pub force: bool,
    /// Remove anonymous volumes associated with the container
    #[arg(short = 'v', long)]
    pub volumes: bool,
    /// Remove the specified link
    #[arg(short = 'l', long)]
    pub link: bool,
    #[arg(required = true, value_name = "CONTAINER")]
    pub names: Vec<String>,
}

#[derive(Args, Debug)]
pub struct PsArgs {
    /// Show all containers (default shows just running)
    #[arg(short = 'a', long)]
    pub all: bool,
    /// Only display container IDs
    #[arg(short = 'q', long)]
    pub quiet: bool,
    /// Show n last created containers (includes all states)
    #[arg(short = 'n', long = "last", allow_negative_numbers = true)]
    pub last: Option<i64>,
    /// Show the latest created container (includes all states)
    #[arg(short = 'l', long)]
    pub latest: bool,
    /// Display total file sizes
    #[arg(short = 's', long)]
    pub size: bool,
    /// Don't truncate output
    #[arg(long = "no-trunc")]
    pub no_trunc: bool,
    /// Filter output based on conditions provided
    #[arg(short = 'f', long = "filter", action = ArgAction::Append)]
    pub filter: Vec<String>,
    /// Format output using a custom template
    #[arg(long)]
    pub format: Option<String>,
}

#[derive(Args, Debug)]
pub struct LogsArgs {
    /// Follow log output
    #[arg(short = 'f', long)]
    pub follow: bool,
    /// Show logs since timestamp (e.g. "2013-01-02T13:23:37Z") or relative (e.g. "42m")
    #[arg(long)]
    pub since: Option<String>,
    /// Show logs before a timestamp or relative time
    #[arg(long)]
    pub until: Option<String>,
    /// Number of lines to show from the end of the logs
    #[arg(short = 'n', long, default_value = "all")]
    pub tail: String,
    /// Show timestamps
    #[arg(short = 't', long)]
    pub timestamps: bool,
    /// Show extra details provided to logs
    #[arg(long)]
    pub details: bool,
    #[arg(value_name = "CONTAINER")]
    pub name: String,
}

#[derive(Args, Debug)]
pub struct ExecArgs {
    /// Detached mode: run command in the background
    #[arg(short = 'd', long)]
    pub detach: bool,
    /// Keep STDIN open even if not attached
    #[arg(short = 'i', long)]
    pub interactive: bool,
    /// Allocate a pseudo-TTY
    #[arg(short = 't', long)]
    pub tty: bool,
    /// Set environment variables
    #[arg(short = 'e', long = "env", action = ArgAction::Append)]
    pub env: Vec<String>,
    /// Read in a file of environment variables
    #[arg(long = "env-file", action = ArgAction::Append)]
    pub env_file: Vec<PathBuf>,
    /// Working directory inside the container
    #[arg(short = 'w', long)]
    pub workdir: Option<String>,
    /// Username or UID (format: "<name|uid>[:<group|gid>]")
    #[arg(short = 'u', long)]
    pub user: Option<String>,
    /// Give extended privileges to the command
    #[arg(long)]
    pub privileged: bool,
    /// Override the key sequence for detaching a container
    #[arg(long = "detach-keys")]
    pub detach_keys: Option<String>,
    #[arg(value_name = "CONTAINER")]
    pub container: String,
    #[arg(required = true, trailing_var_arg = true, allow_hyphen_values = true)]
    pub command: Vec<String>,
}

#[derive(Args, Debug)]
pub struct AttachArgs {
    /// Do not attach STDIN
    #[arg(long = "no-stdin")]
    pub no_stdin: bool,
    /// Proxy all received signals to the process
    #[arg(long = "sig-proxy", default_value_t = true, action = ArgAction::Set,
          num_args = 0..=1, default_missing_value = "true")]
    pub sig_proxy: bool,
    /// Override the key sequence for detaching a container
    #[arg(long = "detach-keys")]
    pub detach_keys: Option<String>,
    #[arg(value_name = "CONTAINER")]
    pub name: String,
}

#[derive(Args, Debug)]
pub struct ContainerInspectArgs {
    /// Format output using a custom template
    #[arg(short = 'f', long)]
    pub format: Option<String>,
    /// Display total file sizes
    #[arg(short = 's', long)]
    pub size: bool,
    #[arg(required = true, value_name = "CONTAINER")]
    pub names: Vec<String>,
}

impl ContainerInspectArgs {
    pub fn into_generic(self, kind: &str) -> InspectArgs {
        InspectArgs {
            format: self.format,
            size: self.size,
            kind: Some(kind.to_string()),
            names: self.names,
        }
    }
}

#[derive(Args, Debug)]
pub struct TopArgs {
    #[arg(value_name = "CONTAINER")]
    pub name: String,
    /// ps options
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub ps_args: Vec<String>,
}

#[derive(Args, Debug)]
pub struct CpArgs {
    /// Archive mode (copy all uid/gid information)
    #[arg(short = 'a', long)]
    pub archive: bool,
    /// Always follow symbol link in SRC_PATH
    #[arg(short = 'L', long = "follow-link")]
    pub follow_link: bool,
    /// Suppress progress output during copy
    #[arg(short = 'q', long)]
    pub quiet: bool,
    #[arg(value_name = "SRC")]
    pub src: String,
    #[arg(value_name = "DEST")]
    pub dst: String,
}

#[derive(Args, Debug)]
pub struct ExportArgs {
    /// Write to a file, instead of STDOUT
    #[arg(short = 'o', long)]
    pub output: Option<PathBuf>,
    #[arg(value_name = "CONTAINER")]
    pub name: String,
}

#[derive(Args, Debug)]
pub struct RenameArgs {
    pub container: String,
    pub new_name: String,
}

#[derive(Args, Debug)]
pub struct UpdateArgs {
    #[command(flatten)]
    pub resources: Resources,
    /// Restart policy to apply when a container exits
    #[arg(long)]
    pub restart: Option<String>,
    #[arg(required = true, value_name = "CONTAINER")]
    pub names: Vec<String>,
}

#[derive(Args, Debug)]
pub struct PortArgs {
    #[arg(value_name = "CONTAINER")]
    pub name: String,
    /// PRIVATE_PORT[/PROTO]
    pub port: Option<String>,
}

#[derive(Args, Debug)]
pub struct CommitArgs {
    /// Author (e.g., "John Hannibal Smith <hannibal@a-team.com>")
    #[arg(short = 'a', long)]
    pub author: Option<String>,
    /// Apply Dockerfile instruction to the created image
    #[arg(short = 'c', long = "change", action = ArgAction::Append)]
    pub change: Vec<String>,
    /// Commit message
    #[arg(short = 'm', long)]
    pub message: Option<String>,
    /// Pause container during commit
    #[arg(short = 'p', long, default_value_t = true, action = ArgAction::Set,
          num_args = 0..=1, default_missing_value = "true")]
    pub pause: bool,
    pub container: String,
    /// REPOSITORY[:TAG]
    pub reference: Option<String>,
}

#[derive(Args, Debug)]
pub struct PruneArgs {
    /// Do not prompt for confirmation
    #[arg(short = 'f', long)]
    pub force: bool,
    /// Provide filter values (e.g. "until=<timestamp>")
    #[arg(long = "filter", action = ArgAction::Append)]
    pub filter: Vec<String>,
}

// ---------------------------------------------------------------------------------------
// run, create, start
// ---------------------------------------------------------------------------------------

/// `run`'s failures exit as docker's do: 125 when the daemon refused, 126 when the
/// command cannot be invoked, 127 when it is not found; with docker's help hint.
fn run_failure(err: impl std::fmt::Display, command: &str) -> CmdError {
    let message = err.to_string();
    let code = if message.contains("executable file not found")
        || message.contains("no such file or directory")
        || message.contains("not found in $PATH")
    {
        127
    } else if message.contains("permission denied")
        || message.contains("is a directory")
        || message.contains("cannot be invoked")
        || message.contains("cannot invoke")
    {
        126
    } else {
        125
    };
    CmdError::Status {
        code,
        message: format!("kapsel: {message}\n\nRun 'kapsel {command} --help' for more information"),
    }
}

/// `run`: create (pulling a missing image), attach before start unless detached, ask
/// for the exit before starting (so a quick exit is not missed), start, stream, and exit
/// with the container's status.
pub async fn run(client: &Client, args: RunArgs) -> Outcome {
    let RunArgs {
        create:
            CreateArgs {
                opts,
                image,
                command,
                ..
            },
        detach,
        sig_proxy,
    } = args;
    let attached = !detach;
    if attached {
        check_tty(opts.interactive, opts.tty)?;
    }
    let request = opts
        .create_request(&image, &command, attached)
        .map_err(|e| run_failure(e, "run"))?;
    let session = Session::new(
        opts.tty,
        opts.interactive,
        sig_proxy,
        opts.detach_keys.as_deref(),
    )?;
    let id = create_container(client, &request, &image, &opts.pull)
        .await
        .map_err(|e| run_failure(e, "run"))?;
    if detach {
        start_container(client, &id)
            .await
            .map_err(|e| run_failure(e, "run"))?;
        write_stdout(format!("{id}\n").as_bytes())?;
        return Ok(0);
    }
    let condition = if opts.rm { "removed" } else { "next-exit" };
    session
        .run_attached(client, &id, condition, Some(&|e| run_failure(e, "run")))
        .await
}

/// docker's `CheckTty`: a TTY fed from our stdin needs stdin to be a terminal.
fn check_tty(stdin: bool, tty: bool) -> Result<(), CmdError> {
    if stdin && tty && !tty::stdin_is_terminal() {
        return Err(failed("the input device is not a TTY"));
    }
    Ok(())
}

/// The creation `run` and `create` share. A missing image is pulled first, announced
/// as docker announces it, unless `--pull never`.
async fn create_container(
    client: &Client,
    request: &crate::opts::CreateRequest,
    image: &str,
    pull: &str,
) -> Result<String, CmdError> {
    if pull == "always" {
        pull_image(client, image).await?;
    }
    let query = Query::new()
        .opt("name", request.name.as_deref())
        .opt("platform", request.platform.as_deref());
    let created = match client
        .post("/containers/create", &query, Some(&request.body))
        .await
    {
        Err(e) if is_missing_image(&e) && pull == "missing" => {
            eprintln!("Unable to find image '{}' locally", with_default_tag(image));
            pull_image(client, image).await?;
            client
                .post("/containers/create", &query, Some(&request.body))
                .await?
        }
        other => other?,
    };
    print_warnings(&created);
    created["Id"]
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| ClientError::Protocol("create answered without an Id".into()).into())
}

fn is_missing_image(e: &ClientError) -> bool {
    matches!(e, ClientError::Daemon { status: 404, message } if message.contains("No such image"))
}

/// "busybox" → "busybox:latest", as docker names the image it could not find.
fn with_default_tag(image: &str) -> String {
    let last = image.rsplit('/').next().unwrap_or(image);
    if last.contains(':') || image.contains('@') {
        image.to_string()
    } else {
        format!("{image}:latest")
    }
}

/// `POST /images/create?fromImage=&tag=`, progress on stderr.
async fn pull_image(client: &Client, image: &str) -> Result<(), CmdError> {
    let (name, tag) = split_tag(image);
    let query = Query::new()
        .set("fromImage", name)
        .set("tag", tag.unwrap_or("latest"));
    let response = client
        .send(
            Method::POST,
            "/images/create",
            &query,
            client::empty(),
            None,
        )
        .await?;
    stream::print_json_messages(response.into_body(), &mut io::stderr()).await?;
    Ok(())
}

/// "name:tag" → (name, Some(tag)); a ':' before the last '/' is a registry port.
pub fn split_tag(reference: &str) -> (&str, Option<&str>) {
    let slash = reference.rfind('/').map_or(0, |i| i + 1);
    match reference[slash..].rfind(':') {
        Some(i) => (&reference[..slash + i], Some(&reference[slash + i + 1..])),
        None => (reference, None),
    }
}

/// An optional `REPOSITORY[:TAG]` → the `repo` and `tag` parameters (empty when absent),
/// as `commit` and `import` send them.
pub fn repo_and_tag(reference: Option<&str>) -> (&str, &str) {
    let (repo, tag) = reference.map_or(("", None), split_tag);
    (repo, tag.unwrap_or_default())
}

fn print_warnings(answer: &Value) {
    if let Some(warnings) = answer["Warnings"].as_array() {
        for w in warnings.iter().filter_map(Value::as_str) {
            eprintln!("WARNING: {w}");
        }
    }
}

async fn start_container(client: &Client, id: &str) -> Result<(), ClientError> {
    client
        .post(&format!("/containers/{id}/start"), &Query::new(), None)
        .await
        .map(drop)
}

pub async fn create(client: &Client, args: CreateArgs) -> Outcome {
    // Flag errors read as docker's (exit 125 with the help hint); the daemon's do not.
    let request = args
        .opts
        .create_request(&args.image, &args.command, true)
        .map_err(|e| run_failure(e, "create"))?;
    let id = create_container(client, &request, &args.image, &args.opts.pull).await?;
    write_stdout(format!("{id}\n").as_bytes())?;
    Ok(0)
}

/// `start`: without `-a`, starts each container and prints its name; with `-a`, one
/// container is attached, started and followed to its exit, as `run` does.
pub async fn start(client: &Client, args: StartArgs) -> Outcome {
    if args.attach || args.interactive {
        if args.names.len() > 1 {
            return Err(failed(
                "you cannot start and attach multiple containers at once",
            ));
        }
        let (id, session, info) = Session::of_container(
            client,
            &args.names[0],
            args.interactive,
            true,
            args.detach_keys.as_deref(),
        )
        .await?;
        let auto_remove = info["HostConfig"]["AutoRemove"].as_bool().unwrap_or(false);
        let condition = if auto_remove { "removed" } else { "next-exit" };
        return session
            .run_attached(
                client,
                &id,
                condition,
                Some(&|e| CmdError::Failed(e.to_string())),
            )
            .await;
    }
    let failed = super::for_each_name(&args.names, |name| async move {
        start_container(client, name).await?;
        Ok(format!("{name}\n"))
    })
    .await?;
    if failed.is_empty() {
        Ok(0)
    } else {
        Err(CmdError::Failed(format!(
            "Error: failed to start containers: {}",
            failed.join(", ")
        )))
    }
}

/// How an attached container's streams and the terminal are handled.
struct Session {
    tty: bool,
    stdin: bool,
    /// Forward our signals to the container (only without a TTY, where they would
    /// otherwise be lost).
    sig_proxy: bool,
    detach_keys: EscapeDetector,
    /// `--detach-keys` as given, for the daemon.
    daemon_detach_keys: Option<String>,
}

impl Session {
    fn new(
        tty: bool,
        stdin: bool,
        sig_proxy: bool,
        detach_keys: Option<&str>,
    ) -> Result<Session, CmdError> {
        Ok(Session {
            tty,
            stdin,
            sig_proxy: sig_proxy && !tty,
            detach_keys: detach_detector(detach_keys)?,
            daemon_detach_keys: detach_keys.map(str::to_string),
        })
    }

    /// For an existing container (`start -a`, `attach`): its ID, the session its
    /// configuration calls for (stdin only if it was created with it), and the inspect
    /// answer.
    async fn of_container(
        client: &Client,
        name: &str,
        stdin: bool,
        sig_proxy: bool,
        detach_keys: Option<&str>,
    ) -> Result<(String, Session, Value), CmdError> {
        let info: Value = client
            .get_json(&format!("/containers/{name}/json"), &Query::new())
            .await?;
        let config = &info["Config"];
        let session = Session::new(
            config["Tty"].as_bool().unwrap_or(false),
            stdin && config["OpenStdin"].as_bool().unwrap_or(false),
            sig_proxy,
            detach_keys,
        )?;
        let id = info["Id"].as_str().unwrap_or(name).to_string();
        Ok((id, session, info))
    }

    /// Attach, register the wait, start (when `start_failed` says how a failed start is
    /// reported), stream until the output ends, and return the exit status.
    async fn run_attached(
        &self,
        client: &Client,
        id: &str,
        condition: &str,
        start_failed: Option<&dyn Fn(ClientError) -> CmdError>,
    ) -> Outcome {
        let query = Query::new()
            .set("stream", 1)
            .flag("stdin", self.stdin)
            .set("stdout", 1)
            .set("stderr", 1)
            .opt("detachKeys", self.daemon_detach_keys.as_deref());
        let hijacked = client
            .hijack(
                Method::POST,
                &format!("/containers/{id}/attach"),
                &query,
                None,
            )
            .await?;
        let waiter = Waiter::register(client, id, condition).await;
        let raw = raw_mode(self.tty, self.stdin)?;
        if let Some(start_failed) = start_failed {
            if let Err(e) = start_container(client, id).await {
                drop(raw);
                return Err(start_failed(e));
            }
        }
        let mut background: Vec<_> =
            track_size(client, self.tty, format!("/containers/{id}/resize"))
                .into_iter()
                .collect();
        if self.sig_proxy {
            background.extend(proxy_signals(client, id));
        }
        let ended = pump(
            hijacked,
            self.tty,
            self.stdin,
            Some(self.detach_keys.clone()),
        )
        .await;
        drop(raw);
        for task in background {
            task.abort();
        }
        if ended? == StdinEnd::Detached {
            return Ok(0);
        }
        waiter.status().await
    }
}

fn detach_detector(keys: Option<&str>) -> Result<EscapeDetector, CmdError> {
    EscapeDetector::parse(keys.unwrap_or(stream::DEFAULT_DETACH_KEYS))
        .map_err(|e| CmdError::Failed(format!("invalid detach keys ({}): {e}", keys.unwrap_or(""))))
}

/// Raw mode for a TTY fed from our terminal, until the guard is dropped.
fn raw_mode(tty: bool, stdin: bool) -> Result<Option<tty::RawMode>, CmdError> {
    if tty && stdin && tty::stdin_is_terminal() {
        Ok(Some(tty::RawMode::enable().map_err(io::Error::from)?))
    } else {
        Ok(None)
    }
}

/// With a TTY on our terminal: a task that keeps the container's (or exec's) terminal
/// size, resized through `resize_path`, in step with ours.
fn track_size(
    client: &Client,
    tty: bool,
    resize_path: String,
) -> Option<tokio::task::JoinHandle<()>> {
    (tty && tty::stdout_is_terminal())
        .then(|| tokio::spawn(tty::track_size(client.clone(), resize_path)))
}

/// Streams a hijacked connection: output to our stdout/stderr (demultiplexed unless a
/// TTY), stdin to the container when asked. Ends when the output ends, or when the user
/// typed the detach keys.
async fn pump(
    hijacked: Hijacked,
    tty: bool,
    stdin: bool,
    detach: Option<EscapeDetector>,
) -> Result<StdinEnd, CmdError> {
    let Hijacked { reader, writer } = hijacked;
    let (detached_tx, detached_rx) = tokio::sync::oneshot::channel();
    // Without stdin the write half stays open (unused) until the output ends: closing
    // it early could read as "client gone" to the daemon.
    let _held_writer;
    let input = match (stdin, writer) {
        (true, Some(w)) => {
            let detach = if tty { detach } else { None };
            _held_writer = None;
            Some(tokio::spawn(async move {
                if let Ok(StdinEnd::Detached) = stream::pump_stdin(w, detach).await {
                    let _ = detached_tx.send(());
                }
            }))
        }
        (_, w) => {
            _held_writer = w;
            None
        }
    };
    let output = async {
        let mut out = tokio::io::stdout();
        if tty {
            stream::copy_raw(reader, &mut out).await
        } else {
            stream::demux(reader, &mut out, &mut tokio::io::stderr()).await
        }
    };
    let result = tokio::select! {
        r = output => r.map(|()| StdinEnd::Eof),
        Ok(()) = detached_rx => Ok(StdinEnd::Detached),
    };
    if let Some(task) = input {
        task.abort();
    }
    let _ = tokio::io::stdout().flush().await;
    Ok(result?)
}

/// The answer to `POST /containers/{id}/wait`, asked for before the container starts.
struct Waiter {
    task: tokio::task::JoinHandle<Result<i32, CmdError>>,
}

impl Waiter {
    /// Sends the wait request and gives the daemon a moment to register it: dockerd
    /// answers the headers at once, which is our signal; a daemon that answers only at
    /// exit has had the request written by the time the pause ends.
    async fn register(client: &Client, id: &str, condition: &str) -> Waiter {
        let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
        let client = client.clone();
        let path = format!("/containers/{id}/wait");
        let query = Query::new().set("condition", condition);
        let task = tokio::spawn(async move {
            let response = client
                .send(Method::POST, &path, &query, client::empty(), None)
                .await;
            let _ = ready_tx.send(());
            let body = client::read_body(response?).await?;
            wait_status(&client::parse_json(&body)?)
        });
        let _ = tokio::time::timeout(std::time::Duration::from_millis(250), ready_rx).await;
        Waiter { task }
    }

    async fn status(self) -> Result<i32, CmdError> {
        self.task
            .await
            .map_err(|e| CmdError::Failed(format!("waiting for the container: {e}")))?
    }
}

/// `{"StatusCode": n, "Error": {"Message": …}}` → n, or docker's 125 with the message.
fn wait_status(answer: &Value) -> Result<i32, CmdError> {
    if let Some(message) = answer["Error"]["Message"]
        .as_str()
        .filter(|m| !m.is_empty())
    {
        return Err(CmdError::Status {
            code: 125,
            message: format!("Error waiting for container: {message}"),
        });
    }
    Ok(answer["StatusCode"].as_i64().unwrap_or(0) as i32)
}

/// The signals docker forwards to an attached container without a TTY.
const PROXIED_SIGNALS: &[(libc::c_int, &str)] = &[
    (libc::SIGINT, "SIGINT"),
    (libc::SIGTERM, "SIGTERM"),
    (libc::SIGHUP, "SIGHUP"),
    (libc::SIGQUIT, "SIGQUIT"),
    (libc::SIGUSR1, "SIGUSR1"),
    (libc::SIGUSR2, "SIGUSR2"),
];

fn proxy_signals(client: &Client, id: &str) -> Vec<tokio::task::JoinHandle<()>> {
    use tokio::signal::unix::{signal, SignalKind};
    PROXIED_SIGNALS
        .iter()
        .filter_map(|&(number, name)| {
            let mut incoming = signal(SignalKind::from_raw(number)).ok()?;
            let client = client.clone();
            let path = format!("/containers/{id}/kill");
            Some(tokio::spawn(async move {
                while incoming.recv().await.is_some() {
                    let q = Query::new().set("signal", name);
                    let _ = client.post(&path, &q, None).await;
                }
            }))
        })
        .collect()
}

// ---------------------------------------------------------------------------------------
// attach, exec
// ---------------------------------------------------------------------------------------

pub async fn attach(client: &Client, args: AttachArgs) -> Outcome {
    let (id, session, info) = Session::of_container(
        client,
        &args.name,
        !args.no_stdin,
        args.sig_proxy,
        args.detach_keys.as_deref(),
    )
    .await?;
    let state = &info["State"];
    if !state["Running"].as_bool().unwrap_or(false) {
        return Err(failed(
            "You cannot attach to a stopped container, start it first",
        ));
    }
    if state["Paused"].as_bool().unwrap_or(false) {
        return Err(failed(
            "You cannot attach to a paused container, unpause it first",
        ));
    }
    if state["Restarting"].as_bool().unwrap_or(false) {
        return Err(failed(
            "You cannot attach to a restarting container, wait until it is running",
        ));
    }
    session.run_attached(client, &id, "not-running", None).await
}

/// `exec`: create the exec, start it on a hijacked connection, then read its exit code.
pub async fn exec(client: &Client, args: ExecArgs) -> Outcome {
    let attach = !args.detach;
    if attach {
        check_tty(args.interactive, args.tty)?;
    }
    let env = crate::opts::environment(&args.env_file, &args.env)?;
    let mut body = json!({
        "User": args.user.clone().unwrap_or_default(),
        "Privileged": args.privileged,
        "Tty": args.tty,
        "AttachStdin": attach && args.interactive,
        "AttachStdout": attach,
        "AttachStderr": attach,
        "Detach": args.detach,
        "Env": env,
        "WorkingDir": args.workdir.clone().unwrap_or_default(),
        "Cmd": args.command,
    });
    if let Some(keys) = &args.detach_keys {
        body["DetachKeys"] = json!(keys);
    }
    let console_size = tty::size().filter(|_| args.tty).map(|(h, w)| json!([h, w]));
    if let Some(size) = &console_size {
        body["ConsoleSize"] = size.clone();
    }
    let created = client
        .post(
            &format!("/containers/{}/exec", args.container),
            &Query::new(),
            Some(&body),
        )
        .await?;
    let exec_id = created["Id"]
        .as_str()
        .ok_or_else(|| ClientError::Protocol("exec create answered without an Id".into()))?
        .to_string();
    let mut start = json!({"Detach": args.detach, "Tty": args.tty});
    if let Some(size) = console_size {
        start["ConsoleSize"] = size;
    }
    if args.detach {
        client
            .post(
                &format!("/exec/{exec_id}/start"),
                &Query::new(),
                Some(&start),
            )
            .await?;
        return Ok(0);
    }
    let hijacked = client
        .hijack(
            Method::POST,
            &format!("/exec/{exec_id}/start"),
            &Query::new(),
            Some(&start),
        )
        .await?;
    let raw = raw_mode(args.tty, args.interactive)?;
    let resize = track_size(client, args.tty, format!("/exec/{exec_id}/resize"));
    let detach = detach_detector(args.detach_keys.as_deref())?;
    let ended = pump(hijacked, args.tty, args.interactive, Some(detach)).await;
    drop(raw);
    if let Some(task) = resize {
        task.abort();
    }
    if ended? == StdinEnd::Detached {
        return Ok(0);
    }
    let inspected: Value = client
        .get_json(&format!("/exec/{exec_id}/json"), &Query::new())
        .await?;
    Ok(inspected["ExitCode"].as_i64().unwrap_or(0) as i32)
}

// ---------------------------------------------------------------------------------------
// Lifecycle of many containers at once
// ---------------------------------------------------------------------------------------

/// `POST /containers/{name}/{op}` for every name, printing each name done.
async fn post_each(client: &Client, names: &[String], op: &str, query: Query) -> Outcome {
    each(names, |name| {
        let query = &query;
        async move {
            client
                .post(&format!("/containers/{name}/{op}"), query, None)
                .await?;
            Ok(format!("{name}\n"))
        }
    })
    .await
}

/// `stop` and `restart`: `POST /containers/{id}/{op}?t=&signal=`.
pub async fn stop(client: &Client, args: StopArgs, op: &str) -> Outcome {
    let query = Query::new()
        .opt("t", args.time)
        .opt("signal", args.signal.as_deref());
    post_each(client, &args.names, op, query).await
}

pub async fn kill(client: &Client, args: KillArgs) -> Outcome {
    let query = Query::new().opt("signal", args.signal.as_deref());
    post_each(client, &args.names, "kill", query).await
}

/// `pause` and `unpause`.
pub async fn simple(client: &Client, args: NamesArgs, op: &str) -> Outcome {
    post_each(client, &args.names, op, Query::new()).await
}

pub async fn rm(client: &Client, args: RmArgs) -> Outcome {
    let query = Query::new()
        .flag("force", args.force)
        .flag("v", args.volumes)
        .flag("link", args.link);
    each(&args.names, |name| {
        let query = &query;
        async move {
            client.delete(&format!("/containers/{name}"), query).await?;
            Ok(format!("{name}\n"))
        }
    })
    .await
}

/// `wait`: prints each container's exit status.
pub async fn wait(client: &Client, args: NamesArgs) -> Outcome {
    each(&args.names, |name| async move {
        let answer = client
            .post(&format!("/containers/{name}/wait"), &Query::new(), None)
            .await?;
        Ok(format!("{}\n", wait_status(&answer)?))
    })
    .await
}

pub async fn rename(client: &Client, args: RenameArgs) -> Outcome {
    let new_name = args.new_name.trim();
    if new_name.is_empty() || args.container.trim().is_empty() {
        return Err(failed("Error: Neither old nor new names may be empty"));
    }
    client
        .post(
            &format!("/containers/{}/rename", args.container),
            &Query::new().set("name", new_name),
            None,
        )
        .await?;
    Ok(0)
}

pub async fn update(client: &Client, args: UpdateArgs) -> Outcome {
    let mut body = serde_json::Map::new();
    args.resources.insert_into(&mut body)?;
    if let Some(r) = &args.restart {
        body.insert("RestartPolicy".into(), crate::opts::restart_policy(r)?);
    }
    if body.is_empty() {
        return Err(failed(
            "you must provide one or more flags when using this command",
        ));
    }
    let body = Value::Object(body);
    each(&args.names, |name| {
        let body = &body;
        async move {
            let answer = client
                .post(
                    &format!("/containers/{name}/update"),
                    &Query::new(),
                    Some(body),
                )
                .await?;
            print_warnings(&answer);
            Ok(format!("{name}\n"))
        }
    })
    .await
}

pub async fn prune(client: &Client, args: PruneArgs) -> Outcome {
    if !args.force && !super::confirm("WARNING! This will remove all stopped containers.")? {
        return Ok(0);
    }
    let (deleted, space) = prune_containers(client, &args.filter).await?;
    write_stdout(prune_report(&[("Deleted Containers:", &deleted)], space).as_bytes())?;
    Ok(0)
}

/// `POST /containers/prune` → (the deleted IDs, one a line; bytes reclaimed); `system
/// prune` uses it too.
pub async fn prune_containers(
    client: &Client,
    filters: &[String],
) -> Result<(String, u64), CmdError> {
    let query = Query::new().opt("filters", filters_json(filters)?);
    let report = client.post("/containers/prune", &query, None).await?;
    let deleted = report["ContainersDeleted"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(|id| format!("{id}\n"))
        .collect();
    Ok((deleted, report["SpaceReclaimed"].as_u64().unwrap_or(0)))
}

// ---------------------------------------------------------------------------------------
// ps
// ---------------------------------------------------------------------------------------

const PS_TABLE: &str =
    "table {{.ID}}\t{{.Image}}\t{{.Command}}\t{{.RunningFor}}\t{{.Status}}\t{{.Ports}}\t{{.Names}}";

const PS_HEADERS: &[(&str, &str)] = &[
    ("ID", "CONTAINER ID"),
    ("Image", "IMAGE"),
    ("Command", "COMMAND"),
    ("CreatedAt", "CREATED AT"),
    ("RunningFor", "CREATED"),
    ("Ports", "PORTS"),
    ("State", "STATE"),
    ("Status", "STATUS"),
    ("Size", "SIZE"),
    ("Names", "NAMES"),
    ("Labels", "LABELS"),
    ("Mounts", "MOUNTS"),
    ("Networks", "NETWORKS"),
    ("LocalVolumes", "LOCAL VOLUMES"),
];

pub async fn ps(client: &Client, args: PsArgs) -> Outcome {
    let default = if args.size {
        format!("{PS_TABLE}\t{{{{.Size}}}}")
    } else {
        PS_TABLE.to_string()
    };
    let format = list_format(args.format.as_deref(), args.quiet, &default);
    let template = Template::parse(format, PS_TABLE)?;
    let limit = if args.latest {
        Some(1)
    } else {
        args.last.filter(|n| *n > 0)
    };
    let query = Query::new()
        .flag("all", args.all)
        .opt("limit", limit)
        .flag("size", args.size || format.contains(".Size"))
        .opt("filters", filters_json(&args.filter)?);
    let containers: Vec<Value> = client.get_json("/containers/json", &query).await?;
    let rows: Vec<_> = containers
        .iter()
        .map(|c| ps_row(c, !args.no_trunc))
        .collect();
    let out = template.render_list(PS_HEADERS, &rows)?;
    write_stdout(out.as_bytes())?;
    Ok(0)
}

/// One container of `GET /containers/json` as docker's ps formatting context.
pub fn ps_row(c: &Value, trunc: bool) -> gtmpl::Value {
    let id = c["Id"].as_str().unwrap_or_default();
    let created = c["Created"].as_i64().unwrap_or(0);
    let command = c["Command"].as_str().unwrap_or_default();
    let command = if trunc {
        ellipsis(command, 20)
    } else {
        command.to_string()
    };
    let size_rw = c["SizeRw"].as_i64().unwrap_or(0);
    let size_root = c["SizeRootFs"].as_i64().unwrap_or(0);
    let mut size = format::human_size_precision(size_rw as f64, 3);
    if size_root > 0 {
        size = format!(
            "{size} (virtual {})",
            format::human_size_precision(size_root as f64, 3)
        );
    }
    let mut row = format::context(&[
        (
            "ID",
            if trunc {
                short_id(id).to_string()
            } else {
                id.to_string()
            },
        ),
        ("Image", ps_image(c, trunc)),
        ("Command", go_quote(&command)),
        ("CreatedAt", format::go_time_string(created)),
        ("RunningFor", format::since(created)),
        (
            "Ports",
            display_ports(c["Ports"].as_array().map(Vec::as_slice).unwrap_or(&[])),
        ),
        ("State", c["State"].as_str().unwrap_or_default().to_string()),
        (
            "Status",
            c["Status"].as_str().unwrap_or_default().to_string(),
        ),
        ("Size", size),
        ("Names", ps_names(c, trunc)),
        ("Labels", labels(&c["Labels"])),
        ("Mounts", mounts(&c["Mounts"], trunc)),
        ("Networks", networks(&c["NetworkSettings"]["Networks"])),
        ("LocalVolumes", local_volumes(&c["Mounts"])),
    ]);
    // docker 28 also has the image's platform, unknown (null) unless the daemon says.
    if let gtmpl::Value::Map(m) = &mut row {
        m.insert(
            "Platform".into(),
            format::to_value(&c["ImageManifestDescriptor"]["platform"], false),
        );
    }
    row
}

/// docker's IMAGE column: an image ID shortened; a reference without its digest.
fn ps_image(c: &Value, trunc: bool) -> String {
    let image = c["Image"].as_str().unwrap_or_default();
    if image.is_empty() {
        return "<no image>".into();
    }
    if !trunc {
        return image.to_string();
    }
    let image_id = c["ImageID"].as_str().unwrap_or_default();
    if short_id(image_id) == short_id(image) {
        return short_id(image).to_string();
    }
    let without_digest = image.split('@').next().unwrap_or(image);
    familiar(without_digest)
}

/// Docker's familiar form of a reference: without "docker.io/" and "library/".
pub fn familiar(reference: &str) -> String {
    let r = reference.strip_prefix("docker.io/").unwrap_or(reference);
    r.strip_prefix("library/").unwrap_or(r).to_string()
}

fn ps_names(c: &Value, trunc: bool) -> String {
    let names: Vec<&str> = c["Names"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(|n| n.trim_start_matches('/'))
                .collect()
        })
        .unwrap_or_default();
    if trunc {
        // Link aliases ("other/alias") are left out unless nothing else is there.
        if let Some(plain) = names.iter().find(|n| !n.contains('/')) {
            return plain.to_string();
        }
    }
    names.join(",")
}

pub fn labels(v: &Value) -> String {
    v.as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
                .collect::<Vec<_>>()
                .join(",")
        })
        .unwrap_or_default()
}

fn mounts(v: &Value, trunc: bool) -> String {
    v.as_array()
        .map(|a| {
            a.iter()
                .map(|m| {
                    let name = m["Name"]
                        .as_str()
                        .filter(|n| !n.is_empty())
                        .or(m["Source"].as_str())
                        .unwrap_or_default();
                    if trunc {
                        ellipsis(name, 15)
                    } else {
                        name.to_string()
                    }
                })
                .collect::<Vec<_>>()
                .join(",")
        })
        .unwrap_or_default()
}

fn networks(v: &Value) -> String {
    v.as_object()
        .map(|m| m.keys().cloned().collect::<Vec<_>>().join(","))
        .unwrap_or_default()
}

fn local_volumes(v: &Value) -> String {
    let n = v
        .as_array()
        .map(|a| {
            a.iter()
                .filter(|m| m["Driver"].as_str() == Some("local"))
                .count()
        })
        .unwrap_or(0);
    n.to_string()
}

/// docker's `Ellipsis`: at most `max` characters, the last one "…" when cut.
pub fn ellipsis(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let mut out: String = s.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

/// Go's `strconv.Quote` for the printable text a command line is.
pub fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() => out.push_str(&format!("\\x{:02x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// docker's `DisplayablePorts`: sorted, consecutive ports grouped into ranges,
/// published ports as `ip:public->private/proto`.
pub fn display_ports(ports: &[Value]) -> String {
    struct Port {
        ip: String,
        private: u64,
        public: u64,
        kind: String,
    }
    let mut ports: Vec<Port> = ports
        .iter()
        .map(|p| Port {
            ip: p["IP"].as_str().unwrap_or_default().to_string(),
            private: p["PrivatePort"].as_u64().unwrap_or(0),
            public: p["PublicPort"].as_u64().unwrap_or(0),
            kind: p["Type"].as_str().unwrap_or("tcp").to_string(),
        })
        .collect();
    ports.sort_by(|a, b| {
        (a.private, &a.ip, a.public, &a.kind).cmp(&(b.private, &b.ip, b.public, &b.kind))
    });
    let mut groups: Vec<(String, u64, u64)> = Vec::new();
    let mut result = Vec::new();
    let mut host_mappings = Vec::new();
    for p in &ports {
        let mut key = p.kind.clone();
        if !p.ip.is_empty() {
            if p.public != p.private {
                host_mappings.push(format!(
                    "{}->{}/{}",
                    join_host_port(&p.ip, p.public),
                    p.private,
                    p.kind
                ));
                continue;
            }
            key = format!("{}/{}", p.ip, p.kind);
        }
        match groups.iter_mut().find(|(k, _, _)| *k == key) {
            None => groups.push((key, p.private, p.private)),
            Some(group) if p.private == group.2 + 1 => group.2 = p.private,
            Some(group) => {
                result.push(form_group(&group.0, group.1, group.2));
                *group = (key, p.private, p.private);
            }
        }
    }
    result.extend(
        groups
            .iter()
            .map(|(k, first, last)| form_group(k, *first, *last)),
    );
    result.extend(host_mappings);
    result.join(", ")
}

fn form_group(key: &str, first: u64, last: u64) -> String {
    let (ip, kind) = match key.rsplit_once('/') {
        Some((ip, kind)) => (ip, kind),
        None => ("", key),
    };
    let mut group = first.to_string();
    if first != last {
        group = format!("{group}-{last}");
    }
    if !ip.is_empty() {
        group = format!("{ip}:{group}->{group}");
    }
    format!("{group}/{kind}")
}

/// Go's `net.JoinHostPort`: IPv6 addresses in brackets.
fn join_host_port(ip: &str, port: impl std::fmt::Display) -> String {
    if ip.contains(':') {
        format!("[{ip}]:{port}")
    } else {
        format!("{ip}:{port}")
    }
}

// ---------------------------------------------------------------------------------------
// logs, top, diff, port
// ---------------------------------------------------------------------------------------

pub async fn logs(client: &Client, args: LogsArgs) -> Outcome {
    let name = &args.name;
    let info: Value = client
        .get_json(&format!("/containers/{name}/json"), &Query::new())
        .await?;
    let now = std::time::SystemTime::now();
    let query = Query::new()
        .set("stdout", 1)
        .set("stderr", 1)
        .flag("follow", args.follow)
        .flag("timestamps", args.timestamps)
        .flag("details", args.details)
        .opt(
            "since",
            args.since.as_deref().map(|s| api_timestamp(s, now)),
        )
        .opt(
            "until",
            args.until.as_deref().map(|s| api_timestamp(s, now)),
        )
        .set("tail", &args.tail);
    let response = client
        .get(&format!("/containers/{name}/logs"), &query)
        .await?;
    let body = stream::body_reader(response.into_body());
    let mut out = tokio::io::stdout();
    if info["Config"]["Tty"].as_bool().unwrap_or(false) {
        stream::copy_raw(body, &mut out).await?;
    } else {
        stream::demux(body, &mut out, &mut tokio::io::stderr()).await?;
    }
    Ok(0)
}

/// docker's `GetTimestamp`: a Go duration is relative to now, an RFC 3339 time becomes
/// unix seconds; anything else (already a unix timestamp) goes as is.
pub fn api_timestamp(value: &str, now: std::time::SystemTime) -> String {
    let now = now
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos() as i64;
    if let Some(ns) = format::parse_go_duration(value) {
        let t = now - ns;
        return format!(
            "{}.{:09}",
            t.div_euclid(1_000_000_000),
            t.rem_euclid(1_000_000_000)
        );
    }
    if let Some((secs, nanos)) = format::parse_rfc3339(value) {
        return format!("{secs}.{nanos:09}");
    }
    value.to_string()
}

pub async fn top(client: &Client, args: TopArgs) -> Outcome {
    let query = Query::new().non_empty("ps_args", &args.ps_args.join(" "));
    let answer: Value = client
        .get_json(&format!("/containers/{}/top", args.name), &query)
        .await?;
    let mut text = String::new();
    let cells = |row: &Value| -> String {
        row.as_array()
            .map(|r| {
                r.iter()
                    .map(|c| c.as_str().unwrap_or_default())
                    .collect::<Vec<_>>()
                    .join("\t")
            })
            .unwrap_or_default()
    };
    text.push_str(&cells(&answer["Titles"]));
    text.push('\n');
    for process in answer["Processes"].as_array().into_iter().flatten() {
        text.push_str(&cells(process));
        text.push('\n');
    }
    write_stdout(format::tabwrite(&text, 20, 3).as_bytes())?;
    Ok(0)
}

pub async fn diff(client: &Client, args: OneArg) -> Outcome {
    let changes: Value = client
        .get_json(&format!("/containers/{}/changes", args.name), &Query::new())
        .await?;
    let mut out = String::new();
    for change in changes.as_array().into_iter().flatten() {
        let kind = match change["Kind"].as_u64() {
            Some(0) => "C",
            Some(1) => "A",
            Some(2) => "D",
            _ => "?",
        };
        out.push_str(&format!(
            "{kind} {}\n",
            change["Path"].as_str().unwrap_or_default()
        ));
    }
    write_stdout(out.as_bytes())?;
    Ok(0)
}

/// `port`: the bindings of one container port (tcp unless named), or of all, one a
/// line in docker's natural order.
pub async fn port(client: &Client, args: PortArgs) -> Outcome {
    let info: Value = client
        .get_json(&format!("/containers/{}/json", args.name), &Query::new())
        .await?;
    let ports = info["NetworkSettings"]["Ports"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    let bindings = |key: &str| -> Vec<String> {
        ports
            .get(key)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .map(binding)
            .collect()
    };
    let mut lines = Vec::new();
    if let Some(wanted) = &args.port {
        let (number, proto) = wanted.split_once('/').unwrap_or((wanted, ""));
        let proto = if proto.is_empty() { "tcp" } else { proto };
        crate::opts::port_number(number)
            .map_err(|e| CmdError::Failed(format!("Error: invalid port ({number}): {e}")))?;
        lines = bindings(&format!("{number}/{proto}"));
        if lines.is_empty() {
            return Err(CmdError::Failed(format!(
                "Error: No public port '{wanted}' published for {}",
                args.name
            )));
        }
    } else {
        for key in ports.keys() {
            lines.extend(bindings(key).iter().map(|b| format!("{key} -> {b}")));
        }
    }
    lines.sort_by(|a, b| format::natural_cmp(a, b));
    let out: String = lines.iter().map(|l| format!("{l}\n")).collect();
    write_stdout(out.as_bytes())?;
    Ok(0)
}

fn binding(b: &Value) -> String {
    join_host_port(
        b["HostIp"].as_str().unwrap_or_default(),
        b["HostPort"].as_str().unwrap_or_default(),
    )
}

// ---------------------------------------------------------------------------------------
// export, commit, cp
// ---------------------------------------------------------------------------------------

pub async fn export(client: &Client, args: ExportArgs) -> Outcome {
    super::image::refuse_terminal(args.output.as_deref())?;
    let response = client
        .get(&format!("/containers/{}/export", args.name), &Query::new())
        .await?;
    super::image::write_download(response.into_body(), args.output.as_deref(), "Exporting").await?;
    Ok(0)
}

pub async fn commit(client: &Client, args: CommitArgs) -> Outcome {
    let (repo, tag) = repo_and_tag(args.reference.as_deref());
    let mut query = Query::new()
        .set("container", &args.container)
        .non_empty("repo", repo)
        .non_empty("tag", tag)
        .opt("comment", args.message.as_deref())
        .opt("author", args.author.as_deref())
        .set("pause", args.pause);
    for change in &args.change {
        query = query.set("changes", change);
    }
    let answer = client.post("/commit", &query, None).await?;
    write_stdout(format!("{}\n", answer["Id"].as_str().unwrap_or_default()).as_bytes())?;
    Ok(0)
}

/// `cp SRC DST` where one side is `CONTAINER:PATH`; `-` streams a tar on stdin/stdout.
pub async fn cp(client: &Client, args: CpArgs) -> Outcome {
    match (container_path(&args.src), container_path(&args.dst)) {
        (Some(_), Some(_)) => Err(failed("copying between containers is not supported")),
        (None, None) => Err(failed("must specify at least one container source")),
        (Some((c, path)), None) => copy_from(client, c, path, &args.dst, args.quiet).await,
        (None, Some((c, path))) => copy_to(client, &args.src, c, path, args.archive).await,
    }
}

/// "name:/path" → (name, path); local paths (absolute, relative with ./, or no colon)
/// are `None`, as docker's splitCpArg decides.
fn container_path(arg: &str) -> Option<(&str, &str)> {
    if arg.starts_with('/') || arg.starts_with('.') {
        return None;
    }
    let (c, p) = arg.split_once(':')?;
    (!c.is_empty()).then_some((c, p))
}

async fn copy_from(
    client: &Client,
    container: &str,
    path: &str,
    dst: &str,
    quiet: bool,
) -> Outcome {
    let query = Query::new().set("path", path);
    let response = client
        .get(&format!("/containers/{container}/archive"), &query)
        .await?;
    if dst == "-" {
        super::image::write_download(response.into_body(), None, "Copying").await?;
        return Ok(0);
    }
    let tar = client::read_body(response).await?;
    let copied = tar.len();
    let target = PathBuf::from(dst);
    tokio::task::spawn_blocking(move || extract_archive(&tar, &target))
        .await
        .map_err(|e| CmdError::Failed(e.to_string()))??;
    if !quiet && tty::stderr_is_terminal() {
        eprintln!(
            "Successfully copied {} to {dst}",
            format::human_size(copied as f64)
        );
    }
    Ok(0)
}

/// Extracts a container archive to `dst`: into it when it is an existing directory,
/// else as `dst` itself (the archive's top entry renamed), as `docker cp` does.
fn extract_archive(tar: &[u8], dst: &Path) -> Result<(), CmdError> {
    if dst.is_dir() {
        tar::Archive::new(tar).unpack(dst)?;
        return Ok(());
    }
    let parent = dst
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    if !parent.is_dir() {
        return Err(CmdError::Failed(format!(
            "Error: no such directory: {}",
            parent.display()
        )));
    }
    let new_name = dst
        .file_name()
        .ok_or_else(|| CmdError::Failed(format!("invalid destination {}", dst.display())))?;
    let mut archive = tar::Archive::new(tar);
    let mut root: Option<PathBuf> = None;
    for entry in archive.entries()? {
        let mut entry = entry?;
        let path = entry.path()?.into_owned();
        let first = path
            .components()
            .next()
            .map(|c| PathBuf::from(c.as_os_str()));
        let root = root.get_or_insert_with(|| first.clone().unwrap_or_default());
        let rest = path.strip_prefix(&*root).unwrap_or(&path);
        // join("") would add a trailing '/', which a file cannot be unpacked to.
        let target = if rest.as_os_str().is_empty() {
            parent.join(new_name)
        } else {
            parent.join(new_name).join(rest)
        };
        if let Some(dir) = target.parent() {
            std::fs::create_dir_all(dir)?;
        }
        entry.unpack(&target)?;
    }
    Ok(())
}

async fn copy_to(
    client: &Client,
    src: &str,
    container: &str,
    path: &str,
    archive: bool,
) -> Outcome {
    let query_for = |p: &str| Query::new().set("path", p).flag("copyUIDGID", archive);
    if src == "-" {
        let body = client::reader_body(tokio::io::stdin(), |_| {});
        client
            .send(
                Method::PUT,
                &format!("/containers/{container}/archive"),
                &query_for(path),
                body,
                Some("application/x-tar"),
            )
            .await?;
        return Ok(0);
    }
    let src_path = PathBuf::from(src);
    if !src_path.exists() {
        return Err(CmdError::Failed(format!(
            "Error: lstat {}: no such file or directory",
            std::path::absolute(&src_path)
                .unwrap_or(src_path.clone())
                .display()
        )));
    }
    // Where the copy lands: inside `path` when it is a directory in the container,
    // else `path` itself, uploaded to its parent under its own name.
    let stat = client
        .send(
            Method::HEAD,
            &format!("/containers/{container}/archive"),
            &Query::new().set("path", path),
            client::empty(),
            None,
        )
        .await;
    let dst_is_dir = match stat {
        Ok(response) => path_stat_is_dir(response.headers()),
        Err(e) if e.daemon_status() == Some(404) => false,
        Err(e) => return Err(e.into()),
    };
    let src_name = src_path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| ".".into());
    let (upload_dir, entry_name) = if dst_is_dir || path.ends_with('/') {
        (path.to_string(), src_name)
    } else {
        let trimmed = path.trim_end_matches('/');
        let (dir, name) = trimmed.rsplit_once('/').unwrap_or((".", trimmed));
        (
            if dir.is_empty() {
                "/".to_string()
            } else {
                dir.to_string()
            },
            name.to_string(),
        )
    };
    let tar = tokio::task::spawn_blocking(move || build_archive(&src_path, &entry_name))
        .await
        .map_err(|e| CmdError::Failed(e.to_string()))??;
    client
        .send(
            Method::PUT,
            &format!("/containers/{container}/archive"),
            &query_for(&upload_dir),
            client::bytes_body(tar),
            Some("application/x-tar"),
        )
        .await?;
    Ok(0)
}

/// The `X-Docker-Container-Path-Stat` header (base64 JSON with a Go `FileMode`): is the
/// path a directory? (os.ModeDir is the top bit of the 32-bit mode.)
fn path_stat_is_dir(headers: &hyper::HeaderMap) -> bool {
    let Some(value) = headers.get("X-Docker-Container-Path-Stat") else {
        return false;
    };
    let Ok(decoded) = BASE64.decode(value.as_bytes()) else {
        return false;
    };
    let stat: Value = serde_json::from_slice(&decoded).unwrap_or(Value::Null);
    stat["mode"].as_u64().is_some_and(|m| m & (1 << 31) != 0)
}

/// A tar of `src` (file or directory tree) whose top entry is `name`.
fn build_archive(src: &Path, name: &str) -> Result<Vec<u8>, CmdError> {
    let mut builder = tar::Builder::new(Vec::new());
    builder.follow_symlinks(false);
    if src.is_dir() {
        builder.append_dir_all(name, src)?;
    } else {
        builder.append_path_with_name(src, name)?;
    }
    Ok(builder.into_inner()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_display_as_docker() {
        let ports = vec![
            json!({"PrivatePort": 80, "PublicPort": 8080, "IP": "0.0.0.0", "Type": "tcp"}),
            json!({"PrivatePort": 80, "PublicPort": 8080, "IP": "::", "Type": "tcp"}),
            json!({"PrivatePort": 443, "Type": "tcp"}),
            json!({"PrivatePort": 444, "Type": "tcp"}),
            json!({"PrivatePort": 53, "Type": "udp"}),
        ];
        assert_eq!(
            display_ports(&ports),
            "53/udp, 443-444/tcp, 0.0.0.0:8080->80/tcp, [::]:8080->80/tcp"
        );
        assert_eq!(display_ports(&[]), "");
    }

    #[test]
    fn ps_rows_look_like_docker() {
        let c = json!({
            "Id": "4a7f7eebae0f63178aff7eb0aa39cd3f0627a203ab2df258c1a00b456cf20063",
            "Names": ["/web", "/other/alias"],
            "Image": "docker.io/library/busybox:latest@sha256:abc",
            "ImageID": "sha256:ffff",
            "Command": "sh -c 'while true; do sleep 1; done'",
            "Created": format::now_unix() - 150,
            "State": "running",
            "Status": "Up 2 minutes",
            "Ports": [],
            "Labels": {"a": "b"},
        });
        let row = ps_row(&c, true);
        let t = Template::parse(
            "{{.ID}}|{{.Image}}|{{.Command}}|{{.RunningFor}}|{{.Names}}|{{.Labels}}|{{.Size}}",
            "",
        )
        .unwrap();
        assert_eq!(
            t.render(&row).unwrap(),
            "4a7f7eebae0f|busybox:latest|\"sh -c 'while true; …\"|2 minutes ago|web|a=b|0B"
        );
        let full = Template::parse("{{.Names}}", "")
            .unwrap()
            .render(&ps_row(&c, false))
            .unwrap();
        assert_eq!(full, "web,other/alias");
    }

    #[test]
    fn cp_arguments_and_tags_split_as_docker() {
        assert_eq!(
            container_path("web:/etc/hosts"),
            Some(("web", "/etc/hosts"))
        );
        assert_eq!(container_path("/tmp/a:b"), None);
        assert_eq!(container_path("./x:y"), None);
        assert_eq!(container_path("file"), None);
        assert_eq!(
            split_tag("localhost:5000/a/b:t"),
            ("localhost:5000/a/b", Some("t"))
        );
        assert_eq!(split_tag("localhost:5000/a"), ("localhost:5000/a", None));
        assert_eq!(with_default_tag("busybox"), "busybox:latest");
        assert_eq!(
            with_default_tag("localhost:5000/x"),
            "localhost:5000/x:latest"
        );
        assert_eq!(with_default_tag("a:1"), "a:1");
    }

    #[test]
    fn run_failures_map_to_docker_exit_codes() {
        let code = |m: &str| run_failure(m, "run").exit_code();
        assert_eq!(code("Error response from daemon: No such image: x"), 125);
        assert_eq!(
            code("exec: \"nope\": executable file not found in $PATH"),
            127
        );
        assert_eq!(code("exec /etc: permission denied"), 126);
        let msg = run_failure("Error response from daemon: boom", "run").to_string();
        assert_eq!(msg, "kapsel: Error response from daemon: boom\n\nRun 'kapsel run --help' for more information");
    }

    #[test]
    fn wait_answers_become_exit_codes() {
        assert_eq!(wait_status(&json!({"StatusCode": 3})).unwrap(), 3);
        let err = wait_status(&json!({"StatusCode": 0, "Error": {"Message": "gone"}})).unwrap_err();
        assert_eq!(err.exit_code(), 125);
    }

    #[test]
    fn timestamps_for_since_and_until() {
        let now = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_000);
        assert_eq!(api_timestamp("10s", now), "990.000000000");
        assert_eq!(api_timestamp("1970-01-01T00:01:00Z", now), "60.000000000");
        assert_eq!(api_timestamp("1234.5", now), "1234.5");
    }

    #[test]
    fn path_stat_headers_decode() {
        let stat = r#"{"name":"etc","size":4096,"mode":2147484141}"#;
        let mut headers = hyper::HeaderMap::new();
        let encoded = BASE64.encode(stat.as_bytes());
        headers.insert("X-Docker-Container-Path-Stat", encoded.parse().unwrap());
        assert!(path_stat_is_dir(&headers));
    }

    #[test]
    fn archives_round_trip_with_a_new_name() {
        let dir = std::env::temp_dir().join(format!("kapsel-cp-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("src/sub")).unwrap();
        std::fs::write(dir.join("src/sub/f"), "data").unwrap();
        let tar = build_archive(&dir.join("src"), "src").unwrap();
        extract_archive(&tar, &dir.join("copy")).unwrap();
        assert_eq!(
            std::fs::read_to_string(dir.join("copy/sub/f")).unwrap(),
            "data"
        );
        std::fs::create_dir_all(dir.join("into")).unwrap();
        extract_archive(&tar, &dir.join("into")).unwrap();
        assert_eq!(
            std::fs::read_to_string(dir.join("into/src/sub/f")).unwrap(),
            "data"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
