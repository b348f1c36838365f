//! Messages that go to one member (or to each, for notifications): calls routed by
//! prefixed name or by resource URI, the client's answers to server→client requests,
//! and client notifications.
//!
//! A routed request keeps the client's id, so the member's answer (JSON or an event
//! stream, bounded by the member's `timeout_ms`) goes back as it comes; only server→client
//! requests on the stream are renamed (`stream`).

use bytes::Bytes;
use futures_util::future::join_all;
use http::header::{self, HeaderValue};
use http::{Response, StatusCode};
use http_body_util::{BodyExt as _, Full};
use serde_json::{Value, json};
use tokio::time::Instant;

use super::fanout::{self, Answer, Member, MemberError, Routing};
use super::stream::{self, Deadline};
use super::{
    Aggregator, Call, Handled, INVALID_PARAMS, RESOURCE_NOT_FOUND, client, empty, ids, lists,
    member_error, result,
};
use crate::admission::{self, Target};
use crate::catalog::Strategy;
use crate::catalog::routes::Kind;
use crate::http::ProxyBody;
use crate::jsonrpc;
use crate::mcp::ListKind;
use crate::refusal::Refusal;

/// `tools/call` and `prompts/get`: to the member the name belongs to, name unprefixed.
pub(super) async fn by_name(
    aggregator: &Aggregator,
    call: &Call<'_>,
    kind: Kind,
    mut message: Value,
) -> Handled {
    let Some(name) = message.pointer("/params/name").and_then(Value::as_str) else {
        return Err(unadmitted(call, missing_param(&message, "name")).await);
    };
    let (server, local) = match resolve_name(aggregator, call, kind, name, &message).await {
        Ok(resolved) => resolved,
        Err(refused) => return Err(unadmitted(call, refused).await),
    };
    admit(call, &server.id, kind, &local, &message).await?;
    message["params"]["name"] = Value::String(local.clone());
    let method = message["method"].as_str().unwrap_or_default().to_owned();
    let routing = Routing {
        method: Some(&method),
        name: Some(&local),
    };
    forward(aggregator, call, server, &message, routing).await
}

/// Admission of a `tools/call` or `prompts/get` once its member is known, on the name the
/// member knows (unprefixed).
async fn admit(
    call: &Call<'_>,
    server: &str,
    kind: Kind,
    local: &str,
    message: &Value,
) -> Result<(), Refusal> {
    let no_args = Value::Object(Default::default());
    let target = match kind {
        Kind::Tool => {
            let args = match message.pointer("/params/arguments") {
                None | Some(Value::Null) => &no_args,
                Some(args @ Value::Object(_)) => args,
                Some(_) => {
                    let message = "tools/call needs params.arguments to be an object";
                    let invalid = client(StatusCode::OK, INVALID_PARAMS, message);
                    return Err(unadmitted(call, invalid).await);
                }
            };
            Target::ToolCall {
                server,
                tool: local,
                args,
            }
        }
        Kind::Prompt => Target::PromptGet {
            server,
            name: local,
        },
    };
    admission::admit(call.runtime, call.services, call.caller, &target)
        .await
        .map(drop)
}

