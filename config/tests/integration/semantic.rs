//! Semantic rules: one case per rule, each checked to fail with its path, plus valid
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
        "servers:\n- {id: a, url: 'https://x/mcp', replicas: ['https://y/mcp'], headers: {X-A: b}}\n- {id: b, transport: stdio, command: x, env: {A: b}}\n",
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
fn policy_rules() {
    let cases = [
        (
            "acl: {default_action: deny, policies: [{name: p, clients: []}]}\n",
            "acl.policies[0].clients",
            "at least one pattern",
        ),
        (
            "acl: {default_action: deny, policies: [{name: p, clients: ['a*b']}]}\n",
            "acl.policies[0].clients[0]",
            "only allowed at the end",
        ),
        (
            "acl: {default_action: deny, policies: [{name: p, clients: [x]}, {name: p, clients: [y]}]}\n",
            "acl.policies[1].name",
            "duplicate policy name",
        ),
        (
            "acl: {default_action: deny, policies: [{name: p, clients: [x], allow: [{server: a, tools: []}]}]}\n",
            "acl.policies[0].allow[0].tools",
            "at least one pattern",
        ),
        (
            "guardrails: {default_action: allow, rules: [{name: r, action: block}, {name: r, action: alert}]}\n",
            "guardrails.rules[1].name",
            "duplicate rule name",
        ),
        (
            "guardrails: {default_action: allow, rules: [{name: r}]}\n",
            "guardrails.rules[0].action",
            "required",
        ),
        (
            "guardrails: {default_action: allow, rules: [{name: r, bypass: true}]}\n",
            "guardrails.rules[0].clients",
            "at least one pattern",
        ),
        (
            "guardrails: {default_action: allow, rules: [{name: r, bypass: true, clients: [c], action: block}]}\n",
            "guardrails.rules[0].action",
            "not allowed on a bypass rule",
        ),
        (
            "guardrails: {default_action: allow, rules: [{name: r, action: require_approval}]}\n",
            "guardrails.rules[0].action",
            "needs the governance section",
        ),
        (
            "guardrails: {default_action: allow, rules: [{name: r, action: block, conditions: [{field: q, operator: matches, value: '(unclosed'}]}]}\n",
            "guardrails.rules[0].conditions[0].value",
            "invalid regular expression",
        ),
        (
            "guardrails: {default_action: allow, rules: [{name: r, action: block, conditions: [{field: q, operator: matches, value: 3}]}]}\n",
            "guardrails.rules[0].conditions[0].value",
            "must be a regular expression",
        ),
        (
            "guardrails: {default_action: allow, rules: [{name: r, action: block, conditions: [{field: q, operator: gt, value: ten}]}]}\n",
            "guardrails.rules[0].conditions[0].value",
            "must be a number",
        ),
        (
            "guardrails: {default_action: allow, rules: [{name: r, action: block, conditions: [{field: q, operator: eq}]}]}\n",
            "guardrails.rules[0].conditions[0].value",
            "required for this operator",
        ),
        (
            "guardrails: {default_action: allow, rules: [{name: r, action: block, conditions: [{field: q, operator: exists, value: 1}]}]}\n",
            "guardrails.rules[0].conditions[0].value",
            "take no value",
        ),
        (
            "guardrails: {default_action: allow, rules: [{name: r, action: block, conditions: [{field: 'a..b', operator: exists}]}]}\n",
            "guardrails.rules[0].conditions[0].field",
            "invalid field path",
        ),
        (
            "guardrails: {default_action: allow, rules: [{name: r, action: block, conditions: [{field: a, operator: like, value: x}]}]}\n",
            "guardrails.rules[0].conditions[0].operator",
            "unknown value \"like\"",
        ),
        (
            "guardrails: {default_action: allow, rules: [{name: r, action: alert, webhook: 'hooks.example.com/x'}]}\n",
            "guardrails.rules[0].webhook",
            "invalid URL",
        ),
        (
            "governance: {approvals: {enabled: false}, tool_policies: [{name: t, effect: require_approval}]}\n",
            "governance.tool_policies[0].effect",
            "needs approvals enabled",
        ),
        (
            "governance: {role_bindings: [{workspace_id: w, role: approver, clients: []}]}\n",
            "governance.role_bindings[0].clients",
            "at least one pattern",
        ),
        (
            "governance: {role_bindings: [{workspace_id: w, role: boss, clients: [a]}]}\n",
            "governance.role_bindings[0].role",
            "unknown value \"boss\"",
        ),
        (
            "governance: {approvals: {required_roles: []}}\n",
            "governance.approvals.required_roles",
            "nobody could approve",
        ),
        (
            "governance: {quotas: {workspaces: [{workspace_id: w, requests_per_day: 0}]}}\n",
            "governance.quotas.workspaces[0].requests_per_day",
            "must be at least 1",
        ),
    ];
    for (text, path, needle) in cases {
        assert_error(text, path, needle);
    }
    assert_valid(
        "governance: {}\nguardrails: {default_action: block, rules: [{name: r, action: require_approval, conditions: [{field: q, operator: matches, value: '^a+$'}]}]}\n",
    );
}

