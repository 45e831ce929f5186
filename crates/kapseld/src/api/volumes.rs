//! `/volumes`: create, list (with filters), inspect, remove, prune, as dockerd answers
//! them; and kapsel's own `GET /volumes/{name}/export` and `PUT /volumes/{name}/import`
//! (a tar of the volume's data, for backups), over [`crate::containers::volumes`].

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

use super::filters::Filters;
use super::{body, flag, param, ApiError, AppState};
use crate::containers::fs::{Access, ExtractOptions};
use crate::containers::Engine;
use crate::volumes::{self, CreateVolume, Volume, VolumeError};

type Params = Query<Vec<(String, String)>>;

/// The containers a volume export froze (IDs, comma-separated), for the client to report.
pub const FROZEN_HEADER: &str = "X-Kapsel-Frozen-Containers";

impl From<VolumeError> for ApiError {
    fn from(err: VolumeError) -> Self {
        let status = match &err {
            VolumeError::NotFound(_) => StatusCode::NOT_FOUND,
            VolumeError::InUse { .. } => StatusCode::CONFLICT,
            VolumeError::InvalidName(_)
            | VolumeError::InvalidOptions { .. }
            | VolumeError::UnknownDriver(_) => StatusCode::BAD_REQUEST,
            VolumeError::Io { .. } => StatusCode::INTERNAL_SERVER_ERROR,
        };
        ApiError::new(status, err.to_string())
    }
}

/// One volume as inspect shows it; `usage` adds `UsageData` (size and users).
fn volume_json(engine: &Engine, volume: &Volume, usage: bool) -> Value {
    let usage = usage.then(|| {
        (
            engine.volumes.size(&volume.name),
            engine.volume_users(&volume.name).len(),
        )
    });
    volumes::to_json(volume, &engine.volumes.data_path(&volume.name), usage)
}

/// Runs blocking volume work off the async threads.
async fn blocking<T: Send + 'static>(
    state: &AppState,
    work: impl FnOnce(&Engine) -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    let engine = state.engine.clone();
    super::blocking(move || work(&engine)).await
}

/// `GET /volumes?filters=`: dangling, name (a substring), label, driver.
pub async fn list(
    State(state): State<AppState>,
    Query(params): Params,
) -> Result<Json<Value>, ApiError> {
    let filters = Filters::parse(
        param(&params, "filters"),
        &["dangling", "name", "label", "label!", "driver"],
    )?;
    let dangling = filters.boolean("dangling")?;
    blocking(&state, move |engine| {
        let listed: Vec<Value> = engine
            .volumes
            .list()?
            .iter()
            .filter(|v| {
                let names = filters.get("name");
                let drivers = filters.get("driver");
                (names.is_empty() || names.iter().any(|n| v.name.contains(n.as_str())))
                    && (drivers.is_empty() || drivers.contains(&v.driver))
                    && filters.labels_match(|k| v.labels.get(k).map(String::as_str))
                    && dangling.is_none_or(|d| engine.volume_users(&v.name).is_empty() == d)
            })
            .map(|v| volume_json(engine, v, false))
            .collect();
        Ok(Json(json!({"Volumes": listed, "Warnings": null})))
    })
    .await
}

/// `POST /volumes/create`.
pub async fn create(
    State(state): State<AppState>,
    body::JsonBody(body): body::JsonBody,
) -> Result<Response, ApiError> {
    let request: CreateVolume = if body.iter().all(u8::is_ascii_whitespace) {
        CreateVolume::default()
    } else {
        serde_json::from_slice(&body)
            .map_err(|e| ApiError::bad_request(format!("invalid volume create request: {e}")))?
    };
    let value = blocking(&state, move |engine| {
        let volume = engine.create_volume(request)?;
        Ok(volume_json(engine, &volume, false))
    })
    .await?;
    Ok((StatusCode::CREATED, Json(value)).into_response())
}

