//! Paths of values in a document, as shown in errors: `servers[1].url`,
//! `servers[2].headers.X-Api`, `servers[0].cache.overrides["files/read"]`.

/// The path of field or map key `key` under `parent`.
pub(crate) fn key(parent: &str, key: &str) -> String {
    let plain = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    match (parent.is_empty(), plain) {
        (true, true) => key.to_string(),
        (false, true) => format!("{parent}.{key}"),
        (_, false) => format!("{parent}[{}]", serde_json::Value::from(key)),
    }
}

/// The path of list element `index` under `parent`.
pub(crate) fn index(parent: &str, index: usize) -> String {
    format!("{parent}[{index}]")
}

/// Whether `path` is `prefix` itself or lies inside it (`servers[0]` holds `servers[0].url`
/// and `servers[0].args[1]`, not `servers[01]`).
pub(crate) fn within(path: &str, prefix: &str) -> bool {
    match path.strip_prefix(prefix) {
        Some(rest) => rest.is_empty() || rest.starts_with('.') || rest.starts_with('['),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_paths() {
        assert_eq!(key("", "servers"), "servers");
        assert_eq!(key(&index("servers", 2), "headers"), "servers[2].headers");
        assert_eq!(
            key("servers[2].headers", "X-Api"),
            "servers[2].headers.X-Api"
        );
        assert_eq!(
            key("a.overrides", "files/read"),
            r#"a.overrides["files/read"]"#
        );
        assert_eq!(key("", ""), r#"[""]"#);
    }
}
