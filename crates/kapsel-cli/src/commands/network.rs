//! Network commands: create, ls, inspect, rm, prune, connect and disconnect, as docker
//! 28's `network` commands (cli/command/network).

use std::str::FromStr;

use clap::{ArgAction, Args};
use ipnet::IpNet;
use serde_json::{json, Map, Value};

use super::{
    failed, filters_json, for_each_name, list_format, short_id, write_stdout, CmdError,
    InspectArgs, Outcome,
};
use crate::client::{Client, Query};
use crate::format::{self, Template};
use crate::opts::key_values;

#[derive(Args, Debug)]
pub struct CreateArgs {
    /// Driver to manage the Network
    #[arg(short = 'd', long, default_value = "bridge")]
    pub driver: String,
    /// Set driver specific options
    #[arg(short = 'o', long = "opt", action = ArgAction::Append)]
    pub opt: Vec<String>,
    /// Set metadata on a network
    #[arg(long, action = ArgAction::Append)]
    pub label: Vec<String>,
    /// Restrict external access to the network
    #[arg(long)]
    pub internal: bool,
    /// Enable manual container attachment
    #[arg(long)]
    pub attachable: bool,
    /// Enable or disable IPv6 address assignment
    #[arg(long)]
    pub ipv6: bool,
    /// Subnet in CIDR format that represents a network segment
    #[arg(long, action = ArgAction::Append, value_delimiter = ',')]
    pub subnet: Vec<String>,
    /// Allocate container ip from a sub-range
    #[arg(long = "ip-range", action = ArgAction::Append, value_delimiter = ',')]
    pub ip_range: Vec<String>,
    /// IPv4 or IPv6 Gateway for the master subnet
    #[arg(long, action = ArgAction::Append, value_delimiter = ',')]
    pub gateway: Vec<String>,
    #[arg(value_name = "NETWORK")]
    pub name: String,
}

#[derive(Args, Debug)]
pub struct LsArgs {
    /// Only display network IDs
    #[arg(short = 'q', long)]
    pub quiet: bool,
    /// Do not truncate the output
    #[arg(long = "no-trunc")]
    pub no_trunc: bool,
    /// Format output using a custom template
    #[arg(long)]
    pub format: Option<String>,
    /// Provide filter values (e.g. "driver=bridge")
    #[arg(short = 'f', long = "filter", action = ArgAction::Append)]
    pub filter: Vec<String>,
}

#[derive(Args, Debug)]
pub struct InspectNetworkArgs {
    /// Format output using a custom template
    #[arg(short = 'f', long)]
    pub format: Option<String>,
    #[arg(required = true, value_name = "NETWORK")]
    pub names: Vec<String>,
}

impl InspectNetworkArgs {
    pub fn into_generic(self) -> InspectArgs {
        InspectArgs {
            format: self.format,
            size: false,
            kind: Some("network".into()),
            names: self.names,
        }
    }
}

#[derive(Args, Debug)]
pub struct RmArgs {
    /// Do not error if the network does not exist
    #[arg(short = 'f', long)]
    pub force: bool,
    #[arg(required = true, value_name = "NETWORK")]
    pub names: Vec<String>,
}

#[derive(Args, Debug)]
pub struct ConnectArgs {
    /// Add network-scoped alias for the container
    #[arg(long, action = ArgAction::Append, value_delimiter = ',')]
    pub alias: Vec<String>,
    /// IPv4 address (e.g., "172.30.100.104")
    #[arg(long)]
    pub ip: Option<String>,
    pub network: String,
    pub container: String,
}

#[derive(Args, Debug)]
pub struct DisconnectArgs {
    /// Force the container to disconnect from a network
    #[arg(short = 'f', long)]
    pub force: bool,
    pub network: String,
    pub container: String,
}

// ---------------------------------------------------------------------------------------
// create
// ---------------------------------------------------------------------------------------

/// `network create`: prints the new network's ID.
pub async fn create(client: &Client, args: CreateArgs) -> Outcome {
    let mut body = json!({
        "Name": args.name,
        "Driver": args.driver,
        "IPAM": {
            "Driver": "default",
            "Options": {},
            "Config": ipam_config(&args.subnet, &args.ip_range, &args.gateway)?,
        },
        "Internal": args.internal,
        "Attachable": args.attachable,
        "Options": key_values(&args.opt, "opt")?,
        "Labels": key_values(&args.label, "label")?,
    });
    if args.ipv6 {
        // As docker's CLI: the field is sent only when the flag is given.
        body["EnableIPv6"] = json!(true);
    }
    let created = client
        .post("/networks/create", &Query::new(), Some(&body))
        .await?;
    let id = created["Id"].as_str().unwrap_or_default();
    write_stdout(format!("{id}\n").as_bytes())?;
    Ok(0)
}

