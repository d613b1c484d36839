//! TLS for the listeners: rustls with the `ring` provider only, ALPN h2 + http/1.1, certificate
//! chain and key from PEM files; and `certs dev`, a self-signed certificate for local use.

use crate::config::TlsFiles;
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
    /// rustls refused the pair (key does not match, unsupported algorithm).
    #[error("TLS configuration refused: {0}")]
    Config(String),
    /// Generating or writing the development certificate failed.
    #[error("cannot write development certificate: {0}")]
    Generate(String),
}

/// A rustls server config with ALPN `h2`, `http/1.1`.
pub fn server_config(files: &TlsFiles) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&files.cert)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| TlsError::Cert {
            path: files.cert.display().to_string(),
            reason: e.to_string(),
        })?;
    if certs.is_empty() {
        return Err(TlsError::Cert {
            path: files.cert.display().to_string(),
            reason: "no certificate found".into(),
        });
    }
    let key = PrivateKeyDer::from_pem_file(&files.key).map_err(|e| TlsError::Key {
        path: files.key.display().to_string(),
        reason: e.to_string(),
    })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Config(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| TlsError::Config(e.to_string()))?;
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(cfg))
}

/// Writes a self-signed certificate for `names` into `dir` (`gateway.crt`, `gateway.key`, 0600).
pub fn write_dev_cert(
    dir: &Path,
    names: &[String],
) -> Result<(std::path::PathBuf, std::path::PathBuf), TlsError> {
    let ck = rcgen::generate_simple_self_signed(names.to_vec())
        .map_err(|e| TlsError::Generate(e.to_string()))?;
    std::fs::create_dir_all(dir).map_err(|e| TlsError::Generate(e.to_string()))?;
    let cert = dir.join("gateway.crt");
    let key = dir.join("gateway.key");
    for p in [&cert, &key] {
        if p.exists() {
            return Err(TlsError::Generate(format!(
                "{} exists; remove it first",
                p.display()
            )));
        }
    }
    std::fs::write(&cert, ck.cert.pem()).map_err(|e| TlsError::Generate(e.to_string()))?;
    crate::assertion::write_private(&key, ck.signing_key.serialize_pem().as_bytes())
        .map_err(|e| TlsError::Generate(e.to_string()))?;
    Ok((cert, key))
}
