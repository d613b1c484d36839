//! `AnyUserStore`, the user store chosen once at start-up from the storage URL: an enum with
//! one variant per implementation, so a call is a `match`, never a `Box<dyn>` or an allocation.
//! Also the parsing of storage URLs (which never echoes a credential in its errors).

use std::path::{Path, PathBuf};

use super::error::StoreError;
use super::model::{
    AuditEvent, AuditQuery, AuditRecord, EnrollmentInvite, NewUser, RememberedDevice, TotpFactor,
    User,
};
use super::postgres::{PostgresUrl, PostgresUserStore, DEFAULT_MAX_CONNECTIONS};
use super::sqlite::SqliteUserStore;
use super::user_store::UserStore;
use crate::config::StoreTls;

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
    ///   [`DEFAULT_MAX_CONNECTIONS`]; `schema=NAME` keeps the store in that schema
    ///   (created if missing). The server must answer now, or this is `Unavailable`.
    ///
    /// Any other scheme is refused as not supported in this build.
    pub async fn open(url: &str, base_dir: &Path) -> Result<Self, StoreError> {
        Self::open_tls(url, base_dir, None).await
    }

    /// As [`open`](Self::open), with `storage.tls` (CA, client certificate) for PostgreSQL.
    pub async fn open_tls(
        url: &str,
        base_dir: &Path,
        tls: Option<&StoreTls>,
    ) -> Result<Self, StoreError> {
        Ok(match parse_url(url, base_dir)? {
            StoreUrl::SqliteMemory => Self::Sqlite(SqliteUserStore::open_in_memory().await?),
            StoreUrl::SqliteFile(path) => Self::Sqlite(SqliteUserStore::open(&path).await?),
            StoreUrl::Postgres(url) => Self::Postgres(
                PostgresUserStore::open_tls(&url, tls, DEFAULT_MAX_CONNECTIONS).await?,
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

/// Checks a storage URL as `open` reads it, without opening anything: the SQLite file it names
/// (`None` for PostgreSQL and an in-memory database), or why `open` would refuse it.
pub fn check_url(url: &str, base_dir: &Path) -> Result<Option<PathBuf>, StoreError> {
    Ok(match parse_url(url, base_dir)? {
        StoreUrl::SqliteFile(p) => Some(p),
        StoreUrl::SqliteMemory | StoreUrl::Postgres(_) => None,
    })
}

/// The generated sealing key file used when `storage.encryption_key` is not set: beside the
/// SQLite file (`portcullis.db` → `portcullis.key`).
pub fn sealing_key_file(url: &str, base_dir: &Path) -> PathBuf {
    let path = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
        .unwrap_or("portcullis.db");
    let db = if path.is_empty() || path.starts_with(":memory:") {
        base_dir.join("portcullis.db")
    } else if Path::new(path).is_absolute() {
        PathBuf::from(path)
    } else {
        base_dir.join(path)
    };
    db.with_extension("key")
}

/// Runs `$call` on the chosen implementation, bound to `$store`.
macro_rules! dispatch {
    ($self:ident, $store:ident => $call:expr) => {
        match $self {
            Self::Sqlite($store) => $call,
            Self::Postgres($store) => $call,
        }
    };
}

/// Forwards each method to the chosen implementation.
impl UserStore for AnyUserStore {
    async fn ping(&self) -> Result<(), StoreError> {
        dispatch!(self, s => s.ping().await)
    }

    async fn create_user(&self, user: &NewUser, now: i64) -> Result<User, StoreError> {
        dispatch!(self, s => s.create_user(user, now).await)
    }

    async fn get_user(&self, username: &str) -> Result<Option<User>, StoreError> {
        dispatch!(self, s => s.get_user(username).await)
    }

    async fn list_users(&self, after: Option<&str>, limit: u32) -> Result<Vec<User>, StoreError> {
        dispatch!(self, s => s.list_users(after, limit).await)
    }

    async fn set_disabled(&self, username: &str, disabled: bool) -> Result<bool, StoreError> {
        dispatch!(self, s => s.set_disabled(username, disabled).await)
    }

    async fn set_password(&self, username: &str, password_hash: &str) -> Result<bool, StoreError> {
        dispatch!(self, s => s.set_password(username, password_hash).await)
    }

    async fn set_roles(&self, username: &str, roles: &[String]) -> Result<bool, StoreError> {
        dispatch!(self, s => s.set_roles(username, roles).await)
    }

    async fn get_totp(&self, principal: &str) -> Result<Option<TotpFactor>, StoreError> {
        dispatch!(self, s => s.get_totp(principal).await)
    }

    async fn put_totp(
        &self,
        principal: &str,
        sealed_seed: &[u8],
        confirmed: bool,
        now: i64,
    ) -> Result<(), StoreError> {
        dispatch!(self, s => s.put_totp(principal, sealed_seed, confirmed, now).await)
    }

    async fn enroll_totp(
        &self,
        principal: &str,
        sealed_seed: &[u8],
        step: i64,
        now: i64,
    ) -> Result<bool, StoreError> {
        dispatch!(self, s => s.enroll_totp(principal, sealed_seed, step, now).await)
    }

    async fn put_invite(&self, invite: &EnrollmentInvite) -> Result<(), StoreError> {
        dispatch!(self, s => s.put_invite(invite).await)
    }

    async fn find_invite(
        &self,
        token_hash: &str,
        now: i64,
    ) -> Result<Option<EnrollmentInvite>, StoreError> {
        dispatch!(self, s => s.find_invite(token_hash, now).await)
    }

    async fn spend_invite(&self, token_hash: &str, now: i64) -> Result<bool, StoreError> {
        dispatch!(self, s => s.spend_invite(token_hash, now).await)
    }

    async fn advance_totp_step(&self, principal: &str, step: i64) -> Result<bool, StoreError> {
        dispatch!(self, s => s.advance_totp_step(principal, step).await)
    }

    async fn delete_factors(&self, principal: &str) -> Result<bool, StoreError> {
        dispatch!(self, s => s.delete_factors(principal).await)
    }

    async fn replace_recovery_codes(
        &self,
        principal: &str,
        code_hashes: &[String],
        now: i64,
        expires_at: Option<i64>,
    ) -> Result<(), StoreError> {
        dispatch!(self, s => s.replace_recovery_codes(principal, code_hashes, now, expires_at).await)
    }

    async fn consume_recovery_code(
        &self,
        principal: &str,
        code_hash: &str,
        now: i64,
    ) -> Result<Option<u32>, StoreError> {
        dispatch!(self, s => s.consume_recovery_code(principal, code_hash, now).await)
    }

    async fn count_recovery_codes(&self, principal: &str, now: i64) -> Result<u32, StoreError> {
        dispatch!(self, s => s.count_recovery_codes(principal, now).await)
    }

    async fn add_device(&self, device: &RememberedDevice) -> Result<(), StoreError> {
        dispatch!(self, s => s.add_device(device).await)
    }

    async fn device_valid(
        &self,
        principal: &str,
        token_hash: &str,
        now: i64,
    ) -> Result<bool, StoreError> {
        dispatch!(self, s => s.device_valid(principal, token_hash, now).await)
    }

    async fn list_devices(
        &self,
        principal: &str,
        now: i64,
    ) -> Result<Vec<RememberedDevice>, StoreError> {
        dispatch!(self, s => s.list_devices(principal, now).await)
    }

    async fn delete_device(&self, principal: &str, id: &str) -> Result<bool, StoreError> {
        dispatch!(self, s => s.delete_device(principal, id).await)
    }

    async fn delete_devices(&self, principal: &str) -> Result<u64, StoreError> {
        dispatch!(self, s => s.delete_devices(principal).await)
    }

    async fn append_audit(&self, event: &AuditEvent) -> Result<i64, StoreError> {
        dispatch!(self, s => s.append_audit(event).await)
    }

    async fn query_audit(&self, query: &AuditQuery) -> Result<Vec<AuditRecord>, StoreError> {
        dispatch!(self, s => s.query_audit(query).await)
    }

    async fn has_second_factor(&self, principal: &str, now: i64) -> Result<bool, StoreError> {
        dispatch!(self, s => s.has_second_factor(principal, now).await)
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