/// `--subnet`, `--ip-range` and `--gateway` → IPAM.Config, one entry per subnet, each
/// range and gateway given to the subnet that holds it; checked as docker's CLI checks
/// them (createIPAMConfig), with its messages. A lone subnet is left to the daemon.
fn ipam_config(
    subnets: &[String],
    ranges: &[String],
    gateways: &[String],
) -> Result<Vec<Value>, CmdError> {
    if subnets.len() < ranges.len() || subnets.len() < gateways.len() {
        return Err(failed(
            "every ip-range or gateway must have a corresponding subnet",
        ));
    }
    let mut configs: Vec<(&str, Map<String, Value>)> = Vec::new();
    for subnet in subnets {
        for (other, _) in &configs {
            if subnet_holds(subnet, other)? || subnet_holds(other, subnet)? {
                return Err(failed(
                    "multiple overlapping subnet configuration is not supported",
                ));
            }
        }
        let mut config = Map::new();
        config.insert("Subnet".into(), json!(subnet));
        configs.push((subnet, config));
    }
    for (values, key, what, plural, relation) in [
        (ranges, "IPRange", "range", "ranges", "on"),
        (gateways, "Gateway", "gateway", "gateways", "for"),
    ] {
        for value in values {
            if key == "IPRange" {
                // A range must be a CIDR even where no subnet holds it.
                cidr(value)?;
            }
            let mut matched = false;
            for (subnet, config) in configs.iter_mut() {
                if !subnet_holds(subnet, value)? {
                    continue;
                }
                if let Some(existing) = config.get(key).and_then(Value::as_str) {
                    return Err(CmdError::Failed(format!(
                        "cannot configure multiple {plural} ({value}, {existing}) {relation} the same subnet ({subnet})"
                    )));
                }
                config.insert(key.into(), json!(value));
                matched = true;
            }
            if !matched {
                return Err(CmdError::Failed(format!(
                    "no matching subnet for {what} {value}"
                )));
            }
        }
    }
    Ok(configs.into_iter().map(|(_, c)| Value::Object(c)).collect())
}

/// Whether `subnet` (CIDR) holds `data` (a CIDR's address, or an address): Go's
/// `net.ParseCIDR`/`ParseIP` semantics, so an unparsable address is simply not held.
fn subnet_holds(subnet: &str, data: &str) -> Result<bool, CmdError> {
    let net = cidr(subnet).map_err(|e| CmdError::Failed(format!("invalid subnet: {e}")))?;
    let addr = if data.contains('/') {
        Some(cidr(data)?.addr())
    } else {
        std::net::IpAddr::from_str(data).ok()
    };
    Ok(addr.is_some_and(|a| net.contains(&a)))
}

/// Go's `net.ParseCIDR`, with its message.
fn cidr(s: &str) -> Result<IpNet, CmdError> {
    IpNet::from_str(s).map_err(|_| CmdError::Failed(format!("invalid CIDR address: {s}")))
}

// ---------------------------------------------------------------------------------------
// ls
// ---------------------------------------------------------------------------------------

const NETWORKS_TABLE: &str = "table {{.ID}}\t{{.Name}}\t{{.Driver}}\t{{.Scope}}";

const NETWORK_HEADERS: &[(&str, &str)] = &[
    ("ID", "NETWORK ID"),
    ("Name", "NAME"),
    ("Driver", "DRIVER"),
    ("Scope", "SCOPE"),
    ("IPv4", "IPV4"),
    ("IPv6", "IPV6"),
    ("Internal", "INTERNAL"),
    ("Labels", "LABELS"),
    ("CreatedAt", "CREATED AT"),
];

