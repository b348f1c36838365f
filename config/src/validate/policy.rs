//! Checks of the policy sections: `acl`, `guardrails` and `governance`.

use super::{Checker, at, nth};
use crate::model::{
    Acl, AclRule, Condition, Document, Governance, GuardrailAction, Guardrails, Operator,
    ToolEffect,
};

pub(super) fn check(c: &mut Checker, doc: &Document) {
    let approvals = doc
        .governance
        .as_ref()
        .is_some_and(|g| g.approvals_enabled());
    if let Some(acl) = &doc.acl {
        self::acl(c, acl);
    }
    if let Some(guardrails) = &doc.guardrails {
        self::guardrails(c, guardrails, approvals);
    }
    if let Some(governance) = &doc.governance {
        self::governance(c, governance, approvals);
    }
}

fn acl(c: &mut Checker, acl: &Acl) {
    c.unique(
        "policy name",
        acl.policies
            .iter()
            .enumerate()
            .map(|(i, p)| (at(&nth("acl.policies", i), "name"), p.name.as_str())),
    );
    for (index, policy) in acl.policies.iter().enumerate() {
        let path = nth("acl.policies", index);
        c.patterns(&at(&path, "clients"), &policy.clients, true);
        acl_rules(c, &at(&path, "allow"), &policy.allow);
        acl_rules(c, &at(&path, "deny"), &policy.deny);
    }
}

fn acl_rules(c: &mut Checker, path: &str, rules: &[AclRule]) {
    for (index, rule) in rules.iter().enumerate() {
        let rule_path = nth(path, index);
        c.pattern(at(&rule_path, "server"), &rule.server);
        if rule.tools.is_empty() && rule.resources.is_empty() && rule.prompts.is_empty() {
            c.error(
                rule_path.clone(),
                "must list at least one of tools, resources and prompts (\"*\" matches everything)",
            );
        }
        c.patterns(&at(&rule_path, "tools"), &rule.tools, false);
        c.patterns(&at(&rule_path, "resources"), &rule.resources, false);
        c.patterns(&at(&rule_path, "prompts"), &rule.prompts, false);
    }
}

fn guardrails(c: &mut Checker, guardrails: &Guardrails, approvals: bool) {
    c.unique(
        "rule name",
        guardrails
            .rules
            .iter()
            .enumerate()
            .map(|(i, r)| (at(&nth("guardrails.rules", i), "name"), r.name.as_str())),
    );
    for (index, rule) in guardrails.rules.iter().enumerate() {
        let path = nth("guardrails.rules", index);
        c.patterns(&at(&path, "tools"), &rule.tools, false);
        c.patterns(&at(&path, "clients"), &rule.clients, rule.bypass);
        c.patterns(&at(&path, "servers"), &rule.servers, false);
        if rule.bypass {
            // A bypass is decided before the tool scope and the conditions: listing them would
            // read as a narrower bypass than the one that applies.
            c.forbid(
                at(&path, "tools"),
                !rule.tools.is_empty(),
                "a bypass rule exempts every tool of its clients and servers (it is decided before the tool scope)",
            );
            c.forbid(
                at(&path, "conditions"),
                !rule.conditions.is_empty(),
                "a bypass rule is decided before conditions are evaluated",
            );
        }
        if let Some(selector) = &rule.annotations {
            if rule.bypass {
                c.error(
                    at(&path, "annotations"),
                    "not allowed on a bypass rule (a bypass is decided before the tool scope)",
                );
            } else if selector.is_empty() {
                c.error(
                    at(&path, "annotations"),
                    "selects no hint: set readOnlyHint, destructiveHint, idempotentHint or openWorldHint, or leave annotations out",
                );
            }
        }
        match (rule.bypass, rule.action) {
            (true, Some(_)) => c.error(
                at(&path, "action"),
                "not allowed on a bypass rule (a bypass allows the call)",
            ),
            (false, None) => c.error(
                at(&path, "action"),
                "required (block, alert or require_approval) unless bypass: true",
            ),
            (_, Some(GuardrailAction::RequireApproval)) if !approvals => c.error(
                at(&path, "action"),
                "require_approval needs the governance section with approvals enabled",
            ),
            _ => {}
        }
        for (i, condition) in rule.conditions.iter().enumerate() {
            self::condition(c, &nth(&at(&path, "conditions"), i), condition);
        }
        if let Some(webhook) = &rule.webhook {
            c.url(&at(&path, "webhook"), webhook, &["https", "http"]);
        }
    }
}

