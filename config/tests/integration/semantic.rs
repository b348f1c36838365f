//! Semantic rules of servers, profiles and the platform sections (observability, plugins,
//! discovery, connect): one case per rule, each checked to fail with its path, plus valid
//! counterparts so that a rule that rejects everything would fail too.

use super::support::{SERVER, assert_error, assert_valid};

#[test]
fn server_rules() {
    let cases = [
        (
            "servers:\n- {id: a, url: 'http://x/mcp'}\n- {id: a, url: 'http://y/mcp'}\n",
            "servers[1].id",
            "duplicate server id \"a\" (first at servers[0].id)",
        ),
        (
            "servers:\n- {id: a}\n",
            "servers[0].url",
            "required for transport: http",
        ),
        (
            "servers:\n- {id: a, url: 'not a url'}\n",
            "servers[0].url",
            "invalid URL",
        ),
        (
            "servers:\n- {id: a, url: 'ftp://x/mcp'}\n",
            "servers[0].url",
            "URL scheme must be http or https",
        ),
        (
            "servers:\n- {id: a, url: 'http://x/mcp', command: x}\n",
            "servers[0].command",
            "only for transport: stdio",
        ),
        (
            "servers:\n- {id: a, url: 'http://x/mcp', env: {A: b}}\n",
            "servers[0].env",
            "only for transport: stdio",
        ),
        (
            "servers:\n- {id: a, transport: stdio}\n",
            "servers[0].command",
            "required for transport: stdio",
        ),
        (
            "servers:\n- {id: a, transport: stdio, command: x, url: 'http://x'}\n",
            "servers[0].url",
            "only for transport: http",
        ),
        (
            "servers:\n- {id: a, transport: stdio, command: x, replicas: ['http://x']}\n",
            "servers[0].replicas",
            "only for transport: http",
        ),
        (
            "servers:\n- {id: a, transport: stdio, command: x, headers: {A: b}}\n",
            "servers[0].headers",
            "only for transport: http",
        ),
        (
            "servers:\n- {id: a, transport: stdio, command: x, forward_authorization: true}\n",
            "servers[0].forward_authorization",
            "only for transport: http",
        ),
        (
            "servers:\n- {id: a, url: 'http://x/mcp', isolation: tenant}\n",
            "servers[0].isolation",
            "only for transport: stdio",
        ),
        (
            "servers:\n- {id: a, transport: stdio, command: x, max_processes: 4}\n",
            "servers[0].max_processes",
            "only with isolation: tenant or client",
        ),
        (
            "servers:\n- {id: a, transport: stdio, command: x, isolation: shared, idle_timeout_ms: 5}\n",
            "servers[0].idle_timeout_ms",
            "only with isolation: tenant or client",
        ),
        (
            "servers:\n- {id: a, transport: stdio, command: x, isolation: client, max_processes: 0}\n",
            "servers[0].max_processes",
            "at least 1",
        ),
        (
            "servers:\n- {id: a, transport: stdio, command: x, isolation: session}\n",
            "servers[0].isolation",
            "expected one of: shared, tenant, client",
        ),
        (
            "servers:\n- {id: a, url: 'http://x/mcp', replicas: ['http://y/mcp', 'nope']}\n",
            "servers[0].replicas[1]",
            "invalid URL",
        ),
        (
            "servers:\n- {id: a, url: 'http://x/mcp', replicas: ['http://x/mcp']}\n",
            "servers[0].replicas[0]",
            "duplicate endpoint",
        ),
        (
            "servers:\n- {id: a, url: 'http://x/mcp', headers: {'Bad Header': v}}\n",
            "servers[0].headers[\"Bad Header\"]",
            "invalid HTTP header name",
        ),
        (
            "servers:\n- {id: a, url: 'http://x/mcp', headers: {X-A: \"a\\nb\"}}\n",
            "servers[0].headers.X-A",
            "invalid HTTP header value",
        ),
        (
            "servers:\n- {id: a, url: 'http://x/mcp', headers: {Host: h}}\n",
            "servers[0].headers.Host",
            "managed by the gateway",
        ),
        (
            "servers:\n- {id: a, url: 'http://x/mcp', forward_authorization: true, headers: {Authorization: x}}\n",
            "servers[0].headers.Authorization",
            "conflicts with forward_authorization",
        ),
        (
            "servers:\n- id: a\n  url: http://x/mcp\n  cache: {default_ttl: 60, overrides: {d: {invalidates: [s]}}}\n",
            "servers[0].cache.overrides.d.invalidates",
            "only applies to tools that are not cached",
        ),
        (
            "servers:\n- id: a\n  url: http://x/mcp\n  upstream_auth: {connected_account: {provider: p}}\n",
            "servers[0].upstream_auth.connected_account",
            "needs the identity section",
        ),
        (
            "identity: {}\nservers:\n- id: a\n  url: http://x/mcp\n  upstream_auth: {connected_account: {provider: p, headers: {Authorization: '{{acess_token}}'}}}\n",
            "servers[0].upstream_auth.connected_account.headers.Authorization",
            "did you mean \"access_token\"?",
        ),
        (
            "servers:\n- id: a\n  url: http://x/mcp\n  upstream_auth: {forward_identity: {mode: bearer, header_name: X-Id}}\n",
            "servers[0].upstream_auth.forward_identity.header_name",
            "only for mode: claims-header",
        ),
    ];
    for (text, path, needle) in cases {
        assert_error(text, path, needle);
    }
    assert_valid(
        "servers:\n- {id: a, url: 'https://x/mcp', replicas: ['https://y/mcp'], headers: {X-A: b}}\n- {id: b, transport: stdio, command: x, env: {A: b}}\n- {id: c, transport: stdio, command: x, isolation: tenant, max_processes: 2, idle_timeout_ms: 1000}\n- {id: d, transport: stdio, command: x, isolation: client}\n",
    );
    assert_valid(
        "servers:\n- id: a\n  url: http://x/mcp\n  cache: {default_ttl: 60, overrides: {d: {ttl: 0, invalidates: [s]}}}\n",
    );
}

