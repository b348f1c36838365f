//! Rollback: an older document becomes the newest version and reaches the fleet; history
//! keeps who did what and why.

use anyhow::Context as _;

use super::common::{DEFAULT_FLEET, Fleet};

#[test]
fn rollback_stores_the_old_document_as_a_new_version() -> anyhow::Result<()> {
    let fleet = Fleet::start(DEFAULT_FLEET)?;
    let v1 = fleet.first_version;
    let v2 = fleet.apply_marker("v2", "second version", "bob")?;
    assert_eq!(v2, v1 + 1);

    let rollback = fleet.cp.ctl().env("CONDUIT_AUTHOR", "carol").run([
        "rollback",
        "--to",
        &v1.to_string(),
        "-m",
        "back to the first",
        "--wait=60s",
    ])?;
    rollback.expect_code(0)?;

    let mut history = fleet.cp.history()?;
    history.sort_by_key(|v| v.version);
    let versions: Vec<u64> = history.iter().map(|v| v.version).collect();
    assert_eq!(versions, vec![v1, v2, v2 + 1], "{history:?}");
    let (first, second, third) = (&history[0], &history[1], &history[2]);
    assert_eq!(
        (first.author.as_str(), first.message.as_str()),
        ("alice", "first version")
    );
    assert_eq!(
        (second.author.as_str(), second.message.as_str()),
        ("bob", "second version")
    );
    assert_eq!(
        (third.author.as_str(), third.message.as_str()),
        ("carol", "back to the first")
    );
    assert_eq!(third.rolled_back_from, Some(v1), "{third:?}");
    assert_eq!(third.hash, first.hash, "same document, same hash");
    assert_ne!(second.hash, first.hash);
    assert!(history.iter().all(|v| !v.created_at.is_empty()));

    // --wait returned: the fleet already runs v3 (= v1's document).
    for dp in &fleet.dps {
        let dump = dp.config_dump()?;
        assert_eq!(dump["version"].as_u64(), Some(third.version), "{dump}");
        assert_eq!(dump["hash"].as_str(), Some(first.hash.as_str()), "{dump}");
    }
    let status = fleet.cp.status()?;
    assert_eq!(status.current_version, third.version);

    // The stored documents agree.
    let old = fleet
        .cp
        .ctl()
        .run(["get", "config", "--version", &v1.to_string(), "-o", "json"])?;
    old.expect_code(0)?;
    let current = fleet.cp.ctl().run(["get", "config", "-o", "json"])?;
    current.expect_code(0)?;
    let old: serde_json::Value = old.json().context("get config --version")?;
    let current: serde_json::Value = current.json().context("get config")?;
    assert_eq!(old, current);

    // Unknown version: a server-side error, nothing stored.
    let unknown = fleet.cp.ctl().run(["rollback", "--to", "999"])?;
    unknown.expect_code(7)?;
    assert_eq!(fleet.cp.history()?.len(), 3);
    Ok(())
}
