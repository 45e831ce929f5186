//! The command line: docker's commands and flags (clap), and what they share.
//!
//! One module per command group; `container <sub>`, `image <sub>` and `system <sub>`
//! reach the same handlers as the top-level shortcuts (`ps`, `images`, `info`…), as
//! docker's management commands do.

pub mod container;
pub mod image;
pub mod network;
pub mod system;
pub mod volume;

use std::collections::BTreeMap;
use std::io::{self, Write};

use clap::{Parser, Subcommand};

use crate::client::{Client, ClientError};
use crate::format::FormatError;
use crate::opts::OptsError;

/// What a command ends with: its exit status, or an error to print.
pub type Outcome = Result<i32, CmdError>;

#[derive(Debug, thiserror::Error)]
pub enum CmdError {
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error(transparent)]
    Opts(#[from] OptsError),
    #[error(transparent)]
    Format(#[from] FormatError),
    #[error("{0}")]
    Io(#[from] io::Error),
    /// A refusal or failure the CLI reports itself (docker's "Error: …" lines).
    #[error("{0}")]
    Failed(String),
    /// Exit with `code`, printing `message` (if any) on stderr.
    #[error("{message}")]
    Status { code: i32, message: String },
}

impl CmdError {
    /// An exit status with no further message (the errors were already printed).
    pub fn silent(code: i32) -> Self {
        CmdError::Status {
            code,
            message: String::new(),
        }
    }

    pub fn exit_code(&self) -> i32 {
        match self {
            CmdError::Status { code, .. } => *code,
            _ => 1,
        }
    }
}

#[derive(Parser, Debug)]
#[command(
    name = "kapsel",
    about = "A self-sufficient runtime for containers (docker's command line for kapseld)",
    disable_version_flag = true,
    subcommand_required = false
)]
pub struct Cli {
    /// Daemon socket to connect to (unix:///path); default: $KAPSEL_HOST, $DOCKER_HOST,
    /// unix:///run/kapsel.sock
    #[arg(short = 'H', long = "host", value_name = "HOST")]
    pub host: Option<String>,
    /// Print version information and quit
    #[arg(short = 'v', long = "version")]
    pub version: bool,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    #[command(flatten)]
    Containers(ContainerOp),
    /// List containers
    Ps(container::PsArgs),
    /// Remove one or more containers
    Rm(container::RmArgs),
    /// Return low-level information on kapsel objects (containers, images, networks)
    Inspect(InspectArgs),
    /// List images
    Images(image::ImagesArgs),
    /// Remove one or more images
    Rmi(image::RmiArgs),
    #[command(flatten)]
    ImageOps(ImageOp),
    /// Show the kapsel version information
    Version(system::VersionArgs),
    /// Display system-wide information
    Info(system::InfoArgs),
    /// Manage containers
    #[command(subcommand)]
    Container(ContainerCmd),
    /// Manage images
    #[command(subcommand)]
    Image(ImageCmd),
    /// Manage networks
    #[command(subcommand)]
    Network(NetworkCmd),
    /// Manage kapsel
    #[command(subcommand)]
    System(SystemCmd),
    /// Manage volumes
    #[command(subcommand)]
    Volume(VolumeCmd),
}

/// The container commands that are the same at the top level and under `container`.
#[derive(Subcommand, Debug)]
pub enum ContainerOp {
    /// Create and run a new container from an image
    Run(container::RunArgs),
    /// Create a new container
    Create(container::CreateArgs),
    /// Execute a command in a running container
    Exec(container::ExecArgs),
    /// Start one or more stopped containers
    Start(container::StartArgs),
    /// Stop one or more running containers
    Stop(container::StopArgs),
    /// Restart one or more containers
    Restart(container::StopArgs),
    /// Kill one or more running containers
    Kill(container::KillArgs),
    /// Pause all processes within one or more containers
    Pause(container::NamesArgs),
    /// Unpause all processes within one or more containers
    Unpause(container::NamesArgs),
    /// Fetch the logs of a container
    Logs(container::LogsArgs),
    /// Attach local standard input, output, and error streams to a running container
    Attach(container::AttachArgs),
    /// Display the running processes of a container
    Top(container::TopArgs),
    /// Block until one or more containers stop, then print their exit codes
    Wait(container::NamesArgs),
    /// Copy files/folders between a container and the local filesystem
    Cp(container::CpArgs),
    /// Inspect changes to files or directories on a container's filesystem
    Diff(container::OneArg),
    /// Export a container's filesystem as a tar archive
    Export(container::ExportArgs),
    /// Rename a container
    Rename(container::RenameArgs),
    /// Update configuration of one or more containers
    Update(container::UpdateArgs),
    /// List port mappings or a specific mapping for the container
    Port(container::PortArgs),
    /// Create a new image from a container's changes
    Commit(container::CommitArgs),
}

