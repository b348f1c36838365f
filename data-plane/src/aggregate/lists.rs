//! `tools/list`, `prompts/list`, `resources/list` and `resources/templates/list` on an
//! aggregate: every member is asked concurrently, each over its own session, following its
//! `nextCursor` (at most [`MAX_PAGES`] pages); the lists are merged in member order into
//! one page. Every list also refills the routing caches (`routes`).
//!
//! A member that fails is left out of the list with a warning, so one broken server does
//! not hide the others' tools; a member without the capability (−32601) simply has nothing
//! to list. When every member fails, the list fails. A member whose session has ended
//! makes the whole request 404, so the client starts a new session for all of them.

use std::collections::HashMap;

use bytes::Bytes;
use futures_util::future::join_all;
use http::StatusCode;
use serde_json::{Map, Value, json};

use super::fanout::{self, Member, MemberError, Routing};
use super::merge;
use super::{Aggregator, Call, Handled, INVALID_PARAMS, client, member_error, result};
use crate::admission::View;
use crate::admission::filter::filter_items;
use crate::caller::Caller;
use crate::catalog::Strategy;
use crate::catalog::routes::Kind;
use crate::jsonrpc;
use crate::mcp::ListKind;
use crate::refusal::{Cause, Refusal};

/// Most pages read from one member for one list.
const MAX_PAGES: usize = 100;

/// What a member listed: the items of every page, and the page results (for their
/// 2026-07-28 cache fields).
struct Listed {
    items: Vec<Value>,
    pages: Vec<Value>,
}

pub(super) async fn list(
    aggregator: &Aggregator,
    call: &Call<'_>,
    kind: ListKind,
    message: &Value,
) -> Handled {
    let params = object_params(message);
    if params.get("cursor").is_some_and(|cursor| !cursor.is_null()) {
        return Err(client(
            StatusCode::OK,
            INVALID_PARAMS,
            format!(
                "{} on {} returns everything in one page; there is no cursor to continue from",
                kind.method(),
                call.scope.path()
            ),
        ));
    }
    let merged = collect(aggregator, call, kind, &params).await?;
    Ok(result(&call.id, merged))
}

/// The params of `message` when they are an object (MCP's only shape), else `{}`.
pub(super) fn object_params(message: &Value) -> Value {
    match message.get("params") {
        Some(params @ Value::Object(_)) => params.clone(),
        _ => json!({}),
    }
}

/// The params of a list the gateway makes on its own while serving `message`: the
/// client's `_meta` (which 2026-07-28 members need on every request), nothing else.
pub(super) fn params_for(message: &Value) -> Value {
    match message.pointer("/params/_meta") {
        Some(meta) => json!({"_meta": meta}),
        None => json!({}),
    }
}

/// The merged list of `kind` over the call's members, routing caches refilled; `Err` is
/// the response to give the client instead.
pub(super) async fn collect(
    aggregator: &Aggregator,
    call: &Call<'_>,
    kind: ListKind,
    params: &Value,
) -> Result<Value, Refusal> {
    let fetched = join_all(
        call.members
            .iter()
            .map(|member| fetch(aggregator, call, member, kind, params)),
    )
    .await;
    let mut listed = Vec::with_capacity(fetched.len());
    let mut failures = Vec::new();
    for (member, outcome) in call.members.iter().zip(fetched) {
        match outcome {
            Ok(Some(items)) => listed.push((member.id.as_str(), items)),
            Ok(None) => {}
            Err(gone) if gone.ends_session() => {
                return Err(member_error(&gone));
            }
            Err(failure) => failures.push(failure.to_string()),
        }
    }
    if listed.is_empty() && !failures.is_empty() {
        return Err(Refusal::new(
            Cause::Upstream,
            StatusCode::BAD_GATEWAY,
            jsonrpc::INTERNAL_ERROR,
            format!(
                "no server of {} answered {}: {}",
                call.scope.path(),
                kind.method(),
                failures.join("; ")
            ),
        ));
    }
    for failure in &failures {
        tracing::warn!(endpoint = %call.scope.path(), %failure, "a server is left out of a list");
    }
    remember(call, kind, &listed);
    admit_items(call, kind, &mut listed);

    let mut pages = Vec::new();
    let members = listed
        .into_iter()
        .map(|(id, listed)| {
            pages.extend(listed.pages);
            (id, listed.items)
        })
        .collect();
    let strategy = call.runtime.aggregates().strategy();
    let items =
        merge::list_items(kind, strategy, &call.scope.path(), members).map_err(|collision| {
            tracing::warn!(%collision, "names collide on an aggregate");
            Refusal::new(
                Cause::Internal,
                StatusCode::OK,
                jsonrpc::INTERNAL_ERROR,
                collision.to_string(),
            )
        })?;
    let mut merged = Value::Object(Map::from_iter([(
        kind.field().to_owned(),
        Value::Array(items),
    )]));
    merge::merge_result_fields(&mut merged, &pages);
    Ok(merged)
}

