//! Who calls the Admin API: named principals with a role, each identified by a bearer token.
//!
//! `CONDUIT_ADMIN_TOKEN` is the principal `admin` with role `admin`; `--admin-tokens-file`
//! adds more, as a YAML list of `{name, role, token_sha256}` (the file holds only SHA-256
//! digests of the tokens, and must not be readable by group or others). Roles are ordered:
//! `viewer` may read (config, versions, fleet status, rollout waits, approvals),
//! `operator` may also apply, roll back and decide approvals, `admin` may do everything.
//! With neither a token nor a file the API is open (loopback only) and every caller is the
//! principal `admin`.
//!
//! [`AdminAuth`] is the interceptor: it finds the principal whose digest matches the
//! presented token (constant-time comparisons over every principal) and puts it in the
//! request's extensions, where [`require`] checks the role of each RPC.

use std::collections::HashSet;
use std::fmt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Deserialize;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use tonic::service::Interceptor;
use tonic::{Request, Status};

/// Name of the principal `CONDUIT_ADMIN_TOKEN` authenticates.
pub const ADMIN_PRINCIPAL: &str = "admin";

/// What a principal may do on the Admin API; later variants include earlier ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AdminRole {
    Viewer,
    Operator,
    Admin,
}

impl AdminRole {
    pub fn as_str(self) -> &'static str {
        match self {
            AdminRole::Viewer => "viewer",
            AdminRole::Operator => "operator",
            AdminRole::Admin => "admin",
        }
    }
}

impl fmt::Display for AdminRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An authenticated caller of the Admin API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub name: Arc<str>,
    pub role: AdminRole,
}

/// One entry of the tokens file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileEntry {
    name: String,
    role: AdminRole,
    token_sha256: String,
}

#[derive(Debug, thiserror::Error)]
pub enum PrincipalsError {
    #[error("cannot read the admin tokens file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "the admin tokens file {path} is readable by group or others (mode {mode:o}); run chmod 600 on it"
    )]
    Exposed { path: PathBuf, mode: u32 },
    #[error(
        "the admin tokens file {path} is not a YAML list of {{name, role, token_sha256}}: {reason}"
    )]
    Parse { path: PathBuf, reason: String },
    #[error("the admin tokens file {path}: entry {index}: {reason}")]
    Entry {
        path: PathBuf,
        index: usize,
        reason: String,
    },
}

struct Known {
    digest: [u8; 32],
    principal: Principal,
}

/// Every principal the Admin API knows.
#[derive(Clone, Default)]
pub struct Principals {
    known: Arc<Vec<Known>>,
}

impl fmt::Debug for Principals {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.known.iter().map(|k| &*k.principal.name).collect();
        f.debug_struct("Principals").field("names", &names).finish()
    }
}

impl Principals {
    /// `admin_token` (principal `admin`) plus the entries of `file`.
    pub fn load(admin_token: Option<&str>, file: Option<&Path>) -> Result<Self, PrincipalsError> {
        let mut known = Vec::new();
        if let Some(token) = admin_token {
            known.push(Known {
                digest: Sha256::digest(token.as_bytes()).into(),
                principal: Principal {
                    name: Arc::from(ADMIN_PRINCIPAL),
                    role: AdminRole::Admin,
                },
            });
        }
        if let Some(path) = file {
            known.extend(read_file(path, &known)?);
        }
        Ok(Principals {
            known: Arc::new(known),
        })
    }

    /// Whether any token is configured (otherwise the API is open).
    pub fn is_empty(&self) -> bool {
        self.known.is_empty()
    }

    /// The principal `token` authenticates, if any. Compares against every entry so the
    /// time taken does not say which one matched.
    pub fn authenticate(&self, token: &str) -> Option<Principal> {
        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let mut found = None;
        for known in self.known.iter() {
            if bool::from(known.digest.ct_eq(&digest)) && found.is_none() {
                found = Some(known.principal.clone());
            }
        }
        found
    }
}

