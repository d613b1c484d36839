//! Scale-out: three gateway processes sharing the Redis and PostgreSQL that CI provides
//! (`REDIS_URL`, `DATABASE_URL`). Each test has its own Redis key prefix and PostgreSQL
//! schema and removes them at the end. Without them (unset or unreachable) the tests say they
//! skipped, and fail under CI (`support::require`).

use crate::support::browser::*;
use crate::support::login::{password_step, submit_code};
use crate::support::*;
use hyper::StatusCode;
use portcullis::mfa::totp::code_at;
use portcullis::secret::{Password, TotpSeed};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const PW: &str = "correct horse battery staple";
const ADMIN_TOKEN: &str = "scale-admin-token-42";

/// Both shared stores, or `None` (skip; a failure under CI) when one is missing or down.
fn env_urls() -> Option<(String, String)> {
    Some((redis_url()?, database_url()?))
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn with_schema(db: &str, schema: &str) -> String {
    let sep = if db.contains('?') { '&' } else { '?' };
    format!("{db}{sep}schema={schema}")
}

/// One deployment: shared stores, a shared signing key, an upstream, N replica configs.
struct Cluster {
    dir: TempDir,
    upstream: TestUpstream,
    redis_url: String,
    db_url: String,
    schema: String,
    prefix: String,
    replicas: Vec<Replica>,
}

struct Replica {
    config: std::path::PathBuf,
    redis_url: String,
    /// The ports it listens on; new ones are chosen when another process took these.
    port: u16,
    admin_port: u16,
    child: Option<Child>,
}

impl Replica {
    fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
    fn admin(&self) -> String {
        format!("http://127.0.0.1:{}", self.admin_port)
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Cluster {
    async fn new(n: usize, redis_url: &str, db_url: &str) -> Cluster {
        let dir = TempDir::new("scale");
        let upstream = TestUpstream::start().await;
        let tag = portcullis::session::random_id(6)
            .to_lowercase()
            .replace(['-', '_'], "x");
        let schema = format!("pc_it_{tag}");
        let prefix = format!("pc-it-{tag}:");
        let mut c = Cluster {
            dir,
            upstream,
            redis_url: redis_url.into(),
            db_url: db_url.into(),
            schema,
            prefix,
            replicas: Vec::new(),
        };
        for i in 0..n {
            let r = c.replica_config(i, redis_url);
            c.replicas.push(r);
        }
        c
    }

    fn replica_config(&self, i: usize, redis_url: &str) -> Replica {
        Replica {
            config: self.dir.path().join(format!("replica-{i}.toml")),
            redis_url: redis_url.into(),
            port: 0,
            admin_port: 0,
            child: None,
        }
    }

    /// The config of a replica listening on `port` (admin API on `admin_port`).
    fn replica_text(&self, port: u16, admin_port: u16, redis_url: &str) -> String {
        format!(
            r#"
[server]
listen = "127.0.0.1:{port}"
public_url = "http://127.0.0.1:{port}"
access_log = false
shutdown_grace = "3s"
signing_key = "shared-assertion.p8"

[upstream]
url = "http://{up}"

[admin]
listen = "127.0.0.1:{admin_port}"
tokens = [{{ name = "ops", sha256 = "{hash}" }}]

[session]
store = "redis"
redis_url = "{redis_url}"
redis_prefix = "{prefix}"

[storage]
url = "{db}"
encryption_key = "{key}"

[native]
lockout = {{ max_failures = 3, window = "15m", duration = "15m" }}

[roles.contractor]
groups = ["c"]
require_mfa = true

[roles.end_user]
groups = ["e"]
require_mfa = false

[[routes]]
prefix = "/"
allow_roles = ["contractor", "end_user"]
"#,
            up = self.upstream.addr,
            hash = sha256_hex(ADMIN_TOKEN),
            prefix = self.prefix,
            db = with_schema(&self.db_url, &self.schema),
            key = "ab".repeat(32),
        )
    }

    async fn start_all(&mut self) {
        for i in 0..self.replicas.len() {
            self.start(i).await;
        }
    }

    /// Starts replica `i` on its ports (new ones the first time, or when another process
    /// took them since: the replica then exits at once and is started again elsewhere).
    async fn start(&mut self, i: usize) {
        for _ in 0..5 {
            let (mut port, mut admin_port) = (self.replicas[i].port, self.replicas[i].admin_port);
            if port == 0 {
                (port, admin_port) = (loopback_listener().1, loopback_listener().1);
            }
            let text = self.replica_text(port, admin_port, &self.replicas[i].redis_url);
            let r = &mut self.replicas[i];
            std::fs::write(&r.config, text).unwrap();
            let mut child = Command::new(env!("CARGO_BIN_EXE_portcullis"))
                .args(["run", "--config"])
                .arg(&r.config)
                .env("RUST_LOG", "warn")
                .stdout(Stdio::null())
                .stderr(Stdio::inherit())
                .spawn()
                .unwrap();
            let what = format!("replica {i}");
            let up = wait_listening(
                &mut child,
                &[port, admin_port],
                &what,
                Duration::from_secs(30),
            )
            .await;
            (r.port, r.admin_port) = if up { (port, admin_port) } else { (0, 0) };
            if up {
                r.child = Some(child);
                return;
            }
            eprintln!("replica {i} exited at start (ports {port}, {admin_port} taken?); retrying");
        }
        panic!("replica {i} did not start in five tries");
    }

    fn stop(&mut self, i: usize) {
        if let Some(mut c) = self.replicas[i].child.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &c.id().to_string()])
                .status();
            let _ = c.wait();
        }
    }

    /// Users are created through the library against the same stores (as `portcullis users` would).
    async fn add_user(&self, name: &str, role: &str, totp: bool) -> Option<TotpSeed> {
        let config = portcullis::config::Config::load(&self.replicas[0].config).unwrap();
        let acc = portcullis::accounts::Accounts::open(&config)
            .await
            .unwrap()
            .unwrap();
        acc.create_user(
            &config,
            name,
            None,
            vec![role.into()],
            Some(Password::new(PW.into())),
            now(),
        )
        .await
        .unwrap();
        let seed = if totp {
            Some(acc.enroll_totp_now(name, now()).await.unwrap().0)
        } else {
            None
        };
        acc.users.close().await;
        seed
    }

    async fn cleanup(&self) {
        if let Ok(client) = redis::Client::open(self.redis_url.as_str()) {
            if let Ok(mut con) = client.get_multiplexed_async_connection().await {
                let keys: Vec<String> = redis::cmd("KEYS")
                    .arg(format!("{}*", self.prefix))
                    .query_async(&mut con)
                    .await
                    .unwrap_or_default();
                if !keys.is_empty() {
                    let _: Result<(), _> = redis::cmd("DEL").arg(keys).query_async(&mut con).await;
                }
            }
        }
        if let Ok(pool) = sqlx::PgPool::connect(&self.db_url).await {
            let _ = sqlx::query(&format!("DROP SCHEMA IF EXISTS {} CASCADE", self.schema))
                .execute(&pool)
                .await;
            pool.close().await;
        }
    }
}