// Parsed once per process: the size of the flattened variant does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand, Debug)]
pub enum ContainerCmd {
    #[command(flatten)]
    Op(ContainerOp),
    /// List containers
    #[command(visible_aliases = ["ps", "list"])]
    Ls(container::PsArgs),
    /// Remove one or more containers
    #[command(visible_alias = "remove")]
    Rm(container::RmArgs),
    /// Display detailed information on one or more containers
    Inspect(container::ContainerInspectArgs),
    /// Remove all stopped containers
    Prune(container::PruneArgs),
}

/// The image commands that are the same at the top level and under `image`.
#[derive(Subcommand, Debug)]
pub enum ImageOp {
    /// Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE
    Tag(image::TagArgs),
    /// Load an image from a tar archive or STDIN
    Load(image::LoadArgs),
    /// Save one or more images to a tar archive (streamed to STDOUT by default)
    Save(image::SaveArgs),
    /// Show the history of an image
    History(image::HistoryArgs),
    /// Import the contents from a tarball to create a filesystem image
    Import(image::ImportArgs),
}

#[derive(Subcommand, Debug)]
pub enum ImageCmd {
    /// List images
    #[command(visible_aliases = ["list"])]
    Ls(image::ImagesArgs),
    /// Remove one or more images
    #[command(visible_aliases = ["remove", "rmi"])]
    Rm(image::RmiArgs),
    #[command(flatten)]
    Op(ImageOp),
    /// Display detailed information on one or more images
    Inspect(image::ImageInspectArgs),
    /// Remove unused images
    #[command(
        mut_arg("all", |a| a.help("Remove all unused images, not just dangling ones")),
        mut_arg("filter", |a| a.help("Provide filter values (e.g. \"until=<timestamp>\")"))
    )]
    Prune(crate::opts::PruneAllArgs),
}

#[derive(Subcommand, Debug)]
pub enum NetworkCmd {
    /// Connect a container to a network
    Connect(network::ConnectArgs),
    /// Show the connections logged on a network (-o kapsel.log-connections=true)
    Connections(network::ConnectionsArgs),
    /// Create a network
    Create(network::CreateArgs),
    /// Disconnect a container from a network
    Disconnect(network::DisconnectArgs),
    /// Display detailed information on one or more networks
    Inspect(network::InspectNetworkArgs),
    /// List networks
    #[command(visible_alias = "list")]
    Ls(network::LsArgs),
    /// Remove all unused networks
    Prune(container::PruneArgs),
    /// Remove one or more networks
    #[command(visible_alias = "remove")]
    Rm(network::RmArgs),
}

#[derive(Subcommand, Debug)]
pub enum SystemCmd {
    /// Show docker disk usage
    Df(system::DfArgs),
    /// Remove unused data
    #[command(
        mut_arg("all", |a| a.help("Remove all unused images not just dangling ones")),
        mut_arg("filter", |a| a.help("Provide filter values (e.g. \"label=<key>=<value>\")"))
    )]
    Prune(crate::opts::PruneAllArgs),
    /// Display system-wide information
    Info(system::InfoArgs),
}

#[derive(Subcommand, Debug)]
pub enum VolumeCmd {
    /// Create a volume
    Create(volume::CreateArgs),
    /// List volumes
    #[command(visible_alias = "list")]
    Ls(volume::LsArgs),
    /// Display detailed information on one or more volumes
    Inspect(volume::VolumeInspectArgs),
    /// Remove one or more volumes
    #[command(visible_alias = "remove")]
    Rm(volume::RmArgs),
    /// Remove unused local volumes
    #[command(
        mut_arg("all", |a| a.help("Remove all unused volumes, not just anonymous ones")),
        mut_arg("filter", |a| a.help("Provide filter values (e.g. \"label=<label>\")"))
    )]
    Prune(crate::opts::PruneAllArgs),
    /// Write a volume's data as a tar archive (streamed to STDOUT by default)
    Export(volume::ExportArgs),
    /// Fill a volume from a tar archive (STDIN by default)
    Import(volume::ImportArgs),
}

