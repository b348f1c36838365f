//! Admission: the policy phases between routing and the upstream call, per JSON-RPC
//! message, in this order (the contract's request path, steps 4–7):
//!
//! 0. **resource URIs** (any policy section on): a URI that stays ambiguous once normalized
//!    (`conduit_policy::uri`: dot segments, encoded separators, control characters) is
//!    refused −32602 before anything matches it.
//! 1. **ACL** (`acl`): may the caller call the tool, read the resource, get the prompt on
//!    this server? (A completion counts as its prompt or resource.) Denied → −32003.
//! 2. **governance** tool policies (`governance.tool_policies`, tool calls only): denied →
//!    −32010; `require_approval` → the approval phase.
//! 3. **guardrails** (`guardrails`, tool calls only): block → −32004; alert passes and is
//!    counted; `require_approval` → the approval phase; shadow rules are only counted.
//! 4. **rate limits** ([`rate_limit_phase`]): every request counts, so a caller over its
//!    limit cannot queue approval requests either.
//! 5. **approvals** ([`approval_phase`]): a call some rule holds for approval.
//!
//! Messages without a [`Target`] (initialize, lists, ping, ...) only count in the rate
//! limits ([`admit_request`]); methods MCP does not define for clients are refused
//! ([`unknown_method`]). Lists (`tools/list`, `prompts/list`, `resources/list`,
//! `resources/templates/list`) are not refused but trimmed to what the caller may use
//! ([`filter`], [`View`]).
//!
//! Every phase reads the one [`Runtime`] the request loaded, so a policy applied through
//! the control plane holds from the next request on. The compiled engines live in
//! [`Policies`], part of the runtime; the engines themselves are `conduit_policy`'s.

pub(crate) mod filter;
mod respond;

use std::sync::Arc;

use conduit_policy::acl::Capability;
use conduit_policy::governance::GovernanceDecision;
use conduit_policy::guardrails::{CallContext, Decision};
use http::request::Parts;
use serde_json::Value;

pub(crate) use crate::mcp::{Message, Target, known_method};
pub(crate) use crate::policies::Policies;
pub(crate) use crate::verdict::{Admitted, ApprovalNeeded, ApprovalSource, GuardrailOutcome};
pub(crate) use filter::ItemFilter;
pub(crate) use respond::unreadable;

use crate::caller::Caller;
use crate::mcp::ListKind;
use crate::refusal::Refusal;
use crate::runtime::Runtime;
use crate::services::Services;
use crate::telemetry;

/// Run the policy phases for one message. `Ok` lets it go upstream; `Err` is the refusal
/// to answer instead.
pub(crate) async fn admit(
    runtime: &Runtime,
    services: &Services,
    parts: &Parts,
    target: &Target<'_>,
) -> Result<Admitted, Refusal> {
    if matches!(target, Target::Other) {
        return Ok(Admitted::default());
    }
    let span = telemetry::child(parts, telemetry::POLICY);
    let admitted = phases(runtime, services, parts, target).await;
    telemetry::end_policy(span, parts, admitted.is_err());
    admitted
}

/// The phases of [`admit`], then what they decided into the audit record.
async fn phases(
    runtime: &Runtime,
    services: &Services,
    parts: &Parts,
    target: &Target<'_>,
) -> Result<Admitted, Refusal> {
    let caller = Caller::of(parts);
    let mut admitted = Admitted::default();
    let outcome = decide(runtime, services, parts, &caller, target, &mut admitted).await;
    // The audit record names what decided, whether the message went on or not.
    if let Some(note) = crate::audit::Note::of(parts) {
        note.admission(target, &admitted);
    }
    outcome?;
    tracing::debug!(
        client = %caller.client_id,
        server = target.server().unwrap_or_default(),
        ?admitted,
        "admitted"
    );
    Ok(admitted)
}

/// The phases in order, writing what they decided into `admitted`.
async fn decide(
    runtime: &Runtime,
    services: &Services,
    parts: &Parts,
    caller: &Caller,
    target: &Target<'_>,
    admitted: &mut Admitted,
) -> Result<(), Refusal> {
    if let Target::ResourceRead { server, uri } = *target {
        uri_phase(runtime, caller, server, uri)?;
    }
    acl_phase(runtime, services, caller, target, admitted)?;
    let mut approval = governance_phase(runtime, services, caller, target, admitted)?;
    let held = guardrail_phase(runtime, services, parts, caller, target, admitted)?;
    if let Some(held) = held {
        // A guardrail hold is reported over a governance one: it is the more specific.
        approval = Some(held);
    }
    // Rate limits before approvals: a caller over its limit queues no approval request.
    rate_limit_phase(runtime, parts, caller, target).await?;
    if let Some(needed) = approval {
        approval_phase(runtime, services, parts, caller, target, &needed).await?;
        admitted.approval = Some(needed);
    }
    Ok(())
}

