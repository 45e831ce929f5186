//! `/networks`: list, inspect, create, remove, prune, connect and disconnect, over
//! [`crate::networks`] (blocking calls, run off the async thread).

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

use super::body::JsonBody;
use super::filters::Filters;
use super::{param, ApiError, AppState};
use crate::networks::record::NetworkRecord;
use crate::networks::{CreateNetwork, NetworkError, Networks};

type Params = Query<Vec<(String, String)>>;

impl From<NetworkError> for ApiError {
    fn from(err: NetworkError) -> Self {
        use NetworkError::*;
        let status = match &err {
            NotFound(_) => StatusCode::NOT_FOUND,
            NameInUse(_) => StatusCode::CONFLICT,
            Invalid(_) | AddressTaken { .. } => StatusCode::BAD_REQUEST,
            Predefined(_) | InUse { .. } => StatusCode::FORBIDDEN,
            Exhausted(_) | PortTaken { .. } | Plumbing(_) | Io { .. } => {
                StatusCode::INTERNAL_SERVER_ERROR
            }
        };
        ApiError::new(status, err.to_string())
    }
}

/// Runs a blocking network call (netlink, nft) off the async thread.
async fn blocking<T: Send + 'static>(
    state: &AppState,
    call: impl FnOnce(&Networks) -> Result<T, NetworkError> + Send + 'static,
) -> Result<T, ApiError> {
    let networks = state.engine.networks.clone();
    super::blocking(move || call(&networks)).await
}

fn json_body(JsonBody(body): &JsonBody, what: &str) -> Result<Value, ApiError> {
    if body.is_empty() {
        return Ok(json!({}));
    }
    serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("invalid JSON in the {what} request: {e}")))
}

/// Docker's network JSON; `Containers` lists the running members.
fn network_json(state: &AppState, n: &NetworkRecord) -> Value {
    let mut containers = serde_json::Map::new();
    for (id, _) in state.engine.networks.members(&n.id) {
        if let Ok(c) = state.engine.get(&id) {
            let r = c.snapshot();
            if let Some(e) = r.networks.get(&n.name) {
                containers.insert(
                    id,
                    json!({
                        "Name": r.name, "EndpointID": e.endpoint_id, "MacAddress": e.mac(),
                        "IPv4Address": e.ip.map_or(String::new(), |ip| ip.to_string()),
                        "IPv6Address": e.ip6.map_or(String::new(), |ip| ip.to_string()),
                    }),
                );
            }
        }
    }
    let mut config: Vec<Value> = n
        .subnet
        .map(|subnet| {
            let mut c = json!({"Subnet": subnet.to_string()});
            if let Some(g) = n.gateway {
                c["Gateway"] = json!(g.to_string());
            }
            if let Some(r) = n.ip_range {
                c["IPRange"] = json!(r.to_string());
            }
            c
        })
        .into_iter()
        .collect();
    if let (Some(subnet6), Some(gateway6)) = (n.subnet6, n.gateway6) {
        config.push(json!({"Subnet": subnet6.to_string(), "Gateway": gateway6.to_string()}));
    }
    let mut options = json!(n.options);
    if n.name == "bridge" {
        options["com.docker.network.bridge.default_bridge"] = json!("true");
        options["com.docker.network.bridge.name"] = json!(n.bridge);
    }
    json!({
        "Name": n.name, "Id": n.id, "Created": n.created, "Scope": "local",
        "Driver": n.driver, "EnableIPv4": true, "EnableIPv6": n.subnet6.is_some(),
        "IPAM": {"Driver": "default", "Options": null, "Config": config},
        "Internal": n.internal, "Attachable": n.attachable, "Ingress": false,
        "ConfigFrom": {"Network": ""}, "ConfigOnly": false,
        "Containers": containers, "Options": options, "Labels": n.labels,
    })
}

/// Whether `n` passes `docker network ls --filter`.
fn selected(filters: &Filters, n: &NetworkRecord) -> bool {
    let any = |key: &str, test: &dyn Fn(&str) -> bool| {
        filters.get(key).is_empty() || filters.get(key).iter().any(|v| test(v))
    };
    any("name", &|v| n.name.contains(v))
        && any("id", &|v| n.id.starts_with(v))
        && any("driver", &|v| n.driver == v)
        && any("type", &|v| match v {
            "builtin" => n.is_predefined(),
            "custom" => !n.is_predefined(),
            _ => false,
        })
        && filters.labels_match(|k| n.labels.get(k).map(String::as_str))
}

pub async fn list(
    State(state): State<AppState>,
    Query(params): Params,
) -> Result<Json<Value>, ApiError> {
    let filters = Filters::parse(
        param(&params, "filters"),
        &[
            "name", "id", "driver", "type", "label", "label!", "dangling", "scope",
        ],
    )?;
    let dangling = filters.boolean("dangling")?;
    let list: Vec<Value> = state
        .engine
        .networks
        .list()
        .iter()
        .filter(|n| selected(&filters, n))
        .filter(|n| {
            dangling.is_none_or(|d| {
                d == (!n.is_predefined() && state.engine.networks.members(&n.id).is_empty())
            })
        })
        .map(|n| network_json(&state, n))
        .collect();
    Ok(Json(json!(list)))
}

pub async fn inspect(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let network = state.engine.networks.get(&id)?;
    Ok(Json(network_json(&state, &network)))
}

fn string_map(v: &Value) -> std::collections::BTreeMap<String, String> {
    v.as_object()
        .into_iter()
        .flatten()
        .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
        .collect()
}

