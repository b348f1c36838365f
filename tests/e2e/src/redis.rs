//! A real `redis-server` for one test: no persistence, listening only on a unix socket in
//! a temporary directory (no port to collide with), killed on drop.
//!
//! `redis-server` must be installed (`scripts/deps.sh` installs it); a test that needs it
//! fails with that explanation instead of being skipped.

use std::io::{Read as _, Write as _};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context as _, bail};
use rustix::process::{Pid, Signal, kill_process};
use tempfile::TempDir;

use crate::process::{ManagedProcess, Spec};
use crate::wait::{DEFAULT_TIMEOUT, wait_until};

const SERVER: &str = "redis-server";

/// One running Redis.
#[derive(Debug)]
pub struct RedisServer {
    socket: PathBuf,
    process: ManagedProcess,
    _dir: TempDir,
}

impl RedisServer {
    /// Start Redis and wait until it answers `PING`.
    pub fn start() -> anyhow::Result<RedisServer> {
        let program = which(SERVER).with_context(|| {
            format!(
                "{SERVER} is not installed: the rate limit tests need a real Redis \
                 (install the redis-server package, e.g. `bash -c '. scripts/deps.sh && \
                 ensure_test_dependencies'`)"
            )
        })?;
        let dir = tempfile::Builder::new()
            .prefix("conduit-redis-")
            .tempdir()?;
        let socket = dir.path().join("redis.sock");
        let args = [
            "--port",
            "0",
            "--unixsocket",
            &path_str(&socket)?,
            "--unixsocketperm",
            "700",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            &path_str(dir.path())?,
        ];
        let spec = Spec {
            name: format!("redis {}", socket.display()),
            program,
            args: args.iter().map(|arg| (*arg).to_owned()).collect(),
            env: Vec::new(),
            log_path: dir.path().join("redis.log"),
        };
        let mut process = ManagedProcess::spawn(&spec)?;
        wait_until(DEFAULT_TIMEOUT, "redis-server to answer PING", || {
            process.ensure_running()?;
            match command(&socket, &["PING"])? {
                reply if reply == "+PONG" => Ok(()),
                other => bail!("PING answered {other:?}"),
            }
        })?;
        Ok(RedisServer {
            socket,
            process,
            _dir: dir,
        })
    }

    /// The URL the data plane connects to: `redis+unix://<socket>`.
    pub fn url(&self) -> String {
        format!("redis+unix://{}", self.socket.display())
    }

    /// Run one command; the reply's first line (`+OK`, `:3`, `*2`, ...).
    pub fn command(&self, args: &[&str]) -> anyhow::Result<String> {
        command(&self.socket, args)
    }

    /// Every key matching `pattern`, sorted.
    pub fn keys(&self, pattern: &str) -> anyhow::Result<Vec<String>> {
        let output = Command::new("redis-cli")
            .arg("-s")
            .arg(&self.socket)
            .args(["--raw", "KEYS", pattern])
            .output()
            .context("running redis-cli (installed with redis-server)")?;
        if !output.status.success() {
            bail!(
                "redis-cli KEYS failed: {}",
                String::from_utf8_lossy(&output.stderr)
            );
        }
        let mut keys: Vec<String> = String::from_utf8(output.stdout)?
            .lines()
            .filter(|line| !line.is_empty())
            .map(str::to_owned)
            .collect();
        keys.sort();
        Ok(keys)
    }

    /// SIGKILL: Redis disappears mid-run.
    pub fn kill(&mut self) {
        self.process.kill();
    }

    /// SIGSTOP: Redis keeps its connections but stops answering (a slow Redis).
    pub fn pause(&self) -> anyhow::Result<()> {
        self.signal(Signal::STOP)
    }

    /// SIGCONT after [`RedisServer::pause`].
    pub fn resume(&self) -> anyhow::Result<()> {
        self.signal(Signal::CONT)
    }

    fn signal(&self, signal: Signal) -> anyhow::Result<()> {
        let pid = i32::try_from(self.process.pid())
            .ok()
            .and_then(Pid::from_raw)
            .context("redis-server pid")?;
        kill_process(pid, signal).with_context(|| format!("sending {signal:?} to redis-server"))
    }
}

/// Send one command as a RESP array; return the first line of the reply.
fn command(socket: &Path, args: &[&str]) -> anyhow::Result<String> {
    let mut stream = UnixStream::connect(socket)
        .with_context(|| format!("connecting to {}", socket.display()))?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut request = format!("*{}\r\n", args.len());
    for arg in args {
        request.push_str(&format!("${}\r\n{arg}\r\n", arg.len()));
    }
    stream.write_all(request.as_bytes())?;
    let mut reply = Vec::new();
    let mut byte = [0u8; 1];
    while !reply.ends_with(b"\r\n") {
        if stream.read(&mut byte)? == 0 {
            bail!("Redis closed the connection");
        }
        reply.push(byte[0]);
    }
    reply.truncate(reply.len() - 2);
    Ok(String::from_utf8(reply)?)
}

fn which(program: &str) -> anyhow::Result<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/usr/bin", "/usr/local/bin"].map(PathBuf::from))
        .map(|dir| dir.join(program))
        .find(|candidate| candidate.is_file())
        .with_context(|| format!("{program} not found on PATH"))
}

fn path_str(path: &Path) -> anyhow::Result<String> {
    path.to_str()
        .map(str::to_owned)
        .with_context(|| format!("{} is not UTF-8", path.display()))
}
