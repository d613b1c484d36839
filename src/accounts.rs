//! Accounts the gateway itself checks: the user store, sealed TOTP seeds, password hashing with
//! a concurrency limit, recovery-code issuing and the email sender. Shared by native login,
//! SSO step-up, the CLI and (later) the admin API. No HTTP types here.

use crate::auth::lockout::Lockout;
use crate::auth::password;
use crate::clock::UnixTime;
use crate::config::Config;
use crate::mfa::email::EmailSender;
use crate::mfa::{recovery, totp, MfaError};
use crate::secret::{Password, RecoveryCode, TotpSeed};
use crate::storage::seal::{self, SealError, Sealer};
use crate::storage::{AnyUserStore, NewUser, StoreError, User, UserStore};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;

/// How long a login waits for a password-hashing slot before it is told to retry (503).
const HASH_QUEUE_WAIT: Duration = Duration::from_secs(3);
/// Logins waiting for a hashing slot, per slot. Beyond this a guessing flood is answered 503 at
/// once instead of queueing: latency stays bounded and memory does not grow with the flood.
const HASH_QUEUE_PER_SLOT: usize = 48;
/// Password checks one client address may have running or queued at once. A flood from a few
/// addresses then holds a few queue places each, and a person elsewhere still finds one.
const HASH_PER_ADDRESS: usize = 2;

/// Password hashing admission: `slots` hashes at a time, at most `max_waiting` logins queued
/// for at most `wait`; everyone else is told to retry.
pub struct HashGate {
    slots: Arc<Semaphore>,
    waiting: std::sync::atomic::AtomicUsize,
    max_waiting: usize,
    wait: Duration,
    /// Checks in progress per client address (entries removed at zero: bounded by the queue).
    per_address: dashmap::DashMap<std::net::IpAddr, usize>,
    max_per_address: usize,
}

/// One client address's place in the hashing pipeline; given back on drop.
struct AddressTurn<'a> {
    gate: &'a HashGate,
    ip: std::net::IpAddr,
}

impl Drop for AddressTurn<'_> {
    fn drop(&mut self) {
        if let dashmap::mapref::entry::Entry::Occupied(mut o) = self.gate.per_address.entry(self.ip)
        {
            let n = o.get_mut();
            *n = n.saturating_sub(1);
            if *n == 0 {
                o.remove();
            }
        }
    }
}

impl HashGate {
    pub fn new(slots: usize, max_waiting: usize, wait: Duration) -> HashGate {
        HashGate {
            slots: Arc::new(Semaphore::new(slots)),
            waiting: std::sync::atomic::AtomicUsize::new(0),
            max_waiting,
            wait,
            per_address: dashmap::DashMap::new(),
            max_per_address: HASH_PER_ADDRESS,
        }
    }

    /// As `run`, for a login from `ip`: at most `HASH_PER_ADDRESS` of its checks at a time.
    pub async fn run_for<T: Send + 'static>(
        &self,
        ip: std::net::IpAddr,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, HashBusy> {
        {
            let mut n = self.per_address.entry(ip).or_insert(0);
            if *n >= self.max_per_address {
                return Err(HashBusy::Saturated);
            }
            *n += 1;
        }
        let _turn = AddressTurn { gate: self, ip };
        self.run(f).await
    }

