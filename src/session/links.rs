//! The IdP session index: which gateway sessions came from which IdP login, so that every kind
//! of single logout can find them. Back-channel and IdP-initiated logout name an IdP session
//! (`sid`, SAML `SessionIndex`) or a subject (`sub`, SAML `NameID`) and end every session
//! listed under it; RP/SP-initiated logout takes the [`SessionLink`] of the session it ends
//! to reach the IdP's logout endpoint.
//!
//! Store layout (short-lived state of the [`SessionStore`], all living as long as the session):
//!
//! | key                          | kind            | holds                                  |
//! |------------------------------|-----------------|----------------------------------------|
//! | `oidc-sid:{idp}:{hashed sid}` | set (`set_add`) | ids of the sessions of one IdP session |
//! | `oidc-sub:{idp}:{hashed sub}` | set (`set_add`) | ids of the sessions of one subject     |
//! | `oidc-session:{session id}`  | ephemeral value | the session's [`SessionLink`] (JSON)   |
//!
//! (The `oidc-` names predate SAML and are kept: sessions linked by a running version must
//! still be found after an upgrade.)
//!
//! Invariants: a set only grows by the store's atomic `set_add` (never get-push-put), so two
//! replicas linking the same subject at once both stay listed; it is emptied by the atomic
//! `set_take`, so of two concurrent logouts one ends the sessions. Audit events, logging and
//! HTTP belong to the callers (`server/sso.rs`); this module takes the store and the time.

use super::id::SessionId;
use super::keys::hashed;
use super::model::Session;
use super::store::SessionStore;
use crate::clock::UnixTime;
use crate::storage::StoreError;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::Duration;

/// Sessions kept per IdP subject or session; the oldest links go first (their sessions still
/// end by expiry or locally).
pub const MAX_LINKS: usize = 64;

/// The store key listing the sessions of an IdP session (`sid`, SAML `SessionIndex`).
pub fn sid_key(idp: &str, sid: &str) -> String {
    format!("oidc-sid:{idp}:{}", hashed(sid))
}

/// The store key listing the sessions of an IdP subject (`sub`, SAML `NameID`).
pub fn sub_key(idp: &str, sub: &str) -> String {
    format!("oidc-sub:{idp}:{}", hashed(sub))
}

/// The store key of one session's [`SessionLink`].
fn link_key(id: &SessionId) -> String {
    format!("oidc-session:{}", id.as_str())
}

/// What logout needs of a session's IdP login. Stored as JSON; fields added later default, so
/// links written by an older version still decode.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionLink {
    pub idp: String,
    /// OIDC: the ID token (the `id_token_hint`); SAML: empty.
    pub id_token: String,
    #[serde(default)]
    pub sub: String,
    #[serde(default)]
    pub sid: Option<String>,
    /// SAML: the NameID's Format, echoed in a LogoutRequest.
    #[serde(default)]
    pub name_id_format: Option<String>,
}

/// Records that `session` came from the IdP login `link`, at `now`: its link record, then its
/// id in the subject's set and (when the IdP named one) in the IdP session's set. Everything
/// lives until the session's absolute end (at least a minute). Stops at the first store error;
/// the caller decides what a failure means (the session itself stays valid).
pub async fn add<S: SessionStore>(
    store: &S,
    now: UnixTime,
    session: &Session,
    link: &SessionLink,
) -> Result<(), StoreError> {
    let ttl =
        Duration::from_secs(u64::try_from(session.expires_at.saturating_sub(now)).unwrap_or(0))
            .max(Duration::from_secs(60));
    // Serialising a struct of strings cannot fail; an empty record would only decode as none.
    let value = serde_json::to_vec(link).unwrap_or_default();
    store
        .put_ephemeral(&link_key(&session.id), value, ttl)
        .await?;
    // One atomic add per index (never get-push-put): two replicas linking the same subject at
    // once both stay listed, so back-channel logout ends both sessions.
    store
        .set_add(
            &sub_key(&link.idp, &link.sub),
            session.id.as_str(),
            ttl,
            MAX_LINKS,
        )
        .await?;
    if let Some(sid) = &link.sid {
        store
            .set_add(
                &sid_key(&link.idp, sid),
                session.id.as_str(),
                ttl,
                MAX_LINKS,
            )
            .await?;
    }
    Ok(())
}

