//! TLS for the listeners: rustls with the `ring` provider only, ALPN h2 + http/1.1, certificate
//! chain and key from PEM files; and `certs dev`, a self-signed certificate for local use.

use crate::config::TlsFiles;
use std::path::Path;
use std::sync::Arc;

pub use crate::pem::TlsError;

/// A rustls server config with ALPN `h2`, `http/1.1`.
pub fn server_config(files: &TlsFiles) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    crate::pem::server_config(&files.cert, &files.key)
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
