//! Native login at /normal with the gateway's own second factor, over real HTTP.

use crate::support::browser::*;
use crate::support::login::{mfa_csrf, password_step};
use crate::support::smtp::TestSmtp;
use crate::support::*;
use hyper::StatusCode;
use portcullis::accounts::native_principal;
use portcullis::mfa::totp::code_at;
use portcullis::secret::Password;
use portcullis::storage::UserStore;
use std::time::Duration;

const PW: &str = "correct horse battery staple";

fn native_extra(smtp_port: u16) -> String {
    format!(
        r#"
[[routes]]
prefix = "/contract"
allow_roles = ["contractor", "agent"]

[roles.contractor]
groups = ["contractors"]
require_mfa = true
remember_mfa = "7d"

[storage]
url = "sqlite://users.db"

[native]
lockout = {{ max_failures = 3, window = "15m", duration = "15m" }}

[mfa]
issuer = "Test Helpdesk"
methods = ["totp", "email", "recovery_code"]
email = {{ smtp_url = "smtp://127.0.0.1:{smtp_port}", from = "gateway@example.com", code_ttl = "10m", resend_interval = "30s" }}
recovery_codes = {{ count = 10, ttl = "30d" }}
"#
    )
}

struct Env {
    gw: TestGateway,
    smtp: TestSmtp,
}

impl Env {
    async fn start() -> Env {
        let smtp = TestSmtp::start().await.unwrap();
        let gw = TestGateway::start_with(&native_extra(smtp.addr.port()), |_| {}).await;
        Env { gw, smtp }
    }

    fn browser(&self) -> Browser {
        Browser::new(&format!("http://{}", self.gw.addr))
    }

    async fn add_user(&self, name: &str, roles: &[&str], email: Option<&str>) {
        let g = self.gw.gateway();
        g.accounts
            .as_ref()
            .unwrap()
            .create_user(
                &g.config,
                name,
                email.map(str::to_owned),
                roles.iter().map(|r| r.to_string()).collect(),
                Some(Password::new(PW.into())),
                self.gw.clock.now(),
            )
            .await
            .unwrap();
    }

    /// A fresh enrollment link of `name`, as the admin API would return it (path and query).
    async fn invite(&self, name: &str) -> String {
        let g = self.gw.gateway();
        let url = g
            .accounts
            .as_ref()
            .unwrap()
            .create_invite(&g.config, name, self.gw.clock.now())
            .await
            .unwrap();
        url.strip_prefix(&format!("http://{}", self.gw.addr))
            .unwrap()
            .to_owned()
    }

    /// Adds a user with a confirmed TOTP factor; returns the seed.
    async fn add_enrolled(&self, name: &str, roles: &[&str]) -> portcullis::secret::TotpSeed {
        self.add_user(name, roles, Some(&format!("{name}@example.com")))
            .await;
        let acc = self.gw.gateway().accounts.as_ref().unwrap();
        let (seed, _) = acc
            .enroll_totp_now(name, self.gw.clock.now())
            .await
            .unwrap();
        seed
    }

    fn code(&self, seed: &portcullis::secret::TotpSeed) -> String {
        code_at(seed, self.gw.clock.now())
    }
}

