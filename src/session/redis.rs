//! The shared session store: sessions and short-lived state in Redis, so several gateway
//! replicas see the same sessions, counters and single-use markers (DESIGN.md §5). Sessions are
//! cached per replica only while the invalidation subscription is live ([`SessionCache`]):
//! every script that changes or ends a session publishes its id on `{prefix}inval`, in the
//! same atomic step, and a replica without a live subscription reads every session from Redis.
//!
//! Key layout (every key starts with the configured prefix, e.g. `pc:`):
//!
//! | key            | type   | holds                                             | Redis TTL                  |
//! |----------------|--------|---------------------------------------------------|----------------------------|
//! | `s:{id}`       | hash   | `u` owner (principal), `d` compact JSON ([`StoredSession`]), `l` last seen | min(to absolute end, idle) |
//! | `u:{principal}`| set    | ids of the principal's sessions                   | longest of its sessions    |
//! | `ids`          | zset   | all session ids, score 0 (ordered by id for `list`) | none; pruned via `exp`   |
//! | `exp`          | zset   | session id → when its `s:` key expires (ms, Redis time) | none; pruned lazily  |
//! | `e:{key}`      | string | short-lived values and `claim_once` markers       | the caller's ttl           |
//! | `c:{key}`      | string | counters                                          | the window, from the first increment |
//! | `z:{key}`      | zset   | small sets (`set_add`), member → order added      | at least the caller's ttl  |
//!
//! Time: expiry of sessions is decided with the injected [`Clock`] (`Session::check` in `get`
//! and `list`), like the memory store; Redis TTLs only bound storage, and are computed from
//! durations so a test clock far from real time cannot make them negative. Short-lived state
//! (ephemeral values, counters, claims) expires by Redis time alone: one time source for all
//! replicas, so a replica with a skewed clock can neither reopen a replay window nor end a
//! lockout early.
//!
//! Every multi-key change is one Lua script, and every single-use check (`take_ephemeral`,
//! `claim_once`) is one atomic command, so two replicas can never both accept the same value.
//! Needs a single Redis server (or primary) ≥ 6.2, not Redis Cluster: scripts touch keys that
//! may live in different slots.

use super::redis_cache::{SessionCache, HEARTBEAT_EVERY, LIVE_FOR};
use super::{AuthMethod, Identity, MfaUsed, Session, SessionId, SessionStore};
use crate::clock::{Clock, UnixTime};
use crate::storage::StoreError;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{Cmd, ErrorKind, FromRedisValue, Pipeline, RedisError, RedisResult, Script};
use serde::{Deserialize, Serialize};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

/// Longest wait for one TCP connection attempt.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// Longest wait for a command's answer, including waiting for a reconnection in progress.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(2);
/// Longest `connect` may take in all (attempts and backoff).
const CONNECT_DEADLINE: Duration = Duration::from_secs(5);
/// Connection attempts after the first one, at start-up and at each reconnection.
const CONNECT_RETRIES: usize = 2;
/// Upper bound on the delay between connection attempts, in milliseconds.
const RETRY_MAX_DELAY_MS: u64 = 500;
/// Upper bound on any Redis TTL (400 days); keeps numbers exact inside Lua.
const MAX_TTL_MS: u64 = 400 * 86_400 * 1000;
/// Ids fetched per round trip by `list`.
const LIST_BATCH: usize = 200;

/// Removes index entries whose session key has expired by its Redis TTL (bounded work per call).
/// Shared by the scripts below; expects `now` in milliseconds of Redis time.
const PRUNE_LUA: &str = r"
local function redis_now()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local function prune(ids, exp, now)
  local dead = redis.call('ZRANGEBYSCORE', exp, '-inf', now, 'LIMIT', 0, 1000)
  for _, m in ipairs(dead) do
    redis.call('ZREM', ids, m)
    redis.call('ZREM', exp, m)
  end
end
";

/// KEYS: s:{id}, ids, exp, u:{user}. ARGV: id, user, data, last_seen, ttl_ms, max_sessions,
/// session key prefix, invalidation channel. Returns 1, or 0 when the store is full.
const INSERT_LUA: &str = r"
local now = redis_now()
prune(KEYS[2], KEYS[3], now)
-- The per-user set has no per-member TTL: drop ids whose session key is gone.
for _, m in ipairs(redis.call('SMEMBERS', KEYS[4])) do
  if redis.call('EXISTS', ARGV[7] .. m) == 0 then redis.call('SREM', KEYS[4], m) end
end
-- Refuse rather than evict someone's live session.
if redis.call('EXISTS', KEYS[1]) == 0 and redis.call('ZCARD', KEYS[2]) >= tonumber(ARGV[6]) then
  return 0
end
local ttl = tonumber(ARGV[5])
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'u', ARGV[2], 'd', ARGV[3], 'l', ARGV[4])
redis.call('PEXPIRE', KEYS[1], ttl)
redis.call('PUBLISH', ARGV[8], ARGV[1])
redis.call('ZADD', KEYS[2], 0, ARGV[1])
redis.call('ZADD', KEYS[3], string.format('%.0f', now + ttl), ARGV[1])
redis.call('SADD', KEYS[4], ARGV[1])
if redis.call('PTTL', KEYS[4]) < ttl then redis.call('PEXPIRE', KEYS[4], ttl) end
return 1
";

/// KEYS: s:{id}, ids, exp, u:{user}. ARGV: id, last_seen, ttl_ms, invalidation channel.
/// Returns 1, or 0 if the session is gone.
const TOUCH_LUA: &str = r"
-- A session removed meanwhile (logout, revocation on another replica) stays removed.
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local ttl = tonumber(ARGV[3])
local now = redis_now()
redis.call('HSET', KEYS[1], 'l', ARGV[2])
redis.call('PEXPIRE', KEYS[1], ttl)
-- Other replicas hold the old idle timestamp: they read it again.
redis.call('PUBLISH', ARGV[4], ARGV[1])
redis.call('ZADD', KEYS[2], 0, ARGV[1])
redis.call('ZADD', KEYS[3], string.format('%.0f', now + ttl), ARGV[1])
redis.call('SADD', KEYS[4], ARGV[1])
if redis.call('PTTL', KEYS[4]) < ttl then redis.call('PEXPIRE', KEYS[4], ttl) end
return 1
";

/// KEYS: s:{id}, ids, exp. ARGV: id, user key prefix, invalidation channel. Returns the
/// removed hash fields `[u, d, l]`, or nil when there was no session.
const REMOVE_LUA: &str = r"
redis.call('PUBLISH', ARGV[3], ARGV[1])
local v = redis.call('HMGET', KEYS[1], 'u', 'd', 'l')
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('ZREM', KEYS[3], ARGV[1])
if redis.call('DEL', KEYS[1]) == 0 then return false end
if v[1] then redis.call('SREM', ARGV[2] .. v[1], ARGV[1]) end
return v
";

