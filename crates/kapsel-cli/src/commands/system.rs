//! System commands: version, info, system df, system prune.

use std::fmt::Write as _;

use clap::Args;
use serde_json::{json, Value};

use super::{container, image, prune_report, write_stdout, CmdError, Outcome};
use crate::client::{Client, Query, API_VERSION};
use crate::format::{self, Template};

#[derive(Args, Debug)]
pub struct VersionArgs {
    /// Format output using a custom template
    #[arg(short = 'f', long)]
    pub format: Option<String>,
}

#[derive(Args, Debug)]
pub struct InfoArgs {
    /// Format output using a custom template
    #[arg(short = 'f', long)]
    pub format: Option<String>,
}

#[derive(Args, Debug)]
pub struct DfArgs {
    /// Show detailed information on space usage
    #[arg(short = 'v', long)]
    pub verbose: bool,
    /// Format output using a custom template
    #[arg(long)]
    pub format: Option<String>,
}

/// The architecture as Go names it (what docker prints after "OS/Arch").
fn go_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

/// The client half of `version`, under the Go field names docker's templates use.
fn client_version() -> Value {
    json!({
        "Platform": {"Name": "kapsel"},
        "Version": env!("CARGO_PKG_VERSION"),
        "APIVersion": API_VERSION,
        "DefaultAPIVersion": API_VERSION,
        "GitCommit": "",
        "GoVersion": "",
        "Os": std::env::consts::OS,
        "Arch": go_arch(),
        "BuildTime": "",
        "Context": "default",
    })
}

/// `version`: the client section, then the server's, laid out as docker's default
/// template (tabwriter, minimum width 20). A daemon that cannot be reached still gets
/// the client section printed before the error.
pub async fn version(client: &Client, args: VersionArgs) -> Outcome {
    let server: Result<Value, _> = client.get_json("/version", &Query::new()).await;
    if let Some(f) = &args.format {
        let f = if f == "json" { "{{json .}}" } else { f };
        let template = Template::raw(f)?;
        let ctx = json!({
            "Client": client_version(),
            "Server": server.as_ref().ok().cloned().unwrap_or(Value::Null),
        });
        write_stdout(format::render_line(&template, &format::to_value(&ctx, true))?.as_bytes())?;
        return server.map(|_| 0).map_err(Into::into);
    }
    let mut text = String::new();
    let c = client_version();
    let _ = writeln!(text, "Client: kapsel");
    for (label, value) in [
        (
            "Version",
            c["Version"].as_str().unwrap_or_default().to_string(),
        ),
        ("API version", API_VERSION.to_string()),
        ("OS/Arch", format!("{}/{}", std::env::consts::OS, go_arch())),
        ("Context", "default".to_string()),
    ] {
        let _ = writeln!(text, " {label}:\t{value}");
    }
    if let Ok(s) = &server {
        text.push_str(&server_version_text(s));
    }
    write_stdout(format::tabwrite(&text, 20, 1).as_bytes())?;
    server.map(|_| 0).map_err(Into::into)
}

