//! The `Runtime`: what one applied configuration compiles into, valid by construction.
//!
//! A `Runtime` is built once per apply, off the request path, from a `Document` whose
//! references are already resolved. Everything a request needs is precompiled here (parsed
//! upstream URIs, header maps, timeouts), so the hot path never re-validates or re-parses.
//! Requests take one `Arc<Runtime>` (`ArcSwap::load_full`) and keep it for their whole life.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use conduit_config::{ConfigErrors, Document};
use conduit_policy::Redactor;

use crate::approvals::ApprovalSettings;
use crate::auth::Authenticator;
use crate::balancer::health::Probe;
use crate::catalog::Catalog;
use crate::host_check::HostPolicy;
use crate::metrics::Metrics;
use crate::policies::Policies;
use crate::public_tls::PublicTls;
use crate::rate_limit::RateLimiter;
use crate::session::SessionKeys;
use crate::stdio;
use error::CompileError;

mod error;
mod server;

pub(crate) use server::{DEFAULT_UPSTREAM_TIMEOUT, HttpUpstream, Server, Upstream};

/// Where an applied configuration came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigSource {
    ControlPlane,
    File,
    StateDir,
}

impl ConfigSource {
    pub fn as_str(self) -> &'static str {
        match self {
            ConfigSource::ControlPlane => "control-plane",
            ConfigSource::File => "file",
            ConfigSource::StateDir => "state-dir",
        }
    }
}

/// Identity of an applied configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applied {
    pub version: u64,
    pub hash: String,
    pub source: ConfigSource,
    pub applied_at: DateTime<Utc>,
}

/// The compiled, serving configuration.
#[derive(Debug)]
pub struct Runtime {
    /// `None` until the first configuration is applied (the data plane is then not ready).
    applied: Option<Applied>,
    servers: HashMap<String, Arc<Server>>,
    /// Which `Host` and `Origin` values the public listener accepts.
    host_policy: HostPolicy,
    /// TLS of the public listener; `None` serves plain HTTP.
    tls: Option<Arc<PublicTls>>,
    /// The aggregate endpoints (`/mcp`, `/mcp/profile/{id}`) and their routing caches.
    aggregates: Catalog,
    /// The document with secrets masked, for `/config_dump`; computed once per apply.
    masked_config: serde_json::Value,
    /// `gateway.session_keys`, which win over the control plane's keys when set.
    session_keys: Option<SessionKeys>,
    /// The compiled `acl`, `guardrails` and `governance` sections (admission).
    policies: Policies,
    /// `auth`; `None` without authentication (every caller is anonymous).
    auth: Option<Authenticator>,
    /// `rate_limits` and `governance.quotas`; its counters outlive the runtime (`inherit`).
    rate_limiter: RateLimiter,
    /// `governance.approvals.ttl_seconds` and the redaction of held calls' arguments.
    approval_settings: ApprovalSettings,
    /// What audit records hold (`observability`) and this configuration's version.
    audit_profile: Arc<crate::audit::Profile>,
}

// === impl Runtime ===

impl Runtime {
    /// The runtime before any configuration is applied: routes nothing, not ready.
    pub fn empty() -> Self {
        Runtime {
            applied: None,
            servers: HashMap::new(),
            host_policy: HostPolicy::default(),
            tls: None,
            aggregates: Catalog::default(),
            masked_config: serde_json::Value::Null,
            session_keys: None,
            policies: Policies::default(),
            auth: None,
            rate_limiter: RateLimiter::disabled(&Metrics::new()),
            approval_settings: ApprovalSettings::default(),
            audit_profile: Arc::default(),
        }
    }

    /// Compile a resolved, validated document. Every problem is reported, none is skipped:
    /// a runtime either routes every configured server or is not built at all.
    ///
    /// Stdio servers get processes of their own that nothing starts; the apply path uses
    /// [`Runtime::compile_with`].
    pub fn compile(document: &Document, applied: Applied) -> Result<Runtime, ConfigErrors> {
        let metrics = Arc::new(crate::metrics::Metrics::new());
        Self::compile_with(document, applied, &stdio::Pool::new(metrics))
    }

