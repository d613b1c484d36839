//! Passkeys (DESIGN.md §10): a principal's WebAuthn credentials, each named, dated and counted.
//! Invariants: a credential id exists once in the whole store (`Conflict` otherwise), and a
//! use is recorded only if its sign count moves forward (or the authenticator keeps none), in
//! the same statement, so two racing uses of one counter value cannot both be recorded.

use sqlx::{ColumnIndex, Database, Decode, Encode, Executor, IntoArguments, Row, Type};

use super::any::AnyUserStore;
use super::dialect::Dialect;
use super::error::{store_error, StoreError};
use super::sql::SqlUserStore;

/// One stored credential. `passkey` is the library's public-key record (JSON): no secret, but
/// never shown by the admin API either.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PasskeyRecord {
    /// The credential id, base64url without padding.
    pub credential_id: String,
    pub principal: String,
    /// The WebAuthn user handle (base64url), the same for all of a principal's credentials.
    pub user_handle: String,
    /// What the user called it ("Work laptop").
    pub name: String,
    pub passkey: String,
    pub sign_count: i64,
    pub created_at: i64,
    pub last_used_at: Option<i64>,
}

const COLUMNS: &str = "credential_id, principal, user_handle, name, passkey, sign_count, \
                       created_at, last_used_at";

/// A new credential's row (no use yet).
const INSERT: &str = "INSERT INTO webauthn_credentials (credential_id, principal, user_handle, \
                      name, passkey, sign_count, created_at, last_used_at) \
                      VALUES ($1, $2, $3, $4, $5, $6, $7, NULL)";

/// The most passkeys one principal may register: enough for every device a person owns, few
/// enough that an allow-list stays small.
pub const MAX_PASSKEYS: usize = 20;

