//! `/images/...`: list, inspect, load, tag, remove, save, import, history and prune
//! images; also the image-making and image-accounting endpoints outside `/images`:
//! `POST /commit`, `GET /containers/{id}/changes` and `GET /system/df`.
//!
//! The image store does blocking file and SQLite work, so it runs in
//! `spawn_blocking`; archives stream between the request or response body and that work
//! through channels, never whole in memory.

use std::collections::{HashMap, HashSet};
use std::io;

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use kapsel_image::archive::SaveFormat;
use kapsel_image::commit::ImportOptions;
use kapsel_image::instructions;
use kapsel_image::metadata::ImageRecord;
use kapsel_image::reference::Reference;
use kapsel_image::store::{ImageStore, RemoveEvent};
use serde_json::{json, Map, Value};

use super::body::JsonBody;
use super::filters::Filters;
use super::{body, flag, page_not_found, param, ApiError, AppState};
use crate::containers::commit::CommitRequest;
use crate::containers::inspect;

/// Query parameters as pairs: `names` may be given several times.
type Params = Query<Vec<(String, String)>>;

pub async fn list(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let images = blocking(&state, |store| store.list()).await?;
    Ok(Json(Value::Array(images)))
}

/// `docker load`: the body is the archive; the answer is a JSON message stream.
pub async fn load(State(state): State<AppState>, request: Body) -> Result<Response, ApiError> {
    let (tx, rx) = body::channel();
    let store = state.images.clone();
    let task = tokio::task::spawn_blocking(move || store.load(body::ChannelReader::new(rx)));
    body::forward(request, tx).await;
    let loaded = task
        .await
        .map_err(|e| ApiError::internal(e.to_string()))??;
    let mut messages = String::new();
    for (id, tags) in loaded {
        let lines = if tags.is_empty() {
            vec![format!("Loaded image ID: {id}\n")]
        } else {
            tags.iter()
                .map(|t| format!("Loaded image: {}\n", t.familiar()))
                .collect()
        };
        for line in lines {
            messages.push_str(&json!({ "stream": line }).to_string());
            messages.push('\n');
        }
    }
    Ok(([("Content-Type", "application/json")], messages).into_response())
}

/// `docker save a b`: `GET /images/get?names=a&names=b`.
pub async fn save_named(
    State(state): State<AppState>,
    Query(params): Params,
) -> Result<Response, ApiError> {
    let names: Vec<String> = params
        .iter()
        .filter(|(k, _)| k == "names")
        .map(|(_, v)| v.clone())
        .collect();
    if names.is_empty() {
        return Err(ApiError::bad_request("no images to save: give names"));
    }
    save(&state, names, &params).await
}

/// `POST /images/create`: `fromSrc` imports a root filesystem tarball (`docker import`);
/// pulling (`fromImage`) is not there yet.
pub async fn create(
    State(state): State<AppState>,
    Query(params): Params,
    body: Body,
) -> Result<Response, ApiError> {
    match param(&params, "fromSrc") {
        Some(source) => import(&state, source, &params, body).await,
        None => Err(ApiError::new(
            StatusCode::NOT_IMPLEMENTED,
            "pulling from registries is not supported yet: load images with docker load",
        )),
    }
}

