//! `initialize` and `server/discover` on an aggregate: every member is asked, the answers
//! are merged (`merge`), and for `initialize` the members' sessions are sealed into the
//! client's `Mcp-Session-Id`.

use bytes::Bytes;
use futures_util::future::join_all;
use http::{HeaderValue, StatusCode};
use serde_json::{Value, json};

use super::fanout::{self, Member, MemberError, Reply, Routing};
use super::{Aggregator, Call, Handled, INVALID_PARAMS, client, merge, result};
use crate::http::MCP_SESSION_ID;
use crate::jsonrpc;
use crate::refusal::{Cause, Refusal};
use crate::session::{SessionState, UpstreamSession};

/// One member's `initialize`, done.
struct Initialized<'a> {
    member: &'a Member,
    session_id: Option<String>,
    replica: Option<String>,
    result: Value,
}

pub(super) async fn initialize(
    aggregator: &Aggregator,
    call: &Call<'_>,
    message: &Value,
) -> Handled {
    let params = message.get("params").cloned().unwrap_or_else(|| json!({}));
    let Some(requested) = params.get("protocolVersion").and_then(Value::as_str) else {
        return Err(client(
            StatusCode::OK,
            INVALID_PARAMS,
            "initialize needs params.protocolVersion",
        ));
    };
    let params = &params;
    let answers = join_all(call.members.iter().map(|member| async move {
        let id = aggregator.gateway_id();
        let request = json!({"jsonrpc": "2.0", "id": id, "method": "initialize", "params": params});
        let routing = Routing {
            method: Some("initialize"),
            name: None,
        };
        let answer = fanout::request(
            &aggregator.fanout,
            member,
            call.caller,
            Bytes::from(request.to_string()),
            &id,
            routing,
        )
        .await;
        (member, answer)
    }))
    .await;

    let mut initialized = Vec::new();
    let mut failures = Vec::new();
    for (member, answer) in answers {
        match answer {
            Ok(reply) => match reply.message.get("result") {
                Some(result) if result.is_object() => initialized.push(Initialized {
                    member,
                    session_id: reply.session_id,
                    replica: reply.replica,
                    result: result.clone(),
                }),
                _ => failures.push(format!(
                    "{} refused initialize: {}",
                    member.id,
                    reply.message.get("error").unwrap_or(&reply.message)
                )),
            },
            Err(failure) => failures.push(failure.to_string()),
        }
    }
    for failure in &failures {
        tracing::warn!(
            endpoint = %call.scope.path(),
            %failure,
            "a server is left out of an aggregate session"
        );
    }
    if initialized.is_empty() && !call.members.is_empty() {
        return Err(Refusal::new(
            Cause::Upstream,
            StatusCode::BAD_GATEWAY,
            jsonrpc::INTERNAL_ERROR,
            format!(
                "no server of {} could be initialized: {}",
                call.scope.path(),
                failures.join("; ")
            ),
        ));
    }

    let answered: Vec<&str> = initialized
        .iter()
        .map(|i| i.result["protocolVersion"].as_str().unwrap_or(requested))
        .collect();
    let version = merge::negotiate(requested, &answered);
    let mut state = SessionState::new(call.scope.label(), super::principal(call.caller));
    state.protocol_version = Some(version.clone());
    for (done, member_version) in initialized.iter().zip(&answered) {
        state.upstreams.insert(
            done.member.id.clone(),
            UpstreamSession {
                session_id: done.session_id.clone(),
                replica: done.replica.clone(),
                protocol_version: Some((*member_version).to_owned()),
            },
        );
    }
    notify_initialized(aggregator, call, &state).await;

    let described: Vec<(&str, Option<&str>)> = initialized
        .iter()
        .map(|i| (i.member.id.as_str(), i.result["instructions"].as_str()))
        .collect();
    let strategy = call.runtime.aggregates().strategy();
    let merged = merge::initialize_result(
        &version,
        merge::capabilities(
            initialized
                .iter()
                .filter_map(|i| i.result.get("capabilities")),
        ),
        merge::instructions(strategy, &described),
    );
    let mut response = result(&call.id, merged);
    if let Ok(token) = HeaderValue::from_str(&call.keys.seal(&state)) {
        response.headers_mut().insert(MCP_SESSION_ID, token);
    }
    Ok(response)
}

/// Tell every member of the new session that initialization is complete; the client's own
/// `notifications/initialized` is then answered by the gateway.
async fn notify_initialized(aggregator: &Aggregator, call: &Call<'_>, state: &SessionState) {
    let notification =
        Bytes::from_static(br#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#);
    let members: Vec<Member> = call
        .members
        .iter()
        .filter_map(|member| {
            let session = state.upstreams.get(&member.id)?.clone();
            Some(Member {
                session: Some(session),
                ..member.clone()
            })
        })
        .collect();
    let routing = Routing {
        method: Some("notifications/initialized"),
        name: None,
    };
    let sent = join_all(members.iter().map(|member| {
        aggregator
            .fanout
            .post(member, call.caller, notification.clone(), routing)
    }))
    .await;
    for (member, outcome) in members.iter().zip(sent) {
        match outcome {
            // Nothing is expected after a notification; any answer is dropped unread.
            Ok(_) => {}
            Err(failure) => tracing::warn!(
                server = %member.id,
                %failure,
                "notifications/initialized was not accepted"
            ),
        }
    }
}

/// `server/discover`: the intersection of the members' supported versions. Any failure is
/// a JSON-RPC error (−32601), which makes 2026-07-28 clients fall back to `initialize`.
pub(super) async fn discover(aggregator: &Aggregator, call: &Call<'_>, message: &Value) -> Handled {
    let params = message.get("params").cloned().unwrap_or_else(|| json!({}));
    let params = &params;
    let answers = join_all(call.members.iter().map(|member| async move {
        let id = aggregator.gateway_id();
        let request =
            json!({"jsonrpc": "2.0", "id": id, "method": "server/discover", "params": params});
        let routing = Routing {
            method: Some("server/discover"),
            name: None,
        };
        let body = Bytes::from(request.to_string());
        let answer =
            fanout::request(&aggregator.fanout, member, call.caller, body, &id, routing).await;
        (member, answer)
    }))
    .await;
    let mut results = Vec::with_capacity(answers.len());
    for (member, answer) in answers {
        let reason = match answer {
            Ok(Reply {
                message: mut response,
                ..
            }) => match response.get_mut("result").map(Value::take) {
                Some(result) if result.is_object() => {
                    results.push((member.id.as_str(), result));
                    continue;
                }
                _ => format!(
                    "{} does not support it ({})",
                    member.id,
                    response.get("error").unwrap_or(&response)
                ),
            },
            Err(MemberError::Status { server, detail, .. }) => {
                format!("{server} does not support it ({detail})")
            }
            Err(failure) => failure.to_string(),
        };
        return Err(unavailable(call, &reason));
    }
    let strategy = call.runtime.aggregates().strategy();
    let borrowed: Vec<(&str, &Value)> = results.iter().map(|(id, r)| (*id, r)).collect();
    match merge::discover_result(strategy, &borrowed) {
        Ok(merged) => Ok(result(&call.id, merged)),
        Err(reason) => Err(unavailable(call, &reason)),
    }
}

fn unavailable(call: &Call<'_>, reason: &str) -> Refusal {
    Refusal::new(
        Cause::Upstream,
        StatusCode::OK,
        jsonrpc::METHOD_NOT_FOUND,
        format!(
            "server/discover is not available on {}: {reason}; use initialize",
            call.scope.path()
        ),
    )
}
