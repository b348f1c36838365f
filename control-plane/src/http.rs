//! The internal HTTP listener (`--http-listen`): `/healthz`, `/readyz` and `/metrics`.
//! Nothing here changes state; it is meant for probes and scrapers on a private network.
//! Served like the data plane's admin listener (`conduit_process::internal_http`): a
//! foreign `Host` is refused, request heads have the header read timeout, bodies are never
//! read.

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use conduit_process::internal_http::{self, InternalSettings};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::fleet::Fleet;
use crate::metrics::Metrics;
use crate::store::Store;
use crate::versions::Versions;

/// What the handlers read.
#[derive(Clone)]
pub struct HttpState {
    pub store: Arc<Store>,
    pub versions: Arc<Versions>,
    pub fleet: Arc<Fleet>,
    pub metrics: Arc<Metrics>,
}

pub fn router(state: HttpState) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(state)
}

/// Serve until `shutdown` is cancelled.
pub async fn serve(
    listener: TcpListener,
    state: HttpState,
    settings: InternalSettings,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    internal_http::serve(listener, router(state), settings, shutdown).await
}

async fn healthz() -> &'static str {
    "ok"
}

/// Ready when the database answers.
async fn readyz(State(state): State<HttpState>) -> impl IntoResponse {
    let store = state.store.clone();
    match tokio::task::spawn_blocking(move || store.ping()).await {
        Ok(Ok(())) => (StatusCode::OK, "ready".to_owned()),
        Ok(Err(error)) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("database: {error}"),
        ),
        Err(error) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("database: {error}"),
        ),
    }
}

async fn metrics(State(state): State<HttpState>) -> impl IntoResponse {
    // The fleet census is taken at scrape time rather than kept up to date on every ACK.
    state
        .metrics
        .set_fleet(state.fleet.counts(state.versions.current_version()));
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.metrics.render(),
    )
}
