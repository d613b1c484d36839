//! TLS to the upstream (issue 17 part 3, DESIGN.md §9): real HTTPS upstreams with a test CA.
//! Requests, streams and WebSockets pass over h2 and http/1.1; connections are shared or
//! reused; every certificate that does not verify is a 502 (each of these tests passes a
//! request through if verification were off); a rotated CA applies after a reload.

use crate::support::tls_upstream::{Alpn, Leaf, TestCa, TlsUpstream, Validity};
use crate::support::{base_config, start_gateway, Http, Resp, TempDir, TestGateway, TestUpstream};
use futures_util::{SinkExt, StreamExt};
use hyper::{Method, StatusCode, Version};
use portcullis::clock::Clock;
use std::sync::atomic::Ordering;

/// The gateway in front of `url`, with `files` written beside its config and `tls` as the
/// body of `upstream.tls` (none when empty).
async fn gateway(url: &str, files: &[(&str, &str)], tls: &str) -> TestGateway {
    let unused = TestUpstream::start().await;
    let dir = TempDir::new("up-tls");
    for (name, text) in files {
        std::fs::write(dir.path().join(name), text).unwrap();
    }
    let config_path = dir.path().join("portcullis.toml");
    let clock = Clock::manual(1_800_000_000);
    let plain = format!("url = \"http://{}\"", unused.addr);
    let running = start_gateway(&config_path, clock.clone(), |port| {
        let mut text =
            base_config(port, unused.addr, "").replace(&plain, &format!("url = \"{url}\""));
        if !tls.is_empty() {
            text = text.replace(
                "connect_timeout = \"1s\"\n",
                &format!("connect_timeout = \"1s\"\ntls = {{ {tls} }}\n"),
            );
        }
        text
    })
    .await;
    let addr = running.addr;
    TestGateway {
        dir,
        upstream: unused,
        running: Some(running),
        addr,
        clock,
        config_path,
    }
}

/// An upstream with `leaf` and a gateway trusting only `ca`, reached at 127.0.0.1.
async fn behind(leaf: &Leaf, ca: &TestCa, alpn: Alpn) -> (TlsUpstream, TestGateway) {
    let up = TlsUpstream::start(leaf, alpn, None).await;
    let gw = gateway(
        &format!("https://{}", up.addr),
        &[("ca.pem", &ca.pem)],
        r#"ca = "ca.pem""#,
    )
    .await;
    (up, gw)
}

async fn get(gw: &TestGateway, path: &str) -> Resp {
    let (cookie, _) = gw.session_for("ann", &["agent"]).await;
    Http::new().get(&gw.url(path), &[("cookie", &cookie)]).await
}

fn tls_failures(gw: &TestGateway) -> String {
    // The counters are shared by every reloaded state.
    gw.gateway()
        .metrics
        .render(None)
        .lines()
        .find(|l| l.starts_with("portcullis_upstream_tls_failures_total "))
        .unwrap_or_default()
        .to_owned()
}

/// The one fixed answer to an upstream that cannot be reached, whatever the TLS reason.
fn assert_refused(r: &Resp, up: &TlsUpstream) {
    assert_eq!(r.status, StatusCode::BAD_GATEWAY, "{}", r.text());
    let v = r.json();
    assert_eq!(v["error"], "upstream_unavailable");
    assert_eq!(
        v["detail"],
        "The application behind this gateway cannot be reached."
    );
    assert!(!r.text().contains("certificate"), "{}", r.text());
    assert!(
        up.requests.lock().unwrap().is_empty(),
        "a request reached an upstream that failed verification"
    );
}

