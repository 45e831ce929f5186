//! Image commands: images, rmi, tag, load, save, history, import, prune and inspect.

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};

use clap::{ArgAction, Args};
use hyper::body::Incoming;
use hyper::Method;
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::Value;
use tokio::io::AsyncRead;
use tokio_util::io::InspectReader;

use super::container::{ellipsis, familiar, repo_and_tag, split_tag};
use super::{
    each, failed, filters_json, list_format, prune_report, short_id, write_stdout, CmdError,
    InspectArgs, Outcome,
};
use crate::client::{self, Client, Query};
use crate::format::{self, Template};
use crate::stream;
use crate::tty;

#[derive(Args, Debug)]
pub struct ImagesArgs {
    /// Show all images (default hides intermediate images)
    #[arg(short = 'a', long)]
    pub all: bool,
    /// Only show image IDs
    #[arg(short = 'q', long)]
    pub quiet: bool,
    /// Show digests
    #[arg(long)]
    pub digests: bool,
    /// Don't truncate output
    #[arg(long = "no-trunc")]
    pub no_trunc: bool,
    /// Filter output based on conditions provided
    #[arg(short = 'f', long = "filter", action = ArgAction::Append)]
    pub filter: Vec<String>,
    /// Format output using a custom template
    #[arg(long)]
    pub format: Option<String>,
    /// REPOSITORY[:TAG]
    pub reference: Option<String>,
}

#[derive(Args, Debug)]
pub struct RmiArgs {
    /// Force removal of the image
    #[arg(short = 'f', long)]
    pub force: bool,
    /// Do not delete untagged parents
    #[arg(long = "no-prune")]
    pub no_prune: bool,
    #[arg(required = true, value_name = "IMAGE")]
    pub names: Vec<String>,
}

#[derive(Args, Debug)]
pub struct TagArgs {
    pub source: String,
    pub target: String,
}

#[derive(Args, Debug)]
pub struct LoadArgs {
    /// Read from tar archive file, instead of STDIN
    #[arg(short = 'i', long)]
    pub input: Option<PathBuf>,
    /// Suppress the load output
    #[arg(short = 'q', long)]
    pub quiet: bool,
}

#[derive(Args, Debug)]
pub struct SaveArgs {
    /// Write to a file, instead of STDOUT
    #[arg(short = 'o', long)]
    pub output: Option<PathBuf>,
    /// Archive format: docker-archive (also an OCI layout, as docker 25+ writes) or
    /// oci-archive (an OCI layout only). A kapsel extension of the API
    /// (/images/get?format=…): dockerd ignores it.
    #[arg(long, default_value = "docker-archive", value_parser = ["docker-archive", "oci-archive"])]
    pub format: String,
    #[arg(required = true, value_name = "IMAGE")]
    pub names: Vec<String>,
}

#[derive(Args, Debug)]
#[command(disable_help_flag = true)]
pub struct HistoryArgs {
    /// Print sizes and dates in human readable format
    #[arg(short = 'H', long, default_value_t = true, action = ArgAction::Set,
          num_args = 0..=1, default_missing_value = "true")]
    pub human: bool,
    /// Don't truncate output
    #[arg(long = "no-trunc")]
    pub no_trunc: bool,
    /// Only show image IDs
    #[arg(short = 'q', long)]
    pub quiet: bool,
    /// Format output using a custom template
    #[arg(long)]
    pub format: Option<String>,
    /// Print help
    #[arg(long, action = ArgAction::Help)]
    pub help: Option<bool>,
    pub image: String,
}

#[derive(Args, Debug)]
pub struct ImportArgs {
    /// Apply Dockerfile instruction to the created image
    #[arg(short = 'c', long = "change", action = ArgAction::Append)]
    pub change: Vec<String>,
    /// Set commit message for imported image
    #[arg(short = 'm', long)]
    pub message: Option<String>,
    /// Set platform if server is multi-platform capable
    #[arg(long)]
    pub platform: Option<String>,
    /// file|URL|- (a tarball, or '-' for STDIN)
    pub source: String,
    /// REPOSITORY[:TAG]
    pub reference: Option<String>,
}

