//! Command line of `conduit-data-plane`, turned into [`Settings`].

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Args, Parser, Subcommand};
use conduit_data_plane::backoff::Backoff;
use conduit_data_plane::lifecycle::{Settings, SourceSettings};
use conduit_data_plane::references::ReferencePolicy;
use conduit_data_plane::source::file::DEFAULT_POLL_INTERVAL;
pub use conduit_process::LogFormat;
use conduit_process::internal_http::AllowedHosts;

#[derive(Debug, Parser)]
#[command(
    name = "conduit-data-plane",
    version,
    about = "Conduit data plane: a stateless MCP gateway proxy"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve MCP traffic with configuration from the control plane or a local file.
    Run(RunArgs),
}

#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("source").required(true).args(["control_plane", "config"])))]
pub struct RunArgs {
    /// Control plane gRPC URL (http:// or https://). The token comes from --token-file or
    /// CONDUIT_DP_TOKEN.
    #[arg(long, value_name = "URL")]
    pub control_plane: Option<String>,
    /// File holding the data-plane token (its first line; surrounding whitespace is
    /// ignored), instead of CONDUIT_DP_TOKEN: a token in the environment is one more copy
    /// in `/proc/<pid>/environ`. Setting both is an error.
    #[arg(long, value_name = "FILE", conflicts_with = "config")]
    pub token_file: Option<PathBuf>,
    /// PEM file with the CA certificate that signed an https control plane's certificate.
    #[arg(long, value_name = "FILE", conflicts_with = "config")]
    pub control_plane_ca: Option<PathBuf>,
    /// Standalone mode: configuration from this file, re-applied whenever it changes.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Public MCP listener.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Internal listener for /healthz, /readyz, /metrics and /config_dump.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:9901")]
    pub admin_listen: SocketAddr,
    /// Identity reported to the control plane (default: the host name).
    #[arg(long, value_name = "ID")]
    pub node_id: Option<String>,
    /// Labels reported to the control plane, like `zone=eu-1,tier=edge`.
    #[arg(long, value_name = "K=V,...", value_parser = parse_labels)]
    pub labels: Option<BTreeMap<String, String>>,
    /// Directory keeping the last applied snapshot so a restart can serve without the
    /// control plane.
    #[arg(long, value_name = "DIR", conflicts_with = "config")]
    pub state_dir: Option<PathBuf>,
    /// How long in-flight requests may finish after SIGTERM/SIGINT.
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = humantime::parse_duration)]
    pub drain_timeout: Duration,
    /// Time a client has to send a complete request head on the public and the admin
    /// listener (guards against slow-loris clients); also how long an idle HTTP/1.1
    /// connection is kept.
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = parse_timeout)]
    pub header_read_timeout: Duration,
    /// Time a client has to send a whole request body on the public listener once it is
    /// being read (after authentication); a slower body is answered 408.
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = parse_timeout)]
    pub body_read_timeout: Duration,
    /// Connections the public listener holds at once; more are closed as they arrive.
    #[arg(
        long,
        value_name = "N",
        default_value_t = conduit_data_plane::connection_limit::DEFAULT_MAX_CONNECTIONS,
        value_parser = parse_positive
    )]
    pub max_connections: usize,
    /// Connections the public listener holds at once from one client address (an IPv6
    /// client by its /64). Behind a load balancer, leave room for its whole pool.
    #[arg(
        long,
        value_name = "N",
        default_value_t = conduit_data_plane::connection_limit::DEFAULT_MAX_CONNECTIONS_PER_ADDRESS,
        value_parser = parse_positive
    )]
    pub max_connections_per_address: usize,
    /// Host names the admin listener answers to besides IP addresses and `localhost`
    /// (comma-separated, `name`, `*.domain` or `*`); other `Host` headers get 403.
    #[arg(long, value_name = "HOST,...", value_parser = AllowedHosts::parse_list)]
    pub admin_allowed_hosts: Option<AllowedHosts>,
    /// Reconnect when the control plane sends nothing, not even a heartbeat, for this long.
    #[arg(long, value_name = "DURATION", default_value = "60s", value_parser = humantime::parse_duration)]
    pub stream_idle_timeout: Duration,
    /// Audit records held while the control plane is away (waiting or sent and not yet
    /// acknowledged); beyond it new records are dropped and counted.
    #[arg(
        long,
        env = "CONDUIT_AUDIT_QUEUE_CAPACITY",
        value_name = "N",
        default_value_t = conduit_data_plane::audit::queue::CAPACITY as u32,
        value_parser = clap::value_parser!(u32).range(1..)
    )]
    pub audit_queue_capacity: u32,
    /// Directory whose files `${file:PATH}` references may read (repeatable). Checked on
    /// the real path (symlinks resolved); only regular files. Without any, `${file:}`
    /// references are refused.
    #[arg(long = "secret-dir", value_name = "DIR")]
    pub secret_dirs: Vec<PathBuf>,
    /// Prefix of the environment variable names `${env:NAME}` references may read
    /// (repeatable; default CONDUIT_SECRET_; an empty prefix allows any name).
    /// CONDUIT_DP_TOKEN is never readable.
    #[arg(long = "secret-env-prefix", value_name = "PREFIX")]
    pub secret_env_prefixes: Vec<String>,
    /// Largest file a `${file:}` reference may read, in bytes.
    #[arg(long, value_name = "BYTES", default_value_t = conduit_data_plane::references::DEFAULT_MAX_BYTES,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub secret_max_bytes: u64,
    /// Longest time resolving the references of one configuration may take (a file on a
    /// hung file system); the configuration is then rejected.
    #[arg(long, value_name = "DURATION", default_value = "5s", value_parser = parse_timeout)]
    pub secret_read_timeout: Duration,
    /// Encoded bytes of the audit records held while the control plane is away (waiting
    /// or sent and not yet acknowledged); beyond it new records are dropped and counted.
    /// At least 65536.
    #[arg(
        long,
        env = "CONDUIT_AUDIT_QUEUE_BYTES",
        value_name = "BYTES",
        default_value_t = conduit_data_plane::audit::queue::CAPACITY_BYTES as u64,
        value_parser = clap::value_parser!(u64).range(65_536..=(1 << 40))
    )]
    pub audit_queue_bytes: u64,
    /// Log format; the level comes from RUST_LOG (default info).
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// Runtime worker threads (default: one per CPU the process may use). On a small
    /// machine shared with busy processes, 1 spends less CPU per request (no wake-ups
    /// between workers).
    #[arg(long, value_name = "N")]
    pub worker_threads: Option<NonZeroUsize>,
}

