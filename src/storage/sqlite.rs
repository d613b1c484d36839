//! `SqliteUserStore`: the embedded `UserStore` on one SQLite file (WAL mode), with its
//! migrations compiled into the binary and applied at open.
//!
//! The SQL here is kept portable to PostgreSQL (`$n` placeholders, `ON CONFLICT`, `RETURNING`,
//! `TRUE`/`FALSE`, Unix-second integers) so the PostgreSQL store can share it. The schema
//! lives in `migrations/sqlite/` and, in step, `migrations/postgres/`.
//!
//! Single-use checks (TOTP step, recovery code) are each one conditional `UPDATE` whose
//! affected-row count says who won; SQLite serialises writers, so they hold across
//! connections and processes sharing the file.

use std::borrow::Cow;
use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::str::FromStr;
use std::time::Duration;

use sqlx::error::BoxDynError;
use sqlx::migrate::{Migration, MigrationSource, MigrationType, Migrator};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow,
};
use sqlx::{QueryBuilder, Row, Sqlite};
use tracing::info;

use super::model::{
    AuditEvent, AuditQuery, AuditRecord, EnrollmentInvite, NewUser, RememberedDevice, TotpFactor,
    User, MAX_PAGE,
};
use super::{StoreError, UserStore};

/// How long a statement waits for another writer's lock before giving up (then: Unavailable).
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a request waits for a pooled connection before failing closed.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);
/// Connections to a file database. SQLite has one writer at a time; readers run in parallel (WAL).
const MAX_FILE_CONNECTIONS: u32 = 4;

/// The migrations, in order. Each is applied once, in a transaction; sqlx records it in
/// `_sqlx_migrations` with a checksum, so an edited, already-applied migration is refused.
/// Never edit a released migration: add the next one (and its PostgreSQL twin).
const MIGRATIONS: &[(i64, &str, &str)] = &[
    (
        1,
        "user store",
        include_str!("../../migrations/sqlite/0001_user_store.sql"),
    ),
    (
        2,
        "enrollment invites",
        include_str!("../../migrations/sqlite/0002_enrollment_invites.sql"),
    ),
];

/// The embedded migrations, as a sqlx migration source.
#[derive(Debug)]
struct EmbeddedMigrations;

impl MigrationSource<'static> for EmbeddedMigrations {
    fn resolve(
        self,
    ) -> Pin<Box<dyn Future<Output = Result<Vec<Migration>, BoxDynError>> + Send + 'static>> {
        Box::pin(async {
            Ok(MIGRATIONS
                .iter()
                .map(|&(version, description, sql)| {
                    Migration::new(
                        version,
                        Cow::Borrowed(description),
                        MigrationType::Simple,
                        Cow::Borrowed(sql),
                        false,
                    )
                })
                .collect())
        })
    }
}

const USER_COLUMNS: &str = "username, email, roles, password_hash, disabled, created_at";
const DEVICE_COLUMNS: &str = "id, principal, token_hash, created_at, expires_at, user_agent";

/// The SQLite user store. Cheap to clone (a pool handle).
#[derive(Clone, Debug)]
pub struct SqliteUserStore {
    pool: SqlitePool,
}

impl SqliteUserStore {
    /// Opens (creating at first start) the database file at `path` and applies migrations.
    /// A missing parent directory is created with mode 0700 and a new file with mode 0600 on
    /// unix: the file holds password hashes and sealed seeds.
    pub async fn open(path: &Path) -> Result<Self, StoreError> {
        prepare_file(path).await?;
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .foreign_keys(true)
            .busy_timeout(BUSY_TIMEOUT);
        let pool = SqlitePoolOptions::new()
            .max_connections(MAX_FILE_CONNECTIONS)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect_with(options)
            .await
            .map_err(store_error)?;
        let store = Self::migrated(pool).await?;
        info!(path = %path.display(), "user store opened");
        Ok(store)
    }

    /// Opens a private in-memory database (tests, demos). It lives as long as the store.
    pub async fn open_in_memory() -> Result<Self, StoreError> {
        let options = SqliteConnectOptions::from_str("sqlite::memory:")
            .map_err(store_error)?
            .foreign_keys(true)
            .busy_timeout(BUSY_TIMEOUT);
        // One connection that never idles out: the database disappears with its last connection.
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            .idle_timeout(None)
            .max_lifetime(None)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect_with(options)
            .await
            .map_err(store_error)?;
        Self::migrated(pool).await
    }

    /// Closes the pool, waiting for in-flight operations (and checkpointing the WAL).
    pub async fn close(&self) {
        self.pool.close().await;
    }

    async fn migrated(pool: SqlitePool) -> Result<Self, StoreError> {
        let migrator = Migrator::new(EmbeddedMigrations)
            .await
            .map_err(|e| StoreError::Unavailable(format!("loading migrations: {e}")))?;
        migrator
            .run(&pool)
            .await
            .map_err(|e| StoreError::Unavailable(format!("applying migrations: {e}")))?;
        Ok(Self { pool })
    }
}

/// Creates the parent directory (0700) and an empty database file (0600) if missing, so the
/// file, and the `-wal`/`-shm` files SQLite derives from it, are never world-readable.
async fn prepare_file(path: &Path) -> Result<(), StoreError> {
    let io = |what: &str, e: std::io::Error| {
        StoreError::Unavailable(format!("{what} {}: {e}", path.display()))
    };
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        let mut dir = tokio::fs::DirBuilder::new();
        dir.recursive(true);
        #[cfg(unix)]
        dir.mode(0o700);
        dir.create(parent)
            .await
            .map_err(|e| io("creating the directory of", e))?;
    }
    let mut file = tokio::fs::OpenOptions::new();
    file.write(true).create_new(true);
    #[cfg(unix)]
    file.mode(0o600);
    match file.open(path).await {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(io("creating", e)),
    }
}