#[derive(Args, Debug)]
pub struct ImageInspectArgs {
    /// Format output using a custom template
    #[arg(short = 'f', long)]
    pub format: Option<String>,
    #[arg(required = true, value_name = "IMAGE")]
    pub names: Vec<String>,
}

impl ImageInspectArgs {
    pub fn into_generic(self) -> InspectArgs {
        InspectArgs {
            format: self.format,
            size: false,
            kind: Some("image".into()),
            names: self.names,
        }
    }
}

// ---------------------------------------------------------------------------------------
// images
// ---------------------------------------------------------------------------------------

const IMAGES_TABLE: &str = "table {{.Repository}}\t{{.Tag}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}";
const IMAGES_DIGEST_TABLE: &str =
    "table {{.Repository}}\t{{.Tag}}\t{{.Digest}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}";

const IMAGE_HEADERS: &[(&str, &str)] = &[
    ("Repository", "REPOSITORY"),
    ("Tag", "TAG"),
    ("Digest", "DIGEST"),
    ("ID", "IMAGE ID"),
    ("CreatedSince", "CREATED"),
    ("CreatedAt", "CREATED AT"),
    ("Size", "SIZE"),
    ("Containers", "CONTAINERS"),
    ("VirtualSize", "SIZE"),
    ("SharedSize", "SHARED SIZE"),
    ("UniqueSize", "UNIQUE SIZE"),
];

pub async fn images(client: &Client, args: ImagesArgs) -> Outcome {
    let default = if args.digests {
        IMAGES_DIGEST_TABLE
    } else {
        IMAGES_TABLE
    };
    let format = list_format(args.format.as_deref(), args.quiet, default);
    let template = Template::parse(format, default)?;
    let mut filters = args.filter.clone();
    if let Some(r) = &args.reference {
        filters.push(format!("reference={r}"));
    }
    let query = Query::new()
        .flag("all", args.all)
        .opt("filters", filters_json(&filters)?);
    let images: Vec<Value> = client.get_json("/images/json", &query).await?;
    let show_digests = args.digests || format.contains(".Digest");
    let rows: Vec<gtmpl::Value> = images
        .iter()
        .flat_map(|i| image_rows(i, show_digests, !args.no_trunc))
        .collect();
    write_stdout(template.render_list(IMAGE_HEADERS, &rows)?.as_bytes())?;
    Ok(0)
}

/// One image of `GET /images/json` as docker's rows: one per repository:tag (and per
/// digest with `--digests`), or a single `<none>` row for a dangling image.
pub fn image_rows(image: &Value, digests: bool, trunc: bool) -> Vec<gtmpl::Value> {
    let strings = |key: &str| -> Vec<String> {
        image[key]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default()
    };
    let (tags, repo_digests) = (strings("RepoTags"), strings("RepoDigests"));
    let dangling = (tags.is_empty() && repo_digests.is_empty())
        || (tags == ["<none>:<none>"] && repo_digests == ["<none>@<none>"]);
    if dangling {
        return vec![image_row(image, "<none>", "<none>", "<none>", trunc)];
    }
    // Tags and digests grouped by repository, in the order the daemon gave them.
    let mut repo_tags: Vec<(String, Vec<String>)> = Vec::new();
    for t in &tags {
        let (name, tag) = split_tag(t);
        let Some(tag) = tag else { continue };
        let name = familiar(name);
        match repo_tags.iter_mut().find(|(r, _)| *r == name) {
            Some((_, list)) => list.push(tag.to_string()),
            None => repo_tags.push((name, vec![tag.to_string()])),
        }
    }
    let mut by_repo_digest: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for d in &repo_digests {
        if let Some((name, digest)) = d.split_once('@') {
            by_repo_digest
                .entry(familiar(name))
                .or_default()
                .push(digest.to_string());
        }
    }
    let mut rows = Vec::new();
    for (repo, tags) in &repo_tags {
        let repo_digests = by_repo_digest.remove(repo).unwrap_or_default();
        for tag in tags {
            if !digests || repo_digests.is_empty() {
                rows.push(image_row(image, repo, tag, "<none>", trunc));
            } else {
                for d in &repo_digests {
                    rows.push(image_row(image, repo, tag, d, trunc));
                }
            }
        }
    }
    for (repo, list) in by_repo_digest {
        if digests {
            for d in &list {
                rows.push(image_row(image, &repo, "<none>", d, trunc));
            }
        } else {
            rows.push(image_row(image, &repo, "<none>", "", trunc));
        }
    }
    rows
}