/// `inspect` of any object: containers first, then images, networks and volumes, as
/// docker searches.
#[derive(clap::Args, Debug)]
pub struct InspectArgs {
    /// Format output using a custom template
    #[arg(short = 'f', long)]
    pub format: Option<String>,
    /// Display total file sizes if the type is container
    #[arg(short = 's', long)]
    pub size: bool,
    /// Return JSON for specified type
    #[arg(long = "type")]
    pub kind: Option<String>,
    #[arg(required = true, value_name = "NAME|ID")]
    pub names: Vec<String>,
}

/// Runs one parsed command line.
pub async fn dispatch(client: &Client, command: Command) -> Outcome {
    use Command as C;
    match command {
        C::Containers(op) => container_op(client, op).await,
        C::Ps(a) => container::ps(client, a).await,
        C::Rm(a) => container::rm(client, a).await,
        C::Inspect(a) => inspect(client, a).await,
        C::Images(a) => image::images(client, a).await,
        C::Rmi(a) => image::rmi(client, a).await,
        C::ImageOps(op) => image_op(client, op).await,
        C::Version(a) => system::version(client, a).await,
        C::Info(a) => system::info(client, a).await,
        C::Container(sub) => match sub {
            ContainerCmd::Op(op) => container_op(client, op).await,
            ContainerCmd::Ls(a) => container::ps(client, a).await,
            ContainerCmd::Rm(a) => container::rm(client, a).await,
            ContainerCmd::Inspect(a) => inspect(client, a.into_generic("container")).await,
            ContainerCmd::Prune(a) => container::prune(client, a).await,
        },
        C::Image(sub) => match sub {
            ImageCmd::Ls(a) => image::images(client, a).await,
            ImageCmd::Rm(a) => image::rmi(client, a).await,
            ImageCmd::Op(op) => image_op(client, op).await,
            ImageCmd::Inspect(a) => inspect(client, a.into_generic()).await,
            ImageCmd::Prune(a) => image::prune(client, a).await,
        },
        C::Network(sub) => match sub {
            NetworkCmd::Connect(a) => network::connect(client, a).await,
            NetworkCmd::Connections(a) => network::connections(client, a).await,
            NetworkCmd::Create(a) => network::create(client, a).await,
            NetworkCmd::Disconnect(a) => network::disconnect(client, a).await,
            NetworkCmd::Inspect(a) => inspect(client, a.into_generic()).await,
            NetworkCmd::Ls(a) => network::ls(client, a).await,
            NetworkCmd::Prune(a) => network::prune(client, a).await,
            NetworkCmd::Rm(a) => network::rm(client, a).await,
        },
        C::System(sub) => match sub {
            SystemCmd::Df(a) => system::df(client, a).await,
            SystemCmd::Prune(a) => system::prune(client, a).await,
            SystemCmd::Info(a) => system::info(client, a).await,
        },
        C::Volume(sub) => match sub {
            VolumeCmd::Create(a) => volume::create(client, a).await,
            VolumeCmd::Ls(a) => volume::ls(client, a).await,
            VolumeCmd::Inspect(a) => volume::inspect(client, a).await,
            VolumeCmd::Rm(a) => volume::rm(client, a).await,
            VolumeCmd::Prune(a) => volume::prune(client, a).await,
            VolumeCmd::Export(a) => volume::export(client, a).await,
            VolumeCmd::Import(a) => volume::import(client, a).await,
        },
    }
}

async fn container_op(client: &Client, op: ContainerOp) -> Outcome {
    use ContainerOp as C;
    match op {
        C::Run(a) => container::run(client, a).await,
        C::Create(a) => container::create(client, a).await,
        C::Exec(a) => container::exec(client, a).await,
        C::Start(a) => container::start(client, a).await,
        C::Stop(a) => container::stop(client, a, "stop").await,
        C::Restart(a) => container::stop(client, a, "restart").await,
        C::Kill(a) => container::kill(client, a).await,
        C::Pause(a) => container::simple(client, a, "pause").await,
        C::Unpause(a) => container::simple(client, a, "unpause").await,
        C::Logs(a) => container::logs(client, a).await,
        C::Attach(a) => container::attach(client, a).await,
        C::Top(a) => container::top(client, a).await,
        C::Wait(a) => container::wait(client, a).await,
        C::Cp(a) => container::cp(client, a).await,
        C::Diff(a) => container::diff(client, a).await,
        C::Export(a) => container::export(client, a).await,
        C::Rename(a) => container::rename(client, a).await,
        C::Update(a) => container::update(client, a).await,
        C::Port(a) => container::port(client, a).await,
        C::Commit(a) => container::commit(client, a).await,
    }
}

