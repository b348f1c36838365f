//! The MCP handshake: the gateway's own `initialize` with each process it starts, and the
//! answer every client's `initialize` gets from what the process said.
//!
//! # The protocol version a client is told
//! The process speaks the version it negotiated with the gateway (at most
//! [`PROTOCOL_VERSION`]). A client asking for a version the gateway knows that is not newer
//! gets its own version back: MCP revisions only add fields and messages, so a client
//! reading an older revision's subset understands the process's messages, and the process
//! supports everything that client may send. A client asking for a newer or unknown
//! version gets the process's version, as any MCP server answers a version it cannot
//! serve; the client then decides whether it can go on.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::time::Instant;

use super::Principal;
use super::connection::{Connection, Failure, Outcome};
use super::remap;

/// The newest protocol version the gateway asks a process for.
pub(super) const PROTOCOL_VERSION: &str = "2025-11-25";

/// Every protocol version with an `initialize` handshake, oldest first.
const HANDSHAKE_VERSIONS: [&str; 4] = ["2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25"];

/// What the process answered the gateway's `initialize` with.
#[derive(Debug, Clone)]
pub struct Initialized {
    /// The `InitializeResult`, kept whole (capabilities, serverInfo, instructions, ...).
    pub result: Value,
    /// Its `protocolVersion`.
    pub protocol_version: String,
}

/// `initialize` the process on `connection`, then send `notifications/initialized`.
pub(super) async fn initialize(
    connection: &Arc<Connection>,
    timeout: Duration,
) -> Result<Initialized, String> {
    let deadline = Instant::now() + timeout;
    let mut request = json!({
        "jsonrpc": "2.0",
        "id": 0,
        "method": "initialize",
        "params": {
            "protocolVersion": PROTOCOL_VERSION,
            // Declared for the clients behind the gateway, whose requests the gateway relays.
            "capabilities": {
                "roots": {"listChanged": true},
                "sampling": {},
                "elicitation": {},
            },
            "clientInfo": {"name": "conduit", "version": env!("CARGO_PKG_VERSION")},
        },
    });
    let call = connection
        .register(&mut request, None, &Principal::gateway())
        .map_err(|failure| failure.message)?;
    connection
        .send(remap::line(&request), deadline)
        .await
        .map_err(|failure: Failure| failure.message)?;
    let answer = match tokio::time::timeout_at(deadline, call.done).await {
        Ok(Ok(Outcome::Answer(answer))) => answer,
        Ok(Ok(Outcome::Failed(failure))) => return Err(failure.message),
        Ok(Ok(Outcome::Cancelled)) | Ok(Err(_)) => return Err("initialize was abandoned".into()),
        Err(_) => {
            return Err(format!(
                "no answer to initialize within {}",
                humantime::format_duration(timeout)
            ));
        }
    };
    let initialized = accept(answer)?;
    let notification = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
    connection
        .send(remap::line(&notification), deadline)
        .await
        .map_err(|failure| failure.message)?;
    Ok(initialized)
}

/// The `InitializeResult` of an answer, or why the process refused.
fn accept(answer: Value) -> Result<Initialized, String> {
    if let Some(error) = answer.get("error") {
        return Err(format!("initialize failed: {error}"));
    }
    let result = answer.get("result").cloned().unwrap_or(Value::Null);
    let Some(protocol_version) = result.get("protocolVersion").and_then(Value::as_str) else {
        return Err(format!(
            "the answer to initialize has no protocolVersion: {result}"
        ));
    };
    Ok(Initialized {
        protocol_version: protocol_version.to_owned(),
        result,
    })
}

/// The gateway's answer to a client's `initialize` request.
pub(super) fn answer(initialized: &Initialized, request: &Value) -> Value {
    let requested = remap::param(request, "protocolVersion").and_then(Value::as_str);
    let mut result = initialized.result.clone();
    if let Some(object) = result.as_object_mut() {
        let version = client_version(requested, &initialized.protocol_version);
        object.insert("protocolVersion".into(), version.into());
    }
    remap::result(remap::id(request), result)
}

/// The protocol version a client is told (see the module doc).
pub(super) fn client_version<'a>(requested: Option<&'a str>, negotiated: &'a str) -> &'a str {
    match requested {
        // Versions are dates, so their text orders them.
        Some(requested) if HANDSHAKE_VERSIONS.contains(&requested) && requested <= negotiated => {
            requested
        }
        _ => negotiated,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_gets_its_version_unless_the_process_speaks_an_older_one() {
        assert_eq!(
            client_version(Some("2025-11-25"), "2025-11-25"),
            "2025-11-25"
        );
        assert_eq!(
            client_version(Some("2025-03-26"), "2025-11-25"),
            "2025-03-26"
        );
        assert_eq!(
            client_version(Some("2024-11-05"), "2025-06-18"),
            "2024-11-05"
        );
        // Newer than the process: the process's version.
        assert_eq!(
            client_version(Some("2025-11-25"), "2025-06-18"),
            "2025-06-18"
        );
        // Unknown, handshake-less or missing: the process's version.
        assert_eq!(
            client_version(Some("2026-07-28"), "2025-11-25"),
            "2025-11-25"
        );
        assert_eq!(
            client_version(Some("1999-01-01"), "2025-11-25"),
            "2025-11-25"
        );
        assert_eq!(client_version(Some("latest"), "2025-11-25"), "2025-11-25");
        assert_eq!(client_version(None, "2025-11-25"), "2025-11-25");
    }

    #[test]
    fn answer_keeps_the_processs_result_with_the_clients_id() {
        let initialized = accept(json!({
            "jsonrpc": "2.0", "id": 0,
            "result": {
                "protocolVersion": "2025-11-25",
                "capabilities": {"tools": {"listChanged": true}},
                "serverInfo": {"name": "fixture", "version": "1"},
                "instructions": "hello",
            }
        }))
        .expect("valid");
        let request = json!({
            "jsonrpc": "2.0", "id": "init-1", "method": "initialize",
            "params": {"protocolVersion": "2025-06-18", "capabilities": {},
                       "clientInfo": {"name": "c", "version": "0"}}
        });
        assert_eq!(
            answer(&initialized, &request),
            json!({
                "jsonrpc": "2.0", "id": "init-1",
                "result": {
                    "protocolVersion": "2025-06-18",
                    "capabilities": {"tools": {"listChanged": true}},
                    "serverInfo": {"name": "fixture", "version": "1"},
                    "instructions": "hello",
                }
            })
        );
    }

    #[test]
    fn refusals_are_reported() {
        let refused = accept(json!({"id": 0, "error": {"code": -32602, "message": "nope"}}));
        assert!(refused.unwrap_err().contains("nope"));
        let odd = accept(json!({"id": 0, "result": {"capabilities": {}}}));
        assert!(odd.unwrap_err().contains("protocolVersion"));
    }
}
