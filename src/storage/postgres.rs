//! `PostgresUserStore`: the `UserStore` for several replicas, on a PostgreSQL connection pool,
//! with its migrations compiled into the binary and applied at open. Not here: the SQLite store
//! (`sqlite.rs`), whose SQL and semantics this file mirrors method by method.
//!
//! * URL: `postgres://` or `postgresql://`, TLS per `sslmode` (handled by sqlx), plus one
//!   portcullis parameter, `schema=NAME`, stripped before connecting: the store then lives in
//!   schema `NAME` (created if missing) through `search_path` on every pooled connection.
//! * Open connects at once and fails with `Unavailable` if the server does not answer within
//!   [`ACQUIRE_TIMEOUT`]; afterwards the pool drops dead connections (tested before use) and
//!   reconnects by itself, so requests work again when the server comes back.
//! * Single-use checks (TOTP step, recovery code) are one conditional `UPDATE` each. Under
//!   READ COMMITTED a concurrent `UPDATE` of the same row waits for the first to commit and
//!   re-checks its `WHERE` on the new row, so exactly one caller wins (DESIGN.md §6).
//! * Set replacements (`replace_recovery_codes`, `delete_factors`) take a per-principal
//!   advisory lock, because row locks cannot order two transactions that find no rows: without
//!   it two concurrent replacements would both insert, leaving the union of both sets.
//!
//! Differences from SQLite that callers may notice: PostgreSQL `TEXT` cannot hold NUL
//! characters (such a value is an `Unavailable` error); audit ids are allocated at insert, not at
//! commit, so with concurrent appends an id may become visible after a larger one.
//! Error texts never contain the URL or its password.

use std::borrow::Cow;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::str::FromStr;
use std::time::Duration;

use percent_encoding::percent_decode_str;
use sqlx::error::BoxDynError;
use sqlx::migrate::{Migration, MigrationSource, MigrationType, Migrator};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions, PgRow};
use sqlx::{Executor, Postgres, QueryBuilder, Row};
use tracing::info;

use super::model::{
    AuditEvent, AuditQuery, AuditRecord, EnrollmentInvite, NewUser, RememberedDevice, TotpFactor,
    User, MAX_PAGE,
};
use super::{StoreError, UserStore};

/// Pool size used by [`AnyUserStore::open`](super::AnyUserStore::open).
pub const DEFAULT_MAX_CONNECTIONS: u32 = 10;
/// How long a request (or open) waits for a pooled connection before failing closed.
pub const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a statement waits for a lock held by another transaction before giving up (then:
/// Unavailable); the counterpart of SQLite's busy timeout.
const LOCK_TIMEOUT: &str = "5s";
/// Longest schema name PostgreSQL keeps (NAMEDATALEN - 1); longer names would be truncated.
const MAX_SCHEMA_LEN: usize = 63;
/// First key of the per-principal advisory locks (`pg_advisory_xact_lock(int, int)`; the
/// two-key space does not overlap the one-key space sqlx's migrator uses). "pc" in ASCII.
const PRINCIPAL_LOCK_CLASS: i32 = 0x7063;

/// The migrations, in order, twins of `sqlite.rs`'s. Each is applied once, in a transaction;
/// sqlx records it in `_sqlx_migrations` (in the store's schema) with a checksum, so an edited,
/// already-applied migration is refused. Never edit a released migration: add the next one.
const MIGRATIONS: &[(i64, &str, &str)] = &[
    (
        1,
        "user store",
        include_str!("../../migrations/postgres/0001_user_store.sql"),
    ),
    (
        2,
        "enrollment invites",
        include_str!("../../migrations/postgres/0002_enrollment_invites.sql"),
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

/// A parsed `postgres://` / `postgresql://` storage URL: the connection URL without the
/// portcullis `schema` parameter, and that schema. `Debug` hides the URL (it may hold a password).
#[derive(Clone, PartialEq, Eq)]
pub struct PostgresUrl {
    url: String,
    schema: Option<String>,
}

impl PostgresUrl {
    /// Parses a storage URL, taking out `schema=NAME` (`[a-z_][a-z0-9_]*`, at most 63
    /// characters, not `pg_*`). Errors never quote the URL.
    pub fn parse(url: &str) -> Result<Self, StoreError> {
        let invalid = |why: &str| StoreError::Unavailable(format!("postgres url: {why}"));
        if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
            return Err(invalid("must start with postgres:// or postgresql://"));
        }
        let (base, query) = url.split_once('?').unwrap_or((url, ""));
        let mut schema = None;
        let mut kept = Vec::new();
        for param in query.split('&').filter(|p| !p.is_empty()) {
            match param.split_once('=') {
                Some(("schema", name)) => {
                    if schema.is_some() {
                        return Err(invalid("`schema` is given twice"));
                    }
                    if !is_schema_name(name) {
                        return Err(invalid(
                            "`schema` must match [a-z_][a-z0-9_]* (at most 63 characters, \
                             not starting with pg_)",
                        ));
                    }
                    schema = Some(name.to_owned());
                }
                _ if param == "schema" => return Err(invalid("`schema` has no value")),
                _ => kept.push(param),
            }
        }
        let url = if kept.is_empty() {
            base.to_owned()
        } else {
            format!("{base}?{}", kept.join("&"))
        };
        Ok(Self { url, schema })
    }

    /// The schema named by `schema=`, if any.
    pub fn schema(&self) -> Option<&str> {
        self.schema.as_deref()
    }
}

impl fmt::Debug for PostgresUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresUrl")
            .field("url", &"<redacted>")
            .field("schema", &self.schema)
            .finish()
    }
}

