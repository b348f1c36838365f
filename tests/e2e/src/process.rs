//! One child process of a test: its output goes to a log file, it is killed on drop, and its
//! log is printed when the test is failing.
//!
//! Children deliberately stay in the test's process group: when the test runner itself is
//! interrupted (Ctrl-C in a terminal, a nextest timeout that kills the test's group), the
//! children go with it instead of outliving the run, which no `Drop` could prevent.

use std::fs::{File, OpenOptions};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use rustix::process::{Pid, Signal, kill_process};

/// Variables of the operator's shell that would change how the binaries behave; children
/// start without them and get only what the test sets explicitly.
const SCRUBBED_ENV: &[&str] = &[
    "CONDUIT_SERVER",
    "CONDUIT_TOKEN",
    "CONDUIT_CA_CERT",
    "CONDUIT_AUTHOR",
    "CONDUIT_ADMIN_TOKEN",
    "CONDUIT_DP_TOKEN",
    "RUST_LOG",
];

/// How to start a long-running child.
#[derive(Debug, Clone)]
pub struct Spec {
    /// Short label used in log headers, e.g. `data-plane dp-1`.
    pub name: String,
    pub program: PathBuf,
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
    /// Output of every incarnation of the process is appended here.
    pub log_path: PathBuf,
}

/// A running (or exited) child process.
#[derive(Debug)]
pub struct ManagedProcess {
    name: String,
    log_path: PathBuf,
    child: Child,
    reaped: Option<ExitStatus>,
}

impl ManagedProcess {
    pub fn spawn(spec: &Spec) -> anyhow::Result<Self> {
        let mut log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&spec.log_path)
            .with_context(|| format!("opening log {}", spec.log_path.display()))?;
        writeln!(
            log,
            "=== harness: starting {} {}",
            spec.program.display(),
            spec.args.join(" ")
        )?;
        let mut command = Command::new(&spec.program);
        command
            .args(&spec.args)
            .stdin(Stdio::null())
            .stdout(Stdio::from(log.try_clone()?))
            .stderr(Stdio::from(log))
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1");
        for var in SCRUBBED_ENV {
            command.env_remove(var);
        }
        command.envs(spec.env.iter().map(|(k, v)| (k, v)));
        let child = command
            .spawn()
            .with_context(|| format!("spawning {}", spec.program.display()))?;
        Ok(Self {
            name: spec.name.clone(),
            log_path: spec.log_path.clone(),
            child,
            reaped: None,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn log_path(&self) -> &Path {
        &self.log_path
    }

    /// `Some(status)` once the process has exited.
    pub fn exit_status(&mut self) -> Option<ExitStatus> {
        if self.reaped.is_none() {
            self.reaped = self.child.try_wait().ok().flatten();
        }
        self.reaped
    }

    /// Fails with the log tail when the process has already exited.
    pub fn ensure_running(&mut self) -> anyhow::Result<()> {
        match self.exit_status() {
            None => Ok(()),
            Some(status) => anyhow::bail!(
                "{} exited unexpectedly ({status}); log tail:\n{}",
                self.name,
                log_tail(&self.log_path, 60)
            ),
        }
    }

    /// SIGKILL: a crash, no cleanup.
    pub fn kill(&mut self) {
        self.signal(Signal::KILL);
        self.reap(Duration::from_secs(10));
    }

    /// SIGTERM, then SIGKILL if the process is still there after `grace`.
    pub fn terminate(&mut self, grace: Duration) -> Option<ExitStatus> {
        self.signal(Signal::TERM);
        if self.reap(grace).is_none() {
            self.kill();
        }
        self.reaped
    }

    /// SIGTERM, then waits up to `grace` for the exit; `None` if it is still running.
    pub fn wait_exit_after_term(&mut self, grace: Duration) -> Option<ExitStatus> {
        self.signal(Signal::TERM);
        self.reap(grace)
    }

    /// Waits up to `timeout` for the process to exit on its own.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        self.reap(timeout)
    }

    fn signal(&mut self, signal: Signal) {
        if self.exit_status().is_some() {
            return;
        }
        let pid = i32::try_from(self.child.id()).ok().and_then(Pid::from_raw);
        let sent = pid.is_some_and(|pid| kill_process(pid, signal).is_ok());
        if !sent && signal == Signal::KILL {
            let _ = self.child.kill();
        }
    }

    fn reap(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        while self.exit_status().is_none() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        self.reaped
    }
}

impl Drop for ManagedProcess {
    fn drop(&mut self) {
        self.signal(Signal::KILL);
        self.reap(Duration::from_secs(10));
        if std::thread::panicking() {
            eprintln!(
                "----- log of {} ({}) -----\n{}\n----- end of log of {} -----",
                self.name,
                self.log_path.display(),
                log_tail(&self.log_path, 200),
                self.name
            );
        }
    }
}

/// The last `lines` lines of a log file (or why it could not be read).
pub fn log_tail(path: &Path, lines: usize) -> String {
    match std::fs::read_to_string(path) {
        Ok(text) => {
            let all: Vec<&str> = text.lines().collect();
            all[all.len().saturating_sub(lines)..].join("\n")
        }
        Err(err) => format!("<cannot read {}: {err}>", path.display()),
    }
}

/// Creates (truncating) a file with the given content; returns its path.
pub fn write_file(path: &Path, content: &str) -> anyhow::Result<PathBuf> {
    let mut file = File::create(path).with_context(|| format!("creating {}", path.display()))?;
    file.write_all(content.as_bytes())?;
    Ok(path.to_path_buf())
}
