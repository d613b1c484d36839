//! Live reload (DESIGN.md §11, issue 18 item 1): one test per class of key (a route's roles, an
//! IdP added, SAML metadata, the TLS certificate of new connections, admin tokens), each with
//! requests in flight during the reload and none failing; a refused reload leaving the old
//! config serving; a stricter role policy applied to a live session; scoped admin tokens; SIGHUP
//! on the real binary.

use crate::support::oidc_provider::{TestOp, CLIENT_ID, CLIENT_SECRET};
use crate::support::*;
use hyper::{Method, StatusCode};
use portcullis::session::{AuthMethod, Identity, MfaUsed, Session, SessionId, SessionStore};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

const TOKEN: &str = "reload-admin-token-0123456789";
const PROM: &str = "reload-metrics-token-0123456789";
const READER: &str = "reload-read-token-0123456789";

fn admin_section(tokens: &[(&str, &str, Option<&str>)]) -> String {
    let list: Vec<String> = tokens
        .iter()
        .map(|(name, token, scopes)| match scopes {
            Some(s) => format!(
                "{{ name = \"{name}\", sha256 = \"{}\", scopes = {s} }}",
                sha256_hex(token)
            ),
            None => format!(
                "{{ name = \"{name}\", sha256 = \"{}\" }}",
                sha256_hex(token)
            ),
        })
        .collect();
    format!(
        "\n[admin]\nlisten = \"127.0.0.1:0\"\ntokens = [{}]\n",
        list.join(", ")
    )
}

/// Replaces `from` by `to` in the config file (which must contain it).
fn rewrite(gw: &TestGateway, from: &str, to: &str) {
    let text = std::fs::read_to_string(&gw.config_path).unwrap();
    assert!(text.contains(from), "config has no {from:?}");
    std::fs::write(&gw.config_path, text.replacen(from, to, 1)).unwrap();
}

fn admin_url(gw: &TestGateway, path: &str) -> String {
    let addr = gw.running.as_ref().unwrap().admin_addr.unwrap();
    format!("http://{addr}{path}")
}

async fn admin(gw: &TestGateway, token: &str, method: Method, path: &str) -> Resp {
    let auth = format!("Bearer {token}");
    Http::new()
        .send(
            method,
            &admin_url(gw, path),
            &[("authorization", &auth)],
            Vec::new(),
        )
        .await
}

/// Requests that run while the config changes: `n` clients, each on its own keep-alive
/// connection, requesting `path` (with `headers`) until stopped. Every status is kept.
pub(crate) struct Load {
    stop: Arc<AtomicBool>,
    tasks: Vec<tokio::task::JoinHandle<Vec<StatusCode>>>,
}

impl Load {
    pub(crate) fn start(base: String, path: &str, cookie: Option<String>, n: usize) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let tasks = (0..n)
            .map(|_| {
                let (stop, url, cookie) =
                    (Arc::clone(&stop), format!("{base}{path}"), cookie.clone());
                tokio::spawn(async move {
                    let http = Http::new();
                    let mut seen = Vec::new();
                    while !stop.load(Ordering::SeqCst) || seen.is_empty() {
                        let h: Vec<(&str, &str)> =
                            cookie.iter().map(|c| ("cookie", c.as_str())).collect();
                        seen.push(http.get(&url, &h).await.status);
                    }
                    seen
                })
            })
            .collect();
        Load { stop, tasks }
    }

    /// Stops the clients and returns every status they saw.
    pub(crate) async fn finish(self) -> Vec<StatusCode> {
        self.stop.store(true, Ordering::SeqCst);
        let mut all = Vec::new();
        for t in self.tasks {
            all.extend(t.await.unwrap());
        }
        all
    }
}

pub(crate) fn assert_all_ok(statuses: &[StatusCode]) {
    assert!(!statuses.is_empty());
    let bad: Vec<_> = statuses.iter().filter(|s| **s != StatusCode::OK).collect();
    assert!(bad.is_empty(), "requests failed during the reload: {bad:?}");
}