impl<DB> SqlUserStore<DB>
where
    DB: Dialect + Database,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB>,
    for<'q> i64: Encode<'q, DB> + Type<DB>,
    for<'n> &'n str: ColumnIndex<DB::Row>,
    for<'r> String: Decode<'r, DB> + Type<DB>,
    for<'r> i64: Decode<'r, DB> + Type<DB>,
{
    fn passkey_from_row(row: &DB::Row) -> Result<PasskeyRecord, StoreError> {
        Ok(PasskeyRecord {
            credential_id: row.try_get("credential_id").map_err(store_error)?,
            principal: row.try_get("principal").map_err(store_error)?,
            user_handle: row.try_get("user_handle").map_err(store_error)?,
            name: row.try_get("name").map_err(store_error)?,
            passkey: row.try_get("passkey").map_err(store_error)?,
            sign_count: row.try_get("sign_count").map_err(store_error)?,
            created_at: row.try_get("created_at").map_err(store_error)?,
            last_used_at: row.try_get("last_used_at").map_err(store_error)?,
        })
    }

    /// Stores a new credential; `Conflict` if its id is in the store already (any principal).
    pub async fn add_passkey(&self, p: &PasskeyRecord) -> Result<(), StoreError> {
        sqlx::query(INSERT)
            .bind(p.credential_id.as_str())
            .bind(p.principal.as_str())
            .bind(p.user_handle.as_str())
            .bind(p.name.as_str())
            .bind(p.passkey.as_str())
            .bind(p.sign_count)
            .bind(p.created_at)
            .execute(&self.pool)
            .await
            .map_err(store_error)?;
        Ok(())
    }

    /// Stores a principal's first factor at enrollment: only while it has no passkey (and,
    /// with `unless_totp`, no confirmed authenticator app), decided under the principal's lock
    /// so two enrollments racing each other (on any replica) store one. `false`: it has one.
    pub async fn add_first_passkey(
        &self,
        p: &PasskeyRecord,
        unless_totp: bool,
    ) -> Result<bool, StoreError>
    where
        for<'r> bool: Decode<'r, DB> + Type<DB>,
    {
        let mut tx = self.pool.begin().await.map_err(store_error)?;
        DB::lock_principal(&mut tx, &p.principal)
            .await
            .map_err(store_error)?;
        let row = sqlx::query(
            "SELECT (EXISTS (SELECT 1 FROM webauthn_credentials WHERE principal = $1) \
             OR ($2 = 1 AND EXISTS (SELECT 1 FROM totp_factors WHERE principal = $1 AND confirmed))) \
             AS taken",
        )
        .bind(p.principal.as_str())
        .bind(i64::from(unless_totp))
        .fetch_one(&mut *tx)
        .await
        .map_err(store_error)?;
        let taken: bool = row.try_get("taken").map_err(store_error)?;
        if taken {
            return Ok(false);
        }
        sqlx::query(INSERT)
            .bind(p.credential_id.as_str())
            .bind(p.principal.as_str())
            .bind(p.user_handle.as_str())
            .bind(p.name.as_str())
            .bind(p.passkey.as_str())
            .bind(p.sign_count)
            .bind(p.created_at)
            .execute(&mut *tx)
            .await
            .map_err(store_error)?;
        tx.commit().await.map_err(store_error)?;
        Ok(true)
    }

    /// The principal's credentials, oldest first.
    pub async fn list_passkeys(&self, principal: &str) -> Result<Vec<PasskeyRecord>, StoreError> {
        let sql = format!(
            "SELECT {COLUMNS} FROM webauthn_credentials WHERE principal = $1 \
             ORDER BY created_at, credential_id"
        );
        sqlx::query(&sql)
            .bind(principal)
            .fetch_all(&self.pool)
            .await
            .map_err(store_error)?
            .iter()
            .map(Self::passkey_from_row)
            .collect()
    }

    /// The credential with this id, whoever owns it.
    pub async fn find_passkey(
        &self,
        credential_id: &str,
    ) -> Result<Option<PasskeyRecord>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM webauthn_credentials WHERE credential_id = $1");
        sqlx::query(&sql)
            .bind(credential_id)
            .fetch_optional(&self.pool)
            .await
            .map_err(store_error)?
            .as_ref()
            .map(Self::passkey_from_row)
            .transpose()
    }

    /// Records a use: the updated record and counter, only if `sign_count` is above the stored
    /// one or both are zero (an authenticator without a counter). `false`: not recorded (the
    /// credential is gone, or the counter did not move forward).
    pub async fn record_passkey_use(
        &self,
        principal: &str,
        credential_id: &str,
        passkey: &str,
        sign_count: i64,
        now: i64,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE webauthn_credentials SET passkey = $3, sign_count = $4, last_used_at = $5 \
             WHERE principal = $1 AND credential_id = $2 \
             AND (sign_count < $4 OR (sign_count = 0 AND $4 = 0))",
        )
        .bind(principal)
        .bind(credential_id)
        .bind(passkey)
        .bind(sign_count)
        .bind(now)
        .execute(&self.pool)
        .await
        .map_err(store_error)?;
        Ok(DB::rows_affected(&done) == 1)
    }

    /// Renames one of the principal's credentials; `false` if it has none with that id.
    pub async fn rename_passkey(
        &self,
        principal: &str,
        credential_id: &str,
        name: &str,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE webauthn_credentials SET name = $3 WHERE principal = $1 AND credential_id = $2",
        )
        .bind(principal)
        .bind(credential_id)
        .bind(name)
        .execute(&self.pool)
        .await
        .map_err(store_error)?;
        Ok(DB::rows_affected(&done) == 1)
    }

    /// Removes one of the principal's credentials only if it has another passkey left, decided
    /// under the principal's lock: two removals racing for the last two keep one. `false`: not
    /// removed (no such credential, or it is the last).
    pub async fn delete_passkey_unless_last(
        &self,
        principal: &str,
        credential_id: &str,
    ) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await.map_err(store_error)?;
        DB::lock_principal(&mut tx, principal)
            .await
            .map_err(store_error)?;
        let row =
            sqlx::query("SELECT COUNT(*) AS n FROM webauthn_credentials WHERE principal = $1")
                .bind(principal)
                .fetch_one(&mut *tx)
                .await
                .map_err(store_error)?;
        let n: i64 = row.try_get("n").map_err(store_error)?;
        if n < 2 {
            return Ok(false);
        }
        let done = sqlx::query(
            "DELETE FROM webauthn_credentials WHERE principal = $1 AND credential_id = $2",
        )
        .bind(principal)
        .bind(credential_id)
        .execute(&mut *tx)
        .await
        .map_err(store_error)?;
        tx.commit().await.map_err(store_error)?;
        Ok(DB::rows_affected(&done) == 1)
    }

    /// Removes one of the principal's credentials; `false` if it has none with that id.
    pub async fn delete_passkey(
        &self,
        principal: &str,
        credential_id: &str,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "DELETE FROM webauthn_credentials WHERE principal = $1 AND credential_id = $2",
        )
        .bind(principal)
        .bind(credential_id)
        .execute(&self.pool)
        .await
        .map_err(store_error)?;
        Ok(DB::rows_affected(&done) == 1)
    }
}

