//! `conduit-data-plane run` as a test process: public and admin ports, node id, labels,
//! state directory (kept across restarts), environment, DP token.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context as _, anyhow, bail};
use serde_json::Value;
use tempfile::TempDir;

use crate::binaries::{self, DATA_PLANE};
use crate::control_plane::ControlPlane;
use crate::free_addr;
use crate::http::{self, Response};
use crate::process::{ManagedProcess, Spec};
use crate::wait::{DEFAULT_TIMEOUT, wait_until};

/// How to start a data plane.
#[derive(Debug, Clone, Default)]
pub struct DataPlaneOptions {
    pub node_id: String,
    /// `--control-plane URL`.
    pub control_plane: Option<String>,
    /// `--control-plane-ca FILE`.
    pub control_plane_ca: Option<PathBuf>,
    /// `--config FILE` (standalone).
    pub config_file: Option<PathBuf>,
    pub labels: Vec<(String, String)>,
    /// Pass `--state-dir` (a directory inside the data plane's temp dir).
    pub state_dir: bool,
    /// `CONDUIT_DP_TOKEN`.
    pub dp_token: Option<String>,
    pub env: Vec<(String, String)>,
    /// Wait for `/readyz` = 200 in `start` (otherwise only for `/healthz`).
    pub wait_ready: bool,
    /// `--header-read-timeout` (humantime, like `1s`).
    pub header_read_timeout: Option<String>,
    /// Extra `run` arguments (e.g. `--secret-dir DIR`, `--max-connections 4`).
    pub args: Vec<String>,
    /// `--token-file FILE`.
    pub token_file: Option<PathBuf>,
    /// Run as this uid and gid, without supplementary groups (`setpriv`; the test must
    /// run as root). The files the data plane reads must be readable by it.
    pub run_as: Option<u32>,
}

impl DataPlaneOptions {
    /// A data plane of `cp`'s fleet: its URL, DP token and CA, a state directory, and
    /// readiness awaited (so `cp` must already hold a config).
    pub fn for_control_plane(cp: &ControlPlane, node_id: &str) -> Self {
        Self {
            node_id: node_id.to_owned(),
            control_plane: Some(cp.url()),
            control_plane_ca: cp.options().tls.as_ref().map(|tls| tls.ca_path.clone()),
            dp_token: cp.options().dp_token.clone(),
            state_dir: true,
            wait_ready: true,
            ..Self::default()
        }
    }

    pub fn env(mut self, name: &str, value: &str) -> Self {
        self.env.push((name.to_owned(), value.to_owned()));
        self
    }

    pub fn label(mut self, name: &str, value: &str) -> Self {
        self.labels.push((name.to_owned(), value.to_owned()));
        self
    }

    /// Adds `run` arguments.
    pub fn args<I: IntoIterator<Item = S>, S: Into<String>>(mut self, args: I) -> Self {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    pub fn wait_ready(mut self, wait: bool) -> Self {
        self.wait_ready = wait;
        self
    }
}

/// A data plane process and everything needed to restart it identically.
#[derive(Debug)]
pub struct DataPlane {
    options: DataPlaneOptions,
    listen: SocketAddr,
    admin: SocketAddr,
    state_dir: PathBuf,
    process: Option<ManagedProcess>,
    dir: TempDir,
}

impl DataPlane {
    pub fn start(options: DataPlaneOptions) -> anyhow::Result<Self> {
        crate::init();
        let dir = tempfile::Builder::new()
            .prefix(&format!("conduit-dp-{}-", options.node_id))
            .tempdir()?;
        let mut dp = Self {
            options,
            listen: free_addr()?,
            admin: free_addr()?,
            state_dir: dir.path().join("state"),
            process: None,
            dir,
        };
        dp.spawn()?;
        Ok(dp)
    }

    pub fn node_id(&self) -> &str {
        &self.options.node_id
    }

    pub fn options(&self) -> &DataPlaneOptions {
        &self.options
    }

    /// `http://<listen>/mcp/<server_id>` on the public port.
    pub fn mcp_url(&self, server_id: &str) -> String {
        format!("http://{}/mcp/{server_id}", self.listen)
    }

    /// `https://127.0.0.1:<port>/mcp/<server_id>` on the public port (with `gateway.tls`).
    pub fn mcp_https_url(&self, server_id: &str) -> String {
        format!("https://{}/mcp/{server_id}", self.listen)
    }

    /// The public listener's address.
    pub fn listen_addr(&self) -> SocketAddr {
        self.listen
    }