/// A slow request (`ms` at the upstream) that is in flight when it returns.
async fn in_flight(
    gw: &TestGateway,
    path: &str,
    cookie: Option<String>,
) -> tokio::task::JoinHandle<StatusCode> {
    let url = gw.url(path);
    let before = gw.upstream.hits.load(Ordering::SeqCst);
    let t = tokio::spawn(async move {
        let h: Vec<(&str, &str)> = cookie.iter().map(|c| ("cookie", c.as_str())).collect();
        Http::new().get(&url, &h).await.status
    });
    while gw.upstream.hits.load(Ordering::SeqCst) == before {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    t
}

#[tokio::test]
async fn a_route_role_change_applies_on_the_next_request_and_requests_in_flight_finish() {
    let gw = TestGateway::start().await;
    let live = Arc::clone(&gw.running.as_ref().unwrap().live);
    let (agent, _) = gw.session_for("alice", &["agent"]).await;
    let http = Http::new();
    // The fast lane serves this connection; it must see the new route table on its next request.
    let before = http.get(&gw.url("/agent/x"), &[("cookie", &agent)]).await;
    assert_eq!(before.status, StatusCode::OK);
    let load = Load::start(format!("http://{}", gw.addr), "/hc/x", None, 4);
    let slow = in_flight(&gw, "/agent/slow?ms=700", Some(agent.clone())).await;

    rewrite(
        &gw,
        "prefix = \"/agent\"\nallow_roles = [\"agent\", \"admin\"]",
        "prefix = \"/agent\"\nallow_roles = [\"admin\"]",
    );
    let done = live.reload("test").await.unwrap();
    assert_eq!(done.restart_required, Vec::<&str>::new());

    // The same keep-alive connection, the next request: judged by the new routes.
    let after = http.get(&gw.url("/agent/x"), &[("cookie", &agent)]).await;
    assert_eq!(after.status, StatusCode::FORBIDDEN);
    assert_eq!(
        slow.await.unwrap(),
        StatusCode::OK,
        "admitted before the reload"
    );
    assert_all_ok(&load.finish().await);
    let (admin_cookie, _) = gw.session_for("root", &["admin"]).await;
    let r = http
        .get(&gw.url("/agent/x"), &[("cookie", &admin_cookie)])
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(gw
        .gateway()
        .metrics
        .render(None)
        .contains("portcullis_config_reloads_total{result=\"success\"} 1\n"));
}

#[tokio::test]
async fn a_bad_config_is_refused_with_the_check_message_and_the_old_one_keeps_serving() {
    let extra = format!(
        "{}\n[storage]\nurl = \"sqlite://users.db\"\n",
        admin_section(&[("ops", TOKEN, None)])
    );
    let gw = TestGateway::start_with(&extra, |_| {}).await;
    let load = Load::start(format!("http://{}", gw.addr), "/hc/x", None, 3);
    rewrite(&gw, "access = \"public\"", "access = \"everyone\"");
    rewrite(
        &gw,
        "prefix = \"/agent\"\nallow_roles = [\"agent\", \"admin\"]",
        "prefix = \"/agent\"\nallow_roles = [\"agent\", \"ghost\"]",
    );
    let r = admin(&gw, TOKEN, Method::POST, "/api/v1/reload").await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text());
    let errors: Vec<String> = r.json()["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e.as_str().unwrap().to_owned())
        .collect();
    // Exactly what `portcullis check` prints for this file: every error, file:line: key.
    let check = std::process::Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .args(["check", "--config"])
        .arg(&gw.config_path)
        .output()
        .unwrap();
    assert!(!check.status.success());
    let check_lines: Vec<String> = String::from_utf8_lossy(&check.stderr)
        .lines()
        .map(str::to_owned)
        .collect();
    assert_eq!(errors, check_lines);
    assert_eq!(errors.len(), 2, "{errors:?}");
    let f = gw.config_path.display().to_string();
    assert!(errors
        .iter()
        .any(|e| e.starts_with(&format!("{f}:")) && e.contains("ghost")));

    // The old config serves on: the public route still works, nothing dropped.
    assert_all_ok(&load.finish().await);
    assert_eq!(
        Http::new().get(&gw.url("/hc/x"), &[]).await.status,
        StatusCode::OK
    );
    let metrics = admin(&gw, TOKEN, Method::GET, "/metrics").await.text();
    assert!(metrics.contains("portcullis_config_reloads_total{result=\"failure\"} 1\n"));
    assert!(metrics.contains("portcullis_config_reloads_total{result=\"success\"} 0\n"));
    let audit = gw.audit("config.reload").await;
    assert_eq!(audit.len(), 1);
    assert_eq!(audit[0].0, "refused");
}

#[tokio::test]
async fn a_token_added_and_one_removed_apply_at_once_and_restart_keys_are_named() {
    let extra = admin_section(&[("ops", TOKEN, None), ("old", READER, None)]);
    let gw = TestGateway::start_with(&extra, |_| {}).await;
    assert_eq!(
        admin(&gw, READER, Method::GET, "/api/v1/sessions")
            .await
            .status,
        StatusCode::OK
    );
    assert_eq!(
        admin(&gw, PROM, Method::GET, "/metrics").await.status,
        StatusCode::UNAUTHORIZED
    );
    let load = Load::start(format!("http://{}", gw.addr), "/hc/x", None, 3);
    let old = admin_section(&[("ops", TOKEN, None), ("old", READER, None)]);
    let new = admin_section(&[("ops", TOKEN, None), ("prom", PROM, Some("[\"metrics\"]"))]);
    rewrite(&gw, &old, &new);
    // A restart-only key changed too: named, not applied.
    rewrite(&gw, "shutdown_grace = \"5s\"", "shutdown_grace = \"9s\"");
    let r = admin(&gw, TOKEN, Method::POST, "/api/v1/reload").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(
        r.json(),
        serde_json::json!({"status": "reloaded", "restart_required": ["server.shutdown_grace"], "warnings": []})
    );
    assert_eq!(
        admin(&gw, READER, Method::GET, "/api/v1/sessions")
            .await
            .status,
        StatusCode::UNAUTHORIZED,
        "the removed token no longer works"
    );
    assert_eq!(
        admin(&gw, PROM, Method::GET, "/metrics").await.status,
        StatusCode::OK,
        "the added token works"
    );
    let live = gw.running.as_ref().unwrap().live.gateway();
    assert_eq!(live.config.server.shutdown_grace, Duration::from_secs(5));
    assert_all_ok(&load.finish().await);
}

#[tokio::test]
async fn a_metrics_token_reads_metrics_only_and_a_read_token_cannot_write() {
    let extra = admin_section(&[
        ("ops", TOKEN, None),
        ("prom", PROM, Some("[\"metrics\"]")),
        ("auditor", READER, Some("[\"read\"]")),
    ]);
    let gw = TestGateway::start_with(&extra, |_| {}).await;
    assert_eq!(
        admin(&gw, PROM, Method::GET, "/metrics").await.status,
        StatusCode::OK
    );
    for (method, path) in [
        (Method::GET, "/api/v1/sessions"),
        (Method::GET, "/api/v1/openapi.json"),
        (Method::POST, "/api/v1/reload"),
        (Method::DELETE, "/api/v1/sessions/AAAAAAAAAAAAAAAAAAAAAA"),
    ] {
        let r = admin(&gw, PROM, method.clone(), path).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{method} {path}");
        assert_eq!(r.json()["error"], "forbidden");
    }
    assert_eq!(
        admin(&gw, READER, Method::GET, "/api/v1/sessions")
            .await
            .status,
        StatusCode::OK
    );
    assert_eq!(
        admin(&gw, READER, Method::GET, "/metrics").await.status,
        StatusCode::FORBIDDEN
    );
    let (_, id) = gw.session_for("alice", &["agent"]).await;
    let path = format!("/api/v1/sessions/{}", id.as_str());
    assert_eq!(
        admin(&gw, READER, Method::DELETE, &path).await.status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        admin(&gw, READER, Method::POST, "/api/v1/reload")
            .await
            .status,
        StatusCode::FORBIDDEN
    );
    assert!(
        gw.gateway().store.get(&id).await.unwrap().is_some(),
        "nothing written"
    );
    // A token without `scopes` has all three, as before scopes existed.
    assert_eq!(
        admin(&gw, TOKEN, Method::DELETE, &path).await.status,
        StatusCode::NO_CONTENT
    );
    // The OpenAPI document names each route's scope.
    let doc = admin(&gw, TOKEN, Method::GET, "/api/v1/openapi.json")
        .await
        .json();
    assert_eq!(
        doc["paths"]["/metrics"]["get"]["x-portcullis-scope"],
        "metrics"
    );
    assert_eq!(
        doc["paths"]["/api/v1/reload"]["post"]["x-portcullis-scope"],
        "write"
    );
}

#[test]
fn an_unknown_or_empty_scope_list_is_a_config_error() {
    let dir = TempDir::new("scopes");
    let p = dir.path().join("c.toml");
    let text = base_config(UNSERVED_PORT, "127.0.0.1:9".parse().unwrap(), "")
        + &admin_section(&[("a", TOKEN, Some("[\"metric\"]")), ("b", PROM, Some("[]"))]);
    std::fs::write(&p, text).unwrap();
    let e = portcullis::config::Config::load(&p)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("admin.tokens[0].scopes[0]: unknown scope \"metric\""),
        "{e}"
    );
    assert!(
        e.contains("admin.tokens[1].scopes: must name at least one scope"),
        "{e}"
    );
}

