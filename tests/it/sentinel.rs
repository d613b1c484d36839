//! Redis Sentinel (issue 18 item 7): a primary, a replica and three sentinels on loopback, two
//! gateways finding the primary through the sentinels. The primary is killed mid-traffic:
//! requests fail closed (503, never a login page for a live session) for at most the failover
//! time, then both gateways serve again from the new primary with every session that reached
//! the replica, and a revocation through A's admin API still reaches B.

use crate::support::servers::{program, redis_server, wait_port, Proc};
use crate::support::*;
use hyper::{Method, StatusCode};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const TOKEN: &str = "sentinel-admin-token-0123456789";
/// Longest the gateways may fail closed after the primary dies (detection after 1 s, the
/// sentinels' election and promotion, and the gateways' next look).
const FAILOVER_BOUND: Duration = Duration::from_secs(15);

async fn redis(port: u16) -> redis::aio::MultiplexedConnection {
    redis::Client::open(format!("redis://127.0.0.1:{port}"))
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap()
}

/// Polls `check` every 50 ms until it holds, failing after `limit`.
async fn until<F, Fut>(what: &str, limit: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    while !check().await {
        assert!(start.elapsed() < limit, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn sentinel_count(port: u16, sub: &str) -> usize {
    let Ok(client) = redis::Client::open(format!("redis://127.0.0.1:{port}")) else {
        return 0;
    };
    let Ok(mut c) = client.get_multiplexed_async_connection().await else {
        return 0;
    };
    let r: Result<Vec<redis::Value>, _> = redis::cmd("SENTINEL")
        .arg(sub)
        .arg("m")
        .query_async(&mut c)
        .await;
    r.map_or(0, |v| v.len())
}

fn start_sentinel(dir: &std::path::Path, primary: u16) -> Proc {
    let port = loopback_listener().1;
    let conf = dir.join(format!("sentinel-{port}.conf"));
    std::fs::write(
        &conf,
        format!(
            "port {port}\nbind 127.0.0.1\ndir {}\n\
             sentinel monitor m 127.0.0.1 {primary} 2\n\
             sentinel down-after-milliseconds m 1000\n\
             sentinel failover-timeout m 3000\n\
             sentinel parallel-syncs m 1\n",
            dir.display()
        ),
    )
    .unwrap();
    let log = std::fs::File::create(dir.join(format!("sentinel-{port}.log"))).unwrap();
    let child = Command::new("/usr/bin/redis-sentinel")
        .arg(&conf)
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    Proc {
        child: Some(child),
        port,
        dir: dir.to_owned(),
    }
}

async fn gateway(sentinels: &[u16], prefix: &str) -> (TestGateway, String) {
    let nodes: Vec<String> = sentinels
        .iter()
        .map(|p| format!("\"redis://127.0.0.1:{p}\""))
        .collect();
    let session = format!(
        "store = \"redis\"\nredis_prefix = \"{prefix}\"\n\
         redis_sentinel = {{ master = \"m\", nodes = [{}] }}\n",
        nodes.join(", ")
    );
    let extra = format!(
        "[admin]\nlisten = \"127.0.0.1:0\"\ntokens = [{{ name = \"ops\", sha256 = \"{}\" }}]\n\n\
         [storage]\nurl = \"sqlite://users.db\"\n",
        sha256_hex(TOKEN)
    );
    let gw = TestGateway::start_full("", &session, &extra, |_| {}).await;
    let admin = format!(
        "http://{}",
        gw.running.as_ref().unwrap().admin_addr.unwrap()
    );
    (gw, admin)
}

#[tokio::test]
async fn after_the_primary_dies_gateways_fail_closed_then_follow_the_new_primary_with_replicated_sessions_and_revocation(
) {
    if program("/usr/bin/redis-sentinel", "redis-sentinel").is_none()
        || program("/usr/bin/redis-server", "redis-server").is_none()
    {
        return;
    }
    let dir = TempDir::new("sentinel");
    let d = dir.path();
    let mut primary = redis_server(d, "--port", &[]).await;
    let replica = redis_server(
        d,
        "--port",
        &[
            "--replicaof".into(),
            "127.0.0.1".into(),
            primary.port.to_string(),
        ],
    )
    .await;
    let (p_port, r_port) = (primary.port, replica.port);
    until(
        "the replica's link",
        Duration::from_secs(15),
        || async move {
            let mut c = redis(r_port).await;
            let info: String = redis::cmd("INFO")
                .arg("replication")
                .query_async(&mut c)
                .await
                .unwrap_or_default();
            info.contains("master_link_status:up")
        },
    )
    .await;
    let sentinels: Vec<Proc> = (0..3).map(|_| start_sentinel(d, p_port)).collect();
    let ports: Vec<u16> = sentinels.iter().map(|s| s.port).collect();
    for &p in &ports {
        wait_port(p, "redis-sentinel").await;
    }
    // Every sentinel knows the replica and the two other sentinels (hello messages every 2 s):
    // only then can they agree on a failover.
    for &p in &ports {
        until(
            "the sentinels to know each other",
            Duration::from_secs(20),
            || async move {
                sentinel_count(p, "replicas").await == 1
                    && sentinel_count(p, "sentinels").await == 2
            },
        )
        .await;
    }
    let (a, a_admin) = gateway(&ports, "pc-sentinel:").await;
    let (b, _) = gateway(&ports, "pc-sentinel:").await;
    // A session made well before the kill, and proven on the replica (WAIT: acknowledged).
    let (cookie, id) = a.session_for("ann", &["agent"]).await;
    let acked: i64 = redis::cmd("WAIT")
        .arg(1)
        .arg(5000)
        .query_async(&mut redis(p_port).await)
        .await
        .unwrap();
    assert_eq!(acked, 1, "the replica has the session");
    let http = Http::with_timeout(Duration::from_secs(10));
    for gw in [&a, &b] {
        let r = http.get(&gw.url("/app"), &[("cookie", &cookie)]).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    }

    // Traffic on both gateways while the primary is killed.
    primary.kill();
    let killed = Instant::now();
    let mut seen = Vec::new();
    for gw in [&a, &b] {
        loop {
            let r = http.get(&gw.url("/app"), &[("cookie", &cookie)]).await;
            seen.push(r.status);
            if r.status == StatusCode::OK && killed.elapsed() > Duration::from_millis(200) {
                // Served again: from the new primary (the old one is dead), or from the cache
                // before the loss was noticed; the second loop below tells them apart.
                let mut c = redis(r_port).await;
                let role: Vec<redis::Value> = redis::cmd("ROLE").query_async(&mut c).await.unwrap();
                if matches!(role.first(), Some(redis::Value::BulkString(r)) if r == b"master") {
                    break;
                }
            }
            assert!(
                killed.elapsed() < FAILOVER_BOUND,
                "no service {FAILOVER_BOUND:?} after the kill: {seen:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    let outage = killed.elapsed();
    // Fail closed: while there is no primary a live session is a 503, never a login page
    // (which would mean the session was read as absent) and never anything else.
    assert!(
        seen.iter()
            .all(|s| *s == StatusCode::OK || *s == StatusCode::SERVICE_UNAVAILABLE),
        "{seen:?}"
    );
    assert!(
        seen.contains(&StatusCode::SERVICE_UNAVAILABLE),
        "the outage was seen: {seen:?}"
    );
    eprintln!("failover: served again after {outage:?}");
    // Both serve the replicated session from the new primary, steadily.
    for gw in [&a, &b] {
        until(
            "steady service on the new primary",
            Duration::from_secs(10),
            || {
                let url = gw.url("/app");
                let (http, cookie) = (&http, &cookie);
                async move {
                    for _ in 0..5 {
                        if http.get(&url, &[("cookie", cookie)]).await.status != StatusCode::OK {
                            return false;
                        }
                    }
                    true
                }
            },
        )
        .await;
    }
    // Revocation through A's admin API reaches B (through the new primary's pub/sub or a read).
    let del = http
        .send(
            Method::DELETE,
            &format!("{a_admin}/api/v1/sessions/{}", id.as_str()),
            &[("authorization", &format!("Bearer {TOKEN}"))],
            Vec::new(),
        )
        .await;
    assert_eq!(
        del.status,
        StatusCode::NO_CONTENT,
        "{} {:?}",
        del.text(),
        del.header("www-authenticate")
    );
    let revoked = Instant::now();
    loop {
        let r = http.get(&b.url("/app"), &[("cookie", &cookie)]).await;
        // No session any more: 401 for a client that is not a browser.
        if r.status == StatusCode::UNAUTHORIZED {
            break;
        }
        assert_eq!(r.status, StatusCode::OK);
        assert!(
            revoked.elapsed() < portcullis::session::redis_cache::LIVE_FOR,
            "still served at B after the cache's trust window"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // A session made after the failover works on both.
    let (fresh, _) = b.session_for("bea", &["agent"]).await;
    for gw in [&a, &b] {
        let r = http.get(&gw.url("/app"), &[("cookie", &fresh)]).await;
        assert_eq!(r.status, StatusCode::OK);
    }
    a.stop().await;
    b.stop().await;
    drop(sentinels);
    drop(replica);
}

/// What a gateway meets when its connection lands on a demoted primary during a failover:
/// every write is refused with READONLY. That is `Unavailable` (a 503, and a new look for the
/// primary), never a wrong answer: no session is lost and no counter is read as zero.
#[tokio::test]
async fn writes_that_reach_a_read_only_replica_fail_closed_as_unavailable() {
    use portcullis::session::redis::RedisStore;
    use portcullis::session::{AuthMethod, Identity, MfaUsed, Session, SessionId, SessionStore};
    use portcullis::storage::StoreError;
    if program("/usr/bin/redis-server", "redis-server").is_none() {
        return;
    }
    let dir = TempDir::new("readonly");
    let d = dir.path();
    let primary = redis_server(d, "--port", &[]).await;
    let replica = redis_server(
        d,
        "--port",
        &[
            "--replicaof".into(),
            "127.0.0.1".into(),
            primary.port.to_string(),
        ],
    )
    .await;
    let url = |port: u16| format!("redis://127.0.0.1:{port}/0");
    let clock = portcullis::clock::Clock::manual(1_800_000_000);
    // Started against a replica: refused at once (the start-up probe is a write).
    let on_replica = RedisStore::connect(&url(replica.port), "pc-ro:", clock.clone(), 100).await;
    assert!(matches!(on_replica, Err(StoreError::Unavailable(_))));
    // Connected to the primary, which is then demoted under it (what a failover does to a
    // primary that is still alive): the connection stays, the writes are refused.
    let store = RedisStore::connect(&url(primary.port), "pc-ro:", clock, 100)
        .await
        .unwrap();
    let mut r = redis(replica.port).await;
    let _: () = redis::cmd("REPLICAOF")
        .arg("NO")
        .arg("ONE")
        .query_async(&mut r)
        .await
        .unwrap();
    let mut p = redis(primary.port).await;
    let _: () = redis::cmd("REPLICAOF")
        .arg("127.0.0.1")
        .arg(replica.port)
        .query_async(&mut p)
        .await
        .unwrap();
    let token = portcullis::session::new_token().unwrap();
    let s = Session::new(
        SessionId::of(&token),
        Identity {
            user: "ann".into(),
            principal: "native:ann".into(),
            email: None,
            groups: vec![],
            roles: vec!["agent".into()],
            method: AuthMethod::Native,
            mfa: MfaUsed::Totp,
        },
        1_800_000_000,
        Duration::from_secs(3600),
        Duration::from_secs(600),
        None,
        None,
    )
    .unwrap();
    match store.insert(s).await {
        Err(StoreError::Unavailable(m)) => assert!(m.contains("read only"), "{m}"),
        other => panic!(
            "a write on a replica must be Unavailable: {:?}",
            other.map(|_| ())
        ),
    }
    assert!(matches!(
        store.incr("lockout:ann", Duration::from_secs(60)).await,
        Err(StoreError::Unavailable(_))
    ));
    assert!(matches!(
        store.claim_once("nonce:x", Duration::from_secs(60)).await,
        Err(StoreError::Unavailable(_))
    ));
}
