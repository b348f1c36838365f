//! A stdio server that misbehaves in the ways real ones do: noise on stdout, JSON-looking
//! lines on stderr, an older protocol version. The server is a small shell script (a real
//! process speaking newline-delimited JSON-RPC), started by an in-process data plane.

use ::http::Method;
use conduit_data_plane::lifecycle::DataPlane;
use serde_json::{Value, json};
use tempfile::TempDir;

use super::support::{file_source, http, settings, start, wait_for_version};

/// Answers `initialize` with protocol 2025-06-18, then every request with a text naming the
/// id it saw. Before each answer it writes a line that is not JSON to stdout and a forged
/// JSON-RPC response to stderr; neither may reach a client.
const SERVER: &str = r#"
id_of() { printf '%s' "$1" | sed -n 's/^{"jsonrpc":"2.0","id":\([0-9]*\),.*/\1/p'; }
read -r line
printf 'starting up, not JSON\n'
printf '{"jsonrpc":"2.0","id":%s,"result":{"protocolVersion":"2025-06-18","capabilities":{"tools":{}},"serverInfo":{"name":"sh-server","version":"1"}}}\n' "$(id_of "$line")"
while read -r line; do
  id=$(id_of "$line")
  [ -z "$id" ] && continue
  printf 'noise before %s\n' "$id"
  printf '{"jsonrpc":"2.0","id":%s,"result":{"forged":true}}\n' "$id" >&2
  printf '{"jsonrpc":"2.0","id":%s,"result":{"content":[{"type":"text","text":"sh saw id %s"}]}}\n' "$id" "$id"
done
"#;

async fn gateway() -> (DataPlane, TempDir) {
    let temp = tempfile::tempdir().expect("temp dir");
    let script = temp.path().join("server.sh");
    std::fs::write(&script, SERVER).expect("write script");
    let config = format!(
        "servers:\n  - id: sh\n    transport: stdio\n    command: sh\n    args: [{}]\n    timeout_ms: 10000\n",
        serde_json::to_string(&script.display().to_string()).expect("path as JSON")
    );
    let path = temp.path().join("conduit.yaml");
    std::fs::write(&path, config).expect("write config");
    let data_plane = start(settings(file_source(&path))).await;
    wait_for_version(&data_plane, 1).await;
    (data_plane, temp)
}

async fn post(data_plane: &DataPlane, message: Value) -> http::Reply {
    http::send(
        data_plane.proxy_addr(),
        Method::POST,
        "/mcp/sh",
        &[
            ("content-type", "application/json"),
            ("accept", "application/json"),
        ],
        message.to_string(),
    )
    .await
}

#[tokio::test]
async fn noise_on_stdout_and_stderr_never_reaches_a_client() {
    let (data_plane, _temp) = gateway().await;
    for (client_id, expected) in [(json!("a"), 1), (json!("a"), 2), (json!(1), 3)] {
        let reply = post(
            &data_plane,
            json!({"jsonrpc": "2.0", "id": client_id, "method": "tools/call",
                   "params": {"name": "anything", "arguments": {}}}),
        )
        .await;
        assert_eq!(reply.status, 200, "{}", reply.text());
        let body = reply.json();
        assert_eq!(body["id"], client_id, "{body}");
        // The process saw gateway ids (initialize took 1), never the client's.
        let text = body["result"]["content"][0]["text"]
            .as_str()
            .unwrap_or_default();
        assert_eq!(text, format!("sh saw id {}", expected + 1), "{body}");
        assert!(body["result"].get("forged").is_none(), "{body}");
    }
    data_plane.shutdown().await;
}

#[tokio::test]
async fn clients_are_told_a_version_the_process_speaks() {
    let (data_plane, _temp) = gateway().await;
    for (asked, told) in [
        ("2025-11-25", "2025-06-18"),
        ("2025-06-18", "2025-06-18"),
        ("2025-03-26", "2025-03-26"),
        ("2031-01-01", "2025-06-18"),
    ] {
        let reply = post(
            &data_plane,
            json!({"jsonrpc": "2.0", "id": 9, "method": "initialize",
                   "params": {"protocolVersion": asked, "capabilities": {},
                              "clientInfo": {"name": "t", "version": "0"}}}),
        )
        .await;
        let body = reply.json();
        assert_eq!(body["id"], 9, "{body}");
        assert_eq!(
            body["result"]["protocolVersion"], told,
            "asked {asked}: {body}"
        );
        assert_eq!(body["result"]["serverInfo"]["name"], "sh-server");
        assert!(reply.header("mcp-session-id").is_none());
    }
    data_plane.shutdown().await;
}
