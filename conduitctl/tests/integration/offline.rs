//! Commands that need no control plane, and what happens when there is none.

use std::process::Command;
use std::time::{Duration, Instant};

use super::*;

mod validate {
    use super::*;

    #[test]
    fn schema_describes_the_config_document_offline() {
        let output = conduitctl(&["--server", "http://127.0.0.1:1", "schema"]);
        assert_eq!(code(&output), 0, "{}", stderr(&output));
        let schema: serde_json::Value = serde_json::from_str(&stdout(&output)).unwrap();
        let properties = schema["properties"]
            .as_object()
            .expect("top-level properties");
        for section in [
            "servers",
            "router",
            "auth",
            "acl",
            "guardrails",
            "rate_limits",
        ] {
            assert!(properties.contains_key(section), "schema lacks {section}");
        }
    }

    #[test]
    fn valid_file_exits_0() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(dir.path(), "conduit.yaml", VALID);
        let path = path.to_str().unwrap();
        let output = conduitctl(&["validate", "-f", path]);
        assert_eq!(code(&output), 0, "{}", stderr(&output));
        assert_eq!(stdout(&output), format!("{path}: valid\n"));
    }

    #[test]
    fn valid_json_on_stdin_exits_0() {
        let json = r#"{"servers": [{"id": "search", "url": "http://127.0.0.1:9000/mcp"}]}"#;
        let output = conduitctl_with_stdin(&["validate", "-f", "-"], Some(json));
        assert_eq!(code(&output), 0, "{}", stderr(&output));
        assert_eq!(stdout(&output), "<stdin>: valid\n");
    }

    #[test]
    fn invalid_file_exits_2_with_every_error_and_its_path() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(dir.path(), "conduit.yaml", INVALID);
        let output = conduitctl(&["validate", "-f", path.to_str().unwrap()]);
        assert_eq!(code(&output), 2, "{}", stderr(&output));
        let errors = stderr(&output);
        assert!(errors.contains("invalid config"), "{errors}");
        for path in ["servers[0]", "servers[1].timeout_ms"] {
            assert!(
                errors.lines().any(|line| line.starts_with(path)),
                "no error line for {path}:\n{errors}"
            );
        }
        assert!(errors.contains("urll"), "{errors}");
        assert_eq!(stdout(&output), "");
    }

    #[test]
    fn missing_file_is_a_usage_error() {
        let output = conduitctl(&["validate", "-f", "does-not-exist.yaml"]);
        assert_eq!(code(&output), 64);
        assert!(stderr(&output).contains("does-not-exist.yaml"));
    }

    #[test]
    fn validate_never_contacts_a_server() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(dir.path(), "conduit.yaml", VALID);
        let output = conduitctl(&[
            "--server",
            "http://127.0.0.1:1",
            "validate",
            "-f",
            path.to_str().unwrap(),
        ]);
        assert_eq!(code(&output), 0, "{}", stderr(&output));
    }
}

mod usage {
    use super::*;

    #[test]
    fn usage_errors_exit_64() {
        for args in [
            &[][..],
            &["frobnicate"],
            &["apply"],
            &["apply", "-f", "c.yaml", "--wait=soon"],
            &["apply", "-f", "c.yaml", "--dry-run", "--wait"],
            &["rollback"],
            &["status", "-o", "yaml"],
            &["status", "--server", "127.0.0.1:7700"],
        ] {
            let output = conduitctl(args);
            assert_eq!(code(&output), 64, "{args:?}: {}", stderr(&output));
            assert!(!stderr(&output).is_empty(), "{args:?}");
        }
    }

    #[test]
    fn help_documents_the_exit_codes() {
        let output = conduitctl(&["--help"]);
        assert_eq!(code(&output), 0);
        let help = stdout(&output);
        assert!(help.contains("Exit codes:"), "{help}");
        for line in [
            "0  success",
            "1  diff",
            "2  config invalid",
            "3  rollout rejected",
            "4  rollout timed out",
            "5  control plane unreachable",
            "6  authentication refused",
            "7  other server error",
            "64  usage error",
        ] {
            assert!(help.contains(line), "missing {line:?} in:\n{help}");
        }
        for env in ["CONDUIT_SERVER", "CONDUIT_TOKEN", "CONDUIT_CA_CERT"] {
            assert!(help.contains(env), "missing {env}");
        }
    }

    #[test]
    fn version_exits_0() {
        let output = conduitctl(&["--version"]);
        assert_eq!(code(&output), 0);
        assert!(stdout(&output).starts_with("conduitctl "));
    }
}

mod unreachable {
    use super::*;

    const NOBODY: &str = "http://127.0.0.1:1";

    #[test]
    fn every_server_command_exits_5_quickly() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(dir.path(), "conduit.yaml", VALID);
        let file = path.to_str().unwrap();
        for args in [
            &["status"][..],
            &["history"],
            &["get", "config"],
            &["rollback", "--to", "1"],
            &["apply", "-f", file],
            &["apply", "-f", file, "--wait"],
            &["diff", "-f", file],
        ] {
            let started = Instant::now();
            let output = conduitctl(&[&["--server", NOBODY][..], args].concat());
            assert_eq!(code(&output), 5, "{args:?}: {}", stderr(&output));
            assert!(
                stderr(&output).contains("cannot reach the control plane at http://127.0.0.1:1"),
                "{}",
                stderr(&output)
            );
            assert!(
                started.elapsed() < Duration::from_secs(5),
                "{args:?} was slow"
            );
        }
    }

    #[test]
    fn server_from_environment() {
        let output = Command::new(env!("CARGO_BIN_EXE_conduitctl"))
            .arg("status")
            .env("CONDUIT_SERVER", NOBODY)
            .output()
            .unwrap();
        assert_eq!(code(&output), 5, "{}", stderr(&output));
        assert!(stderr(&output).contains(NOBODY));
    }

    #[test]
    fn invalid_config_fails_before_contacting_the_server() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(dir.path(), "conduit.yaml", INVALID);
        for command in ["apply", "diff"] {
            let output = conduitctl(&["--server", NOBODY, command, "-f", path.to_str().unwrap()]);
            assert_eq!(code(&output), 2, "{command}: {}", stderr(&output));
            assert!(!stderr(&output).contains("cannot reach"), "{command}");
        }
    }

    #[test]
    fn https_with_an_unreadable_ca_is_a_usage_error() {
        let output = conduitctl(&[
            "--server",
            "https://127.0.0.1:1",
            "--ca-cert",
            "no-such-ca.pem",
            "status",
        ]);
        assert_eq!(code(&output), 64, "{}", stderr(&output));
        assert!(stderr(&output).contains("no-such-ca.pem"));
    }
}
