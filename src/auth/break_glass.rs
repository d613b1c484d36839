//! Break-glass state (DESIGN.md §12): who is armed for emergency access, until when, with
//! which single-use link, and which sessions it gave. All of it lives in the session store, so
//! with Redis every replica sees an arming, a used link and a disarm at once. No HTTP types.
//!
//! | key                         | holds                                   | lives           |
//! |-----------------------------|-----------------------------------------|-----------------|
//! | `break-glass:state`         | the armed users (JSON)                  | to the last end |
//! | `break-glass:link:<sha256>` | the user a link is for (taken once)     | to its window's end |
//! | `break-glass:sessions`      | ids of the sessions break-glass gave    | to the last end |
//! | `break-glass:lock`          | a counter: arming and disarming hold it | 5 s at most     |
//!
//! Invariants: a link is taken atomically (`take_ephemeral`: of two uses one wins) and is only
//! good while its user is armed with that very link (re-arming replaces it); a session it gives
//! never outlives the window; arming and disarming are serialised by one store-wide lock, so a
//! disarm is never undone by an arming that read the state before it; a session is kept only if
//! its arming still holds after the session was recorded (`still_armed`), so one made while a
//! disarm ran is ended by the disarm or by its own login.

use crate::session::{random_id, AnySessionStore, SessionStore};
use crate::storage::StoreError;
use serde::{Deserialize, Serialize};
use std::time::Duration;

const STATE_KEY: &str = "break-glass:state";
const SESSIONS_KEY: &str = "break-glass:sessions";
const LOCK_KEY: &str = "break-glass:lock";
/// A holder that died releases the lock when its counter expires.
const LOCK_TTL: Duration = Duration::from_secs(5);
/// A holder releases the lock only this long before `LOCK_TTL` (the store's clock is not ours).
const LOCK_MARGIN: Duration = Duration::from_secs(1);
/// The most sessions one arming is expected to give; the set keeps its newest this many.
const MAX_SESSIONS: usize = 10_000;

fn link_key(hash: &str) -> String {
    format!("break-glass:link:{hash}")
}

fn link_hash(token: &str) -> String {
    crate::mfa::sha256_hex(token.as_bytes())
}

/// The principal of a break-glass login: distinct from the user's SSO and native principals,
/// so its factors and sessions are its own (`break_glass:<user>`).
pub fn principal(user: &str) -> String {
    format!("break_glass:{user}")
}

/// One armed user.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Armed {
    pub user: String,
    pub roles: Vec<String>,
    pub armed_at: i64,
    /// End of the window (Unix seconds): the link and every session it gave end here.
    pub until: i64,
    pub reason: String,
    /// Who armed it (`token:<name>` or `cli`).
    pub actor: String,
    /// Hash of the user's current link.
    link: String,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct State {
    users: Vec<Armed>,
}

/// An arming request, checked by the caller against the config.
#[derive(Debug)]
pub struct Arming<'a> {
    pub users: &'a [String],
    pub roles: &'a [String],
    pub window: Duration,
    pub reason: &'a str,
    pub actor: &'a str,
}

async fn load(store: &AnySessionStore, now: i64) -> Result<State, StoreError> {
    let mut st: State = match store.get_ephemeral(STATE_KEY).await? {
        Some(b) => serde_json::from_slice(&b).unwrap_or_default(),
        None => State::default(),
    };
    st.users.retain(|a| a.until > now);
    Ok(st)
}

async fn save(store: &AnySessionStore, st: &State, now: i64) -> Result<(), StoreError> {
    let last = st.users.iter().map(|a| a.until).max().unwrap_or(now);
    let ttl = Duration::from_secs(u64::try_from(last.saturating_sub(now)).unwrap_or(0).max(1));
    let bytes = serde_json::to_vec(st).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    store.put_ephemeral(STATE_KEY, bytes, ttl).await
}

