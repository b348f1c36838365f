//! The compiled guardrails: rules on `tools/call` arguments. Owns the evaluation order (per
//! rule, first enforced match wins): client scope → server scope → a `bypass` rule allows at
//! once → tool scope → annotation scope → every condition. An enforced match decides:
//! `block`, `alert` (the call goes through, reported) or `require_approval`. A `shadow` rule
//! that matches is recorded in [`GuardrailVerdict::shadow`] and evaluation goes on as if it
//! had not matched. No enforced match → `default_action`; `enabled: false` → allow.

use conduit_config::model::{self, GuardrailAction, RuleMode, Severity};
use serde_json::Value;

use crate::annotations::ToolAnnotations;
use crate::conditions::{Condition, ConditionError};
use crate::pattern::{PatternError, PatternSet};

/// The message of a call refused by `default_action: block`.
pub const DEFAULT_BLOCK_MESSAGE: &str =
    "blocked: no guardrail rule allows this call (default_action: block)";

/// Why guardrails could not be compiled (validation refuses the same documents first).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GuardrailError {
    /// A pattern is invalid.
    #[error("{path}: {source}")]
    Pattern {
        /// Where, like `guardrails.rules[0].tools`.
        path: String,
        /// The pattern problem.
        source: PatternError,
    },
    /// A condition is invalid.
    #[error("{path}: {source}")]
    Condition {
        /// Where, like `guardrails.rules[0].conditions[1]`.
        path: String,
        /// The condition problem.
        source: ConditionError,
    },
    /// A rule has neither `bypass: true` nor an `action`.
    #[error("guardrails.rules[{0}].action: required unless bypass: true")]
    NoAction(usize),
}

/// What a matching rule does (or would do, in shadow mode). A closed set, usable as a
/// metrics label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RuleAction {
    /// Allow the call and skip the rules after this one.
    Bypass,
    /// Refuse the call.
    Block,
    /// Let the call through and report it.
    Alert,
    /// Hold the call until an approver grants it.
    RequireApproval,
}

impl RuleAction {
    /// `bypass`, `block`, `alert` or `require_approval`.
    pub fn as_str(self) -> &'static str {
        match self {
            RuleAction::Bypass => "bypass",
            RuleAction::Block => "block",
            RuleAction::Alert => "alert",
            RuleAction::RequireApproval => "require_approval",
        }
    }
}

/// `low`, `medium`, `high` or `critical`.
pub fn severity_str(severity: Severity) -> &'static str {
    match severity {
        Severity::Low => "low",
        Severity::Medium => "medium",
        Severity::High => "high",
        Severity::Critical => "critical",
    }
}

/// One compiled rule.
#[derive(Debug, Clone)]
pub struct GuardrailRule {
    name: String,
    clients: PatternSet,
    servers: PatternSet,
    tools: PatternSet,
    annotations: Option<model::AnnotationSelector>,
    conditions: Vec<Condition>,
    action: RuleAction,
    shadow: bool,
    message: Option<String>,
    severity: Severity,
    webhook: Option<String>,
}

impl GuardrailRule {
    fn compile(index: usize, rule: &model::GuardrailRule) -> Result<Self, GuardrailError> {
        let path = format!("guardrails.rules[{index}]");
        let set = |field: &str, texts: &[String]| {
            PatternSet::any_or(texts).map_err(|source| GuardrailError::Pattern {
                path: format!("{path}.{field}"),
                source,
            })
        };
        let action = match (rule.bypass, rule.action) {
            (true, _) => RuleAction::Bypass,
            (false, Some(GuardrailAction::Block)) => RuleAction::Block,
            (false, Some(GuardrailAction::Alert)) => RuleAction::Alert,
            (false, Some(GuardrailAction::RequireApproval)) => RuleAction::RequireApproval,
            (false, None) => return Err(GuardrailError::NoAction(index)),
        };
        let conditions = rule
            .conditions
            .iter()
            .enumerate()
            .map(|(i, condition)| {
                Condition::try_from(condition).map_err(|source| GuardrailError::Condition {
                    path: format!("{path}.conditions[{i}]"),
                    source,
                })
            })
            .collect::<Result<_, _>>()?;
        Ok(GuardrailRule {
            name: rule.name.clone(),
            clients: set("clients", &rule.clients)?,
            servers: set("servers", &rule.servers)?,
            tools: set("tools", &rule.tools)?,
            annotations: rule.annotations.filter(|selector| !selector.is_empty()),
            conditions,
            action,
            shadow: rule.mode == Some(RuleMode::Shadow),
            message: rule.message.clone(),
            severity: rule.severity.unwrap_or(Severity::Medium),
            webhook: rule.webhook.clone(),
        })
    }

