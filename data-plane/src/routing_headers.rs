//! The 2026-07-28 routing headers `Mcp-Method` and `Mcp-Name` on `/mcp/{server_id}`, where
//! the caller's headers travel to the upstream with its body. An upstream (or a proxy in
//! front of it) may route or authorize by these headers while the gateway admitted the
//! body, so a header the body does not confirm is refused (−32020 `HeaderMismatch`, HTTP
//! 400, as the protocol has servers answer):
//!
//! - a header given more than once (which value would the upstream take?);
//! - either header on a batch (each entry names its own method) or on a GET or DELETE;
//! - `Mcp-Method` unless it equals the body's `method`;
//! - `Mcp-Name` unless the method names something (`params.name` of `tools/call` and
//!   `prompts/get`, `params.uri` of `resources/read|subscribe|unsubscribe`,
//!   `params.taskId` of `tasks/*`) and the header equals it, plain or in the protocol's
//!   `=?base64?…?=` form.
//!
//! The check runs whether or not a policy section is on (the audit record names what the
//! body says), and costs nothing when neither header is sent. Aggregate endpoints need no
//! check: they never forward these headers but write them from the message each member
//! gets (`aggregate::upstream_headers`).

use std::borrow::Cow;

use base64::Engine as _;
use http::HeaderMap;
use http::header::HeaderName;
use serde::Deserialize;
use serde::de::IgnoredAny;

const MCP_METHOD: HeaderName = HeaderName::from_static("mcp-method");
const MCP_NAME: HeaderName = HeaderName::from_static("mcp-name");
/// Longest header or body value repeated in a refusal.
const MAX_QUOTED_CHARS: usize = 64;

/// The shape of the request the headers came with.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Carrying<'a> {
    /// One JSON-RPC message: its body.
    Message(&'a [u8]),
    /// A JSON-RPC batch.
    Batch,
    /// A GET or DELETE: no message at all.
    NoMessage,
}

/// Why the routing headers of a request are refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum Mismatch {
    #[error("the {0} header is given more than once")]
    Repeated(&'static str),
    #[error("the {0} header is not allowed on a batch: each message names its own")]
    OnBatch(&'static str),
    #[error("the {0} header is not allowed on a request without a JSON-RPC message")]
    NoMessage(&'static str),
    #[error("the {field} header ({header:?}) is not confirmed by the message: {why}")]
    Unconfirmed {
        field: &'static str,
        header: String,
        why: String,
    },
}

/// Check the routing headers of a request on `/mcp/{server_id}` against what it carries.
pub(crate) fn check(headers: &HeaderMap, carrying: Carrying<'_>) -> Result<(), Mismatch> {
    let method = single(headers, &MCP_METHOD, "Mcp-Method")?;
    let name = single(headers, &MCP_NAME, "Mcp-Name")?;
    let field = match (method, name) {
        (None, None) => return Ok(()),
        (Some(_), _) => "Mcp-Method",
        (None, Some(_)) => "Mcp-Name",
    };
    let body = match carrying {
        Carrying::Message(body) => body,
        Carrying::Batch => return Err(Mismatch::OnBatch(field)),
        Carrying::NoMessage => return Err(Mismatch::NoMessage(field)),
    };
    let probe = serde_json::from_slice::<Probe<'_>>(body).map_err(|error| {
        let header = method.or(name).unwrap_or_default();
        unconfirmed(field, header, format!("its body cannot be read ({error})"))
    })?;
    let body_method = probe.method.as_deref();
    if let Some(header) = method {
        match body_method {
            Some(body) if body.as_bytes() == header => {}
            Some(body) => {
                return Err(unconfirmed(
                    "Mcp-Method",
                    header,
                    format!("its method is {:?}", quoted(body)),
                ));
            }
            None => return Err(unconfirmed("Mcp-Method", header, "it has no method".into())),
        }
    }
    if let Some(header) = name {
        let named = body_method.and_then(|method| named_param(method).map(|p| (method, p)));
        let Some((body_method, param)) = named else {
            let why = match body_method {
                Some(method) => format!(
                    "{:?} names no tool, prompt, resource or task",
                    quoted(method)
                ),
                None => "it has no method".into(),
            };
            return Err(unconfirmed("Mcp-Name", header, why));
        };
        let params = probe.params.unwrap_or_default();
        let body_name = match param {
            "name" => params.name,
            "uri" => params.uri,
            _ => params.task_id,
        };
        let decoded = decode(header);
        match (body_name, decoded) {
            (Some(body), Some(header_text)) if body == header_text => {}
            (Some(body), _) => {
                let why = format!("params.{param} is {:?}", quoted(&body));
                return Err(unconfirmed("Mcp-Name", header, why));
            }
            (None, _) => {
                let why = format!("{body_method} has no string params.{param}");
                return Err(unconfirmed("Mcp-Name", header, why));
            }
        }
    }
    Ok(())
}

