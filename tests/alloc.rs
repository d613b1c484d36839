//! Allocations per proxied request on the HTTP/1.1 fast lane (issue 20): after warm-up, a
//! signed-in GET through the lane allocates nothing on the gateway's thread with the memory
//! store, and nothing per request with Redis (a hit in the replica's session cache). Its own
//! test binary, because it installs a counting global allocator.
//!
//! The gateway runs on a single-threaded runtime on a thread of its own; the upstream and the
//! client are plain blocking sockets on others, written not to allocate per request.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use portcullis::clock::Clock;
use portcullis::config::Config;
use portcullis::session::{
    new_token, AuthMethod, Identity, MfaUsed, Session, SessionId, SessionStore,
};
use stats_alloc::{Region, StatsAlloc, INSTRUMENTED_SYSTEM};
use std::alloc::System;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

const BODY: usize = 1024;

/// Where the blank line ending a head is in `buf`.
fn head_end(buf: &[u8]) -> Option<usize> {
    buf.windows(4).position(|w| w == b"\r\n\r\n")
}

/// A keep-alive upstream answering every request head with a 1 KiB body; allocates nothing
/// per request (its buffers are made per connection).
fn upstream() -> std::net::SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { continue };
            std::thread::spawn(move || {
                let answer = format!(
                    "HTTP/1.1 200 OK\r\nContent-Length: {BODY}\r\nContent-Type: text/plain\r\n\r\n{}",
                    "x".repeat(BODY)
                );
                let mut buf = [0u8; 16384];
                let mut len = 0;
                loop {
                    let Ok(n) = s.read(&mut buf[len..]) else {
                        return;
                    };
                    if n == 0 {
                        return;
                    }
                    len += n;
                    while let Some(end) = head_end(&buf[..len]) {
                        buf.copy_within(end + 4..len, 0);
                        len -= end + 4;
                        if s.write_all(answer.as_bytes()).is_err() {
                            return;
                        }
                    }
                }
            });
        }
    });
    addr
}

/// Sends `request` on `s` and reads its whole response into `buf`; the status is 200.
/// Allocates nothing.
fn get(s: &mut TcpStream, request: &[u8], buf: &mut [u8]) {
    s.write_all(request).unwrap();
    let mut len = 0;
    loop {
        if let Some(end) = head_end(&buf[..len]) {
            let head = &buf[..end];
            assert!(head.starts_with(b"HTTP/1.1 200 "), "not a 200");
            let body = head
                .split(|b| *b == b'\n')
                .find_map(|l| {
                    let l = l.strip_suffix(b"\r").unwrap_or(l);
                    let name = l.get(..15)?;
                    name.eq_ignore_ascii_case(b"content-length:").then(|| {
                        std::str::from_utf8(&l[15..])
                            .ok()?
                            .trim()
                            .parse::<usize>()
                            .ok()
                    })?
                })
                .expect("a response with a length");
            if len >= end + 4 + body {
                assert_eq!(len, end + 4 + body, "nothing beyond the response");
                return;
            }
        }
        let n = s.read(&mut buf[len..]).unwrap();
        assert!(n > 0, "gateway closed the connection");
        len += n;
    }
}

