//! JSON-RPC error responses produced by the gateway itself, and the transport checks of a
//! POST body: JSON, the JSON-RPC 2.0 envelope, batch limits, and the request id so every
//! error the gateway makes can carry it.

use std::borrow::Cow;

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};
use http_body_util::Full;
use serde::Deserialize;
use serde_json::{Number, Value, json};

use crate::json_array::{self, SplitError};

/// Invalid JSON was received.
pub(crate) const PARSE_ERROR: i64 = -32700;
/// The message is not a valid request (also used for an oversized body).
pub(crate) const INVALID_REQUEST: i64 = -32600;
/// No such method; used for an unknown server id, as the original gateway did.
pub(crate) const METHOD_NOT_FOUND: i64 = -32601;
/// The gateway could not get an answer from the upstream.
pub(crate) const INTERNAL_ERROR: i64 = -32603;
/// Invalid method parameters.
pub(crate) const INVALID_PARAMS: i64 = -32602;

// Policy answers (the contract's error table); all at HTTP 200 except authentication.
/// Authentication failed (HTTP 401).
pub(crate) const AUTHENTICATION_FAILED: i64 = -32000;
/// The ACL denies the call, read or get.
pub(crate) const ACCESS_DENIED: i64 = -32003;
/// A guardrail rule (or `guardrails.default_action: block`) blocks the call.
pub(crate) const GUARDRAIL_BLOCKED: i64 = -32004;
/// A governance tool policy denies the call.
pub(crate) const GOVERNANCE_DENIED: i64 = -32010;
/// The call needs an approval, or the approval given is not valid for it.
pub(crate) const APPROVAL_REQUIRED: i64 = -32011;
/// A rate limit is exhausted.
pub(crate) const RATE_LIMITED: i64 = -32029;
/// MCP 2026-07-28 `HeaderMismatch`: an `Mcp-Method` or `Mcp-Name` header the body does not
/// confirm (HTTP 400).
pub(crate) const HEADER_MISMATCH: i64 = -32020;

/// The id of a JSON-RPC request (`null` when absent, for notifications and batches).
#[derive(Debug, Clone, PartialEq)]
pub struct RequestId(pub Value);

impl RequestId {
    pub fn null() -> Self {
        RequestId(Value::Null)
    }
}

/// Most messages accepted in one batch.
pub(crate) const MAX_BATCH: usize = 100;

/// A POST body that passed the transport checks.
#[derive(Debug)]
pub enum Envelope {
    /// One valid message, forwarded as it came; the id of a request, `null` otherwise, and
    /// the `method` label of the request metric (`crate::mcp::method_label`).
    Single(RequestId, &'static str),
    /// A batch with at least one valid entry.
    Batch(Batch),
}

/// A batch, entry by entry in the order they came. The gateway runs every valid entry as a
/// message of its own (MCP upstreams since 2025-06-18 do not take batches) and answers the
/// invalid ones itself.
#[derive(Debug)]
pub struct Batch {
    pub entries: Vec<BatchEntry>,
}

/// One entry of a batch.
#[derive(Debug)]
pub enum BatchEntry {
    /// A valid message: its text as it came in the batch.
    Valid {
        message: Bytes,
        /// The id of a request; `None` for a notification or a response, which get no reply.
        id: Option<RequestId>,
    },
    /// The gateway's JSON-RPC error for an invalid entry, carrying that entry's id.
    Invalid(Value),
}

/// Why a POST body is refused (always with HTTP 400).
#[derive(Debug)]
pub struct Rejection {
    pub code: i64,
    /// The request id when one could be read, else `null`.
    pub id: RequestId,
    pub message: String,
}

/// One envelope field, as much of it as the checks need: strings are borrowed from the body
/// (unless they hold escapes), numbers kept, arrays and objects skipped unparsed. Checking a
/// message thus allocates nothing, and a large payload is scanned once and never copied.
#[derive(Debug, Clone, PartialEq)]
enum Field<'a> {
    Str(Cow<'a, str>),
    Number(Number),
    Bool,
    Null,
    Array,
    Object,
}

impl<'de> Deserialize<'de> for Field<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = Field<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<Field<'de>, A::Error> {
                while map
                    .next_entry::<serde::de::IgnoredAny, serde::de::IgnoredAny>()?
                    .is_some()
                {}
                Ok(Field::Object)
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<Field<'de>, A::Error> {
                while seq.next_element::<serde::de::IgnoredAny>()?.is_some() {}
                Ok(Field::Array)
            }
            fn visit_unit<E>(self) -> Result<Field<'de>, E> {
                Ok(Field::Null)
            }
            fn visit_none<E>(self) -> Result<Field<'de>, E> {
                Ok(Field::Null)
            }
            fn visit_bool<E>(self, _: bool) -> Result<Field<'de>, E> {
                Ok(Field::Bool)
            }
            fn visit_i64<E>(self, number: i64) -> Result<Field<'de>, E> {
                Ok(Field::Number(number.into()))
            }
            fn visit_u64<E>(self, number: u64) -> Result<Field<'de>, E> {
                Ok(Field::Number(number.into()))
            }
            fn visit_f64<E: serde::de::Error>(self, number: f64) -> Result<Field<'de>, E> {
                Number::from_f64(number)
                    .map(Field::Number)
                    .ok_or_else(|| E::custom("a number must be finite"))
            }
            fn visit_borrowed_str<E>(self, text: &'de str) -> Result<Field<'de>, E> {
                Ok(Field::Str(Cow::Borrowed(text)))
            }
            fn visit_str<E>(self, text: &str) -> Result<Field<'de>, E> {
                Ok(Field::Str(Cow::Owned(text.to_owned())))
            }
            fn visit_string<E>(self, text: String) -> Result<Field<'de>, E> {
                Ok(Field::Str(Cow::Owned(text)))
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