/// KEYS: u:{user}, ids, exp. ARGV: session key prefix, user, invalidation channel. Returns the
/// ids removed.
const REMOVE_USER_LUA: &str = r"
local gone = {}
for _, id in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  local k = ARGV[1] .. id
  local owner = redis.call('HGET', k, 'u')
  if owner == ARGV[2] then
    redis.call('DEL', k)
    redis.call('PUBLISH', ARGV[3], id)
    gone[#gone + 1] = id
  end
  if owner == ARGV[2] or not owner then
    redis.call('ZREM', KEYS[2], id)
    redis.call('ZREM', KEYS[3], id)
  end
end
redis.call('DEL', KEYS[1])
return gone
";

/// KEYS: ids, exp. Returns the number of sessions whose key has not expired.
const COUNT_LUA: &str = r"
prune(KEYS[1], KEYS[2], redis_now())
return redis.call('ZCARD', KEYS[1])
";

/// KEYS: c:{key}. ARGV: window_ms. Returns the new count.
const INCR_LUA: &str = r"
local n = redis.call('INCR', KEYS[1])
-- The window starts at the first increment; later ones do not extend it. A counter left
-- without a TTL gets one, so it can never lock anyone out for good.
if n == 1 or redis.call('PTTL', KEYS[1]) < 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
end
return n
";

/// KEYS: c:{key}. Takes one back from a live counter; a counter reaching zero is deleted, and
/// none is ever created (a DECR on a missing key would make one without a TTL).
const DECR_LUA: &str = r"
local n = tonumber(redis.call('GET', KEYS[1]) or '0')
if n <= 1 then redis.call('DEL', KEYS[1]) else redis.call('DECR', KEYS[1]) end
return 0
";

/// KEYS: z:{key}. ARGV: member, ttl_ms, cap. One atomic add: concurrent adders on any replicas
/// never drop each other's members (no read-modify-write in the caller). Members are ordered by
/// a per-set sequence, so the oldest go first past `cap`.
const SET_ADD_LUA: &str = r"
local seq = redis.call('HINCRBY', KEYS[1] .. ':seq', 'n', 1)
redis.call('ZADD', KEYS[1], seq, ARGV[1])
local over = redis.call('ZCARD', KEYS[1]) - tonumber(ARGV[3])
if over > 0 then redis.call('ZREMRANGEBYRANK', KEYS[1], 0, over - 1) end
local ttl = tonumber(ARGV[2])
if redis.call('PTTL', KEYS[1]) < ttl then
  redis.call('PEXPIRE', KEYS[1], ttl)
  redis.call('PEXPIRE', KEYS[1] .. ':seq', ttl)
end
return 0
";

/// KEYS: z:{key}. Reads and deletes the set in one step: of two takers, one gets the members.
const SET_TAKE_LUA: &str = r"
local m = redis.call('ZRANGE', KEYS[1], 0, -1)
redis.call('DEL', KEYS[1], KEYS[1] .. ':seq')
return m
";

/// The Redis-backed [`SessionStore`]. Cheap to clone; clones share one connection.
#[derive(Clone)]
pub struct RedisStore {
    inner: Arc<Inner>,
}

// No `Debug`: the connection holds the URL, which may carry a password.
struct Inner {
    conn: ConnectionManager,
    /// For the invalidation subscription, which needs a connection of its own.
    client: redis::Client,
    /// `{prefix}inval`: every script that changes or ends a session publishes its id here.
    channel: String,
    cache: SessionCache,
    prefix: String,
    clock: Clock,
    max_sessions: usize,
    insert: Script,
    touch: Script,
    remove: Script,
    remove_user: Script,
    count: Script,
    incr: Script,
    decr: Script,
    set_add: Script,
    set_take: Script,
    /// Sessions decoded on this replica, by id, with the stored bytes they came from. Every
    /// request still reads the session from Redis (revocation is immediate everywhere); when the
    /// stored bytes are unchanged the decoded session, its header values and its cached
    /// assertion are reused instead of decoding and re-signing on every request.
    decoded: dashmap::DashMap<SessionId, (String, Vec<u8>, Arc<Session>)>,
}

/// Decoded sessions kept per replica before the cache is emptied (bounded memory).
const DECODED_CAP: usize = 50_000;

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
type SessionFields = (Option<String>, Option<Vec<u8>>, Option<UnixTime>);

fn encode(s: &Session) -> Result<Vec<u8>, StoreError> {
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
fn decode(
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
fn session_ttl_ms(s: &Session, at: UnixTime) -> u64 {
    let to_end = u64::try_from(s.expires_at.saturating_sub(at)).unwrap_or(0);
    to_end
        .min(s.idle_timeout.as_secs())
        .saturating_mul(1000)
        .clamp(1000, MAX_TTL_MS)
}

/// Redis TTL of short-lived state, ≥ 1 s like the memory store.
fn ttl_ms(ttl: Duration) -> u64 {
    u64::try_from(ttl.as_millis())
        .unwrap_or(MAX_TTL_MS)
        .clamp(1000, MAX_TTL_MS)
}

fn store_error(what: &str, e: &RedisError) -> StoreError {
    // Redis error text names the command and the server's reply, never the connection URL.
    match e.kind() {
        ErrorKind::TypeError => StoreError::Corrupt(format!("redis {what}: {e}")),
        // Everything else (I/O, refused, dropped, timeouts, server errors) fails closed.
        _ => StoreError::Unavailable(format!("redis {what}: {e}")),
    }
}

impl RedisStore {
    /// Connects to the Redis at `url` and checks it answers and supports GETDEL (Redis ≥ 6.2).
    /// Fails with `Unavailable` within a few seconds when the server cannot be reached.
    /// Every key is prefixed with `prefix`; at most `max_sessions` sessions are kept.
    pub async fn connect(
        url: &str,
        prefix: &str,
        clock: Clock,
        max_sessions: usize,
    ) -> Result<Self, StoreError> {
        // The URL may hold a password: it never goes into an error or a log line.
        let client = redis::Client::open(url)
            .map_err(|e| StoreError::Unavailable(format!("invalid redis url ({:?})", e.kind())))?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(CONNECT_TIMEOUT)
            .set_response_timeout(COMMAND_TIMEOUT)
            .set_number_of_retries(CONNECT_RETRIES)
            .set_max_delay(RETRY_MAX_DELAY_MS);
        let conn = match tokio::time::timeout(
            CONNECT_DEADLINE,
            ConnectionManager::new_with_config(client.clone(), config),
        )
        .await
        {
            Ok(Ok(c)) => c,
            Ok(Err(e)) => return Err(store_error("connect", &e)),
            Err(_) => return Err(StoreError::Unavailable("redis connect: timed out".into())),
        };
        let script = |body: &str| Script::new(&format!("{PRUNE_LUA}{body}"));
        let store = Self {
            inner: Arc::new(Inner {
                conn,
                client,
                channel: format!("{prefix}inval"),
                cache: SessionCache::default(),
                prefix: prefix.to_owned(),
                clock,
                max_sessions,
                insert: script(INSERT_LUA),
                touch: script(TOUCH_LUA),
                remove: script(REMOVE_LUA),
                remove_user: script(REMOVE_USER_LUA),
                count: script(COUNT_LUA),
                incr: Script::new(INCR_LUA),
                decr: Script::new(DECR_LUA),
                set_add: Script::new(SET_ADD_LUA),
                set_take: Script::new(SET_TAKE_LUA),
                decoded: dashmap::DashMap::new(),
            }),
        };
        // GETDEL of a key that never exists: proves the server answers and is new enough for
        // atomic single-use reads.
        let probe = store.key("probe:", "");
        store
            .query::<Option<Vec<u8>>>("getdel", redis::cmd("GETDEL").arg(&probe))
            .await?;
        Ok(store)
    }

    /// Starts the invalidation subscriber: it keeps the session cache usable while its own
    /// heartbeats come back through Redis, and empties it whenever they do not.
    pub fn spawn_invalidation(&self) {
        let weak = Arc::downgrade(&self.inner);
        tokio::spawn(async move {
            let mut backoff = Duration::from_millis(100);
            loop {
                let Some(inner) = weak.upgrade() else { return };
                let why = listen(&inner).await;
                inner.cache.lost();
                tracing::warn!(reason = %why, "session cache off: invalidation subscription lost; reading every session from Redis");
                drop(inner);
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_millis(RETRY_MAX_DELAY_MS));
            }
        });
    }

    fn key(&self, kind: &str, rest: &str) -> String {
        format!("{}{kind}{rest}", self.inner.prefix)
    }

    fn session_key(&self, id: &SessionId) -> String {
        self.key("s:", id.as_str())
    }

    /// Sends one command; a slow or unreachable server is `Unavailable` after
    /// `COMMAND_TIMEOUT`, never a hang.
    async fn run<T>(
        &self,
        what: &str,
        fut: impl Future<Output = RedisResult<T>>,
    ) -> Result<T, StoreError> {
        match tokio::time::timeout(COMMAND_TIMEOUT, fut).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(store_error(what, &e)),
            Err(_) => Err(StoreError::Unavailable(format!("redis {what}: timed out"))),
        }
    }

    async fn query<T: FromRedisValue>(&self, what: &str, cmd: &Cmd) -> Result<T, StoreError> {
        let mut c = self.inner.conn.clone();
        self.run(what, cmd.query_async(&mut c)).await
    }

    async fn pipeline<T: FromRedisValue>(&self, what: &str, p: &Pipeline) -> Result<T, StoreError> {
        let mut c = self.inner.conn.clone();
        self.run(what, p.query_async(&mut c)).await
    }

    async fn invoke<T: FromRedisValue>(
        &self,
        what: &str,
        inv: &redis::ScriptInvocation<'_>,
    ) -> Result<T, StoreError> {
        let mut c = self.inner.conn.clone();
        self.run(what, inv.invoke_async(&mut c)).await
    }

    /// Loads sessions by id in one round trip; `None` for ids whose key is gone.
    async fn fetch(&self, ids: &[SessionId]) -> Result<Vec<Option<Session>>, StoreError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut p = redis::pipe();
        for id in ids {
            p.cmd("HMGET")
                .arg(self.session_key(id))
                .arg("u")
                .arg("d")
                .arg("l");
        }
        let rows: Vec<SessionFields> = self.pipeline("hmget", &p).await?;
        ids.iter()
            .cloned()
            .zip(rows)
            .map(|(id, row)| decode(id, row))
            .collect()
    }

    /// Removes index entries of sessions whose key has expired; returns the live count.
    async fn prune_and_count(&self) -> Result<usize, StoreError> {
        let n: u64 = self
            .invoke(
                "count",
                self.inner
                    .count
                    .key(self.key("ids", ""))
                    .key(self.key("exp", "")),
            )
            .await?;
        Ok(usize::try_from(n).unwrap_or(usize::MAX))
    }
}

