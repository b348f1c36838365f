//! Which member serves a resource URI, a resource template or (under
//! `namespace_strategy: none`) an unprefixed tool or prompt name.
//!
//! Resource URIs are global, so they are not prefixed and `resources/read` has to find the
//! member that lists them. The cache is filled by every list that passes through an
//! aggregate and lives as long as the runtime (a new config starts empty). A miss is not an
//! error: the caller falls back to a fan-out, see `aggregate::route`. Every table is
//! bounded; a full table is cleared rather than grown, which only costs fan-outs.
//!
//! Locks are held for a lookup or an insert, never across an `.await`.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};

/// Most entries of each table.
const MAX_ENTRIES: usize = 10_000;

/// What an unprefixed name refers to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    Tool,
    Prompt,
}

/// The routing caches of one runtime.
#[derive(Debug, Default)]
pub struct RouteCache {
    tables: Mutex<Tables>,
}

#[derive(Debug, Default)]
struct Tables {
    /// Resource URI → server id.
    resources: HashMap<String, String>,
    /// Server id → its resource templates (`uriTemplate`).
    templates: HashMap<String, Vec<String>>,
    /// (kind, endpoint label, name) → server id; only under `namespace_strategy: none`,
    /// where a name means different servers on different endpoints.
    names: HashMap<(Kind, String, String), String>,
}

impl RouteCache {
    fn tables(&self) -> MutexGuard<'_, Tables> {
        // A panic elsewhere cannot leave these maps inconsistent: every write is one insert.
        self.tables
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Record the resources `server` listed.
    pub fn remember_resources<'a>(&self, server: &str, uris: impl IntoIterator<Item = &'a str>) {
        let mut tables = self.tables();
        for uri in uris {
            bounded_insert(&mut tables.resources, uri.to_owned(), server.to_owned());
        }
    }

    /// Record the resource templates `server` listed (replacing what it listed before).
    pub fn remember_templates(&self, server: &str, templates: Vec<String>) {
        let mut tables = self.tables();
        if tables.templates.len() >= MAX_ENTRIES && !tables.templates.contains_key(server) {
            tables.templates.clear();
        }
        let mut templates = templates;
        templates.truncate(MAX_ENTRIES);
        tables.templates.insert(server.to_owned(), templates);
    }

    /// Record which server offers each unprefixed name on endpoint `label`.
    pub fn remember_names(&self, kind: Kind, label: &str, names: &[(String, String)]) {
        let mut tables = self.tables();
        for (name, server) in names {
            let key = (kind, label.to_owned(), name.clone());
            bounded_insert(&mut tables.names, key, server.clone());
        }
    }

    /// The member that serves `uri`: one that listed it, else the first whose template
    /// matches it. Only `members` are considered.
    pub fn resource_owner(&self, uri: &str, members: &[&str]) -> Option<String> {
        let tables = self.tables();
        if let Some(server) = tables.resources.get(uri)
            && members.contains(&server.as_str())
        {
            return Some(server.clone());
        }
        members
            .iter()
            .find(|member| {
                tables.templates.get(**member).is_some_and(|templates| {
                    templates
                        .iter()
                        .any(|template| template_matches(template, uri))
                })
            })
            .map(|member| (*member).to_owned())
    }

    /// The member that listed the template `uri_template` itself (completion of a
    /// resource template argument names the template, not a URI).
    pub fn template_owner(&self, uri_template: &str, members: &[&str]) -> Option<String> {
        let tables = self.tables();
        members
            .iter()
            .find(|member| {
                tables
                    .templates
                    .get(**member)
                    .is_some_and(|templates| templates.iter().any(|t| t == uri_template))
            })
            .map(|member| (*member).to_owned())
    }

    /// The member offering the unprefixed `name` on endpoint `label`.
    pub fn name_owner(&self, kind: Kind, label: &str, name: &str) -> Option<String> {
        self.tables()
            .names
            .get(&(kind, label.to_owned(), name.to_owned()))
            .cloned()
    }
}

fn bounded_insert<K: Eq + std::hash::Hash, V>(map: &mut HashMap<K, V>, key: K, value: V) {
    if map.len() >= MAX_ENTRIES && !map.contains_key(&key) {
        map.clear();
    }
    map.insert(key, value);
}

/// Whether `uri` is an expansion of the RFC 6570 `template`. Good enough to route: literal
/// parts must match exactly; a `{var}` (or `{.var}`, `{;var}`) expression matches text
/// without `/`, `?` or `#`; reserved, fragment, path and query expressions (`{+var}`,
/// `{#var}`, `{/var}`, `{?var}`, `{&var}`) match anything.
pub(crate) fn template_matches(template: &str, uri: &str) -> bool {
    match parse(template) {
        Some(parts) => matches_from(&parts, uri),
        None => false,
    }
}

