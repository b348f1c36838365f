//! The rate limiter on a real `redis-server` (started per test by the e2e harness).

use std::sync::Arc;

use conduit_config::Document;
use conduit_data_plane::metrics::Metrics;
use conduit_data_plane::rate_limit::{BucketKind, RateLimiter, RateRequest, Window};
use conduit_e2e::redis::RedisServer;
use futures_util::future::join_all;

const SERVERS: &str = "servers:\n  - {id: s, url: 'http://127.0.0.1:1/mcp'}\n";

fn limiter(redis: &RedisServer, metrics: &Metrics, limits: &str) -> RateLimiter {
    let text = format!(
        "{SERVERS}rate_limits:\n  backend: redis\n  redis_url: '{}'\n{limits}",
        redis.url()
    );
    let document = Document::from_text(&text).expect("valid document");
    RateLimiter::compile(&document, metrics).expect("compiles")
}

fn call(client: &str) -> RateRequest<'_> {
    RateRequest {
        client_id: client,
        tenant_id: "default",
        server_id: Some("s"),
        tool: Some("t"),
    }
}

async fn passing(limiter: &RateLimiter, request: &RateRequest<'_>, n: usize) -> usize {
    let mut passed = 0;
    for _ in 0..n {
        passed += usize::from(limiter.check(request).await.is_ok());
    }
    passed
}

#[tokio::test]
async fn minute_and_hour_limits_of_one_bucket_do_not_interfere() {
    let redis = RedisServer::start().unwrap();
    let metrics = Metrics::new();
    let limiter = limiter(
        &redis,
        &metrics,
        "  per_client: {requests_per_minute: 5, requests_per_hour: 10}\n  global: {requests_per_hour: 3}\n  overrides: [{server: s, requests_per_minute: 1000}]\n",
    );
    // One sorted set per bucket (the original's keys) would count each request once per
    // window of the bucket: the client's set would hold six entries after three requests.
    assert_eq!(passing(&limiter, &call("a"), 3).await, 3);
    let refused = limiter.check(&call("a")).await.unwrap_err();
    assert_eq!(
        (refused.bucket, refused.window),
        (BucketKind::Global, Window::Hour)
    );
    assert!(
        (3599..=3600).contains(&refused.retry_after_secs),
        "{refused:?}"
    );

    assert_eq!(
        redis.keys("conduit:rl:*").unwrap(),
        [
            "conduit:rl:v1:hour:client:a",
            "conduit:rl:v1:hour:global",
            "conduit:rl:v1:minute:client:a",
            "conduit:rl:v1:minute:server:s",
        ]
    );
    for key in redis.keys("conduit:rl:*").unwrap() {
        assert_eq!(redis.command(&["ZCARD", &key]).unwrap(), ":3", "{key}");
    }
    let ttl = redis
        .command(&["PTTL", "conduit:rl:v1:minute:client:a"])
        .unwrap();
    let ttl: i64 = ttl.trim_start_matches(':').parse().unwrap();
    assert!((1..=60_000).contains(&ttl), "{ttl}");
}

#[tokio::test]
async fn a_burst_over_one_limit_passes_exactly_n_and_names_the_window() {
    let redis = RedisServer::start().unwrap();
    let metrics = Metrics::new();
    let limiter = Arc::new(limiter(
        &redis,
        &metrics,
        "  per_client: {requests_per_minute: 10, requests_per_hour: 100}\n",
    ));
    let results = join_all((0..50).map(|_| {
        let limiter = Arc::clone(&limiter);
        tokio::spawn(async move { limiter.check(&call("a")).await })
    }))
    .await;
    let results: Vec<_> = results.into_iter().map(Result::unwrap).collect();
    assert_eq!(results.iter().filter(|r| r.is_ok()).count(), 10);
    let refused = results.into_iter().find_map(Result::err).unwrap();
    assert_eq!(
        (refused.bucket, refused.window),
        (BucketKind::Client, Window::Minute)
    );
    assert!((59..=60).contains(&refused.retry_after_secs), "{refused:?}");
    assert_eq!(
        metrics
            .rate_limit_rejections
            .with_label_values(&["client", "minute"])
            .get(),
        40
    );
    // Refused requests counted nowhere: the hour holds the ten admitted ones.
    assert_eq!(
        redis
            .command(&["ZCARD", "conduit:rl:v1:hour:client:a"])
            .unwrap(),
        ":10"
    );
}