    /// [`Runtime::compile`], taking each stdio server's process from `stdio` (the running
    /// one when unchanged). Nothing is started or stopped until `stdio.commit`.
    pub fn compile_with(
        document: &Document,
        applied: Applied,
        stdio: &stdio::Pool,
    ) -> Result<Runtime, ConfigErrors> {
        let mut servers = HashMap::with_capacity(document.servers.len());
        let mut errors = Vec::new();
        for (index, config) in document.servers.iter().enumerate() {
            let path = format!("servers[{index}]");
            match Server::compile(&path, config, document.router.as_ref(), stdio) {
                Ok(server) => {
                    if servers.contains_key(&server.id) {
                        errors.push(CompileError::DuplicateId {
                            path: format!("{path}.id"),
                            id: server.id,
                        });
                    } else {
                        servers.insert(server.id.clone(), Arc::new(server));
                    }
                }
                Err(server_errors) => errors.extend(server_errors),
            }
        }
        let host_policy = HostPolicy::compile(document.gateway.as_ref()).unwrap_or_else(|bad| {
            errors.extend(
                bad.into_iter()
                    .map(|(path, message)| CompileError::InvalidPattern { path, message }),
            );
            HostPolicy::default()
        });
        // The files are read here, so a certificate that cannot be used rejects the apply.
        let tls = match document.gateway.as_ref().and_then(|g| g.tls.as_ref()) {
            Some(config) => PublicTls::load(config).unwrap_or_else(|error| {
                errors.push(CompileError::Tls {
                    path: error.field().to_owned(),
                    message: error.to_string(),
                });
                None
            }),
            None => None,
        };
        let session_keys = crate::session::configured_keys(document.gateway.as_ref())
            .unwrap_or_else(|bad| {
                errors.extend(
                    bad.into_iter()
                        .map(|(path, message)| CompileError::InvalidSessionKey { path, message }),
                );
                None
            });
        let aggregates = Catalog::compile(document).unwrap_or_else(|unknown| {
            errors.extend(unknown.into_iter().map(|u| CompileError::UnknownServer {
                path: u.path,
                id: u.id,
            }));
            Catalog::default()
        });
        let policies = Policies::compile(document).unwrap_or_else(|bad| {
            errors.extend(bad.into_iter().map(|error| CompileError::Policy {
                path: error.path,
                message: error.message,
            }));
            Policies::default()
        });
        let auth = match &document.auth {
            Some(config) => Authenticator::compile(config).unwrap_or_else(|problems| {
                errors.extend(
                    (problems.into_iter())
                        .map(|(path, message)| CompileError::Auth { path, message }),
                );
                None
            }),
            None => None,
        };
        let rate_limiter =
            RateLimiter::compile(document, stdio.metrics()).unwrap_or_else(|error| {
                errors.push(CompileError::RateLimits {
                    path: error.path.to_owned(),
                    message: error.message,
                });
                RateLimiter::disabled(stdio.metrics())
            });
        if !errors.is_empty() {
            return Err(ConfigErrors(errors.into_iter().map(Into::into).collect()));
        }
        let audit_profile = Arc::new(crate::audit::Profile::compile(document, applied.version));
        Ok(Runtime {
            applied: Some(applied),
            servers,
            host_policy,
            tls: tls.map(Arc::new),
            aggregates,
            masked_config: conduit_config::mask_secrets(document),
            session_keys,
            policies,
            auth,
            rate_limiter,
            approval_settings: ApprovalSettings::compile(document),
            audit_profile,
        })
    }

    pub fn applied(&self) -> Option<&Applied> {
        self.applied.as_ref()
    }

    pub fn server(&self, id: &str) -> Option<&Arc<Server>> {
        self.servers.get(id)
    }

    pub fn host_policy(&self) -> &HostPolicy {
        &self.host_policy
    }

    /// TLS of the public listener, when enabled.
    pub fn tls(&self) -> Option<&Arc<PublicTls>> {
        self.tls.as_ref()
    }

    /// The aggregate endpoints of this configuration.
    pub fn aggregates(&self) -> &Catalog {
        &self.aggregates
    }

    pub fn masked_config(&self) -> &serde_json::Value {
        &self.masked_config
    }

    /// Every routable server.
    /// The process groups of the stdio servers, by server id.
    pub fn stdio_groups(&self) -> std::collections::HashMap<String, Arc<stdio::Group>> {
        self.servers()
            .filter_map(|server| match &server.upstream {
                Upstream::Stdio(stdio) => Some((server.id.clone(), Arc::clone(stdio.group()))),
                _ => None,
            })
            .collect()
    }

    pub fn servers(&self) -> impl Iterator<Item = &Arc<Server>> {
        self.servers.values()
    }

    /// The rate limits and quotas of this configuration.
    pub fn rate_limiter(&self) -> &RateLimiter {
        &self.rate_limiter
    }

    /// Keep what `previous` learned about the replicas this runtime still has (health,
    /// circuit breakers, requests in flight), the JWKS keys it fetched when the URL is
    /// unchanged, and its rate limit counters when they live where this configuration's do.
    /// Call before the runtime is shared.
    pub fn inherit(&mut self, previous: &Runtime) {
        self.policies.inherit(&previous.policies);
        if let (Some(auth), Some(old)) = (&mut self.auth, &previous.auth) {
            auth.inherit(old);
        }
        self.rate_limiter.inherit(&previous.rate_limiter);
        for (id, server) in &mut self.servers {
            let (Some(server), Some(old)) = (Arc::get_mut(server), previous.servers.get(id)) else {
                continue;
            };
            if let (Upstream::Http(new), Upstream::Http(old)) =
                (&mut server.upstream, &old.upstream)
            {
                new.replicas.inherit(&old.replicas);
            }
        }
    }

    /// Start the health checks of every HTTP server. They run until
    /// [`Runtime::stop_health_checks`] or until the runtime is dropped.
    pub fn start_health_checks<P: Probe>(&self, prober: &P) {
        for upstream in self.http_upstreams() {
            upstream
                .replicas
                .start_health_checks(prober, &upstream.headers);
        }
    }