/// Maps a sqlx error to the store's boundary error. The text is for logs only.
fn store_error(e: sqlx::Error) -> StoreError {
    match e {
        sqlx::Error::Database(db) if db.is_unique_violation() => StoreError::Conflict,
        sqlx::Error::RowNotFound
        | sqlx::Error::TypeNotFound { .. }
        | sqlx::Error::ColumnIndexOutOfBounds { .. }
        | sqlx::Error::ColumnNotFound(_)
        | sqlx::Error::ColumnDecode { .. }
        | sqlx::Error::Decode(_) => StoreError::Corrupt(e.to_string()),
        // Connection, I/O, pool, busy/locked, disk full, ...: the caller fails closed.
        other => StoreError::Unavailable(other.to_string()),
    }
}

fn to_u32(n: i64, what: &str) -> Result<u32, StoreError> {
    u32::try_from(n).map_err(|_| StoreError::Corrupt(format!("{what} out of range: {n}")))
}

fn page_limit(limit: u32) -> i64 {
    i64::from(limit.min(MAX_PAGE))
}

fn encode_roles(roles: &[String]) -> Result<String, StoreError> {
    serde_json::to_string(roles).map_err(|e| StoreError::Corrupt(format!("encoding roles: {e}")))
}

fn user_from_row(row: &SqliteRow) -> Result<User, StoreError> {
    let roles: String = row.try_get("roles").map_err(store_error)?;
    let roles: Vec<String> = serde_json::from_str(&roles)
        .map_err(|e| StoreError::Corrupt(format!("users.roles is not a list of names: {e}")))?;
    Ok(User {
        username: row.try_get("username").map_err(store_error)?,
        email: row.try_get("email").map_err(store_error)?,
        roles,
        password_hash: row.try_get("password_hash").map_err(store_error)?,
        disabled: row.try_get("disabled").map_err(store_error)?,
        created_at: row.try_get("created_at").map_err(store_error)?,
    })
}

fn totp_from_row(row: &SqliteRow) -> Result<TotpFactor, StoreError> {
    Ok(TotpFactor {
        principal: row.try_get("principal").map_err(store_error)?,
        sealed_seed: row.try_get("sealed_seed").map_err(store_error)?,
        confirmed: row.try_get("confirmed").map_err(store_error)?,
        last_step: row.try_get("last_step").map_err(store_error)?,
        created_at: row.try_get("created_at").map_err(store_error)?,
    })
}

fn device_from_row(row: &SqliteRow) -> Result<RememberedDevice, StoreError> {
    Ok(RememberedDevice {
        id: row.try_get("id").map_err(store_error)?,
        principal: row.try_get("principal").map_err(store_error)?,
        token_hash: row.try_get("token_hash").map_err(store_error)?,
        created_at: row.try_get("created_at").map_err(store_error)?,
        expires_at: row.try_get("expires_at").map_err(store_error)?,
        user_agent: row.try_get("user_agent").map_err(store_error)?,
    })
}

fn audit_from_row(row: &SqliteRow) -> Result<AuditRecord, StoreError> {
    Ok(AuditRecord {
        id: row.try_get("id").map_err(store_error)?,
        event: AuditEvent {
            at: row.try_get("occurred_at").map_err(store_error)?,
            kind: row.try_get("kind").map_err(store_error)?,
            user: row.try_get("username").map_err(store_error)?,
            method: row.try_get("method").map_err(store_error)?,
            outcome: row.try_get("outcome").map_err(store_error)?,
            reason: row.try_get("reason").map_err(store_error)?,
            ip: row.try_get("ip").map_err(store_error)?,
            session: row.try_get("session_id").map_err(store_error)?,
            detail: row.try_get("detail").map_err(store_error)?,
        },
    })
}