/// Dispatch to the store chosen at start-up.
macro_rules! dispatch {
    ($self:ident, $s:ident => $e:expr) => {
        match $self {
            AnyUserStore::Sqlite($s) => $e,
            AnyUserStore::Postgres($s) => $e,
        }
    };
}

impl AnyUserStore {
    /// See [`SqlUserStore::add_passkey`].
    pub async fn add_passkey(&self, p: &PasskeyRecord) -> Result<(), StoreError> {
        dispatch!(self, s => s.add_passkey(p).await)
    }

    /// See [`SqlUserStore::add_first_passkey`].
    pub async fn add_first_passkey(
        &self,
        p: &PasskeyRecord,
        unless_totp: bool,
    ) -> Result<bool, StoreError> {
        dispatch!(self, s => s.add_first_passkey(p, unless_totp).await)
    }

    /// See [`SqlUserStore::list_passkeys`].
    pub async fn list_passkeys(&self, principal: &str) -> Result<Vec<PasskeyRecord>, StoreError> {
        dispatch!(self, s => s.list_passkeys(principal).await)
    }

    /// See [`SqlUserStore::find_passkey`].
    pub async fn find_passkey(&self, id: &str) -> Result<Option<PasskeyRecord>, StoreError> {
        dispatch!(self, s => s.find_passkey(id).await)
    }

    /// See [`SqlUserStore::record_passkey_use`].
    pub async fn record_passkey_use(
        &self,
        principal: &str,
        id: &str,
        passkey: &str,
        sign_count: i64,
        now: i64,
    ) -> Result<bool, StoreError> {
        dispatch!(self, s => s.record_passkey_use(principal, id, passkey, sign_count, now).await)
    }

    /// See [`SqlUserStore::rename_passkey`].
    pub async fn rename_passkey(
        &self,
        principal: &str,
        id: &str,
        name: &str,
    ) -> Result<bool, StoreError> {
        dispatch!(self, s => s.rename_passkey(principal, id, name).await)
    }

    /// See [`SqlUserStore::delete_passkey_unless_last`].
    pub async fn delete_passkey_unless_last(
        &self,
        principal: &str,
        id: &str,
    ) -> Result<bool, StoreError> {
        dispatch!(self, s => s.delete_passkey_unless_last(principal, id).await)
    }

