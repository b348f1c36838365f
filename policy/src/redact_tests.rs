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
        // Added after the external review.
        "auth",
        "auth_header",
        "X-Auth",
        "cookie",
        "Set-Cookie",
        "credential",
        "credentials",
        "aws_credentials",
        "passwd",
        "db_passwd",
        "pwd",
        "passphrase",
        "keyPassphrase",
        "session",
        "sessionId",
        "Mcp-Session-Id",
        "private",
        "privateKey",
        // Plurals of the last word.
        "tokens",
        "accessTokens",
        "secrets",
        "passwords",
        "api_keys",
        "apiKeys",
        "apikeys",
        "private_keys",
        "cookies",
        "passphrases",
    ] {
        assert!(r.is_sensitive(name), "{name} should be redacted");
    }
    for name in [
        "tokenizer",
        "username",
        "key",
        "keys",
        "api",
        "pass",
        "secretary",
        "author",
        "authority",
        "sessionize",
        "privacy",
        "cookbook",
        "tokensmith",
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

#[test]
fn secrets_inside_strings_are_redacted() {
    let r = default();
    let cases = [
        (
            "https://alice:hunter2@db.example.com:5432/app",
            "https://[REDACTED]@db.example.com:5432/app",
        ),
        (
            "clone git://x-access-token:ghp_abc@github.com/o/r.git now",
            "clone git://[REDACTED]@github.com/o/r.git now",
        ),
        (
            "https://api.example.com/v1?user=bob&token=t0k3n&api_key=k3y#top",
            "https://api.example.com/v1?user=bob&token=[REDACTED]&api_key=[REDACTED]#top",
        ),
        (
            "/callback?code=1;session=abc, next",
            "/callback?code=1;session=[REDACTED], next",
        ),
        (
            "run --password=hunter2 --verbose",
            "run --password=[REDACTED] --verbose",
        ),
        ("DB_PASSWORD=s3cr3t psql", "DB_PASSWORD=[REDACTED] psql"),
        (
            "postgres://u:p@h/db?sslmode=require&passwd=x",
            "postgres://[REDACTED]@h/db?sslmode=require&passwd=[REDACTED]",
        ),
    ];
    for (input, expected) in cases {
        assert_eq!(r.redact_text(input), expected, "{input}");
    }
    // Nothing secret: left alone, borrowed.
    for plain in [
        "https://example.com/users/@alice?page=2&sort=name",
        "mailto:alice@example.com",
        "a == b, x=1",
        "token",
        "tokenizer=bpe",
        "https://example.com/path/with/segments",
        "user@example.com",
        "=token",
        "token=",
    ] {
        assert!(
            matches!(r.redact_text(plain), std::borrow::Cow::Borrowed(_)),
            "{plain} changed to {}",
            r.redact_text(plain)
        );
    }
    // In arguments, at any depth, as well as by field name.
    let input = json!({
        "url": "https://u:p@host/x?token=abc",
        "list": ["see ?secret=s1 here"],
        "cookies": {"a": 1},
    });
    assert_eq!(
        r.redact(&input),
        json!({
            "url": "https://[REDACTED]@host/x?token=[REDACTED]",
            "list": ["see ?secret=[REDACTED] here"],
            "cookies": "[REDACTED]",
        })
    );
}

#[test]
fn a_huge_string_of_separators_stays_linear() {
    let r = default();
    let text = "a=".repeat(50_000)
        + &"passwordish=".repeat(20_000)
        + &"x".repeat(100_000)
        + "=1 "
        + &"=".repeat(50_000)
        + "token=x";
    let redacted = r.redact_text(&text);
    assert!(redacted.ends_with("token=[REDACTED]"));
    assert_eq!(redacted.len(), text.len() - 1 + REDACTED.len());
    // A listed word outside ASCII is still found whatever its case.
    let custom = Redactor::new(&["contraseña"]);
    assert!(custom.is_sensitive("CONTRASEÑA") && custom.is_sensitive("mi_contraseña"));
}