// Transactions here always begin with a write, so SQLite takes the write lock first and a
// concurrent writer waits (busy_timeout) instead of failing a read-to-write upgrade.
impl UserStore for SqliteUserStore {
    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map_err(store_error)?;
        Ok(())
    }

    async fn create_user(&self, user: &NewUser, now: i64) -> Result<User, StoreError> {
        sqlx::query(
            "INSERT INTO users (username, email, roles, password_hash, disabled, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&user.username)
        .bind(&user.email)
        .bind(encode_roles(&user.roles)?)
        .bind(&user.password_hash)
        .bind(user.disabled)
        .bind(now)
        .execute(&self.pool)
        .await
        .map_err(store_error)?;
        Ok(User {
            username: user.username.clone(),
            email: user.email.clone(),
            roles: user.roles.clone(),
            password_hash: user.password_hash.clone(),
            disabled: user.disabled,
            created_at: now,
        })
    }

    async fn get_user(&self, username: &str) -> Result<Option<User>, StoreError> {
        let sql = format!("SELECT {USER_COLUMNS} FROM users WHERE username = $1");
        sqlx::query(&sql)
            .bind(username)
            .fetch_optional(&self.pool)
            .await
            .map_err(store_error)?
            .as_ref()
            .map(user_from_row)
            .transpose()
    }

    async fn list_users(&self, after: Option<&str>, limit: u32) -> Result<Vec<User>, StoreError> {
        let limit = page_limit(limit);
        if limit == 0 {
            return Ok(Vec::new());
        }
        let rows = match after {
            Some(after) => {
                let sql = format!(
                    "SELECT {USER_COLUMNS} FROM users WHERE username > $1 \
                     ORDER BY username LIMIT $2"
                );
                sqlx::query(&sql)
                    .bind(after)
                    .bind(limit)
                    .fetch_all(&self.pool)
                    .await
            }
            None => {
                let sql = format!("SELECT {USER_COLUMNS} FROM users ORDER BY username LIMIT $1");
                sqlx::query(&sql).bind(limit).fetch_all(&self.pool).await
            }
        }
        .map_err(store_error)?;
        rows.iter().map(user_from_row).collect()
    }

    async fn set_disabled(&self, username: &str, disabled: bool) -> Result<bool, StoreError> {
        let done = sqlx::query("UPDATE users SET disabled = $1 WHERE username = $2")
            .bind(disabled)
            .bind(username)
            .execute(&self.pool)
            .await
            .map_err(store_error)?;
        Ok(done.rows_affected() == 1)
    }

    async fn set_password(&self, username: &str, password_hash: &str) -> Result<bool, StoreError> {
        let done = sqlx::query("UPDATE users SET password_hash = $1 WHERE username = $2")
            .bind(password_hash)
            .bind(username)
            .execute(&self.pool)
            .await
            .map_err(store_error)?;
        Ok(done.rows_affected() == 1)
    }

    async fn set_roles(&self, username: &str, roles: &[String]) -> Result<bool, StoreError> {
        let done = sqlx::query("UPDATE users SET roles = $1 WHERE username = $2")
            .bind(encode_roles(roles)?)
            .bind(username)
            .execute(&self.pool)
            .await
            .map_err(store_error)?;
        Ok(done.rows_affected() == 1)
    }

    async fn get_totp(&self, principal: &str) -> Result<Option<TotpFactor>, StoreError> {
        sqlx::query(
            "SELECT principal, sealed_seed, confirmed, last_step, created_at \
             FROM totp_factors WHERE principal = $1",
        )
        .bind(principal)
        .fetch_optional(&self.pool)
        .await
        .map_err(store_error)?
        .as_ref()
        .map(totp_from_row)
        .transpose()
    }

    async fn put_totp(
        &self,
        principal: &str,
        sealed_seed: &[u8],
        confirmed: bool,
        now: i64,
    ) -> Result<(), StoreError> {
        // A new seed starts a new step history: last_step is cleared.
        sqlx::query(
            "INSERT INTO totp_factors (principal, sealed_seed, confirmed, last_step, created_at) \
             VALUES ($1, $2, $3, NULL, $4) \
             ON CONFLICT (principal) DO UPDATE SET sealed_seed = excluded.sealed_seed, \
             confirmed = excluded.confirmed, last_step = NULL, created_at = excluded.created_at",
        )
        .bind(principal)
        .bind(sealed_seed)
        .bind(confirmed)
        .bind(now)
        .execute(&self.pool)
        .await
        .map_err(store_error)?;
        Ok(())
    }

    async fn enroll_totp(
        &self,
        principal: &str,
        sealed_seed: &[u8],
        step: i64,
        now: i64,
    ) -> Result<bool, StoreError> {
        // One statement, conditional on no confirmed factor: a confirmed authenticator is never
        // replaced by an enrollment, and of two concurrent enrollments exactly one wins.
        let done = sqlx::query(
            "INSERT INTO totp_factors (principal, sealed_seed, confirmed, last_step, created_at) \
             VALUES ($1, $2, TRUE, $3, $4) \
             ON CONFLICT (principal) DO UPDATE SET sealed_seed = excluded.sealed_seed, \
             confirmed = TRUE, last_step = excluded.last_step, created_at = excluded.created_at \
             WHERE NOT totp_factors.confirmed",
        )
        .bind(principal)
        .bind(sealed_seed)
        .bind(step)
        .bind(now)
        .execute(&self.pool)
        .await
        .map_err(store_error)?;
        Ok(done.rows_affected() == 1)
    }

    async fn put_invite(&self, invite: &EnrollmentInvite) -> Result<(), StoreError> {
        // A new invitation replaces the user's unused ones: only the latest link works.
        let mut tx = self.pool.begin().await.map_err(store_error)?;
        sqlx::query("DELETE FROM enrollment_invites WHERE username = $1 AND used_at IS NULL")
            .bind(&invite.username)
            .execute(&mut *tx)
            .await
            .map_err(store_error)?;
        sqlx::query(
            "INSERT INTO enrollment_invites (token_hash, username, created_at, expires_at) \
             VALUES ($1, $2, $3, $4)",
        )
        .bind(&invite.token_hash)
        .bind(&invite.username)
        .bind(invite.created_at)
        .bind(invite.expires_at)
        .execute(&mut *tx)
        .await
        .map_err(store_error)?;
        tx.commit().await.map_err(store_error)
    }

    async fn find_invite(
        &self,
        token_hash: &str,
        now: i64,
    ) -> Result<Option<EnrollmentInvite>, StoreError> {
        let row = sqlx::query(
            "SELECT token_hash, username, created_at, expires_at FROM enrollment_invites \
             WHERE token_hash = $1 AND used_at IS NULL AND expires_at > $2",
        )
        .bind(token_hash)
        .bind(now)
        .fetch_optional(&self.pool)
        .await
        .map_err(store_error)?;
        row.map(|r| {
            Ok(EnrollmentInvite {
                token_hash: r.try_get("token_hash").map_err(store_error)?,
                username: r.try_get("username").map_err(store_error)?,
                created_at: r.try_get("created_at").map_err(store_error)?,
                expires_at: r.try_get("expires_at").map_err(store_error)?,
            })
        })
        .transpose()
    }

    async fn spend_invite(&self, token_hash: &str, now: i64) -> Result<bool, StoreError> {
        // Conditional UPDATE: of two concurrent uses exactly one sees the unused row.
        let done = sqlx::query(
            "UPDATE enrollment_invites SET used_at = $1 \
             WHERE token_hash = $2 AND used_at IS NULL AND expires_at > $1",
        )
        .bind(now)
        .bind(token_hash)
        .execute(&self.pool)
        .await
        .map_err(store_error)?;
        Ok(done.rows_affected() == 1)
    }

    async fn advance_totp_step(&self, principal: &str, step: i64) -> Result<bool, StoreError> {
        // DESIGN.md §6: TOTP codes are single-use per time step. One conditional UPDATE:
        // of concurrent callers with the same step, exactly one sees a matching row.
        let done = sqlx::query(
            "UPDATE totp_factors SET last_step = $1 \
             WHERE principal = $2 AND confirmed AND (last_step IS NULL OR last_step < $1)",
        )
        .bind(step)
        .bind(principal)
        .execute(&self.pool)
        .await
        .map_err(store_error)?;
        Ok(done.rows_affected() == 1)
    }

    async fn delete_factors(&self, principal: &str) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await.map_err(store_error)?;
        let totp = sqlx::query("DELETE FROM totp_factors WHERE principal = $1")
            .bind(principal)
            .execute(&mut *tx)
            .await
            .map_err(store_error)?;
        let codes = sqlx::query("DELETE FROM recovery_codes WHERE principal = $1")
            .bind(principal)
            .execute(&mut *tx)
            .await
            .map_err(store_error)?;
        tx.commit().await.map_err(store_error)?;
        Ok(totp.rows_affected() + codes.rows_affected() > 0)
    }

    async fn replace_recovery_codes(
        &self,
        principal: &str,
        code_hashes: &[String],
        now: i64,
        expires_at: Option<i64>,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await.map_err(store_error)?;
        sqlx::query("DELETE FROM recovery_codes WHERE principal = $1")
            .bind(principal)
            .execute(&mut *tx)
            .await
            .map_err(store_error)?;
        for hash in code_hashes {
            sqlx::query(
                "INSERT INTO recovery_codes (principal, code_hash, created_at, expires_at) \
                 VALUES ($1, $2, $3, $4)",
            )
            .bind(principal)
            .bind(hash)
            .bind(now)
            .bind(expires_at)
            .execute(&mut *tx)
            .await
            .map_err(store_error)?;
        }
        tx.commit().await.map_err(store_error)?;
        Ok(())
    }

    async fn consume_recovery_code(
        &self,
        principal: &str,
        code_hash: &str,
        now: i64,
    ) -> Result<Option<u32>, StoreError> {
        // DESIGN.md §6: recovery codes are single-use with optional expiry. The UPDATE is the
        // check; the lookup is by hash of a high-entropy code, so its timing reveals nothing.
        let mut tx = self.pool.begin().await.map_err(store_error)?;
        let done = sqlx::query(
            "UPDATE recovery_codes SET used_at = $1 \
             WHERE principal = $2 AND code_hash = $3 AND used_at IS NULL \
             AND (expires_at IS NULL OR expires_at > $1)",
        )
        .bind(now)
        .bind(principal)
        .bind(code_hash)
        .execute(&mut *tx)
        .await
        .map_err(store_error)?;
        if done.rows_affected() != 1 {
            return Ok(None); // dropping the transaction rolls it back
        }
        let remaining: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM recovery_codes WHERE principal = $1 AND used_at IS NULL \
             AND (expires_at IS NULL OR expires_at > $2)",
        )
        .bind(principal)
        .bind(now)
        .fetch_one(&mut *tx)
        .await
        .map_err(store_error)?;
        tx.commit().await.map_err(store_error)?;
        Ok(Some(to_u32(remaining, "recovery code count")?))
    }

    async fn count_recovery_codes(&self, principal: &str, now: i64) -> Result<u32, StoreError> {
        let n: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM recovery_codes WHERE principal = $1 AND used_at IS NULL \
             AND (expires_at IS NULL OR expires_at > $2)",
        )
        .bind(principal)
        .bind(now)
        .fetch_one(&self.pool)
        .await
        .map_err(store_error)?;
        to_u32(n, "recovery code count")
    }

    async fn add_device(&self, device: &RememberedDevice) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await.map_err(store_error)?;
        sqlx::query("DELETE FROM remembered_devices WHERE principal = $1 AND expires_at <= $2")
            .bind(&device.principal)
            .bind(device.created_at)
            .execute(&mut *tx)
            .await
            .map_err(store_error)?;
        let sql = format!(
            "INSERT INTO remembered_devices ({DEVICE_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6)"
        );
        sqlx::query(&sql)
            .bind(&device.id)
            .bind(&device.principal)
            .bind(&device.token_hash)
            .bind(device.created_at)
            .bind(device.expires_at)
            .bind(&device.user_agent)
            .execute(&mut *tx)
            .await
            .map_err(store_error)?;
        tx.commit().await.map_err(store_error)?;
        Ok(())
    }

    async fn device_valid(
        &self,
        principal: &str,
        token_hash: &str,
        now: i64,
    ) -> Result<bool, StoreError> {
        let found = sqlx::query(
            "SELECT 1 FROM remembered_devices \
             WHERE principal = $1 AND token_hash = $2 AND expires_at > $3",
        )
        .bind(principal)
        .bind(token_hash)
        .bind(now)
        .fetch_optional(&self.pool)
        .await
        .map_err(store_error)?;
        Ok(found.is_some())
    }

    async fn list_devices(
        &self,
        principal: &str,
        now: i64,
    ) -> Result<Vec<RememberedDevice>, StoreError> {
        let sql = format!(
            "SELECT {DEVICE_COLUMNS} FROM remembered_devices \
             WHERE principal = $1 AND expires_at > $2 ORDER BY created_at, id"
        );
        sqlx::query(&sql)
            .bind(principal)
            .bind(now)
            .fetch_all(&self.pool)
            .await
            .map_err(store_error)?
            .iter()
            .map(device_from_row)
            .collect()
    }

    async fn delete_device(&self, principal: &str, id: &str) -> Result<bool, StoreError> {
        let done = sqlx::query("DELETE FROM remembered_devices WHERE principal = $1 AND id = $2")
            .bind(principal)
            .bind(id)
            .execute(&self.pool)
            .await
            .map_err(store_error)?;
        Ok(done.rows_affected() == 1)
    }

    async fn delete_devices(&self, principal: &str) -> Result<u64, StoreError> {
        let done = sqlx::query("DELETE FROM remembered_devices WHERE principal = $1")
            .bind(principal)
            .execute(&self.pool)
            .await
            .map_err(store_error)?;
        Ok(done.rows_affected())
    }

    async fn append_audit(&self, event: &AuditEvent) -> Result<i64, StoreError> {
        sqlx::query_scalar(
            "INSERT INTO audit_log (occurred_at, kind, username, method, outcome, reason, ip, \
             session_id, detail) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING id",
        )
        .bind(event.at)
        .bind(&event.kind)
        .bind(&event.user)
        .bind(&event.method)
        .bind(&event.outcome)
        .bind(&event.reason)
        .bind(&event.ip)
        .bind(&event.session)
        .bind(&event.detail)
        .fetch_one(&self.pool)
        .await
        .map_err(store_error)
    }

    async fn query_audit(&self, query: &AuditQuery) -> Result<Vec<AuditRecord>, StoreError> {
        let limit = page_limit(query.limit);
        if limit == 0 {
            return Ok(Vec::new());
        }
        // Only fixed SQL fragments are pushed; every value is a bound parameter.
        let mut sql = QueryBuilder::<Sqlite>::new(
            "SELECT id, occurred_at, kind, username, method, outcome, reason, ip, session_id, \
             detail FROM audit_log WHERE 1 = 1",
        );
        if let Some(since) = query.since {
            sql.push(" AND occurred_at >= ").push_bind(since);
        }
        if let Some(user) = &query.user {
            sql.push(" AND username = ").push_bind(user.clone());
        }
        if let Some(kind) = &query.kind {
            sql.push(" AND kind = ").push_bind(kind.clone());
        }
        if let Some(after_id) = query.after_id {
            sql.push(" AND id > ").push_bind(after_id);
        }
        sql.push(" ORDER BY id LIMIT ").push_bind(limit);
        sql.build()
            .fetch_all(&self.pool)
            .await
            .map_err(store_error)?
            .iter()
            .map(audit_from_row)
            .collect()
    }

    async fn has_second_factor(&self, principal: &str, now: i64) -> Result<bool, StoreError> {
        sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM totp_factors WHERE principal = $1 AND confirmed) \
             OR EXISTS (SELECT 1 FROM recovery_codes WHERE principal = $1 AND used_at IS NULL \
             AND (expires_at IS NULL OR expires_at > $2))",
        )
        .bind(principal)
        .bind(now)
        .fetch_one(&self.pool)
        .await
        .map_err(store_error)
    }
}

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)] // tests: a failure aborts the test
mod tests {
    use std::path::PathBuf;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;
    use crate::storage::AnyUserStore;

