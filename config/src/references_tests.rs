use std::collections::BTreeMap;

use super::*;

/// A resolver with fixed variables and files.
pub(crate) struct FakeResolver {
    pub env: BTreeMap<String, String>,
    pub files: BTreeMap<String, String>,
}

impl ReferenceResolver for FakeResolver {
    fn env(&self, name: &str) -> Option<String> {
        self.env.get(name).cloned()
    }
    fn file(&self, path: &str) -> std::io::Result<String> {
        self.files.get(path).cloned().ok_or_else(|| {
            std::io::Error::new(std::io::ErrorKind::NotFound, "No such file or directory")
        })
    }
}

fn resolver() -> FakeResolver {
    FakeResolver {
        env: [("TOKEN".to_string(), "t0k".to_string())].into(),
        files: [("/run/key".to_string(), "k3y\n\n".to_string())].into(),
    }
}

#[test]
fn parses_literals_references_and_escapes() {
    assert_eq!(
        parse("Bearer ${env:TOKEN}").unwrap(),
        vec![
            Segment::Literal("Bearer ".into()),
            Segment::Env("TOKEN".into())
        ]
    );
    assert_eq!(
        parse("$${env:X} costs $5").unwrap(),
        vec![Segment::Literal("${env:X} costs $5".into())]
    );
    assert_eq!(
        parse("${file:/a/b}${env:_X1}").unwrap(),
        vec![Segment::File("/a/b".into()), Segment::Env("_X1".into())]
    );
    assert!(parse("").unwrap().is_empty());
}

#[test]
fn rejects_malformed_references() {
    assert!(
        parse("${env:}")
            .unwrap_err()
            .contains("empty environment variable name")
    );
    assert!(parse("${file:}").unwrap_err().contains("empty file path"));
    assert!(
        parse("${foo:x}")
            .unwrap_err()
            .contains("unknown reference source `foo`")
    );
    assert!(
        parse("${evn:x}")
            .unwrap_err()
            .contains("did you mean \"env\"")
    );
    assert!(
        parse("${TOKEN}")
            .unwrap_err()
            .contains("write `${env:TOKEN}`")
    );
    assert!(parse("a ${env:X").unwrap_err().contains("unterminated"));
    assert!(
        parse("${env:1X}")
            .unwrap_err()
            .contains("not an environment variable name")
    );
}

#[test]
fn detects_references() {
    assert!(contains_reference("x${env:A}"));
    assert!(contains_reference("${broken"));
    assert!(!contains_reference("$${env:A}"));
    assert!(!contains_reference("plain $ text"));
}

#[test]
fn resolves_env_and_file_trimming_one_newline() {
    let resolver = resolver();
    assert_eq!(
        resolve_str("Bearer ${env:TOKEN}", &resolver).unwrap(),
        "Bearer t0k"
    );
    assert_eq!(resolve_str("${file:/run/key}", &resolver).unwrap(), "k3y\n");
    assert_eq!(
        resolve_str("$${env:TOKEN}", &resolver).unwrap(),
        "${env:TOKEN}"
    );
}

#[test]
fn reports_every_failing_reference() {
    let errors = resolve_str("${env:NOPE} ${file:/nope} ${env:TOKEN}", &resolver()).unwrap_err();
    assert_eq!(
        errors,
        vec![
            "environment variable NOPE is not set".to_string(),
            "cannot read file /nope: No such file or directory".to_string(),
        ]
    );
}

#[test]
fn process_resolver_reads_real_files() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("secret");
    std::fs::write(&file, "s3cret\r\n").unwrap();
    let text = format!("${{file:{}}}", file.display());
    assert_eq!(resolve_str(&text, &ProcessResolver).unwrap(), "s3cret");
    let missing = format!("${{file:{}}}", dir.path().join("missing").display());
    let errors = resolve_str(&missing, &ProcessResolver).unwrap_err();
    assert!(errors[0].starts_with("cannot read file "), "{errors:?}");
    assert!(
        errors[0].ends_with(": No such file or directory"),
        "{errors:?}"
    );
}
