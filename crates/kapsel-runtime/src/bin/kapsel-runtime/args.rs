//! The command line, as runc spells it.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand, ValueEnum};
use kapsel_runtime::ops::{CreateOptions, ExecOptions};
use kapsel_runtime::state::StateRoot;
use oci_spec::runtime::{Capabilities, Capability, LinuxCapabilities, Process, User};

#[derive(Parser)]
#[command(
    name = "kapsel-runtime",
    version,
    about = "An OCI runtime with runc's command line"
)]
pub struct Cli {
    /// Where container state is kept.
    #[arg(long, global = true, default_value = "/run/kapsel-runtime")]
    pub root: PathBuf,
    /// Write errors and debug messages to this file instead of stderr.
    #[arg(long, global = true)]
    pub log: Option<PathBuf>,
    #[arg(long, global = true, value_enum, default_value = "text")]
    pub log_format: LogFormat,
    #[arg(long, global = true)]
    pub debug: bool,
    /// Accepted for runc compatibility; cgroups are always managed through cgroupfs.
    #[arg(long, global = true)]
    pub systemd_cgroup: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Table,
    Json,
}

#[derive(Subcommand)]
pub enum Command {
    /// Write a default config.json into the bundle.
    Spec {
        #[arg(short, long, default_value = ".")]
        bundle: PathBuf,
        #[arg(long)]
        rootless: bool,
    },
    /// Create a container; its program waits for `start`.
    Create(CreateArgs),
    /// Create and start a container; wait for it unless --detach.
    Run(RunArgs),
    /// Start a created container's program.
    Start { id: String },
    /// Print a container's state as JSON.
    State { id: String },
    /// Send a signal (name or number, default TERM) to the container.
    Kill {
        id: String,
        #[arg(default_value = "TERM")]
        signal: String,
        #[arg(short, long)]
        all: bool,
    },
    /// Delete a stopped container (--force: any container).
    Delete {
        id: String,
        #[arg(short, long)]
        force: bool,
    },
    /// Run a process inside a container.
    Exec(ExecArgs),
    /// List the container's processes.
    Ps {
        id: String,
        #[arg(short, long, value_enum, default_value = "table")]
        format: Format,
        /// Options for ps(1) (default -ef).
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        ps_args: Vec<String>,
    },
    /// List containers.
    List {
        #[arg(short, long, value_enum, default_value = "table")]
        format: Format,
        #[arg(short, long)]
        quiet: bool,
    },
    /// Freeze all processes of a container.
    Pause { id: String },
    /// Thaw a paused container.
    Resume { id: String },
    /// Print resource usage as JSON, every interval or once with --stats.
    Events {
        id: String,
        #[arg(long)]
        stats: bool,
        #[arg(long, default_value = "5s")]
        interval: String,
    },
    /// Change a running container's resource limits.
    Update(crate::resources::UpdateArgs),
    /// Print the features this runtime supports.
    Features,
}

#[derive(Args)]
pub struct CreateArgs {
    pub id: String,
    #[arg(short, long, default_value = ".")]
    pub bundle: PathBuf,
    #[arg(long)]
    pub pid_file: Option<PathBuf>,
    #[arg(long)]
    pub console_socket: Option<PathBuf>,
    #[arg(long)]
    pub no_pivot: bool,
    /// Accepted for runc compatibility: kapsel does not create session keyrings.
    #[arg(long)]
    pub no_new_keyring: bool,
    #[arg(long, default_value_t = 0)]
    pub preserve_fds: u32,
}

impl CreateArgs {
    pub fn options(&self) -> CreateOptions {
        CreateOptions {
            id: self.id.clone(),
            bundle: self.bundle.clone(),
            pid_file: self.pid_file.clone(),
            console_socket: self.console_socket.clone(),
            no_pivot: self.no_pivot,
            preserve_fds: self.preserve_fds,
            listen_fds: listen_fds(),
        }
    }
}

/// Socket activation: LISTEN_FDS fds meant for this process (LISTEN_PID) are passed on.
fn listen_fds() -> u32 {
    let for_us = std::env::var("LISTEN_PID").is_ok_and(|p| p == std::process::id().to_string());
    let count = std::env::var("LISTEN_FDS")
        .ok()
        .and_then(|v| v.parse().ok());
    count.filter(|_| for_us).unwrap_or(0)
}

#[derive(Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub create: CreateArgs,
    #[arg(short, long)]
    pub detach: bool,
}

