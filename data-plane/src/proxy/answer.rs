//! The phases of each message, once the request passed the transport phases: a batch is
//! split into its messages (`batch`), each message is admitted (`admission`), sent upstream
//! and, when it lists what the caller may use, filtered on the way back. One batch handler
//! serves `/mcp/{id}` and the aggregate endpoints alike; only the message's own handler
//! differs ([`Serving`]).

use std::mem;
use std::sync::Arc;

use bytes::Bytes;
use http::request::Parts;
use http::{Method, Response, StatusCode};

use super::Proxy;
use super::context::{Endpoint, RequestContext};
use super::transport;
use crate::admission::{self, Message, OwnedView, Target};
use crate::aggregate::Scope;
use crate::http::ProxyBody;
use crate::jsonrpc::{self, Envelope, RequestId};
use crate::refusal::{Cause, Refusal};
use crate::runtime::{Runtime, Server, Upstream};
use crate::session::SessionKeys;
use crate::{audit, batch, telemetry};

/// Who answers the messages of a request.
enum Serving<'a> {
    /// `/mcp/{id}`: admission, then the server's upstream.
    Server { id: &'a str, server: &'a Server },
    /// An aggregate endpoint, with the keys that open and seal its session tokens.
    Aggregate { scope: &'a Scope, keys: SessionKeys },
}

impl Proxy {
    /// The answer to a request that passed the transport phases: a batch's messages each
    /// down the path of a single one, concurrently, their replies put back together.
    pub(super) async fn answer(
        &self,
        ctx: &mut RequestContext,
    ) -> Result<Response<ProxyBody>, Refusal> {
        let body = mem::take(&mut ctx.body);
        let envelope = ctx.envelope.take();
        if let (Some(Envelope::Batch(_)), Endpoint::Server { .. }) = (&envelope, &ctx.endpoint) {
            telemetry::note_batch(&mut ctx.parts);
        }
        let ctx = &*ctx;
        let serving = match &ctx.endpoint {
            Endpoint::Server {
                id,
                server: Some(server),
            } => Serving::Server { id, server },
            Endpoint::Aggregate { scope, .. } => Serving::Aggregate {
                scope,
                keys: self.key_ring.keys(ctx.runtime.session_keys()),
            },
            _ => return Err(transport::unknown_endpoint(ctx)),
        };
        let serving = &serving;
        Ok(match envelope {
            Some(Envelope::Batch(batch)) => {
                batch::answer(batch.entries, |message, id| async move {
                    let parts = audit::entry(&ctx.parts, &message);
                    let response = self.message(ctx, serving, &parts, message, &id).await;
                    audit::entry_answer(&parts, response)
                })
                .await
            }
            _ => self.message(ctx, serving, &ctx.parts, body, &ctx.id).await,
        })
    }

    /// One message (or a GET/DELETE), with the head `parts` it runs with.
    async fn message(
        &self,
        ctx: &RequestContext,
        serving: &Serving<'_>,
        parts: &Parts,
        body: Bytes,
        id: &RequestId,
    ) -> Response<ProxyBody> {
        let answered = match serving {
            Serving::Server {
                id: server_id,
                server,
            } => {
                self.dispatch(&ctx.runtime, server_id, server, parts, body, id)
                    .await
            }
            Serving::Aggregate { scope, keys } => {
                self.aggregate
                    .handle(&ctx.runtime, scope, parts, body, id, keys)
                    .await
            }
        };
        // A refused message is answered here, with its own id (a batch entry's, in a batch).
        answered.unwrap_or_else(|refusal| refusal.respond(id, &self.services.metrics))
    }

    /// Run one message (or a GET/DELETE) through admission, then to the server's upstream;
    /// a list's answer comes back filtered to what the caller may use. Without any policy
    /// section the message is not even parsed.
    async fn dispatch(
        &self,
        runtime: &Arc<Runtime>,
        server_id: &str,
        server: &Server,
        parts: &Parts,
        body: Bytes,
        id: &RequestId,
    ) -> Result<Response<ProxyBody>, Refusal> {
        if !runtime.admission_enabled() {
            telemetry::describe_body(parts, &body);
            return self.send(server_id, server, parts, body, id).await;
        }
        if parts.method != Method::POST {
            let response = self.send(server_id, server, parts, body, id).await?;
            if parts.method == Method::GET && runtime.policies().filters_lists() {
                // A resumed stream (`Last-Event-ID`) may replay the answer to a list.
                let view = OwnedView::new(Arc::clone(runtime), parts, server_id);
                return Ok(admission::filter::filter_any_lists(
                    response,
                    Box::new(view),
                ));
            }
            return Ok(response);
        }
        let message =
            Message::parse(&body).map_err(|unreadable| admission::unreadable(&unreadable))?;
        telemetry::describe(parts, &message);
        if let (false, Some(method)) = (message.known(), message.method.as_deref()) {
            return Err(admission::unknown_method(
                &self.services,
                method,
                message.notification,
            ));
        }
        let target = message.target_on(server_id);
        match target {
            // Every other request counts in the rate limits; notifications and responses
            // do not.
            Target::Other if message.method.is_some() && !message.notification => {
                admission::admit_request(runtime, parts, Some(server_id)).await?;
            }
            _ => {
                admission::admit(runtime, &self.services, parts, &target).await?;
            }
        }
        let response = self.send(server_id, server, parts, body, id).await?;
        Ok(match message.list() {
            Some(kind) if runtime.policies().inspects(kind) => {
                let view = OwnedView::new(Arc::clone(runtime), parts, server_id);
                admission::filter::filter_response(response, id.clone(), kind, Box::new(view)).await
            }
            _ => response,
        })
    }

    /// Send one message (or a GET/DELETE) to the server's upstream.
    async fn send(
        &self,
        server_id: &str,
        server: &Server,
        parts: &Parts,
        body: Bytes,
        id: &RequestId,
    ) -> Result<Response<ProxyBody>, Refusal> {
        match &server.upstream {
            Upstream::Http(upstream) => self.forward(server_id, upstream, parts, body, id).await,
            Upstream::Stdio(stdio) => {
                let _span = telemetry::upstream(parts, server_id, None);
                Ok(stdio.handle(parts, body).await)
            }
            Upstream::Managed => Err(Refusal::new(
                Cause::Internal,
                StatusCode::NOT_IMPLEMENTED,
                jsonrpc::INTERNAL_ERROR,
                "managed_runtime servers are not run by this data plane yet",
            )),
        }
    }
}
