//! Checks of `servers` (transport-specific fields, URLs, headers, upstream auth, managed
//! runtime, cache policy) and of `profiles`, which refer to servers.

use std::collections::BTreeSet;

use super::{Checker, at, nth};
use crate::model::{
    Document, ForwardIdentityMode, ManagedRuntime, ServerCache, ServerConfig, StdioIsolation,
    TEMPLATE_VARIABLES, Transport, UpstreamAuth,
};

/// Headers the gateway manages itself; a static value would break the connection or the MCP
/// session.
const RESERVED_HEADERS: &[&str] = &[
    "host",
    "content-length",
    "transfer-encoding",
    "connection",
    "upgrade",
    "te",
    "trailer",
    "keep-alive",
    "proxy-connection",
    "mcp-session-id",
];

pub(super) fn check(c: &mut Checker, doc: &Document) {
    c.unique(
        "server id",
        doc.servers
            .iter()
            .enumerate()
            .map(|(i, server)| (at(&nth("servers", i), "id"), server.id.as_str())),
    );
    let identity_enabled = doc.identity.as_ref().is_some_and(|i| i.is_enabled());
    for (index, server) in doc.servers.iter().enumerate() {
        let path = nth("servers", index);
        match server.transport {
            Transport::Http => http_server(c, &path, server),
            Transport::Stdio => stdio_server(c, &path, server),
        }
        headers(c, &at(&path, "headers"), server);
        if let Some(auth) = &server.upstream_auth {
            upstream_auth(
                c,
                &at(&path, "upstream_auth"),
                server,
                auth,
                identity_enabled,
            );
        }
        if let Some(runtime) = &server.managed_runtime {
            managed_runtime(c, &at(&path, "managed_runtime"), server, runtime);
        }
        if let Some(cache) = &server.cache {
            server_cache(c, &at(&path, "cache"), cache);
        }
    }
    profiles(c, doc);
}

fn http_server(c: &mut Checker, path: &str, server: &ServerConfig) {
    const WHY: &str = "only for transport: stdio";
    match &server.url {
        Some(url) => {
            c.url(&at(path, "url"), url, &["http", "https"]);
        }
        None => c.error(at(path, "url"), "required for transport: http"),
    }
    c.forbid(at(path, "command"), server.command.is_some(), WHY);
    c.forbid(at(path, "args"), !server.args.is_empty(), WHY);
    c.forbid(at(path, "isolation"), server.isolation.is_some(), WHY);
    c.forbid(
        at(path, "max_processes"),
        server.max_processes.is_some(),
        WHY,
    );
    c.forbid(
        at(path, "idle_timeout_ms"),
        server.idle_timeout_ms.is_some(),
        WHY,
    );
    c.forbid(at(path, "env"), !server.env.is_empty(), WHY);
    c.forbid(
        at(path, "managed_runtime"),
        server.managed_runtime.is_some(),
        WHY,
    );
    let mut seen = BTreeSet::new();
    seen.extend(server.url.as_deref());
    for (index, replica) in server.replicas.iter().enumerate() {
        let replica_path = nth(&at(path, "replicas"), index);
        c.url(&replica_path, replica, &["http", "https"]);
        if !seen.insert(replica.as_str()) {
            c.error(replica_path, format!("duplicate endpoint \"{replica}\""));
        }
    }
}

fn stdio_server(c: &mut Checker, path: &str, server: &ServerConfig) {
    const WHY: &str = "only for transport: http";
    match &server.command {
        Some(command) if command.trim().is_empty() => {
            c.error(at(path, "command"), "must not be empty");
        }
        Some(_) if server.managed_runtime.is_some() => c.error(
            at(path, "command"),
            "not allowed with managed_runtime: the active release's command runs",
        ),
        Some(_) => {}
        None if server.managed_runtime.is_some() => {}
        None => c.error(
            at(path, "command"),
            "required for transport: stdio (or a managed_runtime)",
        ),
    }
    c.forbid(at(path, "url"), server.url.is_some(), WHY);
    c.forbid(at(path, "headers"), !server.headers.is_empty(), WHY);
    c.forbid(at(path, "replicas"), !server.replicas.is_empty(), WHY);
    c.forbid(
        at(path, "forward_authorization"),
        server.forward_authorization,
        WHY,
    );
    isolation(c, path, server);
    for name in server.env.keys() {
        let valid = !name.is_empty() && !name.contains('=') && !name.contains('\0');
        if !valid {
            c.error(
                at(&at(path, "env"), name),
                "invalid environment variable name",
            );
        }
    }
}

