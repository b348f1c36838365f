//! The two renamings an aggregate does: tool, prompt and resource names carry their server
//! (`<server_id>.<name>` under `router.namespace_strategy: prefix`), and the ids of requests
//! a member sends to the client (sampling, elicitation, roots) carry the member, so the
//! client's answer can be routed back.
//!
//! Server→client request ids are rewritten to the string `"<server_id>:<original id as
//! JSON>"`: `0` from `alpha` becomes `"alpha:0"`, `"r-1"` becomes `"alpha:\"r-1\""`. Server
//! ids contain neither `:` nor `.` (letters, digits and `-`), so the first `:` always ends
//! the server id, and the rest restores the original id exactly, number or string. Two
//! members using the same id never collide on the client side.

use serde_json::Value;

/// Separator between the server id and the name in a prefixed name.
pub(super) const NAME_SEPARATOR: char = '.';
/// Separator between the server id and the original id in a rewritten request id.
const ID_SEPARATOR: char = ':';

/// `<server_id>.<name>`.
pub(super) fn prefixed(server_id: &str, name: &str) -> String {
    let mut out = String::with_capacity(server_id.len() + 1 + name.len());
    out.push_str(server_id);
    out.push(NAME_SEPARATOR);
    out.push_str(name);
    out
}

/// Split a prefixed name into `(server_id, name)`; `None` when it has no separator or an
/// empty part.
pub(super) fn split_prefixed(name: &str) -> Option<(&str, &str)> {
    name.split_once(NAME_SEPARATOR)
        .filter(|(server, rest)| !server.is_empty() && !rest.is_empty())
}

/// The id the client sees for request `id` sent by member `server_id`.
pub(super) fn client_request_id(server_id: &str, id: &Value) -> Value {
    Value::String(format!("{server_id}{ID_SEPARATOR}{id}"))
}

/// The member and original id behind an id made by [`client_request_id`].
pub(super) fn member_request_id(id: &Value) -> Option<(&str, Value)> {
    let (server, original) = id.as_str()?.split_once(ID_SEPARATOR)?;
    if server.is_empty() {
        return None;
    }
    match serde_json::from_str::<Value>(original).ok()? {
        original @ (Value::String(_) | Value::Number(_)) => Some((server, original)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn prefixed_names_split_at_the_first_separator() {
        assert_eq!(prefixed("alpha", "echo"), "alpha.echo");
        assert_eq!(split_prefixed("alpha.echo"), Some(("alpha", "echo")));
        // Tool names may contain dots themselves; server ids never do.
        assert_eq!(split_prefixed("alpha.v2.run"), Some(("alpha", "v2.run")));
        for bad in ["echo", ".echo", "alpha.", ""] {
            assert_eq!(split_prefixed(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn request_ids_round_trip_with_their_type() {
        for original in [json!(0), json!(-7), json!(1.5), json!("r-1"), json!("a:b")] {
            let rewritten = client_request_id("alpha", &original);
            assert!(rewritten.is_string(), "{rewritten}");
            assert_eq!(
                member_request_id(&rewritten),
                Some(("alpha", original.clone())),
                "{rewritten}"
            );
        }
        assert_eq!(client_request_id("beta", &json!(3)), json!("beta:3"));
        assert_eq!(client_request_id("beta", &json!("x")), json!("beta:\"x\""));
    }

    #[test]
    fn foreign_ids_are_not_taken_for_member_ids() {
        for id in [
            json!(4),
            json!("plain"),
            json!(":1"),
            json!("alpha:"),
            json!("alpha:{\"a\":1}"),
            json!("alpha:[1]"),
            json!("alpha:null"),
            json!("alpha:not json"),
        ] {
            assert_eq!(member_request_id(&id), None, "{id}");
        }
    }
}