/// `network ls`: sorted by name in docker's natural order.
pub async fn ls(client: &Client, args: LsArgs) -> Outcome {
    let format = list_format(args.format.as_deref(), args.quiet, NETWORKS_TABLE);
    let template = Template::parse(format, NETWORKS_TABLE)?;
    let query = Query::new().opt("filters", filters_json(&args.filter)?);
    let mut networks: Vec<Value> = client.get_json("/networks", &query).await?;
    let name = |n: &Value| n["Name"].as_str().unwrap_or_default().to_string();
    networks.sort_by(|a, b| format::natural_cmp(&name(a), &name(b)));
    let rows: Vec<gtmpl::Value> = networks
        .iter()
        .map(|n| network_row(n, !args.no_trunc))
        .collect();
    write_stdout(template.render_list(NETWORK_HEADERS, &rows)?.as_bytes())?;
    Ok(0)
}

/// One network of `GET /networks` as docker's formatting context.
fn network_row(n: &Value, trunc: bool) -> gtmpl::Value {
    let id = n["Id"].as_str().unwrap_or_default();
    let text = |key: &str| n[key].as_str().unwrap_or_default().to_string();
    let flag = |key: &str| n[key].as_bool().unwrap_or(false).to_string();
    let created = n["Created"]
        .as_str()
        .and_then(format::parse_rfc3339)
        .map(|(secs, nanos)| format::go_time_string_nanos(secs, nanos))
        .unwrap_or_default();
    format::context(&[
        ("ID", if trunc { short_id(id) } else { id }.to_string()),
        ("Name", text("Name")),
        ("Driver", text("Driver")),
        ("Scope", text("Scope")),
        ("IPv4", flag("EnableIPv4")),
        ("IPv6", flag("EnableIPv6")),
        ("Internal", flag("Internal")),
        ("Labels", super::container::labels(&n["Labels"])),
        ("CreatedAt", created),
    ])
}

// ---------------------------------------------------------------------------------------
// connections (kapsel's own: docker has no connection log)
// ---------------------------------------------------------------------------------------

#[derive(Args, Debug)]
pub struct ConnectionsArgs {
    /// Format output using a custom template
    #[arg(long)]
    pub format: Option<String>,
    #[arg(value_name = "NETWORK")]
    pub network: String,
}

const CONNECTIONS_TABLE: &str = "table {{.Protocol}}\t{{.Source}}\t{{.Destination}}";

const CONNECTION_HEADERS: &[(&str, &str)] = &[
    ("Protocol", "PROTOCOL"),
    ("Source", "SOURCE"),
    ("Destination", "DESTINATION"),
];

/// `network connections NETWORK`: the latest new connections logged on a network
/// created with `-o kapsel.log-connections=true`, oldest first.
pub async fn connections(client: &Client, args: ConnectionsArgs) -> Outcome {
    let format = list_format(args.format.as_deref(), false, CONNECTIONS_TABLE);
    let template = Template::parse(format, CONNECTIONS_TABLE)?;
    let path = format!("/networks/{}/connections", args.network);
    let logged: Vec<Value> = client.get_json(&path, &Query::new()).await?;
    let endpoint = |c: &Value, side: &str| {
        let (ip, port) = (&c[side], &c[format!("{side}_port")]);
        match port.as_u64() {
            Some(p) if p > 0 => format!("{}:{p}", ip.as_str().unwrap_or_default()),
            _ => ip.as_str().unwrap_or_default().to_string(),
        }
    };
    let rows: Vec<gtmpl::Value> = logged
        .iter()
        .map(|c| {
            format::context(&[
                (
                    "Protocol",
                    c["protocol"].as_str().unwrap_or_default().to_string(),
                ),
                ("Source", endpoint(c, "source")),
                ("Destination", endpoint(c, "destination")),
            ])
        })
        .collect();
    write_stdout(template.render_list(CONNECTION_HEADERS, &rows)?.as_bytes())?;
    Ok(0)
}

// ---------------------------------------------------------------------------------------
// rm, prune
// ---------------------------------------------------------------------------------------

/// `network rm`: each name removed is printed; failures are printed as they come, and
/// the command ends with docker's "exit status 1". `-f` passes over missing networks.
pub async fn rm(client: &Client, args: RmArgs) -> Outcome {
    let force = args.force;
    let failures = for_each_name(&args.names, |name| async move {
        match client
            .delete(&format!("/networks/{name}"), &Query::new())
            .await
        {
            Ok(_) => Ok(format!("{name}\n")),
            Err(e) if force && e.daemon_status() == Some(404) => Ok(String::new()),
            Err(e) => Err(e.into()),
        }
    })
    .await?;
    if failures.is_empty() {
        return Ok(0);
    }
    Err(CmdError::Status {
        code: 1,
        message: "exit status 1".into(),
    })
}