fn image_row(image: &Value, repo: &str, tag: &str, digest: &str, trunc: bool) -> gtmpl::Value {
    let id = image["Id"].as_str().unwrap_or_default();
    let created = image["Created"].as_i64().unwrap_or(0);
    let size = image["Size"].as_i64().unwrap_or(0);
    let shared = image["SharedSize"].as_i64().unwrap_or(-1);
    let virtual_size = image["VirtualSize"].as_i64().unwrap_or(size);
    let containers = image["Containers"].as_i64().unwrap_or(-1);
    let na_or = |v: i64, f: &dyn Fn(i64) -> String| if v == -1 { "N/A".into() } else { f(v) };
    format::context(&[
        (
            "ID",
            if trunc {
                short_id(id).to_string()
            } else {
                id.to_string()
            },
        ),
        ("Repository", repo.to_string()),
        ("Tag", tag.to_string()),
        ("Digest", digest.to_string()),
        (
            "CreatedSince",
            if created == 0 {
                "N/A".into()
            } else {
                format::since(created)
            },
        ),
        ("CreatedAt", format::go_time_string(created)),
        ("Size", format::human_size_precision(size as f64, 3)),
        ("VirtualSize", format::human_size(virtual_size as f64)),
        (
            "SharedSize",
            na_or(shared, &|s| format::human_size_precision(s as f64, 3)),
        ),
        (
            "UniqueSize",
            na_or(shared, &|s| {
                format::human_size_precision((size - s) as f64, 3)
            }),
        ),
        ("Containers", na_or(containers, &|c| c.to_string())),
    ])
}

// ---------------------------------------------------------------------------------------
// rmi, tag, prune
// ---------------------------------------------------------------------------------------

pub async fn rmi(client: &Client, args: RmiArgs) -> Outcome {
    let query = Query::new()
        .flag("force", args.force)
        .flag("noprune", args.no_prune);
    each(&args.names, |name| {
        let query = &query;
        async move {
            let events = client.delete(&format!("/images/{name}"), query).await?;
            Ok(removal_lines(&events, "Untagged", "Deleted"))
        }
    })
    .await
}

/// `[{"Untagged": x}, {"Deleted": y}]` → "Untagged: x\nDeleted: y\n" (prune words them
/// in lower case).
fn removal_lines(events: &Value, untagged: &str, deleted: &str) -> String {
    let mut out = String::new();
    for e in events.as_array().into_iter().flatten() {
        if let Some(t) = e["Untagged"].as_str() {
            out.push_str(&format!("{untagged}: {t}\n"));
        }
        if let Some(d) = e["Deleted"].as_str() {
            out.push_str(&format!("{deleted}: {d}\n"));
        }
    }
    out
}

pub async fn tag(client: &Client, args: TagArgs) -> Outcome {
    let (repo, tag) = split_tag(&args.target);
    let query = Query::new()
        .set("repo", repo)
        .set("tag", tag.unwrap_or("latest"));
    client
        .post(&format!("/images/{}/tag", args.source), &query, None)
        .await?;
    Ok(0)
}

pub async fn prune(client: &Client, args: crate::opts::PruneAllArgs) -> Outcome {
    let warning = if args.all {
        "WARNING! This will remove all images without at least one container associated to them."
    } else {
        "WARNING! This will remove all dangling images."
    };
    if !args.force && !super::confirm(warning)? {
        return Ok(0);
    }
    let (lines, space) = prune_images(client, args.all, &args.filter).await?;
    write_stdout(prune_report(&[("Deleted Images:", &lines)], space).as_bytes())?;
    Ok(0)
}

