//! Shared-secret authentication: the bearer-token check in front of each gRPC service and
//! the signatures derived from the data-plane token (formats in `conduit_signing`).
//!
//! Tokens are compared in constant time over their SHA-256 digests, so neither the content
//! nor the length of the configured token leaks through response timing.

use std::sync::Arc;

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use tonic::service::Interceptor;
use tonic::{Request, Status};

/// A tonic interceptor requiring `authorization: Bearer <token>`; open when no token is set.
#[derive(Clone)]
pub struct BearerAuth {
    /// SHA-256 of the expected token; `None` leaves the API open.
    expected: Option<Arc<[u8; 32]>>,
    realm: &'static str,
}

impl BearerAuth {
    /// `realm` names the API in error messages (`admin`, `data plane`).
    pub fn new(token: Option<&str>, realm: &'static str) -> Self {
        Self {
            expected: token.map(|token| Arc::new(digest(token.as_bytes()))),
            realm,
        }
    }

    /// Whether a request with these metadata passes.
    pub fn check(&self, metadata: &tonic::metadata::MetadataMap) -> Result<(), Status> {
        let Some(expected) = &self.expected else {
            return Ok(());
        };
        let presented = metadata
            .get("authorization")
            .and_then(|value| value.to_str().ok())
            .and_then(bearer_token)
            .ok_or_else(|| {
                Status::unauthenticated(format!("missing bearer token for the {} API", self.realm))
            })?;
        if tokens_match(expected, presented) {
            Ok(())
        } else {
            Err(Status::unauthenticated(format!(
                "invalid bearer token for the {} API",
                self.realm
            )))
        }
    }
}

impl Interceptor for BearerAuth {
    fn call(&mut self, request: Request<()>) -> Result<Request<()>, Status> {
        self.check(request.metadata())?;
        Ok(request)
    }
}

/// The token in an `Authorization` value, accepting any case of the `Bearer` scheme.
pub(crate) fn bearer_token(value: &str) -> Option<&str> {
    let (scheme, token) = value.trim().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|token| !token.is_empty())
}

fn digest(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

fn tokens_match(expected: &[u8; 32], presented: &str) -> bool {
    digest(presented.as_bytes()).ct_eq(expected).into()
}

/// Hex HMAC-SHA256 over `"<version>:<hash>"` keyed with the data-plane token, or empty
/// when there is no token. Data planes holding the same token can verify it.
pub fn snapshot_signature(dp_token: Option<&str>, version: u64, hash: &str) -> String {
    dp_token.map_or_else(String::new, |token| {
        conduit_signing::snapshot::sign(token, version, hash)
    })
}

/// Hex HMAC-SHA256 keyed with the data-plane token over the lines `approval-key`, the
/// snapshot version and the hex public key (each ending in a newline), or empty without a
/// token: binds the grant-set key to the snapshot it travels in.
pub fn approval_key_signature(dp_token: Option<&str>, version: u64, public_key: &[u8]) -> String {
    dp_token.map_or_else(String::new, |token| {
        conduit_signing::approval_key::sign(token, version, public_key)
    })
}

#[cfg(test)]
mod tests {
    use tonic::metadata::{MetadataMap, MetadataValue};

    use super::*;

    fn with_header(value: &str) -> MetadataMap {
        let mut metadata = MetadataMap::new();
        metadata.insert("authorization", MetadataValue::try_from(value).unwrap());
        metadata
    }

    #[test]
    fn accepts_only_the_configured_token() {
        let auth = BearerAuth::new(Some("s3cret"), "admin");
        assert!(auth.check(&with_header("Bearer s3cret")).is_ok());
        assert!(auth.check(&with_header("bearer  s3cret ")).is_ok());
        for wrong in [
            "Bearer s3cre",
            "Bearer s3cret2",
            "Basic s3cret",
            "s3cret",
            "Bearer ",
        ] {
            let status = auth.check(&with_header(wrong)).unwrap_err();
            assert_eq!(status.code(), tonic::Code::Unauthenticated, "{wrong}");
        }
        let status = auth.check(&MetadataMap::new()).unwrap_err();
        assert_eq!(status.code(), tonic::Code::Unauthenticated);
        assert!(status.message().contains("admin"));
    }

    #[test]
    fn open_without_a_token() {
        let auth = BearerAuth::new(None, "admin");
        assert!(auth.check(&MetadataMap::new()).is_ok());
        assert!(auth.check(&with_header("Bearer anything")).is_ok());
    }

    #[test]
    fn approval_key_signature_matches_an_independent_hmac() {
        assert_eq!(approval_key_signature(None, 3, &[1; 32]), "");
        // hmac.new(b"dp-token", b"approval-key\n3\n" + b"01" * 32 + b"\n", sha256)
        assert_eq!(
            approval_key_signature(Some("dp-token"), 3, &[1; 32]),
            "40838faa6b7db7e0409199eb07cf01f7c46bd6b0d7374e9cde8bdec99d4625da"
        );
    }

    #[test]
    fn signature_is_hmac_of_version_and_hash() {
        assert_eq!(snapshot_signature(None, 3, "abc"), "");
        let signature = snapshot_signature(Some("key"), 3, "abc");
        // Computed independently: HMAC-SHA256(key = "key", msg = "3:abc").
        assert_eq!(
            signature,
            "b1276469aae36eb2925729bb524bcab9ddaa14554df0124c6aa43df8ae063e51"
        );
        assert_ne!(signature, snapshot_signature(Some("key"), 4, "abc"));
        assert_ne!(signature, snapshot_signature(Some("other"), 3, "abc"));
    }
}
