//! Every server command against a real control plane: what it prints and which exit code
//! it returns for each outcome (converged, rejected, timed out, refused, unknown version).

use super::harness::{Behaviour, ControlPlane};
use super::*;

const V1: &str = "servers:\n  - id: fixture\n    url: http://127.0.0.1:9000/mcp\n";
const V2: &str =
    "servers:\n  - id: fixture\n    url: http://127.0.0.1:9000/mcp\n    timeout_ms: 2500\n";

struct Files {
    _dir: tempfile::TempDir,
    v1: String,
    v2: String,
}

fn files() -> Files {
    let dir = tempfile::tempdir().unwrap();
    let v1 = write(dir.path(), "v1.yaml", V1).display().to_string();
    let v2 = write(dir.path(), "v2.yaml", V2).display().to_string();
    Files { _dir: dir, v1, v2 }
}

fn ok(output: &Output) -> String {
    assert_eq!(
        code(output),
        0,
        "stdout:\n{}\nstderr:\n{}",
        stdout(output),
        stderr(output)
    );
    stdout(output)
}

#[test]
fn apply_wait_converges_and_status_shows_every_data_plane() {
    let cp = ControlPlane::start();
    let files = files();
    let _dp1 = cp.data_plane("dp-1", Behaviour::Ack);
    let _dp2 = cp.data_plane("dp-2", Behaviour::Ack);

    let out = ok(&cp.ctl(&[
        "apply",
        "-f",
        &files.v1,
        "-m",
        "first",
        "--author",
        "alice",
        "--wait=10s",
    ]));
    assert!(out.starts_with("version 1 applied (hash "), "{out}");
    assert!(out.contains("dp-1   applied version 1\n"), "{out}");
    assert!(
        out.ends_with("2/2 data planes applied version 1\n"),
        "{out}"
    );

    let status = cp.status_json();
    assert_eq!(status["current_version"], 1);
    for dp in status["data_planes"].as_array().unwrap() {
        assert_eq!(dp["applied_version"], 1, "{dp}");
        assert_eq!(dp["connected"], true, "{dp}");
        assert_eq!(dp["rejected_version"], 0, "{dp}");
        assert_eq!(dp["labels"]["zone"], "test", "{dp}");
    }
    let table = ok(&cp.ctl(&["status"]));
    assert!(table.contains("current version: 1\n"), "{table}");
    for node in ["dp-1", "dp-2"] {
        let row = table.lines().find(|l| l.starts_with(node)).expect(node);
        assert!(row.contains("converged"), "{row}");
        assert!(row.contains("zone=test"), "{row}");
    }

    // The same document again: no new version, and the fleet is still converged.
    let out = ok(&cp.ctl(&["apply", "-f", &files.v1, "--wait"]));
    assert!(
        out.starts_with("no change: version 1 is current\n"),
        "{out}"
    );
    let history = ok(&cp.ctl(&["history", "-o", "json"]));
    let history: serde_json::Value = serde_json::from_str(&history).unwrap();
    assert_eq!(history.as_array().unwrap().len(), 1, "{history}");
    assert_eq!(history[0]["author"], "alice");
    assert_eq!(history[0]["message"], "first");
}

#[test]
fn diff_and_dry_run_store_nothing() {
    let cp = ControlPlane::start();
    let files = files();

    // Nothing applied yet: everything is an addition.
    let output = cp.ctl(&["diff", "-f", &files.v1]);
    assert_eq!(code(&output), 1, "{}", stderr(&output));
    assert!(
        stdout(&output).starts_with("--- no version\n"),
        "{}",
        stdout(&output)
    );

    ok(&cp.ctl(&["apply", "-f", &files.v1]));
    assert_eq!(ok(&cp.ctl(&["diff", "-f", &files.v1])), "no changes\n");
    let output = cp.ctl(&["diff", "-f", &files.v2]);
    assert_eq!(code(&output), 1, "{}", stderr(&output));
    let diff = stdout(&output);
    assert!(
        diff.starts_with(&format!("--- version 1\n+++ {}\n", files.v2)),
        "{diff}"
    );
    assert!(diff.contains("\n+  timeout_ms: 2500\n"), "{diff}");

    let out = ok(&cp.ctl(&["apply", "-f", &files.v2, "--dry-run"]));
    assert_eq!(out, "valid; would create version 2\n");
    let out = ok(&cp.ctl(&["apply", "-f", &files.v1, "--dry-run"]));
    assert_eq!(out, "valid; no change: version 1 is current\n");
    assert_eq!(cp.status_json()["current_version"], 1);
}

