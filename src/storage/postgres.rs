//! `PostgresUserStore`: the user store for several replicas, on a PostgreSQL connection pool,
//! with its migrations compiled into the binary and applied at open. The statements are the
//! shared ones of `sql.rs`; here are only the URL, opening (pool, `lock_timeout`, schema), the
//! migration list and PostgreSQL's side of the [`Dialect`] (the per-principal advisory lock).
//!
//! * URL: `postgres://` or `postgresql://`, TLS per `sslmode` (handled by sqlx), plus one
//!   portcullis parameter, `schema=NAME`, stripped before connecting: the store then lives in
//!   schema `NAME` (created if missing) through `search_path` on every pooled connection.
//! * Open connects at once and fails with `Unavailable` if the server does not answer within
//!   [`ACQUIRE_TIMEOUT`]; afterwards the pool drops dead connections (tested before use) and
//!   reconnects by itself, so requests work again when the server comes back.
//! * Set replacements (`replace_recovery_codes`, `delete_factors`) take a per-principal
//!   advisory lock, because row locks cannot order two transactions that find no rows: without
//!   it two concurrent replacements would both insert, leaving the union of both sets.
//!
//! Differences from SQLite that callers may notice: PostgreSQL `TEXT` cannot hold NUL
//! characters (such a value is an `Unavailable` error); audit ids are allocated at insert, not at
//! commit, so with concurrent appends an id may become visible after a larger one.
//! Error texts never contain the URL or its password.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use crate::config::StoreTls;
use percent_encoding::percent_decode_str;
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions, PgQueryResult};
use sqlx::{Executor, Postgres, Transaction};
use tracing::info;

use super::dialect::{Dialect, EmbeddedMigrations, MigrationList};
use super::error::StoreError;
use super::sql::SqlUserStore;

/// Pool size used by `AnyUserStore::open`.
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

/// The migrations, in order, twins of `sqlite.rs`'s (see [`EmbeddedMigrations`]); sqlx keeps
/// its record of them in the store's schema.
const MIGRATIONS: MigrationList = &[
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
    (
        3,
        "known devices",
        include_str!("../../migrations/postgres/0003_known_devices.sql"),
    ),
    (
        4,
        "webauthn credentials",
        include_str!("../../migrations/postgres/0004_webauthn_credentials.sql"),
    ),
];

/// The PostgreSQL user store. Cheap to clone (a pool handle).
pub type PostgresUserStore = SqlUserStore<Postgres>;

impl Dialect for Postgres {
    fn rows_affected(done: &PgQueryResult) -> u64 {
        done.rows_affected()
    }

    async fn lock_principal(
        tx: &mut Transaction<'_, Postgres>,
        principal: &str,
    ) -> Result<(), sqlx::Error> {
        sqlx::query("SELECT pg_advisory_xact_lock($1, hashtext($2))")
            .bind(PRINCIPAL_LOCK_CLASS)
            .bind(principal)
            .execute(&mut **tx)
            .await?;
        Ok(())
    }
}

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

impl SqlUserStore<Postgres> {
    /// Connects (at once: a server that does not answer within [`ACQUIRE_TIMEOUT`] is
    /// `Unavailable`), creates the URL's schema if missing, and applies the migrations.
    /// `max_connections` is the pool size (at least 1; [`DEFAULT_MAX_CONNECTIONS`] by default).
    pub async fn open(url: &PostgresUrl, max_connections: u32) -> Result<Self, StoreError> {
        Self::open_tls(url, None, max_connections).await
    }

    /// As [`open`](Self::open), trusting only `tls`'s CA (instead of the web PKI roots) and
    /// presenting its client certificate. With `tls` and no `sslmode` in the URL, the mode is
    /// `verify-full`: a configured CA means the server is to be verified.
    pub async fn open_tls(
        url: &PostgresUrl,
        tls: Option<&StoreTls>,
        max_connections: u32,
    ) -> Result<Self, StoreError> {
        let passwords = url_passwords(&url.url);
        let unavailable = |what: &str, e: &dyn fmt::Display| {
            StoreError::Unavailable(scrub(format!("{what}: {e}"), &passwords))
        };
        let migrator = Migrator::new(EmbeddedMigrations(MIGRATIONS))
            .await
            .map_err(|e| unavailable("loading migrations", &e))?;
        let options = PgConnectOptions::from_str(&url.url)
            .map_err(|e| unavailable("postgres url is not valid", &e))?
            .options([("lock_timeout", LOCK_TIMEOUT)]);
        let options = match tls {
            None => options,
            Some(t) => {
                let mut o = options;
                let has_mode = url.url.split_once('?').is_some_and(|(_, q)| {
                    q.split('&')
                        .any(|p| p.starts_with("sslmode=") || p.starts_with("ssl-mode="))
                });
                if !has_mode {
                    o = o.ssl_mode(sqlx::postgres::PgSslMode::VerifyFull);
                }
                if let Some(ca) = &t.ca_pem {
                    o = o.ssl_root_cert_from_pem(ca.clone());
                }
                if let Some((cert, key)) = &t.client {
                    o = o
                        .ssl_client_cert_from_pem(cert)
                        .ssl_client_key_from_pem(key.as_slice());
                }
                o
            }
        };
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
        Ok(Self::from_pool(pool))
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

#[cfg(test)]
mod tests;
