//! The [`SessionStore`] seam: what the gateway asks of wherever sessions and short-lived state
//! live. Two implementations (`memory`, `redis`), picked once at start-up through
//! `AnySessionStore` (`any_store.rs`); no boxing per request.
//! Invariants: `Ok(None)` means absent; `Err(StoreError::Unavailable)` means fail closed (503);
//! single-use operations (`take_ephemeral`, `claim_once`, `set_take`) are atomic across
//! replicas; the store never sees a cookie value, only its hash ([`SessionId`]).

use super::id::SessionId;
use super::model::Session;
use crate::clock::UnixTime;
use crate::storage::StoreError;
use std::sync::Arc;
use std::time::Duration;

/// The seam between the gateway and where sessions and short-lived state live.
/// `Ok(None)` means absent; `Err(StoreError::Unavailable)` means fail closed (503).
#[allow(async_fn_in_trait)] // implementations are picked at start-up through `AnySessionStore`
pub trait SessionStore {
    async fn get(&self, id: &SessionId) -> Result<Option<Arc<Session>>, StoreError>;
    async fn insert(&self, session: Session) -> Result<Arc<Session>, StoreError>;
    /// Records activity; callers do this at most once per touch interval.
    async fn touch(&self, session: &Session, now: UnixTime) -> Result<(), StoreError>;
    async fn remove(&self, id: &SessionId) -> Result<Option<Arc<Session>>, StoreError>;
    /// Removes every session owned by `principal` (`Identity::principal`).
    async fn remove_principal(&self, principal: &str) -> Result<Vec<SessionId>, StoreError>;
    /// Sessions ordered by id, after the `after` cursor, optionally of one principal only.
    async fn list(
        &self,
        principal: Option<&str>,
        after: Option<&SessionId>,
        limit: usize,
    ) -> Result<Vec<Arc<Session>>, StoreError>;
    async fn count(&self) -> Result<usize, StoreError>;
    async fn ping(&self) -> Result<(), StoreError>;

    /// Stores a short-lived value (pending logins, email codes, SSO state).
    async fn put_ephemeral(
        &self,
        key: &str,
        value: Vec<u8>,
        ttl: Duration,
    ) -> Result<(), StoreError>;
    async fn get_ephemeral(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError>;
    /// Atomically reads and deletes: a value can be taken once (single-use state).
    async fn take_ephemeral(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError>;
    async fn delete_ephemeral(&self, key: &str) -> Result<(), StoreError>;
    /// Adds one to a counter that lives `window` from its first increment; returns the new count.
    async fn incr(&self, key: &str, window: Duration) -> Result<u64, StoreError>;
    async fn counter(&self, key: &str) -> Result<u64, StoreError>;
    /// Takes one back from a live counter (never below zero, never creating one).
    async fn decr(&self, key: &str) -> Result<(), StoreError>;
    async fn reset_counter(&self, key: &str) -> Result<(), StoreError>;
    /// True the first time a key is claimed within `ttl` (replay caches).
    async fn claim_once(&self, key: &str, ttl: Duration) -> Result<bool, StoreError>;
    /// Adds `member` to the set under `key` in one atomic step (no read-modify-write, so
    /// concurrent adders on any replicas never drop each other's members). The set lives at
    /// least `ttl` from now and keeps its newest `cap` members.
    async fn set_add(
        &self,
        key: &str,
        member: &str,
        ttl: Duration,
        cap: usize,
    ) -> Result<(), StoreError>;
    /// Atomically reads and deletes the set under `key` (empty when there is none).
    async fn set_take(&self, key: &str) -> Result<Vec<String>, StoreError>;
}