/// `POST /images/prune` → (the "untagged:/deleted:" lines, bytes reclaimed).
pub async fn prune_images(
    client: &Client,
    all: bool,
    filters: &[String],
) -> Result<(String, u64), CmdError> {
    let mut filters = filters.to_vec();
    filters.push(format!("dangling={}", !all));
    let query = Query::new().opt("filters", filters_json(&filters)?);
    let report = client.post("/images/prune", &query, None).await?;
    Ok((
        removal_lines(&report["ImagesDeleted"], "untagged", "deleted"),
        report["SpaceReclaimed"].as_u64().unwrap_or(0),
    ))
}

// ---------------------------------------------------------------------------------------
// load, save, import
// ---------------------------------------------------------------------------------------

/// A progress bar on stderr when it is a terminal (hidden otherwise, so logs and pipes
/// stay clean); `total` is known for files.
fn progress(label: &str, total: Option<u64>) -> ProgressBar {
    if !tty::stderr_is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = match total {
        Some(n) => ProgressBar::new(n).with_style(
            ProgressStyle::with_template("{msg} [{bar:40}] {bytes}/{total_bytes} {bytes_per_sec}")
                .expect("valid template")
                .progress_chars("=> "),
        ),
        None => ProgressBar::new_spinner().with_style(
            ProgressStyle::with_template("{spinner} {msg} {bytes} {bytes_per_sec}")
                .expect("valid template"),
        ),
    };
    bar.set_message(label.to_string());
    bar
}

/// The upload side: a file (size known) or stdin, as a request body that moves `bar`.
pub async fn upload_source(
    path: Option<&Path>,
    label: &str,
) -> Result<(client::Body, ProgressBar), CmdError> {
    let (reader, total): (Box<dyn AsyncRead + Send + Sync + Unpin>, Option<u64>) = match path {
        Some(p) => {
            let file = tokio::fs::File::open(p)
                .await
                .map_err(|e| CmdError::Failed(format!("open {}: {e}", p.display())))?;
            let len = file.metadata().await.ok().map(|m| m.len());
            (Box::new(file), len)
        }
        None => (Box::new(tokio::io::stdin()), None),
    };
    let bar = progress(label, total);
    let moved = bar.clone();
    Ok((
        client::reader_body(reader, move |sent| moved.set_position(sent)),
        bar,
    ))
}

pub async fn load(client: &Client, args: LoadArgs) -> Outcome {
    if args.input.is_none() && tty::stdin_is_terminal() {
        return Err(failed("requested load from stdin, but stdin is empty"));
    }
    let quiet = args.quiet || !tty::stdout_is_terminal();
    let upload = upload_source(args.input.as_deref(), "Loading").await?;
    // Even with -q the daemon reports what it loaded, and docker prints that.
    post_upload(
        client,
        "/images/load",
        &Query::new().flag("quiet", quiet),
        upload,
    )
    .await
}

/// Sends an archive (load, import) and prints the daemon's answer.
async fn post_upload(
    client: &Client,
    path: &str,
    query: &Query,
    (body, bar): (client::Body, ProgressBar),
) -> Outcome {
    let response = client
        .send(Method::POST, path, query, body, Some("application/x-tar"))
        .await;
    bar.finish_and_clear();
    print_answer(response?).await?;
    Ok(0)
}

