//! The fixture as MCP clients see it: over stdio (the real binary) and over streamable
//! HTTP (the axum router on an ephemeral port).
#![forbid(unsafe_code)]

use std::io::{BufRead as _, BufReader, Write as _};
use std::process::{Command, Stdio};

use conduit_e2e::mcp::McpClient;
use serde_json::{Value, json};

#[test]
fn stdio_session_lists_and_calls_everything() -> anyhow::Result<()> {
    let mut child = Command::new(env!("CARGO_BIN_EXE_conduit-mcp-fixture"))
        .arg("--stdio")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()?;
    let mut stdin = child.stdin.take().expect("stdin");
    let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
    let mut call = |id: u64, method: &str, params: Value| -> anyhow::Result<Value> {
        let request = json!({ "jsonrpc": "2.0", "id": id, "method": method, "params": params });
        writeln!(stdin, "{request}")?;
        if method == "initialize" {
            writeln!(
                stdin,
                "{}",
                json!({ "jsonrpc": "2.0", "method": "notifications/initialized" })
            )?;
        }
        let mut line = String::new();
        stdout.read_line(&mut line)?;
        let response: Value = serde_json::from_str(&line)?;
        assert_eq!(response["id"], json!(id), "{response}");
        Ok(response["result"].clone())
    };

    let init = call(
        1,
        "initialize",
        json!({ "protocolVersion": "2025-11-25", "capabilities": {},
                "clientInfo": { "name": "t", "version": "0" } }),
    )?;
    assert_eq!(init["serverInfo"]["name"], json!("conduit-mcp-fixture"));
    for capability in ["tools", "resources", "prompts"] {
        assert!(init["capabilities"].get(capability).is_some(), "{init}");
    }

    let tools = call(2, "tools/list", json!({}))?;
    let names: Vec<&str> = tools["tools"]
        .as_array()
        .expect("tools")
        .iter()
        .filter_map(|t| t["name"].as_str())
        .collect();
    for basic in ["add", "echo", "echo_headers", "sleep"] {
        assert!(names.contains(&basic), "{basic} missing from {names:?}");
    }

    let sum = call(
        3,
        "tools/call",
        json!({ "name": "add", "arguments": { "a": 2, "b": 3 } }),
    )?;
    assert_eq!(sum["content"][0]["text"], json!("5"));
    let echo = call(
        4,
        "tools/call",
        json!({ "name": "echo", "arguments": { "message": "hi" } }),
    )?;
    assert_eq!(echo["content"][0]["text"], json!("hi"));
    // No HTTP request behind a stdio call: no headers to report.
    let headers = call(
        5,
        "tools/call",
        json!({ "name": "echo_headers", "arguments": {} }),
    )?;
    assert_eq!(headers["content"][0]["text"], json!("{}"));

    let resource = call(6, "resources/read", json!({ "uri": "fixture://greeting" }))?;
    assert_eq!(
        resource["contents"][0]["text"],
        json!("Hello from the Conduit MCP fixture.")
    );
    let prompt = call(
        7,
        "prompts/get",
        json!({ "name": "greeting", "arguments": { "name": "Ada" } }),
    )?;
    assert_eq!(
        prompt["messages"][0]["content"]["text"],
        json!("Please greet Ada warmly.")
    );

    drop(stdin);
    let status = child.wait()?;
    assert!(status.success(), "{status}");
    Ok(())
}

#[test]
fn streamable_http_session_reports_request_headers() -> anyhow::Result<()> {
    let runtime = tokio::runtime::Runtime::new()?;
    let listener = runtime.block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))?;
    let addr = listener.local_addr()?;
    let shutdown = tokio_util::sync::CancellationToken::new();
    let server = runtime.spawn(conduit_mcp_fixture::transport::serve_http(
        listener,
        shutdown.clone(),
    ));

    let mut client = McpClient::new(format!("http://{addr}/mcp")).with_header("X-Probe", "seen");
    client.initialize()?;
    assert!(client.session_id().is_some());
    let names = client.list_tools()?;
    for basic in ["add", "echo", "echo_headers", "sleep"] {
        assert!(
            names.iter().any(|name| name == basic),
            "{basic} missing from {names:?}"
        );
    }
    let headers: Value = serde_json::from_str(&client.call_tool_text("echo_headers", json!({}))?)?;
    assert_eq!(headers["x-probe"], json!("seen"), "{headers}");
    let resources = client.request("resources/list", json!({}))?;
    assert_eq!(resources["resources"].as_array().map(Vec::len), Some(5));

    shutdown.cancel();
    runtime.block_on(server)??;
    Ok(())
}
