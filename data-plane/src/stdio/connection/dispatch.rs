//! Everything the process writes, routed (see the module doc of `stdio` for who gets
//! what): responses to their callers, progress to the caller whose token it is,
//! server→client requests and log messages to the caller they are attributed to (or
//! refused when they cannot be), other notifications to every `GET` stream. Runs on the
//! task reading the process's stdout, so nothing here waits: events go out with `try_send`.
//!
//! # Attribution
//! A server→client request or a log message names no request on the wire. It belongs to:
//! 1. the outstanding request its `params._meta.relatedRequestId` names (the id the process
//!    was given for that request), when it carries one; `_meta.progressToken` is no link:
//!    it is the process's own token for the message it sends (SDKs number them from 0);
//! 2. else the one principal (tenant and client) with outstanding requests, when all of
//!    them are that principal's: whichever of its requests caused it, it is that
//!    principal's to answer;
//! 3. else, with no request outstanding, the one principal of every open `GET` stream;
//! 4. else nobody: a request is answered with an error, a notification dropped, both
//!    counted. Never the guess "the oldest streaming caller": that handed one tenant's
//!    elicitation to another.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;

use bytes::Bytes;
use serde_json::{Value, json};

use super::{Connection, Outcome, Outstanding, ServerRequest, Table};
use crate::jsonrpc;
use crate::stdio::Principal;
use crate::stdio::remap::{self, Kind};
use crate::stdio::sse;

/// The `_meta` field of a message of the process naming the request it is about.
const RELATED_REQUEST: &str = "relatedRequestId";

/// Whom a message that names no caller belongs to.
#[derive(Debug, PartialEq, Eq)]
enum Attribution {
    /// The outstanding request with this gateway id.
    Request(u64),
    /// Some request, or `GET` stream, of this principal.
    Principal(Principal),
    /// It cannot be known.
    Unknown,
}

impl Connection {
    /// Route one message the process wrote.
    pub fn dispatch(&self, message: Value) {
        match remap::kind(&message) {
            Kind::Response => self.on_response(message),
            Kind::Request => self.on_request(message),
            Kind::Notification => self.on_notification(message),
            Kind::Invalid => tracing::warn!(
                server = %self.server_id,
                "the stdio server wrote a JSON value that is not a JSON-RPC message; skipped"
            ),
        }
    }

    fn on_response(&self, mut response: Value) {
        let id = remap::id(&response);
        let request = remap::gateway_id(&id).and_then(|gid| {
            let mut table = self.lock();
            self.take(&mut table, gid)
        });
        match request {
            Some(request) => {
                remap::replace_id(&mut response, request.client_id);
                let _ = request.done.send(Outcome::Answer(response));
            }
            // Its caller timed out or went away: nobody waits for it any more.
            None => tracing::debug!(
                server = %self.server_id,
                %id,
                "answer for no outstanding request dropped"
            ),
        }
    }

    fn on_request(&self, mut request: Value) {
        let process_id = remap::id(&request);
        let method = remap::method(&request).unwrap_or_default().to_owned();
        if method == "ping" {
            self.reply(remap::result(process_id, json!({})));
            return;
        }
        let client_id = format!(
            "conduit-{}-{:016x}",
            self.next_id.fetch_add(1, Ordering::Relaxed),
            rand::random::<u64>()
        );
        remap::replace_id(&mut request, Value::String(client_id.clone()));
        let mut table = self.lock();
        if table.closed.is_some() {
            return;
        }
        let attribution = self.attribute(&table, &request);
        if let Attribution::Request(gid) = &attribution {
            // The id it names is the gateway's; its recipient knows its own.
            restore_related_id(&mut request, table.requests[gid].client_id.clone());
        }
        let event = sse::event(&request);
        let delivered = match &attribution {
            Attribution::Request(gid) => {
                let principal = table.requests[gid].principal.clone();
                self.deliver_one(&table.requests, Some(*gid), &principal, &event)
                    .map(|owner| (owner, principal))
            }
            Attribution::Principal(principal) => self
                .deliver_one(&table.requests, None, principal, &event)
                .map(|owner| (owner, principal.clone())),
            Attribution::Unknown => None,
        };
        if let Some((owner, principal)) = delivered {
            table.server_requests.insert(
                client_id,
                ServerRequest {
                    process_id,
                    owner,
                    principal,
                },
            );
            return;
        }
        drop(table);
        let reason = if attribution == Attribution::Unknown {
            self.unrouted.requests.inc();
            "requests of more than one client are outstanding and the request names none \
             of them (params._meta.relatedRequestId): the gateway does not guess"
        } else {
            "its client has no event stream open (a streaming POST or a GET)"
        };
        tracing::info!(
            server = %self.server_id,
            method,
            reason,
            "no client can answer the stdio server's request; answered with an error"
        );
        self.reply(remap::error(
            process_id,
            jsonrpc::INTERNAL_ERROR,
            format!("no client of the gateway can answer {method}: {reason}"),
        ));
    }

