//! [`RedisStore`]: the connection, the per-replica caches, and the [`SessionStore`] operations
//! on the key layout described in `redis.rs`. Commands are bounded by timeouts and fail closed
//! (`Unavailable`); multi-key changes go through the scripts of `lua.rs`, session bytes through
//! `codec.rs`; the invalidation subscriber is in `subscribe.rs`.

use super::codec::{decode, encode, session_ttl_ms, ttl_ms, SessionFields};
use super::link::{Link, Target};
use super::lua::{
    COUNT_LUA, DECR_LUA, INCR_LUA, INSERT_LUA, PRUNE_LUA, REMOVE_LUA, REMOVE_USER_LUA, SET_ADD_LUA,
    SET_TAKE_LUA, TOUCH_LUA,
};
use crate::clock::{Clock, UnixTime};
use crate::config::StoreTls;
use crate::session::id::SessionId;
use crate::session::model::Session;
use crate::session::redis_cache::SessionCache;
use crate::session::store::SessionStore;
use crate::storage::StoreError;
use redis::aio::ConnectionManagerConfig;
use redis::{Cmd, ErrorKind, FromRedisValue, Pipeline, RedisError, RedisResult, Script};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

/// Longest wait for one TCP connection attempt.
pub(super) const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// Longest wait for a command's answer, including waiting for a reconnection in progress.
pub(super) const COMMAND_TIMEOUT: Duration = Duration::from_secs(2);
/// Longest `connect` may take in all (attempts and backoff).
const CONNECT_DEADLINE: Duration = Duration::from_secs(5);
/// Connection attempts after the first one, at start-up and at each reconnection.
const CONNECT_RETRIES: usize = 2;
/// Upper bound on the delay between connection attempts, in milliseconds.
pub(super) const RETRY_MAX_DELAY_MS: u64 = 500;
/// Ids fetched per round trip by `list`.
const LIST_BATCH: usize = 200;

/// The key namespaces of the layout table in `redis.rs`; every key is `{prefix}{tag}{rest}`.
/// Named once here, so a value lands only in the namespace its operation owns (an ephemeral
/// value can never be read as a counter, nor a counter be mistaken for a session).
#[derive(Clone, Copy, Debug)]
enum Space {
    /// `s:{id}`: one session's hash.
    Session,
    /// `u:{principal}`: the ids of one principal's sessions.
    Principal,
    /// `ids`: every session id, for `list`.
    Ids,
    /// `exp`: session id → when its key expires, for pruning `ids`.
    Expiry,
    /// `e:{key}`: short-lived values and `claim_once` markers.
    Ephemeral,
    /// `c:{key}`: counters.
    Counter,
    /// `z:{key}`: small sets (`set_add`).
    Set,
    /// `probe:`: the key `connect` reads to check the server (it never exists).
    Probe,
}

impl Space {
    const fn tag(self) -> &'static str {
        match self {
            Space::Session => "s:",
            Space::Principal => "u:",
            Space::Ids => "ids",
            Space::Expiry => "exp",
            Space::Ephemeral => "e:",
            Space::Counter => "c:",
            Space::Set => "z:",
            Space::Probe => "probe:",
        }
    }
}

/// The Redis-backed [`SessionStore`]. Cheap to clone; clones share one connection.
#[derive(Clone)]
pub struct RedisStore {
    pub(super) inner: Arc<Inner>,
}

// No `Debug`: the connection holds the URL, which may carry a password. The fields the
// subscriber (`subscribe.rs`) and the tests need are open to `redis/`.
pub(super) struct Inner {
    /// The primary: its command connection, and a client for the invalidation subscription
    /// (which needs a connection of its own); followed through Sentinel when configured.
    pub(super) link: Link,
    /// `{prefix}inval`: every script that changes or ends a session publishes its id here.
    pub(super) channel: String,
    pub(super) cache: SessionCache,
    pub(super) prefix: String,
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
    pub(super) decoded: dashmap::DashMap<SessionId, (String, Vec<u8>, Arc<Session>)>,
}

/// Decoded sessions kept per replica before the cache is emptied (bounded memory).
const DECODED_CAP: usize = 50_000;

pub(super) fn store_error(what: &str, e: &RedisError) -> StoreError {
    // Redis error text names the command and the server's reply, never the connection URL.
    match e.kind() {
        ErrorKind::TypeError => StoreError::Corrupt(format!("redis {what}: {e}")),
        // Everything else (I/O, refused, dropped, timeouts, server errors) fails closed.
        _ => StoreError::Unavailable(format!("redis {what}: {e}")),
    }
}

impl RedisStore {
    /// The replica's cached copy, while the invalidation subscription is live and the session
    /// itself is: no round trip and no future (the proxy path's common case).
    pub fn cached(&self, id: &SessionId) -> Option<Arc<Session>> {
        self.inner
            .cache
            .get(id)
            .filter(|s| s.check(self.inner.clock.now()).is_ok())
    }

