//! The admin API: tokens, sessions that really end, users, recovery codes, audit, metrics,
//! health, the OpenAPI document.

use crate::support::browser::*;
use crate::support::*;
use hyper::{Method, StatusCode};
use portcullis::secret::Password;

pub(crate) const TOKEN: &str = "test-admin-token-0123456789";
/// A token with the `read` scope only.
pub(crate) const READ_TOKEN: &str = "test-admin-reader-0123456789";
pub(crate) const PW: &str = "correct horse battery staple";

pub(crate) struct Admin {
    pub(crate) gw: TestGateway,
    pub(crate) base: String,
    pub(crate) http: Http,
}

impl Admin {
    pub(crate) async fn start() -> Admin {
        Admin::start_with_sessions("").await
    }

    /// As `start`, with `session` keys in `[session]` (e.g. a Redis store).
    pub(crate) async fn start_with_sessions(session: &str) -> Admin {
        let extra = format!(
            r#"
[admin]
listen = "127.0.0.1:0"
tokens = [{{ name = "ops", sha256 = "{}" }}, {{ name = "reader", sha256 = "{}", scopes = ["read"] }}]

[roles.contractor]
groups = ["contractors"]
require_mfa = true

[storage]
url = "sqlite://users.db"

[native]
lockout = {{ max_failures = 3, window = "15m", duration = "15m" }}
"#,
            sha256_hex(TOKEN),
            sha256_hex(READ_TOKEN)
        );
        let gw = TestGateway::start_full("", session, &extra, |_| {}).await;
        let base = format!(
            "http://{}",
            gw.running.as_ref().unwrap().admin_addr.unwrap()
        );
        Admin {
            gw,
            base,
            http: Http::new(),
        }
    }

    pub(crate) async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> Resp {
        self.call_as(TOKEN, method, path, body).await
    }