#[tokio::test]
async fn a_stricter_role_policy_ends_a_live_session_on_its_next_request() {
    let gw = TestGateway::start().await;
    let live = Arc::clone(&gw.running.as_ref().unwrap().live);
    // An end_user signed in without a second factor (the role did not require one).
    let g = gw.gateway();
    let token = portcullis::session::new_token().unwrap();
    let id = SessionId::of(&token);
    let identity = Identity {
        user: "eve".into(),
        principal: "native:eve".into(),
        email: None,
        groups: vec![],
        roles: vec!["end_user".into()],
        method: AuthMethod::Native,
        mfa: MfaUsed::None,
    };
    let s = Session::new(
        id.clone(),
        identity,
        gw.clock.now(),
        Duration::from_secs(3600),
        Duration::from_secs(1800),
        None,
        None,
    )
    .unwrap();
    g.store.insert(s).await.unwrap();
    let cookie = format!("{}={}", g.cookies.session, token.expose());
    let (agent, _) = gw.session_for("alice", &["agent"]).await;
    let http = Http::new();
    assert_eq!(
        http.get(&gw.url("/x"), &[("cookie", &cookie)]).await.status,
        StatusCode::OK
    );
    let load = Load::start(format!("http://{}", gw.addr), "/x", Some(agent), 3);
    rewrite(
        &gw,
        "[roles.end_user]\ngroups = [\"end-users\"]\nrequire_mfa = false",
        "[roles.end_user]\ngroups = [\"end-users\"]\nrequire_mfa = true",
    );
    live.reload("test").await.unwrap();
    let r = http
        .get(
            &gw.url("/x"),
            &[("cookie", &cookie), ("accept", "text/html")],
        )
        .await;
    // Not served: without a login method in this config the answer is a refusal page.
    assert_ne!(r.status, StatusCode::OK, "judged by the new policy");
    assert!(
        g.store.get(&id).await.unwrap().is_none(),
        "the session ended"
    );
    // A session that meets the stricter policy (the agent's, with TOTP) carries on.
    assert_all_ok(&load.finish().await);
}