/// Takes the lock (the first `incr` of the counter wins; others wait and retry for up to 2 s,
/// then fail closed as unavailable).
async fn lock(store: &AnySessionStore) -> Result<(), StoreError> {
    for _ in 0..100 {
        if store.incr(LOCK_KEY, LOCK_TTL).await? == 1 {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Err(StoreError::Unavailable(
        "another break-glass change is in progress".into(),
    ))
}

/// Runs `change` under the lock and releases it, also when `change` failed.
async fn locked<T>(
    store: &AnySessionStore,
    change: impl std::future::Future<Output = Result<T, StoreError>>,
) -> Result<T, StoreError> {
    lock(store).await?;
    let taken = tokio::time::Instant::now();
    let out = change.await;
    // Release only a lock that is still ours: past its TTL the counter may have expired and
    // been taken by the next holder, whose lock a reset would hand to a third one mid-change.
    // Left alone, it simply expires.
    let released = if taken.elapsed() + LOCK_MARGIN < LOCK_TTL {
        store.reset_counter(LOCK_KEY).await
    } else {
        tracing::warn!("break-glass change outlived its lock; left to expire");
        Ok(())
    };
    let out = out?;
    released?;
    Ok(out)
}

/// Arms `a.users` for `a.window` from `now`; returns each user's armed entry and link token
/// (shown once). An armed user armed again gets a new window and link; the old link dies.
/// A read-modify-write of the state, under the lock.
pub async fn arm(
    store: &AnySessionStore,
    now: i64,
    a: &Arming<'_>,
) -> Result<Vec<(Armed, String)>, StoreError> {
    locked(store, arm_locked(store, now, a)).await
}

async fn arm_locked(
    store: &AnySessionStore,
    now: i64,
    a: &Arming<'_>,
) -> Result<Vec<(Armed, String)>, StoreError> {
    let mut st = load(store, now).await?;
    let secs = i64::try_from(a.window.as_secs()).unwrap_or(i64::MAX);
    let until = now.saturating_add(secs);
    let mut out = Vec::new();
    for user in a.users {
        let token = random_id(32);
        let hash = link_hash(&token);
        store
            .put_ephemeral(&link_key(&hash), user.as_bytes().to_vec(), a.window)
            .await?;
        let entry = Armed {
            user: user.clone(),
            roles: a.roles.to_vec(),
            armed_at: now,
            until,
            reason: a.reason.to_owned(),
            actor: a.actor.to_owned(),
            link: hash,
        };
        st.users.retain(|x| &x.user != user);
        st.users.push(entry.clone());
        out.push((entry, token));
    }
    save(store, &st, now).await?;
    Ok(out)
}

/// Who is armed now.
pub async fn status(store: &AnySessionStore, now: i64) -> Result<Vec<Armed>, StoreError> {
    Ok(load(store, now).await?.users)
}

/// `user`'s arming, while it lasts.
pub async fn armed_for(
    store: &AnySessionStore,
    user: &str,
    now: i64,
) -> Result<Option<Armed>, StoreError> {
    Ok(load(store, now)
        .await?
        .users
        .into_iter()
        .find(|a| a.user == user))
}

/// Uses a link: `Some` once, for a link of a user still armed with it; `None` for an unknown,
/// used, replaced or ended one.
pub async fn take_link(
    store: &AnySessionStore,
    token: &str,
    now: i64,
) -> Result<Option<Armed>, StoreError> {
    if token.is_empty() || token.len() > 128 {
        return Ok(None);
    }
    let hash = link_hash(token);
    let Some(user) = store.take_ephemeral(&link_key(&hash)).await? else {
        return Ok(None);
    };
    let user = String::from_utf8_lossy(&user).into_owned();
    Ok(armed_for(store, &user, now)
        .await?
        .filter(|a| crate::secret::ct_eq(a.link.as_bytes(), hash.as_bytes())))
}

/// Whether `a` (the arming a session was made under) still holds: its user is armed with the
/// same link and window. Checked after `record_session`: a disarm takes the state before the
/// session list, so a session recorded too late for the disarm sees the state gone here.
pub async fn still_armed(store: &AnySessionStore, a: &Armed, now: i64) -> Result<bool, StoreError> {
    Ok(armed_for(store, &a.user, now)
        .await?
        .is_some_and(|b| b.link == a.link && b.until == a.until))
}

/// Remembers a session break-glass gave (so disarming can end it on every replica).
pub async fn record_session(
    store: &AnySessionStore,
    session_id: &str,
    a: &Armed,
    now: i64,
) -> Result<(), StoreError> {
    let ttl = Duration::from_secs(
        u64::try_from(a.until.saturating_sub(now))
            .unwrap_or(0)
            .max(1),
    );
    store
        .set_add(SESSIONS_KEY, session_id, ttl, MAX_SESSIONS)
        .await
}

/// Ends every arming at once: returns who was armed and the ids of the sessions it gave (the
/// caller removes them). Links die with the state: `take_link` needs the user armed.
pub async fn disarm(
    store: &AnySessionStore,
    now: i64,
) -> Result<(Vec<Armed>, Vec<String>), StoreError> {
    locked(store, disarm_locked(store, now)).await
}

async fn disarm_locked(
    store: &AnySessionStore,
    now: i64,
) -> Result<(Vec<Armed>, Vec<String>), StoreError> {
    let st: State = match store.take_ephemeral(STATE_KEY).await? {
        Some(b) => serde_json::from_slice(&b).unwrap_or_default(),
        None => State::default(),
    };
    let sessions = store.set_take(SESSIONS_KEY).await?;
    let armed = st.users.into_iter().filter(|a| a.until > now).collect();
    Ok((armed, sessions))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use crate::clock::Clock;
    use crate::session::MemoryStore;

    fn store() -> (AnySessionStore, Clock) {
        let clock = Clock::manual(1_000);
        (
            AnySessionStore::Memory(MemoryStore::new(clock.clone(), 100)),
            clock,
        )
    }

    fn arming<'a>(users: &'a [String], roles: &'a [String]) -> Arming<'a> {
        Arming {
            users,
            roles,
            window: Duration::from_secs(3600),
            reason: "idp down",
            actor: "token:ops",
        }
    }

    /// A holder whose change outlived the lock's TTL does not release the lock that the next
    /// holder took meanwhile (fails if the lock is reset unconditionally).
    #[tokio::test(start_paused = true)]
    async fn a_holder_that_outlived_its_lock_leaves_the_next_holders_lock_alone() {
        let (s, clock) = store();
        locked(&s, async {
            clock.advance(6);
            tokio::time::advance(Duration::from_secs(6)).await;
            assert_eq!(
                s.incr(LOCK_KEY, LOCK_TTL).await?,
                1,
                "the next holder takes it"
            );
            Ok::<_, StoreError>(())
        })
        .await
        .unwrap();
        assert!(
            s.incr(LOCK_KEY, LOCK_TTL).await.unwrap() > 1,
            "the next holder's lock is still held"
        );
        // A change that ends in time releases its lock as before.
        clock.advance(6);
        locked(&s, async { Ok::<_, StoreError>(()) }).await.unwrap();
        assert_eq!(s.incr(LOCK_KEY, LOCK_TTL).await.unwrap(), 1, "released");
    }

    /// Arming and disarming racing on Redis (real I/O between their steps): a disarm is never
    /// undone by an arming that read the state before it (fails without the lock: the arming
    /// writes back the users it read).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_disarm_is_never_undone_by_a_racing_arming_on_redis() {
        let Some(url) = crate::testing::redis_url() else {
            return;
        };
        let prefix = format!("pctest:{}:", random_id(9));
        let redis =
            crate::session::redis::RedisStore::connect(&url, &prefix, Clock::manual(1_000), 100)
                .await
                .unwrap();
        let s = AnySessionStore::Redis(redis);
        let roles = vec!["agent".to_owned()];
        let (ann, bob) = (vec!["ann".to_owned()], vec!["bob".to_owned()]);
        for round in 0..40 {
            arm(&s, 1_000, &arming(&ann, &roles)).await.unwrap();
            let bob_arming = arming(&bob, &roles);
            let (a, d) = tokio::join!(arm(&s, 1_000, &bob_arming), disarm(&s, 1_000));
            a.unwrap();
            d.unwrap();
            let left: Vec<String> = status(&s, 1_000)
                .await
                .unwrap()
                .into_iter()
                .map(|x| x.user)
                .collect();
            // ann was armed before both: the disarm ends her whichever of the two ran first.
            assert!(
                !left.contains(&"ann".to_owned()),
                "round {round}: disarm undone: {left:?}"
            );
            disarm(&s, 1_000).await.unwrap();
        }
    }

    #[tokio::test]
    async fn a_session_is_kept_only_while_the_arming_it_was_made_under_holds() {
        let (s, _) = store();
        let users = vec!["ann".to_owned()];
        let roles = vec!["agent".to_owned()];
        let links = arm(&s, 1_000, &arming(&users, &roles)).await.unwrap();
        let a = take_link(&s, &links[0].1, 1_001).await.unwrap().unwrap();
        assert!(still_armed(&s, &a, 1_002).await.unwrap());
        // Re-armed: a new link and window; the old arming no longer holds.
        arm(&s, 1_003, &arming(&users, &roles)).await.unwrap();
        assert!(!still_armed(&s, &a, 1_004).await.unwrap());
        let links = arm(&s, 1_005, &arming(&users, &roles)).await.unwrap();
        let a = take_link(&s, &links[0].1, 1_006).await.unwrap().unwrap();
        disarm(&s, 1_007).await.unwrap();
        assert!(!still_armed(&s, &a, 1_008).await.unwrap());
    }

    #[tokio::test]
    async fn a_link_works_once_and_only_while_armed() {
        let (s, _) = store();
        let users = vec!["ann".to_owned()];
        let roles = vec!["agent".to_owned()];
        let links = arm(&s, 1_000, &arming(&users, &roles)).await.unwrap();
        let token = links[0].1.clone();
        assert_eq!(links[0].0.until, 4_600);
        let got = take_link(&s, &token, 1_001).await.unwrap().unwrap();
        assert_eq!(got.user, "ann");
        assert_eq!(take_link(&s, &token, 1_002).await.unwrap(), None);
        assert_eq!(take_link(&s, "nope", 1_002).await.unwrap(), None);
    }

    #[tokio::test]
    async fn re_arming_kills_the_old_link_and_disarm_kills_the_new() {
        let (s, _) = store();
        let users = vec!["ann".to_owned()];
        let roles = vec!["agent".to_owned()];
        let old = arm(&s, 1_000, &arming(&users, &roles)).await.unwrap();
        let new = arm(&s, 1_010, &arming(&users, &roles)).await.unwrap();
        assert_eq!(take_link(&s, &old[0].1, 1_020).await.unwrap(), None);
        assert_eq!(status(&s, 1_020).await.unwrap().len(), 1);
        record_session(&s, "sid", &new[0].0, 1_020).await.unwrap();
        let (was, sessions) = disarm(&s, 1_030).await.unwrap();
        assert_eq!((was.len(), sessions), (1, vec!["sid".to_owned()]));
        assert_eq!(take_link(&s, &new[0].1, 1_040).await.unwrap(), None);
        assert!(status(&s, 1_040).await.unwrap().is_empty());
    }
}