/// `Some(value)` for a present field, `null` included (a plain `Option` folds `null` into
/// `None`).
fn present<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    T::deserialize(deserializer).map(Some)
}

/// The envelope fields of one message.
#[derive(Deserialize)]
struct Probe<'a> {
    #[serde(borrow, default, deserialize_with = "present")]
    jsonrpc: Option<Field<'a>>,
    #[serde(borrow, default, deserialize_with = "present")]
    id: Option<Field<'a>>,
    #[serde(borrow, default, deserialize_with = "present")]
    method: Option<Field<'a>>,
    #[serde(borrow, default, deserialize_with = "present")]
    params: Option<Field<'a>>,
    #[serde(borrow, default, deserialize_with = "present")]
    result: Option<Field<'a>>,
    #[serde(borrow, default, deserialize_with = "present")]
    error: Option<Field<'a>>,
}

impl Probe<'_> {
    /// The id to answer with: the message's own when it has a valid type, else `null`.
    fn reply_id(&self) -> RequestId {
        match &self.id {
            Some(Field::Str(id)) => RequestId(Value::String(id.clone().into_owned())),
            Some(Field::Number(id)) => RequestId(Value::Number(id.clone())),
            _ => RequestId::null(),
        }
    }

    /// The metrics label of the message's method (`none` for a response).
    fn method_label(&self) -> &'static str {
        match &self.method {
            Some(Field::Str(method)) => crate::mcp::method_label(method),
            _ => "none",
        }
    }

    /// Check the JSON-RPC 2.0 envelope (as MCP uses it); `Err` says what is wrong.
    fn check(&self) -> Result<(), &'static str> {
        if !matches!(&self.jsonrpc, Some(Field::Str(version)) if version == "2.0") {
            return Err("\"jsonrpc\" must be \"2.0\"");
        }
        if let Some(Field::Bool | Field::Array | Field::Object) = &self.id {
            return Err("\"id\" must be a string or a number");
        }
        match &self.method {
            Some(Field::Str(_)) => {
                if matches!(self.id, Some(Field::Null)) {
                    return Err("a request id must not be null");
                }
                if self
                    .params
                    .as_ref()
                    .is_some_and(|p| !matches!(p, Field::Object | Field::Array))
                {
                    return Err("\"params\" must be an object or an array");
                }
                Ok(())
            }
            Some(_) => Err("\"method\" must be a string"),
            None => match (&self.id, &self.result, &self.error) {
                (Some(_), Some(_), None) => Ok(()),
                (Some(_), None, Some(Field::Object)) => Ok(()),
                (Some(_), None, Some(_)) => Err("\"error\" must be an object"),
                _ => Err(
                    "not a JSON-RPC message: a request or notification needs a \"method\", \
                     a response an \"id\" and either \"result\" or \"error\"",
                ),
            },
        }
    }
}

