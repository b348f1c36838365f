//! What the data plane knows of each tool's MCP annotations (`readOnlyHint`,
//! `destructiveHint`, ...), for guardrail rules that select tools by them.
//!
//! The registry is filled from every `tools/list` answer that passes through the data plane
//! while a policy section is on (single-server answers, JSON or event stream, and the
//! members' lists on aggregate endpoints), per server id and tool name. It is kept across
//! configuration swaps while a server's upstream (transport, URLs, command) is unchanged,
//! the way replica health is, and starts empty for a server whose upstream changed.
//!
//! A `tools/call` of a tool the registry does not know (no list seen yet, or a tool the
//! server did not list) is judged with the MCP defaults ([`ToolAnnotations::UNKNOWN`]: not
//! read-only, destructive, not idempotent, open world): an unknown tool counts as
//! destructive, so a rule guarding destructive tools guards it too. The data plane does not
//! list the tools on its own before such a call; a client normally lists before calling.
//!
//! Bounded: at most [`MAX_TOOLS_PER_SERVER`] tools per server; names beyond that are not
//! recorded (and so are judged by the defaults, the safe side).

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::{Arc, PoisonError, RwLock};

use conduit_config::{Document, ServerConfig};
use conduit_policy::annotations::ToolAnnotations;
use serde_json::Value;

/// Most tools recorded per server.
pub(super) const MAX_TOOLS_PER_SERVER: usize = 10_000;

/// The annotations of one server's tools.
#[derive(Debug, Default)]
pub(super) struct ServerTools {
    tools: RwLock<HashMap<String, ToolAnnotations>>,
}

impl ServerTools {
    /// Record the annotations of a `tools/list` entry named `name`.
    pub(super) fn record(&self, name: &str, tool: &Value) {
        let annotations = ToolAnnotations::from_tool(tool);
        if self.get(name) == Some(annotations) {
            return;
        }
        let mut tools = self.tools.write().unwrap_or_else(PoisonError::into_inner);
        if tools.len() >= MAX_TOOLS_PER_SERVER && !tools.contains_key(name) {
            return;
        }
        tools.insert(name.to_owned(), annotations);
    }

    /// The recorded annotations of `name`.
    pub(super) fn get(&self, name: &str) -> Option<ToolAnnotations> {
        let tools = self.tools.read().unwrap_or_else(PoisonError::into_inner);
        tools.get(name).copied()
    }

    fn len(&self) -> usize {
        self.tools
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }
}

/// The annotations of every configured server's tools.
#[derive(Debug, Default)]
pub struct Registry {
    servers: HashMap<String, Entry>,
}

#[derive(Debug)]
struct Entry {
    /// Identifies the upstream: when it changes, what was learned is dropped.
    upstream: u64,
    tools: Arc<ServerTools>,
}

impl Registry {
    /// An empty registry for the servers of `document`.
    pub fn new(document: &Document) -> Registry {
        let servers = document
            .servers
            .iter()
            .map(|server| {
                let entry = Entry {
                    upstream: upstream_key(server),
                    tools: Arc::default(),
                };
                (server.id.clone(), entry)
            })
            .collect();
        Registry { servers }
    }

    /// Keep what `previous` learned about servers whose upstream is unchanged.
    pub fn inherit(&mut self, previous: &Registry) {
        for (id, entry) in &mut self.servers {
            if let Some(old) = previous.servers.get(id)
                && old.upstream == entry.upstream
            {
                entry.tools = Arc::clone(&old.tools);
            }
        }
    }

    /// Record a `tools/list` entry of `server` (an entry without a string `name` is
    /// skipped).
    pub fn record(&self, server: &str, tool: &Value) {
        let (Some(entry), Some(name)) = (
            self.servers.get(server),
            tool.get("name").and_then(Value::as_str),
        ) else {
            return;
        };
        entry.tools.record(name, tool);
    }

    /// The annotations of `tool` on `server`; the MCP defaults when unknown.
    pub fn annotations(&self, server: &str, tool: &str) -> ToolAnnotations {
        self.servers
            .get(server)
            .and_then(|entry| entry.tools.get(tool))
            .unwrap_or(ToolAnnotations::UNKNOWN)
    }

    /// How many tools of `server` are recorded.
    pub fn known_tools(&self, server: &str) -> usize {
        self.servers.get(server).map_or(0, |e| e.tools.len())
    }
}

/// What identifies a server's upstream: its transport, URLs and command line.
fn upstream_key(server: &ServerConfig) -> u64 {
    let mut hasher = DefaultHasher::new();
    format!("{:?}", server.transport).hash(&mut hasher);
    server.url.hash(&mut hasher);
    server.replicas.hash(&mut hasher);
    server.command.hash(&mut hasher);
    server.args.hash(&mut hasher);
    hasher.finish()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn document(url: &str) -> Document {
        Document::from_text(&format!(
            "servers:\n  - id: a\n    url: {url}\n  - id: b\n    url: http://b/mcp\n"
        ))
        .unwrap()
    }

    #[test]
    fn records_listed_tools_and_defaults_the_rest() {
        let registry = Registry::new(&document("http://a/mcp"));
        registry.record(
            "a",
            &json!({"name": "read", "annotations": {"readOnlyHint": true, "destructiveHint": false}}),
        );
        registry.record("a", &json!({"name": "plain"}));
        registry.record("a", &json!({"title": "no name"}));
        registry.record("unknown-server", &json!({"name": "x"}));
        let read = registry.annotations("a", "read");
        assert!(read.read_only && !read.destructive);
        assert_eq!(registry.annotations("a", "plain"), ToolAnnotations::UNKNOWN);
        assert_eq!(registry.annotations("a", "never"), ToolAnnotations::UNKNOWN);
        assert_eq!(registry.annotations("b", "read"), ToolAnnotations::UNKNOWN);
        assert_eq!(registry.known_tools("a"), 2);
        // A later list wins.
        registry.record("a", &json!({"name": "read"}));
        assert!(registry.annotations("a", "read").destructive);
    }

    #[test]
    fn survives_a_config_swap_while_the_upstream_is_unchanged() {
        let first = Registry::new(&document("http://a/mcp"));
        first.record(
            "a",
            &json!({"name": "t", "annotations": {"readOnlyHint": true}}),
        );
        first.record(
            "b",
            &json!({"name": "t", "annotations": {"readOnlyHint": true}}),
        );
        let mut second = Registry::new(&document("http://a2/mcp"));
        second.inherit(&first);
        assert!(
            !second.annotations("a", "t").read_only,
            "a's upstream changed"
        );
        assert!(second.annotations("b", "t").read_only, "b's did not");
    }

    #[test]
    fn is_bounded_per_server() {
        let tools = ServerTools::default();
        for n in 0..MAX_TOOLS_PER_SERVER + 5 {
            tools.record(
                &format!("t{n}"),
                &json!({"annotations": {"readOnlyHint": true}}),
            );
        }
        assert_eq!(tools.len(), MAX_TOOLS_PER_SERVER);
        assert!(tools.get(&format!("t{MAX_TOOLS_PER_SERVER}")).is_none());
        // Known names are still updated.
        tools.record("t0", &json!({}));
        assert_eq!(tools.get("t0"), Some(ToolAnnotations::UNKNOWN));
    }
}