    /// A scratch directory path under the system temp dir, removed on drop. Not created here,
    /// so tests can check that the store creates it.
    struct TempDir(PathBuf);

    impl TempDir {
        fn new() -> Self {
            static SEQ: AtomicUsize = AtomicUsize::new(0);
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.subsec_nanos())
                .unwrap_or(0);
            Self(std::env::temp_dir().join(format!(
                "portcullis-store-{}-{nanos}-{}",
                std::process::id(),
                SEQ.fetch_add(1, Ordering::Relaxed)
            )))
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    async fn memory() -> SqliteUserStore {
        SqliteUserStore::open_in_memory().await.unwrap()
    }

    fn new_user(name: &str) -> NewUser {
        NewUser {
            username: name.into(),
            email: Some(format!("{name}@example.com")),
            roles: vec!["agent".into(), "end_user".into()],
            password_hash: Some("$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".into()),
            disabled: false,
        }
    }

    fn event(at: i64, kind: &str, user: Option<&str>) -> AuditEvent {
        AuditEvent {
            at,
            kind: kind.into(),
            user: user.map(Into::into),
            method: Some("native".into()),
            outcome: "success".into(),
            reason: None,
            ip: Some("192.0.2.1".into()),
            session: Some("s-1".into()),
            detail: None,
        }
    }

