//! Volume commands: create, ls, inspect, rm, prune, and kapsel's export and import
//! (docker has none: its users run a throw-away container with tar).

use std::path::PathBuf;

use clap::{ArgAction, Args};
use hyper::Method;
use serde_json::{json, Map, Value};

use super::image::{refuse_terminal, upload_source, write_download};
use super::{
    each, failed, filters_json, prune_report, write_stdout, CmdError, InspectArgs, Outcome,
};
use crate::client::{Client, Query};
use crate::format::{self, Template};

#[derive(Args, Debug)]
pub struct CreateArgs {
    /// Specify volume driver name
    #[arg(short = 'd', long, default_value = "local")]
    pub driver: String,
    /// Set metadata for a volume
    #[arg(long = "label", action = ArgAction::Append)]
    pub labels: Vec<String>,
    /// Set driver specific options (type=tmpfs, device=…, o=…)
    #[arg(short = 'o', long = "opt", action = ArgAction::Append)]
    pub opts: Vec<String>,
    /// Specify volume name
    #[arg(long = "name")]
    pub name_flag: Option<String>,
    #[arg(value_name = "VOLUME")]
    pub name: Option<String>,
}

#[derive(Args, Debug)]
pub struct LsArgs {
    /// Only display volume names
    #[arg(short = 'q', long)]
    pub quiet: bool,
    /// Provide filter values (e.g. "dangling=true")
    #[arg(short = 'f', long = "filter", action = ArgAction::Append)]
    pub filter: Vec<String>,
    /// Format output using a custom template
    #[arg(long)]
    pub format: Option<String>,
}

#[derive(Args, Debug)]
pub struct VolumeInspectArgs {
    /// Format output using a custom template
    #[arg(short = 'f', long)]
    pub format: Option<String>,
    /// Add UsageData (size and reference count)
    #[arg(short = 's', long)]
    pub size: bool,
    #[arg(required = true, value_name = "VOLUME")]
    pub names: Vec<String>,
}

#[derive(Args, Debug)]
pub struct RmArgs {
    /// Do not error out when a volume does not exist
    #[arg(short = 'f', long)]
    pub force: bool,
    #[arg(required = true, value_name = "VOLUME")]
    pub names: Vec<String>,
}

#[derive(Args, Debug)]
pub struct ExportArgs {
    /// Write to a file, instead of STDOUT
    #[arg(short = 'o', long)]
    pub output: Option<PathBuf>,
    #[arg(value_name = "VOLUME")]
    pub name: String,
}

#[derive(Args, Debug)]
pub struct ImportArgs {
    /// Read from a tar archive file, instead of STDIN
    #[arg(short = 'i', long)]
    pub input: Option<PathBuf>,
    #[arg(value_name = "VOLUME")]
    pub name: String,
}

/// `KEY=VALUE` pairs (a bare KEY has an empty value, as docker's labels).
fn pairs(items: &[String]) -> Map<String, Value> {
    items
        .iter()
        .map(|item| {
            let (k, v) = item.split_once('=').unwrap_or((item, ""));
            (k.to_string(), json!(v))
        })
        .collect()
}

pub async fn create(client: &Client, args: CreateArgs) -> Outcome {
    let name =
        match (&args.name_flag, &args.name) {
            (Some(a), Some(b)) if a != b => return Err(failed(
                "conflicting options: either specify --name or provide positional arg, not both",
            )),
            (Some(n), _) | (None, Some(n)) => n.clone(),
            (None, None) => String::new(),
        };
    let body = json!({
        "Name": name,
        "Driver": args.driver,
        "DriverOpts": pairs(&args.opts),
        "Labels": pairs(&args.labels),
    });
    let volume = client
        .post("/volumes/create", &Query::new(), Some(&body))
        .await?;
    write_stdout(format!("{}\n", volume["Name"].as_str().unwrap_or("")).as_bytes())?;
    Ok(0)
}

const VOLUMES_TABLE: &str = "table {{.Driver}}\t{{.Name}}";
const VOLUME_HEADERS: &[(&str, &str)] = &[
    ("Driver", "DRIVER"),
    ("Name", "VOLUME NAME"),
    ("Mountpoint", "MOUNTPOINT"),
    ("Scope", "SCOPE"),
    ("Labels", "LABELS"),
    ("CreatedAt", "CREATED"),
];

