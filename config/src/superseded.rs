//! Fields and values of the original mcp-conduit that Conduit refuses on purpose, each with a
//! message saying what replaces it. They are checked before the generic "unknown field"
//! error, so a user moving a config over learns where each setting went instead of getting a
//! bare rejection (or, worse, a setting silently ignored).
//!
//! Paths here are "shapes": list indexes are written `[]` (`guardrails.rules[]`).

const FIELDS: &[(&str, &str, &str)] = &[
    (
        "gateway",
        "port",
        "the data plane's public address is not part of the config: start it with `conduit-data-plane run --listen HOST:PORT`",
    ),
    (
        "gateway",
        "host",
        "the data plane's public address is not part of the config: start it with `conduit-data-plane run --listen HOST:PORT`",
    ),
    (
        "admin",
        "key",
        "the admin API lives on the control plane; set CONDUIT_ADMIN_TOKEN there",
    ),
    (
        "admin",
        "allow_unauthenticated",
        "the admin API lives on the control plane, which refuses a non-loopback listen address without CONDUIT_ADMIN_TOKEN; there is no override",
    ),
    (
        "metrics",
        "port",
        "each data plane serves /metrics on its internal listener; set its address with `conduit-data-plane run --admin-listen HOST:PORT`",
    ),
    (
        "metrics",
        "require_auth",
        "/metrics is served on the data plane's internal listener (`--admin-listen`), never on the public port; keep that listener on a private address",
    ),
    (
        "observability",
        "db_path",
        "audit records are sent to the control plane and kept in its database (`conduit-control-plane serve --data-dir DIR`)",
    ),
    (
        "identity",
        "db_path",
        "connected accounts are kept in the control plane's database (`conduit-control-plane serve --data-dir DIR`)",
    ),
    (
        "governance",
        "db_path",
        "approvals and governance events are kept in the control plane's database (`conduit-control-plane serve --data-dir DIR`)",
    ),
    (
        "rate_limits",
        "queue",
        "not supported: a request over a limit fails at once with Retry-After (the original accepted `queue` but never used it); remove this block",
    ),
    (
        "connect",
        "profiles",
        "profiles moved to the top level of the document: write them under `profiles:`",
    ),
    (
        "auth",
        "jwt_issuer",
        "unknown field, did you mean \"issuer\"?",
    ),
    (
        "auth",
        "jwt_audience",
        "unknown field, did you mean \"audience\"?",
    ),
];

const VALUES: &[(&str, &str, &str)] = &[(
    "guardrails.rules[].action",
    "transform",
    "`transform` is not supported: the original accepted it but never changed the arguments; use block, alert or require_approval",
)];

/// The message for a refused field `key` of the object at `path`, if it is one.
pub(crate) fn field(path: &str, key: &str) -> Option<&'static str> {
    let shape = shape(path);
    FIELDS
        .iter()
        .find(|(at, name, _)| *at == shape && *name == key)
        .map(|(_, _, message)| *message)
}

/// The message for a refused enumeration `value` at `path`, if it is one.
pub(crate) fn value(path: &str, value: &str) -> Option<&'static str> {
    let shape = shape(path);
    VALUES
        .iter()
        .find(|(at, refused, _)| *at == shape && *refused == value)
        .map(|(_, _, message)| *message)
}

/// `guardrails.rules[3].action` → `guardrails.rules[].action`.
fn shape(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    let mut in_index = false;
    for c in path.chars() {
        match c {
            '[' => {
                in_index = true;
                out.push('[');
            }
            ']' => {
                in_index = false;
                out.push(']');
            }
            _ if in_index && c.is_ascii_digit() => {}
            _ => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_drop_indexes() {
        assert_eq!(
            shape("guardrails.rules[12].action"),
            "guardrails.rules[].action"
        );
        assert_eq!(shape(""), "");
    }

    #[test]
    fn finds_refused_fields_and_values() {
        assert!(
            field("admin", "key")
                .unwrap()
                .contains("CONDUIT_ADMIN_TOKEN")
        );
        assert!(field("admin", "allow_private_networks").is_none());
        assert!(value("guardrails.rules[0].action", "transform").is_some());
        assert!(value("guardrails.rules[0].action", "block").is_none());
    }
}