#[tokio::test]
async fn an_oidc_idp_added_by_a_reload_is_ready_for_the_next_login() {
    let op = TestOp::start(portcullis::clock::Clock::manual(1_800_000_000)).await;
    let gw = TestGateway::start().await;
    let live = Arc::clone(&gw.running.as_ref().unwrap().live);
    let start = "/_portcullis/login?idp=partner&rd=%2F";
    let before = Http::new().get(&gw.url(start), &[]).await;
    assert_ne!(before.status, StatusCode::FOUND, "no such IdP yet");
    let load = Load::start(format!("http://{}", gw.addr), "/hc/x", None, 3);
    let mut text = std::fs::read_to_string(&gw.config_path).unwrap();
    text.push_str(&format!(
        "\n[[idp]]\nid = \"partner\"\nkind = \"oidc\"\nissuer = \"{}\"\nclient_id = \"{CLIENT_ID}\"\nclient_secret = \"{CLIENT_SECRET}\"\nhttp_timeout = \"2s\"\n",
        op.issuer
    ));
    std::fs::write(&gw.config_path, text).unwrap();
    live.reload("test").await.unwrap();
    // Discovered during the reload: the very next login goes to the provider.
    assert!(live.gateway().oidc.ready());
    let r = Http::new().get(&gw.url(start), &[]).await;
    assert_eq!(r.status, StatusCode::FOUND, "{}", r.text());
    assert!(r.header("location").unwrap().starts_with(&op.issuer));
    assert_all_ok(&load.finish().await);
}