    /// Runs `f` on the blocking pool once a slot is free.
    pub async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, HashBusy> {
        use std::sync::atomic::Ordering;
        let permit = match Arc::clone(&self.slots).try_acquire_owned() {
            Ok(p) => p,
            Err(_) => {
                // Count ourselves in the queue first; undo when over the cap.
                if self.waiting.fetch_add(1, Ordering::AcqRel) >= self.max_waiting {
                    self.waiting.fetch_sub(1, Ordering::AcqRel);
                    return Err(HashBusy::Saturated);
                }
                let got =
                    tokio::time::timeout(self.wait, Arc::clone(&self.slots).acquire_owned()).await;
                self.waiting.fetch_sub(1, Ordering::AcqRel);
                got.map_err(|_| HashBusy::Saturated)?
                    .map_err(|_| HashBusy::Saturated)?
            }
        };
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            f()
        })
        .await
        .map_err(|_| HashBusy::Saturated)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AccountsError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("storage encryption key: {0}")]
    Key(#[from] SealError),
    #[error("email sender: {0}")]
    Email(#[from] MfaError),
    /// A user name outside the allowed alphabet.
    #[error("invalid user name {0:?}: use 1-64 characters from a-z, 0-9, '.', '_', '-', '@'")]
    BadUserName(String),
    /// A role that the config does not define.
    #[error("unknown role {0:?}")]
    UnknownRole(String),
    /// Password hashing failed.
    #[error("password hashing failed")]
    Hashing,
}

/// Why a password check did not run.
#[derive(Debug, thiserror::Error)]
pub enum HashBusy {
    /// Every hashing slot stayed busy for the queue wait: the caller answers 503 with Retry-After.
    #[error("password hashing is saturated")]
    Saturated,
}

pub struct Accounts {
    pub users: AnyUserStore,
    pub sealer: Sealer,
    pub email: Option<EmailSender>,
    pub lockout: Lockout,
    hashing: HashGate,
    issuer: String,
}

/// The stored form of an enrollment invitation's token (only its hash is kept).
pub fn invite_hash(token: &str) -> String {
    crate::mfa::email::hash_email_code(token)
}

/// Normalises a user name as typed: trimmed, lower-case; `None` when it cannot be a user name.
pub fn normalise_user(name: &str) -> Option<String> {
    let n = name.trim().to_lowercase();
    (!n.is_empty()
        && n.len() <= 64
        && n.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'-' | b'@')
        }))
    .then_some(n)
}

/// The factor owner of a native user.
pub fn native_principal(user: &str) -> String {
    format!("native:{user}")
}

impl Accounts {
    /// Opens the configured user store; `None` when the config has no `[storage]`.
    pub async fn open(config: &Config) -> Result<Option<Accounts>, AccountsError> {
        let Some(st) = &config.storage else {
            return Ok(None);
        };
        let users = AnyUserStore::open_tls(&st.url, &config.base_dir, st.tls.as_ref()).await?;
        let key = match &st.encryption_key {
            Some(k) => seal::parse_key(k)?,
            None => seal::load_or_create_key_file(&crate::storage::sealing_key_file(
                &st.url,
                &config.base_dir,
            ))?,
        };
        let email = match &config.mfa.email {
            Some(e) => Some(EmailSender::new(&e.smtp_url, &e.from)?),
            None => None,
        };
        let lockout = Lockout::new(config.native.as_ref().map_or(
            crate::config::LockoutConfig {
                max_failures: 5,
                window: Duration::from_secs(900),
                duration: Duration::from_secs(900),
            },
            |n| n.lockout,
        ));
        let slots = std::thread::available_parallelism()
            .map_or(2, |n| n.get())
            .max(2);
        Ok(Some(Accounts {
            users,
            sealer: Sealer::new(&key)?,
            email,
            lockout,
            hashing: HashGate::new(slots, slots * HASH_QUEUE_PER_SLOT, HASH_QUEUE_WAIT),
            issuer: config.mfa.issuer.clone(),
        }))
    }

    /// Checks a password on the blocking pool, at most one hash per core at a time.
    /// `user` None (unknown) still costs one hash. Disabled users always fail.
    pub async fn check_password(
        &self,
        password: Password,
        user: Option<&User>,
        ip: std::net::IpAddr,
    ) -> Result<bool, HashBusy> {
        let phc = user.and_then(|u| u.password_hash.clone());
        let disabled = user.is_some_and(|u| u.disabled);
        let ok = self
            .hashing
            .run_for(ip, move || {
                password::verify_password(&password, phc.as_deref())
            })
            .await?;
        Ok(ok && !disabled)
    }

    pub fn totp_for(&self, seed: TotpSeed, account: &str) -> totp::Totp {
        totp::Totp::new(seed, self.issuer.clone(), account.to_owned())
    }

    /// The principal's TOTP seed, decrypted. The principal is the AEAD associated data, so a
    /// sealed seed copied to another user's row does not open.
    pub fn open_seed(&self, principal: &str, sealed: &[u8]) -> Option<TotpSeed> {
        self.sealer
            .open(sealed, principal.as_bytes())
            .ok()
            .map(TotpSeed::new)
    }

    pub fn seal_seed(&self, principal: &str, seed: &TotpSeed) -> Result<Vec<u8>, SealError> {
        self.sealer.seal(seed.expose(), principal.as_bytes())
    }

