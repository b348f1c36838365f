//! `--state-dir`: the last snapshot applied from the control plane, kept on local disk so a
//! restarted data plane can serve while the control plane is unreachable.
//!
//! The snapshot is stored exactly as received (references unresolved, so resolved secrets
//! never reach the disk; the session token keys it carries do, so that a restarted data
//! plane continues its clients' sessions) in `snapshot.json`, mode 0600, replaced atomically: write a temp
//! file, fsync it, rename it over the old one, fsync the directory.
//!
//! [`StateWriter`] does the writing in the background, newest snapshot first, so neither
//! the ACK nor the next snapshot waits on the disk (a whole fleet fsyncing at once is slow).

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use std::sync::Arc;

use tokio::sync::watch;

use crate::snapshot::Snapshot;

const FILE_NAME: &str = "snapshot.json";

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("state directory {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{path} is not a valid snapshot file: {source}")]
    Corrupt {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
}

/// The state directory of one data plane.
#[derive(Debug, Clone)]
pub struct StateDir {
    dir: PathBuf,
}

impl StateDir {
    /// Use `dir`, creating it (mode 0700) when missing.
    pub fn open(dir: impl Into<PathBuf>) -> Result<StateDir, StateError> {
        let dir = dir.into();
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)
            .map_err(|source| StateError::Io {
                path: dir.clone(),
                source,
            })?;
        Ok(StateDir { dir })
    }

    pub fn snapshot_path(&self) -> PathBuf {
        self.dir.join(FILE_NAME)
    }

    /// The persisted snapshot, if one was saved.
    pub fn load(&self) -> Result<Option<Snapshot>, StateError> {
        let path = self.snapshot_path();
        let bytes = match fs::read(&path) {
            Ok(bytes) => bytes,
            Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(StateError::Io { path, source }),
        };
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|source| StateError::Corrupt { path, source })
    }

    /// Replace the persisted snapshot; readers see the old file or the new one, never a mix.
    pub fn save(&self, snapshot: &Snapshot) -> Result<(), StateError> {
        let io_error = |path: &Path| {
            let path = path.to_path_buf();
            move |source| StateError::Io { path, source }
        };
        let bytes = serde_json::to_vec_pretty(snapshot).expect("snapshot serializes");
        let temp = self.dir.join(format!(
            ".{FILE_NAME}.{}.{:016x}.tmp",
            std::process::id(),
            rand::random::<u64>()
        ));
        let written = write_synced(&temp, &bytes).map_err(io_error(&temp));
        if written.is_err() {
            let _ = fs::remove_file(&temp);
            return written;
        }
        let target = self.snapshot_path();
        if let Err(source) = fs::rename(&temp, &target) {
            let _ = fs::remove_file(&temp);
            return Err(StateError::Io {
                path: target,
                source,
            });
        }
        // The rename is durable only once the directory entry is.
        File::open(&self.dir)
            .and_then(|dir| dir.sync_all())
            .map_err(io_error(&self.dir))
    }
}

/// Persists applied snapshots off the config stream's path. Only the newest pending one
/// is written: a snapshot superseded before its turn is skipped, and an older one never
/// overwrites a newer one because a single task writes them in order. A snapshot applied
/// moments before the process stops may not reach the disk; the control plane sends it
/// again on the next connection.
#[derive(Debug, Clone)]
pub struct StateWriter {
    latest: Arc<watch::Sender<Option<Snapshot>>>,
}

impl StateWriter {
    /// Start the writer task for `state` (needs a Tokio runtime).
    pub fn spawn(state: StateDir) -> StateWriter {
        let (latest, mut pending) = watch::channel(None::<Snapshot>);
        tokio::spawn(async move {
            while pending.changed().await.is_ok() {
                let Some(snapshot) = pending.borrow_and_update().clone() else {
                    continue;
                };
                let state = state.clone();
                let version = snapshot.version;
                match tokio::task::spawn_blocking(move || state.save(&snapshot)).await {
                    Ok(Ok(())) => tracing::debug!(version, "persisted the applied snapshot"),
                    Ok(Err(error)) => {
                        tracing::warn!(%error, "could not persist the applied snapshot");
                    }
                    Err(error) => tracing::error!(%error, "persisting the snapshot panicked"),
                }
            }
        });
        StateWriter {
            latest: Arc::new(latest),
        }
    }

    /// Queue `snapshot` for writing, replacing any that is still waiting.
    pub fn write(&self, snapshot: Snapshot) {
        self.latest.send_replace(Some(snapshot));
    }
}

fn write_synced(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn snapshot(version: u64) -> Snapshot {
        Snapshot {
            version,
            hash: "h".into(),
            signature: String::new(),
            created_at: "2026-01-01T00:00:00Z".into(),
            config_json: r#"{"servers":[{"id":"a","url":"${env:UPSTREAM}"}]}"#.into(),
            session_keys: None,
            approval_key: None,
        }
    }

    #[test]
    fn round_trips_with_private_permissions() {
        let temp = tempfile::tempdir().unwrap();
        let state = StateDir::open(temp.path().join("nested/state")).unwrap();
        assert_eq!(state.load().unwrap(), None);

        state.save(&snapshot(1)).unwrap();
        state.save(&snapshot(2)).unwrap();
        assert_eq!(state.load().unwrap(), Some(snapshot(2)));

        let mode = fs::metadata(state.snapshot_path())
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let dir_mode = fs::metadata(temp.path().join("nested/state"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(dir_mode & 0o777, 0o700);
        // No temp files are left behind.
        let entries: Vec<_> = fs::read_dir(temp.path().join("nested/state"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(entries, [FILE_NAME]);
    }

    #[tokio::test]
    async fn writer_ends_with_the_newest_snapshot() {
        let temp = tempfile::tempdir().unwrap();
        let state = StateDir::open(temp.path()).unwrap();
        let writer = StateWriter::spawn(state.clone());
        for version in 1..=20 {
            writer.write(snapshot(version));
        }
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
        loop {
            if let Ok(Some(saved)) = state.load()
                && saved.version == 20
            {
                break;
            }
            assert!(tokio::time::Instant::now() < deadline, "never wrote v20");
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        // Nothing older lands after the newest.
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        assert_eq!(state.load().unwrap().map(|s| s.version), Some(20));
    }

    #[test]
    fn reports_a_corrupt_file() {
        let temp = tempfile::tempdir().unwrap();
        let state = StateDir::open(temp.path()).unwrap();
        fs::write(state.snapshot_path(), b"{not json").unwrap();
        assert!(matches!(state.load(), Err(StateError::Corrupt { .. })));
    }
}
