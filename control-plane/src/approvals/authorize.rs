//! Who may decide an approval request, from the governance section of the current config
//! version: the approver (the admin principal's name, matched against `role_bindings[].clients`
//! patterns) must hold one of `governance.approvals.required_roles` (default `owner`,
//! `admin`, `approver`) in the request's workspace, and must not be the requesting client
//! unless `allow_self_approval: true`. The principal's Admin API role (operator or admin)
//! is checked before this, in `admin`.

use conduit_config::{Document, Governance, Role};
use conduit_policy::PatternSet;

/// Roles that may decide when the config names none.
const DEFAULT_REQUIRED_ROLES: [Role; 3] = [Role::Owner, Role::Admin, Role::Approver];

/// The decision rules of one config version.
#[derive(Debug, Clone)]
pub struct DecisionRules {
    required_roles: Vec<Role>,
    allow_self_approval: bool,
    bindings: Vec<Binding>,
}

#[derive(Debug, Clone)]
struct Binding {
    workspace: String,
    role: Role,
    clients: PatternSet,
}

impl DecisionRules {
    /// The rules of the stored config document `config_json`; a refusal text when it has no
    /// usable governance section.
    pub fn from_config(config_json: &str) -> Result<DecisionRules, String> {
        let document = Document::from_text(config_json)
            .map_err(|errors| format!("the current config version does not parse: {errors}"))?;
        match document.governance.as_ref() {
            Some(governance) if governance.is_enabled() => Self::compile(governance),
            _ => Err(
                "the current config has no enabled governance section, so nobody holds an \
                      approver role (governance.role_bindings)"
                    .to_owned(),
            ),
        }
    }

    fn compile(governance: &Governance) -> Result<DecisionRules, String> {
        let approvals = governance.approvals.clone().unwrap_or_default();
        let mut bindings = Vec::with_capacity(governance.role_bindings.len());
        for (index, binding) in governance.role_bindings.iter().enumerate() {
            let clients = PatternSet::new(&binding.clients)
                .map_err(|error| format!("governance.role_bindings[{index}].clients: {error}"))?;
            bindings.push(Binding {
                workspace: binding.workspace_id.clone(),
                role: binding.role,
                clients,
            });
        }
        Ok(DecisionRules {
            required_roles: approvals
                .required_roles
                .unwrap_or_else(|| DEFAULT_REQUIRED_ROLES.to_vec()),
            allow_self_approval: approvals.allow_self_approval.unwrap_or(false),
            bindings,
        })
    }

    /// Whether `approver` may decide a request of `requester` in `workspace`; the refusal
    /// says why.
    pub fn check(&self, approver: &str, workspace: &str, requester: &str) -> Result<(), String> {
        if approver == requester && !self.allow_self_approval {
            return Err(format!(
                "{approver:?} requested this call and may not approve or reject it \
                 (governance.approvals.allow_self_approval is false)"
            ));
        }
        let holds = self.bindings.iter().any(|binding| {
            binding.workspace == workspace
                && self.required_roles.contains(&binding.role)
                && binding.clients.matches(approver)
        });
        if holds {
            return Ok(());
        }
        let roles: Vec<&str> = self
            .required_roles
            .iter()
            .map(|role| role_name(*role))
            .collect();
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
    fn without_governance_nobody_decides() {
        let error =
            DecisionRules::from_config("servers:\n  - id: a\n    url: http://127.0.0.1:9/mcp\n")
                .unwrap_err();
        assert!(error.contains("governance"), "{error}");
    }
}
