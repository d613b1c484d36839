//! Sessions: the `Session` model, cookie tokens and their hashed ids, and the `SessionStore`
//! seam (memory now, Redis later) that also holds short-lived state (pending logins, counters,
//! single-use markers). Invariant: the store never sees a cookie value, only its hash.

pub mod compact;
pub mod cookie;
pub mod memory;
pub mod redis;
pub mod redis_cache;

use crate::clock::UnixTime;
use crate::secret::SessionToken;
use crate::storage::StoreError;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine as _;
use hyper::header::HeaderValue;
use ring::digest;
use ring::rand::{SecureRandom, SystemRandom};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

pub use memory::MemoryStore;

/// Public session id: base64url of the first 128 bits of SHA-256(cookie token). It is the
/// store key, the `X-Auth-Session` value and the admin API id; it cannot be turned back into
/// a cookie.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SessionId(String);

impl SessionId {
    pub fn of(token: &SessionToken) -> SessionId {
        Self::of_str(token.expose())
    }

    pub(crate) fn of_str(token: &str) -> SessionId {
        let d = digest::digest(&digest::SHA256, token.as_bytes());
        SessionId(B64.encode(d.as_ref().get(..16).unwrap_or_default()))
    }

    /// Accepts an id as typed by an admin: 22 base64url characters.
    pub fn parse(s: &str) -> Option<SessionId> {
        (s.len() == 22
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'))
        .then(|| SessionId(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A new random cookie token: 256 bits from the OS CSPRNG, base64url.
pub fn new_token() -> Result<SessionToken, StoreError> {
    let mut b = [0u8; 32];
    SystemRandom::new()
        .fill(&mut b)
        .map_err(|_| StoreError::Unavailable("system random generator failed".into()))?;
    Ok(token_of(&b))
}

/// The cookie form of 256 random bits: base64url without padding, 43 characters.
pub(crate) fn token_of(bits: &[u8; 32]) -> SessionToken {
    SessionToken::new(B64.encode(bits))
}

/// A random identifier of `bytes` bytes, base64url (CSRF tokens, request ids, nonces).
pub fn random_id(bytes: usize) -> String {
    let mut b = vec![0u8; bytes];
    // SystemRandom only fails when the OS has no randomness at all; an all-zero id is then
    // still refused later because it never matches a stored random value.
    let _ = SystemRandom::new().fill(&mut b);
    B64.encode(b)
}

/// How the user authenticated (`X-Auth-Method`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AuthMethod {
    Native,
    Oidc(String),
    Saml(String),
    /// Demo mode only: a session made by the built-in sample login.
    Demo,
}

impl AuthMethod {
    pub fn header_value(&self) -> String {
        match self {
            AuthMethod::Native => "native".into(),
            AuthMethod::Oidc(i) => format!("oidc:{i}"),
            AuthMethod::Saml(i) => format!("saml:{i}"),
            AuthMethod::Demo => "demo".into(),
        }
    }

    /// The inverse of `header_value`, for sessions read back from a store.
    pub fn parse(s: &str) -> Option<AuthMethod> {
        match s {
            "native" => Some(AuthMethod::Native),
            "demo" => Some(AuthMethod::Demo),
            _ => s
                .strip_prefix("oidc:")
                .map(|idp| AuthMethod::Oidc(idp.to_owned()))
                .or_else(|| {
                    s.strip_prefix("saml:")
                        .map(|idp| AuthMethod::Saml(idp.to_owned()))
                }),
        }
    }

    pub fn idp(&self) -> Option<&str> {
        match self {
            AuthMethod::Oidc(i) | AuthMethod::Saml(i) => Some(i),
            _ => None,
        }
    }
}

/// Which second factor was verified for this session (`X-Auth-MFA`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MfaUsed {
    Idp,
    Totp,
    Email,
    RecoveryCode,
    RememberedDevice,
    None,
}

impl MfaUsed {
    /// Every kind, in a fixed order (stores may refer to a kind by its position).
    pub const ALL: [MfaUsed; 6] = [
        MfaUsed::None,
        MfaUsed::Idp,
        MfaUsed::Totp,
        MfaUsed::Email,
        MfaUsed::RecoveryCode,
        MfaUsed::RememberedDevice,
    ];

    /// The inverse of `as_str`.
    pub fn parse(s: &str) -> Option<MfaUsed> {
        Self::ALL.into_iter().find(|m| m.as_str() == s)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            MfaUsed::Idp => "idp",
            MfaUsed::Totp => "totp",
            MfaUsed::Email => "email",
            MfaUsed::RecoveryCode => "recovery_code",
            // The factor was verified at an earlier login on this device.
            MfaUsed::RememberedDevice => "remembered_device",
            MfaUsed::None => "none",
        }
    }
}

/// Who a session belongs to, as decided at login.
#[derive(Clone, Debug)]
pub struct Identity {
    /// The display name (`X-Forwarded-User`).
    pub user: String,
    /// Who owns the session (DESIGN.md §6): `native:<user>` or the IdP's principal for the
    /// subject. Listing and ending "a user's sessions" go by this, never by the display name,
    /// so a native `bob` and an SSO `bob` never reach each other's sessions.
    pub principal: String,
    pub email: Option<String>,
    pub groups: Vec<String>,
    pub roles: Vec<String>,
    pub method: AuthMethod,
    pub mfa: MfaUsed,
}

/// Identity header values, rendered once at login into one buffer: the proxy path takes
/// slices of it (a reference count each), and a session holds one allocation instead of seven
/// (DESIGN.md §7: a million sessions in memory).
#[derive(Clone, Debug)]
pub struct HeaderValues {
    buf: bytes::Bytes,
    /// End offset of each part in `buf`: user, email, groups, roles, method, mfa, session.
    ends: [u16; 7],
    has_email: bool,
}

/// An identity value that cannot be sent as a header exactly as it is (DESIGN.md §6): such a
/// login is refused, never forwarded with a placeholder.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum IdentityValueError {
    /// A control character (line breaks, NUL, tab, DEL): it could end or split a header.
    #[error("the {0} contains a control character")]
    ControlCharacter(&'static str),
    /// Longer than 8 KiB.
    #[error("the {0} is too long")]
    TooLong(&'static str),
}

/// Which identity value each of the seven header parts is, for error messages.
const PART_NAMES: [&str; 7] = [
    "user name",
    "email address",
    "group list",
    "role list",
    "login method",
    "second factor",
    "session id",
];

impl Identity {
    /// Whether every value can go upstream exactly as it is (UTF-8 is sent as its bytes).
    pub fn check_values(&self, id: &SessionId) -> Result<(), IdentityValueError> {
        HeaderValues::render(self, id).map(|_| ())
    }
}

impl HeaderValues {
    fn render(identity: &Identity, id: &SessionId) -> Result<HeaderValues, IdentityValueError> {
        let method = identity.method.header_value();
        let groups = identity.groups.join(",");
        let roles = identity.roles.join(",");
        let parts: [&str; 7] = [
            &identity.user,
            identity.email.as_deref().unwrap_or_default(),
            &groups,
            &roles,
            &method,
            identity.mfa.as_str(),
            id.as_str(),
        ];
        let mut buf = Vec::with_capacity(parts.iter().map(|p| p.len().min(MAX_PART)).sum());
        let mut ends = [0u16; 7];
        for ((end, part), name) in ends.iter_mut().zip(parts).zip(PART_NAMES) {
            // Identity values come from IdPs and user records. A value is sent exactly or not
            // at all: two users must never reach the app as the same placeholder.
            if part.len() > MAX_PART {
                return Err(IdentityValueError::TooLong(name));
            }
            if part.bytes().any(|b| b < 0x20 || b == 0x7f) {
                return Err(IdentityValueError::ControlCharacter(name));
            }
            buf.extend_from_slice(part.as_bytes());
            *end = u16::try_from(buf.len()).map_err(|_| IdentityValueError::TooLong(name))?;
        }
        Ok(HeaderValues {
            buf: bytes::Bytes::from(buf),
            ends,
            has_email: identity.email.is_some(),
        })
    }

    fn part(&self, i: usize) -> HeaderValue {
        let start = i
            .checked_sub(1)
            .and_then(|p| self.ends.get(p))
            .map_or(0, |&e| usize::from(e));
        let end = self.ends.get(i).map_or(0, |&e| usize::from(e));
        // Checked once at render time; checked again here rather than trusted (no `unsafe`).
        // Unreachable: every part was checked to be a header value, and the offsets are ours.
        self.buf
            .get(start..end)
            .map(|_| self.buf.slice(start..end))
            .and_then(|b| HeaderValue::from_maybe_shared(b).ok())
            .unwrap_or_else(|| HeaderValue::from_static(""))
    }

    /// The values as bytes, in the order user, email (None when the identity has none), groups,
    /// roles, method, mfa, session. Each was checked as a header value when rendered.
    pub fn raw(&self) -> [Option<&[u8]>; 7] {
        let mut out = [None; 7];
        let mut start = 0;
        for (i, (slot, &end)) in out.iter_mut().zip(self.ends.iter()).enumerate() {
            let end = usize::from(end);
            if i != 1 || self.has_email {
                *slot = self.buf.get(start..end);
            }
            start = end;
        }
        out
    }

    pub fn user(&self) -> HeaderValue {
        self.part(0)
    }
    pub fn email(&self) -> Option<HeaderValue> {
        self.has_email.then(|| self.part(1))
    }
    pub fn groups(&self) -> HeaderValue {
        self.part(2)
    }
    pub fn roles(&self) -> HeaderValue {
        self.part(3)
    }
    pub fn method(&self) -> HeaderValue {
        self.part(4)
    }
    pub fn mfa(&self) -> HeaderValue {
        self.part(5)
    }
    pub fn session(&self) -> HeaderValue {
        self.part(6)
    }
}

/// Longest identity header value accepted (a longer one refuses the login).
const MAX_PART: usize = 8 * 1024;

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
    /// The last `X-Portcullis-Assertion` issued for this session and when.
    pub assertion: RwLock<Option<(UnixTime, HeaderValue)>>,
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
            assertion: RwLock::new(None),
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

/// The session store chosen at start-up.
#[derive(Clone)]
pub enum AnySessionStore {
    Memory(MemoryStore),
    Redis(redis::RedisStore),
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
        // The Redis lookup's future is large; boxed, it stays out of every request's future
        // (which hyper moves) when sessions are in memory, for one small allocation on Redis.
        match self {
            AnySessionStore::Memory(s) => s.get(id).await,
            AnySessionStore::Redis(s) => Box::pin(s.get(id)).await,
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

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn session_id_is_a_hash_not_the_token() {
        let t = SessionToken::new("token-value".into());
        let id = SessionId::of(&t);
        assert_eq!(id.as_str().len(), 22);
        assert!(!id.as_str().contains("token"));
        assert_eq!(SessionId::of(&t), id);
        assert_eq!(SessionId::parse(id.as_str()), Some(id));
        assert_eq!(SessionId::parse("short"), None);
        assert_eq!(SessionId::parse("aaaaaaaaaaaaaaaaaaaa/+"), None);
    }

    #[test]
    fn identity_headers_render_into_one_buffer_and_values_that_cannot_be_sent_are_refused() {
        let id = SessionId::of(&SessionToken::new("t".into()));
        let identity = |email: Option<&str>, user: &str| Identity {
            user: user.into(),
            principal: format!("corp:{user}"),
            email: email.map(str::to_owned),
            groups: vec!["agents".into(), "tier2".into()],
            roles: vec!["agent".into()],
            method: AuthMethod::Oidc("corp".into()),
            mfa: MfaUsed::Idp,
        };
        let h = HeaderValues::render(&identity(Some("ann@example.com"), "ann"), &id).unwrap();
        assert_eq!(h.user(), "ann");
        assert_eq!(h.email(), Some(HeaderValue::from_static("ann@example.com")));
        assert_eq!(h.groups(), "agents,tier2");
        assert_eq!(h.roles(), "agent");
        assert_eq!(h.method(), "oidc:corp");
        assert_eq!(h.mfa(), "idp");
        assert_eq!(h.session(), id.as_str());
        // UTF-8 goes as its bytes, exactly.
        let h = HeaderValues::render(&identity(None, "zoë"), &id).unwrap();
        assert_eq!(h.user().as_bytes(), "zoë".as_bytes());
        assert!(h.email().is_none());
        // A value that cannot be a header is refused, never replaced by a placeholder (two such
        // users would reach the app as the same one).
        for bad in ["ann\r\nX-Evil: 1", "a\tb", "nul\0", "del\u{7f}"] {
            assert_eq!(
                HeaderValues::render(&identity(None, bad), &id).err(),
                Some(IdentityValueError::ControlCharacter("user name")),
                "{bad:?}"
            );
        }
        let long = "a".repeat(MAX_PART + 1);
        assert_eq!(
            HeaderValues::render(&identity(None, &long), &id).err(),
            Some(IdentityValueError::TooLong("user name"))
        );
        let mut i = identity(None, "ann");
        i.groups = vec!["g\n".into()];
        assert_eq!(
            i.check_values(&id),
            Err(IdentityValueError::ControlCharacter("group list"))
        );
    }

    #[test]
    fn tokens_are_256_bit_and_distinct() {
        let a = new_token().unwrap_or_else(|_| SessionToken::new(String::new()));
        let b = new_token().unwrap_or_else(|_| SessionToken::new(String::new()));
        assert_eq!(B64.decode(a.expose()).map(|v| v.len()).ok(), Some(32));
        assert!(!a.ct_eq(b.expose()));
    }
}