/// `isolation`, `max_processes` and `idle_timeout_ms` of a stdio server.
fn isolation(c: &mut Checker, path: &str, server: &ServerConfig) {
    // The settings of a server's processes, which only a server with several can use.
    let per_process = [
        ("max_processes", server.max_processes.is_some()),
        ("idle_timeout_ms", server.idle_timeout_ms.is_some()),
    ];
    if server.command.is_none() {
        // The data plane does not run managed releases yet: nothing would apply these.
        const WHY: &str = "only for a stdio server with a command (not a managed_runtime)";
        c.forbid(at(path, "isolation"), server.isolation.is_some(), WHY);
        for (field, set) in per_process {
            c.forbid(at(path, field), set, WHY);
        }
        return;
    }
    if server.isolation() == StdioIsolation::Shared {
        const WHY: &str =
            "only with isolation: tenant or client (a shared server runs one process)";
        for (field, set) in per_process {
            c.forbid(at(path, field), set, WHY);
        }
        return;
    }
    if server.max_processes == Some(0) {
        c.error(at(path, "max_processes"), "must be at least 1");
    }
    if server.idle_timeout_ms == Some(0) {
        c.error(at(path, "idle_timeout_ms"), "must be at least 1");
    }
}

fn headers(c: &mut Checker, path: &str, server: &ServerConfig) {
    for (name, value) in &server.headers {
        let header_path = at(path, name);
        let lower = name.to_ascii_lowercase();
        if RESERVED_HEADERS.contains(&lower.as_str()) {
            c.error(
                header_path,
                "this header is managed by the gateway and cannot be set",
            );
            continue;
        }
        if lower == "authorization" && server.forward_authorization {
            c.error(
                header_path,
                "conflicts with forward_authorization: true (the caller's Authorization would replace it); keep one",
            );
            continue;
        }
        c.header(header_path, name, Some(value));
    }
}

fn upstream_auth(
    c: &mut Checker,
    path: &str,
    server: &ServerConfig,
    auth: &UpstreamAuth,
    identity_enabled: bool,
) {
    if let Some(forward) = &auth.forward_identity {
        let header_path = at(&at(path, "forward_identity"), "header_name");
        match (&forward.header_name, forward.mode) {
            (Some(name), ForwardIdentityMode::ClaimsHeader) => c.header(header_path, name, None),
            (Some(_), _) => c.error(header_path, "not allowed: only for mode: claims-header"),
            (None, _) => {}
        }
        if forward.mode == ForwardIdentityMode::Bearer && server.transport == Transport::Stdio {
            c.error(
                at(&at(path, "forward_identity"), "mode"),
                "bearer forwarding needs transport: http",
            );
        }
    }
    let Some(account) = &auth.connected_account else {
        return;
    };
    let account_path = at(path, "connected_account");
    if server.transport == Transport::Stdio {
        c.error(&account_path, "connected accounts need transport: http");
    }
    if !identity_enabled {
        c.error(&account_path, "needs the identity section (enabled)");
    }
    for (name, template) in &account.headers {
        let header_path = at(&at(&account_path, "headers"), name);
        c.header(header_path.clone(), name, None);
        for variable in template_variables(template) {
            if !TEMPLATE_VARIABLES.contains(&variable) {
                c.error(
                    &header_path,
                    format!(
                        "unknown template variable {{{{{variable}}}}}{} (allowed: {})",
                        crate::suggest::hint(variable, TEMPLATE_VARIABLES.iter().copied()),
                        TEMPLATE_VARIABLES.join(", ")
                    ),
                );
            }
        }
    }
}

