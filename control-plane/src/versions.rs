//! Config versions as the rest of the control plane sees them: apply and rollback (validate
//! with `conduit-config`, hash, store in one transaction, then publish) and the current
//! snapshot every config stream follows.
//!
//! The current snapshot lives in a `tokio::sync::watch`, not a queue: a data plane that is
//! slow to take one version simply sees the newest when it is ready again. The session
//! token keys ride along: a key rotation publishes the current version again with the new
//! keys, which config streams forward without a new version.

use std::sync::{Arc, Mutex};

use conduit_config::{ConfigErrors, Document};
use conduit_proto::v1 as pb;
use tokio::sync::watch;
use tokio::time::Instant;

use crate::auth::{approval_key_signature, snapshot_signature};
use crate::clock::now_rfc3339;
use crate::metrics::Metrics;
use crate::principals::AdminRole;
use crate::session_keys::SessionKeySet;
use crate::store::{ApplyOutcome, NewVersion, Store, StoreError, VersionRow};

/// One published version, shared by every config stream.
#[derive(Debug)]
pub struct Snapshot {
    pub version: u64,
    pub hash: String,
    pub signature: String,
    pub config_json: String,
    /// RFC 3339.
    pub created_at: String,
    /// When this process published it; the start of the propagation measurement.
    pub published_at: Instant,
    /// The session token keys, signed for this version; `None` before keys exist.
    pub session_keys: Option<pb::SessionKeySet>,
    /// Id of the newest of those keys, empty without keys.
    pub session_keys_id: String,
    /// The public key of grant sets, signed for this version; `None` before it is set.
    pub approval_key: Option<pb::ApprovalKey>,
}

/// Receiver of the current snapshot (`None` until the first version exists).
pub type SnapshotReceiver = watch::Receiver<Option<Arc<Snapshot>>>;

/// What Apply or Rollback did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applied {
    /// The version now current; for a dry run, the version it would have become.
    pub version: u64,
    pub hash: String,
    pub changed: bool,
    pub dry_run: bool,
}

