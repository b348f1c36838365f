//! TLS of the public listener (`gateway.tls`): the certificate files, the rustls server
//! configuration built from them, and picking them up again when they change.
//!
//! The files are read when a configuration is applied, so a snapshot whose certificate or
//! key cannot be used is rejected (NACKed) with the file named, and the last-known-good
//! runtime keeps serving. Afterwards [`reload_on_change`] re-reads them every few seconds
//! and, when their content changed and still makes a valid configuration, swaps the new
//! one in: connections accepted from then on use it, established ones keep theirs. Polling
//! the content (rather than watching the directory) sees every way certificates are
//! rotated: rewritten in place, renamed over, or a Kubernetes secret's symlink swap.
//!
//! Client certificates (`ca_path`) are required, not requested: a client without a
//! certificate signed by one of those CAs fails the handshake.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use conduit_config::{Tls, TlsVersion};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig, SupportedProtocolVersion};
use sha2::{Digest, Sha256};
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

/// How often the certificate files are checked for changes.
pub(crate) const RELOAD_INTERVAL: Duration = Duration::from_secs(2);

/// Why the TLS files cannot be used. Each names the file and the config field it came from.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("a file is required when TLS is enabled")]
    Missing { field: &'static str },
    #[error("cannot read {path}: {source}")]
    Read {
        field: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} holds no usable PEM {what}: {reason}")]
    Pem {
        field: &'static str,
        path: PathBuf,
        what: &'static str,
        reason: String,
    },
    #[error("{path} has a CA certificate rustls refuses: {reason}")]
    ClientCa { path: PathBuf, reason: String },
    #[error("the private key in {key} cannot serve the certificate in {cert}: {reason}")]
    KeyPair {
        cert: PathBuf,
        key: PathBuf,
        reason: String,
    },
}

impl TlsError {
    /// The config field (`gateway.tls.*`) the problem is reported at.
    pub fn field(&self) -> &'static str {
        match self {
            TlsError::Missing { field }
            | TlsError::Read { field, .. }
            | TlsError::Pem { field, .. } => field,
            TlsError::ClientCa { .. } => CA_FIELD,
            TlsError::KeyPair { .. } => KEY_FIELD,
        }
    }
}

const CERT_FIELD: &str = "gateway.tls.cert_path";
const KEY_FIELD: &str = "gateway.tls.key_path";
const CA_FIELD: &str = "gateway.tls.ca_path";

/// The files and settings of `gateway.tls`. Relative paths are relative to the data
/// plane's working directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
    /// CAs whose client certificates are required.
    pub client_ca: Option<PathBuf>,
    pub min_version: TlsVersion,
}

impl TlsFiles {
    /// The files of an enabled `gateway.tls`; `None` when TLS is off.
    pub fn from_config(config: &Tls) -> Result<Option<TlsFiles>, TlsError> {
        if !config.is_enabled() {
            return Ok(None);
        }
        let required = |value: &Option<String>, field| {
            value
                .as_deref()
                .map(PathBuf::from)
                .ok_or(TlsError::Missing { field })
        };
        Ok(Some(TlsFiles {
            cert: required(&config.cert_path, CERT_FIELD)?,
            key: required(&config.key_path, KEY_FIELD)?,
            client_ca: config.ca_path.as_deref().map(PathBuf::from),
            min_version: config.min_version.unwrap_or(TlsVersion::Tls12),
        }))
    }
}

/// The public listener's TLS: its files and the server configuration they made last.
#[derive(Debug)]
pub struct PublicTls {
    files: TlsFiles,
    current: ArcSwap<Loaded>,
}

#[derive(Debug)]
struct Loaded {
    config: Arc<ServerConfig>,
    fingerprint: Fingerprint,
}

/// SHA-256 over the content of every file, to notice changes.
type Fingerprint = [u8; 32];

/// What [`PublicTls::reload`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reload {
    Unchanged,
    Reloaded,
}