fn read_file(path: &Path, earlier: &[Known]) -> Result<Vec<Known>, PrincipalsError> {
    let read_error = |source| PrincipalsError::Read {
        path: path.to_path_buf(),
        source,
    };
    let mode = std::fs::metadata(path)
        .map_err(read_error)?
        .permissions()
        .mode()
        & 0o777;
    if mode & 0o077 != 0 {
        return Err(PrincipalsError::Exposed {
            path: path.to_path_buf(),
            mode,
        });
    }
    let text = std::fs::read_to_string(path).map_err(read_error)?;
    let entries: Vec<FileEntry> =
        yaml_serde::from_str(&text).map_err(|error| PrincipalsError::Parse {
            path: path.to_path_buf(),
            reason: error.to_string(),
        })?;
    let mut names: HashSet<String> = earlier
        .iter()
        .map(|k| k.principal.name.to_string())
        .collect();
    let mut digests: HashSet<[u8; 32]> = earlier.iter().map(|k| k.digest).collect();
    let mut known = Vec::with_capacity(entries.len());
    for (index, entry) in entries.into_iter().enumerate() {
        let bad = |reason: String| PrincipalsError::Entry {
            path: path.to_path_buf(),
            index,
            reason,
        };
        if entry.name.trim().is_empty() || entry.name.len() > 128 {
            return Err(bad("name must be 1 to 128 characters".into()));
        }
        let digest = hex::decode(entry.token_sha256.trim())
            .ok()
            .and_then(|bytes| <[u8; 32]>::try_from(bytes).ok())
            .ok_or_else(|| {
                bad("token_sha256 must be 64 hex digits (sha256sum of the token)".into())
            })?;
        if !names.insert(entry.name.clone()) {
            return Err(bad(format!("duplicate principal name {:?}", entry.name)));
        }
        if !digests.insert(digest) {
            return Err(bad(format!(
                "principal {:?} has the same token as another one",
                entry.name
            )));
        }
        known.push(Known {
            digest,
            principal: Principal {
                name: Arc::from(entry.name),
                role: entry.role,
            },
        });
    }
    Ok(known)
}

/// The Admin API's interceptor: authenticates the bearer token and records the principal.
#[derive(Clone, Debug)]
pub struct AdminAuth {
    principals: Principals,
}

impl AdminAuth {
    pub fn new(principals: Principals) -> Self {
        Self { principals }
    }

    fn principal(&self, metadata: &tonic::metadata::MetadataMap) -> Result<Principal, Status> {
        if self.principals.is_empty() {
            return Ok(Principal {
                name: Arc::from(ADMIN_PRINCIPAL),
                role: AdminRole::Admin,
            });
        }
        let token = metadata
            .get("authorization")
            .and_then(|value| value.to_str().ok())
            .and_then(crate::auth::bearer_token)
            .ok_or_else(|| Status::unauthenticated("missing bearer token for the admin API"))?;
        self.principals
            .authenticate(token)
            .ok_or_else(|| Status::unauthenticated("invalid bearer token for the admin API"))
    }
}

impl Interceptor for AdminAuth {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        let principal = self.principal(request.metadata())?;
        request.extensions_mut().insert(principal);
        Ok(request)
    }
}