/// docker's default version template, Server part (components in the daemon's order;
/// details of non-Engine components sorted by key).
fn server_version_text(s: &Value) -> String {
    let mut text = String::from("\n");
    let platform = s["Platform"]["Name"].as_str().unwrap_or_default();
    let _ = writeln!(
        text,
        "Server:{}",
        if platform.is_empty() {
            String::new()
        } else {
            format!(" {platform}")
        }
    );
    let engine_fallback = [json!({
        "Name": "Engine",
        "Version": s["Version"],
        "Details": {
            "ApiVersion": s["ApiVersion"], "MinAPIVersion": s["MinAPIVersion"],
            "GitCommit": s["GitCommit"], "GoVersion": s["GoVersion"], "Os": s["Os"],
            "Arch": s["Arch"], "BuildTime": s["BuildTime"],
            "Experimental": s["Experimental"].as_bool().unwrap_or(false).to_string(),
        },
    })];
    let components = s["Components"]
        .as_array()
        .filter(|c| c.iter().any(|c| c["Name"] == "Engine"))
        .map(Vec::as_slice)
        .unwrap_or(&engine_fallback);
    for comp in components {
        let name = go(&comp["Name"]);
        let d = &comp["Details"];
        let _ = writeln!(text, " {name}:");
        if name == "Engine" {
            let _ = writeln!(text, "  Version:\t{}", go(&comp["Version"]));
            let _ = writeln!(
                text,
                "  API version:\t{} (minimum version {})",
                go(&d["ApiVersion"]),
                go(&d["MinAPIVersion"])
            );
            let _ = writeln!(text, "  Go version:\t{}", go(&d["GoVersion"]));
            let _ = writeln!(text, "  Git commit:\t{}", go(&d["GitCommit"]));
            let _ = writeln!(text, "  Built:\t{}", ansic_date(&go(&d["BuildTime"])));
            let _ = writeln!(text, "  OS/Arch:\t{}/{}", go(&d["Os"]), go(&d["Arch"]));
            let _ = writeln!(text, "  Experimental:\t{}", go(&d["Experimental"]));
        } else {
            let _ = writeln!(text, "  Version:\t{}", go(&comp["Version"]));
            let mut keys: Vec<&String> = d
                .as_object()
                .map(|m| m.keys().collect())
                .unwrap_or_default();
            keys.sort();
            for k in keys {
                let _ = writeln!(text, "  {k}:\t{}", go(&d[k.as_str()]));
            }
        }
    }
    text
}

/// docker shows an RFC 3339 build time in Go's ANSIC layout ("Fri May 30 12:07:14 2025").
fn ansic_date(value: &str) -> String {
    match format::parse_rfc3339(value) {
        Some((unix, _)) => format::ansic_utc(unix),
        None => value.to_string(),
    }
}

// ---------------------------------------------------------------------------------------
// info
// ---------------------------------------------------------------------------------------

pub async fn info(client: &Client, args: InfoArgs) -> Outcome {
    let server: Result<Value, _> = client.get_json("/info", &Query::new()).await;
    if let Some(f) = &args.format {
        let f = if f == "json" { "{{json .}}" } else { f };
        let template = Template::raw(f)?;
        let mut ctx = server.as_ref().ok().cloned().unwrap_or_else(|| json!({}));
        ctx["ClientInfo"] = json!({
            "Debug": false,
            "Version": env!("CARGO_PKG_VERSION"),
            "Context": "default",
            "Plugins": [],
            "Warnings": null,
        });
        if let Err(e) = &server {
            eprintln!("{e}");
        }
        write_stdout(format::render_line(&template, &format::to_value(&ctx, true))?.as_bytes())?;
        return server.map(|_| 0).map_err(Into::into);
    }
    let mut out = String::new();
    out.push_str("Client:\n");
    let _ = writeln!(out, " Version:    {}", env!("CARGO_PKG_VERSION"));
    out.push_str(" Context:    default\n Debug Mode: false\n\nServer:\n");
    let info = match server {
        Ok(info) => info,
        Err(e) => {
            write_stdout(out.as_bytes())?;
            return Err(CmdError::Status {
                code: 1,
                message: format!("ERROR: {e}\nerrors pretty printing info"),
            });
        }
    };
    out.push_str(&server_info_text(&info));
    write_stdout(out.as_bytes())?;
    for w in info["Warnings"].as_array().into_iter().flatten() {
        eprintln!("{}", w.as_str().unwrap_or_default());
    }
    Ok(0)
}

