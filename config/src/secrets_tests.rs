use super::*;

#[test]
fn masks_url_user_info_and_sensitive_query_parameters() {
    assert_eq!(
        mask_url("redis://:hunter2@cache:6379/0"),
        "redis://[REDACTED]@cache:6379/0"
    );
    assert_eq!(
        mask_url("https://user:pw@h.example/p?a=1&access_token=x#f"),
        "https://[REDACTED]@h.example/p?a=1&access_token=[REDACTED]#f"
    );
    assert_eq!(
        mask_url("http://127.0.0.1:3001/mcp"),
        "http://127.0.0.1:3001/mcp"
    );
}

#[test]
fn webhooks_keep_only_their_origin() {
    assert_eq!(
        origin_only("https://hooks.example.com/services/T0/B0/xyz"),
        "https://hooks.example.com/[REDACTED]"
    );
    assert_eq!(origin_only("http://alerts:8080/"), "http://alerts:8080");
    assert_eq!(origin_only("not a url"), REDACTED);
}

#[test]
fn sensitive_names() {
    for name in [
        "Authorization",
        "X-Api-Key",
        "Cookie",
        "x-auth-token",
        "db_password",
    ] {
        assert!(is_sensitive(name), "{name}");
    }
    for name in ["Accept", "X-Request-Id", "User-Agent", "timeout"] {
        assert!(!is_sensitive(name), "{name}");
    }
}

#[test]
fn plugin_settings_are_masked_by_key_at_any_depth() {
    let mut value =
        serde_json::json!({"a": 1, "nested": {"apiKey": "x", "list": [{"password": "p"}]}});
    let mut paths = Vec::new();
    sensitive_keys(&mut value, "plugins[0].config", &mut |slot| {
        paths.push(slot.path);
        redact(slot.value);
    });
    assert_eq!(
        value,
        serde_json::json!({"a": 1, "nested": {"apiKey": REDACTED, "list": [{"password": REDACTED}]}})
    );
    assert_eq!(
        paths,
        [
            "plugins[0].config.nested.apiKey",
            "plugins[0].config.nested.list[0].password"
        ]
    );
}
