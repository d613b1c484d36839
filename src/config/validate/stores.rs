//! Where state lives: `[session]` (the session store, memory or Redis, and session lifetimes)
//! and `[storage]` (the user store, SQLite or PostgreSQL, and its encryption key).

use super::ctx::{k, Ctx};
use super::store_tls;
use crate::config::model::{SessionConfig, SessionStoreKind, StorageConfig};
use crate::config::raw::{RawConfig, RawSession};
use std::time::Duration;

/// `[session]`: the store (Redis needs a `redis://` URL), key prefix, timeouts and limits.
pub(super) fn session(cx: &mut Ctx<'_>, rs: &RawSession) -> SessionConfig {
    let store = match rs.store.as_deref() {
        None | Some("memory") => SessionStoreKind::Memory,
        Some("redis") => SessionStoreKind::Redis,
        Some(other) => {
            cx.err(
                &[k("session"), k("store")],
                format!("unknown store {other:?}; use \"memory\" or \"redis\""),
            );
            SessionStoreKind::Memory
        }
    };
    let at_url = [k("session"), k("redis_url")];
    let redis_url = cx.secret(
        &[k("session")],
        "redis_url",
        rs.redis_url.as_ref(),
        rs.redis_url_file.as_ref(),
    );
    let redis_set = rs.redis_url.is_some() || rs.redis_url_file.is_some();
    if redis_set && store != SessionStoreKind::Redis {
        cx.err(&at_url, "is set but session.store is not \"redis\"");
    }
    let redis_sentinel = match &rs.redis_sentinel {
        Some(raw) => {
            if store != SessionStoreKind::Redis {
                cx.err(
                    &[k("session"), k("redis_sentinel")],
                    "is set but session.store is not \"redis\"",
                );
            }
            if redis_set {
                cx.err(
                    &[k("session"), k("redis_sentinel")],
                    "and session.redis_url are exclusive: the sentinels name the primary",
                );
            }
            store_tls::sentinel(cx, raw)
        }
        None => None,
    };
    if store == SessionStoreKind::Redis && !redis_set && rs.redis_sentinel.is_none() {
        cx.err(
            &[k("session"), k("store")],
            "\"redis\" needs session.redis_url (or redis_url_file), e.g. \"redis://127.0.0.1:6379/0\", \
             or session.redis_sentinel",
        );
    }
    if let Some(u) = &redis_url {
        store_tls::redis_url(cx, &at_url, u, false);
    }
    let redis_tls = match &rs.redis_tls {
        Some(raw) => {
            let tls_url = redis_url
                .as_deref()
                .is_some_and(|u| u.starts_with("rediss://"))
                || redis_sentinel
                    .as_ref()
                    .is_some_and(|s| s.nodes.iter().all(|n| n.starts_with("rediss://")));
            if !tls_url && (redis_set || rs.redis_sentinel.is_some()) {
                cx.err(
                    &[k("session"), k("redis_tls")],
                    "is set but the Redis URLs are not rediss:// (TLS)",
                );
            }
            store_tls::store_tls(cx, &[k("session"), k("redis_tls")], raw)
        }
        None => None,
    };
    let redis_prefix = rs
        .redis_prefix
        .clone()
        .unwrap_or_else(|| "portcullis:".to_owned());
    if redis_prefix.is_empty()
        || redis_prefix.len() > 64
        || redis_prefix.contains(char::is_whitespace)
    {
        cx.err(
            &[k("session"), k("redis_prefix")],
            "must be 1-64 characters without spaces",
        );
    }
    let session = SessionConfig {
        store,
        redis_url,
        redis_sentinel,
        redis_tls,
        redis_prefix,
        idle_timeout: rs
            .idle_timeout
            .map_or(Duration::from_secs(30 * 60), |d| d.0),
        max_lifetime: rs
            .max_lifetime
            .map_or(Duration::from_secs(12 * 3600), |d| d.0),
        touch_interval: rs.touch_interval.map_or(Duration::from_secs(60), |d| d.0),
        max_sessions: rs.max_sessions.unwrap_or(2_000_000),
        pending_ttl: rs.pending_ttl.map_or(Duration::from_secs(10 * 60), |d| d.0),
    };
    if session.idle_timeout.is_zero() {
        cx.err(&[k("session"), k("idle_timeout")], "must be above zero");
    }
    if session.max_lifetime.is_zero() {
        cx.err(&[k("session"), k("max_lifetime")], "must be above zero");
    }
    session
}