    /// The session as Redis has it (cached for later lookups when the subscription allows).
    pub async fn read(&self, id: &SessionId) -> Result<Option<Arc<Session>>, StoreError> {
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

    /// Connects to the Redis at `url` and checks it answers and supports GETDEL (Redis ≥ 6.2).
    /// Fails with `Unavailable` within a few seconds when the server cannot be reached.
    /// Every key is prefixed with `prefix`; at most `max_sessions` sessions are kept.
    pub async fn connect(
        url: &str,
        prefix: &str,
        clock: Clock,
        max_sessions: usize,
    ) -> Result<Self, StoreError> {
        Self::open(&Target::Url(url), None, prefix, clock, max_sessions).await
    }

    /// As [`connect`](Self::connect), to `target` (one URL, or the primary Sentinel names),
    /// with `tls`'s CA and client certificate for `rediss://`.
    pub async fn open(
        target: &Target<'_>,
        tls: Option<&StoreTls>,
        prefix: &str,
        clock: Clock,
        max_sessions: usize,
    ) -> Result<Self, StoreError> {
        // The URL may hold a password: it never goes into an error or a log line.
        if let Target::Url(url) = target {
            redis::IntoConnectionInfo::into_connection_info(*url).map_err(|e| {
                StoreError::Unavailable(format!("invalid redis url ({:?})", e.kind()))
            })?;
        }
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(CONNECT_TIMEOUT)
            .set_response_timeout(COMMAND_TIMEOUT)
            .set_number_of_retries(CONNECT_RETRIES)
            .set_max_delay(RETRY_MAX_DELAY_MS);
        let link =
            match tokio::time::timeout(CONNECT_DEADLINE, Link::open(target, tls, config)).await {
                Ok(Ok(c)) => c,
                Ok(Err(e)) => return Err(store_error("connect", &e)),
                Err(_) => return Err(StoreError::Unavailable("redis connect: timed out".into())),
            };
        let script = |body: &str| Script::new(&format!("{PRUNE_LUA}{body}"));
        let store = Self {
            inner: Arc::new(Inner {
                link,
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
        let probe = store.key(Space::Probe, "");
        store
            .query::<Option<Vec<u8>>>("getdel", redis::cmd("GETDEL").arg(&probe))
            .await?;
        Ok(store)
    }

    /// The full key of `rest` in `space`: `{prefix}{tag}{rest}`.
    fn key(&self, space: Space, rest: &str) -> String {
        format!("{}{}{rest}", self.inner.prefix, space.tag())
    }

    pub(super) fn session_key(&self, id: &SessionId) -> String {
        self.key(Space::Session, id.as_str())
    }

    /// Sends one command; a slow or unreachable server is `Unavailable` after
    /// `COMMAND_TIMEOUT`, never a hang.
    async fn run<T>(
        &self,
        what: &str,
        fut: impl Future<Output = RedisResult<T>>,
    ) -> Result<T, StoreError> {
        let r = match tokio::time::timeout(COMMAND_TIMEOUT, fut).await {
            Ok(Ok(v)) => return Ok(v),
            Ok(Err(e)) => store_error(what, &e),
            Err(_) => StoreError::Unavailable(format!("redis {what}: timed out")),
        };
        // Refused, dropped, timed out or READONLY (a demoted primary): with Sentinel the
        // primary may have moved. This answer fails closed; the next ones go to the new one.
        if matches!(r, StoreError::Unavailable(_)) {
            self.inner.link.failed();
        }
        Err(r)
    }

    async fn query<T: FromRedisValue>(&self, what: &str, cmd: &Cmd) -> Result<T, StoreError> {
        let mut c = self.inner.link.node().conn.clone();
        self.run(what, cmd.query_async(&mut c)).await
    }

    async fn pipeline<T: FromRedisValue>(&self, what: &str, p: &Pipeline) -> Result<T, StoreError> {
        let mut c = self.inner.link.node().conn.clone();
        self.run(what, p.query_async(&mut c)).await
    }

    async fn invoke<T: FromRedisValue>(
        &self,
        what: &str,
        inv: &redis::ScriptInvocation<'_>,
    ) -> Result<T, StoreError> {
        let mut c = self.inner.link.node().conn.clone();
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
                    .key(self.key(Space::Ids, ""))
                    .key(self.key(Space::Expiry, "")),
            )
            .await?;
        Ok(usize::try_from(n).unwrap_or(usize::MAX))
    }
}

impl SessionStore for RedisStore {
    async fn get(&self, id: &SessionId) -> Result<Option<Arc<Session>>, StoreError> {
        match self.cached(id) {
            Some(s) => Ok(Some(s)),
            None => self.read(id).await,
        }
    }

    async fn insert(&self, session: Session) -> Result<Arc<Session>, StoreError> {
        let data = encode(&session)?;
        let ttl = session_ttl_ms(&session, session.last_seen());
        let mut inv = self.inner.insert.key(self.session_key(&session.id));
        inv.key(self.key(Space::Ids, ""))
            .key(self.key(Space::Expiry, ""))
            .key(self.key(Space::Principal, &session.identity.principal))
            .arg(session.id.as_str())
            .arg(&session.identity.principal)
            .arg(data)
            .arg(session.last_seen())
            .arg(ttl)
            .arg(u64::try_from(self.inner.max_sessions).unwrap_or(u64::MAX))
            .arg(self.key(Space::Session, ""))
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
        inv.key(self.key(Space::Ids, ""))
            .key(self.key(Space::Expiry, ""))
            .key(self.key(Space::Principal, &session.identity.principal))
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
        inv.key(self.key(Space::Ids, ""))
            .key(self.key(Space::Expiry, ""))
            .arg(id.as_str())
            .arg(self.key(Space::Principal, ""))
            .arg(&self.inner.channel);
        let row: Option<SessionFields> = self.invoke("remove session", &inv).await?;
        match row {
            None => Ok(None),
            Some(row) => Ok(decode(id.clone(), row)?.map(Arc::new)),
        }
    }

    async fn remove_principal(&self, principal: &str) -> Result<Vec<SessionId>, StoreError> {
        let mut inv = self
            .inner
            .remove_user
            .key(self.key(Space::Principal, principal));
        inv.key(self.key(Space::Ids, ""))
            .key(self.key(Space::Expiry, ""))
            .arg(self.key(Space::Session, ""))
            .arg(principal)
            .arg(&self.inner.channel);
        let ids: Vec<String> = self.invoke("remove user sessions", &inv).await?;
        let mut ids: Vec<SessionId> = ids.into_iter().map(SessionId::from_text).collect();
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
                    redis::cmd("SMEMBERS").arg(self.key(Space::Principal, principal)),
                )
                .await?;
            let mut ids: Vec<SessionId> = ids
                .into_iter()
                .map(SessionId::from_text)
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
                        .arg(self.key(Space::Ids, ""))
                        .arg(min)
                        .arg("+")
                        .arg("LIMIT")
                        .arg(0)
                        .arg(LIST_BATCH),
                )
                .await?;
            let full_page = page.len() == LIST_BATCH;
            let ids: Vec<SessionId> = page.into_iter().map(SessionId::from_text).collect();
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
                    .arg(self.key(Space::Ephemeral, key))
                    .arg(value)
                    .arg("PX")
                    .arg(ttl_ms(ttl)),
            )
            .await?;
        Ok(())
    }

