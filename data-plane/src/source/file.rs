//! `--config FILE`: standalone mode, configuration from a watched local file.
//!
//! The parent directory is watched, not the file: editors that save by writing a new file
//! and renaming it over the old one, `mv new.yaml conduit.yaml`, and Kubernetes ConfigMap
//! volumes (which swap a `..data` symlink) all replace the directory entry, and a watch on
//! the old inode would never see the new content. Any change in the directory triggers a
//! re-read, and a content digest decides whether anything is applied. A periodic poll
//! backs up the watcher (network file systems, overflowed event queues).

use std::path::PathBuf;
use std::time::Duration;

use notify::{EventKind, RecommendedWatcher, RecursiveMode, Watcher};
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::apply::{Applier, Candidate};
use crate::runtime::ConfigSource;

/// Default interval of the safety-net poll.
pub const DEFAULT_POLL_INTERVAL: Duration = Duration::from_secs(5);
/// Editors and `kubectl` produce bursts of events for one change; wait for the burst to end.
const DEBOUNCE: Duration = Duration::from_millis(50);

#[derive(Debug, thiserror::Error)]
#[error("cannot read config file {path}: {source}")]
pub struct FileSourceError {
    path: PathBuf,
    #[source]
    source: std::io::Error,
}

/// The watched config file of a standalone data plane.
#[derive(Debug)]
pub struct FileSource {
    path: PathBuf,
    applier: Applier,
    poll_interval: Duration,
    /// Digest of the content last offered for apply, applied or not: the same content is
    /// never re-applied (or re-rejected) twice.
    last_digest: Option<[u8; 32]>,
    /// Version given to the next successful apply; file configs are numbered from 1.
    next_version: u64,
    /// Last read error, logged once rather than at every poll.
    last_read_error: Option<String>,
}

impl FileSource {
    /// Fails when the file cannot be read now: a typo in the path should stop start-up,
    /// not leave a data plane that is never ready.
    pub fn new(
        path: PathBuf,
        applier: Applier,
        poll_interval: Duration,
    ) -> Result<FileSource, FileSourceError> {
        if let Err(source) = std::fs::File::open(&path) {
            return Err(FileSourceError { path, source });
        }
        Ok(FileSource {
            path,
            applier,
            poll_interval,
            last_digest: None,
            next_version: 1,
            last_read_error: None,
        })
    }

    /// Apply the file now, then on every change until `shutdown`.
    pub async fn run(mut self, shutdown: CancellationToken) {
        let (changes, mut changed) = mpsc::unbounded_channel();
        // Kept alive for the whole loop; dropping it stops the watch.
        let _watcher = match self.watch(changes) {
            Ok(watcher) => Some(watcher),
            Err(error) => {
                tracing::warn!(
                    path = %self.path.display(),
                    %error,
                    poll_interval = %humantime::format_duration(self.poll_interval),
                    "cannot watch the config file's directory; relying on polling"
                );
                None
            }
        };
        self.check().await;

        let mut poll = tokio::time::interval(self.poll_interval);
        poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        poll.tick().await;
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                Some(()) = changed.recv() => {
                    tokio::time::sleep(DEBOUNCE).await;
                    while changed.try_recv().is_ok() {}
                    self.check().await;
                }
                _ = poll.tick() => self.check().await,
            }
        }
    }

    fn watch(&self, changes: mpsc::UnboundedSender<()>) -> notify::Result<RecommendedWatcher> {
        let directory = match self.path.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let mut watcher =
            notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
                // Our own reads show up as access events; reacting to them would loop.
                if let Ok(event) = &event
                    && matches!(event.kind, EventKind::Access(_))
                {
                    return;
                }
                let _ = changes.send(());
            })?;
        watcher.watch(&directory, RecursiveMode::NonRecursive)?;
        Ok(watcher)
    }

    /// Re-read the file and apply it if its content changed.
    async fn check(&mut self) {
        let text = match tokio::fs::read_to_string(&self.path).await {
            Ok(text) => {
                self.last_read_error = None;
                text
            }
            Err(error) => {
                let message = error.to_string();
                if self.last_read_error.as_ref() != Some(&message) {
                    tracing::warn!(
                        path = %self.path.display(),
                        error = %message,
                        "cannot read the config file; the current configuration keeps serving"
                    );
                    self.last_read_error = Some(message);
                }
                return;
            }
        };
        let digest: [u8; 32] = Sha256::digest(text.as_bytes()).into();
        if self.last_digest == Some(digest) {
            return;
        }
        self.last_digest = Some(digest);

        let candidate = Candidate {
            text,
            version: self.next_version,
            hash: None,
            source: ConfigSource::File,
        };
        let applier = self.applier.clone();
        // Resolving `${file:...}` references reads files; keep that off the async workers.
        let outcome = tokio::task::spawn_blocking(move || applier.apply(&candidate)).await;
        if matches!(outcome, Ok(Ok(_))) {
            self.next_version += 1;
        }
    }
}