/// A JSON message stream is printed message by message; anything else as it came.
async fn print_answer(response: hyper::Response<Incoming>) -> Result<(), CmdError> {
    let is_json = response
        .headers()
        .get("Content-Type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("json"));
    if is_json {
        stream::print_json_messages(response.into_body(), &mut io::stdout()).await?;
    } else {
        write_stdout(&client::read_body(response).await?)?;
    }
    Ok(())
}

/// An archive is not for a terminal: without `-o`, stdout must be redirected.
pub fn refuse_terminal(output: Option<&Path>) -> Result<(), CmdError> {
    if output.is_none() && tty::stdout_is_terminal() {
        return Err(failed(
            "cowardly refusing to save to a terminal. Use the -o flag or redirect",
        ));
    }
    Ok(())
}

pub async fn save(client: &Client, args: SaveArgs) -> Outcome {
    refuse_terminal(args.output.as_deref())?;
    let mut query = Query::new();
    if args.format != "docker-archive" {
        query = query.set("format", &args.format);
    }
    for name in &args.names {
        query = query.set("names", name);
    }
    let response = client.get("/images/get", &query).await?;
    write_download(response.into_body(), args.output.as_deref(), "Saving").await?;
    Ok(0)
}

/// Streams a download (save, export, cp to `-`) to `output`, or to stdout. A file is
/// written beside its final name and renamed into place once complete, so a failed
/// download never leaves a truncated archive under the name asked for.
pub async fn write_download(
    body: Incoming,
    output: Option<&Path>,
    label: &str,
) -> Result<(), CmdError> {
    let bar = progress(label, None);
    let counted = bar.clone();
    let mut reader = InspectReader::new(stream::body_reader(body), move |chunk| {
        counted.inc(chunk.len() as u64)
    });
    // tokio's copy flushes the writer at the end.
    let result = match output {
        None => tokio::io::copy(&mut reader, &mut tokio::io::stdout())
            .await
            .map(drop),
        Some(path) => {
            let tmp = temp_beside(path);
            let written = async {
                let mut file = tokio::fs::File::create(&tmp).await?;
                tokio::io::copy(&mut reader, &mut file).await?;
                file.sync_all().await?;
                tokio::fs::rename(&tmp, path).await
            }
            .await;
            if written.is_err() {
                let _ = tokio::fs::remove_file(&tmp).await;
            }
            written
        }
    };
    bar.finish_and_clear();
    result.map_err(|e| match output {
        Some(p) => CmdError::Failed(format!("failed to save to {}: {e}", p.display())),
        None => e.into(),
    })
}

fn temp_beside(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!(".{name}.kapsel-tmp-{}", std::process::id()))
}

pub async fn import(client: &Client, args: ImportArgs) -> Outcome {
    let (repo, tag) = repo_and_tag(args.reference.as_deref());
    let is_url = args.source.starts_with("http://") || args.source.starts_with("https://");
    let from_src = if is_url { args.source.as_str() } else { "-" };
    let mut query = Query::new()
        .set("fromSrc", from_src)
        .non_empty("repo", repo)
        .non_empty("tag", tag)
        .opt("message", args.message.as_deref())
        .opt("platform", args.platform.as_deref());
    for change in &args.change {
        query = query.set("changes", change);
    }
    let upload = if is_url {
        (client::empty(), ProgressBar::hidden())
    } else {
        let file = (args.source != "-").then(|| Path::new(&args.source));
        upload_source(file, "Importing").await?
    };
    post_upload(client, "/images/create", &query, upload).await
}

// ---------------------------------------------------------------------------------------
// history
// ---------------------------------------------------------------------------------------

const HISTORY_TABLE: &str =
    "table {{.ID}}\t{{.CreatedSince}}\t{{.CreatedBy}}\t{{.Size}}\t{{.Comment}}";

const HISTORY_HEADERS: &[(&str, &str)] = &[
    ("ID", "IMAGE"),
    ("CreatedSince", "CREATED"),
    ("CreatedAt", "CREATED AT"),
    ("CreatedBy", "CREATED BY"),
    ("Size", "SIZE"),
    ("Comment", "COMMENT"),
];

pub async fn history(client: &Client, args: HistoryArgs) -> Outcome {
    let format = list_format(args.format.as_deref(), args.quiet, HISTORY_TABLE);
    let template = Template::parse(format, HISTORY_TABLE)?;
    let layers: Vec<Value> = client
        .get_json(&format!("/images/{}/history", args.image), &Query::new())
        .await?;
    let rows: Vec<gtmpl::Value> = layers
        .iter()
        .map(|l| history_row(l, args.human, !args.no_trunc))
        .collect();
    write_stdout(template.render_list(HISTORY_HEADERS, &rows)?.as_bytes())?;
    Ok(0)
}

