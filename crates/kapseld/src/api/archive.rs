//! `/containers/{id}/archive` (docker cp: HEAD stat, GET a tar, PUT a tar) and
//! `/containers/{id}/export`, over [`crate::containers::fs`].
//!
//! Archives stream through bounded channels between the HTTP body and the blocking
//! filesystem work, never whole in memory. A GET answers its status (404 for a missing
//! path) before the first byte of the tar; an error after that cuts the stream short.

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use super::body;
use super::{flag, param, ApiError, AppState};
use crate::containers::fs::{Access, ExtractOptions, FsError};
use crate::containers::user;

type Params = Query<Vec<(String, String)>>;

const STAT_HEADER: &str = "X-Docker-Container-Path-Stat";

impl From<FsError> for ApiError {
    fn from(err: FsError) -> Self {
        let status = match &err {
            FsError::NoSuchPath { .. } => StatusCode::NOT_FOUND,
            FsError::NotADirectory | FsError::Invalid(_) => StatusCode::BAD_REQUEST,
            FsError::ReadOnly => StatusCode::FORBIDDEN,
            FsError::Io { .. } => StatusCode::INTERNAL_SERVER_ERROR,
            FsError::Container(_) => {
                let FsError::Container(e) = err else {
                    unreachable!()
                };
                return ApiError::from(e);
            }
        };
        ApiError::new(status, err.to_string())
    }
}

fn path_param(params: &[(String, String)]) -> Result<String, ApiError> {
    param(params, "path")
        .filter(|p| !p.is_empty())
        .map(String::from)
        .ok_or_else(|| ApiError::bad_request("path cannot be empty"))
}

/// `HEAD /containers/{id}/archive?path=`: only the path's stat, in the header.
pub async fn head(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(params): Params,
) -> Result<Response, ApiError> {
    let path = path_param(&params)?;
    let stat = state
        .engine
        .with_rootfs(&id, Access::Read, move |fs, _| fs.stat(&fs.resolve(&path)?))
        .await?;
    Ok(([(STAT_HEADER, stat.header_value())], ()).into_response())
}

/// `GET /containers/{id}/archive?path=`: the stat header and a tar of the path.
pub async fn get(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(params): Params,
) -> Result<Response, ApiError> {
    let path = path_param(&params)?;
    let engine = state.engine.clone();
    let (stat, tar) = body::streamed("the archive task", |ready, tx| async move {
        let given = id.clone();
        engine
            .with_rootfs(&id, Access::Read, move |fs, _| {
                let found = fs.resolve(&path).and_then(|t| Ok((fs.stat(&t)?, t)));
                let (stat, target) = match found {
                    Ok(found) => found,
                    Err(e) => {
                        body::answer(&ready, Err(e.named(&given).into()));
                        return Ok(());
                    }
                };
                body::answer(&ready, Ok(stat));
                body::write_into(tx, "a container archive", |out| {
                    fs.archive(&target, out).map(drop)
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
            (STAT_HEADER, stat.header_value()),
        ],
        tar,
    )
        .into_response())
}

/// `GET /containers/{id}/export`: the container's root filesystem as a tar.
pub async fn export(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let engine = state.engine.clone();
    let ((), tar) = body::streamed("the export task", |ready, tx| async move {
        engine
            .with_rootfs(&id, Access::Read, move |fs, _| {
                body::answer(&ready, Ok(()));
                body::write_into(tx, "a container export", |out| fs.export(out).map(drop));
                Ok(())
            })
            .await
            .map_err(ApiError::from)
    })
    .await?;
    Ok(([("Content-Type", "application/x-tar")], tar).into_response())
}

/// `PUT /containers/{id}/archive?path=&noOverwriteDirNonDir=&copyUIDGID=`: the body (a
/// tar, plain or gzip'd) is extracted into directory `path`.
pub async fn put(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(params): Params,
    request: Body,
) -> Result<Response, ApiError> {
    let path = path_param(&params)?;
    let no_overwrite_dir_non_dir = flag(&params, "noOverwriteDirNonDir");
    let copy_uid_gid = flag(&params, "copyUIDGID");
    let (tx, rx) = body::channel();
    let engine = state.engine.clone();
    let task = tokio::spawn(async move {
        engine
            .with_rootfs(&id, Access::Write, move |fs, record| {
                if record.host_config.readonly_rootfs {
                    return Err(FsError::ReadOnly);
                }
                // As dockerd: with copyUIDGID, everything belongs to the container's user
                // (looked up in the container's own passwd and group files).
                let owner = if copy_uid_gid && !record.config.user.is_empty() {
                    let u = user::resolve(fs.path(), &record.config.user, &[])?;
                    Some((u.uid, u.gid))
                } else {
                    None
                };
                let options = ExtractOptions {
                    no_overwrite_dir_non_dir,
                    owner,
                };
                fs.extract(&path, body::ChannelReader::new(rx), &options)
            })
            .await
    });
    body::forward(request, tx).await;
    task.await
        .map_err(|e| ApiError::internal(e.to_string()))??;
    Ok(StatusCode::OK.into_response())
}
