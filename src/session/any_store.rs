//! [`AnySessionStore`]: the session store chosen at start-up (memory or Redis), as one enum so
//! the proxy path makes no dynamic call and no allocation to reach it. It only forwards; what
//! each call means is documented on [`SessionStore`]. Apart from the trait (`store.rs`) so the
//! stores can implement the trait without importing this file, which imports them.

use super::id::SessionId;
use super::memory::MemoryStore;
use super::model::Session;
use super::redis::RedisStore;
use super::store::SessionStore;
use crate::clock::UnixTime;
use crate::storage::StoreError;
use std::sync::Arc;
use std::time::Duration;

/// The session store chosen at start-up.
#[derive(Clone)]
pub enum AnySessionStore {
    Memory(MemoryStore),
    Redis(RedisStore),
}

impl AnySessionStore {
    /// Starts the store's background work (the memory store's expiry sweep).
    pub fn spawn_background(&self) {
        match self {
            AnySessionStore::Memory(m) => m.spawn_sweeper(Duration::from_secs(30)),
            // Redis drops expired keys by their TTLs; the indexes are pruned lazily. The
            // subscriber keeps this replica's session cache honest.
            AnySessionStore::Redis(r) => r.spawn_invalidation(),
        }
    }
}

macro_rules! forward {
    ($self:ident, $s:ident => $e:expr) => {
        match $self {
            AnySessionStore::Memory($s) => $e,
            AnySessionStore::Redis($s) => $e,
        }
    };
}

impl SessionStore for AnySessionStore {
    async fn get(&self, id: &SessionId) -> Result<Option<Arc<Session>>, StoreError> {
        // The Redis read's future is large; boxed, it stays out of every request's future
        // (which hyper moves). A hit in the replica's cache needs neither it nor the box.
        match self {
            AnySessionStore::Memory(s) => s.get(id).await,
            AnySessionStore::Redis(s) => match s.cached(id) {
                Some(hit) => Ok(Some(hit)),
                None => Box::pin(s.read(id)).await,
            },
        }
    }
    async fn insert(&self, session: Session) -> Result<Arc<Session>, StoreError> {
        forward!(self, s => s.insert(session).await)
    }
    async fn touch(&self, session: &Session, now: UnixTime) -> Result<(), StoreError> {
        forward!(self, s => s.touch(session, now).await)
    }
    async fn remove(&self, id: &SessionId) -> Result<Option<Arc<Session>>, StoreError> {
        forward!(self, s => s.remove(id).await)
    }
    async fn remove_principal(&self, principal: &str) -> Result<Vec<SessionId>, StoreError> {
        forward!(self, s => s.remove_principal(principal).await)
    }
    async fn list(
        &self,
        principal: Option<&str>,
        after: Option<&SessionId>,
        limit: usize,
    ) -> Result<Vec<Arc<Session>>, StoreError> {
        forward!(self, s => s.list(principal, after, limit).await)
    }
    async fn count(&self) -> Result<usize, StoreError> {
        forward!(self, s => s.count().await)
    }
    async fn ping(&self) -> Result<(), StoreError> {
        forward!(self, s => s.ping().await)
    }
    async fn put_ephemeral(
        &self,
        key: &str,
        value: Vec<u8>,
        ttl: Duration,
    ) -> Result<(), StoreError> {
        forward!(self, s => s.put_ephemeral(key, value, ttl).await)
    }
    async fn get_ephemeral(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        forward!(self, s => s.get_ephemeral(key).await)
    }
    async fn take_ephemeral(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        forward!(self, s => s.take_ephemeral(key).await)
    }
    async fn delete_ephemeral(&self, key: &str) -> Result<(), StoreError> {
        forward!(self, s => s.delete_ephemeral(key).await)
    }
    async fn incr(&self, key: &str, window: Duration) -> Result<u64, StoreError> {
        forward!(self, s => s.incr(key, window).await)
    }
    async fn counter(&self, key: &str) -> Result<u64, StoreError> {
        forward!(self, s => s.counter(key).await)
    }
    async fn decr(&self, key: &str) -> Result<(), StoreError> {
        forward!(self, s => s.decr(key).await)
    }
    async fn reset_counter(&self, key: &str) -> Result<(), StoreError> {
        forward!(self, s => s.reset_counter(key).await)
    }
    async fn claim_once(&self, key: &str, ttl: Duration) -> Result<bool, StoreError> {
        forward!(self, s => s.claim_once(key, ttl).await)
    }
    async fn set_add(
        &self,
        key: &str,
        member: &str,
        ttl: Duration,
        cap: usize,
    ) -> Result<(), StoreError> {
        forward!(self, s => s.set_add(key, member, ttl, cap).await)
    }
    async fn set_take(&self, key: &str) -> Result<Vec<String>, StoreError> {
        forward!(self, s => s.set_take(key).await)
    }
}
