//! Account-safety notices (issue 19, DESIGN.md §12), through the real SMTP listener and real
//! stores: the new-device notice and its "this was not me" link (single use under concurrency,
//! tampered and expired links), the recovery-code and factor-change notices, and a mail server
//! that is down. `Env` is shared with `break_glass.rs`.

use crate::support::browser::{element_text, input_value, seed_of, Browser};
use crate::support::login::{password_step, submit_code, Store, ADMIN_TOKEN, PW};
use crate::support::smtp::{ReceivedMail, TestSmtp};
use crate::support::*;
use hyper::{Method, StatusCode};
use portcullis::accounts::Accounts;
use portcullis::metrics::MailKind;
use portcullis::mfa::totp::code_at;
use portcullis::secret::{Password, TotpSeed};
use std::time::{Duration, Instant};

pub const ADMIN_MAIL: &str = "security@example.com";

pub struct Opts {
    pub store: Store,
    /// `None`: the test SMTP listener; `Some(url)`: that relay instead (e.g. one that is down).
    pub smtp_url: Option<String>,
    pub report_ttl: &'static str,
    pub enrollment: &'static str,
    /// More TOML (e.g. `[break_glass]`).
    pub extra: String,
    /// `[server]` keys (e.g. a shared `signing_key`).
    pub server_extra: String,
    /// `[storage] url` (default: a SQLite file of this gateway).
    pub storage_url: Option<String>,
}

impl Default for Opts {
    fn default() -> Self {
        Opts {
            store: Store::Memory,
            smtp_url: None,
            report_ttl: "7d",
            enrollment: "first_login",
            extra: String::new(),
            server_extra: String::new(),
            storage_url: None,
        }
    }
}

pub struct Env {
    pub gw: TestGateway,
    pub smtp: TestSmtp,
    pub admin_base: String,
    pub http: Http,
    store: Option<Store>,
}

impl Env {
    pub async fn start(o: Opts) -> Env {
        let smtp = TestSmtp::start().await.unwrap();
        // Port 0: the admin listener binds a port of its own (read back from `admin_addr`).
        let admin_port = 0;
        let smtp_url = o.smtp_url.clone().unwrap_or_else(|| smtp.url());
        let storage = o
            .storage_url
            .clone()
            .unwrap_or_else(|| "sqlite://users.db".into());
        let extra = format!(
            r#"
[[routes]]
prefix = "/contract"
allow_roles = ["contractor", "agent"]

[roles.contractor]
groups = ["contractors"]
require_mfa = true

[admin]
listen = "127.0.0.1:{admin_port}"
tokens = [{{ name = "ops", sha256 = "{hash}" }}]

[storage]
url = "{storage}"
encryption_key = "{key}"

[native]
lockout = {{ max_failures = 5, window = "15m", duration = "15m" }}

[mfa]
issuer = "Test Helpdesk"
methods = ["totp", "email", "recovery_code"]
enrollment = "{enrollment}"
email = {{ smtp_url = "{smtp_url}", from = "gateway@example.com", code_ttl = "10m", resend_interval = "1s" }}
recovery_codes = {{ count = 10, ttl = "30d" }}

[notify]
report_ttl = "{ttl}"
admins = ["{ADMIN_MAIL}"]
{extra}
"#,
            hash = sha256_hex(ADMIN_TOKEN),
            key = "cd".repeat(32),
            enrollment = o.enrollment,
            ttl = o.report_ttl,
            extra = o.extra,
        );
        let gw =
            TestGateway::start_full(&o.server_extra, &o.store.session_toml(), &extra, |_| {}).await;
        let admin_base = format!(
            "http://{}",
            gw.running.as_ref().unwrap().admin_addr.unwrap()
        );
        Env {
            gw,
            smtp,
            admin_base,
            http: Http::new(),
            store: Some(o.store),
        }
    }

    pub fn browser(&self) -> Browser {
        Browser::new(&format!("http://{}", self.gw.addr))
    }

    pub fn acc(&self) -> &Accounts {
        self.gw.gateway().accounts.as_ref().unwrap()
    }

