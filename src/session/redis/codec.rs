//! What the Redis session store writes: a session as its hash fields (`u` owner, `d` compact
//! JSON of [`StoredSession`], `l` last seen) and back, and the Redis TTLs of what it stores.
//! Invariants: header values and the cached assertion are never stored (they are recomputed or
//! re-signed on load); unknown JSON fields are ignored and older layouts still decode, so
//! replicas of neighbouring versions can share one store; anything that does not decode is
//! `StoreError::Corrupt`, never an absent session.

use crate::clock::UnixTime;
use crate::session::id::SessionId;
use crate::session::identity::{AuthMethod, Identity, MfaUsed};
use crate::session::model::Session;
use crate::storage::StoreError;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// Upper bound on any Redis TTL (400 days); keeps numbers exact inside Lua.
const MAX_TTL_MS: u64 = 400 * 86_400 * 1000;

/// The part of a session kept in the `d` field: compact JSON, short names. Header values and
/// the cached assertion are not stored; `Session::new` recomputes the headers on load.
/// Unknown fields are ignored so replicas of neighbouring versions can share a store.
#[derive(Serialize, Deserialize)]
struct StoredSession {
    /// The display name; the hash's `u` field holds the owner. Absent in sessions written by
    /// versions before principals (their `u` is the user name).
    #[serde(rename = "n", default, skip_serializing_if = "Option::is_none")]
    user: Option<String>,
    #[serde(rename = "e", default, skip_serializing_if = "Option::is_none")]
    email: Option<String>,
    #[serde(rename = "g", default, skip_serializing_if = "Vec::is_empty")]
    groups: Vec<String>,
    #[serde(rename = "r", default, skip_serializing_if = "Vec::is_empty")]
    roles: Vec<String>,
    /// `AuthMethod::header_value` form: `native`, `oidc:{idp}`, `saml:{idp}`, `demo`.
    #[serde(rename = "m")]
    method: String,
    /// `MfaUsed::as_str` form.
    #[serde(rename = "f")]
    mfa: String,
    #[serde(rename = "c")]
    created_at: UnixTime,
    #[serde(rename = "x")]
    expires_at: UnixTime,
    #[serde(rename = "i")]
    idle_timeout_secs: u64,
    #[serde(rename = "a", default, skip_serializing_if = "Option::is_none")]
    ip: Option<String>,
    #[serde(rename = "b", default, skip_serializing_if = "Option::is_none")]
    user_agent: Option<String>,
}

/// The `u`, `d`, `l` fields of a session hash, each absent if the key is.
pub(super) type SessionFields = (Option<String>, Option<Vec<u8>>, Option<UnixTime>);

pub(super) fn encode(s: &Session) -> Result<Vec<u8>, StoreError> {
    let stored = StoredSession {
        user: Some(s.identity.user.clone()),
        email: s.identity.email.clone(),
        groups: s.identity.groups.clone(),
        roles: s.identity.roles.clone(),
        method: s.identity.method.header_value(),
        mfa: s.identity.mfa.as_str().to_owned(),
        created_at: s.created_at,
        expires_at: s.expires_at,
        idle_timeout_secs: s.idle_timeout.as_secs(),
        ip: s.ip.clone(),
        user_agent: s.user_agent.clone(),
    };
    serde_json::to_vec(&stored).map_err(|e| StoreError::Corrupt(format!("session encode: {e}")))
}

/// Rebuilds a session from its hash fields; `None` when the key does not exist.
pub(super) fn decode(
    id: SessionId,
    (owner, data, last_seen): SessionFields,
) -> Result<Option<Session>, StoreError> {
    let (owner, data, last_seen) = match (owner, data, last_seen) {
        (None, None, None) => return Ok(None),
        (Some(u), Some(d), Some(l)) => (u, d, l),
        _ => return Err(StoreError::Corrupt("session hash lacks a field".into())),
    };
    let st: StoredSession = serde_json::from_slice(&data)
        .map_err(|e| StoreError::Corrupt(format!("session decode: {e}")))?;
    let method = AuthMethod::parse(&st.method)
        .ok_or_else(|| StoreError::Corrupt("session has an unknown auth method".into()))?;
    let mfa = MfaUsed::parse(&st.mfa)
        .ok_or_else(|| StoreError::Corrupt("session has an unknown mfa kind".into()))?;
    let (user, principal) = match st.user {
        Some(user) => (user, owner),
        // Written before principals: `u` is the user name; the principal follows from it.
        None => {
            let principal = format!("{}:{owner}", method.header_value());
            (owner, principal)
        }
    };
    Ok(Some(Session::restore(
        id,
        Identity {
            user,
            principal,
            email: st.email,
            groups: st.groups,
            roles: st.roles,
            method,
            mfa,
        },
        st.created_at,
        st.expires_at,
        Duration::from_secs(st.idle_timeout_secs),
        st.ip,
        st.user_agent,
        last_seen,
    )?))
}

/// Redis TTL of a session key written at `at` (gateway clock): until its absolute end or its
/// idle timeout, whichever comes first. Differences within one clock, never negative, ≥ 1 s.
pub(super) fn session_ttl_ms(s: &Session, at: UnixTime) -> u64 {
    let to_end = u64::try_from(s.expires_at.saturating_sub(at)).unwrap_or(0);
    to_end
        .min(s.idle_timeout.as_secs())
        .saturating_mul(1000)
        .clamp(1000, MAX_TTL_MS)
}

/// Redis TTL of short-lived state, ≥ 1 s like the memory store.
pub(super) fn ttl_ms(ttl: Duration) -> u64 {
    u64::try_from(ttl.as_millis())
        .unwrap_or(MAX_TTL_MS)
        .clamp(1000, MAX_TTL_MS)
}
