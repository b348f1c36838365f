//! Golden test: every example config parses, validates and round-trips.

use std::path::{Path, PathBuf};

use conduit_config::Document;

fn examples_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples")
}

/// Every `*.yaml` under `dir`, skipping directories named `ci` (CI fixtures, owned elsewhere,
/// may be invalid on purpose).
fn yaml_files(dir: &Path, found: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap_or_else(|error| panic!("cannot read {}: {error}", dir.display()))
        .map(|entry| entry.expect("directory entry").path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            if path.file_name().is_some_and(|name| name != "ci") {
                yaml_files(&path, found);
            }
        } else if path
            .extension()
            .is_some_and(|ext| ext == "yaml" || ext == "yml")
        {
            found.push(path);
        }
    }
}

#[test]
fn every_example_validates_and_round_trips() {
    let mut files = Vec::new();
    yaml_files(&examples_dir(), &mut files);
    let names: Vec<String> = files
        .iter()
        .map(|f| f.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert!(names.contains(&"quickstart.yaml".to_string()), "{names:?}");
    assert!(names.contains(&"full.yaml".to_string()), "{names:?}");
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        let document = Document::from_text(&text)
            .unwrap_or_else(|errors| panic!("{} is invalid:\n{errors}", file.display()));

        let again = Document::from_text(&document.to_yaml()).unwrap_or_else(|errors| {
            panic!("{} does not re-parse from YAML:\n{errors}", file.display())
        });
        assert_eq!(again, document, "{}: YAML round trip", file.display());

        let canonical = document.canonical_json();
        let from_json = Document::from_text(&canonical).unwrap();
        assert_eq!(from_json, document, "{}: JSON round trip", file.display());
        assert_eq!(from_json.canonical_json(), canonical, "{}", file.display());
        assert_eq!(again.content_hash(), document.content_hash());
        assert!(document.validate().is_ok());
    }
}

#[test]
fn quickstart_fronts_the_fixture() {
    let text = std::fs::read_to_string(examples_dir().join("quickstart.yaml")).unwrap();
    let document = Document::from_text(&text).unwrap();
    assert_eq!(document.servers.len(), 1);
    assert_eq!(document.servers[0].id, "everything");
    assert_eq!(
        document.servers[0].url.as_deref(),
        Some("http://127.0.0.1:3001/mcp")
    );
}

#[test]
fn full_example_uses_every_section() {
    let text = std::fs::read_to_string(examples_dir().join("full.yaml")).unwrap();
    let document = Document::from_text(&text).unwrap();
    let value = serde_json::to_value(&document).unwrap();
    let schema = conduit_config::json_schema();
    let sections = schema["properties"].as_object().unwrap();
    assert!(sections.len() >= 18, "{:?}", sections.keys());
    for section in sections.keys() {
        assert!(
            value.get(section).is_some(),
            "examples/full.yaml does not use section `{section}`"
        );
    }
}

#[test]
fn canonical_json_ignores_key_order_and_formatting() {
    let a = Document::from_text(
        "servers:\n- id: a\n  url: http://h/mcp\n  headers: {B: '2', A: '1'}\n",
    )
    .unwrap();
    let b = Document::from_text(
        r#"{"servers": [{"headers": {"A": "1", "B": "2"}, "url": "http://h/mcp", "id": "a"}]}"#,
    )
    .unwrap();
    assert_eq!(a.canonical_json(), b.canonical_json());
    assert_eq!(a.content_hash(), b.content_hash());
    let c = Document::from_text("servers:\n- id: a\n  url: http://h/mcp2\n").unwrap();
    assert_ne!(a.content_hash(), c.content_hash());
}

#[test]
fn empty_document_is_valid() {
    let document = Document::from_text("").unwrap();
    assert!(document.servers.is_empty());
    assert_eq!(Document::from_text("{}").unwrap(), document);
}

#[test]
fn json_schema_describes_every_field() {
    let schema = conduit_config::json_schema();
    let defs = schema["$defs"].as_object().unwrap();
    assert!(defs.contains_key("ServerConfig"));
    let mut undocumented = Vec::new();
    for (name, def) in defs {
        for (field, property) in def["properties"].as_object().into_iter().flatten() {
            if property.get("description").is_none() {
                undocumented.push(format!("{name}.{field}"));
            }
        }
    }
    assert!(
        undocumented.is_empty(),
        "fields without docs: {undocumented:?}"
    );
}

#[test]
fn examples_satisfy_the_published_json_schema() {
    // Editors validate with the exported schema: it must accept what the loader accepts and
    // refuse what it refuses.
    let validator = jsonschema::validator_for(&conduit_config::json_schema()).unwrap();
    for name in ["quickstart.yaml", "full.yaml"] {
        let text = std::fs::read_to_string(examples_dir().join(name)).unwrap();
        let value = serde_json::to_value(Document::from_text(&text).unwrap()).unwrap();
        let errors: Vec<String> = validator
            .iter_errors(&value)
            .map(|e| format!("{}: {e}", e.instance_path()))
            .collect();
        assert!(errors.is_empty(), "{name}: {errors:#?}");
    }
    let bad = serde_json::json!({"servers": [{"id": "a b", "timout_ms": 1}]});
    assert!(!validator.is_valid(&bad));
}

#[test]
fn tricky_strings_survive_the_yaml_round_trip() {
    // Strings YAML would read as something else unless the writer quotes them.
    for text in [
        "true",
        "123",
        "null",
        "~",
        "",
        "0x1F",
        "1e3",
        "- a",
        ": x",
        "#c",
        "yes",
        "1.0",
        "'q'",
        "@x",
        "*a",
        "&a",
        "!t",
        "%x",
        "`x",
        "a: b",
        " padded ",
        "multi\nline",
        "${env:X}",
    ] {
        let value = serde_json::json!({
            "plugins": [{"name": "p", "path": "p", "hooks": ["after:auth"], "config": {"v": text}}]
        });
        let document: Document = serde_json::from_value(value).unwrap();
        let again = Document::from_text(&document.to_yaml()).unwrap();
        assert_eq!(again, document, "{text:?}");
        assert_eq!(again.plugins[0].config["v"], text, "{text:?}");
    }
}
