//! How the answers of several members become one answer: `initialize` and `server/discover`
//! results, and the tool, prompt, resource and template lists with their names namespaced.
//!
//! Protocol version of an aggregate session: the version the client asked for when every
//! member answered `initialize` with it; otherwise the oldest version a member answered
//! (never newer than the client's). Handshake versions are dates, so the oldest answer is
//! the newest version every member is known to speak: a member answering `V` implements
//! `V`, and servers keep the older versions (the negotiation rule of the MCP lifecycle
//! relies on that). Each member session keeps the version it negotiated itself; the
//! gateway sends that one in `MCP-Protocol-Version` to the member.
//!
//! For `server/discover` (stateless 2026-07-28 clients) the supported versions are the
//! intersection of the members' lists; an empty intersection is an error, which makes
//! clients fall back to `initialize`.

use crate::mcp::ListKind;
use serde_json::{Map, Value, json};

use super::ids;
use crate::catalog::Strategy;

/// The capabilities an aggregate merges; anything else a member declares stays private to
/// it.
const MERGED_CAPABILITIES: [&str; 5] = ["tools", "resources", "prompts", "logging", "completions"];
/// The name the gateway gives in `serverInfo` (its version is the crate's).
pub(super) const SERVER_NAME: &str = "conduit";
const SERVER_INFO_META: &str = "io.modelcontextprotocol/serverInfo";

/// Two members of an endpoint offer the same name under `namespace_strategy: none`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{noun} \"{name}\" is offered by both {first} and {second} on {endpoint}; with \
     router.namespace_strategy: none, names must be unique across the servers of an endpoint. \
     Use namespace_strategy: prefix (the {noun}s are then {first}.{name} and {second}.{name}) \
     or take one of the servers out of the endpoint"
)]
pub(super) struct Collision {
    /// What collides: `tool` or `prompt`.
    pub noun: &'static str,
    /// The name both offer.
    pub name: String,
    /// The member listed first, and the other one.
    pub first: String,
    pub second: String,
    /// The endpoint's path.
    pub endpoint: String,
}

/// The protocol version of an aggregate session (see the module docs).
pub(super) fn negotiate(requested: &str, answered: &[&str]) -> String {
    if answered.iter().all(|version| *version == requested) {
        return requested.to_owned();
    }
    answered
        .iter()
        .copied()
        .chain([requested])
        .min()
        .unwrap_or(requested)
        .to_owned()
}

/// The union of the members' capabilities: a capability is offered when any member offers
/// it, and `listChanged` / `subscribe` when any member sends those notifications.
pub(super) fn capabilities<'a>(members: impl IntoIterator<Item = &'a Value>) -> Value {
    let mut merged = Map::new();
    for member in members {
        for name in MERGED_CAPABILITIES {
            let Some(Value::Object(offered)) = member.get(name) else {
                continue;
            };
            let entry = merged
                .entry(name)
                .or_insert_with(|| Value::Object(Map::new()));
            for flag in ["listChanged", "subscribe"] {
                if offered.get(flag) == Some(&Value::Bool(true)) {
                    entry[flag] = Value::Bool(true);
                }
            }
        }
    }
    Value::Object(merged)
}

/// The members' instructions, each introduced by its server id, after a line saying how
/// names are formed.
pub(super) fn instructions(strategy: Strategy, members: &[(&str, Option<&str>)]) -> Option<String> {
    let parts: Vec<String> = members
        .iter()
        .filter_map(|(id, text)| text.filter(|t| !t.trim().is_empty()).map(|t| (id, t)))
        .map(|(id, text)| format!("[{id}] {}", text.trim()))
        .collect();
    if members.is_empty() {
        return None;
    }
    let ids: Vec<&str> = members.iter().map(|(id, _)| *id).collect();
    let intro = match strategy {
        Strategy::Prefix => format!(
            "This endpoint aggregates the MCP servers {}; their tools and prompts are named \
             <server_id>.<name>.",
            ids.join(", ")
        ),
        Strategy::None => format!(
            "This endpoint aggregates the MCP servers {}.",
            ids.join(", ")
        ),
    };
    if members.is_empty() {
        return None;
    }
    Some(
        std::iter::once(intro)
            .chain(parts)
            .collect::<Vec<_>>()
            .join("\n\n"),
    )
}

/// The gateway's `initialize` result.
pub(super) fn initialize_result(
    protocol_version: &str,
    capabilities: Value,
    instructions: Option<String>,
) -> Value {
    let mut result = json!({
        "protocolVersion": protocol_version,
        "capabilities": capabilities,
        "serverInfo": {"name": SERVER_NAME, "version": env!("CARGO_PKG_VERSION")},
    });
    if let Some(instructions) = instructions {
        result["instructions"] = Value::String(instructions);
    }
    result
}

