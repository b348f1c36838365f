use super::*;

fn errors(text: &str, mode: Mode) -> Vec<(String, String, bool)> {
    let mut value: Value = yaml_serde::from_str(text).unwrap();
    check(&mut value, mode)
        .errors
        .into_iter()
        .map(|e| (e.error.path, e.error.message, e.fatal))
        .collect()
}

#[test]
fn unknown_fields_are_pruned_and_not_fatal() {
    let mut value: Value = yaml_serde::from_str("servers:\n- id: a\n  urll: x\n").unwrap();
    let found = check(&mut value, Mode::Unresolved).errors;
    assert_eq!(found.len(), 1);
    assert!(!found[0].fatal);
    assert_eq!(value, serde_json::json!({"servers": [{"id": "a"}]}));
}

#[test]
fn type_errors_are_fatal() {
    let found = errors("servers:\n- id: 5\n", Mode::Unresolved);
    assert_eq!(
        found,
        vec![(
            "servers[0].id".to_string(),
            "expected a string, found the number 5".to_string(),
            true
        )]
    );
}

#[test]
fn null_is_accepted_for_optional_fields_only() {
    assert!(errors("servers:\n- id: a\n  url:\n", Mode::Unresolved).is_empty());
    let found = errors("servers:\n", Mode::Unresolved);
    assert_eq!(found[0].0, "servers");
    assert!(found[0].1.contains("expected a list"), "{found:?}");
}

#[test]
fn references_are_literal_text_once_resolved() {
    // Unresolved: a malformed reference is an error, and pattern checks wait.
    let found = errors("servers:\n- id: '${env:}'\n", Mode::Unresolved);
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(found[0].1.contains("empty environment variable name"));
    // Resolved: the same text is a literal, checked against the id pattern.
    let found = errors("servers:\n- id: '${env:}'\n", Mode::Resolved);
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(found[0].1.contains("does not match"), "{found:?}");
}

#[test]
fn schema_has_the_document_sections() {
    let schema = json_schema();
    for section in [
        "servers",
        "router",
        "auth",
        "acl",
        "guardrails",
        "profiles",
        "discovery",
    ] {
        assert!(schema["properties"].get(section).is_some(), "{section}");
    }
    assert_eq!(schema["properties"]["servers"]["type"], "array");
}