async fn image_op(client: &Client, op: ImageOp) -> Outcome {
    use ImageOp as I;
    match op {
        I::Tag(a) => image::tag(client, a).await,
        I::Load(a) => image::load(client, a).await,
        I::Save(a) => image::save(client, a).await,
        I::History(a) => image::history(client, a).await,
        I::Import(a) => image::import(client, a).await,
    }
}

/// `inspect`: every name is looked up as a container, then as an image (or only as
/// `--type`); the raw answers are printed as one indented JSON array, or each through
/// `-f`. Unknown names print `[]` and "Error: No such object", as docker does.
pub async fn inspect(client: &Client, args: InspectArgs) -> Outcome {
    let template = match &args.format {
        Some(f) => Some(crate::format::Template::raw(f)?),
        None => None,
    };
    let mut raws = Vec::new();
    let mut errors = Vec::new();
    for name in &args.names {
        match inspect_one(client, name, args.kind.as_deref(), args.size).await {
            Ok(raw) => raws.push(raw),
            Err(e) => errors.push(e.to_string()),
        }
    }
    let mut out = String::new();
    match &template {
        None => {
            let joined: Vec<&[u8]> = raws.iter().map(|r| r.as_ref()).collect();
            let array = [b"[".as_slice(), &joined.join(b",".as_slice()), b"]"].concat();
            out.push_str(&crate::format::indent_json(&array));
            out.push('\n');
        }
        Some(t) => {
            for raw in &raws {
                let value: serde_json::Value = crate::client::parse_json(raw)?;
                out.push_str(&crate::format::render_line(
                    t,
                    &crate::format::to_value(&value, true),
                )?);
            }
        }
    }
    write_stdout(out.as_bytes())?;
    // As docker: what was found first, then what was not.
    if !errors.is_empty() {
        return Err(CmdError::Failed(errors.join("\n")));
    }
    Ok(0)
}

/// The kinds of object `inspect` looks a name up as, in docker's order.
const INSPECT_KINDS: &[&str] = &["container", "image", "network", "volume"];

async fn inspect_one(
    client: &Client,
    name: &str,
    kind: Option<&str>,
    size: bool,
) -> Result<bytes::Bytes, CmdError> {
    match kind {
        Some(k) if INSPECT_KINDS.contains(&k) => Ok(inspect_as(client, k, name, size).await?),
        Some(other) => Err(CmdError::Failed(format!(
            "\"{other}\" is not a valid value for --type"
        ))),
        None => {
            for k in INSPECT_KINDS {
                match inspect_as(client, k, name, size).await {
                    Ok(raw) => return Ok(raw),
                    Err(e) if e.daemon_status() == Some(404) => {}
                    Err(e) => return Err(e.into()),
                }
            }
            Err(CmdError::Failed(format!("Error: No such object: {name}")))
        }
    }
}

/// The daemon's raw JSON for `name` as one kind of object.
async fn inspect_as(
    client: &Client,
    kind: &str,
    name: &str,
    size: bool,
) -> Result<bytes::Bytes, ClientError> {
    let (path, query) = match kind {
        "container" => (
            format!("/containers/{name}/json"),
            crate::client::Query::new().flag("size", size),
        ),
        "image" => (format!("/images/{name}/json"), Default::default()),
        "volume" => (
            format!("/volumes/{name}"),
            crate::client::Query::new().flag("size", size),
        ),
        _ => (format!("/networks/{name}"), Default::default()),
    };
    crate::client::read_body(client.get(&path, &query).await?).await
}

