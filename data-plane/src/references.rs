//! What `${file:}` and `${env:}` references may read on this data plane.
//!
//! Whoever may apply a configuration chooses the references in it; the data plane resolves
//! them with its own file system and environment, which hold more than that person should
//! see (its token, `/proc`, other services' keys). So the operator of the data plane lists
//! what may be read, and everything else is refused:
//! - `${file:PATH}` only under a `--secret-dir` (none by default: `${file:}` is refused),
//!   checked on the canonical path (symlinks resolved) and again on the file actually
//!   opened; only regular files (a FIFO would block the reader, a device like `/dev/zero`
//!   would never end), at most `--secret-max-bytes`, UTF-8 text;
//! - `${env:NAME}` only for names starting with a `--secret-env-prefix` (default
//!   `CONDUIT_SECRET_`), and never the data plane's own credentials;
//! - the whole resolution of a snapshot runs on its own thread and is abandoned after
//!   `--secret-read-timeout` (a file on a hung network file system), with at most
//!   [`MAX_RUNNING`] such threads alive, so nothing a configuration names can hold up the
//!   config stream or pile up threads.
//!
//! Errors name the reference (and the rule it broke), never the value; errors about the
//! resolved document go through [`conduit_config::Provenance`].

use std::fs::File;
use std::io::{self, Read as _};
use std::os::fd::AsRawFd as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError, mpsc};
use std::time::Duration;

use conduit_config::{ConfigErrors, Document, Provenance, ReferenceResolver};
use rustix::fs::{Mode, OFlags};

/// Default `--secret-env-prefix`.
pub const DEFAULT_ENV_PREFIX: &str = "CONDUIT_SECRET_";
/// Default `--secret-max-bytes`: far more than any key, token or key set.
pub const DEFAULT_MAX_BYTES: u64 = 1024 * 1024;
/// Default `--secret-read-timeout`.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);
/// Resolutions still running (past their timeout) beyond which no new one starts.
pub const MAX_RUNNING: usize = 4;
/// Variables that are the data plane's own credentials: never readable, whatever the
/// prefixes (a configuration could otherwise send the fleet token to any upstream).
const OWN_VARIABLES: &[&str] = &["CONDUIT_DP_TOKEN"];

/// A `--secret-dir` that cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("--secret-dir {path}: {reason}")]
pub struct PolicyError {
    path: String,
    reason: String,
}

/// The operator's allow-list, and the resolver that applies it. Cheap to clone.
#[derive(Debug, Clone)]
pub struct ReferencePolicy {
    /// Canonical directories `${file:}` may read under.
    dirs: Arc<[PathBuf]>,
    /// Prefixes of the variable names `${env:}` may read; an empty prefix allows any.
    env_prefixes: Arc<[String]>,
    max_bytes: u64,
    timeout: Duration,
    /// Resolution threads alive, shared by every clone.
    running: Arc<AtomicUsize>,
    /// The file being read right now, to name it when the timeout strikes.
    reading: Arc<Mutex<Option<String>>>,
}

impl Default for ReferencePolicy {
    /// No directory, the default prefix and limits.
    fn default() -> Self {
        ReferencePolicy {
            dirs: Arc::from([]),
            env_prefixes: Arc::from([DEFAULT_ENV_PREFIX.to_owned()]),
            max_bytes: DEFAULT_MAX_BYTES,
            timeout: DEFAULT_TIMEOUT,
            running: Arc::default(),
            reading: Arc::default(),
        }
    }
}

impl ReferencePolicy {
    /// A policy from the flags. Each directory must exist; it is canonicalized now, so a
    /// symlink to it works and later checks compare real paths. An empty `env_prefixes`
    /// means the default prefix.
    pub fn new(
        dirs: &[PathBuf],
        env_prefixes: Vec<String>,
        max_bytes: u64,
        timeout: Duration,
    ) -> Result<ReferencePolicy, PolicyError> {
        let mut canonical = Vec::with_capacity(dirs.len());
        for dir in dirs {
            let error = |reason: String| PolicyError {
                path: dir.display().to_string(),
                reason,
            };
            let real = std::fs::canonicalize(dir).map_err(|e| error(e.to_string()))?;
            if !real.is_dir() {
                return Err(error("not a directory".into()));
            }
            canonical.push(real);
        }
        let env_prefixes = if env_prefixes.is_empty() {
            vec![DEFAULT_ENV_PREFIX.to_owned()]
        } else {
            env_prefixes
        };
        Ok(ReferencePolicy {
            dirs: canonical.into(),
            env_prefixes: env_prefixes.into(),
            max_bytes,
            timeout,
            ..ReferencePolicy::default()
        })
    }

