use super::*;

#[test]
fn dump_schema() {
    println!("{}", serde_json::to_string_pretty(&json_schema()).unwrap());
}

#[test]
fn quickstart_parses() {
    let doc = crate::Document::from_text(include_str!("../../examples/quickstart.yaml")).unwrap();
    println!("{}", doc.to_yaml());
    let err = crate::Document::from_text("servers:\n- id: a b\n  urll: x\n  timeout_ms: '5'\nauth: {method: api_key}\nadmin: {key: x}\n").unwrap_err();
    println!("{err}");
}
