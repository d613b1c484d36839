//! `[upstream]`: the URL (`http://` or `https://`), timeouts, the pool, and `upstream.tls`,
//! whose files are read and parsed here, so `check` refuses exactly what `run` would.
//! Invariant: an https upstream always gets a verifying rustls client (web PKI roots, or only
//! the configured CA; the name always checked); nothing here can turn verification off.

use super::ctx::{k, Ctx};
use crate::config::locate::Seg;
use crate::config::model::{UpstreamConfig, UpstreamTls};
use crate::config::raw::{RawUpstream, RawUpstreamTls};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use std::sync::Arc;
use std::time::Duration;
use zeroize::Zeroize;

/// `[upstream]`: `http://host[:port][/base]` or the same with `https` (port 443 by default).
pub(super) fn upstream(cx: &mut Ctx<'_>, u: &RawUpstream) -> UpstreamConfig {
    let up_path = [k("upstream"), k("url")];
    let (scheme, authority, base_path, host) = match u.url.split_once("://") {
        Some((scheme @ ("http" | "https"), rest)) => {
            let (auth, path) = rest.find('/').map_or((rest, ""), |i| {
                (rest.get(..i).unwrap_or(rest), rest.get(i..).unwrap_or(""))
            });
            if auth.is_empty() || auth.contains('@') || path.contains('?') || path.contains('#') {
                cx.err(
                    &up_path,
                    format!("must be a URL like \"{scheme}://127.0.0.1:3000\""),
                );
            }
            let default_port = if scheme == "https" { 443 } else { 80 };
            let has_port = auth.contains(':') && !auth.ends_with(']');
            let host = if has_port {
                auth.rsplit_once(':').map_or(auth, |(h, _)| h)
            } else {
                auth
            };
            let host = host.trim_start_matches('[').trim_end_matches(']').to_owned();
            let auth = if has_port {
                auth.to_owned()
            } else {
                format!("{auth}:{default_port}")
            };
            (
                scheme.to_owned(),
                auth,
                path.trim_end_matches('/').to_owned(),
                host,
            )
        }
        _ => {
            cx.err(
                &up_path,
                format!("{:?} is not an absolute http or https URL", u.url),
            );
            (String::new(), String::new(), String::new(), String::new())
        }
    };
    let tls = match (scheme.as_str(), &u.tls) {
        ("https", t) => tls(cx, t.as_ref(), &host),
        ("http", Some(_)) => {
            // Fail closed: a CA or client certificate on a plain upstream would be a setting
            // that silently protects nothing.
            cx.err(
                &[k("upstream"), k("tls")],
                "is only for an https upstream; upstream.url is http:// (write https:// or remove tls)",
            );
            None
        }
        _ => None,
    };
    UpstreamConfig {
        scheme,
        authority,
        base_path,
        connect_timeout: u.connect_timeout.map_or(Duration::from_secs(5), |d| d.0),
        timeout: u.timeout.map_or(Duration::from_secs(60), |d| d.0),
        pool_idle_timeout: u.pool_idle_timeout.map_or(Duration::from_secs(90), |d| d.0),
        pool_max_idle: u.pool_max_idle.unwrap_or(256),
        tls,
    }
}