pub async fn ls(client: &Client, args: LsArgs) -> Outcome {
    let format = match (&args.format, args.quiet) {
        (_, true) => "{{.Name}}",
        (Some(f), false) => f.as_str(),
        (None, false) => VOLUMES_TABLE,
    };
    let template = Template::parse(format, VOLUMES_TABLE)?;
    let query = Query::new().opt("filters", filters_json(&args.filter)?);
    let answer: Value = client.get_json("/volumes", &query).await?;
    let rows: Vec<gtmpl::Value> = answer["Volumes"]
        .as_array()
        .into_iter()
        .flatten()
        .map(volume_row)
        .collect();
    write_stdout(template.render_list(VOLUME_HEADERS, &rows)?.as_bytes())?;
    Ok(0)
}

fn volume_row(v: &Value) -> gtmpl::Value {
    let text = |key: &str| v[key].as_str().unwrap_or_default().to_string();
    let labels: Vec<String> = v["Labels"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
        .collect();
    format::context(&[
        ("Driver", text("Driver")),
        ("Name", text("Name")),
        ("Mountpoint", text("Mountpoint")),
        ("Scope", text("Scope")),
        ("Labels", labels.join(",")),
        ("CreatedAt", text("CreatedAt")),
    ])
}

pub async fn inspect(client: &Client, args: VolumeInspectArgs) -> Outcome {
    super::inspect(
        client,
        InspectArgs {
            format: args.format,
            size: args.size,
            kind: Some("volume".into()),
            names: args.names,
        },
    )
    .await
}

pub async fn rm(client: &Client, args: RmArgs) -> Outcome {
    let query = Query::new().flag("force", args.force);
    each(&args.names, |name| {
        let query = &query;
        async move {
            client.delete(&format!("/volumes/{name}"), query).await?;
            Ok(format!("{name}\n"))
        }
    })
    .await
}

pub async fn prune(client: &Client, args: crate::opts::PruneAllArgs) -> Outcome {
    let warning = if args.all {
        "WARNING! This will remove all local volumes not used by at least one container."
    } else {
        "WARNING! This will remove anonymous local volumes not used by at least one container."
    };
    if !args.force && !super::confirm(warning)? {
        return Ok(0);
    }
    let mut filters = args.filter.clone();
    if args.all {
        filters.push("all=true".into());
    }
    let query = Query::new().opt("filters", filters_json(&filters)?);
    let report = client.post("/volumes/prune", &query, None).await?;
    let lines: Vec<&str> = report["VolumesDeleted"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    let space = report["SpaceReclaimed"].as_u64().unwrap_or(0);
    write_stdout(prune_report(&[("Deleted Volumes:", &lines.join("\n"))], space).as_bytes())?;
    Ok(0)
}

/// `kapsel volume export NAME [-o FILE]`: a tar of the volume's data. Containers writing
/// to it are frozen by the daemon while it is read; they are named on stderr.
pub async fn export(client: &Client, args: ExportArgs) -> Outcome {
    refuse_terminal(args.output.as_deref())?;
    let response = client
        .get(&format!("/volumes/{}/export", args.name), &Query::new())
        .await?;
    let frozen = response
        .headers()
        .get("X-Kapsel-Frozen-Containers")
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty())
        .map(String::from);
    if let Some(ids) = frozen {
        let short: Vec<&str> = ids.split(',').map(super::short_id).collect();
        eprintln!(
            "WARNING: volume {} is in use by running container(s) {}: they were paused while \
             the volume was read, so the export is consistent",
            args.name,
            short.join(", ")
        );
    }
    write_download(response.into_body(), args.output.as_deref(), "Exporting").await?;
    Ok(0)
}

/// `kapsel volume import NAME [-i FILE]`: a tar extracted into the volume (created if
/// missing).
pub async fn import(client: &Client, args: ImportArgs) -> Outcome {
    if args.input.is_none() && crate::tty::stdin_is_terminal() {
        return Err(failed(
            "requested import from stdin, but stdin is a terminal",
        ));
    }
    let (body, bar) = upload_source(args.input.as_deref(), "Importing").await?;
    let response = client
        .send(
            Method::PUT,
            &format!("/volumes/{}/import", args.name),
            &Query::new(),
            body,
            Some("application/x-tar"),
        )
        .await;
    bar.finish_and_clear();
    response.map_err(CmdError::from)?;
    Ok(0)
}
