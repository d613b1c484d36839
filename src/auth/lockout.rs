//! Lockout after repeated failures, per account and per client IP (DESIGN.md §6). Counted in
//! the session store so every replica sees the same counts; the account key is the name *as
//! typed*, so an unknown user locks exactly like a real one and nothing reveals which names exist.
//!
//! Invariant: an attempt is counted *before* the check it guards (increment, then compare), so
//! N concurrent guesses get at most `max_failures` evaluations, however many addresses send
//! them. A check that could not be made (a store failure) takes its count back: an outage never
//! locks anyone out.

use crate::config::LockoutConfig;
use crate::session::{AnySessionStore, SessionStore};
use crate::storage::StoreError;
use std::net::IpAddr;

/// Failures from one IP before it is locked, as a multiple of the per-user limit (an office
/// behind one NAT address should not be locked out by one person's typos).
const IP_FACTOR: u64 = 4;

/// Whether a login attempt may proceed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LockState {
    Open,
    Locked,
}

/// Per-account and per-IP failure counting with a lock period.
#[derive(Clone, Debug)]
pub struct Lockout {
    pub config: LockoutConfig,
}

/// One attempt admitted past the lockout, already counted. Settle it with [`Lockout::failed`],
/// [`Lockout::succeeded`] or [`Lockout::abandoned`]; dropping it unsettled leaves it counted
/// as a failure (the safe side).
#[must_use = "an admitted attempt is settled as failed, succeeded or abandoned"]
#[derive(Debug)]
pub struct Attempt {
    account: String,
    ip: IpAddr,
    account_count: u64,
    ip_count: u64,
}

/// The answer of [`Lockout::admit`].
#[derive(Debug)]
pub enum Admission {
    /// Counted; the check may run.
    Admitted(Attempt),
    /// Inside a lock period, or over the limit: the check must not run.
    Locked,
}

fn account_key(account: &str) -> String {
    format!("fail:u:{}", account.to_lowercase())
}

fn ip_key(ip: IpAddr) -> String {
    format!("fail:ip:{ip}")
}

fn lock_key(counter: &str) -> String {
    format!("locked:{counter}")
}

impl Lockout {
    pub fn new(config: LockoutConfig) -> Self {
        Self { config }
    }

    fn max(&self) -> u64 {
        u64::from(self.config.max_failures)
    }

    fn ip_max(&self) -> u64 {
        self.max().saturating_mul(IP_FACTOR)
    }

    /// Locked when the account or the IP is inside a lock period (no counting: for pages that
    /// only show whether a form would be accepted).
    pub async fn check(
        &self,
        store: &AnySessionStore,
        account: &str,
        ip: IpAddr,
    ) -> Result<LockState, StoreError> {
        let u = store
            .get_ephemeral(&lock_key(&account_key(account)))
            .await?;
        if u.is_some() {
            return Ok(LockState::Locked);
        }
        let i = store.get_ephemeral(&lock_key(&ip_key(ip))).await?;
        Ok(if i.is_some() {
            LockState::Locked
        } else {
            LockState::Open
        })
    }

    /// Counts one attempt, then compares: `Admitted` only while both the account's and the IP's
    /// counts, this attempt included, are within their limits. An attempt over a limit is taken
    /// back (it is not evaluated) and answered `Locked`.
    pub async fn admit(
        &self,
        store: &AnySessionStore,
        account: &str,
        ip: IpAddr,
    ) -> Result<Admission, StoreError> {
        if self.check(store, account, ip).await? == LockState::Locked {
            return Ok(Admission::Locked);
        }
        let (ak, ik) = (account_key(account), ip_key(ip));
        let account_count = store.incr(&ak, self.config.window).await?;
        let ip_count = match store.incr(&ik, self.config.window).await {
            Ok(n) => n,
            Err(e) => {
                // Fail closed, and count nothing for a check that never ran.
                let _ = store.decr(&ak).await;
                return Err(e);
            }
        };
        // Compared after counting; and the lock checked again: a lock period that began
        // between the first check and the increment (its counter then starts from zero) still
        // refuses this attempt. `failed` sets the lock before it resets the count.
        if account_count > self.max()
            || ip_count > self.ip_max()
            || self.check(store, account, ip).await? == LockState::Locked
        {
            let _ = store.decr(&ak).await;
            let _ = store.decr(&ik).await;
            return Ok(Admission::Locked);
        }
        Ok(Admission::Admitted(Attempt {
            account: ak,
            ip,
            account_count,
            ip_count,
        }))
    }

    /// The check failed: the attempt stays counted. When it was the last one allowed, a lock
    /// period starts (and the count starts again from zero after it). Returns `Locked` then.
    pub async fn failed(
        &self,
        store: &AnySessionStore,
        attempt: Attempt,
    ) -> Result<LockState, StoreError> {
        let mut state = LockState::Open;
        let ik = ip_key(attempt.ip);
        for (key, count, limit) in [
            (&attempt.account, attempt.account_count, self.max()),
            (&ik, attempt.ip_count, self.ip_max()),
        ] {
            if count >= limit {
                store
                    .put_ephemeral(&lock_key(key), Vec::new(), self.config.duration)
                    .await?;
                store.reset_counter(key).await?;
                state = LockState::Locked;
            }
        }
        Ok(state)
    }

    /// The check succeeded: the account's failures are forgotten, and this attempt is taken back
    /// from the IP's count (only failures count against an address).
    pub async fn succeeded(
        &self,
        store: &AnySessionStore,
        attempt: Attempt,
    ) -> Result<(), StoreError> {
        store.reset_counter(&attempt.account).await?;
        store.decr(&ip_key(attempt.ip)).await
    }