/// The gateway's `server/discover` result from the members' (in member order), or why
/// there is none.
pub(super) fn discover_result(
    strategy: Strategy,
    members: &[(&str, &Value)],
) -> Result<Value, String> {
    let mut versions: Option<Vec<String>> = None;
    for (id, result) in members {
        let Some(supported) = result.get("supportedVersions").and_then(Value::as_array) else {
            return Err(format!("{id} answered without supportedVersions"));
        };
        let supported: Vec<String> = supported
            .iter()
            .filter_map(|v| v.as_str().map(str::to_owned))
            .collect();
        versions = Some(match versions {
            None => supported,
            Some(common) => common
                .into_iter()
                .filter(|v| supported.contains(v))
                .collect(),
        });
    }
    let versions = versions.unwrap_or_default();
    if versions.is_empty() {
        return Err("the servers have no protocol version in common".into());
    }
    let described: Vec<(&str, Option<&str>)> = members
        .iter()
        .map(|(id, result)| (*id, result.get("instructions").and_then(Value::as_str)))
        .collect();
    let mut result = json!({
        "supportedVersions": versions,
        "capabilities": capabilities(members.iter().filter_map(|(_, r)| r.get("capabilities"))),
        "_meta": {SERVER_INFO_META: {"name": SERVER_NAME, "version": env!("CARGO_PKG_VERSION")}},
    });
    if let Some(instructions) = instructions(strategy, &described) {
        result["instructions"] = Value::String(instructions);
    }
    merge_result_fields(&mut result, members.iter().map(|(_, r)| *r));
    Ok(result)
}

/// The 2026-07-28 result fields of a merged result: `resultType`, the shortest `ttlMs` and
/// the narrowest `cacheScope` of the members' results; absent when no member sent them.
pub(super) fn merge_result_fields<'a>(
    merged: &mut Value,
    results: impl IntoIterator<Item = &'a Value>,
) {
    for result in results {
        if result.get("resultType").is_some() {
            merged["resultType"] = Value::String("complete".into());
        }
        if let Some(ttl) = result.get("ttlMs").and_then(Value::as_u64) {
            let current = merged.get("ttlMs").and_then(Value::as_u64);
            merged["ttlMs"] = json!(current.map_or(ttl, |c| c.min(ttl)));
        }
        if let Some(scope) = result.get("cacheScope").and_then(Value::as_str)
            && merged.get("cacheScope").and_then(Value::as_str) != Some("private")
        {
            merged["cacheScope"] = Value::String(scope.to_owned());
        }
    }
}