/// Holds one subscription to the invalidation channel until it fails; returns why.
/// The cache is marked live only by this replica's own heartbeat arriving, which proves that
/// messages published now reach it; a heartbeat late by more than `LIVE_FOR` ends the listen.
async fn listen(inner: &Arc<Inner>) -> String {
    use futures_util::StreamExt as _;
    let mut pubsub =
        match tokio::time::timeout(CONNECT_TIMEOUT, inner.client.get_async_pubsub()).await {
            Ok(Ok(p)) => p,
            Ok(Err(e)) => return store_error("subscribe", &e).to_string(),
            Err(_) => return "subscribe: connect timed out".into(),
        };
    match tokio::time::timeout(COMMAND_TIMEOUT, pubsub.subscribe(&inner.channel)).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => return store_error("subscribe", &e).to_string(),
        Err(_) => return "subscribe: timed out".into(),
    }
    let mut messages = pubsub.into_on_message();
    let beat = format!("hb:{}", super::random_id(12));
    let mut tick = tokio::time::interval(HEARTBEAT_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_beat = tokio::time::Instant::now();
    loop {
        tokio::select! {
            m = messages.next() => {
                let Some(m) = m else { return "subscription closed".into() };
                let payload = m.get_payload_bytes();
                if payload == beat.as_bytes() {
                    last_beat = tokio::time::Instant::now();
                    if !inner.cache.is_live() {
                        tracing::info!(channel = %inner.channel, "session cache on: invalidation subscription live");
                    }
                    inner.cache.heartbeat();
                } else if !payload.starts_with(b"hb:") {
                    // Session ids are base64url; anything else invalidates nothing, harmlessly.
                    if let Ok(id) = std::str::from_utf8(payload) {
                        inner.cache.invalidate(&SessionId(id.to_owned()));
                    }
                }
            }
            _ = tick.tick() => {
                if last_beat.elapsed() > LIVE_FOR * 2 {
                    return "heartbeat not seen".into();
                }
                // Sent on the shared connection, not awaited here: the loop keeps reading. A
                // heartbeat Redis refuses or does not take in time means it is gone or unwell:
                // the cache is dropped at once rather than when its trust window runs out.
                let mut c = inner.conn.clone();
                let cmd = redis::cmd("PUBLISH").arg(&inner.channel).arg(&beat).to_owned();
                let weak = Arc::downgrade(inner);
                tokio::spawn(async move {
                    let sent = tokio::time::timeout(
                        HEARTBEAT_EVERY * 2,
                        cmd.query_async::<i64>(&mut c),
                    )
                    .await;
                    if !matches!(sent, Ok(Ok(_))) {
                        if let Some(inner) = weak.upgrade() {
                            inner.cache.lost();
                        }
                    }
                });
            }
        }
    }
}

impl SessionStore for RedisStore {
    async fn get(&self, id: &SessionId) -> Result<Option<Arc<Session>>, StoreError> {
        if let Some(s) = self.inner.cache.get(id) {
            if s.check(self.inner.clock.now()).is_ok() {
                return Ok(Some(s));
            }
        }
        // Taken before the read: if anything is invalidated meanwhile, the answer is not cached.
        let ticket = self.inner.cache.ticket();
        let row: SessionFields = self
            .query(
                "get session",
                redis::cmd("HMGET")
                    .arg(self.session_key(id))
                    .arg("u")
                    .arg("d")
                    .arg("l"),
            )
            .await?;
        let s = match row {
            (Some(user), Some(data), Some(last_seen)) => {
                let hit = self.inner.decoded.get(id).and_then(|e| {
                    let (u, d, s) = e.value();
                    (*u == user && *d == data).then(|| Arc::clone(s))
                });
                match hit {
                    Some(s) => {
                        s.set_last_seen(last_seen);
                        s
                    }
                    None => {
                        let Some(s) = decode(
                            id.clone(),
                            (Some(user.clone()), Some(data.clone()), Some(last_seen)),
                        )?
                        else {
                            return Ok(None);
                        };
                        let s = Arc::new(s);
                        if self.inner.decoded.len() >= DECODED_CAP {
                            self.inner.decoded.clear();
                        }
                        self.inner
                            .decoded
                            .insert(id.clone(), (user, data, Arc::clone(&s)));
                        s
                    }
                }
            }
            row => {
                self.inner.decoded.remove(id);
                let Some(s) = decode(id.clone(), row)? else {
                    return Ok(None);
                };
                Arc::new(s)
            }
        };
        if s.check(self.inner.clock.now()).is_err() {
            // Expired by the gateway clock before its Redis TTL ran out: never hand it out,
            // and delete it so no replica sees it again. A failed delete changes nothing for
            // this answer (no session), and the TTL removes the key in any case.
            let _ = self.remove(id).await;
            return Ok(None);
        }
        self.inner.cache.offer(ticket, &s);
        Ok(Some(s))
    }