/// Record the members' tool annotations (the view does while filtering), and keep of
/// each member's items only those the caller may use (by member id and unprefixed name or URI), before they are merged. The
/// routing caches were filled from the whole lists: they are shared by every caller.
fn admit_items(call: &Call<'_>, kind: ListKind, listed: &mut [(&str, Listed)]) {
    let policies = call.runtime.policies();
    if !policies.inspects(kind) {
        if kind == ListKind::Tools {
            for (server, listed) in listed.iter() {
                for tool in &listed.items {
                    policies.annotations().record(server, tool);
                }
            }
        }
        return;
    }
    let caller = Caller::of(call.caller);
    for (server, listed) in listed.iter_mut() {
        let view = View {
            policies,
            client: &caller.client_id,
            workspace: &caller.tenant_id,
            server,
        };
        filter_items(kind, &mut listed.items, &view);
    }
}

/// Refill the routing caches from what the members listed.
fn remember(call: &Call<'_>, kind: ListKind, listed: &[(&str, Listed)]) {
    let routes = call.runtime.aggregates().routes();
    let text =
        |item: &Value, field: &str| item.get(field).and_then(Value::as_str).map(str::to_owned);
    match kind {
        // In reverse, so that of two members listing one URI the first keeps it.
        ListKind::Resources => {
            for (server, listed) in listed.iter().rev() {
                let uris = listed.items.iter().filter_map(|i| i.get("uri")?.as_str());
                routes.remember_resources(server, uris);
            }
        }
        ListKind::ResourceTemplates => {
            for (server, listed) in listed {
                let templates = listed.items.iter().filter_map(|i| text(i, "uriTemplate"));
                routes.remember_templates(server, templates.collect());
            }
        }
        ListKind::Tools | ListKind::Prompts => {
            if call.runtime.aggregates().strategy() != Strategy::None {
                return;
            }
            // A name two members offer is a collision: it routes nowhere, so a call to it
            // lists again and reports the collision.
            let mut owners: HashMap<String, Option<&str>> = HashMap::new();
            for (server, listed) in listed {
                for name in listed.items.iter().filter_map(|item| text(item, "name")) {
                    let owner = owners.entry(name).or_insert(Some(server));
                    if *owner != Some(*server) {
                        *owner = None;
                    }
                }
            }
            let names: Vec<(String, String)> = owners
                .into_iter()
                .filter_map(|(name, owner)| Some((name, owner?.to_owned())))
                .collect();
            let route_kind = if kind == ListKind::Tools {
                Kind::Tool
            } else {
                Kind::Prompt
            };
            routes.remember_names(route_kind, &call.scope.label(), &names);
        }
    }
}

/// Every item of `kind` one member lists; `None` when it does not offer the list.
async fn fetch(
    aggregator: &Aggregator,
    call: &Call<'_>,
    member: &Member,
    kind: ListKind,
    params: &Value,
) -> Result<Option<Listed>, MemberError> {
    let mut listed = Listed {
        items: Vec::new(),
        pages: Vec::new(),
    };
    let mut params = params.clone();
    for _ in 0..MAX_PAGES {
        let id = aggregator.gateway_id();
        let request =
            json!({"jsonrpc": "2.0", "id": id, "method": kind.method(), "params": params});
        let routing = Routing {
            method: Some(kind.method()),
            name: None,
        };
        let body = Bytes::from(request.to_string());
        let mut response =
            fanout::request(&aggregator.fanout, member, call.caller, body, &id, routing)
                .await?
                .message;
        let Some(mut page) = response.get_mut("result").map(Value::take) else {
            let error = response.get("error").cloned().unwrap_or(Value::Null);
            if error.get("code").and_then(Value::as_i64) == Some(jsonrpc::METHOD_NOT_FOUND) {
                return Ok(None);
            }
            return Err(MemberError::Refused {
                server: member.id.clone(),
                method: kind.method().to_owned(),
                error,
            });
        };
        if let Some(Value::Array(items)) = page.get_mut(kind.field()).map(Value::take) {
            listed.items.extend(items);
        }
        let next = page.get("nextCursor").filter(|c| !c.is_null()).cloned();
        listed.pages.push(page);
        match next {
            Some(cursor) => params["cursor"] = cursor,
            None => return Ok(Some(listed)),
        }
    }
    tracing::warn!(
        server = %member.id,
        method = kind.method(),
        "more than {MAX_PAGES} pages; the rest is left out"
    );
    Ok(Some(listed))
}
