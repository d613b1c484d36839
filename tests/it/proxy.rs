//! The proxy path: header hygiene, sessions, route policy, return paths, upstream failures,
//! WebSockets, HTTP/2 over TLS.

use crate::support::*;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine as _;
use hyper::{Method, StatusCode};
use portcullis::session::SessionStore;

const BROWSER: (&str, &str) = ("accept", "text/html,application/xhtml+xml");

#[tokio::test]
async fn spoofed_identity_headers_never_reach_the_upstream() {
    let gw = TestGateway::start().await;
    let http = Http::new();
    let spoof: Vec<(&str, &str)> = vec![
        ("X-Forwarded-User", "mallory"),
        ("x-forwarded-user", "mallory2"),
        ("X_Forwarded_User", "mallory3"),
        ("x_FORWARDED_user", "mallory4"),
        ("X-Forwarded-Email", "m@evil"),
        ("X-Forwarded-Groups", "admins"),
        ("X-Auth-Roles", "admin"),
        ("X_Auth_Roles", "admin"),
        ("X-Auth-Method", "oidc:okta"),
        ("X-Auth-MFA", "idp"),
        ("X-Auth-Session", "forged"),
        ("X-Portcullis-Assertion", "forged.jwt.value"),
        ("X-Forwarded-For", "10.9.9.9"),
        ("X_Forwarded_For", "10.9.9.8"),
        ("X-Forwarded-Host", "evil.example"),
        ("X-Forwarded-Proto", "https"),
        ("X-Real-IP", "10.1.1.1"),
        ("Forwarded", "for=10.1.1.1"),
    ];
    // Anonymous, on a public route: nothing identity-like may arrive.
    let r = http.get(&gw.url("/hc/page"), &spoof).await;
    assert_eq!(r.status, StatusCode::OK);
    let got = r.upstream_headers();
    for (name, _) in &got {
        assert!(
            ![
                "x-forwarded-user",
                "x-forwarded-email",
                "x-forwarded-groups",
                "x-auth-roles",
                "x-auth-method",
                "x-auth-mfa",
                "x-auth-session",
                "x-portcullis-assertion",
                "x-real-ip",
                "forwarded"
            ]
            .contains(&name.as_str())
                && !name.contains('_'),
            "spoofed header {name} reached the upstream"
        );
    }
    assert_eq!(
        r.upstream_header("x-forwarded-for").as_deref(),
        Some("127.0.0.1")
    );
    assert_eq!(
        r.upstream_header("x-forwarded-proto").as_deref(),
        Some("http")
    );

    // Signed in: exactly the gateway's values arrive, once each.
    let (cookie, id) = gw.session_for("ann", &["agent"]).await;
    let mut h = spoof.clone();
    h.push(("cookie", &cookie));
    let r = http.get(&gw.url("/agent/tickets"), &h).await;
    assert_eq!(r.status, StatusCode::OK);
    let got = r.upstream_headers();
    let values = |n: &str| {
        got.iter()
            .filter(|(k, _)| k == n)
            .map(|(_, v)| v.clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(values("x-forwarded-user"), vec!["ann"]);
    assert_eq!(values("x-forwarded-email"), vec!["ann@example.com"]);
    assert_eq!(values("x-auth-roles"), vec!["agent"]);
    assert_eq!(values("x-auth-method"), vec!["native"]);
    assert_eq!(values("x-auth-mfa"), vec!["totp"]);
    assert_eq!(values("x-auth-session"), vec![id.as_str().to_owned()]);
    assert_eq!(values("x-forwarded-for"), vec!["127.0.0.1"]);
    assert_eq!(values("x-portcullis-assertion").len(), 1);
    assert!(got.iter().all(|(k, _)| !k.contains('_')));
    gw.stop().await;
}

#[tokio::test]
async fn the_assertion_header_verifies_against_the_published_jwks() {
    let gw = TestGateway::start().await;
    let http = Http::new();
    let (cookie, id) = gw.session_for("ann", &["agent"]).await;
    let r = http.get(&gw.url("/agent/x"), &[("cookie", &cookie)]).await;
    let jwt = r.upstream_header("x-portcullis-assertion").unwrap();
    let jwks = http
        .get(&gw.url("/_portcullis/jwks.json"), &[])
        .await
        .json();
    let key = &jwks["keys"][0];
    assert_eq!(key["alg"], "ES256");
    let parts: Vec<&str> = jwt.split('.').collect();
    let mut point = vec![4u8];
    point.extend(B64.decode(key["x"].as_str().unwrap()).unwrap());
    point.extend(B64.decode(key["y"].as_str().unwrap()).unwrap());
    ring::signature::UnparsedPublicKey::new(&ring::signature::ECDSA_P256_SHA256_FIXED, &point)
        .verify(
            format!("{}.{}", parts[0], parts[1]).as_bytes(),
            &B64.decode(parts[2]).unwrap(),
        )
        .expect("assertion signature must verify with the JWKS key");
    let header: serde_json::Value = serde_json::from_slice(&B64.decode(parts[0]).unwrap()).unwrap();
    assert_eq!(header["kid"], key["kid"]);
    let claims: serde_json::Value = serde_json::from_slice(&B64.decode(parts[1]).unwrap()).unwrap();
    assert_eq!(claims["sub"], "native:ann", "the principal");
    assert_eq!(claims["preferred_username"], "ann");
    assert_eq!(claims["sid"], id.as_str());
    assert_eq!(
        claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
        60
    );
    gw.stop().await;
}

#[tokio::test]
async fn the_gateway_cookie_never_reaches_the_upstream() {
    let gw = TestGateway::start().await;
    let http = Http::new();
    let (cookie, _) = gw.session_for("ann", &["agent"]).await;
    let header = format!("theme=dark; {cookie}; portcullis-login=abc; lang=en");
    let r = http.get(&gw.url("/agent/x"), &[("cookie", &header)]).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(
        r.upstream_header("cookie").as_deref(),
        Some("theme=dark; lang=en")
    );
    let r = http.get(&gw.url("/agent/x"), &[("cookie", &cookie)]).await;
    assert_eq!(r.upstream_header("cookie"), None);
    gw.stop().await;
}

#[tokio::test]
async fn expired_idle_and_revoked_sessions_are_refused_on_the_next_request() {
    let gw = TestGateway::start().await;
    let http = Http::new();
    let api = |c: &str| {
        vec![
            ("cookie".to_string(), c.to_string()),
            ("accept".to_string(), "application/json".to_string()),
        ]
    };
    let get = |c: String| {
        let http = &http;
        let url = gw.url("/agent/x");
        async move {
            let h = api(&c);
            let h: Vec<(&str, &str)> = h.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
            http.get(&url, &h).await
        }
    };

    // Idle: 30 minutes without a request.
    let (idle, _) = gw.session_for("idle", &["agent"]).await;
    assert_eq!(get(idle.clone()).await.status, StatusCode::OK);
    gw.clock.advance(29 * 60);
    assert_eq!(
        get(idle.clone()).await.status,
        StatusCode::OK,
        "activity within the idle timeout keeps it"
    );
    gw.clock.advance(29 * 60);
    assert_eq!(get(idle.clone()).await.status, StatusCode::OK);
    gw.clock.advance(30 * 60);
    let r = get(idle.clone()).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(r.json()["error"], "unauthenticated");

    // Absolute: 12 hours even with steady activity.
    let (busy, _) = gw.session_for("busy", &["agent"]).await;
    for _ in 0..25 {
        assert_eq!(get(busy.clone()).await.status, StatusCode::OK);
        gw.clock.advance(29 * 60);
    }
    assert_eq!(get(busy.clone()).await.status, StatusCode::UNAUTHORIZED);

    // Revoked: removal from the store is effective on the very next request.
    let (rev, id) = gw.session_for("rev", &["agent"]).await;
    assert_eq!(get(rev.clone()).await.status, StatusCode::OK);
    gw.gateway().store.remove(&id).await.unwrap();
    assert_eq!(get(rev.clone()).await.status, StatusCode::UNAUTHORIZED);

    // All of a user's sessions.
    let (a, _) = gw.session_for("multi", &["agent"]).await;
    let (b, _) = gw.session_for("multi", &["agent"]).await;
    gw.gateway()
        .store
        .remove_principal("native:multi")
        .await
        .unwrap();
    assert_eq!(get(a).await.status, StatusCode::UNAUTHORIZED);
    assert_eq!(get(b).await.status, StatusCode::UNAUTHORIZED);
    gw.stop().await;
}

#[tokio::test]
async fn the_idle_timestamp_is_written_at_most_once_a_minute() {
    let gw = TestGateway::start().await;
    let http = Http::new();
    let (cookie, id) = gw.session_for("ann", &["agent"]).await;
    let start = gw.clock.now();
    gw.clock.advance(30);
    http.get(&gw.url("/agent/x"), &[("cookie", &cookie)]).await;
    let s = gw.gateway().store.get(&id).await.unwrap().unwrap();
    assert_eq!(s.last_seen(), start, "no write within the touch interval");
    gw.clock.advance(31);
    http.get(&gw.url("/agent/x"), &[("cookie", &cookie)]).await;
    assert_eq!(s.last_seen(), start + 61);
    gw.stop().await;
}

#[tokio::test]
async fn unauthenticated_browsers_are_sent_to_login_and_api_clients_get_401() {
    let gw = TestGateway::start_with("[native]\n", |_| {}).await;
    let http = Http::new();
    let r = http.get(&gw.url("/agent/tickets?id=7"), &[BROWSER]).await;
    assert_eq!(r.status, StatusCode::FOUND);
    let loc = r.header("location").unwrap();
    assert_eq!(
        loc,
        format!("http://{}/normal?rd=%2Fagent%2Ftickets%3Fid%3D7", gw.addr)
    );
    let r = http
        .get(&gw.url("/agent/tickets"), &[("accept", "application/json")])
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(r.json()["error"], "unauthenticated");
    let r = http
        .send(
            Method::POST,
            &gw.url("/agent/tickets"),
            &[BROWSER],
            b"x".to_vec(),
        )
        .await;
    assert_eq!(
        r.status,
        StatusCode::UNAUTHORIZED,
        "only safe methods are redirected"
    );
    assert_eq!(
        gw.upstream.hits.load(std::sync::atomic::Ordering::Relaxed),
        0
    );
    gw.stop().await;
}

#[tokio::test]
async fn a_role_the_route_does_not_admit_gets_403_and_the_upstream_is_not_called() {
    let gw = TestGateway::start().await;
    let http = Http::new();
    let (cookie, _) = gw.session_for("eve", &["end_user"]).await;
    let r = http
        .get(&gw.url("/admin/users"), &[("cookie", &cookie), BROWSER])
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(r.text().contains("your role does not give access"));
    assert!(r.text().contains("correlation-id"));
    let r = http.get(&gw.url("/agent"), &[("cookie", &cookie)]).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(r.json()["error"], "forbidden");
    assert_eq!(
        gw.upstream.hits.load(std::sync::atomic::Ordering::Relaxed),
        0
    );
    let r = http.get(&gw.url("/hc/x"), &[("cookie", &cookie)]).await;
    assert_eq!(r.status, StatusCode::OK, "public routes admit everyone");
    assert_eq!(
        r.upstream_header("x-forwarded-user").as_deref(),
        Some("eve")
    );
    gw.stop().await;
}

#[tokio::test]
async fn a_path_matching_no_route_is_refused() {
    // A config without a catch-all route.
    let up = TestUpstream::start().await;
    let dir = TempDir::new("noroute");
    let (listener, port) = loopback_listener();
    let text = format!(
        "[server]\nlisten = \"127.0.0.1:{port}\"\npublic_url = \"http://127.0.0.1:{port}\"\naccess_log = false\n\
[upstream]\nurl = \"http://{}\"\n[[routes]]\nprefix = \"/hc\"\naccess = \"public\"\n",
        up.addr
    );
    let p = dir.path().join("c.toml");
    std::fs::write(&p, text).unwrap();
    let cfg = portcullis::config::Config::load(&p).unwrap();
    let run = portcullis::server::start_on(cfg, portcullis::clock::Clock::system(), listener)
        .await
        .unwrap();
    let http = Http::new();
    let r = http
        .get(&format!("http://{}/elsewhere", run.addr), &[])
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(up.hits.load(std::sync::atomic::Ordering::Relaxed), 0);
    run.shutdown().await;
}

#[tokio::test]
async fn encoded_path_tricks_cannot_reach_a_route_the_policy_did_not_check() {
    let gw = TestGateway::start().await;
    let http = Http::new();
    let api = [("accept", "application/json")];
    // Each of these is, for some server, the protected /agent or /admin: refused or challenged.
    for (path, want) in [
        ("/hc/../agent/x", StatusCode::UNAUTHORIZED),
        ("/hc/%2e%2e/agent/x", StatusCode::UNAUTHORIZED),
        ("/hc/%2E%2E/admin", StatusCode::UNAUTHORIZED),
        ("/hc/.%2e/agent", StatusCode::UNAUTHORIZED),
        ("/hc/./../agent", StatusCode::UNAUTHORIZED),
        ("//agent/x", StatusCode::UNAUTHORIZED),
        ("/%61gent/x", StatusCode::UNAUTHORIZED),
        ("/hc/..%2fagent", StatusCode::BAD_REQUEST),
        ("/hc/..%2Fagent", StatusCode::BAD_REQUEST),
        ("/hc%2f..%2fagent", StatusCode::BAD_REQUEST),
        ("/hc/..%5cagent", StatusCode::BAD_REQUEST),
        ("/hc/%252e%252e/agent", StatusCode::OK),
        ("/AGENT/x", StatusCode::BAD_REQUEST),
        ("/Agent;x/y", StatusCode::BAD_REQUEST),
        ("/hc;/../agent", StatusCode::UNAUTHORIZED),
        // Tomcat reads the public /hc, nginx, Express and Flask a segment `hc;x=1` of the
        // protected / route (issue 14): refused since, no longer routed as /hc.
        ("/hc;x=1/y", StatusCode::BAD_REQUEST),
        ("/hc/..;/agent/x", StatusCode::BAD_REQUEST),
        ("/x;/hc/y", StatusCode::UNAUTHORIZED),
        ("/hc/%00", StatusCode::BAD_REQUEST),
    ] {
        let r = http.get(&gw.url(path), &api).await;
        assert_eq!(r.status, want, "path {path}");
    }
    // What the route decision saw is what the upstream gets.
    let r = http.get(&gw.url("/hc/./a//b/../c?q=%2e%2e"), &[]).await;
    assert_eq!(r.json()["path"], "/hc/a/c");
    assert_eq!(r.json()["query"], "q=%2e%2e");
    let r = http.get(&gw.url("/hc/%252e%252e/agent"), &[]).await;
    assert_eq!(r.json()["path"], "/hc/%252e%252e/agent");
    gw.stop().await;
}

#[tokio::test]
async fn open_redirect_payloads_stay_on_the_gateway_origin() {
    let gw = TestGateway::start_with("[native]\n", |_| {}).await;
    let http = Http::new();
    let origin = format!("http://{}", gw.addr);
    let payloads = std::fs::read_to_string(shared_data("open-redirect-payloads.txt")).unwrap();
    let mut checked = 0;
    for line in payloads.lines().filter(|l| !l.is_empty()) {
        for rd in [line.to_owned(), enc(line)] {
            // 1. The parser alone.
            if let Some(p) = portcullis::auth::policy::LocalPath::parse(&rd) {
                assert_local(&origin, &p.absolute(&origin), line);
            }
            // 2. Through the login endpoint: the next hop and its rd must stay local.
            let url = format!("{origin}/_portcullis/login?rd={}", enc(&rd));
            let r = http.get(&url, &[BROWSER]).await;
            assert_eq!(r.status, StatusCode::FOUND, "payload {line:?}");
            let loc = r.header("location").unwrap();
            assert!(
                loc.starts_with(&format!("{origin}/normal?rd=")),
                "payload {line:?} left to {loc}"
            );
            let inner = loc.split_once("?rd=").unwrap().1;
            let inner = percent_encoding::percent_decode_str(inner)
                .decode_utf8()
                .unwrap();
            assert_local(&origin, &format!("{origin}{inner}"), line);
            checked += 1;
        }
    }
    assert!(
        checked >= 1600,
        "expected the whole payload list, checked {checked}"
    );
    gw.stop().await;
}

/// `url` must be on `origin`: its authority is exactly ours, however a browser reads it.
fn assert_local(origin: &str, url: &str, payload: &str) {
    let rest = url
        .strip_prefix(origin)
        .unwrap_or_else(|| panic!("{payload:?}: {url} not on {origin}"));
    assert!(rest.starts_with('/'), "{payload:?}: {url}");
    assert!(
        !rest.starts_with("//") && !rest.starts_with("/\\"),
        "{payload:?}: {url}"
    );
    assert!(
        !rest.chars().any(|c| c.is_control() || c == '\\'),
        "{payload:?}: {url}"
    );
    // Browsers strip tabs/newlines and read `\` as `/`; after that it must still be a path.
    let browserish: String = rest
        .chars()
        .filter(|c| !matches!(c, '\t' | '\n' | '\r'))
        .map(|c| if c == '\\' { '/' } else { c })
        .collect();
    assert!(!browserish.starts_with("//"), "{payload:?}: {url}");
}

#[tokio::test]
async fn hop_by_hop_headers_from_the_upstream_do_not_reach_the_client() {
    let gw = TestGateway::start().await;
    let http = Http::new();
    let r = http.get(&gw.url("/hc/x"), &[]).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.header("x-upstream-hop").is_none());
    gw.stop().await;
}

#[tokio::test]
async fn upstream_down_gives_502_and_service_resumes_when_it_returns() {
    // Reserve a port, point the gateway at it while nothing listens there.
    let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = probe.local_addr().unwrap().port();
    drop(probe);
    let up_addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let dir = TempDir::new("down");
    let (listener, gport) = loopback_listener();
    let cfg_path = dir.path().join("c.toml");
    std::fs::write(&cfg_path, base_config(gport, up_addr, "")).unwrap();
    let cfg = portcullis::config::Config::load(&cfg_path).unwrap();
    let run = portcullis::server::start_on(cfg, portcullis::clock::Clock::system(), listener)
        .await
        .unwrap();
    let http = Http::new();
    let url = format!("http://{}/hc/x", run.addr);
    let r = http.get(&url, &[("accept", "application/json")]).await;
    assert_eq!(r.status, StatusCode::BAD_GATEWAY);
    assert_eq!(r.json()["error"], "upstream_unavailable");
    let r = http.get(&url, &[BROWSER]).await;
    assert_eq!(r.status, StatusCode::BAD_GATEWAY);
    assert!(r.text().contains("cannot be reached"));
    // The upstream comes back on the same port.
    let listener = tokio::net::TcpListener::bind(up_addr).await.unwrap();
    let _up = TestUpstream::serve_on(listener);
    let r = http.get(&url, &[]).await;
    assert_eq!(r.status, StatusCode::OK);
    run.shutdown().await;
}

#[tokio::test]
async fn a_slow_upstream_gives_504() {
    let gw = TestGateway::start().await;
    let r = Http::new()
        .get(
            &gw.url("/hc/slow?ms=4000"),
            &[("accept", "application/json")],
        )
        .await;
    assert_eq!(r.status, StatusCode::GATEWAY_TIMEOUT);
    assert_eq!(r.json()["error"], "upstream_timeout");
    gw.stop().await;
}

#[tokio::test]
async fn websocket_echo_works_through_the_proxy() {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    use tokio_tungstenite::tungstenite::Message;
    let gw = TestGateway::start().await;
    let (cookie, _) = gw.session_for("ann", &["agent"]).await;
    let mut req = format!("ws://{}/agent/ws", gw.addr)
        .into_client_request()
        .unwrap();
    req.headers_mut().insert("cookie", cookie.parse().unwrap());
    let stream = tokio::net::TcpStream::connect(gw.addr).await.unwrap();
    let (mut ws, resp) = tokio_tungstenite::client_async(req, stream).await.unwrap();
    assert_eq!(resp.status(), StatusCode::SWITCHING_PROTOCOLS);
    for msg in ["hello", "through the gate"] {
        ws.send(Message::text(msg)).await.unwrap();
        let echo = ws.next().await.unwrap().unwrap();
        assert_eq!(echo.into_text().unwrap().as_str(), msg);
    }
    ws.close(None).await.unwrap();
    // Without a session the upgrade is refused before the upstream sees it.
    let req = format!("ws://{}/agent/ws", gw.addr)
        .into_client_request()
        .unwrap();
    let stream = tokio::net::TcpStream::connect(gw.addr).await.unwrap();
    assert!(tokio_tungstenite::client_async(req, stream).await.is_err());
    gw.stop().await;
}

#[tokio::test]
async fn http2_over_tls_works() {
    use hyper_util::rt::{TokioExecutor, TokioIo};
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, ServerName};
    let up = TestUpstream::start().await;
    let dir = TempDir::new("tls");
    let (cert, _) =
        portcullis::server::tls::write_dev_cert(&dir.path().join("certs"), &["localhost".into()])
            .unwrap();
    let (listener, port) = loopback_listener();
    let text = base_config(port, up.addr, "").replacen(
        "access_log = false",
        "access_log = false\ntls = { cert = \"certs/gateway.crt\", key = \"certs/gateway.key\" }",
        1,
    ).replace(&format!("public_url = \"http://127.0.0.1:{port}\""), &format!("public_url = \"https://localhost:{port}\""));
    let p = dir.path().join("c.toml");
    std::fs::write(&p, text).unwrap();
    let cfg = portcullis::config::Config::load(&p).unwrap();
    let run = portcullis::server::start_on(cfg, portcullis::clock::Clock::system(), listener)
        .await
        .unwrap();

    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_file(&cert).unwrap())
        .unwrap();
    let mut tls = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    tls.alpn_protocols = vec![b"h2".to_vec()];
    let connector = tokio_rustls::TlsConnector::from(std::sync::Arc::new(tls));
    let tcp = tokio::net::TcpStream::connect(run.addr).await.unwrap();
    let stream = connector
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .unwrap();
    assert_eq!(stream.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let (mut send, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .unwrap();
    tokio::spawn(conn);
    let req = hyper::Request::get(format!("https://localhost:{port}/hc/over-h2"))
        .body(http_body_util::Empty::<bytes::Bytes>::new())
        .unwrap();
    let resp = send.send_request(req).await.unwrap();
    assert_eq!(resp.version(), hyper::Version::HTTP_2);
    assert_eq!(resp.status(), StatusCode::OK);
    use http_body_util::BodyExt;
    let body: serde_json::Value =
        serde_json::from_slice(&resp.into_body().collect().await.unwrap().to_bytes()).unwrap();
    assert_eq!(body["path"], "/hc/over-h2");
    let proto = body["headers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p[0] == "x-forwarded-proto")
        .unwrap()[1]
        .clone();
    assert_eq!(proto, "https");

    // HTTP/1.1 over TLS: the fast lane takes the GETs; a POST on the same connection is handed
    // to hyper, and the connection goes on there.
    use tokio::io::AsyncWriteExt;
    let mut tls = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates({
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(CertificateDer::from_pem_file(&cert).unwrap())
            .unwrap();
        roots
    })
    .with_no_client_auth();
    tls.alpn_protocols = vec![b"http/1.1".to_vec()];
    let connector = tokio_rustls::TlsConnector::from(std::sync::Arc::new(tls));
    let tcp = tokio::net::TcpStream::connect(run.addr).await.unwrap();
    let mut stream = connector
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .unwrap();
    assert_eq!(stream.get_ref().1.alpn_protocol(), Some(&b"http/1.1"[..]));
    let before = run.gateway.metrics.handoffs();
    let mut buf = Vec::new();
    for n in 1..=2 {
        let req = format!("GET /hc/over-h1?n={n} HTTP/1.1\r\nHost: localhost:{port}\r\n\r\n");
        stream.write_all(req.as_bytes()).await.unwrap();
        let (status, body) = crate::fast_lane::read_response(&mut stream, &mut buf).await;
        assert_eq!(status, 200);
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["query"], format!("n={n}"));
        let proto = v["headers"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p[0] == "x-forwarded-proto")
            .unwrap()[1]
            .clone();
        assert_eq!(proto, "https");
    }
    assert_eq!(run.gateway.metrics.handoffs(), before, "the lane took them");
    let post = format!(
        "POST /hc/upload HTTP/1.1\r\nHost: localhost:{port}\r\nContent-Length: 2\r\n\r\nhi"
    );
    stream.write_all(post.as_bytes()).await.unwrap();
    let (status, body) = crate::fast_lane::read_response(&mut stream, &mut buf).await;
    assert_eq!(
        (status, body.as_slice()),
        (200, br#"{"received":2}"#.as_slice())
    );
    assert_eq!(run.gateway.metrics.handoffs(), before + 1);
    run.shutdown().await;
}

#[tokio::test]
async fn oversized_headers_are_refused() {
    let gw = TestGateway::start().await;
    let big = "a".repeat(40 * 1024);
    let mut stream = tokio::net::TcpStream::connect(gw.addr).await.unwrap();
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    stream
        .write_all(format!("GET /hc/x HTTP/1.1\r\nhost: x\r\nx-big: {big}\r\n\r\n").as_bytes())
        .await
        .ok();
    let mut buf = vec![0u8; 1024];
    let n = tokio::time::timeout(std::time::Duration::from_secs(5), stream.read(&mut buf))
        .await
        .unwrap()
        .unwrap_or(0);
    let head = String::from_utf8_lossy(&buf[..n]);
    assert!(n == 0 || head.starts_with("HTTP/1.1 431"), "got {head}");
    assert_eq!(
        gw.upstream.hits.load(std::sync::atomic::Ordering::Relaxed),
        0
    );
    gw.stop().await;
}

#[tokio::test]
async fn too_many_headers_are_refused() {
    let gw = TestGateway::start().await;
    let mut head = String::from("GET /hc/x HTTP/1.1\r\nhost: x\r\n");
    for i in 0..150 {
        head.push_str(&format!("x-h{i}: v\r\n"));
    }
    head.push_str("\r\n");
    let mut stream = tokio::net::TcpStream::connect(gw.addr).await.unwrap();
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    stream.write_all(head.as_bytes()).await.ok();
    let mut buf = vec![0u8; 1024];
    let n = tokio::time::timeout(std::time::Duration::from_secs(5), stream.read(&mut buf))
        .await
        .unwrap()
        .unwrap_or(0);
    let got = String::from_utf8_lossy(&buf[..n]);
    assert!(n == 0 || got.starts_with("HTTP/1.1 431"), "got {got}");
    assert_eq!(
        gw.upstream.hits.load(std::sync::atomic::Ordering::Relaxed),
        0
    );
    gw.stop().await;
}

#[tokio::test]
async fn a_slow_request_head_is_cut_off() {
    // header_timeout is 10 s by default; the test config keeps it, so use a raw socket that
    // sends half a head and check the server closes within the timeout plus a margin.
    let gw = TestGateway::start_with("", |_| {}).await;
    let mut stream = tokio::net::TcpStream::connect(gw.addr).await.unwrap();
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    stream
        .write_all(b"GET /hc/x HTTP/1.1\r\nhost: x\r\n")
        .await
        .unwrap();
    let started = std::time::Instant::now();
    let mut buf = vec![0u8; 256];
    let n = tokio::time::timeout(std::time::Duration::from_secs(20), stream.read(&mut buf))
        .await
        .expect("connection was not cut off")
        .unwrap_or(0);
    let got = String::from_utf8_lossy(&buf[..n]);
    assert!(n == 0 || got.starts_with("HTTP/1.1 408"), "got {got}");
    assert!(
        started.elapsed() >= std::time::Duration::from_secs(9),
        "cut off by the head timeout, not earlier"
    );
    gw.stop().await;
}

// Protocol upgrades (DESIGN.md §6): only a WebSocket handshake keeps its upgrade; any other
// `Upgrade` is stripped, and a 101 that does not answer a WebSocket handshake is a 502.

/// An upstream that answers every request head with what `answer` makes of it (a 101 here)
/// and then, as the far end of a tunnel would, records every byte that arrives after it.
struct SwitchingUpstream {
    addr: std::net::SocketAddr,
    seen: std::sync::Arc<std::sync::Mutex<Vec<u8>>>,
    heads: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for SwitchingUpstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl SwitchingUpstream {
    async fn start(answer: fn(&str) -> String) -> SwitchingUpstream {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let heads = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let (seen2, heads2) = (seen.clone(), heads.clone());
        let task = tokio::spawn(async move {
            loop {
                let Ok((mut s, _)) = listener.accept().await else {
                    continue;
                };
                let (seen, heads) = (seen2.clone(), heads2.clone());
                tokio::spawn(async move {
                    let mut mine = Vec::new();
                    let mut answered = false;
                    let mut chunk = [0u8; 4096];
                    loop {
                        let n = match s.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => n,
                        };
                        seen.lock().unwrap().extend_from_slice(&chunk[..n]);
                        mine.extend_from_slice(&chunk[..n]);
                        if !answered && mine.windows(4).any(|w| w == b"\r\n\r\n") {
                            answered = true;
                            heads.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                            let head = String::from_utf8_lossy(&mine).into_owned();
                            if s.write_all(answer(&head).as_bytes()).await.is_err() {
                                return;
                            }
                        }
                    }
                });
            }
        });
        SwitchingUpstream {
            addr,
            seen,
            heads,
            task,
        }
    }

    /// Everything received, lower case.
    fn seen(&self) -> String {
        String::from_utf8_lossy(&self.seen.lock().unwrap()).to_ascii_lowercase()
    }

    fn heads(&self) -> usize {
        self.heads.load(std::sync::atomic::Ordering::SeqCst)
    }
}

const H2C_SWITCH: &str =
    "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n";

/// One response from a raw connection: status, head as text, and the body by
/// `Content-Length` (none without one, as for a 101). `None`: closed or nothing within 5 s.
async fn read_raw<S: tokio::io::AsyncRead + Unpin>(
    s: &mut S,
    buf: &mut Vec<u8>,
) -> Option<(u16, String, Vec<u8>)> {
    use tokio::io::AsyncReadExt;
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n").map(|i| i + 4) {
            let head = String::from_utf8_lossy(&buf[..end]).into_owned();
            let status: u16 = head.get(9..12)?.parse().ok()?;
            let len: usize = header_in(&head, "content-length").map_or(0, |v| v.parse().unwrap());
            if buf.len() >= end + len {
                let body = buf[end..end + len].to_vec();
                buf.drain(..end + len);
                return Some((status, head, body));
            }
        }
        let mut chunk = [0u8; 8192];
        let n = tokio::time::timeout(std::time::Duration::from_secs(5), s.read(&mut chunk))
            .await
            .ok()?
            .ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// The value of the first field `name` (any case) in a response head.
fn header_in(head: &str, name: &str) -> Option<String> {
    head.lines().find_map(|l| {
        let (n, v) = l.split_once(':')?;
        n.eq_ignore_ascii_case(name).then(|| v.trim().to_owned())
    })
}

/// What a client sends once it believes it has a tunnel to the upstream.
fn forged_after_upgrade(host: &str) -> String {
    format!("GET /hc/y HTTP/1.1\r\nHost: {host}\r\nX-Forwarded-User: mallory\r\nX-Auth-Roles: admin\r\n\r\n")
}

#[tokio::test]
async fn upgrade_h2c_on_a_public_route_is_not_tunnelled() {
    use tokio::io::AsyncWriteExt;
    let up = SwitchingUpstream::start(|_| H2C_SWITCH.to_owned()).await;
    let dir = TempDir::new("h2c");
    let run = crate::fast_lane::gateway_to(up.addr, &dir).await;
    let host = run.addr.to_string();
    let offers = [
        "Connection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n",
        "Connection: upgrade\r\nUpgrade: foo\r\n",
        "CONNECTION: UPGRADE\r\nuPgRaDe: H2C\r\n",
        "Connection: keep-alive, Upgrade\r\nUpgrade: TLS/1.2, h2c\r\n",
    ];
    for offer in offers {
        let mut s = tokio::net::TcpStream::connect(run.addr).await.unwrap();
        let req = format!("GET /hc/x HTTP/1.1\r\nHost: {host}\r\n{offer}\r\n");
        s.write_all(req.as_bytes()).await.unwrap();
        let mut buf = Vec::new();
        // Sent upstream as a plain request; the upstream's 101 all the same is refused.
        let (status, head, _) = read_raw(&mut s, &mut buf).await.expect("a response");
        assert_eq!(status, 502, "{offer:?}:\n{head}");
        // Had a tunnel been made, this would reach the upstream as it is, forged identity and
        // all; instead it is a request of its own, its headers cleaned.
        s.write_all(forged_after_upgrade(&host).as_bytes())
            .await
            .unwrap();
        let next = read_raw(&mut s, &mut buf).await.map(|r| r.0);
        assert_eq!(next, Some(502), "{offer:?}");
    }
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let seen = up.seen();
    assert!(
        !seen.contains("mallory"),
        "a forged identity reached the upstream:\n{seen}"
    );
    for line in seen.lines() {
        assert!(
            !line.starts_with("upgrade:") && !line.starts_with("http2-settings:"),
            "an upgrade offer reached the upstream:\n{seen}"
        );
    }
    assert_eq!(
        up.heads(),
        2 * offers.len(),
        "every request went upstream as a request"
    );
    run.shutdown().await;
}

#[tokio::test]
async fn malformed_or_mixed_websocket_handshakes_and_connect_are_refused_before_the_upstream() {
    use tokio::io::AsyncWriteExt;
    let gw = TestGateway::start().await;
    let host = gw.addr.to_string();
    let key = "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n";
    let v13 = "Sec-WebSocket-Version: 13\r\n";
    let ws = "Connection: Upgrade\r\nUpgrade: websocket\r\n";
    let cases = [
        format!("GET /hc/ws HTTP/1.1\r\nHost: {host}\r\nConnection: Upgrade\r\nUpgrade: websocket, h2c\r\n{key}{v13}\r\n"),
        format!("GET /hc/ws HTTP/1.1\r\nHost: {host}\r\nConnection: Upgrade\r\nUpgrade: h2c\r\nUpgrade: websocket\r\n{key}{v13}\r\n"),
        format!("POST /hc/ws HTTP/1.1\r\nHost: {host}\r\n{ws}{key}{v13}Content-Length: 0\r\n\r\n"),
        format!("GET /hc/ws HTTP/1.1\r\nHost: {host}\r\n{ws}{v13}\r\n"),
        format!("GET /hc/ws HTTP/1.1\r\nHost: {host}\r\n{ws}Sec-WebSocket-Key: c2hvcnQ=\r\n{v13}\r\n"),
        format!("GET /hc/ws HTTP/1.1\r\nHost: {host}\r\n{ws}{key}Sec-WebSocket-Version: 8\r\n\r\n"),
        format!("GET /hc/ws HTTP/1.1\r\nHost: {host}\r\nConnection: keep-alive\r\nUpgrade: websocket\r\n{key}{v13}\r\n"),
        format!("GET /hc/ws HTTP/1.0\r\nHost: {host}\r\n{ws}{key}{v13}\r\n"),
        format!("CONNECT /hc/x HTTP/1.1\r\nHost: {host}\r\n\r\n"),
        format!("CONNECT {host} HTTP/1.1\r\nHost: {host}\r\n\r\n"),
    ];
    for req in &cases {
        let mut s = tokio::net::TcpStream::connect(gw.addr).await.unwrap();
        s.write_all(req.as_bytes()).await.unwrap();
        let mut buf = Vec::new();
        let (status, head, _) = read_raw(&mut s, &mut buf).await.expect("a response");
        assert_eq!(status, 400, "{req:?}:\n{head}");
    }
    assert_eq!(
        gw.upstream.hits.load(std::sync::atomic::Ordering::SeqCst),
        0,
        "the upstream saw a refused request"
    );
    gw.stop().await;
}

#[tokio::test]
async fn an_unsolicited_101_from_the_upstream_is_a_502_and_never_spliced() {
    use tokio::io::AsyncWriteExt;
    let up = SwitchingUpstream::start(|head| {
        if head.starts_with("GET /hc/wrong-accept ") {
            "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Accept: AAAAAAAAAAAAAAAAAAAAAAAAAAA=\r\n\r\n".into()
        } else {
            H2C_SWITCH.to_owned()
        }
    })
    .await;
    let dir = TempDir::new("switch");
    let run = crate::fast_lane::gateway_to(up.addr, &dir).await;
    let host = run.addr.to_string();
    let handshake = "Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n";
    let cases = [
        // A plain GET through the fast lane, and through hyper (`Content-Length: 0`).
        format!("GET /hc/lane HTTP/1.1\r\nHost: {host}\r\n\r\n"),
        format!("GET /hc/general HTTP/1.1\r\nHost: {host}\r\nContent-Length: 0\r\n\r\n"),
        // A WebSocket handshake answered by a switch to another protocol, or by a 101 that
        // does not answer this handshake's key.
        format!("GET /hc/ws-h2c HTTP/1.1\r\nHost: {host}\r\n{handshake}\r\n"),
        format!("GET /hc/wrong-accept HTTP/1.1\r\nHost: {host}\r\n{handshake}\r\n"),
    ];
    for req in &cases {
        let mut s = tokio::net::TcpStream::connect(run.addr).await.unwrap();
        s.write_all(req.as_bytes()).await.unwrap();
        let mut buf = Vec::new();
        let (status, head, _) = read_raw(&mut s, &mut buf).await.expect("a response");
        assert_eq!(status, 502, "{req:?}:\n{head}");
        let _ = s.write_all(forged_after_upgrade(&host).as_bytes()).await;
        let _ = read_raw(&mut s, &mut buf).await;
    }
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let seen = up.seen();
    assert!(
        !seen.contains("mallory"),
        "a forged identity reached the upstream:\n{seen}"
    );
    run.shutdown().await;
}

// TLS: HTTP/2's own upgrade mechanism, and Strict-Transport-Security (DESIGN.md §6).

/// A gateway on TLS with an https `public_url` (`server_extra` added to `[server]`, `extra`
/// to the file) in front of `up`; returns it, its port, and the roots that trust its
/// certificate.
async fn tls_gateway(
    up: std::net::SocketAddr,
    server_extra: &str,
    extra: &str,
    dir: &TempDir,
) -> (portcullis::server::Running, u16, rustls::RootCertStore) {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::CertificateDer;
    let (cert, _) =
        portcullis::server::tls::write_dev_cert(&dir.path().join("certs"), &["localhost".into()])
            .unwrap();
    let (listener, port) = loopback_listener();
    let text = base_config(port, up, extra)
        .replacen(
            "access_log = false",
            &format!("access_log = false\ntls = {{ cert = \"certs/gateway.crt\", key = \"certs/gateway.key\" }}\n{server_extra}"),
            1,
        )
        .replace(
            &format!("public_url = \"http://127.0.0.1:{port}\""),
            &format!("public_url = \"https://localhost:{port}\""),
        );
    let p = dir.path().join("c.toml");
    std::fs::write(&p, text).unwrap();
    let cfg = portcullis::config::Config::load(&p).unwrap();
    let run = portcullis::server::start_on(cfg, portcullis::clock::Clock::system(), listener)
        .await
        .unwrap();
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_file(&cert).unwrap())
        .unwrap();
    (run, port, roots)
}

async fn tls_connect(
    addr: std::net::SocketAddr,
    roots: &rustls::RootCertStore,
    alpn: &[u8],
) -> tokio_rustls::client::TlsStream<tokio::net::TcpStream> {
    let mut tls = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots.clone())
    .with_no_client_auth();
    tls.alpn_protocols = vec![alpn.to_vec()];
    let connector = tokio_rustls::TlsConnector::from(std::sync::Arc::new(tls));
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let stream = connector
        .connect(
            rustls::pki_types::ServerName::try_from("localhost").unwrap(),
            tcp,
        )
        .await
        .unwrap();
    assert_eq!(stream.get_ref().1.alpn_protocol(), Some(alpn));
    stream
}

