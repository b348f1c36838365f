//! The fields of a JSON-RPC message that the gateway rewrites between a shared process and
//! its many clients: the message id, `params._meta.progressToken` of a request,
//! `params.progressToken` of `notifications/progress` and `params.requestId` of
//! `notifications/cancelled`. Pure functions over `serde_json::Value`; the tables that say
//! what maps to what live in [`super::connection`].

use bytes::Bytes;
use serde_json::{Map, Value, json};

/// What a JSON-RPC message is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    /// `method` and `id`.
    Request,
    /// `method` without `id`.
    Notification,
    /// `id` with `result` or `error`, no `method`.
    Response,
    /// Anything else.
    Invalid,
}

/// The kind of `message`.
pub(super) fn kind(message: &Value) -> Kind {
    let Some(object) = message.as_object() else {
        return Kind::Invalid;
    };
    match (object.get("method"), object.get("id")) {
        (Some(Value::String(_)), Some(_)) => Kind::Request,
        (Some(Value::String(_)), None) => Kind::Notification,
        (None, Some(_)) if object.contains_key("result") || object.contains_key("error") => {
            Kind::Response
        }
        _ => Kind::Invalid,
    }
}

/// The `method` of a request or notification.
pub(super) fn method(message: &Value) -> Option<&str> {
    message.get("method").and_then(Value::as_str)
}

/// The message's `id` (`null` when it has none).
pub(super) fn id(message: &Value) -> Value {
    message.get("id").cloned().unwrap_or(Value::Null)
}

/// Replace the message's `id`, returning the old one.
pub(super) fn replace_id(message: &mut Value, id: Value) -> Value {
    match message.as_object_mut() {
        Some(object) => object.insert("id".into(), id).unwrap_or(Value::Null),
        None => Value::Null,
    }
}

/// The gateway id a process used in a response, if it is one the gateway could have issued.
pub(super) fn gateway_id(id: &Value) -> Option<u64> {
    id.as_u64()
}

/// Replace `params._meta.progressToken` of a request with `token`; returns the caller's
/// token, or `None` (and leaves the message alone) when it has none.
pub(super) fn replace_request_progress_token(request: &mut Value, token: Value) -> Option<Value> {
    let slot = request
        .get_mut("params")?
        .get_mut("_meta")?
        .as_object_mut()?
        .get_mut("progressToken")?;
    Some(std::mem::replace(slot, token))
}

/// Replace the `params` field `name` of a notification, returning the old value.
pub(super) fn replace_param(message: &mut Value, name: &str, value: Value) -> Option<Value> {
    let slot = message.get_mut("params")?.as_object_mut()?.get_mut(name)?;
    Some(std::mem::replace(slot, value))
}

/// The `params` field `name` of a notification.
pub(super) fn param<'a>(message: &'a Value, name: &str) -> Option<&'a Value> {
    message.get("params")?.get(name)
}

/// One message as a line for the process's stdin.
pub(super) fn line(message: &Value) -> Bytes {
    let mut bytes = serde_json::to_vec(message).unwrap_or_default();
    bytes.push(b'\n');
    Bytes::from(bytes)
}

/// A JSON-RPC success response.
pub(super) fn result(id: Value, result: Value) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "result": result})
}

/// A JSON-RPC error response.
pub(super) fn error(id: Value, code: i64, message: impl Into<String>) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "error": {"code": code, "message": message.into()}})
}

/// A JSON-RPC notification.
pub(super) fn notification(method: &str, params: Map<String, Value>) -> Value {
    json!({"jsonrpc": "2.0", "method": method, "params": params})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds() {
        assert_eq!(
            kind(&json!({"jsonrpc":"2.0","id":1,"method":"x"})),
            Kind::Request
        );
        assert_eq!(
            kind(&json!({"jsonrpc":"2.0","method":"x"})),
            Kind::Notification
        );
        assert_eq!(
            kind(&json!({"jsonrpc":"2.0","id":1,"result":{}})),
            Kind::Response
        );
        assert_eq!(
            kind(&json!({"jsonrpc":"2.0","id":1,"error":{}})),
            Kind::Response
        );
        assert_eq!(kind(&json!({"jsonrpc":"2.0","id":1})), Kind::Invalid);
        assert_eq!(kind(&json!([1])), Kind::Invalid);
        assert_eq!(kind(&json!({"method": 3})), Kind::Invalid);
    }

    #[test]
    fn ids_and_tokens_are_swapped_in_place() {
        let mut request = json!({
            "jsonrpc": "2.0", "id": "client-7", "method": "tools/call",
            "params": {"name": "x", "_meta": {"progressToken": "tok", "other": 1}}
        });
        assert_eq!(replace_id(&mut request, json!(42)), json!("client-7"));
        assert_eq!(
            replace_request_progress_token(&mut request, json!(42)),
            Some(json!("tok"))
        );
        assert_eq!(
            request,
            json!({
                "jsonrpc": "2.0", "id": 42, "method": "tools/call",
                "params": {"name": "x", "_meta": {"progressToken": 42, "other": 1}}
            })
        );

        let mut plain = json!({"jsonrpc":"2.0","id":1,"method":"tools/list","params":{}});
        let before = plain.clone();
        assert_eq!(replace_request_progress_token(&mut plain, json!(9)), None);
        assert_eq!(plain, before);
    }

    #[test]
    fn notification_params() {
        let mut progress = json!({
            "jsonrpc": "2.0", "method": "notifications/progress",
            "params": {"progressToken": 42, "progress": 50}
        });
        assert_eq!(param(&progress, "progressToken"), Some(&json!(42)));
        assert_eq!(
            replace_param(&mut progress, "progressToken", json!("tok")),
            Some(json!(42))
        );
        assert_eq!(progress["params"]["progressToken"], "tok");
        assert_eq!(replace_param(&mut progress, "missing", json!(1)), None);
    }

    #[test]
    fn only_unsigned_integers_are_gateway_ids() {
        assert_eq!(gateway_id(&json!(17)), Some(17));
        assert_eq!(gateway_id(&json!("17")), None);
        assert_eq!(gateway_id(&json!(-1)), None);
        assert_eq!(gateway_id(&json!(1.5)), None);
    }

    #[test]
    fn lines_end_with_a_newline() {
        let bytes = line(&json!({"a": "b\nc"}));
        assert_eq!(&bytes[..], b"{\"a\":\"b\\nc\"}\n");
    }
}