    /// `http://<listen><path>` on the public port.
    pub fn public_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.listen)
    }

    /// `http://<admin-listen><path>`.
    pub fn admin_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.admin)
    }

    pub fn state_dir(&self) -> &Path {
        &self.state_dir
    }

    pub fn scratch_dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn admin_get(&self, path: &str) -> anyhow::Result<Response> {
        http::get(&self.admin_url(path), Duration::from_secs(5))
    }

    /// HTTP status of `/readyz`.
    pub fn readyz(&self) -> anyhow::Result<u16> {
        Ok(self.admin_get("/readyz")?.status)
    }

    /// `/config_dump` as JSON (an error unless it answers 200).
    pub fn config_dump(&self) -> anyhow::Result<Value> {
        let response = self.admin_get("/config_dump")?;
        if response.status != 200 {
            bail!(
                "/config_dump answered {}: {}",
                response.status,
                response.text()
            );
        }
        response.json()
    }

    /// The `version` of `/config_dump`.
    pub fn config_version(&self) -> anyhow::Result<u64> {
        let dump = self.config_dump()?;
        dump["version"]
            .as_u64()
            .ok_or_else(|| anyhow!("/config_dump has no numeric version: {dump}"))
    }

    /// Waits until `/config_dump` reports `version`.
    pub fn wait_for_version(&self, version: u64) -> anyhow::Result<()> {
        wait_until(
            DEFAULT_TIMEOUT,
            &format!("{} to serve version {version}", self.node_id()),
            || {
                let current = self.config_version()?;
                if current != version {
                    bail!("serving version {current}");
                }
                Ok(())
            },
        )
    }

    /// The process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.process.as_ref().map(ManagedProcess::pid)
    }

    pub fn is_running(&mut self) -> bool {
        self.process
            .as_mut()
            .is_some_and(|p| p.exit_status().is_none())
    }

    /// Fails (with the log tail) when the process has exited.
    pub fn ensure_running(&mut self) -> anyhow::Result<()> {
        match self.process.as_mut() {
            Some(process) => process.ensure_running(),
            None => bail!("{} is stopped", self.node_id()),
        }
    }

    /// SIGKILL.
    pub fn kill(&mut self) {
        if let Some(mut process) = self.process.take() {
            process.kill();
        }
    }

    /// SIGTERM (graceful drain), SIGKILL after `grace`; returns how the process ended
    /// (`None` when it had to be killed or was not running).
    pub fn terminate(&mut self, grace: Duration) -> Option<std::process::ExitStatus> {
        let mut process = self.process.take()?;
        let status = process.wait_exit_after_term(grace);
        if status.is_none() {
            process.kill();
        }
        status
    }

    /// Starts the data plane again with the same ports, state directory and options.
    pub fn restart(&mut self) -> anyhow::Result<()> {
        self.kill();
        self.spawn()
    }

    fn spawn(&mut self) -> anyhow::Result<()> {
        let o = &self.options;
        let mut args = vec!["run".to_owned()];
        if let Some(url) = &o.control_plane {
            args.extend(["--control-plane".to_owned(), url.clone()]);
        }
        if let Some(ca) = &o.control_plane_ca {
            args.extend(["--control-plane-ca".to_owned(), ca.display().to_string()]);
        }
        if let Some(file) = &o.config_file {
            args.extend(["--config".to_owned(), file.display().to_string()]);
        }
        args.extend([
            "--listen".to_owned(),
            self.listen.to_string(),
            "--admin-listen".to_owned(),
            self.admin.to_string(),
            "--node-id".to_owned(),
            o.node_id.clone(),
        ]);
        if !o.labels.is_empty() {
            let labels: Vec<String> = o.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
            args.extend(["--labels".to_owned(), labels.join(",")]);
        }
        if o.state_dir {
            args.extend([
                "--state-dir".to_owned(),
                self.state_dir.display().to_string(),
            ]);
        }
        if let Some(timeout) = &o.header_read_timeout {
            args.extend(["--header-read-timeout".to_owned(), timeout.clone()]);
        }
        args.extend(o.args.iter().cloned());
        if let Some(file) = &o.token_file {
            args.extend(["--token-file".to_owned(), file.display().to_string()]);
        }
        let mut env = o.env.clone();
        if let Some(token) = &o.dp_token {
            env.push(("CONDUIT_DP_TOKEN".into(), token.clone()));
        }
        let mut program = binaries::binary(DATA_PLANE)?;
        if let Some(id) = o.run_as {
            // setpriv execs the data plane: same pid, other credentials.
            let mut wrapped = vec![
                format!("--reuid={id}"),
                format!("--regid={id}"),
                "--clear-groups".to_owned(),
                "--".to_owned(),
                program.display().to_string(),
            ];
            wrapped.append(&mut args);
            args = wrapped;
            program = PathBuf::from("setpriv");
        }
        let spec = Spec {
            name: format!("data-plane {}", o.node_id),
            program,
            args,
            env,
            log_path: self.dir.path().join("data-plane.log"),
        };
        let mut process = ManagedProcess::spawn(&spec)?;
        let (path, what) = if o.wait_ready {
            ("/readyz", "ready")
        } else {
            ("/healthz", "healthy")
        };
        let url = self.admin_url(path);
        let result = wait_until(
            DEFAULT_TIMEOUT,
            &format!("data plane {} to be {what}", o.node_id),
            || {
                process.ensure_running()?;
                let response = http::get(&url, Duration::from_secs(2))?;
                if response.status != 200 {
                    bail!("{path} answered {}: {}", response.status, response.text());
                }
                Ok(())
            },
        );
        self.process = Some(process);
        result.with_context(|| format!("starting data plane {}", self.options.node_id))
    }
}