/// Why a request body is not JSON at all.
#[derive(Debug, thiserror::Error)]
#[error("request body is not valid JSON: {0}")]
pub(crate) struct ParseError(#[from] serde_json::Error);

/// The transport checks of a POST body: valid JSON (else −32700), a valid JSON-RPC 2.0
/// envelope (else −32600 with the id when it can be read), batch limits. The body itself is
/// never rewritten; batch entries are split apart.
pub(crate) fn check(body: &[u8]) -> Result<Envelope, Rejection> {
    let parse_error = parse_rejection;
    let invalid = |id: RequestId, message: String| Rejection {
        code: INVALID_REQUEST,
        id,
        message,
    };
    match body.iter().find(|byte| !byte.is_ascii_whitespace()) {
        Some(b'{') => match serde_json::from_slice::<Probe<'_>>(body) {
            Ok(probe) => match probe.check() {
                Ok(()) => Ok(Envelope::Single(probe.reply_id(), probe.method_label())),
                Err(message) => Err(invalid(probe.reply_id(), message.to_owned())),
            },
            Err(error) if error.is_data() => Err(invalid(
                RequestId::null(),
                format!("invalid message: {error}"),
            )),
            Err(error) => Err(parse_error(error)),
        },
        Some(b'[') => check_batch(body),
        _ => {
            serde_json::from_slice::<serde::de::IgnoredAny>(body).map_err(parse_error)?;
            Err(invalid(
                RequestId::null(),
                "a JSON-RPC message must be an object, or an array of them (a batch)".into(),
            ))
        }
    }
}

/// A batch: counted and cut into entries by scanning its text (`json_array`), so one over
/// the limit is refused before any entry is parsed, then each entry checked on its own.
/// An entry that is not JSON makes the whole body a parse error, as it would be parsed
/// whole.
fn check_batch(body: &[u8]) -> Result<Envelope, Rejection> {
    let reject = |message: String| Rejection {
        code: INVALID_REQUEST,
        id: RequestId::null(),
        message,
    };
    let ranges = match json_array::split(body, MAX_BATCH) {
        Ok(ranges) => ranges,
        Err(SplitError::TooMany) => {
            return Err(reject(format!(
                "batch of more than {MAX_BATCH} messages exceeds the limit of {MAX_BATCH}"
            )));
        }
        // serde_json says where the text stops being JSON.
        Err(SplitError::Malformed) => {
            let error = serde_json::from_slice::<serde::de::IgnoredAny>(body)
                .err()
                .unwrap_or_else(|| serde::de::Error::custom("not a JSON array"));
            return Err(parse_rejection(error));
        }
    };
    if ranges.is_empty() {
        return Err(reject("empty batch".into()));
    }
    let mut entries = Vec::with_capacity(ranges.len());
    for range in ranges {
        let text = &body[range];
        let verdict = match text.iter().find(|byte| !byte.is_ascii_whitespace()) {
            Some(b'{') => match serde_json::from_slice::<Probe<'_>>(text) {
                Ok(probe) => match probe.check() {
                    Ok(()) => Ok(probe),
                    Err(message) => Err((probe.reply_id(), message.to_owned())),
                },
                Err(error) if error.is_data() => {
                    Err((RequestId::null(), format!("invalid message: {error}")))
                }
                Err(error) => return Err(parse_rejection(error)),
            },
            _ => {
                serde_json::from_slice::<serde::de::IgnoredAny>(text).map_err(parse_rejection)?;
                Err((
                    RequestId::null(),
                    "a batch entry must be a JSON-RPC message (an object)".to_owned(),
                ))
            }
        };
        entries.push(match verdict {
            Ok(probe) => BatchEntry::Valid {
                id: (probe.method.is_some() && probe.id.is_some()).then(|| probe.reply_id()),
                message: Bytes::copy_from_slice(text.trim_ascii()),
            },
            Err((id, message)) => BatchEntry::Invalid(error_object(&id, INVALID_REQUEST, message)),
        });
    }
    Ok(Envelope::Batch(Batch { entries }))
}

/// The −32700 answer to a body that is not JSON.
fn parse_rejection(error: serde_json::Error) -> Rejection {
    Rejection {
        code: PARSE_ERROR,
        id: RequestId::null(),
        message: ParseError(error).to_string(),
    }
}