    /// Replaces the principal's recovery codes with `count` new ones, returned once.
    pub async fn issue_recovery_codes(
        &self,
        principal: &str,
        count: usize,
        ttl: Duration,
        now: UnixTime,
    ) -> Result<Vec<RecoveryCode>, StoreError> {
        let codes = recovery::generate_codes(count);
        let hashes: Vec<String> = codes
            .iter()
            .filter_map(|c| recovery::normalise(c.expose()))
            .map(|n| recovery::hash_code(&n))
            .collect();
        let expires = (!ttl.is_zero())
            .then(|| now.saturating_add(i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX)));
        self.users
            .replace_recovery_codes(principal, &hashes, now, expires)
            .await?;
        Ok(codes)
    }

    /// Creates a native user. Without a password one is generated and returned (shown once),
    /// except with `[mfa] enrollment = "invite"`, where the user chooses one at the link.
    pub async fn create_user(
        &self,
        config: &Config,
        name: &str,
        email: Option<String>,
        roles: Vec<String>,
        password: Option<Password>,
        now: UnixTime,
    ) -> Result<(User, Option<Password>), AccountsError> {
        let username =
            normalise_user(name).ok_or_else(|| AccountsError::BadUserName(name.to_owned()))?;
        for r in &roles {
            if config.role(r).is_none() {
                return Err(AccountsError::UnknownRole(r.clone()));
            }
        }
        // With invitations a user created without a password chooses one at the link;
        // otherwise one is generated and handed to the admin once.
        let invite = config.mfa.enrollment == crate::config::Enrollment::Invite;
        let (password, generated) = match password {
            Some(p) => (Some(p), None),
            None if invite => (None, None),
            None => {
                let p = password::generate_password();
                (Some(p.clone()), Some(p))
            }
        };
        let hash = match password {
            Some(password) => Some(
                tokio::task::spawn_blocking(move || password::hash_password(&password))
                    .await
                    .map_err(|_| AccountsError::Hashing)?
                    .map_err(|_| AccountsError::Hashing)?,
            ),
            None => None,
        };
        let user = self
            .users
            .create_user(
                &NewUser {
                    username,
                    email,
                    roles,
                    password_hash: hash,
                    disabled: false,
                },
                now,
            )
            .await?;
        Ok((user, generated))
    }

    /// Hashes and sets a user's password; `false` if there is no such user.
    pub async fn set_password(
        &self,
        username: &str,
        password: Password,
    ) -> Result<bool, StoreError> {
        let hash = tokio::task::spawn_blocking(move || password::hash_password(&password))
            .await
            .map_err(|_| StoreError::Unavailable("password hashing failed".into()))?
            .map_err(|_| StoreError::Unavailable("password hashing failed".into()))?;
        self.users.set_password(username, &hash).await
    }

    /// Makes a single-use enrollment invitation for `username` (replacing its unused ones) and
    /// returns the absolute link to the native sign-in form bound to it (DESIGN.md §6).
    pub async fn create_invite(
        &self,
        config: &Config,
        username: &str,
        now: UnixTime,
    ) -> Result<String, StoreError> {
        let token = crate::session::random_id(32);
        let ttl = i64::try_from(config.mfa.invite_ttl.as_secs()).unwrap_or(i64::MAX);
        self.users
            .put_invite(&crate::storage::EnrollmentInvite {
                token_hash: invite_hash(&token),
                username: username.to_owned(),
                created_at: now,
                expires_at: now.saturating_add(ttl),
            })
            .await?;
        let path = config
            .native
            .as_ref()
            .and_then(|n| n.paths.first())
            .map_or("/normal", String::as_str);
        Ok(format!(
            "{}{path}?invite={token}",
            config.server.public_origin
        ))
    }

    /// Mails an enrollment link to the user's address, when both a sender and an address exist.
    /// Failures are logged and reported, never fatal: the link is also handed to the admin.
    pub async fn mail_invite(&self, config: &Config, user: &User, link: &str) -> bool {
        let (Some(sender), Some(to)) = (self.email.as_ref(), user.email.as_deref()) else {
            return false;
        };
        let days = (config.mfa.invite_ttl.as_secs() / 86_400).max(1);
        match sender.send_invite(to, link, &config.mfa.issuer, days).await {
            Ok(()) => true,
            Err(e) => {
                tracing::warn!(user = %user.username, error = %e, "enrollment link could not be mailed");
                false
            }
        }
    }

    /// Enrolls a confirmed TOTP factor directly (CLI and demo), returning the otpauth URI.
    pub async fn enroll_totp_now(
        &self,
        user: &str,
        now: UnixTime,
    ) -> Result<(TotpSeed, String), AccountsError> {
        let principal = native_principal(user);
        let seed = totp::generate_seed();
        let sealed = self.seal_seed(&principal, &seed)?;
        self.users.put_totp(&principal, &sealed, true, now).await?;
        let uri = self.totp_for(seed.clone(), user).otpauth_uri();
        Ok((seed, uri))
    }
}

