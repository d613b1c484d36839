//! Durable state: the `UserStore` seam (SQLite embedded, PostgreSQL at scale) and sealing of
//! secrets at rest.
//!
//! * `model`    — plain data: users, TOTP factors, remembered devices, audit events.
//! * `sqlite`   — `SqliteUserStore`, the embedded implementation, with migrations compiled in.
//! * `postgres` — `PostgresUserStore`, for several replicas, with migrations compiled in.
//! * `seal`   — encryption of TOTP seeds at rest.
//!
//! Callers pick the implementation once at start-up with [`AnyUserStore::open`]. The store does
//! no hashing, sealing or policy: it keeps rows and makes the single-use checks (TOTP step,
//! recovery code) atomic, so they hold across concurrent requests and replicas.
//! `Ok(None)`/`Ok(false)` mean absent; `Err(StoreError::Unavailable)` means fail closed (503).

#[cfg(test)]
pub(crate) mod conformance;
pub mod model;
pub mod postgres;
pub mod seal;
pub mod sqlite;

use std::future::Future;
use std::path::{Path, PathBuf};

pub use model::{
    AuditEvent, AuditQuery, AuditRecord, EnrollmentInvite, NewUser, RememberedDevice, TotpFactor,
    User, MAX_PAGE,
};
pub use postgres::{PostgresUrl, PostgresUserStore};
pub use sqlite::SqliteUserStore;

/// Failure of a user-store operation. Display text is for logs only, never for responses.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The store could not be reached or did not answer (connection, I/O, busy): fail closed with 503.
    #[error("user store unavailable: {0}")]
    Unavailable(String),
    /// A unique key already exists (for example the user name is taken).
    #[error("user store conflict: the record already exists")]
    Conflict,
    /// A stored row does not decode into the model (bad column type, bad roles list, out of range).
    #[error("user store holds a corrupt row: {0}")]
    Corrupt(String),
}

/// The durable store for native users, second factors, recovery codes, remembered devices and
/// the audit log. Hashing of passwords, codes and tokens and sealing of seeds is the caller's job.
pub trait UserStore {
    /// Checks the store answers (readiness).
    fn ping(&self) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Creates a native user stamped `created_at = now`; `Conflict` if the name is taken.
    fn create_user(
        &self,
        user: &NewUser,
        now: i64,
    ) -> impl Future<Output = Result<User, StoreError>> + Send;

    /// The user named `username`, if any. Names are compared exactly (callers normalise).
    fn get_user(
        &self,
        username: &str,
    ) -> impl Future<Output = Result<Option<User>, StoreError>> + Send;

    /// Users in username order strictly after `after`, at most `limit` (capped at [`MAX_PAGE`]).
    fn list_users(
        &self,
        after: Option<&str>,
        limit: u32,
    ) -> impl Future<Output = Result<Vec<User>, StoreError>> + Send;

