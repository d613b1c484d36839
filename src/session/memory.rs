//! The embedded session store: sessions and short-lived state in `dashmap`s, one process only.
//! Expired entries are refused on read and removed by a background sweep; maps are capped.
//!
//! Sessions are kept compact ([`super::compact`], a few hundred bytes each) and decoded into a
//! bounded set of hot `Arc<Session>`s on use, so a million sessions fit the memory budget
//! (DESIGN.md §7) while active ones cost no decoding. Invariant: a session is hot only while
//! its compact entry exists; removal takes the compact entry first, then the hot one, and a
//! lookup that decoded concurrently checks the compact entry again after publishing its result.

use super::compact;
use super::id::SessionId;
use super::model::Session;
use super::owners::OwnerKeys;
use super::store::SessionStore;
use crate::clock::{Clock, UnixTime};
use crate::storage::StoreError;
use dashmap::DashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Entries kept for short-lived state before new ones are refused (bounded memory).
const MAX_EPHEMERAL: usize = 1_000_000;
/// Decoded sessions kept ready for the proxy path; past this the set is emptied and refilled
/// by use (about 1.2 KB each, so at most ~40 MB).
const HOT_CAP: usize = 32_768;

/// A session id as the maps key it: the 16 bytes its 22 characters encode, inline. Six bytes
/// fewer than the text make a map entry 56 bytes instead of 64 (at a million sessions, about
/// 2 million buckets: 16 MB). An id that is not such an encoding has no key: never stored.
type Key = [u8; 16];

fn key(id: &SessionId) -> Option<Key> {
    id.to_bytes()
}

fn id_of(k: &Key) -> SessionId {
    SessionId::from_bytes(k)
}

/// A stored session: what expiry needs, plain; the rest (owner first) compact.
struct Cold {
    data: Box<[u8]>,
    last_seen: AtomicI64,
    expires_at: UnixTime,
    idle_secs: u32,
}

impl Cold {
    fn alive(&self, now: UnixTime) -> bool {
        now < self.expires_at
            && now.saturating_sub(self.last_seen.load(Ordering::Relaxed))
                < i64::from(self.idle_secs)
    }

    fn owner(&self, shared: &compact::Interner) -> String {
        compact::owner(&self.data, shared).unwrap_or_default()
    }

    fn decode(&self, k: &Key, shared: &compact::Interner) -> Result<Session, StoreError> {
        compact::decode(
            id_of(k),
            &self.data,
            self.last_seen.load(Ordering::Relaxed),
            shared,
        )
        .ok_or_else(|| StoreError::Corrupt("stored session does not decode".into()))
    }
}

/// Distinct shared strings (user agents, groups, roles, login methods) kept by one store.
const INTERNED_CAP: usize = 65_536;

#[derive(Clone)]
pub struct MemoryStore {
    inner: Arc<Inner>,
}

struct Inner {
    clock: Clock,
    max_sessions: usize,
    max_ephemeral: usize,
    sessions: DashMap<Key, Cold>,
    hot: DashMap<Key, Arc<Session>>,
    /// Session keys by a keyed hash of their owner (8 bytes instead of the principal); entries
    /// are checked against each session's own owner, so a collision only costs a lookup.
    by_owner: DashMap<u64, OwnerKeys<Key>>,
    owner_hash: std::collections::hash_map::RandomState,
    shared: compact::Interner,
    ephemeral: DashMap<String, (UnixTime, Vec<u8>)>,
    counters: DashMap<String, (UnixTime, u64)>,
    /// Small sets (IdP session links): changed under their entry's lock, never read-modify-write.
    sets: DashMap<String, (UnixTime, Vec<String>)>,
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
                hot: DashMap::new(),
                by_owner: DashMap::new(),
                owner_hash: std::collections::hash_map::RandomState::new(),
                shared: compact::Interner::new(INTERNED_CAP),
                ephemeral: DashMap::new(),
                counters: DashMap::new(),
                sets: DashMap::new(),
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
        let dead: Vec<Key> = self
            .inner
            .sessions
            .iter()
            .filter(|e| !e.value().alive(now))
            .map(|e| *e.key())
            .collect();
        for k in &dead {
            self.take(k);
        }
        // A signed assertion is reused only until the deadline its signer set (30 s); a session
        // that went quiet need not keep its ~700 bytes until the next request (memory budget,
        // DESIGN.md §7).
        for e in self.inner.hot.iter() {
            e.value().assertion.drop_stale(now);
        }
        self.inner.ephemeral.retain(|_, (end, _)| *end > now);
        self.inner.counters.retain(|_, (end, _)| *end > now);
        self.inner.sets.retain(|_, (end, _)| *end > now);
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