#[tokio::test]
async fn requests_reach_an_h2_upstream_over_one_shared_tls_connection() {
    let ca = TestCa::new("upstream ca");
    let leaf = ca.server(&["127.0.0.1", "app.internal"], Validity::Now);
    let (up, gw) = behind(&leaf, &ca, Alpn::H2AndHttp11).await;
    let (cookie, _) = gw.session_for("ann", &["agent"]).await;
    let http = Http::new();
    let c = [("cookie", cookie.as_str())];

    let r = http.get(&gw.url("/agent/x?q=1"), &c).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(r.json()["path"], "/agent/x");
    assert_eq!(
        r.upstream_header("x-forwarded-user").as_deref(),
        Some("ann")
    );
    // HTTP/2 carries the Host as :authority; the upstream sees it as the Host.
    assert!(r.json()["headers"]
        .to_string()
        .contains(&gw.addr.to_string()));

    let body = vec![b'u'; 300_000];
    let r = http
        .send(Method::POST, &gw.url("/agent/upload"), &c, body)
        .await;
    assert_eq!(r.json(), serde_json::json!({"received": 300_000}));

    let r = http.get(&gw.url("/agent/big?n=2000000"), &c).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body.len(), 2_000_000);

    let many = (0..8).map(|i| {
        let http = &http;
        let url = gw.url(&format!("/agent/slow?ms=50&i={i}"));
        let cookie = cookie.clone();
        async move { http.get(&url, &[("cookie", &cookie)]).await.status }
    });
    let statuses = futures_util::future::join_all(many).await;
    assert!(
        statuses.iter().all(|s| *s == StatusCode::OK),
        "{statuses:?}"
    );

    assert_eq!(up.versions().len(), 11);
    assert!(up.versions().iter().all(|v| *v == Version::HTTP_2));
    assert_eq!(
        up.accepted.load(Ordering::SeqCst),
        1,
        "HTTP/2 requests share one connection"
    );
    gw.stop().await;
}

#[tokio::test]
async fn an_http1_only_tls_upstream_gets_pooled_connections_that_are_reused() {
    let ca = TestCa::new("upstream ca");
    let leaf = ca.server(&["127.0.0.1"], Validity::Now);
    let (up, gw) = behind(&leaf, &ca, Alpn::Http11Only).await;
    let (cookie, _) = gw.session_for("ann", &["agent"]).await;
    let http = Http::new();
    let c = [("cookie", cookie.as_str())];
    for i in 0..4 {
        let r = http.get(&gw.url(&format!("/agent/x{i}")), &c).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    }
    let r = http
        .send(
            Method::POST,
            &gw.url("/agent/upload"),
            &c,
            vec![b'p'; 70_000],
        )
        .await;
    assert_eq!(r.json(), serde_json::json!({"received": 70_000}));
    let r = http.get(&gw.url("/agent/big?n=500000"), &c).await;
    assert_eq!(r.body.len(), 500_000);
    assert!(up.versions().iter().all(|v| *v == Version::HTTP_11));
    // The rustls upstream sends two TLS 1.3 session tickets after the handshake; they are read
    // (by the TLS layer) before the first response, so they never make a pooled connection
    // look as if something arrived while it was idle.
    assert_eq!(
        up.accepted.load(Ordering::SeqCst),
        1,
        "sequential requests reuse one TLS connection"
    );
    gw.stop().await;
}

#[tokio::test]
async fn a_websocket_reaches_an_h2_capable_tls_upstream_over_http1() {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    use tokio_tungstenite::tungstenite::Message;
    let ca = TestCa::new("upstream ca");
    let leaf = ca.server(&["127.0.0.1"], Validity::Now);
    let (up, gw) = behind(&leaf, &ca, Alpn::H2AndHttp11).await;
    // The shared connection is HTTP/2 first.
    assert_eq!(get(&gw, "/agent/x").await.status, StatusCode::OK);
    let (cookie, _) = gw.session_for("ann", &["agent"]).await;
    let mut req = format!("ws://{}/agent/ws", gw.addr)
        .into_client_request()
        .unwrap();
    req.headers_mut().insert("cookie", cookie.parse().unwrap());
    let stream = tokio::net::TcpStream::connect(gw.addr).await.unwrap();
    let (mut ws, resp) = tokio_tungstenite::client_async(req, stream).await.unwrap();
    assert_eq!(resp.status(), StatusCode::SWITCHING_PROTOCOLS);
    for msg in ["hello", "over tls"] {
        ws.send(Message::text(msg)).await.unwrap();
        let echo = ws.next().await.unwrap().unwrap();
        assert_eq!(echo.into_text().unwrap().as_str(), msg);
    }
    let seen = up.requests.lock().unwrap().clone();
    assert_eq!(
        seen,
        vec![
            (Version::HTTP_2, "/agent/x".to_owned()),
            (Version::HTTP_11, "/agent/ws".to_owned())
        ]
    );
    assert_eq!(up.accepted.load(Ordering::SeqCst), 2);
    gw.stop().await;
}