/// `docker import`: the body is the tarball (`fromSrc=-`); the answer is the JSON
/// message stream the CLI prints, ending with the image ID.
async fn import(
    state: &AppState,
    source: &str,
    params: &[(String, String)],
    request: Body,
) -> Result<Response, ApiError> {
    if source != "-" {
        return Err(ApiError::bad_request(format!(
            "importing from {source:?} is not supported: download it and import the file \
             (docker import FILE)"
        )));
    }
    if let Some(platform) = param(params, "platform").filter(|p| !p.is_empty()) {
        if !platform.starts_with("linux") {
            return Err(ApiError::bad_request(format!(
                "platform {platform:?} is not supported: only linux images run here"
            )));
        }
    }
    let tags: Vec<Reference> = repo_tag(param(params, "repo"), param(params, "tag"))?
        .into_iter()
        .collect();
    let mut config = Map::new();
    instructions::apply(&mut config, &all(params, "changes"))?;
    let comment = match param(params, "message").filter(|m| !m.is_empty()) {
        Some(message) => message.to_string(),
        None => format!("Imported from {source}"),
    };
    let options = ImportOptions {
        config,
        comment,
        tags: tags.clone(),
    };
    let (tx, rx) = body::channel();
    let store = state.images.clone();
    let task =
        tokio::task::spawn_blocking(move || store.import(body::ChannelReader::new(rx), &options));
    body::forward(request, tx).await;
    let id = task
        .await
        .map_err(|e| ApiError::internal(e.to_string()))??;
    let name = tags.first().map(Reference::familiar).unwrap_or_default();
    state.engine.events.publish(
        "image",
        "import",
        &id.to_string(),
        [("name".to_string(), name)],
    );
    let message = format!("{}\n", json!({ "status": id.to_string() }));
    Ok(([("Content-Type", "application/json")], message).into_response())
}

/// `POST /commit?container=&repo=&tag=&comment=&author=&pause=&changes=`, the body a
/// config to commit: 201 `{"Id": ...}`.
pub async fn commit(
    State(state): State<AppState>,
    Query(params): Params,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    let container = param(&params, "container").unwrap_or_default();
    let tags: Vec<Reference> = repo_tag(param(&params, "repo"), param(&params, "tag"))?
        .into_iter()
        .collect();
    // dockerd's BoolValue, defaulting to true from API 1.13 on.
    let pause = param(&params, "pause").is_none_or(|v| {
        !matches!(
            v.to_ascii_lowercase().as_str(),
            "0" | "no" | "false" | "none"
        ) || v.is_empty()
    });
    let config = match serde_json::from_slice::<Value>(&body) {
        _ if body.iter().all(u8::is_ascii_whitespace) => None,
        Ok(Value::Null) => None,
        Ok(Value::Object(map)) => Some(map),
        Ok(_) => {
            return Err(ApiError::bad_request(
                "the commit body must be a JSON object",
            ))
        }
        Err(e) => {
            return Err(ApiError::bad_request(format!(
                "invalid JSON in the commit body: {e}"
            )))
        }
    };
    let request = CommitRequest {
        tags,
        comment: param(&params, "comment").unwrap_or_default().to_string(),
        author: param(&params, "author").unwrap_or_default().to_string(),
        pause,
        changes: all(&params, "changes"),
        config,
    };
    let id = state.engine.commit(container, request).await?;
    Ok((StatusCode::CREATED, Json(json!({ "Id": id.to_string() }))).into_response())
}

/// `GET /containers/{id}/changes` (`docker diff`).
pub async fn changes(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let changes = state.engine.changes(&id).await?;
    Ok(Json(Value::Array(
        changes
            .into_iter()
            .map(|c| json!({"Path": c.path, "Kind": c.kind as u8}))
            .collect(),
    )))
}

/// `POST /images/prune?filters=`: removes the images no container uses (only dangling
/// ones unless `dangling=false`), then collects garbage.
pub async fn prune(
    State(state): State<AppState>,
    Query(params): Params,
) -> Result<Json<Value>, ApiError> {
    let filters = PruneFilters::parse(param(&params, "filters"))?;
    let in_use: HashSet<String> = state
        .engine
        .all()
        .iter()
        .map(|c| c.record().image_id.clone())
        .collect();
    let report = blocking(&state, move |store| {
        store.prune(|record, config| {
            !in_use.contains(&record.id.to_string()) && filters.selects(record, config)
        })
    })
    .await?;
    let deleted: Vec<Value> = report
        .events
        .iter()
        .map(|event| {
            publish_removal(&state, event);
            removal_json(event)
        })
        .collect();
    state.engine.events.publish(
        "image",
        "prune",
        "",
        [("reclaimed".to_string(), report.reclaimed.to_string())],
    );
    Ok(Json(json!({
        "ImagesDeleted": if deleted.is_empty() { Value::Null } else { Value::Array(deleted) },
        "SpaceReclaimed": report.reclaimed,
    })))
}

