//! Known devices (DESIGN.md §12): which browsers a principal has signed in from, by a hash of
//! the device cookie's id. Invariant: "is this device new?" is one conditional insert, so two
//! concurrent sign-ins from one new browser send one notice, not two.

use sqlx::{Database, Encode, Executor, IntoArguments, Type};

use super::any::AnyUserStore;
use super::dialect::Dialect;
use super::error::{store_error, StoreError};
use super::sql::SqlUserStore;

impl<DB> SqlUserStore<DB>
where
    DB: Dialect + Database,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB>,
    for<'q> i64: Encode<'q, DB> + Type<DB>,
{
    /// Records `device_hash` as known for `principal`; `true` only for the call that added it
    /// (the device was new), `false` when it was known (its `last_seen` moves to `now`).
    pub async fn note_known_device(
        &self,
        principal: &str,
        device_hash: &str,
        now: i64,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "INSERT INTO known_devices (principal, device_hash, first_seen, last_seen) \
             VALUES ($1, $2, $3, $3) ON CONFLICT (principal, device_hash) DO NOTHING",
        )
        .bind(principal)
        .bind(device_hash)
        .bind(now)
        .execute(&self.pool)
        .await
        .map_err(store_error)?;
        if DB::rows_affected(&done) == 1 {
            return Ok(true);
        }
        sqlx::query(
            "UPDATE known_devices SET last_seen = $3 WHERE principal = $1 AND device_hash = $2",
        )
        .bind(principal)
        .bind(device_hash)
        .bind(now)
        .execute(&self.pool)
        .await
        .map_err(store_error)?;
        Ok(false)
    }

    /// Forgets every known device of `principal` (a "this was not me" report): the next
    /// sign-in from any browser is new again. Returns how many there were.
    pub async fn forget_known_devices(&self, principal: &str) -> Result<u64, StoreError> {
        let done = sqlx::query("DELETE FROM known_devices WHERE principal = $1")
            .bind(principal)
            .execute(&self.pool)
            .await
            .map_err(store_error)?;
        Ok(DB::rows_affected(&done))
    }
}

impl AnyUserStore {
    /// See [`SqlUserStore::note_known_device`].
    pub async fn note_known_device(
        &self,
        principal: &str,
        device_hash: &str,
        now: i64,
    ) -> Result<bool, StoreError> {
        match self {
            Self::Sqlite(s) => s.note_known_device(principal, device_hash, now).await,
            Self::Postgres(s) => s.note_known_device(principal, device_hash, now).await,
        }
    }

    /// See [`SqlUserStore::forget_known_devices`].
    pub async fn forget_known_devices(&self, principal: &str) -> Result<u64, StoreError> {
        match self {
            Self::Sqlite(s) => s.forget_known_devices(principal).await,
            Self::Postgres(s) => s.forget_known_devices(principal).await,
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_device_is_new_once_per_principal_until_forgotten() {
        let s = AnyUserStore::open("sqlite::memory:", std::path::Path::new("."))
            .await
            .unwrap();
        assert!(s.note_known_device("native:ann", "d1", 1).await.unwrap());
        assert!(!s.note_known_device("native:ann", "d1", 2).await.unwrap());
        assert!(s.note_known_device("native:bob", "d1", 2).await.unwrap());
        assert_eq!(s.forget_known_devices("native:ann").await.unwrap(), 1);
        assert!(s.note_known_device("native:ann", "d1", 3).await.unwrap());
    }
}
