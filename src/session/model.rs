//! The signed-in [`Session`]: who (its [`Identity`] and rendered header values), its times
//! (absolute end, idle timeout, last activity) and the cache of its signed assertion.
//! Invariant: a session is shared as `Arc<Session>` and only `last_seen` and the cached
//! assertion change after it is made; expiry is decided here ([`Session::check`]) with a time
//! the caller passes in, so every store and test decides it the same way.
//!
//! Dependency direction: the signer (`assertion.rs`) reads a session and fills its
//! [`CachedAssertion`]; nothing in `session/` knows about signing keys, claims or how long an
//! assertion may be reused; the slot holds the reuse deadline the signer chose.

use super::id::SessionId;
use super::identity::{HeaderValues, Identity, IdentityValueError};
use crate::clock::UnixTime;
use crate::storage::StoreError;
use hyper::header::HeaderValue;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::RwLock;
use std::time::Duration;

/// A signed-in session. Shared as `Arc<Session>`; only `last_seen` and the cached assertion change.
#[derive(Debug)]
pub struct Session {
    pub id: SessionId,
    pub identity: Identity,
    pub created_at: UnixTime,
    /// Absolute end of the session (created + strictest max lifetime).
    pub expires_at: UnixTime,
    pub idle_timeout: Duration,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub headers: HeaderValues,
    last_seen: AtomicI64,
    /// The last `X-Portcullis-Assertion` issued for this session, while it may be sent again.
    pub assertion: CachedAssertion,
}

/// Why a stored session is no longer valid.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expiry {
    Idle,
    Absolute,
}

impl Session {
    pub fn new(
        id: SessionId,
        identity: Identity,
        now: UnixTime,
        max_lifetime: Duration,
        idle_timeout: Duration,
        ip: Option<String>,
        user_agent: Option<String>,
    ) -> Result<Session, IdentityValueError> {
        let headers = HeaderValues::render(&identity, &id)?;
        Ok(Session {
            id,
            identity,
            created_at: now,
            expires_at: now
                .saturating_add(i64::try_from(max_lifetime.as_secs()).unwrap_or(i64::MAX)),
            idle_timeout,
            ip,
            user_agent,
            headers,
            last_seen: AtomicI64::new(now),
            assertion: CachedAssertion::default(),
        })
    }

    /// A session read back from a store: `Session::new` from its stored times, with the idle
    /// timestamp it had. A negative lifetime (never stored) becomes zero: already expired. An
    /// identity that cannot be sent (never stored by this version) is a corrupt entry.
    #[allow(clippy::too_many_arguments)]
    pub fn restore(
        id: SessionId,
        identity: Identity,
        created_at: UnixTime,
        expires_at: UnixTime,
        idle_timeout: Duration,
        ip: Option<String>,
        user_agent: Option<String>,
        last_seen: UnixTime,
    ) -> Result<Session, StoreError> {
        let max_lifetime = u64::try_from(expires_at.saturating_sub(created_at)).unwrap_or(0);
        let s = Session::new(
            id,
            identity,
            created_at,
            Duration::from_secs(max_lifetime),
            idle_timeout,
            ip,
            user_agent,
        )
        .map_err(|e| StoreError::Corrupt(format!("stored session: {e}")))?;
        s.set_last_seen(last_seen);
        Ok(s)
    }

    pub fn last_seen(&self) -> UnixTime {
        self.last_seen.load(Ordering::Relaxed)
    }

    pub fn set_last_seen(&self, t: UnixTime) {
        self.last_seen.store(t, Ordering::Relaxed);
    }

    /// Checks absolute lifetime and idle timeout at `now`.
    pub fn check(&self, now: UnixTime) -> Result<(), Expiry> {
        if now >= self.expires_at {
            return Err(Expiry::Absolute);
        }
        let idle = i64::try_from(self.idle_timeout.as_secs()).unwrap_or(i64::MAX);
        if now.saturating_sub(self.last_seen()) >= idle {
            return Err(Expiry::Idle);
        }
        Ok(())
    }

    /// Whether the idle timestamp is old enough to be written again (at most once per `interval`).
    pub fn needs_touch(&self, now: UnixTime, interval: Duration) -> bool {
        now.saturating_sub(self.last_seen())
            >= i64::try_from(interval.as_secs()).unwrap_or(i64::MAX)
    }
}

/// A session's last signed assertion and the window in which it may be sent again. Filled and
/// read by the signer (`Signer::for_session` in `assertion.rs`); emptied by a store's sweep once stale, so a
/// quiet session does not keep its ~700 bytes (DESIGN.md §7).
#[derive(Debug, Default)]
pub struct CachedAssertion(RwLock<Option<Cached>>);

#[derive(Debug)]
struct Cached {
    issued_at: UnixTime,
    /// First second at which the value may no longer be reused (the signer's choice).
    reuse_until: UnixTime,
    value: HeaderValue,
}

impl Cached {
    /// Reusable at `now`: issued no later than `now` (a clock that went back re-signs) and
    /// before its reuse deadline.
    fn reusable(&self, now: UnixTime) -> bool {
        now >= self.issued_at && now < self.reuse_until
    }
}

impl CachedAssertion {
    /// The cached value, when it may still be sent at `now`.
    pub fn reusable(&self, now: UnixTime) -> Option<HeaderValue> {
        let cached = self.0.read().ok()?;
        cached
            .as_ref()
            .filter(|c| c.reusable(now))
            .map(|c| c.value.clone())
    }

    /// Caches `value`, issued at `issued_at`, for reuse until (not including) `reuse_until`.
    pub fn put(&self, issued_at: UnixTime, reuse_until: UnixTime, value: HeaderValue) {
        if let Ok(mut slot) = self.0.write() {
            *slot = Some(Cached {
                issued_at,
                reuse_until,
                value,
            });
        }
    }

    /// Forgets the cached value once it can no longer be reused at `now`.
    pub fn drop_stale(&self, now: UnixTime) {
        // A read lock first: the sweep visits every hot session, most of them fresh or empty.
        let stale = self
            .0
            .read()
            .is_ok_and(|c| c.as_ref().is_some_and(|c| !c.reusable(now)));
        if stale {
            if let Ok(mut slot) = self.0.write() {
                *slot = None;
            }
        }
    }

    /// Whether a value is cached, reusable or not.
    pub fn is_cached(&self) -> bool {
        self.0.read().is_ok_and(|c| c.is_some())
    }
}
