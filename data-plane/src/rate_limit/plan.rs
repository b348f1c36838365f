//! The limits of one configuration, compiled for lookup: which counters a request must fit in.
//!
//! `rate_limits` counts only when enabled (a present section is, unless `enabled: false`);
//! governance quotas count when governance is enabled, whatever `rate_limits` says. A
//! workspace with its own quota entry uses only that entry (an entry without numbers exempts
//! the workspace); every other workspace uses `quotas.default`.

use std::collections::HashMap;

use conduit_config::{Document, Limits, WorkspaceQuota};

use super::{BucketKind, Check, RateRequest, Window, key};

/// Limits per window (minute, hour, day); `None` = no limit in that window.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct WindowLimits([Option<u64>; 3]);

/// The compiled limits.
#[derive(Debug, Default)]
pub(crate) struct Plan {
    global: WindowLimits,
    per_client: WindowLimits,
    per_client_server_tool: WindowLimits,
    servers: HashMap<String, ServerPlan>,
    workspace_default: WindowLimits,
    workspaces: HashMap<String, WindowLimits>,
}

#[derive(Debug, Default)]
struct ServerPlan {
    own: WindowLimits,
    tools: HashMap<String, WindowLimits>,
}

impl WindowLimits {
    fn of(limits: Option<&Limits>) -> WindowLimits {
        limits.map_or_else(WindowLimits::default, |l| {
            WindowLimits::from_numbers(
                l.requests_per_minute,
                l.requests_per_hour,
                l.requests_per_day,
            )
        })
    }

    fn from_numbers(minute: Option<u64>, hour: Option<u64>, day: Option<u64>) -> WindowLimits {
        WindowLimits([minute, hour, day])
    }

    fn is_empty(&self) -> bool {
        self.0.iter().all(Option::is_none)
    }

    /// Add a check per configured window of the bucket `key()` (built only when needed).
    fn add(&self, kind: BucketKind, key: impl FnOnce() -> String, checks: &mut Vec<Check>) {
        if self.is_empty() {
            return;
        }
        let key = key();
        for (window, limit) in Window::ALL.into_iter().zip(self.0) {
            if let Some(limit) = limit {
                checks.push(Check {
                    kind,
                    key: key.clone(),
                    window,
                    limit,
                });
            }
        }
    }
}

impl Plan {
    pub(crate) fn compile(document: &Document) -> Plan {
        let mut plan = Plan::default();
        if let Some(limits) = document.rate_limits.as_ref().filter(|l| l.is_enabled()) {
            plan.global = WindowLimits::of(limits.global.as_ref());
            plan.per_client = WindowLimits::of(limits.per_client.as_ref());
            plan.per_client_server_tool = WindowLimits::of(limits.per_client_server_tool.as_ref());
            for server in &limits.overrides {
                let own = WindowLimits::from_numbers(
                    server.requests_per_minute,
                    server.requests_per_hour,
                    server.requests_per_day,
                );
                let tools = (server.per_tool.iter())
                    .map(|(tool, limits)| (tool.clone(), WindowLimits::of(Some(limits))))
                    .collect();
                plan.servers
                    .insert(server.server.clone(), ServerPlan { own, tools });
            }
        }
        if let Some(quotas) = (document.governance.as_ref())
            .filter(|g| g.is_enabled())
            .and_then(|g| g.quotas.as_ref())
        {
            plan.workspace_default = WindowLimits::of(quotas.default.as_ref());
            plan.workspaces = (quotas.workspaces.iter())
                .map(|q: &WorkspaceQuota| {
                    let limits = WindowLimits::from_numbers(
                        q.requests_per_minute,
                        q.requests_per_hour,
                        q.requests_per_day,
                    );
                    (q.workspace_id.clone(), limits)
                })
                .collect();
        }
        plan
    }

    /// Whether no request is ever limited.
    pub(crate) fn is_empty(&self) -> bool {
        self.global.is_empty()
            && self.per_client.is_empty()
            && self.per_client_server_tool.is_empty()
            && self.servers.is_empty()
            && self.workspace_default.is_empty()
            && self.workspaces.values().all(WindowLimits::is_empty)
    }

    /// Every counter `request` must fit in, widest bucket first.
    pub(crate) fn checks(&self, request: &RateRequest<'_>) -> Vec<Check> {
        let mut checks = Vec::new();
        let RateRequest {
            client_id,
            tenant_id,
            server_id,
            tool,
        } = *request;
        self.global
            .add(BucketKind::Global, key::global, &mut checks);
        let client = || key::client(client_id);
        self.per_client.add(BucketKind::Client, client, &mut checks);
        let server = server_id.and_then(|id| self.servers.get(id));
        if let (Some(server_id), Some(server)) = (server_id, server) {
            let key = || key::server(server_id);
            server.own.add(BucketKind::Server, key, &mut checks);
        }
        // Tool buckets only for calls, which always name their server.
        if let (Some(tool), Some(server_id)) = (tool, server_id) {
            if let Some(limits) = server.and_then(|s| s.tools.get(tool)) {
                let key = || key::tool(server_id, tool);
                limits.add(BucketKind::Tool, key, &mut checks);
            }
            let key = || key::client_server_tool(client_id, server_id, tool);
            (self.per_client_server_tool).add(BucketKind::ClientServerTool, key, &mut checks);
        }
        let workspace = self
            .workspaces
            .get(tenant_id)
            .unwrap_or(&self.workspace_default);
        let key = || key::workspace(tenant_id);
        workspace.add(BucketKind::Workspace, key, &mut checks);
        checks
    }
}
