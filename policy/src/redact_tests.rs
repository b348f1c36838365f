use conduit_config::model::DEFAULT_REDACT_FIELDS;
use serde_json::json;

use super::*;

fn default() -> Redactor {
    Redactor::new(DEFAULT_REDACT_FIELDS)
}

#[test]
fn splits_words_on_separators_and_camel_case() {
    assert_eq!(words("user_password"), ["user", "password"]);
    assert_eq!(words("X-API-Key"), ["x", "api", "key"]);
    assert_eq!(words("userAccessToken"), ["user", "access", "token"]);
    assert_eq!(words("USER_TOKEN"), ["user", "token"]);
    assert_eq!(words("__a--b__"), ["a", "b"]);
}

#[test]
fn sensitive_names() {
    let r = default();
    for name in [
        "password",
        "user_password",
        "access_token",
        "USER_TOKEN",
        "passWord",
        "apiKey",
        "api_key",
        "x-api-key",
        "apikey",
        "privateKey",
        "client_secret",
        "Authorization",
        "ssn",
        "bearerToken",
    ] {
        assert!(r.is_sensitive(name), "{name} should be redacted");
    }
    for name in [
        "tokenizer",
        "passwords",
        "username",
        "key",
        "api",
        "pass",
        "secretary",
        "",
    ] {
        assert!(!r.is_sensitive(name), "{name} should not be redacted");
    }
}

#[test]
fn redacts_nested_objects_and_arrays_and_leaves_the_input_alone() {
    let input = json!({
        "query": "select 1",
        "password": {"nested": "anything"},
        "users": [
            {"name": "a", "accessToken": "t1"},
            [{"api_key": 3}, "plain"]
        ],
        "options": {"tokenizer": "bpe", "secret": null}
    });
    let redacted = default().redact(&input);
    assert_eq!(
        redacted,
        json!({
            "query": "select 1",
            "password": "[REDACTED]",
            "users": [
                {"name": "a", "accessToken": "[REDACTED]"},
                [{"api_key": "[REDACTED]"}, "plain"]
            ],
            "options": {"tokenizer": "bpe", "secret": "[REDACTED]"}
        })
    );
    assert_eq!(input["password"]["nested"], "anything");
}

#[test]
fn the_configured_list_replaces_the_default() {
    let value = json!({"password": "p", "pin_code": 1234});
    assert_eq!(
        redact(&value, &["pin_code"]),
        json!({"password": "p", "pin_code": "[REDACTED]"})
    );
    // `pinCode` joins into neither `pin_code`'s words as a run… it is the same words.
    assert!(Redactor::new(&["pin_code"]).is_sensitive("pinCode"));
    assert!(Redactor::new(&["pincode"]).is_sensitive("pinCode"));
}

#[test]
fn truncates_long_strings_by_characters() {
    let value = json!({"a": "ééééé", "b": ["abc", 5], "c": "ab"});
    assert_eq!(
        truncate_strings(&value, 2),
        json!({"a": "éé…[3 characters truncated]", "b": ["ab…[1 characters truncated]", 5], "c": "ab"})
    );
}

#[test]
fn a_document_without_observability_uses_the_default_list() {
    let plain = conduit_config::Document::default();
    assert_eq!(Redactor::for_document(&plain), default());
    let custom =
        conduit_config::Document::from_text("observability: {redact_fields: [pin]}\n").unwrap();
    let redactor = Redactor::for_document(&custom);
    assert!(redactor.is_sensitive("userPin") && !redactor.is_sensitive("password"));
}
