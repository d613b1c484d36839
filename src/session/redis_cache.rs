//! The per-replica cache of Redis sessions (issue 7, item 4): a hit answers without a round trip
//! to Redis, so the shared store costs about what the memory store costs on the proxy path.
//! Invariant: an entry is used only while the invalidation subscription is proven live (this
//! replica's own heartbeat came back through Redis pub/sub within `LIVE_FOR`), and only if it
//! was read after the subscription went live with no invalidation arriving during the read.
//! Every change to a session in Redis publishes its id (inside the same Lua script); losing the
//! subscription empties the cache, and every lookup goes to Redis until it is live again.

use super::id::SessionId;
use super::model::Session;
use dashmap::DashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long one heartbeat seen through the subscription keeps the cache usable.
pub const LIVE_FOR: Duration = Duration::from_millis(1000);
/// How often the subscriber publishes its heartbeat (several per `LIVE_FOR`).
pub const HEARTBEAT_EVERY: Duration = Duration::from_millis(250);
/// Entries kept before the cache is emptied (bounded memory).
const CAP: usize = 50_000;

/// Proof that a read began while the cache was live; see [`SessionCache::offer`].
#[derive(Clone, Copy, Debug)]
pub struct Ticket(u64);

pub struct SessionCache {
    origin: Instant,
    /// Milliseconds since `origin` until which the cache may be used; 0: not live.
    live_until: AtomicU64,
    /// Bumped by every invalidation and every loss of the subscription.
    generation: AtomicU64,
    entries: DashMap<SessionId, Arc<Session>>,
}

impl Default for SessionCache {
    fn default() -> Self {
        Self {
            origin: Instant::now(),
            live_until: AtomicU64::new(0),
            generation: AtomicU64::new(0),
            entries: DashMap::new(),
        }
    }
}

impl SessionCache {
    fn now_ms(&self) -> u64 {
        u64::try_from(self.origin.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// Whether the subscription has proven itself recently enough for entries to be used.
    pub fn is_live(&self) -> bool {
        self.now_ms() < self.live_until.load(Ordering::Acquire)
    }

    /// The cached session, only while live.
    pub fn get(&self, id: &SessionId) -> Option<Arc<Session>> {
        if !self.is_live() {
            return None;
        }
        self.entries.get(id).map(|e| Arc::clone(e.value()))
    }

    /// Taken before reading a session from Redis; `None` when not live (the read is not cached).
    pub fn ticket(&self) -> Option<Ticket> {
        let g = self.generation.load(Ordering::Acquire);
        self.is_live().then_some(Ticket(g))
    }

    /// Caches a session read from Redis under `ticket`, unless anything was invalidated (or the
    /// subscription lost) since the ticket was taken: that read may predate the change.
    pub fn offer(&self, ticket: Option<Ticket>, session: &Arc<Session>) {
        let Some(Ticket(g)) = ticket else { return };
        if !self.is_live() || self.generation.load(Ordering::Acquire) != g {
            return;
        }
        if self.entries.len() >= CAP {
            self.entries.clear();
        }
        self.entries.insert(session.id.clone(), Arc::clone(session));
        // An invalidation that raced with the insert: it bumped the generation before removing,
        // so either it removes our entry after this point or we see the bump here.
        if self.generation.load(Ordering::Acquire) != g {
            self.entries.remove(&session.id);
        }
    }

    /// A session changed or ended somewhere: forget it here.
    pub fn invalidate(&self, id: &SessionId) {
        self.generation.fetch_add(1, Ordering::AcqRel);
        self.entries.remove(id);
    }

    /// This replica's heartbeat came back: usable for `LIVE_FOR` from now.
    pub fn heartbeat(&self) {
        let until = self
            .now_ms()
            .saturating_add(u64::try_from(LIVE_FOR.as_millis()).unwrap_or(u64::MAX));
        self.live_until.store(until, Ordering::Release);
    }

    /// The subscription is gone or late: nothing cached can be trusted any more.
    pub fn lost(&self) {
        self.live_until.store(0, Ordering::Release);
        self.generation.fetch_add(1, Ordering::AcqRel);
        self.entries.clear();
    }

    #[cfg(test)]
    fn cached(&self) -> usize {
        self.entries.len()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::secret::SessionToken;
    use crate::session::{AuthMethod, Identity, MfaUsed};

    fn session(token: &str) -> Arc<Session> {
        let id = SessionId::of(&SessionToken::new(token.to_owned()));
        Arc::new(
            Session::new(
                id,
                Identity {
                    user: "ann".into(),
                    principal: "native:ann".into(),
                    email: None,
                    groups: vec![],
                    roles: vec!["agent".into()],
                    method: AuthMethod::Native,
                    mfa: MfaUsed::None,
                },
                1_000,
                Duration::from_secs(3600),
                Duration::from_secs(600),
                None,
                None,
            )
            .unwrap(),
        )
    }

    #[test]
    fn nothing_is_used_or_kept_unless_the_subscription_is_live() {
        let c = SessionCache::default();
        let s = session("a");
        assert!(c.ticket().is_none(), "not live yet: reads are not cached");
        c.offer(c.ticket(), &s);
        assert_eq!(c.cached(), 0);
        c.heartbeat();
        c.offer(c.ticket(), &s);
        assert!(c.get(&s.id).is_some(), "live: cached and used");
        c.lost();
        assert!(c.get(&s.id).is_none(), "lost: not used");
        assert_eq!(c.cached(), 0, "and emptied");
        c.heartbeat();
        assert!(
            c.get(&s.id).is_none(),
            "live again: still empty, nothing stale comes back"
        );
    }

    #[test]
    fn a_read_that_raced_with_an_invalidation_is_not_cached() {
        let c = SessionCache::default();
        c.heartbeat();
        let s = session("a");
        let other = session("b");
        let ticket = c.ticket();
        // While this read was in flight, some session changed.
        c.invalidate(&other.id);
        c.offer(ticket, &s);
        assert!(c.get(&s.id).is_none(), "the read may predate the change");
        c.offer(c.ticket(), &s);
        assert!(c.get(&s.id).is_some());
        c.invalidate(&s.id);
        assert!(c.get(&s.id).is_none(), "invalidated");
    }

    #[test]
    fn liveness_lapses_without_heartbeats() {
        let c = SessionCache::default();
        c.heartbeat();
        let s = session("a");
        c.offer(c.ticket(), &s);
        // As if LIVE_FOR had passed since the last heartbeat.
        c.live_until.store(c.now_ms(), Ordering::Release);
        assert!(!c.is_live());
        assert!(
            c.get(&s.id).is_none(),
            "a silent subscription is not trusted"
        );
    }
}