fn condition(c: &mut Checker, path: &str, condition: &Condition) {
    if condition.field.split('.').any(str::is_empty) {
        c.error(
            at(path, "field"),
            format!(
                "invalid field path \"{}\": names separated by single dots",
                condition.field
            ),
        );
    }
    let value_path = at(path, "value");
    let value = condition.value.as_ref();
    match condition.operator {
        Operator::Exists | Operator::NotExists => c.forbid(
            value_path,
            value.is_some(),
            "exists and not_exists take no value",
        ),
        _ if value.is_none() => c.error(value_path, "required for this operator"),
        Operator::Gt | Operator::Gte | Operator::Lt | Operator::Lte
            if !value.is_some_and(serde_json::Value::is_number) =>
        {
            c.error(value_path, "must be a number for gt, gte, lt and lte");
        }
        Operator::Matches => match value.and_then(serde_json::Value::as_str) {
            Some(pattern) => c.regex(value_path, pattern),
            None => c.error(value_path, "must be a regular expression (a string)"),
        },
        _ => {}
    }
}

fn governance(c: &mut Checker, governance: &Governance, approvals: bool) {
    for (index, binding) in governance.role_bindings.iter().enumerate() {
        let path = nth("governance.role_bindings", index);
        c.patterns(&at(&path, "clients"), &binding.clients, true);
    }
    c.unique(
        "policy name",
        governance.tool_policies.iter().enumerate().map(|(i, p)| {
            (
                at(&nth("governance.tool_policies", i), "name"),
                p.name.as_str(),
            )
        }),
    );
    for (index, policy) in governance.tool_policies.iter().enumerate() {
        let path = nth("governance.tool_policies", index);
        c.patterns(&at(&path, "clients"), &policy.clients, false);
        c.patterns(&at(&path, "servers"), &policy.servers, false);
        c.patterns(&at(&path, "tools"), &policy.tools, false);
        if policy.effect == ToolEffect::RequireApproval && !approvals {
            c.error(
                at(&path, "effect"),
                "require_approval needs approvals enabled (governance.approvals.enabled)",
            );
        }
    }
    c.unique(
        "policy name",
        governance
            .registry_policies
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let path = at(&nth("governance.registry_policies", i), "name");
                (path, p.name.as_str())
            }),
    );
    for (index, policy) in governance.registry_policies.iter().enumerate() {
        let path = nth("governance.registry_policies", index);
        c.patterns(&at(&path, "clients"), &policy.clients, false);
        c.patterns(&at(&path, "server_names"), &policy.server_names, false);
    }
    if let Some(quotas) = &governance.quotas {
        if let Some(default) = &quotas.default
            && default.is_empty()
        {
            c.error(
                "governance.quotas.default",
                "sets no limit: add requests_per_minute, requests_per_hour or requests_per_day",
            );
        }
        c.unique(
            "workspace id",
            quotas.workspaces.iter().enumerate().map(|(i, q)| {
                let path = at(&nth("governance.quotas.workspaces", i), "workspace_id");
                (path, q.workspace_id.as_str())
            }),
        );
    }
    if let Some(roles) = governance
        .approvals
        .as_ref()
        .and_then(|a| a.required_roles.as_ref())
        && roles.is_empty()
    {
        c.error(
            "governance.approvals.required_roles",
            "must list at least one role (nobody could approve)",
        );
    }
}
