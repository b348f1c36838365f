use std::net::SocketAddr;
use std::time::Duration;

use http_body_util::BodyExt as _;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpListener;
use tokio::sync::oneshot;

use super::*;
use crate::balancer::ReplicaSet;
use crate::upstream::upstream_client;

/// A server's static headers.
fn fixed() -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert("x-api-key", HeaderValue::from_static("k"));
    headers.insert("accept", HeaderValue::from_static("application/json"));
    headers
}

#[test]
fn plain_http_host_is_what_the_client_would_send() {
    let host = |url: &str| plain_http_host(&url.parse().unwrap());
    assert_eq!(host("http://127.0.0.1:3001/mcp").unwrap(), "127.0.0.1:3001");
    assert_eq!(host("http://user:pw@mcp.local/mcp").unwrap(), "mcp.local");
    assert_eq!(host("http://mcp.local:80/mcp").unwrap(), "mcp.local");
    assert_eq!(host("http://[::1]:8080/").unwrap(), "[::1]:8080");
    assert!(host("https://mcp.example.com/mcp").is_none());
}

#[test]
fn forwards_mcp_headers_and_guards_authorization() {
    let mut incoming = HeaderMap::new();
    for (name, value) in [
        ("content-type", "application/json"),
        ("accept", "text/event-stream"),
        ("mcp-session-id", "s1"),
        ("mcp-protocol-version", "2025-11-25"),
        ("mcp-method", "tools/call"),
        (
            "traceparent",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        ),
        ("authorization", "Bearer caller"),
        ("cookie", "session=1"),
        ("host", "gateway"),
    ] {
        incoming.insert(name, HeaderValue::from_static(value));
    }

    let headers = upstream_headers(&incoming, &fixed(), false);
    assert_eq!(headers["content-type"], "application/json");
    assert_eq!(headers["mcp-session-id"], "s1");
    assert_eq!(headers["mcp-protocol-version"], "2025-11-25");
    assert_eq!(headers["mcp-method"], "tools/call");
    assert!(headers.contains_key("traceparent"));
    assert_eq!(headers["x-api-key"], "k");
    // Static headers win over the caller's.
    assert_eq!(headers["accept"], "application/json");
    for dropped in ["authorization", "cookie", "host"] {
        assert!(!headers.contains_key(dropped), "{dropped} was forwarded");
    }

    let headers = upstream_headers(&incoming, &fixed(), true);
    assert_eq!(headers["authorization"], "Bearer caller");
}

#[test]
fn request_headers_keep_the_paths_own_and_add_only_what_is_selected() {
    let mut caller = HeaderMap::new();
    caller.insert("mcp-param-region", HeaderValue::from_static("eu"));
    caller.insert("mcp-session-id", HeaderValue::from_static("gateway-token"));
    caller.insert("authorization", HeaderValue::from_static("Bearer caller"));
    let mut own = HeaderMap::new();
    own.insert("mcp-session-id", HeaderValue::from_static("member-1"));
    own.insert("accept", HeaderValue::from_static("text/event-stream"));
    let arguments = |name: &HeaderName| name.as_str().starts_with("mcp-param-");

    let headers = request_headers(own.clone(), &caller, arguments, &fixed(), false);
    assert_eq!(headers["mcp-session-id"], "member-1");
    assert_eq!(headers["mcp-param-region"], "eu");
    assert_eq!(headers["x-api-key"], "k");
    assert_eq!(headers["accept"], "application/json");
    assert!(!headers.contains_key("authorization"));

    let headers = request_headers(own, &caller, |_| false, &fixed(), true);
    assert_eq!(headers["authorization"], "Bearer caller");
    assert!(!headers.contains_key("mcp-param-region"));
}

/// Two replicas of a server (two paths of `addr`).
fn two_replicas(addr: SocketAddr) -> ReplicaSet {
    let endpoint = |path: &str| {
        let url = format!("http://{addr}{path}");
        (url.clone(), url.parse().unwrap())
    };
    ReplicaSet::new("s", vec![endpoint("/a"), endpoint("/b")], None)
}

/// Time given to an upstream that answers.
const TIMEOUT: Duration = Duration::from_secs(5);

