//! Reading a config file (or stdin) and validating it with the same `conduit-config` code
//! the control plane and data planes run; the `validate` command itself. Never contacts the
//! control plane.

use std::io::Read;
use std::path::Path;

use conduit_config::Document;

use crate::cli::FileArgs;
use crate::exit::{CliError, Exit};

/// A config file that parsed and validated, with the text it came from.
pub struct LocalConfig {
    /// How to refer to the file in messages (`-` is shown as `<stdin>`).
    pub name: String,
    pub text: String,
    pub document: Document,
}

/// Reads `path` (`-` = stdin). An unreadable file is a usage error (64).
pub fn read_source(path: &Path) -> Result<(String, String), CliError> {
    if path == Path::new("-") {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .map_err(|error| CliError::usage(format!("error: cannot read stdin: {error}")))?;
        return Ok(("<stdin>".to_string(), text));
    }
    let name = path.display().to_string();
    let text = std::fs::read_to_string(path)
        .map_err(|error| CliError::usage(format!("error: cannot read {name}: {error}")))?;
    Ok((name, text))
}

/// Reads and validates; an invalid document is exit 2 with every error, so nothing invalid
/// is ever sent to the control plane.
pub fn load(path: &Path) -> Result<LocalConfig, CliError> {
    let (name, text) = read_source(path)?;
    let document = Document::from_text(&text)
        .map_err(|errors| CliError::invalid(&format!("{name}: invalid config"), &errors))?;
    Ok(LocalConfig {
        name,
        text,
        document,
    })
}

/// `conduitctl validate -f FILE`.
pub fn run(args: &FileArgs) -> Result<Exit, CliError> {
    let local = load(&args.file)?;
    print_warnings(&local);
    println!("{}: valid", local.name);
    Ok(Exit::Ok)
}

/// The warnings of a valid document, one line each on stderr (`validate` and `apply`):
/// literal secrets, which stay valid (a small setup may want them) but should be
/// references. They name paths, never values.
pub fn print_warnings(local: &LocalConfig) {
    for warning in warnings(local) {
        eprintln!("{}", conduit_process::escape_controls(&warning));
    }
}

/// The lines [`print_warnings`] writes.
pub fn warnings(local: &LocalConfig) -> Vec<String> {
    conduit_config::literal_secret_warnings(&local.document)
        .into_iter()
        .map(|warning| format!("warning: {}: {warning}", local.name))
        .collect()
}

/// `schema`: the JSON Schema the config crate publishes, generated from the same types
/// `validate` checks against, so an editor's hints never drift from the real rules.
pub fn print_schema() -> Result<Exit, CliError> {
    let schema = serde_json::to_string_pretty(&conduit_config::json_schema())
        .map_err(|error| CliError::new(Exit::ServerError, format!("error: {error}")))?;
    println!("{schema}");
    Ok(Exit::Ok)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literal_secrets_are_warnings_naming_paths() {
        let text = "servers:\n- id: a\n  url: http://127.0.0.1:9/mcp\n  headers: {Authorization: Bearer t0ken}\n";
        let local = LocalConfig {
            name: "c.yaml".into(),
            text: text.into(),
            document: Document::from_text(text).unwrap(),
        };
        let lines = warnings(&local);
        assert_eq!(lines.len(), 1, "{lines:?}");
        assert!(
            lines[0]
                .starts_with("warning: c.yaml: servers[0].headers.Authorization: literal secret"),
            "{lines:?}"
        );
        assert!(!lines[0].contains("t0ken"));
    }

    #[test]
    fn unreadable_file_is_a_usage_error() {
        let Err(error) = load(Path::new("/nonexistent/conduit.yaml")) else {
            panic!("a missing file must not load");
        };
        assert_eq!(error.exit(), Exit::Usage);
        assert!(error.message().contains("/nonexistent/conduit.yaml"));
    }
}
