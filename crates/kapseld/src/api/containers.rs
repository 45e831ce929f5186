//! `/containers/...` and `/exec/...`: the container life cycle, inspect and list, logs,
//! top, and exec, over [`crate::containers::Engine`].

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, Query, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};
use tokio::sync::mpsc;

use super::body::{self, JsonBody};
use super::filters::{label_matches, time_param, Filters};
use super::stream::{self, StreamOptions};
use super::{flag, param, ApiError, AppState};
use crate::containers::exec::ExecConfig;
use crate::containers::record::{Record, Status};
use crate::containers::{health, inspect, logs, ContainerError, CreateRequest, WaitCondition};

type Params = Query<Vec<(String, String)>>;

impl From<ContainerError> for ApiError {
    fn from(err: ContainerError) -> Self {
        use ContainerError::*;
        let status = match &err {
            NotFound(_) => StatusCode::NOT_FOUND,
            NameInUse { .. } | NotRunning(_) | Paused(_) | RemoveRunning(_) => StatusCode::CONFLICT,
            InvalidName { .. } | InvalidConfig(_) | NoCommand | StartFailed(_) => {
                StatusCode::BAD_REQUEST
            }
            NotModified => StatusCode::NOT_MODIFIED,
            Image(_) => {
                let Image(image) = err else { unreachable!() };
                return ApiError::from(image);
            }
            Network(_) => {
                let Network(network) = err else {
                    unreachable!()
                };
                return ApiError::from(network);
            }
            Volume(_) => {
                let Volume(volume) = err else { unreachable!() };
                return ApiError::from(volume);
            }
            Db(_) | DbOpen { .. } | Io { .. } => StatusCode::INTERNAL_SERVER_ERROR,
        };
        ApiError::new(status, err.to_string())
    }
}

fn no_content() -> Response {
    StatusCode::NO_CONTENT.into_response()
}

/// 304 carries no body; everything else is Docker's JSON error.
fn done(result: Result<(), ContainerError>) -> Response {
    match result {
        Ok(()) => no_content(),
        Err(ContainerError::NotModified) => StatusCode::NOT_MODIFIED.into_response(),
        Err(e) => ApiError::from(e).into_response(),
    }
}

pub async fn create(
    State(state): State<AppState>,
    Query(params): Params,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    let request: CreateRequest = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_request(format!("invalid JSON in the create request: {e}")))?;
    let engine = state.engine.clone();
    let name = param(&params, "name").map(String::from);
    let record = tokio::task::spawn_blocking(move || engine.create(name.as_deref(), request))
        .await
        .map_err(|e| ApiError::internal(e.to_string()))??;
    Ok((
        StatusCode::CREATED,
        Json(json!({"Id": record.id, "Warnings": []})),
    )
        .into_response())
}

pub async fn list(
    State(state): State<AppState>,
    Query(params): Params,
) -> Result<Json<Value>, ApiError> {
    let all = flag(&params, "all");
    let filters = Filters::parse(param(&params, "filters"), LIST_FILTERS)?;
    if let Some(bad) = filters
        .get("health")
        .iter()
        .find(|v| !HEALTH_WORDS.contains(&v.as_str()))
    {
        return Err(ApiError::bad_request(format!(
            "Unrecognised filter value for health: {bad}"
        )));
    }
    let mut records: Vec<_> = state.engine.all().iter().map(|c| c.snapshot()).collect();
    // Newest first, as docker ps lists them.
    records.sort_by(|a, b| b.created.cmp(&a.created));
    let mut shown: Vec<Value> = Vec::new();
    let limit = param(&params, "limit")
        .and_then(|l| l.parse::<i64>().ok())
        .filter(|l| *l > 0);
    let (before, since) = (
        anchor(&filters, "before", &records),
        anchor(&filters, "since", &records),
    );
    for r in &records {
        if before.as_ref().is_some_and(|t| r.created >= *t)
            || since.as_ref().is_some_and(|t| r.created <= *t)
        {
            continue;
        }
        let explicit_all = all || filters.has("status") || filters.has("exited");
        if (!explicit_all && !r.state.status.is_live()) || !list_matches(&filters, r) {
            continue;
        }
        shown.push(inspect::summary(r));
        if limit.is_some_and(|l| shown.len() as i64 >= l) {
            break;
        }
    }
    Ok(Json(Value::Array(shown)))
}

/// The filter keys of `GET /containers/json`.
const LIST_FILTERS: &[&str] = &[
    "label", "name", "id", "status", "ancestor", "exited", "before", "since", "health",
];