    fn owner_key(&self, principal: &str) -> u64 {
        use std::hash::BuildHasher as _;
        self.inner.owner_hash.hash_one(principal)
    }

    /// Takes a session out: the compact entry first, then the hot one (see the module invariant).
    /// Returns the stored entry and the hot copy, if any; only callers that need the session
    /// decode it.
    fn take(&self, k: &Key) -> Option<(Cold, Option<Arc<Session>>)> {
        let (_, cold) = self.inner.sessions.remove(k)?;
        let hot = self.inner.hot.remove(k).map(|(_, s)| s);
        let u = self.owner_key(&cold.owner(&self.inner.shared));
        if let Some(mut keys) = self.inner.by_owner.get_mut(&u) {
            keys.remove(k);
        }
        self.inner.by_owner.remove_if(&u, |_, v| v.is_empty());
        Some((cold, hot))
    }

    /// The session under `k`: its hot copy, else decoded without making it hot.
    fn peek(&self, k: &Key) -> Result<Option<Arc<Session>>, StoreError> {
        if let Some(s) = self.inner.hot.get(k) {
            return Ok(Some(Arc::clone(s.value())));
        }
        match self.inner.sessions.get(k) {
            Some(cold) => Ok(Some(Arc::new(cold.decode(k, &self.inner.shared)?))),
            None => Ok(None),
        }
    }

    /// Keeps a decoded session ready for the next request (bounded).
    fn make_hot(&self, k: Key, s: &Arc<Session>) {
        if self.inner.hot.len() >= HOT_CAP {
            self.inner.hot.clear();
        }
        self.inner.hot.insert(k, Arc::clone(s));
    }

    /// The session under `k`, decoded if it is not hot; `None` if there is none.
    fn load(&self, k: &Key, now: UnixTime) -> Result<Option<Arc<Session>>, StoreError> {
        if let Some(s) = self.inner.hot.get(k).map(|e| Arc::clone(e.value())) {
            // A hot copy older than the stored idle timestamp (another copy was touched) is
            // refreshed below instead of being reported as idle.
            if s.check(now).is_ok() {
                return Ok(Some(s));
            }
        }
        let decoded = match self.inner.sessions.get(k) {
            Some(cold) => Arc::new(cold.decode(k, &self.inner.shared)?),
            None => return Ok(None),
        };
        self.make_hot(*k, &decoded);
        // Removed while we decoded: do not leave it hot, and do not hand it out.
        if !self.inner.sessions.contains_key(k) {
            self.inner.hot.remove(k);
            return Ok(None);
        }
        Ok(Some(decoded))
    }
}

impl SessionStore for MemoryStore {
    async fn get(&self, id: &SessionId) -> Result<Option<Arc<Session>>, StoreError> {
        match key(id) {
            Some(k) => self.load(&k, self.inner.clock.now()),
            None => Ok(None),
        }
    }

    async fn insert(&self, session: Session) -> Result<Arc<Session>, StoreError> {
        if self.inner.sessions.len() >= self.inner.max_sessions && self.sweep() == 0 {
            // Refuse rather than evict someone's live session.
            return Err(StoreError::Unavailable("session store is full".into()));
        }
        let k = key(&session.id)
            .ok_or_else(|| StoreError::Corrupt("session id is not a session id".into()))?;
        let cold = Cold {
            data: compact::encode(&session, &self.inner.shared).into_boxed_slice(),
            last_seen: AtomicI64::new(session.last_seen()),
            expires_at: session.expires_at,
            idle_secs: u32::try_from(session.idle_timeout.as_secs()).unwrap_or(u32::MAX),
        };
        {
            let mut keys = self
                .inner
                .by_owner
                .entry(self.owner_key(&session.identity.principal))
                .or_default();
            if !keys.contains(&k) {
                keys.push(k);
            }
        }
        self.inner.sessions.insert(k, cold);
        let s = Arc::new(session);
        self.make_hot(k, &s);
        Ok(s)
    }

    async fn touch(&self, session: &Session, now: UnixTime) -> Result<(), StoreError> {
        session.set_last_seen(now);
        if let Some(k) = key(&session.id) {
            if let Some(cold) = self.inner.sessions.get(&k) {
                cold.last_seen.store(now, Ordering::Relaxed);
            }
            if let Some(hot) = self.inner.hot.get(&k) {
                hot.set_last_seen(now);
            }
        }
        Ok(())
    }

