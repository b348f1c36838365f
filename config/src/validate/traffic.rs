//! Checks of the traffic-shaping sections: `router`, `cache`, `tenant_isolation` and
//! `rate_limits`.

use super::{Checker, at, nth};
use crate::model::{
    Document, Limits, NamespaceStrategy, RateLimitBackend, ServerConfig, Transport,
};

/// Schemes accepted for Redis URLs.
pub(super) const REDIS_SCHEMES: &[&str] = &["redis", "rediss", "redis+unix", "unix"];

pub(super) fn check(c: &mut Checker, doc: &Document) {
    router(c, doc);
    namespace(c, doc);
    cache(c, doc);
    if let Some(isolation) = &doc.tenant_isolation
        && let Some(header) = &isolation.header
    {
        c.header(at("tenant_isolation", "header"), header, None);
    }
    rate_limits(c, doc);
}

fn router(c: &mut Checker, doc: &Document) {
    let Some(health) = doc.router.as_ref().and_then(|r| r.health_check.as_ref()) else {
        return;
    };
    let interval_ms = health.interval_seconds.unwrap_or(30).saturating_mul(1000);
    let timeout_ms = health.timeout_ms.unwrap_or(5000);
    if timeout_ms >= interval_ms {
        c.error(
            "router.health_check.timeout_ms",
            format!(
                "the check timeout ({timeout_ms} ms) must be shorter than the interval ({interval_ms} ms)"
            ),
        );
    }
}

/// Under `namespace_strategy: none` the aggregate endpoint `/mcp` serves every server's
/// names unchanged, so one upstream configured twice offers each of its names twice there.
/// That much is certain from the document and refused here; collisions between different
/// servers depend on their tool lists and are reported when the lists are fetched.
fn namespace(c: &mut Checker, doc: &Document) {
    let strategy = doc.router.as_ref().map(|r| r.namespace_strategy());
    if strategy != Some(NamespaceStrategy::None) {
        return;
    }
    let endpoint = |server: &ServerConfig| match server.transport {
        Transport::Http => format!("{:?} {:?}", server.url, server.headers),
        Transport::Stdio => format!("{:?} {:?} {:?}", server.command, server.args, server.env),
    };
    let endpoints: Vec<String> = doc.servers.iter().map(endpoint).collect();
    for (index, server) in doc.servers.iter().enumerate() {
        let Some(first) = endpoints[..index]
            .iter()
            .position(|e| *e == endpoints[index])
        else {
            continue;
        };
        let field = match server.transport {
            Transport::Http => "url",
            Transport::Stdio => "command",
        };
        c.error(
            at(&nth("servers", index), field),
            format!(
                "the same upstream as servers[{first}] (\"{}\"): with router.namespace_strategy: \
                 none every name it offers would appear twice on /mcp; use namespace_strategy: \
                 prefix or configure the server once",
                doc.servers[first].id
            ),
        );
    }
}

fn cache(c: &mut Checker, doc: &Document) {
    let Some(l2) = doc.cache.as_ref().and_then(|cache| cache.l2.as_ref()) else {
        return;
    };
    match &l2.redis_url {
        Some(url) => {
            c.url("cache.l2.redis_url", url, REDIS_SCHEMES);
        }
        None if l2.is_enabled() => c.error("cache.l2.redis_url", "required when l2 is enabled"),
        None => {}
    }
}

fn rate_limits(c: &mut Checker, doc: &Document) {
    let Some(limits) = &doc.rate_limits else {
        return;
    };
    match (limits.backend(), &limits.redis_url) {
        (RateLimitBackend::Redis, Some(url)) => {
            c.url("rate_limits.redis_url", url, REDIS_SCHEMES);
        }
        (RateLimitBackend::Redis, None) if limits.is_enabled() => {
            c.error("rate_limits.redis_url", "required for backend: redis");
        }
        (RateLimitBackend::Redis, None) => {}
        (RateLimitBackend::Memory, Some(_)) => c.error(
            "rate_limits.redis_url",
            "not allowed: only for backend: redis (set backend: redis to share limits through Redis)",
        ),
        (RateLimitBackend::Memory, None) => {}
    }
    if limits.backend() == RateLimitBackend::Memory {
        if limits.on_backend_error.is_some() {
            c.error(
                "rate_limits.on_backend_error",
                "not allowed: only for backend: redis (the memory backend cannot fail)",
            );
        }
        if limits.redis_timeout_ms.is_some() {
            c.error(
                "rate_limits.redis_timeout_ms",
                "not allowed: only for backend: redis",
            );
        }
    }
    if let Some(global) = &limits.global {
        not_empty(c, "rate_limits.global", global);
    }
    if let Some(per_client) = &limits.per_client {
        not_empty(c, "rate_limits.per_client", per_client);
    }
    if let Some(per_client_server_tool) = &limits.per_client_server_tool {
        not_empty(
            c,
            "rate_limits.per_client_server_tool",
            per_client_server_tool,
        );
    }
    c.unique(
        "server",
        limits.overrides.iter().enumerate().map(|(i, o)| {
            (
                at(&nth("rate_limits.overrides", i), "server"),
                o.server.as_str(),
            )
        }),
    );
    for (index, limit) in limits.overrides.iter().enumerate() {
        let path = nth("rate_limits.overrides", index);
        if doc.server(&limit.server).is_none() {
            c.error(
                at(&path, "server"),
                format!(
                    "unknown server id \"{}\"{}",
                    limit.server,
                    crate::suggest::hint(&limit.server, doc.servers.iter().map(|s| s.id.as_str()))
                ),
            );
        }
        let own = Limits {
            requests_per_minute: limit.requests_per_minute,
            requests_per_hour: limit.requests_per_hour,
            requests_per_day: limit.requests_per_day,
        };
        if own.is_empty() && limit.per_tool.is_empty() {
            c.error(
                &path,
                "sets no limit: add requests_per_minute, requests_per_hour, requests_per_day or per_tool",
            );
        }
        for (tool, tool_limits) in &limit.per_tool {
            let tool_path = at(&at(&path, "per_tool"), tool);
            if tool.is_empty() {
                c.error(&tool_path, "empty tool name");
            }
            not_empty(c, &tool_path, tool_limits);
        }
    }
}

fn not_empty(c: &mut Checker, path: &str, limits: &Limits) {
    if limits.is_empty() {
        c.error(
            path,
            "sets no limit: add requests_per_minute, requests_per_hour or requests_per_day",
        );
    }
}