    /// See [`SqlUserStore::delete_passkey`].
    pub async fn delete_passkey(&self, principal: &str, id: &str) -> Result<bool, StoreError> {
        dispatch!(self, s => s.delete_passkey(principal, id).await)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::storage::UserStore;

    pub(crate) fn record(principal: &str, id: &str) -> PasskeyRecord {
        PasskeyRecord {
            credential_id: id.to_owned(),
            principal: principal.to_owned(),
            user_handle: "aGFuZGxl".to_owned(),
            name: "Laptop".to_owned(),
            passkey: "{}".to_owned(),
            sign_count: 0,
            created_at: 5,
            last_used_at: None,
        }
    }

    #[tokio::test]
    async fn passkeys_in_sqlite() {
        let s = AnyUserStore::open("sqlite::memory:", std::path::Path::new("."))
            .await
            .unwrap_or_else(|e| unreachable!("{e}"));
        passkeys_conform(&s).await;
    }

    /// What every store does with passkeys (PostgreSQL's run is in `postgres/tests.rs`).
    #[allow(clippy::unwrap_used)]
    pub(crate) async fn passkeys_conform(s: &AnyUserStore) {
        let (ann, bob) = ("native:ann", "native:bob");
        s.add_passkey(&record(ann, "k1")).await.unwrap();
        s.add_passkey(&record(ann, "k2")).await.unwrap();
        // DESIGN.md §10: a credential id is unique in the store, whoever registers it.
        assert!(matches!(
            s.add_passkey(&record(bob, "k1")).await,
            Err(StoreError::Conflict)
        ));
        assert_eq!(s.list_passkeys(ann).await.unwrap().len(), 2);
        assert!(s.list_passkeys(bob).await.unwrap().is_empty());
        assert!(
            s.has_second_factor(ann, 6).await.unwrap(),
            "a passkey is a factor"
        );
        assert!(!s.has_second_factor(bob, 6).await.unwrap());
        // The counter moves only forward; zero stays allowed for counterless keys.
        assert!(s.record_passkey_use(ann, "k1", "{}", 0, 7).await.unwrap());
        assert!(s.record_passkey_use(ann, "k1", "{}", 3, 8).await.unwrap());
        assert!(
            !s.record_passkey_use(ann, "k1", "{}", 3, 9).await.unwrap(),
            "same count"
        );
        assert!(
            !s.record_passkey_use(ann, "k1", "{}", 2, 9).await.unwrap(),
            "backwards"
        );
        assert!(
            !s.record_passkey_use(ann, "k1", "{}", 0, 9).await.unwrap(),
            "back to zero"
        );
        assert!(
            !s.record_passkey_use(bob, "k1", "{}", 9, 9).await.unwrap(),
            "not bob's"
        );
        let k1 = s.find_passkey("k1").await.unwrap().unwrap();
        assert_eq!((k1.sign_count, k1.last_used_at), (3, Some(8)));
        // Rename and remove act on the owner's credential only.
        assert!(!s.rename_passkey(bob, "k1", "mine").await.unwrap());
        assert!(s.rename_passkey(ann, "k1", "Phone").await.unwrap());
        assert_eq!(s.find_passkey("k1").await.unwrap().unwrap().name, "Phone");
        assert!(!s.delete_passkey(bob, "k2").await.unwrap());
        assert!(s.delete_passkey(ann, "k2").await.unwrap());
        assert!(!s.delete_passkey(ann, "k2").await.unwrap());
        // A first passkey at enrollment: only while there is none (nor, when asked, an app).
        let (cy, di) = ("native:cy", "native:di");
        assert!(s.add_first_passkey(&record(cy, "f1"), false).await.unwrap());
        assert!(!s.add_first_passkey(&record(cy, "f2"), false).await.unwrap());
        s.put_totp(di, b"sealed", true, 1).await.unwrap();
        assert!(!s.add_first_passkey(&record(di, "f3"), true).await.unwrap());
        assert!(s.add_first_passkey(&record(di, "f3"), false).await.unwrap());
        // Racing enrollments store one.
        let racers: Vec<_> = (0..6)
            .map(|i| {
                let s = s.clone();
                tokio::spawn(async move {
                    s.add_first_passkey(&record("native:race", &format!("r{i}")), false)
                        .await
                        .unwrap()
                })
            })
            .collect();
        let mut wins = 0;
        for r in racers {
            if r.await.unwrap() {
                wins += 1;
            }
        }
        assert_eq!(wins, 1);
        assert_eq!(s.list_passkeys("native:race").await.unwrap().len(), 1);
        // Racing removals of a principal's last two passkeys keep one.
        let two = "native:two";
        s.add_passkey(&record(two, "t1")).await.unwrap();
        s.add_passkey(&record(two, "t2")).await.unwrap();
        let (a, b) = (s.clone(), s.clone());
        let (ra, rb) = tokio::join!(
            a.delete_passkey_unless_last(two, "t1"),
            b.delete_passkey_unless_last(two, "t2")
        );
        assert_eq!(u8::from(ra.unwrap()) + u8::from(rb.unwrap()), 1);
        assert_eq!(s.list_passkeys(two).await.unwrap().len(), 1);
        // An admin's reset removes the rest with the other factors.
        assert!(s.delete_factors(ann).await.unwrap());
        assert!(s.list_passkeys(ann).await.unwrap().is_empty());
        assert!(!s.has_second_factor(ann, 10).await.unwrap());
    }
}
