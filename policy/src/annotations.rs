//! MCP tool annotations as the policy engines read them: the four behaviour hints of a
//! `tools/list` entry, with the MCP defaults for every hint the server leaves out. A tool
//! whose annotations are unknown is judged by [`ToolAnnotations::default`], which is the
//! fail-safe reading (not read-only, destructive, not idempotent, open world).

use conduit_config::model::AnnotationSelector;
use serde_json::Value;

/// The behaviour hints of one tool.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ToolAnnotations {
    /// `readOnlyHint` (MCP default `false`).
    pub read_only: bool,
    /// `destructiveHint` (MCP default `true`).
    pub destructive: bool,
    /// `idempotentHint` (MCP default `false`).
    pub idempotent: bool,
    /// `openWorldHint` (MCP default `true`).
    pub open_world: bool,
}

impl Default for ToolAnnotations {
    fn default() -> Self {
        ToolAnnotations::UNKNOWN
    }
}

impl ToolAnnotations {
    /// The MCP defaults: what a tool without annotations is taken to be.
    pub const UNKNOWN: ToolAnnotations = ToolAnnotations {
        read_only: false,
        destructive: true,
        idempotent: false,
        open_world: true,
    };

    /// The annotations of a `tools/list` entry (its `annotations` object); hints that are
    /// missing or not booleans take the MCP defaults.
    pub fn from_tool(tool: &Value) -> ToolAnnotations {
        tool.get("annotations")
            .map(ToolAnnotations::from_annotations)
            .unwrap_or_default()
    }

    /// The hints of an `annotations` object itself.
    pub fn from_annotations(annotations: &Value) -> ToolAnnotations {
        let hint = |name: &str, default: bool| {
            annotations
                .get(name)
                .and_then(Value::as_bool)
                .unwrap_or(default)
        };
        let d = ToolAnnotations::UNKNOWN;
        ToolAnnotations {
            read_only: hint("readOnlyHint", d.read_only),
            destructive: hint("destructiveHint", d.destructive),
            idempotent: hint("idempotentHint", d.idempotent),
            open_world: hint("openWorldHint", d.open_world),
        }
    }

    /// Whether every hint the selector gives has the selected value.
    pub fn satisfies(&self, selector: &AnnotationSelector) -> bool {
        let ok = |wanted: Option<bool>, actual: bool| wanted.is_none_or(|w| w == actual);
        ok(selector.read_only_hint, self.read_only)
            && ok(selector.destructive_hint, self.destructive)
            && ok(selector.idempotent_hint, self.idempotent)
            && ok(selector.open_world_hint, self.open_world)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn missing_hints_take_the_mcp_defaults() {
        assert_eq!(
            ToolAnnotations::from_tool(&json!({"name": "x"})),
            ToolAnnotations::UNKNOWN
        );
        let read_only = ToolAnnotations::from_tool(&json!({
            "name": "get",
            "annotations": {"readOnlyHint": true, "destructiveHint": false, "title": "Get"}
        }));
        assert_eq!(
            read_only,
            ToolAnnotations {
                read_only: true,
                destructive: false,
                idempotent: false,
                open_world: true
            }
        );
        // A hint of the wrong type counts as missing.
        let odd = ToolAnnotations::from_annotations(&json!({"destructiveHint": "no"}));
        assert!(odd.destructive);
    }

    #[test]
    fn selectors_compare_given_hints_only() {
        let destructive = AnnotationSelector {
            destructive_hint: Some(true),
            ..Default::default()
        };
        assert!(ToolAnnotations::UNKNOWN.satisfies(&destructive));
        let safe = ToolAnnotations {
            read_only: true,
            destructive: false,
            ..ToolAnnotations::UNKNOWN
        };
        assert!(!safe.satisfies(&destructive));
        assert!(safe.satisfies(&AnnotationSelector::default()));
        let both = AnnotationSelector {
            read_only_hint: Some(true),
            open_world_hint: Some(false),
            ..Default::default()
        };
        assert!(!safe.satisfies(&both));
    }
}
