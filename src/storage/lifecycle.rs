//! The end and the edits of a native user's row beyond the `UserStore` trait: deleting a user
//! with everything keyed to them (factors, codes, devices, invitations), and changing the email
//! address. Invariant: a deletion is one transaction, so no half-deleted user is ever seen.

use sqlx::{Database, Encode, Executor, IntoArguments, Type};

use super::any::AnyUserStore;
use super::dialect::Dialect;
use super::error::{store_error, StoreError};
use super::sql::SqlUserStore;

/// The tables keyed by principal that a deleted user leaves nothing in.
const BY_PRINCIPAL: [&str; 5] = [
    "DELETE FROM webauthn_credentials WHERE principal = $1",
    "DELETE FROM totp_factors WHERE principal = $1",
    "DELETE FROM recovery_codes WHERE principal = $1",
    "DELETE FROM remembered_devices WHERE principal = $1",
    "DELETE FROM known_devices WHERE principal = $1",
];

impl<DB> SqlUserStore<DB>
where
    DB: Dialect + Database,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB>,
    for<'q> Option<&'q str>: Encode<'q, DB> + Type<DB>,
{
    /// Deletes the user `username` (whose factors belong to `principal`) and every row keyed
    /// to them, in one transaction; `false` if there was no such user (nothing is deleted).
    pub async fn delete_user(&self, username: &str, principal: &str) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await.map_err(store_error)?;
        // Ordered with replace_recovery_codes and enrollments of the same principal.
        DB::lock_principal(&mut tx, principal)
            .await
            .map_err(store_error)?;
        let user = sqlx::query("DELETE FROM users WHERE username = $1")
            .bind(username)
            .execute(&mut *tx)
            .await
            .map_err(store_error)?;
        if DB::rows_affected(&user) != 1 {
            tx.rollback().await.map_err(store_error)?;
            return Ok(false);
        }
        for statement in BY_PRINCIPAL {
            sqlx::query(statement)
                .bind(principal)
                .execute(&mut *tx)
                .await
                .map_err(store_error)?;
        }
        sqlx::query("DELETE FROM enrollment_invites WHERE username = $1")
            .bind(username)
            .execute(&mut *tx)
            .await
            .map_err(store_error)?;
        tx.commit().await.map_err(store_error)?;
        Ok(true)
    }

    /// Sets or clears a user's email address; `false` if there is no such user.
    pub async fn set_email(&self, username: &str, email: Option<&str>) -> Result<bool, StoreError> {
        let done = sqlx::query("UPDATE users SET email = $1 WHERE username = $2")
            .bind(email)
            .bind(username)
            .execute(&self.pool)
            .await
            .map_err(store_error)?;
        Ok(DB::rows_affected(&done) == 1)
    }
}

impl AnyUserStore {
    /// See [`SqlUserStore::delete_user`].
    pub async fn delete_user(&self, username: &str, principal: &str) -> Result<bool, StoreError> {
        match self {
            Self::Sqlite(s) => s.delete_user(username, principal).await,
            Self::Postgres(s) => s.delete_user(username, principal).await,
        }
    }

    /// See [`SqlUserStore::set_email`].
    pub async fn set_email(&self, username: &str, email: Option<&str>) -> Result<bool, StoreError> {
        match self {
            Self::Sqlite(s) => s.set_email(username, email).await,
            Self::Postgres(s) => s.set_email(username, email).await,
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
pub(crate) mod tests {
    use super::*;
    use crate::storage::{EnrollmentInvite, NewUser, UserStore};

    #[tokio::test]
    async fn deleting_a_user_leaves_no_row_keyed_to_them_and_spares_others() {
        let s = AnyUserStore::open("sqlite::memory:", std::path::Path::new("."))
            .await
            .unwrap();
        deletion_leaves_nothing_and_email_changes(&s).await;
    }

    /// The check, for each dialect (PostgreSQL's in `postgres/tests.rs`).
    pub(crate) async fn deletion_leaves_nothing_and_email_changes(s: &AnyUserStore) {
        for name in ["ann", "bob"] {
            let p = format!("native:{name}");
            s.create_user(
                &NewUser {
                    username: name.into(),
                    email: None,
                    roles: vec!["r".into()],
                    password_hash: None,
                    disabled: false,
                },
                1,
            )
            .await
            .unwrap();
            s.put_totp(&p, b"sealed", true, 1).await.unwrap();
            s.replace_recovery_codes(&p, &["h".into()], 1, None)
                .await
                .unwrap();
            s.note_known_device(&p, "d", 1).await.unwrap();
            s.add_passkey(&crate::storage::passkeys::tests::record(
                &p,
                &format!("k-{name}"),
            ))
            .await
            .unwrap();
            s.put_invite(&EnrollmentInvite {
                token_hash: format!("t-{name}"),
                username: name.into(),
                created_at: 1,
                expires_at: 100,
            })
            .await
            .unwrap();
        }
        assert!(s.delete_user("ann", "native:ann").await.unwrap());
        assert!(s.get_user("ann").await.unwrap().is_none());
        assert!(s.get_totp("native:ann").await.unwrap().is_none());
        assert_eq!(s.count_recovery_codes("native:ann", 2).await.unwrap(), 0);
        assert!(s.find_invite("t-ann", 2).await.unwrap().is_none());
        assert!(
            s.find_passkey("k-ann").await.unwrap().is_none(),
            "passkey gone"
        );
        assert!(
            s.find_passkey("k-bob").await.unwrap().is_some(),
            "bob keeps his passkey"
        );
        assert!(
            s.note_known_device("native:ann", "d", 2).await.unwrap(),
            "known device gone"
        );
        assert!(
            !s.delete_user("ann", "native:ann").await.unwrap(),
            "second time: none"
        );
        assert!(
            s.get_totp("native:bob").await.unwrap().is_some(),
            "bob keeps his"
        );
        assert!(s.find_invite("t-bob", 2).await.unwrap().is_some());
        assert!(s.set_email("bob", Some("b@example.com")).await.unwrap());
        let bob = s.get_user("bob").await.unwrap().unwrap();
        assert_eq!(bob.email.as_deref(), Some("b@example.com"));
        assert!(!s.set_email("ann", None).await.unwrap());
    }
}
