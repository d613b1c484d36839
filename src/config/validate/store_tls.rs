//! TLS to the stores and Redis Sentinel: `session.redis_tls`, `storage.tls` (CA and client
//! certificate files, read once and parsed here so `check` refuses exactly what a connection
//! would) and `session.redis_sentinel`. Nothing here turns verification off: there is no key
//! for it, and a `#insecure` Redis URL is refused.

use super::ctx::{i, k, Ctx};
use crate::config::locate::Seg;
use crate::config::model::{RedisSentinel, StoreTls};
use crate::config::raw::{RawRedisSentinel, RawStoreTls};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::sync::Arc;

/// Reads the file named at `at` (relative to the config file), reporting why it cannot be.
fn read(cx: &mut Ctx<'_>, at: &[Seg], rel: &str) -> Option<Vec<u8>> {
    let p = cx.path(rel);
    match std::fs::read(&p) {
        Ok(b) => Some(b),
        Err(e) => {
            cx.err(at, format!("cannot read {}: {e}", p.display()));
            None
        }
    }
}

/// Every certificate of a PEM file; an error (and `None`) unless there is at least one and
/// all parse.
fn certs(cx: &mut Ctx<'_>, at: &[Seg], pem: &[u8]) -> Option<Vec<CertificateDer<'static>>> {
    match CertificateDer::pem_slice_iter(pem).collect::<Result<Vec<_>, _>>() {
        Ok(v) if !v.is_empty() => Some(v),
        Ok(_) => {
            cx.err(at, "holds no PEM certificate (-----BEGIN CERTIFICATE-----)");
            None
        }
        Err(e) => {
            cx.err(at, format!("is not valid PEM: {e}"));
            None
        }
    }
}

/// A store's `tls` table at `at`: the files read and checked as rustls will use them.
pub(super) fn store_tls(cx: &mut Ctx<'_>, at: &[Seg], raw: &RawStoreTls) -> Option<StoreTls> {
    let key_at = |name: &str| [at, &[k(name)]].concat();
    let mut ok = true;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    let ca_pem = match &raw.ca {
        Some(rel) => {
            let ca_at = key_at("ca");
            let pem = read(cx, &ca_at, rel);
            if let Some(list) = pem.as_deref().and_then(|p| certs(cx, &ca_at, p)) {
                let (added, _) = roots.add_parsable_certificates(list);
                if added == 0 {
                    cx.err(&ca_at, "holds no certificate usable as a trust anchor");
                    ok = false;
                }
            } else {
                ok = false;
            }
            pem
        }
        None => {
            roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
            None
        }
    };
    let client = match (&raw.client_cert, &raw.client_key) {
        (None, None) => None,
        (Some(_), None) => {
            cx.err(&key_at("client_cert"), "needs client_key beside it");
            ok = false;
            None
        }
        (None, Some(_)) => {
            cx.err(&key_at("client_key"), "needs client_cert beside it");
            ok = false;
            None
        }
        (Some(c), Some(kf)) => {
            let cert = read(cx, &key_at("client_cert"), c);
            let key = read(cx, &key_at("client_key"), kf).map(zeroize::Zeroizing::new);
            let chain = cert
                .as_deref()
                .and_then(|p| certs(cx, &key_at("client_cert"), p));
            let parsed = key
                .as_deref()
                .map(|p| PrivateKeyDer::from_pem_slice(p).map_err(|e| e.to_string()));
            match (chain, parsed) {
                (Some(chain), Some(Ok(der))) => {
                    // The same builder the connection uses: the key must load with ring and
                    // match the certificate.
                    let built = rustls::ClientConfig::builder_with_provider(Arc::clone(&provider))
                        .with_safe_default_protocol_versions()
                        .map(|b| {
                            b.with_root_certificates(roots.clone())
                                .with_client_auth_cert(chain, der)
                        });
                    match built {
                        Ok(Ok(_)) => {}
                        Ok(Err(e)) | Err(e) => {
                            cx.err(
                                &key_at("client_key"),
                                format!("does not go with client_cert: {e}"),
                            );
                            ok = false;
                        }
                    }
                }
                (_, Some(Err(e))) => {
                    cx.err(
                        &key_at("client_key"),
                        format!("is not a PEM private key: {e}"),
                    );
                    ok = false;
                }
                _ => ok = false,
            }
            cert.zip(key)
        }
    };
    if !ok {
        return None;
    }
    let mut h = ring::digest::Context::new(&ring::digest::SHA256);
    for part in [
        ca_pem.as_deref(),
        client.as_ref().map(|(c, _)| c.as_slice()),
        client.as_ref().map(|(_, k)| k.as_slice()),
    ] {
        let part = part.unwrap_or_default();
        h.update(&(part.len() as u64).to_be_bytes());
        h.update(part);
    }
    let mut fingerprint = [0u8; 32];
    fingerprint.copy_from_slice(h.finish().as_ref());
    Some(StoreTls {
        ca_pem,
        client,
        fingerprint,
    })
}

/// A Redis URL the session store can use: `redis://`, `rediss://` (TLS, verified) or a unix
/// socket; never `#insecure`. `sentinel` names the sentinel list, which takes TCP URLs only.
pub(super) fn redis_url(cx: &mut Ctx<'_>, at: &[Seg], u: &str, sentinel: bool) -> bool {
    let tcp = u.starts_with("redis://") || u.starts_with("rediss://");
    let unix = u.starts_with("redis+unix://") || u.starts_with("unix://");
    if !(tcp || unix && !sentinel) {
        cx.err(
            at,
            if sentinel {
                "must start with redis:// or rediss:// (TLS)"
            } else {
                "must start with redis://, rediss:// (TLS) or unix://"
            },
        );
        return false;
    }
    if u.contains('#') {
        // The redis crate reads `#insecure` as "skip certificate checks": never.
        cx.err(
            at,
            "must not have a #fragment (certificate checks cannot be turned off)",
        );
        return false;
    }
    if redis::IntoConnectionInfo::into_connection_info(u).is_err() {
        // A fixed message: the URL may hold a password, and so might a parser's error text.
        cx.err(
            at,
            "does not parse as a Redis URL like \"redis://:PASSWORD@127.0.0.1:6379/0\"",
        );
        return false;
    }
    true
}

/// `session.redis_sentinel`: a master name and at least one sentinel, all TLS or none.
pub(super) fn sentinel(cx: &mut Ctx<'_>, raw: &RawRedisSentinel) -> Option<RedisSentinel> {
    let at = [k("session"), k("redis_sentinel")];
    let key_at = |name: &str| [&at[..], &[k(name)]].concat();
    let mut ok = true;
    let master = raw.master.trim();
    if master.is_empty() || master.len() > 128 || !master.bytes().all(|b| b.is_ascii_graphic()) {
        cx.err(
            &key_at("master"),
            "must be the master's name as the sentinels know it, e.g. \"mymaster\"",
        );
        ok = false;
    }
    if raw.nodes.is_empty() {
        cx.err(
            &key_at("nodes"),
            "needs at least one sentinel, e.g. [\"redis://10.0.0.1:26379\"]",
        );
        ok = false;
    }
    let mut nodes = Vec::new();
    for (n, node) in raw.nodes.iter().enumerate() {
        let node_at = [&at[..], &[k("nodes"), i(n)]].concat();
        // `${VAR}`s were expanded when the document was read (validate/document.rs).
        let u = node.clone();
        if redis_url(cx, &node_at, &u, true) {
            nodes.push(u);
        } else {
            ok = false;
        }
    }
    let tls = nodes.iter().filter(|u| u.starts_with("rediss://")).count();
    if tls != 0 && tls != nodes.len() {
        cx.err(
            &key_at("nodes"),
            "mixes redis:// and rediss://: the data nodes use TLS exactly when the sentinels do",
        );
        ok = false;
    }
    let password = raw.password.clone();
    ok.then(|| RedisSentinel {
        master: master.to_owned(),
        nodes,
        password,
    })
}
