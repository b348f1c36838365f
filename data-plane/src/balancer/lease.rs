//! One request's use of a replica: the [`ReplicaLease`] a pick returns, the [`Outcome`]
//! the caller reports through it, and [`Leased`], the response body that holds it.
//!
//! A lease counts its request in flight on the replica (for `least-connections` and the
//! in-flight gauge) until it is dropped, and carries the breaker's admission until the
//! outcome is reported. A lease dropped without an outcome (the caller went away) frees
//! its half-open trial slot without counting a success or a failure.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll};

use http::{StatusCode, Uri};
use hyper::body::{Body, Frame, SizeHint};
use tokio::time::Instant;

use super::Replica;
use super::breaker::{BreakerConfig, BreakerState, Permit};

/// The outcome of a request, as far as the replica's health is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Any answer below HTTP 500.
    Success,
    /// Connection error, timeout or HTTP 5xx.
    Failure,
}

impl Outcome {
    /// 5xx is the replica's failure; every other status (4xx included) is a success.
    pub fn of_status(status: StatusCode) -> Outcome {
        if status.is_server_error() {
            Outcome::Failure
        } else {
            Outcome::Success
        }
    }
}

/// One request's use of a replica: counted in flight until dropped.
#[derive(Debug)]
pub struct ReplicaLease {
    pub(super) replica: Arc<Replica>,
    /// The breaker's admission, until the outcome is reported.
    pub(super) permit: Option<(BreakerConfig, Permit)>,
}

// === impl ReplicaLease ===

impl ReplicaLease {
    /// The replica's URL as configured: what a session records to be pinned to it.
    pub fn url(&self) -> &str {
        &self.replica.url
    }

    /// Where to send the request.
    pub fn uri(&self) -> &Uri {
        &self.replica.uri
    }

    /// Report how the request went; only the first report counts.
    pub fn report(&mut self, outcome: Outcome) {
        let Some((config, permit)) = self.permit.take() else {
            return;
        };
        let mut breaker = self.replica.state.breaker();
        let before = breaker.state();
        match outcome {
            Outcome::Success => breaker.on_success(&config, permit),
            Outcome::Failure => breaker.on_failure(&config, permit, Instant::now()),
        }
        let after = breaker.state();
        drop(breaker);
        let (server, replica) = (&self.replica.server, &self.replica.label);
        match (before, after) {
            (_, BreakerState::Open) if before != after => tracing::warn!(
                %server, %replica,
                reset_timeout = %humantime::format_duration(config.reset_timeout),
                "circuit opened: the replica keeps failing"
            ),
            (_, BreakerState::Closed) if before != after => {
                tracing::info!(%server, %replica, "circuit closed: the replica recovered")
            }
            _ => {}
        }
    }
}

impl Drop for ReplicaLease {
    fn drop(&mut self) {
        self.replica.state.in_flight.fetch_sub(1, Ordering::Relaxed);
        if let Some((_, permit)) = self.permit.take() {
            self.replica.state.breaker().on_abandon(permit);
        }
    }
}

/// A response body that keeps its request's [`ReplicaLease`] until the body ends.
pub(crate) struct Leased<B> {
    inner: B,
    _lease: ReplicaLease,
}

impl<B> Leased<B> {
    /// `inner`, holding `lease` until it is dropped.
    pub(crate) fn new(inner: B, lease: ReplicaLease) -> Self {
        Leased {
            inner,
            _lease: lease,
        }
    }
}

impl<B: Body + Unpin> Body for Leased<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<B::Data>, B::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