    async fn insert(&self, session: Session) -> Result<Arc<Session>, StoreError> {
        let data = encode(&session)?;
        let ttl = session_ttl_ms(&session, session.last_seen());
        let mut inv = self.inner.insert.key(self.session_key(&session.id));
        inv.key(self.key("ids", ""))
            .key(self.key("exp", ""))
            .key(self.key("u:", &session.identity.principal))
            .arg(session.id.as_str())
            .arg(&session.identity.principal)
            .arg(data)
            .arg(session.last_seen())
            .arg(ttl)
            .arg(u64::try_from(self.inner.max_sessions).unwrap_or(u64::MAX))
            .arg(self.key("s:", ""))
            .arg(&self.inner.channel);
        let stored: u8 = self.invoke("insert session", &inv).await?;
        if stored == 0 {
            // Refuse rather than evict someone's live session.
            return Err(StoreError::Unavailable("session store is full".into()));
        }
        Ok(Arc::new(session))
    }

    async fn touch(&self, session: &Session, now: UnixTime) -> Result<(), StoreError> {
        let mut inv = self.inner.touch.key(self.session_key(&session.id));
        inv.key(self.key("ids", ""))
            .key(self.key("exp", ""))
            .key(self.key("u:", &session.identity.principal))
            .arg(session.id.as_str())
            .arg(now)
            .arg(session_ttl_ms(session, now))
            .arg(&self.inner.channel);
        // 0 means the session was removed meanwhile; like the memory store, not an error:
        // the next `get` finds nothing.
        let _: u8 = self.invoke("touch session", &inv).await?;
        session.set_last_seen(now);
        Ok(())
    }

    async fn remove(&self, id: &SessionId) -> Result<Option<Arc<Session>>, StoreError> {
        self.inner.decoded.remove(id);
        // Here at once; elsewhere through the script's PUBLISH.
        self.inner.cache.invalidate(id);
        let mut inv = self.inner.remove.key(self.session_key(id));
        inv.key(self.key("ids", ""))
            .key(self.key("exp", ""))
            .arg(id.as_str())
            .arg(self.key("u:", ""))
            .arg(&self.inner.channel);
        let row: Option<SessionFields> = self.invoke("remove session", &inv).await?;
        match row {
            None => Ok(None),
            Some(row) => Ok(decode(id.clone(), row)?.map(Arc::new)),
        }
    }

    async fn remove_principal(&self, principal: &str) -> Result<Vec<SessionId>, StoreError> {
        let mut inv = self.inner.remove_user.key(self.key("u:", principal));
        inv.key(self.key("ids", ""))
            .key(self.key("exp", ""))
            .arg(self.key("s:", ""))
            .arg(principal)
            .arg(&self.inner.channel);
        let ids: Vec<String> = self.invoke("remove user sessions", &inv).await?;
        let mut ids: Vec<SessionId> = ids.into_iter().map(SessionId).collect();
        for id in &ids {
            self.inner.cache.invalidate(id);
        }
        ids.sort();
        Ok(ids)
    }

    async fn list(
        &self,
        principal: Option<&str>,
        after: Option<&SessionId>,
        limit: usize,
    ) -> Result<Vec<Arc<Session>>, StoreError> {
        let now = self.inner.clock.now();
        let mut out = Vec::new();
        if limit == 0 {
            return Ok(out);
        }
        if let Some(principal) = principal {
            let ids: Vec<String> = self
                .query(
                    "list user sessions",
                    redis::cmd("SMEMBERS").arg(self.key("u:", principal)),
                )
                .await?;
            let mut ids: Vec<SessionId> = ids
                .into_iter()
                .map(SessionId)
                .filter(|id| after.is_none_or(|a| id > a))
                .collect();
            ids.sort();
            out.extend(
                self.fetch(&ids)
                    .await?
                    .into_iter()
                    .flatten()
                    // Only this principal's: a stale id never names someone else's session.
                    .filter(|s| s.identity.principal == principal && s.check(now).is_ok())
                    .take(limit)
                    .map(Arc::new),
            );
            return Ok(out);
        }
        self.prune_and_count().await?;
        let mut cursor = after.cloned();
        loop {
            let min = cursor
                .as_ref()
                .map_or_else(|| "-".to_owned(), |c| format!("({}", c.as_str()));
            let page: Vec<String> = self
                .query(
                    "list sessions",
                    redis::cmd("ZRANGEBYLEX")
                        .arg(self.key("ids", ""))
                        .arg(min)
                        .arg("+")
                        .arg("LIMIT")
                        .arg(0)
                        .arg(LIST_BATCH),
                )
                .await?;
            let full_page = page.len() == LIST_BATCH;
            let ids: Vec<SessionId> = page.into_iter().map(SessionId).collect();
            cursor = ids.last().cloned();
            // Sessions expired by the clock but not yet by their TTL are skipped, not returned.
            for s in self.fetch(&ids).await?.into_iter().flatten() {
                if s.check(now).is_ok() {
                    out.push(Arc::new(s));
                    if out.len() == limit {
                        return Ok(out);
                    }
                }
            }
            if !full_page {
                return Ok(out);
            }
        }
    }

    async fn count(&self) -> Result<usize, StoreError> {
        self.prune_and_count().await
    }

    async fn ping(&self) -> Result<(), StoreError> {
        let _: String = self.query("ping", &redis::cmd("PING")).await?;
        Ok(())
    }

    async fn put_ephemeral(
        &self,
        key: &str,
        value: Vec<u8>,
        ttl: Duration,
    ) -> Result<(), StoreError> {
        let _: () = self
            .query(
                "put ephemeral",
                redis::cmd("SET")
                    .arg(self.key("e:", key))
                    .arg(value)
                    .arg("PX")
                    .arg(ttl_ms(ttl)),
            )
            .await?;
        Ok(())
    }

    async fn get_ephemeral(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.query("get ephemeral", redis::cmd("GET").arg(self.key("e:", key)))
            .await
    }

    async fn take_ephemeral(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        // GETDEL is one atomic command: of two concurrent takers on any replicas exactly one
        // gets the value.
        self.query(
            "take ephemeral",
            redis::cmd("GETDEL").arg(self.key("e:", key)),
        )
        .await
    }

    async fn delete_ephemeral(&self, key: &str) -> Result<(), StoreError> {
        let _: u64 = self
            .query(
                "delete ephemeral",
                redis::cmd("DEL").arg(self.key("e:", key)),
            )
            .await?;
        Ok(())
    }

    async fn incr(&self, key: &str, window: Duration) -> Result<u64, StoreError> {
        let mut inv = self.inner.incr.key(self.key("c:", key));
        inv.arg(ttl_ms(window));
        self.invoke("incr", &inv).await
    }