/// Takes the link record of session `id` (logout consumes it): `Ok(None)` when there is none,
/// `Corrupt` when the stored record does not decode.
pub async fn take<S: SessionStore>(
    store: &S,
    id: &SessionId,
) -> Result<Option<SessionLink>, StoreError> {
    let Some(bytes) = store.take_ephemeral(&link_key(id)).await? else {
        return Ok(None);
    };
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|e| StoreError::Corrupt(format!("session link: {e}")))
}

/// Takes the set under `key` (a [`sid_key`] or [`sub_key`]) in one atomic step: the ids of the
/// sessions to end. Entries that are not session ids are dropped.
pub async fn take_listed<S: SessionStore>(
    store: &S,
    key: &str,
) -> Result<Vec<SessionId>, StoreError> {
    Ok(store
        .set_take(key)
        .await?
        .iter()
        .filter_map(|i| SessionId::parse(i))
        .collect())
}

/// Ends one listed session: removes it and then its link record. Returns the session when it
/// was still there (the caller records the logout), `None` when it had already ended.
pub async fn end_session<S: SessionStore>(
    store: &S,
    id: &SessionId,
) -> Result<Option<Arc<Session>>, StoreError> {
    let Some(s) = store.remove(id).await? else {
        return Ok(None);
    };
    // The session is gone, which is what logout is for; a link record left behind expires
    // with its TTL and names no live session.
    let _ = store.delete_ephemeral(&link_key(id)).await;
    Ok(Some(s))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::clock::Clock;
    use crate::session::{AuthMethod, Identity, MemoryStore, MfaUsed};

    fn session(n: u8, sub: &str) -> Session {
        Session::new(
            SessionId::of(&crate::secret::SessionToken::new(format!("token-{n}"))),
            Identity {
                user: sub.into(),
                principal: format!("corp:{sub}"),
                email: None,
                groups: vec![],
                roles: vec!["agent".into()],
                method: AuthMethod::Oidc("corp".into()),
                mfa: MfaUsed::Idp,
            },
            1_000,
            Duration::from_secs(3600),
            Duration::from_secs(600),
            None,
            None,
        )
        .unwrap()
    }

    fn link(sub: &str, sid: Option<&str>) -> SessionLink {
        SessionLink {
            idp: "corp".into(),
            id_token: "eyJ.token".into(),
            sub: sub.into(),
            sid: sid.map(str::to_owned),
            name_id_format: None,
        }
    }

    #[tokio::test]
    async fn a_linked_session_is_found_by_its_sid_and_its_sub_and_ended_once() {
        let store = MemoryStore::new(Clock::manual(1_000), 10);
        let a = store.insert(session(1, "ann")).await.unwrap();
        let b = store.insert(session(2, "ann")).await.unwrap();
        add(&store, 1_000, &a, &link("ann", Some("sid-1")))
            .await
            .unwrap();
        add(&store, 1_000, &b, &link("ann", None)).await.unwrap();

        let mut by_sub = take_listed(&store, &sub_key("corp", "ann")).await.unwrap();
        by_sub.sort();
        let mut both = vec![a.id.clone(), b.id.clone()];
        both.sort();
        assert_eq!(by_sub, both);
        assert!(take_listed(&store, &sub_key("corp", "ann"))
            .await
            .unwrap()
            .is_empty());
        assert_eq!(
            take_listed(&store, &sid_key("corp", "sid-1"))
                .await
                .unwrap(),
            vec![a.id.clone()]
        );

        assert_eq!(end_session(&store, &a.id).await.unwrap().unwrap().id, a.id);
        assert!(end_session(&store, &a.id).await.unwrap().is_none());
        assert!(store.get(&a.id).await.unwrap().is_none());
        // Ending a session drops its link record; the other keeps its own.
        assert_eq!(take(&store, &a.id).await.unwrap(), None);
        assert_eq!(take(&store, &b.id).await.unwrap(), Some(link("ann", None)));
        assert_eq!(take(&store, &b.id).await.unwrap(), None, "taken once");
    }

    #[test]
    fn index_keys_hash_the_idp_values_and_keep_the_stored_names() {
        assert_eq!(
            sid_key("corp", "s"),
            format!("oidc-sid:corp:{}", hashed("s"))
        );
        assert_eq!(
            sub_key("corp", "u"),
            format!("oidc-sub:corp:{}", hashed("u"))
        );
        assert!(!sub_key("corp", "ann@example.com").contains("ann"));
    }
}
