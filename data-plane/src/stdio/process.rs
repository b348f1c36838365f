//! The child process itself: starting it with the gateway's environment rule, the three
//! pipes (stdin fed from one queue, stdout read as newline-delimited JSON-RPC, stderr
//! logged), and stopping it the way MCP asks: close stdin, then `SIGTERM`, then `SIGKILL`.
//!
//! The child runs in a process group of its own, so stopping it also stops what it started
//! (`npx` → `node`), and a Ctrl-C in the data plane's terminal reaches only the data plane,
//! which then stops its children in order. `kill_on_drop` is the backstop when the
//! supervisor's task is dropped; should the data plane die without either, the child reads
//! EOF on stdin, and an MCP server exits on that.

use std::ffi::{OsStr, OsString};
use std::io;
use std::process::{ExitStatus, Stdio};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use serde_json::Value;
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStderr, ChildStdin, ChildStdout, Command};
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::Spec;
use super::connection::Connection;

/// Variables passed on from the data plane's environment (plus every `LC_*`).
const INHERITED_ENV: [&str; 8] = [
    "PATH", "HOME", "USER", "LOGNAME", "SHELL", "TMPDIR", "TZ", "LANG",
];
/// Largest JSON-RPC message accepted from a process; longer lines are skipped.
const MAX_MESSAGE_BYTES: usize = 32 * 1024 * 1024;
/// Longest stderr line logged; the rest of the line is cut.
const MAX_STDERR_LINE: usize = 1024;
/// Lines of stderr (or malformed stdout) logged per [`LOG_WINDOW`]; the rest are counted.
const LOG_LINES_PER_WINDOW: u32 = 20;
const LOG_WINDOW: Duration = Duration::from_secs(1);
/// Bytes of queued input written to the process in one write.
const COALESCE_BYTES: usize = 64 * 1024;
/// Time to exit after stdin closes, and again after `SIGTERM`.
const EXIT_GRACE: Duration = Duration::from_secs(2);

/// A started child and its pipes.
#[derive(Debug)]
pub(super) struct Spawned {
    pub child: Child,
    pub stdin: ChildStdin,
    pub stdout: ChildStdout,
    pub stderr: ChildStderr,
}

/// Start `spec` with piped stdio, in its own process group.
pub(super) fn spawn(spec: &Spec) -> io::Result<Spawned> {
    let mut command = Command::new(&spec.command);
    command
        .args(&spec.args)
        .env_clear()
        .envs(child_env(&spec.env, std::env::vars_os()))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    #[cfg(unix)]
    command.process_group(0);
    let mut child = command.spawn()?;
    let missing = || io::Error::other("a piped stdio handle is missing");
    Ok(Spawned {
        stdin: child.stdin.take().ok_or_else(missing)?,
        stdout: child.stdout.take().ok_or_else(missing)?,
        stderr: child.stderr.take().ok_or_else(missing)?,
        child,
    })
}

/// The child's environment: the basic variables of `parent` (see [`INHERITED_ENV`]), then
/// the server's `env`, which wins.
pub(super) fn child_env(
    configured: &std::collections::BTreeMap<String, String>,
    parent: impl IntoIterator<Item = (OsString, OsString)>,
) -> Vec<(OsString, OsString)> {
    let inherited = |name: &OsStr| {
        name.to_str()
            .is_some_and(|name| INHERITED_ENV.contains(&name) || name.starts_with("LC_"))
    };
    let mut env: Vec<(OsString, OsString)> = parent
        .into_iter()
        .filter(|(name, _)| inherited(name) && !configured.contains_key(&*name.to_string_lossy()))
        .collect();
    env.extend(
        configured
            .iter()
            .map(|(name, value)| (name.into(), value.into())),
    );
    env
}

/// Feed queued lines to the process until the queue closes or the pipe breaks.
pub(super) async fn write_stdin(
    mut stdin: ChildStdin,
    mut queue: mpsc::Receiver<Bytes>,
) -> io::Result<()> {
    let mut batch = Vec::new();
    while let Some(line) = queue.recv().await {
        // Many concurrent callers: one write for what queued up meanwhile.
        batch.clear();
        batch.extend_from_slice(&line);
        while batch.len() < COALESCE_BYTES
            && let Ok(more) = queue.try_recv()
        {
            batch.extend_from_slice(&more);
        }
        stdin.write_all(&batch).await?;
    }
    Ok(())
}