impl RunArgs {
    /// Settings for the data plane; `env_token` is CONDUIT_DP_TOKEN.
    pub fn settings(self, env_token: Option<String>) -> anyhow::Result<Settings> {
        let env_token = env_token.filter(|token| !token.is_empty());
        let token = match &self.token_file {
            Some(_) if env_token.is_some() => bail!(
                "both --token-file and CONDUIT_DP_TOKEN are set; keep one, so it is clear \
                 which token the data plane uses"
            ),
            Some(path) => Some(read_token_file(path)?),
            None => env_token,
        };
        let source = match (self.control_plane, self.config) {
            (Some(url), None) => SourceSettings::ControlPlane {
                url,
                ca_file: self.control_plane_ca,
                state_dir: self.state_dir,
            },
            (None, Some(path)) => SourceSettings::File {
                path,
                poll_interval: DEFAULT_POLL_INTERVAL,
            },
            _ => bail!("exactly one of --control-plane and --config is required"),
        };
        let references = ReferencePolicy::new(
            &self.secret_dirs,
            self.secret_env_prefixes,
            self.secret_max_bytes,
            self.secret_read_timeout,
        )?;
        let node_id = match self.node_id {
            Some(id) => id,
            None => hostname().context("cannot determine the host name; pass --node-id")?,
        };
        Ok(Settings {
            source,
            listen: self.listen,
            admin_listen: self.admin_listen,
            node_id,
            labels: self.labels.unwrap_or_default(),
            token,
            drain_timeout: self.drain_timeout,
            header_read_timeout: self.header_read_timeout,
            body_read_timeout: self.body_read_timeout,
            max_connections: self.max_connections,
            max_connections_per_address: self.max_connections_per_address,
            admin_allowed_hosts: self.admin_allowed_hosts.unwrap_or_default(),
            stream_idle_timeout: self.stream_idle_timeout,
            audit_queue_capacity: self.audit_queue_capacity as usize,
            audit_queue_bytes: usize::try_from(self.audit_queue_bytes).unwrap_or(usize::MAX),
            backoff: Backoff::default(),
            references,
        })
    }
}

