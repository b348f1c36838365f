//! Golden checks through the binaries: every shipped example config validates with
//! `conduitctl validate`, and every YAML file under `deploy/` is well-formed.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use conduit_e2e::ctl::run_conduitctl;

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn files_with_extension(
    dir: &Path,
    extensions: &[&str],
    out: &mut Vec<PathBuf>,
) -> anyhow::Result<()> {
    if !dir.is_dir() {
        return Ok(());
    }
    for entry in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let path = entry?.path();
        if path.is_dir() {
            files_with_extension(&path, extensions, out)?;
        } else if path
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| extensions.contains(&e))
        {
            out.push(path);
        }
    }
    out.sort();
    Ok(())
}

#[test]
fn every_example_config_validates() -> anyhow::Result<()> {
    let mut files = Vec::new();
    files_with_extension(
        &repo_root().join("examples"),
        &["yaml", "yml", "json"],
        &mut files,
    )?;
    assert!(
        files.iter().any(|f| f.ends_with("quickstart.yaml")),
        "examples/quickstart.yaml is missing: {files:?}"
    );
    for file in &files {
        let output = run_conduitctl(
            &["validate".into(), "-f".into(), file.display().to_string()],
            &[],
            std::time::Duration::from_secs(60),
        )?;
        assert_eq!(
            output.code,
            0,
            "{} does not validate:\n{output}",
            file.display()
        );
    }
    Ok(())
}

#[test]
fn every_deploy_yaml_is_well_formed() -> anyhow::Result<()> {
    let mut files = Vec::new();
    files_with_extension(&repo_root().join("deploy"), &["yaml", "yml"], &mut files)?;
    for file in &files {
        let text = std::fs::read_to_string(file)?;
        for document in yaml_serde::Deserializer::from_str(&text) {
            let value = <yaml_serde::Value as serde::Deserialize>::deserialize(document)
                .with_context(|| format!("{} is not valid YAML", file.display()))?;
            assert!(
                !value.is_null(),
                "{} contains an empty document",
                file.display()
            );
        }
    }
    Ok(())
}