/// Read the process's messages and hand each to `connection` until stdout ends; returns
/// why it ended.
pub(super) async fn read_stdout(
    stdout: ChildStdout,
    connection: Arc<Connection>,
    server: &str,
) -> String {
    let mut reader = BufReader::with_capacity(64 * 1024, stdout);
    let mut line = Vec::new();
    let mut budget = LogBudget::new();
    loop {
        match read_line(&mut reader, &mut line, MAX_MESSAGE_BYTES).await {
            Ok(Line::End) => return "it closed its output".into(),
            Err(error) => return format!("reading its output failed: {error}"),
            Ok(Line::Cut) => {
                if budget.admit(server, "malformed output") {
                    tracing::warn!(
                        server,
                        "the stdio server wrote a line over {MAX_MESSAGE_BYTES} bytes; skipped"
                    );
                }
            }
            Ok(Line::Whole) if line.iter().all(u8::is_ascii_whitespace) => {}
            Ok(Line::Whole) => match serde_json::from_slice::<Value>(&line) {
                Ok(Value::Array(batch)) => batch.into_iter().for_each(|m| connection.dispatch(m)),
                Ok(message) => connection.dispatch(message),
                Err(error) => {
                    if budget.admit(server, "malformed output") {
                        tracing::warn!(
                            server,
                            %error,
                            line = %preview(&line),
                            "the stdio server wrote a line that is not JSON; skipped"
                        );
                    }
                }
            },
        }
    }
}

/// Log the process's stderr, line by line, cut and rate-limited; never parsed.
pub(super) async fn log_stderr(stderr: ChildStderr, server: Arc<str>) {
    let mut reader = BufReader::new(stderr);
    let mut line = Vec::new();
    let mut budget = LogBudget::new();
    loop {
        let cut = match read_line(&mut reader, &mut line, MAX_STDERR_LINE).await {
            Ok(Line::End) | Err(_) => return,
            Ok(Line::Whole) => false,
            Ok(Line::Cut) => true,
        };
        if budget.admit(&server, "stderr") {
            let mut text = printable(&String::from_utf8_lossy(&line));
            if cut {
                text.push('…');
            }
            tracing::info!(server = %server, line = %text.trim_end(), "stdio server stderr");
        }
    }
}

/// Stop a child whose stdin is already closed: wait for it to exit, then `SIGTERM` its
/// process group, then `SIGKILL` it.
pub(super) async fn terminate(child: &mut Child) -> Option<ExitStatus> {
    if let Ok(Ok(status)) = tokio::time::timeout(EXIT_GRACE, child.wait()).await {
        return Some(status);
    }
    #[cfg(unix)]
    if let Some(group) = child
        .id()
        .and_then(|pid| i32::try_from(pid).ok())
        .and_then(rustix::process::Pid::from_raw)
    {
        let _ = rustix::process::kill_process_group(group, rustix::process::Signal::TERM);
        if let Ok(Ok(status)) = tokio::time::timeout(EXIT_GRACE, child.wait()).await {
            return Some(status);
        }
        // The group may hold children of the child that ignore SIGTERM too.
        let _ = rustix::process::kill_process_group(group, rustix::process::Signal::KILL);
    }
    let _ = child.start_kill();
    child.wait().await.ok()
}

/// How [`read_line`] ended.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Line {
    /// A whole line (without its newline), or the unterminated last one.
    Whole,
    /// A line longer than the limit: its first `max` bytes, the rest was discarded.
    Cut,
    /// Nothing left.
    End,
}

/// Read one line into `line` (cleared first), keeping at most `max` bytes of it.
pub(super) async fn read_line<R: AsyncBufRead + Unpin>(
    reader: &mut R,
    line: &mut Vec<u8>,
    max: usize,
) -> io::Result<Line> {
    line.clear();
    let mut cut = false;
    let mut read_any = false;
    loop {
        let available = reader.fill_buf().await?;
        if available.is_empty() {
            return Ok(match (read_any, cut) {
                (false, _) => Line::End,
                (true, false) => Line::Whole,
                (true, true) => Line::Cut,
            });
        }
        read_any = true;
        let newline = available.iter().position(|&byte| byte == b'\n');
        let chunk = &available[..newline.unwrap_or(available.len())];
        let room = max - line.len();
        if chunk.len() > room {
            cut = true;
        }
        line.extend_from_slice(&chunk[..chunk.len().min(room)]);
        let used = chunk.len() + usize::from(newline.is_some());
        reader.consume(used);
        if newline.is_some() {
            if line.last() == Some(&b'\r') {
                line.pop();
            }
            return Ok(if cut { Line::Cut } else { Line::Whole });
        }
    }
}

/// The start of a line for a log message.
fn preview(line: &[u8]) -> String {
    let text = printable(&String::from_utf8_lossy(&line[..line.len().min(200)]));
    if line.len() > 200 {
        format!("{text}…")
    } else {
        text
    }
}

/// `text` without terminal escape sequences and control characters: a process must not be
/// able to rewrite or fake lines of the data plane's log.
fn printable(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        match c {
            // CSI sequences (colours, cursor moves) end with a byte in '@'..='~'.
            '\u{1b}' => {
                if chars.clone().next() == Some('[') {
                    chars.next();
                    for c in chars.by_ref() {
                        if ('@'..='~').contains(&c) {
                            break;
                        }
                    }
                }
            }
            '\t' => out.push(c),
            c if c.is_control() => out.push('\u{fffd}'),
            c => out.push(c),
        }
    }
    out
}

