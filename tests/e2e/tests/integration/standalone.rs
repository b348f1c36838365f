//! A data plane without a control plane: `--config FILE`, watched, including the
//! write-to-temp-then-rename replacement editors and config tools use.

use anyhow::bail;
use conduit_e2e::configs::fixture_config;
use conduit_e2e::{DEFAULT_TIMEOUT, DataPlane, DataPlaneOptions, Fixture, wait_until};

use super::common::proxied_echo;

#[test]
fn standalone_data_plane_follows_its_config_file() -> anyhow::Result<()> {
    let fixture = Fixture::start()?;
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("conduit.yaml");
    std::fs::write(&path, fixture_config(&fixture.mcp_url(), "file-1"))?;

    let dp = DataPlane::start(DataPlaneOptions {
        node_id: "standalone".into(),
        config_file: Some(path.clone()),
        wait_ready: true,
        ..DataPlaneOptions::default()
    })?;
    proxied_echo(&dp, "standalone")?;
    let first_hash = dp.config_dump()?["hash"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(!first_hash.is_empty());

    // Replace the file atomically (rename over it): the data plane picks it up.
    let replace = |marker: &str, text: String| -> anyhow::Result<()> {
        let tmp = dir.path().join(format!(".{marker}.tmp"));
        std::fs::write(&tmp, text)?;
        std::fs::rename(&tmp, &path)?;
        Ok(())
    };
    replace("file-2", fixture_config(&fixture.mcp_url(), "file-2"))?;
    let second_hash = wait_until(DEFAULT_TIMEOUT, "the replaced file to be applied", || {
        let hash = dp.config_dump()?["hash"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        if hash == first_hash {
            bail!("still on the first file");
        }
        Ok(hash)
    })?;

    // An invalid replacement is rejected; the last good config keeps serving.
    replace("broken", "servers:\n  - id: \"no good\"\n".to_owned())?;
    std::thread::sleep(std::time::Duration::from_secs(2));
    assert_eq!(dp.readyz()?, 200);
    assert_eq!(
        dp.config_dump()?["hash"].as_str(),
        Some(second_hash.as_str())
    );
    proxied_echo(&dp, "last known good")?;
    Ok(())
}
