//! Config documents the tests apply. Each takes the fixture URL and a marker so that
//! every apply produces a different document (and so a new version).

/// A valid one-server config fronting the fixture as server `fixture`; `marker` goes into a
/// static header, so different markers give different documents.
pub fn fixture_config(fixture_url: &str, marker: &str) -> String {
    format!(
        "servers:\n  - id: fixture\n    url: {fixture_url}\n    timeout_ms: 10000\n    headers:\n      X-Conduit-E2e: \"{marker}\"\n"
    )
}

/// Like [`fixture_config`] plus a header whose value is `${env:VAR}`: a data plane without
/// `VAR` in its environment cannot resolve it and must NACK.
pub fn config_with_env_header(fixture_url: &str, marker: &str, var: &str) -> String {
    format!(
        "servers:\n  - id: fixture\n    url: {fixture_url}\n    timeout_ms: 10000\n    headers:\n      X-Conduit-E2e: \"{marker}\"\n      X-Conduit-Secret: \"${{env:{var}}}\"\n"
    )
}