    pub async fn add_user(&self, name: &str) {
        let g = self.gw.gateway();
        self.acc()
            .create_user(
                &g.config,
                name,
                Some(format!("{name}@example.com")),
                vec!["contractor".into()],
                Some(Password::new(PW.into())),
                self.gw.clock.now(),
            )
            .await
            .unwrap();
    }

    pub async fn add_enrolled(&self, name: &str) -> TotpSeed {
        self.add_user(name).await;
        self.acc()
            .enroll_totp_now(name, self.gw.clock.now())
            .await
            .unwrap()
            .0
    }

    pub fn code(&self, seed: &TotpSeed) -> String {
        code_at(seed, self.gw.clock.now())
    }

    /// Password and TOTP in `b`; returns the response of the code step.
    pub async fn sign_in(&self, b: &mut Browser, user: &str, seed: &TotpSeed) -> Resp {
        let r = password_step(b, "/normal", user, PW).await;
        assert_eq!(r.status, StatusCode::FOUND, "{}", r.text());
        submit_code(b, &self.code(seed)).await
    }

    pub async fn admin(&self, method: Method, path: &str, body: Option<serde_json::Value>) -> Resp {
        let auth = format!("Bearer {ADMIN_TOKEN}");
        let mut h = vec![("authorization", auth.as_str())];
        if body.is_some() {
            h.push(("content-type", "application/json"));
        }
        self.http
            .send(
                method,
                &format!("{}{path}", self.admin_base),
                &h,
                body.map(|b| b.to_string().into_bytes()).unwrap_or_default(),
            )
            .await
    }

    /// Every message that arrives within `wait` of the previous one.
    pub async fn mails(&self, wait: Duration) -> Vec<ReceivedMail> {
        let mut out = Vec::new();
        while let Some(m) = self.smtp.next_message(wait).await {
            out.push(m);
        }
        out
    }

    /// The first message within `wait` whose subject contains `subject`.
    pub async fn mail_about(&self, subject: &str, wait: Duration) -> ReceivedMail {
        let deadline = Instant::now() + wait;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let m = self
                .smtp
                .next_message(left)
                .await
                .unwrap_or_else(|| panic!("no mail about {subject:?}"));
            if subject_of(&m).contains(subject) {
                return m;
            }
        }
    }

    /// (outcome, reason) of every audit event `kind`.
    pub async fn audit(&self, kind: &str) -> Vec<(String, String)> {
        self.gw.audit(kind).await
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        let Some(store) = self.store.take() else {
            return;
        };
        let _ = std::thread::spawn(move || {
            if let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                rt.block_on(store.cleanup());
            }
        })
        .join();
    }
}

pub fn subject_of(m: &ReceivedMail) -> String {
    m.data
        .lines()
        .find_map(|l| l.strip_prefix("Subject: "))
        .unwrap_or_default()
        .to_owned()
}

/// The "this was not me" link of a notice, as a path and query on the gateway.
pub fn report_path(m: &ReceivedMail) -> String {
    let body = m.body();
    let at = body.find("/_portcullis/not-me?t=").expect("a report link");
    body[at..]
        .split_whitespace()
        .next()
        .unwrap()
        .trim_end_matches('\r')
        .to_owned()
}

/// Whether `b` holds a session that reaches the upstream.
pub async fn signed_in(b: &mut Browser) -> bool {
    b.get("/contract/x").await.status == StatusCode::OK
}

/// Opens the confirm page of `path` in `b`; returns the form's fields.
async fn confirm_form(b: &mut Browser, path: &str) -> (String, String) {
    let page = b.get(path).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.text());
    let html = page.text();
    (
        input_value(&html, "t").unwrap(),
        input_value(&html, "csrf_token").unwrap(),
    )
}