    async fn remove(&self, id: &SessionId) -> Result<Option<Arc<Session>>, StoreError> {
        let Some(k) = key(id) else { return Ok(None) };
        match self.take(&k) {
            Some((_, Some(hot))) => Ok(Some(hot)),
            Some((cold, None)) => Ok(Some(Arc::new(cold.decode(&k, &self.inner.shared)?))),
            None => Ok(None),
        }
    }

    async fn remove_principal(&self, principal: &str) -> Result<Vec<SessionId>, StoreError> {
        let u = self.owner_key(principal);
        let keys: Vec<Key> = self
            .inner
            .by_owner
            .get(&u)
            .map(|keys| keys.as_slice().to_vec())
            .unwrap_or_default();
        let mut gone = Vec::new();
        for k in &keys {
            let mine = self
                .inner
                .sessions
                .get(k)
                .is_some_and(|c| c.owner(&self.inner.shared) == principal);
            if mine && self.take(k).is_some() {
                gone.push(id_of(k));
            }
        }
        Ok(gone)
    }

    async fn list(
        &self,
        principal: Option<&str>,
        after: Option<&SessionId>,
        limit: usize,
    ) -> Result<Vec<Arc<Session>>, StoreError> {
        let now = self.inner.clock.now();
        // Listed in the order of the ids' text (the cursor is an id, as with Redis), which is
        // not the order of their bytes.
        let after = after.map(|a| a.as_str().as_bytes());
        let wanted = |k: &Key, c: &Cold| {
            c.alive(now)
                && after.is_none_or(|a| SessionId::text_of(k).as_slice() > a)
                && principal.is_none_or(|p| c.owner(&self.inner.shared) == p)
        };
        let mut keys: Vec<Key> = match principal {
            Some(p) => self
                .inner
                .by_owner
                .get(&self.owner_key(p))
                .map(|keys| {
                    keys.iter()
                        .copied()
                        .filter(|k| self.inner.sessions.get(k).is_some_and(|c| wanted(k, &c)))
                        .collect()
                })
                .unwrap_or_default(),
            None => self
                .inner
                .sessions
                .iter()
                .filter(|e| wanted(e.key(), e.value()))
                .map(|e| *e.key())
                .collect(),
        };
        keys.sort_by_cached_key(SessionId::text_of);
        keys.truncate(limit);
        // Listing (admin API, account page) does not displace the proxy path's hot sessions.
        let mut out = Vec::with_capacity(keys.len());
        for k in &keys {
            if let Some(s) = self.peek(k)? {
                out.push(s);
            }
        }
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

    async fn decr(&self, key: &str) -> Result<(), StoreError> {
        let now = self.inner.clock.now();
        // Under the entry's shard lock: concurrent increments and decrements never interleave.
        self.inner.counters.remove_if_mut(key, |_, e| {
            e.1 = e.1.saturating_sub(1);
            e.1 == 0 || e.0 <= now
        });
        Ok(())
    }

    async fn reset_counter(&self, key: &str) -> Result<(), StoreError> {
        self.inner.counters.remove(key);
        Ok(())
    }

    async fn set_add(
        &self,
        key: &str,
        member: &str,
        ttl: Duration,
        cap: usize,
    ) -> Result<(), StoreError> {
        if self.inner.sets.len() >= self.inner.max_ephemeral && !self.inner.sets.contains_key(key) {
            self.sweep();
            if self.inner.sets.len() >= self.inner.max_ephemeral {
                return Err(StoreError::Unavailable("short-lived sets are full".into()));
            }
        }
        let now = self.inner.clock.now();
        let end = ttl_end(now, ttl);
        // The entry's shard lock makes this one atomic step for concurrent adders.
        let mut e = self
            .inner
            .sets
            .entry(key.to_owned())
            .or_insert((end, Vec::new()));
        if e.0 <= now {
            *e = (end, Vec::new());
        }
        e.0 = e.0.max(end);
        if !e.1.iter().any(|m| m == member) {
            e.1.push(member.to_owned());
        }
        let over = e.1.len().saturating_sub(cap.max(1));
        e.1.drain(..over);
        Ok(())
    }

    async fn set_take(&self, key: &str) -> Result<Vec<String>, StoreError> {
        let now = self.inner.clock.now();
        Ok(self
            .inner
            .sets
            .remove(key)
            .and_then(|(_, (end, v))| (end > now).then_some(v))
            .unwrap_or_default())
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
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use crate::session::{AuthMethod, Identity, MfaUsed};
    use hyper::header::HeaderValue;

    /// The session id of the token `s`, as the gateway makes it.
    fn sid(s: &str) -> SessionId {
        SessionId::of_str(s)
    }

    fn session(id: &str, user: &str, now: UnixTime) -> Session {
        owned(id, user, &format!("native:{user}"), now)
    }

    fn owned(id: &str, user: &str, principal: &str, now: UnixTime) -> Session {
        Session::new(
            sid(id),
            Identity {
                user: user.into(),
                principal: principal.into(),
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
        .unwrap()
    }

    #[tokio::test]
    async fn removing_a_users_sessions_removes_all_of_them_and_only_theirs() {
        let clock = Clock::manual(1000);
        let st = MemoryStore::new(clock, 10);
        st.insert(session("a", "ann", 1000)).await.unwrap();
        st.insert(session("b", "ann", 1000)).await.unwrap();
        st.insert(session("c", "bob", 1000)).await.unwrap();
        let mut gone = st.remove_principal("native:ann").await.unwrap();
        gone.sort();
        let mut want = vec![sid("a"), sid("b")];
        want.sort();
        assert_eq!(gone, want);
        assert!(st.get(&sid("a")).await.unwrap().is_none());
        assert!(st.get(&sid("c")).await.unwrap().is_some());
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
        let cached = |s: &Session| s.assertion.is_cached();
        // As the signer caches one: reusable for 30 s (`crate::assertion`).
        s.assertion.put(1000, 1030, HeaderValue::from_static("jwt"));
        clock.advance(29);
        st.sweep();
        assert!(cached(&s), "still reusable: kept");
        clock.advance(1);
        st.sweep();
        assert!(!cached(&s), "30 s old: dropped, the session stays");
        assert_eq!(st.count().await.unwrap(), 1);
    }

    #[tokio::test]
    async fn a_session_no_longer_hot_is_decoded_whole_with_its_latest_idle_timestamp() {
        let clock = Clock::manual(1000);
        let st = MemoryStore::new(clock.clone(), 10);
        let mut s = session("a", "ann", 1000);
        s.identity.email = Some("ann@example.com".into());
        s.identity.groups = vec!["agents".into(), "tier2".into()];
        s.ip = Some("192.0.2.7".into());
        s.user_agent = Some("Mozilla/5.0".into());
        let first = st.insert(s).await.unwrap();
        st.touch(&first, 1500).await.unwrap();
        st.inner.hot.clear();
        clock.advance(550);
        let again = st.get(&sid("a")).await.unwrap().unwrap();
        assert!(!Arc::ptr_eq(&first, &again), "decoded anew");
        assert_eq!(again.identity.user, "ann");
        assert_eq!(again.identity.email.as_deref(), Some("ann@example.com"));
        assert_eq!(again.identity.groups, ["agents", "tier2"]);
        assert_eq!(again.ip.as_deref(), Some("192.0.2.7"));
        assert_eq!(again.user_agent.as_deref(), Some("Mozilla/5.0"));
        assert_eq!(
            again.last_seen(),
            1500,
            "the touch reached the stored entry"
        );
        assert_eq!(again.expires_at, first.expires_at);
        assert_eq!(again.headers.user(), "ann");
        // A stale hot copy (another copy was touched meanwhile) is refreshed, not reported idle.
        let stale = Arc::new(session("a", "ann", 1000));
        st.inner.hot.insert(key(&sid("a")).unwrap(), stale);
        clock.advance(150); // 1700: the stale copy is idle (since 1000), the session is not
        let fresh = st.get(&sid("a")).await.unwrap().unwrap();
        assert_eq!(fresh.last_seen(), 1500);
        assert!(fresh.check(1700).is_ok());
        // Ids that are not session ids are never found, nor stored.
        assert!(st
            .get(&SessionId::from_text("short".into()))
            .await
            .unwrap()
            .is_none());
        assert!(st.insert(session_with_id("x", "ann")).await.is_err());
    }

    #[tokio::test]
    async fn listing_pages_in_the_order_of_the_ids_text() {
        let st = MemoryStore::new(Clock::manual(1000), 100);
        let mut all = Vec::new();
        for i in 0..40 {
            let user = if i % 2 == 0 { "ann" } else { "bob" };
            all.push(
                st.insert(session(&format!("t{i}"), user, 1000))
                    .await
                    .unwrap()
                    .id
                    .clone(),
            );
        }
        all.sort();
        let ids = |v: Vec<Arc<Session>>| v.iter().map(|s| s.id.clone()).collect::<Vec<_>>();
        let mut paged = Vec::new();
        let mut after = None;
        loop {
            let page = ids(st.list(None, after.as_ref(), 7).await.unwrap());
            if page.is_empty() {
                break;
            }
            after = page.last().cloned();
            paged.extend(page);
        }
        assert_eq!(paged, all, "every session once, in the ids' text order");
        let anns: Vec<_> = ids(st.list(Some("native:ann"), None, 100).await.unwrap());
        assert_eq!(anns.len(), 20);
        assert!(anns.windows(2).all(|w| w[0] < w[1]));
        let later = ids(st
            .list(Some("native:ann"), Some(&anns[9]), 100)
            .await
            .unwrap());
        assert_eq!(later, anns[10..]);
    }

    #[tokio::test]
    async fn an_id_differing_only_in_its_trailing_bits_finds_nothing() {
        // The store keys on the id's 16 bytes; a string with the same 128 bits but trailing
        // bits set (a different id) must neither find nor end the stored session.
        let st = MemoryStore::new(Clock::manual(1000), 10);
        st.insert(session("a", "ann", 1000)).await.unwrap();
        let id = sid("a");
        let last = id.as_str().as_bytes()[21];
        let alphabet = crate::session::id::ALPHABET;
        let trailing = alphabet.iter().position(|c| *c == last).unwrap();
        let alias_char = char::from(alphabet[trailing | 1]);
        let alias = SessionId::parse(&format!("{}{alias_char}", &id.as_str()[..21])).unwrap();
        assert_ne!(alias, id);
        assert!(st.get(&alias).await.unwrap().is_none());
        assert!(st.remove(&alias).await.unwrap().is_none());
        assert!(st
            .insert(session_with_id(alias.as_str(), "eve"))
            .await
            .is_err());
        assert!(
            st.get(&id).await.unwrap().is_some(),
            "the real session is untouched"
        );
    }

    #[tokio::test]
    async fn a_user_index_collision_never_reaches_another_users_sessions() {
        let st = MemoryStore::new(Clock::manual(1000), 10);
        st.insert(session("a", "ann", 1000)).await.unwrap();
        st.insert(session("b", "bob", 1000)).await.unwrap();
        // As if "bob" hashed like "ann": his session listed under her index entry too.
        let bob = key(&sid("b")).unwrap();
        st.inner
            .by_owner
            .get_mut(&st.owner_key("native:ann"))
            .unwrap()
            .push(bob);
        let listed = st.list(Some("native:ann"), None, 10).await.unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].identity.user, "ann");
        assert_eq!(
            st.remove_principal("native:ann").await.unwrap(),
            vec![sid("a")]
        );
        assert!(
            st.get(&sid("b")).await.unwrap().is_some(),
            "bob's session lives on"
        );
    }

    #[tokio::test]
    async fn users_of_different_origins_with_the_same_name_own_separate_sessions() {
        let st = MemoryStore::new(Clock::manual(1000), 10);
        st.insert(session("a", "alice", 1000)).await.unwrap();
        st.insert(owned("b", "alice", "corp:42", 1000))
            .await
            .unwrap();
        st.insert(owned("c", "alice", "partner:alice", 1000))
            .await
            .unwrap();
        let native = st.list(Some("native:alice"), None, 10).await.unwrap();
        assert_eq!(native.len(), 1);
        assert_eq!(native[0].id, sid("a"));
        assert_eq!(
            st.remove_principal("partner:alice").await.unwrap(),
            vec![sid("c")]
        );
        assert!(st.get(&sid("a")).await.unwrap().is_some());
        assert!(st.get(&sid("b")).await.unwrap().is_some());
    }

    #[tokio::test]
    async fn concurrent_set_adds_keep_every_member_and_a_take_empties_the_set() {
        let st = MemoryStore::new(Clock::manual(1000), 10);
        let ttl = Duration::from_secs(60);
        let adds = (0..50).map(|n| {
            let st = st.clone();
            tokio::spawn(async move { st.set_add("k", &format!("m{n}"), ttl, 64).await })
        });
        for t in adds.collect::<Vec<_>>() {
            t.await.unwrap().unwrap();
        }
        let mut got = st.set_take("k").await.unwrap();
        got.sort();
        assert_eq!(got.len(), 50, "no add was lost");
        assert!(st.set_take("k").await.unwrap().is_empty(), "taken once");
        for n in 0..5 {
            st.set_add("c", &format!("m{n}"), ttl, 3).await.unwrap();
        }
        assert_eq!(st.set_take("c").await.unwrap(), ["m2", "m3", "m4"]);
    }

    fn session_with_id(raw: &str, user: &str) -> Session {
        let mut s = session("b", user, 1000);
        s.id = SessionId::from_text(raw.into());
        s
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
