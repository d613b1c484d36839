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

fn sha256_hex(s: &str) -> String {
    ring::digest::digest(&ring::digest::SHA256, s.as_bytes())
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

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

    let port = free_port();
    let extra = format!(
        "\n[admin]\nlisten = \"127.0.0.1:{port}\"\ntokens = [{{ name = \"ops\", sha256 = \"{}\" }}]\n",
        sha256_hex(TOKEN)
    );
    let gw = TestGateway::start_with(&extra, |_| {}).await;
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