/// `GET /volumes/{name}`; `UsageData` with `?size=1` (a kapsel addition).
pub async fn inspect(
    State(state): State<AppState>,
    Path(name): Path<String>,
    Query(params): Params,
) -> Result<Json<Value>, ApiError> {
    let usage = flag(&params, "size");
    blocking(&state, move |engine| {
        let volume = engine.volumes.get(&name)?;
        Ok(Json(volume_json(engine, &volume, usage)))
    })
    .await
}

/// `DELETE /volumes/{name}?force=`.
pub async fn remove(
    State(state): State<AppState>,
    Path(name): Path<String>,
    Query(params): Params,
) -> Result<StatusCode, ApiError> {
    let force = flag(&params, "force");
    blocking(
        &state,
        move |engine| Ok(engine.remove_volume(&name, force)?),
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /volumes/prune?filters=`: unused anonymous volumes, every unused one with
/// `all=true`; `label`/`label!` narrow it.
pub async fn prune(
    State(state): State<AppState>,
    Query(params): Params,
) -> Result<Json<Value>, ApiError> {
    let filters = Filters::parse(param(&params, "filters"), &["label", "label!", "all"])?;
    let all = filters.get("all").iter().any(|v| v == "true" || v == "1");
    blocking(&state, move |engine| {
        let (deleted, space) = engine.prune_volumes(all, |v| {
            filters.labels_match(|k| v.labels.get(k).map(String::as_str))
        })?;
        Ok(Json(
            json!({"VolumesDeleted": deleted, "SpaceReclaimed": space}),
        ))
    })
    .await
}

/// The `Volumes` of `GET /system/df`, with their usage.
pub async fn disk_usage(state: &AppState) -> Result<Vec<Value>, ApiError> {
    blocking(state, |engine| {
        Ok(engine
            .volumes
            .list()?
            .iter()
            .map(|v| volume_json(engine, v, true))
            .collect())
    })
    .await
}

/// `GET /volumes/{name}/export`: the volume's data as a tar (`./` first, with the root's
/// owner and mode). Running containers writing to it are frozen until the tar is done;
/// their IDs are in [`FROZEN_HEADER`].
pub async fn export(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    let engine = state.engine.clone();
    let (frozen, tar) = body::streamed("the export task", |ready, tx| async move {
        engine
            .with_volume(&name, Access::Read, move |fs, frozen| {
                body::answer(&ready, Ok(frozen.join(",")));
                body::write_into(tx, "a volume export", |out| {
                    fs.archive_contents("/", out)
                        .map(drop)
                        .map_err(std::io::Error::other)
                });
                Ok(())
            })
            .await
            .map_err(ApiError::from)
    })
    .await?;
    Ok((
        [
            ("Content-Type", "application/x-tar".to_string()),
            (FROZEN_HEADER, frozen),
        ],
        tar,
    )
        .into_response())
}

/// `PUT /volumes/{name}/import`: the body (a tar, plain or gzip'd) extracted into the
/// volume, which is created if missing; refused while a running container uses it.
/// Entries are confined to the volume as `docker cp`'s are (no `..`, absolute paths,
/// or links leading out).
pub async fn import(
    State(state): State<AppState>,
    Path(name): Path<String>,
    request: Body,
) -> Result<StatusCode, ApiError> {
    let create = CreateVolume {
        name: name.clone(),
        ..CreateVolume::default()
    };
    blocking(&state, move |engine| Ok(engine.create_volume(create)?)).await?;
    let (tx, rx) = body::channel();
    let engine = state.engine.clone();
    let task = tokio::spawn(async move {
        engine
            .with_volume(&name, Access::Write, move |fs, _| {
                fs.extract(
                    "/",
                    body::ChannelReader::new(rx),
                    &ExtractOptions::default(),
                )
            })
            .await
    });
    body::forward(request, tx).await;
    task.await
        .map_err(|e| ApiError::internal(e.to_string()))??;
    Ok(StatusCode::OK)
}
