//! Durable state: the `UserStore` seam (SQLite embedded, PostgreSQL at scale) and sealing of
//! secrets at rest. This file only declares the modules and re-exports their public names;
//! the modules import each other by their own paths, never through here, so the files form no
//! import cycle.
//!
//! * `user_store`  — the `UserStore` trait and its semantics.
//! * `error`       — `StoreError`, and how sqlx errors map to it.
//! * `model`       — plain data: users, TOTP factors, remembered devices, audit events.
//! * `sql`         — `SqlUserStore<DB>`, the one implementation over sqlx, for both databases.
//! * `dialect`     — the `Dialect` trait: what SQLite and PostgreSQL do differently in it.
//! * `sqlite`      — `SqliteUserStore`: opening the embedded file, its migrations, its dialect.
//! * `postgres`    — `PostgresUserStore`: URL, pool and schema, its migrations, its dialect.
//! * `any`         — `AnyUserStore`, the implementation chosen at start-up from the URL.
//! * `known`       — known devices per principal (the new-device notice, DESIGN.md §12).
//! * `passkeys`    — WebAuthn credentials per principal (DESIGN.md §10).
//! * `seal`        — encryption of TOTP seeds at rest.
//! * `conformance` — (tests) the checks every implementation passes.
//!
//! Callers pick the implementation once at start-up with [`AnyUserStore::open`]. The store does
//! no hashing, sealing or policy: it keeps rows and makes the single-use checks (TOTP step,
//! recovery code) atomic, so they hold across concurrent requests and replicas.
//! `Ok(None)`/`Ok(false)` mean absent; `Err(StoreError::Unavailable)` means fail closed (503).

mod any;
#[cfg(test)]
pub(crate) mod conformance;
mod dialect;
mod error;
mod filtered;
mod known;
pub(crate) mod lifecycle;
pub mod model;
pub mod passkeys;
pub mod postgres;
pub mod seal;
mod sql;
pub mod sqlite;
mod user_store;

pub use any::{check_url, sealing_key_file, AnyUserStore};
pub use dialect::Dialect;
pub use error::StoreError;
pub use model::{
    AuditEvent, AuditQuery, AuditRecord, EnrollmentInvite, NewUser, RememberedDevice, TotpFactor,
    User, MAX_PAGE,
};
pub use postgres::{PostgresUrl, PostgresUserStore};
pub use sql::SqlUserStore;
pub use sqlite::SqliteUserStore;
pub use user_store::UserStore;