/// At most [`LOG_LINES_PER_WINDOW`] log lines per [`LOG_WINDOW`], so a process that floods
/// its output cannot flood the data plane's log.
#[derive(Debug)]
pub(super) struct LogBudget {
    window_start: Instant,
    used: u32,
    suppressed: u64,
}

impl LogBudget {
    pub(super) fn new() -> LogBudget {
        LogBudget {
            window_start: Instant::now(),
            used: 0,
            suppressed: 0,
        }
    }

    /// Whether a line may be logged now. The first line admitted after some were
    /// suppressed is preceded by a line saying how many.
    pub(super) fn admit(&mut self, server: &str, what: &str) -> bool {
        let now = Instant::now();
        if now.duration_since(self.window_start) >= LOG_WINDOW {
            self.window_start = now;
            self.used = 0;
        }
        if self.used >= LOG_LINES_PER_WINDOW {
            self.suppressed += 1;
            return false;
        }
        self.used += 1;
        let suppressed = std::mem::take(&mut self.suppressed);
        if suppressed > 0 {
            tracing::warn!(
                server,
                suppressed,
                "stdio server {what}: lines over {LOG_LINES_PER_WINDOW} per second were not logged"
            );
        }
        true
    }

    /// Lines suppressed since the last admitted one.
    #[cfg(test)]
    fn suppressed(&self) -> u64 {
        self.suppressed
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    #[test]
    fn environment_is_the_basics_plus_the_servers_env() {
        let parent = [
            ("PATH", "/usr/bin"),
            ("HOME", "/home/dp"),
            ("LANG", "C.UTF-8"),
            ("LC_ALL", "C"),
            ("CONDUIT_DP_TOKEN", "secret"),
            ("AWS_SECRET_ACCESS_KEY", "secret"),
            ("TZ", "UTC"),
        ]
        .map(|(k, v)| (OsString::from(k), OsString::from(v)));
        let configured = BTreeMap::from([
            ("API_KEY".to_owned(), "k".to_owned()),
            ("TZ".to_owned(), "Europe/Paris".to_owned()),
        ]);
        let mut env: Vec<(String, String)> = child_env(&configured, parent)
            .into_iter()
            .map(|(k, v)| (k.into_string().unwrap(), v.into_string().unwrap()))
            .collect();
        env.sort();
        let expected = [
            ("API_KEY", "k"),
            ("HOME", "/home/dp"),
            ("LANG", "C.UTF-8"),
            ("LC_ALL", "C"),
            ("PATH", "/usr/bin"),
            ("TZ", "Europe/Paris"),
        ]
        .map(|(k, v)| (k.to_owned(), v.to_owned()));
        assert_eq!(env, expected);
    }

    #[tokio::test]
    async fn lines_are_bounded_and_the_last_one_may_lack_a_newline() {
        let input = b"{\"a\":1}\r\n0123456789abcdef\n\nlast".as_slice();
        let mut reader = input;
        let mut line = Vec::new();
        let mut next = async |max| {
            let kind = read_line(&mut reader, &mut line, max).await.unwrap();
            (kind, String::from_utf8(line.clone()).unwrap())
        };
        assert_eq!(next(100).await, (Line::Whole, "{\"a\":1}".into()));
        assert_eq!(next(10).await, (Line::Cut, "0123456789".into()));
        assert_eq!(next(10).await, (Line::Whole, String::new()));
        assert_eq!(next(10).await, (Line::Whole, "last".into()));
        assert_eq!(next(10).await, (Line::End, String::new()));
    }

    #[tokio::test(start_paused = true)]
    async fn log_budget_limits_lines_per_window_and_counts_the_rest() {
        let mut budget = LogBudget::new();
        for _ in 0..LOG_LINES_PER_WINDOW {
            assert!(budget.admit("s", "stderr"));
        }
        assert!(!budget.admit("s", "stderr"));
        assert!(!budget.admit("s", "stderr"));
        assert_eq!(budget.suppressed(), 2);
        tokio::time::sleep(LOG_WINDOW).await;
        assert!(budget.admit("s", "stderr"));
        assert_eq!(
            budget.suppressed(),
            0,
            "reported with the next admitted line"
        );
    }

    #[test]
    fn log_lines_are_stripped_of_escapes_and_control_characters() {
        assert_eq!(
            printable("\u{1b}[2m2026\u{1b}[0m \u{1b}[32mINFO\u{1b}[0m done\tok\r\u{7}"),
            "2026 INFO done\tok\u{fffd}\u{fffd}"
        );
        assert_eq!(printable("plain ünïcode"), "plain ünïcode");
    }
}
