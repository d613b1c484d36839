//! `StoreError`, the one error of the `UserStore` boundary, and the classification of sqlx
//! errors into it (shared by both SQL dialects: sqlx reports unique violations and decode
//! failures the same way for SQLite and PostgreSQL).
//!
//! Display text is for logs only, never for responses; it never holds a connection URL.

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

/// Maps a sqlx error to the store's boundary error. The text is for logs only.
pub(crate) fn store_error(e: sqlx::Error) -> StoreError {
    match e {
        sqlx::Error::Database(db) if db.is_unique_violation() => StoreError::Conflict,
        sqlx::Error::RowNotFound
        | sqlx::Error::TypeNotFound { .. }
        | sqlx::Error::ColumnIndexOutOfBounds { .. }
        | sqlx::Error::ColumnNotFound(_)
        | sqlx::Error::ColumnDecode { .. }
        | sqlx::Error::Decode(_) => StoreError::Corrupt(e.to_string()),
        // Connection, I/O, TLS, pool timeout, SQLite busy/locked, PostgreSQL lock timeout, disk
        // full, ...: the caller fails closed.
        other => StoreError::Unavailable(other.to_string()),
    }
}