#[tokio::test]
async fn a_certificate_from_an_unknown_ca_is_a_502_and_counted() {
    let trusted = TestCa::new("trusted ca");
    let other = TestCa::new("other ca");
    let leaf = other.server(&["127.0.0.1"], Validity::Now);
    let (up, gw) = behind(&leaf, &trusted, Alpn::H2AndHttp11).await;
    let r = get(&gw, "/agent/x").await;
    assert_refused(&r, &up);
    assert_eq!(up.handshakes.load(Ordering::SeqCst), 0);
    assert_eq!(
        tls_failures(&gw),
        "portcullis_upstream_tls_failures_total 1"
    );
    gw.stop().await;
}

#[tokio::test]
async fn without_a_configured_ca_only_the_web_pki_is_trusted() {
    let ca = TestCa::new("private ca");
    let up = TlsUpstream::start(
        &ca.server(&["127.0.0.1"], Validity::Now),
        Alpn::H2AndHttp11,
        None,
    )
    .await;
    let gw = gateway(&format!("https://{}", up.addr), &[], "").await;
    let r = get(&gw, "/agent/x").await;
    assert_refused(&r, &up);
    gw.stop().await;
}

#[tokio::test]
async fn a_certificate_for_another_name_is_a_502() {
    let ca = TestCa::new("upstream ca");
    let leaf = ca.server(&["other.internal"], Validity::Now);
    let (up, gw) = behind(&leaf, &ca, Alpn::Http11Only).await;
    let r = get(&gw, "/agent/x").await;
    assert_refused(&r, &up);
    gw.stop().await;
}