impl PublicTls {
    /// Read the files of an enabled `gateway.tls` and build the server configuration;
    /// `None` when TLS is off.
    pub fn load(config: &Tls) -> Result<Option<PublicTls>, TlsError> {
        let Some(files) = TlsFiles::from_config(config)? else {
            return Ok(None);
        };
        let contents = Contents::read(&files)?;
        let loaded = contents.build(&files)?;
        Ok(Some(PublicTls {
            files,
            current: ArcSwap::from_pointee(loaded),
        }))
    }

    pub fn files(&self) -> &TlsFiles {
        &self.files
    }

    /// An acceptor with the current server configuration, for one connection.
    pub fn acceptor(&self) -> TlsAcceptor {
        TlsAcceptor::from(Arc::clone(&self.current.load().config))
    }

    /// Re-read the files (blocking); when their content changed, build and swap in a new
    /// configuration. On error the current one stays.
    pub fn reload(&self) -> Result<Reload, TlsError> {
        let contents = Contents::read(&self.files)?;
        if contents.fingerprint() == self.current.load().fingerprint {
            return Ok(Reload::Unchanged);
        }
        self.current.store(Arc::new(contents.build(&self.files)?));
        Ok(Reload::Reloaded)
    }
}

/// Until `stop`, check the current runtime's certificate files every `interval` and reload
/// them when they change. A failed reload is logged once it persists for a second check,
/// so the moment between renaming a new certificate and its key into place is not noise.
pub(crate) async fn reload_on_change(
    current: impl Fn() -> Option<Arc<PublicTls>>,
    interval: Duration,
    stop: CancellationToken,
) {
    let mut failing: Option<String> = None;
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(interval) => {}
        }
        let Some(tls) = current() else {
            failing = None;
            continue;
        };
        let cert = tls.files().cert.clone();
        match tokio::task::spawn_blocking(move || tls.reload()).await {
            Ok(Ok(Reload::Unchanged)) => failing = None,
            Ok(Ok(Reload::Reloaded)) => {
                failing = None;
                tracing::info!(cert = %cert.display(), "reloaded the public listener's certificate");
            }
            Ok(Err(error)) => {
                let text = error.to_string();
                if failing.as_deref() == Some(text.as_str()) {
                    continue;
                }
                if failing.is_some() {
                    tracing::warn!(
                        error = %text,
                        "the changed TLS files cannot be used; new connections keep the previous certificate"
                    );
                }
                failing = Some(text);
            }
            Err(error) => tracing::error!(%error, "reloading the TLS files panicked"),
        }
    }
}

/// The bytes of the TLS files.
struct Contents {
    cert: Vec<u8>,
    key: Vec<u8>,
    client_ca: Option<Vec<u8>>,
}

impl Contents {
    fn read(files: &TlsFiles) -> Result<Contents, TlsError> {
        let read = |path: &Path, field| {
            std::fs::read(path).map_err(|source| TlsError::Read {
                field,
                path: path.to_owned(),
                source,
            })
        };
        Ok(Contents {
            cert: read(&files.cert, CERT_FIELD)?,
            key: read(&files.key, KEY_FIELD)?,
            client_ca: files
                .client_ca
                .as_deref()
                .map(|path| read(path, CA_FIELD))
                .transpose()?,
        })
    }

    fn fingerprint(&self) -> Fingerprint {
        let mut hash = Sha256::new();
        for part in [Some(&self.cert), Some(&self.key), self.client_ca.as_ref()] {
            // Lengths first, so moving bytes between files changes the fingerprint.
            let part = part.map_or(&[][..], Vec::as_slice);
            hash.update((part.len() as u64).to_be_bytes());
            hash.update(part);
        }
        hash.finalize().into()
    }