    fn on_notification(&self, mut notification: Value) {
        match remap::method(&notification).unwrap_or_default() {
            "notifications/progress" => {
                let gid = remap::param(&notification, "progressToken").and_then(Value::as_u64);
                let table = self.lock();
                let target = gid
                    .and_then(|gid| table.requests.get(&gid))
                    .and_then(|r| Some((r.progress_token.clone()?, r.events.as_ref()?)));
                match target {
                    Some((token, events)) => {
                        remap::replace_param(&mut notification, "progressToken", token);
                        let _ = events.try_send(sse::event(&notification));
                    }
                    None => tracing::debug!(
                        server = %self.server_id,
                        "progress for no streaming request dropped"
                    ),
                }
            }
            "notifications/message" => {
                let table = self.lock();
                let (only, principal) = match self.attribute(&table, &notification) {
                    Attribution::Request(gid) => {
                        let request = &table.requests[&gid];
                        restore_related_id(&mut notification, request.client_id.clone());
                        (Some(gid), request.principal.clone())
                    }
                    Attribution::Principal(principal) => (None, principal),
                    Attribution::Unknown => {
                        drop(table);
                        self.unrouted.notifications.inc();
                        tracing::debug!(
                            server = %self.server_id,
                            "a log message of the stdio server names no client; dropped"
                        );
                        return;
                    }
                };
                let event = sse::event(&notification);
                let on_a_request = deliver_to_request(&table.requests, only, &principal, &event);
                drop(table);
                if on_a_request.is_none() {
                    self.listeners.broadcast_to(&principal, &event);
                }
            }
            "notifications/cancelled" => {
                // The process gave up a request it sent to a client.
                let process_id = remap::param(&notification, "requestId").cloned();
                let mut table = self.lock();
                let found = table
                    .server_requests
                    .iter()
                    .find(|(_, request)| Some(&request.process_id) == process_id.as_ref())
                    .map(|(client_id, _)| client_id.clone());
                let Some(client_id) = found else {
                    return;
                };
                let Some(request) = table.server_requests.remove(&client_id) else {
                    return;
                };
                remap::replace_param(&mut notification, "requestId", client_id.into());
                let event = sse::event(&notification);
                match request.owner {
                    Some(gid) => {
                        if let Some(events) =
                            table.requests.get(&gid).and_then(|r| r.events.as_ref())
                        {
                            let _ = events.try_send(event);
                        }
                    }
                    None => {
                        drop(table);
                        self.listeners.broadcast_to(&request.principal, &event);
                    }
                }
            }
            // Not about anyone's request (`list_changed`, `resources/updated`): every
            // stream, each filtered by the proxy through its caller's view.
            _ => self.listeners.broadcast(&sse::event(&notification)),
        }
    }

    /// Whom `message` (a server→client request or a log message) belongs to; see the
    /// module doc.
    fn attribute(&self, table: &Table, message: &Value) -> Attribution {
        let named = message
            .get("params")
            .and_then(|params| params.get("_meta"))
            .and_then(|meta| meta.get(RELATED_REQUEST));
        if let Some(id) = named {
            return match remap::gateway_id(id) {
                Some(gid) if table.requests.contains_key(&gid) => Attribution::Request(gid),
                // It names a request, just not one that is outstanding.
                _ => Attribution::Unknown,
            };
        }
        let mut principals = table.requests.values().map(|request| &request.principal);
        match principals.next() {
            Some(first) if principals.all(|p| p == first) => Attribution::Principal(first.clone()),
            Some(_) => Attribution::Unknown,
            None => self
                .listeners
                .sole_principal()
                .map_or(Attribution::Unknown, Attribution::Principal),
        }
    }

    /// Send a server→client request to one stream of `principal`: the request `only` (or
    /// its oldest streaming request), else its oldest `GET` stream. Returns the owning
    /// request (`None` for a `GET` stream), or `None` when nothing took it.
    fn deliver_one(
        &self,
        requests: &BTreeMap<u64, Outstanding>,
        only: Option<u64>,
        principal: &Principal,
        event: &Bytes,
    ) -> Option<Option<u64>> {
        if let Some(gid) = deliver_to_request(requests, only, principal, event) {
            return Some(Some(gid));
        }
        self.listeners
            .send_to_oldest_of(principal, event)
            .then_some(None)
    }
}

/// Put the recipient's own id of the request back into `params._meta.relatedRequestId`.
fn restore_related_id(message: &mut Value, client_id: Value) {
    if let Some(meta) = message
        .get_mut("params")
        .and_then(|params| params.get_mut("_meta"))
        .and_then(Value::as_object_mut)
    {
        meta.insert(RELATED_REQUEST.into(), client_id);
    }
}

/// Send `event` to the request `only`, or without one to the oldest outstanding request of
/// `principal` whose caller has an event stream with room; returns that request's gateway
/// id.
fn deliver_to_request(
    requests: &BTreeMap<u64, Outstanding>,
    only: Option<u64>,
    principal: &Principal,
    event: &Bytes,
) -> Option<u64> {
    requests
        .iter()
        .filter(|(gid, request)| {
            request.principal == *principal && only.is_none_or(|only| only == **gid)
        })
        .find_map(|(gid, request)| {
            let events = request.events.as_ref()?;
            events.try_send(event.clone()).ok().map(|()| *gid)
        })
}
