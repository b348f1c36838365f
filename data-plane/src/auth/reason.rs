//! Why authentication failed: a closed set of reasons, each with the label it is counted
//! under in `conduit_auth_failures_total{reason}` and the text the caller reads. Neither
//! ever contains the credential.

/// The reason a request was not authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reason {
    /// No credential was sent.
    Missing,
    /// A credential was sent in a form that is not accepted (wrong scheme, whitespace,
    /// several values, too long, not a JWT).
    Malformed,
    /// The API key matches no configured key.
    InvalidKey,
    /// The token's `exp` is past (beyond the clock skew).
    Expired,
    /// The token's `nbf` is in the future (beyond the clock skew).
    NotYetValid,
    /// The signature does not verify with the selected key.
    BadSignature,
    /// The token's `iss` is missing or not the configured issuer.
    BadIssuer,
    /// The token's `aud` is missing or does not name the configured audience.
    BadAudience,
    /// The token's `alg` is not accepted, or does not fit the key it names.
    Algorithm,
    /// No key of the key set has the token's `kid`.
    UnknownKey,
    /// The key exists in the key set but is not pinned.
    UntrustedKey,
    /// A required claim (`exp`, the client claim) is missing.
    MissingClaim,
    /// The key set could not be fetched and no keys are known.
    JwksUnavailable,
}

impl Reason {
    /// Every reason, for metrics that exist before the first failure.
    pub const ALL: [Reason; 13] = [
        Reason::Missing,
        Reason::Malformed,
        Reason::InvalidKey,
        Reason::Expired,
        Reason::NotYetValid,
        Reason::BadSignature,
        Reason::BadIssuer,
        Reason::BadAudience,
        Reason::Algorithm,
        Reason::UnknownKey,
        Reason::UntrustedKey,
        Reason::MissingClaim,
        Reason::JwksUnavailable,
    ];

    /// The metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Missing => "missing",
            Reason::Malformed => "malformed",
            Reason::InvalidKey => "invalid_key",
            Reason::Expired => "expired",
            Reason::NotYetValid => "not_yet_valid",
            Reason::BadSignature => "bad_signature",
            Reason::BadIssuer => "bad_issuer",
            Reason::BadAudience => "bad_audience",
            Reason::Algorithm => "algorithm",
            Reason::UnknownKey => "unknown_key",
            Reason::UntrustedKey => "untrusted_key",
            Reason::MissingClaim => "missing_claim",
            Reason::JwksUnavailable => "jwks_unavailable",
        }
    }

    /// What the caller is told (after `authentication failed: `).
    pub fn message(self) -> &'static str {
        match self {
            Reason::Missing => {
                "no credential: send Authorization: Bearer <credential> (or X-API-Key with API keys)"
            }
            Reason::Malformed => "the credential is malformed",
            Reason::InvalidKey => "invalid API key",
            Reason::Expired => "the token has expired",
            Reason::NotYetValid => "the token is not valid yet",
            Reason::BadSignature => "the token's signature is invalid",
            Reason::BadIssuer => "the token's issuer is not accepted",
            Reason::BadAudience => "the token's audience is not accepted",
            Reason::Algorithm => "the token's signature algorithm is not accepted",
            Reason::UnknownKey => "the token is signed with an unknown key",
            Reason::UntrustedKey => "the token is signed with a key that is not pinned",
            Reason::MissingClaim => "the token lacks a required claim",
            Reason::JwksUnavailable => "the signing keys are unavailable",
        }
    }

    /// Whether the caller presented a credential (the challenge then says `invalid_token`).
    pub fn credential_presented(self) -> bool {
        self != Reason::Missing
    }
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.message())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_distinct_snake_case() {
        let labels: std::collections::BTreeSet<&str> =
            Reason::ALL.iter().map(|r| r.as_str()).collect();
        assert_eq!(labels.len(), Reason::ALL.len());
        assert!(
            labels
                .iter()
                .all(|l| l.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'))
        );
        assert!(!Reason::Missing.credential_presented());
        assert!(Reason::InvalidKey.credential_presented());
    }
}
