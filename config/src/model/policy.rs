//! `acl` (who may call which tools) and `guardrails` (rules on the arguments of tool calls).
//!
//! Both use the same pattern language for client ids, server ids and tool names: `*` matches
//! everything, `abc*` matches names starting with `abc`, anything else matches exactly. A `*`
//! anywhere else than at the end is a validation error (the original silently treated it as
//! a literal character). Tool names are matched without namespace prefix, case-sensitively.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Access control lists.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Acl {
    /// Whether the ACL is enforced. Default: `true` when the section is present.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// What happens to a call when no policy's `clients` match the caller. Required: there is
    /// no implicit default.
    pub default_action: AclAction,
    /// Policies, tried in order; the first whose `clients` match the caller decides alone.
    /// Inside it a matching `deny` rule denies, else a matching `allow` rule allows, else the
    /// call is denied (a policy is an allow-list for its clients).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub policies: Vec<AclPolicy>,
}

/// Decision of the ACL.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum AclAction {
    /// Let the call through.
    Allow,
    /// Refuse the call.
    Deny,
}

/// One ACL policy.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AclPolicy {
    /// Name used in logs and audit records; unique.
    #[schemars(length(min = 1))]
    pub name: String,
    /// Client id patterns the policy applies to (at least one).
    pub clients: Vec<String>,
    /// Calls this policy allows.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allow: Vec<AclRule>,
    /// Calls this policy denies (checked before `allow`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub deny: Vec<AclRule>,
}

/// Tools, resources and prompts of servers an ACL rule covers. A rule must list at least one
/// of `tools`, `resources` and `prompts`. Each list governs only its own kind: a policy whose
/// rules name only tools allows no resource and no prompt to its clients (secure default),
/// so list `resources: ["*"]` / `prompts: ["*"]` to grant them.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AclRule {
    /// Server id pattern.
    pub server: String,
    /// Tool name patterns (`["*"]` for every tool). Only tools are matched against them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tools: Vec<String>,
    /// Resource URI patterns, like `file:///docs/*` (`["*"]` for every resource). Matched
    /// against the URI of `resources/read` and `resources/subscribe`, the `uri` of
    /// `resources/list` entries and the `uriTemplate` text of `resources/templates/list`
    /// entries. Only resources are matched against them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resources: Vec<String>,
    /// Prompt name patterns (`["*"]` for every prompt). Only prompts are matched against them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub prompts: Vec<String>,
}

/// Guardrails: rules on tool call arguments.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Guardrails {
    /// Whether guardrails are enforced. Default: `true` when the section is present.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// What happens to a call no rule matches. Required: there is no implicit default.
    pub default_action: GuardrailDefault,
    /// Rules, tried in order; the first that matches decides.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rules: Vec<GuardrailRule>,
    /// Let rule webhooks reach loopback, private, link-local, unique-local, multicast and
    /// unspecified addresses (also in IPv4-mapped, 6to4 and NAT64 form). The data plane
    /// resolves a webhook's host and connects only to an address it checked, so a DNS name
    /// cannot point it at an internal service. Default: `false`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook_allow_private_networks: Option<bool>,
}

/// Decision for calls no guardrail rule matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum GuardrailDefault {
    /// Let the call through.
    Allow,
    /// Refuse the call.
    Block,
}

/// One guardrail rule. A rule matches a call when the caller matches `clients`, the server
/// matches `servers`, the tool matches `tools` and `annotations`, and every condition holds.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GuardrailRule {
    /// Rule name, unique; shown in errors, audit records and webhooks.
    #[schemars(length(min = 1))]
    pub name: String,
    /// Tool name patterns. Default: every tool.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tools: Vec<String>,
    /// Client id patterns. Default: every client.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub clients: Vec<String>,
    /// Server id patterns. Default: every server.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub servers: Vec<String>,
    /// Tool annotation hints the tool must have, like `{destructiveHint: true}` to select
    /// every destructive tool. A tool without annotations, or without one of the hints, is
    /// judged by the MCP defaults (`readOnlyHint: false`, `destructiveHint: true`,
    /// `idempotentHint: false`, `openWorldHint: true`): unknown counts as destructive.
    /// Default: every tool. Not allowed on a bypass rule (checked before the tool scope).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<AnnotationSelector>,
    /// Exempt the matching calls from the rules after this one: the call is allowed at once.
    /// A bypass rule must name its `clients` and has no `action`; it is decided on `clients`
    /// and `servers` alone, so `tools`, `annotations` and `conditions` are refused on it.
    #[serde(default, skip_serializing_if = "super::servers::is_false")]
    pub bypass: bool,
    /// Conditions on the arguments, all of which must hold.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// What a match does. Required unless `bypass: true`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<GuardrailAction>,
    /// `enforce` applies the action; `shadow` only records in the audit record and metrics
    /// what the action would have been, and the rule evaluation goes on as if it had not
    /// matched. Default: `enforce`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<RuleMode>,
    /// Message returned to the caller (and sent to the webhook).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Severity reported in audit records and webhooks. Default: `medium`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub severity: Option<Severity>,
    /// URL receiving a JSON `POST` when the rule blocks or alerts (tool arguments redacted
    /// with `observability.redact_fields`). Masked in dumps beyond its host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook: Option<String>,
}