#[test]
fn traffic_rules() {
    let cases = [
        (
            "rate_limits: {backend: redis}\n",
            "rate_limits.redis_url",
            "required for backend: redis",
        ),
        (
            "rate_limits: {redis_url: 'redis://r'}\n",
            "rate_limits.redis_url",
            "only for backend: redis",
        ),
        (
            "rate_limits: {backend: redis, redis_url: 'http://r'}\n",
            "rate_limits.redis_url",
            "URL scheme must be",
        ),
        (
            "rate_limits: {global: {requests_per_minute: 0}}\n",
            "rate_limits.global.requests_per_minute",
            "must be at least 1",
        ),
        (
            "rate_limits: {per_client: {}}\n",
            "rate_limits.per_client",
            "sets no limit",
        ),
        (
            "rate_limits: {overrides: [{server: b, requests_per_minute: 1}]}\n",
            "rate_limits.overrides[0].server",
            "unknown server id \"b\"",
        ),
        (
            "rate_limits: {overrides: [{server: a}]}\n",
            "rate_limits.overrides[0]",
            "sets no limit",
        ),
        (
            "cache: {l2: {}}\n",
            "cache.l2.redis_url",
            "required when l2 is enabled",
        ),
        (
            "cache: {l2: {redis_url: 'redis://r', default_ttl_multiplier: 0.5}}\n",
            "cache.l2.default_ttl_multiplier",
            "must be at least 1",
        ),
        (
            "cache: {l1: {max_entries: 0}}\n",
            "cache.l1.max_entries",
            "must be at least 1",
        ),
        (
            "router: {health_check: {interval_seconds: 1, timeout_ms: 5000}}\n",
            "router.health_check.timeout_ms",
            "shorter than the interval",
        ),
        (
            "router: {circuit_breaker: {failure_threshold: 0}}\n",
            "router.circuit_breaker.failure_threshold",
            "must be at least 1",
        ),
        (
            "tenant_isolation: {header: 'bad header'}\n",
            "tenant_isolation.header",
            "invalid HTTP header name",
        ),
    ];
    for (text, path, needle) in cases {
        assert_error(&format!("{SERVER}{text}"), path, needle);
    }
    assert_valid(&format!(
        "{SERVER}cache: {{l2: {{enabled: false}}}}\nrate_limits: {{backend: redis, redis_url: 'rediss://:pw@r:6380/0', overrides: [{{server: a, per_tool: {{t: {{requests_per_day: 5}}}}}}]}}\n"
    ));
}

#[test]
fn security_rules() {
    let cases = [
        (
            "auth: {method: api-key}\n",
            "auth.api_keys",
            "at least one key",
        ),
        (
            "auth: {method: api-key, api_keys: [{key: 'sha256:abc', client_id: c}]}\n",
            "auth.api_keys[0].key",
            "64 hex digits",
        ),
        (
            "auth: {method: api-key, api_keys: [{key: k, client_id: c}, {key: k, client_id: d}]}\n",
            "auth.api_keys[1].key",
            "same key as auth.api_keys[0]",
        ),
        (
            "auth: {method: api-key, api_keys: [{key: k, client_id: c}], jwks_url: 'https://i/j'}\n",
            "auth.jwks_url",
            "only for method: jwt",
        ),
        (
            "auth: {method: none, api_keys: [{key: k, client_id: c}]}\n",
            "auth.api_keys",
            "only for method: api-key",
        ),
        ("auth: {method: jwt}\n", "auth", "jwks_url, jwks or secret"),
        (
            "auth: {method: jwt, jwks_url: 'http://idp.example/jwks'}\n",
            "auth.jwks_url",
            "must use https",
        ),
        (
            "auth: {method: jwt, jwks: '{\"nokeys\": 1}'}\n",
            "auth.jwks",
            "JSON Web Key Set",
        ),
        (
            "auth: {method: jwt, secret: s}\n",
            "auth.algorithms",
            "needs HMAC algorithms",
        ),
        (
            "auth: {method: jwt, jwks_url: 'https://i/j', algorithms: [HS256]}\n",
            "auth.secret",
            "required for HMAC",
        ),
        (
            "auth: {method: jwt, secret: s, algorithms: [HS256, RS256]}\n",
            "auth.algorithms",
            "cannot be mixed",
        ),
        (
            "auth: {method: jwt, secret: s, jwks_url: 'https://i/j', algorithms: [HS256]}\n",
            "auth.secret",
            "not allowed together",
        ),
        (
            "auth: {method: jwt, jwks_url: 'https://i/j', algorithms: [RS256, RS256]}\n",
            "auth.algorithms[1]",
            "listed twice",
        ),
        (
            "gateway: {tls: {cert_path: /c}}\n",
            "gateway.tls.key_path",
            "required when TLS is enabled",
        ),
        (
            "gateway: {tls: {key_path: /k}}\n",
            "gateway.tls.cert_path",
            "required when TLS is enabled",
        ),
        (
            "gateway: {tls: {cert_path: /c, key_path: /k, min_version: TLSv1.1}}\n",
            "gateway.tls.min_version",
            "unknown value \"TLSv1.1\"",
        ),
        (
            "identity: {workspaces: [{id: w, tenant_ids: [t]}, {id: w, tenant_ids: [u]}]}\n",
            "identity.workspaces[1].id",
            "duplicate workspace id",
        ),
        (
            "identity: {workspaces: [{id: w, tenant_ids: [t]}, {id: v, tenant_ids: [t]}]}\n",
            "identity.workspaces[1].tenant_ids[0]",
            "already belongs to a workspace",
        ),
        (
            "identity: {default_workspace_id: 'a b'}\n",
            "identity.default_workspace_id",
            "does not match",
        ),
    ];
    for (text, path, needle) in cases {
        assert_error(text, path, needle);
    }
    assert_valid("auth: {method: jwt, secret: s, algorithms: [HS256]}\n");
    assert_valid(
        "auth: {method: jwt, jwks_url: 'http://127.0.0.1:9/jwks', issuer: i, audience: a}\n",
    );
    assert_valid(&format!(
        "auth: {{method: api-key, api_keys: [{{key: 'sha256:{}', client_id: c}}]}}\n",
        "ab".repeat(32)
    ));
    assert_valid("gateway: {tls: {enabled: false}}\n");
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