/// A JSON-RPC error message.
pub(crate) fn error_object(id: &RequestId, code: i64, message: impl Into<String>) -> Value {
    json!({
        "jsonrpc": "2.0",
        "id": id.0,
        "error": {"code": code, "message": message.into()},
    })
}

/// A JSON-RPC error message with `data` (none when `None`).
pub(crate) fn error_object_with_data(
    id: &RequestId,
    code: i64,
    message: impl Into<String>,
    data: Option<Value>,
) -> Value {
    let mut error = error_object(id, code, message);
    if let Some(data) = data {
        error["error"]["data"] = data;
    }
    error
}

/// An HTTP response with a JSON-RPC error body.
pub(crate) fn error_response(
    status: StatusCode,
    id: &RequestId,
    code: i64,
    message: impl Into<String>,
) -> Response<Full<Bytes>> {
    json_response(status, &error_object(id, code, message))
}

/// An HTTP response with a JSON body.
pub(crate) fn json_response(status: StatusCode, body: &Value) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body.to_string())));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

#[cfg(test)]
mod tests {
    use http_body_util::BodyExt;

    use super::*;

    fn single(body: &str) -> Value {
        match check(body.as_bytes()) {
            Ok(Envelope::Single(id, _)) => id.0,
            other => panic!("{body}: {other:?}"),
        }
    }

    fn rejected(body: &str) -> Rejection {
        check(body.as_bytes()).expect_err(body)
    }

