//! `docker diff` and `docker commit`: a container's changes against its image, and a new
//! image made of them (the work is kapsel-image's `diff` and `commit`; this is the
//! container side: which image and upper directory, the config, pausing).

use kapsel_image::commit::CommitOptions;
use kapsel_image::diff::{Change, DiffOptions};
use kapsel_image::digest::Digest;
use kapsel_image::instructions;
use kapsel_image::reference::Reference;
use serde_json::{Map, Value};

use super::record::{Record, Status};
use super::{ContainerError, Engine, Result};

/// What `POST /commit` asks for.
#[derive(Debug, Clone, Default)]
pub struct CommitRequest {
    pub tags: Vec<Reference>,
    pub comment: String,
    pub author: String,
    /// Freeze a running container while its files are read (the API's default).
    pub pause: bool,
    /// Dockerfile instructions (`--change`).
    pub changes: Vec<String>,
    /// The request body: a config to commit instead of the container's (what it leaves
    /// unset still comes from the container's).
    pub config: Option<Map<String, Value>>,
}

impl Engine {
    /// `GET /containers/{id}/changes`.
    pub async fn changes(&self, name: &str) -> Result<Vec<Change>> {
        let record = self.get(name)?.snapshot();
        let images = self.images.clone();
        tokio::task::spawn_blocking(move || {
            images.container_changes(&record.image_id, &record.id, &DiffOptions::default())
        })
        .await
        .map_err(|e| ContainerError::io("scanning changes", std::io::Error::other(e)))?
        .map_err(ContainerError::from)
    }

    /// `POST /commit`: an image of the container's changes over its image, with the
    /// container's config (and the request's changes); returns the image ID. A running
    /// container is paused meanwhile if asked, and start, stop and remove wait for it.
    pub async fn commit(&self, name: &str, request: CommitRequest) -> Result<Digest> {
        let container = self.get(name)?;
        let _op = container.op_lock.lock().await;
        let record = container.snapshot();
        let (_, image_config) = self.images.config(&record.image_id)?;
        let config = commit_config(
            &record,
            request.config,
            image_config.get("config").unwrap_or(&Value::Null),
            &request.changes,
        )?;
        let pause = request.pause && record.state.status == Status::Running;
        if pause {
            self.set_paused(&record.id, true).await?;
        }
        let options = CommitOptions {
            container_id: record.id.clone(),
            image: record.image_id.clone(),
            config,
            author: request.author.clone(),
            comment: request.comment.clone(),
            created_by: record.config.cmd.clone().unwrap_or_default().join(" "),
            tags: request.tags.clone(),
            diff: DiffOptions::default(),
        };
        let images = self.images.clone();
        let committed = tokio::task::spawn_blocking(move || images.commit(&options))
            .await
            .map_err(|e| ContainerError::io("committing", std::io::Error::other(e)))
            .and_then(|r| r.map_err(ContainerError::from));
        if let Ok(id) = &committed {
            // As dockerd: the event comes before the container is resumed.
            let image_ref = request
                .tags
                .first()
                .map(Reference::familiar)
                .unwrap_or_default();
            self.emit(
                &record,
                "commit",
                &[
                    ("comment", request.comment.clone()),
                    ("imageID", id.to_string()),
                    ("imageRef", image_ref),
                ],
            );
        }
        if pause {
            if let Err(e) = self.set_paused(&record.id, false).await {
                tracing::warn!(container = %record.id, "resuming after the commit: {e}");
            }
        }
        let id = committed?;
        Ok(id)
    }

    /// The containers created from the image `id` (`sha256:…`): (container ID, running).
    pub fn image_users(&self, id: &str) -> Vec<(String, bool)> {
        self.all()
            .iter()
            .map(|c| c.snapshot())
            .filter(|r| r.image_id == id)
            .map(|r| (r.id, r.state.status.is_live()))
            .collect()
    }
}

/// The committed image's `config`, as dockerd makes it: the request's config (else the
/// container's) with the changes applied, then what it leaves unset from the container's
/// config, and from the image's what dockerd would have put into the container at create
/// (exposed ports, volumes, health check, shell).
fn commit_config(
    record: &Record,
    body: Option<Map<String, Value>>,
    image: &Value,
    changes: &[String],
) -> Result<Map<String, Value>> {
    let container = match serde_json::to_value(&record.config) {
        Ok(Value::Object(map)) => map,
        _ => Map::new(),
    };
    let mut config = match body {
        Some(map) if !map.is_empty() => map,
        _ => container.clone(),
    };
    instructions::apply(&mut config, changes)?;
    instructions::merge_defaults(&mut config, &container);
    if let Some(image) = image.as_object() {
        let created_with: Map<String, Value> = ["ExposedPorts", "Volumes", "Healthcheck", "Shell"]
            .iter()
            .filter_map(|k| image.get(*k).map(|v| (k.to_string(), v.clone())))
            .collect();
        instructions::merge_defaults(&mut config, &created_with);
    }
    Ok(instructions::image_config(&config))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn record(config: Value) -> Record {
        Record {
            id: "0123456789ab".repeat(5) + "0123",
            name: "c".into(),
            created: String::new(),
            image: "busybox".into(),
            image_id: "sha256:x".into(),
            path: "sh".into(),
            args: Vec::new(),
            config: serde_json::from_value(config).unwrap(),
            host_config: Default::default(),
            state: Default::default(),
            restart_count: 0,
            log_path: String::new(),
            networks: Default::default(),
            ports: Vec::new(),
            mount_points: Vec::new(),
        }
    }

    #[test]
    fn commit_config_is_the_containers_with_the_changes() {
        let r = record(json!({
            "Cmd": ["sh", "-c", "echo hi > /greeting"], "Env": ["PATH=/bin"],
            "Image": "busybox", "Hostname": "abc", "Tty": true, "Labels": {"a": "1"}
        }));
        let image = json!({"ExposedPorts": {"80/tcp": {}}, "Cmd": ["sh"]});
        let changes = vec![r#"CMD ["cat","/greeting"]"#.to_string(), "ENV X=1".into()];
        let config = commit_config(&r, None, &image, &changes).unwrap();
        assert_eq!(config["Cmd"], json!(["cat", "/greeting"]));
        assert_eq!(config["Env"], json!(["PATH=/bin", "X=1"]));
        assert_eq!(config["Labels"], json!({"a": "1"}));
        assert_eq!(config["ExposedPorts"], json!({"80/tcp": {}}));
        assert!(config.get("Image").is_none() && config.get("Tty").is_none());
        // Without changes, the container's command is what the image runs.
        let config = commit_config(&r, None, &image, &[]).unwrap();
        assert_eq!(config["Cmd"], json!(["sh", "-c", "echo hi > /greeting"]));
        // A body config wins where it says something.
        let body = json!({"Cmd": ["true"], "User": "nobody"})
            .as_object()
            .cloned();
        let config = commit_config(&r, body, &image, &[]).unwrap();
        assert_eq!(config["Cmd"], json!(["true"]));
        assert_eq!(config["User"], json!("nobody"));
        assert_eq!(config["Env"], json!(["PATH=/bin"]));
        assert!(commit_config(&r, None, &image, &["RUN true".into()]).is_err());
    }
}
