//! The data plane's long-lived services: built once when the process starts and handed to
//! the apply path and the request path, never part of a compiled configuration. A new
//! configuration must not reset them: the metrics' series, the approval state (grants and
//! queued requests, shared with the control plane) and the guardrail webhook sender with its
//! queue live as long as the process.

use std::sync::Arc;

use crate::approvals::Approvals;
use crate::metrics::Metrics;
use crate::webhook::Webhooks;

/// The services every request may use besides the serving [`crate::runtime::Runtime`].
#[derive(Debug, Clone)]
pub struct Services {
    /// The data plane's metrics (policy decisions are counted per request).
    pub metrics: Arc<Metrics>,
    /// The approval state: grants and the requests waiting for a decision.
    pub approvals: Approvals,
    /// The guardrail webhook sender; `None` sends nothing (a data plane built without one,
    /// as in unit tests).
    pub webhooks: Option<Webhooks>,
}

impl Services {
    /// Services that count in `metrics`, with approval state of their own and no webhooks.
    pub fn new(metrics: Arc<Metrics>) -> Services {
        Services {
            approvals: Approvals::new(Arc::clone(&metrics)),
            metrics,
            webhooks: None,
        }
    }

    /// Send guardrail webhook events through `webhooks`.
    pub fn with_webhooks(mut self, webhooks: Webhooks) -> Services {
        self.webhooks = Some(webhooks);
        self
    }
}
