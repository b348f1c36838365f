//! TLS for the gRPC listener: loads the PEM certificate chain and private key given with
//! `--tls-cert` / `--tls-key` and turns them into tonic's rustls server configuration.
//!
//! The files are parsed here first so that a wrong path or a file without the expected PEM
//! blocks fails at start with a message naming the file, not at the first handshake.

use std::path::{Path, PathBuf};

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tonic::transport::{Identity, ServerTlsConfig};

/// Certificate and key files for the gRPC listener.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} holds no PEM certificate: {detail}")]
    NoCertificate { path: PathBuf, detail: String },
    #[error("{path} holds no PEM private key: {detail}")]
    NoKey { path: PathBuf, detail: String },
}

impl TlsFiles {
    /// Read and check both files and build the server TLS configuration.
    pub fn server_config(&self) -> Result<ServerTlsConfig, TlsError> {
        let cert_pem = read(&self.cert)?;
        let key_pem = read(&self.key)?;
        let certificates = CertificateDer::pem_slice_iter(&cert_pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|error| TlsError::NoCertificate {
                path: self.cert.clone(),
                detail: error.to_string(),
            })?;
        if certificates.is_empty() {
            return Err(TlsError::NoCertificate {
                path: self.cert.clone(),
                detail: "no CERTIFICATE block found".to_owned(),
            });
        }
        PrivateKeyDer::from_pem_slice(&key_pem).map_err(|error| TlsError::NoKey {
            path: self.key.clone(),
            detail: error.to_string(),
        })?;
        Ok(ServerTlsConfig::new().identity(Identity::from_pem(cert_pem, key_pem)))
    }
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        path: path.to_path_buf(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_which_file_is_wrong() {
        let temp = tempfile::tempdir().unwrap();
        let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
        let cert = temp.path().join("cert.pem");
        let key = temp.path().join("key.pem");
        std::fs::write(&cert, certified.cert.pem()).unwrap();
        std::fs::write(&key, certified.signing_key.serialize_pem()).unwrap();
        let files = TlsFiles {
            cert: cert.clone(),
            key: key.clone(),
        };
        assert!(files.server_config().is_ok());

        let swapped = TlsFiles {
            cert: key.clone(),
            key: cert.clone(),
        };
        let error = swapped.server_config().unwrap_err();
        assert!(matches!(error, TlsError::NoCertificate { ref path, .. } if *path == key));

        let missing = TlsFiles {
            cert: temp.path().join("nope.pem"),
            key,
        };
        assert!(
            missing
                .server_config()
                .unwrap_err()
                .to_string()
                .contains("nope.pem")
        );
    }
}