/// The values of the `health` filter.
const HEALTH_WORDS: &[&str] = &[
    health::STARTING,
    health::HEALTHY,
    health::UNHEALTHY,
    health::NONE,
];

/// Every given filter holds (within one key, any value may match); `before` and `since`
/// are applied by the caller.
fn list_matches(filters: &Filters, r: &Record) -> bool {
    filters.iter().all(|(key, values)| {
        values.iter().any(|v| match key.as_str() {
            "label" => label_matches(v, |k| r.config.labels.as_ref()?.get(k).map(String::as_str)),
            "name" => r.name.contains(v.trim_start_matches('/')),
            "id" => r.id.starts_with(v.as_str()),
            "status" => r.state.status.as_str() == v,
            "ancestor" => {
                r.image == *v
                    || r.image_id
                        .trim_start_matches("sha256:")
                        .starts_with(v.trim_start_matches("sha256:"))
            }
            "exited" => r.state.status == Status::Exited && r.state.exit_code.to_string() == *v,
            "health" => health::status_word(r) == v,
            _ => true,
        })
    })
}

/// The creation time of the container a `before`/`since` filter names.
fn anchor(filters: &Filters, key: &str, records: &[Record]) -> Option<String> {
    let wanted = filters.get(key).first()?;
    records
        .iter()
        .find(|r| r.id.starts_with(wanted.as_str()) || r.name == *wanted)
        .map(|r| r.created.clone())
}

pub async fn inspect_one(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let container = state.engine.get(&id)?;
    let record = container.snapshot();
    let data_dir = state.config.data_root.join("containers").join(&record.id);
    let execs = state.engine.execs.ids_of(&record.id);
    Ok(Json(inspect::inspect(
        &record,
        &data_dir.display().to_string(),
        &execs,
    )))
}

pub async fn start(State(state): State<AppState>, Path(id): Path<String>) -> Response {
    done(state.engine.start(&id).await)
}

fn timeout_param(params: &[(String, String)]) -> Option<i64> {
    param(params, "t")
        .or_else(|| param(params, "timeout"))
        .and_then(|t| t.parse().ok())
}

pub async fn stop(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(params): Params,
) -> Response {
    let signal = param(&params, "signal");
    done(state.engine.stop(&id, timeout_param(&params), signal).await)
}

pub async fn restart(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(params): Params,
) -> Response {
    let signal = param(&params, "signal");
    done(
        state
            .engine
            .restart(&id, timeout_param(&params), signal)
            .await,
    )
}

pub async fn kill(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(params): Params,
) -> Response {
    done(state.engine.kill(&id, param(&params, "signal")))
}

pub async fn pause(State(state): State<AppState>, Path(id): Path<String>) -> Response {
    done(state.engine.set_paused(&id, true).await)
}

pub async fn unpause(State(state): State<AppState>, Path(id): Path<String>) -> Response {
    done(state.engine.set_paused(&id, false).await)
}

pub async fn rename(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(params): Params,
) -> Response {
    let Some(name) = param(&params, "name") else {
        return ApiError::bad_request("rename needs a new name (?name=)").into_response();
    };
    done(state.engine.rename(&id, name))
}

pub async fn remove(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(params): Params,
) -> Response {
    done(
        state
            .engine
            .remove(&id, flag(&params, "force"), flag(&params, "v"))
            .await,
    )
}

pub async fn wait(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(params): Params,
) -> Result<Response, ApiError> {
    let condition = match param(&params, "condition").unwrap_or("not-running") {
        "" | "not-running" => WaitCondition::NotRunning,
        "next-exit" => WaitCondition::NextExit,
        "removed" => WaitCondition::Removed,
        other => {
            return Err(ApiError::bad_request(format!(
                "invalid condition: {other:?}: use not-running, next-exit or removed"
            )))
        }
    };
    // Resolve now: a missing container is a 404, not a 200 with an error later.
    state.engine.get(&id)?;
    // The status line goes out at once (the docker CLI waits for it before it starts the
    // container); the body follows when the condition holds.
    let engine = state.engine.clone();
    let (tx, rx) = mpsc::channel::<body::Chunk>(1);
    tokio::spawn(async move {
        let body = match engine.wait(&id, condition).await {
            Ok(code) => json!({"StatusCode": code, "Error": null}),
            Err(e) => json!({"StatusCode": -1, "Error": {"Message": e.to_string()}}),
        };
        let _ = tx.send(Ok(Bytes::from(body.to_string() + "\n"))).await;
    });
    Ok((
        [("Content-Type", "application/json")],
        body::from_channel(rx),
    )
        .into_response())
}