#[tokio::test]
async fn password_and_totp_login_reaches_the_upstream_with_the_right_headers() {
    let env = Env::start().await;
    let seed = env.add_enrolled("carla", &["contractor"]).await;
    let mut b = env.browser();
    let r = password_step(
        &mut b,
        "/normal?rd=%2Fcontract%2Ftickets%3Fid%3D9",
        "carla",
        PW,
    )
    .await;
    assert_eq!(r.status, StatusCode::FOUND);
    assert_eq!(
        r.header("location").unwrap(),
        format!("http://{}/_portcullis/mfa", env.gw.addr)
    );
    assert!(
        !b.jar.contains_key("portcullis"),
        "no session before the second factor"
    );
    let (page, csrf) = mfa_csrf(&mut b, "/_portcullis/mfa").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.text().contains("autocomplete=\"one-time-code\""));
    assert!(page.text().contains("inputmode=\"numeric\""));
    let r = b
        .post(
            "/_portcullis/mfa",
            &[("code", &env.code(&seed)), ("csrf_token", &csrf)],
        )
        .await;
    assert_eq!(r.status, StatusCode::FOUND);
    assert_eq!(
        r.header("location").unwrap(),
        format!("http://{}/contract/tickets?id=9", env.gw.addr)
    );
    assert!(b.jar.contains_key("portcullis"));
    assert!(
        !b.jar.contains_key("portcullis-login"),
        "the pending cookie is cleared"
    );
    let app = b.follow(r).await;
    assert_eq!(app.status, StatusCode::OK);
    assert_eq!(app.json()["path"], "/contract/tickets");
    assert_eq!(
        app.upstream_header("x-forwarded-user").as_deref(),
        Some("carla")
    );
    assert_eq!(
        app.upstream_header("x-auth-method").as_deref(),
        Some("native")
    );
    assert_eq!(app.upstream_header("x-auth-mfa").as_deref(), Some("totp"));
    assert_eq!(
        app.upstream_header("x-auth-roles").as_deref(),
        Some("contractor")
    );
    assert_eq!(
        app.upstream_header("x-forwarded-email").as_deref(),
        Some("carla@example.com")
    );
    // Logout ends it.
    let out = b.logout().await;
    assert_eq!(out.status, StatusCode::OK);
    let again = b
        .http
        .get(
            &env.gw.url("/contract/x"),
            &[("accept", "application/json")],
        )
        .await;
    assert_eq!(again.status, StatusCode::UNAUTHORIZED);
    // The audit log has the story.
    let acc = env.gw.gateway().accounts.as_ref().unwrap();
    let events = acc
        .users
        .query_audit(&portcullis::storage::AuditQuery {
            since: None,
            user: Some("carla".into()),
            kind: None,
            after_id: None,
            limit: 50,
            newest_first: false,
        })
        .await
        .unwrap();
    let kinds: Vec<&str> = events.iter().map(|e| e.event.kind.as_str()).collect();
    assert_eq!(
        kinds,
        vec!["login.password", "mfa.success", "login.success", "logout"]
    );
}

#[tokio::test]
async fn the_alternate_path_works_too_and_pages_carry_security_headers() {
    let env = Env::start().await;
    let mut b = env.browser();
    let r = b.get("/access/normal").await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.text().contains("action=\"/access/normal\""));
    assert_eq!(r.header("x-frame-options"), Some("DENY"));
    assert_eq!(r.header("cache-control"), Some("no-store"));
    assert!(r
        .header("content-security-policy")
        .unwrap()
        .contains("default-src 'none'"));
    assert!(r.text().contains("<label for=\"username\">"));
}