#[derive(Debug, PartialEq)]
enum Part<'a> {
    Literal(&'a str),
    /// `true` when the expansion may contain `/`, `?` and `#`.
    Expression {
        reserved: bool,
    },
}

fn parse(template: &str) -> Option<Vec<Part<'_>>> {
    let mut parts = Vec::new();
    let mut rest = template;
    while !rest.is_empty() {
        match rest.find('{') {
            Some(0) => {
                let end = rest.find('}')?;
                let reserved = matches!(
                    rest[1..end].chars().next(),
                    Some('+' | '#' | '/' | '?' | '&')
                );
                parts.push(Part::Expression { reserved });
                rest = &rest[end + 1..];
            }
            Some(start) => {
                parts.push(Part::Literal(&rest[..start]));
                rest = &rest[start..];
            }
            None => {
                parts.push(Part::Literal(rest));
                rest = "";
            }
        }
    }
    Some(parts)
}

fn matches_from(parts: &[Part<'_>], uri: &str) -> bool {
    match parts.split_first() {
        None => uri.is_empty(),
        Some((Part::Literal(literal), rest)) => uri
            .strip_prefix(literal)
            .is_some_and(|uri| matches_from(rest, uri)),
        Some((Part::Expression { reserved }, rest)) => {
            // Try every split point, shortest expansion first; templates have few
            // expressions and URIs are short.
            for (end, c) in uri.char_indices() {
                if matches_from(rest, &uri[end..]) {
                    return true;
                }
                if !reserved && matches!(c, '/' | '?' | '#') {
                    return false;
                }
            }
            matches_from(rest, "")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_match_their_expansions_only() {
        let t = "test://template/{id}/data";
        assert!(template_matches(t, "test://template/42/data"));
        assert!(!template_matches(t, "test://template/4/2/data"));
        assert!(!template_matches(t, "test://template/42/other"));
        assert!(!template_matches(t, "test://other/42/data"));
        assert!(template_matches("file:///{+path}", "file:///a/b/c.txt"));
        assert!(!template_matches("file:///{path}", "file:///a/b/c.txt"));
        assert!(template_matches(
            "db://{table}{?limit}",
            "db://users?limit=3"
        ));
        assert!(template_matches("plain://x", "plain://x"));
        assert!(!template_matches("plain://x", "plain://xy"));
        assert!(!template_matches("broken://{id", "broken://{id"));
    }

    #[test]
    fn listed_uris_win_and_only_members_count() {
        let cache = RouteCache::default();
        cache.remember_resources("alpha", ["test://static-text"]);
        cache.remember_templates("beta", vec!["test://template/{id}/data".into()]);
        cache.remember_templates("alpha", vec!["test://{anything}".into()]);

        assert_eq!(
            cache.resource_owner("test://static-text", &["beta", "alpha"]),
            Some("alpha".into())
        );
        // Not a member of this endpoint: never routed there.
        assert_eq!(cache.resource_owner("test://static-text", &["beta"]), None);
        assert_eq!(
            cache.resource_owner("test://template/7/data", &["beta", "alpha"]),
            Some("beta".into())
        );
        assert_eq!(
            cache.resource_owner("test://x", &["beta", "alpha"]),
            Some("alpha".into())
        );
        assert_eq!(
            cache.template_owner("test://template/{id}/data", &["alpha", "beta"]),
            Some("beta".into())
        );
        assert_eq!(
            cache.template_owner("test://template/7/data", &["beta"]),
            None
        );
    }

    #[test]
    fn names_are_per_endpoint() {
        let cache = RouteCache::default();
        cache.remember_names(Kind::Tool, "profile:a", &[("echo".into(), "alpha".into())]);
        cache.remember_names(Kind::Tool, "profile:b", &[("echo".into(), "beta".into())]);
        assert_eq!(
            cache.name_owner(Kind::Tool, "profile:a", "echo"),
            Some("alpha".into())
        );
        assert_eq!(
            cache.name_owner(Kind::Tool, "profile:b", "echo"),
            Some("beta".into())
        );
        assert_eq!(cache.name_owner(Kind::Prompt, "profile:a", "echo"), None);
    }

    #[test]
    fn full_tables_start_over() {
        let cache = RouteCache::default();
        let uris: Vec<String> = (0..MAX_ENTRIES + 1).map(|i| format!("u://{i}")).collect();
        cache.remember_resources("alpha", uris.iter().map(String::as_str));
        let tables = cache.tables();
        assert!(tables.resources.len() <= MAX_ENTRIES);
        assert!(tables.resources.contains_key(&format!("u://{MAX_ENTRIES}")));
    }
}