fn history_row(layer: &Value, human: bool, trunc: bool) -> gtmpl::Value {
    let id = layer["Id"].as_str().unwrap_or("<missing>");
    let created = layer["Created"].as_i64().unwrap_or(0);
    let size = layer["Size"].as_i64().unwrap_or(0);
    let created_by = layer["CreatedBy"]
        .as_str()
        .unwrap_or_default()
        .replace('\t', " ");
    let rfc3339 = format::local_rfc3339(created);
    format::context(&[
        (
            "ID",
            if trunc && id != "<missing>" {
                short_id(id).to_string()
            } else {
                id.to_string()
            },
        ),
        (
            "CreatedSince",
            if human {
                format::since(created)
            } else {
                rfc3339.clone()
            },
        ),
        ("CreatedAt", rfc3339),
        (
            "CreatedBy",
            if trunc {
                ellipsis(&created_by, 45)
            } else {
                created_by
            },
        ),
        (
            "Size",
            if human {
                format::human_size_precision(size as f64, 3)
            } else {
                size.to_string()
            },
        ),
        (
            "Comment",
            layer["Comment"].as_str().unwrap_or_default().to_string(),
        ),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn render(format: &str, rows: &[gtmpl::Value]) -> String {
        Template::parse(format, IMAGES_TABLE)
            .unwrap()
            .render_list(IMAGE_HEADERS, rows)
            .unwrap()
    }

    #[test]
    fn images_make_one_row_per_tag_and_none_rows_when_dangling() {
        let image = json!({
            "Id": "sha256:3d16af56c187c4dd90189c8fa8df859e8d5b5b0449313daacdaef69a4a9bca73",
            "RepoTags": ["hello-test:1", "docker.io/library/hello-test:2", "localhost:5000/a/b:t"],
            "RepoDigests": ["hello-test@sha256:aaaa"],
            "Created": 1_709_209_815, "Size": 10240, "SharedSize": -1, "Containers": -1,
        });
        let rows = image_rows(&image, false, true);
        assert_eq!(
            render("{{.Repository}}:{{.Tag}} {{.ID}} {{.Digest}} {{.Containers}}", &rows),
            "hello-test:1 3d16af56c187 <none> N/A\nhello-test:2 3d16af56c187 <none> N/A\nlocalhost:5000/a/b:t 3d16af56c187 <none> N/A\n"
        );
        let with_digests = image_rows(&image, true, true);
        assert!(render("{{.Digest}}", &with_digests).starts_with("sha256:aaaa\n"));
        let dangling = json!({"Id": "sha256:ab", "RepoTags": [], "RepoDigests": [], "Created": 0, "Size": 999});
        assert_eq!(
            render("table", &image_rows(&dangling, false, false)),
            "REPOSITORY   TAG       IMAGE ID    CREATED   SIZE\n<none>       <none>    sha256:ab   N/A       999B\n"
        );
    }

    #[test]
    fn removal_events_print_as_docker() {
        let events = json!([{"Untagged": "a:1"}, {"Deleted": "sha256:x"}]);
        assert_eq!(
            removal_lines(&events, "Untagged", "Deleted"),
            "Untagged: a:1\nDeleted: sha256:x\n"
        );
        assert_eq!(
            removal_lines(&events, "untagged", "deleted"),
            "untagged: a:1\ndeleted: sha256:x\n"
        );
    }

    #[test]
    fn history_rows_truncate_and_humanize() {
        let layer = json!({
            "Id": "<missing>", "Created": format::now_unix() - 7200,
            "CreatedBy": "/bin/sh -c #(nop) ADD file:0123456789abcdef0123456789abcdef in / ",
            "Size": 5_300_000, "Comment": "",
        });
        let t = Template::parse("{{.ID}}|{{.CreatedSince}}|{{.CreatedBy}}|{{.Size}}", "").unwrap();
        assert_eq!(
            t.render(&history_row(&layer, true, true)).unwrap(),
            "<missing>|2 hours ago|/bin/sh -c #(nop) ADD file:0123456789abcdef0…|5.3MB"
        );
        assert!(t
            .render(&history_row(&layer, false, true))
            .unwrap()
            .ends_with("|5300000"));
    }
}