    /// Disables or enables a user; `false` if there is no such user.
    fn set_disabled(
        &self,
        username: &str,
        disabled: bool,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Replaces a user's password hash (PHC string); `false` if there is no such user.
    fn set_password(
        &self,
        username: &str,
        password_hash: &str,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Replaces a user's roles; `false` if there is no such user.
    fn set_roles(
        &self,
        username: &str,
        roles: &[String],
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// The principal's TOTP factor, confirmed or not.
    fn get_totp(
        &self,
        principal: &str,
    ) -> impl Future<Output = Result<Option<TotpFactor>, StoreError>> + Send;

    /// Inserts or replaces the principal's single TOTP factor, clearing its last step.
    fn put_totp(
        &self,
        principal: &str,
        sealed_seed: &[u8],
        confirmed: bool,
        now: i64,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Stores `sealed_seed` as the principal's confirmed factor with `step` used (so the
    /// enrollment code cannot sign in again), only if the principal has no confirmed factor;
    /// `false` otherwise. A confirmed authenticator is replaced only by `put_totp` (the account
    /// page after a fresh factor, an admin), never by an enrollment.
    fn enroll_totp(
        &self,
        principal: &str,
        sealed_seed: &[u8],
        step: i64,
        now: i64,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Stores an enrollment invitation, deleting the user's unused ones.
    fn put_invite(
        &self,
        invite: &EnrollmentInvite,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// The unused, unexpired invitation with this token hash.
    fn find_invite(
        &self,
        token_hash: &str,
        now: i64,
    ) -> impl Future<Output = Result<Option<EnrollmentInvite>, StoreError>> + Send;

    /// Atomically marks an unused, unexpired invitation used; `true` only for the one caller
    /// that spent it.
    fn spend_invite(
        &self,
        token_hash: &str,
        now: i64,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// The TOTP replay guard: atomically records `step` as used if it is later than the last
    /// used step of a confirmed factor. `true` only for the one caller that won.
    fn advance_totp_step(
        &self,
        principal: &str,
        step: i64,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Deletes the principal's TOTP factor and recovery codes; `true` if anything was deleted.
    fn delete_factors(
        &self,
        principal: &str,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Replaces all of the principal's recovery codes with `code_hashes`, in one transaction.
    fn replace_recovery_codes(
        &self,
        principal: &str,
        code_hashes: &[String],
        now: i64,
        expires_at: Option<i64>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Atomically uses an unused, unexpired code. `Some(remaining usable codes)` if this call
    /// used it; `None` if it is unknown, used or expired.
    fn consume_recovery_code(
        &self,
        principal: &str,
        code_hash: &str,
        now: i64,
    ) -> impl Future<Output = Result<Option<u32>, StoreError>> + Send;

    /// How many unused, unexpired recovery codes the principal has.
    fn count_recovery_codes(
        &self,
        principal: &str,
        now: i64,
    ) -> impl Future<Output = Result<u32, StoreError>> + Send;

    /// Stores a remembered device (dropping the principal's expired ones, taking
    /// `device.created_at` as now); `Conflict` if the id or token hash exists.
    fn add_device(
        &self,
        device: &RememberedDevice,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Whether `token_hash` is an unexpired remembered device of `principal`.
    fn device_valid(
        &self,
        principal: &str,
        token_hash: &str,
        now: i64,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// The principal's unexpired remembered devices, oldest first.
    fn list_devices(
        &self,
        principal: &str,
        now: i64,
    ) -> impl Future<Output = Result<Vec<RememberedDevice>, StoreError>> + Send;

    /// Revokes one remembered device; `false` if the principal has no device with that id.
    fn delete_device(
        &self,
        principal: &str,
        id: &str,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Revokes all of the principal's remembered devices; returns how many there were.
    fn delete_devices(
        &self,
        principal: &str,
    ) -> impl Future<Output = Result<u64, StoreError>> + Send;

    /// Appends one event to the audit log; returns its id.
    fn append_audit(
        &self,
        event: &AuditEvent,
    ) -> impl Future<Output = Result<i64, StoreError>> + Send;

    /// Audit records matching all of the query's filters, ascending by id.
    fn query_audit(
        &self,
        query: &AuditQuery,
    ) -> impl Future<Output = Result<Vec<AuditRecord>, StoreError>> + Send;

    /// Whether the principal has a usable second factor: a confirmed TOTP factor or at least
    /// one unused, unexpired recovery code.
    fn has_second_factor(
        &self,
        principal: &str,
        now: i64,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;
}

/// The user store chosen at start-up. One variant per implementation.
#[derive(Clone, Debug)]
pub enum AnyUserStore {
    Sqlite(SqliteUserStore),
    Postgres(PostgresUserStore),
}

impl AnyUserStore {
    /// Opens the store named by `url` and applies the embedded migrations.
    ///
    /// * `sqlite://path.db` — relative paths are resolved against `base_dir` (the directory of
    ///   the config file); `sqlite:///abs/path.db` is absolute. The parent directory is created
    ///   (mode 0700 on unix) and the file (mode 0600) at first start.
    /// * `sqlite::memory:` — a private in-memory database, for tests.
    /// * `postgres://…` or `postgresql://…` — a PostgreSQL server (TLS per `sslmode`), pool of
    ///   [`postgres::DEFAULT_MAX_CONNECTIONS`]; `schema=NAME` keeps the store in that schema
    ///   (created if missing). The server must answer now, or this is `Unavailable`.
    ///
    /// Any other scheme is refused as not supported in this build.
    pub async fn open(url: &str, base_dir: &Path) -> Result<Self, StoreError> {
        Ok(match parse_url(url, base_dir)? {
            StoreUrl::SqliteMemory => Self::Sqlite(SqliteUserStore::open_in_memory().await?),
            StoreUrl::SqliteFile(path) => Self::Sqlite(SqliteUserStore::open(&path).await?),
            StoreUrl::Postgres(url) => Self::Postgres(
                PostgresUserStore::open(&url, postgres::DEFAULT_MAX_CONNECTIONS).await?,
            ),
        })
    }

    /// Closes the connections, waiting for in-flight operations.
    pub async fn close(&self) {
        match self {
            Self::Sqlite(s) => s.close().await,
            Self::Postgres(s) => s.close().await,
        }
    }
}

/// A parsed storage URL.
#[derive(Debug, PartialEq, Eq)]
enum StoreUrl {
    SqliteMemory,
    SqliteFile(PathBuf),
    Postgres(PostgresUrl),
}

fn parse_url(url: &str, base_dir: &Path) -> Result<StoreUrl, StoreError> {
    if url == "sqlite::memory:" {
        return Ok(StoreUrl::SqliteMemory);
    }
    if let Some(rest) = url.strip_prefix("sqlite://") {
        if rest.is_empty() {
            return Err(StoreError::Unavailable(
                "sqlite url names no database file".into(),
            ));
        }
        if rest.contains('?') || rest.contains('#') {
            return Err(StoreError::Unavailable(
                "sqlite url options (`?…`) are not supported; give only a path".into(),
            ));
        }
        let path = Path::new(rest);
        return Ok(StoreUrl::SqliteFile(if path.is_absolute() {
            path.to_path_buf()
        } else {
            base_dir.join(path)
        }));
    }
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        return PostgresUrl::parse(url).map(StoreUrl::Postgres);
    }
    // Name only the scheme: the rest of a URL may carry a password.
    let scheme = url.split_once(':').map_or("(none)", |(s, _)| s);
    Err(StoreError::Unavailable(format!(
        "storage url scheme `{scheme}` is not supported in this build (use sqlite:// or \
         postgres://)"
    )))
}

/// Forwards each method to the chosen implementation.
impl UserStore for AnyUserStore {
    async fn ping(&self) -> Result<(), StoreError> {
        match self {
            Self::Sqlite(s) => s.ping().await,
            Self::Postgres(s) => s.ping().await,
        }
    }

    async fn create_user(&self, user: &NewUser, now: i64) -> Result<User, StoreError> {
        match self {
            Self::Sqlite(s) => s.create_user(user, now).await,
            Self::Postgres(s) => s.create_user(user, now).await,
        }
    }

    async fn get_user(&self, username: &str) -> Result<Option<User>, StoreError> {
        match self {
            Self::Sqlite(s) => s.get_user(username).await,
            Self::Postgres(s) => s.get_user(username).await,
        }
    }

    async fn list_users(&self, after: Option<&str>, limit: u32) -> Result<Vec<User>, StoreError> {
        match self {
            Self::Sqlite(s) => s.list_users(after, limit).await,
            Self::Postgres(s) => s.list_users(after, limit).await,
        }
    }

    async fn set_disabled(&self, username: &str, disabled: bool) -> Result<bool, StoreError> {
        match self {
            Self::Sqlite(s) => s.set_disabled(username, disabled).await,
            Self::Postgres(s) => s.set_disabled(username, disabled).await,
        }
    }

    async fn set_password(&self, username: &str, password_hash: &str) -> Result<bool, StoreError> {
        match self {
            Self::Sqlite(s) => s.set_password(username, password_hash).await,
            Self::Postgres(s) => s.set_password(username, password_hash).await,
        }
    }

    async fn set_roles(&self, username: &str, roles: &[String]) -> Result<bool, StoreError> {
        match self {
            Self::Sqlite(s) => s.set_roles(username, roles).await,
            Self::Postgres(s) => s.set_roles(username, roles).await,
        }
    }

    async fn get_totp(&self, principal: &str) -> Result<Option<TotpFactor>, StoreError> {
        match self {
            Self::Sqlite(s) => s.get_totp(principal).await,
            Self::Postgres(s) => s.get_totp(principal).await,
        }
    }

    async fn put_totp(
        &self,
        principal: &str,
        sealed_seed: &[u8],
        confirmed: bool,
        now: i64,
    ) -> Result<(), StoreError> {
        match self {
            Self::Sqlite(s) => s.put_totp(principal, sealed_seed, confirmed, now).await,
            Self::Postgres(s) => s.put_totp(principal, sealed_seed, confirmed, now).await,
        }
    }

    async fn enroll_totp(
        &self,
        principal: &str,
        sealed_seed: &[u8],
        step: i64,
        now: i64,
    ) -> Result<bool, StoreError> {
        match self {
            Self::Sqlite(s) => s.enroll_totp(principal, sealed_seed, step, now).await,
            Self::Postgres(s) => s.enroll_totp(principal, sealed_seed, step, now).await,
        }
    }

    async fn put_invite(&self, invite: &EnrollmentInvite) -> Result<(), StoreError> {
        match self {
            Self::Sqlite(s) => s.put_invite(invite).await,
            Self::Postgres(s) => s.put_invite(invite).await,
        }
    }

    async fn find_invite(
        &self,
        token_hash: &str,
        now: i64,
    ) -> Result<Option<EnrollmentInvite>, StoreError> {
        match self {
            Self::Sqlite(s) => s.find_invite(token_hash, now).await,
            Self::Postgres(s) => s.find_invite(token_hash, now).await,
        }
    }

    async fn spend_invite(&self, token_hash: &str, now: i64) -> Result<bool, StoreError> {
        match self {
            Self::Sqlite(s) => s.spend_invite(token_hash, now).await,
            Self::Postgres(s) => s.spend_invite(token_hash, now).await,
        }
    }

    async fn advance_totp_step(&self, principal: &str, step: i64) -> Result<bool, StoreError> {
        match self {
            Self::Sqlite(s) => s.advance_totp_step(principal, step).await,
            Self::Postgres(s) => s.advance_totp_step(principal, step).await,
        }
    }

    async fn delete_factors(&self, principal: &str) -> Result<bool, StoreError> {
        match self {
            Self::Sqlite(s) => s.delete_factors(principal).await,
            Self::Postgres(s) => s.delete_factors(principal).await,
        }
    }

    async fn replace_recovery_codes(
        &self,
        principal: &str,
        code_hashes: &[String],
        now: i64,
        expires_at: Option<i64>,
    ) -> Result<(), StoreError> {
        match self {
            Self::Sqlite(s) => {
                s.replace_recovery_codes(principal, code_hashes, now, expires_at)
                    .await
            }
            Self::Postgres(s) => {
                s.replace_recovery_codes(principal, code_hashes, now, expires_at)
                    .await
            }
        }
    }

    async fn consume_recovery_code(
        &self,
        principal: &str,
        code_hash: &str,
        now: i64,
    ) -> Result<Option<u32>, StoreError> {
        match self {
            Self::Sqlite(s) => s.consume_recovery_code(principal, code_hash, now).await,
            Self::Postgres(s) => s.consume_recovery_code(principal, code_hash, now).await,
        }
    }

    async fn count_recovery_codes(&self, principal: &str, now: i64) -> Result<u32, StoreError> {
        match self {
            Self::Sqlite(s) => s.count_recovery_codes(principal, now).await,
            Self::Postgres(s) => s.count_recovery_codes(principal, now).await,
        }
    }

    async fn add_device(&self, device: &RememberedDevice) -> Result<(), StoreError> {
        match self {
            Self::Sqlite(s) => s.add_device(device).await,
            Self::Postgres(s) => s.add_device(device).await,
        }
    }

    async fn device_valid(
        &self,
        principal: &str,
        token_hash: &str,
        now: i64,
    ) -> Result<bool, StoreError> {
        match self {
            Self::Sqlite(s) => s.device_valid(principal, token_hash, now).await,
            Self::Postgres(s) => s.device_valid(principal, token_hash, now).await,
        }
    }

    async fn list_devices(
        &self,
        principal: &str,
        now: i64,
    ) -> Result<Vec<RememberedDevice>, StoreError> {
        match self {
            Self::Sqlite(s) => s.list_devices(principal, now).await,
            Self::Postgres(s) => s.list_devices(principal, now).await,
        }
    }

    async fn delete_device(&self, principal: &str, id: &str) -> Result<bool, StoreError> {
        match self {
            Self::Sqlite(s) => s.delete_device(principal, id).await,
            Self::Postgres(s) => s.delete_device(principal, id).await,
        }
    }

    async fn delete_devices(&self, principal: &str) -> Result<u64, StoreError> {
        match self {
            Self::Sqlite(s) => s.delete_devices(principal).await,
            Self::Postgres(s) => s.delete_devices(principal).await,
        }
    }

    async fn append_audit(&self, event: &AuditEvent) -> Result<i64, StoreError> {
        match self {
            Self::Sqlite(s) => s.append_audit(event).await,
            Self::Postgres(s) => s.append_audit(event).await,
        }
    }

    async fn query_audit(&self, query: &AuditQuery) -> Result<Vec<AuditRecord>, StoreError> {
        match self {
            Self::Sqlite(s) => s.query_audit(query).await,
            Self::Postgres(s) => s.query_audit(query).await,
        }
    }

    async fn has_second_factor(&self, principal: &str, now: i64) -> Result<bool, StoreError> {
        match self {
            Self::Sqlite(s) => s.has_second_factor(principal, now).await,
            Self::Postgres(s) => s.has_second_factor(principal, now).await,
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests: a failure aborts the test
mod tests {
    use super::*;

    #[test]
    fn storage_url_accepts_sqlite_paths_and_memory() {
        let base = Path::new("/etc/portcullis");
        assert_eq!(
            parse_url("sqlite://data/p.db", base).unwrap(),
            StoreUrl::SqliteFile(PathBuf::from("/etc/portcullis/data/p.db"))
        );
        assert_eq!(
            parse_url("sqlite:///var/lib/p.db", base).unwrap(),
            StoreUrl::SqliteFile(PathBuf::from("/var/lib/p.db"))
        );
        assert_eq!(
            parse_url("sqlite::memory:", base).unwrap(),
            StoreUrl::SqliteMemory
        );
    }

    #[test]
    fn storage_url_accepts_postgres_with_an_optional_schema() {
        let base = Path::new("/etc");
        for (url, schema) in [
            ("postgres://admin:hunter2@db/portcullis", None),
            ("postgresql://db/portcullis?sslmode=require", None),
            ("postgres://db/portcullis?schema=tenant_a", Some("tenant_a")),
        ] {
            match parse_url(url, base) {
                Ok(StoreUrl::Postgres(pg)) => assert_eq!(pg.schema(), schema, "{url}"),
                other => panic!("{url}: {other:?}"),
            }
        }
    }

    #[test]
    fn storage_url_refuses_other_schemes_without_echoing_credentials() {
        let base = Path::new("/etc");
        for url in [
            "mysql://admin:hunter2@db/portcullis",
            "postgres://admin:hunter2@db/portcullis?schema=Bad-Name",
            "sqlite://",
            "sqlite://p.db?mode=ro",
            "data.db",
        ] {
            match parse_url(url, base) {
                Err(StoreError::Unavailable(msg)) => assert!(!msg.contains("hunter2"), "{msg}"),
                other => panic!("{url}: {other:?}"),
            }
        }
        let Err(StoreError::Unavailable(msg)) = parse_url("mysql://u:p@h/d", base) else {
            panic!("mysql accepted")
        };
        assert!(
            msg.contains("`mysql` is not supported in this build"),
            "{msg}"
        );
    }
}
