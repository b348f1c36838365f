//! Structural errors: all at once, with paths, hints and explanations of refused fields.

use super::support::{assert_error, errors_of};

#[test]
fn structural_and_semantic_errors_are_reported_together() {
    // A broken optional field (a bad enum value) does not hide the semantic problems of
    // the rest of the document; the section it sits in is not checked further.
    let errors = errors_of(
        r#"
servers:
  - id: a
    url: "not a url"
  - id: b
    transport: stdio
auth:
  method: api_key
acl:
  enabled: true
  policies: [{name: p, clients: []}]
"#,
    );
    let lines: Vec<String> = errors.iter().map(ToString::to_string).collect();
    for expected in [
        "auth.method: unknown value \"api_key\", did you mean \"api-key\"?",
        "acl.default_action: missing required field",
        "servers[0].url: invalid URL",
        "servers[1].command: required for transport: stdio",
    ] {
        assert!(
            lines.iter().any(|line| line.starts_with(expected)),
            "missing `{expected}` in:\n{errors}"
        );
    }
    assert_eq!(lines.len(), 4, "{errors}");
}

#[test]
fn reports_every_error_at_once_with_paths() {
    let errors = errors_of(
        r#"
servers:
  - id: ok
    url: http://127.0.0.1:1/mcp
    timout_ms: 5
  - id: bad id
    url: http://127.0.0.1:2/mcp
    timeout_ms: "30s"
    transport: grpc
  - id: c
    url: http://127.0.0.1:3/mcp
    headers:
      X-Api: 5
router:
  load_balancing: random
  health_check: {interval_secs: 3}
colour: blue
"#,
    );
    let lines: Vec<String> = errors.iter().map(ToString::to_string).collect();
    let expected = [
        "servers[0].timout_ms: unknown field, did you mean \"timeout_ms\"?",
        "servers[1].id: \"bad id\" does not match ^[a-zA-Z0-9-]+$",
        "servers[1].timeout_ms: expected a whole number, found the string \"30s\"",
        "servers[1].transport: unknown value \"grpc\" (expected one of: http, stdio)",
        "servers[2].headers.X-Api: expected a string, found the number 5",
        "router.load_balancing: unknown value \"random\" (expected one of: round-robin, least-connections)",
        "router.health_check.interval_secs: unknown field, did you mean \"interval_seconds\"?",
    ];
    for line in expected {
        assert!(
            lines.contains(&line.to_string()),
            "missing `{line}` in:\n{errors}"
        );
    }
    assert!(
        lines
            .iter()
            .any(|l| l
                .starts_with("colour: unknown field (expected one of: gateway, router, servers")),
        "{errors}"
    );
    assert_eq!(lines.len(), expected.len() + 1, "{errors}");
}

#[test]
fn display_is_one_path_message_per_line() {
    let errors = errors_of("servers:\n- id: a\n  urll: x\n- id: b\n  url: y\n  tiemout_ms: 1\n");
    let text = errors.to_string();
    assert!(
        text.contains("servers[0].urll: unknown field, did you mean \"url\"?\n"),
        "{text}"
    );
    assert!(
        text.contains("servers[1].tiemout_ms: unknown field, did you mean \"timeout_ms\"?"),
        "{text}"
    );
}

#[test]
fn unknown_fields_do_not_hide_semantic_errors() {
    // The typo is pruned and the rest of the document is still checked.
    let errors = errors_of("servers:\n- id: a\n  urll: http://x/mcp\n");
    let lines: Vec<String> = errors.iter().map(ToString::to_string).collect();
    assert_eq!(
        lines,
        [
            "servers[0].urll: unknown field, did you mean \"url\"?",
            "servers[0].url: required for transport: http",
        ]
    );
}

#[test]
fn missing_required_fields_and_wrong_shapes() {
    assert_error(
        "servers:\n- url: http://x/mcp\n",
        "servers[0].id",
        "missing required field",
    );
    assert_error(
        "servers: {id: a}\n",
        "servers",
        "expected a list, found a map",
    );
    assert_error(
        "servers:\n- id: a\n  url: http://x/mcp\n  forward_authorization: yes\n",
        "servers[0].forward_authorization",
        "expected true or false, found the string \"yes\"",
    );
    assert_error(
        "servers:\n- id: a\n  url: http://x/mcp\n  timeout_ms: -1\n",
        "servers[0].timeout_ms",
        "must not be negative",
    );
    assert_error(
        "servers:\n- id: a\n  url: http://x/mcp\n  timeout_ms: 0\n",
        "servers[0].timeout_ms",
        "must be at least 1",
    );
    assert_error(
        "servers:\n- id: a\n  url: http://x/mcp\n  timeout_ms: 1.5\n",
        "servers[0].timeout_ms",
        "expected a whole number, found the number 1.5",
    );
    assert_error(
        "router: {health_check: {unhealthy_threshold: 5000000000}}\n",
        "router.health_check.unhealthy_threshold",
        "must be at most 4294967295",
    );
    assert_error(
        "observability: {opentelemetry: {endpoint: 'http://c/v1/traces', sample_rate: 1.5}}\n",
        "observability.opentelemetry.sample_rate",
        "must be at most 1",
    );
    assert_error("- a\n- b\n", "", "expected a map, found a list");
}