#[tokio::test]
async fn enrollment_through_the_invitation_then_login_with_a_code() {
    let env = Env::start().await;
    env.add_user("nico", &["contractor"], None).await;
    let mut b = env.browser();
    let link = env.invite("nico").await;
    let r = password_step(&mut b, &format!("{link}&rd=%2Fcontract%2Fhome"), "nico", PW).await;
    assert_eq!(
        r.header("location").unwrap(),
        format!("http://{}/_portcullis/mfa/enroll", env.gw.addr)
    );
    let (page, csrf) = mfa_csrf(&mut b, "/_portcullis/mfa/enroll").await;
    let html = page.text();
    let uri = element_text(&html, "totp-uri").expect("otpauth URI on the page");
    assert!(
        uri.starts_with("otpauth://totp/Test%20Helpdesk:nico?secret="),
        "{uri}"
    );
    assert!(html.contains("<svg"), "a server-side QR code");
    assert!(
        element_text(&html, "totp-secret").unwrap().contains(' '),
        "secret in groups"
    );
    // A reload shows the same secret.
    let (again, _) = mfa_csrf(&mut b, "/_portcullis/mfa/enroll").await;
    assert_eq!(element_text(&again.text(), "totp-uri").unwrap(), uri);
    // No session until the code is confirmed.
    let blocked = b
        .http
        .get(
            &env.gw.url("/contract/home"),
            &[
                ("accept", "application/json"),
                (
                    "cookie",
                    &format!("portcullis-login={}", b.jar["portcullis-login"]),
                ),
            ],
        )
        .await;
    assert_eq!(blocked.status, StatusCode::UNAUTHORIZED);
    let seed = seed_of(&uri);
    let bad = b
        .post(
            "/_portcullis/mfa/enroll",
            &[("code", "000000"), ("csrf_token", &csrf)],
        )
        .await;
    assert_eq!(bad.status, StatusCode::UNAUTHORIZED);
    assert!(bad.text().contains("That code is not valid"));
    let ok = b
        .post(
            "/_portcullis/mfa/enroll",
            &[("code", &env.code(&seed)), ("csrf_token", &csrf)],
        )
        .await;
    assert_eq!(ok.status, StatusCode::OK);
    let codes_html = ok.text();
    let codes: Vec<String> = codes_html
        .split("<li><code>")
        .skip(1)
        .map(|s| s.split('<').next().unwrap().to_owned())
        .collect();
    assert_eq!(codes.len(), 10, "ten recovery codes shown once");
    assert!(
        b.jar.contains_key("portcullis"),
        "session created after confirmation"
    );
    let app = b.get("/contract/home").await;
    assert_eq!(app.status, StatusCode::OK);
    assert_eq!(app.upstream_header("x-auth-mfa").as_deref(), Some("totp"));
    // Log out, log in again: now a challenge, not enrollment.
    b.logout().await;
    env.gw.clock.advance(30);
    let r = password_step(&mut b, "/normal", "nico", PW).await;
    assert_eq!(
        r.header("location").unwrap(),
        format!("http://{}/_portcullis/mfa", env.gw.addr)
    );
    let (_, csrf) = mfa_csrf(&mut b, "/_portcullis/mfa").await;
    let r = b
        .post(
            "/_portcullis/mfa",
            &[("code", &env.code(&seed)), ("csrf_token", &csrf)],
        )
        .await;
    assert_eq!(r.status, StatusCode::FOUND);
    // And a recovery code from the page works.
    b.logout().await;
    password_step(&mut b, "/normal", "nico", PW).await;
    let (_, csrf) = mfa_csrf(&mut b, "/_portcullis/mfa").await;
    let r = b
        .post(
            "/_portcullis/mfa",
            &[("code", &codes[0]), ("csrf_token", &csrf)],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(
        r.text().contains("You have 9 recovery codes left"),
        "{}",
        r.text()
    );
}

#[tokio::test]
async fn a_totp_code_replayed_in_the_same_step_is_refused() {
    let env = Env::start().await;
    let seed = env.add_enrolled("rita", &["contractor"]).await;
    let code = env.code(&seed);
    let mut a = env.browser();
    password_step(&mut a, "/normal", "rita", PW).await;
    let (_, csrf) = mfa_csrf(&mut a, "/_portcullis/mfa").await;
    assert_eq!(
        a.post(
            "/_portcullis/mfa",
            &[("code", &code), ("csrf_token", &csrf)]
        )
        .await
        .status,
        StatusCode::FOUND
    );
    // Same code, same 30 s step, another browser: refused.
    let mut b = env.browser();
    password_step(&mut b, "/normal", "rita", PW).await;
    let (_, csrf) = mfa_csrf(&mut b, "/_portcullis/mfa").await;
    let r = b
        .post(
            "/_portcullis/mfa",
            &[("code", &code), ("csrf_token", &csrf)],
        )
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert!(r.text().contains("already used"));
    assert!(!b.jar.contains_key("portcullis"));
    // The next step's code works.
    env.gw.clock.advance(30);
    let r = b
        .post(
            "/_portcullis/mfa",
            &[("code", &env.code(&seed)), ("csrf_token", &csrf)],
        )
        .await;
    assert_eq!(r.status, StatusCode::FOUND);
}

#[tokio::test]
async fn recovery_codes_work_once_expire_and_die_on_reissue() {
    let env = Env::start().await;
    env.add_enrolled("remy", &["contractor"]).await;
    let acc = env.gw.gateway().accounts.as_ref().unwrap();
    let p = native_principal("remy");
    let codes = acc
        .issue_recovery_codes(&p, 10, Duration::from_secs(86_400), env.gw.clock.now())
        .await
        .unwrap();
    let code = |i: usize| codes[i].expose().to_owned();
    let try_code = |c: String| {
        let env = &env;
        async move {
            let mut b = env.browser();
            password_step(&mut b, "/normal", "remy", PW).await;
            let (_, csrf) = mfa_csrf(&mut b, "/_portcullis/mfa").await;
            b.post("/_portcullis/mfa", &[("code", &c), ("csrf_token", &csrf)])
                .await
        }
    };
    let r = try_code(code(0)).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.text().contains("You have 9 recovery codes left"));
    let r = try_code(code(0)).await;
    assert_eq!(
        r.status,
        StatusCode::UNAUTHORIZED,
        "a recovery code works once"
    );
    // Expiry.
    env.gw.clock.advance(86_400);
    assert_eq!(
        try_code(code(1)).await.status,
        StatusCode::UNAUTHORIZED,
        "expired"
    );
    // Reissue kills the old set.
    let fresh = acc
        .issue_recovery_codes(&p, 10, Duration::ZERO, env.gw.clock.now())
        .await
        .unwrap();
    env.gw.clock.advance(3600);
    assert_eq!(
        try_code(code(2)).await.status,
        StatusCode::UNAUTHORIZED,
        "old codes fail after reissue"
    );
    assert_eq!(
        try_code(fresh[0].expose().to_owned()).await.status,
        StatusCode::OK
    );
    let used = acc
        .users
        .query_audit(&portcullis::storage::AuditQuery {
            since: None,
            user: Some("remy".into()),
            kind: Some("recovery_code.used".into()),
            after_id: None,
            limit: 10,
            newest_first: false,
        })
        .await
        .unwrap();
    assert_eq!(used.len(), 2, "each use is an audit event");
}