fn parse_labels(text: &str) -> Result<BTreeMap<String, String>, String> {
    let mut labels = BTreeMap::new();
    for pair in text.split(',').filter(|pair| !pair.trim().is_empty()) {
        let (key, value) = pair
            .split_once('=')
            .ok_or_else(|| format!("label {pair:?} is not key=value"))?;
        let key = key.trim();
        if key.is_empty() {
            return Err(format!("label {pair:?} has an empty key"));
        }
        if labels
            .insert(key.to_owned(), value.trim().to_owned())
            .is_some()
        {
            return Err(format!("label {key:?} is given twice"));
        }
    }
    Ok(labels)
}

/// Largest token file read: a token is a line, not a document.
const MAX_TOKEN_FILE_BYTES: u64 = 4096;

/// The token in `path`: a regular file of at most [`MAX_TOKEN_FILE_BYTES`], its first line
/// trimmed. The error names the file, never its content.
fn read_token_file(path: &Path) -> anyhow::Result<String> {
    let shown = path.display();
    let metadata =
        std::fs::metadata(path).with_context(|| format!("--token-file {shown}: cannot read it"))?;
    if !metadata.is_file() {
        bail!("--token-file {shown}: not a regular file");
    }
    if metadata.len() > MAX_TOKEN_FILE_BYTES {
        bail!(
            "--token-file {shown}: larger than {MAX_TOKEN_FILE_BYTES} bytes; it should hold one token"
        );
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        if metadata.permissions().mode() & 0o077 != 0 {
            tracing::warn!(
                file = %shown,
                "--token-file is readable by other users than its owner; make it 0600 (or 0400)"
            );
        }
    }
    let text =
        std::fs::read(path).with_context(|| format!("--token-file {shown}: cannot read it"))?;
    let text = String::from_utf8(text)
        .map_err(|_| anyhow::anyhow!("--token-file {shown}: not UTF-8 text"))?;
    let token = text.lines().next().unwrap_or_default().trim();
    if token.is_empty() {
        bail!("--token-file {shown}: empty; its first line must be the token");
    }
    Ok(token.to_owned())
}

/// A humantime duration that is not zero (a zero timeout would refuse every request).
fn parse_timeout(text: &str) -> Result<Duration, String> {
    match humantime::parse_duration(text) {
        Ok(duration) if duration.is_zero() => Err("must be greater than zero".into()),
        Ok(duration) => Ok(duration),
        Err(error) => Err(error.to_string()),
    }
}

/// A count of at least 1.
fn parse_positive(text: &str) -> Result<usize, String> {
    match text.parse::<usize>() {
        Ok(0) => Err("must be at least 1".into()),
        Ok(count) => Ok(count),
        Err(error) => Err(error.to_string()),
    }
}

