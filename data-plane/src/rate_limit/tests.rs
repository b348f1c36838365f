//! The limiter on the memory store, on paused time.

use std::sync::Arc;
use std::time::Duration;

use conduit_config::Document;
use futures_util::future::join_all;
use tokio::time::{Instant, advance};

use super::*;

const SERVERS: &str = "servers:\n  - {id: s, url: 'http://127.0.0.1:1/mcp'}\n  - {id: s2, url: 'http://127.0.0.1:2/mcp'}\n";

fn limiter_with(metrics: &Metrics, config: &str) -> RateLimiter {
    let document = Document::from_text(&format!("{SERVERS}{config}")).expect("valid document");
    RateLimiter::compile(&document, metrics).expect("compiles")
}

fn limiter(config: &str) -> RateLimiter {
    limiter_with(&Metrics::new(), config)
}

fn call<'a>(client: &'a str, server: &'a str, tool: &'a str) -> RateRequest<'a> {
    RateRequest {
        client_id: client,
        tenant_id: "default",
        server_id: Some(server),
        tool: Some(tool),
    }
}

/// How many of `n` calls pass, one after the other.
async fn passing(limiter: &RateLimiter, request: &RateRequest<'_>, n: usize) -> usize {
    let mut passed = 0;
    for _ in 0..n {
        passed += usize::from(limiter.check(request).await.is_ok());
    }
    passed
}

#[tokio::test(start_paused = true)]
async fn first_n_pass_then_the_next_is_refused_with_retry_after() {
    let metrics = Metrics::new();
    let limiter = limiter_with(
        &metrics,
        "rate_limits: {per_client: {requests_per_minute: 3}}\n",
    );
    let request = call("a", "s", "t");
    assert_eq!(passing(&limiter, &request, 3).await, 3);
    let refused = limiter.check(&request).await.unwrap_err();
    assert_eq!(
        refused,
        RateLimited {
            bucket: BucketKind::Client,
            window: Window::Minute,
            limit: 3,
            retry_after_secs: 60,
        }
    );
    assert_eq!(
        refused.to_string(),
        "rate limit exceeded: client/minute, retry after 60 s"
    );
    advance(Duration::from_millis(20_500)).await;
    // 39.5 s left, rounded up.
    assert_eq!(
        limiter.check(&request).await.unwrap_err().retry_after_secs,
        40
    );
    assert_eq!(
        metrics
            .rate_limit_rejections
            .with_label_values(&["client", "minute"])
            .get(),
        2
    );
}

#[tokio::test(start_paused = true)]
async fn windows_count_independently() {
    let limiter =
        limiter("rate_limits: {per_client: {requests_per_minute: 2, requests_per_hour: 3}}\n");
    let request = call("a", "s", "t");
    assert_eq!(passing(&limiter, &request, 2).await, 2);
    assert_eq!(
        limiter.check(&request).await.unwrap_err().window,
        Window::Minute
    );
    advance(Duration::from_secs(60)).await;
    // The minute has room again; the hour holds the two earlier requests and this one.
    assert!(limiter.check(&request).await.is_ok());
    let refused = limiter.check(&request).await.unwrap_err();
    assert_eq!((refused.window, refused.limit), (Window::Hour, 3));
    assert_eq!(refused.retry_after_secs, 3600 - 60);
}

#[tokio::test(start_paused = true)]
async fn clients_are_independent() {
    let limiter = limiter("rate_limits: {per_client: {requests_per_minute: 2}}\n");
    assert_eq!(passing(&limiter, &call("a", "s", "t"), 5).await, 2);
    assert_eq!(passing(&limiter, &call("b", "s", "t"), 5).await, 2);
    // An id with the key separator is its own client.
    assert_eq!(passing(&limiter, &call("a:b", "s", "t"), 5).await, 2);
}

#[tokio::test(start_paused = true)]
async fn a_server_limit_is_shared_by_its_tools_and_its_clients() {
    let limiter = limiter("rate_limits: {overrides: [{server: s, requests_per_minute: 3}]}\n");
    assert!(limiter.check(&call("a", "s", "one")).await.is_ok());
    assert!(limiter.check(&call("b", "s", "two")).await.is_ok());
    assert!(limiter.check(&call("a", "s", "three")).await.is_ok());
    let refused = limiter.check(&call("c", "s", "four")).await.unwrap_err();
    assert_eq!(refused.bucket, BucketKind::Server);
    // Another server is not limited.
    assert_eq!(passing(&limiter, &call("a", "s2", "one"), 10).await, 10);
}