    /// `call` with another bearer token.
    pub(crate) async fn call_as(
        &self,
        token: &str,
        method: Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> Resp {
        let auth = format!("Bearer {token}");
        let mut h = vec![("authorization", auth.as_str())];
        if body.is_some() {
            h.push(("content-type", "application/json"));
        }
        self.http
            .send(
                method,
                &format!("{}{path}", self.base),
                &h,
                body.map(|b| b.to_string().into_bytes()).unwrap_or_default(),
            )
            .await
    }

    pub(crate) async fn add_user(&self, name: &str, roles: &[&str]) {
        let g = self.gw.gateway();
        g.accounts
            .as_ref()
            .unwrap()
            .create_user(
                &g.config,
                name,
                None,
                roles.iter().map(|r| r.to_string()).collect(),
                Some(Password::new(PW.into())),
                self.gw.clock.now(),
            )
            .await
            .unwrap();
    }

    /// A real native login (end_user: no second factor); returns the browser holding the session.
    pub(crate) async fn login(&self, user: &str) -> Browser {
        self.login_with(user, PW).await
    }

    /// A real native login with `password`; returns the browser holding the session.
    pub(crate) async fn login_with(&self, user: &str, password: &str) -> Browser {
        let mut b = Browser::new(&format!("http://{}", self.gw.addr));
        let form = b.get("/normal").await;
        let csrf = input_value(&form.text(), "csrf_token").unwrap();
        let r = b
            .post(
                "/normal",
                &[
                    ("username", user),
                    ("password", password),
                    ("csrf_token", &csrf),
                    ("rd", "/"),
                ],
            )
            .await;
        assert_eq!(r.status, StatusCode::FOUND, "{}", r.text());
        assert!(b.jar.contains_key("portcullis"));
        b
    }
}

#[tokio::test]
async fn every_protected_endpoint_refuses_a_missing_or_wrong_token() {
    let a = Admin::start().await;
    for r in portcullis::admin::routes::ROUTES {
        let path = r
            .path
            .replace("{id}", "AAAAAAAAAAAAAAAAAAAAAA")
            .replace("{user}", "nobody");
        let method = Method::from_bytes(r.method.as_bytes()).unwrap();
        let none = a
            .http
            .send(
                method.clone(),
                &format!("{}{path}", a.base),
                &[],
                Vec::new(),
            )
            .await;
        let wrong = a
            .http
            .send(
                method.clone(),
                &format!("{}{path}", a.base),
                &[("authorization", "Bearer not-the-token")],
                Vec::new(),
            )
            .await;
        let basic = a
            .http
            .send(
                method.clone(),
                &format!("{}{path}", a.base),
                &[("authorization", &format!("Basic {TOKEN}"))],
                Vec::new(),
            )
            .await;
        let good = a.call(method, &path, None).await;
        if r.auth {
            assert_eq!(
                none.status,
                StatusCode::UNAUTHORIZED,
                "{} {path} without a token",
                r.method
            );
            assert_eq!(
                wrong.status,
                StatusCode::UNAUTHORIZED,
                "{} {path} with a wrong token",
                r.method
            );
            assert_eq!(
                basic.status,
                StatusCode::UNAUTHORIZED,
                "{} {path} with another scheme",
                r.method
            );
            assert_eq!(none.json()["error"], "unauthorized");
        } else {
            assert_eq!(
                none.status,
                StatusCode::OK,
                "{} {path} is open for probes",
                r.method
            );
        }
        assert_ne!(
            good.status,
            StatusCode::UNAUTHORIZED,
            "{} {path} with the token",
            r.method
        );
    }
}

#[tokio::test]
async fn admin_paths_are_not_served_on_the_public_listener() {
    let a = Admin::start().await;
    let auth = format!("Bearer {TOKEN}");
    for path in [
        "/api/v1/sessions",
        "/metrics",
        "/healthz",
        "/api/v1/openapi.json",
    ] {
        let r = a
            .http
            .get(
                &a.gw.url(path),
                &[("authorization", &auth), ("accept", "application/json")],
            )
            .await;
        assert_eq!(
            r.status,
            StatusCode::UNAUTHORIZED,
            "{path} on the public listener is just an app path"
        );
        assert_ne!(r.json()["error"], "unauthorized");
    }
}

#[tokio::test]
async fn sessions_from_a_real_login_are_listed_and_terminated_for_real() {
    let a = Admin::start().await;
    a.add_user("ursula", &["end_user"]).await;
    a.add_user("victor", &["end_user"]).await;
    let mut u1 = a.login("ursula").await;
    let mut u2 = a.login("ursula").await;
    let mut v = a.login("victor").await;
    assert_eq!(u1.get("/app").await.status, StatusCode::OK);
    let list = a
        .call(Method::GET, "/api/v1/sessions?user=ursula", None)
        .await;
    assert_eq!(list.status, StatusCode::OK);
    let items = list.json()["items"].as_array().unwrap().clone();
    assert_eq!(items.len(), 2);
    let s = &items[0];
    for key in [
        "id",
        "user",
        "roles",
        "method",
        "idp",
        "mfa",
        "created_at",
        "last_seen_at",
        "expires_at",
        "ip",
        "user_agent",
    ] {
        assert!(s.get(key).is_some(), "session item has {key}");
    }
    assert_eq!(s["user"], "ursula");
    assert_eq!(s["method"], "native");
    assert_eq!(s["user_agent"], "TestBrowser/1.0");
    assert!(
        !list.text().contains(&u1.jar["portcullis"]),
        "never the cookie value"
    );
    // The id is the X-Auth-Session the app saw.
    let seen = u1
        .get("/app")
        .await
        .upstream_header("x-auth-session")
        .unwrap();
    let id = items
        .iter()
        .map(|i| i["id"].as_str().unwrap())
        .find(|i| *i == seen)
        .unwrap()
        .to_owned();
    // Terminate one: the very next request is unauthenticated, the other session lives.
    assert_eq!(
        a.call(Method::DELETE, &format!("/api/v1/sessions/{id}"), None)
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        u1.get("/app").await.status,
        StatusCode::FOUND,
        "sent back to login"
    );
    assert_eq!(u2.get("/app").await.status, StatusCode::OK);
    assert_eq!(
        a.call(Method::DELETE, &format!("/api/v1/sessions/{id}"), None)
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    // Terminate all of a user's sessions.
    let r = a
        .call(
            Method::DELETE,
            "/api/v1/users/ursula/sessions?devices=true",
            None,
        )
        .await;
    assert_eq!(r.json()["terminated"], 1);
    assert_eq!(u2.get("/app").await.status, StatusCode::FOUND);
    assert_eq!(
        v.get("/app").await.status,
        StatusCode::OK,
        "other users untouched"
    );
    // Pagination.
    let _w = a.login("victor").await;
    let p1 = a
        .call(Method::GET, "/api/v1/sessions?limit=1", None)
        .await
        .json();
    assert_eq!(p1["items"].as_array().unwrap().len(), 1);
    let next = p1["next"].as_str().unwrap().to_owned();
    let p2 = a
        .call(
            Method::GET,
            &format!("/api/v1/sessions?limit=1&cursor={next}"),
            None,
        )
        .await
        .json();
    assert_eq!(p2["items"].as_array().unwrap().len(), 1);
    assert!(p2["next"].is_null());
    assert_ne!(p1["items"][0]["id"], p2["items"][0]["id"]);
}

#[tokio::test]
async fn users_can_be_created_shown_disabled_enabled_and_reset() {
    let a = Admin::start().await;
    let r = a.call(Method::POST, "/api/v1/users", Some(serde_json::json!({"username": "Wendy", "email": "w@example.com", "roles": ["end_user"]}))).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    let body = r.json();
    assert_eq!(body["user"]["username"], "wendy");
    let pw = body["password"].as_str().unwrap().to_owned();
    assert!(pw.len() >= 16, "a generated password is returned once");
    assert_eq!(
        a.call(
            Method::POST,
            "/api/v1/users",
            Some(serde_json::json!({"username": "wendy", "roles": ["end_user"]}))
        )
        .await
        .status,
        StatusCode::CONFLICT
    );
    assert_eq!(
        a.call(
            Method::POST,
            "/api/v1/users",
            Some(serde_json::json!({"username": "x", "roles": ["nope"]}))
        )
        .await
        .status,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        a.call(
            Method::POST,
            "/api/v1/users",
            Some(serde_json::json!({"username": "x", "roles": ["end_user"], "admin": true}))
        )
        .await
        .status,
        StatusCode::BAD_REQUEST
    );
    let shown = a
        .call(Method::GET, "/api/v1/users/wendy", None)
        .await
        .json();
    assert_eq!(shown["email"], "w@example.com");
    assert_eq!(shown["disabled"], false);
    assert!(shown.get("password_hash").is_none());
    let list = a.call(Method::GET, "/api/v1/users", None).await.json();
    assert_eq!(list["items"].as_array().unwrap().len(), 1);
    // The generated password logs in; disabling ends the session and refuses the next login.
    let mut b = Browser::new(&format!("http://{}", a.gw.addr));
    let form = b.get("/normal").await;
    let csrf = input_value(&form.text(), "csrf_token").unwrap();
    assert_eq!(
        b.post(
            "/normal",
            &[
                ("username", "wendy"),
                ("password", &pw),
                ("csrf_token", &csrf),
                ("rd", "/")
            ]
        )
        .await
        .status,
        StatusCode::FOUND
    );
    assert_eq!(b.get("/x").await.status, StatusCode::OK);
    assert_eq!(
        a.call(Method::POST, "/api/v1/users/wendy/disable", None)
            .await
            .json()["disabled"],
        true
    );
    assert_eq!(b.get("/x").await.status, StatusCode::FOUND);
    assert_eq!(
        a.call(Method::POST, "/api/v1/users/wendy/enable", None)
            .await
            .json()["disabled"],
        false
    );
    assert_eq!(
        a.call(Method::DELETE, "/api/v1/users/wendy/mfa", None)
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        a.call(Method::GET, "/api/v1/users/ghost", None)
            .await
            .status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn recovery_codes_issued_by_the_api_work_once() {
    let a = Admin::start().await;
    a.add_user("xena", &["contractor"]).await;
    let acc = a.gw.gateway().accounts.as_ref().unwrap();
    acc.enroll_totp_now("xena", a.gw.clock.now()).await.unwrap();
    let r = a
        .call(
            Method::POST,
            "/api/v1/users/xena/recovery-codes",
            Some(serde_json::json!({"ttl": "30d"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    let codes: Vec<String> = r.json()["codes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_owned())
        .collect();
    assert_eq!(codes.len(), 10);
    assert!(r.json()["expires_at"].is_string());
    assert_eq!(
        a.call(
            Method::POST,
            "/api/v1/users/xena/recovery-codes",
            Some(serde_json::json!({"ttl": "soon"}))
        )
        .await
        .status,
        StatusCode::BAD_REQUEST
    );
    let attempt = |code: String| {
        let a = &a;
        async move {
            let mut b = Browser::new(&format!("http://{}", a.gw.addr));
            let form = b.get("/normal").await;
            let csrf = input_value(&form.text(), "csrf_token").unwrap();
            b.post(
                "/normal",
                &[
                    ("username", "xena"),
                    ("password", PW),
                    ("csrf_token", &csrf),
                    ("rd", "/"),
                ],
            )
            .await;
            let page = b.get("/_portcullis/mfa").await;
            let csrf = input_value(&page.text(), "csrf_token").unwrap();
            b.post(
                "/_portcullis/mfa",
                &[("code", &code), ("csrf_token", &csrf)],
            )
            .await
            .status
        }
    };
    assert_eq!(attempt(codes[0].clone()).await, StatusCode::OK);
    assert_eq!(attempt(codes[0].clone()).await, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn every_audited_action_appears_in_the_audit_api() {
    let a = Admin::start().await;
    a.add_user("yuri", &["end_user"]).await;
    let mut b = a.login("yuri").await;
    b.logout().await;
    // A failure, a lockout.
    for _ in 0..3 {
        let mut x = Browser::new(&format!("http://{}", a.gw.addr));
        let form = x.get("/normal").await;
        let csrf = input_value(&form.text(), "csrf_token").unwrap();
        x.post(
            "/normal",
            &[
                ("username", "yuri"),
                ("password", "wrong"),
                ("csrf_token", &csrf),
                ("rd", "/"),
            ],
        )
        .await;
    }
    a.gw.clock.advance(16 * 60);
    let _b2 = a.login("yuri").await;
    a.call(Method::DELETE, "/api/v1/users/yuri/sessions", None)
        .await;
    a.call(
        Method::POST,
        "/api/v1/users",
        Some(serde_json::json!({"username": "zoe", "roles": ["end_user"]})),
    )
    .await;
    a.call(Method::POST, "/api/v1/users/zoe/disable", None)
        .await;
    a.call(Method::POST, "/api/v1/users/zoe/recovery-codes", None)
        .await;
    a.call(Method::DELETE, "/api/v1/users/zoe/mfa", None).await;
    let all = a
        .call(Method::GET, "/api/v1/audit?limit=500", None)
        .await
        .json();
    let kinds: Vec<String> = all["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].as_str().unwrap().to_owned())
        .collect();
    for want in [
        "login.password",
        "login.success",
        "logout",
        "login.failure",
        "lockout",
        "session.terminated_all",
        "admin.user_created",
        "admin.user_disabled",
        "admin.recovery_codes_issued",
        "admin.mfa_reset",
    ] {
        assert!(
            kinds.iter().any(|k| k == want),
            "{want} missing from {kinds:?}"
        );
    }
    let admin_ev = all["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["type"] == "admin.user_created")
        .unwrap();
    assert_eq!(
        admin_ev["reason"], "token:ops",
        "the acting token is recorded"
    );
    // Filters.
    let fails = a
        .call(
            Method::GET,
            "/api/v1/audit?user=yuri&type=login.failure",
            None,
        )
        .await
        .json();
    assert_eq!(fails["items"].as_array().unwrap().len(), 3);
    let future = a
        .call(
            Method::GET,
            "/api/v1/audit?since=2100-01-01T00:00:00Z",
            None,
        )
        .await
        .json();
    assert_eq!(future["items"].as_array().unwrap().len(), 0);
    assert_eq!(
        a.call(Method::GET, "/api/v1/audit?since=yesterday", None)
            .await
            .status,
        StatusCode::BAD_REQUEST
    );
    let page = a
        .call(Method::GET, "/api/v1/audit?limit=2", None)
        .await
        .json();
    assert_eq!(page["items"].as_array().unwrap().len(), 2);
    assert!(page["next"].is_string());
}

#[tokio::test]
async fn metrics_change_after_a_login_and_health_endpoints_answer() {
    let a = Admin::start().await;
    a.add_user("mia", &["end_user"]).await;
    let value = |text: &str, line: &str| -> u64 {
        text.lines()
            .find_map(|l| l.strip_prefix(line))
            .map(|v| v.trim().parse().unwrap())
            .unwrap_or_else(|| panic!("{line} missing"))
    };
    let before = a.call(Method::GET, "/metrics", None).await;
    assert_eq!(
        before.header("content-type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    let before = before.text();
    let mut b = a.login("mia").await;
    b.get("/app").await;
    let after = a.call(Method::GET, "/metrics", None).await.text();
    let login = "portcullis_logins_total{method=\"native\",result=\"success\"}";
    assert_eq!(value(&after, login), value(&before, login) + 1);
    let proxied = "portcullis_http_requests_total{class=\"proxy\",status=\"2xx\"}";
    assert_eq!(value(&after, proxied), value(&before, proxied) + 1);
    assert_eq!(value(&after, "portcullis_sessions_active"), 1);
    assert!(value(&after, "portcullis_upstream_latency_seconds_count") >= 1);
    let h = a.http.get(&format!("{}/healthz", a.base), &[]).await;
    assert_eq!(h.json()["status"], "ok");
    let r = a.http.get(&format!("{}/readyz", a.base), &[]).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json()["checks"]["user_store"], true);
}

#[tokio::test]
async fn the_openapi_document_parses_and_lists_every_route() {
    let a = Admin::start().await;
    let doc = a
        .call(Method::GET, "/api/v1/openapi.json", None)
        .await
        .json();
    assert_eq!(doc["openapi"], "3.0.3");
    let paths = doc["paths"].as_object().unwrap();
    for r in portcullis::admin::routes::ROUTES {
        let op = &paths[r.path][r.method.to_ascii_lowercase()];
        assert!(op.is_object(), "{} {} documented", r.method, r.path);
        for (code, _, schema) in r.responses {
            assert!(op["responses"][code.to_string()].is_object());
            if !schema.is_empty() {
                assert!(
                    doc["components"]["schemas"][schema].is_object(),
                    "schema {schema} defined"
                );
            }
        }
    }
    let documented: usize = paths.values().map(|p| p.as_object().unwrap().len()).sum();
    assert_eq!(documented, portcullis::admin::routes::ROUTES.len());
    // And every documented route is served (not 404/405) with the token.
    for (path, ops) in paths {
        for method in ops.as_object().unwrap().keys() {
            let p = path
                .replace("{id}", "AAAAAAAAAAAAAAAAAAAAAA")
                .replace("{user}", "nobody");
            let r = a
                .call(
                    Method::from_bytes(method.to_ascii_uppercase().as_bytes()).unwrap(),
                    &p,
                    None,
                )
                .await;
            assert_ne!(r.status, StatusCode::METHOD_NOT_ALLOWED, "{method} {path}");
            if r.status == StatusCode::NOT_FOUND {
                assert_ne!(
                    r.json()["detail"],
                    "No such admin endpoint.",
                    "{method} {path}"
                );
            }
        }
    }
}

#[test]
fn admin_token_prints_a_token_and_its_config_line() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .args(["admin-token", "ops"])
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    let token = text.lines().next().unwrap().rsplit(' ').next().unwrap();
    let line = text.lines().last().unwrap();
    assert_eq!(
        line,
        format!(
            "tokens = [{{ name = \"ops\", sha256 = \"{}\" }}]",
            sha256_hex(token)
        )
    );
}

#[tokio::test]
async fn the_sessions_cli_lists_and_revokes_through_the_admin_api() {
    let a = Admin::start().await;
    a.add_user("cliuser", &["end_user"]).await;
    let mut b = a.login("cliuser").await;
    let bin = env!("CARGO_BIN_EXE_portcullis");
    // The CLI finds the admin API through the config; the gateway's says port 0 (the system
    // picked one), so the CLI gets a copy naming the port actually bound.
    let admin_addr = a.gw.running.as_ref().unwrap().admin_addr.unwrap();
    let cfg = a.gw.dir.path().join("cli.toml");
    let text = std::fs::read_to_string(&a.gw.config_path).unwrap();
    assert!(text.contains("listen = \"127.0.0.1:0\""));
    std::fs::write(
        &cfg,
        text.replace(
            "listen = \"127.0.0.1:0\"",
            &format!("listen = \"{admin_addr}\""),
        ),
    )
    .unwrap();
    let out = tokio::process::Command::new(bin)
        .args(["sessions", "list", "--user", "cliuser", "--config"])
        .arg(&cfg)
        .env("PORTCULLIS_ADMIN_TOKEN", TOKEN)
        .output()
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let row = text
        .lines()
        .find(|l| l.contains("cliuser"))
        .expect("session listed");
    let id = row.split_whitespace().next().unwrap().to_owned();
    let out = tokio::process::Command::new(bin)
        .args(["sessions", "revoke", &id, "--config"])
        .arg(&cfg)
        .env("PORTCULLIS_ADMIN_TOKEN", TOKEN)
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "revoke {id}: {}\nlisted:\n{text}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(b.get("/app").await.status, StatusCode::FOUND);
    let out = tokio::process::Command::new(bin)
        .args(["sessions", "list", "--config"])
        .arg(&cfg)
        .env("PORTCULLIS_ADMIN_TOKEN", "wrong")
        .output()
        .await
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("401"));
}