    #[test]
    fn accepts_requests_notifications_and_responses() {
        assert_eq!(
            single(r#"{"jsonrpc":"2.0","id":7,"method":"ping"}"#),
            json!(7)
        );
        assert_eq!(
            single(r#" {"jsonrpc":"2.0","id":"a-1","method":"x","params":{"a":[1]}}"#),
            json!("a-1")
        );
        assert_eq!(
            single(r#"{"jsonrpc":"2.0","method":"notifications/x"}"#),
            Value::Null
        );
        assert_eq!(single(r#"{"jsonrpc":"2.0","id":3,"result":{}}"#), json!(3));
        assert_eq!(
            single(r#"{"jsonrpc":"2.0","id":4,"error":{"code":1,"message":"m"}}"#),
            json!(4)
        );
        // Escaped strings, fractional and large ids come back exactly as sent.
        assert_eq!(
            single(r#"{"jsonrpc":"2\u002e0","id":"q\"\u00e9","method":"x"}"#),
            json!("q\"\u{e9}")
        );
        assert_eq!(
            single(r#"{"jsonrpc":"2.0","id":2.5,"method":"x"}"#),
            json!(2.5)
        );
        assert_eq!(
            single(r#"{"jsonrpc":"2.0","id":18446744073709551615,"method":"x"}"#),
            json!(u64::MAX)
        );
    }

    #[test]
    fn invalid_envelopes_keep_the_id_they_can_read() {
        for (body, id) in [
            (r#"{"id":1,"method":"x"}"#, json!(1)),
            (r#"{"jsonrpc":"1.0","id":"s","method":"x"}"#, json!("s")),
            (r#"{"jsonrpc":"2.0","id":2,"method":5}"#, json!(2)),
            (
                r#"{"jsonrpc":"2.0","id":2,"method":"x","params":3}"#,
                json!(2),
            ),
            (r#"{"jsonrpc":"2.0","id":true,"method":"x"}"#, Value::Null),
            (r#"{"jsonrpc":"2.0","id":null,"method":"x"}"#, Value::Null),
            (r#"{"jsonrpc":"2.0","id":9}"#, json!(9)),
            (
                r#"{"jsonrpc":"2.0","id":9,"result":1,"error":{}}"#,
                json!(9),
            ),
            (
                r#"{"jsonrpc":"2.0","id":1,"id":2,"method":"x"}"#,
                Value::Null,
            ),
            ("42", Value::Null),
            (r#""text""#, Value::Null),
        ] {
            let rejection = rejected(body);
            assert_eq!(rejection.code, INVALID_REQUEST, "{body}");
            assert_eq!(rejection.id.0, id, "{body}");
        }
        for body in ["{not json", "", "[1,", r#"{"jsonrpc":"2.0","id":1"#] {
            let rejection = rejected(body);
            assert_eq!(rejection.code, PARSE_ERROR, "{body}");
            assert_eq!(rejection.id.0, Value::Null, "{body}");
        }
    }

    fn entries(body: &str) -> Vec<BatchEntry> {
        match check(body.as_bytes()) {
            Ok(Envelope::Batch(batch)) => batch.entries,
            other => panic!("{body}: {other:?}"),
        }
    }

    #[test]
    fn batches_split_into_entries_in_order() {
        let body = r#"[{"jsonrpc":"2.0","id":1,"method":"a"},{"id":2,"method":"b"},
            {"jsonrpc":"2.0","method":"n"},7,{"jsonrpc":"2.0","id":"r","result":{}}]"#;
        let entries = entries(body);
        assert_eq!(entries.len(), 5);
        let BatchEntry::Valid { message, id } = &entries[0] else {
            panic!("{entries:?}");
        };
        assert_eq!(id, &Some(RequestId(json!(1))));
        let message: Value = serde_json::from_slice(message).unwrap();
        assert_eq!(message, json!({"jsonrpc":"2.0","id":1,"method":"a"}));
        let BatchEntry::Invalid(error) = &entries[1] else {
            panic!("{entries:?}");
        };
        assert_eq!(error["id"], json!(2));
        assert_eq!(error["error"]["code"], INVALID_REQUEST);
        // Notifications and responses get no reply.
        assert!(matches!(&entries[2], BatchEntry::Valid { id: None, .. }));
        assert!(matches!(&entries[3], BatchEntry::Invalid(error) if error["id"].is_null()));
        assert!(matches!(&entries[4], BatchEntry::Valid { id: None, .. }));

        assert_eq!(rejected("[]").code, INVALID_REQUEST);
        let entry = r#"{"jsonrpc":"2.0","method":"n"}"#;
        let full = format!("[{}]", vec![entry; MAX_BATCH].join(","));
        assert!(check(full.as_bytes()).is_ok());
        let over = format!("[{}]", vec![entry; MAX_BATCH + 1].join(","));
        assert!(rejected(&over).message.contains("limit"));
    }

    #[test]
    fn batches_are_counted_before_entries_are_parsed() {
        // Five million entries: refused as over the limit, not parsed into values first.
        let mut zeros = b"[0".to_vec();
        zeros.extend(std::iter::repeat_n(b",0".as_slice(), 5_000_000).flatten());
        zeros.push(b']');
        let rejection = check(&zeros).expect_err("over the limit");
        assert_eq!(rejection.code, INVALID_REQUEST);
        assert!(rejection.message.contains("limit"), "{}", rejection.message);

        // An entry that is not JSON makes the whole body a parse error.
        for body in [
            r#"[{"jsonrpc":"2.0","method":"n"},{"jsonrpc":}]"#,
            r#"[{"jsonrpc":"2.0","method":"n"},]"#,
            r#"[{"jsonrpc":"2.0","method":"n"}"#,
            r#"[{"jsonrpc":"2.0","method":"n"}] x"#,
        ] {
            assert_eq!(rejected(body).code, PARSE_ERROR, "{body}");
        }
        // An entry naming a field twice is invalid, as a single message would be.
        let twice = entries(r#"[{"jsonrpc":"2.0","id":1,"id":2,"method":"x"}]"#);
        assert!(matches!(&twice[0], BatchEntry::Invalid(_)), "{twice:?}");
        // Entries are passed on as they came.
        let kept = entries(r#"[ {"jsonrpc":"2.0", "method":"n", "params":{"a":[1, 2]}} ]"#);
        let BatchEntry::Valid { message, .. } = &kept[0] else {
            panic!("{kept:?}");
        };
        assert_eq!(
            &message[..],
            br#"{"jsonrpc":"2.0", "method":"n", "params":{"a":[1, 2]}}"#
        );
    }

    #[tokio::test]
    async fn error_body_is_json_rpc() {
        let response = error_response(
            StatusCode::BAD_GATEWAY,
            &RequestId(json!(3)),
            INTERNAL_ERROR,
            "down",
        );
        assert_eq!(response.status(), StatusCode::BAD_GATEWAY);
        assert_eq!(response.headers()[header::CONTENT_TYPE], "application/json");
        let body = response.into_body().collect().await.unwrap().to_bytes();
        let value: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(
            value,
            json!({"jsonrpc":"2.0","id":3,"error":{"code":-32603,"message":"down"}})
        );
    }
}
