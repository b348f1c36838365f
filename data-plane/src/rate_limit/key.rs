//! Bucket keys: `global`, `client:<c>`, `server:<s>`, `tool:<s>:<t>`,
//! `client_server_tool:<c>:<s>:<t>`, `workspace:<w>`, and the Redis key of a bucket in one
//! window, `conduit:rl:v1:<window>:<bucket key>`.
//!
//! Ids are escaped so that no id can forge another bucket's key: `%`, `:` and `#` become
//! `%25`, `%3A` and `%23`, so a client id `a:server:b` stays one segment. Ids longer than
//! 64 bytes (tool names come from the request) are replaced by `#` and the hex SHA-256 of
//! the id, which bounds the key length; the `#` cannot start an escaped id.

use std::borrow::Cow;

use sha2::{Digest, Sha256};

use super::Window;

/// Ids longer than this are hashed.
const MAX_ID_BYTES: usize = 64;
/// Prefix of every Redis key; the version changes whenever the layout does.
pub(crate) const REDIS_PREFIX: &str = "conduit:rl:v1";

pub(crate) fn global() -> String {
    "global".to_owned()
}

pub(crate) fn client(client: &str) -> String {
    format!("client:{}", id(client))
}

pub(crate) fn server(server: &str) -> String {
    format!("server:{}", id(server))
}

pub(crate) fn tool(server: &str, tool: &str) -> String {
    format!("tool:{}:{}", id(server), id(tool))
}

pub(crate) fn client_server_tool(client: &str, server: &str, tool: &str) -> String {
    format!(
        "client_server_tool:{}:{}:{}",
        id(client),
        id(server),
        id(tool)
    )
}

pub(crate) fn workspace(workspace: &str) -> String {
    format!("workspace:{}", id(workspace))
}

/// The Redis key of a bucket's counter in one window.
pub(crate) fn redis_key(window: Window, bucket: &str) -> String {
    format!("{REDIS_PREFIX}:{}:{bucket}", window.as_str())
}

/// One id as a key segment (see the module doc).
fn id(raw: &str) -> Cow<'_, str> {
    if raw.len() > MAX_ID_BYTES {
        return Cow::Owned(format!("#{}", hex::encode(Sha256::digest(raw.as_bytes()))));
    }
    if !raw.contains(['%', ':', '#']) {
        return Cow::Borrowed(raw);
    }
    let mut escaped = String::with_capacity(raw.len() + 8);
    for c in raw.chars() {
        match c {
            '%' => escaped.push_str("%25"),
            ':' => escaped.push_str("%3A"),
            '#' => escaped.push_str("%23"),
            c => escaped.push(c),
        }
    }
    Cow::Owned(escaped)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout() {
        assert_eq!(global(), "global");
        assert_eq!(client("agent-1"), "client:agent-1");
        assert_eq!(tool("github", "create_issue"), "tool:github:create_issue");
        assert_eq!(
            client_server_tool("a", "s", "t"),
            "client_server_tool:a:s:t"
        );
        assert_eq!(workspace("acme"), "workspace:acme");
        assert_eq!(
            redis_key(Window::Hour, &client("c")),
            "conduit:rl:v1:hour:client:c"
        );
    }

    #[test]
    fn ids_with_separators_cannot_collide() {
        // Without escaping, client "a:b" on server "c" and client "a" on server "b:c" would
        // share one key.
        assert_ne!(
            client_server_tool("a:b", "c", "t"),
            client_server_tool("a", "b:c", "t")
        );
        assert_eq!(client("a:b"), "client:a%3Ab");
        assert_eq!(client("100%"), "client:100%25");
        assert_ne!(client("a%3Ab"), client("a:b"));
    }

    #[test]
    fn long_ids_are_hashed_and_cannot_be_forged() {
        let long = "x".repeat(10_000);
        let key = tool("s", &long);
        assert!(key.len() < 100, "{key}");
        assert!(key.starts_with("tool:s:#"), "{key}");
        let hashed = key.trim_start_matches("tool:s:");
        // An id that spells out the hash is escaped, so it names a different bucket.
        assert_ne!(tool("s", hashed), key);
        assert_eq!(
            tool("s", &"x".repeat(64)),
            format!("tool:s:{}", "x".repeat(64))
        );
    }
}
