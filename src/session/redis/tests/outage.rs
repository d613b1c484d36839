//! Outages: a `redis-server` child of the test's own is stopped and started again (empty), and
//! the store must fail closed meanwhile and recover by itself. Needs `redis-server` on PATH.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use super::*;

/// A `redis-server` child of the test's own, killed on drop.
struct ChildRedis {
    child: std::process::Child,
    port: u16,
}

impl ChildRedis {
    /// A fresh server on a port of its own, or `None` (skip; a failure under CI) without
    /// `redis-server`. A port another process took between probe and bind is retried.
    fn start() -> Option<ChildRedis> {
        crate::testing::require(
            "redis-server",
            crate::testing::program("redis-server", &["--version"]),
        )?;
        for _ in 0..5 {
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .map(|a| a.port())
                .unwrap();
            if let Ok(server) = ChildRedis::start_on(port) {
                return Some(server);
            }
        }
        panic!("redis-server did not get a port in five tries");
    }

    /// A fresh server on `port` (a restart on the port the store was given); `Err` when the
    /// child exits before it listens (the port is taken).
    fn start_on(port: u16) -> Result<ChildRedis, std::process::ExitStatus> {
        let child = std::process::Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let mut up = ChildRedis { child, port };
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            // A connect that succeeds while the child has exited reached someone else.
            let connected = std::net::TcpStream::connect(("127.0.0.1", port)).is_ok();
            if let Some(exit) = up.child.try_wait().unwrap() {
                return Err(exit);
            }
            if connected {
                return Ok(up);
            }
            assert!(Instant::now() < deadline, "redis-server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for ChildRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_session_cache_fails_closed_when_redis_goes_away_and_comes_back_empty() {
    let Some(server) = ChildRedis::start() else {
        return;
    };
    let port = server.port;
    let url = format!("redis://127.0.0.1:{port}/0");
    let clock = Clock::manual(1_000);
    let st = store(&url, &test_prefix(), &clock, 10).await;
    st.spawn_invalidation();
    assert!(
        eventually(Duration::from_secs(5), || async {
            st.inner.cache.is_live()
        })
        .await,
        "subscription goes live"
    );
    let id = new_id();
    st.insert(session(&id, "ann", 1_000)).await.unwrap();
    assert!(st.get(&id).await.unwrap().is_some());
    assert!(st.get(&id).await.unwrap().is_some(), "now cached");

    // Redis gone: the cache stops being trusted within its window, and a cached session is
    // then refused as unavailable (503), never served from memory.
    drop(server);
    let started = Instant::now();
    assert!(
        eventually(Duration::from_secs(6), || async {
            matches!(st.get(&id).await, Err(StoreError::Unavailable(_)))
        })
        .await,
        "fails closed"
    );
    assert!(
        started.elapsed() < Duration::from_secs(6),
        "{:?}",
        started.elapsed()
    );
    assert!(!st.inner.cache.is_live());

    // Back (empty, no persistence): the subscription returns, nothing stale comes back.
    let _server = ChildRedis::start_on(port).unwrap();
    assert!(
        eventually(Duration::from_secs(10), || async {
            st.inner.cache.is_live()
        })
        .await,
        "subscription live again"
    );
    assert!(
        st.get(&id).await.unwrap().is_none(),
        "the old session is not resurrected"
    );
}

#[tokio::test]
async fn a_store_whose_redis_goes_away_fails_closed_and_recovers_by_itself() {
    let Some(server) = ChildRedis::start() else {
        return;
    };
    let port = server.port;
    let url = format!("redis://127.0.0.1:{port}/0");
    let clock = Clock::system();
    let st = store(&url, &test_prefix(), &clock, 10).await;
    st.ping().await.unwrap();
    st.put_ephemeral("k", b"v".to_vec(), Duration::from_secs(60))
        .await
        .unwrap();

    drop(server);
    for _ in 0..3 {
        let started = Instant::now();
        assert!(matches!(st.ping().await, Err(StoreError::Unavailable(_))));
        assert!(matches!(
            st.take_ephemeral("k").await,
            Err(StoreError::Unavailable(_))
        ));
        assert!(started.elapsed() < Duration::from_secs(5));
    }

    let _server = ChildRedis::start_on(port).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while st.ping().await.is_err() {
        assert!(Instant::now() < deadline, "store did not reconnect");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // A fresh server (no persistence): the old value is gone, new ones work.
    assert_eq!(st.take_ephemeral("k").await.unwrap(), None);
    assert!(st.claim_once("c", Duration::from_secs(5)).await.unwrap());
}
