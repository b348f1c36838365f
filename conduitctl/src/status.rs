//! `conduitctl status`: the fleet as the control plane sees it, one row per data plane with
//! a single STATE word (converged / pending / rejected vN / disconnected) and, under a
//! rejected node, the errors it reported.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use conduit_proto::v1::{DataPlaneStatus, FleetStatusRequest, FleetStatusResponse};
use serde::Serialize;

use crate::cli::{ConnectionArgs, StatusArgs};
use crate::client::{CALL_TIMEOUT, Session};
use crate::exit::{CliError, Exit};
use crate::output::{ListFormat, Table, age, escape_controls, json, labels, or_dash};

pub async fn run(connection: &ConnectionArgs, args: &StatusArgs) -> Result<Exit, CliError> {
    let session = Session::connect(connection).await?;
    let fleet = session
        .call(
            CALL_TIMEOUT,
            session.admin.clone().fleet_status(FleetStatusRequest {}),
        )
        .await?;
    print!("{}", render(&fleet, args.output, Utc::now()));
    Ok(Exit::Ok)
}

/// One data plane's state with respect to the current version.
pub fn state(node: &DataPlaneStatus, current_version: u64) -> String {
    if !node.connected {
        "disconnected".to_string()
    } else if node.rejected_version != 0 && node.rejected_version > node.applied_version {
        format!("rejected v{}", node.rejected_version)
    } else if node.applied_version >= current_version {
        "converged".to_string()
    } else {
        "pending".to_string()
    }
}

pub fn render(fleet: &FleetStatusResponse, format: ListFormat, now: DateTime<Utc>) -> String {
    let mut nodes: Vec<&DataPlaneStatus> = fleet.data_planes.iter().collect();
    nodes.sort_by(|a, b| a.node_id.cmp(&b.node_id));
    match format {
        ListFormat::Json => json(&StatusJson {
            current_version: fleet.current_version,
            data_planes: nodes.into_iter().map(NodeJson::from).collect(),
        }),
        ListFormat::Table => table(fleet.current_version, &nodes, now),
    }
}

fn table(current_version: u64, nodes: &[&DataPlaneStatus], now: DateTime<Utc>) -> String {
    let mut out = match current_version {
        0 => "current version: none (nothing applied yet)\n".to_string(),
        version => format!("current version: {version}\n"),
    };
    if nodes.is_empty() {
        out.push_str("no data planes have connected\n");
        return out;
    }
    let mut table = Table::new(&[
        "NODE",
        "CONNECTED",
        "VERSION",
        "STATE",
        "LAST-SEEN",
        "LABELS",
        "BUILD",
    ]);
    for node in nodes {
        table.row(vec![
            node.node_id.clone(),
            if node.connected { "yes" } else { "no" }.to_string(),
            match node.applied_version {
                0 => "-".to_string(),
                version => version.to_string(),
            },
            state(node, current_version),
            age(&node.last_seen, now),
            labels(&node.labels),
            or_dash(&node.build_version),
        ]);
    }
    out.push_str(&table.render());
    // Errors go below the table so its columns stay readable.
    for node in nodes {
        if node.rejected_version == 0 || node.rejected_version <= node.applied_version {
            continue;
        }
        out.push_str(&format!(
            "\n{} rejected version {}:\n",
            escape_controls(&node.node_id),
            node.rejected_version
        ));
        for error in &node.rejected_errors {
            let error = conduit_config::ConfigError::from(error.clone()).to_string();
            out.push_str(&format!("  {}\n", escape_controls(&error)));
        }
    }
    out
}

/// `status -o json`; the field set is part of the CLI contract.
#[derive(Debug, Serialize)]
struct StatusJson<'a> {
    current_version: u64,
    data_planes: Vec<NodeJson<'a>>,
}

#[derive(Debug, Serialize)]
struct NodeJson<'a> {
    node_id: &'a str,
    labels: BTreeMap<&'a str, &'a str>,
    build_version: &'a str,
    connected: bool,
    applied_version: u64,
    applied_hash: &'a str,
    rejected_version: u64,
    rejected_errors: Vec<ErrorJson<'a>>,
    last_seen: &'a str,
    connected_since: &'a str,
    peer_address: &'a str,
}

#[derive(Debug, Serialize)]
struct ErrorJson<'a> {
    path: &'a str,
    message: &'a str,
}