    /// The check could not be made (a store failed mid-check): the attempt is taken back from
    /// both counts. Errors here are logged by the caller's 503 path, not returned.
    pub async fn abandoned(&self, store: &AnySessionStore, attempt: Attempt) {
        let _ = store.decr(&attempt.account).await;
        let _ = store.decr(&ip_key(attempt.ip)).await;
    }

    /// Forgets the account's failures and ends its lock period (an admin set a new password:
    /// its owner may sign in with it at once). Locks of client addresses stay.
    pub async fn clear_account(
        &self,
        store: &AnySessionStore,
        account: &str,
    ) -> Result<(), StoreError> {
        let key = account_key(account);
        store.delete_ephemeral(&lock_key(&key)).await?;
        store.reset_counter(&key).await
    }

    /// How many attempts are counted against `account` now (for tests and the admin view).
    pub async fn count(&self, store: &AnySessionStore, account: &str) -> Result<u64, StoreError> {
        store.counter(&account_key(account)).await
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic)]
mod tests {
    use super::*;
    use crate::clock::Clock;
    use crate::session::MemoryStore;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::Arc;
    use std::time::Duration;

    fn lockout(max: u32) -> Lockout {
        Lockout::new(LockoutConfig {
            max_failures: max,
            window: Duration::from_secs(900),
            duration: Duration::from_secs(900),
        })
    }

    fn store() -> AnySessionStore {
        AnySessionStore::Memory(MemoryStore::new(Clock::manual(1_800_000_000), 1000))
    }

    #[tokio::test]
    async fn concurrent_guesses_from_many_addresses_get_at_most_max_failures_evaluations() {
        race(store()).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_guesses_from_many_addresses_get_at_most_max_failures_evaluations_on_redis()
    {
        // Skips without Redis, fails under CI (`crate::testing::require`).
        let Some(url) = crate::testing::redis_url() else {
            return;
        };
        let prefix = format!("pc-lockout-{}:", crate::session::random_id(6));
        let clock = Clock::manual(1_800_000_000);
        let st = crate::session::redis::RedisStore::connect(&url, &prefix, clock, 1000)
            .await
            .unwrap();
        race(AnySessionStore::Redis(st)).await;
    }

    /// 100 guesses at once, each taking a while to evaluate: exactly five are evaluated.
    async fn race(s: AnySessionStore) {
        let l = Arc::new(lockout(5));
        let evaluated = Arc::new(AtomicU64::new(0));
        let mut tasks = Vec::new();
        for n in 0..100u8 {
            let (l, s, evaluated) = (Arc::clone(&l), s.clone(), Arc::clone(&evaluated));
            tasks.push(tokio::spawn(async move {
                let ip = IpAddr::from([10, 0, 0, n]);
                if let Admission::Admitted(a) = l.admit(&s, "victim", ip).await.unwrap() {
                    evaluated.fetch_add(1, Ordering::SeqCst);
                    // The expensive check takes a while; everyone else arrives meanwhile.
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    l.failed(&s, a).await.unwrap();
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        assert_eq!(evaluated.load(Ordering::SeqCst), 5);
        assert_eq!(
            l.check(&s, "victim", IpAddr::from([10, 9, 9, 9]))
                .await
                .unwrap(),
            LockState::Locked
        );
    }

    #[tokio::test]
    async fn an_abandoned_check_counts_nothing() {
        let (l, s) = (lockout(2), store());
        let ip = IpAddr::from([192, 0, 2, 1]);
        for _ in 0..10 {
            let Admission::Admitted(a) = l.admit(&s, "ann", ip).await.unwrap() else {
                panic!("an outage must not lock anyone out");
            };
            l.abandoned(&s, a).await;
        }
        assert_eq!(l.count(&s, "ann").await.unwrap(), 0);
    }

    #[tokio::test]
    async fn a_success_forgets_the_accounts_failures_and_is_not_counted_against_the_address() {
        let (l, s) = (lockout(2), store());
        let ip = IpAddr::from([192, 0, 2, 2]);
        let Admission::Admitted(a) = l.admit(&s, "bo", ip).await.unwrap() else {
            panic!()
        };
        assert_eq!(l.failed(&s, a).await.unwrap(), LockState::Open);
        let Admission::Admitted(a) = l.admit(&s, "bo", ip).await.unwrap() else {
            panic!()
        };
        l.succeeded(&s, a).await.unwrap();
        assert_eq!(l.count(&s, "bo").await.unwrap(), 0);
        assert_eq!(s.counter(&ip_key(ip)).await.unwrap(), 1, "only the failure");
    }

    #[tokio::test]
    async fn the_last_allowed_failure_starts_a_lock_period_that_ends() {
        let clock = Clock::manual(1_800_000_000);
        let s = AnySessionStore::Memory(MemoryStore::new(clock.clone(), 1000));
        let l = lockout(2);
        let ip = IpAddr::from([192, 0, 2, 3]);
        for expect in [LockState::Open, LockState::Locked] {
            let Admission::Admitted(a) = l.admit(&s, "cy", ip).await.unwrap() else {
                panic!()
            };
            assert_eq!(l.failed(&s, a).await.unwrap(), expect);
        }
        assert!(matches!(
            l.admit(&s, "CY", ip).await.unwrap(),
            Admission::Locked
        ));
        clock.advance(901);
        assert!(matches!(
            l.admit(&s, "cy", ip).await.unwrap(),
            Admission::Admitted(_)
        ));
    }
}