#[tokio::test]
async fn a_new_browser_gets_a_notice_and_the_same_browser_again_gets_none() {
    let env = Env::start(Opts::default()).await;
    let seed = env.add_enrolled("nora").await;
    let mut b = env.browser();
    assert_eq!(
        env.sign_in(&mut b, "nora", &seed).await.status,
        StatusCode::FOUND
    );
    let m = env.mail_about("New sign-in", Duration::from_secs(5)).await;
    assert_eq!(m.to, vec!["nora@example.com"]);
    let body = m.body();
    for part in [
        "Account: nora",
        "Address: 127.0.0.1",
        "Browser: ",
        "Time:    2027-",
    ] {
        assert!(body.contains(part), "{part:?} in\n{body}");
    }
    assert!(report_path(&m).len() > 40);
    // The same browser again: known, so nothing is sent.
    env.gw.clock.advance(31);
    assert_eq!(
        env.sign_in(&mut b, "nora", &seed).await.status,
        StatusCode::FOUND
    );
    let extra = env.mails(Duration::from_millis(700)).await;
    assert!(
        extra.is_empty(),
        "{:?}",
        extra.iter().map(subject_of).collect::<Vec<_>>()
    );
    // A browser without the cookie is new again.
    env.gw.clock.advance(31);
    let mut other = env.browser();
    assert_eq!(
        env.sign_in(&mut other, "nora", &seed).await.status,
        StatusCode::FOUND
    );
    env.mail_about("New sign-in", Duration::from_secs(5)).await;
    // The known-device cookie is the gateway's: it never reaches the upstream.
    let app = b.get("/contract/x").await;
    assert!(app
        .upstream_header("cookie")
        .is_none_or(|c| !c.contains("portcullis")));
}

#[tokio::test]
async fn a_forged_known_device_cookie_counts_as_a_new_browser() {
    let env = Env::start(Opts::default()).await;
    let seed = env.add_enrolled("fay").await;
    let mut b = env.browser();
    env.sign_in(&mut b, "fay", &seed).await;
    env.mail_about("New sign-in", Duration::from_secs(5)).await;
    let real = b.jar.get("portcullis-known").cloned().unwrap();
    let mut forged = env.browser();
    // The same id under a MAC of our own making.
    forged.jar.insert(
        "portcullis-known".into(),
        format!("{}AAAAAAAAAAAAAAAAAAAAAA", &real[..24]),
    );
    env.gw.clock.advance(31);
    env.sign_in(&mut forged, "fay", &seed).await;
    env.mail_about("New sign-in", Duration::from_secs(5)).await;
}

#[tokio::test]
async fn the_not_me_link_ends_every_session_and_tells_the_admins() {
    let env = Env::start(Opts::default()).await;
    let seed = env.add_enrolled("ola").await;
    let mut mine = env.browser();
    env.sign_in(&mut mine, "ola", &seed).await;
    env.mail_about("New sign-in", Duration::from_secs(5)).await;
    env.gw.clock.advance(31);
    let mut intruder = env.browser();
    env.sign_in(&mut intruder, "ola", &seed).await;
    let m = env.mail_about("New sign-in", Duration::from_secs(5)).await;
    assert!(signed_in(&mut mine).await && signed_in(&mut intruder).await);
    let path = report_path(&m);
    let (t, csrf) = confirm_form(&mut mine, &path).await;
    // Opening the link changes nothing by itself.
    assert!(signed_in(&mut intruder).await);
    let done = mine
        .post("/_portcullis/not-me", &[("t", &t), ("csrf_token", &csrf)])
        .await;
    assert_eq!(done.status, StatusCode::OK, "{}", done.text());
    assert!(done.text().contains("Signed out everywhere"));
    assert!(!signed_in(&mut intruder).await);
    assert!(!signed_in(&mut mine).await);
    let ok = env.audit("account.reported").await;
    assert_eq!(ok, vec![("success".to_owned(), String::new())]);
    let to_admins = env
        .mail_about("Sign-in reported", Duration::from_secs(5))
        .await;
    assert_eq!(to_admins.to, vec![ADMIN_MAIL]);
    assert!(
        to_admins.body().contains("ended 2 session(s)"),
        "{}",
        to_admins.body()
    );
    // Used once: the same form again is refused.
    let (t, csrf) = confirm_form(&mut mine, &path).await;
    let again = mine
        .post("/_portcullis/not-me", &[("t", &t), ("csrf_token", &csrf)])
        .await;
    assert_eq!(again.status, StatusCode::CONFLICT);
    // The intruder's browser is forgotten: its next sign-in is a new device again.
    env.gw.clock.advance(31);
    env.sign_in(&mut intruder, "ola", &seed).await;
    env.mail_about("New sign-in", Duration::from_secs(5)).await;
}

