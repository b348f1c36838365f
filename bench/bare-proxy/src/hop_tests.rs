//! The hop against a real upstream on 127.0.0.1: a hyper server that answers with the
//! body it got, wrapped in JSON with spaces, so both directions' re-serialization shows.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use super::*;

/// An upstream at `/mcp`; counts the connections it accepted. A body `not json` is
/// answered with text that is not JSON; an empty body with 202 and no body.
async fn upstream() -> (Uri, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let connections = Arc::new(AtomicUsize::new(0));
    let counted = connections.clone();
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            counted.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service_fn(answer))
                    .await;
            });
        }
    });
    let uri = format!("http://{addr}/mcp").parse().unwrap();
    (uri, connections)
}

async fn answer(request: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let accept = request.headers().get(header::ACCEPT).cloned();
    let body = request.into_body().collect().await.unwrap().to_bytes();
    let mut response = if body.as_ref() == b"\"not json upstream\"" {
        Response::new(Full::new(Bytes::from_static(b"<html>")))
    } else {
        let text = String::from_utf8(body.to_vec()).unwrap();
        let accept = accept.map(|value| value.to_str().unwrap().to_owned());
        let json = format!(
            "{{ \"got\" : {text} , \"accept\" : {} }}",
            serde_json::to_string(&accept).unwrap()
        );
        Response::new(Full::new(Bytes::from(json)))
    };
    *response.status_mut() = StatusCode::CREATED;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    Ok(response)
}

fn post(body: &'static str) -> Request<Full<Bytes>> {
    Request::builder()
        .method(Method::POST)
        .uri("/anything")
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::ACCEPT, "application/json, text/event-stream")
        .body(Full::new(Bytes::from_static(body.as_bytes())))
        .unwrap()
}

async fn text(response: Response<Full<Bytes>>) -> String {
    let body = response.into_body().collect().await.unwrap().to_bytes();
    String::from_utf8(body.to_vec()).unwrap()
}

#[test]
fn reencode_writes_the_same_json_compactly_and_refuses_other_text() {
    assert_eq!(
        reencode(br#"{ "b" : 1, "a" : [ 2 , "x" ] }"#).as_deref(),
        Some(&br#"{"b":1,"a":[2,"x"]}"#[..])
    );
    assert_eq!(reencode(b"{no"), None);
    assert_eq!(reencode(b""), None);
}

#[tokio::test]
async fn forwards_parsed_json_both_ways_over_one_pooled_connection() {
    let (uri, connections) = upstream().await;
    let hop = Hop::new(uri);
    for id in 0..5 {
        let response = hop
            .handle(post(if id % 2 == 0 {
                r#"{ "jsonrpc" : "2.0", "id" : 1 }"#
            } else {
                r#"{"jsonrpc":"2.0",  "id":1}"#
            }))
            .await;
        assert_eq!(response.status(), StatusCode::CREATED);
        assert_eq!(
            response.headers().get(header::CONTENT_TYPE).unwrap(),
            "application/json"
        );
        assert_eq!(
            text(response).await,
            r#"{"got":{"jsonrpc":"2.0","id":1},"accept":"application/json, text/event-stream"}"#
        );
    }
    assert_eq!(connections.load(Ordering::SeqCst), 1, "keep-alive pool");
}

#[tokio::test]
async fn refuses_what_is_not_json_either_way() {
    let (uri, _) = upstream().await;
    let hop = Hop::new(uri);
    let response = hop.handle(post("{not json")).await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let response = hop.handle(post(r#""not json upstream""#)).await;
    assert_eq!(response.status(), StatusCode::BAD_GATEWAY);
    let mut get = post("{}");
    *get.method_mut() = Method::GET;
    assert_eq!(
        hop.handle(get).await.status(),
        StatusCode::METHOD_NOT_ALLOWED
    );
}

#[tokio::test]
async fn an_upstream_that_is_gone_is_a_bad_gateway() {
    // A port that was free a moment ago: nothing listens there.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let hop = Hop::new(format!("http://{addr}/mcp").parse().unwrap());
    assert_eq!(
        hop.handle(post("{}")).await.status(),
        StatusCode::BAD_GATEWAY
    );
}
