//! Forward-auth (issue 17 part 1, DESIGN.md §9): real nginx (`auth_request`) and real Caddy
//! (`forward_auth`) on loopback in front of the test upstream, portcullis deciding. The proxy
//! configs are `config/examples/`'s own text with this test's addresses put in.

use crate::support::browser::Browser;
use crate::support::login::*;
use crate::support::*;
use base64::Engine as _;
use hyper::{Method, StatusCode};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const NGINX_SITE: &str = include_str!("../../config/examples/nginx-forward-auth.conf");
const CADDYFILE: &str = include_str!("../../config/examples/Caddyfile");
const NGINX: &str = "/usr/sbin/nginx";
const CADDY: &str = "/usr/bin/caddy";

/// `[forward_auth]` of every test here (with `trusted_proxies = ["127.0.0.1/32"]`).
const FORWARD_AUTH: &str = r#"
[forward_auth]
enabled = true
allowed_hosts = ["app.test"]
"#;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Nginx,
    Caddy,
}

/// A proxy in front of the app, killed on drop.
struct Proxy {
    child: Child,
    port: u16,
    _dir: TempDir,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Proxy {
    fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

/// The example's text for this test: portcullis at `gw`, the app at `app`, served on `port`.
fn site(kind: Kind, gw: SocketAddr, app: SocketAddr, port: u16) -> String {
    let text = match kind {
        Kind::Nginx => NGINX_SITE.replace("listen 80;", &format!("listen 127.0.0.1:{port};")),
        Kind::Caddy => CADDYFILE.replace(
            "https://helpdesk.example.com {",
            &format!("http://127.0.0.1:{port} {{"),
        ),
    };
    text.replace("127.0.0.1:8443", &gw.to_string())
        .replace("127.0.0.1:3000", &app.to_string())
}

/// Starts `kind` in front of the gateway and the app; None (skipped) when not installed.
async fn proxy(kind: Kind, gw: SocketAddr, app: SocketAddr) -> Option<Proxy> {
    let (bin, what) = match kind {
        Kind::Nginx => (NGINX, "nginx"),
        Kind::Caddy => (CADDY, "Caddy (caddy)"),
    };
    let found = if Path::new(bin).exists() {
        Ok(())
    } else {
        Err("not installed (scripts/setup-system --tests installs it)".to_owned())
    };
    require(what, found)?;
    let dir = TempDir::new(&format!("{kind:?}").to_lowercase());
    let d = dir.path().display().to_string();
    std::fs::create_dir_all(dir.path().join("tmp")).unwrap();
    let (child, port) = spawn_listening(what, Duration::from_secs(20), |port| {
        let mut c = match kind {
            Kind::Nginx => {
                let conf = format!(
                    r#"master_process off;
error_log {d}/error.log;
pid {d}/nginx.pid;
events {{ worker_connections 256; }}
http {{
  access_log off;
  client_body_temp_path {d}/tmp/body;
  proxy_temp_path {d}/tmp/proxy;
  fastcgi_temp_path {d}/tmp/fastcgi;
  uwsgi_temp_path {d}/tmp/uwsgi;
  scgi_temp_path {d}/tmp/scgi;
{site}
}}
"#,
                    site = site(kind, gw, app, port)
                );
                std::fs::write(dir.path().join("nginx.conf"), conf).unwrap();
                let mut c = Command::new(NGINX);
                c.args(["-p", &format!("{d}/"), "-e", &format!("{d}/error.log")])
                    .args(["-c", &format!("{d}/nginx.conf"), "-g", "daemon off;"]);
                c
            }
            Kind::Caddy => {
                let conf = format!(
                    "{{\n\tadmin off\n\tauto_https off\n}}\n{}",
                    site(kind, gw, app, port)
                );
                std::fs::write(dir.path().join("Caddyfile"), conf).unwrap();
                let mut c = Command::new(CADDY);
                c.args(["run", "--adapter", "caddyfile", "--config"])
                    .arg(dir.path().join("Caddyfile"))
                    .env("HOME", &d)
                    .env("XDG_DATA_HOME", format!("{d}/data"))
                    .env("XDG_CONFIG_HOME", format!("{d}/config"));
                c
            }
        };
        c.stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap()
    })
    .await;
    Some(Proxy {
        child,
        port,
        _dir: dir,
    })
}

/// A login env in forward-auth mode, and `kind` in front of it.
async fn setup(kind: Kind) -> Option<(LoginEnv, Proxy)> {
    let env = LoginEnv::start(LoginOpts {
        trusted_proxy: true,
        extra: FORWARD_AUTH,
        ..LoginOpts::default()
    })
    .await;
    let p = proxy(kind, env.gw.addr, env.gw.upstream.addr).await?;
    Some((env, p))
}

fn hits(env: &LoginEnv) -> usize {
    env.gw
        .upstream
        .hits
        .load(std::sync::atomic::Ordering::SeqCst)
}

/// A contractor (native password + TOTP) signs in through the proxy, lands back on the page
/// it asked for, and the app sees who it is; forged identity headers never reach the app; a
/// revoked session is refused on the very next request.
async fn contractor_login_end_to_end(kind: Kind) {
    let Some((env, p)) = setup(kind).await else {
        return;
    };
    let seed = env.add_enrolled("cora").await;
    let mut b = Browser::new(&p.base());
    let r = b.get("/contract/tickets?id=4").await;
    assert_eq!(r.status, StatusCode::FOUND, "{kind:?}: {}", r.text());
    let login = r.header("location").unwrap().to_owned();
    let native = format!("http://{}/normal?rd=", env.gw.addr);
    assert!(login.starts_with(&native), "{kind:?}: {login}");
    let before = hits(&env);

    password_step(&mut b, &login, "cora", PW).await;
    // The second factor through the proxy: the gateway's pages are served on the app's host.
    let r = submit_code(&mut b, &env.code(&seed)).await;
    assert_eq!(r.status, StatusCode::FOUND, "{kind:?}: {}", r.text());
    let back = b.follow(r).await;
    assert_eq!(back.status, StatusCode::OK, "{kind:?}: {}", back.text());
    let app = back.json();
    assert_eq!(app["path"], "/contract/tickets", "{kind:?}");
    assert_eq!(app["query"], "id=4", "{kind:?}");
    assert_eq!(
        hits(&env),
        before + 1,
        "{kind:?}: only the final request reached the app"
    );
    assert_eq!(
        back.upstream_header("x-forwarded-user").as_deref(),
        Some("cora")
    );
    assert_eq!(
        back.upstream_header("x-auth-roles").as_deref(),
        Some("contractor")
    );
    assert_eq!(
        back.upstream_header("x-auth-method").as_deref(),
        Some("native")
    );
    assert_eq!(back.upstream_header("x-auth-mfa").as_deref(), Some("totp"));
    assert_eq!(
        back.upstream_header("x-forwarded-email").as_deref(),
        Some("cora@example.com")
    );
    let session = back.upstream_header("x-auth-session").unwrap();
    let assertion = back.upstream_header("x-portcullis-assertion").unwrap();
    assert_eq!(assertion.split('.').count(), 3, "a JWT: {assertion}");

    // Forged identity headers, in both spellings, with the real cookie and without one.
    let cookie = b.cookie_header();
    let forged: [(&str, &str); 5] = [
        ("x-forwarded-user", "mallory"),
        ("x-auth-roles", "admin"),
        ("x_forwarded_user", "mallory"),
        ("x-auth-session", "forged"),
        ("x-portcullis-assertion", "forged"),
    ];
    for (path, with_cookie) in [
        ("/contract/x", true),
        ("/hc/page", true),
        ("/hc/page", false),
    ] {
        let mut h = vec![("accept", "text/html")];
        if with_cookie {
            h.push(("cookie", cookie.as_str()));
        }
        h.extend(forged);
        let r = b.http.get(&format!("{}{path}", p.base()), &h).await;
        assert_eq!(r.status, StatusCode::OK, "{kind:?} {path}: {}", r.text());
        let seen = r.upstream_headers();
        // Caddy 2.6 copies the (empty) names of an anonymous answer: empty is no identity.
        let user = r
            .upstream_header("x-forwarded-user")
            .filter(|u| !u.is_empty());
        let want_user = with_cookie.then(|| "cora".to_owned());
        assert_eq!(user, want_user, "{kind:?} {path}: {seen:?}");
        for (n, v) in &seen {
            assert!(
                !v.contains("mallory") && v != "forged" && v != "admin",
                "{kind:?} {path}: forged {n}: {v} reached the app"
            );
            assert!(!n.contains('_'), "{kind:?}: {n} reached the app");
        }
        if with_cookie {
            assert_eq!(r.upstream_header("x-auth-session"), Some(session.clone()));
        }
    }

    // Revocation: the very next request is unauthenticated.
    let r = env
        .admin(Method::DELETE, "/api/v1/users/cora/sessions", None)
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let before = hits(&env);
    let r = b.get("/contract/tickets").await;
    assert_eq!(r.status, StatusCode::FOUND, "{kind:?}");
    assert!(r.header("location").unwrap().starts_with(&native));
    let r = b
        .http
        .get(&format!("{}/contract/x", p.base()), &[("cookie", &cookie)])
        .await;
    assert_eq!(
        r.status,
        StatusCode::UNAUTHORIZED,
        "{kind:?}: an API client"
    );
    assert_eq!(hits(&env), before, "{kind:?}: nothing reached the app");
}

#[tokio::test]
async fn a_contractor_signs_in_through_nginx_and_only_its_identity_reaches_the_app() {
    contractor_login_end_to_end(Kind::Nginx).await;
}

#[tokio::test]
async fn a_contractor_signs_in_through_caddy_and_only_its_identity_reaches_the_app() {
    contractor_login_end_to_end(Kind::Caddy).await;
}

/// A staff member (OIDC single sign-on) asks the proxy for an agent page, is relayed through
/// the gateway to the IdP and back, and lands on the page asked for with its SSO identity at
/// the app; a forged identity header does not get through.
async fn staff_login_end_to_end(kind: Kind) {
    use crate::support::oidc_provider::{TestOp, CLIENT_ID, CLIENT_SECRET};
    let op = TestOp::start(portcullis::clock::Clock::manual(1_800_000_000)).await;
    let extra = format!(
        r#"{FORWARD_AUTH}
[[routes]]
prefix = "/staff"
allow_roles = ["agent"]
login = "corp"

[[idp]]
id = "corp"
kind = "oidc"
display_name = "corp SSO"
issuer = "{issuer}"
client_id = "{CLIENT_ID}"
client_secret = "{CLIENT_SECRET}"
mfa_evidence = {{ amr_any = ["mfa"] }}
http_timeout = "1s"
"#,
        issuer = op.issuer
    );
    // `LoginOpts::extra` is a static str; one small string per test process.
    let extra: &'static str = Box::leak(extra.into_boxed_str());
    let env = LoginEnv::start(LoginOpts {
        trusted_proxy: true,
        extra,
        ..LoginOpts::default()
    })
    .await;
    let clock = env.gw.clock.clone();
    op.with(|s| s.clock = clock);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !env.gw.gateway().oidc.ready() {
        assert!(
            std::time::Instant::now() < deadline,
            "oidc provider never loaded"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let Some(p) = proxy(kind, env.gw.addr, env.gw.upstream.addr).await else {
        return;
    };
    let mut b = Browser::new(&p.base());
    let before = hits(&env);
    let r = b.get("/staff/tickets?id=9").await;
    assert_eq!(r.status, StatusCode::FOUND, "{kind:?}: {}", r.text());
    let back = b.follow(r).await;
    assert_eq!(back.status, StatusCode::OK, "{kind:?}: {}", back.text());
    let app = back.json();
    assert_eq!(app["path"], "/staff/tickets", "{kind:?}");
    assert_eq!(app["query"], "id=9", "{kind:?}");
    assert_eq!(hits(&env), before + 1, "{kind:?}: only the final request");
    assert_eq!(
        back.upstream_header("x-forwarded-user").as_deref(),
        Some("sam.staff")
    );
    assert_eq!(
        back.upstream_header("x-auth-method").as_deref(),
        Some("oidc:corp")
    );
    assert_eq!(
        back.upstream_header("x-auth-roles").as_deref(),
        Some("agent")
    );
    assert_eq!(
        back.upstream_header("x-auth-mfa").as_deref(),
        Some("idp"),
        "{kind:?}: the IdP's MFA evidence"
    );
    let cookie = b.cookie_header();
    let r = b
        .http
        .get(
            &format!("{}/staff/x", p.base()),
            &[
                ("accept", "text/html"),
                ("cookie", cookie.as_str()),
                ("x-forwarded-user", "mallory"),
                ("x-auth-roles", "admin"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{kind:?}: {}", r.text());
    assert_eq!(
        r.upstream_header("x-forwarded-user").as_deref(),
        Some("sam.staff")
    );
    assert_eq!(r.upstream_header("x-auth-roles").as_deref(), Some("agent"));
}

#[tokio::test]
async fn a_staff_member_signs_in_by_sso_through_nginx_and_reaches_the_page_asked_for() {
    staff_login_end_to_end(Kind::Nginx).await;
}

#[tokio::test]
async fn a_staff_member_signs_in_by_sso_through_caddy_and_reaches_the_page_asked_for() {
    staff_login_end_to_end(Kind::Caddy).await;
}

/// `/hc` stays public; a role the route does not admit is 403; `..;` tricks that a servlet
/// container would read as another route are refused as on the proxy path.
async fn routes_and_tricks(kind: Kind) {
    let Some((env, p)) = setup(kind).await else {
        return;
    };
    let http = Http::new();
    let r = http.get(&format!("{}/hc/page", p.base()), &[]).await;
    assert_eq!(r.status, StatusCode::OK, "{kind:?}: {}", r.text());
    assert_eq!(r.json()["path"], "/hc/page");
    assert_eq!(
        r.upstream_header("x-forwarded-user")
            .filter(|u| !u.is_empty()),
        None
    );

    let (cookie, _) = env.gw.session_for("eve", &["end_user"]).await;
    let r = http
        .get(&format!("{}/contract/x", p.base()), &[("cookie", &cookie)])
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{kind:?}: role refused");

    let mut through = 0;
    // (trick, whether the proxy path refuses it too: the rest it resolves, and forwards the
    // resolved path; a proxy in front forwards the path as sent, so forward-auth refuses them).
    for (trick, refused_there) in [
        ("/hc/..;/contract/x", true),
        ("/hc/%2e%2e;/contract/x", true),
        ("/hc/..%3B/contract/x", true),
        ("/hc/%2e%2e%3bx=1/contract/x", true),
        ("/hc/.;/../contract/x", false),
        ("/hc;x=1/../contract/x", false),
        ("/hc/x/../../contract/x", false),
        ("/hc//contract/x", false),
    ] {
        let direct = http.get(&env.gw.url(trick), &[]).await;
        if refused_there {
            assert_eq!(
                direct.status,
                StatusCode::BAD_REQUEST,
                "proxy path: {trick}"
            );
        }
        let before = hits(&env);
        let via = http.get(&format!("{}{trick}", p.base()), &[]).await;
        through += hits(&env) - before;
        let want = match kind {
            // nginx relays only 401 and 403 of its auth subrequest.
            Kind::Nginx => StatusCode::FORBIDDEN,
            Kind::Caddy => StatusCode::BAD_REQUEST,
        };
        assert_eq!(via.status, want, "{kind:?}: {trick}: {}", via.text());
    }
    assert_eq!(through, 0, "{kind:?}: no trick reached the app");
}

#[tokio::test]
async fn nginx_in_front_keeps_hc_public_and_refuses_what_the_proxy_path_refuses() {
    routes_and_tricks(Kind::Nginx).await;
}

#[tokio::test]
async fn caddy_in_front_keeps_hc_public_and_refuses_what_the_proxy_path_refuses() {
    routes_and_tricks(Kind::Caddy).await;
}

/// A raw HTTP/1.1 request to `addr` from `from` (another loopback address); the status.
async fn status_from(from: [u8; 4], addr: SocketAddr, head: &str) -> u16 {
    let s = tokio::net::TcpSocket::new_v4().unwrap();
    s.bind(SocketAddr::from((from, 0))).unwrap();
    let mut c = s.connect(addr).await.unwrap();
    c.write_all(head.as_bytes()).await.unwrap();
    let mut buf = vec![0u8; 1024];
    let n = c.read(&mut buf).await.unwrap();
    let text = String::from_utf8_lossy(&buf[..n]).into_owned();
    text.split(' ').nth(1).unwrap().parse().unwrap()
}

#[tokio::test]
async fn a_check_from_an_untrusted_address_is_refused_and_audited() {
    let env = LoginEnv::start(LoginOpts {
        trusted_proxy: true,
        extra: FORWARD_AUTH,
        ..LoginOpts::default()
    })
    .await;
    let (cookie, _) = env.gw.session_for("ann", &["agent"]).await;
    for (path, original) in [
        (
            "/_portcullis/auth/nginx",
            "X-Original-URL: http://app.test/agent/x\r\n".to_owned(),
        ),
        (
            "/_portcullis/auth/forward",
            "X-Forwarded-Host: app.test\r\nX-Forwarded-Uri: /agent/x\r\n".to_owned(),
        ),
    ] {
        let head = format!(
            "GET {path} HTTP/1.1\r\nHost: x\r\nCookie: {cookie}\r\n{original}Connection: close\r\n\r\n"
        );
        // 127.0.0.1 is trusted; 127.0.0.3 is not.
        assert_eq!(status_from([127, 0, 0, 1], env.gw.addr, &head).await, 200);
        assert_eq!(status_from([127, 0, 0, 3], env.gw.addr, &head).await, 403);
    }
    assert_eq!(
        env.gw.audit("forward_auth.untrusted").await,
        vec![("refused".to_owned(), "untrusted_peer".to_owned()); 2]
    );
}

#[tokio::test]
async fn the_checks_are_not_there_unless_enabled() {
    let gw = TestGateway::start_tuned("trusted_proxies = [\"127.0.0.1/32\"]", "", |_| {}).await;
    let r = Http::new()
        .get(
            &gw.url("/_portcullis/auth/nginx"),
            &[("x-original-url", "http://app.test/hc")],
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
}

/// Whether `url` is a place a login may send a browser: the gateway's origin or an allowed
/// host, read as a browser would (no user info, no backslash, no `//` path, no whitespace).
fn lands_on_allowed_host(url: &str, gw: SocketAddr) -> Result<(), String> {
    if url.bytes().any(|b| b <= b' ' || b == b'\\' || b == 0x7f) {
        return Err(format!("odd characters in {url:?}"));
    }
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"))
        .ok_or_else(|| format!("not absolute: {url:?}"))?;
    let (authority, path) = rest.split_at(rest.find(['/', '?', '#']).unwrap_or(rest.len()));
    let host = authority.split(':').next().unwrap_or_default();
    if authority.contains('@')
        || !authority.is_ascii()
        || !(host == "app.test" || host == gw.ip().to_string())
    {
        return Err(format!("foreign host in {url:?}"));
    }
    if !path.starts_with('/') || path.starts_with("//") {
        return Err(format!("odd path in {url:?}"));
    }
    Ok(())
}

#[tokio::test]
async fn a_login_returns_to_the_original_url_only_on_an_allowed_host() {
    let env = LoginEnv::start(LoginOpts {
        trusted_proxy: true,
        extra: FORWARD_AUTH,
        ..LoginOpts::default()
    })
    .await;
    let http = Http::new();
    let gw = env.gw.addr;
    let check = |host: &str| {
        vec![
            ("accept".to_owned(), "text/html".to_owned()),
            ("x-forwarded-proto".to_owned(), "https".to_owned()),
            ("x-forwarded-host".to_owned(), host.to_owned()),
            ("x-forwarded-uri".to_owned(), "/agent/t?id=4".to_owned()),
        ]
    };
    // The sign-in page's hidden `rd`, and where the return endpoint then sends the browser.
    async fn landing(env: &LoginEnv, http: &Http, login: &str) -> String {
        let mut b = env.browser();
        let form = b.get(&env.local(login)).await;
        assert_eq!(form.status, StatusCode::OK, "{login}: {}", form.text());
        let rd = crate::support::browser::input_value(&form.text(), "rd").unwrap();
        if rd.starts_with("/_portcullis/auth/return?") {
            let r = http.get(&env.gw.url(&rd), &[]).await;
            assert_eq!(r.status, StatusCode::FOUND);
            r.header("location").unwrap().to_owned()
        } else {
            env.gw.url(&rd)
        }
    }
    for (host, want) in [
        ("app.test", "https://app.test/agent/t?id=4".to_owned()),
        (
            "APP.test:8443",
            "https://app.test:8443/agent/t?id=4".to_owned(),
        ),
        (&gw.to_string(), format!("https://{gw}/agent/t?id=4")),
        ("evil.example", format!("http://{gw}/")),
        ("app.test.evil.example", format!("http://{gw}/")),
        ("evil.example@app.test", format!("http://{gw}/")),
    ] {
        let h = check(host);
        let h: Vec<(&str, &str)> = h.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
        let r = http.get(&env.gw.url("/_portcullis/auth/forward"), &h).await;
        assert_eq!(r.status, StatusCode::FOUND, "{host}: {}", r.text());
        let login = r.header("location").unwrap().to_owned();
        assert_eq!(landing(&env, &http, &login).await, want, "{host}");
    }

    // Every open-redirect payload, as the login's `rd` (raw, and after an allowed origin) and
    // as the return endpoint's target, leaves the browser on an allowed host.
    let payloads = std::fs::read_to_string(shared_data("open-redirect-payloads.txt")).unwrap();
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let mut tried = 0;
    for line in payloads.lines().filter(|l| !l.is_empty()) {
        for cand in [
            line.to_owned(),
            format!("https://app.test{line}"),
            format!("http://{gw}{line}"),
        ] {
            let r = http
                .get(
                    &env.gw
                        .url(&format!("/_portcullis/login?idp=native&rd={}", enc(&cand))),
                    &[],
                )
                .await;
            assert_eq!(r.status, StatusCode::FOUND, "{cand:?}");
            let to = landing(&env, &http, r.header("location").unwrap()).await;
            lands_on_allowed_host(&to, gw).unwrap_or_else(|e| panic!("rd {cand:?}: {e}"));
            let r = http
                .get(
                    &env.gw.url(&format!(
                        "/_portcullis/auth/return?to={}",
                        b64.encode(&cand)
                    )),
                    &[],
                )
                .await;
            assert_eq!(r.status, StatusCode::FOUND, "{cand:?}");
            let to = r.header("location").unwrap();
            lands_on_allowed_host(to, gw).unwrap_or_else(|e| panic!("to {cand:?}: {e}"));
            tried += 1;
        }
    }
    assert!(tried > 2000, "{tried}");
}

#[test]
fn forward_auth_config_errors_name_file_line_and_key() {
    let text = r#"[server]
listen = "127.0.0.1:8443"
public_url = "https://helpdesk.example.com"

[upstream]
url = "http://127.0.0.1:3000"

[roles.agent]
groups = ["agents"]

[[routes]]
prefix = "/"
allow_roles = ["agent"]

[forward_auth]
enabled = true
allowed_hosts = ["app.example.com", "https://evil.example", "*.example.com", "a.example:8080"]
"#;
    let p = Path::new("/etc/portcullis/test.toml");
    let errors: Vec<String> =
        match portcullis::config::Config::from_str_with_env(p, text, &|_| None) {
            Ok(_) => vec![],
            Err(e) => e.0.iter().map(|e| e.to_string()).collect(),
        };
    let host = |n: usize, h: &str| {
        format!("/etc/portcullis/test.toml:17: forward_auth.allowed_hosts[{n}]: {h:?} must be a host name such as \"app.example.com\" (no scheme, port, path or wildcard)")
    };
    assert_eq!(
        errors,
        vec![
            "/etc/portcullis/test.toml:16: forward_auth.enabled: forward-auth needs server.trusted_proxies: the addresses of the proxies that call it".to_owned(),
            host(1, "https://evil.example"),
            host(2, "*.example.com"),
            host(3, "a.example:8080"),
        ]
    );
    let unknown = text.replace("enabled = true", "enabled = true\nmode = \"x\"");
    let errors = portcullis::config::Config::from_str_with_env(p, &unknown, &|_| None)
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(
        errors.lines().any(|l| l.starts_with("/etc/portcullis/test.toml:17: forward_auth.mode: unknown key \"mode\" in [forward_auth]")),
        "{errors}"
    );
}