/// `completion/complete`: a prompt argument goes where the prompt is, a resource template
/// argument where the template is; admitted as that prompt or resource (a caller learns
/// nothing about what it may not use).
pub(super) async fn completion(
    aggregator: &Aggregator,
    call: &Call<'_>,
    mut message: Value,
) -> Handled {
    let reference = message.pointer("/params/ref").cloned().unwrap_or_default();
    let routing = Routing {
        method: Some("completion/complete"),
        name: None,
    };
    match reference.get("type").and_then(Value::as_str) {
        Some("ref/prompt") => {
            let Some(name) = reference.get("name").and_then(Value::as_str) else {
                return Err(unadmitted(call, missing_param(&message, "ref.name")).await);
            };
            let (server, local) =
                match resolve_name(aggregator, call, Kind::Prompt, name, &message).await {
                    Ok(resolved) => resolved,
                    Err(refused) => return Err(unadmitted(call, refused).await),
                };
            admit(call, &server.id, Kind::Prompt, &local, &message).await?;
            message["params"]["ref"]["name"] = Value::String(local);
            forward(aggregator, call, server, &message, routing).await
        }
        Some("ref/resource") => {
            let Some(uri) = reference.get("uri").and_then(Value::as_str) else {
                return Err(unadmitted(call, missing_param(&message, "ref.uri")).await);
            };
            if let Some(refused) = admission::refuse_ambiguous_uri(call.runtime, call.caller, uri) {
                return Err(unadmitted(call, refused).await);
            }
            let server = match resolve_uri(aggregator, call, uri, &message, true).await {
                Ok(server) => server,
                Err(refused) => return Err(unadmitted(call, refused).await),
            };
            let target = Target::ResourceRead {
                server: &server.id,
                uri,
            };
            admission::admit(call.runtime, call.services, call.caller, &target).await?;
            forward(aggregator, call, server, &message, routing).await
        }
        _ => {
            let missing = missing_param(&message, "ref.type (ref/prompt or ref/resource)");
            Err(unadmitted(call, missing).await)
        }
    }
}

/// The answer to a request refused before admission could run (a missing parameter, a name
/// no member has): it still counts in the rate limits, which may refuse it instead.
async fn unadmitted(call: &Call<'_>, refusal: Refusal) -> Refusal {
    match admission::admit_request(call.runtime, call.caller, None).await {
        Ok(()) => refusal,
        Err(refused) => refused,
    }
}

/// `resources/read`, `resources/subscribe`, `resources/unsubscribe`: to the member that
/// lists the URI or has a template matching it.
pub(super) async fn by_uri(aggregator: &Aggregator, call: &Call<'_>, message: Value) -> Handled {
    let Some(uri) = message.pointer("/params/uri").and_then(Value::as_str) else {
        return Err(unadmitted(call, missing_param(&message, "uri")).await);
    };
    if let Some(refused) = admission::refuse_ambiguous_uri(call.runtime, call.caller, uri) {
        return Err(unadmitted(call, refused).await);
    }
    let server = match resolve_uri(aggregator, call, uri, &message, false).await {
        Ok(server) => server,
        Err(refused) => return Err(unadmitted(call, refused).await),
    };
    let method = message["method"].as_str().unwrap_or_default();
    let admitted = if matches!(method, "resources/read" | "resources/subscribe") {
        let target = Target::ResourceRead {
            server: &server.id,
            uri,
        };
        admission::admit(call.runtime, call.services, call.caller, &target)
            .await
            .map(drop)
    } else {
        admission::admit_request(call.runtime, call.caller, Some(&server.id)).await
    };
    admitted?;
    let routing = Routing {
        method: Some(method),
        name: Some(uri),
    };
    forward(aggregator, call, server, &message, routing).await
}

/// The member a name belongs to, and the name as that member knows it.
async fn resolve_name<'c>(
    aggregator: &Aggregator,
    call: &'c Call<'_>,
    kind: Kind,
    name: &str,
    message: &Value,
) -> Result<(&'c Member, String), Refusal> {
    let noun = match kind {
        Kind::Tool => "tool",
        Kind::Prompt => "prompt",
    };
    let path = call.scope.path();
    let unknown = |why: String| {
        let message = format!("unknown {noun} \"{name}\" on {path}: {why}");
        client(StatusCode::OK, INVALID_PARAMS, message)
    };
    match call.runtime.aggregates().strategy() {
        Strategy::Prefix => {
            let Some((server, local)) = ids::split_prefixed(name) else {
                return Err(unknown(format!(
                    "names there are <server_id>.<{noun}> (see the list)"
                )));
            };
            match call.member(server) {
                Some(member) => Ok((member, local.to_owned())),
                None => Err(unknown(format!(
                    "no server \"{server}\" in this session (see the list)"
                ))),
            }
        }
        Strategy::None => {
            let routes = call.runtime.aggregates().routes();
            let label = call.scope.label();
            let owner = || {
                routes
                    .name_owner(kind, &label, name)
                    .and_then(|owner| call.member(&owner))
            };
            if let Some(member) = owner() {
                return Ok((member, name.to_owned()));
            }
            let list = match kind {
                Kind::Tool => ListKind::Tools,
                Kind::Prompt => ListKind::Prompts,
            };
            lists::collect(aggregator, call, list, &lists::params_for(message)).await?;
            match owner() {
                Some(member) => Ok((member, name.to_owned())),
                None => Err(unknown("no server there offers it".into())),
            }
        }
    }
}