/// The names between `{{` and `}}` in a header template.
fn template_variables(template: &str) -> Vec<&str> {
    let mut names = Vec::new();
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else { break };
        names.push(after[..end].trim());
        rest = &after[end + 2..];
    }
    names
}

fn managed_runtime(c: &mut Checker, path: &str, server: &ServerConfig, runtime: &ManagedRuntime) {
    if server.transport != Transport::Stdio {
        // Reported once by the http checks.
        return;
    }
    c.unique(
        "release id",
        runtime.releases.iter().enumerate().map(|(i, release)| {
            (
                at(&nth(&at(path, "releases"), i), "id"),
                release.id.as_str(),
            )
        }),
    );
    let known = |id: &str| runtime.releases.iter().any(|release| release.id == id);
    if !known(&runtime.active_release_id) {
        c.error(
            at(path, "active_release_id"),
            format!("no release has id \"{}\"", runtime.active_release_id),
        );
    }
    if let Some(id) = &runtime.last_healthy_release_id
        && !known(id)
    {
        c.error(
            at(path, "last_healthy_release_id"),
            format!("no release has id \"{id}\""),
        );
    }
    if let Some(root) = runtime.sandbox.as_ref().and_then(|s| s.root_dir.as_deref()) {
        c.safe_dir(at(&at(path, "sandbox"), "root_dir"), root);
    }
}

/// Checks of a server's (or discovery's default) cache policy.
pub(super) fn server_cache(c: &mut Checker, path: &str, cache: &ServerCache) {
    for (tool, policy) in &cache.overrides {
        let tool_path = at(&at(path, "overrides"), tool);
        if tool.is_empty() {
            c.error(&tool_path, "empty tool name");
        }
        let ttl = policy.ttl.or(cache.default_ttl).unwrap_or(0);
        if !policy.invalidates.is_empty() && ttl > 0 {
            c.error(
                at(&tool_path, "invalidates"),
                format!(
                    "only applies to tools that are not cached (ttl 0), but this tool's ttl is {ttl}; set ttl: 0 or remove invalidates"
                ),
            );
        }
        for (index, name) in policy.invalidates.iter().enumerate() {
            if name.is_empty() {
                c.error(
                    nth(&at(&tool_path, "invalidates"), index),
                    "empty tool name",
                );
            }
        }
        for (index, name) in policy.ignore_args.iter().enumerate() {
            if name.is_empty() {
                c.error(
                    nth(&at(&tool_path, "ignore_args"), index),
                    "empty argument name",
                );
            }
        }
    }
}

fn profiles(c: &mut Checker, doc: &Document) {
    c.unique(
        "profile id",
        doc.profiles
            .iter()
            .enumerate()
            .map(|(i, profile)| (at(&nth("profiles", i), "id"), profile.id.as_str())),
    );
    for (index, profile) in doc.profiles.iter().enumerate() {
        let path = nth("profiles", index);
        if profile.id == "default" {
            c.error(
                at(&path, "id"),
                "\"default\" is reserved for the profile of all servers",
            );
        }
        let ids_path = at(&path, "server_ids");
        if profile.server_ids.is_empty() {
            c.error(&ids_path, "must list at least one server id");
        }
        for (i, id) in profile.server_ids.iter().enumerate() {
            if doc.server(id).is_none() {
                c.error(
                    nth(&ids_path, i),
                    format!(
                        "unknown server id \"{id}\"{}",
                        crate::suggest::hint(id, doc.servers.iter().map(|s| s.id.as_str()))
                    ),
                );
            }
        }
        c.unique(
            "server id",
            profile
                .server_ids
                .iter()
                .enumerate()
                .map(|(i, id)| (nth(&ids_path, i), id.as_str())),
        );
    }
}
