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

/// `--flag` names in `text` (values after `=` dropped).
fn flags_in<'a>(words: impl Iterator<Item = &'a str>) -> Vec<String> {
    words
        .filter(|w| w.starts_with("--"))
        .map(|w| w.split('=').next().unwrap_or(w).to_owned())
        .collect()
}

/// Fails unless every flag is listed by `<binary> <subcommand> --help`.
fn assert_flags_exist(
    source: &Path,
    binary: &str,
    subcommand: &str,
    flags: &[String],
) -> anyhow::Result<()> {
    assert!(
        !flags.is_empty(),
        "{}: no flags found for {binary}",
        source.display()
    );
    let program = conduit_e2e::binaries::binary(binary)?;
    let help = std::process::Command::new(&program)
        .args([subcommand, "--help"])
        .output()
        .with_context(|| format!("running {binary} {subcommand} --help"))?;
    let help = String::from_utf8_lossy(&help.stdout);
    for flag in flags {
        assert!(
            help.contains(flag.as_str()),
            "{} uses `{flag}`, which `{binary} {subcommand}` does not accept",
            source.display()
        );
    }
    Ok(())
}

#[test]
fn deploy_files_only_use_existing_flags() -> anyhow::Result<()> {
    let deploy = repo_root().join("deploy");
    let binaries = [
        ("conduit-control-plane", "serve"),
        ("conduit-data-plane", "run"),
    ];

    let mut units = Vec::new();
    files_with_extension(&deploy.join("systemd"), &["service"], &mut units)?;
    for unit in &units {
        let text = std::fs::read_to_string(unit)?.replace("\\\n", " ");
        let exec = text
            .lines()
            .find_map(|line| line.strip_prefix("ExecStart="))
            .with_context(|| format!("{} has no ExecStart", unit.display()))?;
        let exec = exec.split_whitespace().collect::<Vec<_>>().join(" ");
        let (binary, subcommand) = binaries
            .iter()
            .find(|(binary, _)| {
                exec.split(' ')
                    .next()
                    .is_some_and(|program| program.ends_with(*binary))
            })
            .with_context(|| format!("{} starts no Conduit binary", unit.display()))?;
        assert!(exec.contains(&format!("{binary} {subcommand}")), "{exec}");
        assert_flags_exist(unit, binary, subcommand, &flags_in(exec.split_whitespace()))?;
    }

    let mut manifests = Vec::new();
    files_with_extension(&deploy.join("kubernetes"), &["yaml", "yml"], &mut manifests)?;
    let mut containers_seen = 0;
    for manifest in &manifests {
        let text = std::fs::read_to_string(manifest)?;
        for document in yaml_serde::Deserializer::from_str(&text) {
            let value = <yaml_serde::Value as serde::Deserialize>::deserialize(document)?;
            let containers = value["spec"]["template"]["spec"]["containers"].as_sequence();
            for container in containers.into_iter().flatten() {
                let args: Vec<&str> = container["args"]
                    .as_sequence()
                    .into_iter()
                    .flatten()
                    .filter_map(|arg| arg.as_str())
                    .collect();
                let Some((binary, subcommand)) = binaries
                    .iter()
                    .find(|(_, subcommand)| args.first() == Some(subcommand))
                else {
                    continue;
                };
                containers_seen += 1;
                assert_flags_exist(manifest, binary, subcommand, &flags_in(args.into_iter()))?;
            }
        }
    }
    assert!(
        units.len() >= 2 && containers_seen >= 2,
        "units {units:?}, containers {containers_seen}"
    );
    Ok(())
}
