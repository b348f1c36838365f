//! The internal admin listener (`--admin-listen`): health, readiness, metrics and the
//! applied configuration. Never served on the public MCP port. It is served like the
//! control plane's internal listener (`conduit_process::internal_http`): a foreign `Host`
//! is refused, request heads have the header read timeout, bodies are never read.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use conduit_process::internal_http::{self, InternalSettings};
use serde_json::json;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::apply::SharedRuntime;
use crate::metrics::Metrics;

/// What the admin endpoints read.
#[derive(Debug, Clone)]
pub(crate) struct AdminState {
    pub runtime: SharedRuntime,
    pub metrics: Arc<Metrics>,
    /// Set when shutdown begins, so load balancers stop sending traffic while requests drain.
    pub draining: Arc<AtomicBool>,
}

pub(crate) fn router(state: AdminState) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/config_dump", get(config_dump))
        .with_state(state)
}

/// Serve the admin endpoints until `shutdown`.
pub(crate) async fn serve(
    listener: TcpListener,
    state: AdminState,
    settings: InternalSettings,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    internal_http::serve(listener, router(state), settings, shutdown).await
}

async fn healthz() -> &'static str {
    "ok\n"
}

async fn readyz(State(state): State<AdminState>) -> (StatusCode, &'static str) {
    if state.draining.load(Ordering::Relaxed) {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready: draining\n")
    } else if state.runtime.load().applied().is_none() {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready: no configuration applied yet\n",
        )
    } else {
        (StatusCode::OK, "ready\n")
    }
}

async fn metrics(State(state): State<AdminState>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.metrics.encode(),
    )
        .into_response()
}

async fn config_dump(State(state): State<AdminState>) -> Response {
    let runtime = state.runtime.load_full();
    let Some(applied) = runtime.applied() else {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(json!({"error": "no configuration applied yet"})),
        )
            .into_response();
    };
    axum::Json(json!({
        "version": applied.version,
        "hash": applied.hash,
        "source": applied.source.as_str(),
        "applied_at": applied.applied_at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        "config": runtime.masked_config(),
    }))
    .into_response()
}