/// What `N` signed-in fast-lane requests after warm-up allocated in the whole process, and how
/// many requests the lane handed to hyper; `session` holds the `[session]` keys of the store.
fn allocations_per_lane_requests(session: &str) -> (stats_alloc::Stats, u64) {
    let up = upstream();
    let dir = std::env::temp_dir().join(format!("pc-alloc-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let path = dir.join("portcullis.toml");
    std::fs::write(
        &path,
        format!(
            r#"
[server]
listen = "127.0.0.1:{port}"
public_url = "http://127.0.0.1:{port}"
access_log = false
workers = 1

[upstream]
url = "http://{up}"

[session]
{session}

[roles.end_user]
groups = ["end-users"]
require_mfa = false

[[routes]]
prefix = "/"
allow_roles = ["end_user"]
"#
        ),
    )
    .unwrap();
    let config = Config::load(&path).unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    // Sent when the test is done: the gateway's runtime then stops, with every task it runs
    // (a Redis store's subscription would otherwise go on allocating in the next test).
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let gateway = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let clock = Clock::manual(1_800_000_000);
            let running =
                portcullis::server::start_prepared(config, clock.clone(), Some(listener), |_| {})
                    .await
                    .unwrap();
            let gw = &running.gateway;
            let token = new_token().unwrap();
            let identity = Identity {
                user: "ann".into(),
                principal: "native:ann".into(),
                email: Some("ann@example.com".into()),
                groups: vec!["end-users".into()],
                roles: vec!["end_user".into()],
                method: AuthMethod::Native,
                mfa: MfaUsed::None,
            };
            let s = Session::new(
                SessionId::of(&token),
                identity,
                clock.now(),
                gw.config.session.max_lifetime,
                gw.config.session.idle_timeout,
                Some("127.0.0.1".into()),
                None,
            )
            .unwrap();
            let id = s.id.clone();
            gw.store.insert(s).await.unwrap();
            tx.send((
                id,
                format!("{}={}", gw.cookies.session, token.expose()),
                std::sync::Arc::clone(gw),
            ))
            .unwrap();
            let _ = stopped.await;
        });
    });
    let (id, cookie, gw) = rx.recv().unwrap();
    let request = format!(
        "GET /app/page?x=1 HTTP/1.1\r\nHost: gw.test\r\nUser-Agent: alloc-test\r\nAccept: */*\r\nCookie: {cookie}\r\n\r\n"
    );
    let mut buf = vec![0u8; 16384];
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_nodelay(true).unwrap();
    // Warm-up: the connection's buffers, the upstream pool, the session's signed assertion.
    for _ in 0..200 {
        get(&mut s, request.as_bytes(), &mut buf);
    }
    // Counted in the whole process (the allocator cannot tell threads apart): the client and
    // the upstream above allocate nothing per request, so what is counted is the gateway's.
    let region = Region::new(GLOBAL);
    for _ in 0..N {
        get(&mut s, request.as_bytes(), &mut buf);
    }
    let change = region.change();
    let handoffs = gw.metrics.handoffs();
    // The session's keys go (a Redis store's are shared with other runs).
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(gw.store.remove(&id))
        .unwrap();
    drop(gw);
    let _ = stop.send(());
    gateway.join().unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    (change, handoffs)
}

const N: usize = 2000;

/// The allocator counts the whole process: the tests take turns.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

#[test]
fn a_signed_in_get_on_the_fast_lane_allocates_nothing_after_warm_up() {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let (change, handoffs) = allocations_per_lane_requests("");
    // Every request took the fast lane (none was handed to hyper).
    assert_eq!(handoffs, 0);
    assert_eq!(
        (change.allocations, change.reallocations),
        (0, 0),
        "allocations in {N} fast-lane requests after warm-up: {change:?}"
    );
}

#[test]
fn with_redis_a_cached_session_costs_no_allocation_per_request() {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let Some(url) = portcullis::testing::redis_url() else {
        return;
    };
    let prefix = format!("pc-alloc-{}:", std::process::id());
    let (change, handoffs) = allocations_per_lane_requests(&format!(
        "store = \"redis\"\nredis_url = \"{url}\"\nredis_prefix = \"{prefix}\""
    ));
    assert_eq!(handoffs, 0);
    eprintln!("with Redis: {change:?} in {N} requests");
    // The Redis subscription's heartbeats (four a second) allocate in the same process, so
    // the count is not zero; one allocation per request (a boxed Redis read, a round trip)
    // would be at least N.
    assert!(
        change.allocations < N / 4,
        "allocations in {N} fast-lane requests with Redis after warm-up: {change:?}"
    );
}
