//! The compiled governance section as the request path uses it: roles of clients in
//! workspaces, tool policies (first policy whose given selectors all match decides; none →
//! allow) and the approval settings. Registry policies and quotas are read by their owners
//! elsewhere. A disabled (or absent) governance allows every call.

use conduit_config::model::{self, Role, ToolEffect};

use crate::pattern::{PatternError, PatternSet};

/// Why governance could not be compiled (validation refuses the same documents first).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {source}")]
pub struct GovernanceError {
    /// Where, like `governance.tool_policies[0].tools`.
    pub path: String,
    /// The pattern problem.
    pub source: PatternError,
}

const ROLES: [Role; 6] = [
    Role::Owner,
    Role::Admin,
    Role::Approver,
    Role::Operator,
    Role::Developer,
    Role::Viewer,
];

/// A set of roles.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RoleSet(u8);

impl RoleSet {
    fn bit(role: Role) -> u8 {
        1 << match role {
            Role::Owner => 0,
            Role::Admin => 1,
            Role::Approver => 2,
            Role::Operator => 3,
            Role::Developer => 4,
            Role::Viewer => 5,
        }
    }
    /// The set of `roles`.
    pub fn of(roles: &[Role]) -> RoleSet {
        RoleSet(
            roles
                .iter()
                .fold(0, |bits, role| bits | RoleSet::bit(*role)),
        )
    }
    /// Add `role`.
    pub fn insert(&mut self, role: Role) {
        self.0 |= RoleSet::bit(role);
    }
    /// Whether `role` is in the set.
    pub fn contains(&self, role: Role) -> bool {
        self.0 & RoleSet::bit(role) != 0
    }
    /// Whether the sets share a role.
    pub fn intersects(&self, other: RoleSet) -> bool {
        self.0 & other.0 != 0
    }
    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.0 == 0
    }
    /// The roles, in declaration order.
    pub fn iter(&self) -> impl Iterator<Item = Role> + '_ {
        ROLES.into_iter().filter(|role| self.contains(*role))
    }
}

#[derive(Debug, Clone)]
struct Binding {
    workspace: String,
    role: Role,
    clients: PatternSet,
}

#[derive(Debug, Clone)]
struct ToolPolicy {
    name: String,
    workspaces: Vec<String>,
    roles: RoleSet,
    clients: PatternSet,
    servers: PatternSet,
    tools: PatternSet,
    effect: ToolEffect,
    reason: String,
}

/// The outcome of [`Governance::decide`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GovernanceDecision<'a> {
    /// No policy refuses or holds the call.
    Allow,
    /// Refused (the tool is hidden from lists too).
    Deny {
        /// The policy name.
        policy: &'a str,
        /// Its reason, or `denied by governance policy "<name>"`.
        reason: &'a str,
    },
    /// Held until an approver grants it.
    RequireApproval {
        /// The policy name.
        policy: &'a str,
        /// Its reason, or `approval required by governance policy "<name>"`.
        reason: &'a str,
    },
}

/// The approval workflow settings, defaults applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApprovalSettings {
    /// Whether `require_approval` can be granted at all.
    pub enabled: bool,
    /// Seconds a request (and a grant) stays valid. Default 3600.
    pub ttl_seconds: u64,
    /// Roles allowed to decide. Default owner, admin, approver.
    pub required_roles: RoleSet,
    /// Whether a client may approve its own request. Default false.
    pub allow_self_approval: bool,
    /// Calls a grant allows when the approver does not say. Default 1.
    pub max_uses: u32,
}

/// The compiled `governance` section.
#[derive(Debug, Clone)]
pub struct Governance {
    enabled: bool,
    bindings: Vec<Binding>,
    policies: Vec<ToolPolicy>,
    approvals: ApprovalSettings,
}

impl TryFrom<&model::Governance> for Governance {
    type Error = GovernanceError;