    /// Whether the rule matches the call.
    fn matches(&self, call: &CallContext<'_>) -> bool {
        if !self.clients.matches(call.client_id) || !self.servers.matches(call.server_id) {
            return false;
        }
        if self.action == RuleAction::Bypass {
            return true;
        }
        self.tools.matches(call.tool)
            && self
                .annotations
                .as_ref()
                .is_none_or(|selector| call.annotations.satisfies(selector))
            && self.conditions.iter().all(|c| c.holds(call.args))
    }

    /// The rule name.
    pub fn name(&self) -> &str {
        &self.name
    }
    /// What a match does.
    pub fn action(&self) -> RuleAction {
        self.action
    }
    /// Whether the rule is in shadow mode.
    pub fn is_shadow(&self) -> bool {
        self.shadow
    }
    /// The configured message, if any.
    pub fn message(&self) -> Option<&str> {
        self.message.as_deref()
    }
    /// The message of a refusal: the configured one, else `blocked by guardrail rule "<name>"`.
    pub fn block_message(&self) -> String {
        match &self.message {
            Some(message) => message.clone(),
            None => format!("blocked by guardrail rule \"{}\"", self.name),
        }
    }
    /// The message of a held call: the configured one, else `approval required by guardrail
    /// rule "<name>"`.
    pub fn approval_message(&self) -> String {
        match &self.message {
            Some(message) => message.clone(),
            None => format!("approval required by guardrail rule \"{}\"", self.name),
        }
    }
    /// The severity (default `medium`).
    pub fn severity(&self) -> Severity {
        self.severity
    }
    /// The webhook URL (may hold unresolved references in an unresolved document).
    pub fn webhook(&self) -> Option<&str> {
        self.webhook.as_deref()
    }
}

/// One tool call as guardrails see it.
#[derive(Debug, Clone, Copy)]
pub struct CallContext<'a> {
    /// The caller's client id.
    pub client_id: &'a str,
    /// The server id.
    pub server_id: &'a str,
    /// The unprefixed tool name.
    pub tool: &'a str,
    /// The tool's annotations ([`ToolAnnotations::UNKNOWN`] when the tool is not known).
    pub annotations: &'a ToolAnnotations,
    /// The call's `arguments` (`Value::Null` when absent).
    pub args: &'a Value,
}

/// What decided the call.
#[derive(Debug, Clone, Copy)]
pub enum Decision<'a> {
    /// No enforced rule matched and `default_action` is `allow`, or guardrails are disabled.
    Allow,
    /// A bypass rule matched: allowed, later rules skipped.
    Bypass {
        /// The rule.
        rule: &'a GuardrailRule,
    },
    /// An alert rule matched: allowed, to be reported.
    Alert {
        /// The rule.
        rule: &'a GuardrailRule,
    },
    /// A block rule matched: refused with [`GuardrailRule::block_message`].
    Block {
        /// The rule.
        rule: &'a GuardrailRule,
    },
    /// A require-approval rule matched.
    RequireApproval {
        /// The rule.
        rule: &'a GuardrailRule,
    },
    /// No enforced rule matched and `default_action` is `block`: refused with
    /// [`DEFAULT_BLOCK_MESSAGE`].
    DefaultBlock,
}