#[test]
fn managed_runtime_rules() {
    let base = "servers:\n- id: n\n  transport: stdio\n  managed_runtime:\n    source_type: npm\n    source_ref: pkg\n";
    let releases = "    releases:\n    - {id: r1, version: '1', command: npx}\n    - {id: r1, version: '2', command: npx}\n";
    let text = format!(
        "{base}    active_release_id: r9\n    last_healthy_release_id: r8\n    sandbox: {{root_dir: /etc/conduit}}\n{releases}"
    );
    assert_error(
        &text,
        "servers[0].managed_runtime.active_release_id",
        "no release has id \"r9\"",
    );
    assert_error(
        &text,
        "servers[0].managed_runtime.last_healthy_release_id",
        "no release has id \"r8\"",
    );
    assert_error(
        &text,
        "servers[0].managed_runtime.releases[1].id",
        "duplicate release id",
    );
    assert_error(
        &text,
        "servers[0].managed_runtime.sandbox.root_dir",
        "system directory /etc",
    );
    let with_command = text.replace("  transport: stdio\n", "  transport: stdio\n  command: x\n");
    assert_error(
        &with_command,
        "servers[0].command",
        "not allowed with managed_runtime",
    );
    assert_error(
        "servers:\n- id: n\n  url: http://x/mcp\n  managed_runtime: {source_type: npm, source_ref: p, active_release_id: r, releases: [{id: r, version: '1', command: c}]}\n",
        "servers[0].managed_runtime",
        "only for transport: stdio",
    );
    assert_valid(&format!(
        "{base}    active_release_id: r1\n    releases:\n    - {{id: r1, version: '1', command: npx}}\n"
    ));
}

#[test]
fn profile_rules() {
    let cases = [
        (
            "profiles:\n- {id: default, server_ids: [a]}\n",
            "profiles[0].id",
            "reserved",
        ),
        (
            "profiles:\n- {id: p, server_ids: [b]}\n",
            "profiles[0].server_ids[0]",
            "unknown server id \"b\"",
        ),
        (
            "profiles:\n- {id: p, server_ids: []}\n",
            "profiles[0].server_ids",
            "at least one server",
        ),
        (
            "profiles:\n- {id: p, server_ids: [a]}\n- {id: p, server_ids: [a]}\n",
            "profiles[1].id",
            "duplicate profile id",
        ),
        (
            "profiles:\n- {id: p, server_ids: [a, a]}\n",
            "profiles[0].server_ids[1]",
            "duplicate server id",
        ),
    ];
    for (text, path, needle) in cases {
        assert_error(&format!("{SERVER}{text}"), path, needle);
    }
    assert_valid(&format!(
        "{SERVER}profiles:\n- {{id: p, server_ids: [a]}}\n"
    ));
}

