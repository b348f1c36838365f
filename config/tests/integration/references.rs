//! `${env:}` / `${file:}` references: validated unresolved, resolved on the data plane.

use conduit_config::{Document, ProcessResolver};

use super::support::{FakeResolver, assert_error, assert_valid};

const DOC: &str = r#"
servers:
  - id: a
    url: ${env:A_URL}
    headers:
      Authorization: Bearer ${env:API_TOKEN}
      X-Key: ${file:/run/secrets/key}
  - id: b
    transport: stdio
    command: srv
    env:
      TOKEN: ${env:B_TOKEN}
"#;

#[test]
fn unresolved_documents_skip_format_checks_of_references() {
    // `${env:A_URL}` is not a URL, but it cannot be checked before it is resolved.
    let document = assert_valid(DOC);
    assert_eq!(document.servers[0].url.as_deref(), Some("${env:A_URL}"));
}

#[test]
fn resolution_replaces_every_reference() {
    let document = Document::from_text(DOC).unwrap();
    let resolver = FakeResolver::default()
        .with_env("A_URL", "http://127.0.0.1:3001/mcp")
        .with_env("API_TOKEN", "t0k")
        .with_env("B_TOKEN", "b")
        .with_file("/run/secrets/key", "k3y\n");
    let resolved = document.resolve_references(&resolver).unwrap();
    assert_eq!(
        resolved.servers[0].url.as_deref(),
        Some("http://127.0.0.1:3001/mcp")
    );
    assert_eq!(resolved.servers[0].headers["Authorization"], "Bearer t0k");
    assert_eq!(resolved.servers[0].headers["X-Key"], "k3y");
    assert_eq!(resolved.servers[1].env["TOKEN"], "b");
    // The original is untouched.
    assert_eq!(document.servers[0].url.as_deref(), Some("${env:A_URL}"));
}

#[test]
fn every_missing_value_is_reported_with_its_path() {
    let document = Document::from_text(DOC).unwrap();
    let resolver = FakeResolver::default().with_env("A_URL", "http://x/mcp");
    let errors = document.resolve_references(&resolver).unwrap_err();
    let lines: Vec<String> = errors.iter().map(ToString::to_string).collect();
    assert_eq!(
        lines,
        [
            "servers[0].headers.Authorization: environment variable API_TOKEN is not set",
            "servers[0].headers.X-Key: cannot read file /run/secrets/key: No such file or directory",
            "servers[1].env.TOKEN: environment variable B_TOKEN is not set",
        ]
    );
}

#[test]
fn resolved_values_get_the_format_checks() {
    let document = Document::from_text("servers:\n- id: a\n  url: ${env:A_URL}\n").unwrap();
    let resolver = FakeResolver::default().with_env("A_URL", "not a url");
    let errors = document.resolve_references(&resolver).unwrap_err();
    assert_eq!(errors.len(), 1, "{errors}");
    assert_eq!(errors.0[0].path, "servers[0].url");
    // The error names the reference; the checker's words, which quote the value, are
    // withheld.
    assert!(errors.0[0].message.contains("${env:A_URL}"), "{errors}");
    assert!(!errors.0[0].message.contains("not a url"), "{errors}");

    let document = Document::from_text(
        "servers:\n- id: a\n  url: http://x/mcp\n  headers: {X-A: '${env:V}'}\n",
    )
    .unwrap();
    let resolver = FakeResolver::default().with_env("V", "line\nbreak");
    let errors = document.resolve_references(&resolver).unwrap_err();
    assert_eq!(errors.0[0].path, "servers[0].headers.X-A");
}

#[test]
fn escapes_stay_literal_after_resolution() {
    let document = Document::from_text(
        "servers:\n- id: a\n  url: http://x/mcp\n  headers: {X-Template: '$${env:NOT_A_REF}'}\n",
    )
    .unwrap();
    let resolved = document
        .resolve_references(&FakeResolver::default())
        .unwrap();
    assert_eq!(
        resolved.servers[0].headers["X-Template"],
        "${env:NOT_A_REF}"
    );
}

#[test]
fn malformed_references_are_validation_errors() {
    let base = "servers:\n- id: a\n  url: http://x/mcp\n  headers:\n";
    assert_error(
        &format!("{base}    X-A: '${{env:}}'\n"),
        "servers[0].headers.X-A",
        "empty environment variable name",
    );
    assert_error(
        &format!("{base}    X-A: '${{foo:x}}'\n"),
        "servers[0].headers.X-A",
        "unknown reference source `foo`",
    );
    assert_error(
        &format!("{base}    X-A: '${{TOKEN}}'\n"),
        "servers[0].headers.X-A",
        "write `${env:TOKEN}`",
    );
    assert_error(
        &format!("{base}    X-A: 'a ${{env:X'\n"),
        "servers[0].headers.X-A",
        "unterminated reference",
    );
    // Also inside free-form values.
    assert_error(
        "plugins: [{name: p, path: x, hooks: [after:auth], config: {a: [{b: '${nope}'}]}}]\n",
        "plugins[0].config.a[0].b",
        "is not a reference",
    );
}

#[test]
fn references_are_only_for_strings() {
    assert_error(
        "servers:\n- id: a\n  url: http://x/mcp\n  timeout_ms: ${env:TIMEOUT}\n",
        "servers[0].timeout_ms",
        "expected a whole number, found the string \"${env:TIMEOUT}\"",
    );
}

#[test]
fn process_resolver_reads_the_environment_and_files() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("key");
    std::fs::write(&key, "from-file\n").unwrap();
    // PATH is set in every test environment; no need to modify the process environment.
    let path = std::env::var("PATH").unwrap();
    let text = format!(
        "servers:\n- id: a\n  transport: stdio\n  command: x\n  env:\n    P: ${{env:PATH}}\n    K: ${{file:{}}}\n    M: ${{file:{}}}\n",
        key.display(),
        dir.path().join("missing").display()
    );
    let document = Document::from_text(&text).unwrap();
    let errors = document.resolve_references(&ProcessResolver).unwrap_err();
    assert_eq!(errors.len(), 1, "{errors}");
    assert_eq!(errors.0[0].path, "servers[0].env.M");
    std::fs::write(dir.path().join("missing"), "m").unwrap();
    let resolved = document.resolve_references(&ProcessResolver).unwrap();
    assert_eq!(resolved.servers[0].env["P"], path);
    assert_eq!(resolved.servers[0].env["K"], "from-file");
    assert_eq!(resolved.servers[0].env["M"], "m");
}