fn is_schema_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    let first_ok = bytes
        .next()
        .is_some_and(|b| b.is_ascii_lowercase() || b == b'_');
    first_ok
        && name.len() <= MAX_SCHEMA_LEN
        && !name.starts_with("pg_")
        && bytes.all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

/// The password of `url` as written and percent-decoded, from the user info or a `password=`
/// parameter, so error texts can be scrubbed of it.
fn url_passwords(url: &str) -> Vec<String> {
    let mut found = Vec::new();
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let (before_query, query) = rest.split_once('?').unwrap_or((rest, ""));
    let authority = before_query.split('/').next().unwrap_or("");
    if let Some((userinfo, _host)) = authority.rsplit_once('@') {
        if let Some((_user, password)) = userinfo.split_once(':') {
            found.push(password.to_owned());
        }
    }
    for param in query.split('&') {
        if let Some(("password", password)) = param.split_once('=') {
            found.push(password.to_owned());
        }
    }
    let decoded: Vec<String> = found
        .iter()
        .map(|p| percent_decode_str(p).decode_utf8_lossy().into_owned())
        .collect();
    found.extend(decoded);
    found.retain(|p| !p.is_empty());
    found
}

/// `message` with every occurrence of the URL's password replaced (defence in depth: sqlx
/// errors are not known to quote connection parameters).
fn scrub(message: String, passwords: &[String]) -> String {
    passwords
        .iter()
        .fold(message, |m, p| m.replace(p.as_str(), "<redacted>"))
}

/// The PostgreSQL user store. Cheap to clone (a pool handle).
#[derive(Clone, Debug)]
pub struct PostgresUserStore {
    pool: PgPool,
}

impl PostgresUserStore {
    /// Connects (at once: a server that does not answer within [`ACQUIRE_TIMEOUT`] is
    /// `Unavailable`), creates the URL's schema if missing, and applies the migrations.
    /// `max_connections` is the pool size (at least 1; [`DEFAULT_MAX_CONNECTIONS`] by default).
    pub async fn open(url: &PostgresUrl, max_connections: u32) -> Result<Self, StoreError> {
        let passwords = url_passwords(&url.url);
        let unavailable = |what: &str, e: &dyn fmt::Display| {
            StoreError::Unavailable(scrub(format!("{what}: {e}"), &passwords))
        };
        let migrator = Migrator::new(EmbeddedMigrations)
            .await
            .map_err(|e| unavailable("loading migrations", &e))?;
        let options = PgConnectOptions::from_str(&url.url)
            .map_err(|e| unavailable("postgres url is not valid", &e))?
            .options([("lock_timeout", LOCK_TIMEOUT)]);
        let (host, port) = (options.get_host().to_owned(), options.get_port());
        let mut pool = PgPoolOptions::new()
            .max_connections(max_connections.max(1))
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .test_before_acquire(true);
        if let Some(schema) = &url.schema {
            // Every connection, including those the pool opens after a reconnect, resolves
            // unqualified names in the store's schema only. The name was checked by `parse`.
            let set_path = format!("SET search_path TO \"{schema}\"");
            pool = pool.after_connect(move |conn, _meta| {
                let set_path = set_path.clone();
                Box::pin(async move {
                    conn.execute(set_path.as_str()).await?;
                    Ok(())
                })
            });
        }
        let pool = pool.connect_with(options).await.map_err(|e| match e {
            sqlx::Error::PoolTimedOut => StoreError::Unavailable(format!(
                "connecting to postgres: no connection within {} s (server down, refusing \
                 connections, or too slow)",
                ACQUIRE_TIMEOUT.as_secs()
            )),
            e => unavailable("connecting to postgres", &e),
        })?;
        if let Some(schema) = &url.schema {
            if let Err(e) = create_schema(&pool, schema).await {
                pool.close().await;
                return Err(unavailable("creating the schema", &e));
            }
        }
        if let Err(e) = migrator.run(&pool).await {
            pool.close().await;
            return Err(unavailable("applying migrations", &e));
        }
        let schema = url.schema.as_deref().unwrap_or("(default)");
        info!(%host, port, schema, "user store opened");
        Ok(Self { pool })
    }