/// The rustls clients for an https upstream whose URL names `host`; `None` after an error.
fn tls(cx: &mut Ctx<'_>, t: Option<&RawUpstreamTls>, host: &str) -> Option<UpstreamTls> {
    let key = |name: &str| vec![k("upstream"), k("tls"), k(name)];
    let mut fingerprint = ring::digest::Context::new(&ring::digest::SHA256);
    let mut feed = |part: &[u8]| {
        fingerprint.update(&(part.len() as u64).to_be_bytes());
        fingerprint.update(part);
    };
    let mut ok = true;

    let (name_text, name_key) = match t.and_then(|t| t.server_name.as_deref()) {
        Some(n) => (n, key("server_name")),
        None => (host, vec![k("upstream"), k("url")]),
    };
    feed(name_text.as_bytes());
    let server_name = match ServerName::try_from(name_text.to_owned()) {
        Ok(n) => Some(n),
        Err(_) => {
            cx.err(
                &name_key,
                format!("{name_text:?} is not a valid DNS name or IP address to verify the upstream's certificate against"),
            );
            None
        }
    };

    let mut roots = rustls::RootCertStore::empty();
    match t.and_then(|t| t.ca.as_deref()) {
        // Only the configured CA: the web PKI is not consulted at all.
        Some(rel) => {
            let k = key("ca");
            match read(cx, &k, rel) {
                Some(bytes) => {
                    feed(&bytes);
                    for c in certs(cx, &k, rel, &bytes).unwrap_or_default() {
                        if let Err(e) = roots.add(c) {
                            cx.err(&k, format!("{rel}: a certificate is not a usable CA ({e})"));
                            ok = false;
                        }
                    }
                    ok &= !roots.is_empty();
                }
                None => ok = false,
            }
        }
        None => {
            feed(b"webpki-roots");
            roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        }
    }

    let cert = t.and_then(|t| t.client_cert.as_deref());
    let client_key = t.and_then(|t| t.client_key.as_deref());
    let client = match (cert, client_key) {
        (None, None) => None,
        (Some(_), None) => {
            cx.err(&key("client_cert"), "needs client_key as well (the private key of this certificate)");
            ok = false;
            None
        }
        (None, Some(_)) => {
            cx.err(&key("client_key"), "needs client_cert as well (the certificate of this key)");
            ok = false;
            None
        }
        (Some(c), Some(kf)) => {
            let chain = read(cx, &key("client_cert"), c).and_then(|b| {
                feed(&b);
                certs(cx, &key("client_cert"), c, &b)
            });
            let private = read(cx, &key("client_key"), kf).and_then(|mut b| {
                feed(&b);
                let parsed = PrivateKeyDer::from_pem_slice(&b);
                b.zeroize();
                match parsed {
                    Ok(p) => Some(p),
                    Err(e) => {
                        cx.err(&key("client_key"), format!("{kf}: holds no PEM private key ({e})"));
                        None
                    }
                }
            });
            match (chain, private) {
                (Some(chain), Some(private)) => Some((chain, private)),
                _ => {
                    ok = false;
                    None
                }
            }
        }
    };
    let fingerprint: [u8; 32] = fingerprint.finish().as_ref().try_into().ok()?;
    let server_name = server_name?;
    if !ok {
        return None;
    }

    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = match rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
    {
        Ok(b) => b.with_root_certificates(roots),
        Err(e) => {
            cx.err(&[k("upstream"), k("tls")], format!("TLS configuration refused: {e}"));
            return None;
        }
    };
    let mut config = match client {
        None => builder.with_no_client_auth(),
        Some((chain, private)) => match builder.with_client_auth_cert(chain, private) {
            Ok(c) => c,
            Err(rustls::Error::InconsistentKeys(_)) => {
                cx.err(&key("client_key"), "does not match the certificate in client_cert");
                return None;
            }
            Err(e) => {
                cx.err(&key("client_key"), format!("cannot be used with client_cert: {e}"));
                return None;
            }
        },
    };
    let mut h1 = config.clone();
    h1.alpn_protocols = vec![b"http/1.1".to_vec()];
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Some(UpstreamTls {
        server_name,
        client: Arc::new(config),
        client_h1: Arc::new(h1),
        fingerprint,
    })
}

/// The bytes of a PEM file named at `key`; `None` (reported) when it is missing, a directory
/// or unreadable.
fn read(cx: &mut Ctx<'_>, key: &[Seg], rel: &str) -> Option<Vec<u8>> {
    let p = cx.path(rel);
    if p.is_dir() {
        cx.err(key, format!("{} is a directory, not a PEM file", p.display()));
        return None;
    }
    match std::fs::read(&p) {
        Ok(b) => Some(b),
        Err(e) => {
            cx.err(key, format!("cannot read {}: {e}", p.display()));
            None
        }
    }
}

/// The certificates of a PEM file; `None` (reported) when it holds none or bad PEM.
fn certs(
    cx: &mut Ctx<'_>,
    key: &[Seg],
    rel: &str,
    bytes: &[u8],
) -> Option<Vec<CertificateDer<'static>>> {
    match CertificateDer::pem_slice_iter(bytes).collect::<Result<Vec<_>, _>>() {
        Ok(v) if !v.is_empty() => Some(v),
        Ok(_) => {
            cx.err(key, format!("{rel}: holds no PEM certificate (-----BEGIN CERTIFICATE-----)"));
            None
        }
        Err(e) => {
            cx.err(key, format!("{rel}: is not valid PEM ({e})"));
            None
        }
    }
}
