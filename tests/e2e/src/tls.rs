//! Throw-away certificates for TLS tests: a CA and a server certificate for
//! `localhost` / `127.0.0.1` signed by it, written as PEM files.

use std::path::{Path, PathBuf};

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, SanType};

/// PEM files of a test PKI.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    pub ca_path: PathBuf,
    pub cert_path: PathBuf,
    pub key_path: PathBuf,
}

/// Generates a CA and a server certificate valid for `localhost` and `127.0.0.1` into
/// `dir` (`ca.pem`, `server.pem`, `server-key.pem`).
pub fn generate(dir: &Path) -> anyhow::Result<TlsFiles> {
    let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "conduit e2e test CA");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_key = KeyPair::generate()?;
    let ca_cert = ca_params.self_signed(&ca_key)?;
    let issuer = Issuer::new(ca_params, ca_key);

    let mut server_params = CertificateParams::new(vec!["localhost".to_owned()])?;
    server_params
        .subject_alt_names
        .push(SanType::IpAddress([127, 0, 0, 1].into()));
    server_params
        .distinguished_name
        .push(DnType::CommonName, "localhost");
    let server_key = KeyPair::generate()?;
    let server_cert = server_params.signed_by(&server_key, &issuer)?;

    let files = TlsFiles {
        ca_path: dir.join("ca.pem"),
        cert_path: dir.join("server.pem"),
        key_path: dir.join("server-key.pem"),
    };
    std::fs::write(&files.ca_path, ca_cert.pem())?;
    std::fs::write(&files.cert_path, server_cert.pem())?;
    std::fs::write(&files.key_path, server_key.serialize_pem())?;
    Ok(files)
}