/// Where the generated key lives when none is configured: beside the SQLite file.
#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::time::Instant;

    #[tokio::test]
    async fn hashing_beyond_the_slots_and_the_queue_is_refused_at_once() {
        let gate = Arc::new(HashGate::new(1, 2, Duration::from_secs(5)));
        let (release, hold) = std::sync::mpsc::channel::<()>();
        let hold = Arc::new(std::sync::Mutex::new(hold));
        // One job holds the only slot; two wait in the queue.
        let mut queued = Vec::new();
        for _ in 0..3 {
            let (g, h) = (Arc::clone(&gate), Arc::clone(&hold));
            queued.push(tokio::spawn(async move {
                g.run(move || {
                    let _ = h.lock().unwrap().recv();
                })
                .await
            }));
        }
        while gate.waiting.load(std::sync::atomic::Ordering::Acquire) < 2 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let t = Instant::now();
        let over = gate.run(|| ()).await;
        assert!(
            matches!(over, Err(HashBusy::Saturated)),
            "the fourth is refused"
        );
        assert!(t.elapsed() < Duration::from_millis(200), "and at once");
        for _ in 0..3 {
            release.send(()).unwrap();
        }
        for q in queued {
            assert!(q.await.unwrap().is_ok(), "the queued ones still run");
        }
        assert!(gate.run(|| 7).await.is_ok(), "free again");
    }

    #[tokio::test]
    async fn one_address_holds_at_most_two_places_and_others_still_get_in() {
        let gate = Arc::new(HashGate::new(1, 8, Duration::from_secs(5)));
        let flood: std::net::IpAddr = "192.0.2.1".parse().unwrap();
        let person: std::net::IpAddr = "198.51.100.9".parse().unwrap();
        let (release, hold) = std::sync::mpsc::channel::<()>();
        let hold = Arc::new(std::sync::Mutex::new(hold));
        let mut held = Vec::new();
        for _ in 0..2 {
            let (g, h) = (Arc::clone(&gate), Arc::clone(&hold));
            held.push(tokio::spawn(async move {
                g.run_for(flood, move || {
                    let _ = h.lock().unwrap().recv();
                })
                .await
            }));
        }
        while gate.per_address.get(&flood).map_or(0, |n| *n) < 2 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let t = Instant::now();
        assert!(matches!(
            gate.run_for(flood, || ()).await,
            Err(HashBusy::Saturated)
        ));
        assert!(t.elapsed() < Duration::from_millis(200), "refused at once");
        // Someone else queues behind the flood's two and is served once they finish.
        let g = Arc::clone(&gate);
        let mine = tokio::spawn(async move { g.run_for(person, || 42).await });
        for _ in 0..2 {
            release.send(()).unwrap();
        }
        assert_eq!(mine.await.unwrap().unwrap(), 42);
        for h in held {
            assert!(h.await.unwrap().is_ok());
        }
        assert!(gate.per_address.is_empty(), "no entry left behind");
    }

    #[tokio::test]
    async fn a_queued_login_waits_at_most_the_queue_wait() {
        let gate = Arc::new(HashGate::new(1, 8, Duration::from_millis(100)));
        let (release, hold) = std::sync::mpsc::channel::<()>();
        let g = Arc::clone(&gate);
        let busy = tokio::spawn(async move {
            g.run(move || {
                let _ = hold.recv();
            })
            .await
        });
        while gate.slots.available_permits() > 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let t = Instant::now();
        assert!(matches!(gate.run(|| ()).await, Err(HashBusy::Saturated)));
        assert!(t.elapsed() < Duration::from_secs(1));
        release.send(()).unwrap();
        assert!(busy.await.unwrap().is_ok());
    }
}