    async fn get_ephemeral(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.query(
            "get ephemeral",
            redis::cmd("GET").arg(self.key(Space::Ephemeral, key)),
        )
        .await
    }

    async fn take_ephemeral(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        // GETDEL is one atomic command: of two concurrent takers on any replicas exactly one
        // gets the value.
        self.query(
            "take ephemeral",
            redis::cmd("GETDEL").arg(self.key(Space::Ephemeral, key)),
        )
        .await
    }

    async fn delete_ephemeral(&self, key: &str) -> Result<(), StoreError> {
        let _: u64 = self
            .query(
                "delete ephemeral",
                redis::cmd("DEL").arg(self.key(Space::Ephemeral, key)),
            )
            .await?;
        Ok(())
    }

    async fn incr(&self, key: &str, window: Duration) -> Result<u64, StoreError> {
        let mut inv = self.inner.incr.key(self.key(Space::Counter, key));
        inv.arg(ttl_ms(window));
        self.invoke("incr", &inv).await
    }

    async fn counter(&self, key: &str) -> Result<u64, StoreError> {
        let n: Option<u64> = self
            .query(
                "counter",
                redis::cmd("GET").arg(self.key(Space::Counter, key)),
            )
            .await?;
        Ok(n.unwrap_or(0))
    }

    async fn decr(&self, key: &str) -> Result<(), StoreError> {
        let inv = self.inner.decr.key(self.key(Space::Counter, key));
        let _: i64 = self.invoke("decr", &inv).await?;
        Ok(())
    }

    async fn reset_counter(&self, key: &str) -> Result<(), StoreError> {
        let _: u64 = self
            .query(
                "reset counter",
                redis::cmd("DEL").arg(self.key(Space::Counter, key)),
            )
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
        let mut inv = self.inner.set_add.key(self.key(Space::Set, key));
        inv.arg(member).arg(ttl_ms(ttl)).arg(cap.max(1));
        let _: i64 = self.invoke("set add", &inv).await?;
        Ok(())
    }

    async fn set_take(&self, key: &str) -> Result<Vec<String>, StoreError> {
        let inv = self.inner.set_take.key(self.key(Space::Set, key));
        self.invoke("set take", &inv).await
    }

    async fn claim_once(&self, key: &str, ttl: Duration) -> Result<bool, StoreError> {
        // SET NX is atomic: of two concurrent claims on any replicas exactly one succeeds.
        // Claims share the `e:` namespace with ephemeral values, as in the memory store.
        let set: Option<String> = self
            .query(
                "claim once",
                redis::cmd("SET")
                    .arg(self.key(Space::Ephemeral, key))
                    .arg("")
                    .arg("NX")
                    .arg("PX")
                    .arg(ttl_ms(ttl)),
            )
            .await?;
        Ok(set.is_some())
    }
}
