//! Tests of the PostgreSQL store against the server at `DATABASE_URL`, each in a scratch schema
//! of its own: the shared conformance checks, then what is PostgreSQL's own (schemas, corrupt
//! rows, concurrent replicas, outages through a TCP forwarder, URL parsing and scrubbing).
//!
//! Without `DATABASE_URL` (unset or unreachable) a test says it skipped, except under CI (`CI`
//! set): there it fails, so a CI run can never pass by skipping PostgreSQL.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)] // tests: a failure aborts the test

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
use crate::storage::any::AnyUserStore;
use crate::storage::conformance;
use crate::storage::user_store::UserStore;

/// The test server (CI: `postgres://postgres@127.0.0.1:5432/test`), or `None` with a note.
/// Under CI (`CI` set) a missing server fails the test instead (`crate::testing::require`).
fn database_url() -> Option<String> {
    crate::testing::database_url()
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

#[tokio::test]
async fn deleting_a_user_leaves_no_row_keyed_to_them_in_postgres() {
    let Some(db) = Scratch::new() else { return };
    let store = AnyUserStore::Postgres(db.open().await);
    crate::storage::lifecycle::tests::deletion_leaves_nothing_and_email_changes(&store).await;
    store.close().await;
}

#[tokio::test]
async fn passkeys_in_postgres() {
    let Some(db) = Scratch::new() else { return };
    let store = AnyUserStore::Postgres(db.open().await);
    crate::storage::passkeys::tests::passkeys_conform(&store).await;
    store.close().await;
}

conformance::conformance_tests!(|check| {
    let Some(db) = Scratch::new() else { return };
    let store = db.open().await;
    check(&store).await;
    store.close().await;
});

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
        assert_eq!(applied, [1, 2, 3, 4]);
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
                "known_devices",
                "recovery_codes",
                "remembered_devices",
                "totp_factors",
                "users",
                "webauthn_credentials"
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
    let tcp = if options.get_host().starts_with('/') {
        Err("DATABASE_URL names a unix socket; the outage is made with a TCP forwarder".into())
    } else {
        Ok(())
    };
    if crate::testing::require("PostgreSQL over TCP", tcp).is_none() {
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
