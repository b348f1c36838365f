//! `conduit-control-plane serve` as a test process: free ports, its own data directory
//! (kept across restarts), optional tokens and TLS.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context as _, bail};
use tempfile::TempDir;

use crate::binaries::{self, CONTROL_PLANE};
use crate::ctl::{Ctl, FleetStatus, HistoryEntry};
use crate::process::{ManagedProcess, Spec};
use crate::tls::TlsFiles;
use crate::wait::{DEFAULT_TIMEOUT, wait_until};
use crate::{free_addr, http};

/// How to start a control plane.
#[derive(Debug, Clone, Default)]
pub struct ControlPlaneOptions {
    /// `CONDUIT_ADMIN_TOKEN`; `None` leaves the Admin API open (loopback only).
    pub admin_token: Option<String>,
    /// `CONDUIT_DP_TOKEN`; `None` leaves the config stream open (loopback only).
    pub dp_token: Option<String>,
    /// Serve gRPC over TLS with these files.
    pub tls: Option<TlsFiles>,
    /// `--heartbeat-interval`, e.g. `500ms`.
    pub heartbeat_interval: Option<String>,
    /// `--session-key-rotation`, e.g. `3s`.
    pub session_key_rotation: Option<String>,
    /// Extra environment variables.
    pub env: Vec<(String, String)>,
    /// Extra `serve` arguments (e.g. `--admin-tokens-file FILE`).
    pub args: Vec<String>,
}

impl ControlPlaneOptions {
    /// Both tokens set to fixed test values.
    pub fn with_tokens() -> Self {
        Self {
            admin_token: Some("e2e-admin-token".into()),
            dp_token: Some("e2e-dp-token".into()),
            ..Self::default()
        }
    }
}

/// A control plane process and everything needed to restart it identically.
#[derive(Debug)]
pub struct ControlPlane {
    options: ControlPlaneOptions,
    grpc: SocketAddr,
    http: SocketAddr,
    data_dir: PathBuf,
    process: Option<ManagedProcess>,
    // Last field: dropped after the process is gone.
    dir: TempDir,
}

impl ControlPlane {
    /// Starts a control plane and waits until `/readyz` answers 200.
    pub fn start(options: ControlPlaneOptions) -> anyhow::Result<Self> {
        crate::init();
        let dir = tempfile::Builder::new().prefix("conduit-cp-").tempdir()?;
        let mut cp = Self {
            options,
            grpc: free_addr()?,
            http: free_addr()?,
            data_dir: dir.path().join("data"),
            process: None,
            dir,
        };
        cp.spawn()?;
        Ok(cp)
    }

    /// The gRPC URL data planes and conduitctl use.
    pub fn url(&self) -> String {
        let scheme = if self.options.tls.is_some() {
            "https"
        } else {
            "http"
        };
        format!("{scheme}://{}", self.grpc)
    }

    /// `http://<http-listen><path>` on the internal HTTP port.
    pub fn http_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.http)
    }

    pub fn grpc_addr(&self) -> SocketAddr {
        self.grpc
    }

    pub fn options(&self) -> &ControlPlaneOptions {
        &self.options
    }

    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// A scratch directory that lives as long as this control plane.
    pub fn scratch_dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn is_running(&mut self) -> bool {
        self.process
            .as_mut()
            .is_some_and(|p| p.exit_status().is_none())
    }

    /// SIGKILL: the control plane disappears without any cleanup.
    pub fn kill(&mut self) {
        if let Some(mut process) = self.process.take() {
            process.kill();
        }
    }

    /// SIGTERM: a clean shutdown (pending state is flushed), SIGKILL after 10 s.
    pub fn stop(&mut self) {
        if let Some(mut process) = self.process.take() {
            process.terminate(Duration::from_secs(10));
        }
    }

    /// Crash and start again: SIGKILL, then the same ports, data directory and options.
    pub fn restart(&mut self) -> anyhow::Result<()> {
        self.kill();
        self.spawn()
    }

    /// Clean restart: SIGTERM, then the same ports, data directory and options.
    pub fn graceful_restart(&mut self) -> anyhow::Result<()> {
        self.stop();
        self.spawn()
    }

    /// `conduitctl` preconfigured with this control plane's URL, admin token and CA.
    pub fn ctl(&self) -> Ctl {
        let mut ctl = Ctl::new(self.url()).token(self.options.admin_token.as_deref());
        if let Some(tls) = &self.options.tls {
            ctl = ctl.ca_cert(&tls.ca_path);
        }
        ctl
    }

    /// `conduitctl status -o json`, parsed.
    pub fn status(&self) -> anyhow::Result<FleetStatus> {
        self.ctl().status()
    }

    /// `conduitctl history -o json`, parsed.
    pub fn history(&self) -> anyhow::Result<Vec<HistoryEntry>> {
        self.ctl().history()
    }

    /// Writes `yaml` to a file in the scratch directory and returns its path.
    pub fn write_config(&self, name: &str, yaml: &str) -> anyhow::Result<PathBuf> {
        crate::process::write_file(&self.dir.path().join(name), yaml)
    }

    fn spawn(&mut self) -> anyhow::Result<()> {
        let mut args = vec![
            "serve".to_owned(),
            "--listen".to_owned(),
            self.grpc.to_string(),
            "--http-listen".to_owned(),
            self.http.to_string(),
            "--data-dir".to_owned(),
            self.data_dir.display().to_string(),
        ];
        if let Some(tls) = &self.options.tls {
            args.extend([
                "--tls-cert".to_owned(),
                tls.cert_path.display().to_string(),
                "--tls-key".to_owned(),
                tls.key_path.display().to_string(),
            ]);
        }
        if let Some(interval) = &self.options.heartbeat_interval {
            args.extend(["--heartbeat-interval".to_owned(), interval.clone()]);
        }
        if let Some(rotation) = &self.options.session_key_rotation {
            args.extend(["--session-key-rotation".to_owned(), rotation.clone()]);
        }
        args.extend(self.options.args.iter().cloned());
        let mut env = self.options.env.clone();
        if let Some(token) = &self.options.admin_token {
            env.push(("CONDUIT_ADMIN_TOKEN".into(), token.clone()));
        }
        if let Some(token) = &self.options.dp_token {
            env.push(("CONDUIT_DP_TOKEN".into(), token.clone()));
        }
        let spec = Spec {
            name: "control-plane".into(),
            program: binaries::binary(CONTROL_PLANE)?,
            args,
            env,
            log_path: self.dir.path().join("control-plane.log"),
        };
        let mut process = ManagedProcess::spawn(&spec)?;
        let ready_url = self.http_url("/readyz");
        let ready = wait_until(DEFAULT_TIMEOUT, "control plane /readyz = 200", || {
            process.ensure_running()?;
            let response = http::get(&ready_url, Duration::from_secs(2))?;
            if response.status != 200 {
                bail!("/readyz answered {}", response.status);
            }
            Ok(())
        });
        self.process = Some(process);
        ready.context("starting the control plane")
    }
}