/// `GET /system/df`: the images' and containers' disk usage (no volumes or build cache
/// here yet).
pub async fn system_df(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let mut records: Vec<_> = state.engine.all().iter().map(|c| c.snapshot()).collect();
    records.sort_by(|a, b| b.created.cmp(&a.created));
    let ids: Vec<String> = records.iter().map(|r| r.id.clone()).collect();
    let (usage, rw_sizes) = blocking(&state, move |store| {
        let usage = store.disk_usage()?;
        let rw: Vec<u64> = ids
            .iter()
            .map(|id| store.container_rw_size(id).unwrap_or(0))
            .collect();
        Ok((usage, rw))
    })
    .await?;
    let mut users: HashMap<String, usize> = HashMap::new();
    for r in &records {
        *users.entry(r.image_id.clone()).or_default() += 1;
    }
    let image_size: HashMap<String, u64> = usage
        .images
        .iter()
        .map(|i| (i.record.id.to_string(), i.size))
        .collect();
    let images: Vec<Value> = usage
        .images
        .iter()
        .map(|i| {
            let id = i.record.id.to_string();
            json!({
                "Id": id,
                "ParentId": "",
                "RepoTags": i.record.tags.iter().map(Reference::familiar).collect::<Vec<_>>(),
                "RepoDigests": [],
                "Created": i.record.created.as_deref().map(inspect::unix_seconds).unwrap_or(0),
                "Size": i.size,
                "SharedSize": i.shared_size,
                "Labels": i.config.pointer("/config/Labels").cloned().unwrap_or(json!({})),
                "Containers": users.get(&id).copied().unwrap_or(0),
            })
        })
        .collect();
    let containers: Vec<Value> = records
        .iter()
        .zip(rw_sizes)
        .map(|(r, rw)| {
            let mut summary = inspect::summary(r);
            summary["SizeRw"] = json!(rw);
            summary["SizeRootFs"] = json!(rw + image_size.get(&r.image_id).copied().unwrap_or(0));
            summary
        })
        .collect();
    Ok(Json(json!({
        "LayersSize": usage.layers_size,
        "Images": images,
        "Containers": containers,
        "Volumes": super::volumes::disk_usage(&state).await?,
        "BuildCache": [],
    })))
}

/// `/images/{name}[/op]`: names may contain '/', so the operation is the last segment.
pub async fn by_name(
    State(state): State<AppState>,
    method: Method,
    Path(rest): Path<String>,
    Query(params): Params,
) -> Result<Response, ApiError> {
    let rest = rest.trim_start_matches('/');
    if method == Method::DELETE {
        return remove(&state, rest, flag(&params, "force")).await;
    }
    let not_found = || page_not_found(&method, &format!("/images/{rest}"));
    let (name, op) = rest.rsplit_once('/').ok_or_else(not_found)?;
    match (&method, op) {
        (&Method::GET, "json") => {
            let name = name.to_string();
            let image = blocking(&state, move |store| store.inspect(&name)).await?;
            Ok(Json(image).into_response())
        }
        (&Method::GET, "get") => save(&state, vec![name.to_string()], &params).await,
        (&Method::POST, "tag") => tag(&state, name, &params).await,
        (&Method::GET, "history") => history(&state, name).await,
        (&Method::POST, "push") => Err(ApiError::new(
            StatusCode::NOT_IMPLEMENTED,
            format!("/images/{{name}}/{op} is not supported yet"),
        )),
        _ => Err(not_found()),
    }
}

/// `POST /images/{name}/tag?repo=&tag=`: 201 with no body, as dockerd.
async fn tag(
    state: &AppState,
    source: &str,
    params: &[(String, String)],
) -> Result<Response, ApiError> {
    let repo = param(params, "repo").unwrap_or_default();
    let target = match param(params, "tag").filter(|t| !t.is_empty()) {
        Some(tag) => format!("{repo}:{tag}"),
        None => repo.to_string(),
    };
    let target = Reference::parse(&target)?;
    let source = source.to_string();
    blocking(state, move |store| store.tag(&source, &target)).await?;
    Ok(StatusCode::CREATED.into_response())
}