#[tokio::test]
async fn a_new_tls_certificate_is_served_to_new_connections_while_old_ones_carry_on() {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::CertificateDer;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let up = TestUpstream::start().await;
    let dir = TempDir::new("reload-tls");
    let certs = dir.path().join("certs");
    let roots = |cert: &std::path::Path| {
        let mut r = rustls::RootCertStore::empty();
        r.add(CertificateDer::from_pem_file(cert).unwrap()).unwrap();
        r
    };
    let (cert, _) = portcullis::server::tls::write_dev_cert(&certs, &["localhost".into()]).unwrap();
    let first = roots(&cert);
    let (listener, port) = loopback_listener();
    let text = base_config(port, up.addr, "").replacen(
        "access_log = false",
        "access_log = false\ntls = { cert = \"certs/gateway.crt\", key = \"certs/gateway.key\" }",
        1,
    );
    let p = dir.path().join("c.toml");
    std::fs::write(&p, text).unwrap();
    let cfg = portcullis::config::Config::load(&p).unwrap();
    let run = portcullis::server::start_on(cfg, portcullis::clock::Clock::system(), listener)
        .await
        .unwrap();
    let addr = run.addr;
    let connect = |roots: rustls::RootCertStore| async move {
        let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
        let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        tokio_rustls::TlsConnector::from(Arc::new(tls))
            .connect(
                rustls::pki_types::ServerName::try_from("localhost").unwrap(),
                tcp,
            )
            .await
    };
    async fn get(s: &mut tokio_rustls::client::TlsStream<tokio::net::TcpStream>) -> String {
        s.write_all(b"GET /hc/x HTTP/1.1\r\nhost: localhost\r\n\r\n")
            .await
            .unwrap();
        let mut buf = vec![0u8; 65536];
        let n = s.read(&mut buf).await.unwrap();
        String::from_utf8_lossy(&buf[..n]).into_owned()
    }
    let mut old = connect(first.clone()).await.unwrap();
    assert!(get(&mut old).await.starts_with("HTTP/1.1 200"));

    // Rotate: a new certificate and key at the same paths, then reload.
    std::fs::remove_file(certs.join("gateway.crt")).unwrap();
    std::fs::remove_file(certs.join("gateway.key")).unwrap();
    let (cert, _) = portcullis::server::tls::write_dev_cert(&certs, &["localhost".into()]).unwrap();
    let second = roots(&cert);
    run.live.reload("test").await.unwrap();

    assert!(
        connect(first).await.is_err(),
        "new connections get the new certificate"
    );
    let mut new = connect(second).await.unwrap();
    assert!(get(&mut new).await.starts_with("HTTP/1.1 200"));
    // The connection made before the reload carries on with its session of the old one.
    assert!(get(&mut old).await.starts_with("HTTP/1.1 200"));

    // A key that does not parse is refused; the served certificate stays the second one.
    std::fs::write(certs.join("gateway.key"), "not a key").unwrap();
    assert!(run.live.reload("test").await.is_err());
    let second = roots(&cert);
    assert!(connect(second).await.is_ok());
    run.shutdown().await;
}

/// The real binary: SIGHUP applies a changed config, and a bad one leaves it serving.
#[tokio::test]
async fn sighup_reloads_the_running_binary_and_a_bad_config_keeps_it_serving() {
    use std::process::{Command, Stdio};
    let up = TestUpstream::start().await;
    let dir = TempDir::new("sighup");
    let cfg = dir.path().join("c.toml");
    let (child, port) = spawn_listening("portcullis run", Duration::from_secs(20), |port| {
        std::fs::write(&cfg, base_config(port, up.addr, "")).unwrap();
        Command::new(env!("CARGO_BIN_EXE_portcullis"))
            .args(["run", "--config"])
            .arg(&cfg)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap()
    })
    .await;
    struct Kill(std::process::Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let mut child = Kill(child);
    let url = format!("http://127.0.0.1:{port}/hc/x");
    let http = Http::new();
    assert_eq!(http.get(&url, &[]).await.status, StatusCode::OK);
    let hup = |pid: u32| {
        assert!(Command::new("kill")
            .args(["-HUP", &pid.to_string()])
            .status()
            .unwrap()
            .success());
    };
    // A bad config first: refused, the process lives on and serves as before.
    let good = std::fs::read_to_string(&cfg).unwrap();
    std::fs::write(
        &cfg,
        good.replace("access = \"public\"", "access = \"everyone\""),
    )
    .unwrap();
    hup(child.0.id());
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        child.0.try_wait().unwrap().is_none(),
        "SIGHUP did not stop it"
    );
    assert_eq!(http.get(&url, &[]).await.status, StatusCode::OK);
    // Then a good one: /hc is no longer public.
    std::fs::write(
        &cfg,
        good.replace(
            "prefix = \"/hc\"\naccess = \"public\"",
            "prefix = \"/hc\"\nallow_roles = [\"admin\"]",
        ),
    )
    .unwrap();
    hup(child.0.id());
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let s = http.get(&url, &[]).await.status;
        if s != StatusCode::OK {
            assert_eq!(s, StatusCode::UNAUTHORIZED);
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the reload never applied"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(child.0.try_wait().unwrap().is_none());
}
