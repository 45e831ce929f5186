//! `/_ping`, `/version`, `/info`: what clients ask first.

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::IntoResponse;
use axum::Json;
use serde_json::{json, Value};

use super::{AppState, API_VERSION, MIN_API_VERSION};

/// GET and HEAD: "OK", with the headers the docker CLI negotiates the version from.
pub async fn ping() -> impl IntoResponse {
    let mut headers = HeaderMap::new();
    headers.insert(
        "Cache-Control",
        "no-cache, no-store, must-revalidate"
            .parse()
            .expect("valid"),
    );
    headers.insert("Pragma", "no-cache".parse().expect("valid"));
    headers.insert("Builder-Version", "1".parse().expect("valid"));
    headers.insert("Swarm", "inactive".parse().expect("valid"));
    (headers, "OK")
}

pub async fn version() -> Json<Value> {
    let uname = nix::sys::utsname::uname().ok();
    let kernel = uname
        .as_ref()
        .map(|u| u.release().to_string_lossy().into_owned())
        .unwrap_or_default();
    let engine_version = env!("CARGO_PKG_VERSION");
    Json(json!({
        "Platform": {"Name": "kapsel"},
        "Components": [{
            "Name": "Engine",
            "Version": engine_version,
            "Details": {
                "ApiVersion": API_VERSION,
                "MinAPIVersion": MIN_API_VERSION,
                "Os": "linux",
                "Arch": go_arch(),
                "KernelVersion": kernel,
                "Experimental": "false",
            }
        }],
        "Version": engine_version,
        "ApiVersion": API_VERSION,
        "MinAPIVersion": MIN_API_VERSION,
        "GitCommit": "",
        "GoVersion": "",
        "Os": "linux",
        "Arch": go_arch(),
        "KernelVersion": kernel,
        "BuildTime": "",
    }))
}

pub async fn info(State(state): State<AppState>) -> Json<Value> {
    let uname = nix::sys::utsname::uname().ok();
    let field = |f: fn(&nix::sys::utsname::UtsName) -> &std::ffi::OsStr| {
        uname
            .as_ref()
            .map(|u| f(u).to_string_lossy().into_owned())
            .unwrap_or_default()
    };
    let cgroup_version = if std::path::Path::new("/sys/fs/cgroup/cgroup.controllers").exists() {
        "2"
    } else {
        "1"
    };
    Json(json!({
        "ID": "",
        "Containers": 0, "ContainersRunning": 0, "ContainersPaused": 0, "ContainersStopped": 0,
        "Images": 0,
        "Driver": "overlay2",
        "DriverStatus": [["Backing Filesystem", "extfs"]],
        "Plugins": {"Volume": ["local"], "Network": ["bridge", "host", "none"], "Log": ["json-file", "local", "none"]},
        "MemoryLimit": true, "SwapLimit": true, "CpuCfsPeriod": true, "CpuCfsQuota": true,
        "CPUShares": true, "CPUSet": true, "PidsLimit": true, "OomKillDisable": true,
        "IPv4Forwarding": true,
        "Debug": false,
        "NFd": 0, "NGoroutines": 0, "NEventsListener": 0,
        "SystemTime": kapsel_runtime::state::now_rfc3339(),
        "LoggingDriver": "json-file",
        "CgroupDriver": "cgroupfs",
        "CgroupVersion": cgroup_version,
        "KernelVersion": field(|u| u.release()),
        "OperatingSystem": os_name(),
        "OSVersion": "",
        "OSType": "linux",
        "Architecture": field(|u| u.machine()),
        "NCPU": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
        "MemTotal": mem_total(),
        "IndexServerAddress": "https://index.docker.io/v1/",
        "RegistryConfig": {"IndexConfigs": {}, "InsecureRegistryCIDRs": ["127.0.0.0/8"]},
        "DockerRootDir": state.config.data_root,
        "Name": field(|u| u.nodename()),
        "Labels": [],
        "ExperimentalBuild": false,
        "ServerVersion": env!("CARGO_PKG_VERSION"),
        "Runtimes": {"kapsel-runtime": {"path": "kapsel-runtime"}},
        "DefaultRuntime": "kapsel-runtime",
        "Swarm": {"LocalNodeState": "inactive", "ControlAvailable": false, "NodeID": "", "NodeAddr": ""},
        "LiveRestoreEnabled": true,
        "Isolation": "",
        "InitBinary": "",
        "SecurityOptions": ["name=seccomp,profile=builtin"],
        "Warnings": [],
    }))
}

/// The architecture as Go (and so the docker CLI) names it.
fn go_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

fn os_name() -> String {
    let text = std::fs::read_to_string("/etc/os-release").unwrap_or_default();
    text.lines()
        .find_map(|l| l.strip_prefix("PRETTY_NAME="))
        .map(|v| v.trim_matches('"').to_string())
        .unwrap_or_else(|| "Linux".into())
}

fn mem_total() -> u64 {
    let text = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    text.lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse::<u64>().ok())
        .map_or(0, |kib| kib * 1024)
}