    async fn counter(&self, key: &str) -> Result<u64, StoreError> {
        let n: Option<u64> = self
            .query("counter", redis::cmd("GET").arg(self.key("c:", key)))
            .await?;
        Ok(n.unwrap_or(0))
    }

    async fn decr(&self, key: &str) -> Result<(), StoreError> {
        let inv = self.inner.decr.key(self.key("c:", key));
        let _: i64 = self.invoke("decr", &inv).await?;
        Ok(())
    }

    async fn reset_counter(&self, key: &str) -> Result<(), StoreError> {
        let _: u64 = self
            .query("reset counter", redis::cmd("DEL").arg(self.key("c:", key)))
            .await?;
        Ok(())
    }

    async fn set_add(
        &self,
        key: &str,
        member: &str,
        ttl: Duration,
        cap: usize,
    ) -> Result<(), StoreError> {
        let mut inv = self.inner.set_add.key(self.key("z:", key));
        inv.arg(member).arg(ttl_ms(ttl)).arg(cap.max(1));
        let _: i64 = self.invoke("set add", &inv).await?;
        Ok(())
    }

    async fn set_take(&self, key: &str) -> Result<Vec<String>, StoreError> {
        let inv = self.inner.set_take.key(self.key("z:", key));
        self.invoke("set take", &inv).await
    }

    async fn claim_once(&self, key: &str, ttl: Duration) -> Result<bool, StoreError> {
        // SET NX is atomic: of two concurrent claims on any replicas exactly one succeeds.
        // Claims share the `e:` namespace with ephemeral values, as in the memory store.
        let set: Option<String> = self
            .query(
                "claim once",
                redis::cmd("SET")
                    .arg(self.key("e:", key))
                    .arg("")
                    .arg("NX")
                    .arg("PX")
                    .arg(ttl_ms(ttl)),
            )
            .await?;
        Ok(set.is_some())
    }
}

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
mod tests {
    //! Against the Redis named by `REDIS_URL` (skipped when unset). Each test works under its
    //! own random key prefix and deletes its keys at the end.

    use super::*;
    use crate::session::{new_token, random_id};
    use std::time::Instant;

    fn redis_url() -> Option<String> {
        match std::env::var("REDIS_URL") {
            Ok(u) if !u.is_empty() => Some(u),
            _ => {
                println!("skipped: REDIS_URL not set");
                None
            }
        }
    }

    /// A fresh key prefix, so concurrent test runs never see each other's keys.
    fn test_prefix() -> String {
        format!("pctest:{}:", random_id(9))
    }

    async fn store(url: &str, prefix: &str, clock: &Clock, max_sessions: usize) -> RedisStore {
        RedisStore::connect(url, prefix, clock.clone(), max_sessions)
            .await
            .unwrap()
    }

    /// Deletes every key under `prefix` (SCAN + DEL).
    async fn cleanup(st: &RedisStore) {
        let mut c = st.inner.conn.clone();
        let pattern = format!("{}*", st.inner.prefix);
        let mut cursor: u64 = 0;
        loop {
            let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(&pattern)
                .arg("COUNT")
                .arg(1000)
                .query_async(&mut c)
                .await
                .unwrap();
            if !keys.is_empty() {
                let _: u64 = redis::cmd("DEL")
                    .arg(&keys)
                    .query_async(&mut c)
                    .await
                    .unwrap();
            }
            if next == 0 {
                break;
            }
            cursor = next;
        }
    }

    async fn raw<T: FromRedisValue>(st: &RedisStore, cmd: &Cmd) -> T {
        let mut c = st.inner.conn.clone();
        cmd.query_async(&mut c).await.unwrap()
    }

    fn new_id() -> SessionId {
        SessionId::of(&new_token().unwrap())
    }

    fn identity(user: &str) -> Identity {
        Identity {
            user: user.into(),
            principal: format!("native:{user}"),
            email: None,
            groups: vec![],
            roles: vec!["agent".into()],
            method: AuthMethod::Native,
            mfa: MfaUsed::Totp,
        }
    }

    /// A session made at `now`: one hour absolute, ten minutes idle.
    fn session(id: &SessionId, user: &str, now: UnixTime) -> Session {
        Session::new(
            id.clone(),
            identity(user),
            now,
            Duration::from_secs(3600),
            Duration::from_secs(600),
            None,
            None,
        )
        .unwrap()
    }

    fn ids(v: &[Arc<Session>]) -> Vec<SessionId> {
        v.iter().map(|s| s.id.clone()).collect()
    }

    #[tokio::test]
    async fn sessions_round_trip_with_every_field_and_recomputed_headers() {
        let Some(url) = redis_url() else { return };
        let clock = Clock::manual(1_000);
        let st = store(&url, &test_prefix(), &clock, 10).await;
        let id = new_id();
        let s = Session::new(
            id.clone(),
            Identity {
                user: "ann".into(),
                principal: "corp:ann-42".into(),
                email: Some("ann@example.com".into()),
                groups: vec!["support".into(), "tier2".into()],
                roles: vec!["agent".into(), "admin".into()],
                method: AuthMethod::Oidc("corp:eu".into()),
                mfa: MfaUsed::RememberedDevice,
            },
            1_000,
            Duration::from_secs(8 * 3600),
            Duration::from_secs(900),
            Some("192.0.2.7".into()),
            Some("Mozilla/5.0".into()),
        )
        .unwrap();
        s.set_last_seen(1_010);
        clock.advance(10);
        st.insert(s).await.unwrap();

        let got = st.get(&id).await.unwrap().unwrap();
        assert_eq!(got.id, id);
        assert_eq!(got.identity.user, "ann");
        assert_eq!(got.identity.principal, "corp:ann-42");
        assert_eq!(got.identity.email.as_deref(), Some("ann@example.com"));
        assert_eq!(got.identity.groups, vec!["support", "tier2"]);
        assert_eq!(got.identity.roles, vec!["agent", "admin"]);
        assert_eq!(got.identity.method, AuthMethod::Oidc("corp:eu".into()));
        assert_eq!(got.identity.mfa, MfaUsed::RememberedDevice);
        assert_eq!(
            (
                got.created_at,
                got.expires_at,
                got.idle_timeout,
                got.last_seen()
            ),
            (1_000, 1_000 + 8 * 3600, Duration::from_secs(900), 1_010)
        );
        assert_eq!(got.ip.as_deref(), Some("192.0.2.7"));
        assert_eq!(got.user_agent.as_deref(), Some("Mozilla/5.0"));
        assert_eq!(got.headers.method(), "oidc:corp:eu");
        assert_eq!(got.headers.groups(), "support,tier2");
        assert_eq!(got.headers.mfa(), "remembered_device");
        assert_eq!(got.headers.session(), id.as_str());

        // Compact: no header values, short field names.
        let d: Vec<u8> = raw(&st, redis::cmd("HGET").arg(st.session_key(&id)).arg("d")).await;
        assert!(d.len() < 200, "stored session is {} bytes", d.len());
        let fields: Vec<String> = raw(&st, redis::cmd("HKEYS").arg(st.session_key(&id))).await;
        assert_eq!(fields.len(), 3);
        cleanup(&st).await;
    }