/// The principal of `request`, if its role is at least `needed`.
pub fn require<T>(
    request: &Request<T>,
    needed: AdminRole,
    what: &str,
) -> Result<Principal, Status> {
    let principal = request
        .extensions()
        .get::<Principal>()
        .cloned()
        .ok_or_else(|| Status::unauthenticated("the admin API call was not authenticated"))?;
    if principal.role < needed {
        return Err(Status::permission_denied(format!(
            "principal {:?} has role {}; {what} needs role {needed} or higher",
            &*principal.name, principal.role
        )));
    }
    Ok(principal)
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use tonic::metadata::MetadataValue;

    use super::*;

    fn sha(token: &str) -> String {
        hex::encode(Sha256::digest(token.as_bytes()))
    }

    fn file(dir: &Path, text: &str, mode: u32) -> PathBuf {
        let path = dir.join("tokens.yaml");
        std::fs::write(&path, text).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        path
    }

    fn request(token: Option<&str>) -> Request<()> {
        let mut request = Request::new(());
        if let Some(token) = token {
            request.metadata_mut().insert(
                "authorization",
                MetadataValue::try_from(format!("Bearer {token}")).unwrap(),
            );
        }
        request
    }

    #[test]
    fn tokens_map_to_named_principals_and_roles_gate_calls() {
        let temp = tempfile::tempdir().unwrap();
        let text = format!(
            "- name: carol\n  role: operator\n  token_sha256: {}\n- name: vic\n  role: viewer\n  token_sha256: {}\n",
            sha("carol-token"),
            sha("vic-token").to_uppercase()
        );
        let path = file(temp.path(), &text, 0o600);
        let mut auth = AdminAuth::new(Principals::load(Some("root-token"), Some(&path)).unwrap());

        let admin = auth.call(request(Some("root-token"))).unwrap();
        let principal = require(&admin, AdminRole::Admin, "apply").unwrap();
        assert_eq!(
            (&*principal.name, principal.role),
            ("admin", AdminRole::Admin)
        );

        let carol = auth.call(request(Some("carol-token"))).unwrap();
        assert_eq!(
            &*require(&carol, AdminRole::Operator, "apply").unwrap().name,
            "carol"
        );
        let refused = require(&carol, AdminRole::Admin, "x").unwrap_err();
        assert_eq!(refused.code(), tonic::Code::PermissionDenied);

        let vic = auth.call(request(Some("vic-token"))).unwrap();
        assert!(require(&vic, AdminRole::Viewer, "list approvals").is_ok());
        let refused = require(&vic, AdminRole::Operator, "deciding an approval").unwrap_err();
        assert_eq!(refused.code(), tonic::Code::PermissionDenied);
        assert!(
            refused.message().contains("\"vic\" has role viewer"),
            "{refused:?}"
        );

        for wrong in [Some("carol-token2"), None] {
            let status = auth.call(request(wrong)).unwrap_err();
            assert_eq!(status.code(), tonic::Code::Unauthenticated);
        }
    }

    #[test]
    fn an_open_api_is_the_admin_principal() {
        let mut auth = AdminAuth::new(Principals::load(None, None).unwrap());
        let open = auth.call(request(None)).unwrap();
        assert_eq!(
            require(&open, AdminRole::Admin, "x").unwrap().role,
            AdminRole::Admin
        );
    }

    #[test]
    fn bad_files_are_refused() {
        let temp = tempfile::tempdir().unwrap();
        let good = format!("- name: a\n  role: admin\n  token_sha256: {}\n", sha("t"));
        let exposed = file(temp.path(), &good, 0o640);
        assert!(matches!(
            Principals::load(None, Some(&exposed)),
            Err(PrincipalsError::Exposed { mode: 0o640, .. })
        ));
        for (text, needle) in [
            (
                "- name: a\n  role: root\n  token_sha256: 00\n",
                "not a YAML list",
            ),
            (
                "- name: a\n  role: admin\n  token_sha256: abc\n",
                "64 hex digits",
            ),
            (
                &format!(
                    "- name: admin\n  role: viewer\n  token_sha256: {}\n",
                    sha("x")
                ),
                "duplicate principal name",
            ),
            (
                &format!(
                    "- name: b\n  role: viewer\n  token_sha256: {}\n",
                    sha("root")
                ),
                "same token",
            ),
        ] {
            let path = file(temp.path(), text, 0o600);
            let error = Principals::load(Some("root"), Some(&path)).unwrap_err();
            assert!(error.to_string().contains(needle), "{error}");
        }
        let missing = Principals::load(None, Some(&temp.path().join("nope"))).unwrap_err();
        assert!(matches!(missing, PrincipalsError::Read { .. }));
    }
}