#[tokio::test(start_paused = true)]
async fn a_per_tool_limit_is_stricter_than_its_server() {
    let limiter = limiter(
        "rate_limits: {overrides: [{server: s, requests_per_minute: 10, per_tool: {t: {requests_per_minute: 2}}}]}\n",
    );
    assert_eq!(passing(&limiter, &call("a", "s", "t"), 2).await, 2);
    let refused = limiter.check(&call("b", "s", "t")).await.unwrap_err();
    assert_eq!((refused.bucket, refused.limit), (BucketKind::Tool, 2));
    assert_eq!(passing(&limiter, &call("a", "s", "other"), 10).await, 8);
}

#[tokio::test(start_paused = true)]
async fn client_server_tool_is_its_own_setting() {
    let limiter = limiter(
        "rate_limits:\n  per_client_server_tool: {requests_per_minute: 1}\n  overrides: [{server: s, requests_per_minute: 100}]\n",
    );
    assert!(limiter.check(&call("a", "s", "t")).await.is_ok());
    let refused = limiter.check(&call("a", "s", "t")).await.unwrap_err();
    assert_eq!(
        (refused.bucket, refused.limit),
        (BucketKind::ClientServerTool, 1)
    );
    for other in [
        call("b", "s", "t"),
        call("a", "s", "u"),
        call("a", "s2", "t"),
    ] {
        assert!(limiter.check(&other).await.is_ok(), "{other:?}");
    }
    // Methods without a tool do not count in tool buckets.
    let read = RateRequest {
        tool: None,
        ..call("a", "s", "t")
    };
    assert_eq!(passing(&limiter, &read, 3).await, 3);
}

#[tokio::test(start_paused = true)]
async fn a_limit_of_one_and_the_exact_boundary() {
    let limiter = limiter("rate_limits: {global: {requests_per_minute: 1}}\n");
    let request = call("a", "s", "t");
    assert!(limiter.check(&request).await.is_ok());
    advance(Duration::from_millis(59_999)).await;
    let refused = limiter.check(&request).await.unwrap_err();
    assert_eq!(
        (refused.bucket, refused.retry_after_secs),
        (BucketKind::Global, 1)
    );
    // The request admitted at t counts until t + 60 s, not at t + 60 s.
    advance(Duration::from_millis(1)).await;
    assert!(limiter.check(&request).await.is_ok());
    assert!(limiter.check(&request).await.is_err());
}

#[tokio::test(start_paused = true)]
async fn fifty_concurrent_requests_with_a_limit_of_ten_pass_exactly_ten() {
    let limiter = Arc::new(limiter(
        "rate_limits: {global: {requests_per_minute: 10}}\n",
    ));
    let results = join_all((0..50).map(|i| {
        let limiter = Arc::clone(&limiter);
        tokio::spawn(async move {
            let client = format!("c{i}");
            limiter.check(&call(&client, "s", "t")).await.is_ok()
        })
    }))
    .await;
    let passed = results.into_iter().filter(|r| *r.as_ref().unwrap()).count();
    assert_eq!(passed, 10);
}

#[tokio::test(start_paused = true)]
async fn a_refused_request_counts_nowhere() {
    let limiter = limiter(
        "rate_limits: {global: {requests_per_minute: 3}, per_client: {requests_per_minute: 2}}\n",
    );
    assert_eq!(passing(&limiter, &call("a", "s", "t"), 10).await, 2);
    // Had a's eight refusals counted globally, b would get nothing.
    assert!(limiter.check(&call("b", "s", "t")).await.is_ok());
    let refused = limiter.check(&call("b", "s", "t")).await.unwrap_err();
    assert_eq!(refused.bucket, BucketKind::Global);
}

#[tokio::test(start_paused = true)]
async fn the_counter_that_frees_up_last_is_named() {
    let limiter = limiter(
        "rate_limits: {global: {requests_per_minute: 1}, per_client: {requests_per_hour: 1}}\n",
    );
    assert!(limiter.check(&call("a", "s", "t")).await.is_ok());
    let refused = limiter.check(&call("a", "s", "t")).await.unwrap_err();
    assert_eq!(
        (refused.bucket, refused.window),
        (BucketKind::Client, Window::Hour)
    );
    assert_eq!(refused.retry_after_secs, 3600);
}