#[test]
fn one_upstream_twice_collides_without_namespaces() {
    let twice = "servers:\n- {id: a, url: http://x/mcp}\n- {id: b, url: http://y/mcp}\n\
                 - {id: c, url: http://x/mcp}\n";
    assert_error(
        &format!("{twice}router: {{namespace_strategy: none}}\n"),
        "servers[2].url",
        "the same upstream as servers[0] (\"a\")",
    );
    // Prefixed names never collide; other headers make it another upstream.
    assert_valid(&format!("{twice}router: {{namespace_strategy: prefix}}\n"));
    assert_valid(twice);
    assert_valid(
        "servers:\n- {id: a, url: http://x/mcp}\n- {id: c, url: http://x/mcp, headers: {X-Key: k}}\n\
         router: {namespace_strategy: none}\n",
    );
}

#[test]
fn platform_rules() {
    let cases = [
        (
            "observability: {opentelemetry: {}}\n",
            "observability.opentelemetry.endpoint",
            "required when opentelemetry is enabled",
        ),
        (
            "observability: {redact_fields: [token, token]}\n",
            "observability.redact_fields[1]",
            "duplicate field",
        ),
        (
            "observability: {retention_days: 0}\n",
            "observability.retention_days",
            "must be at least 1",
        ),
        (
            "plugins: [{name: p, path: ../evil, hooks: [before:request]}]\n",
            "plugins[0].path",
            "must not contain `..`",
        ),
        (
            "plugins: [{name: p, path: /proc/self, hooks: [before:request]}]\n",
            "plugins[0].path",
            "system directory /proc",
        ),
        (
            "plugins: [{name: p, path: x, hooks: []}]\n",
            "plugins[0].hooks",
            "at least one hook",
        ),
        (
            "plugins: [{name: p, path: x, hooks: ['before:everything']}]\n",
            "plugins[0].hooks[0]",
            "unknown value",
        ),
        (
            "plugins: [{name: p, path: x, hooks: [after:auth]}, {name: p, path: y, hooks: [after:auth]}]\n",
            "plugins[1].name",
            "duplicate plugin name",
        ),
        (
            "discovery: {}\n",
            "discovery.backends",
            "at least one backend",
        ),
        (
            "discovery: {poll_interval_seconds: 60, stale_timeout_seconds: 30, backends: [{type: http}]}\n",
            "discovery.stale_timeout_seconds",
            "more than poll_interval_seconds",
        ),
        (
            "discovery: {backends: [{type: dns}]}\n",
            "discovery.backends[0].domain",
            "required for type: dns",
        ),
        (
            "discovery: {backends: [{type: consul, consul_url: 'http://c:8500'}]}\n",
            "discovery.backends[0].service_name",
            "required for type: consul",
        ),
        (
            "discovery: {backends: [{type: http, domain: x}]}\n",
            "discovery.backends[0].domain",
            "only for type: dns",
        ),
        (
            "discovery: {backends: [{type: http, transport: stdio}]}\n",
            "discovery.backends[0].transport",
            "unknown field",
        ),
        (
            "connect: {registry: {page_size: 500}}\n",
            "connect.registry.page_size",
            "must be at most 200",
        ),
        (
            "connect: {registry: {base_url: 'nope'}}\n",
            "connect.registry.base_url",
            "invalid URL",
        ),
        (
            "connect: {managed_runtime: {root_dir: /}}\n",
            "connect.managed_runtime.root_dir",
            "root directory",
        ),
    ];
    for (text, path, needle) in cases {
        assert_error(text, path, needle);
    }
    assert_valid(
        "discovery: {enabled: false}\nplugins: [{name: p, path: plugins/p, hooks: [before:response]}]\n",
    );
}