#[test]
fn enum_values_get_hints_and_the_allowed_list() {
    assert_error(
        "auth: {method: api_key, api_keys: [{key: k, client_id: c}]}\n",
        "auth.method",
        "unknown value \"api_key\", did you mean \"api-key\"? (expected one of: none, api-key, jwt)",
    );
    assert_error(
        "auth: {method: jwt, jwks_url: 'https://i/jwks', algorithms: [RS256, none]}\n",
        "auth.algorithms[1]",
        "unknown value \"none\"",
    );
}

#[test]
fn nested_unknown_fields_everywhere() {
    let errors = errors_of(
        "acl:\n  default_action: deny\n  policies:\n  - name: p\n    clients: ['*']\n    allow:\n    - server: '*'\n      tool: [x]\n      tools: [x]\ncache: {l2: {redis_uri: 'redis://r'}}\n",
    );
    let text = errors.to_string();
    assert!(
        text.contains("acl.policies[0].allow[0].tool: unknown field, did you mean \"tools\"?"),
        "{text}"
    );
    assert!(
        text.contains("cache.l2.redis_uri: unknown field, did you mean \"redis_url\"?"),
        "{text}"
    );
}

#[test]
fn fields_of_the_single_process_original_explain_their_replacement() {
    let cases = [
        ("gateway: {port: 8080}\n", "gateway.port", "--listen"),
        ("gateway: {host: 0.0.0.0}\n", "gateway.host", "--listen"),
        (
            "admin: {key: s3cret}\n",
            "admin.key",
            "set CONDUIT_ADMIN_TOKEN there",
        ),
        (
            "admin: {allow_unauthenticated: true}\n",
            "admin.allow_unauthenticated",
            "CONDUIT_ADMIN_TOKEN",
        ),
        ("metrics: {port: 9090}\n", "metrics.port", "--admin-listen"),
        (
            "metrics: {require_auth: true}\n",
            "metrics.require_auth",
            "--admin-listen",
        ),
        (
            "observability: {db_path: ./logs.db}\n",
            "observability.db_path",
            "control plane",
        ),
        (
            "identity: {db_path: ./i.db}\n",
            "identity.db_path",
            "control plane",
        ),
        (
            "governance: {db_path: ./g.db}\n",
            "governance.db_path",
            "control plane",
        ),
        (
            "rate_limits: {queue: {enabled: true}}\n",
            "rate_limits.queue",
            "Retry-After",
        ),
        ("connect: {profiles: []}\n", "connect.profiles", "top level"),
        (
            "auth: {method: jwt, jwks_url: 'https://i/j', jwt_issuer: x}\n",
            "auth.jwt_issuer",
            "did you mean \"issuer\"?",
        ),
    ];
    for (text, path, needle) in cases {
        assert_error(text, path, needle);
    }
}

#[test]
fn guardrail_transform_is_refused_not_ignored() {
    assert_error(
        "guardrails:\n  default_action: allow\n  rules:\n  - name: r\n    action: transform\n",
        "guardrails.rules[0].action",
        "`transform` is not supported",
    );
}

#[test]
fn default_actions_are_required() {
    assert_error(
        "acl: {policies: []}\n",
        "acl.default_action",
        "missing required field",
    );
    assert_error(
        "guardrails: {rules: []}\n",
        "guardrails.default_action",
        "missing required field",
    );
}

#[test]
fn syntax_errors_are_reported() {
    let errors = errors_of("servers: [\n");
    assert_eq!(errors.len(), 1);
    assert!(errors.to_string().starts_with("invalid YAML"), "{errors}");
    let errors = errors_of("{\"servers\": [}");
    assert!(errors.to_string().starts_with("invalid JSON"), "{errors}");
}

#[test]
fn json_documents_get_the_same_checks() {
    assert_error(
        r#"{"servers": [{"id": "a", "url": "http://x/mcp", "timeoutMs": 5}]}"#,
        "servers[0].timeoutMs",
        "did you mean \"timeout_ms\"?",
    );
}

#[test]
fn proto_conversion_keeps_every_error() {
    let errors = errors_of("servers:\n- id: a\n  urll: x\n  bogus: 1\n");
    let proto: conduit_proto::v1::ConfigErrors = errors.clone().into();
    assert_eq!(proto.errors.len(), errors.len());
    assert_eq!(conduit_config::ConfigErrors::from(proto), errors);
}