#[test]
fn nack_is_exit_3_with_the_node_and_every_error() {
    let cp = ControlPlane::start();
    let files = files();
    let _good = cp.data_plane("dp-good", Behaviour::Ack);
    let _bad = cp.data_plane(
        "dp-bad",
        Behaviour::Nack(vec![
            (
                "servers[0].headers.X-Key",
                "environment variable API_KEY is not set",
            ),
            ("servers[0].url", "upstream host is not allowed here"),
        ]),
    );

    let output = cp.ctl(&["apply", "-f", &files.v1, "--wait=10s"]);
    assert_eq!(code(&output), 3, "{}\n{}", stdout(&output), stderr(&output));
    let errors = stderr(&output);
    assert!(
        errors.contains("rejected by 1 of 2 data planes"),
        "{errors}"
    );
    assert!(errors.contains("dp-bad rejected version 1:"), "{errors}");
    assert!(
        errors.contains("  servers[0].headers.X-Key: environment variable API_KEY is not set\n"),
        "{errors}"
    );
    assert!(
        errors.contains("  servers[0].url: upstream host is not allowed here"),
        "{errors}"
    );
    assert!(!errors.contains("dp-good rejected"), "{errors}");

    let table = ok(&cp.ctl(&["status"]));
    let row = table.lines().find(|l| l.starts_with("dp-bad")).unwrap();
    assert!(row.contains("rejected v1"), "{table}");
    assert!(
        table.contains("dp-bad rejected version 1:\n  servers[0].headers.X-Key"),
        "{table}"
    );
    let status = cp.status_json();
    let bad = status["data_planes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|dp| dp["node_id"] == "dp-bad")
        .unwrap();
    assert_eq!(bad["rejected_version"], 1, "{bad}");
    assert_eq!(bad["rejected_errors"][1]["path"], "servers[0].url", "{bad}");
}

#[test]
fn a_data_plane_that_never_answers_is_exit_4_and_named() {
    let cp = ControlPlane::start();
    let files = files();
    let _stuck = cp.data_plane("dp-stuck", Behaviour::Silent);

    let started = std::time::Instant::now();
    let output = cp.ctl(&["apply", "-f", &files.v1, "--wait=1s"]);
    assert_eq!(code(&output), 4, "{}\n{}", stdout(&output), stderr(&output));
    assert!(started.elapsed() < std::time::Duration::from_secs(15));
    let errors = stderr(&output);
    assert!(
        errors.contains("timed out after 1s waiting for version 1"),
        "{errors}"
    );
    assert!(errors.contains("  dp-stuck (at version 0)"), "{errors}");
    assert!(stdout(&output).contains("dp-stuck   pending (at version 0)"));

    let table = ok(&cp.ctl(&["status"]));
    let row = table.lines().find(|l| l.starts_with("dp-stuck")).unwrap();
    assert!(row.contains("pending"), "{table}");
}

#[test]
fn no_connected_data_planes_is_said_plainly() {
    let cp = ControlPlane::start();
    let files = files();
    let out = ok(&cp.ctl(&["apply", "-f", &files.v1, "--wait=5s"]));
    assert!(out.contains("no data planes are connected"), "{out}");
}

#[test]
fn rollback_history_and_get_config() {
    let cp = ControlPlane::start();
    let files = files();
    let _dp = cp.data_plane("dp-1", Behaviour::Ack);
    ok(&cp.ctl(&["apply", "-f", &files.v1, "-m", "first"]));
    ok(&cp.ctl(&["apply", "-f", &files.v2, "-m", "slower upstream"]));

    let out = ok(&cp.ctl(&["rollback", "--to", "1", "-m", "too slow", "--wait=10s"]));
    assert!(
        out.starts_with("rolled back to version 1: version 3 applied (hash "),
        "{out}"
    );
    assert!(
        out.ends_with("1/1 data planes applied version 3\n"),
        "{out}"
    );

    let table = ok(&cp.ctl(&["history"]));
    let lines: Vec<&str> = table.lines().collect();
    assert!(lines[0].starts_with("VERSION   AUTHOR"), "{table}");
    assert!(
        lines[1].starts_with("3 ") && lines[1].contains("too slow (rollback of 1)"),
        "{table}"
    );
    assert!(
        lines[3].starts_with("1 ") && lines[3].contains("first"),
        "{table}"
    );
    let limited = ok(&cp.ctl(&["history", "--limit", "1", "-o", "json"]));
    let limited: serde_json::Value = serde_json::from_str(&limited).unwrap();
    assert_eq!(limited.as_array().unwrap().len(), 1);
    assert_eq!(limited[0]["rolled_back_from"], 1);

    // Version 3 holds version 1's document.
    let old = ok(&cp.ctl(&["get", "config", "--version", "1", "-o", "json"]));
    let current = ok(&cp.ctl(&["get", "config", "-o", "json"]));
    assert_eq!(old, current);
    let yaml = ok(&cp.ctl(&["get", "config", "--version", "2"]));
    assert!(yaml.contains("timeout_ms: 2500"), "{yaml}");

    // What `get config` prints reads back as the same document.
    let dir = tempfile::tempdir().unwrap();
    let current_yaml = ok(&cp.ctl(&["get", "config"]));
    let again = write(dir.path(), "again.yaml", &current_yaml);
    assert_eq!(
        ok(&cp.ctl(&["diff", "-f", again.to_str().unwrap()])),
        "no changes
"
    );

    let output = cp.ctl(&["rollback", "--to", "99"]);
    assert_eq!(code(&output), 7, "{}", stderr(&output));
    assert!(stderr(&output).contains("99"), "{}", stderr(&output));
    let output = cp.ctl(&["get", "config", "--version", "99"]);
    assert_eq!(code(&output), 7, "{}", stderr(&output));
}

#[test]
fn get_config_before_any_apply_is_exit_7() {
    let cp = ControlPlane::start();
    let output = cp.ctl(&["get", "config"]);
    assert_eq!(code(&output), 7, "{}", stderr(&output));
}

#[test]
fn missing_or_wrong_token_is_exit_6_with_a_hint() {
    let cp = ControlPlane::start();
    let files = files();
    for token in [None, Some("wrong"), Some("")] {
        for args in [
            &["status"][..],
            &["history"],
            &["get", "config"],
            &["apply", "-f", &files.v1],
            &["diff", "-f", &files.v1],
            &["rollback", "--to", "1"],
        ] {
            let output = cp.ctl_with_token(token, args);
            assert_eq!(code(&output), 6, "{token:?} {args:?}: {}", stderr(&output));
            assert!(
                stderr(&output).contains("CONDUIT_TOKEN"),
                "{}",
                stderr(&output)
            );
        }
    }
    // The token may come from the environment too.
    let output = Command::new(env!("CARGO_BIN_EXE_conduitctl"))
        .args(["status", "-o", "json"])
        .env("CONDUIT_SERVER", cp.url())
        .env("CONDUIT_TOKEN", harness::ADMIN_TOKEN)
        .output()
        .unwrap();
    assert_eq!(code(&output), 0, "{}", stderr(&output));
}

#[test]
fn approvals_list_and_decisions_of_unknown_requests() {
    let cp = ControlPlane::start();
    assert_eq!(ok(&cp.ctl(&["approvals", "list", "-o", "json"])), "[]\n");
    assert_eq!(
        ok(&cp.ctl(&["approvals", "list", "--status", "all"])),
        "no approval requests\n"
    );
    let out = cp.ctl(&["approvals", "approve", "apr_unknown", "--note", "x"]);
    assert_eq!(code(&out), 7, "{}", stderr(&out));
    assert!(stderr(&out).contains("does not exist"), "{}", stderr(&out));
}