pub async fn logs(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(params): Params,
) -> Result<Response, ApiError> {
    let container = state.engine.get(&id)?;
    let record = container.snapshot();
    if record.host_config.log_config.kind == "none" {
        return Err(ApiError::bad_request(
            "configured logging driver does not support reading",
        ));
    }
    let query = logs::Query {
        stdout: flag(&params, "stdout"),
        stderr: flag(&params, "stderr"),
        since: time_param(&params, "since")?.unwrap_or(0.0),
        until: time_param(&params, "until")?.unwrap_or(0.0),
        tail: param(&params, "tail").and_then(|t| t.parse().ok()),
    };
    if !query.stdout && !query.stderr {
        return Err(ApiError::bad_request(
            "Bad parameters: you must choose at least one stream",
        ));
    }
    let follow = flag(&params, "follow");
    let timestamps = flag(&params, "timestamps");
    let tty = record.config.tty;
    let (tx, rx) = mpsc::channel::<body::Chunk>(16);
    let path = std::path::PathBuf::from(&record.log_path);
    tokio::task::spawn_blocking(move || {
        let running = || container.record().state.status.is_live();
        logs::follow(&path, &query, follow, running, |batch| {
            let mut out = Vec::new();
            for entry in batch {
                let mut text = Vec::new();
                if timestamps {
                    text.extend_from_slice(entry.time.as_bytes());
                    text.push(b' ');
                }
                text.extend_from_slice(entry.text.as_bytes());
                stream::frame_into(&mut out, entry.stream, &text, tty);
            }
            tx.blocking_send(Ok(Bytes::from(out))).is_ok()
        });
    });
    let content_type = if tty {
        "application/vnd.docker.raw-stream"
    } else {
        "application/vnd.docker.multiplexed-stream"
    };
    Ok(([("Content-Type", content_type)], body::from_channel(rx)).into_response())
}

pub async fn top(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(params): Params,
) -> Result<Json<Value>, ApiError> {
    let container = state.engine.get(&id)?;
    let record = container.snapshot();
    if !record.state.status.is_live() {
        return Err(ContainerError::NotRunning(record.id).into());
    }
    let ps_args = param(&params, "ps_args").unwrap_or("-ef").to_string();
    let programs = &state.engine.config.programs;
    let pids_out = tokio::process::Command::new(&programs.runtime)
        .arg("--root")
        .arg(&programs.runtime_root)
        .args(["ps", "--format", "json", &record.id])
        .output()
        .await
        .map_err(|e| ApiError::internal(format!("listing the container's processes: {e}")))?;
    let pids: Vec<i64> = serde_json::from_slice(&pids_out.stdout).unwrap_or_default();
    let ps = tokio::process::Command::new("ps")
        .args(ps_args.split_whitespace())
        .output()
        .await
        .map_err(|e| ApiError::internal(format!("running ps: {e}")))?;
    if !ps.status.success() {
        return Err(ApiError::internal(format!(
            "ps {ps_args}: {}",
            String::from_utf8_lossy(&ps.stderr).trim()
        )));
    }
    Ok(Json(top_table(
        &String::from_utf8_lossy(&ps.stdout),
        &pids,
    )?))
}

/// `ps` output reduced to the container's processes, as `{"Titles":[..],"Processes":[..]}`.
fn top_table(text: &str, pids: &[i64]) -> Result<Value, ApiError> {
    let mut lines = text.lines();
    let header = lines.next().unwrap_or_default();
    let titles: Vec<&str> = header.split_whitespace().collect();
    let pid_column = titles
        .iter()
        .position(|t| *t == "PID")
        .ok_or_else(|| ApiError::bad_request("Couldn't find PID field in ps output"))?;
    let processes: Vec<Vec<String>> = lines
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let pid: i64 = fields.get(pid_column)?.parse().ok()?;
            if !pids.contains(&pid) {
                return None;
            }
            // The last column (the command) keeps its spaces.
            let mut row: Vec<String> = fields[..titles.len() - 1]
                .iter()
                .map(|s| s.to_string())
                .collect();
            row.push(fields[titles.len() - 1..].join(" "));
            Some(row)
        })
        .collect();
    Ok(json!({"Titles": titles, "Processes": processes}))
}

pub async fn exec_create(
    State(state): State<AppState>,
    Path(id): Path<String>,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    let config: ExecConfig = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_request(format!("invalid JSON in the exec request: {e}")))?;
    let exec_id = state.engine.exec_create(&id, config)?;
    Ok((StatusCode::CREATED, Json(json!({"Id": exec_id}))).into_response())
}