    #[tokio::test]
    async fn insert_get_remove_remove_user_list_and_count_agree() {
        let Some(url) = redis_url() else { return };
        let clock = Clock::manual(1_000);
        let st = store(&url, &test_prefix(), &clock, 10).await;
        let mut all: Vec<SessionId> = (0..4).map(|_| new_id()).collect();
        all.sort();
        let users = ["ann", "bob", "ann", "cy"];
        for (id, u) in all.iter().zip(users) {
            st.insert(session(id, u, 1_000)).await.unwrap();
        }
        assert_eq!(st.count().await.unwrap(), 4);
        assert_eq!(ids(&st.list(None, None, 10).await.unwrap()), all);
        assert_eq!(
            ids(&st.list(None, None, 2).await.unwrap()),
            all[..2].to_vec()
        );
        assert_eq!(
            ids(&st.list(None, Some(&all[1]), 10).await.unwrap()),
            all[2..].to_vec()
        );
        assert_eq!(
            ids(&st.list(Some("native:ann"), None, 10).await.unwrap()),
            vec![all[0].clone(), all[2].clone()]
        );
        assert_eq!(
            ids(&st
                .list(Some("native:ann"), Some(&all[0]), 10)
                .await
                .unwrap()),
            vec![all[2].clone()]
        );
        assert!(st.list(None, None, 0).await.unwrap().is_empty());

        let removed = st.remove(&all[1]).await.unwrap().unwrap();
        assert_eq!(
            (removed.id.clone(), removed.identity.user.as_str()),
            (all[1].clone(), "bob")
        );
        assert!(st.remove(&all[1]).await.unwrap().is_none());
        assert!(st.get(&all[1]).await.unwrap().is_none());
        assert_eq!(st.count().await.unwrap(), 3);

        assert_eq!(
            st.remove_principal("native:ann").await.unwrap(),
            vec![all[0].clone(), all[2].clone()]
        );
        assert!(st.get(&all[0]).await.unwrap().is_none());
        assert!(st.get(&all[2]).await.unwrap().is_none());
        assert!(st.get(&all[3]).await.unwrap().is_some());
        assert!(st
            .list(Some("native:ann"), None, 10)
            .await
            .unwrap()
            .is_empty());
        assert_eq!(
            ids(&st.list(None, None, 10).await.unwrap()),
            vec![all[3].clone()]
        );
        assert_eq!(st.count().await.unwrap(), 1);
        assert_eq!(
            st.remove_principal("native:nobody").await.unwrap(),
            Vec::<SessionId>::new()
        );
        cleanup(&st).await;
    }

    #[tokio::test]
    async fn a_full_store_refuses_new_sessions() {
        let Some(url) = redis_url() else { return };
        let clock = Clock::manual(1_000);
        let st = store(&url, &test_prefix(), &clock, 1).await;
        st.insert(session(&new_id(), "ann", 1_000)).await.unwrap();
        assert!(matches!(
            st.insert(session(&new_id(), "bob", 1_000)).await,
            Err(StoreError::Unavailable(_))
        ));
        cleanup(&st).await;
    }

    #[tokio::test]
    async fn idle_sessions_expire_by_the_clock_and_touch_extends_them() {
        let Some(url) = redis_url() else { return };
        let clock = Clock::manual(1_000);
        let st = store(&url, &test_prefix(), &clock, 10).await;
        let id = new_id();
        st.insert(session(&id, "ann", 1_000)).await.unwrap();
        let pttl: i64 = raw(&st, redis::cmd("PTTL").arg(st.session_key(&id))).await;
        assert!(
            (599_000..=600_000).contains(&pttl),
            "ttl is the idle timeout: {pttl}"
        );

        clock.advance(599);
        let s = st.get(&id).await.unwrap().unwrap();
        st.touch(&s, clock.now()).await.unwrap();
        assert_eq!(s.last_seen(), 1_599);
        clock.advance(599);
        assert_eq!(st.get(&id).await.unwrap().unwrap().last_seen(), 1_599);
        clock.advance(1);
        assert!(st.get(&id).await.unwrap().is_none());
        // The expired session's key went at once, not only at its Redis TTL.
        let exists: u64 = raw(&st, redis::cmd("EXISTS").arg(st.session_key(&id))).await;
        assert_eq!(exists, 0);
        assert_eq!(st.count().await.unwrap(), 0);
        cleanup(&st).await;
    }

    #[tokio::test]
    async fn sessions_end_at_their_absolute_lifetime_however_active() {
        let Some(url) = redis_url() else { return };
        let clock = Clock::manual(1_000);
        let st = store(&url, &test_prefix(), &clock, 10).await;
        let id = new_id();
        st.insert(session(&id, "ann", 1_000)).await.unwrap();
        for _ in 0..7 {
            clock.advance(500);
            let s = st.get(&id).await.unwrap().unwrap();
            st.touch(&s, clock.now()).await.unwrap();
        }
        // 4 500: 100 s left of the hour, so the Redis TTL shrinks to that.
        let pttl: i64 = raw(&st, redis::cmd("PTTL").arg(st.session_key(&id))).await;
        assert!(
            (99_000..=100_000).contains(&pttl),
            "ttl is the rest of the lifetime: {pttl}"
        );
        assert!(st.list(None, None, 10).await.unwrap().len() == 1);
        clock.advance(100);
        assert!(st.get(&id).await.unwrap().is_none());
        assert!(st.list(None, None, 10).await.unwrap().is_empty());
        cleanup(&st).await;
    }

    #[tokio::test]
    async fn touch_does_not_bring_back_a_removed_session() {
        let Some(url) = redis_url() else { return };
        let clock = Clock::manual(1_000);
        let st = store(&url, &test_prefix(), &clock, 10).await;
        let id = new_id();
        let s = st.insert(session(&id, "ann", 1_000)).await.unwrap();
        st.remove(&id).await.unwrap();
        st.touch(&s, 1_060).await.unwrap();
        let exists: u64 = raw(&st, redis::cmd("EXISTS").arg(st.session_key(&id))).await;
        assert_eq!(exists, 0);
        assert!(st.get(&id).await.unwrap().is_none());
        cleanup(&st).await;
    }

    #[tokio::test]
    async fn undecodable_session_data_is_corrupt_not_absent() {
        let Some(url) = redis_url() else { return };
        let clock = Clock::manual(1_000);
        let st = store(&url, &test_prefix(), &clock, 10).await;
        let id = new_id();
        st.insert(session(&id, "ann", 1_000)).await.unwrap();
        let _: u64 = raw(
            &st,
            redis::cmd("HSET")
                .arg(st.session_key(&id))
                .arg("d")
                .arg("{not json"),
        )
        .await;
        assert!(matches!(st.get(&id).await, Err(StoreError::Corrupt(_))));
        cleanup(&st).await;
    }

    #[tokio::test]
    async fn a_session_removed_on_one_replica_is_gone_on_the_other_at_once() {
        let Some(url) = redis_url() else { return };
        let clock = Clock::manual(1_000);
        let prefix = test_prefix();
        let a = store(&url, &prefix, &clock, 10).await;
        let b = store(&url, &prefix, &clock, 10).await;
        let (one, two) = (new_id(), new_id());
        a.insert(session(&one, "ann", 1_000)).await.unwrap();
        a.insert(session(&two, "ann", 1_000)).await.unwrap();
        assert!(b.get(&one).await.unwrap().is_some());
        a.remove(&one).await.unwrap();
        assert!(b.get(&one).await.unwrap().is_none());
        b.remove_principal("native:ann").await.unwrap();
        assert!(a.get(&two).await.unwrap().is_none());
        assert_eq!(a.count().await.unwrap(), 0);
        cleanup(&a).await;
    }