    fn names(users: &[User]) -> Vec<&str> {
        users.iter().map(|u| u.username.as_str()).collect()
    }

    #[tokio::test]
    async fn users_are_created_read_listed_and_disabled() {
        let store = memory().await;
        store.ping().await.unwrap();
        assert_eq!(store.get_user("ann").await.unwrap(), None);

        let created = store
            .create_user(&new_user("ann"), 1_700_000_000)
            .await
            .unwrap();
        let expected = User {
            username: "ann".into(),
            email: Some("ann@example.com".into()),
            roles: vec!["agent".into(), "end_user".into()],
            password_hash: Some("$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".into()),
            disabled: false,
            created_at: 1_700_000_000,
        };
        assert_eq!(created, expected);
        assert_eq!(store.get_user("ann").await.unwrap(), Some(expected.clone()));

        let bare = NewUser {
            username: "bob".into(),
            email: None,
            roles: vec![],
            password_hash: None,
            disabled: true,
        };
        store.create_user(&bare, 5).await.unwrap();
        for name in ["dan", "cat", "eve"] {
            store.create_user(&new_user(name), 6).await.unwrap();
        }

        let page = store.list_users(None, 2).await.unwrap();
        assert_eq!(names(&page), ["ann", "bob"]);
        let page = store.list_users(Some("bob"), 2).await.unwrap();
        assert_eq!(names(&page), ["cat", "dan"]);
        let page = store.list_users(Some("dan"), 2).await.unwrap();
        assert_eq!(names(&page), ["eve"]);
        assert!(store.list_users(Some("eve"), 2).await.unwrap().is_empty());
        assert!(store.list_users(None, 0).await.unwrap().is_empty());
        assert_eq!(store.list_users(None, u32::MAX).await.unwrap().len(), 5);
        let bob = store.get_user("bob").await.unwrap().unwrap();
        assert_eq!(
            (bob.email, bob.roles, bob.password_hash, bob.disabled),
            (None, vec![], None, true)
        );

        assert!(store.set_disabled("ann", true).await.unwrap());
        assert!(store.get_user("ann").await.unwrap().unwrap().disabled);
        assert!(store.set_disabled("ann", false).await.unwrap());
        assert!(!store.get_user("ann").await.unwrap().unwrap().disabled);
        assert!(!store.set_disabled("nobody", true).await.unwrap());

        assert!(store.set_password("ann", "$argon2id$new").await.unwrap());
        assert!(!store.set_password("nobody", "$argon2id$new").await.unwrap());
        assert!(store.set_roles("ann", &["admin".into()]).await.unwrap());
        assert!(!store.set_roles("nobody", &[]).await.unwrap());
        let ann = store.get_user("ann").await.unwrap().unwrap();
        assert_eq!(
            ann,
            User {
                password_hash: Some("$argon2id$new".into()),
                roles: vec!["admin".into()],
                ..expected
            }
        );
    }