/// A request to store a document.
#[derive(Debug, Clone, Default)]
pub struct ApplyInput {
    pub document: String,
    pub author: String,
    pub message: String,
    pub dry_run: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum VersionsError {
    #[error("{0}")]
    Invalid(ConfigErrors),
    #[error("version {0} does not exist")]
    NotFound(u64),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("database task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
}

/// Apply, rollback and reads of config versions, and the publisher of snapshots.
pub struct Versions {
    store: Arc<Store>,
    dp_token: Option<String>,
    snapshots: watch::Sender<Option<Arc<Snapshot>>>,
    metrics: Arc<Metrics>,
    /// Only read or written inside a `snapshots` update, so a snapshot never pairs a
    /// version with keys older than the ones it replaced.
    session_keys: Mutex<Option<Arc<SessionKeySet>>>,
    /// Ed25519 public key verifying grant sets, shipped in every snapshot.
    approval_key: std::sync::OnceLock<Vec<u8>>,
}

impl Versions {
    /// Load the current version from the store and publish it.
    pub fn load(
        store: Arc<Store>,
        dp_token: Option<String>,
        metrics: Arc<Metrics>,
    ) -> Result<Self, StoreError> {
        let current = store.current_version()?;
        let versions = Self {
            store,
            dp_token,
            snapshots: watch::Sender::new(None),
            metrics,
            session_keys: Mutex::new(None),
            approval_key: std::sync::OnceLock::new(),
        };
        if let Some(row) = current {
            versions.publish(row);
        }
        Ok(versions)
    }

    /// Follow the current snapshot.
    pub fn subscribe(&self) -> SnapshotReceiver {
        self.snapshots.subscribe()
    }

    /// The control plane's metrics.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// The current version's snapshot, if any version exists.
    pub fn current(&self) -> Option<Arc<Snapshot>> {
        self.snapshots.borrow().clone()
    }

    /// The session token keys in use, once [`set_session_keys`](Self::set_session_keys)
    /// has run.
    pub fn session_keys(&self) -> Option<Arc<SessionKeySet>> {
        self.keys_guard().clone()
    }

    /// Use `set` from now on and send the current version again with it.
    pub fn set_session_keys(&self, set: SessionKeySet) {
        let set = Arc::new(set);
        self.snapshots.send_if_modified(|current| {
            *self.keys_guard() = Some(Arc::clone(&set));
            let Some(snapshot) = current else {
                return false;
            };
            if snapshot.session_keys_id == set.newest_id()
                && snapshot.session_keys.as_ref().map(|k| k.keys.len()) == Some(set.keys.len())
            {
                return false;
            }
            *current = Some(Arc::new(Snapshot {
                version: snapshot.version,
                hash: snapshot.hash.clone(),
                signature: snapshot.signature.clone(),
                config_json: snapshot.config_json.clone(),
                created_at: snapshot.created_at.clone(),
                published_at: Instant::now(),
                session_keys: Some(set.to_proto(snapshot.version, self.dp_token.as_deref())),
                session_keys_id: set.newest_id().to_owned(),
                approval_key: snapshot.approval_key.clone(),
            }));
            true
        });
    }

    /// Ship `public_key` (which verifies grant sets) with every snapshot from now on,
    /// starting with the current one. Only the first call has an effect.
    pub fn set_approval_key(&self, public_key: Vec<u8>) {
        if self.approval_key.set(public_key).is_err() {
            return;
        }
        self.snapshots.send_if_modified(|current| {
            let Some(snapshot) = current else {
                return false;
            };
            *current = Some(Arc::new(Snapshot {
                version: snapshot.version,
                hash: snapshot.hash.clone(),
                signature: snapshot.signature.clone(),
                config_json: snapshot.config_json.clone(),
                created_at: snapshot.created_at.clone(),
                published_at: snapshot.published_at,
                session_keys: snapshot.session_keys.clone(),
                session_keys_id: snapshot.session_keys_id.clone(),
                approval_key: self.approval_key_for(snapshot.version),
            }));
            true
        });
    }

    fn approval_key_for(&self, version: u64) -> Option<pb::ApprovalKey> {
        self.approval_key.get().map(|public_key| pb::ApprovalKey {
            signature: approval_key_signature(self.dp_token.as_deref(), version, public_key),
            public_key: public_key.clone(),
        })
    }

    fn keys_guard(&self) -> std::sync::MutexGuard<'_, Option<Arc<SessionKeySet>>> {
        // Only ever holds an `Arc` swap; a panic cannot leave it half-written.
        self.session_keys
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The current version number, 0 when none exists.
    pub fn current_version(&self) -> u64 {
        self.snapshots
            .borrow()
            .as_ref()
            .map_or(0, |snapshot| snapshot.version)
    }

    /// Validate `input.document` and store it as a new version unless it equals the current.
    /// Plain API keys are stored as `sha256:<hex>` (data planes accept both), so the literal
    /// key never reaches the database, the history or a principal reading the config.
    pub async fn apply(&self, input: ApplyInput) -> Result<Applied, VersionsError> {
        let document = parse_off_thread(input.document).await?;
        let config_json = document.canonical_json();
        let new = NewVersion {
            hash: conduit_signing::snapshot::content_hash(&config_json),
            config_json,
            author: author_or_unknown(input.author),
            message: input.message,
            created_at: now_rfc3339(),
            rolled_back_from: None,
        };
        if input.dry_run {
            return Ok(self.dry_run(&new.hash));
        }
        self.store(new).await
    }

    /// Store version `to`'s document as a new version (unless it is already current).
    pub async fn rollback(
        &self,
        to: u64,
        author: String,
        message: String,
    ) -> Result<Applied, VersionsError> {
        let old = self.get(to).await?;
        // Validate again: the model may have become stricter since `to` was stored, and an
        // invalid document must never become current.
        let document = parse_off_thread(old.config_json).await?;
        let message = if message.is_empty() {
            format!("rollback to version {to}")
        } else {
            message
        };
        let config_json = document.canonical_json();
        self.store(NewVersion {
            hash: conduit_signing::snapshot::content_hash(&config_json),
            config_json,
            author: author_or_unknown(author),
            message,
            created_at: now_rfc3339(),
            rolled_back_from: Some(to),
        })
        .await
    }

    /// One version with its document; 0 means the current one.
    pub async fn get(&self, version: u64) -> Result<VersionRow, VersionsError> {
        let store = self.store.clone();
        let row = tokio::task::spawn_blocking(move || {
            if version == 0 {
                store.current_version()
            } else {
                store.get_version(version)
            }
        })
        .await??;
        row.ok_or(VersionsError::NotFound(version))
    }

    /// [`get`](Self::get) for a principal with `role`: below `admin`, every secret of the
    /// document is masked as on a data plane's `/config_dump` (API keys, even hashed ones,
    /// the JWT secret, sensitive headers, `env` values, URL credentials, webhook paths).
    /// A stored document that no longer validates is not shown to them at all, since it
    /// could not be masked with certainty.
    pub async fn get_as(&self, version: u64, role: AdminRole) -> Result<VersionRow, VersionsError> {
        let mut row = self.get(version).await?;
        if role >= AdminRole::Admin {
            return Ok(row);
        }
        let text = std::mem::take(&mut row.config_json);
        let number = row.version;
        row.config_json = tokio::task::spawn_blocking(move || {
            let document = Document::from_text(&text).map_err(|_| {
                VersionsError::Invalid(ConfigErrors::single(
                    "",
                    format!(
                        "stored version {} no longer validates, so its secrets cannot be masked \
                         with certainty; only an admin may read it",
                        number
                    ),
                ))
            })?;
            Ok::<_, VersionsError>(conduit_config::mask_secrets(&document).to_string())
        })
        .await??;
        Ok(row)
    }

    /// Versions newest first, without documents; `limit` 0 means all.
    pub async fn list(&self, limit: u32) -> Result<Vec<VersionRow>, VersionsError> {
        let store = self.store.clone();
        Ok(tokio::task::spawn_blocking(move || store.list_versions(limit)).await??)
    }

    fn dry_run(&self, hash: &str) -> Applied {
        let current = self.current();
        let unchanged = current.as_ref().is_some_and(|current| current.hash == hash);
        let current_version = current.map_or(0, |current| current.version);
        Applied {
            version: if unchanged {
                current_version
            } else {
                current_version + 1
            },
            hash: hash.to_owned(),
            changed: !unchanged,
            dry_run: true,
        }
    }

    async fn store(&self, new: NewVersion) -> Result<Applied, VersionsError> {
        let store = self.store.clone();
        let outcome = tokio::task::spawn_blocking(move || store.insert_version(new)).await??;
        Ok(match outcome {
            ApplyOutcome::Unchanged(row) => Applied {
                version: row.version,
                hash: row.hash,
                changed: false,
                dry_run: false,
            },
            ApplyOutcome::Created(row) => {
                tracing::info!(
                    version = row.version,
                    hash = %row.hash,
                    author = %row.author,
                    rolled_back_from = row.rolled_back_from,
                    "stored new config version"
                );
                self.metrics.versions_created.inc();
                let applied = Applied {
                    version: row.version,
                    hash: row.hash.clone(),
                    changed: true,
                    dry_run: false,
                };
                self.publish(row);
                applied
            }
        })
    }

    /// Make `row` the current snapshot unless a newer one is already published (two
    /// concurrent applies may finish their transactions and their publishes in either order).
    fn publish(&self, row: VersionRow) {
        let version = row.version;
        let published = self.snapshots.send_if_modified(|current| {
            if current
                .as_ref()
                .is_some_and(|current| current.version >= version)
            {
                return false;
            }
            let keys = self.keys_guard().clone();
            *current = Some(Arc::new(Snapshot {
                signature: snapshot_signature(self.dp_token.as_deref(), row.version, &row.hash),
                version: row.version,
                hash: row.hash,
                config_json: row.config_json,
                created_at: row.created_at,
                published_at: Instant::now(),
                session_keys: keys
                    .as_ref()
                    .map(|set| set.to_proto(version, self.dp_token.as_deref())),
                session_keys_id: keys
                    .map(|set| set.newest_id().to_owned())
                    .unwrap_or_default(),
                approval_key: self.approval_key_for(version),
            }));
            true
        });
        if published {
            self.metrics
                .config_version
                .set(i64::try_from(version).unwrap_or(i64::MAX));
        }
    }
}

/// Parse and validate `text` on a blocking thread (parsing is CPU work proportional to a
/// document of up to the gRPC message limit; it must not hold an async worker), with plain
/// API keys replaced by their hashes.
async fn parse_off_thread(text: String) -> Result<Document, VersionsError> {
    tokio::task::spawn_blocking(move || {
        let mut document = Document::from_text(&text).map_err(VersionsError::Invalid)?;
        conduit_config::hash_plain_api_keys(&mut document);
        Ok(document)
    })
    .await?
}

fn author_or_unknown(author: String) -> String {
    if author.trim().is_empty() {
        "unknown".to_owned()
    } else {
        author
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &str = "servers:\n  - id: a\n    url: http://127.0.0.1:9/mcp\n";

    fn versions(dir: &std::path::Path, dp_token: Option<&str>) -> Versions {
        let store = Arc::new(Store::open(dir).unwrap());
        Versions::load(store, dp_token.map(str::to_owned), Arc::new(Metrics::new())).unwrap()
    }

    fn input(document: &str) -> ApplyInput {
        ApplyInput {
            document: document.to_owned(),
            ..ApplyInput::default()
        }
    }

    #[tokio::test]
    async fn apply_validates_stores_and_publishes() {
        let temp = tempfile::tempdir().unwrap();
        let versions = versions(temp.path(), Some("dp"));
        let mut receiver = versions.subscribe();

        let error = versions
            .apply(input("servers: 3\nbogus: 1\n"))
            .await
            .unwrap_err();
        assert!(matches!(error, VersionsError::Invalid(ref errors) if !errors.0.is_empty()));
        assert!(!receiver.has_changed().unwrap(), "nothing published");
        assert!(versions.list(0).await.unwrap().is_empty(), "nothing stored");

        let dry = versions
            .apply(ApplyInput {
                dry_run: true,
                ..input(DOC)
            })
            .await
            .unwrap();
        assert_eq!((dry.version, dry.changed, dry.dry_run), (1, true, true));
        assert_eq!(versions.current_version(), 0);

        let applied = versions.apply(input(DOC)).await.unwrap();
        assert_eq!((applied.version, applied.changed), (1, true));
        assert!(receiver.has_changed().unwrap());
        let snapshot = receiver.borrow_and_update().clone().unwrap();
        assert_eq!(snapshot.hash, applied.hash);
        assert_eq!(
            snapshot.signature,
            snapshot_signature(Some("dp"), 1, &applied.hash)
        );
        assert_eq!(versions.get(1).await.unwrap().author, "unknown");

        let same = versions.apply(input(DOC)).await.unwrap();
        assert_eq!((same.version, same.changed), (1, false));
        assert!(
            !receiver.has_changed().unwrap(),
            "an unchanged apply publishes nothing"
        );
    }

    #[tokio::test]
    async fn publishing_never_goes_back_to_an_older_version() {
        let temp = tempfile::tempdir().unwrap();
        let versions = versions(temp.path(), None);
        let row = |version: u64| VersionRow {
            version,
            hash: format!("h{version}"),
            author: "a".into(),
            message: String::new(),
            created_at: now_rfc3339(),
            config_json: "{}".into(),
            rolled_back_from: None,
        };
        versions.publish(row(2));
        versions.publish(row(1));
        assert_eq!(versions.current_version(), 2);
        assert_eq!(versions.current().unwrap().signature, "");
    }

    #[tokio::test]
    async fn new_session_keys_republish_the_current_version() {
        let temp = tempfile::tempdir().unwrap();
        let versions = versions(temp.path(), Some("dp"));
        let store = Store::open(&temp.path().join("keys")).unwrap();
        let policy = crate::session_keys::KeyPolicy::default();
        let (first, _) = crate::session_keys::refresh(&store, &policy, 1_000).unwrap();
        // Before any version: kept for the first one, nothing published.
        versions.set_session_keys(first.clone());
        assert!(versions.current().is_none());
        versions.apply(input(DOC)).await.unwrap();
        let v1 = versions.current().unwrap();
        assert_eq!(v1.session_keys_id, first.newest_id());
        let keys = v1.session_keys.as_ref().unwrap();
        assert_eq!(keys.signature, first.to_proto(1, Some("dp")).signature);

        let mut receiver = versions.subscribe();
        receiver.borrow_and_update();
        // The same keys again: nothing to send.
        versions.set_session_keys(first.clone());
        assert!(!receiver.has_changed().unwrap());
        let day = policy.rotation.as_secs() as i64;
        let (second, changed) = crate::session_keys::refresh(&store, &policy, 1_000 + day).unwrap();
        assert!(changed);
        versions.set_session_keys(second.clone());
        assert!(receiver.has_changed().unwrap());
        let again = receiver.borrow_and_update().clone().unwrap();
        assert_eq!((again.version, again.hash.as_str()), (1, v1.hash.as_str()));
        assert_eq!(again.session_keys_id, second.newest_id());
        assert_eq!(again.session_keys.as_ref().unwrap().keys.len(), 2);
        assert_eq!(
            versions.session_keys().unwrap().newest_id(),
            second.newest_id()
        );
    }

    #[tokio::test]
    async fn reload_publishes_the_stored_current_version() {
        let temp = tempfile::tempdir().unwrap();
        let hash = versions(temp.path(), None)
            .apply(input(DOC))
            .await
            .unwrap()
            .hash;
        let reloaded = versions(temp.path(), None);
        let current = reloaded.current().unwrap();
        assert_eq!((current.version, current.hash.as_str()), (1, hash.as_str()));
        let error = reloaded
            .rollback(7, String::new(), String::new())
            .await
            .unwrap_err();
        assert!(matches!(error, VersionsError::NotFound(7)));
    }
}