/// A server that answers one request with `answer` and hands back the request's head.
async fn answer_once(answer: &'static str) -> (SocketAddr, oneshot::Receiver<String>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (heard, head) = oneshot::channel();
    tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.unwrap();
        let mut received = Vec::new();
        let mut buffer = [0; 1024];
        while !received.windows(4).any(|w| w == b"\r\n\r\n") {
            let read = stream.read(&mut buffer).await.unwrap();
            assert!(read > 0, "the request head ended early");
            received.extend_from_slice(&buffer[..read]);
        }
        let _ = heard.send(String::from_utf8_lossy(&received).into_owned());
        stream.write_all(answer.as_bytes()).await.unwrap();
        // Keep the connection as the client's pool would find it.
        let _ = stream.read(&mut buffer).await;
    });
    (addr, head)
}

#[tokio::test]
async fn an_answer_holds_its_replica_until_its_body_ends() {
    let (addr, head) = answer_once("HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok").await;
    let replicas = two_replicas(addr);
    let pinned = format!("http://{addr}/b");
    let exchange = Exchange::pick(&replicas, Some(&pinned)).unwrap();
    assert_eq!(exchange.uri().path(), "/b");
    let mut headers = HeaderMap::new();
    headers.insert("x-own", HeaderValue::from_static("1"));
    let deadline = Instant::now() + TIMEOUT;
    let answered = exchange
        .send(
            &upstream_client(),
            Method::GET,
            headers,
            Bytes::new(),
            deadline,
        )
        .await
        .unwrap();

    let head = head.await.unwrap().to_ascii_lowercase();
    assert!(head.starts_with("get /b http/1.1\r\n"), "{head}");
    assert!(head.contains(&format!("\r\nhost: {addr}\r\n")), "{head}");
    assert!(head.contains("\r\nx-own: 1\r\n"), "{head}");
    assert_eq!(answered.response.status(), StatusCode::OK);
    // With two replicas the one that answered is named, so a session can stay on it.
    assert_eq!(answered.lease.replica(), Some(pinned.as_str()));

    let replica = &replicas.replicas()[1];
    let response = answered.lease.hold(answered.response);
    assert_eq!(replica.in_flight(), 1);
    let body = response.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(&body[..], b"ok");
    assert_eq!(replica.in_flight(), 0);
}

#[tokio::test]
async fn failures_are_typed() {
    let one = ReplicaSet::new(
        "s",
        vec![(
            "http://127.0.0.1:1/mcp".into(),
            "http://127.0.0.1:1/mcp".parse().unwrap(),
        )],
        None,
    );
    let removed = Exchange::pick(&one, Some("http://127.0.0.1:2/gone")).unwrap_err();
    assert!(
        matches!(removed, ExchangeError::NoReplica(_)),
        "{removed:?}"
    );
    assert_eq!(removed.status(), StatusCode::NOT_FOUND);

    // A port nobody listens on any more.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let closed = two_replicas(addr);
    let exchange = Exchange::pick(&closed, None).unwrap();
    let deadline = Instant::now() + TIMEOUT;
    let client = upstream_client();
    let sent = exchange.send(
        &client,
        Method::POST,
        HeaderMap::new(),
        Bytes::from_static(b"{}"),
        deadline,
    );
    let failure = sent.await.unwrap_err();
    let ExchangeError::Unreachable { cause } = &failure else {
        panic!("{failure:?}");
    };
    assert!(!cause.is_empty());
    assert_eq!(failure.status(), StatusCode::BAD_GATEWAY);
    assert_eq!(failure.span_reason(), "unreachable");
    let in_flight: usize = closed.replicas().iter().map(|r| r.in_flight()).sum();
    assert_eq!(in_flight, 0);
}

#[tokio::test(start_paused = true)]
async fn no_head_by_the_deadline_is_a_timeout() {
    // A server that takes the connection and never answers.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.unwrap();
        let mut buffer = [0; 1024];
        while stream.read(&mut buffer).await.is_ok_and(|read| read > 0) {}
    });
    let silent = two_replicas(addr);
    let exchange = Exchange::pick(&silent, None).unwrap();
    let deadline = Instant::now() + Duration::from_secs(1);
    let client = upstream_client();
    let sent = exchange.send(
        &client,
        Method::GET,
        HeaderMap::new(),
        Bytes::new(),
        deadline,
    );
    let failure = sent.await.unwrap_err();
    assert!(matches!(failure, ExchangeError::TimedOut), "{failure:?}");
    assert_eq!(failure.status(), StatusCode::GATEWAY_TIMEOUT);
    assert_eq!(failure.span_reason(), "timeout");
}
