//! Lockout after repeated failures, per user name and per client IP (DESIGN.md §6). Counted in
//! the session store so every replica sees the same counts; keyed by the name *as typed*, so
//! an unknown user locks exactly like a real one and nothing reveals which names exist.

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

/// Per-user and per-IP failure counting with a lock period.
#[derive(Clone, Debug)]
pub struct Lockout {
    pub config: LockoutConfig,
}

fn user_key(user: &str) -> String {
    format!("fail:u:{}", user.to_lowercase())
}

fn ip_key(ip: IpAddr) -> String {
    format!("fail:ip:{ip}")
}

impl Lockout {
    pub fn new(config: LockoutConfig) -> Self {
        Self { config }
    }

    /// Locked when the user name or the IP is inside a lock period.
    pub async fn check(
        &self,
        store: &AnySessionStore,
        user: &str,
        ip: IpAddr,
    ) -> Result<LockState, StoreError> {
        let u = store
            .get_ephemeral(&format!("locked:{}", user_key(user)))
            .await?;
        let i = store
            .get_ephemeral(&format!("locked:{}", ip_key(ip)))
            .await?;
        Ok(if u.is_some() || i.is_some() {
            LockState::Locked
        } else {
            LockState::Open
        })
    }

    /// Counts one failure (wrong password or second factor). Returns `Locked` when this
    /// failure started a lock period.
    pub async fn record_failure(
        &self,
        store: &AnySessionStore,
        user: &str,
        ip: IpAddr,
    ) -> Result<LockState, StoreError> {
        let max = u64::from(self.config.max_failures);
        let mut state = LockState::Open;
        for (key, limit) in [
            (user_key(user), max),
            (ip_key(ip), max.saturating_mul(IP_FACTOR)),
        ] {
            let n = store.incr(&key, self.config.window).await?;
            if n >= limit {
                store
                    .put_ephemeral(&format!("locked:{key}"), Vec::new(), self.config.duration)
                    .await?;
                store.reset_counter(&key).await?;
                state = LockState::Locked;
            }
        }
        Ok(state)
    }

    /// A successful login clears the user's failure count (not the IP's).
    pub async fn record_success(
        &self,
        store: &AnySessionStore,
        user: &str,
    ) -> Result<(), StoreError> {
        store.reset_counter(&user_key(user)).await
    }
}