#[tokio::test]
async fn an_email_code_is_delivered_works_once_and_expires() {
    let env = Env::start().await;
    env.add_enrolled("emma", &["contractor"]).await;
    let mut b = env.browser();
    password_step(&mut b, "/normal?rd=%2Fcontract%2Fx", "emma", PW).await;
    let (page, csrf) = mfa_csrf(&mut b, "/_portcullis/mfa").await;
    assert!(page.text().contains("Email a code to e***@example.com"));
    let sent = b
        .post("/_portcullis/mfa/email", &[("csrf_token", &csrf)])
        .await;
    assert_eq!(sent.status, StatusCode::OK);
    assert!(sent.text().contains("We sent a code"));
    let mail = env
        .smtp
        .next_message(Duration::from_secs(5))
        .await
        .expect("mail delivered");
    assert_eq!(mail.to, vec!["emma@example.com"]);
    let code = mail.code(8).expect("8-digit code in the mail");
    // Resend is rate-limited.
    let again = b
        .post("/_portcullis/mfa/email", &[("csrf_token", &csrf)])
        .await;
    assert_eq!(again.status, StatusCode::TOO_MANY_REQUESTS);
    let ok = b
        .post(
            "/_portcullis/mfa",
            &[("code", &code), ("csrf_token", &csrf)],
        )
        .await;
    assert_eq!(ok.status, StatusCode::FOUND);
    let app = b.follow(ok).await;
    assert_eq!(app.upstream_header("x-auth-mfa").as_deref(), Some("email"));
    // Single use.
    let mut c = env.browser();
    password_step(&mut c, "/normal", "emma", PW).await;
    let (_, csrf) = mfa_csrf(&mut c, "/_portcullis/mfa").await;
    assert_eq!(
        c.post(
            "/_portcullis/mfa",
            &[("code", &code), ("csrf_token", &csrf)]
        )
        .await
        .status,
        StatusCode::UNAUTHORIZED
    );
    // Expiry: a fresh code, ten minutes later.
    env.gw.clock.advance(31);
    assert_eq!(
        c.post("/_portcullis/mfa/email", &[("csrf_token", &csrf)])
            .await
            .status,
        StatusCode::OK
    );
    let code2 = env
        .smtp
        .next_message(Duration::from_secs(5))
        .await
        .unwrap()
        .code(8)
        .unwrap();
    env.gw.clock.advance(601);
    let mut d = env.browser();
    password_step(&mut d, "/normal", "emma", PW).await;
    let (_, csrf) = mfa_csrf(&mut d, "/_portcullis/mfa").await;
    assert_eq!(
        d.post(
            "/_portcullis/mfa",
            &[("code", &code2), ("csrf_token", &csrf)]
        )
        .await
        .status,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn lockout_after_n_failures_refuses_even_the_right_password_and_hides_unknown_users() {
    let env = Env::start().await;
    env.add_enrolled("lena", &["contractor"]).await;
    let mut b = env.browser();
    let wrong = password_step(&mut b, "/normal", "lena", "wrong-password").await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    assert!(wrong.text().contains("Incorrect username or password."));
    let unknown = password_step(&mut b, "/normal", "nobody-here", "wrong-password").await;
    assert_eq!(unknown.status, StatusCode::UNAUTHORIZED);
    let strip = |s: String| {
        s.replace(&input_value(&s, "csrf_token").unwrap(), "")
            .replace("nobody-here", "lena")
    };
    assert_eq!(
        strip(wrong.text()),
        strip(unknown.text()),
        "same page for unknown user and wrong password"
    );
    password_step(&mut b, "/normal", "lena", "wrong-password").await;
    password_step(&mut b, "/normal", "lena", "wrong-password").await;
    let locked = password_step(&mut b, "/normal", "lena", PW).await;
    assert_eq!(
        locked.status,
        StatusCode::TOO_MANY_REQUESTS,
        "right password refused while locked"
    );
    assert!(locked.text().contains("Too many failed attempts"));
    // Unknown names lock the same way, so locking reveals nothing.
    for _ in 0..3 {
        password_step(&mut b, "/normal", "ghost", "x").await;
    }
    let ghost = password_step(&mut b, "/normal", "ghost", "x").await;
    assert_eq!(ghost.status, StatusCode::TOO_MANY_REQUESTS);
    // After the lock period the right password works.
    env.gw.clock.advance(15 * 60 + 1);
    let ok = password_step(&mut b, "/normal", "lena", PW).await;
    assert_eq!(ok.status, StatusCode::FOUND);
}

#[tokio::test]
async fn failed_second_factors_count_towards_lockout() {
    let env = Env::start().await;
    let seed = env.add_enrolled("mfafail", &["contractor"]).await;
    let mut b = env.browser();
    password_step(&mut b, "/normal", "mfafail", PW).await;
    let (_, csrf) = mfa_csrf(&mut b, "/_portcullis/mfa").await;
    for _ in 0..2 {
        assert_eq!(
            b.post(
                "/_portcullis/mfa",
                &[("code", "123456"), ("csrf_token", &csrf)]
            )
            .await
            .status,
            StatusCode::UNAUTHORIZED
        );
    }
    let r = b
        .post(
            "/_portcullis/mfa",
            &[("code", "654321"), ("csrf_token", &csrf)],
        )
        .await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    let r = b
        .post(
            "/_portcullis/mfa",
            &[("code", &env.code(&seed)), ("csrf_token", &csrf)],
        )
        .await;
    assert_eq!(
        r.status,
        StatusCode::TOO_MANY_REQUESTS,
        "the right code is refused while locked"
    );
}

#[tokio::test]
async fn disabled_users_get_the_same_message() {
    let env = Env::start().await;
    env.add_enrolled("dora", &["contractor"]).await;
    env.gw
        .gateway()
        .accounts
        .as_ref()
        .unwrap()
        .users
        .set_disabled("dora", true)
        .await
        .unwrap();
    let mut b = env.browser();
    let r = password_step(&mut b, "/normal", "dora", PW).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert!(r.text().contains("Incorrect username or password."));
}

#[tokio::test]
async fn forms_without_a_valid_csrf_token_are_refused() {
    let env = Env::start().await;
    let seed = env.add_enrolled("cyd", &["contractor"]).await;
    let mut b = env.browser();
    b.get("/normal").await;
    for token in ["", "forged-token"] {
        let r = b
            .post(
                "/normal",
                &[
                    ("username", "cyd"),
                    ("password", PW),
                    ("csrf_token", token),
                    ("rd", "/"),
                ],
            )
            .await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "token {token:?}");
    }
    // A token from another browser's cookie does not transfer.
    let mut other = env.browser();
    let form = other.get("/normal").await;
    let foreign = input_value(&form.text(), "csrf_token").unwrap();
    let r = b
        .post(
            "/normal",
            &[
                ("username", "cyd"),
                ("password", PW),
                ("csrf_token", &foreign),
                ("rd", "/"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    // Second-factor form too.
    password_step(&mut b, "/normal", "cyd", PW).await;
    let r = b
        .post(
            "/_portcullis/mfa",
            &[("code", &env.code(&seed)), ("csrf_token", "nope")],
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(!b.jar.contains_key("portcullis"));
}

#[tokio::test]
async fn remember_is_absent_when_the_role_says_0s() {
    let env = Env::start().await;
    let seed = env.add_enrolled("agnes", &["agent"]).await;
    let mut b = env.browser();
    password_step(&mut b, "/normal", "agnes", PW).await;
    let (page, csrf) = mfa_csrf(&mut b, "/_portcullis/mfa").await;
    assert!(!page.text().contains("name=\"remember\""));
    // Sending it anyway changes nothing: no device cookie, challenged again next time.
    let r = b
        .post(
            "/_portcullis/mfa",
            &[
                ("code", &env.code(&seed)),
                ("csrf_token", &csrf),
                ("remember", "1"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::FOUND);
    assert!(!b.jar.contains_key("portcullis-device"));
    b.logout().await;
    let r = password_step(&mut b, "/normal", "agnes", PW).await;
    assert_eq!(
        r.header("location").unwrap(),
        format!("http://{}/_portcullis/mfa", env.gw.addr)
    );
}

#[tokio::test]
async fn remember_is_offered_honoured_for_its_duration_and_ignored_once_revoked() {
    let env = Env::start().await;
    let seed = env.add_enrolled("rob", &["contractor"]).await;
    let mut b = env.browser();
    password_step(&mut b, "/normal", "rob", PW).await;
    let (page, csrf) = mfa_csrf(&mut b, "/_portcullis/mfa").await;
    assert!(page.text().contains("Remember this device for 7 days"));
    let r = b
        .post(
            "/_portcullis/mfa",
            &[
                ("code", &env.code(&seed)),
                ("csrf_token", &csrf),
                ("remember", "1"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::FOUND);
    assert!(b.jar.contains_key("portcullis-device"));
    b.logout().await;
    // Within 7 days: password only.
    env.gw.clock.advance(6 * 86_400);
    let r = password_step(&mut b, "/normal?rd=%2Fcontract%2Fx", "rob", PW).await;
    assert_eq!(
        r.header("location").unwrap(),
        format!("http://{}/contract/x", env.gw.addr)
    );
    let app = b.follow(r).await;
    assert_eq!(
        app.upstream_header("x-auth-mfa").as_deref(),
        Some("remembered_device")
    );
    b.logout().await;
    // After 7 days: challenged again.
    env.gw.clock.advance(86_400 + 1);
    let r = password_step(&mut b, "/normal", "rob", PW).await;
    assert_eq!(
        r.header("location").unwrap(),
        format!("http://{}/_portcullis/mfa", env.gw.addr)
    );
    // Remember again, then revoke: challenged at once.
    let (_, csrf) = mfa_csrf(&mut b, "/_portcullis/mfa").await;
    b.post(
        "/_portcullis/mfa",
        &[
            ("code", &env.code(&seed)),
            ("csrf_token", &csrf),
            ("remember", "1"),
        ],
    )
    .await;
    b.logout().await;
    env.gw
        .gateway()
        .accounts
        .as_ref()
        .unwrap()
        .users
        .delete_devices(&native_principal("rob"))
        .await
        .unwrap();
    let r = password_step(&mut b, "/normal", "rob", PW).await;
    assert_eq!(
        r.header("location").unwrap(),
        format!("http://{}/_portcullis/mfa", env.gw.addr)
    );
}

#[tokio::test]
async fn a_pending_login_cannot_reach_the_upstream() {
    let env = Env::start().await;
    env.add_enrolled("pat", &["contractor"]).await;
    let mut b = env.browser();
    password_step(&mut b, "/normal", "pat", PW).await;
    assert!(b.jar.contains_key("portcullis-login"));
    let r = b.get("/contract/secret").await;
    assert_eq!(r.status, StatusCode::FOUND, "sent to login, not through");
    assert!(r.header("location").unwrap().contains("/normal?rd="));
    // Even presented as a session cookie, a pending token is not a session.
    let pending = b.jar["portcullis-login"].clone();
    let r = b
        .http
        .get(
            &env.gw.url("/contract/secret"),
            &[
                ("accept", "application/json"),
                ("cookie", &format!("portcullis={pending}")),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        env.gw
            .upstream
            .hits
            .load(std::sync::atomic::Ordering::Relaxed),
        0
    );
}

#[tokio::test]
async fn a_user_with_a_strict_and_a_lax_role_gets_the_strict_policy() {
    let env = Env::start().await;
    // end_user needs no second factor; agent does (and allows no remembering).
    env.add_user("mixed", &["end_user", "agent"], None).await;
    env.add_user("lax", &["end_user"], None).await;
    let mut b = env.browser();
    let r = password_step(&mut b, "/normal", "lax", PW).await;
    assert_eq!(
        r.header("location").unwrap(),
        format!("http://{}/", env.gw.addr),
        "no MFA for end users"
    );
    let app = b.follow(r).await;
    assert_eq!(app.upstream_header("x-auth-mfa").as_deref(), Some("none"));
    let mut c = env.browser();
    let link = env.invite("mixed").await;
    let r = password_step(&mut c, &link, "mixed", PW).await;
    assert_eq!(
        r.header("location").unwrap(),
        format!("http://{}/_portcullis/mfa/enroll", env.gw.addr),
        "the strict role asks for a second factor"
    );
}

#[tokio::test]
async fn return_paths_after_login_stay_local() {
    let env = Env::start().await;
    env.add_user("lax2", &["end_user"], None).await;
    let payloads = std::fs::read_to_string(shared_data("open-redirect-payloads.txt")).unwrap();
    let origin = format!("http://{}", env.gw.addr);
    // The full login for a sample of payloads (each costs a password hash).
    for line in payloads.lines().filter(|l| !l.is_empty()).step_by(40) {
        let mut b = env.browser();
        let r = password_step(&mut b, &format!("/normal?rd={}", enc(line)), "lax2", PW).await;
        let loc = r.header("location").unwrap();
        assert!(
            loc.starts_with(&format!("{origin}/")) && !loc[origin.len()..].starts_with("//"),
            "{line:?} → {loc}"
        );
    }
}

#[tokio::test]
async fn oversized_login_bodies_are_refused() {
    let env = Env::start().await;
    let mut b = env.browser();
    b.get("/normal").await;
    let big = "x".repeat(200 * 1024);
    let r = b
        .post(
            "/normal",
            &[
                ("username", &big),
                ("password", "x"),
                ("csrf_token", "x"),
                ("rd", "/"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE);
}