/// Tool annotation hints a guardrail rule requires (MCP `ToolAnnotations`); every hint given
/// must have the given value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct AnnotationSelector {
    /// `readOnlyHint`: the tool does not modify its environment (MCP default `false`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_only_hint: Option<bool>,
    /// `destructiveHint`: the tool may perform destructive updates (MCP default `true`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub destructive_hint: Option<bool>,
    /// `idempotentHint`: repeated calls with the same arguments have no additional effect
    /// (MCP default `false`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idempotent_hint: Option<bool>,
    /// `openWorldHint`: the tool interacts with an open world of external entities (MCP
    /// default `true`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub open_world_hint: Option<bool>,
}

impl AnnotationSelector {
    /// Whether no hint is given (such a selector would select every tool).
    pub fn is_empty(&self) -> bool {
        self.read_only_hint.is_none()
            && self.destructive_hint.is_none()
            && self.idempotent_hint.is_none()
            && self.open_world_hint.is_none()
    }
}

/// What a matching guardrail rule does. (`transform`, accepted by the original as a no-op, is
/// refused with an explanation.)
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum GuardrailAction {
    /// Refuse the call.
    Block,
    /// Let the call through and report it (audit record, metrics, webhook).
    Alert,
    /// Hold the call until an approver grants it (needs `governance` with approvals).
    RequireApproval,
}

/// Whether a rule is enforced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum RuleMode {
    /// The action applies.
    Enforce,
    /// The action is only recorded.
    Shadow,
}

/// Severity of a guardrail rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Low.
    Low,
    /// Medium.
    Medium,
    /// High.
    High,
    /// Critical.
    Critical,
}

/// A condition on one argument.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Condition {
    /// Dot path into the tool arguments, like `query` or `options.limit`.
    #[schemars(length(min = 1))]
    pub field: String,
    /// Comparison.
    pub operator: Operator,
    /// Operand: a number for `gt`/`gte`/`lt`/`lte`, a regular expression (string) for
    /// `matches`, any JSON value for `eq`/`neq`/`contains`/`not_contains`; none for
    /// `exists`/`not_exists`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<serde_json::Value>,
}

/// Condition operators. Except for `exists`/`not_exists`, a missing field makes the
/// condition false.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Operator {
    /// The field is present.
    Exists,
    /// The field is absent.
    NotExists,
    /// Equal (same JSON type and value).
    Eq,
    /// Not equal.
    Neq,
    /// Number greater than `value`.
    Gt,
    /// Number greater than or equal to `value`.
    Gte,
    /// Number less than `value`.
    Lt,
    /// Number less than or equal to `value`.
    Lte,
    /// Substring of a string, or element of an array.
    Contains,
    /// Negation of `contains`.
    NotContains,
    /// String matching the regular expression `value` (linear-time engine: no backreferences
    /// or look-around).
    Matches,
}

/// Bound on the compiled size of a `matches` regular expression (bytes of the compiled
/// program): the engine is linear in the input, this bounds the other factor.
pub const REGEX_SIZE_LIMIT: usize = 1 << 20;

/// Compile a `matches` operand the one way validation and evaluation both use.
pub fn compile_condition_regex(pattern: &str) -> Result<regex::Regex, regex::Error> {
    regex::RegexBuilder::new(pattern)
        .size_limit(REGEX_SIZE_LIMIT)
        .dfa_size_limit(REGEX_SIZE_LIMIT)
        .build()
}

impl Operator {
    /// Whether the operator takes a `value`.
    pub fn needs_value(self) -> bool {
        !matches!(self, Operator::Exists | Operator::NotExists)
    }
}

impl Acl {
    /// Whether the ACL is enforced (a present section is, unless `enabled: false`).
    pub fn is_enabled(&self) -> bool {
        self.enabled.unwrap_or(true)
    }
}

impl Guardrails {
    /// Whether guardrails are enforced (a present section is, unless `enabled: false`).
    pub fn is_enabled(&self) -> bool {
        self.enabled.unwrap_or(true)
    }

    /// Whether webhooks may reach private networks (default `false`).
    pub fn webhook_allows_private_networks(&self) -> bool {
        self.webhook_allow_private_networks.unwrap_or(false)
    }
}
