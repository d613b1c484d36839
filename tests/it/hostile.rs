//! Hostile input and load (issue 9): a panic inside a request is contained (500 page with a
//! correlation id, an error log line, a metric) and the gateway keeps serving, on the same
//! keep-alive connection too; and, end to end, no encoded path reaches the upstream as anything
//! other than the path the policy checked.

use crate::support::*;
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use portcullis::auth::policy::{self, RouteDecision};
use portcullis::proxy::path::normalize;
use proptest::prelude::*;
use proptest::test_runner::{Config as PropConfig, TestRunner};
use std::sync::{Arc, Mutex};

const TOKEN: &str = "hostile-admin-token-0123456789";

/// Log output of the gateway tasks running on this test's thread.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Captured {
    type Writer = Captured;
    fn make_writer(&'a self) -> Captured {
        self.clone()
    }
}

impl Captured {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

/// The correlation id an error page shows.
fn correlation_on_page(html: &str) -> String {
    let start = html
        .find("id=\"correlation-id\">")
        .expect("no correlation id on the page")
        + "id=\"correlation-id\">".len();
    let len = html[start..].find('<').unwrap();
    html[start..start + len].to_owned()
}

async fn panics_total(admin: &str, http: &Http) -> u64 {
    let auth = format!("Bearer {TOKEN}");
    let m = http
        .get(&format!("{admin}/metrics"), &[("authorization", &auth)])
        .await;
    assert_eq!(m.status, StatusCode::OK);
    m.text()
        .lines()
        .find_map(|l| l.strip_prefix("portcullis_panics_total "))
        .expect("portcullis_panics_total is not exposed")
        .parse()
        .unwrap()
}

// Current-thread runtime (the default): the gateway's tasks run on this thread, so the
// thread-local log subscriber below sees their events.
#[tokio::test]
async fn a_panicking_request_gets_a_500_page_and_the_gateway_keeps_serving() {
    let logs = Captured::default();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(logs.clone())
        .with_ansi(false)
        .with_max_level(tracing::Level::INFO)
        .finish();
    let _logging = tracing::subscriber::set_default(subscriber);

    let gw = TestGateway::start_with(&admin_extra(), |_| {}).await;
    let admin = format!(
        "http://{}",
        gw.running.as_ref().unwrap().admin_addr.unwrap()
    );
    let http = Http::new();
    assert_eq!(panics_total(&admin, &http).await, 0);
    gw.gateway().inject_panic_on_path(Some("/hc/boom".into()));

    // One keep-alive connection for a panicking request and then a normal one.
    let stream = tokio::net::TcpStream::connect(gw.addr).await.unwrap();
    let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    let driver = tokio::spawn(conn);
    let get = |path: &str| {
        Request::builder()
            .method(Method::GET)
            .uri(path)
            .header("host", gw.addr.to_string())
            .header("accept", "text/html")
            .body(Empty::<Bytes>::new())
            .unwrap()
    };
    let r = send.send_request(get("/hc/boom")).await.unwrap();
    assert_eq!(r.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(r.headers()["cache-control"], "no-store");
    assert_eq!(r.headers()["x-frame-options"], "DENY");
    assert!(r.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    let page =
        String::from_utf8(r.into_body().collect().await.unwrap().to_bytes().to_vec()).unwrap();
    assert!(page.contains("Something went wrong"), "{page}");
    assert!(
        !page.contains("injected test panic"),
        "panic text leaked to the page"
    );
    let correlation = correlation_on_page(&page);
    assert_eq!(correlation.len(), 12, "{correlation:?}");

    send.ready()
        .await
        .expect("the connection was closed after the panic");
    let r = send.send_request(get("/hc/after")).await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let body = r.into_body().collect().await.unwrap().to_bytes();
    let echoed: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(echoed["path"], "/hc/after");
    drop(send);
    let _ = driver.await;

    // The log line: error level, the same correlation id, what panicked.
    let log = logs.text();
    let line = log
        .lines()
        .find(|l| l.contains("request handler panicked") && l.contains(&correlation))
        .unwrap_or_else(|| panic!("no log line with correlation {correlation}:\n{log}"));
    assert!(line.contains("ERROR"), "{line}");
    assert!(line.contains("injected test panic on /hc/boom"), "{line}");

    // API clients get JSON with the reference; new connections are served.
    let r = http
        .get(&gw.url("/hc/boom"), &[("accept", "application/json")])
        .await;
    assert_eq!(r.status, StatusCode::INTERNAL_SERVER_ERROR);
    let j = r.json();
    assert_eq!(j["error"], "internal_error");
    let reference = j["reference"].as_str().unwrap();
    assert!(
        log_has(&logs, reference),
        "JSON reference {reference} not logged"
    );
    let r = http.get(&gw.url("/hc/fine"), &[]).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(panics_total(&admin, &http).await, 2);

    // Disarmed, the same path is proxied as usual.
    gw.gateway().inject_panic_on_path(None);
    let r = http.get(&gw.url("/hc/boom"), &[]).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(panics_total(&admin, &http).await, 2);
    gw.stop().await;
}

fn log_has(logs: &Captured, needle: &str) -> bool {
    logs.text().lines().any(|l| l.contains(needle))
}

/// Request paths built from the pieces encoding tricks are made of.
fn raw_path() -> impl Strategy<Value = String> {
    let piece = proptest::sample::select(
        &[
            "/", "//", "hc", "agent", "AGENT", "admin", "Admin", "x", "..", ".", "%2e", "%2E%2e",
            "%61", "%41", "%3B", ";", ";x=1", "%20", "%7e", "~", "%252e", "%2f", "%5c", "%00", "%",
            "%c3%a9",
        ][..],
    );
    proptest::collection::vec(piece, 0..9).prop_map(|p| format!("/{}", p.concat()))
}

/// End to end through the real proxy: whatever a user with the `end_user` role sends, the
/// upstream answers only for the normalised path the policy checked, on a route that admits them.
#[test]
fn encoded_paths_reach_the_upstream_only_as_the_path_the_policy_checked() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let gw = rt.block_on(TestGateway::start());
    let (cookie, _) = rt.block_on(gw.session_for("eve", &["end_user"]));
    let http = Http::new();
    let roles = vec!["end_user".to_owned()];
    let mut runner = TestRunner::new(PropConfig {
        cases: 128,
        failure_persistence: None,
        ..PropConfig::default()
    });
    let outcome = runner.run(&raw_path(), |raw| {
        let url = gw.url(&raw);
        if url.parse::<hyper::Uri>().is_err() {
            return Ok(()); // no client could send it
        }
        let r = rt.block_on(http.get(
            &url,
            &[("cookie", cookie.as_str()), ("accept", "application/json")],
        ));
        match normalize(&raw) {
            Err(_) => prop_assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", raw),
            Ok(checked) if r.status == StatusCode::OK => {
                let seen = r.json()["path"].as_str().unwrap().to_owned();
                prop_assert_eq!(&seen, &checked, "{}", raw);
                let admitted = match gw.gateway().routes.decide(&seen) {
                    RouteDecision::Route(route) => policy::admits(route, &roles),
                    _ => false,
                };
                prop_assert!(admitted, "{} reached {} past the policy", raw, seen);
            }
            Ok(_) => prop_assert!(
                [StatusCode::BAD_REQUEST, StatusCode::FORBIDDEN].contains(&r.status),
                "{} answered {}",
                raw,
                r.status
            ),
        }
        Ok(())
    });
    rt.block_on(gw.stop());
    if let Err(e) = outcome {
        panic!("{e}");
    }
}

/// An admin listener on a port the system picks (read back from `Running::admin_addr`).
fn admin_extra() -> String {
    format!(
        "\n[admin]\nlisten = \"127.0.0.1:0\"\ntokens = [{{ name = \"ops\", sha256 = \"{}\" }}]\n",
        sha256_hex(TOKEN)
    )
}

async fn metric(gw: &TestGateway, name: &str) -> u64 {
    let admin = format!(
        "http://{}",
        gw.running.as_ref().unwrap().admin_addr.unwrap()
    );
    let auth = format!("Bearer {TOKEN}");
    let m = Http::new()
        .get(&format!("{admin}/metrics"), &[("authorization", &auth)])
        .await;
    m.text()
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .unwrap_or_else(|| panic!("{name} is not exposed"))
        .parse()
        .unwrap()
}

/// Reads until EOF or `limit`; the bytes read and whether the peer closed.
async fn read_until_closed(
    s: &mut tokio::net::TcpStream,
    limit: std::time::Duration,
) -> (Vec<u8>, bool) {
    use tokio::io::AsyncReadExt;
    let mut out = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        match tokio::time::timeout_at(deadline, s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return (out, true),
            Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
            Err(_) => return (out, false),
        }
    }
}

#[tokio::test]
async fn slowloris_connections_are_cut_while_a_normal_client_is_served() {
    use tokio::io::AsyncWriteExt;
    let gw = TestGateway::start_tuned("header_timeout = \"1s\"", "", |_| {}).await;
    let (cookie, _) = gw.session_for("norm", &["agent"]).await;
    // 300 connections dribbling a request head, one byte every 100 ms.
    let mut slow = Vec::new();
    for _ in 0..300 {
        let mut s = tokio::net::TcpStream::connect(gw.addr).await.unwrap();
        s.write_all(b"GET /agent/x HTTP/1.1\r\nHost: a\r\n")
            .await
            .unwrap();
        slow.push(s);
    }
    let dribble = tokio::spawn(async move {
        let mut closed = 0usize;
        for round in 0..30 {
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            closed = 0;
            for s in slow.iter_mut() {
                if s.write_all(format!("X-{round}: y\r\n").as_bytes())
                    .await
                    .is_err()
                {
                    closed += 1;
                }
            }
        }
        // Whatever is still open must be closed by the gateway now.
        let mut cut = 0;
        for s in slow.iter_mut() {
            let (bytes, eof) = read_until_closed(s, std::time::Duration::from_secs(2)).await;
            if eof {
                cut += 1;
                let t = String::from_utf8_lossy(&bytes);
                assert!(bytes.is_empty() || t.starts_with("HTTP/1.1 408"), "{t}");
            }
        }
        (closed, cut)
    });
    // Meanwhile a normal client is served promptly, several times.
    let http = Http::new();
    for _ in 0..5 {
        let t = std::time::Instant::now();
        let r = http.get(&gw.url("/agent/x"), &[("cookie", &cookie)]).await;
        assert_eq!(r.status, StatusCode::OK);
        // Generous for a loaded CI machine; a starved gateway would take the 10 s header timeout.
        assert!(
            t.elapsed() < std::time::Duration::from_secs(2),
            "{:?}",
            t.elapsed()
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    let (_, cut) = dribble.await.unwrap();
    assert_eq!(
        cut, 300,
        "every slow connection was cut by the header timeout"
    );
    gw.stop().await;
}

#[tokio::test]
async fn a_slow_post_to_a_gateway_endpoint_gets_408() {
    use tokio::io::AsyncWriteExt;
    let gw = TestGateway::start_tuned(
        "body_timeout = \"1s\"",
        "\n[native]\n[storage]\nurl = \"sqlite://users.db\"\n",
        |_| {},
    )
    .await;
    let mut s = tokio::net::TcpStream::connect(gw.addr).await.unwrap();
    s.write_all(
        b"POST /normal HTTP/1.1\r\nHost: a\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 1000\r\n\r\nusername=",
    )
    .await
    .unwrap();
    let t = std::time::Instant::now();
    let (bytes, _) = read_until_closed(&mut s, std::time::Duration::from_secs(5)).await;
    let text = String::from_utf8_lossy(&bytes);
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    assert!(
        t.elapsed() < std::time::Duration::from_secs(3),
        "{:?}",
        t.elapsed()
    );
    gw.stop().await;
}

#[tokio::test]
async fn a_client_that_stops_reading_is_cut_after_send_timeout() {
    use tokio::io::AsyncWriteExt;
    let gw = TestGateway::start_tuned("send_timeout = \"1s\"", &admin_extra(), |_| {}).await;
    let (cookie, _) = gw.session_for("reader", &["agent"]).await;
    let total: u64 = 256 * 1024 * 1024;
    let mut s = tokio::net::TcpStream::connect(gw.addr).await.unwrap();
    s.write_all(
        format!("GET /agent/big?n={total} HTTP/1.1\r\nHost: a\r\nCookie: {cookie}\r\n\r\n")
            .as_bytes(),
    )
    .await
    .unwrap();
    // Stop reading; the socket buffers fill and the gateway's writes stall.
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    let (bytes, eof) = read_until_closed(&mut s, std::time::Duration::from_secs(10)).await;
    assert!(eof, "the gateway closed the connection");
    assert!(
        (bytes.len() as u64) < total,
        "cut before the end ({} bytes)",
        bytes.len()
    );
    assert!(metric(&gw, "portcullis_send_timeouts_total").await >= 1);
    // A reader that keeps reading gets everything.
    let http = Http::new();
    let r = http
        .get(
            &gw.url(&format!("/agent/big?n={}", 8 * 1024 * 1024)),
            &[("cookie", &cookie)],
        )
        .await;
    assert_eq!(r.body.len(), 8 * 1024 * 1024);
    gw.stop().await;
}

#[tokio::test]
async fn connections_per_ip_are_limited_and_given_back() {
    let gw = TestGateway::start_tuned("max_connections_per_ip = 3", &admin_extra(), |_| {}).await;
    let (cookie, _) = gw.session_for("ip", &["agent"]).await;
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(tokio::net::TcpStream::connect(gw.addr).await.unwrap());
    }
    // Let the gateway accept them.
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let mut fourth = tokio::net::TcpStream::connect(gw.addr).await.unwrap();
    let (_, eof) = read_until_closed(&mut fourth, std::time::Duration::from_secs(2)).await;
    assert!(
        eof,
        "the fourth connection from the same address is closed at once"
    );
    assert_eq!(
        metric(
            &gw,
            "portcullis_connections_refused_total{reason=\"per_ip\"}"
        )
        .await,
        1
    );
    drop(held.pop());
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let r = Http::new()
        .get(&gw.url("/agent/x"), &[("cookie", &cookie)])
        .await;
    assert_eq!(r.status, StatusCode::OK, "a freed slot serves again");
    gw.stop().await;
}

#[tokio::test]
async fn a_trickled_http2_preface_is_cut_after_the_header_timeout() {
    use tokio::io::AsyncWriteExt;
    let gw = TestGateway::start_tuned("header_timeout = \"1s\"", "", |_| {}).await;
    // Half the preface, then nothing; and the preface one byte every 300 ms (24 bytes would
    // take 7 s). hyper-util reads the preface to pick HTTP/2 before hyper's own head timeout.
    let mut stalled = tokio::net::TcpStream::connect(gw.addr).await.unwrap();
    stalled.write_all(b"PRI * HTTP/2").await.unwrap();
    let mut trickled = tokio::net::TcpStream::connect(gw.addr).await.unwrap();
    let t = std::time::Instant::now();
    let trickle = tokio::spawn(async move {
        for b in b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" {
            if trickled.write_all(&[*b]).await.is_err() {
                return (trickled, true);
            }
            tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        }
        (trickled, false)
    });
    let (bytes, eof) = read_until_closed(&mut stalled, std::time::Duration::from_secs(5)).await;
    assert!(eof, "a stalled preface was kept open");
    assert!(bytes.is_empty());
    let (mut trickled, cut_while_writing) = trickle.await.unwrap();
    if !cut_while_writing {
        let (_, eof) = read_until_closed(&mut trickled, std::time::Duration::from_secs(1)).await;
        assert!(eof, "a trickled preface was kept open");
    }
    assert!(
        t.elapsed() < std::time::Duration::from_secs(6),
        "{:?}",
        t.elapsed()
    );
    gw.stop().await;
}

#[tokio::test]
async fn connections_that_send_nothing_are_closed_after_the_header_timeout() {
    let gw = TestGateway::start_tuned("header_timeout = \"1s\"", "", |_| {}).await;
    let mut silent = Vec::new();
    for _ in 0..10 {
        silent.push(tokio::net::TcpStream::connect(gw.addr).await.unwrap());
    }
    let t = std::time::Instant::now();
    for s in silent.iter_mut() {
        let (bytes, eof) = read_until_closed(s, std::time::Duration::from_secs(5)).await;
        assert!(eof, "a silent connection was kept open");
        assert!(bytes.is_empty());
    }
    assert!(
        t.elapsed() < std::time::Duration::from_secs(3),
        "{:?}",
        t.elapsed()
    );
    gw.stop().await;
}
