//! Runs the real `conduitctl` binary: offline (validation, usage errors, help, no control
//! plane to reach) and against a real control plane started in-process on port 0, with
//! scripted data planes on real config streams.

#[path = "integration/audit.rs"]
mod audit;
#[path = "integration/harness.rs"]
mod harness;
#[path = "integration/offline.rs"]
mod offline;
#[path = "integration/server.rs"]
mod server;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

const VALID: &str = "\
# A comment and odd spacing: canonical forms ignore both.
servers:
  - id: search
    url: http://127.0.0.1:9000/mcp
    timeout_ms: 5000
";

/// Two independent problems in two places, so "every error" is observable.
const INVALID: &str = "\
servers:
  - id: search
    urll: http://127.0.0.1:9000/mcp
  - id: files
    url: http://127.0.0.1:9001/mcp
    timeout_ms: soon
";

fn conduitctl(args: &[&str]) -> Output {
    conduitctl_with_stdin(args, None)
}

fn conduitctl_with_stdin(args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_conduitctl"))
        .args(args)
        // A developer's environment must not leak into what is being tested.
        .env_remove("CONDUIT_SERVER")
        .env_remove("CONDUIT_TOKEN")
        .env_remove("CONDUIT_CA_CERT")
        .env_remove("CONDUIT_AUTHOR")
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("conduitctl starts");
    if let Some(text) = stdin {
        child
            .stdin
            .take()
            .expect("piped stdin")
            .write_all(text.as_bytes())
            .expect("stdin written");
    }
    child.wait_with_output().expect("conduitctl finishes")
}

fn code(output: &Output) -> i32 {
    output.status.code().expect("exited, not killed")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("config written");
    path
}