fn hostname() -> anyhow::Result<String> {
    for file in ["/proc/sys/kernel/hostname", "/etc/hostname"] {
        if let Ok(name) = std::fs::read_to_string(file) {
            let name = name.trim();
            if !name.is_empty() {
                return Ok(name.to_owned());
            }
        }
    }
    match std::env::var("HOSTNAME") {
        Ok(name) if !name.trim().is_empty() => Ok(name.trim().to_owned()),
        _ => bail!("no host name found in /proc/sys/kernel/hostname, /etc/hostname or $HOSTNAME"),
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    fn parse(args: &[&str]) -> Result<RunArgs, clap::Error> {
        let mut argv = vec!["conduit-data-plane", "run"];
        argv.extend_from_slice(args);
        Cli::try_parse_from(argv).map(|cli| match cli.command {
            Command::Run(args) => args,
        })
    }

    #[test]
    fn cli_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn parses_the_contract_flags() {
        let args = parse(&[
            "--control-plane",
            "http://127.0.0.1:7700",
            "--listen",
            "127.0.0.1:0",
            "--admin-listen",
            "127.0.0.1:0",
            "--node-id",
            "dp-1",
            "--labels",
            "zone=a,tier=edge",
            "--state-dir",
            "/var/lib/conduit",
            "--drain-timeout",
            "500ms",
            "--header-read-timeout",
            "2s",
            "--log-format",
            "json",
            "--worker-threads",
            "1",
            "--audit-queue-capacity",
            "5",
            "--body-read-timeout",
            "3s",
            "--max-connections",
            "10",
            "--max-connections-per-address",
            "4",
            "--admin-allowed-hosts",
            "metrics.internal,*.svc",
            "--audit-queue-bytes",
            "1048576",
        ])
        .expect("parses");
        assert_eq!(args.body_read_timeout, Duration::from_secs(3));
        assert_eq!(args.max_connections, 10);
        assert_eq!(args.max_connections_per_address, 4);
        assert_eq!(args.drain_timeout, Duration::from_millis(500));
        assert_eq!(args.header_read_timeout, Duration::from_secs(2));
        assert_eq!(args.log_format, LogFormat::Json);
        assert_eq!(args.worker_threads, NonZeroUsize::new(1));
        assert_eq!(args.audit_queue_capacity, 5);
        assert_eq!(args.audit_queue_bytes, 1_048_576);
        let settings = args.settings(Some("t".into())).expect("settings");
        assert_eq!(settings.node_id, "dp-1");
        assert_eq!(settings.labels["zone"], "a");
        assert_eq!(settings.labels["tier"], "edge");
        assert_eq!(settings.token.as_deref(), Some("t"));
        assert!(matches!(
            settings.source,
            SourceSettings::ControlPlane {
                state_dir: Some(_),
                ..
            }
        ));
    }

    #[test]
    fn defaults() {
        let args = parse(&["--config", "conduit.yaml"]).expect("parses");
        assert_eq!(args.listen, "127.0.0.1:8080".parse().unwrap());
        assert_eq!(args.admin_listen, "127.0.0.1:9901".parse().unwrap());
        assert_eq!(args.drain_timeout, Duration::from_secs(30));
        assert_eq!(
            args.header_read_timeout,
            conduit_data_plane::server::DEFAULT_HEADER_READ_TIMEOUT
        );
        assert_eq!(
            args.body_read_timeout,
            conduit_data_plane::proxy::DEFAULT_BODY_READ_TIMEOUT
        );
        assert_eq!(args.max_connections, 1024);
        assert_eq!(args.max_connections_per_address, 128);
        assert_eq!(args.log_format, LogFormat::Text);
        assert_eq!(args.worker_threads, None);
        assert_eq!(args.audit_queue_capacity, 10_000);
        assert_eq!(args.audit_queue_bytes, 32 * 1024 * 1024);
        // An empty token means none.
        let settings = args.settings(Some(String::new())).expect("settings");
        assert_eq!(settings.token, None);
    }

    #[test]
    fn token_file_replaces_the_environment_variable() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("token");
        std::fs::write(&file, "  from-file \nignored second line\n").expect("write");
        let path = file.to_str().expect("utf-8");
        let args = || parse(&["--control-plane", "http://x:1", "--token-file", path]);
        let settings = args().expect("parses").settings(None).expect("settings");
        assert_eq!(settings.token.as_deref(), Some("from-file"));
        // An empty variable counts as unset.
        let settings = args().expect("parses").settings(Some(String::new()));
        assert_eq!(
            settings.expect("settings").token.as_deref(),
            Some("from-file")
        );

        let both = args().expect("parses").settings(Some("from-env".into()));
        let both = format!("{:#}", both.expect_err("ambiguous"));
        assert!(both.contains("CONDUIT_DP_TOKEN"), "{both}");
        assert!(
            !both.contains("from-env") && !both.contains("from-file"),
            "{both}"
        );

        std::fs::write(&file, "\n").expect("write");
        let empty = format!(
            "{:#}",
            args().expect("parses").settings(None).expect_err("empty")
        );
        assert!(empty.contains("empty"), "{empty}");
        std::fs::write(&file, "x".repeat(5000)).expect("write");
        let large = format!(
            "{:#}",
            args().expect("parses").settings(None).expect_err("large")
        );
        assert!(large.contains("larger than"), "{large}");
        let directory = dir.path().to_str().expect("utf-8");
        let args = parse(&["--control-plane", "http://x:1", "--token-file", directory]);
        let not_file = args
            .expect("parses")
            .settings(None)
            .expect_err("a directory");
        assert!(
            format!("{not_file:#}").contains("not a regular file"),
            "{not_file:#}"
        );
        // Standalone mode has no control plane to present a token to.
        assert!(parse(&["--config", "a.yaml", "--token-file", path]).is_err());
    }

    #[test]
    fn needs_exactly_one_source() {
        assert!(parse(&[]).is_err());
        assert!(parse(&["--config", "a.yaml", "--control-plane", "http://x:1"]).is_err());
        assert!(parse(&["--config", "a.yaml", "--state-dir", "/tmp/s"]).is_err());
    }

    #[test]
    fn secret_flags() {
        let dir = tempfile::tempdir().expect("temp dir");
        let dir = dir.path().display().to_string();
        let args = parse(&[
            "--config",
            "a.yaml",
            "--secret-dir",
            &dir,
            "--secret-dir",
            &dir,
            "--secret-env-prefix",
            "APP_",
            "--secret-max-bytes",
            "4096",
            "--secret-read-timeout",
            "2s",
        ])
        .expect("parses");
        assert_eq!(args.secret_dirs.len(), 2);
        assert_eq!(args.secret_env_prefixes, ["APP_"]);
        assert_eq!(args.secret_max_bytes, 4096);
        assert_eq!(args.secret_read_timeout, Duration::from_secs(2));
        assert!(args.settings(None).is_ok());
        let defaults = parse(&["--config", "a.yaml"]).expect("parses");
        assert!(defaults.secret_dirs.is_empty());
        assert_eq!(defaults.secret_max_bytes, 1024 * 1024);
        assert_eq!(defaults.secret_read_timeout, Duration::from_secs(5));
        // A directory that does not exist stops the start, naming the flag.
        let missing = parse(&["--config", "a.yaml", "--secret-dir", "/surely/not/here"])
            .expect("parses")
            .settings(None)
            .expect_err("refused");
        assert!(missing.to_string().contains("--secret-dir"), "{missing}");
        assert!(parse(&["--config", "a.yaml", "--secret-max-bytes", "0"]).is_err());
    }

    #[test]
    fn rejects_a_zero_header_read_timeout() {
        assert!(parse(&["--config", "a.yaml", "--header-read-timeout", "0s"]).is_err());
        assert!(parse(&["--config", "a.yaml", "--header-read-timeout", "soon"]).is_err());
    }

    #[test]
    fn rejects_zero_limits_and_bad_host_names() {
        assert!(parse(&["--config", "a.yaml", "--body-read-timeout", "0s"]).is_err());
        assert!(parse(&["--config", "a.yaml", "--max-connections", "0"]).is_err());
        assert!(parse(&["--config", "a.yaml", "--max-connections-per-address", "0"]).is_err());
        assert!(parse(&["--config", "a.yaml", "--admin-allowed-hosts", "a b"]).is_err());
    }

    #[test]
    fn rejects_bad_labels() {
        assert!(parse_labels("novalue").is_err());
        assert!(parse_labels("=v").is_err());
        assert!(parse_labels("a=1,a=2").is_err());
        assert_eq!(parse_labels("").unwrap(), BTreeMap::new());
    }
}