/// Go's `fmt.Println` of one value: strings as is, numbers and booleans as JSON has
/// them, nothing for null.
fn go(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// docker's `prettyPrintServerInfo`, field by field, for what a single-node engine
/// reports (swarm details are skipped, as they are for an inactive swarm).
fn server_info_text(i: &Value) -> String {
    let mut o2 = String::new();
    for (label, key) in [
        (" Containers:", "Containers"),
        ("  Running:", "ContainersRunning"),
        ("  Paused:", "ContainersPaused"),
        ("  Stopped:", "ContainersStopped"),
        (" Images:", "Images"),
    ] {
        let _ = writeln!(o2, "{label} {}", go(&i[key]));
    }
    non_empty(&mut o2, " Server Version:", &i["ServerVersion"]);
    non_empty(&mut o2, " Storage Driver:", &i["Driver"]);
    for pair in i["DriverStatus"].as_array().into_iter().flatten() {
        let _ = writeln!(o2, "  {}: {}", go(&pair[0]), go(&pair[1]));
    }
    for pair in i["SystemStatus"].as_array().into_iter().flatten() {
        let _ = writeln!(o2, " {}: {}", go(&pair[0]), go(&pair[1]));
    }
    non_empty(&mut o2, " Logging Driver:", &i["LoggingDriver"]);
    non_empty(&mut o2, " Cgroup Driver:", &i["CgroupDriver"]);
    non_empty(&mut o2, " Cgroup Version:", &i["CgroupVersion"]);
    let join = |v: &Value| -> String {
        v.as_array()
            .map(|a| a.iter().map(go).collect::<Vec<_>>().join(" "))
            .unwrap_or_default()
    };
    let plugins = &i["Plugins"];
    o2.push_str(" Plugins:\n");
    let _ = writeln!(o2, "  Volume: {}", join(&plugins["Volume"]));
    let _ = writeln!(o2, "  Network: {}", join(&plugins["Network"]));
    if plugins["Authorization"]
        .as_array()
        .is_some_and(|a| !a.is_empty())
    {
        let _ = writeln!(o2, "  Authorization: {}", join(&plugins["Authorization"]));
    }
    let _ = writeln!(o2, "  Log: {}", join(&plugins["Log"]));
    if let Some(dirs) = i["CDISpecDirs"].as_array().filter(|d| !d.is_empty()) {
        o2.push_str(" CDI spec directories:\n");
        for d in dirs {
            let _ = writeln!(o2, "  {}", go(d));
        }
    }
    let _ = writeln!(o2, " Swarm: {}", go(&i["Swarm"]["LocalNodeState"]));
    if let Some(runtimes) = i["Runtimes"].as_object().filter(|r| !r.is_empty()) {
        let names: Vec<&str> = runtimes.keys().map(String::as_str).collect();
        let _ = writeln!(o2, " Runtimes: {}", names.join(" "));
        let _ = writeln!(o2, " Default Runtime: {}", go(&i["DefaultRuntime"]));
    }
    if i["OSType"] == "linux" {
        let _ = writeln!(o2, " Init Binary: {}", go(&i["InitBinary"]));
        let _ = writeln!(
            o2,
            " containerd version: {}",
            go(&i["ContainerdCommit"]["ID"])
        );
        let _ = writeln!(o2, " runc version: {}", go(&i["RuncCommit"]["ID"]));
        let _ = writeln!(o2, " init version: {}", go(&i["InitCommit"]["ID"]));
        if let Some(opts) = i["SecurityOptions"].as_array().filter(|o| !o.is_empty()) {
            o2.push_str(" Security Options:\n");
            for opt in opts {
                security_option(&mut o2, &go(opt));
            }
        }
    }
    non_empty(&mut o2, " Kernel Version:", &i["KernelVersion"]);
    non_empty(&mut o2, " Operating System:", &i["OperatingSystem"]);
    non_empty(&mut o2, " OSType:", &i["OSType"]);
    non_empty(&mut o2, " Architecture:", &i["Architecture"]);
    let _ = writeln!(o2, " CPUs: {}", go(&i["NCPU"]));
    let _ = writeln!(
        o2,
        " Total Memory: {}",
        format::bytes_size(i["MemTotal"].as_f64().unwrap_or(0.0))
    );
    non_empty(&mut o2, " Name:", &i["Name"]);
    non_empty(&mut o2, " ID:", &i["ID"]);
    let _ = writeln!(o2, " Docker Root Dir: {}", go(&i["DockerRootDir"]));
    let _ = writeln!(o2, " Debug Mode: {}", go(&i["Debug"]));
    if i["Debug"].as_bool().unwrap_or(false) {
        let _ = writeln!(o2, "  File Descriptors: {}", go(&i["NFd"]));
        let _ = writeln!(o2, "  Goroutines: {}", go(&i["NGoroutines"]));
        let _ = writeln!(o2, "  System Time: {}", go(&i["SystemTime"]));
        let _ = writeln!(o2, "  EventsListeners: {}", go(&i["NEventsListener"]));
    }
    non_empty(&mut o2, " HTTP Proxy:", &i["HttpProxy"]);
    non_empty(&mut o2, " HTTPS Proxy:", &i["HttpsProxy"]);
    non_empty(&mut o2, " No Proxy:", &i["NoProxy"]);
    if let Some(labels) = i["Labels"].as_array().filter(|l| !l.is_empty()) {
        o2.push_str(" Labels:\n");
        for l in labels {
            let _ = writeln!(o2, "  {}", go(l));
        }
    }
    let _ = writeln!(o2, " Experimental: {}", go(&i["ExperimentalBuild"]));
    registries(&mut o2, &i["RegistryConfig"]);
    let _ = writeln!(
        o2,
        " Live Restore Enabled: {}",
        go(&i["LiveRestoreEnabled"])
    );
    if let Some(l) = i["ProductLicense"].as_str().filter(|l| !l.is_empty()) {
        let _ = writeln!(o2, " Product License: {l}");
    }
    if let Some(pools) = i["DefaultAddressPools"]
        .as_array()
        .filter(|p| !p.is_empty())
    {
        o2.push_str(" Default Address Pools:\n");
        for p in pools {
            let _ = writeln!(o2, "   Base: {}, Size: {}", go(&p["Base"]), go(&p["Size"]));
        }
    }
    o2.push('\n');
    o2
}

/// docker's `fprintlnNonEmpty`: the line only for a non-empty value.
fn non_empty(o: &mut String, label: &str, v: &Value) {
    let v = go(v);
    if !v.is_empty() {
        let _ = writeln!(o, "{label} {v}");
    }
}

/// "name=seccomp,profile=builtin" → "  seccomp\n   Profile: builtin".
fn security_option(o: &mut String, opt: &str) {
    let mut name = "";
    let mut profile = None;
    for kv in opt.split(',') {
        match kv.split_once('=') {
            Some(("name", v)) => name = v,
            Some(("profile", v)) => profile = Some(v),
            _ => {}
        }
    }
    let _ = writeln!(o, "  {name}");
    if let Some(p) = profile {
        let _ = writeln!(o, "   Profile: {p}");
    }
}

fn registries(o: &mut String, config: &Value) {
    let insecure_cidrs = config["InsecureRegistryCIDRs"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let index = config["IndexConfigs"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    if !insecure_cidrs.is_empty() || !index.is_empty() {
        o.push_str(" Insecure Registries:\n");
        for reg in index.values() {
            if !reg["Secure"].as_bool().unwrap_or(false) {
                let _ = writeln!(o, "  {}", go(&reg["Name"]));
            }
        }
        for cidr in &insecure_cidrs {
            let _ = writeln!(o, "  {}", go(cidr));
        }
    }
    if let Some(mirrors) = config["Mirrors"].as_array().filter(|m| !m.is_empty()) {
        o.push_str(" Registry Mirrors:\n");
        for m in mirrors {
            let _ = writeln!(o, "  {}", go(m));
        }
    }
}

// ---------------------------------------------------------------------------------------
// system df, system prune
// ---------------------------------------------------------------------------------------

const DF_TABLE: &str = "table {{.Type}}\t{{.TotalCount}}\t{{.Active}}\t{{.Size}}\t{{.Reclaimable}}";
const DF_HEADERS: &[(&str, &str)] = &[
    ("Type", "TYPE"),
    ("TotalCount", "TOTAL"),
    ("Active", "ACTIVE"),
    ("Size", "SIZE"),
    ("Reclaimable", "RECLAIMABLE"),
];

/// "10.24kB (100%)" — with the share of the total when there is a total.
fn reclaimable(reclaimable: i64, total: i64) -> String {
    let size = format::human_size(reclaimable as f64);
    if total > 0 {
        format!("{size} ({}%)", reclaimable * 100 / total)
    } else {
        size
    }
}

/// The summary rows of `system df`, computed from `GET /system/df` as docker 28 does.
pub fn df_rows(du: &Value) -> Vec<gtmpl::Value> {
    let list = |k: &str| du[k].as_array().cloned().unwrap_or_default();
    let (images, containers, volumes, cache) = (
        list("Images"),
        list("Containers"),
        list("Volumes"),
        list("BuildCache"),
    );
    let i64_of = |v: &Value| v.as_i64().unwrap_or(0);

    let layers = i64_of(&du["LayersSize"]);
    let used_by_containers: i64 = images
        .iter()
        .filter(|i| i64_of(&i["Containers"]) > 0)
        .filter(|i| i64_of(&i["Size"]) != -1 && i64_of(&i["SharedSize"]) != -1)
        .map(|i| i64_of(&i["Size"]) - i64_of(&i["SharedSize"]))
        .sum();
    let active_images = images
        .iter()
        .filter(|i| i64_of(&i["Containers"]) > 0)
        .count();

    let is_active = |c: &&Value| matches!(c["State"].as_str(), Some("running") | Some("paused"));
    let container_size: i64 = containers.iter().map(|c| i64_of(&c["SizeRw"])).sum();
    let container_reclaimable: i64 = containers
        .iter()
        .filter(|c| !is_active(c))
        .map(|c| i64_of(&c["SizeRw"]))
        .sum();

    let vol_size = |v: &Value| i64_of(&v["UsageData"]["Size"]).max(0);
    let vol_active = |v: &&Value| i64_of(&v["UsageData"]["RefCount"]) > 0;
    let volume_size: i64 = volumes.iter().map(vol_size).sum();
    let volume_reclaimable: i64 = volumes
        .iter()
        .filter(|v| !vol_active(v))
        .map(vol_size)
        .sum();

    let cache_size: i64 = cache.iter().map(|c| i64_of(&c["Size"])).sum();
    let cache_active = cache
        .iter()
        .filter(|c| c["InUse"].as_bool().unwrap_or(false))
        .count();
    let cache_reclaimable: i64 = cache
        .iter()
        .filter(|c| {
            !c["InUse"].as_bool().unwrap_or(false) && !c["Shared"].as_bool().unwrap_or(false)
        })
        .map(|c| i64_of(&c["Size"]))
        .sum();

    let row = |kind: &str, total: usize, active: usize, size: i64, recl: String| {
        format::context(&[
            ("Type", kind.to_string()),
            ("TotalCount", total.to_string()),
            ("Active", active.to_string()),
            ("Size", format::human_size(size as f64)),
            ("Reclaimable", recl),
        ])
    };
    vec![
        row(
            "Images",
            images.len(),
            active_images,
            layers,
            reclaimable(layers - used_by_containers, layers),
        ),
        row(
            "Containers",
            containers.len(),
            containers.iter().filter(is_active).count(),
            container_size,
            reclaimable(container_reclaimable, container_size),
        ),
        row(
            "Local Volumes",
            volumes.len(),
            volumes.iter().filter(vol_active).count(),
            volume_size,
            reclaimable(volume_reclaimable, volume_size),
        ),
        row(
            "Build Cache",
            cache.len(),
            cache_active,
            cache_size,
            format::human_size(cache_reclaimable as f64),
        ),
    ]
}

pub async fn df(client: &Client, args: DfArgs) -> Outcome {
    let du: Value = client.get_json("/system/df", &Query::new()).await?;
    if args.verbose {
        return df_verbose(&du);
    }
    let template = Template::parse(args.format.as_deref().unwrap_or(DF_TABLE), DF_TABLE)?;
    write_stdout(template.render_list(DF_HEADERS, &df_rows(&du))?.as_bytes())?;
    Ok(0)
}

/// `system df -v`: the images, containers and volumes tables docker prints.
fn df_verbose(du: &Value) -> Outcome {
    let mut out = String::from("Images space usage:\n\n");
    let images_t = Template::parse(
        "table {{.Repository}}\t{{.Tag}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}\t{{.SharedSize}}\t{{.UniqueSize}}\t{{.Containers}}",
        "",
    )?;
    let rows: Vec<_> = du["Images"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|i| {
            // docker shows only the first tag of each image here.
            let mut first = i.clone();
            if let Some(tags) = i["RepoTags"].as_array() {
                first["RepoTags"] = json!(tags.iter().take(1).collect::<Vec<_>>());
            }
            image::image_rows(&first, false, true).remove(0)
        })
        .collect();
    out.push_str(&images_t.render_list(IMAGE_HEADERS_DF, &rows)?);
    out.push_str("\nContainers space usage:\n\n");
    let containers_t = Template::parse(
        "table {{.ID}}\t{{.Image}}\t{{.Command}}\t{{.LocalVolumes}}\t{{.Size}}\t{{.RunningFor}}\t{{.Status}}\t{{.Names}}",
        "",
    )?;
    let rows: Vec<_> = du["Containers"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| {
            let mut c = c.clone();
            c["SizeRootFs"] = json!(0);
            container::ps_row(&c, true)
        })
        .collect();
    out.push_str(&containers_t.render_list(CONTAINER_HEADERS_DF, &rows)?);
    out.push_str("\nLocal Volumes space usage:\n\n");
    let volumes_t = Template::parse("table {{.Name}}\t{{.Links}}\t{{.Size}}", "")?;
    let rows: Vec<_> = du["Volumes"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|v| {
            let size = v["UsageData"]["Size"].as_i64().unwrap_or(-1);
            format::context(&[
                ("Name", go(&v["Name"])),
                ("Links", go(&v["UsageData"]["RefCount"])),
                (
                    "Size",
                    if size < 0 {
                        "N/A".into()
                    } else {
                        format::human_size(size as f64)
                    },
                ),
            ])
        })
        .collect();
    out.push_str(&volumes_t.render_list(
        &[
            ("Name", "VOLUME NAME"),
            ("Links", "LINKS"),
            ("Size", "SIZE"),
        ],
        &rows,
    )?);
    let cache: i64 = du["BuildCache"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| c["Size"].as_i64().unwrap_or(0))
        .sum();
    let _ = write!(
        out,
        "\nBuild cache usage: {}\n\n",
        format::human_size(cache as f64)
    );
    out.push_str(&Template::parse("table {{.ID}}\t{{.CacheType}}\t{{.Size}}\t{{.CreatedSince}}\t{{.LastUsedSince}}\t{{.UsageCount}}\t{{.Shared}}", "")?
        .render_list(&[("ID", "CACHE ID"), ("CacheType", "CACHE TYPE"), ("Size", "SIZE"), ("CreatedSince", "CREATED"), ("LastUsedSince", "LAST USED"), ("UsageCount", "USAGE"), ("Shared", "SHARED")], &[])?);
    write_stdout(out.as_bytes())?;
    Ok(0)
}

const IMAGE_HEADERS_DF: &[(&str, &str)] = &[
    ("Repository", "REPOSITORY"),
    ("Tag", "TAG"),
    ("ID", "IMAGE ID"),
    ("CreatedSince", "CREATED"),
    ("Size", "SIZE"),
    ("SharedSize", "SHARED SIZE"),
    ("UniqueSize", "UNIQUE SIZE"),
    ("Containers", "CONTAINERS"),
];

const CONTAINER_HEADERS_DF: &[(&str, &str)] = &[
    ("ID", "CONTAINER ID"),
    ("Image", "IMAGE"),
    ("Command", "COMMAND"),
    ("LocalVolumes", "LOCAL VOLUMES"),
    ("Size", "SIZE"),
    ("RunningFor", "CREATED"),
    ("Status", "STATUS"),
    ("Names", "NAMES"),
];

/// `system prune`: stopped containers, then dangling (or, with -a, unused) images.
pub async fn prune(client: &Client, args: crate::opts::PruneAllArgs) -> Outcome {
    let images = if args.all {
        "all images without at least one container associated to them"
    } else {
        "all dangling images"
    };
    let warning = format!("WARNING! This will remove:\n  - all stopped containers\n  - {images}\n");
    if !args.force && !super::confirm(&warning)? {
        return Ok(0);
    }
    let (containers, c_space) = container::prune_containers(client, &args.filter).await?;
    let (images, i_space) = image::prune_images(client, args.all, &args.filter).await?;
    let report = prune_report(
        &[
            ("Deleted Containers:", &containers),
            ("Deleted Images:", &images),
        ],
        c_space + i_space,
    );
    write_stdout(report.as_bytes())?;
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn build_times_print_in_ansic() {
        assert_eq!(
            ansic_date("2025-05-30T12:07:14.000000000+00:00"),
            "Fri May 30 12:07:14 2025"
        );
        assert_eq!(
            ansic_date("2024-03-01T01:02:03Z"),
            "Fri Mar  1 01:02:03 2024"
        );
        assert_eq!(ansic_date(""), "");
    }

    #[test]
    fn server_version_matches_docker_layout() {
        let s = json!({
            "Platform": {"Name": "kapsel"},
            "Components": [{"Name": "Engine", "Version": "0.1.0", "Details": {
                "ApiVersion": "1.47", "MinAPIVersion": "1.24", "Os": "linux", "Arch": "amd64",
                "Experimental": "false"}}],
        });
        let text = format::tabwrite(&server_version_text(&s), 20, 1);
        assert_eq!(
            text,
            "\nServer: kapsel\n Engine:\n  Version:          0.1.0\n  API version:      1.47 (minimum version 1.24)\n  Go version:       \n  Git commit:       \n  Built:            \n  OS/Arch:          linux/amd64\n  Experimental:     false\n"
        );
    }

    #[test]
    fn df_summarises_usage() {
        let du = json!({
            "LayersSize": 10240,
            "Images": [{"Id": "sha256:a", "Size": 10240, "SharedSize": 0, "Containers": 0}],
            "Containers": [{"State": "exited", "SizeRw": 100}, {"State": "running", "SizeRw": 300}],
            "Volumes": [], "BuildCache": [],
        });
        let out = Template::parse(DF_TABLE, DF_TABLE)
            .unwrap()
            .render_list(DF_HEADERS, &df_rows(&du))
            .unwrap();
        assert_eq!(
            out,
            "TYPE            TOTAL     ACTIVE    SIZE      RECLAIMABLE\n\
             Images          1         0         10.24kB   10.24kB (100%)\n\
             Containers      2         1         400B      100B (25%)\n\
             Local Volumes   0         0         0B        0B\n\
             Build Cache     0         0         0B        0B\n"
        );
    }
}
