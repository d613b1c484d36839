//! Tests of the Redis session store, against the Redis named by `REDIS_URL`. Without it (unset
//! or unreachable) a test says it skipped, except under CI (`CI` set), where it fails: a CI run
//! can never pass by skipping them (`crate::testing::require` decides). Each test works under
//! its own random key prefix and deletes its keys at the end. The tests that stop and restart
//! Redis (`outage`) run a `redis-server` child of their own.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use super::store::RedisStore;
use crate::clock::{Clock, UnixTime};
use crate::session::id::{new_token, random_id, SessionId};
use crate::session::identity::{AuthMethod, Identity, MfaUsed};
use crate::session::model::Session;
use crate::session::store::SessionStore;
use crate::storage::StoreError;
use redis::{Cmd, FromRedisValue};
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The Redis of `REDIS_URL`; `None` (the test skips) when it is unset or unreachable outside
/// CI. Under CI a missing Redis fails the test instead (`crate::testing::require`).
fn redis_url() -> Option<String> {
    crate::testing::redis_url()
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
    let mut c = st.inner.link.node().conn.clone();
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
    let mut c = st.inner.link.node().conn.clone();
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
    // Redis's own clock expires the key (no injected clock reaches it): the TTL it holds says
    // "rounded up to one second", and the key is claimable again once Redis dropped it.
    let ttl = pttl(&a, "short").await;
    assert!((900..=1000).contains(&ttl), "claim ttl {ttl} ms");
    assert!(
        eventually(Duration::from_secs(3), || async {
            b.claim_once("short", Duration::from_secs(1)).await.unwrap()
        })
        .await,
        "claimable again after its ttl"
    );
    cleanup(&a).await;
}

/// The TTL Redis holds (PTTL, ms) for the one key of `st` whose name ends in `suffix`.
async fn pttl(st: &RedisStore, suffix: &str) -> i64 {
    let mut c = st.inner.link.node().conn.clone();
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{}*", st.inner.prefix))
        .query_async(&mut c)
        .await
        .unwrap();
    let key: Vec<&String> = keys.iter().filter(|k| k.ends_with(suffix)).collect();
    assert_eq!(key.len(), 1, "one key ends in {suffix}: {keys:?}");
    redis::cmd("PTTL")
        .arg(key[0])
        .query_async(&mut c)
        .await
        .unwrap()
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
    // Later increments, even with a longer window, do not extend the first one's: Redis
    // still holds at most the one second the first increment set.
    assert_eq!(b.incr("fail:u:ann", 60 * w).await.unwrap(), 2);
    assert_eq!(a.incr("fail:u:ann", 60 * w).await.unwrap(), 3);
    assert_eq!(b.counter("fail:u:ann").await.unwrap(), 3);
    let ttl = pttl(&a, "fail:u:ann").await;
    assert!((1..=1000).contains(&ttl), "window ttl {ttl} ms");
    // Redis's clock ends the window (no injected clock reaches it): poll, do not guess.
    assert!(
        eventually(Duration::from_secs(3), || async {
            a.counter("fail:u:ann").await.unwrap() == 0
        })
        .await,
        "the count resets after its window"
    );
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
    // At least one second, like the memory store: the TTL Redis holds says so.
    let ttl = pttl(&st, ":k").await;
    assert!((900..=1000).contains(&ttl), "ephemeral ttl {ttl} ms");
    assert_eq!(st.get_ephemeral("k").await.unwrap(), Some(b"v".to_vec()));
    // Redis's clock expires it (no injected clock reaches it): poll, do not guess.
    assert!(
        eventually(Duration::from_secs(3), || async {
            st.get_ephemeral("k").await.unwrap().is_none()
        })
        .await,
        "gone after its ttl"
    );
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

mod outage;