#[tokio::test]
async fn the_confirm_form_needs_its_csrf_cookie_and_our_origin() {
    let env = Env::start(Opts::default()).await;
    let seed = env.add_enrolled("pia").await;
    let mut b = env.browser();
    env.sign_in(&mut b, "pia", &seed).await;
    let m = env.mail_about("New sign-in", Duration::from_secs(5)).await;
    let (t, csrf) = confirm_form(&mut b, &report_path(&m)).await;
    let mut stranger = env.browser();
    let r = stranger
        .post("/_portcullis/not-me", &[("t", &t), ("csrf_token", &csrf)])
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let cookie = b.cookie_header();
    let r = env
        .http
        .post_form(
            &env.gw.url("/_portcullis/not-me"),
            &[("cookie", &cookie), ("origin", "https://evil.example")],
            &[("t", &t), ("csrf_token", &csrf)],
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(signed_in(&mut b).await);
    assert!(env.audit("account.reported").await.is_empty());
}

async fn two_uses_at_once_one_wins(store: Store) {
    let env = Env::start(Opts {
        store,
        ..Default::default()
    })
    .await;
    let seed = env.add_enrolled("quin").await;
    let mut b = env.browser();
    env.sign_in(&mut b, "quin", &seed).await;
    let m = env.mail_about("New sign-in", Duration::from_secs(5)).await;
    let path = report_path(&m);
    let mut x = env.browser();
    let mut y = env.browser();
    let (tx, cx) = confirm_form(&mut x, &path).await;
    let (ty, cy) = confirm_form(&mut y, &path).await;
    let fx = [("t", tx.as_str()), ("csrf_token", cx.as_str())];
    let fy = [("t", ty.as_str()), ("csrf_token", cy.as_str())];
    let (rx, ry) = tokio::join!(
        x.post("/_portcullis/not-me", &fx),
        y.post("/_portcullis/not-me", &fy)
    );
    let mut statuses = [rx.status.as_u16(), ry.status.as_u16()];
    statuses.sort();
    assert_eq!(statuses, [200, 409]);
    let mut events = env.audit("account.reported").await;
    events.sort();
    assert_eq!(
        events,
        vec![
            ("refused".to_owned(), "used".to_owned()),
            ("success".to_owned(), String::new())
        ]
    );
    assert!(!signed_in(&mut b).await);
}

#[tokio::test]
async fn concurrent_double_use_of_the_not_me_link_one_wins_in_memory() {
    two_uses_at_once_one_wins(Store::Memory).await;
}

#[tokio::test]
async fn concurrent_double_use_of_the_not_me_link_one_wins_on_redis() {
    let Some(store) = Store::redis("concurrent_double_use_of_the_not_me_link_one_wins_on_redis")
    else {
        return;
    };
    two_uses_at_once_one_wins(store).await;
}

#[tokio::test]
async fn a_tampered_or_expired_link_does_nothing() {
    let env = Env::start(Opts {
        report_ttl: "10m",
        ..Default::default()
    })
    .await;
    let seed = env.add_enrolled("rae").await;
    let mut b = env.browser();
    env.sign_in(&mut b, "rae", &seed).await;
    let m = env.mail_about("New sign-in", Duration::from_secs(5)).await;
    let path = report_path(&m);
    let (t, csrf) = confirm_form(&mut b, &path).await;
    // One character of the signed payload changed (another user's principal, say).
    let (payload, mac) = t.split_once('.').unwrap();
    let mut chars: Vec<char> = payload.chars().collect();
    chars[5] = if chars[5] == 'A' { 'B' } else { 'A' };
    let tampered = format!("{}.{mac}", chars.into_iter().collect::<String>());
    let r = b.get(&format!("/_portcullis/not-me?t={tampered}")).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let r = b
        .post(
            "/_portcullis/not-me",
            &[("t", &tampered), ("csrf_token", &csrf)],
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let r = b
        .post(
            "/_portcullis/not-me",
            &[("t", "garbage"), ("csrf_token", &csrf)],
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(signed_in(&mut b).await);
    // Past report_ttl the real link does nothing either.
    env.gw.clock.advance(601);
    assert_eq!(b.get(&path).await.status, StatusCode::GONE);
    let r = b
        .post("/_portcullis/not-me", &[("t", &t), ("csrf_token", &csrf)])
        .await;
    assert_eq!(r.status, StatusCode::GONE);
    assert!(signed_in(&mut b).await);
    let events = env.audit("account.reported").await;
    assert!(events.iter().all(|(o, _)| o == "refused"), "{events:?}");
    assert!(events.iter().any(|(_, r)| r == "invalid"));
    assert!(events.iter().any(|(_, r)| r == "expired"));
}

#[tokio::test]
async fn a_recovery_code_sign_in_sends_its_own_notice() {
    let env = Env::start(Opts::default()).await;
    let _seed = env.add_enrolled("sam").await;
    let codes = env
        .acc()
        .issue_recovery_codes(
            "native:sam",
            10,
            Duration::from_secs(86_400),
            env.gw.clock.now(),
        )
        .await
        .unwrap();
    let mut b = env.browser();
    password_step(&mut b, "/normal", "sam", PW).await;
    let r = submit_code(&mut b, codes[0].expose()).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let mails = env.mails(Duration::from_secs(2)).await;
    // One mail for the sign-in: the recovery code says more than the new browser.
    assert_eq!(mails.len(), 1, "{mails:?}");
    assert!(subject_of(&mails[0]).contains("recovery code was used"));
    assert!(
        mails[0].body().contains("Codes left: 9"),
        "{}",
        mails[0].body()
    );
    assert!(mails[0].body().contains("/_portcullis/not-me?t="));
}

#[tokio::test]
async fn adding_and_removing_a_factor_sends_notices() {
    let env = Env::start(Opts::default()).await;
    env.add_user("tess").await;
    // First sign-in enrolls (first_login): "set up".
    let mut b = env.browser();
    password_step(&mut b, "/normal", "tess", PW).await;
    let page = b.get("/_portcullis/mfa/enroll").await;
    let seed = seed_of(&element_text(&page.text(), "totp-uri").unwrap());
    let csrf = input_value(&page.text(), "csrf_token").unwrap();
    let r = b
        .post(
            "/_portcullis/mfa/enroll",
            &[("code", &env.code(&seed)), ("csrf_token", &csrf)],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let m = env
        .mail_about("Two-step verification changed", Duration::from_secs(5))
        .await;
    assert_eq!(m.to, vec!["tess@example.com"]);
    assert!(m.body().contains("An authenticator app was set up"));
    // An admin reset: "removed".
    let r = env
        .admin(Method::DELETE, "/api/v1/users/tess/mfa", None)
        .await;
    assert!(r.status.is_success());
    let m = env
        .mail_about("Two-step verification changed", Duration::from_secs(5))
        .await;
    assert!(
        m.body().contains("An administrator removed"),
        "{}",
        m.body()
    );
}

#[tokio::test]
async fn a_mail_server_that_is_down_does_not_block_sign_in_and_is_counted() {
    // Nothing listens on the discard port: every connection is refused.
    let down = format!("smtp://127.0.0.1:{UNSERVED_PORT}");
    let env = Env::start(Opts {
        smtp_url: Some(down),
        ..Default::default()
    })
    .await;
    let seed = env.add_enrolled("uma").await;
    let mut b = env.browser();
    let t = Instant::now();
    let r = env.sign_in(&mut b, "uma", &seed).await;
    assert_eq!(r.status, StatusCode::FOUND);
    assert!(t.elapsed() < Duration::from_secs(5));
    assert!(signed_in(&mut b).await);
    let metrics = &env.gw.gateway().metrics;
    let deadline = Instant::now() + Duration::from_secs(15);
    while metrics.notify_mails(MailKind::NewDevice, false) == 0 {
        assert!(Instant::now() < deadline, "the failure was never counted");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(metrics.notify_mails(MailKind::NewDevice, true), 0);
    let text = env.admin(Method::GET, "/metrics", None).await.text();
    assert!(
        text.contains("portcullis_notify_mails_total{kind=\"new_device\",result=\"failed\"} 1"),
        "{text}"
    );
}