/// `network prune`: "Deleted Networks:" and their names, then an empty line, as docker
/// prints them; nothing when nothing was removed. No space is reclaimed.
pub async fn prune(client: &Client, args: super::container::PruneArgs) -> Outcome {
    if !args.force
        && !super::confirm(
            "WARNING! This will remove all custom networks not used by at least one container.",
        )?
    {
        return Ok(0);
    }
    let query = Query::new().opt("filters", filters_json(&args.filter)?);
    let report = client.post("/networks/prune", &query, None).await?;
    let deleted: String = report["NetworksDeleted"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(|name| format!("{name}\n"))
        .collect();
    if !deleted.is_empty() {
        write_stdout(format!("Deleted Networks:\n{deleted}\n").as_bytes())?;
    }
    Ok(0)
}

// ---------------------------------------------------------------------------------------
// connect, disconnect
// ---------------------------------------------------------------------------------------

pub async fn connect(client: &Client, args: ConnectArgs) -> Outcome {
    let mut ipam = Map::new();
    if let Some(ip) = &args.ip {
        ipam.insert("IPv4Address".into(), json!(ip));
    }
    let endpoint = json!({"IPAMConfig": ipam, "Aliases": args.alias});
    let body = json!({"Container": args.container, "EndpointConfig": endpoint});
    membership(client, &args.network, "connect", &body).await
}

pub async fn disconnect(client: &Client, args: DisconnectArgs) -> Outcome {
    let body = json!({"Container": args.container, "Force": args.force});
    membership(client, &args.network, "disconnect", &body).await
}

/// `POST /networks/{network}/{op}`: silent on success, as docker is.
async fn membership(client: &Client, network: &str, op: &str, body: &Value) -> Outcome {
    client
        .post(
            &format!("/networks/{network}/{op}"),
            &Query::new(),
            Some(body),
        )
        .await?;
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    fn ipam(subnets: &[&str], ranges: &[&str], gateways: &[&str]) -> Result<Vec<Value>, String> {
        ipam_config(&strings(subnets), &strings(ranges), &strings(gateways))
            .map_err(|e| e.to_string())
    }

    #[test]
    fn ipam_flags_pair_up_as_docker_pairs_them() {
        assert_eq!(
            ipam(&["10.1.0.0/16"], &["10.1.2.0/24"], &["10.1.0.1"]).unwrap(),
            vec![json!({"Subnet": "10.1.0.0/16", "IPRange": "10.1.2.0/24", "Gateway": "10.1.0.1"})]
        );
        assert_eq!(ipam(&[], &[], &[]).unwrap(), Vec::<Value>::new());
        // A lone subnet goes to the daemon unchecked, as docker sends it.
        assert_eq!(
            ipam(&["bogus"], &[], &[]).unwrap(),
            vec![json!({"Subnet": "bogus"})]
        );
        for (subnets, ranges, gateways, error) in [
            (
                &[][..],
                &[][..],
                &["10.1.1.1"][..],
                "every ip-range or gateway must have a corresponding subnet",
            ),
            (
                &["10.5.0.0/16", "10.5.1.0/24"],
                &[],
                &[],
                "multiple overlapping subnet configuration is not supported",
            ),
            (
                &["10.98.0.0/24"],
                &[],
                &["10.97.0.1"],
                "no matching subnet for gateway 10.97.0.1",
            ),
            (
                &["10.0.0.0/8"],
                &[],
                &["1.2.3"],
                "no matching subnet for gateway 1.2.3",
            ),
            (
                &["10.0.0.0/8"],
                &["bogus"],
                &[],
                "invalid CIDR address: bogus",
            ),
            (
                &["bogus"],
                &[],
                &["1.2.3.4"],
                "invalid subnet: invalid CIDR address: bogus",
            ),
            (
                &["10.0.0.0/8", "192.168.0.0/16"],
                &[],
                &["10.0.0.1", "10.0.0.2"],
                "cannot configure multiple gateways (10.0.0.2, 10.0.0.1) for the same subnet (10.0.0.0/8)",
            ),
        ] {
            assert_eq!(ipam(subnets, ranges, gateways).unwrap_err(), error);
        }
    }
}
