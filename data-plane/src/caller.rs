//! Who is calling: the identity the authentication phase establishes for a request and every
//! later phase (ACL, guardrails, approvals, rate limits, audit) reads. It travels in the
//! request's extensions; a request without one was not authenticated because the config
//! has no `auth` section, and is the anonymous caller of the default tenant.

use std::sync::Arc;

use http::request::Parts;

/// Client id of callers when the config has no `auth` section.
pub(crate) const ANONYMOUS: &str = "anonymous";
/// Tenant id of callers without one.
pub(crate) const DEFAULT_TENANT: &str = "default";

/// The caller of one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// Client id (an API key's `client_id`, a JWT's client claim, or `anonymous`).
    pub client_id: Arc<str>,
    /// Tenant id; also the caller's governance workspace.
    pub tenant_id: Arc<str>,
    /// Whether a credential was checked (false only without an `auth` section).
    pub authenticated: bool,
}

impl Caller {
    /// The caller of a gateway without authentication.
    pub fn anonymous() -> Caller {
        Caller {
            client_id: Arc::from(ANONYMOUS),
            tenant_id: Arc::from(DEFAULT_TENANT),
            authenticated: false,
        }
    }

    /// An authenticated caller.
    pub fn authenticated(client_id: &str, tenant_id: Option<&str>) -> Caller {
        Caller {
            client_id: Arc::from(client_id),
            tenant_id: Arc::from(tenant_id.unwrap_or(DEFAULT_TENANT)),
            authenticated: true,
        }
    }

    /// The caller of the request with these parts.
    pub fn of(parts: &Parts) -> Caller {
        parts
            .extensions
            .get::<Caller>()
            .cloned()
            .unwrap_or_else(Caller::anonymous)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_without_a_caller_is_anonymous_in_the_default_tenant() {
        let (mut parts, ()) = http::Request::new(()).into_parts();
        assert_eq!(Caller::of(&parts), Caller::anonymous());
        assert_eq!(&*Caller::of(&parts).tenant_id, "default");
        parts
            .extensions
            .insert(Caller::authenticated("agent-1", Some("acme")));
        let caller = Caller::of(&parts);
        assert_eq!(
            (&*caller.client_id, &*caller.tenant_id),
            ("agent-1", "acme")
        );
        assert!(caller.authenticated);
    }
}