impl<'a> From<&'a DataPlaneStatus> for NodeJson<'a> {
    fn from(node: &'a DataPlaneStatus) -> Self {
        Self {
            node_id: &node.node_id,
            labels: node
                .labels
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect(),
            build_version: &node.build_version,
            connected: node.connected,
            applied_version: node.applied_version,
            applied_hash: &node.applied_hash,
            rejected_version: node.rejected_version,
            rejected_errors: node
                .rejected_errors
                .iter()
                .map(|e| ErrorJson {
                    path: &e.path,
                    message: &e.message,
                })
                .collect(),
            last_seen: &node.last_seen,
            connected_since: &node.connected_since,
            peer_address: &node.peer_address,
        }
    }
}

#[cfg(test)]
mod tests {
    use conduit_proto::v1::ConfigError;

    use super::*;

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-11-24T12:00:30Z")
            .unwrap()
            .with_timezone(&Utc)
    }

    fn node(id: &str, connected: bool, applied: u64, rejected: u64) -> DataPlaneStatus {
        DataPlaneStatus {
            node_id: id.into(),
            labels: [("zone".to_string(), "a".to_string())].into(),
            build_version: "0.1.0".into(),
            connected,
            applied_version: applied,
            applied_hash: "abc".into(),
            rejected_version: rejected,
            rejected_errors: if rejected > 0 {
                vec![ConfigError {
                    path: "servers[0].headers.X-Key".into(),
                    message: "environment variable MISSING is not set".into(),
                }]
            } else {
                Vec::new()
            },
            last_seen: "2026-11-24T12:00:25Z".into(),
            connected_since: "2026-11-24T11:00:00Z".into(),
            peer_address: "127.0.0.1:50000".into(),
        }
    }

    #[test]
    fn states() {
        assert_eq!(state(&node("a", true, 5, 0), 5), "converged");
        assert_eq!(state(&node("a", true, 4, 0), 5), "pending");
        assert_eq!(state(&node("a", true, 4, 5), 5), "rejected v5");
        // A later ACK supersedes an older NACK.
        assert_eq!(state(&node("a", true, 6, 5), 6), "converged");
        assert_eq!(state(&node("a", false, 5, 0), 5), "disconnected");
        assert_eq!(state(&node("a", true, 0, 0), 0), "converged");
    }

    #[test]
    fn table_with_errors_beneath() {
        let fleet = FleetStatusResponse {
            current_version: 5,
            data_planes: vec![
                node("dp-2", true, 4, 5),
                node("dp-1", true, 5, 0),
                node("dp-3", false, 0, 0),
            ],
        };
        assert_eq!(
            render(&fleet, ListFormat::Table, now()),
            "current version: 5\n\
             NODE   CONNECTED   VERSION   STATE          LAST-SEEN   LABELS   BUILD\n\
             dp-1   yes         5         converged      5s ago      zone=a   0.1.0\n\
             dp-2   yes         4         rejected v5    5s ago      zone=a   0.1.0\n\
             dp-3   no          -         disconnected   5s ago      zone=a   0.1.0\n\
             \n\
             dp-2 rejected version 5:\n  \
             servers[0].headers.X-Key: environment variable MISSING is not set\n"
        );
    }

    #[test]
    fn empty_fleet() {
        let fleet = FleetStatusResponse::default();
        assert_eq!(
            render(&fleet, ListFormat::Table, now()),
            "current version: none (nothing applied yet)\nno data planes have connected\n"
        );
    }

    #[test]
    fn json_has_the_contract_shape() {
        let fleet = FleetStatusResponse {
            current_version: 5,
            data_planes: vec![node("dp-2", true, 4, 5)],
        };
        let value: serde_json::Value =
            serde_json::from_str(&render(&fleet, ListFormat::Json, now())).unwrap();
        assert_eq!(
            value,
            serde_json::json!({
                "current_version": 5,
                "data_planes": [{
                    "node_id": "dp-2",
                    "labels": {"zone": "a"},
                    "build_version": "0.1.0",
                    "connected": true,
                    "applied_version": 4,
                    "applied_hash": "abc",
                    "rejected_version": 5,
                    "rejected_errors": [{
                        "path": "servers[0].headers.X-Key",
                        "message": "environment variable MISSING is not set"
                    }],
                    "last_seen": "2026-11-24T12:00:25Z",
                    "connected_since": "2026-11-24T11:00:00Z",
                    "peer_address": "127.0.0.1:50000"
                }]
            })
        );
    }
}