pub async fn exec_inspect(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(state.engine.execs.get(&id)?.inspect()))
}

#[derive(serde::Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
struct ExecStart {
    detach: bool,
    console_size: Option<[u32; 2]>,
}

pub async fn exec_start(
    State(state): State<AppState>,
    Path(id): Path<String>,
    mut req: Request,
) -> Result<Response, ApiError> {
    let upgrade = stream::wants_upgrade(&req);
    let on_upgrade = hyper::upgrade::on(&mut req);
    let body = body::read_json(req.into_body()).await?;
    let start: ExecStart = if body.is_empty() {
        ExecStart::default()
    } else {
        serde_json::from_slice(&body)
            .map_err(|e| ApiError::bad_request(format!("invalid JSON: {e}")))?
    };
    if start.detach {
        state
            .engine
            .exec_start(&id, false, start.console_size)
            .await?;
        return Ok(no_content());
    }
    let exec = state.engine.execs.get(&id)?;
    let engine = state.engine.clone();
    let shim = async move {
        match engine.exec_start(&id, true, start.console_size).await {
            Ok((_, Some(shim))) => Ok(shim),
            Ok((_, None)) => Err("exec started without a stream".to_string()),
            Err(e) => Err(e.to_string()),
        }
    };
    let c = &exec.config;
    let options = StreamOptions {
        tty: c.tty,
        stdin: c.attach_stdin,
        stdout: c.attach_stdout,
        stderr: c.attach_stderr,
        close_stdin_at_eof: true,
        detach_keys: stream::parse_detach_keys(&c.detach_keys),
    };
    Ok(stream::hijack(upgrade, on_upgrade, shim, options))
}

pub async fn attach(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(params): Params,
    mut req: Request,
) -> Result<Response, ApiError> {
    let container = state.engine.get(&id)?;
    let record = container.snapshot();
    let upgrade = stream::wants_upgrade(&req);
    let on_upgrade = hyper::upgrade::on(&mut req);
    let shim = state.engine.attach_stream(&container)?;
    state.engine.emit(&record, "attach", &[]);
    let shim = std::future::ready(Ok(shim));
    let options = StreamOptions {
        tty: record.config.tty,
        stdin: flag(&params, "stdin") && record.config.open_stdin,
        stdout: flag(&params, "stdout"),
        stderr: flag(&params, "stderr"),
        // With a TTY the client's end is a detach, never an EOF for the container.
        close_stdin_at_eof: record.config.stdin_once && !record.config.tty,
        detach_keys: stream::parse_detach_keys(param(&params, "detachKeys").unwrap_or("")),
    };
    Ok(stream::hijack(upgrade, on_upgrade, shim, options))
}

/// `POST /containers/{id}/resize` and `/exec/{id}/resize`: sent to the shim as a resize
/// frame on a connection of its own.
pub async fn resize(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(params): Params,
) -> Result<Response, ApiError> {
    let container = state.engine.get(&id)?;
    if !container.record().state.status.is_live() {
        return Err(ContainerError::NotRunning(container.record().id.clone()).into());
    }
    let socket = state
        .engine
        .run_dir(&container.record().id)
        .join("attach.sock");
    stream::send_resize(&socket, &params).await?;
    Ok(StatusCode::OK.into_response())
}

pub async fn exec_resize(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(params): Params,
) -> Result<Response, ApiError> {
    let exec = state.engine.execs.get(&id)?;
    let socket = exec_socket(&state, &exec);
    stream::send_resize(&socket, &params).await?;
    Ok(StatusCode::CREATED.into_response())
}

fn exec_socket(state: &AppState, exec: &Arc<crate::containers::exec::Exec>) -> std::path::PathBuf {
    state
        .engine
        .run_dir(&exec.container_id)
        .join(format!("e-{}", &exec.id[..12]))
        .join("attach.sock")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn top_keeps_the_containers_processes_and_whole_commands() {
        let ps = "UID PID PPID C STIME TTY TIME CMD\n\
                  root 1 0 0 10:00 ? 00:00:01 /sbin/init splash\n\
                  root 42 1 0 10:01 ? 00:00:00 sleep 100\n";
        let table = top_table(ps, &[42]).unwrap();
        assert_eq!(table["Titles"][1], "PID");
        assert_eq!(table["Processes"].as_array().unwrap().len(), 1);
        assert_eq!(table["Processes"][0][7], "sleep 100");
    }
}
