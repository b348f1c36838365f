//! The connection to the control plane's Admin API and the translation of everything that
//! can go wrong on it into exit codes: transport failures are "unreachable" (5), refused
//! credentials are 6, an invalid config (INVALID_ARGUMENT carrying `ConfigErrors`) is 2 with
//! every error, anything else the server says is 7.

use std::future::Future;
use std::path::Path;
use std::time::Duration;

use conduit_proto::v1::admin_client::AdminClient;
use prost::Message;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::Interceptor;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint};
use tonic::{Code, Status};

use crate::cli::ConnectionArgs;
use crate::exit::{CliError, Exit};

/// An unreachable control plane must fail fast so CI jobs do not hang.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const KEEP_ALIVE_INTERVAL: Duration = Duration::from_secs(10);
const KEEP_ALIVE_TIMEOUT: Duration = Duration::from_secs(5);
/// Deadline for one ordinary admin call (not WaitRollout, which sets its own).
pub const CALL_TIMEOUT: Duration = Duration::from_secs(30);

pub type Admin = AdminClient<InterceptedService<Channel, BearerToken>>;

/// Adds `authorization: Bearer <token>` to every call when a token was given.
#[derive(Clone)]
pub struct BearerToken(Option<MetadataValue<Ascii>>);

impl Interceptor for BearerToken {
    fn call(&mut self, mut request: tonic::Request<()>) -> Result<tonic::Request<()>, Status> {
        if let Some(value) = &self.0 {
            request
                .metadata_mut()
                .insert("authorization", value.clone());
        }
        Ok(request)
    }
}

/// A connected Admin client plus what is needed to explain its errors.
pub struct Session {
    pub admin: Admin,
    server: String,
    has_token: bool,
}

impl Session {
    /// Connects eagerly, so an unreachable server is reported (exit 5) before any work.
    pub async fn connect(args: &ConnectionArgs) -> Result<Self, CliError> {
        let endpoint = endpoint(args)?;
        let token = bearer(args.token.as_deref())?;
        let token_given = token.is_some();
        if token_given && endpoint.uri().scheme_str() == Some("http") {
            let host = endpoint.uri().host().unwrap_or_default();
            if !is_loopback(host) {
                eprintln!(
                    "warning: sending the admin token to {host} over plain http; use https:// \
                     so it cannot be read on the way"
                );
            }
        }
        let channel = endpoint
            .connect()
            .await
            .map_err(|error| unreachable(&args.server, &error))?;
        Ok(Self {
            admin: AdminClient::with_interceptor(channel, BearerToken(token))
                .max_decoding_message_size(64 * 1024 * 1024),
            server: args.server.clone(),
            has_token: token_given,
        })
    }

    /// Runs one call with a client-side deadline and maps its failure to an exit code.
    pub async fn call<T>(
        &self,
        deadline: Duration,
        call: impl Future<Output = Result<tonic::Response<T>, Status>>,
    ) -> Result<T, CliError> {
        self.call_status(deadline, call)
            .await?
            .map_err(|status| self.status_error(status))
    }

    /// Like [`Session::call`], but hands the gRPC status back to callers that treat some
    /// codes as answers (NOT_FOUND for "no version yet").
    pub async fn call_status<T>(
        &self,
        deadline: Duration,
        call: impl Future<Output = Result<tonic::Response<T>, Status>>,
    ) -> Result<Result<T, Status>, CliError> {
        match tokio::time::timeout(deadline, call).await {
            Ok(result) => Ok(result.map(tonic::Response::into_inner)),
            Err(_) => Err(CliError::new(
                Exit::Unreachable,
                format!(
                    "error: the control plane at {} did not answer within {}",
                    self.server,
                    humantime::format_duration(deadline)
                ),
            )),
        }
    }

    pub fn status_error(&self, status: Status) -> CliError {
        status_error(&status, &self.server, self.has_token)
    }
}

fn endpoint(args: &ConnectionArgs) -> Result<Endpoint, CliError> {
    let server = args.server.as_str();
    let tls = if server.starts_with("https://") {
        true
    } else if server.starts_with("http://") {
        false
    } else {
        return Err(CliError::usage(format!(
            "error: --server {server:?} must start with http:// or https://"
        )));
    };
    let endpoint = Endpoint::from_shared(server.to_string())
        .map_err(|error| CliError::usage(format!("error: invalid --server {server:?}: {error}")))?
        .connect_timeout(CONNECT_TIMEOUT)
        // A peer that accepts TCP but never answers HTTP/2 pings is dead, even while a
        // long WaitRollout is outstanding.
        .http2_keep_alive_interval(KEEP_ALIVE_INTERVAL)
        .keep_alive_timeout(KEEP_ALIVE_TIMEOUT)
        .keep_alive_while_idle(true)
        .tcp_nodelay(true);
    if !tls {
        if args.ca_cert.is_some() {
            return Err(CliError::usage(
                "error: --ca-cert needs an https:// --server",
            ));
        }
        return Ok(endpoint);
    }
    let tls_config = match &args.ca_cert {
        Some(path) => ClientTlsConfig::new().ca_certificate(read_ca(path)?),
        None => ClientTlsConfig::new().with_native_roots(),
    };
    endpoint
        .tls_config(tls_config)
        .map_err(|error| CliError::usage(format!("error: TLS setup: {}", chain(&error))))
}