#[tokio::test(start_paused = true)]
async fn workspace_quotas_count_per_tenant() {
    let limiter = limiter(
        "governance:\n  quotas:\n    default: {requests_per_minute: 2}\n    workspaces: [{workspace_id: acme, requests_per_minute: 1}]\n",
    );
    let tenant = |tenant_id| RateRequest {
        tenant_id,
        ..call("a", "s", "t")
    };
    assert_eq!(passing(&limiter, &tenant("acme"), 5).await, 1);
    let refused = limiter.check(&tenant("acme")).await.unwrap_err();
    assert_eq!((refused.bucket, refused.limit), (BucketKind::Workspace, 1));
    assert_eq!(passing(&limiter, &tenant("other"), 5).await, 2);
    assert_eq!(passing(&limiter, &tenant("default"), 5).await, 2);
}

#[tokio::test(start_paused = true)]
async fn nothing_is_limited_without_limits() {
    for config in [
        "",
        "rate_limits: {enabled: false, global: {requests_per_minute: 1}}\n",
    ] {
        let limiter = limiter(config);
        assert!(!limiter.is_enabled());
        assert_eq!(passing(&limiter, &call("a", "s", "t"), 100).await, 100);
    }
}

#[tokio::test(start_paused = true)]
async fn a_new_configuration_keeps_the_counts_and_applies_its_limits_at_once() {
    let request = call("a", "s", "t");
    let first = limiter("rate_limits: {per_client: {requests_per_minute: 5}}\n");
    assert_eq!(passing(&first, &request, 3).await, 3);

    let mut lowered = limiter("rate_limits: {per_client: {requests_per_minute: 2}}\n");
    lowered.inherit(&first);
    // Three are counted; the limit is now 2: refused until two of the three leave.
    let refused = lowered.check(&request).await.unwrap_err();
    assert_eq!((refused.limit, refused.retry_after_secs), (2, 60));

    let mut raised = limiter("rate_limits: {per_client: {requests_per_minute: 4}}\n");
    raised.inherit(&lowered);
    assert_eq!(passing(&raised, &request, 5).await, 1);

    // A runtime that did not inherit starts from zero.
    let fresh = limiter("rate_limits: {per_client: {requests_per_minute: 4}}\n");
    assert_eq!(passing(&fresh, &request, 5).await, 4);
}

#[tokio::test(start_paused = true)]
async fn the_number_of_counters_is_bounded() {
    let store = MemoryStore::new(100);
    let check = |client: &str| Check {
        kind: BucketKind::Client,
        key: key::client(client),
        window: Window::Minute,
        limit: 1,
    };
    for i in 0..1000 {
        let checks = [check(&format!("c{i}"))];
        assert!(store.check_and_consume(&checks, Instant::now()).is_ok());
        assert!(store.len() <= 100, "{} counters after {i}", store.len());
        advance(Duration::from_millis(1)).await;
    }
    // The most recent clients are still counted.
    let recent = [check("c999")];
    assert!(store.check_and_consume(&recent, Instant::now()).is_err());
    // Idle counters go first: once every log is empty, a sweep keeps only the new one.
    advance(Duration::from_secs(60)).await;
    assert!(
        store
            .check_and_consume(&[check("new")], Instant::now())
            .is_ok()
    );
    advance(Duration::from_millis(1)).await;
    for i in 0..100 {
        let checks = [check(&format!("d{i}"))];
        assert!(store.check_and_consume(&checks, Instant::now()).is_ok());
    }
    assert!(store.len() <= 100);
    // The store filled up with live counters: the least recently used ("new") was dropped
    // and forgot its count, the most recent one was kept.
    assert!(
        store
            .check_and_consume(&[check("d99")], Instant::now())
            .is_err()
    );
    assert!(
        store
            .check_and_consume(&[check("new")], Instant::now())
            .is_ok()
    );
}

#[test]
fn a_redis_url_this_build_cannot_use_is_refused_at_apply_without_its_password() {
    let document = Document::from_text(&format!(
        "{SERVERS}rate_limits: {{backend: redis, redis_url: 'rediss://:hunter2@redis.internal:6380/0'}}\n"
    ))
    .expect("valid document");
    let error = RateLimiter::compile(&document, &Metrics::new()).unwrap_err();
    assert_eq!(error.path, "rate_limits.redis_url");
    assert!(error.message.contains("TLS"), "{}", error.message);
    assert!(!error.message.contains("hunter2"), "{}", error.message);
}
