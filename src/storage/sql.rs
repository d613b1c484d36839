//! `SqlUserStore<DB>`: the one `UserStore` implementation, written once over sqlx and shared by
//! SQLite (`sqlite.rs`) and PostgreSQL (`postgres.rs`). Not here: opening a pool, URLs, files,
//! schemas and the migration lists; each dialect file has those.
//!
//! The SQL is portable to both (`$n` placeholders, `ON CONFLICT`, `RETURNING`, `TRUE`/`FALSE`,
//! Unix-second integers, roles as a JSON text list); the schema lives in `migrations/sqlite/`
//! and, in step, `migrations/postgres/`. What the dialects do differently is the [`Dialect`]
//! trait (`dialect.rs`).
//!
//! Why a generic type and not a macro: the statements are type-checked and formatted once, as
//! ordinary code; the cost is the list of sqlx bounds on the impls below, which only restates
//! what both drivers provide.
//!
//! Single-use checks (TOTP step, recovery code, invitation, enrollment) are each one
//! conditional statement whose affected-row count says who won (DESIGN.md §6):
//! * SQLite serialises writers, so they hold across connections and processes sharing a file.
//!   Transactions here always begin with a write, so SQLite takes the write lock first and a
//!   concurrent writer waits (busy timeout) instead of failing a read-to-write upgrade.
//! * PostgreSQL, under READ COMMITTED: a concurrent `UPDATE` of the same row waits for the first
//!   to commit and re-checks its `WHERE` on the new row, so exactly one caller wins.

use std::fmt;

use sqlx::{ColumnIndex, Database, Decode, Encode, Executor, IntoArguments, Pool, Row, Type};

use super::dialect::Dialect;
use super::error::{store_error, StoreError};
use super::filtered::{Filtered, Param};
use super::model::{
    AuditEvent, AuditQuery, AuditRecord, EnrollmentInvite, NewUser, RememberedDevice, TotpFactor,
    User, MAX_PAGE,
};
use super::user_store::UserStore;

const USER_COLUMNS: &str = "username, email, roles, password_hash, disabled, created_at";
const DEVICE_COLUMNS: &str = "id, principal, token_hash, created_at, expires_at, user_agent";

/// The user store on a sqlx pool of database `DB`; `SqliteUserStore` and `PostgresUserStore`
/// name its two instances. Cheap to clone (a pool handle).
pub struct SqlUserStore<DB: Database> {
    pub(crate) pool: Pool<DB>,
}

impl<DB: Database> SqlUserStore<DB> {
    /// Wraps a pool whose database is migrated.
    pub(crate) fn from_pool(pool: Pool<DB>) -> Self {
        Self { pool }
    }