    /// Stop the health checks: this runtime was replaced (requests still holding it keep
    /// working, on the health verdicts its successor maintains).
    pub fn stop_health_checks(&self) {
        for upstream in self.http_upstreams() {
            upstream.replicas.stop_health_checks();
        }
    }

    fn http_upstreams(&self) -> impl Iterator<Item = &HttpUpstream> {
        self.servers
            .values()
            .filter_map(|server| match &server.upstream {
                Upstream::Http(upstream) => Some(&**upstream),
                Upstream::Stdio(_) | Upstream::Managed => None,
            })
    }

    /// The compiled policy sections.
    pub fn policies(&self) -> &Policies {
        &self.policies
    }

    /// Whether some admission phase needs to read each message (when none does, the
    /// single-server path forwards bodies without parsing them).
    pub fn admission_enabled(&self) -> bool {
        self.policies.enabled() || self.rate_limiter.is_enabled()
    }

    /// How callers authenticate; `None` when they do not.
    pub fn auth(&self) -> Option<&Authenticator> {
        self.auth.as_ref()
    }

    /// `observability.redact_fields`, compiled once per configuration (the same redactor
    /// the approval settings use): what webhook events and approval requests redact.
    pub fn redactor(&self) -> &Redactor {
        &self.approval_settings.redactor
    }

    /// What this configuration's audit records hold.
    pub fn audit_profile(&self) -> &Arc<crate::audit::Profile> {
        &self.audit_profile
    }

    /// This configuration's approval settings: the approvals phase is
    /// `approvals.check(settings, ...)` with the process's approval state (`Services`).
    pub fn approval_settings(&self) -> &ApprovalSettings {
        &self.approval_settings
    }

    /// The configuration's own session keys, if it names any.
    pub fn session_keys(&self) -> Option<&SessionKeys> {
        self.session_keys.as_ref()
    }
}

/// The replica metrics report the runtime serving at scrape time.
impl crate::balancer::metrics::ServedReplicas for Arc<arc_swap::ArcSwap<Runtime>> {
    fn each(&self, each: &mut dyn FnMut(&str, &crate::balancer::ReplicaSet)) {
        for server in self.load().servers() {
            if let Upstream::Http(upstream) = &server.upstream {
                each(&server.id, &upstream.replicas);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use conduit_config::ServerConfig;

    use super::*;

    fn applied() -> Applied {
        Applied {
            version: 7,
            hash: "abc".into(),
            source: ConfigSource::File,
            applied_at: Utc::now(),
        }
    }

    fn document(text: &str) -> Document {
        Document::from_text(text).expect("valid document")
    }

    #[test]
    fn compiles_http_servers() {
        let doc = document(
            "servers:\n  - id: alpha\n    url: http://127.0.0.1:9000/mcp\n    timeout_ms: 1500\n    headers:\n      X-Api-Key: secret\n",
        );
        let runtime = Runtime::compile(&doc, applied()).expect("compiles");
        let server = runtime.server("alpha").expect("routed");
        let Upstream::Http(http) = &server.upstream else {
            panic!("expected an HTTP upstream");
        };
        let urls: Vec<&str> = http.replicas.replicas().iter().map(|r| r.url()).collect();
        assert_eq!(urls, ["http://127.0.0.1:9000/mcp"]);
        assert_eq!(http.timeout, Duration::from_millis(1500));
        assert_eq!(http.headers["x-api-key"], "secret");
        assert!(!http.forward_authorization);
        assert_eq!(runtime.applied().map(|a| a.version), Some(7));
        assert!(runtime.server("beta").is_none());
    }

    #[test]
    fn reports_every_problem_with_its_path() {
        // The config model rejects all of these already; the runtime must not rely on
        // that, so the document is built directly, bypassing validation.
        let server = |id: &str, url: Option<&str>| ServerConfig {
            id: id.into(),
            url: url.map(Into::into),
            ..ServerConfig::default()
        };
        let mut bad_header = server("b", Some("https://ok.example/mcp"));
        bad_header.headers.insert("bad header".into(), "v".into());
        let doc = Document {
            servers: vec![
                server("a", Some("ftp://example/mcp")),
                bad_header,
                server("c", None),
                server("d", Some("http://one/mcp")),
                server("d", Some("http://two/mcp")),
            ],
            gateway: Some(conduit_config::Gateway {
                allowed_hosts: vec!["ok.example".into(), "bad host".into()],
                ..Default::default()
            }),
            ..Document::default()
        };
        let errors = Runtime::compile(&doc, applied()).expect_err("rejected").0;
        let paths: Vec<&str> = errors.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "servers[0].url",
                "servers[1].headers.bad header",
                "servers[2].url",
                "servers[4].id",
                "gateway.allowed_hosts[1]"
            ],
            "{errors:?}"
        );
        assert!(errors[0].message.contains("ftp"), "{errors:?}");
        assert!(!errors[0].message.starts_with("servers[0]"), "{errors:?}");
    }

    #[test]
    fn empty_runtime_is_not_applied() {
        let runtime = Runtime::empty();
        assert!(runtime.applied().is_none());
        assert!(runtime.server("anything").is_none());
    }
}
