//! Semantic rules of the policy, traffic and security sections: one case per rule,
//! each checked to fail with its path, plus valid counterparts.

use super::support::{SERVER, assert_error, assert_valid};

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
            "acl.policies[0].allow[0]",
            "at least one of tools, resources and prompts",
        ),
        (
            "acl: {default_action: deny, policies: [{name: p, clients: [x], deny: [{server: a}]}]}\n",
            "acl.policies[0].deny[0]",
            "at least one of tools, resources and prompts",
        ),
        (
            "acl: {default_action: deny, policies: [{name: p, clients: [x], allow: [{server: a, resources: ['file://*x*']}]}]}\n",
            "acl.policies[0].allow[0].resources[0]",
            "only allowed at the end",
        ),
        (
            "acl: {default_action: deny, policies: [{name: p, clients: [x], allow: [{server: a, prompts: ['']}]}]}\n",
            "acl.policies[0].allow[0].prompts[0]",
            "empty pattern",
        ),
        (
            "guardrails: {default_action: allow, rules: [{name: r, action: block, annotations: {destructivehint: true}}]}\n",
            "guardrails.rules[0].annotations.destructivehint",
            "did you mean \"destructiveHint\"",
        ),
        (
            "guardrails: {default_action: allow, rules: [{name: r, action: block, annotations: {readOnlyHint: yes please}}]}\n",
            "guardrails.rules[0].annotations.readOnlyHint",
            "",
        ),
        (
            "guardrails: {default_action: allow, rules: [{name: r, action: block, annotations: {}}]}\n",
            "guardrails.rules[0].annotations",
            "selects no hint",
        ),
        (
            "guardrails: {default_action: allow, rules: [{name: r, clients: [c], bypass: true, annotations: {destructiveHint: true}}]}\n",
            "guardrails.rules[0].annotations",
            "not allowed on a bypass rule",
        ),
        (
            "guardrails: {default_action: allow, rules: [{name: r, clients: [c], bypass: true, tools: ['read_*']}]}\n",
            "guardrails.rules[0].tools",
            "exempts every tool",
        ),
        (
            "guardrails: {default_action: allow, rules: [{name: r, clients: [c], bypass: true, conditions: [{field: a, operator: exists}]}]}\n",
            "guardrails.rules[0].conditions",
            "before conditions",
        ),
        (
            "guardrails: {default_action: allow, rules: [{name: r, action: block, conditions: [{field: q, operator: matches, value: '(\\w{1000}){1000}'}]}]}\n",
            "guardrails.rules[0].conditions[0].value",
            "invalid regular expression",
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
        (
            "governance: {approvals: {max_uses: 0}}\n",
            "governance.approvals.max_uses",
            "must be at least 1",
        ),
        (
            "governance: {approvals: {max_uses: 1001}}\n",
            "governance.approvals.max_uses",
            "1000",
        ),
        (
            "governance: {approvals: {requests_per_minute: 0}}\n",
            "governance.approvals.requests_per_minute",
            "must be at least 1",
        ),
        (
            "governance: {approvals: {max_pending_per_client: 0}}\n",
            "governance.approvals.max_pending_per_client",
            "must be at least 1",
        ),
    ];
    for (text, path, needle) in cases {
        assert_error(text, path, needle);
    }
    assert_valid(
        "governance: {approvals: {max_uses: 1000, requests_per_minute: 1, max_pending_per_client: 1}}\n",
    );
    assert_valid(
        "governance: {}\nguardrails: {default_action: block, rules: [{name: r, action: require_approval, conditions: [{field: q, operator: matches, value: '^a+$'}]}]}\n",
    );
    let document = assert_valid(
        "acl: {default_action: deny, policies: [{name: p, clients: [x], allow: [{server: a, resources: ['file:///docs/*'], prompts: ['*']}]}]}\nguardrails: {default_action: allow, rules: [{name: r, action: block, annotations: {destructiveHint: true, openWorldHint: false}}]}\n",
    );
    let rule = &document.acl.unwrap().policies[0].allow[0];
    assert!(rule.tools.is_empty() && rule.resources == ["file:///docs/*"]);
    let selector = document.guardrails.unwrap().rules[0].annotations.unwrap();
    assert_eq!(
        (
            selector.destructive_hint,
            selector.open_world_hint,
            selector.read_only_hint
        ),
        (Some(true), Some(false), None)
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
            "rate_limits: {enabled: true, backend: redis}\n",
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
            "rate_limits: {per_client_server_tool: {}}\n",
            "rate_limits.per_client_server_tool",
            "sets no limit",
        ),
        (
            "rate_limits: {on_backend_error: deny}\n",
            "rate_limits.on_backend_error",
            "only for backend: redis",
        ),
        (
            "rate_limits: {redis_timeout_ms: 50}\n",
            "rate_limits.redis_timeout_ms",
            "only for backend: redis",
        ),
        (
            "rate_limits: {backend: redis, redis_url: 'redis://r', redis_timeout_ms: 0}\n",
            "rate_limits.redis_timeout_ms",
            "must be at least 1",
        ),
        (
            "rate_limits: {backend: redis, redis_url: 'redis://r', on_backend_error: maybe}\n",
            "rate_limits.on_backend_error",
            "allow",
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
    assert_valid("rate_limits: {enabled: false, backend: redis}\n");
    assert_valid(&format!(
        "{SERVER}cache: {{l2: {{enabled: false}}}}\nrate_limits: {{backend: redis, redis_url: 'rediss://:pw@r:6380/0', on_backend_error: deny, redis_timeout_ms: 250, per_client_server_tool: {{requests_per_minute: 3}}, overrides: [{{server: a, per_tool: {{t: {{requests_per_day: 5}}}}}}]}}\n"
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
            // `sha256:` of "k": the same key twice, once hashed.
            "auth: {method: api-key, api_keys: [{key: k, client_id: c}, {key: 'sha256:8254C329A92850F6D539DD376F4816EE2764517DA5E0235514AF433164480D7A', client_id: d}]}\n",
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
            "auth: {method: jwt, secret: s, algorithms: [HS256]}\n",
            "auth.audience",
            "issued for any other service would be accepted",
        ),
        (
            "auth: {method: jwt, jwks_url: 'https://i/j', audience: a}\n",
            "auth.issuer",
            "required with jwks_url",
        ),
        (
            "auth: {method: jwt, jwks_url: 'https://i/j', issuer: i}\n",
            "auth.audience",
            "insecure_allow_any_audience: true",
        ),
        (
            "auth: {method: jwt, jwks_url: 'https://i/j', issuer: i, audience: a, insecure_allow_any_audience: true}\n",
            "auth.insecure_allow_any_audience",
            "contradicts auth.audience",
        ),
        (
            "auth: {method: jwt, jwks_url: 'https://i/j', issuer: i, audience: a, insecure_allow_any_issuer: true}\n",
            "auth.insecure_allow_any_issuer",
            "contradicts auth.issuer",
        ),
        (
            "auth: {method: jwt, secret: s, algorithms: [HS256], audience: a, insecure_allow_any_issuer: true}\n",
            "auth.insecure_allow_any_issuer",
            "only with jwks_url",
        ),
        (
            "auth: {method: jwt, jwks_url: 'https://i/j', issuer: '', audience: ''}\n",
            "auth.audience",
            "must not be empty",
        ),
        (
            "auth: {method: api-key, api_keys: [{key: k, client_id: c}], insecure_allow_any_audience: true}\n",
            "auth.insecure_allow_any_audience",
            "only for method: jwt",
        ),
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
            "auth: {method: jwt, jwks_url: 'https://i/j', clock_skew_seconds: 301}\n",
            "auth.clock_skew_seconds",
            "at most 300",
        ),
        (
            "auth: {method: jwt, jwks_url: 'https://i/j', jwks_refresh_min_interval_seconds: 0}\n",
            "auth.jwks_refresh_min_interval_seconds",
            "at least 1",
        ),
        (
            "auth: {method: jwt, jwks_url: 'https://i/j', jwks_cache_seconds: 0}\n",
            "auth.jwks_cache_seconds",
            "at least 1",
        ),
        (
            "auth: {method: jwt, jwks_url: 'https://i/j', pinned_thumbprints: [abc]}\n",
            "auth.pinned_thumbprints[0]",
            "43 base64url characters",
        ),
        (
            "auth: {method: jwt, jwks_url: 'https://i/j', pinned_key_ids: [k1, k1]}\n",
            "auth.pinned_key_ids[1]",
            "duplicate pinned key id",
        ),
        (
            "auth: {method: jwt, secret: s, algorithms: [HS256], pinned_key_ids: [k1]}\n",
            "auth",
            "neither is set",
        ),
        (
            "auth: {method: api-key, api_keys: [{key: k, client_id: c}], clock_skew_seconds: 5}\n",
            "auth.clock_skew_seconds",
            "only for method: jwt",
        ),
        (
            "auth: {method: jwt, jwks_url: 'https://i/j', algorithms: [ES512]}\n",
            "auth.algorithms[0]",
            "unknown value \"ES512\"",
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
            "gateway: {allowed_hosts: [ok.example, 'bad host']}\n",
            "gateway.allowed_hosts[1]",
            "is not a host name",
        ),
        (
            "gateway: {allowed_hosts: ['example.com:8080']}\n",
            "gateway.allowed_hosts[0]",
            "without a port",
        ),
        (
            "gateway: {allowed_origins: ['https://ok.example', 'ftp://x.example']}\n",
            "gateway.allowed_origins[1]",
            "must be http or https",
        ),
        (
            "gateway: {allowed_origins: ['https://app.example/path']}\n",
            "gateway.allowed_origins[0]",
            "is not an origin",
        ),
        (
            "gateway: {session_keys: [{id: 'a.b', key: '${env:K}'}]}\n",
            "gateway.session_keys[0].id",
            "must be 1 to 32 characters",
        ),
        (
            "gateway: {session_keys: [{id: a, key: '${env:K}'}, {id: a, key: '${env:L}'}]}\n",
            "gateway.session_keys[1].id",
            "duplicate session key id",
        ),
        (
            "gateway: {session_keys: [{id: a, key: c2hvcnQ=}]}\n",
            "gateway.session_keys[0].key",
            "decodes to 5 bytes",
        ),
        (
            "gateway: {session_keys: [{id: a, key: 'not base64!'}]}\n",
            "gateway.session_keys[0].key",
            "is not valid base64",
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
    assert_valid("auth: {method: jwt, secret: s, algorithms: [HS256], audience: a}\n");
    assert_valid(
        "auth: {method: jwt, jwks_url: 'http://127.0.0.1:9/jwks', issuer: i, audience: a}\n",
    );
    // The loudly named waivers; the issuer is optional with inline keys and secrets.
    assert_valid(
        "auth: {method: jwt, jwks_url: 'https://i/j', insecure_allow_any_audience: true, \
         insecure_allow_any_issuer: true}\n",
    );
    assert_valid("auth: {method: jwt, jwks: '{\"keys\": []}', audience: a}\n");
    assert_valid(&format!(
        "auth: {{method: api-key, api_keys: [{{key: 'sha256:{}', client_id: c}}]}}\n",
        "ab".repeat(32)
    ));
    assert_valid(&format!(
        "auth: {{method: jwt, jwks_url: 'https://idp.example/jwks', clock_skew_seconds: 300, \
         jwks_cache_seconds: 600, jwks_refresh_min_interval_seconds: 10, pinned_key_ids: [k1], \
         pinned_thumbprints: [{}], issuer: 'https://idp.example', audience: conduit}}\n",
        "a".repeat(43)
    ));
    assert_valid("gateway: {tls: {enabled: false}}\n");
    assert_valid(
        "gateway: {session_keys: [{id: new-2, key: '${env:NEW}'}, \
         {id: old_1, key: a2tra2tra2tra2tra2tra2tra2tra2tra2tra2tra2s=}]}\n",
    );
    assert_valid(
        "gateway: {allowed_hosts: ['*', mcp.example.com, '*.example.org', '10.0.0.5', '[fd00::1]'], \
         allowed_origins: ['*', 'https://app.example.com', 'http://*.example.org:8080', 'http://[::1]:3000']}\n",
    );
}