    fn try_from(governance: &model::Governance) -> Result<Self, GovernanceError> {
        let compile = |path: String, texts: &[String], any: bool| {
            let set = if any {
                PatternSet::any_or(texts)
            } else {
                PatternSet::new(texts)
            };
            set.map_err(|source| GovernanceError { path, source })
        };
        let bindings = governance
            .role_bindings
            .iter()
            .enumerate()
            .map(|(i, b)| {
                Ok(Binding {
                    workspace: b.workspace_id.clone(),
                    role: b.role,
                    clients: compile(
                        format!("governance.role_bindings[{i}].clients"),
                        &b.clients,
                        false,
                    )?,
                })
            })
            .collect::<Result<_, _>>()?;
        let policies = governance
            .tool_policies
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let path = |field: &str| format!("governance.tool_policies[{i}].{field}");
                let reason = p.reason.clone().unwrap_or_else(|| match p.effect {
                    ToolEffect::RequireApproval => {
                        format!("approval required by governance policy \"{}\"", p.name)
                    }
                    _ => format!("denied by governance policy \"{}\"", p.name),
                });
                Ok(ToolPolicy {
                    name: p.name.clone(),
                    workspaces: p.workspace_ids.clone(),
                    roles: RoleSet::of(&p.roles),
                    clients: compile(path("clients"), &p.clients, true)?,
                    servers: compile(path("servers"), &p.servers, true)?,
                    tools: compile(path("tools"), &p.tools, true)?,
                    effect: p.effect,
                    reason,
                })
            })
            .collect::<Result<_, _>>()?;
        let approvals = governance.approvals.as_ref();
        Ok(Governance {
            enabled: governance.is_enabled(),
            bindings,
            policies,
            approvals: ApprovalSettings {
                enabled: governance.approvals_enabled(),
                ttl_seconds: approvals.and_then(|a| a.ttl_seconds).unwrap_or(3600),
                required_roles: approvals
                    .and_then(|a| a.required_roles.as_deref())
                    .map(RoleSet::of)
                    .unwrap_or(RoleSet::of(&[Role::Owner, Role::Admin, Role::Approver])),
                allow_self_approval: approvals
                    .and_then(|a| a.allow_self_approval)
                    .unwrap_or(false),
                max_uses: approvals
                    .and_then(|a| a.max_uses)
                    .unwrap_or(model::DEFAULT_APPROVAL_MAX_USES),
            },
        })
    }
}

impl Governance {
    /// The roles `client` holds in `workspace`.
    pub fn roles_of(&self, client: &str, workspace: &str) -> RoleSet {
        let mut roles = RoleSet::default();
        for binding in &self.bindings {
            if binding.workspace == workspace && binding.clients.matches(client) {
                roles.insert(binding.role);
            }
        }
        roles
    }

    /// Decide a tool call of `client` in `workspace`.
    pub fn decide(
        &self,
        client: &str,
        workspace: &str,
        server: &str,
        tool: &str,
    ) -> GovernanceDecision<'_> {
        if !self.enabled {
            return GovernanceDecision::Allow;
        }
        let mut roles = None;
        let policy = self.policies.iter().find(|p| {
            (p.workspaces.is_empty() || p.workspaces.iter().any(|w| w == workspace))
                && p.clients.matches(client)
                && p.servers.matches(server)
                && p.tools.matches(tool)
                && (p.roles.is_empty()
                    || roles
                        .get_or_insert_with(|| self.roles_of(client, workspace))
                        .intersects(p.roles))
        });
        match policy {
            None => GovernanceDecision::Allow,
            Some(p) => match p.effect {
                ToolEffect::Allow => GovernanceDecision::Allow,
                ToolEffect::Deny => GovernanceDecision::Deny {
                    policy: &p.name,
                    reason: &p.reason,
                },
                ToolEffect::RequireApproval => GovernanceDecision::RequireApproval {
                    policy: &p.name,
                    reason: &p.reason,
                },
            },
        }
    }

    /// Whether a tool is shown in lists: everything but a deny.
    pub fn may_view(&self, client: &str, workspace: &str, server: &str, tool: &str) -> bool {
        !matches!(
            self.decide(client, workspace, server, tool),
            GovernanceDecision::Deny { .. }
        )
    }

    /// Whether `approver` holds one of the approving roles in `workspace` (self-approval is
    /// the caller's check, with [`ApprovalSettings::allow_self_approval`]).
    pub fn may_approve(&self, approver: &str, workspace: &str) -> bool {
        self.approvals.enabled
            && self
                .roles_of(approver, workspace)
                .intersects(self.approvals.required_roles)
    }

    /// The approval settings.
    pub fn approval_settings(&self) -> &ApprovalSettings {
        &self.approvals
    }

    /// Whether governance is on.
    pub fn is_enabled(&self) -> bool {
        self.enabled
    }
}

#[cfg(test)]
#[path = "governance_tests.rs"]
mod tests;
