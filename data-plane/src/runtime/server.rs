//! The upstream servers of a configuration, compiled: parsed URLs and replicas, header maps
//! and timeouts for HTTP servers, the process group of a stdio server.

use std::time::Duration;

use conduit_config::{Router, ServerConfig, StdioIsolation, Transport};
use http::header::{HeaderMap, HeaderName, HeaderValue};
use http::uri::{Scheme, Uri};

use super::error::CompileError;
use crate::balancer::ReplicaSet;
use crate::stdio::{self, StdioServer};

/// Upstream timeout (to response headers) when a server sets no `timeout_ms`.
pub(crate) const DEFAULT_UPSTREAM_TIMEOUT: Duration = Duration::from_secs(30);

/// One routable upstream server.
#[derive(Debug)]
pub struct Server {
    pub id: String,
    pub upstream: Upstream,
}

#[derive(Debug)]
pub enum Upstream {
    Http(Box<HttpUpstream>),
    /// A process the data plane runs (see `stdio`).
    Stdio(Box<StdioServer>),
    /// A stdio server whose releases the gateway manages (`managed_runtime`): installing
    /// and running releases arrives in a later issue.
    Managed,
}

#[derive(Debug)]
pub struct HttpUpstream {
    /// Where requests go: `url` and `replicas`, with health checks and circuit breakers.
    pub replicas: ReplicaSet,
    /// Static headers added to every upstream request.
    pub headers: HeaderMap,
    /// Time allowed until the upstream's response headers arrive.
    pub timeout: Duration,
    /// Whether the caller's `Authorization` header is passed upstream.
    pub forward_authorization: bool,
}

// === impl Server ===

impl Server {
    pub(super) fn compile(
        path: &str,
        config: &ServerConfig,
        router: Option<&Router>,
        stdio: &stdio::Pool,
    ) -> Result<Server, Vec<CompileError>> {
        let upstream = match (config.transport, &config.command) {
            (Transport::Stdio, Some(command)) => {
                let spec = stdio::Spec {
                    command: command.clone(),
                    args: config.args.clone(),
                    env: config.env.clone(),
                };
                Upstream::Stdio(Box::new(StdioServer::new(
                    stdio,
                    &config.id,
                    spec,
                    isolation(config),
                    timeout(config),
                )))
            }
            (Transport::Stdio, None) => Upstream::Managed,
            (Transport::Http, _) => {
                Upstream::Http(Box::new(HttpUpstream::compile(path, config, router)?))
            }
        };
        Ok(Server {
            id: config.id.clone(),
            upstream,
        })
    }
}

// === impl HttpUpstream ===

impl HttpUpstream {
    fn compile(
        path: &str,
        config: &ServerConfig,
        router: Option<&Router>,
    ) -> Result<HttpUpstream, Vec<CompileError>> {
        let mut errors = Vec::new();
        if config.url.is_none() {
            errors.push(CompileError::MissingUrl {
                path: format!("{path}.url"),
            });
        }
        // `url` is replica 0, `replicas` follow.
        let urls = config.url.iter().map(|url| (format!("{path}.url"), url));
        let replica_urls = (config.replicas.iter().enumerate())
            .map(|(index, url)| (format!("{path}.replicas[{index}]"), url));
        let mut endpoints = Vec::with_capacity(1 + config.replicas.len());
        for (url_path, url) in urls.chain(replica_urls) {
            match parse_upstream_uri(url) {
                Ok(uri) => endpoints.push((url.clone(), uri)),
                Err(error) => errors.push(error.at(url_path, url)),
            }
        }

        let mut headers = HeaderMap::with_capacity(config.headers.len());
        for (name, value) in &config.headers {
            let header_path = format!("{path}.headers.{name}");
            let parsed_name = HeaderName::from_bytes(name.as_bytes());
            let parsed_value = HeaderValue::from_str(value);
            match (parsed_name, parsed_value) {
                (Ok(name), Ok(mut value)) => {
                    // Static headers usually carry credentials; keep them out of debug output.
                    value.set_sensitive(true);
                    headers.insert(name, value);
                }
                (Err(_), _) => errors.push(CompileError::InvalidHeaderName {
                    path: header_path,
                    name: name.clone(),
                }),
                (Ok(_), Err(_)) => {
                    errors.push(CompileError::InvalidHeaderValue { path: header_path })
                }
            }
        }

        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(HttpUpstream {
            replicas: ReplicaSet::new(&config.id, endpoints, router),
            headers,
            timeout: timeout(config),
            forward_authorization: config.forward_authorization,
        })
    }
}

/// The server's `timeout_ms`, or the default.
/// Which callers of a stdio server share a process (`isolation`, `max_processes`,
/// `idle_timeout_ms`).
fn isolation(config: &ServerConfig) -> stdio::Isolation {
    let max_processes = usize::try_from(config.max_processes().max(1)).unwrap_or(usize::MAX);
    let idle = Duration::from_millis(config.idle_timeout_ms().max(1));
    match config.isolation() {
        StdioIsolation::Shared => stdio::Isolation::Shared,
        StdioIsolation::Tenant => stdio::Isolation::Tenant {
            max_processes,
            idle,
        },
        StdioIsolation::Client => stdio::Isolation::Client {
            max_processes,
            idle,
        },
    }
}

fn timeout(config: &ServerConfig) -> Duration {
    config
        .timeout_ms
        .map(Duration::from_millis)
        .unwrap_or(DEFAULT_UPSTREAM_TIMEOUT)
}

/// Why a URL cannot be an upstream, before the path is known.
enum UriProblem {
    Invalid(String),
    Scheme(String),
}

impl UriProblem {
    fn at(self, path: String, url: &str) -> CompileError {
        match self {
            UriProblem::Invalid(reason) => CompileError::InvalidUrl {
                path,
                url: url.to_owned(),
                reason,
            },
            UriProblem::Scheme(scheme) => CompileError::UnsupportedScheme { path, scheme },
        }
    }
}

fn parse_upstream_uri(url: &str) -> Result<Uri, UriProblem> {
    let uri: Uri = url
        .parse()
        .map_err(|error: http::uri::InvalidUri| UriProblem::Invalid(error.to_string()))?;
    match uri.scheme() {
        Some(scheme) if *scheme == Scheme::HTTP || *scheme == Scheme::HTTPS => {}
        Some(scheme) => return Err(UriProblem::Scheme(scheme.as_str().to_owned())),
        None => {
            return Err(UriProblem::Invalid(
                "an absolute http:// or https:// URL is required".into(),
            ));
        }
    }
    if uri.host().is_none_or(str::is_empty) {
        return Err(UriProblem::Invalid("the URL has no host".into()));
    }
    Ok(uri)
}