/// The one value of the header `name`; `Err` when it is given more than once.
fn single<'h>(
    headers: &'h HeaderMap,
    name: &HeaderName,
    field: &'static str,
) -> Result<Option<&'h [u8]>, Mismatch> {
    let mut values = headers.get_all(name).iter();
    let first = values.next();
    if values.next().is_some() {
        return Err(Mismatch::Repeated(field));
    }
    Ok(first.map(|value| value.as_bytes()))
}

/// The parameter `Mcp-Name` repeats for `method`, if it has one.
fn named_param(method: &str) -> Option<&'static str> {
    match method {
        "tools/call" | "prompts/get" => Some("name"),
        "resources/read" | "resources/subscribe" | "resources/unsubscribe" => Some("uri"),
        "tasks/get" | "tasks/result" | "tasks/cancel" | "tasks/update" => Some("taskId"),
        _ => None,
    }
}

/// The text of an `Mcp-Name` value: as sent, or decoded from `=?base64?<base64>?=`;
/// `None` when it is neither valid text nor valid base64 of text.
fn decode(header: &[u8]) -> Option<Cow<'_, str>> {
    let text = std::str::from_utf8(header).ok()?;
    match text
        .strip_prefix("=?base64?")
        .and_then(|rest| rest.strip_suffix("?="))
    {
        Some(encoded) => {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(encoded)
                .ok()?;
            String::from_utf8(bytes).ok().map(Cow::Owned)
        }
        None => Some(Cow::Borrowed(text)),
    }
}

fn unconfirmed(field: &'static str, header: &[u8], why: String) -> Mismatch {
    Mismatch::Unconfirmed {
        field,
        header: quoted(&String::from_utf8_lossy(header)).to_owned(),
        why,
    }
}

/// `text` cut to [`MAX_QUOTED_CHARS`] characters: refusals quote what the caller sent.
fn quoted(text: &str) -> &str {
    match text.char_indices().nth(MAX_QUOTED_CHARS) {
        Some((end, _)) => &text[..end],
        None => text,
    }
}

#[derive(Deserialize)]
struct Probe<'a> {
    #[serde(borrow, default)]
    method: Option<Cow<'a, str>>,
    #[serde(default)]
    params: Option<NamedParams>,
}

/// The params `Mcp-Name` can repeat. Any params that are not an object name nothing; a
/// repeated key is an error (the upstream might read the other one).
#[derive(Default)]
struct NamedParams {
    name: Option<String>,
    uri: Option<String>,
    task_id: Option<String>,
}

impl<'de> Deserialize<'de> for NamedParams {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = NamedParams;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("params")
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<NamedParams, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(NamedParams::default())
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<NamedParams, A::Error> {
                let mut params = NamedParams::default();
                let mut seen = [false; 3];
                while let Some(key) = map.next_key::<Cow<'de, str>>()? {
                    let (slot, index) = match &*key {
                        "name" => (&mut params.name, 0),
                        "uri" => (&mut params.uri, 1),
                        "taskId" => (&mut params.task_id, 2),
                        _ => {
                            map.next_value::<IgnoredAny>()?;
                            continue;
                        }
                    };
                    if std::mem::replace(&mut seen[index], true) {
                        return Err(serde::de::Error::custom(format_args!(
                            "params repeats the key {key:?}"
                        )));
                    }
                    // A value that is not a string names nothing.
                    *slot = match map.next_value::<serde_json::Value>()? {
                        serde_json::Value::String(text) => Some(text),
                        _ => None,
                    };
                }
                Ok(params)
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

#[cfg(test)]
mod tests {
    use http::HeaderValue;
    use serde_json::{Value, json};

    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        map
    }

    fn check_message(pairs: &[(&str, &str)], message: Value) -> Result<(), Mismatch> {
        let body = message.to_string();
        check(&headers(pairs), Carrying::Message(body.as_bytes()))
    }

