//! Command line of `conduit-control-plane`. Tokens come from the environment only, never
//! from flags, so they do not show up in process listings.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Parser, Subcommand};
pub use conduit_process::LogFormat;
use conduit_process::internal_http::{AllowedHosts, InternalSettings};

use crate::server::ServeConfig;
use crate::session_keys::KeyPolicy;
use crate::tls::TlsFiles;

/// Environment variable holding the Admin API bearer token.
pub const ADMIN_TOKEN_ENV: &str = "CONDUIT_ADMIN_TOKEN";
/// Environment variable holding the data-plane enrollment token.
pub const DP_TOKEN_ENV: &str = "CONDUIT_DP_TOKEN";

#[derive(Debug, Parser)]
#[command(
    name = "conduit-control-plane",
    version,
    about = "Conduit control plane: stores configuration versions and streams them to data planes."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the control plane.
    #[command(after_help = "Environment:\n  \
        CONDUIT_ADMIN_TOKEN  bearer token of the Admin principal `admin` (conduitctl)\n  \
        CONDUIT_DP_TOKEN     bearer token required from data planes; also signs snapshots\n  \
        RUST_LOG             log filter (default: info)\n\n\
        Without a token the matching API is open, which is only allowed on a loopback --listen \
        address.")]
    Serve(ServeArgs),
}

#[derive(Debug, Clone, clap::Args)]
pub struct ServeArgs {
    /// gRPC listen address (Admin API and config stream).
    #[arg(long, default_value = "127.0.0.1:7700")]
    pub listen: SocketAddr,
    /// Internal HTTP listen address for /healthz, /readyz and /metrics.
    #[arg(long, default_value = "127.0.0.1:7701")]
    pub http_listen: SocketAddr,
    /// Host names the --http-listen listener answers to besides IP addresses and
    /// `localhost` (comma-separated, `name`, `*.domain` or `*`); other `Host` headers get
    /// 403.
    #[arg(long, value_name = "HOST,...", value_parser = AllowedHosts::parse_list)]
    pub http_allowed_hosts: Option<AllowedHosts>,
    /// Time a client of the --http-listen listener has to send a request head; also how
    /// long an idle connection is kept.
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = parse_duration)]
    pub header_read_timeout: std::time::Duration,
    /// Directory for the SQLite database (created with mode 0700).
    #[arg(long, default_value = "./conduit-data")]
    pub data_dir: PathBuf,
    /// PEM certificate chain for TLS on the gRPC listener.
    #[arg(long, requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key for TLS on the gRPC listener.
    #[arg(long, requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Interval between heartbeats on each config stream (e.g. 5s, 500ms).
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    pub heartbeat_interval: std::time::Duration,
    /// Interval between two session token keys (the keys that encrypt the Mcp-Session-Id
    /// data planes give MCP clients).
    #[arg(long, default_value = "24h", value_parser = parse_duration)]
    pub session_key_rotation: std::time::Duration,
    /// Lifetime of an MCP session token; a replaced key keeps opening tokens this long.
    #[arg(long, default_value = "7d", value_parser = parse_duration)]
    pub session_max_age: std::time::Duration,
    /// YAML list of Admin API principals, `{name, role: admin|operator|viewer,
    /// token_sha256}`, besides `admin` (CONDUIT_ADMIN_TOKEN). Must not be readable by group
    /// or others.
    #[arg(long, value_name = "FILE")]
    pub admin_tokens_file: Option<PathBuf>,
    /// Log output format.
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

fn parse_duration(text: &str) -> Result<std::time::Duration, String> {
    let duration = humantime::parse_duration(text).map_err(|error| error.to_string())?;
    if duration.is_zero() {
        return Err("must be greater than zero".to_owned());
    }
    Ok(duration)
}

impl ServeArgs {
    /// The server configuration, with tokens read from the environment (empty = unset).
    pub fn into_config(self) -> ServeConfig {
        let token = |name: &str| std::env::var(name).ok().filter(|value| !value.is_empty());
        ServeConfig {
            listen: self.listen,
            http_listen: self.http_listen,
            http_settings: InternalSettings {
                header_read_timeout: self.header_read_timeout,
                allowed_hosts: self.http_allowed_hosts.unwrap_or_default(),
            },
            data_dir: self.data_dir,
            tls: self
                .tls_cert
                .zip(self.tls_key)
                .map(|(cert, key)| TlsFiles { cert, key }),
            heartbeat_interval: self.heartbeat_interval,
            session_keys: KeyPolicy {
                rotation: self.session_key_rotation,
                max_age: self.session_max_age,
            },
            admin_token: token(ADMIN_TOKEN_ENV),
            admin_tokens_file: self.admin_tokens_file,
            dp_token: token(DP_TOKEN_ENV),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<ServeArgs, clap::Error> {
        let mut argv = vec!["conduit-control-plane", "serve"];
        argv.extend_from_slice(args);
        Cli::try_parse_from(argv).map(|cli| match cli.command {
            Command::Serve(args) => args,
        })
    }

    #[test]
    fn defaults_follow_the_contract() {
        let args = parse(&[]).unwrap();
        assert_eq!(args.listen.to_string(), "127.0.0.1:7700");
        assert_eq!(args.http_listen.to_string(), "127.0.0.1:7701");
        assert_eq!(args.data_dir, PathBuf::from("./conduit-data"));
        assert_eq!(args.heartbeat_interval, std::time::Duration::from_secs(5));
        assert_eq!(args.log_format, LogFormat::Text);
        assert!(args.tls_cert.is_none());
        assert_eq!(
            args.clone().into_config().session_keys,
            KeyPolicy::default()
        );
    }

    #[test]
    fn parses_durations_and_requires_both_tls_files() {
        let args = parse(&["--heartbeat-interval", "500ms", "--log-format", "json"]).unwrap();
        assert_eq!(
            args.heartbeat_interval,
            std::time::Duration::from_millis(500)
        );
        assert_eq!(args.log_format, LogFormat::Json);
        assert!(parse(&["--heartbeat-interval", "0s"]).is_err());
        let keys = parse(&["--session-key-rotation", "1h", "--session-max-age", "2d"]).unwrap();
        assert_eq!(
            keys.session_key_rotation,
            std::time::Duration::from_secs(3600)
        );
        assert_eq!(
            keys.session_max_age,
            std::time::Duration::from_secs(2 * 86400)
        );
        assert!(parse(&["--session-key-rotation", "0s"]).is_err());
        assert!(parse(&["--tls-cert", "cert.pem"]).is_err());
        assert!(parse(&["--tls-cert", "c.pem", "--tls-key", "k.pem"]).is_ok());
        let http = parse(&[
            "--header-read-timeout",
            "2s",
            "--http-allowed-hosts",
            "cp.internal",
        ])
        .unwrap();
        assert_eq!(http.header_read_timeout, std::time::Duration::from_secs(2));
        assert!(parse(&["--header-read-timeout", "0s"]).is_err());
        assert!(parse(&["--http-allowed-hosts", "no spaces"]).is_err());
    }
}