/// A message without a [`Target`] (initialize, a list, ping, ...) on `server` (`None` on
/// an aggregate endpoint, where it goes to several): it counts in the rate limits like
/// every request. Notifications and responses are not counted.
pub(crate) async fn admit_request(
    runtime: &Runtime,
    parts: &Parts,
    server: Option<&str>,
) -> Result<(), Refusal> {
    let limiter = runtime.rate_limiter();
    if !limiter.is_enabled() {
        return Ok(());
    }
    crate::rate_limit::admit_other(limiter, &Caller::of(parts), server).await
}

/// A method MCP does not define for clients, with admission on: a request is answered
/// −32601 (keeping its id), a notification is dropped (answered 202, as any notification);
/// both are counted in `conduit_unknown_methods_total`.
pub(crate) fn unknown_method(services: &Services, method: &str, notification: bool) -> Refusal {
    let kind = if notification {
        "notification"
    } else {
        "request"
    };
    services
        .metrics
        .unknown_methods
        .with_label_values(&[kind])
        .inc();
    let method = respond::bounded(method);
    tracing::info!(method = ?method, kind, "unknown method refused");
    if notification {
        respond::dropped_notification(method)
    } else {
        respond::unknown_method(method)
    }
}

/// Phase 0 on its own, for an aggregate endpoint, which checks a URI before it looks for
/// the member that serves it: the refusal of an ambiguous `uri`, if it is one.
pub(crate) fn refuse_ambiguous_uri(runtime: &Runtime, parts: &Parts, uri: &str) -> Option<Refusal> {
    uri_phase(runtime, &Caller::of(parts), "", uri).err()
}

/// Phase 0: a resource URI that normalization cannot make unambiguous (any policy section
/// on): no rule could tell what it names, and the upstream may read it either way.
fn uri_phase(runtime: &Runtime, caller: &Caller, server: &str, uri: &str) -> Result<(), Refusal> {
    if !runtime.admission_enabled() {
        return Ok(());
    }
    match conduit_policy::uri::normalize(uri) {
        Ok(_) => Ok(()),
        Err(why) => {
            tracing::info!(client = %caller.client_id, server, %why, "ambiguous resource URI refused");
            Err(respond::ambiguous_uri(why))
        }
    }
}

fn capability<'a>(target: &Target<'a>) -> Option<(&'a str, Capability<'a>)> {
    match *target {
        Target::ToolCall { server, tool, .. } => Some((server, Capability::Tool(tool))),
        Target::ResourceRead { server, uri } => Some((server, Capability::Resource(uri))),
        Target::PromptGet { server, name } => Some((server, Capability::Prompt(name))),
        Target::Other => None,
    }
}

/// Phase 1: the ACL.
fn acl_phase(
    runtime: &Runtime,
    services: &Services,
    caller: &Caller,
    target: &Target<'_>,
    admitted: &mut Admitted,
) -> Result<(), Refusal> {
    let (Some(acl), Some((server, capability))) = (runtime.policies().acl(), capability(target))
    else {
        return Ok(());
    };
    let decision = acl.decide(&caller.client_id, server, &capability);
    admitted.acl_policy = decision.policy.map(str::to_owned);
    if decision.allowed {
        return Ok(());
    }
    let kind = capability.kind();
    services
        .metrics
        .acl_denials
        .with_label_values(&[server, kind.as_str()])
        .inc();
    tracing::info!(
        client = %caller.client_id,
        server,
        kind = kind.as_str(),
        name = capability.name(),
        policy = decision.policy.unwrap_or("default_action"),
        "access denied by the ACL"
    );
    Err(respond::acl_denied(
        &caller.client_id,
        kind.verb(),
        capability.name(),
        server,
    ))
}

