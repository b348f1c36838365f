//! Finding the workspace binaries the tests run.

use std::path::PathBuf;

use anyhow::{Context as _, bail};

pub const CONTROL_PLANE: &str = "conduit-control-plane";
pub const DATA_PLANE: &str = "conduit-data-plane";
pub const CONDUITCTL: &str = "conduitctl";
pub const FIXTURE: &str = "conduit-mcp-fixture";

/// The directory holding the workspace binaries: `CONDUIT_BIN_DIR` when set, else the
/// profile directory of the running executable (`target/<profile>/`, the parent of `deps/`
/// for test executables).
pub fn bin_dir() -> anyhow::Result<PathBuf> {
    if let Some(dir) = std::env::var_os("CONDUIT_BIN_DIR") {
        return Ok(PathBuf::from(dir));
    }
    let exe = std::env::current_exe().context("locating the running executable")?;
    let mut dir = exe
        .parent()
        .context("the running executable has no parent directory")?
        .to_path_buf();
    if dir.file_name().is_some_and(|name| name == "deps") {
        dir.pop();
    }
    Ok(dir)
}

/// Path of the binary `name`, or an error telling how to build it.
pub fn binary(name: &str) -> anyhow::Result<PathBuf> {
    let path = bin_dir()?.join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    if !path.is_file() {
        bail!(
            "binary `{name}` not found at {}: run `cargo build --workspace --bins` first \
             (with the same profile as the tests)",
            path.display()
        );
    }
    Ok(path)
}
