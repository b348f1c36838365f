//! The final step of every request, whatever happened to it (an answer, a refusal, an
//! upstream failure): a refusal becomes its answer, the answer names the server when it
//! may, the metrics count the request, the exported span ends, the trace id goes on the
//! answer, and the answer's body is wrapped so the audit records are written when it ends
//! (`Auditor::watch`). Nothing else in the request path records a request.

use http::Response;
use http::header::{HeaderName, HeaderValue};

use super::Proxy;
use super::context::RequestContext;
use crate::audit::AuditedBody;
use crate::http::{ProxyBody, SERVER_ID_HEADER};
use crate::metrics::status_class;
use crate::refusal::Refusal;

impl Proxy {
    /// Record the request of `ctx` that ended in `outcome`, and give its answer.
    pub(super) fn record(
        &self,
        ctx: RequestContext,
        outcome: Result<Response<ProxyBody>, Refusal>,
    ) -> Response<AuditedBody> {
        // With `auth` configured, what was refused before authentication does not name the
        // server: that would tell an unauthenticated caller that it exists.
        let (mut response, may_name) = match outcome {
            Ok(response) => (response, true),
            Err(refusal) => {
                let may_name = !refusal.is_before_auth() || ctx.runtime.auth().is_none();
                (refusal.respond(&ctx.id, &self.services.metrics), may_name)
            }
        };
        let label = ctx.endpoint.label();
        if may_name
            && ctx.endpoint.known()
            && let Ok(value) = HeaderValue::from_str(label)
        {
            response
                .headers_mut()
                .insert(HeaderName::from_static(SERVER_ID_HEADER), value);
        }
        if let Some(exported) = ctx.exported {
            exported.end(label, &response);
        }
        ctx.trace.tag(response.headers_mut());
        let method = ctx.ledger.noted_method_label();
        let status = response.status();
        let elapsed = ctx.started.elapsed();
        self.services
            .metrics
            .requests
            .with_label_values(&[label, method, status_class(status)])
            .inc();
        self.services
            .metrics
            .request_duration
            .with_label_values(&[label])
            .observe(elapsed.as_secs_f64());
        tracing::debug!(
            server = label,
            status = status.as_u16(),
            ?elapsed,
            "request"
        );
        self.audit.watch(response, Some(ctx.ledger), label)
    }
}