#[tokio::test]
async fn server_name_is_the_name_verified_instead_of_the_url_host() {
    let ca = TestCa::new("upstream ca");
    let leaf = ca.server(&["app.internal"], Validity::Now);
    let up = TlsUpstream::start(&leaf, Alpn::H2AndHttp11, None).await;
    let url = format!("https://{}", up.addr);
    let files = [("ca.pem", ca.pem.as_str())];
    // The URL's host (127.0.0.1) is not in the certificate.
    let gw = gateway(&url, &files, r#"ca = "ca.pem""#).await;
    assert_refused(&get(&gw, "/agent/x").await, &up);
    gw.stop().await;
    let gw = gateway(
        &url,
        &files,
        r#"ca = "ca.pem", server_name = "app.internal""#,
    )
    .await;
    let r = get(&gw, "/agent/x").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    gw.stop().await;
    // ... and it is verified: another name does not pass.
    let gw = gateway(
        &url,
        &files,
        r#"ca = "ca.pem", server_name = "wrong.internal""#,
    )
    .await;
    let r = get(&gw, "/agent/x").await;
    assert_eq!(r.status, StatusCode::BAD_GATEWAY);
    gw.stop().await;
}

#[tokio::test]
async fn an_expired_or_not_yet_valid_certificate_is_a_502() {
    let ca = TestCa::new("upstream ca");
    for validity in [Validity::Expired, Validity::NotYetValid] {
        let leaf = ca.server(&["127.0.0.1"], validity);
        let (up, gw) = behind(&leaf, &ca, Alpn::Http11Only).await;
        assert_refused(&get(&gw, "/agent/x").await, &up);
        gw.stop().await;
    }
}

#[tokio::test]
async fn the_client_certificate_is_presented_and_an_upstream_requiring_one_refuses_without() {
    let ca = TestCa::new("upstream ca");
    let leaf = ca.server(&["127.0.0.1"], Validity::Now);
    let client = ca.client("portcullis");
    for alpn in [Alpn::Http11Only, Alpn::H2AndHttp11] {
        let up = TlsUpstream::start(&leaf, alpn, Some(&ca)).await;
        let url = format!("https://{}", up.addr);
        let gw = gateway(
            &url,
            &[
                ("ca.pem", &ca.pem),
                ("client.pem", &client.cert),
                ("client.key", &client.key),
            ],
            r#"ca = "ca.pem", client_cert = "client.pem", client_key = "client.key""#,
        )
        .await;
        let r = get(&gw, "/agent/x").await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text());
        assert_eq!(up.client_certs.load(Ordering::SeqCst), 1);
        gw.stop().await;

        let gw = gateway(&url, &[("ca.pem", &ca.pem)], r#"ca = "ca.pem""#).await;
        let r = get(&gw, "/agent/x").await;
        assert_eq!(r.status, StatusCode::BAD_GATEWAY, "{}", r.text());
        assert_eq!(
            up.requests.lock().unwrap().len(),
            1,
            "only the mTLS request"
        );
        gw.stop().await;
    }
}

#[tokio::test]
async fn a_rotated_ca_file_applies_to_new_upstream_connections_after_a_reload() {
    let old = TestCa::new("old ca");
    let new = TestCa::new("new ca");
    let up = TlsUpstream::start(
        &new.server(&["127.0.0.1"], Validity::Now),
        Alpn::Http11Only,
        None,
    )
    .await;
    let gw = gateway(
        &format!("https://{}", up.addr),
        &[("ca.pem", &old.pem)],
        r#"ca = "ca.pem""#,
    )
    .await;
    let live = std::sync::Arc::clone(&gw.running.as_ref().unwrap().live);
    assert_eq!(get(&gw, "/agent/x").await.status, StatusCode::BAD_GATEWAY);

    std::fs::write(gw.dir.path().join("ca.pem"), &new.pem).unwrap();
    let done = live.reload("test").await.unwrap();
    assert_eq!(done.restart_required, Vec::<&str>::new());
    assert_eq!(get(&gw, "/agent/x").await.status, StatusCode::OK);

    // Back to the old CA: the pooled connection the new CA verified is not used again.
    std::fs::write(gw.dir.path().join("ca.pem"), &old.pem).unwrap();
    live.reload("test").await.unwrap();
    assert_eq!(get(&gw, "/agent/x").await.status, StatusCode::BAD_GATEWAY);
    gw.stop().await;
}

#[tokio::test]
async fn a_reload_to_an_https_upstream_takes_keep_alive_connections_off_the_plain_fast_lane() {
    let ca = TestCa::new("upstream ca");
    let up = TlsUpstream::start(
        &ca.server(&["127.0.0.1"], Validity::Now),
        Alpn::Http11Only,
        None,
    )
    .await;
    let gw = TestGateway::start().await;
    let live = std::sync::Arc::clone(&gw.running.as_ref().unwrap().live);
    let (cookie, _) = gw.session_for("ann", &["agent"]).await;
    let http = Http::new();
    let c = [("cookie", cookie.as_str())];
    // A bodiless GET with a session: the fast lane serves this keep-alive connection.
    assert_eq!(
        http.get(&gw.url("/agent/x"), &c).await.status,
        StatusCode::OK
    );
    std::fs::write(gw.dir.path().join("ca.pem"), &ca.pem).unwrap();
    let text = std::fs::read_to_string(&gw.config_path).unwrap().replace(
        &format!("url = \"http://{}\"", gw.upstream.addr),
        &format!("url = \"https://{}\"\ntls = {{ ca = \"ca.pem\" }}", up.addr),
    );
    std::fs::write(&gw.config_path, text).unwrap();
    live.reload("test").await.unwrap();
    // The same connection's next request goes over TLS, never in clear to the new upstream.
    let r = http.get(&gw.url("/agent/y"), &c).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(
        up.requests.lock().unwrap().clone(),
        vec![(Version::HTTP_11, "/agent/y".to_owned())]
    );
    gw.stop().await;
}

#[tokio::test]
async fn a_handshake_that_stalls_is_a_502_within_the_connect_timeout() {
    // Accepts TCP, never answers the ClientHello.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let hold = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = listener.accept().await {
            held.push(s);
        }
    });
    let ca = TestCa::new("upstream ca");
    let gw = gateway(
        &format!("https://{addr}"),
        &[("ca.pem", &ca.pem)],
        r#"ca = "ca.pem""#,
    )
    .await;
    let started = std::time::Instant::now();
    let r = get(&gw, "/agent/x").await;
    // connect_timeout is 1s, upstream.timeout 3s (a 504): the handshake is within the first.
    assert_eq!(r.status, StatusCode::BAD_GATEWAY, "{}", r.text());
    assert!(started.elapsed() < std::time::Duration::from_millis(2500));
    assert_eq!(
        tls_failures(&gw),
        "portcullis_upstream_tls_failures_total 1"
    );
    hold.abort();
    gw.stop().await;
}