    /// Resolve `document`'s references within the time limit (see the module doc).
    pub fn resolve(&self, document: &Document) -> Result<(Document, Provenance), ConfigErrors> {
        let running = self.running.load(Ordering::Acquire);
        if running >= MAX_RUNNING {
            return Err(ConfigErrors::single(
                "",
                format!(
                    "{running} earlier resolutions of references are still reading past \
                     --secret-read-timeout; no new one starts until they end"
                ),
            ));
        }
        let (sender, receiver) = mpsc::sync_channel(1);
        let policy = self.clone();
        let document = document.clone();
        self.running.fetch_add(1, Ordering::AcqRel);
        let spawned = std::thread::Builder::new()
            .name("conduit-references".into())
            .spawn(move || {
                let result = document.resolve_references_traced(&policy);
                policy.running.fetch_sub(1, Ordering::AcqRel);
                // The receiver is gone when the timeout struck first.
                let _ = sender.send(result);
            });
        if let Err(error) = spawned {
            self.running.fetch_sub(1, Ordering::AcqRel);
            return Err(ConfigErrors::single(
                "",
                format!("cannot start resolving references: {error}"),
            ));
        }
        match receiver.recv_timeout(self.timeout) {
            Ok(result) => result,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                let reading = self
                    .reading
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .clone();
                let what = reading.map_or_else(
                    || "resolving the references".to_owned(),
                    |path| format!("reading `${{file:{path}}}`"),
                );
                Err(ConfigErrors::single(
                    "",
                    format!(
                        "{what} took longer than {} (--secret-read-timeout)",
                        humantime::format_duration(self.timeout)
                    ),
                ))
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => Err(ConfigErrors::single(
                "",
                "resolving the references failed unexpectedly",
            )),
        }
    }

    fn allowed(&self, path: &Path) -> bool {
        self.dirs.iter().any(|dir| path.starts_with(dir))
    }

    fn dirs_list(&self) -> String {
        let dirs: Vec<String> = self.dirs.iter().map(|d| d.display().to_string()).collect();
        dirs.join(", ")
    }

    /// The content of `path`, if the policy allows it.
    fn read(&self, path: &str) -> io::Result<String> {
        let refused = |reason: String| io::Error::new(io::ErrorKind::PermissionDenied, reason);
        if self.dirs.is_empty() {
            return Err(refused(
                "this data plane has no --secret-dir, so ${file:} references are refused".into(),
            ));
        }
        let canonical = std::fs::canonicalize(path)?;
        let outside = || {
            refused(format!(
                "outside every --secret-dir ({}) once symlinks are resolved",
                self.dirs_list()
            ))
        };
        if !self.allowed(&canonical) {
            return Err(outside());
        }
        // Non-blocking: opening a FIFO for reading would otherwise wait for a writer. No
        // symlink as the last component: it was resolved above, a new one is a swap.
        let fd = rustix::fs::open(
            canonical.as_path(),
            OFlags::RDONLY | OFlags::NONBLOCK | OFlags::NOFOLLOW | OFlags::NOCTTY | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        let file = File::from(fd);
        let metadata = file.metadata()?;
        if !metadata.is_file() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "not a regular file (FIFOs, devices and directories are refused)",
            ));
        }
        // What was opened, not what was checked: a directory renamed in between shows here.
        let opened = std::fs::read_link(format!("/proc/self/fd/{}", file.as_raw_fd()))
            .map_err(|e| io::Error::new(e.kind(), format!("cannot check the opened file: {e}")))?;
        if !self.allowed(&opened) {
            return Err(outside());
        }
        let too_large = || {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("larger than --secret-max-bytes ({} bytes)", self.max_bytes),
            )
        };
        if metadata.len() > self.max_bytes {
            return Err(too_large());
        }
        *self.reading.lock().unwrap_or_else(PoisonError::into_inner) = Some(path.to_owned());
        // The size can change after the check (and is 0 for some kernel files): the read
        // itself stops one byte past the limit.
        let mut content = Vec::new();
        let read = file.take(self.max_bytes + 1).read_to_end(&mut content);
        *self.reading.lock().unwrap_or_else(PoisonError::into_inner) = None;
        read?;
        if content.len() as u64 > self.max_bytes {
            return Err(too_large());
        }
        String::from_utf8(content)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "not UTF-8 text"))
    }
}

impl ReferenceResolver for ReferencePolicy {
    fn env(&self, name: &str) -> Option<String> {
        std::env::var(name).ok()
    }

    fn file(&self, path: &str) -> io::Result<String> {
        self.read(path)
    }

    fn refuse_env(&self, name: &str) -> Option<String> {
        if OWN_VARIABLES.contains(&name) {
            return Some("it is the data plane's own credential".into());
        }
        if self
            .env_prefixes
            .iter()
            .any(|prefix| name.starts_with(prefix))
        {
            return None;
        }
        let prefixes: Vec<&str> = self.env_prefixes.iter().map(String::as_str).collect();
        Some(format!(
            "only variables starting with {} may be read (--secret-env-prefix)",
            prefixes.join(" or ")
        ))
    }
}

#[cfg(test)]
#[path = "references_tests.rs"]
mod tests;
