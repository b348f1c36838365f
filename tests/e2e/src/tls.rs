//! Throw-away certificates for TLS tests: a CA, server certificates for `localhost` /
//! `127.0.0.1` and client certificates signed by it, written as PEM files; and rustls
//! client configurations that trust the CA.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context as _;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    SanType,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{ClientConfig, RootCertStore, SupportedProtocolVersion};

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
    let ca = TestCa::new("conduit e2e test CA")?;
    let ca_path = dir.join("ca.pem");
    ca.write(&ca_path)?;
    let (cert_path, key_path) = ca.server(dir, "server")?;
    Ok(TlsFiles {
        ca_path,
        cert_path,
        key_path,
    })
}

/// A certificate authority that signs test certificates.
pub struct TestCa {
    pem: String,
    issuer: Issuer<'static, KeyPair>,
}

impl std::fmt::Debug for TestCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestCa").finish_non_exhaustive()
    }
}

impl TestCa {
    pub fn new(name: &str) -> anyhow::Result<Self> {
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let key = KeyPair::generate()?;
        let cert = params.self_signed(&key)?;
        Ok(Self {
            pem: cert.pem(),
            issuer: Issuer::new(params, key),
        })
    }

    /// The CA certificate as PEM.
    pub fn pem(&self) -> &str {
        &self.pem
    }

    /// Writes the CA certificate to `path`.
    pub fn write(&self, path: &Path) -> anyhow::Result<()> {
        std::fs::write(path, &self.pem).with_context(|| format!("writing {}", path.display()))
    }

    /// A new server certificate (fresh key) for `localhost` and `127.0.0.1`, written to
    /// `<dir>/<name>.pem` and `<dir>/<name>-key.pem`; returns both paths.
    pub fn server(&self, dir: &Path, name: &str) -> anyhow::Result<(PathBuf, PathBuf)> {
        let mut params = CertificateParams::new(vec!["localhost".to_owned()])?;
        params
            .subject_alt_names
            .push(SanType::IpAddress([127, 0, 0, 1].into()));
        params.distinguished_name.push(DnType::CommonName, name);
        self.issue(dir, name, params)
    }

    /// A new client certificate (fresh key) with common name `name`, written like
    /// [`TestCa::server`].
    pub fn client(&self, dir: &Path, name: &str) -> anyhow::Result<(PathBuf, PathBuf)> {
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params.distinguished_name.push(DnType::CommonName, name);
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        self.issue(dir, name, params)
    }

    fn issue(
        &self,
        dir: &Path,
        name: &str,
        params: CertificateParams,
    ) -> anyhow::Result<(PathBuf, PathBuf)> {
        let key = KeyPair::generate()?;
        let cert = params.signed_by(&key, &self.issuer)?;
        let cert_path = dir.join(format!("{name}.pem"));
        let key_path = dir.join(format!("{name}-key.pem"));
        std::fs::write(&cert_path, cert.pem())?;
        std::fs::write(&key_path, key.serialize_pem())?;
        Ok((cert_path, key_path))
    }
}

/// How a test client does TLS.
#[derive(Debug, Clone, Default)]
pub struct ClientTls<'a> {
    /// PEM of the CA trusted for the server's certificate.
    pub ca_pem: &'a str,
    /// Certificate and key files presented to the server.
    pub identity: Option<(&'a Path, &'a Path)>,
    /// Only TLS 1.2 (the default offers 1.2 and 1.3).
    pub tls12_only: bool,
    /// ALPN protocols offered, like `h2`.
    pub alpn: &'a [&'a str],
}

impl ClientTls<'_> {
    /// The rustls client configuration.
    pub fn config(&self) -> anyhow::Result<Arc<ClientConfig>> {
        let mut roots = RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(self.ca_pem.as_bytes()) {
            roots.add(cert.context("CA PEM")?)?;
        }
        let versions: &[&SupportedProtocolVersion] = if self.tls12_only {
            &[&rustls::version::TLS12]
        } else {
            &[&rustls::version::TLS13, &rustls::version::TLS12]
        };
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let builder = ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(versions)?
            .with_root_certificates(roots);
        let mut config = match self.identity {
            Some((cert, key)) => {
                let chain = CertificateDer::pem_file_iter(cert)?.collect::<Result<Vec<_>, _>>()?;
                builder.with_client_auth_cert(chain, PrivateKeyDer::from_pem_file(key)?)?
            }
            None => builder.with_no_client_auth(),
        };
        config.alpn_protocols = self.alpn.iter().map(|p| p.as_bytes().to_vec()).collect();
        Ok(Arc::new(config))
    }
}

/// The DER of the first certificate in a PEM file (to compare with what a server sends).
pub fn leaf_der(cert_path: &Path) -> anyhow::Result<Vec<u8>> {
    let first = CertificateDer::pem_file_iter(cert_path)?
        .next()
        .with_context(|| format!("no certificate in {}", cert_path.display()))??;
    Ok(first.to_vec())
}