/// The member serving a resource URI (or, with `template`, a resource template), from the
/// routing cache or, on a miss, after listing the members' resources and templates.
async fn resolve_uri<'c>(
    aggregator: &Aggregator,
    call: &'c Call<'_>,
    uri: &str,
    message: &Value,
    template: bool,
) -> Result<&'c Member, Refusal> {
    let routes = call.runtime.aggregates().routes();
    let members = call.member_ids();
    let owner = || {
        let owner = if template {
            routes
                .template_owner(uri, &members)
                .or_else(|| routes.resource_owner(uri, &members))
        } else {
            routes.resource_owner(uri, &members)
        };
        owner.and_then(|owner| call.member(&owner))
    };
    if let Some(member) = owner() {
        return Ok(member);
    }
    let params = lists::params_for(message);
    for kind in [ListKind::Resources, ListKind::ResourceTemplates] {
        lists::collect(aggregator, call, kind, &params).await?;
    }
    owner().ok_or_else(|| {
        client(
            StatusCode::OK,
            RESOURCE_NOT_FOUND,
            format!(
                "resource not found: no server of {} lists {uri} or has a template matching it",
                call.scope.path()
            ),
        )
    })
}

/// Send the client's request to `member` and stream its answer back.
async fn forward(
    aggregator: &Aggregator,
    call: &Call<'_>,
    member: &Member,
    message: &Value,
    routing: Routing<'_>,
) -> Handled {
    if let Some(note) = crate::audit::Note::of(call.caller) {
        note.member(&member.id);
    }
    let timeout = member.timeout();
    let deadline = Instant::now() + timeout;
    let tracked = call
        .token
        .map(|token| aggregator.inflight.track(token, &call.id.0, &member.id));
    let body = Bytes::from(message.to_string());
    let sent = aggregator.fanout.post(member, call.caller, body, routing);
    let exchange = match tokio::time::timeout_at(deadline, sent).await {
        Ok(Ok(exchange)) => exchange,
        Ok(Err(failure)) => return Err(member_error(&failure)),
        Err(_) => return Err(member_error(&MemberError::timeout(&member.id, timeout))),
    };
    Ok(match exchange.answer {
        Answer::Accepted => empty(StatusCode::ACCEPTED),
        Answer::Message(body) => {
            let mut response =
                Response::new(Full::new(body).map_err(|never| match never {}).boxed());
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            response
        }
        Answer::Stream(messages) => {
            let deadline = Deadline {
                at: deadline,
                id: call.id.clone(),
                timeout: humantime::format_duration(timeout).to_string(),
            };
            let body = stream::answer(member.id.clone(), messages, deadline, tracked);
            let mut response = Response::new(body);
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/event-stream"),
            );
            response
                .headers_mut()
                .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
            response
        }
    })
}

/// The client's answer to a server→client request: back to the member that asked, with
/// the member's original id.
pub(super) async fn client_response(
    aggregator: &Aggregator,
    call: &Call<'_>,
    mut message: Value,
) -> Handled {
    let target = message.get("id").and_then(ids::member_request_id);
    let Some((server, original)) = target else {
        return Err(client(
            StatusCode::BAD_REQUEST,
            jsonrpc::INVALID_REQUEST,
            format!(
                "cannot route this response: its id was not issued by {}",
                call.scope.path()
            ),
        ));
    };
    let Some(member) = call.member(server) else {
        return Err(client(
            StatusCode::BAD_REQUEST,
            jsonrpc::INVALID_REQUEST,
            format!("cannot route this response: no server \"{server}\" in this session"),
        ));
    };
    message["id"] = original;
    let body = Bytes::from(message.to_string());
    match aggregator
        .fanout
        .post(member, call.caller, body, Routing::default())
        .await
    {
        Ok(_) => Ok(empty(StatusCode::ACCEPTED)),
        Err(failure) => Err(member_error(&failure)),
    }
}

