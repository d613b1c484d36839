//! `SqliteUserStore`: the embedded user store on one SQLite file (WAL mode), with its
//! migrations compiled into the binary and applied at open. The statements are the shared ones
//! of `sql.rs`; here are only opening (file, permissions, pool, pragmas), the migration list and
//! SQLite's side of the [`Dialect`].
//!
//! SQLite serialises writers, so the single-use checks hold across connections and processes
//! sharing the file, and set replacements need no lock of their own.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use sqlx::migrate::Migrator;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteQueryResult,
};
use sqlx::{Sqlite, Transaction};
use tracing::info;

use super::dialect::{Dialect, EmbeddedMigrations, MigrationList};
use super::error::{store_error, StoreError};
use super::sql::SqlUserStore;

/// How long a statement waits for another writer's lock before giving up (then: Unavailable).
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a request waits for a pooled connection before failing closed.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);
/// Connections to a file database. SQLite has one writer at a time; readers run in parallel (WAL).
const MAX_FILE_CONNECTIONS: u32 = 4;

/// The migrations, in order, twins of `postgres.rs`'s (see [`EmbeddedMigrations`]).
const MIGRATIONS: MigrationList = &[
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
    (
        3,
        "known devices",
        include_str!("../../migrations/sqlite/0003_known_devices.sql"),
    ),
    (
        4,
        "webauthn credentials",
        include_str!("../../migrations/sqlite/0004_webauthn_credentials.sql"),
    ),
];

/// The SQLite user store. Cheap to clone (a pool handle).
pub type SqliteUserStore = SqlUserStore<Sqlite>;

impl Dialect for Sqlite {
    fn rows_affected(done: &SqliteQueryResult) -> u64 {
        done.rows_affected()
    }

    /// Nothing to take: the transaction's first statement is a write, so SQLite's database
    /// write lock already orders it with every other writer until commit.
    async fn lock_principal(
        _tx: &mut Transaction<'_, Sqlite>,
        _principal: &str,
    ) -> Result<(), sqlx::Error> {
        Ok(())
    }
}

impl SqlUserStore<Sqlite> {
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
        let store = migrated(pool).await?;
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
        migrated(pool).await
    }
}

async fn migrated(pool: SqlitePool) -> Result<SqliteUserStore, StoreError> {
    let migrator = Migrator::new(EmbeddedMigrations(MIGRATIONS))
        .await
        .map_err(|e| StoreError::Unavailable(format!("loading migrations: {e}")))?;
    migrator
        .run(&pool)
        .await
        .map_err(|e| StoreError::Unavailable(format!("applying migrations: {e}")))?;
    Ok(SqlUserStore::from_pool(pool))
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

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests: a failure aborts the test
mod tests {
    use std::path::PathBuf;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;
    use crate::storage::any::AnyUserStore;
    use crate::storage::conformance::{self, new_user};
    use crate::storage::user_store::UserStore;

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

    conformance::conformance_tests!(|check| {
        let store = memory().await;
        check(&store).await;
    });

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

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_totp_step_advances_across_tasks_and_pools_have_exactly_one_winner() {
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
            assert_eq!(applied, [1, 2, 3, 4]);
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
    async fn an_unreachable_database_is_unavailable() {
        let store = memory().await;
        store.close().await;
        let err = store.get_user("ann").await;
        assert!(matches!(err, Err(StoreError::Unavailable(_))), "{err:?}");
        let err = store.advance_totp_step("native:ann", 1).await;
        assert!(matches!(err, Err(StoreError::Unavailable(_))), "{err:?}");
    }
}