/// Phase 2: governance tool policies (tool calls only).
fn governance_phase(
    runtime: &Runtime,
    services: &Services,
    caller: &Caller,
    target: &Target<'_>,
    admitted: &mut Admitted,
) -> Result<Option<ApprovalNeeded>, Refusal> {
    let (Some(governance), Target::ToolCall { server, tool, .. }) =
        (runtime.policies().governance(), target)
    else {
        return Ok(None);
    };
    match governance.decide(&caller.client_id, &caller.tenant_id, server, tool) {
        GovernanceDecision::Allow => Ok(None),
        GovernanceDecision::Deny { policy, reason } => {
            services
                .metrics
                .governance_denials
                .with_label_values(&[policy])
                .inc();
            tracing::info!(client = %caller.client_id, server, tool, policy, "denied by a governance tool policy");
            Err(respond::governance_denied(policy, reason))
        }
        GovernanceDecision::RequireApproval { policy, reason } => {
            admitted.governance_policy = Some(policy.to_owned());
            Ok(Some(ApprovalNeeded {
                source: ApprovalSource::Governance(policy.to_owned()),
                reason: reason.to_owned(),
            }))
        }
    }
}

/// Phase 3: guardrails (tool calls only). An enforced block or alert of a rule with a
/// `webhook` queues its event (`crate::webhook`); delivery never holds the call.
fn guardrail_phase(
    runtime: &Runtime,
    services: &Services,
    parts: &Parts,
    caller: &Caller,
    target: &Target<'_>,
    admitted: &mut Admitted,
) -> Result<Option<ApprovalNeeded>, Refusal> {
    let policies = runtime.policies();
    let (Some(guardrails), Target::ToolCall { server, tool, args }) =
        (policies.guardrails(), *target)
    else {
        return Ok(None);
    };
    let annotations = policies.annotations().annotations(server, tool);
    let verdict = guardrails.evaluate(&CallContext {
        client_id: &caller.client_id,
        server_id: server,
        tool,
        annotations: &annotations,
        args,
    });
    if let Some(webhooks) = &services.webhooks {
        let trace_id = trace_id(parts);
        webhooks.notify_decision(
            &verdict.decision,
            crate::webhook::CallFacts {
                client_id: &caller.client_id,
                tenant_id: &caller.tenant_id,
                server_id: server,
                tool,
                arguments: args,
                trace_id: &trace_id,
            },
            runtime.redactor(),
            guardrails.webhook_allows_private_networks(),
        );
    }
    let actions = &services.metrics.guardrail_actions;
    for hit in &verdict.shadow {
        let action = hit.action.as_str();
        actions
            .with_label_values(&[hit.rule.name(), action, "shadow"])
            .inc();
        tracing::info!(client = %caller.client_id, server, tool, rule = hit.rule.name(), action, "shadow guardrail rule matched");
        admitted.shadow.push(GuardrailOutcome {
            rule: hit.rule.name().to_owned(),
            action,
        });
    }
    let mut outcome = |rule: &str, action: &'static str| {
        actions.with_label_values(&[rule, action, "enforce"]).inc();
        admitted.guardrail = Some(GuardrailOutcome {
            rule: rule.to_owned(),
            action,
        });
    };
    match verdict.decision {
        Decision::Allow => Ok(None),
        Decision::Bypass { rule } => {
            admitted.guardrail = Some(GuardrailOutcome {
                rule: rule.name().to_owned(),
                action: "bypass",
            });
            Ok(None)
        }
        Decision::Alert { rule } => {
            outcome(rule.name(), "alert");
            tracing::warn!(client = %caller.client_id, server, tool, rule = rule.name(), "guardrail alert");
            Ok(None)
        }
        Decision::Block { rule } => {
            outcome(rule.name(), "block");
            tracing::info!(client = %caller.client_id, server, tool, rule = rule.name(), "blocked by a guardrail rule");
            Err(respond::guardrail_blocked(
                &rule.block_message(),
                Some(rule.name()),
                Some(rule.severity()),
            ))
        }
        Decision::DefaultBlock => {
            outcome(DEFAULT_RULE, "block");
            tracing::info!(client = %caller.client_id, server, tool, "blocked by guardrails.default_action");
            Err(respond::guardrail_blocked(
                conduit_policy::guardrails::DEFAULT_BLOCK_MESSAGE,
                None,
                None,
            ))
        }
        Decision::RequireApproval { rule } => {
            outcome(rule.name(), "require_approval");
            Ok(Some(ApprovalNeeded {
                source: ApprovalSource::Guardrail(rule.name().to_owned()),
                reason: rule.approval_message(),
            }))
        }
    }
}