#[derive(Args)]
pub struct ExecArgs {
    pub id: String,
    /// The command and its arguments (unless --process is given).
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub command: Vec<String>,
    /// A process.json describing the whole process.
    #[arg(short, long)]
    pub process: Option<PathBuf>,
    #[arg(short, long)]
    pub tty: bool,
    #[arg(long)]
    pub console_socket: Option<PathBuf>,
    #[arg(short, long)]
    pub detach: bool,
    #[arg(long)]
    pub pid_file: Option<PathBuf>,
    #[arg(long)]
    pub cwd: Option<PathBuf>,
    #[arg(short, long)]
    pub env: Vec<String>,
    /// uid[:gid]
    #[arg(short, long)]
    pub user: Option<String>,
    #[arg(short = 'g', long)]
    pub additional_gids: Vec<u32>,
    /// Add a capability (e.g. CAP_SYS_ADMIN) to the process's sets.
    #[arg(short, long)]
    pub cap: Vec<String>,
    #[arg(long)]
    pub no_new_privs: bool,
    #[arg(long, default_value_t = 0)]
    pub preserve_fds: u32,
}

impl ExecArgs {
    pub fn options(&self, root: &StateRoot) -> Result<ExecOptions> {
        let process = match &self.process {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("reading {}", path.display()))?;
                serde_json::from_str(&text)
                    .with_context(|| format!("{} is not a valid process.json", path.display()))?
            }
            None => self.process_from_flags(root)?,
        };
        Ok(ExecOptions {
            id: self.id.clone(),
            process,
            console_socket: self.console_socket.clone(),
            detach: self.detach,
            pid_file: self.pid_file.clone(),
            preserve_fds: self.preserve_fds,
        })
    }

    /// The container's own process, with the flags applied on top (as `runc exec`).
    fn process_from_flags(&self, root: &StateRoot) -> Result<Process> {
        if self.command.is_empty() {
            bail!("exec needs a command, or --process FILE");
        }
        let mut p = kapsel_runtime::ops::container_process(root, &self.id)?;
        p.set_args(Some(self.command.clone()));
        p.set_terminal(Some(self.tty));
        if let Some(cwd) = &self.cwd {
            p.set_cwd(cwd.clone());
        }
        let mut env = p.env().clone().unwrap_or_default();
        env.extend(self.env.iter().cloned());
        p.set_env(Some(env));
        if let Some(user) = &self.user {
            p.set_user(parse_user(user, &self.additional_gids)?);
        } else if !self.additional_gids.is_empty() {
            let mut u = p.user().clone();
            u.set_additional_gids(Some(self.additional_gids.clone()));
            p.set_user(u);
        }
        if self.no_new_privs {
            p.set_no_new_privileges(Some(true));
        }
        if !self.cap.is_empty() {
            p.set_capabilities(Some(add_caps(
                p.capabilities().clone().unwrap_or_default(),
                &self.cap,
            )?));
        }
        Ok(p)
    }
}

fn parse_user(text: &str, gids: &[u32]) -> Result<User> {
    let (uid, gid) = text.split_once(':').unwrap_or((text, "0"));
    let mut u = User::default();
    u.set_uid(
        uid.parse()
            .with_context(|| format!("--user {text}: uid must be a number"))?,
    );
    u.set_gid(
        gid.parse()
            .with_context(|| format!("--user {text}: gid must be a number"))?,
    );
    if !gids.is_empty() {
        u.set_additional_gids(Some(gids.to_vec()));
    }
    Ok(u)
}

fn add_caps(mut c: LinuxCapabilities, names: &[String]) -> Result<LinuxCapabilities> {
    let parsed: Vec<Capability> = names
        .iter()
        .map(|n| {
            serde_json::from_value(serde_json::Value::String(n.to_ascii_uppercase()))
                .with_context(|| format!("unknown capability {n}"))
        })
        .collect::<Result<_>>()?;
    let extend = |set: &Option<Capabilities>| {
        let mut s = set.clone().unwrap_or_default();
        s.extend(parsed.iter().copied());
        Some(s)
    };
    c.set_bounding(extend(c.bounding()));
    c.set_effective(extend(c.effective()));
    c.set_permitted(extend(c.permitted()));
    c.set_inheritable(extend(c.inheritable()));
    Ok(c)
}

/// "5s", "100ms", "1m", or plain seconds.
pub fn parse_duration(text: &str) -> Result<Duration> {
    let (num, unit) = text.split_at(
        text.find(|c: char| !c.is_ascii_digit() && c != '.')
            .unwrap_or(text.len()),
    );
    let n: f64 = num
        .parse()
        .with_context(|| format!("invalid duration {text:?}"))?;
    let secs = match unit {
        "" | "s" => n,
        "ms" => n / 1000.0,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        _ => bail!("invalid duration {text:?}: use e.g. 5s, 500ms, 1m"),
    };
    Ok(Duration::from_secs_f64(secs))
}