    /// Closes the pool, waiting for in-flight operations (SQLite: and checkpointing the WAL).
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

// Written out: a derive would demand `DB: Clone`.
impl<DB: Database> Clone for SqlUserStore<DB> {
    fn clone(&self) -> Self {
        Self {
            pool: self.pool.clone(),
        }
    }
}

impl<DB: Database> fmt::Debug for SqlUserStore<DB> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqlUserStore")
            .field("database", &DB::NAME)
            .field("pool", &self.pool)
            .finish()
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

// The decoders: a missing column or a value of another type is `Corrupt`, never a panic.
impl<DB> SqlUserStore<DB>
where
    DB: Dialect,
    for<'n> &'n str: ColumnIndex<DB::Row>,
    for<'r> String: Decode<'r, DB> + Type<DB>,
    for<'r> Vec<u8>: Decode<'r, DB> + Type<DB>,
    for<'r> bool: Decode<'r, DB> + Type<DB>,
    for<'r> i64: Decode<'r, DB> + Type<DB>,
{
    fn user_from_row(row: &DB::Row) -> Result<User, StoreError> {
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

    fn totp_from_row(row: &DB::Row) -> Result<TotpFactor, StoreError> {
        Ok(TotpFactor {
            principal: row.try_get("principal").map_err(store_error)?,
            sealed_seed: row.try_get("sealed_seed").map_err(store_error)?,
            confirmed: row.try_get("confirmed").map_err(store_error)?,
            last_step: row.try_get("last_step").map_err(store_error)?,
            created_at: row.try_get("created_at").map_err(store_error)?,
        })
    }

    fn invite_from_row(row: &DB::Row) -> Result<EnrollmentInvite, StoreError> {
        Ok(EnrollmentInvite {
            token_hash: row.try_get("token_hash").map_err(store_error)?,
            username: row.try_get("username").map_err(store_error)?,
            created_at: row.try_get("created_at").map_err(store_error)?,
            expires_at: row.try_get("expires_at").map_err(store_error)?,
        })
    }

    fn device_from_row(row: &DB::Row) -> Result<RememberedDevice, StoreError> {
        Ok(RememberedDevice {
            id: row.try_get("id").map_err(store_error)?,
            principal: row.try_get("principal").map_err(store_error)?,
            token_hash: row.try_get("token_hash").map_err(store_error)?,
            created_at: row.try_get("created_at").map_err(store_error)?,
            expires_at: row.try_get("expires_at").map_err(store_error)?,
            user_agent: row.try_get("user_agent").map_err(store_error)?,
        })
    }

    fn audit_from_row(row: &DB::Row) -> Result<AuditRecord, StoreError> {
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
}

// The bounds say what both drivers provide: executors, argument lists, and the Rust types the
// columns are bound from and decoded into.
impl<DB> UserStore for SqlUserStore<DB>
where
    DB: Dialect,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
    for<'n> &'n str: ColumnIndex<DB::Row>,
    usize: ColumnIndex<DB::Row>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB>,
    for<'q> &'q [u8]: Encode<'q, DB> + Type<DB>,
    for<'q, 'r> String: Encode<'q, DB> + Decode<'r, DB> + Type<DB>,
    for<'r> Vec<u8>: Decode<'r, DB> + Type<DB>,
    for<'q, 'r> bool: Encode<'q, DB> + Decode<'r, DB> + Type<DB>,
    for<'q, 'r> i64: Encode<'q, DB> + Decode<'r, DB> + Type<DB>,
    for<'q> Option<String>: Encode<'q, DB>,
    for<'q> Option<i64>: Encode<'q, DB>,
{
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
            .map(Self::user_from_row)
            .transpose()
    }

    async fn list_users(&self, after: Option<&str>, limit: u32) -> Result<Vec<User>, StoreError> {
        let limit = page_limit(limit);
        if limit == 0 {
            return Ok(Vec::new());
        }
        // Byte order on both: PostgreSQL's users.username is COLLATE "C", whatever the
        // database locale.
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
        rows.iter().map(Self::user_from_row).collect()
    }

    async fn set_disabled(&self, username: &str, disabled: bool) -> Result<bool, StoreError> {
        let done = sqlx::query("UPDATE users SET disabled = $1 WHERE username = $2")
            .bind(disabled)
            .bind(username)
            .execute(&self.pool)
            .await
            .map_err(store_error)?;
        Ok(DB::rows_affected(&done) == 1)
    }

    async fn set_password(&self, username: &str, password_hash: &str) -> Result<bool, StoreError> {
        let done = sqlx::query("UPDATE users SET password_hash = $1 WHERE username = $2")
            .bind(password_hash)
            .bind(username)
            .execute(&self.pool)
            .await
            .map_err(store_error)?;
        Ok(DB::rows_affected(&done) == 1)
    }

    async fn set_roles(&self, username: &str, roles: &[String]) -> Result<bool, StoreError> {
        let done = sqlx::query("UPDATE users SET roles = $1 WHERE username = $2")
            .bind(encode_roles(roles)?)
            .bind(username)
            .execute(&self.pool)
            .await
            .map_err(store_error)?;
        Ok(DB::rows_affected(&done) == 1)
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
        .map(Self::totp_from_row)
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
        Ok(DB::rows_affected(&done) == 1)
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
        row.as_ref().map(Self::invite_from_row).transpose()
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
        Ok(DB::rows_affected(&done) == 1)
    }

    async fn advance_totp_step(&self, principal: &str, step: i64) -> Result<bool, StoreError> {
        // DESIGN.md §6: TOTP codes are single-use per time step. One conditional UPDATE: of
        // concurrent callers with the same step, exactly one sees a matching row (PostgreSQL:
        // the others block on the row lock, then re-evaluate the WHERE against the winner's
        // committed row).
        let done = sqlx::query(
            "UPDATE totp_factors SET last_step = $1 \
             WHERE principal = $2 AND confirmed AND (last_step IS NULL OR last_step < $1)",
        )
        .bind(step)
        .bind(principal)
        .execute(&self.pool)
        .await
        .map_err(store_error)?;
        Ok(DB::rows_affected(&done) == 1)
    }

    async fn delete_factors(&self, principal: &str) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await.map_err(store_error)?;
        // Ordered with replace_recovery_codes, whose new rows a DELETE here could not see.
        DB::lock_principal(&mut tx, principal)
            .await
            .map_err(store_error)?;
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
        let keys = sqlx::query("DELETE FROM webauthn_credentials WHERE principal = $1")
            .bind(principal)
            .execute(&mut *tx)
            .await
            .map_err(store_error)?;
        tx.commit().await.map_err(store_error)?;
        Ok(DB::rows_affected(&totp) + DB::rows_affected(&codes) + DB::rows_affected(&keys) > 0)
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
        DB::lock_principal(&mut tx, principal)
            .await
            .map_err(store_error)?;
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
        if DB::rows_affected(&done) != 1 {
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
            .map(Self::device_from_row)
            .collect()
    }

    async fn delete_device(&self, principal: &str, id: &str) -> Result<bool, StoreError> {
        let done = sqlx::query("DELETE FROM remembered_devices WHERE principal = $1 AND id = $2")
            .bind(principal)
            .bind(id)
            .execute(&self.pool)
            .await
            .map_err(store_error)?;
        Ok(DB::rows_affected(&done) == 1)
    }

    async fn delete_devices(&self, principal: &str) -> Result<u64, StoreError> {
        let done = sqlx::query("DELETE FROM remembered_devices WHERE principal = $1")
            .bind(principal)
            .execute(&self.pool)
            .await
            .map_err(store_error)?;
        Ok(DB::rows_affected(&done))
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
        let mut sql = Filtered::new(
            "SELECT id, occurred_at, kind, username, method, outcome, reason, ip, session_id, \
             detail FROM audit_log WHERE 1 = 1",
        );
        if let Some(since) = query.since {
            sql.push(" AND occurred_at >= ", Param::Int(since));
        }
        if let Some(user) = &query.user {
            sql.push(" AND username = ", Param::Text(user));
        }
        if let Some(kind) = &query.kind {
            sql.push(" AND kind = ", Param::Text(kind));
        }
        // Newest first pages downwards from the cursor; oldest first upwards.
        let (after, order) = if query.newest_first {
            (" AND id < ", " ORDER BY id DESC LIMIT ")
        } else {
            (" AND id > ", " ORDER BY id LIMIT ")
        };
        if let Some(after_id) = query.after_id {
            sql.push(after, Param::Int(after_id));
        }
        sql.push(order, Param::Int(limit));
        let mut select = sqlx::query(&sql.text);
        for param in sql.params {
            select = match param {
                Param::Int(n) => select.bind(n),
                Param::Text(t) => select.bind(t),
            };
        }
        select
            .fetch_all(&self.pool)
            .await
            .map_err(store_error)?
            .iter()
            .map(Self::audit_from_row)
            .collect()
    }

    async fn has_second_factor(&self, principal: &str, now: i64) -> Result<bool, StoreError> {
        sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM totp_factors WHERE principal = $1 AND confirmed) \
             OR EXISTS (SELECT 1 FROM webauthn_credentials WHERE principal = $1) \
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
