//! Where state lives: `[session]` (the session store, memory or Redis, and session lifetimes)
//! and `[storage]` (the user store, SQLite or PostgreSQL, and its encryption key).

use super::ctx::{k, Ctx};
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
    let redis_url = match &rs.redis_url {
        Some(u) => {
            if store != SessionStoreKind::Redis {
                cx.err(
                    &[k("session"), k("redis_url")],
                    "is set but session.store is not \"redis\"",
                );
            }
            cx.interpolate(&[k("session"), k("redis_url")], u)
        }
        None => None,
    };
    if store == SessionStoreKind::Redis && redis_url.is_none() && rs.redis_url.is_none() {
        cx.err(
            &[k("session"), k("store")],
            "\"redis\" needs session.redis_url, e.g. \"redis://127.0.0.1:6379/0\"",
        );
    }
    if let Some(u) = &redis_url {
        if !(u.starts_with("redis://")
            || u.starts_with("redis+unix://")
            || u.starts_with("unix://"))
        {
            cx.err(
                &[k("session"), k("redis_url")],
                "must start with redis:// (TLS to Redis is not supported in this build)",
            );
        }
    }
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
            let url = cx
                .interpolate(&[k("storage"), k("url")], &st.url)
                .unwrap_or_default();
            let postgres = url.starts_with("postgres://") || url.starts_with("postgresql://");
            if !postgres && !url.starts_with("sqlite:") {
                cx.err(
                    &[k("storage"), k("url")],
                    "must start with sqlite:// or postgres://",
                );
            }
            if postgres && st.encryption_key.is_none() {
                // A generated key file is per machine; replicas must share one key.
                cx.err(
                    &[k("storage"), k("encryption_key")],
                    "is required with PostgreSQL, so every replica can open the same sealed seeds",
                );
            }
            let encryption_key = match &st.encryption_key {
                Some(v) => cx.interpolate(&[k("storage"), k("encryption_key")], v),
                None => None,
            };
            Some(StorageConfig {
                url,
                encryption_key,
            })
        }
        None if raw.native.is_some() => Some(StorageConfig {
            url: "sqlite://data/portcullis.db".to_owned(),
            encryption_key: None,
        }),
        None => None,
    }
}