impl<'a> Decision<'a> {
    /// Whether the call goes on (allow, bypass, alert).
    pub fn allows(&self) -> bool {
        matches!(
            self,
            Decision::Allow | Decision::Bypass { .. } | Decision::Alert { .. }
        )
    }

    /// The rule that decided, if one did.
    pub fn rule(&self) -> Option<&'a GuardrailRule> {
        match self {
            Decision::Bypass { rule }
            | Decision::Alert { rule }
            | Decision::Block { rule }
            | Decision::RequireApproval { rule } => Some(rule),
            Decision::Allow | Decision::DefaultBlock => None,
        }
    }
}

/// A shadow rule that matched: what it would have done.
#[derive(Debug, Clone, Copy)]
pub struct RuleHit<'a> {
    /// The rule.
    pub rule: &'a GuardrailRule,
    /// Its action.
    pub action: RuleAction,
    /// Its severity.
    pub severity: Severity,
}

/// The outcome of [`Guardrails::evaluate`].
#[derive(Debug, Clone)]
pub struct GuardrailVerdict<'a> {
    /// What decided.
    pub decision: Decision<'a>,
    /// Shadow rules that matched before the decision, in rule order.
    pub shadow: Vec<RuleHit<'a>>,
}

/// The compiled `guardrails` section.
#[derive(Debug, Clone)]
pub struct Guardrails {
    enabled: bool,
    default_block: bool,
    rules: Vec<GuardrailRule>,
    webhook_allow_private_networks: bool,
}

impl TryFrom<&model::Guardrails> for Guardrails {
    type Error = GuardrailError;

    fn try_from(guardrails: &model::Guardrails) -> Result<Self, GuardrailError> {
        Ok(Guardrails {
            enabled: guardrails.is_enabled(),
            default_block: guardrails.default_action == model::GuardrailDefault::Block,
            webhook_allow_private_networks: guardrails.webhook_allows_private_networks(),
            rules: guardrails
                .rules
                .iter()
                .enumerate()
                .map(|(index, rule)| GuardrailRule::compile(index, rule))
                .collect::<Result<_, _>>()?,
        })
    }
}

impl Guardrails {
    /// Evaluate the rules for one call.
    pub fn evaluate(&self, call: &CallContext<'_>) -> GuardrailVerdict<'_> {
        let mut shadow = Vec::new();
        if !self.enabled {
            return GuardrailVerdict {
                decision: Decision::Allow,
                shadow,
            };
        }
        for rule in self.rules.iter().filter(|rule| rule.matches(call)) {
            if rule.shadow {
                shadow.push(RuleHit {
                    rule,
                    action: rule.action,
                    severity: rule.severity,
                });
                continue;
            }
            let decision = match rule.action {
                RuleAction::Bypass => Decision::Bypass { rule },
                RuleAction::Block => Decision::Block { rule },
                RuleAction::Alert => Decision::Alert { rule },
                RuleAction::RequireApproval => Decision::RequireApproval { rule },
            };
            return GuardrailVerdict { decision, shadow };
        }
        let decision = if self.default_block {
            Decision::DefaultBlock
        } else {
            Decision::Allow
        };
        GuardrailVerdict { decision, shadow }
    }

    /// Whether guardrails are enforced.
    pub fn is_enabled(&self) -> bool {
        self.enabled
    }

    /// Whether unmatched calls are blocked.
    pub fn default_blocks(&self) -> bool {
        self.default_block
    }

    /// The rules, in evaluation order.
    pub fn rules(&self) -> &[GuardrailRule] {
        &self.rules
    }

    /// Whether rule webhooks may reach private networks.
    pub fn webhook_allows_private_networks(&self) -> bool {
        self.webhook_allow_private_networks
    }

    /// The rule named `name`.
    pub fn rule(&self, name: &str) -> Option<&GuardrailRule> {
        self.rules.iter().find(|rule| rule.name == name)
    }
}

#[cfg(test)]
#[path = "guardrails_tests.rs"]
mod tests;
