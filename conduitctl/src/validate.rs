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
    println!("{}: valid", local.name);
    Ok(Exit::Ok)
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
    fn unreadable_file_is_a_usage_error() {
        let Err(error) = load(Path::new("/nonexistent/conduit.yaml")) else {
            panic!("a missing file must not load");
        };
        assert_eq!(error.exit(), Exit::Usage);
        assert!(error.message().contains("/nonexistent/conduit.yaml"));
    }
}