/// `GET /images/{name}/history`, newest first.
async fn history(state: &AppState, name: &str) -> Result<Response, ApiError> {
    let name = name.to_string();
    let items = blocking(state, move |store| store.history(&name)).await?;
    let items: Vec<Value> = items
        .into_iter()
        .map(|i| {
            json!({
                "Id": i.id.map_or_else(|| "<missing>".to_string(), |d| d.to_string()),
                "Created": i.created,
                "CreatedBy": i.created_by,
                "Tags": if i.tags.is_empty() { Value::Null } else { json!(i.tags) },
                "Size": i.size,
                "Comment": i.comment,
            })
        })
        .collect();
    Ok(Json(items).into_response())
}

/// `DELETE /images/{name}`. An image containers were created from is not deleted: its
/// last tag or its ID is refused (409) unless `force`, which then only removes its
/// tags, so the containers keep their image.
async fn remove(state: &AppState, name: &str, force: bool) -> Result<Response, ApiError> {
    let owned = name.to_string();
    let record = blocking(state, move |store| store.resolve(&owned)).await?;
    let image_id = record.id.to_string();
    let users = state.engine.image_users(&image_id);
    let named_tag = Reference::parse(name)
        .ok()
        .filter(|r| record.tags.contains(r));
    let deletes_image = named_tag.is_none() || record.tags.len() <= 1;
    let events = if users.is_empty() || !deletes_image {
        let owned = name.to_string();
        blocking(state, move |store| store.remove(&owned, force)).await?
    } else if !force {
        let message = in_use_conflict(name, &record, &users, named_tag.is_some());
        return Err(ApiError::new(StatusCode::CONFLICT, message));
    } else {
        let untag: Vec<Reference> = match named_tag {
            Some(tag) => vec![tag],
            None => record.tags.clone(),
        };
        if untag.is_empty() {
            // Untagged already: all that is left would be deleting it from under them.
            let message = in_use_conflict(name, &record, &users, false)
                .replace("(must be forced)", "(cannot be forced)");
            return Err(ApiError::new(StatusCode::CONFLICT, message));
        }
        blocking(state, move |store| {
            untag
                .iter()
                .map(|t| {
                    store.untag(t)?;
                    Ok(RemoveEvent::Untagged(t.familiar()))
                })
                .collect::<kapsel_image::Result<Vec<_>>>()
        })
        .await?
    };
    let events: Vec<Value> = events
        .iter()
        .map(|event| {
            publish_removal(state, event);
            removal_json(event)
        })
        .collect();
    Ok(Json(events).into_response())
}

/// dockerd's 409 message for an image a container uses: by tag, its "repository
/// reference" wording; by ID, the delete wording naming a running container first.
fn in_use_conflict(
    name: &str,
    record: &ImageRecord,
    users: &[(String, bool)],
    by_tag: bool,
) -> String {
    let short_image = &record.id.hex()[..12];
    let (container, running) = users
        .iter()
        .find(|(_, running)| *running)
        .unwrap_or(&users[0]);
    let short = &container[..container.len().min(12)];
    if by_tag {
        format!(
            "conflict: unable to remove repository reference \"{name}\" (must force) - \
             container {short} is using its referenced image {short_image}"
        )
    } else {
        let state = if *running { "running" } else { "stopped" };
        format!(
            "conflict: unable to delete {short_image} (must be forced) - image is being used \
             by {state} container {short}"
        )
    }
}

fn removal_json(event: &RemoveEvent) -> Value {
    match event {
        RemoveEvent::Untagged(tag) => json!({ "Untagged": tag }),
        RemoveEvent::Deleted(id) => json!({ "Deleted": id.to_string() }),
    }
}

fn publish_removal(state: &AppState, event: &RemoveEvent) {
    let (action, id, name) = match event {
        RemoveEvent::Untagged(tag) => ("untag", tag.clone(), tag.clone()),
        RemoveEvent::Deleted(id) => ("delete", id.to_string(), id.to_string()),
    };
    state
        .engine
        .events
        .publish("image", action, &id, [("name".to_string(), name)]);
}