/// The merged items of a list, in member order, names namespaced per `strategy`.
/// `endpoint` (a path) is only used in the collision error.
pub(super) fn list_items(
    kind: ListKind,
    strategy: Strategy,
    endpoint: &str,
    members: Vec<(&str, Vec<Value>)>,
) -> Result<Vec<Value>, Collision> {
    let mut items = Vec::with_capacity(members.iter().map(|(_, items)| items.len()).sum());
    let mut owners: std::collections::HashMap<String, &str> = std::collections::HashMap::new();
    for (server, member_items) in members {
        for mut item in member_items {
            let Some(name) = item.get("name").and_then(Value::as_str).map(str::to_owned) else {
                // A nameless item is an upstream fault; pass it on rather than hide it.
                items.push(item);
                continue;
            };
            match strategy {
                Strategy::Prefix => item["name"] = Value::String(ids::prefixed(server, &name)),
                Strategy::None if kind.named() => {
                    if let Some(first) = owners.insert(name.clone(), server)
                        && first != server
                    {
                        return Err(Collision {
                            noun: kind.noun(),
                            name,
                            first: first.to_owned(),
                            second: server.to_owned(),
                            endpoint: endpoint.to_owned(),
                        });
                    }
                }
                Strategy::None => {}
            }
            items.push(item);
        }
    }
    Ok(items)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_is_the_requested_one_when_all_agree() {
        assert_eq!(
            negotiate("2025-11-25", &["2025-11-25", "2025-11-25"]),
            "2025-11-25"
        );
        assert_eq!(negotiate("2025-11-25", &[]), "2025-11-25");
    }

    #[test]
    fn version_falls_back_to_the_oldest_answer_never_above_the_request() {
        assert_eq!(
            negotiate("2025-11-25", &["2025-11-25", "2025-06-18"]),
            "2025-06-18"
        );
        assert_eq!(
            negotiate("2025-06-18", &["2025-06-18", "2025-03-26", "2024-11-05"]),
            "2024-11-05"
        );
        // A member answering newer than asked does not raise the session's version.
        assert_eq!(negotiate("2025-06-18", &["2025-11-25"]), "2025-06-18");
    }

    #[test]
    fn capabilities_are_a_union() {
        let merged = capabilities(&[
            json!({"tools": {}, "logging": {}, "experimental": {"x": {}}}),
            json!({"tools": {"listChanged": true}, "resources": {"subscribe": true}}),
            json!({"prompts": {"listChanged": false}, "completions": {}}),
        ]);
        assert_eq!(
            merged,
            json!({
                "tools": {"listChanged": true},
                "logging": {},
                "resources": {"subscribe": true},
                "prompts": {},
                "completions": {}
            })
        );
        assert_eq!(capabilities(&[]), json!({}));
    }

    #[test]
    fn initialize_result_names_the_gateway_and_every_member() {
        let text = instructions(
            Strategy::Prefix,
            &[("alpha", Some("Use alpha for math. ")), ("beta", None)],
        )
        .expect("instructions");
        assert!(text.contains("alpha, beta"), "{text}");
        assert!(text.contains("<server_id>.<name>"), "{text}");
        assert!(text.ends_with("[alpha] Use alpha for math."), "{text}");
        let result = initialize_result("2025-11-25", json!({"tools": {}}), Some(text));
        assert_eq!(result["serverInfo"]["name"], "conduit");
        assert_eq!(result["serverInfo"]["version"], env!("CARGO_PKG_VERSION"));
        assert_eq!(result["protocolVersion"], "2025-11-25");
        assert_eq!(instructions(Strategy::None, &[]), None);
    }

    #[test]
    fn discover_intersects_versions() {
        let a = json!({"supportedVersions": ["2025-11-25", "2026-07-28"], "capabilities": {"tools": {}},
                       "resultType": "complete", "ttlMs": 5000, "cacheScope": "public"});
        let b = json!({"supportedVersions": ["2026-07-28"], "capabilities": {"prompts": {}},
                       "resultType": "complete", "ttlMs": 0, "cacheScope": "private"});
        let result = discover_result(Strategy::Prefix, &[("alpha", &a), ("beta", &b)]).unwrap();
        assert_eq!(result["supportedVersions"], json!(["2026-07-28"]));
        assert_eq!(result["capabilities"], json!({"tools": {}, "prompts": {}}));
        assert_eq!(result["_meta"][SERVER_INFO_META]["name"], "conduit");
        assert_eq!(result["ttlMs"], 0);
        assert_eq!(result["cacheScope"], "private");
        assert_eq!(result["resultType"], "complete");

        let old = json!({"supportedVersions": ["2025-11-25"], "capabilities": {}});
        let error = discover_result(Strategy::Prefix, &[("alpha", &old), ("beta", &b)]);
        assert!(error.unwrap_err().contains("no protocol version in common"));
        let error = discover_result(Strategy::Prefix, &[("alpha", &json!({}))]);
        assert!(error.unwrap_err().contains("alpha"));
    }

    fn named(names: &[&str]) -> Vec<Value> {
        names
            .iter()
            .map(|n| json!({"name": n, "description": n}))
            .collect()
    }

    #[test]
    fn prefix_strategy_namespaces_every_name() {
        let items = list_items(
            ListKind::Tools,
            Strategy::Prefix,
            "/mcp",
            vec![
                ("alpha", named(&["echo", "add"])),
                ("beta", named(&["echo"])),
            ],
        )
        .unwrap();
        let names: Vec<&str> = items.iter().map(|t| t["name"].as_str().unwrap()).collect();
        assert_eq!(names, ["alpha.echo", "alpha.add", "beta.echo"]);
        // Everything else of an item is untouched.
        assert_eq!(items[0]["description"], "echo");

        let resources = list_items(
            ListKind::Resources,
            Strategy::Prefix,
            "/mcp",
            vec![(
                "beta",
                vec![json!({"name": "static", "uri": "test://static-text"})],
            )],
        )
        .unwrap();
        assert_eq!(
            resources,
            [json!({"name": "beta.static", "uri": "test://static-text"})]
        );
    }

    #[test]
    fn none_strategy_refuses_a_name_offered_twice() {
        let collision = list_items(
            ListKind::Tools,
            Strategy::None,
            "/mcp",
            vec![
                ("alpha", named(&["echo", "add"])),
                ("beta", named(&["sum", "echo"])),
            ],
        )
        .unwrap_err();
        assert_eq!(
            (
                collision.name.as_str(),
                collision.first.as_str(),
                collision.second.as_str()
            ),
            ("echo", "alpha", "beta")
        );
        let message = collision.to_string();
        for part in [
            "tool \"echo\"",
            "alpha",
            "beta",
            "namespace_strategy: prefix",
            "/mcp",
        ] {
            assert!(message.contains(part), "{message}");
        }

        let distinct = list_items(
            ListKind::Prompts,
            Strategy::None,
            "/mcp",
            vec![
                ("alpha", named(&["greet"])),
                ("beta", named(&["summarize"])),
            ],
        )
        .unwrap();
        assert_eq!(
            distinct,
            [named(&["greet"]), named(&["summarize"])].concat()
        );
        // Resource names are labels, not addresses: equal ones are fine.
        assert!(
            list_items(
                ListKind::Resources,
                Strategy::None,
                "/mcp",
                vec![("alpha", named(&["readme"])), ("beta", named(&["readme"]))],
            )
            .is_ok()
        );
    }
}