    fn build(&self, files: &TlsFiles) -> Result<Loaded, TlsError> {
        let pem_error = |field, path: &Path, what, reason: String| TlsError::Pem {
            field,
            path: path.to_owned(),
            what,
            reason,
        };
        let chain = CertificateDer::pem_slice_iter(&self.cert)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|error| {
                pem_error(CERT_FIELD, &files.cert, "certificate", error.to_string())
            })?;
        if chain.is_empty() {
            return Err(pem_error(
                CERT_FIELD,
                &files.cert,
                "certificate",
                "no CERTIFICATE section".into(),
            ));
        }
        let key = PrivateKeyDer::from_pem_slice(&self.key)
            .map_err(|error| pem_error(KEY_FIELD, &files.key, "private key", error.to_string()))?;

        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let versions: &[&SupportedProtocolVersion] = match files.min_version {
            TlsVersion::Tls12 => &[&rustls::version::TLS13, &rustls::version::TLS12],
            TlsVersion::Tls13 => &[&rustls::version::TLS13],
        };
        let builder = ServerConfig::builder_with_provider(Arc::clone(&provider))
            .with_protocol_versions(versions)
            .expect("the aws-lc-rs provider supports TLS 1.2 and 1.3");
        let builder = match (&files.client_ca, &self.client_ca) {
            (Some(path), Some(pem)) => {
                let verifier = client_verifier(path, pem, provider)?;
                builder.with_client_cert_verifier(verifier)
            }
            _ => builder.with_no_client_auth(),
        };
        let mut config =
            builder
                .with_single_cert(chain, key)
                .map_err(|error| TlsError::KeyPair {
                    cert: files.cert.clone(),
                    key: files.key.clone(),
                    reason: error.to_string(),
                })?;
        // Both protocols are served on one port; hyper tells them apart by the preface.
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(Loaded {
            config: Arc::new(config),
            fingerprint: self.fingerprint(),
        })
    }
}

/// A verifier that requires a client certificate chaining to a CA in `pem`.
fn client_verifier(
    path: &Path,
    pem: &[u8],
    provider: Arc<rustls::crypto::CryptoProvider>,
) -> Result<Arc<dyn rustls::server::danger::ClientCertVerifier>, TlsError> {
    let ca_error = |reason: String| TlsError::ClientCa {
        path: path.to_owned(),
        reason,
    };
    let certificates = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| TlsError::Pem {
            field: CA_FIELD,
            path: path.to_owned(),
            what: "CA certificate",
            reason: error.to_string(),
        })?;
    let mut roots = RootCertStore::empty();
    for certificate in certificates {
        roots
            .add(certificate)
            .map_err(|error| ca_error(error.to_string()))?;
    }
    if roots.is_empty() {
        return Err(TlsError::Pem {
            field: CA_FIELD,
            path: path.to_owned(),
            what: "CA certificate",
            reason: "no CERTIFICATE section".into(),
        });
    }
    WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
        .build()
        .map_err(|error| ca_error(error.to_string()))
}

#[cfg(test)]
mod tests {
    use rcgen::{CertificateParams, KeyPair};

    use super::*;