    #[tokio::test]
    async fn creating_an_existing_user_is_a_conflict() {
        let store = memory().await;
        store.create_user(&new_user("ann"), 1).await.unwrap();
        let again = store.create_user(&new_user("ann"), 2).await;
        assert!(matches!(again, Err(StoreError::Conflict)), "{again:?}");
        assert_eq!(store.get_user("ann").await.unwrap().unwrap().created_at, 1);
    }

    #[tokio::test]
    async fn corrupt_rows_are_reported_not_panicked_on() {
        let store = memory().await;
        sqlx::query(
            "INSERT INTO users (username, roles, disabled, created_at) VALUES ('bad', 'admin,agent', 0, 1)",
        )
        .execute(&store.pool)
        .await
        .unwrap();
        sqlx::query(
            "INSERT INTO users (username, disabled, created_at) VALUES ('worse', 0, 'yesterday')",
        )
        .execute(&store.pool)
        .await
        .unwrap();
        assert!(matches!(
            store.get_user("bad").await,
            Err(StoreError::Corrupt(_))
        ));
        assert!(matches!(
            store.get_user("worse").await,
            Err(StoreError::Corrupt(_))
        ));
        assert!(matches!(
            store.list_users(None, 10).await,
            Err(StoreError::Corrupt(_))
        ));
    }

