//! `servers[].upstream_auth`: per-server identity brokering. Which identity an upstream sees:
//! none, the caller's own bearer token, a signed-off claims header, or the token of an account
//! connected through the `identity` section.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// How the caller's identity or a connected account reaches one upstream server.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UpstreamAuth {
    /// Pass the caller's identity to the server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub forward_identity: Option<ForwardIdentity>,
    /// Use the token of an account connected for the caller's client, tenant or workspace
    /// (needs the `identity` section; `http` servers only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connected_account: Option<ConnectedAccount>,
}

/// Forwarding of the caller's identity.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ForwardIdentity {
    /// What is forwarded. Default: `none`.
    #[serde(default)]
    pub mode: ForwardIdentityMode,
    /// Header carrying the identity for `mode: claims-header`. Default: `X-Conduit-Identity`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub header_name: Option<String>,
}

/// What [`ForwardIdentity`] sends upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum ForwardIdentityMode {
    /// Nothing.
    #[default]
    None,
    /// The caller's `Authorization` header as received.
    Bearer,
    /// A header (`header_name`) holding base64url JSON `{client_id, tenant_id, workspace_id,
    /// claims}` of the authenticated caller.
    ClaimsHeader,
}

/// Use a connected account's credentials for upstream requests.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ConnectedAccount {
    /// Provider name the account was connected for (for example `github`).
    #[schemars(length(min = 1))]
    pub provider: String,
    /// Which connected account is used for a caller. Default: `client-or-workspace`.
    #[serde(default)]
    pub binding: AccountBinding,
    /// Fail the request (JSON-RPC error) when no account is connected. Default: `true`.
    /// With `false` the request goes upstream without these headers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub required: Option<bool>,
    /// Headers to send, as templates with `{{variable}}` placeholders: `access_token`,
    /// `token_type`, `account_id`, `workspace_id`, `tenant_id`, `client_id`, `provider`,
    /// `refresh_token`. Default: `Authorization: "{{token_type}} {{access_token}}"`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
}

/// The scope a connected account is looked up in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum AccountBinding {
    /// The account connected for the calling client.
    Client,
    /// The account connected for the caller's tenant.
    Tenant,
    /// The account connected for the caller's workspace.
    Workspace,
    /// The client's own account, else the workspace's.
    #[default]
    ClientOrWorkspace,
}

/// Placeholders allowed in [`ConnectedAccount::headers`] templates.
pub const TEMPLATE_VARIABLES: &[&str] = &[
    "access_token",
    "token_type",
    "account_id",
    "workspace_id",
    "tenant_id",
    "client_id",
    "provider",
    "refresh_token",
];