/// The `repo` (which may carry a tag) and `tag` query parameters as one reference; none
/// without a repo (the image stays untagged).
fn repo_tag(repo: Option<&str>, tag: Option<&str>) -> Result<Option<Reference>, ApiError> {
    let Some(repo) = repo.map(str::trim).filter(|r| !r.is_empty()) else {
        return Ok(None);
    };
    let parsed = Reference::parse(repo)?;
    let reference = match tag.filter(|t| !t.is_empty()) {
        Some(tag) => Reference::parse(&format!("{}:{tag}", parsed.repository()))?,
        None => parsed,
    };
    if reference.digest.is_some() {
        return Err(ApiError::bad_request(
            "refusing to create a tag with a digest reference",
        ));
    }
    Ok(Some(reference))
}

/// Every value of a repeated query parameter.
fn all(params: &[(String, String)], name: &str) -> Vec<String> {
    params
        .iter()
        .filter(|(k, _)| k == name)
        .map(|(_, v)| v.clone())
        .collect()
}

/// `docker image prune`'s filters: `dangling` (default true: only untagged images),
/// `until` (created before), `label` / `label!` (`key` or `key=value`).
struct PruneFilters {
    dangling_only: bool,
    until: Option<f64>,
    filters: Filters,
}

impl PruneFilters {
    fn parse(text: Option<&str>) -> Result<PruneFilters, ApiError> {
        let filters = Filters::parse(text, &["dangling", "until", "label", "label!"])?;
        Ok(PruneFilters {
            dangling_only: filters.boolean("dangling")?.unwrap_or(true),
            until: filters.time("until")?,
            filters,
        })
    }

    fn selects(&self, record: &ImageRecord, config: &Value) -> bool {
        if self.dangling_only && !record.is_dangling() {
            return false;
        }
        if let Some(until) = self.until {
            let created = record.created.as_deref().map_or(0, inspect::unix_seconds);
            if created as f64 >= until {
                return false;
            }
        }
        let labels = config.pointer("/config/Labels").and_then(Value::as_object);
        self.filters.labels_match(|k| labels?.get(k)?.as_str())
    }
}

/// The archive format `save` writes: `format=docker-archive` (the default; also an OCI
/// layout, as docker 25+ writes) or `format=oci-archive` (an OCI layout only, as
/// `podman save --format oci-archive`). The parameter is a kapsel extension: docker's
/// API has none.
fn save_format(params: &[(String, String)]) -> Result<SaveFormat, ApiError> {
    match param(params, "format") {
        None | Some("docker-archive") => Ok(SaveFormat::DockerArchive),
        Some("oci-archive") => Ok(SaveFormat::OciArchive),
        Some(other) => Err(ApiError::bad_request(format!(
            "unknown archive format {other:?}: use docker-archive or oci-archive"
        ))),
    }
}

/// Streams an archive of `names` in the requested format. Unknown names are answered
/// 404 before the stream starts; a failure after that cuts the stream short.
async fn save(
    state: &AppState,
    names: Vec<String>,
    params: &[(String, String)],
) -> Result<Response, ApiError> {
    let format = save_format(params)?;
    let checked = names.clone();
    blocking(state, move |store| {
        checked.iter().try_for_each(|n| store.resolve(n).map(drop))
    })
    .await?;
    let (tx, rx) = body::channel();
    let store = state.images.clone();
    tokio::task::spawn_blocking(move || {
        body::write_into(tx, "saved images", |out| {
            store.save(&names, format, out).map_err(io::Error::other)
        })
    });
    Ok((
        [("Content-Type", "application/x-tar")],
        body::from_channel(rx),
    )
        .into_response())
}

/// Runs blocking store work off the async thread.
async fn blocking<T: Send + 'static>(
    state: &AppState,
    work: impl FnOnce(&ImageStore) -> kapsel_image::Result<T> + Send + 'static,
) -> Result<T, ApiError> {
    let store = state.images.clone();
    super::blocking(move || work(&store)).await
}