    /// A self-signed certificate and its key, as PEM.
    fn self_signed(name: &str) -> (String, String) {
        let key = KeyPair::generate().unwrap();
        let cert = CertificateParams::new(vec![name.to_owned()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        (cert.pem(), key.serialize_pem())
    }

    struct Dir {
        dir: tempfile::TempDir,
    }

    impl Dir {
        fn new() -> Dir {
            Dir {
                dir: tempfile::tempdir().unwrap(),
            }
        }

        fn write(&self, name: &str, text: &str) -> String {
            let path = self.dir.path().join(name);
            std::fs::write(&path, text).unwrap();
            path.display().to_string()
        }

        fn config(&self) -> Tls {
            let (cert, key) = self_signed("localhost");
            Tls {
                cert_path: Some(self.write("cert.pem", &cert)),
                key_path: Some(self.write("key.pem", &key)),
                ..Tls::default()
            }
        }
    }

    fn served(tls: &PublicTls) -> Arc<ServerConfig> {
        Arc::clone(&tls.current.load().config)
    }

    #[test]
    fn disabled_tls_loads_nothing() {
        let dir = Dir::new();
        let config = Tls {
            enabled: Some(false),
            ..dir.config()
        };
        assert!(PublicTls::load(&config).unwrap().is_none());
    }

    #[test]
    fn loads_a_certificate_and_offers_both_protocols() {
        let dir = Dir::new();
        let tls = PublicTls::load(&dir.config()).unwrap().expect("enabled");
        assert_eq!(
            served(&tls).alpn_protocols,
            [b"h2".to_vec(), b"http/1.1".to_vec()]
        );
        assert_eq!(tls.files().min_version, TlsVersion::Tls12);
        assert_eq!(tls.reload().unwrap(), Reload::Unchanged);
    }

    #[test]
    fn errors_name_the_file_and_the_field() {
        let dir = Dir::new();
        let good = dir.config();

        let missing = dir.dir.path().join("absent.pem").display().to_string();
        let error = PublicTls::load(&Tls {
            cert_path: Some(missing.clone()),
            ..good.clone()
        })
        .unwrap_err();
        assert_eq!(error.field(), CERT_FIELD);
        assert!(error.to_string().contains(&missing), "{error}");

        let not_pem = dir.write("garbage.pem", "not a certificate\n");
        let error = PublicTls::load(&Tls {
            key_path: Some(not_pem.clone()),
            ..good.clone()
        })
        .unwrap_err();
        assert_eq!(error.field(), KEY_FIELD);
        assert!(error.to_string().contains(&not_pem), "{error}");

        let (_, other_key) = self_signed("other");
        let other_key = dir.write("other-key.pem", &other_key);
        let error = PublicTls::load(&Tls {
            key_path: Some(other_key.clone()),
            ..good.clone()
        })
        .unwrap_err();
        assert!(matches!(error, TlsError::KeyPair { .. }), "{error}");
        assert!(error.to_string().contains(&other_key), "{error}");

        let error = PublicTls::load(&Tls {
            ca_path: Some(not_pem.clone()),
            ..good.clone()
        })
        .unwrap_err();
        assert_eq!(error.field(), CA_FIELD);
        assert!(error.to_string().contains(&not_pem), "{error}");

        let error = PublicTls::load(&Tls {
            key_path: None,
            ..good
        })
        .unwrap_err();
        assert_eq!(error.field(), KEY_FIELD);
    }

    #[test]
    fn reload_swaps_in_changed_files_and_keeps_the_last_good_ones() {
        let dir = Dir::new();
        let config = dir.config();
        let tls = PublicTls::load(&config).unwrap().expect("enabled");
        let first = served(&tls);

        // A certificate without its key yet: refused, the first one stays.
        let (cert, key) = self_signed("rotated");
        dir.write("cert.pem", &cert);
        assert!(matches!(tls.reload(), Err(TlsError::KeyPair { .. })));
        assert!(Arc::ptr_eq(&served(&tls), &first));

        dir.write("key.pem", &key);
        assert_eq!(tls.reload().unwrap(), Reload::Reloaded);
        let second = served(&tls);
        assert!(!Arc::ptr_eq(&second, &first));
        assert_eq!(tls.reload().unwrap(), Reload::Unchanged);
        assert!(Arc::ptr_eq(&served(&tls), &second));
    }

    #[test]
    fn client_ca_is_loaded() {
        let dir = Dir::new();
        let (ca, _) = self_signed("test CA");
        let config = Tls {
            ca_path: Some(dir.write("ca.pem", &ca)),
            min_version: Some(TlsVersion::Tls13),
            ..dir.config()
        };
        let tls = PublicTls::load(&config).unwrap().expect("enabled");
        assert_eq!(tls.files().min_version, TlsVersion::Tls13);
        assert!(tls.files().client_ca.is_some());
    }
}