    /// Waits up to `limit` for `cond`; true when it held.
    async fn eventually<F, Fut>(limit: Duration, mut cond: F) -> bool
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = bool>,
    {
        let end = tokio::time::Instant::now() + limit;
        while tokio::time::Instant::now() < end {
            if cond().await {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        false
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn with_live_subscriptions_sessions_are_cached_and_invalidated_on_every_replica() {
        let Some(url) = redis_url() else { return };
        let clock = Clock::manual(1_000);
        let prefix = test_prefix();
        let a = store(&url, &prefix, &clock, 10).await;
        let b = store(&url, &prefix, &clock, 10).await;
        a.spawn_invalidation();
        b.spawn_invalidation();
        assert!(
            eventually(Duration::from_secs(5), || async {
                a.inner.cache.is_live() && b.inner.cache.is_live()
            })
            .await,
            "both subscriptions go live"
        );
        let (one, two) = (new_id(), new_id());
        a.insert(session(&one, "ann", 1_000)).await.unwrap();
        a.insert(session(&two, "ann", 1_000)).await.unwrap();
        // A read that overlapped an invalidation (here: of `two`, inserted just before) is not
        // cached; reading again caches it.
        assert!(
            eventually(Duration::from_secs(2), || async {
                b.get(&one).await.unwrap().is_some() && b.inner.cache.get(&one).is_some()
            })
            .await,
            "cached on b"
        );
        // Deleted behind the store's back (no script, no PUBLISH): b answers from its cache,
        // which proves the cache is in use...
        let _: i64 = raw(&b, redis::cmd("DEL").arg(b.session_key(&one))).await;
        assert!(
            b.get(&one).await.unwrap().is_some(),
            "served from the cache"
        );
        // ...and a change through any replica's script reaches it: re-inserted, then removed.
        a.insert(session(&one, "ann", 1_000)).await.unwrap();
        a.remove(&one).await.unwrap();
        assert!(
            eventually(Duration::from_millis(500), || async {
                b.get(&one).await.unwrap().is_none()
            })
            .await,
            "a removal on a reaches b"
        );
        assert!(b.get(&two).await.unwrap().is_some());
        a.remove_principal("native:ann").await.unwrap();
        assert!(
            eventually(Duration::from_millis(500), || async {
                b.get(&two).await.unwrap().is_none()
            })
            .await,
            "ending every session of a user on a reaches b"
        );
        cleanup(&a).await;
    }

    #[tokio::test]
    async fn concurrent_set_adds_from_two_replicas_keep_every_member_and_a_take_empties_it() {
        let Some(url) = redis_url() else { return };
        let clock = Clock::manual(1_000);
        let prefix = test_prefix();
        let a = store(&url, &prefix, &clock, 10).await;
        let b = store(&url, &prefix, &clock, 10).await;
        let ttl = Duration::from_secs(60);
        let mut tasks = Vec::new();
        for n in 0..40 {
            let st = if n % 2 == 0 { a.clone() } else { b.clone() };
            tasks.push(tokio::spawn(async move {
                st.set_add("links", &format!("m{n}"), ttl, 64).await
            }));
        }
        for t in tasks {
            t.await.unwrap().unwrap();
        }
        let (x, y) = tokio::join!(a.set_take("links"), b.set_take("links"));
        let (x, y) = (x.unwrap(), y.unwrap());
        assert_eq!(x.len() + y.len(), 40, "no member lost, and taken once");
        assert!(x.is_empty() || y.is_empty());
        for n in 0..5 {
            a.set_add("capped", &format!("m{n}"), ttl, 3).await.unwrap();
        }
        assert_eq!(a.set_take("capped").await.unwrap(), ["m2", "m3", "m4"]);
        cleanup(&a).await;
    }

    #[tokio::test]
    async fn a_decoded_session_is_reused_only_while_the_store_holds_the_same_bytes() {
        let Some(url) = redis_url() else { return };
        let clock = Clock::manual(1_000);
        let prefix = test_prefix();
        let a = store(&url, &prefix, &clock, 10).await;
        let b = store(&url, &prefix, &clock, 10).await;
        let one = new_id();
        a.insert(session(&one, "ann", 1_000)).await.unwrap();
        let first = b.get(&one).await.unwrap().unwrap();
        let again = b.get(&one).await.unwrap().unwrap();
        assert!(Arc::ptr_eq(&first, &again), "unchanged bytes: decoded once");
        // A touch elsewhere changes only last_seen: still the same decoded session, updated.
        clock.advance(120);
        a.touch(&a.get(&one).await.unwrap().unwrap(), 1_120)
            .await
            .unwrap();
        let touched = b.get(&one).await.unwrap().unwrap();
        assert!(Arc::ptr_eq(&first, &touched));
        assert_eq!(touched.last_seen(), 1_120);
        // Other bytes under the same id (another identity): decoded anew, never the cached one.
        a.remove(&one).await.unwrap();
        a.insert(session(&one, "bob", 1_120)).await.unwrap();
        let other = b.get(&one).await.unwrap().unwrap();
        assert!(!Arc::ptr_eq(&first, &other));
        assert_eq!(other.identity.user, "bob");
        // Revoked elsewhere: the cache never answers for a session the store no longer has.
        a.remove(&one).await.unwrap();
        assert!(b.get(&one).await.unwrap().is_none());
        assert!(b.inner.decoded.get(&one).is_none(), "and forgets it");
        cleanup(&a).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_value_taken_concurrently_on_two_replicas_goes_to_exactly_one() {
        let Some(url) = redis_url() else { return };
        let clock = Clock::manual(1_000);
        let prefix = test_prefix();
        let a = store(&url, &prefix, &clock, 10).await;
        let b = store(&url, &prefix, &clock, 10).await;
        for i in 0..50 {
            let k = format!("pending:{i}");
            a.put_ephemeral(&k, b"v".to_vec(), Duration::from_secs(60))
                .await
                .unwrap();
            assert_eq!(b.get_ephemeral(&k).await.unwrap(), Some(b"v".to_vec()));
            let (x, y) = tokio::join!(a.take_ephemeral(&k), b.take_ephemeral(&k));
            let got: Vec<Vec<u8>> = [x.unwrap(), y.unwrap()].into_iter().flatten().collect();
            assert_eq!(got, vec![b"v".to_vec()]);
            assert_eq!(a.get_ephemeral(&k).await.unwrap(), None);
        }
        a.put_ephemeral("gone", b"v".to_vec(), Duration::from_secs(60))
            .await
            .unwrap();
        b.delete_ephemeral("gone").await.unwrap();
        assert_eq!(a.take_ephemeral("gone").await.unwrap(), None);
        cleanup(&a).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_value_claimed_concurrently_on_two_replicas_is_claimed_exactly_once() {
        let Some(url) = redis_url() else { return };
        let clock = Clock::manual(1_000);
        let prefix = test_prefix();
        let a = store(&url, &prefix, &clock, 10).await;
        let b = store(&url, &prefix, &clock, 10).await;
        let ttl = Duration::from_secs(30);
        for i in 0..50 {
            let k = format!("totp:ann:{i}");
            let (x, y) = tokio::join!(a.claim_once(&k, ttl), b.claim_once(&k, ttl));
            assert_eq!([x.unwrap(), y.unwrap()].iter().filter(|c| **c).count(), 1);
            assert!(!a.claim_once(&k, ttl).await.unwrap());
        }
        // A claim lasts its ttl (at least one second), then the key may be claimed again.
        assert!(a
            .claim_once("short", Duration::from_millis(10))
            .await
            .unwrap());
        assert!(!b
            .claim_once("short", Duration::from_millis(10))
            .await
            .unwrap());
        tokio::time::sleep(Duration::from_millis(1_100)).await;
        assert!(b.claim_once("short", Duration::from_secs(1)).await.unwrap());
        cleanup(&a).await;
    }

    #[tokio::test]
    async fn counters_count_across_replicas_and_reset_after_their_window() {
        let Some(url) = redis_url() else { return };
        let clock = Clock::manual(1_000);
        let prefix = test_prefix();
        let a = store(&url, &prefix, &clock, 10).await;
        let b = store(&url, &prefix, &clock, 10).await;
        let w = Duration::from_secs(1);
        assert_eq!(a.counter("fail:u:ann").await.unwrap(), 0);
        assert_eq!(a.incr("fail:u:ann", w).await.unwrap(), 1);
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert_eq!(b.incr("fail:u:ann", w).await.unwrap(), 2);
        assert_eq!(a.incr("fail:u:ann", w).await.unwrap(), 3);
        assert_eq!(b.counter("fail:u:ann").await.unwrap(), 3);
        // The window started at the first increment; later ones did not extend it.
        tokio::time::sleep(Duration::from_millis(600)).await;
        assert_eq!(a.counter("fail:u:ann").await.unwrap(), 0);
        assert_eq!(b.incr("fail:u:ann", w).await.unwrap(), 1);
        a.reset_counter("fail:u:ann").await.unwrap();
        assert_eq!(b.counter("fail:u:ann").await.unwrap(), 0);
        cleanup(&a).await;
    }

    #[tokio::test]
    async fn ephemeral_values_expire_by_their_redis_ttl() {
        let Some(url) = redis_url() else { return };
        let clock = Clock::manual(1_000);
        let st = store(&url, &test_prefix(), &clock, 10).await;
        st.put_ephemeral("k", b"v".to_vec(), Duration::from_millis(1))
            .await
            .unwrap();
        // At least one second, like the memory store.
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(st.get_ephemeral("k").await.unwrap(), Some(b"v".to_vec()));
        tokio::time::sleep(Duration::from_millis(900)).await;
        assert_eq!(st.get_ephemeral("k").await.unwrap(), None);
        cleanup(&st).await;
    }

    #[tokio::test]
    async fn connect_to_a_closed_port_fails_unavailable_within_seconds() {
        // Needs no Redis: nothing listens on port 1. `connect` itself fails; no store is made.
        let started = Instant::now();
        let r = RedisStore::connect("redis://127.0.0.1:1/0", "pc:", Clock::system(), 10).await;
        assert!(matches!(r, Err(StoreError::Unavailable(_))));
        assert!(started.elapsed() < Duration::from_secs(6));
    }

    #[tokio::test]
    async fn errors_never_show_the_url_password() {
        let r = RedisStore::connect(
            "redis://user:s3cret-pw@127.0.0.1:1/0",
            "pc:",
            Clock::system(),
            10,
        )
        .await;
        match r {
            Err(e) => assert!(!format!("{e} {e:?}").contains("s3cret-pw")),
            Ok(_) => panic!("connected to a closed port"),
        }
        let r = RedisStore::connect("not a url s3cret-pw", "pc:", Clock::system(), 10).await;
        match r {
            Err(e) => assert!(!format!("{e} {e:?}").contains("s3cret-pw")),
            Ok(_) => panic!("connected with a bad url"),
        }
    }

    /// A `redis-server` child on a fixed port, killed on drop.
    struct ChildRedis {
        child: std::process::Child,
    }

    impl ChildRedis {
        fn start(port: u16) -> Option<ChildRedis> {
            let child = std::process::Command::new("redis-server")
                .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
                .args(["--save", "", "--appendonly", "no"])
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .ok()?;
            let up = ChildRedis { child };
            let deadline = Instant::now() + Duration::from_secs(5);
            while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
                assert!(Instant::now() < deadline, "redis-server did not start");
                std::thread::sleep(Duration::from_millis(20));
            }
            Some(up)
        }
    }

    impl Drop for ChildRedis {
        fn drop(&mut self) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_session_cache_fails_closed_when_redis_goes_away_and_comes_back_empty() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .unwrap();
        let Some(server) = ChildRedis::start(port) else {
            println!("skipped: redis-server not on PATH");
            return;
        };
        let url = format!("redis://127.0.0.1:{port}/0");
        let clock = Clock::manual(1_000);
        let st = store(&url, &test_prefix(), &clock, 10).await;
        st.spawn_invalidation();
        assert!(
            eventually(Duration::from_secs(5), || async {
                st.inner.cache.is_live()
            })
            .await,
            "subscription goes live"
        );
        let id = new_id();
        st.insert(session(&id, "ann", 1_000)).await.unwrap();
        assert!(st.get(&id).await.unwrap().is_some());
        assert!(st.get(&id).await.unwrap().is_some(), "now cached");

        // Redis gone: the cache stops being trusted within its window, and a cached session is
        // then refused as unavailable (503), never served from memory.
        drop(server);
        let started = Instant::now();
        assert!(
            eventually(Duration::from_secs(6), || async {
                matches!(st.get(&id).await, Err(StoreError::Unavailable(_)))
            })
            .await,
            "fails closed"
        );
        assert!(
            started.elapsed() < Duration::from_secs(6),
            "{:?}",
            started.elapsed()
        );
        assert!(!st.inner.cache.is_live());

        // Back (empty, no persistence): the subscription returns, nothing stale comes back.
        let _server = ChildRedis::start(port).unwrap();
        assert!(
            eventually(Duration::from_secs(10), || async {
                st.inner.cache.is_live()
            })
            .await,
            "subscription live again"
        );
        assert!(
            st.get(&id).await.unwrap().is_none(),
            "the old session is not resurrected"
        );
    }

    #[tokio::test]
    async fn a_store_whose_redis_goes_away_fails_closed_and_recovers_by_itself() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .unwrap();
        let Some(server) = ChildRedis::start(port) else {
            println!("skipped: redis-server not on PATH");
            return;
        };
        let url = format!("redis://127.0.0.1:{port}/0");
        let clock = Clock::system();
        let st = store(&url, &test_prefix(), &clock, 10).await;
        st.ping().await.unwrap();
        st.put_ephemeral("k", b"v".to_vec(), Duration::from_secs(60))
            .await
            .unwrap();

        drop(server);
        for _ in 0..3 {
            let started = Instant::now();
            assert!(matches!(st.ping().await, Err(StoreError::Unavailable(_))));
            assert!(matches!(
                st.take_ephemeral("k").await,
                Err(StoreError::Unavailable(_))
            ));
            assert!(started.elapsed() < Duration::from_secs(5));
        }

        let _server = ChildRedis::start(port).unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while st.ping().await.is_err() {
            assert!(Instant::now() < deadline, "store did not reconnect");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        // A fresh server (no persistence): the old value is gone, new ones work.
        assert_eq!(st.take_ephemeral("k").await.unwrap(), None);
        assert!(st.claim_once("c", Duration::from_secs(5)).await.unwrap());
    }
}