/// `[storage]`; a `[native]` section without one gets the default SQLite file.
pub(super) fn storage(cx: &mut Ctx<'_>, raw: &RawConfig) -> Option<StorageConfig> {
    match &raw.storage {
        Some(st) => {
            let at_url = [k("storage"), k("url")];
            let url = cx.secret(
                &[k("storage")],
                "url",
                st.url.as_ref(),
                st.url_file.as_ref(),
            );
            if st.url.is_none() && st.url_file.is_none() {
                cx.err(
                    &at_url,
                    "is required: \"sqlite://FILE\" or \"postgres://…\" (or url_file)",
                );
            }
            let url = url.unwrap_or_default();
            let postgres = url.starts_with("postgres://") || url.starts_with("postgresql://");
            if !url.is_empty() && !postgres && !url.starts_with("sqlite:") {
                cx.err(&at_url, "must start with sqlite:// or postgres://");
            }
            let key_set = st.encryption_key.is_some() || st.encryption_key_file.is_some();
            if postgres && !key_set {
                // A generated key file is per machine; replicas must share one key.
                cx.err(
                    &[k("storage"), k("encryption_key")],
                    "is required with PostgreSQL, so every replica can open the same sealed seeds",
                );
            }
            let encryption_key = cx.secret(
                &[k("storage")],
                "encryption_key",
                st.encryption_key.as_ref(),
                st.encryption_key_file.as_ref(),
            );
            super::files::user_store(cx, &url, encryption_key.as_deref(), key_set);
            if postgres {
                postgres_url(
                    cx,
                    &url,
                    st.tls.is_some(),
                    st.tls.as_ref().is_some_and(|t| t.ca.is_some()),
                );
            }
            let tls = match &st.tls {
                Some(t) => {
                    if !postgres {
                        cx.err(&[k("storage"), k("tls")], "is for postgres:// URLs only");
                    }
                    store_tls::store_tls(cx, &[k("storage"), k("tls")], t)
                }
                None => None,
            };
            Some(StorageConfig {
                url,
                encryption_key,
                tls,
            })
        }
        None if raw.native.is_some() => {
            let url = "sqlite://data/portcullis.db".to_owned();
            super::files::user_store(cx, &url, None, false);
            Some(StorageConfig {
                url,
                encryption_key: None,
                tls: None,
            })
        }
        None => None,
    }
}

/// The TLS parameters of a PostgreSQL URL, as sqlx will read them: a known `sslmode`, and no
/// file parameters (they would be read relative to the working directory: `storage.tls` names
/// the files, relative to the config). With `storage.tls` the mode must verify the server.
fn postgres_url(cx: &mut Ctx<'_>, url: &str, tls: bool, ca: bool) {
    let at = [k("storage"), k("url")];
    let query = url.split_once('?').map_or("", |(_, q)| q);
    let mut mode = None;
    for (name, value) in query.split('&').filter_map(|p| p.split_once('=')) {
        match name {
            "sslmode" | "ssl-mode" => mode = Some(value.to_owned()),
            "sslrootcert" | "sslcert" | "sslkey" | "ssl-root-cert" | "ssl-cert" | "ssl-key" => {
                cx.err(
                    &at,
                    format!("{name} is not read from the URL here: use storage.tls (ca, client_cert, client_key)"),
                );
            }
            _ => {}
        }
    }
    match mode.as_deref() {
        None | Some("verify-ca" | "verify-full") => {}
        // sqlx (unlike libpq) never checks the certificate under `require`, CA or not.
        Some("require") if ca => cx.err(
            &at,
            "sslmode=require does not check the server's certificate even with storage.tls.ca: \
             use verify-full (or verify-ca)",
        ),
        Some("require") => cx.warn(
            &at,
            "sslmode=require encrypts but does not verify the server: use verify-full",
        ),
        Some(m @ ("disable" | "allow" | "prefer")) if tls => cx.err(
            &at,
            format!("sslmode={m} with storage.tls: use verify-ca or verify-full"),
        ),
        Some("disable" | "allow" | "prefer") => {}
        Some(other) => cx.err(
            &at,
            format!(
                "sslmode={other:?} is not one of disable, allow, prefer, require, verify-ca, \
                 verify-full"
            ),
        ),
    }
}
