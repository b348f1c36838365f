//! Who may decide an approval request, from the governance section of the current config
//! version (compiled with `conduit_policy::Governance`): the approver (the admin principal's
//! name, matched against `role_bindings[].clients` patterns) must hold one of
//! `governance.approvals.required_roles` (default `owner`, `admin`, `approver`) in the
//! request's workspace, and must not be the requesting client unless
//! `allow_self_approval: true`. The principal's Admin API role (operator or admin) is checked
//! before this, in `admin`.

use conduit_config::Document;
use conduit_config::model::Role;
use conduit_policy::Governance;

/// The decision rules of one config version.
#[derive(Debug, Clone)]
pub struct DecisionRules {
    governance: Governance,
}

impl DecisionRules {
    /// The rules of the stored config document `config_json`; a refusal text when it has no
    /// usable governance section.
    pub fn from_config(config_json: &str) -> Result<DecisionRules, String> {
        let document = Document::from_text(config_json)
            .map_err(|errors| format!("the current config version does not parse: {errors}"))?;
        let governance = match document.governance.as_ref() {
            Some(governance) if governance.is_enabled() => {
                Governance::try_from(governance).map_err(|error| error.to_string())?
            }
            _ => {
                return Err(
                    "the current config has no enabled governance section, so nobody \
                            holds an approver role (governance.role_bindings)"
                        .to_owned(),
                );
            }
        };
        if !governance.approval_settings().enabled {
            return Err("approvals are turned off in the current config \
                        (governance.approvals.enabled: false)"
                .to_owned());
        }
        Ok(DecisionRules { governance })
    }

    /// Calls a grant allows when the approver does not say (`governance.approvals.max_uses`).
    pub fn max_uses(&self) -> u32 {
        self.governance.approval_settings().max_uses
    }

    /// Whether `approver` may decide a request of `requester` in `workspace`; the refusal
    /// says why.
    pub fn check(&self, approver: &str, workspace: &str, requester: &str) -> Result<(), String> {
        let settings = self.governance.approval_settings();
        if approver == requester && !settings.allow_self_approval {
            return Err(format!(
                "{approver:?} requested this call and may not approve or reject it \
                 (governance.approvals.allow_self_approval is false)"
            ));
        }
        if self.governance.may_approve(approver, workspace) {
            return Ok(());
        }
        let roles: Vec<&str> = settings.required_roles.iter().map(role_name).collect();
        Err(format!(
            "{approver:?} holds none of the roles {} in workspace {workspace:?} \
             (governance.role_bindings, governance.approvals.required_roles)",
            roles.join(", ")
        ))
    }
}

fn role_name(role: Role) -> &'static str {
    match role {
        Role::Owner => "owner",
        Role::Admin => "admin",
        Role::Approver => "approver",
        Role::Operator => "operator",
        Role::Developer => "developer",
        Role::Viewer => "viewer",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONFIG: &str = "servers:\n  - id: files\n    url: http://127.0.0.1:9/mcp\n\
        governance:\n  role_bindings:\n    - workspace_id: acme\n      role: approver\n      \
        clients: [sec-*]\n    - workspace_id: acme\n      role: developer\n      clients: [dev]\n    \
        - workspace_id: other\n      role: owner\n      clients: [olga]\n";

    #[test]
    fn the_approver_needs_a_required_role_in_the_workspace() {
        let rules = DecisionRules::from_config(CONFIG).unwrap();
        assert!(rules.check("sec-bob", "acme", "agent").is_ok());
        let developer = rules.check("dev", "acme", "agent").unwrap_err();
        assert!(developer.contains("owner, admin, approver"), "{developer}");
        assert!(
            rules.check("olga", "acme", "agent").is_err(),
            "owner elsewhere"
        );
        assert!(rules.check("sec-bob", "other", "agent").is_err());
    }

    #[test]
    fn self_approval_is_refused_unless_allowed() {
        let rules = DecisionRules::from_config(CONFIG).unwrap();
        let refused = rules.check("sec-bob", "acme", "sec-bob").unwrap_err();
        assert!(refused.contains("allow_self_approval"), "{refused}");
        let allowed = format!(
            "{CONFIG}  approvals:\n    allow_self_approval: true\n    required_roles: [developer]\n"
        );
        let rules = DecisionRules::from_config(&allowed).unwrap();
        assert!(rules.check("dev", "acme", "dev").is_ok());
        assert!(
            rules.check("sec-bob", "acme", "x").is_err(),
            "approver no longer required"
        );
    }

    #[test]
    fn without_governance_or_with_approvals_off_nobody_decides() {
        let error =
            DecisionRules::from_config("servers:\n  - id: a\n    url: http://127.0.0.1:9/mcp\n")
                .unwrap_err();
        assert!(error.contains("governance"), "{error}");
        let off = format!("{CONFIG}  approvals:\n    enabled: false\n");
        let error = DecisionRules::from_config(&off).unwrap_err();
        assert!(error.contains("enabled: false"), "{error}");
    }
}
