//! The seam between the shared store (`sql.rs`) and its two databases: the [`Dialect`] trait,
//! implemented for `sqlx::Sqlite` in `sqlite.rs` and `sqlx::Postgres` in `postgres.rs`, and the
//! embedded-migration source both feed their own migration list to.
//!
//! Everything else that differs stays in the dialect's file and never reaches the shared
//! statements: connection and pool options, files and permissions (SQLite), URL, schema and
//! `search_path`, `lock_timeout` (PostgreSQL). Binds need no dialect hook: sqlx encodes `&[u8]`
//! as SQLite `BLOB` and PostgreSQL `BYTEA` alike, and classifies errors alike (`error.rs`).

use std::borrow::Cow;
use std::future::Future;
use std::pin::Pin;

use sqlx::error::BoxDynError;
use sqlx::migrate::{Migration, MigrationSource, MigrationType};
use sqlx::{Database, Transaction};

/// What SQLite and PostgreSQL do differently inside the shared store. Implemented for
/// `sqlx::Sqlite` (in `sqlite.rs`) and `sqlx::Postgres` (in `postgres.rs`).
pub trait Dialect: Database {
    /// How many rows an `INSERT`, `UPDATE` or `DELETE` changed.
    fn rows_affected(done: &Self::QueryResult) -> u64;

    /// Serialises this transaction with every other one that locked the same principal, until
    /// commit or rollback. Set replacements (`replace_recovery_codes`, `delete_factors`) take
    /// it first, because row locks cannot order two transactions that find no rows.
    fn lock_principal(
        tx: &mut Transaction<'_, Self>,
        principal: &str,
    ) -> impl Future<Output = Result<(), sqlx::Error>> + Send;
}

/// A migration list: `(version, description, sql)`, in order.
pub(crate) type MigrationList = &'static [(i64, &'static str, &'static str)];

/// A dialect's embedded migrations, as a sqlx migration source. Each is applied once, in a
/// transaction; sqlx records it in `_sqlx_migrations` with a checksum of its SQL, so an edited,
/// already-applied migration is refused. Never edit a released migration: add the next one
/// (in both dialects).
#[derive(Debug)]
pub(crate) struct EmbeddedMigrations(pub(crate) MigrationList);

impl MigrationSource<'static> for EmbeddedMigrations {
    fn resolve(
        self,
    ) -> Pin<Box<dyn Future<Output = Result<Vec<Migration>, BoxDynError>> + Send + 'static>> {
        Box::pin(async move {
            Ok(self
                .0
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