#[tokio::test]
async fn two_limiters_on_one_redis_share_the_limit() {
    let redis = RedisServer::start().unwrap();
    let (one, two) = (Metrics::new(), Metrics::new());
    let limits = "  global: {requests_per_minute: 7}\n";
    let first = limiter(&redis, &one, limits);
    let second = limiter(&redis, &two, limits);
    let mut passed = 0;
    for i in 0..20 {
        let limiter = if i % 2 == 0 { &first } else { &second };
        passed += usize::from(limiter.check(&call("a")).await.is_ok());
    }
    assert_eq!(passed, 7);
}

#[tokio::test]
async fn ids_with_separators_do_not_share_counters() {
    let redis = RedisServer::start().unwrap();
    let metrics = Metrics::new();
    let limiter = limiter(&redis, &metrics, "  per_client: {requests_per_minute: 1}\n");
    for client in ["a", "a:b", "client:a", "a%3Ab"] {
        assert!(limiter.check(&call(client)).await.is_ok(), "{client}");
        assert!(limiter.check(&call(client)).await.is_err(), "{client}");
    }
    assert_eq!(redis.keys("conduit:rl:*").unwrap().len(), 4);
}

#[tokio::test]
async fn a_forgotten_script_is_loaded_again() {
    let redis = RedisServer::start().unwrap();
    let metrics = Metrics::new();
    let limiter = limiter(&redis, &metrics, "  per_client: {requests_per_minute: 2}\n");
    assert!(limiter.check(&call("a")).await.is_ok());
    assert_eq!(redis.command(&["SCRIPT", "FLUSH"]).unwrap(), "+OK");
    assert!(limiter.check(&call("a")).await.is_ok());
    assert!(limiter.check(&call("a")).await.is_err());
    let errors = &metrics.rate_limit_backend_errors;
    assert_eq!(errors.with_label_values(&["allowed"]).get(), 0);
}

#[tokio::test]
async fn redis_gone_fails_open_by_default_and_counts_it() {
    let mut redis = RedisServer::start().unwrap();
    let metrics = Metrics::new();
    let limiter = limiter(&redis, &metrics, "  per_client: {requests_per_minute: 1}\n");
    assert!(limiter.check(&call("a")).await.is_ok());
    assert!(limiter.check(&call("a")).await.is_err());
    redis.kill();
    assert_eq!(passing(&limiter, &call("a"), 3).await, 3);
    let errors = &metrics.rate_limit_backend_errors;
    assert_eq!(errors.with_label_values(&["allowed"]).get(), 3);
    assert_eq!(errors.with_label_values(&["refused"]).get(), 0);
}

#[tokio::test]
async fn redis_gone_fails_closed_when_configured() {
    let mut redis = RedisServer::start().unwrap();
    let metrics = Metrics::new();
    let limiter = limiter(
        &redis,
        &metrics,
        "  on_backend_error: deny\n  redis_timeout_ms: 200\n  per_client: {requests_per_minute: 100}\n",
    );
    assert!(limiter.check(&call("a")).await.is_ok());
    redis.kill();
    for _ in 0..3 {
        let refused = limiter.check(&call("a")).await.unwrap_err();
        assert_eq!(
            (refused.bucket, refused.window, refused.retry_after_secs),
            (BucketKind::Client, Window::Minute, 1)
        );
    }
    let errors = &metrics.rate_limit_backend_errors;
    assert_eq!(errors.with_label_values(&["refused"]).get(), 3);
    assert_eq!(errors.with_label_values(&["allowed"]).get(), 0);
    // Backend failures are not limit rejections.
    assert_eq!(
        metrics
            .rate_limit_rejections
            .with_label_values(&["client", "minute"])
            .get(),
        0
    );
}

#[tokio::test]
async fn a_slow_redis_times_out_and_applies_on_backend_error() {
    let redis = RedisServer::start().unwrap();
    let metrics = Metrics::new();
    let limiter = limiter(
        &redis,
        &metrics,
        "  redis_timeout_ms: 50\n  per_client: {requests_per_minute: 1}\n",
    );
    assert!(limiter.check(&call("a")).await.is_ok());
    redis.pause().unwrap();
    let slow = limiter.check(&call("a")).await;
    redis.resume().unwrap();
    assert!(slow.is_ok(), "fail open: {slow:?}");
    let errors = &metrics.rate_limit_backend_errors;
    assert_eq!(errors.with_label_values(&["allowed"]).get(), 1);
}
