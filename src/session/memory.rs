//! The embedded session store: sessions and short-lived state in `dashmap`s, one process only.
//! Expired entries are refused on read and removed by a background sweep; maps are capped.

use super::{Session, SessionId, SessionStore};
use crate::clock::{Clock, UnixTime};
use crate::storage::StoreError;
use dashmap::DashMap;
use std::sync::Arc;
use std::time::Duration;

/// Entries kept for short-lived state before new ones are refused (bounded memory).
const MAX_EPHEMERAL: usize = 1_000_000;

#[derive(Clone)]
pub struct MemoryStore {
    inner: Arc<Inner>,
}

struct Inner {
    clock: Clock,
    max_sessions: usize,
    max_ephemeral: usize,
    sessions: DashMap<SessionId, Arc<Session>>,
    by_user: DashMap<String, Vec<SessionId>>,
    ephemeral: DashMap<String, (UnixTime, Vec<u8>)>,
    counters: DashMap<String, (UnixTime, u64)>,
}

fn ttl_end(now: UnixTime, ttl: Duration) -> UnixTime {
    now.saturating_add(i64::try_from(ttl.as_secs().max(1)).unwrap_or(i64::MAX))
}

impl MemoryStore {
    pub fn new(clock: Clock, max_sessions: usize) -> Self {
        Self::with_limits(clock, max_sessions, MAX_EPHEMERAL)
    }

    /// As `new`, with the cap on short-lived entries (pending logins, replay caches, codes) and
    /// on counters (rate limits, lockout) given.
    pub fn with_limits(clock: Clock, max_sessions: usize, max_ephemeral: usize) -> Self {
        Self {
            inner: Arc::new(Inner {
                clock,
                max_sessions,
                max_ephemeral,
                sessions: DashMap::new(),
                by_user: DashMap::new(),
                ephemeral: DashMap::new(),
                counters: DashMap::new(),
            }),
        }
    }

    /// Room for one more short-lived entry: expired ones are swept first; a map full of live
    /// entries refuses (bounded memory under a flood; callers fail closed).
    fn room_for_ephemeral(&self) -> Result<(), StoreError> {
        if self.inner.ephemeral.len() >= self.inner.max_ephemeral {
            self.sweep();
            if self.inner.ephemeral.len() >= self.inner.max_ephemeral {
                return Err(StoreError::Unavailable("short-lived state is full".into()));
            }
        }
        Ok(())
    }

    /// Removes expired sessions and short-lived entries; returns how many sessions went.
    pub fn sweep(&self) -> usize {
        let now = self.inner.clock.now();
        let mut dead: Vec<SessionId> = Vec::new();
        for e in self.inner.sessions.iter() {
            if e.value().check(now).is_err() {
                dead.push(e.key().clone());
            } else {
                // A signed assertion is reused for 30 s only; an idle session need not keep its
                // ~700 bytes until the next request (memory budget, DESIGN.md §7).
                crate::assertion::drop_stale(e.value(), now);
            }
        }
        for id in &dead {
            self.remove_now(id);
        }
        self.inner.ephemeral.retain(|_, (end, _)| *end > now);
        self.inner.counters.retain(|_, (end, _)| *end > now);
        dead.len()
    }

    /// Runs `sweep` every `every` until the process ends.
    pub fn spawn_sweeper(&self, every: Duration) {
        let store = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let n = store.sweep();
                if n > 0 {
                    tracing::debug!(removed = n, "expired sessions swept");
                }
            }
        });
    }

    fn remove_now(&self, id: &SessionId) -> Option<Arc<Session>> {
        let (_, s) = self.inner.sessions.remove(id)?;
        if let Some(mut ids) = self.inner.by_user.get_mut(&s.identity.user) {
            ids.retain(|x| x != id);
        }
        self.inner
            .by_user
            .remove_if(&s.identity.user, |_, v| v.is_empty());
        Some(s)
    }
}

impl SessionStore for MemoryStore {
    async fn get(&self, id: &SessionId) -> Result<Option<Arc<Session>>, StoreError> {
        Ok(self.inner.sessions.get(id).map(|e| Arc::clone(e.value())))
    }

    async fn insert(&self, session: Session) -> Result<Arc<Session>, StoreError> {
        if self.inner.sessions.len() >= self.inner.max_sessions && self.sweep() == 0 {
            // Refuse rather than evict someone's live session.
            return Err(StoreError::Unavailable("session store is full".into()));
        }
        let s = Arc::new(session);
        self.inner
            .by_user
            .entry(s.identity.user.clone())
            .or_default()
            .push(s.id.clone());
        self.inner.sessions.insert(s.id.clone(), Arc::clone(&s));
        Ok(s)
    }

    async fn touch(&self, session: &Session, now: UnixTime) -> Result<(), StoreError> {
        session.set_last_seen(now);
        Ok(())
    }

    async fn remove(&self, id: &SessionId) -> Result<Option<Arc<Session>>, StoreError> {
        Ok(self.remove_now(id))
    }