    fn call(name: &str) -> Value {
        json!({"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":name,"arguments":{}}})
    }

    #[test]
    fn headers_the_body_confirms_pass() {
        assert_eq!(check_message(&[], call("x")), Ok(()));
        let both = [("mcp-method", "tools/call"), ("mcp-name", "read")];
        assert_eq!(check_message(&both, call("read")), Ok(()));
        assert_eq!(check_message(&[("mcp-name", "read")], call("read")), Ok(()));
        let read =
            json!({"jsonrpc":"2.0","id":1,"method":"resources/read","params":{"uri":"test://a b"}});
        let encoded = format!(
            "=?base64?{}?=",
            base64::engine::general_purpose::STANDARD.encode("test://a b")
        );
        assert_eq!(
            check_message(&[("mcp-name", encoded.as_str())], read),
            Ok(())
        );
        let task = json!({"jsonrpc":"2.0","id":1,"method":"tasks/get","params":{"taskId":"t-1"}});
        assert_eq!(check_message(&[("mcp-name", "t-1")], task), Ok(()));
        let ping = json!({"jsonrpc":"2.0","id":1,"method":"ping"});
        assert_eq!(check_message(&[("mcp-method", "ping")], ping), Ok(()));
        // No header: nothing to check, whatever the request carries.
        assert_eq!(check(&HeaderMap::new(), Carrying::Batch), Ok(()));
    }

    #[test]
    fn headers_the_body_does_not_confirm_are_refused() {
        let refused = |pairs: &[(&str, &str)], message: Value| {
            check_message(pairs, message.clone())
                .expect_err(&format!("{pairs:?} with {message}"))
                .to_string()
        };
        let why = refused(&[("mcp-name", "delete_everything")], call("read"));
        assert!(why.contains("params.name is \"read\""), "{why}");
        let why = refused(
            &[("mcp-method", "tools/call")],
            json!({"jsonrpc":"2.0","id":1,"method":"ping"}),
        );
        assert!(why.contains("Mcp-Method"), "{why}");
        // Header present, body field missing: the old check let this through.
        let why = refused(
            &[("mcp-name", "delete_everything")],
            json!({"jsonrpc":"2.0","id":1,"method":"tools/call","params":{}}),
        );
        assert!(why.contains("has no string params.name"), "{why}");
        let why = refused(
            &[("mcp-name", "delete_everything")],
            json!({"jsonrpc":"2.0","id":1,"method":"tools/list"}),
        );
        assert!(why.contains("names no tool"), "{why}");
        refused(
            &[("mcp-method", "tools/call")],
            json!({"jsonrpc":"2.0","id":1,"result":{}}),
        );
        refused(&[("mcp-name", "=?base64?!!?=")], call("=?base64?!!?="));
        // Case matters: names are case-sensitive.
        refused(&[("mcp-method", "Tools/Call")], call("read"));
        let body = br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"read","name":"delete"}}"#;
        let headers = headers(&[("mcp-name", "read")]);
        assert!(check(&headers, Carrying::Message(body)).is_err());
    }

    #[test]
    fn repeated_headers_and_headers_on_batches_are_refused() {
        let twice = [("mcp-method", "tools/call"), ("mcp-method", "tools/call")];
        assert_eq!(
            check_message(&twice, call("x")),
            Err(Mismatch::Repeated("Mcp-Method"))
        );
        let twice = [("mcp-name", "x"), ("mcp-name", "delete_everything")];
        assert_eq!(
            check_message(&twice, call("x")),
            Err(Mismatch::Repeated("Mcp-Name"))
        );
        let one = headers(&[("mcp-method", "tools/call")]);
        assert_eq!(
            check(&one, Carrying::Batch),
            Err(Mismatch::OnBatch("Mcp-Method"))
        );
        let one = headers(&[("mcp-name", "x")]);
        assert_eq!(
            check(&one, Carrying::NoMessage),
            Err(Mismatch::NoMessage("Mcp-Name"))
        );
    }

    #[test]
    fn refusals_quote_a_bounded_header() {
        let long = "x".repeat(10_000);
        let why = check_message(&[("mcp-name", &long)], call("y"))
            .unwrap_err()
            .to_string();
        assert!(why.len() < 300, "{why}");
    }
}