#[tokio::test]
async fn http2_offers_no_extended_connect_and_a_connect_is_refused() {
    use hyper_util::rt::{TokioExecutor, TokioIo};
    let up = TestUpstream::start().await;
    let dir = TempDir::new("h2-connect");
    let (run, port, roots) = tls_gateway(up.addr, "", "", &dir).await;
    let stream = tls_connect(run.addr, &roots, b"h2").await;
    let (mut send, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .unwrap();
    tokio::spawn(conn);
    let empty = http_body_util::Empty::<bytes::Bytes>::new;
    // One request first, so the gateway's SETTINGS have arrived.
    let req = hyper::Request::get(format!("https://localhost:{port}/hc/first"))
        .body(empty())
        .unwrap();
    assert_eq!(
        send.send_request(req).await.unwrap().status(),
        StatusCode::OK
    );
    // RFC 8441 WebSocket over HTTP/2: the gateway does not send SETTINGS_ENABLE_CONNECT_PROTOCOL
    // (hyper's default), so a client cannot send `:protocol`, and h2 refuses one that does.
    let mut req = hyper::Request::builder()
        .method(Method::CONNECT)
        .uri(format!("https://localhost:{port}/hc/ws"))
        .body(empty())
        .unwrap();
    req.extensions_mut()
        .insert(hyper::ext::Protocol::from_static("websocket"));
    match send.send_request(req).await {
        Err(_) => {}
        Ok(r) => assert!(r.status().is_client_error(), "{}", r.status()),
    }
    // A plain HTTP/2 CONNECT (a tunnel to an authority) is refused by the gateway.
    let req = hyper::Request::builder()
        .method(Method::CONNECT)
        .uri(format!("localhost:{port}"))
        .body(empty())
        .unwrap();
    let resp = send.send_request(req).await.unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    assert_eq!(up.hits.load(std::sync::atomic::Ordering::SeqCst), 1);
    run.shutdown().await;
}

#[tokio::test]
async fn every_response_of_an_https_gateway_carries_hsts() {
    use tokio::io::AsyncWriteExt;
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let up = TestUpstream::start().await;
    let dir = TempDir::new("hsts");
    // An IdP to send browsers to (never reached: the redirect is all this test needs).
    let idp = "[[idp]]\nid = \"corp\"\nkind = \"oidc\"\nissuer = \"http://127.0.0.1:9\"\nclient_id = \"c\"\nclient_secret = \"s\"\n";
    let (run, port, roots) = tls_gateway(up.addr, "", idp, &dir).await;
    let want = Some("max-age=31536000".to_owned());
    let host = format!("localhost:{port}");
    let mut s = tls_connect(run.addr, &roots, b"http/1.1").await;
    let mut buf = Vec::new();
    let before = run.gateway.metrics.handoffs();
    // A proxied response from the fast lane.
    s.write_all(format!("GET /hc/lane HTTP/1.1\r\nHost: {host}\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let (status, head, _) = read_raw(&mut s, &mut buf).await.unwrap();
    assert_eq!(
        (status, header_in(&head, "strict-transport-security")),
        (200, want.clone()),
        "{head}"
    );
    assert_eq!(run.gateway.metrics.handoffs(), before, "the lane answered");
    // From hyper (the connection is handed over): a proxied response, an error, a redirect and
    // a gateway page.
    for (req, code) in [
        (
            format!("GET /hc/general HTTP/1.1\r\nHost: {host}\r\nContent-Length: 0\r\n\r\n"),
            200,
        ),
        (
            format!("GET /agent/x HTTP/1.1\r\nHost: {host}\r\nAccept: application/json\r\n\r\n"),
            401,
        ),
        (
            format!("GET /agent/x HTTP/1.1\r\nHost: {host}\r\nAccept: text/html\r\n\r\n"),
            302,
        ),
        (
            format!("GET /_portcullis/jwks.json HTTP/1.1\r\nHost: {host}\r\n\r\n"),
            200,
        ),
    ] {
        s.write_all(req.as_bytes()).await.unwrap();
        let (status, head, _) = read_raw(&mut s, &mut buf).await.unwrap();
        assert_eq!(
            (status, header_in(&head, "strict-transport-security")),
            (code, want.clone()),
            "{req:?}\n{head}"
        );
    }
    assert_eq!(run.gateway.metrics.handoffs(), before + 1);
    // A 101 for a WebSocket.
    let tls = tls_connect(run.addr, &roots, b"http/1.1").await;
    let req = format!("wss://{host}/hc/ws").into_client_request().unwrap();
    let (ws, resp) = tokio_tungstenite::client_async(req, tls).await.unwrap();
    assert_eq!(resp.status(), StatusCode::SWITCHING_PROTOCOLS);
    assert_eq!(
        resp.headers()
            .get("strict-transport-security")
            .map(|v| v.to_str().unwrap().to_owned()),
        want
    );
    drop(ws);
    // Over HTTP/2.
    {
        use hyper_util::rt::{TokioExecutor, TokioIo};
        let stream = tls_connect(run.addr, &roots, b"h2").await;
        let (mut send, conn) =
            hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
                .await
                .unwrap();
        tokio::spawn(conn);
        let req = hyper::Request::get(format!("https://{host}/hc/h2"))
            .body(http_body_util::Empty::<bytes::Bytes>::new())
            .unwrap();
        let resp = send.send_request(req).await.unwrap();
        assert_eq!(
            resp.headers()
                .get("strict-transport-security")
                .map(|v| v.to_str().unwrap().to_owned()),
            want
        );
    }
    run.shutdown().await;
    // An error page the fast lane writes itself: no upstream behind a second gateway.
    // Port 1 (privileged, never bound by a test): nothing listens there.
    let down: std::net::SocketAddr = "127.0.0.1:1".parse().unwrap();
    let dir = TempDir::new("hsts-down");
    let (run, port, roots) = tls_gateway(down, "", "", &dir).await;
    let mut s = tls_connect(run.addr, &roots, b"http/1.1").await;
    let req = format!("GET /hc/gone HTTP/1.1\r\nHost: localhost:{port}\r\n\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    let (status, head, _) = read_raw(&mut s, &mut buf).await.unwrap();
    assert_eq!(
        (status, header_in(&head, "strict-transport-security")),
        (502, want),
        "{head}"
    );
    assert_eq!(run.gateway.metrics.handoffs(), 0, "the lane answered");
    run.shutdown().await;
}

#[tokio::test]
async fn a_gateway_with_an_http_public_url_sends_no_hsts() {
    let gw = TestGateway::start().await;
    let http = Http::new();
    for (path, headers) in [
        ("/hc/lane", vec![]),
        ("/hc/general", vec![("content-length", "0")]),
        ("/agent/x", vec![("accept", "application/json")]),
        ("/agent/x", vec![BROWSER]),
    ] {
        let r = http.get(&gw.url(path), &headers).await;
        assert!(r.status.as_u16() < 500, "{path}: {}", r.status);
        assert_eq!(r.header("strict-transport-security"), None, "{path}");
    }
    gw.stop().await;
}

#[tokio::test]
async fn a_websocket_on_a_route_the_sessions_role_does_not_admit_is_refused_before_the_upstream() {
    use tokio::io::AsyncWriteExt;
    let gw = TestGateway::start().await;
    let (cookie, _) = gw.session_for("eve", &["end_user"]).await;
    let host = gw.addr.to_string();
    let mut s = tokio::net::TcpStream::connect(gw.addr).await.unwrap();
    let req = format!("GET /agent/ws HTTP/1.1\r\nHost: {host}\r\nCookie: {cookie}\r\nAccept: application/json\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    let (status, head, _) = read_raw(&mut s, &mut buf).await.expect("a response");
    assert_eq!(status, 403, "{head}");
    assert_eq!(
        gw.upstream.hits.load(std::sync::atomic::Ordering::SeqCst),
        0
    );
    gw.stop().await;
}

#[tokio::test]
async fn the_logo_is_served_from_its_file_and_a_missing_one_is_a_plain_404() {
    let http = Http::new();
    let none = TestGateway::start().await;
    let r = http
        .get(&none.url("/_portcullis/static/logo"), &[BROWSER])
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(r.json()["error"], "not_found");
    assert_eq!(r.json()["detail"], "No logo is configured.");

    let png: &[u8] = b"\x89PNG\r\n\x1a\nnot-really-a-png";
    let gw = TestGateway::start_with("[branding]\nlogo = \"logo.png\"\n", |dir| {
        std::fs::write(dir.join("logo.png"), png).unwrap()
    })
    .await;
    let r = http.get(&gw.url("/_portcullis/static/logo"), &[]).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.header("content-type"), Some("image/png"));
    assert_eq!(&r.body[..], png);
    // Removed after start: refused, never a partial or stale answer.
    std::fs::remove_file(gw.dir.path().join("logo.png")).unwrap();
    let r = http.get(&gw.url("/_portcullis/static/logo"), &[]).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(r.json()["detail"], "The logo could not be read.");
}