fn parse_field<T: std::str::FromStr>(v: &Value, what: &str) -> Result<Option<T>, ApiError> {
    match v.as_str() {
        None | Some("") => Ok(None),
        Some(text) => text
            .parse()
            .map(Some)
            .map_err(|_| ApiError::bad_request(format!("invalid {what}: {text}"))),
    }
}

pub async fn create(State(state): State<AppState>, body: JsonBody) -> Result<Response, ApiError> {
    let body = json_body(&body, "network create")?;
    let enable_ipv6 = body["EnableIPv6"].as_bool() == Some(true);
    let configs = body["IPAM"]["Config"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let is_v6 = |c: &&Value| c["Subnet"].as_str().is_some_and(|s| s.contains(':'));
    let (v6, v4): (Vec<&Value>, Vec<&Value>) = configs.iter().partition(is_v6);
    if v4.len() > 1 || v6.len() > 1 {
        return Err(ApiError::bad_request(
            "one subnet per IP version: give --subnet at most once for IPv4 and once for IPv6",
        ));
    }
    if !v6.is_empty() && !enable_ipv6 {
        return Err(ApiError::bad_request(
            "an IPv6 subnet needs --ipv6 (EnableIPv6)",
        ));
    }
    let (ipam, ipam6) = (
        v4.first().copied().cloned().unwrap_or(Value::Null),
        v6.first().copied().cloned().unwrap_or(Value::Null),
    );
    let request = CreateNetwork {
        name: body["Name"].as_str().unwrap_or("").to_string(),
        driver: body["Driver"].as_str().unwrap_or("").to_string(),
        internal: body["Internal"].as_bool().unwrap_or(false),
        attachable: body["Attachable"].as_bool().unwrap_or(false),
        labels: string_map(&body["Labels"]),
        options: string_map(&body["Options"]),
        subnet: parse_field(&ipam["Subnet"], "subnet")?,
        ip_range: parse_field(&ipam["IPRange"], "ip-range")?,
        gateway: parse_field(&ipam["Gateway"], "gateway")?,
        enable_ipv6,
        subnet6: parse_field(&ipam6["Subnet"], "IPv6 subnet")?,
        gateway6: parse_field(&ipam6["Gateway"], "IPv6 gateway")?,
    };
    let network = blocking(&state, move |n| n.create(request)).await?;
    state.engine.events.publish(
        "network",
        "create",
        &network.id,
        network_attributes(&network),
    );
    Ok((
        StatusCode::CREATED,
        Json(json!({"Id": network.id, "Warning": ""})),
    )
        .into_response())
}

fn network_attributes(n: &NetworkRecord) -> Vec<(String, String)> {
    vec![
        ("name".into(), n.name.clone()),
        ("type".into(), n.driver.clone()),
    ]
}

pub async fn remove(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let network = blocking(&state, move |n| n.remove(&id)).await?;
    state.engine.events.publish(
        "network",
        "destroy",
        &network.id,
        network_attributes(&network),
    );
    Ok(StatusCode::NO_CONTENT.into_response())
}

pub async fn prune(
    State(state): State<AppState>,
    Query(params): Params,
) -> Result<Json<Value>, ApiError> {
    let filters = Filters::parse(param(&params, "filters"), &["label", "label!", "until"])?;
    let until = filters.time("until")?;
    let mut deleted = Vec::new();
    for network in state.engine.networks.list() {
        let old_enough = until
            .is_none_or(|u| crate::containers::inspect::unix_seconds(&network.created) as f64 <= u);
        if network.is_predefined()
            || !old_enough
            || !filters.labels_match(|k| network.labels.get(k).map(String::as_str))
            || !state.engine.networks.members(&network.id).is_empty()
        {
            continue;
        }
        let id = network.id.clone();
        if blocking(&state, move |n| n.remove(&id)).await.is_ok() {
            state.engine.events.publish(
                "network",
                "destroy",
                &network.id,
                network_attributes(&network),
            );
            deleted.push(network.name);
        }
    }
    Ok(Json(json!({"NetworksDeleted": deleted})))
}

/// `GET /networks/{id}/connections` (kapsel's): the latest new connections logged on
/// a network created with `-o kapsel.log-connections=true`.
pub async fn connections(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let network = state.engine.networks.get(&id)?;
    if !network.log_connections() {
        return Err(ApiError::bad_request(format!(
            "network {} does not log connections: create it with -o {}=true",
            network.name,
            crate::networks::record::LOG_CONNECTIONS_OPTION
        )));
    }
    Ok(Json(json!(state
        .engine
        .networks
        .connections
        .recent(&network.name))))
}

pub async fn connect(
    State(state): State<AppState>,
    Path(id): Path<String>,
    body: JsonBody,
) -> Result<Response, ApiError> {
    let body = json_body(&body, "network connect")?;
    let network = state.engine.networks.get(&id)?;
    let container = body["Container"].as_str().unwrap_or("");
    state
        .engine
        .connect_network(container, &network.name, &body["EndpointConfig"])
        .await?;
    Ok(StatusCode::OK.into_response())
}

pub async fn disconnect(
    State(state): State<AppState>,
    Path(id): Path<String>,
    body: JsonBody,
) -> Result<Response, ApiError> {
    let body = json_body(&body, "network disconnect")?;
    let network = state.engine.networks.get(&id)?;
    let container = body["Container"].as_str().unwrap_or("");
    state
        .engine
        .disconnect_network(container, &network.name)
        .await?;
    Ok(StatusCode::OK.into_response())
}
