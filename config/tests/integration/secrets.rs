//! `mask_secrets`: what `/config_dump` shows.

use conduit_config::{Document, REDACTED, mask_secrets};

use super::support::FakeResolver;

const SECRETS: &[&str] = &[
    "s3cret-api-key",
    "hunter2",
    "env-secret",
    "jwt-shared-secret",
    "T000/B000/XXXX",
    "plugin-token",
    "cookie-value",
    "release-secret",
    "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=",
];

fn resolved_document() -> Document {
    let text = r#"
servers:
  - id: a
    url: https://user:hunter2@api.example.com/mcp?access_token=hunter2&v=1
    headers:
      Authorization: Bearer ${env:TOKEN}
      Cookie: cookie-value
      X-Team: platform
  - id: b
    transport: stdio
    command: srv
    env: {DB_URL: env-secret}
  - id: n
    transport: stdio
    managed_runtime:
      source_type: npm
      source_ref: pkg
      active_release_id: r
      releases: [{id: r, version: '1', command: npx, env: {K: release-secret}}]
cache:
  l2: {redis_url: 'redis://:hunter2@cache:6379/0'}
gateway:
  session_keys: [{id: k1, key: '${env:SESSION_KEY}'}]
auth:
  method: api-key
  api_keys:
    - {key: s3cret-api-key, client_id: ci}
guardrails:
  default_action: allow
  rules:
    - {name: r, action: alert, webhook: 'https://hooks.example.com/services/T000/B000/XXXX'}
plugins:
  - {name: p, path: plugins/p, hooks: [after:auth], config: {level: 3, nested: {api_token: plugin-token}}}
"#;
    let document = Document::from_text(text).unwrap();
    document
        .resolve_references(
            &FakeResolver::default()
                .with_env("TOKEN", "s3cret-api-key")
                .with_env(
                    "SESSION_KEY",
                    "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=",
                ),
        )
        .unwrap()
}

#[test]
fn no_secret_survives_masking() {
    let masked = mask_secrets(&resolved_document());
    let text = serde_json::to_string(&masked).unwrap();
    for secret in SECRETS {
        assert!(!text.contains(secret), "`{secret}` leaked: {text}");
    }
    assert_eq!(masked["servers"][0]["headers"]["Authorization"], REDACTED);
    assert_eq!(masked["servers"][0]["headers"]["Cookie"], REDACTED);
    assert_eq!(masked["servers"][1]["env"]["DB_URL"], REDACTED);
    assert_eq!(masked["auth"]["api_keys"][0]["key"], REDACTED);
    assert_eq!(masked["gateway"]["session_keys"][0]["key"], REDACTED);
    assert_eq!(masked["gateway"]["session_keys"][0]["id"], "k1");
    assert_eq!(
        masked["cache"]["l2"]["redis_url"],
        "redis://[REDACTED]@cache:6379/0"
    );
    assert_eq!(
        masked["guardrails"]["rules"][0]["webhook"],
        "https://hooks.example.com/[REDACTED]"
    );
    assert_eq!(
        masked["plugins"][0]["config"]["nested"]["api_token"],
        REDACTED
    );
}

#[test]
fn masking_keeps_what_is_not_secret() {
    let masked = mask_secrets(&resolved_document());
    assert_eq!(masked["servers"][0]["headers"]["X-Team"], "platform");
    assert_eq!(masked["servers"][0]["id"], "a");
    assert_eq!(masked["servers"][1]["command"], "srv");
    assert_eq!(masked["auth"]["api_keys"][0]["client_id"], "ci");
    assert_eq!(masked["plugins"][0]["config"]["level"], 3);
    assert_eq!(
        masked["servers"][0]["url"],
        "https://[REDACTED]@api.example.com/mcp?access_token=[REDACTED]&v=1"
    );
}

#[test]
fn unresolved_references_are_shown_as_written() {
    let document = Document::from_text(
        "servers:\n- id: a\n  url: http://x/mcp\n  headers: {Authorization: 'Bearer ${env:TOKEN}'}\nauth: {method: jwt, secret: '${file:/run/jwt}', algorithms: [HS256], audience: conduit}\n",
    )
    .unwrap();
    let masked = mask_secrets(&document);
    assert_eq!(
        masked["servers"][0]["headers"]["Authorization"],
        "Bearer ${env:TOKEN}"
    );
    assert_eq!(masked["auth"]["secret"], "${file:/run/jwt}");
    let resolved = document
        .resolve_references(
            &FakeResolver::default()
                .with_env("TOKEN", "x")
                .with_file("/run/jwt", "jwt-shared-secret"),
        )
        .unwrap();
    assert_eq!(mask_secrets(&resolved)["auth"]["secret"], REDACTED);
}
