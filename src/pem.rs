//! PEM certificate chains and private keys for the TLS listeners, loaded and paired by rustls
//! (ring provider). Shared by `config` (so `check` refuses what `run` would) and `server::tls`.

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::path::Path;
use std::sync::Arc;

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// The certificate file is unreadable or holds no PEM certificate.
    #[error("cannot load certificate {path}: {reason}")]
    Cert { path: String, reason: String },
    /// The key file is unreadable or holds no PEM private key.
    #[error("cannot load private key {path}: {reason}")]
    Key { path: String, reason: String },
    /// The private key is not the one of the end-entity certificate.
    #[error("private key {key} does not match certificate {cert}")]
    Mismatch { cert: String, key: String },
    /// rustls refused the pair (unsupported algorithm).
    #[error("TLS configuration refused: {0}")]
    Config(String),
    /// Generating or writing the development certificate failed.
    #[error("cannot write development certificate: {0}")]
    Generate(String),
}

/// A rustls server config with ALPN `h2`, `http/1.1` from a PEM chain and its PEM key; refused
/// when either does not parse or the key is not the certificate's.
pub fn server_config(cert: &Path, key: &Path) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| TlsError::Cert {
            path: cert.display().to_string(),
            reason: e.to_string(),
        })?;
    if certs.is_empty() {
        return Err(TlsError::Cert {
            path: cert.display().to_string(),
            reason: "no certificate found".into(),
        });
    }
    let (cert_path, key_path) = (cert.display().to_string(), key.display().to_string());
    let key = PrivateKeyDer::from_pem_file(key).map_err(|e| TlsError::Key {
        path: key_path.clone(),
        reason: e.to_string(),
    })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Config(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| match e {
            rustls::Error::InvalidCertificate(why) => TlsError::Cert {
                path: cert_path,
                reason: format!("not a valid X.509 certificate ({why:?})"),
            },
            rustls::Error::InconsistentKeys(_) => TlsError::Mismatch {
                cert: cert_path,
                key: key_path,
            },
            other => TlsError::Config(other.to_string()),
        })?;
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(cfg))
}