/// The request's trace id (`TraceContext` in the extensions), empty when there is none.
fn trace_id(parts: &Parts) -> String {
    parts
        .extensions
        .get::<crate::trace_context::TraceContext>()
        .map(|trace| trace.trace_id().to_string())
        .unwrap_or_default()
}

/// The `rule` label of calls blocked by `guardrails.default_action: block`.
pub(crate) const DEFAULT_RULE: &str = "default_action";

/// Phase 5: a call a governance policy or guardrail rule holds for approval.
///
/// The approval workflow (`crate::approvals`): a call carrying `X-Conduit-Approval-Id`
/// passes when this data plane's grant set has a matching, unexpired grant; otherwise it
/// is answered −32011 (a new pending request, an invalid id, or `unavailable` on a
/// standalone data plane). No control-plane round trip either way.
pub(crate) async fn approval_phase(
    runtime: &Runtime,
    services: &Services,
    parts: &Parts,
    caller: &Caller,
    target: &Target<'_>,
    needed: &ApprovalNeeded,
) -> Result<(), Refusal> {
    let Target::ToolCall { server, tool, args } = *target else {
        return Ok(());
    };
    let trace_id = trace_id(parts);
    let (approvals, settings) = (&services.approvals, runtime.approval_settings());
    let call = crate::approvals::Call {
        caller,
        server_id: server,
        tool,
        arguments: (!args.is_null()).then_some(args),
        trace_id: &trace_id,
    };
    let need = crate::approvals::Need {
        source: match needed.source {
            ApprovalSource::Governance(_) => crate::approvals::Source::Governance,
            ApprovalSource::Guardrail(_) => crate::approvals::Source::Guardrail,
        },
        rule: needed.source.name(),
        reason: Some(&needed.reason),
    };
    approvals
        .check(settings, &parts.headers, &call, &need)
        .map_err(respond::approval_refused)
}

/// Phase 4: rate limits and workspace quotas (see `rate_limit`): `tools/call` counts in
/// the global, client, server, tool, client+server+tool and workspace buckets, reads, gets
/// and completions in the global, client, server and workspace ones. Refused → −32029 with
/// `Retry-After`.
pub(crate) async fn rate_limit_phase(
    runtime: &Runtime,
    _parts: &Parts,
    caller: &Caller,
    target: &Target<'_>,
) -> Result<(), Refusal> {
    crate::rate_limit::admit(runtime.rate_limiter(), caller, target).await
}

/// What one caller may see of one server's lists: the ACL and, for tools, the governance
/// tool policies decide; `tools/list` entries also teach the annotation registry.
pub(crate) struct View<'a> {
    pub policies: &'a Policies,
    pub client: &'a str,
    pub workspace: &'a str,
    pub server: &'a str,
}

impl ItemFilter for View<'_> {
    fn keep(&self, kind: ListKind, key: &str, item: &Value) -> bool {
        let capability = match kind {
            ListKind::Tools => {
                self.policies.annotations().record(self.server, item);
                Capability::Tool(key)
            }
            ListKind::Prompts => Capability::Prompt(key),
            ListKind::Resources | ListKind::ResourceTemplates => Capability::Resource(key),
        };
        let acl = self
            .policies
            .acl()
            .is_none_or(|acl| acl.visible(self.client, self.server, &capability));
        let governance = match (kind, self.policies.governance()) {
            (ListKind::Tools, Some(governance)) => {
                governance.may_view(self.client, self.workspace, self.server, key)
            }
            _ => true,
        };
        acl && governance
    }
}

/// A [`View`] that owns what it needs, for an event stream filtered as it flows.
pub(crate) struct OwnedView {
    runtime: Arc<Runtime>,
    caller: Caller,
    server: String,
}

impl OwnedView {
    pub(crate) fn new(runtime: Arc<Runtime>, parts: &Parts, server: &str) -> OwnedView {
        OwnedView {
            runtime,
            caller: Caller::of(parts),
            server: server.to_owned(),
        }
    }
}

impl ItemFilter for OwnedView {
    fn keep(&self, kind: ListKind, key: &str, item: &Value) -> bool {
        View {
            policies: self.runtime.policies(),
            client: &self.caller.client_id,
            workspace: &self.caller.tenant_id,
            server: &self.server,
        }
        .keep(kind, key, item)
    }
}

#[cfg(test)]
mod tests;