    #[tokio::test]
    async fn totp_code_is_rejected_when_its_step_is_the_same_or_older() {
        let store = memory().await;
        let p = "oidc:https://idp.example.com#sub-1";
        assert_eq!(store.get_totp(p).await.unwrap(), None);
        assert!(!store.advance_totp_step(p, 100).await.unwrap(), "no factor");

        store.put_totp(p, b"sealed-1", false, 10).await.unwrap();
        assert!(
            !store.advance_totp_step(p, 100).await.unwrap(),
            "unconfirmed factor"
        );
        assert!(store.enroll_totp(p, b"sealed-1", 100, 10).await.unwrap());
        assert!(
            !store.enroll_totp(p, b"sealed-x", 101, 11).await.unwrap(),
            "a confirmed factor is never replaced by an enrollment"
        );
        assert_eq!(
            store.get_totp(p).await.unwrap(),
            Some(TotpFactor {
                principal: p.into(),
                sealed_seed: b"sealed-1".to_vec(),
                confirmed: true,
                last_step: Some(100),
                created_at: 10,
            })
        );

        assert!(
            !store.advance_totp_step(p, 100).await.unwrap(),
            "enrollment step reused"
        );
        assert!(!store.advance_totp_step(p, 99).await.unwrap(), "older step");
        assert!(store.advance_totp_step(p, 101).await.unwrap(), "newer step");
        assert!(
            !store.advance_totp_step(p, 101).await.unwrap(),
            "same step twice"
        );
        assert!(store.advance_totp_step(p, 105).await.unwrap());
        assert!(!store.advance_totp_step(p, 103).await.unwrap());
        assert!(!store.advance_totp_step("native:other", 200).await.unwrap());

        // Replacing the factor resets it: unconfirmed, no step history.
        store.put_totp(p, b"sealed-2", false, 20).await.unwrap();
        let t = store.get_totp(p).await.unwrap().unwrap();
        assert_eq!(
            (t.sealed_seed, t.confirmed, t.last_step, t.created_at),
            (b"sealed-2".to_vec(), false, None, 20)
        );
        store.put_totp(p, b"sealed-3", true, 30).await.unwrap();
        assert!(store.advance_totp_step(p, 1).await.unwrap());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_totp_step_advances_with_the_same_step_have_exactly_one_winner() {
        let dir = TempDir::new();
        let store = SqliteUserStore::open(&dir.0.join("users.db"))
            .await
            .unwrap();
        let p = "native:ann";
        store.put_totp(p, b"sealed", true, 0).await.unwrap();
        for step in 1..=20_i64 {
            let racers: Vec<_> = (0..8)
                .map(|_| {
                    let store = store.clone();
                    tokio::spawn(async move { store.advance_totp_step(p, step).await })
                })
                .collect();
            let mut wins = 0;
            for racer in racers {
                if racer.await.unwrap().unwrap() {
                    wins += 1;
                }
            }
            assert_eq!(wins, 1, "step {step}");
        }
        // Two independent pools on the same file (as two replicas or processes would be).
        let other = SqliteUserStore::open(&dir.0.join("users.db"))
            .await
            .unwrap();
        let (a, b) = tokio::join!(
            store.advance_totp_step(p, 21),
            other.advance_totp_step(p, 21)
        );
        assert_eq!(u8::from(a.unwrap()) + u8::from(b.unwrap()), 1);
        store.close().await;
        other.close().await;
    }

    #[tokio::test]
    async fn recovery_code_works_once_and_not_after_expiry_or_replacement() {
        let store = memory().await;
        let p = "native:ann";
        let codes: Vec<String> = ["h-a", "h-b", "h-c"].map(String::from).to_vec();
        store
            .replace_recovery_codes(p, &codes, 10, Some(1_000))
            .await
            .unwrap();
        assert_eq!(store.count_recovery_codes(p, 10).await.unwrap(), 3);

        assert_eq!(
            store.consume_recovery_code(p, "h-a", 20).await.unwrap(),
            Some(2)
        );
        assert_eq!(
            store.consume_recovery_code(p, "h-a", 21).await.unwrap(),
            None,
            "reused"
        );
        assert_eq!(
            store.consume_recovery_code(p, "h-x", 21).await.unwrap(),
            None,
            "unknown"
        );
        assert_eq!(
            store
                .consume_recovery_code("native:bob", "h-b", 21)
                .await
                .unwrap(),
            None,
            "other principal"
        );
        assert_eq!(store.count_recovery_codes(p, 21).await.unwrap(), 2);

        assert_eq!(
            store.consume_recovery_code(p, "h-b", 1_000).await.unwrap(),
            None,
            "expired"
        );
        assert_eq!(store.count_recovery_codes(p, 1_000).await.unwrap(), 0);
        assert_eq!(store.count_recovery_codes(p, 999).await.unwrap(), 2);

        store
            .replace_recovery_codes(p, &["h-d".into(), "h-e".into()], 30, None)
            .await
            .unwrap();
        assert_eq!(
            store.consume_recovery_code(p, "h-c", 31).await.unwrap(),
            None,
            "replaced"
        );
        assert_eq!(
            store
                .consume_recovery_code(p, "h-d", i64::MAX)
                .await
                .unwrap(),
            Some(1),
            "no expiry"
        );
        assert_eq!(store.count_recovery_codes(p, 31).await.unwrap(), 1);

        // A duplicate in the new set fails the whole replacement; the old set stays.
        let dup = store
            .replace_recovery_codes(p, &["h-f".into(), "h-f".into()], 40, None)
            .await;
        assert!(matches!(dup, Err(StoreError::Conflict)), "{dup:?}");
        assert_eq!(
            store.consume_recovery_code(p, "h-e", 41).await.unwrap(),
            Some(0)
        );
    }

    #[tokio::test]
    async fn second_factor_presence_counts_confirmed_totp_and_usable_codes() {
        let store = memory().await;
        let p = "saml:corp#ann@example.com";
        assert!(!store.has_second_factor(p, 0).await.unwrap());
        store.put_totp(p, b"s", false, 0).await.unwrap();
        assert!(
            !store.has_second_factor(p, 0).await.unwrap(),
            "unconfirmed totp"
        );
        assert!(store.enroll_totp(p, b"s", 1, 0).await.unwrap());
        assert!(store.has_second_factor(p, 0).await.unwrap());

        store
            .replace_recovery_codes(p, &["h".into()], 0, Some(100))
            .await
            .unwrap();
        assert!(store.delete_factors(p).await.unwrap());
        assert!(!store.delete_factors(p).await.unwrap());
        assert_eq!(store.get_totp(p).await.unwrap(), None);
        assert_eq!(store.count_recovery_codes(p, 0).await.unwrap(), 0);
        assert!(!store.has_second_factor(p, 0).await.unwrap());

        store
            .replace_recovery_codes(p, &["h".into()], 0, Some(100))
            .await
            .unwrap();
        assert!(store.has_second_factor(p, 99).await.unwrap(), "unused code");
        assert!(
            !store.has_second_factor(p, 100).await.unwrap(),
            "expired code"
        );
        store.consume_recovery_code(p, "h", 50).await.unwrap();
        assert!(!store.has_second_factor(p, 50).await.unwrap(), "used code");
    }

    fn device(
        id: &str,
        principal: &str,
        token_hash: &str,
        created_at: i64,
        expires_at: i64,
    ) -> RememberedDevice {
        RememberedDevice {
            id: id.into(),
            principal: principal.into(),
            token_hash: token_hash.into(),
            created_at,
            expires_at,
            user_agent: Some("Firefox".into()),
        }
    }

    #[tokio::test]
    async fn remembered_devices_are_valid_until_expiry_or_revocation() {
        let store = memory().await;
        let p = "native:ann";
        let d1 = device("d1", p, "t1", 100, 200);
        let d2 = device("d2", p, "t2", 110, 300);
        store.add_device(&d1).await.unwrap();
        store.add_device(&d2).await.unwrap();
        store
            .add_device(&device("d3", "native:bob", "t3", 100, 300))
            .await
            .unwrap();
        let dup = store.add_device(&device("d4", p, "t1", 120, 300)).await;
        assert!(matches!(dup, Err(StoreError::Conflict)), "{dup:?}");

        assert!(store.device_valid(p, "t1", 199).await.unwrap());
        assert!(!store.device_valid(p, "t1", 200).await.unwrap(), "expired");
        assert!(
            !store.device_valid(p, "t3", 150).await.unwrap(),
            "other principal's token"
        );
        assert!(!store.device_valid(p, "nope", 150).await.unwrap());
        assert_eq!(
            store.list_devices(p, 150).await.unwrap(),
            vec![d1.clone(), d2.clone()]
        );
        assert_eq!(store.list_devices(p, 250).await.unwrap(), vec![d2.clone()]);

        assert!(
            !store.delete_device("native:bob", "d2").await.unwrap(),
            "not bob's"
        );
        assert!(store.delete_device(p, "d2").await.unwrap());
        assert!(!store.delete_device(p, "d2").await.unwrap());
        assert!(!store.device_valid(p, "t2", 150).await.unwrap(), "revoked");

        // Adding a device drops the principal's expired ones.
        store
            .add_device(&device("d5", p, "t5", 250, 400))
            .await
            .unwrap();
        assert!(
            !store.delete_device(p, "d1").await.unwrap(),
            "expired d1 was purged"
        );
        store
            .add_device(&device("d6", p, "t6", 260, 400))
            .await
            .unwrap();
        assert_eq!(store.delete_devices(p).await.unwrap(), 2);
        assert!(!store.device_valid(p, "t5", 300).await.unwrap());
        assert!(
            store.device_valid("native:bob", "t3", 250).await.unwrap(),
            "bob untouched"
        );
    }

    #[tokio::test]
    async fn audit_queries_filter_and_paginate_by_id() {
        let store = memory().await;
        let mut ids = Vec::new();
        for (at, kind, user) in [
            (100, "login", Some("ann")),
            (110, "login", Some("bob")),
            (120, "mfa", Some("ann")),
            (130, "login", Some("ann")),
            (140, "admin", None),
        ] {
            ids.push(store.append_audit(&event(at, kind, user)).await.unwrap());
        }
        assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");

        let all = store
            .query_audit(&AuditQuery {
                limit: 100,
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(all.len(), 5);
        assert_eq!(
            all[0],
            AuditRecord {
                id: ids[0],
                event: event(100, "login", Some("ann"))
            }
        );
        assert_eq!(all[4].event, event(140, "admin", None));

        let ann_logins = AuditQuery {
            user: Some("ann".into()),
            kind: Some("login".into()),
            limit: 100,
            ..Default::default()
        };
        let got: Vec<i64> = store
            .query_audit(&ann_logins)
            .await
            .unwrap()
            .iter()
            .map(|r| r.id)
            .collect();
        assert_eq!(got, [ids[0], ids[3]]);

        let since = AuditQuery {
            since: Some(120),
            limit: 100,
            ..Default::default()
        };
        let got: Vec<i64> = store
            .query_audit(&since)
            .await
            .unwrap()
            .iter()
            .map(|r| r.id)
            .collect();
        assert_eq!(got, [ids[2], ids[3], ids[4]]);

        // Keyset pages of two, following the cursor.
        let mut pages = Vec::new();
        let mut after_id = None;
        loop {
            let page = store
                .query_audit(&AuditQuery {
                    after_id,
                    limit: 2,
                    ..Default::default()
                })
                .await
                .unwrap();
            let Some(last) = page.last() else { break };
            after_id = Some(last.id);
            pages.push(page.iter().map(|r| r.id).collect::<Vec<_>>());
        }
        assert_eq!(
            pages,
            [vec![ids[0], ids[1]], vec![ids[2], ids[3]], vec![ids[4]]]
        );

        let ann_after = AuditQuery {
            user: Some("ann".into()),
            after_id: Some(ids[0]),
            limit: 1,
            ..Default::default()
        };
        let got: Vec<i64> = store
            .query_audit(&ann_after)
            .await
            .unwrap()
            .iter()
            .map(|r| r.id)
            .collect();
        assert_eq!(got, [ids[2]]);
        assert!(
            store
                .query_audit(&AuditQuery::default())
                .await
                .unwrap()
                .is_empty(),
            "limit 0"
        );
    }

    #[tokio::test]
    async fn audit_limit_is_capped_at_max_page() {
        let store = memory().await;
        for i in 0..(i64::from(MAX_PAGE) + 5) {
            store.append_audit(&event(i, "login", None)).await.unwrap();
        }
        let got = store
            .query_audit(&AuditQuery {
                limit: u32::MAX,
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(got.len(), MAX_PAGE as usize);
    }

    #[tokio::test]
    async fn reopening_the_same_file_keeps_data_and_applies_migrations_once() {
        let dir = TempDir::new();
        let path = dir.0.join("nested/deeper/users.db");
        let store = SqliteUserStore::open(&path).await.unwrap();
        store.create_user(&new_user("ann"), 1).await.unwrap();
        store.close().await;

        for _ in 0..2 {
            let store = SqliteUserStore::open(&path).await.unwrap();
            assert_eq!(store.get_user("ann").await.unwrap().unwrap().created_at, 1);
            let applied: Vec<i64> =
                sqlx::query_scalar("SELECT version FROM _sqlx_migrations ORDER BY version")
                    .fetch_all(&store.pool)
                    .await
                    .unwrap();
            assert_eq!(applied, [1, 2]);
            let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
                .fetch_one(&store.pool)
                .await
                .unwrap();
            assert_eq!(mode, "wal");
            let fk: i64 = sqlx::query_scalar("PRAGMA foreign_keys")
                .fetch_one(&store.pool)
                .await
                .unwrap();
            assert_eq!(fk, 1);
            store.close().await;
        }
    }

    #[tokio::test]
    async fn open_creates_a_private_parent_directory_and_database_file() {
        let dir = TempDir::new();
        let config_dir = dir.0.join("etc");
        std::fs::create_dir_all(&config_dir).unwrap();
        let store = AnyUserStore::open("sqlite://data/portcullis.db", &config_dir)
            .await
            .unwrap();
        store.ping().await.unwrap();
        store.create_user(&new_user("ann"), 1).await.unwrap();
        let db = config_dir.join("data/portcullis.db");
        assert!(db.is_file());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let dir_mode = std::fs::metadata(config_dir.join("data"))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(dir_mode & 0o777, 0o700);
            let file_mode = std::fs::metadata(&db).unwrap().permissions().mode();
            assert_eq!(
                file_mode & 0o077,
                0,
                "database file readable by others: {file_mode:o}"
            );
        }
        store.close().await;

        // Absolute paths ignore the base directory.
        let abs = dir.0.join("abs/p.db");
        let url = format!("sqlite://{}", abs.display());
        let store = AnyUserStore::open(&url, Path::new("/nonexistent"))
            .await
            .unwrap();
        assert_eq!(store.get_user("ann").await.unwrap(), None);
        store.close().await;
        assert!(abs.is_file());
    }

    #[tokio::test]
    async fn any_store_refuses_unsupported_schemes_and_opens_memory() {
        let err = AnyUserStore::open("mysql://u:secret@db/p", Path::new(".")).await;
        assert!(
            matches!(err, Err(StoreError::Unavailable(ref m)) if !m.contains("secret")),
            "{err:?}"
        );
        let store = AnyUserStore::open("sqlite::memory:", Path::new("."))
            .await
            .unwrap();
        store.create_user(&new_user("ann"), 1).await.unwrap();
        assert!(store.get_user("ann").await.unwrap().is_some());
    }

    #[tokio::test]
    async fn the_shared_user_store_conformance_checks_pass() {
        crate::storage::conformance::run_all(memory).await;
    }

    #[tokio::test]
    async fn an_unreachable_database_is_unavailable() {
        let store = memory().await;
        store.close().await;
        let err = store.get_user("ann").await;
        assert!(matches!(err, Err(StoreError::Unavailable(_))), "{err:?}");
        let err = store.advance_totp_step("native:ann", 1).await;
        assert!(matches!(err, Err(StoreError::Unavailable(_))), "{err:?}");
    }
}