fn is_loopback(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

fn read_ca(path: &Path) -> Result<Certificate, CliError> {
    let pem = std::fs::read(path).map_err(|error| {
        CliError::usage(format!(
            "error: cannot read --ca-cert {}: {error}",
            path.display()
        ))
    })?;
    Ok(Certificate::from_pem(pem))
}

/// An empty `--token ""` means no token, not an empty bearer credential.
fn bearer(token: Option<&str>) -> Result<Option<MetadataValue<Ascii>>, CliError> {
    token
        .map(str::trim)
        .filter(|token| !token.is_empty())
        .map(|token| {
            format!("Bearer {token}")
                .parse::<MetadataValue<Ascii>>()
                .map_err(|_| {
                    CliError::usage("error: the token contains characters not allowed in a header")
                })
        })
        .transpose()
}

fn unreachable(server: &str, error: &(dyn std::error::Error + 'static)) -> CliError {
    CliError::new(
        Exit::Unreachable,
        format!(
            "error: cannot reach the control plane at {server}: {}",
            chain(error)
        ),
    )
}

/// Like [`unreachable`] for a call that failed: the status message, then its causes
/// (a `Status` displays as a debug dump).
fn unreachable_status(server: &str, status: &Status) -> CliError {
    let mut text = status.message().to_string();
    if let Some(cause) = std::error::Error::source(status) {
        let causes = chain(cause);
        if !text.contains(&causes) {
            text.push_str(": ");
            text.push_str(&causes);
        }
    }
    CliError::new(
        Exit::Unreachable,
        format!("error: cannot reach the control plane at {server}: {text}"),
    )
}

use conduit_process::error_chain as chain;

const TOKEN_HINT: &str = "hint: pass the control plane's admin token with --token or the CONDUIT_TOKEN environment variable";

/// Maps a gRPC status to the exit code the contract gives it.
pub fn status_error(status: &Status, server: &str, has_token: bool) -> CliError {
    match status.code() {
        Code::Unavailable => unreachable_status(server, status),
        // A status tonic made on this side from a broken connection (e.g. plain http to a
        // TLS port) carries the transport error as its source; the server's own never do.
        Code::Unknown | Code::Internal | Code::Cancelled
            if std::error::Error::source(status).is_some() =>
        {
            let error = unreachable_status(server, status);
            if !server.starts_with("http://") {
                return error;
            }
            CliError::new(
                Exit::Unreachable,
                format!(
                    "{}\nhint: if the control plane serves TLS, use an https:// --server",
                    error.message()
                ),
            )
        }
        Code::Unauthenticated => {
            let why = if has_token {
                "the token was refused"
            } else {
                "no token was given"
            };
            CliError::new(
                Exit::AuthRefused,
                format!(
                    "error: authentication refused ({why}): {}\n{TOKEN_HINT}",
                    status.message()
                ),
            )
        }
        Code::PermissionDenied => CliError::new(
            Exit::AuthRefused,
            format!(
                "error: permission denied: {}\n{TOKEN_HINT} (of a principal allowed to do this)",
                status.message()
            ),
        ),
        Code::InvalidArgument => match config_errors(status) {
            Some(errors) => CliError::invalid("the control plane rejected the config", &errors),
            None => server_error(status),
        },
        _ => server_error(status),
    }
}

fn server_error(status: &Status) -> CliError {
    let message = status.message();
    let detail = if message.is_empty() {
        format!("{:?}", status.code())
    } else {
        message.to_string()
    };
    CliError::new(
        Exit::ServerError,
        format!("error: control plane: {detail} ({:?})", status.code()),
    )
}

/// The `ConfigErrors` the control plane puts in the details of a rejected Apply.
fn config_errors(status: &Status) -> Option<conduit_config::ConfigErrors> {
    let details = conduit_proto::v1::ConfigErrors::decode(status.details()).ok()?;
    if details.errors.is_empty() {
        return None;
    }
    Some(conduit_config::ConfigErrors(
        details.errors.into_iter().map(Into::into).collect(),
    ))
}

#[cfg(test)]
#[path = "client_tests.rs"]
mod tests;
