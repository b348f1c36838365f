//! Everything the process writes, routed (see the module doc of `stdio` for who gets
//! what): responses to their callers, progress to the caller whose token it is,
//! server→client requests and log messages to the oldest streaming caller or the `GET`
//! streams, other notifications to every `GET` stream. Runs on the task reading the
//! process's stdout, so nothing here waits: events go out with `try_send`.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;

use bytes::Bytes;
use serde_json::{Value, json};

use super::{Connection, Outcome, Outstanding, ServerRequest};
use crate::jsonrpc;
use crate::stdio::remap::{self, Kind};
use crate::stdio::sse;

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
        let event = sse::event(&request);
        let mut table = self.lock();
        if table.closed.is_some() {
            return;
        }
        let owner = match deliver_to_oldest_stream(&table.requests, &event) {
            Some(gid) => Some(Some(gid)),
            None if self.listeners.send_to_oldest(event) => Some(None),
            None => None,
        };
        match owner {
            Some(owner) => {
                table
                    .server_requests
                    .insert(client_id, ServerRequest { process_id, owner });
            }
            None => {
                drop(table);
                tracing::info!(
                    server = %self.server_id,
                    method,
                    "no client can answer the stdio server's request now; answered with an error"
                );
                self.reply(remap::error(
                    process_id,
                    jsonrpc::INTERNAL_ERROR,
                    format!(
                        "no client of the gateway can answer {method} now: no request with \
                         an event stream is outstanding and no GET stream is open"
                    ),
                ));
            }
        }
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
                let event = sse::event(&notification);
                let table = self.lock();
                if deliver_to_oldest_stream(&table.requests, &event).is_none() {
                    drop(table);
                    self.listeners.broadcast(&event);
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
                        self.listeners.broadcast(&event);
                    }
                }
            }
            _ => self.listeners.broadcast(&sse::event(&notification)),
        }
    }
}

/// Send `event` to the oldest outstanding request whose caller has an event stream with
/// room; returns that request's gateway id.
fn deliver_to_oldest_stream(requests: &BTreeMap<u64, Outstanding>, event: &Bytes) -> Option<u64> {
    requests.iter().find_map(|(gid, request)| {
        let events = request.events.as_ref()?;
        events.try_send(event.clone()).ok().map(|()| *gid)
    })
}