/// Runs `action` on every name and prints what it returns; on a failure prints the
/// error and goes on with the others, as docker does. Returns the names that failed.
pub async fn for_each_name<'a, F, Fut>(
    names: &'a [String],
    mut action: F,
) -> io::Result<Vec<&'a str>>
where
    F: FnMut(&'a str) -> Fut,
    Fut: std::future::Future<Output = Result<String, CmdError>>,
{
    let mut failed = Vec::new();
    for name in names {
        match action(name).await {
            Ok(out) => write_stdout(out.as_bytes())?,
            Err(e) => {
                eprintln!("{e}");
                failed.push(name.as_str());
            }
        }
    }
    Ok(failed)
}

/// [`for_each_name`], exiting with 1 when any failed (its error is already printed).
pub async fn each<'a, F, Fut>(names: &'a [String], action: F) -> Outcome
where
    F: FnMut(&'a str) -> Fut,
    Fut: std::future::Future<Output = Result<String, CmdError>>,
{
    if for_each_name(names, action).await?.is_empty() {
        Ok(0)
    } else {
        Err(CmdError::silent(1))
    }
}

/// The `--format` of a list command: IDs only with `-q`, else the user's, else the
/// default table.
pub fn list_format<'a>(format: Option<&'a str>, quiet: bool, default: &'a str) -> &'a str {
    match (format, quiet) {
        (_, true) => "{{.ID}}",
        (Some(f), false) => f,
        (None, false) => default,
    }
}

/// What the prune commands print: each section that has lines ("Deleted Containers:"
/// and the IDs), then the space reclaimed.
pub fn prune_report(sections: &[(&str, &str)], space: u64) -> String {
    let mut out = String::new();
    for (title, lines) in sections.iter().filter(|(_, lines)| !lines.is_empty()) {
        out.push_str(&format!("{title}\n{lines}\n"));
    }
    out.push_str(&format!(
        "Total reclaimed space: {}\n",
        crate::format::human_size(space as f64)
    ));
    out
}

/// A failure the CLI reports in its own words.
pub fn failed(message: &str) -> CmdError {
    CmdError::Failed(message.to_string())
}

/// Writes to stdout and flushes (output is often piped to another program).
pub fn write_stdout(data: &[u8]) -> io::Result<()> {
    let mut out = io::stdout().lock();
    out.write_all(data)?;
    out.flush()
}

/// `-f key=value` filters → the API's JSON: `{"key":{"value":true}}`.
pub fn filters_json(filters: &[String]) -> Result<Option<String>, CmdError> {
    if filters.is_empty() {
        return Ok(None);
    }
    let mut map: BTreeMap<String, BTreeMap<String, bool>> = BTreeMap::new();
    for f in filters {
        let (k, v) = f
            .split_once('=')
            .ok_or_else(|| failed("bad format of filter (expected name=value)"))?;
        map.entry(k.trim().to_lowercase())
            .or_default()
            .insert(v.to_string(), true);
    }
    Ok(Some(
        serde_json::to_string(&map).expect("filters serialize"),
    ))
}

/// Asks "Are you sure you want to continue? [y/N]" after `warning`; true for yes.
pub fn confirm(warning: &str) -> io::Result<bool> {
    let mut out = io::stdout().lock();
    write!(out, "{warning}\nAre you sure you want to continue? [y/N] ")?;
    out.flush()?;
    let mut answer = String::new();
    io::stdin().read_line(&mut answer)?;
    let answer = answer.trim();
    Ok(answer.eq_ignore_ascii_case("y") || answer.eq_ignore_ascii_case("yes"))
}

/// Docker's `stringid.TruncateID`: the first 12 hex digits, without "sha256:".
pub fn short_id(id: &str) -> &str {
    let id = id.split_once(':').map_or(id, |(_, hex)| hex);
    &id[..id.len().min(12)]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_encode_as_docker_does() {
        assert_eq!(filters_json(&[]).unwrap(), None);
        assert_eq!(
            filters_json(&["dangling=true".into(), "label=a=b".into(), "label=c".into()])
                .unwrap()
                .unwrap(),
            r#"{"dangling":{"true":true},"label":{"a=b":true,"c":true}}"#
        );
        assert!(filters_json(&["nonsense".into()]).is_err());
    }

    #[test]
    fn ids_truncate_to_12() {
        assert_eq!(short_id("sha256:3d16af56c187c4dd9018"), "3d16af56c187");
        assert_eq!(short_id("abc"), "abc");
    }

    #[test]
    fn run_takes_everything_after_the_image_as_the_command() {
        let cli = Cli::try_parse_from([
            "kapsel", "run", "--rm", "-it", "-e", "A=1", "busybox", "ls", "-l", "-e", "x",
        ])
        .unwrap();
        let Some(Command::Containers(ContainerOp::Run(run))) = cli.command else {
            panic!("not run")
        };
        let run = run.create;
        assert!(run.opts.rm && run.opts.interactive && run.opts.tty);
        assert_eq!(run.opts.env, vec!["A=1"]);
        assert_eq!(run.image, "busybox");
        assert_eq!(run.command, vec!["ls", "-l", "-e", "x"]);
    }

    #[test]
    fn management_commands_alias_the_shortcuts() {
        for args in [
            &["kapsel", "container", "ls", "-a"][..],
            &["kapsel", "container", "ps", "-q"],
            &["kapsel", "image", "ls"],
            &["kapsel", "image", "rm", "-f", "x"],
            &["kapsel", "system", "df", "-v"],
            &["kapsel", "network", "list", "-q"],
            &["kapsel", "network", "remove", "a", "b"],
            &["kapsel", "-H", "unix:///x.sock", "version"],
        ] {
            Cli::try_parse_from(args).unwrap_or_else(|e| panic!("{args:?}: {e}"));
        }
    }
}
