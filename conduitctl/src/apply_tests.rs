use std::time::Duration;

use conduit_proto::v1::wait_rollout_response::Outcome;
use conduit_proto::v1::{ApplyResponse, ConfigError, DataPlaneStatus, WaitRolloutResponse};

use super::*;

fn response(version: u64, changed: bool, dry_run: bool) -> ApplyResponse {
    ApplyResponse {
        version,
        hash: "0123456789abcdef0123".into(),
        changed,
        dry_run,
    }
}

#[test]
fn applied_lines() {
    assert_eq!(
        applied_line(&response(4, true, false)),
        "version 4 applied (hash 01234567)"
    );
    assert_eq!(
        applied_line(&response(4, false, false)),
        "no change: version 4 is current"
    );
    assert_eq!(
        applied_line(&response(5, true, true)),
        "valid; would create version 5"
    );
    assert_eq!(
        applied_line(&response(4, false, true)),
        "valid; no change: version 4 is current"
    );
}

#[test]
fn explicit_author_wins_and_default_is_user_at_host() {
    assert_eq!(author(Some(" ci-bot ")), "ci-bot");
    let default = author(None);
    let (user, host) = default.split_once('@').expect("user@host");
    assert!(!user.is_empty() && !host.is_empty(), "{default}");
    assert_eq!(author(Some("  ")), default);
}

fn node(id: &str, connected: bool, applied: u64, rejected: u64) -> DataPlaneStatus {
    DataPlaneStatus {
        node_id: id.into(),
        connected,
        applied_version: applied,
        rejected_version: rejected,
        rejected_errors: if rejected > 0 {
            vec![
                ConfigError {
                    path: "servers[0].headers.Authorization".into(),
                    message: "environment variable MISSING is not set".into(),
                },
                ConfigError {
                    path: "".into(),
                    message: "snapshot not applied".into(),
                },
            ]
        } else {
            Vec::new()
        },
        ..Default::default()
    }
}

fn rollout(outcome: Outcome, data_planes: Vec<DataPlaneStatus>) -> WaitRolloutResponse {
    WaitRolloutResponse {
        outcome: outcome as i32,
        data_planes,
    }
}

const WAIT: Duration = Duration::from_secs(60);

#[test]
fn converged_counts_connected_data_planes() {
    let answer = rollout(
        Outcome::Converged,
        vec![
            node("dp-b", true, 5, 0),
            node("dp-a", true, 6, 0),
            node("dp-c", false, 2, 0),
        ],
    );
    let report = RolloutReport::new(5, WAIT, &answer);
    assert_eq!(
        report.progress(),
        "dp-a   applied version 6\n\
         dp-b   applied version 5\n\
         dp-c   disconnected (not waited for)\n"
    );
    assert_eq!(
        report.outcome().unwrap(),
        "2/2 data planes applied version 5"
    );
}

#[test]
fn converged_with_no_data_planes_says_so() {
    let answer = rollout(Outcome::Converged, vec![]);
    let summary = RolloutReport::new(1, WAIT, &answer).outcome().unwrap();
    assert!(
        summary.starts_with("no data planes are connected"),
        "{summary}"
    );
    assert_eq!(RolloutReport::new(1, WAIT, &answer).progress(), "");
}

#[test]
fn rejected_prints_each_nacking_node_with_every_error() {
    let answer = rollout(
        Outcome::Rejected,
        vec![node("dp-1", true, 5, 0), node("dp-2", true, 4, 5)],
    );
    let error = RolloutReport::new(5, WAIT, &answer).outcome().unwrap_err();
    assert_eq!(error.exit(), Exit::Rejected);
    assert_eq!(
        error.message(),
        "error: version 5 was rejected by 1 of 2 data planes (each keeps serving its previous \
         version):\n\
         dp-2 rejected version 5:\n  \
         servers[0].headers.Authorization: environment variable MISSING is not set\n  \
         snapshot not applied"
    );
}

#[test]
fn timed_out_lists_pending_nodes() {
    let answer = rollout(
        Outcome::TimedOut,
        vec![
            node("dp-1", true, 7, 0),
            node("dp-2", true, 6, 0),
            node("dp-3", true, 0, 0),
        ],
    );
    let report = RolloutReport::new(7, Duration::from_secs(90), &answer);
    assert!(
        report
            .progress()
            .contains("dp-2   pending (at version 6)\n")
    );
    let error = report.outcome().unwrap_err();
    assert_eq!(error.exit(), Exit::TimedOut);
    assert_eq!(
        error.message(),
        "error: timed out after 1m 30s waiting for version 7: 2 of 3 data planes still pending:\n  \
         dp-2 (at version 6)\n  \
         dp-3 (at version 0)"
    );
}

#[test]
fn missing_outcome_is_a_server_error() {
    let answer = rollout(Outcome::Unspecified, vec![]);
    let error = RolloutReport::new(1, WAIT, &answer).outcome().unwrap_err();
    assert_eq!(error.exit(), Exit::ServerError);
}