/// A client notification: `initialized` was sent to the members at `initialize`;
/// `cancelled` goes to the member working on the request when this process knows it, to
/// every member otherwise; anything else goes to every member. Always 202.
pub(super) async fn notification(
    aggregator: &Aggregator,
    call: &Call<'_>,
    method: &str,
    message: &Value,
) -> Response<ProxyBody> {
    if method == "notifications/initialized" {
        return empty(StatusCode::ACCEPTED);
    }
    // A call, read or get sent without an id is no MCP message; forwarded to every member
    // it would pass no admission phase, so it goes nowhere.
    if crate::mcp::names_something(Some(method)) {
        tracing::debug!(method, "a notification named like a request is dropped");
        return empty(StatusCode::ACCEPTED);
    }
    let working = match (method, call.token, message.pointer("/params/requestId")) {
        ("notifications/cancelled", Some(token), Some(request)) => aggregator
            .inflight
            .member_of(token, request)
            .and_then(|id| call.member(&id)),
        _ => None,
    };
    let targets: Vec<&Member> = match working {
        Some(member) => vec![member],
        None => call.members.iter().collect(),
    };
    let body = Bytes::from(message.to_string());
    let routing = Routing {
        method: Some(method),
        name: None,
    };
    let sent = join_all(targets.iter().map(|member| {
        aggregator
            .fanout
            .post(member, call.caller, body.clone(), routing)
    }))
    .await;
    for failure in sent.into_iter().filter_map(Result::err) {
        tracing::debug!(%failure, method, "a member did not take a notification");
    }
    empty(StatusCode::ACCEPTED)
}

/// A request every member must get (`logging/setLevel`): answered `{}` once sent to all;
/// members without the capability (−32601) are skipped. It fails only when no member took
/// it and some could not be reached.
pub(super) async fn broadcast_request(
    aggregator: &Aggregator,
    call: &Call<'_>,
    message: &Value,
) -> Handled {
    let method = message["method"].as_str().unwrap_or_default();
    let params = lists::object_params(message);
    let answers = join_all(call.members.iter().map(|member| async {
        let id = aggregator.gateway_id();
        let request = json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params});
        let routing = Routing {
            method: Some(method),
            name: None,
        };
        let body = Bytes::from(request.to_string());
        fanout::request(&aggregator.fanout, member, call.caller, body, &id, routing).await
    }))
    .await;
    let mut taken = 0;
    let mut failures = Vec::new();
    for (member, answer) in call.members.iter().zip(answers) {
        match answer {
            Ok(reply) if reply.message.get("result").is_some() => taken += 1,
            Ok(reply) => {
                let error = reply.message.get("error").cloned().unwrap_or(Value::Null);
                if error["code"].as_i64() != Some(jsonrpc::METHOD_NOT_FOUND) {
                    failures.push(MemberError::Refused {
                        server: member.id.clone(),
                        method: method.to_owned(),
                        error,
                    });
                }
            }
            Err(gone) if gone.ends_session() => return Err(member_error(&gone)),
            Err(failure) => failures.push(failure),
        }
    }
    for failure in &failures {
        tracing::warn!(%failure, method, "a member did not take a request sent to all");
    }
    match failures.first() {
        Some(failure) if taken == 0 => Err(member_error(failure)),
        _ => Ok(result(&call.id, json!({}))),
    }
}

fn missing_param(message: &Value, param: &str) -> Refusal {
    let method = message["method"].as_str().unwrap_or_default();
    client(
        StatusCode::OK,
        INVALID_PARAMS,
        format!("{method} needs params.{param}"),
    )
}