    /// Closes the pool, waiting for in-flight operations.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// Creates `schema` unless it exists. Checked first, because `CREATE SCHEMA IF NOT EXISTS`
/// needs the CREATE privilege on the database even when the schema is already there.
async fn create_schema(pool: &PgPool, schema: &str) -> Result<(), sqlx::Error> {
    let exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)")
            .bind(schema)
            .fetch_one(pool)
            .await?;
    if exists {
        return Ok(());
    }
    match pool
        .execute(format!("CREATE SCHEMA IF NOT EXISTS \"{schema}\"").as_str())
        .await
    {
        // Another replica created it between the check and here.
        Err(sqlx::Error::Database(db)) if db.is_unique_violation() => Ok(()),
        other => other.map(|_| ()),
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
        // Connection, I/O, TLS, pool timeout, lock timeout, ...: the caller fails closed.
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

fn user_from_row(row: &PgRow) -> Result<User, StoreError> {
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

fn totp_from_row(row: &PgRow) -> Result<TotpFactor, StoreError> {
    Ok(TotpFactor {
        principal: row.try_get("principal").map_err(store_error)?,
        sealed_seed: row.try_get("sealed_seed").map_err(store_error)?,
        confirmed: row.try_get("confirmed").map_err(store_error)?,
        last_step: row.try_get("last_step").map_err(store_error)?,
        created_at: row.try_get("created_at").map_err(store_error)?,
    })
}

fn device_from_row(row: &PgRow) -> Result<RememberedDevice, StoreError> {
    Ok(RememberedDevice {
        id: row.try_get("id").map_err(store_error)?,
        principal: row.try_get("principal").map_err(store_error)?,
        token_hash: row.try_get("token_hash").map_err(store_error)?,
        created_at: row.try_get("created_at").map_err(store_error)?,
        expires_at: row.try_get("expires_at").map_err(store_error)?,
        user_agent: row.try_get("user_agent").map_err(store_error)?,
    })
}

fn audit_from_row(row: &PgRow) -> Result<AuditRecord, StoreError> {
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

/// Serialises this transaction with every other one that took the same principal's lock,
/// until commit or rollback.
async fn lock_principal(
    tx: &mut sqlx::Transaction<'_, Postgres>,
    principal: &str,
) -> Result<(), StoreError> {
    sqlx::query("SELECT pg_advisory_xact_lock($1, hashtext($2))")
        .bind(PRINCIPAL_LOCK_CLASS)
        .bind(principal)
        .execute(&mut **tx)
        .await
        .map_err(store_error)?;
    Ok(())
}

// The SQL is sqlite.rs's, statement for statement; only the per-principal locks are added.
impl UserStore for PostgresUserStore {
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
        // users.username is COLLATE "C": byte order, as in SQLite, whatever the database locale.
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
        // DESIGN.md §6: TOTP codes are single-use per time step. One conditional UPDATE: a
        // concurrent caller blocks on the row lock, then re-evaluates the WHERE against the
        // winner's committed row (READ COMMITTED), so exactly one sees a matching row.
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
        // Ordered with replace_recovery_codes, whose new rows a DELETE here could not see.
        lock_principal(&mut tx, principal).await?;
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
        // Two concurrent replacements must not both survive: the second waits here, then its
        // DELETE sees the first one's committed codes.
        lock_principal(&mut tx, principal).await?;
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
        // check (one winner, as in advance_totp_step); the lookup is by hash of a high-entropy
        // code, so its timing reveals nothing.
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
        let mut sql = QueryBuilder::<Postgres>::new(
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
    use std::net::SocketAddr;
    use std::path::Path;
    use std::time::Instant;

    use futures_util::future::join_all;
    use sqlx::Connection;
    use tokio::io::copy_bidirectional;
    use tokio::net::{TcpListener, TcpStream};
    use tokio::sync::oneshot;
    use tokio::task::{JoinHandle, JoinSet};

    use super::*;
    use crate::storage::{conformance, AnyUserStore};

    /// The test server (CI: `postgres://postgres@127.0.0.1:5432/test`), or `None` with a note.
    fn database_url() -> Option<String> {
        match std::env::var("DATABASE_URL") {
            Ok(url) if !url.is_empty() => Some(url),
            _ => {
                println!("skipped: DATABASE_URL not set");
                None
            }
        }
    }

    fn with_param(url: &str, param: &str) -> String {
        let sep = if url.contains('?') { '&' } else { '?' };
        format!("{url}{sep}{param}")
    }

    /// `url` with its host and port replaced by `addr`.
    fn with_addr(url: &str, addr: SocketAddr) -> String {
        let (scheme, rest) = url.split_once("://").unwrap();
        let end = rest.find(['/', '?']).unwrap_or(rest.len());
        let (authority, tail) = rest.split_at(end);
        let userinfo = authority
            .rsplit_once('@')
            .map(|(u, _)| format!("{u}@"))
            .unwrap_or_default();
        format!("{scheme}://{userinfo}{addr}{tail}")
    }

    /// A schema of the test's own on the test server, dropped with everything in it on drop
    /// (also when the test fails).
    struct Scratch {
        database_url: String,
        schema: String,
    }

    impl Scratch {
        fn new() -> Option<Self> {
            let database_url = database_url()?;
            let mut bytes = [0_u8; 8];
            ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes).unwrap();
            let suffix: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
            Some(Self {
                database_url,
                schema: format!("pc_test_{suffix}"),
            })
        }

        fn url_via(&self, server: &str) -> PostgresUrl {
            PostgresUrl::parse(&with_param(server, &format!("schema={}", self.schema))).unwrap()
        }

        async fn open(&self) -> PostgresUserStore {
            PostgresUserStore::open(&self.url_via(&self.database_url), DEFAULT_MAX_CONNECTIONS)
                .await
                .unwrap()
        }
    }

    impl Drop for Scratch {
        fn drop(&mut self) {
            // Its own thread and runtime: drop cannot await, and may run while unwinding.
            let (url, schema) = (self.database_url.clone(), self.schema.clone());
            let dropped = std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .map_err(|e| e.to_string())?;
                rt.block_on(async {
                    let mut conn = sqlx::PgConnection::connect(&url).await?;
                    conn.execute(format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE").as_str())
                        .await?;
                    conn.close().await
                })
                .map_err(|e| e.to_string())
            })
            .join();
            if !matches!(dropped, Ok(Ok(()))) {
                eprintln!("could not drop test schema {}: {dropped:?}", self.schema);
            }
        }
    }

    macro_rules! conformance_tests {
        ($($check:ident),* $(,)?) => {$(
            #[tokio::test]
            async fn $check() {
                let Some(db) = Scratch::new() else { return };
                let store = db.open().await;
                conformance::$check(&store).await;
                store.close().await;
            }
        )*};
    }

    conformance_tests!(
        users_are_created_read_listed_and_disabled,
        users_are_listed_in_byte_order,
        creating_an_existing_user_is_a_conflict,
        totp_code_is_rejected_when_its_step_is_the_same_or_older,
        concurrent_totp_step_advances_with_the_same_step_have_exactly_one_winner,
        recovery_code_works_once_and_not_after_expiry_or_replacement,
        concurrent_uses_of_one_recovery_code_have_exactly_one_winner,
        concurrent_recovery_code_replacements_leave_exactly_one_set,
        second_factor_presence_counts_confirmed_totp_and_usable_codes,
        concurrent_enrollments_have_exactly_one_winner_and_never_replace_a_confirmed_factor,
        invites_are_single_use_expire_and_are_replaced_by_the_next,
        remembered_devices_are_valid_until_expiry_or_revocation,
        audit_queries_filter_and_paginate_by_id,
        audit_limit_is_capped_at_max_page,
    );

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_totp_step_advances_across_tasks_and_pools_have_exactly_one_winner() {
        let Some(db) = Scratch::new() else { return };
        // Two independent pools on one schema, as two replicas would be.
        let (store, other) = (db.open().await, db.open().await);
        let p = "native:ann";
        store.put_totp(p, b"sealed", true, 0).await.unwrap();
        for step in 1..=20_i64 {
            let racers: Vec<_> = (0..8)
                .map(|i| {
                    let store = if i % 2 == 0 { &store } else { &other }.clone();
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
        store.close().await;
        other.close().await;
    }

    #[tokio::test]
    async fn corrupt_rows_are_reported_not_panicked_on() {
        let Some(db) = Scratch::new() else { return };
        let store = db.open().await;
        sqlx::query(
            "INSERT INTO users (username, roles, disabled, created_at) \
             VALUES ('bad', 'admin,agent', FALSE, 1)",
        )
        .execute(&store.pool)
        .await
        .unwrap();
        let got = store.get_user("bad").await;
        assert!(matches!(got, Err(StoreError::Corrupt(_))), "{got:?}");
        let got = store.list_users(None, 10).await;
        assert!(matches!(got, Err(StoreError::Corrupt(_))), "{got:?}");
        store.close().await;

        // Schema drift: a column no longer of the type the store reads. A new pool, so no
        // statement prepared against the old column type is cached.
        let admin = db.open().await;
        sqlx::query("ALTER TABLE users ALTER COLUMN created_at TYPE TEXT")
            .execute(&admin.pool)
            .await
            .unwrap();
        admin.close().await;
        let store = db.open().await;
        let got = store.get_user("bad").await;
        assert!(matches!(got, Err(StoreError::Corrupt(_))), "{got:?}");
        store.close().await;
    }

    #[tokio::test]
    async fn reopening_the_same_schema_keeps_data_and_applies_migrations_once() {
        let Some(db) = Scratch::new() else { return };
        let store = db.open().await;
        store
            .create_user(&conformance::new_user("ann"), 1)
            .await
            .unwrap();
        store.close().await;

        for _ in 0..2 {
            let store = db.open().await;
            assert_eq!(store.get_user("ann").await.unwrap().unwrap().created_at, 1);
            let applied: Vec<i64> =
                sqlx::query_scalar("SELECT version FROM _sqlx_migrations ORDER BY version")
                    .fetch_all(&store.pool)
                    .await
                    .unwrap();
            assert_eq!(applied, [1, 2]);
            let current: String = sqlx::query_scalar("SELECT current_schema()")
                .fetch_one(&store.pool)
                .await
                .unwrap();
            assert_eq!(current, db.schema);
            let lock_timeout: String = sqlx::query_scalar("SHOW lock_timeout")
                .fetch_one(&store.pool)
                .await
                .unwrap();
            assert_eq!(lock_timeout, LOCK_TIMEOUT);
            let tables: Vec<String> = sqlx::query_scalar(
                "SELECT table_name::text FROM information_schema.tables \
                 WHERE table_schema = $1 ORDER BY 1",
            )
            .bind(&db.schema)
            .fetch_all(&store.pool)
            .await
            .unwrap();
            assert_eq!(
                tables,
                [
                    "_sqlx_migrations",
                    "audit_log",
                    "enrollment_invites",
                    "recovery_codes",
                    "remembered_devices",
                    "totp_factors",
                    "users"
                ]
            );
            let collation: Option<String> = sqlx::query_scalar(
                "SELECT collation_name::text FROM information_schema.columns \
                 WHERE table_schema = $1 AND table_name = 'users' AND column_name = 'username'",
            )
            .bind(&db.schema)
            .fetch_one(&store.pool)
            .await
            .unwrap();
            assert_eq!(collation.as_deref(), Some("C"));
            store.close().await;
        }
    }

    #[tokio::test]
    async fn replicas_opening_a_new_schema_at_once_both_succeed() {
        let Some(db) = Scratch::new() else { return };
        let url = db.url_via(&db.database_url);
        let opened = join_all((0..3).map(|_| PostgresUserStore::open(&url, 2))).await;
        let stores: Vec<PostgresUserStore> = opened.into_iter().map(Result::unwrap).collect();
        stores[0]
            .create_user(&conformance::new_user("ann"), 1)
            .await
            .unwrap();
        assert!(stores[2].get_user("ann").await.unwrap().is_some());
        for store in &stores {
            store.close().await;
        }
    }

    #[tokio::test]
    async fn any_store_opens_postgres_urls_and_schemas_keep_stores_apart() {
        let (Some(a), Some(b)) = (Scratch::new(), Scratch::new()) else {
            return;
        };
        let alias = b.database_url.replacen("postgres://", "postgresql://", 1);
        let open = |server: &str, schema: &str| {
            let url = with_param(server, &format!("schema={schema}"));
            async move { AnyUserStore::open(&url, Path::new(".")).await.unwrap() }
        };
        let store_a = open(&a.database_url, &a.schema).await;
        let store_b = open(&alias, &b.schema).await;
        assert!(matches!(store_a, AnyUserStore::Postgres(_)), "{store_a:?}");
        assert!(matches!(store_b, AnyUserStore::Postgres(_)), "{store_b:?}");
        store_a.ping().await.unwrap();
        store_a
            .create_user(&conformance::new_user("ann"), 1)
            .await
            .unwrap();
        assert_eq!(store_b.get_user("ann").await.unwrap(), None);
        store_b
            .create_user(&conformance::new_user("ann"), 2)
            .await
            .unwrap();
        assert_eq!(
            store_a.get_user("ann").await.unwrap().unwrap().created_at,
            1
        );
        store_a.close().await;
        store_b.close().await;
    }

    /// A TCP forwarder to the test server that can be taken down (listener closed, forwarded
    /// connections cut) and brought back on the same port: an outage as the pool sees it.
    struct FlakyServer {
        addr: SocketAddr,
        target: String,
        running: Option<(oneshot::Sender<()>, JoinHandle<()>)>,
    }

    impl FlakyServer {
        async fn start(target: String) -> Self {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let mut server = Self {
                addr: listener.local_addr().unwrap(),
                target,
                running: None,
            };
            server.serve(listener);
            server
        }

        fn serve(&mut self, listener: TcpListener) {
            let (stop, mut stopped) = oneshot::channel();
            let target = self.target.clone();
            let task = tokio::spawn(async move {
                let mut conns = JoinSet::new();
                loop {
                    tokio::select! {
                        _ = &mut stopped => break,
                        accepted = listener.accept() => {
                            let Ok((mut inbound, _)) = accepted else { continue };
                            let target = target.clone();
                            conns.spawn(async move {
                                if let Ok(mut outbound) = TcpStream::connect(&target).await {
                                    let _ = copy_bidirectional(&mut inbound, &mut outbound).await;
                                }
                            });
                        }
                    }
                }
                conns.shutdown().await;
            });
            self.running = Some((stop, task));
        }

        async fn down(&mut self) {
            if let Some((stop, task)) = self.running.take() {
                let _ = stop.send(());
                task.await.unwrap();
            }
        }

        async fn up(&mut self) {
            let listener = TcpListener::bind(self.addr).await.unwrap();
            self.serve(listener);
        }
    }

    #[tokio::test]
    async fn requests_fail_closed_while_the_server_is_down_and_work_again_when_it_is_back() {
        let Some(db) = Scratch::new() else { return };
        let options = PgConnectOptions::from_str(&db.database_url).unwrap();
        if options.get_host().starts_with('/') {
            println!("skipped: DATABASE_URL names a unix socket");
            return;
        }
        let target = format!("{}:{}", options.get_host(), options.get_port());
        let mut server = FlakyServer::start(target).await;
        let url = db.url_via(&with_addr(&db.database_url, server.addr));
        let store = PostgresUserStore::open(&url, 2).await.unwrap();
        store
            .create_user(&conformance::new_user("ann"), 1)
            .await
            .unwrap();

        server.down().await;
        let started = Instant::now();
        let got = store.get_user("ann").await;
        assert!(matches!(got, Err(StoreError::Unavailable(_))), "{got:?}");
        assert!(started.elapsed() < Duration::from_secs(10));
        let got = store.advance_totp_step("native:ann", 1).await;
        assert!(matches!(got, Err(StoreError::Unavailable(_))), "{got:?}");

        // Back: new connections, with the schema's search_path again.
        server.up().await;
        assert!(store.get_user("ann").await.unwrap().is_some());

        // A request made during an outage shorter than the acquire timeout waits it out.
        server.down().await;
        let pending = tokio::spawn({
            let store = store.clone();
            async move { store.get_user("ann").await }
        });
        tokio::time::sleep(Duration::from_millis(1_500)).await;
        server.up().await;
        assert!(pending.await.unwrap().unwrap().is_some());
        store.close().await;
        server.down().await;
    }

    #[tokio::test]
    async fn an_unreachable_server_is_unavailable_at_open_quickly_without_echoing_the_password() {
        let urls = [
            "postgres://u:secretpw@127.0.0.1:1/x",
            "postgresql://u:secretpw@127.0.0.1:1/x?sslmode=disable&schema=pc_x",
            "postgres://u@127.0.0.1:1/x?password=secretpw",
            "postgres://u:secretpw@127.0.0.1:notaport/x",
        ];
        let started = Instant::now();
        let results = join_all(urls.map(|url| AnyUserStore::open(url, Path::new(".")))).await;
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{:?}",
            started.elapsed()
        );
        for (url, result) in urls.iter().zip(results) {
            match result {
                Err(StoreError::Unavailable(msg)) => {
                    assert!(!msg.contains("secretpw"), "{url}: {msg}");
                    assert!(!msg.contains("127.0.0.1:1/x"), "{url}: {msg}");
                }
                other => panic!("{url}: {other:?}"),
            }
        }
    }

    #[test]
    fn the_schema_parameter_is_taken_out_of_the_url() {
        let url = PostgresUrl::parse(
            "postgres://u:p@db:5432/app?sslmode=require&schema=tenant_1&application_name=pc",
        )
        .unwrap();
        assert_eq!(
            url.url,
            "postgres://u:p@db:5432/app?sslmode=require&application_name=pc"
        );
        assert_eq!(url.schema(), Some("tenant_1"));

        let url = PostgresUrl::parse("postgresql://db/app?schema=_x9").unwrap();
        assert_eq!(
            url,
            PostgresUrl {
                url: "postgresql://db/app".into(),
                schema: Some("_x9".into())
            }
        );
        for plain in ["postgres://db/app", "postgres://db/app?sslmode=disable"] {
            assert_eq!(
                PostgresUrl::parse(plain).unwrap(),
                PostgresUrl {
                    url: plain.into(),
                    schema: None
                }
            );
        }
        let longest = "a".repeat(63);
        let url = PostgresUrl::parse(&format!("postgres://db/app?schema={longest}")).unwrap();
        assert_eq!(url.schema(), Some(longest.as_str()));
    }

    #[test]
    fn bad_schema_names_are_refused_without_echoing_the_url() {
        let too_long = "a".repeat(64);
        for query in [
            "schema=",
            "schema",
            "schema=Tenant",
            "schema=1abc",
            "schema=a-b",
            "schema=a;drop",
            "schema=%22x%22",
            "schema=\"x\"",
            "schema=pg_catalog",
            "schema=a&schema=b",
            &format!("schema={too_long}"),
        ] {
            let url = format!("postgres://admin:hunter2@db.internal/p?{query}");
            match PostgresUrl::parse(&url) {
                Err(StoreError::Unavailable(msg)) => {
                    assert!(!msg.contains("hunter2"), "{query}: {msg}");
                    assert!(!msg.contains("db.internal"), "{query}: {msg}");
                }
                other => panic!("{query}: {other:?}"),
            }
        }
        assert!(PostgresUrl::parse("mysql://admin:hunter2@db/p").is_err());
    }

    #[test]
    fn debug_output_hides_the_url() {
        let url = PostgresUrl::parse("postgres://admin:hunter2@db.internal/p?schema=s1").unwrap();
        let printed = format!("{url:?}");
        assert!(!printed.contains("hunter2"), "{printed}");
        assert!(!printed.contains("db.internal"), "{printed}");
        assert!(printed.contains("s1"), "{printed}");
    }

    #[test]
    fn passwords_are_found_in_user_info_and_parameters_and_scrubbed() {
        let found = url_passwords("postgres://u:p%40ss@h/d?sslmode=disable&password=q2");
        for p in ["p%40ss", "p@ss", "q2"] {
            assert!(found.iter().any(|f| f == p), "{p} in {found:?}");
        }
        assert!(url_passwords("postgres://u@h/d").is_empty());
        assert_eq!(
            scrub("auth failed for p@ss and q2".into(), &found),
            "auth failed for <redacted> and <redacted>"
        );
    }
}
