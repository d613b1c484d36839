//! Machine clients (DESIGN.md §9, issue 17 part 2): service tokens and JWT access tokens of a
//! bearer IdP on `bearer = true` routes; every refusal is 401 with `WWW-Authenticate`, audited
//! and counted; no session or cookie is ever made; both lanes answer alike.

use crate::support::oidc_provider::{Fault, TestOp, API_AUDIENCE, CLIENT_ID, CLIENT_SECRET};
use crate::support::*;
use hyper::{Method, StatusCode};
use std::time::{Duration, Instant};

const CRM: &str = "crm-token-0123456789abcdefghijklmnopqrstuvwxyz";
const REPORTER: &str = "reporter-token-0123456789abcdefghijklmnopqrstuvw";
const ADMIN: &str = "bearer-admin-token-0123456789";

fn machine_toml() -> String {
    format!(
        r#"
[roles.integration]
groups = []

[[routes]]
prefix = "/api"
allow_roles = ["integration", "agent"]
bearer = true

[[service_tokens]]
name = "crm-sync"
sha256 = "{crm}"
roles = ["integration"]

[[service_tokens]]
name = "reporter"
sha256 = "{reporter}"
roles = ["end_user"]

[storage]
url = "sqlite://users.db"

[admin]
listen = "127.0.0.1:0"
tokens = [{{ name = "ops", sha256 = "{admin}" }}]
"#,
        crm = sha256_hex(CRM),
        reporter = sha256_hex(REPORTER),
        admin = sha256_hex(ADMIN),
    )
}

fn bearer_idp(op: &TestOp) -> String {
    format!(
        r#"
[[idp]]
id = "corp"
kind = "oidc"
issuer = "{issuer}"
client_id = "{CLIENT_ID}"
client_secret = "{CLIENT_SECRET}"
http_timeout = "1s"
roles = ["integration", "agent"]
bearer = {{ audience = "{API_AUDIENCE}", roles_claim = "roles" }}
"#,
        issuer = op.issuer
    )
}

async fn start() -> TestGateway {
    TestGateway::start_with(&machine_toml(), |_| {}).await
}