    async fn remove_user(&self, user: &str) -> Result<Vec<SessionId>, StoreError> {
        let ids = self
            .inner
            .by_user
            .remove(user)
            .map(|(_, v)| v)
            .unwrap_or_default();
        for id in &ids {
            self.inner.sessions.remove(id);
        }
        Ok(ids)
    }

    async fn list(
        &self,
        user: Option<&str>,
        after: Option<&SessionId>,
        limit: usize,
    ) -> Result<Vec<Arc<Session>>, StoreError> {
        let now = self.inner.clock.now();
        let mut out: Vec<Arc<Session>> = match user {
            Some(u) => self
                .inner
                .by_user
                .get(u)
                .map(|ids| {
                    ids.iter()
                        .filter_map(|id| self.inner.sessions.get(id).map(|e| Arc::clone(e.value())))
                        .collect()
                })
                .unwrap_or_default(),
            None => self
                .inner
                .sessions
                .iter()
                .map(|e| Arc::clone(e.value()))
                .collect(),
        };
        out.retain(|s| s.check(now).is_ok() && after.is_none_or(|a| &s.id > a));
        out.sort_by(|a, b| a.id.cmp(&b.id));
        out.truncate(limit);
        Ok(out)
    }

    async fn count(&self) -> Result<usize, StoreError> {
        Ok(self.inner.sessions.len())
    }

    async fn ping(&self) -> Result<(), StoreError> {
        Ok(())
    }

    async fn put_ephemeral(
        &self,
        key: &str,
        value: Vec<u8>,
        ttl: Duration,
    ) -> Result<(), StoreError> {
        self.room_for_ephemeral()?;
        let end = ttl_end(self.inner.clock.now(), ttl);
        self.inner.ephemeral.insert(key.to_owned(), (end, value));
        Ok(())
    }

    async fn get_ephemeral(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let now = self.inner.clock.now();
        Ok(self
            .inner
            .ephemeral
            .get(key)
            .filter(|e| e.value().0 > now)
            .map(|e| e.value().1.clone()))
    }

    async fn take_ephemeral(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let now = self.inner.clock.now();
        // `remove` is atomic per key: of two concurrent takers exactly one gets the value.
        Ok(self
            .inner
            .ephemeral
            .remove(key)
            .and_then(|(_, (end, v))| (end > now).then_some(v)))
    }

    async fn delete_ephemeral(&self, key: &str) -> Result<(), StoreError> {
        self.inner.ephemeral.remove(key);
        Ok(())
    }

    async fn incr(&self, key: &str, window: Duration) -> Result<u64, StoreError> {
        let now = self.inner.clock.now();
        if self.inner.counters.len() >= self.inner.max_ephemeral {
            self.sweep();
            // Still full of live counters: refuse (the caller fails closed) rather than grow.
            if self.inner.counters.len() >= self.inner.max_ephemeral
                && !self.inner.counters.contains_key(key)
            {
                return Err(StoreError::Unavailable(
                    "rate-limit counters are full".into(),
                ));
            }
        }
        let mut e = self
            .inner
            .counters
            .entry(key.to_owned())
            .or_insert((ttl_end(now, window), 0));
        if e.0 <= now {
            *e = (ttl_end(now, window), 0);
        }
        e.1 = e.1.saturating_add(1);
        Ok(e.1)
    }

    async fn counter(&self, key: &str) -> Result<u64, StoreError> {
        let now = self.inner.clock.now();
        Ok(self
            .inner
            .counters
            .get(key)
            .filter(|e| e.value().0 > now)
            .map_or(0, |e| e.value().1))
    }

    async fn reset_counter(&self, key: &str) -> Result<(), StoreError> {
        self.inner.counters.remove(key);
        Ok(())
    }

