//! The public `/mcp/{server_id}` pass-through against a real HTTP upstream.

use std::time::Duration;

use ::http::Method;
use bytes::Bytes;
use conduit_data_plane::lifecycle::DataPlane;
use http_body_util::BodyExt;
use serde_json::json;
use tempfile::TempDir;

use super::support::upstream::{SESSION_ID, Upstream, dead_url};
use super::support::{file_source, http, settings, start, wait_for_version};

/// A standalone data plane serving `servers` (YAML list items).
async fn gateway(servers: &str) -> (DataPlane, TempDir) {
    let temp = tempfile::tempdir().expect("temp dir");
    let path = temp.path().join("conduit.yaml");
    std::fs::write(&path, format!("servers:\n{servers}")).expect("write config");
    let data_plane = start(settings(file_source(&path))).await;
    wait_for_version(&data_plane, 1).await;
    (data_plane, temp)
}

fn http_server(id: &str, url: &str, extra: &str) -> String {
    format!("  - id: {id}\n    url: {url}\n{extra}")
}

/// A session on `/mcp/{server}`: the token the data plane hands out for the upstream's
/// session id.
async fn open_session(addr: std::net::SocketAddr, server: &str) -> String {
    let reply = http::post_mcp(
        addr,
        server,
        &[],
        json!({"jsonrpc": "2.0", "id": 1, "method": "initialize"}),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let token = reply.header("mcp-session-id").expect("a session token");
    assert!(token.starts_with("c1."), "{token}");
    assert!(
        !token.contains(SESSION_ID),
        "the upstream id leaked: {token}"
    );
    token.to_owned()
}

#[tokio::test]
async fn json_pass_through_forwards_mcp_headers_but_not_authorization() {
    let upstream = Upstream::start().await;
    let (data_plane, _temp) = gateway(&http_server(
        "alpha",
        &upstream.url(),
        "    headers:\n      X-Api-Key: k-123\n",
    ))
    .await;
    let token = open_session(data_plane.proxy_addr(), "alpha").await;

    let reply = http::post_mcp(
        data_plane.proxy_addr(),
        "alpha",
        &[
            ("authorization", "Bearer caller-secret"),
            ("mcp-session-id", &token),
            ("mcp-protocol-version", "2025-11-25"),
            ("mcp-method", "tools/call"),
            ("mcp-name", "echo"),
            (
                "traceparent",
                "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            ),
            ("cookie", "private=1"),
        ],
        // The routing headers travel when the body confirms them (`routing_headers`).
        json!({"jsonrpc": "2.0", "id": 5, "method": "tools/call", "params": {"name": "echo"}}),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(reply.header("content-type"), Some("application/json"));
    // The upstream keeps its session, so the client keeps its token.
    assert_eq!(reply.header("mcp-session-id"), Some(token.as_str()));
    assert_eq!(reply.header("x-conduit-server-id"), Some("alpha"));
    assert_eq!(reply.header("x-upstream-internal"), None);

    let body = reply.json();
    assert_eq!(body["id"], 5);
    let seen = &body["result"]["headers"];
    assert_eq!(seen["x-api-key"], "k-123");
    assert_eq!(seen["mcp-session-id"], SESSION_ID);
    assert_eq!(seen["mcp-protocol-version"], "2025-11-25");
    assert_eq!(seen["mcp-method"], "tools/call");
    assert_eq!(seen["mcp-name"], "echo");
    assert_eq!(seen["content-type"], "application/json");
    assert_eq!(seen["accept"], "application/json, text/event-stream");
    assert!(seen["traceparent"].is_string(), "{seen}");
    assert!(
        seen["authorization"].is_null(),
        "authorization leaked: {seen}"
    );
    assert!(seen["cookie"].is_null(), "cookie leaked: {seen}");
    data_plane.shutdown().await;
}

#[tokio::test]
async fn authorization_is_forwarded_when_the_server_opts_in() {
    let upstream = Upstream::start().await;
    let (data_plane, _temp) = gateway(&http_server(
        "alpha",
        &upstream.url(),
        "    forward_authorization: true\n",
    ))
    .await;
    let reply = http::post_mcp(
        data_plane.proxy_addr(),
        "alpha",
        &[("authorization", "Bearer caller-secret")],
        json!({"jsonrpc": "2.0", "id": 1, "method": "ping"}),
    )
    .await;
    assert_eq!(
        reply.json()["result"]["headers"]["authorization"],
        "Bearer caller-secret"
    );
    data_plane.shutdown().await;
}

#[tokio::test]
async fn sse_is_streamed_as_it_arrives() {
    let upstream = Upstream::start().await;
    let (data_plane, _temp) = gateway(&http_server("alpha", &upstream.url(), "")).await;

    let response = http::send_streaming(
        data_plane.proxy_addr(),
        Method::POST,
        "/mcp/alpha",
        &[
            ("content-type", "application/json"),
            ("accept", "application/json, text/event-stream"),
        ],
        json!({"jsonrpc": "2.0", "id": 77, "method": "test/stream"}).to_string(),
    )
    .await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let token = response.headers()["mcp-session-id"].to_str().unwrap();
    assert!(token.starts_with("c1."), "{token}");
    let mut body = response.into_body();

    // The first event arrives while the upstream still holds back the second.
    let first = next_chunk(&mut body).await;
    assert!(first.contains("notifications/progress"), "{first}");
    upstream.release.notify_one();
    let mut rest = String::new();
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame.expect("frame").into_data() {
            rest.push_str(&String::from_utf8_lossy(&data));
        }
    }
    assert!(rest.contains("\"id\":77"), "{rest}");
    data_plane.shutdown().await;
}

#[tokio::test]
async fn timeout_ends_a_slow_event_stream_with_an_error_for_the_request() {
    // The upstream answers at once with an event stream and then holds back the result:
    // `timeout_ms` must still end the exchange, with a JSON-RPC error carrying the id.
    let upstream = Upstream::start().await;
    let (data_plane, _temp) = gateway(&http_server(
        "alpha",
        &upstream.url(),
        "    timeout_ms: 300\n",
    ))
    .await;

    let started = std::time::Instant::now();
    let response = http::send_streaming(
        data_plane.proxy_addr(),
        Method::POST,
        "/mcp/alpha",
        &[
            ("content-type", "application/json"),
            ("accept", "application/json, text/event-stream"),
        ],
        json!({"jsonrpc": "2.0", "id": 78, "method": "test/stream"}).to_string(),
    )
    .await;
    assert_eq!(response.status(), 200);
    let mut body = response.into_body();
    let mut text = String::new();
    while let Some(frame) = tokio::time::timeout(Duration::from_secs(5), body.frame())
        .await
        .expect("the stream ends at the deadline")
    {
        if let Ok(data) = frame.expect("frame").into_data() {
            text.push_str(&String::from_utf8_lossy(&data));
        }
    }
    assert!(started.elapsed() < Duration::from_secs(4), "{text}");
    assert!(text.contains("notifications/progress"), "{text}");
    let last = text
        .trim_end()
        .rsplit("\n\n")
        .next()
        .and_then(|event| event.lines().find_map(|line| line.strip_prefix("data: ")))
        .expect("a final data line");
    let error: serde_json::Value = serde_json::from_str(last).expect("json");
    assert_eq!(error["id"], 78, "{error}");
    assert_eq!(error["error"]["code"], -32603, "{error}");
    assert!(
        error["error"]["message"]
            .as_str()
            .unwrap()
            .contains("300ms"),
        "{error}"
    );
    data_plane.shutdown().await;
}

async fn next_chunk(body: &mut hyper::body::Incoming) -> String {
    let frame = tokio::time::timeout(Duration::from_secs(5), body.frame())
        .await
        .expect("first event streamed before the response completed")
        .expect("a frame")
        .expect("frame ok");
    String::from_utf8_lossy(&frame.into_data().expect("data")).into_owned()
}

#[tokio::test]
async fn get_and_delete_are_forwarded() {
    let upstream = Upstream::start().await;
    let (data_plane, _temp) = gateway(&http_server("alpha", &upstream.url(), "")).await;
    let token = open_session(data_plane.proxy_addr(), "alpha").await;
    for method in [Method::GET, Method::DELETE] {
        let reply = http::send(
            data_plane.proxy_addr(),
            method.clone(),
            "/mcp/alpha",
            &[("mcp-session-id", &token)],
            Bytes::new(),
        )
        .await;
        assert_eq!(reply.status, 200, "{method}: {}", reply.text());
        let body = reply.json();
        assert_eq!(body["result"]["http_method"], method.as_str());
        assert_eq!(body["result"]["headers"]["mcp-session-id"], SESSION_ID);
    }
    data_plane.shutdown().await;
}

#[tokio::test]
async fn a_session_token_that_does_not_open_gets_404_with_the_id() {
    let upstream = Upstream::start().await;
    let servers = [
        http_server("alpha", &upstream.url(), ""),
        http_server("beta", &upstream.url(), ""),
    ]
    .concat();
    let (data_plane, _temp) = gateway(&servers).await;
    let addr = data_plane.proxy_addr();
    let token = open_session(addr, "alpha").await;
    let mut tampered = token.clone().into_bytes();
    let at = tampered.len() / 2;
    tampered[at] = if tampered[at] == b'x' { b'y' } else { b'x' };
    let tampered = String::from_utf8(tampered).unwrap();

    // A raw upstream id, an altered token, and alpha's token on beta.
    for (server, session) in [
        ("alpha", SESSION_ID),
        ("alpha", tampered.as_str()),
        ("beta", token.as_str()),
    ] {
        let reply = http::post_mcp(
            addr,
            server,
            &[("mcp-session-id", session)],
            json!({"jsonrpc": "2.0", "id": 41, "method": "tools/list"}),
        )
        .await;
        assert_eq!(reply.status, 404, "{server} {session}: {}", reply.text());
        let body = reply.json();
        assert_eq!(body["id"], 41, "{body}");
        assert_eq!(body["error"]["code"], -32001, "{body}");
        assert_eq!(reply.header("x-conduit-server-id"), Some(server));
    }
    data_plane.shutdown().await;
}

#[tokio::test]
async fn gateway_errors_are_json_rpc_with_the_request_id() {
    let upstream = Upstream::start().await;
    let servers = [
        http_server("alpha", &upstream.url(), ""),
        http_server("dead", &dead_url().await, ""),
        http_server("slow", &upstream.url(), "    timeout_ms: 200\n"),
        "  - id: local\n    transport: stdio\n    command: /nonexistent/conduit-no-such-server\n"
            .to_owned(),
    ]
    .concat();
    let (data_plane, _temp) = gateway(&servers).await;
    let addr = data_plane.proxy_addr();
    let call = |id: i64, method: &str| json!({"jsonrpc": "2.0", "id": id, "method": method});

    let unknown = http::post_mcp(addr, "nope", &[], call(1, "ping")).await;
    assert_eq!(unknown.status, 404);
    assert_eq!(unknown.header("x-conduit-server-id"), None);
    let body = unknown.json();
    assert_eq!(body["jsonrpc"], "2.0");
    assert_eq!(body["id"], 1);
    assert_eq!(body["error"]["code"], -32601);
    assert!(
        body["error"]["message"].as_str().unwrap().contains("nope"),
        "{body}"
    );

    let dead = http::post_mcp(addr, "dead", &[], call(42, "ping")).await;
    assert_eq!(dead.status, 502, "{}", dead.text());
    assert_eq!(dead.json()["id"], 42);
    assert_eq!(dead.json()["error"]["code"], -32603);
    assert_eq!(dead.header("x-conduit-server-id"), Some("dead"));

    let started = tokio::time::Instant::now();
    let slow = http::post_mcp(addr, "slow", &[], call(43, "test/slow")).await;
    assert_eq!(slow.status, 504, "{}", slow.text());
    assert_eq!(slow.json()["id"], 43);
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );

    // A stdio server that keeps failing to start is refused at once, not waited for.
    let stdio = http::post_mcp(addr, "local", &[], call(44, "ping")).await;
    assert_eq!(stdio.status, 503, "{}", stdio.text());
    assert_eq!(stdio.json()["id"], 44);
    assert_eq!(stdio.json()["error"]["code"], -32603);
    assert!(
        stdio.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("cannot start"),
        "{}",
        stdio.text()
    );

    let not_json = http::send(addr, Method::POST, "/mcp/alpha", &[], "{oops").await;
    assert_eq!(not_json.status, 400);
    assert_eq!(not_json.json()["error"]["code"], -32700);

    let huge = http::send(
        addr,
        Method::POST,
        "/mcp/alpha",
        &[],
        vec![b' '; 10 * 1024 * 1024 + 1],
    )
    .await;
    assert_eq!(huge.status, 413);

    let elsewhere = http::get(addr, "/healthz").await;
    assert_eq!(elsewhere.status, 404);
    let put = http::send(addr, Method::PUT, "/mcp/alpha", &[], Bytes::new()).await;
    assert_eq!(put.status, 405);

    let metrics = http::get(data_plane.admin_addr(), "/metrics").await.text();
    for line in [
        "conduit_dp_requests_total{method=\"ping\",server=\"dead\",status_class=\"5xx\"} 1",
        "conduit_dp_requests_total{method=\"ping\",server=\"unknown\",status_class=\"4xx\"} 1",
        "conduit_dp_request_duration_seconds_count{server=\"slow\"} 1",
    ] {
        assert!(metrics.contains(line), "missing {line} in\n{metrics}");
    }
    data_plane.shutdown().await;
}

#[tokio::test]
async fn shutdown_drains_in_flight_requests() {
    let upstream = Upstream::start().await;
    let (data_plane, _temp) = gateway(&http_server("alpha", &upstream.url(), "")).await;
    let admin = data_plane.admin_addr();
    let response = http::send_streaming(
        data_plane.proxy_addr(),
        Method::POST,
        "/mcp/alpha",
        &[("content-type", "application/json")],
        json!({"jsonrpc": "2.0", "id": 8, "method": "test/stream"}).to_string(),
    )
    .await;
    let mut body = response.into_body();
    next_chunk(&mut body).await;

    let shutdown = tokio::spawn(data_plane.shutdown());
    // Draining: not ready any more, but the open stream is allowed to finish.
    super::support::eventually("readiness to drop", || async {
        (http::get(admin, "/readyz").await.status == 503).then_some(())
    })
    .await;
    assert!(!shutdown.is_finished());
    upstream.release.notify_one();
    let mut rest = String::new();
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame.expect("frame").into_data() {
            rest.push_str(&String::from_utf8_lossy(&data));
        }
    }
    assert!(rest.contains("\"id\":8"), "{rest}");
    tokio::time::timeout(Duration::from_secs(5), shutdown)
        .await
        .expect("shutdown completes after the drain")
        .expect("shutdown task");
}