/// The password step at `/normal`, returning to `/app` (the shared harness's step).
async fn password(b: &mut Browser, user: &str, pw: &str) -> Resp {
    password_step(b, "/normal?rd=%2Fapp", user, pw).await
}

/// The same browser (cookie jar) talking to another replica.
fn moved(b: &Browser, base: &str) -> Browser {
    let mut n = Browser::new(base);
    n.jar = b.jar.clone();
    n
}

#[tokio::test]
async fn a_session_made_on_one_replica_works_on_another_and_dies_everywhere_when_revoked() {
    let Some((redis, db)) = env_urls() else {
        return;
    };
    let mut c = Cluster::new(3, &redis, &db).await;
    c.start_all().await;
    let seed = c.add_user("rosa", "contractor", true).await.unwrap();
    // Password on A, second factor on B: the pending login is shared too.
    let mut a = Browser::new(&c.replicas[0].base());
    let r = password(&mut a, "rosa", PW).await;
    assert_eq!(r.status, StatusCode::FOUND);
    let mut b = moved(&a, &c.replicas[1].base());
    let r = submit_code(&mut b, &code_at(&seed, now())).await;
    assert_eq!(r.status, StatusCode::FOUND, "{}", r.text());
    let mut a = moved(&b, &c.replicas[0].base());
    let on_a = a.get("/app").await;
    assert_eq!(on_a.status, StatusCode::OK);
    let on_b = b.get("/app").await;
    assert_eq!(on_b.status, StatusCode::OK);
    let id = on_b.upstream_header("x-auth-session").unwrap();
    // Terminated through C's admin API.
    let http = Http::new();
    let auth = format!("Bearer {ADMIN_TOKEN}");
    let listed = http
        .get(
            &format!("{}/api/v1/sessions?user=rosa", c.replicas[2].admin()),
            &[("authorization", &auth)],
        )
        .await;
    assert_eq!(listed.json()["items"][0]["id"], id.as_str());
    let del = http
        .send(
            hyper::Method::DELETE,
            &format!("{}/api/v1/sessions/{id}", c.replicas[2].admin()),
            &[("authorization", &auth)],
            Vec::new(),
        )
        .await;
    assert_eq!(del.status, StatusCode::NO_CONTENT);
    // A and B answer known sessions from their pub/sub-invalidated caches: the revocation
    // reaches them as fast as Redis delivers the message (well under a millisecond here), and
    // never later than the cache's trust window. A request that races the message on a loaded
    // machine may still be served; the bound is what is asserted.
    let revoked = std::time::Instant::now();
    for (who, br) in [("A", &mut a), ("B", &mut b)] {
        loop {
            if br.get("/app").await.status == StatusCode::FOUND {
                break;
            }
            assert!(
                revoked.elapsed() < portcullis::session::redis_cache::LIVE_FOR,
                "still served at {who} after the cache's trust window"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    c.cleanup().await;
}

#[tokio::test]
async fn a_totp_code_accepted_at_one_replica_is_refused_at_another() {
    let Some((redis, db)) = env_urls() else {
        return;
    };
    let mut c = Cluster::new(2, &redis, &db).await;
    c.start_all().await;
    let seed = c.add_user("tom", "contractor", true).await.unwrap();
    let code = code_at(&seed, now());
    let mut a = Browser::new(&c.replicas[0].base());
    password(&mut a, "tom", PW).await;
    let mut b = Browser::new(&c.replicas[1].base());
    password(&mut b, "tom", PW).await;
    let first = submit_code(&mut a, &code).await;
    let second = submit_code(&mut b, &code).await;
    // If the 30 s step rolled over between the two, the second is a different step's code
    // check: the stored step only moves forward, so the same code is still refused.
    assert_eq!(first.status, StatusCode::FOUND);
    assert_eq!(second.status, StatusCode::UNAUTHORIZED);
    assert!(second.text().contains("already used"), "{}", second.text());
    c.cleanup().await;
}

#[tokio::test]
async fn lockout_is_counted_across_replicas() {
    let Some((redis, db)) = env_urls() else {
        return;
    };
    let mut c = Cluster::new(3, &redis, &db).await;
    c.start_all().await;
    c.add_user("lou", "end_user", false).await;
    for i in 0..3 {
        let mut x = Browser::new(&c.replicas[i].base());
        assert_eq!(
            password(&mut x, "lou", "wrong").await.status,
            StatusCode::UNAUTHORIZED
        );
    }
    for i in 0..3 {
        let mut x = Browser::new(&c.replicas[i].base());
        assert_eq!(
            password(&mut x, "lou", PW).await.status,
            StatusCode::TOO_MANY_REQUESTS,
            "locked at replica {i}"
        );
    }
    c.cleanup().await;
}

#[tokio::test]
async fn sessions_survive_restarting_every_replica() {
    let Some((redis, db)) = env_urls() else {
        return;
    };
    let mut c = Cluster::new(3, &redis, &db).await;
    c.start_all().await;
    c.add_user("sam", "end_user", false).await;
    let mut a = Browser::new(&c.replicas[0].base());
    assert_eq!(password(&mut a, "sam", PW).await.status, StatusCode::FOUND);
    assert_eq!(a.get("/app").await.status, StatusCode::OK);
    for i in 0..3 {
        c.stop(i);
    }
    c.start_all().await;
    for i in 0..3 {
        let mut x = moved(&a, &c.replicas[i].base());
        let r = x.get("/app").await;
        assert_eq!(r.status, StatusCode::OK, "replica {i} after restart");
        assert_eq!(
            r.upstream_header("x-forwarded-user").as_deref(),
            Some("sam")
        );
    }
    c.cleanup().await;
}

#[tokio::test]
async fn redis_down_fails_closed_with_503_and_service_resumes_when_it_returns() {
    let Some((redis, db)) = env_urls() else {
        return;
    };
    // The replica reaches the shared Redis through a relay the test takes down and back up:
    // an outage for this replica only, on a port bound once.
    let (_, target) = relay::via(&redis, "127.0.0.1:1".parse().unwrap(), 6379).unwrap();
    let relay = relay::Relay::start(target).await;
    let (own, _) = relay::via(&redis, relay.addr, 6379).unwrap();
    let mut c = Cluster::new(1, &own, &db).await;
    c.start_all().await;
    c.add_user("dan", "end_user", false).await;
    let mut a = Browser::new(&c.replicas[0].base());
    assert_eq!(password(&mut a, "dan", PW).await.status, StatusCode::FOUND);
    assert_eq!(a.get("/app").await.status, StatusCode::OK);
    let http = Http::new();
    let ready = format!("{}/readyz", c.replicas[0].admin());
    assert_eq!(http.get(&ready, &[]).await.status, StatusCode::OK);

    relay.down();
    let started = Instant::now();
    // The replica's session cache is trusted only while its invalidation subscription is
    // proven live (its own heartbeat back through Redis within the last second): once the
    // replica sees Redis gone, and at the latest one trust window after the last heartbeat,
    // every request fails closed. (No revocation can be missed meanwhile: revoking needs Redis.)
    let r = loop {
        let r = a.get("/app").await;
        if r.status != StatusCode::OK {
            break r;
        }
        assert!(
            started.elapsed() < Duration::from_millis(1500),
            "still answered from the cache {:?} after Redis went away",
            started.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let hits_before = c.upstream.hits.load(std::sync::atomic::Ordering::Relaxed);
    assert_eq!(
        r.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "fail closed, never open"
    );
    assert!(r.text().contains("cannot check your session"));
    assert!(
        started.elapsed() < Duration::from_secs(6),
        "bounded wait: {:?}",
        started.elapsed()
    );
    let api = http
        .get(
            &format!("{}/app", c.replicas[0].base()),
            &[
                ("accept", "application/json"),
                ("cookie", &format!("portcullis={}", a.jar["portcullis"])),
            ],
        )
        .await;
    assert_eq!(api.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(api.json()["error"], "unavailable");
    let mut x = Browser::new(&c.replicas[0].base());
    let login = password(&mut x, "dan", PW).await;
    assert_eq!(
        login.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "no login without the store"
    );
    assert_eq!(
        http.get(&ready, &[]).await.status,
        StatusCode::SERVICE_UNAVAILABLE
    );
    assert_eq!(
        c.upstream.hits.load(std::sync::atomic::Ordering::Relaxed),
        hits_before,
        "nothing reached the app"
    );

    // Redis comes back; the gateway recovers by itself.
    relay.up();
    wait_ready(&http, &ready).await;
    let mut fresh = Browser::new(&c.replicas[0].base());
    assert_eq!(
        password(&mut fresh, "dan", PW).await.status,
        StatusCode::FOUND
    );
    assert_eq!(fresh.get("/app").await.status, StatusCode::OK);
    c.cleanup().await;
}

#[tokio::test]
async fn postgres_down_fails_logins_closed_with_503_and_service_resumes_when_it_returns() {
    let Some((redis, db)) = env_urls() else {
        return;
    };
    // postgres://user@HOST:PORT/db...: a relay the test takes down stands in for HOST:PORT.
    let tcp = relay::via(&db, "127.0.0.1:1".parse().unwrap(), 5432)
        .ok_or_else(|| "DATABASE_URL has no user@host part for the relay".to_owned());
    let Some((_, target)) = require("PostgreSQL over TCP", tcp) else {
        return;
    };
    let relay = relay::Relay::start(target).await;
    let (via, _) = relay::via(&db, relay.addr, 5432).unwrap();

    let mut c = Cluster::new(1, &redis, &via).await;
    c.start_all().await;
    c.add_user("erin", "end_user", false).await;
    let mut a = Browser::new(&c.replicas[0].base());
    assert_eq!(password(&mut a, "erin", PW).await.status, StatusCode::FOUND);
    assert_eq!(a.get("/app").await.status, StatusCode::OK);
    let http = Http::new();
    let ready = format!("{}/readyz", c.replicas[0].admin());
    assert_eq!(http.get(&ready, &[]).await.status, StatusCode::OK);

    // The database goes away: every connection to it is cut and new ones are closed at once.
    relay.down();
    let started = Instant::now();
    let mut x = Browser::new(&c.replicas[0].base());
    let login = password(&mut x, "erin", PW).await;
    assert_eq!(
        login.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "no password check without the user store: {}",
        login.text()
    );
    assert!(
        started.elapsed() < Duration::from_secs(12),
        "bounded wait: {:?}",
        started.elapsed()
    );
    assert_eq!(
        http.get(&ready, &[]).await.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "not ready without the user store"
    );
    // Sessions live in Redis: a signed-in user is not affected by the user store's outage.
    assert_eq!(a.get("/app").await.status, StatusCode::OK);

    // It comes back; the pool reconnects by itself.
    relay.up();
    wait_ready(&http, &ready).await;
    let mut fresh = Browser::new(&c.replicas[0].base());
    assert_eq!(
        password(&mut fresh, "erin", PW).await.status,
        StatusCode::FOUND
    );
    assert_eq!(fresh.get("/app").await.status, StatusCode::OK);
    c.cleanup().await;
}

/// Waits (up to 20 s) until `/readyz` answers 200: a store came back and the gateway with it.
async fn wait_ready(http: &Http, ready: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while http.get(ready, &[]).await.status != StatusCode::OK {
        assert!(Instant::now() < deadline, "did not recover");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