    async fn claim_once(&self, key: &str, ttl: Duration) -> Result<bool, StoreError> {
        if !self.inner.ephemeral.contains_key(key) {
            self.room_for_ephemeral()?;
        }
        let now = self.inner.clock.now();
        let end = ttl_end(now, ttl);
        let mut fresh = false;
        self.inner
            .ephemeral
            .entry(key.to_owned())
            .and_modify(|e| {
                if e.0 <= now {
                    *e = (end, Vec::new());
                    fresh = true;
                }
            })
            .or_insert_with(|| {
                fresh = true;
                (end, Vec::new())
            });
        Ok(fresh)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::session::{AuthMethod, Identity, MfaUsed};
    use hyper::header::HeaderValue;

    fn session(id: &str, user: &str, now: UnixTime) -> Session {
        Session::new(
            SessionId(id.into()),
            Identity {
                user: user.into(),
                email: None,
                groups: vec![],
                roles: vec!["agent".into()],
                method: AuthMethod::Native,
                mfa: MfaUsed::Totp,
            },
            now,
            Duration::from_secs(3600),
            Duration::from_secs(600),
            None,
            None,
        )
    }

    #[tokio::test]
    async fn removing_a_users_sessions_removes_all_of_them_and_only_theirs() {
        let clock = Clock::manual(1000);
        let st = MemoryStore::new(clock, 10);
        st.insert(session("a", "ann", 1000)).await.unwrap();
        st.insert(session("b", "ann", 1000)).await.unwrap();
        st.insert(session("c", "bob", 1000)).await.unwrap();
        let mut gone = st.remove_user("ann").await.unwrap();
        gone.sort();
        assert_eq!(gone, vec![SessionId("a".into()), SessionId("b".into())]);
        assert!(st.get(&SessionId("a".into())).await.unwrap().is_none());
        assert!(st.get(&SessionId("c".into())).await.unwrap().is_some());
    }

    #[tokio::test]
    async fn sweep_removes_idle_and_expired_sessions() {
        let clock = Clock::manual(1000);
        let st = MemoryStore::new(clock.clone(), 10);
        st.insert(session("a", "ann", 1000)).await.unwrap();
        clock.advance(599);
        assert_eq!(st.sweep(), 0);
        clock.advance(1);
        assert_eq!(st.sweep(), 1);
        assert_eq!(st.count().await.unwrap(), 0);
    }

    #[tokio::test]
    async fn sweep_forgets_assertions_that_can_no_longer_be_reused() {
        let clock = Clock::manual(1000);
        let st = MemoryStore::new(clock.clone(), 10);
        let s = st.insert(session("a", "ann", 1000)).await.unwrap();
        let cached = |s: &Session| s.assertion.read().unwrap().is_some();
        *s.assertion.write().unwrap() = Some((1000, HeaderValue::from_static("jwt")));
        clock.advance(29);
        st.sweep();
        assert!(cached(&s), "still reusable: kept");
        clock.advance(1);
        st.sweep();
        assert!(!cached(&s), "30 s old: dropped, the session stays");
        assert_eq!(st.count().await.unwrap(), 1);
    }

    #[tokio::test]
    async fn a_full_store_refuses_new_sessions() {
        let st = MemoryStore::new(Clock::manual(1000), 1);
        st.insert(session("a", "ann", 1000)).await.unwrap();
        assert!(matches!(
            st.insert(session("b", "bob", 1000)).await,
            Err(StoreError::Unavailable(_))
        ));
    }

    #[tokio::test]
    async fn short_lived_state_and_counters_refuse_past_their_cap_and_evict_expired_entries() {
        let clock = Clock::manual(1000);
        let st = MemoryStore::with_limits(clock.clone(), 10, 3);
        let ttl = Duration::from_secs(60);
        for k in ["a", "b"] {
            st.put_ephemeral(k, b"v".to_vec(), ttl).await.unwrap();
        }
        assert!(st.claim_once("nonce-1", ttl).await.unwrap());
        // Full of live entries: new pending logins and replay-cache entries are refused.
        assert!(matches!(
            st.put_ephemeral("c", b"v".to_vec(), ttl).await,
            Err(StoreError::Unavailable(_))
        ));
        assert!(st.claim_once("nonce-2", ttl).await.is_err());
        // A known replay-cache key is still answered (a replay stays refused, not an error).
        assert!(!st.claim_once("nonce-1", ttl).await.unwrap());
        for k in ["x", "y", "z"] {
            st.incr(k, ttl).await.unwrap();
        }
        assert!(st.incr("w", ttl).await.is_err(), "counters are capped too");
        assert_eq!(
            st.incr("x", ttl).await.unwrap(),
            2,
            "existing counters still count"
        );
        // Once they expire, the sweep makes room again.
        clock.advance(61);
        st.put_ephemeral("c", b"v".to_vec(), ttl).await.unwrap();
        assert!(st.claim_once("nonce-2", ttl).await.unwrap());
        assert_eq!(st.incr("w", ttl).await.unwrap(), 1);
        assert!(st.inner.ephemeral.len() <= 3 && st.inner.counters.len() <= 3);
    }

    #[tokio::test]
    async fn ephemeral_values_are_taken_once_and_expire() {
        let clock = Clock::manual(1000);
        let st = MemoryStore::new(clock.clone(), 10);
        st.put_ephemeral("k", b"v".to_vec(), Duration::from_secs(60))
            .await
            .unwrap();
        assert_eq!(st.take_ephemeral("k").await.unwrap(), Some(b"v".to_vec()));
        assert_eq!(st.take_ephemeral("k").await.unwrap(), None);
        st.put_ephemeral("k2", b"v".to_vec(), Duration::from_secs(60))
            .await
            .unwrap();
        clock.advance(60);
        assert_eq!(st.get_ephemeral("k2").await.unwrap(), None);
    }

    #[tokio::test]
    async fn claims_and_counters_respect_their_windows() {
        let clock = Clock::manual(1000);
        let st = MemoryStore::new(clock.clone(), 10);
        assert!(st.claim_once("x", Duration::from_secs(30)).await.unwrap());
        assert!(!st.claim_once("x", Duration::from_secs(30)).await.unwrap());
        assert_eq!(st.incr("c", Duration::from_secs(10)).await.unwrap(), 1);
        assert_eq!(st.incr("c", Duration::from_secs(10)).await.unwrap(), 2);
        clock.advance(10);
        assert_eq!(st.counter("c").await.unwrap(), 0);
        assert!(!st.claim_once("x", Duration::from_secs(30)).await.unwrap());
        clock.advance(20);
        assert!(st.claim_once("x", Duration::from_secs(30)).await.unwrap());
    }
}