/// The gateway with the test OP as a bearer IdP, its keys loaded.
async fn start_with_op() -> (TestOp, TestGateway) {
    let op = TestOp::start(portcullis::clock::Clock::manual(1_800_000_000)).await;
    let gw =
        TestGateway::start_with(&format!("{}{}", machine_toml(), bearer_idp(&op)), |_| {}).await;
    let clock = gw.clock.clone();
    op.with(|s| s.clock = clock);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !gw.gateway().oidc.ready() {
        assert!(Instant::now() < deadline, "oidc provider never loaded");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    (op, gw)
}

fn bearer(t: &str) -> String {
    format!("Bearer {t}")
}

async fn session_count(gw: &TestGateway) -> usize {
    let addr = gw.running.as_ref().unwrap().admin_addr.unwrap();
    let r = Http::new()
        .get(
            &format!("http://{addr}/api/v1/sessions"),
            &[("authorization", &bearer(ADMIN))],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    r.json()["items"].as_array().unwrap().len()
}

/// A refusal of a bearer: 401, the RFC 6750 challenge, a JSON error, no cookie.
fn assert_invalid_token(r: &Resp, what: &str) {
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{what}: {}", r.text());
    assert_eq!(
        r.header("www-authenticate"),
        Some("Bearer error=\"invalid_token\""),
        "{what}"
    );
    assert_eq!(r.json()["error"], "invalid_token", "{what}");
    assert!(r.header("set-cookie").is_none(), "{what}");
}

fn metrics(gw: &TestGateway) -> String {
    gw.gateway().metrics.render(None)
}

#[tokio::test]
async fn a_service_token_reaches_a_bearer_route_as_its_name_and_forged_identity_headers_do_not() {
    let gw = start().await;
    let before = session_count(&gw).await;
    let r = Http::new()
        .get(
            &gw.url("/api/tickets?page=2"),
            &[
                ("authorization", &bearer(CRM)),
                ("x-forwarded-user", "mallory"),
                ("X_Auth_Roles", "admin"),
                ("x-auth-session", "forged"),
                ("x-portcullis-assertion", "forged"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert!(
        r.header("set-cookie").is_none(),
        "no cookie on a bearer answer"
    );
    let h = |n: &str| r.upstream_header(n);
    assert_eq!(h("x-forwarded-user").as_deref(), Some("crm-sync"));
    assert_eq!(h("x-auth-roles").as_deref(), Some("integration"));
    assert_eq!(h("x-auth-method").as_deref(), Some("token:crm-sync"));
    assert_eq!(h("x-auth-mfa").as_deref(), Some("none"));
    assert_eq!(h("x-forwarded-groups").as_deref(), Some(""));
    assert_eq!(
        h("x-auth-session"),
        None,
        "no session behind a machine client"
    );
    assert_eq!(h("x-forwarded-email"), None);
    assert_eq!(h("x_auth_roles"), None);
    assert_eq!(
        h("authorization"),
        None,
        "a service token never reaches the app"
    );
    let assertion = h("x-portcullis-assertion").unwrap();
    assert_eq!(assertion.split('.').count(), 3);
    let claims: serde_json::Value = serde_json::from_slice(
        &base64::Engine::decode(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD,
            assertion.split('.').nth(1).unwrap(),
        )
        .unwrap(),
    )
    .unwrap();
    assert_eq!(claims["sub"], "token:crm-sync");
    assert_eq!(claims["amr"], "token:crm-sync");
    assert_eq!(claims["sid"], serde_json::Value::Null);
    assert_eq!(session_count(&gw).await, before, "no session was made");
    assert!(metrics(&gw).contains("portcullis_bearer_accepted_total{kind=\"service_token\"} 1\n"));
    gw.stop().await;
}

#[tokio::test]
async fn a_bearer_off_a_bearer_route_or_unknown_or_malformed_is_401_with_a_challenge_even_beside_a_good_cookie(
) {
    let gw = start().await;
    let (cookie, _) = gw.session_for("ann", &["agent"]).await;
    let http = Http::new();
    let before = session_count(&gw).await;
    let cases: [(&str, String, Option<&str>, &str); 6] = [
        ("/agent/x", bearer(CRM), None, "not_bearer_route"),
        ("/agent/x", bearer(CRM), Some(&cookie), "not_bearer_route"),
        (
            "/api/x",
            bearer("not-a-configured-token"),
            None,
            "unknown_token",
        ),
        (
            "/api/x",
            bearer("not-a-configured-token"),
            Some(&cookie),
            "unknown_token",
        ),
        (
            "/api/x",
            "Bearer a b".to_owned(),
            Some(&cookie),
            "malformed",
        ),
        ("/api/x", "Bearer".to_owned(), None, "malformed"),
    ];
    for (path, auth, cookie, reason) in &cases {
        let mut h = vec![
            ("authorization", auth.as_str()),
            ("accept", "application/json"),
        ];
        if let Some(c) = cookie {
            h.push(("cookie", c));
        }
        let r = http.get(&gw.url(path), &h).await;
        assert_invalid_token(&r, &format!("{path} {auth} {reason}"));
    }
    let m = metrics(&gw);
    assert!(
        m.contains("portcullis_bearer_refused_total{reason=\"not_bearer_route\"} 2\n"),
        "{m}"
    );
    assert!(
        m.contains("portcullis_bearer_refused_total{reason=\"unknown_token\"} 2\n"),
        "{m}"
    );
    assert!(
        m.contains("portcullis_bearer_refused_total{reason=\"malformed\"} 2\n"),
        "{m}"
    );
    let audit = gw.audit("bearer.refused").await;
    assert_eq!(audit.len(), 6, "{audit:?}");
    assert!(audit.iter().all(|(o, _)| o == "refused"));
    assert_eq!(
        audit.iter().filter(|(_, r)| r == "unknown_token").count(),
        2
    );
    // The cookie alone still works on both routes; it was neither ended nor touched away.
    for path in ["/agent/x", "/api/x"] {
        let r = http.get(&gw.url(path), &[("cookie", &cookie)]).await;
        assert_eq!(r.status, StatusCode::OK, "{path}");
        assert_eq!(
            r.upstream_header("x-forwarded-user").as_deref(),
            Some("ann")
        );
    }
    assert_eq!(session_count(&gw).await, before);
    gw.stop().await;
}

#[tokio::test]
async fn a_token_whose_roles_the_route_does_not_admit_is_403_and_audited() {
    let gw = start().await;
    let r = Http::new()
        .get(&gw.url("/api/x"), &[("authorization", &bearer(REPORTER))])
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text());
    assert!(r.header("set-cookie").is_none());
    assert!(metrics(&gw).contains("portcullis_bearer_refused_total{reason=\"role\"} 1\n"));
    assert_eq!(
        gw.audit("bearer.refused").await,
        vec![("refused".to_owned(), "role".to_owned())]
    );
    gw.stop().await;
}

#[tokio::test]
async fn a_public_route_stays_public_and_passes_a_bearer_on_as_sent() {
    let gw = start().await;
    let r = Http::new()
        .get(&gw.url("/hc/ping"), &[("authorization", "Bearer anything")])
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(
        r.upstream_header("authorization").as_deref(),
        Some("Bearer anything")
    );
    assert_eq!(r.upstream_header("x-forwarded-user"), None);
    gw.stop().await;
}

#[tokio::test]
async fn a_token_removed_by_a_reload_is_refused_on_the_next_request() {
    let gw = start().await;
    let http = Http::new();
    let ok = http
        .get(&gw.url("/api/x"), &[("authorization", &bearer(CRM))])
        .await;
    assert_eq!(ok.status, StatusCode::OK);
    let text = std::fs::read_to_string(&gw.config_path).unwrap();
    let block = format!(
        "[[service_tokens]]\nname = \"crm-sync\"\nsha256 = \"{}\"\nroles = [\"integration\"]\n",
        sha256_hex(CRM)
    );
    assert!(text.contains(&block));
    std::fs::write(&gw.config_path, text.replacen(&block, "", 1)).unwrap();
    let live = std::sync::Arc::clone(&gw.running.as_ref().unwrap().live);
    live.reload("test").await.unwrap();
    let r = http
        .get(&gw.url("/api/x"), &[("authorization", &bearer(CRM))])
        .await;
    assert_invalid_token(&r, "removed token");
    gw.stop().await;
}

#[tokio::test]
async fn tokens_new_prints_a_token_whose_block_the_gateway_accepts() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .args(["tokens", "new", "nightly-export", "--role", "integration"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let token = text
        .lines()
        .next()
        .unwrap()
        .rsplit(' ')
        .next()
        .unwrap()
        .to_owned();
    assert!(token.len() >= 43, "at least 256 bits: {token}");
    let block: String = text
        .lines()
        .skip_while(|l| *l != "[[service_tokens]]")
        .map(|l| format!("{l}\n"))
        .collect();
    assert!(
        !block.contains(&token),
        "only the hash goes into the config"
    );
    let extra = format!(
        "\n[roles.integration]\ngroups = []\n\n[[routes]]\nprefix = \"/api\"\nallow_roles = [\"integration\"]\nbearer = true\n\n{block}"
    );
    let gw = TestGateway::start_with(&extra, |_| {}).await;
    let r = Http::new()
        .get(&gw.url("/api/x"), &[("authorization", &bearer(&token))])
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(
        r.upstream_header("x-auth-method").as_deref(),
        Some("token:nightly-export")
    );
    // A bad argument is refused, not written into a block.
    let bad = std::process::Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .args(["tokens", "new", "Bad Name", "--role", "integration"])
        .output()
        .unwrap();
    assert!(!bad.status.success());
    gw.stop().await;
}

#[tokio::test]
async fn a_client_credentials_jwt_reaches_a_bearer_route_as_its_subject_with_capped_roles() {
    let (op, gw) = start_with_op().await;
    // `admin` is beyond the IdP's cap and `unknown` is no role: both are dropped.
    op.with(|s| s.access_roles = serde_json::json!(["integration", "admin", "unknown"]));
    let before = session_count(&gw).await;
    let jwt = op.client_credentials().await;
    let r = Http::new()
        .get(
            &gw.url("/api/tickets"),
            &[
                ("authorization", &bearer(&jwt)),
                ("x-forwarded-user", "mallory"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert!(r.header("set-cookie").is_none());
    let h = |n: &str| r.upstream_header(n);
    assert_eq!(h("x-forwarded-user").as_deref(), Some("crm-machine"));
    assert_eq!(h("x-auth-roles").as_deref(), Some("integration"));
    assert_eq!(h("x-auth-method").as_deref(), Some("bearer:corp"));
    assert_eq!(h("x-auth-mfa").as_deref(), Some("none"));
    assert_eq!(h("x-auth-session"), None);
    // The IdP's token goes on, so the app may verify it again.
    assert_eq!(h("authorization"), Some(bearer(&jwt)));
    // A space-separated string works as OAuth `scope` does.
    op.with(|s| s.access_roles = serde_json::json!("agent integration"));
    let jwt = op.client_credentials().await;
    let r = Http::new()
        .get(&gw.url("/api/x"), &[("authorization", &bearer(&jwt))])
        .await;
    assert_eq!(
        r.upstream_header("x-auth-roles").as_deref(),
        Some("agent,integration")
    );
    // Roles the route does not admit: 403.
    op.with(|s| s.access_roles = serde_json::json!(["admin"]));
    let jwt = op.client_credentials().await;
    let r = Http::new()
        .get(&gw.url("/api/x"), &[("authorization", &bearer(&jwt))])
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(session_count(&gw).await, before, "no session was made");
    assert!(metrics(&gw).contains("portcullis_bearer_accepted_total{kind=\"jwt\"} 3\n"));
    gw.stop().await;
}

#[tokio::test]
async fn jwts_expired_tampered_of_another_audience_or_issuer_unsigned_hmac_or_not_yet_valid_are_refused(
) {
    let (op, gw) = start_with_op().await;
    let http = Http::new();
    let cases = [
        (Fault::Expired, "expired"),
        (Fault::BadSignature, "signature"),
        (Fault::WrongAud, "audience"),
        (Fault::AlgNone, "algorithm"),
        (Fault::Hs256WithPublicKey, "algorithm"),
        (Fault::NbfFuture, "not_yet_valid"),
    ];
    for (fault, reason) in &cases {
        op.set_fault(fault.clone());
        let jwt = op.client_credentials().await;
        let r = http
            .get(&gw.url("/api/x"), &[("authorization", &bearer(&jwt))])
            .await;
        assert_invalid_token(&r, &format!("{fault:?}"));
        assert!(
            gw.gateway().metrics.bearer_refusals(reason) >= 1,
            "{fault:?} counted as {reason}"
        );
    }
    // Another issuer: no bearer IdP vouches for it.
    op.set_fault(Fault::WrongIss);
    let jwt = op.client_credentials().await;
    let r = http
        .get(&gw.url("/api/x"), &[("authorization", &bearer(&jwt))])
        .await;
    assert_invalid_token(&r, "other issuer");
    // A payload with another token's signature.
    op.set_fault(Fault::None);
    let good = op.client_credentials().await;
    let (head, rest) = good.split_once('.').unwrap();
    let (payload, _sig) = rest.split_once('.').unwrap();
    let other_sig = op
        .client_credentials()
        .await
        .rsplit('.')
        .next()
        .unwrap()
        .to_owned();
    let spliced = format!("{head}.{payload}.{other_sig}");
    let r = http
        .get(&gw.url("/api/x"), &[("authorization", &bearer(&spliced))])
        .await;
    assert_invalid_token(&r, "another token's signature");
    // A token the IdP signed for the gateway's own client id (as its ID and logout tokens
    // are) is not an access token for the API's audience.
    let for_the_gateway = op.logout_token(|c| {
        c.insert("sub".into(), serde_json::json!("someone"));
        c.insert("roles".into(), serde_json::json!(["integration"]));
    });
    let r = http
        .get(
            &gw.url("/api/x"),
            &[("authorization", &bearer(&for_the_gateway))],
        )
        .await;
    assert_invalid_token(&r, "a token for the gateway's client id");
    let audit = gw.audit("bearer.refused").await;
    assert_eq!(audit.len(), cases.len() + 3, "{audit:?}");
    assert_eq!(gw.gateway().metrics.bearer_refusals("audience"), 2);
    gw.stop().await;
}

#[tokio::test]
async fn a_rotated_key_is_accepted_after_one_jwks_refresh_and_an_unknown_kid_causes_no_refresh_storm(
) {
    let (op, gw) = start_with_op().await;
    let http = Http::new();
    let fetches = || op.with(|s| s.jwks_fetches);
    // Rotation: the OP signs with a key the gateway has not seen yet, and now publishes it.
    op.with(|s| {
        s.jwks_keys = vec!["ec-1", "ec-rotated"];
        s.sign_with = "ec-rotated";
    });
    let before = fetches();
    let jwt = op.client_credentials().await;
    let r = http
        .get(&gw.url("/api/x"), &[("authorization", &bearer(&jwt))])
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(fetches(), before + 1, "exactly one refresh");
    // A truly unknown kid: refused, and a burst of them fetches nothing more (rate limit).
    op.set_fault(Fault::RandomKid);
    for _ in 0..5 {
        let jwt = op.client_credentials().await;
        let r = http
            .get(&gw.url("/api/x"), &[("authorization", &bearer(&jwt))])
            .await;
        assert_invalid_token(&r, "unknown kid");
    }
    assert_eq!(fetches(), before + 1, "no refresh storm");
    assert_eq!(gw.gateway().metrics.bearer_refusals("unknown_kid"), 5);
    gw.stop().await;
}

/// The same raw request by the lane's door (plain GET) and by hyper's (`Content-Length: 0`):
/// status and what the upstream saw.
async fn both_ways(gw: &TestGateway, path: &str, fields: &[String]) -> [(u16, String); 2] {
    let mut out = Vec::new();
    for extra in ["", "Content-Length: 0\r\n"] {
        let mut head = format!(
            "GET {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n",
            gw.addr
        );
        for f in fields {
            head.push_str(f);
            head.push_str("\r\n");
        }
        head.push_str(extra);
        head.push_str("\r\n");
        let mut s = tokio::net::TcpStream::connect(gw.addr).await.unwrap();
        tokio::io::AsyncWriteExt::write_all(&mut s, head.as_bytes())
            .await
            .unwrap();
        let mut buf = Vec::new();
        tokio::io::AsyncReadExt::read_to_end(&mut s, &mut buf)
            .await
            .unwrap();
        let text = String::from_utf8_lossy(&buf).into_owned();
        let status: u16 = text[9..12].parse().unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        // What decides: the status, the challenge, and the upstream's view of the request.
        let challenge = head
            .lines()
            .find(|l| l.to_ascii_lowercase().starts_with("www-authenticate:"))
            .unwrap_or_default()
            .to_owned();
        let seen = if status == 200 {
            let v: serde_json::Value = serde_json::from_str(body.trim()).unwrap_or_default();
            let mut h: Vec<String> = v["headers"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .map(|p| format!("{}: {}", p[0].as_str().unwrap(), p[1].as_str().unwrap()))
                        .filter(|l| {
                            !l.starts_with("content-length")
                                && !l.starts_with("x-portcullis-assertion")
                        })
                        .collect()
                })
                .unwrap_or_default();
            h.sort();
            h.join("\n")
        } else {
            String::new()
        };
        out.push((status, format!("{challenge}\n{seen}")));
    }
    [out[0].clone(), out[1].clone()]
}

#[tokio::test]
async fn both_lanes_give_the_same_answer_for_the_same_bearer_inputs() {
    let gw = start().await;
    let (cookie, _) = gw.session_for("ann", &["agent"]).await;
    let good = format!("Authorization: {}", bearer(CRM));
    let cookie = format!("Cookie: {cookie}");
    let cases: Vec<(&str, Vec<String>, u16)> = vec![
        ("/api/x", vec![good.clone()], 200),
        ("/api/x", vec![good.clone(), cookie.clone()], 200),
        (
            "/api/x",
            vec![good.clone(), "X-Forwarded-User: mallory".into()],
            200,
        ),
        (
            "/api/x",
            vec!["Authorization: Bearer wrong".into(), cookie.clone()],
            401,
        ),
        ("/api/x", vec![good.clone(), good.clone()], 401),
        ("/api/x", vec!["authorization: bearer ".into()], 401),
        ("/agent/x", vec![good.clone(), cookie.clone()], 401),
        (
            "/agent/x",
            vec!["Authorization: Basic eDp5".into(), cookie.clone()],
            200,
        ),
        (
            "/api/x",
            vec![format!("Authorization: {}", bearer(REPORTER))],
            403,
        ),
        ("/hc/x", vec![good.clone()], 200),
        ("/api/x", vec![cookie.clone()], 200),
    ];
    for (path, fields, status) in &cases {
        let before = gw.gateway().metrics.handoffs();
        let [lane, general] = both_ways(&gw, path, fields).await;
        assert_eq!(lane, general, "{path} {fields:?}");
        assert_eq!(lane.0, *status, "{path} {fields:?}: {}", lane.1);
        let bearer_sent = fields
            .iter()
            .any(|f| f.to_ascii_lowercase().starts_with("authorization"));
        if bearer_sent {
            // Both went to the general path: the lane hands every Authorization to hyper.
            assert_eq!(
                gw.gateway().metrics.handoffs(),
                before + 2,
                "{path} {fields:?}"
            );
        }
    }
    gw.stop().await;
}

#[tokio::test]
async fn a_head_request_with_a_service_token_is_answered_without_a_cookie() {
    let gw = start().await;
    let r = Http::new()
        .send(
            Method::HEAD,
            &gw.url("/api/x"),
            &[("authorization", &bearer(CRM))],
            Vec::new(),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.header("set-cookie").is_none());
    gw.stop().await;
}

#[tokio::test]
async fn forward_auth_decides_a_bearer_as_the_proxy_path_does() {
    let extra = format!("{}\n[forward_auth]\nenabled = true\n", machine_toml());
    let gw = TestGateway::start_tuned("trusted_proxies = [\"127.0.0.1/32\"]", &extra, |_| {}).await;
    let http = Http::new();
    let ask = |uri: &'static str, auth: String| {
        let (http, url) = (&http, gw.url("/_portcullis/auth/forward"));
        async move {
            http.get(
                &url,
                &[
                    ("x-forwarded-method", "GET"),
                    ("x-forwarded-proto", "https"),
                    ("x-forwarded-host", "app.test"),
                    ("x-forwarded-uri", uri),
                    ("authorization", &auth),
                ],
            )
            .await
        }
    };
    let r = ask("/api/x", bearer(CRM)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(r.header("x-forwarded-user"), Some("crm-sync"));
    assert_eq!(r.header("x-auth-method"), Some("token:crm-sync"));
    assert!(r.header("set-cookie").is_none());
    assert_invalid_token(
        &ask("/agent/x", bearer(CRM)).await,
        "forward-auth, not a bearer route",
    );
    assert_invalid_token(
        &ask("/api/x", bearer("wrong")).await,
        "forward-auth, unknown token",
    );
    assert_eq!(
        ask("/api/x", bearer(REPORTER)).await.status,
        StatusCode::FORBIDDEN
    );
    gw.stop().await;
}
