//! A gateway with native login, a real SMTP listener, an admin API and the session store of the
//! test's choice (memory, or Redis with a key prefix of its own), plus the steps of a login as a
//! browser takes them. Shared by the login-attack tests, which run each race on both stores.

use super::browser::{input_value, Browser};
use super::smtp::TestSmtp;
use super::*;
use portcullis::accounts::Accounts;
use portcullis::mfa::totp::code_at;
use portcullis::secret::{Password, TotpSeed};

pub const PW: &str = "correct horse battery staple";
pub const ADMIN_TOKEN: &str = "login-tests-admin-token";

pub use super::stores::Store;

pub struct LoginOpts {
    /// `[mfa] enrollment`.
    pub enrollment: &'static str,
    pub store: Store,
    pub max_failures: u32,
    /// Trust X-Forwarded-For from loopback, so one test can speak for many client addresses.
    pub trusted_proxy: bool,
    /// More config sections, appended.
    pub extra: &'static str,
}

impl Default for LoginOpts {
    fn default() -> Self {
        LoginOpts {
            enrollment: "invite",
            store: Store::Memory,
            max_failures: 3,
            trusted_proxy: false,
            extra: "",
        }
    }
}

pub struct LoginEnv {
    pub gw: TestGateway,
    pub smtp: TestSmtp,
    pub admin_base: String,
    pub http: Http,
    store: Option<Store>,
}

impl LoginEnv {
    pub async fn start(opts: LoginOpts) -> LoginEnv {
        let smtp = TestSmtp::start().await.unwrap();
        let session_extra = opts.store.session_toml();
        let server_extra = if opts.trusted_proxy {
            "trusted_proxies = [\"127.0.0.1/32\"]"
        } else {
            ""
        };
        let extra = format!(
            r#"
[[routes]]
prefix = "/contract"
allow_roles = ["contractor", "agent"]

[roles.contractor]
groups = ["contractors"]
require_mfa = true
remember_mfa = "7d"

[admin]
listen = "127.0.0.1:0"
tokens = [{{ name = "ops", sha256 = "{hash}" }}]

[storage]
url = "sqlite://users.db"

[native]
lockout = {{ max_failures = {max}, window = "15m", duration = "15m" }}

[mfa]
issuer = "Test Helpdesk"
methods = ["totp", "email", "recovery_code"]
enrollment = "{enrollment}"
email = {{ smtp_url = "smtp://127.0.0.1:{smtp}", from = "gateway@example.com", code_ttl = "10m", resend_interval = "1s" }}
recovery_codes = {{ count = 10, ttl = "30d" }}
{more}
"#,
            more = opts.extra,
            hash = sha256_hex(ADMIN_TOKEN),
            max = opts.max_failures,
            enrollment = opts.enrollment,
            smtp = smtp.addr.port(),
        );
        let gw = TestGateway::start_full(server_extra, &session_extra, &extra, |_| {}).await;
        let admin_base = format!(
            "http://{}",
            gw.running.as_ref().unwrap().admin_addr.unwrap()
        );
        LoginEnv {
            gw,
            smtp,
            admin_base,
            http: Http::new(),
            store: Some(opts.store),
        }
    }

    pub fn browser(&self) -> Browser {
        Browser::new(&format!("http://{}", self.gw.addr))
    }

    pub fn acc(&self) -> &Accounts {
        self.gw.gateway().accounts.as_ref().unwrap()
    }

    pub async fn add_user(&self, name: &str, roles: &[&str]) {
        let g = self.gw.gateway();
        self.acc()
            .create_user(
                &g.config,
                name,
                Some(format!("{name}@example.com")),
                roles.iter().map(|r| r.to_string()).collect(),
                Some(Password::new(PW.into())),
                self.gw.clock.now(),
            )
            .await
            .unwrap();
    }

    /// A user with a confirmed authenticator; returns its seed.
    pub async fn add_enrolled(&self, name: &str) -> TotpSeed {
        self.add_user(name, &["contractor"]).await;
        self.acc()
            .enroll_totp_now(name, self.gw.clock.now())
            .await
            .unwrap()
            .0
    }

    /// A fresh enrollment link of `name` (path and query on the gateway).
    pub async fn invite(&self, name: &str) -> String {
        let g = self.gw.gateway();
        let url = self
            .acc()
            .create_invite(&g.config, name, self.gw.clock.now())
            .await
            .unwrap();
        self.local(&url)
    }

    /// An absolute gateway URL as a path and query.
    pub fn local(&self, url: &str) -> String {
        url.strip_prefix(&format!("http://{}", self.gw.addr))
            .unwrap_or_else(|| panic!("{url} is not on the gateway"))
            .to_owned()
    }

    pub fn code(&self, seed: &TotpSeed) -> String {
        code_at(seed, self.gw.clock.now())
    }

    /// A call to the admin API with the test token.
    pub async fn admin(
        &self,
        method: hyper::Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> Resp {
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

    /// (outcome, reason) of every audit event `kind` of `user`, oldest first.
    pub async fn audit_of(&self, kind: &str, user: &str) -> Vec<(String, String)> {
        audit_of(self.acc(), kind, user).await
    }
}

impl Drop for LoginEnv {
    fn drop(&mut self) {
        let Some(store) = self.store.take() else {
            return;
        };
        // Its own thread and runtime: drop cannot await, and may run while unwinding.
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

/// (outcome, reason) of every audit event `kind` of `user` in `acc`'s store, oldest first.
pub async fn audit_of(acc: &Accounts, kind: &str, user: &str) -> Vec<(String, String)> {
    use portcullis::storage::UserStore;
    acc.users
        .query_audit(&portcullis::storage::AuditQuery {
            since: None,
            user: Some(user.into()),
            kind: Some(kind.into()),
            after_id: None,
            limit: 500,
            newest_first: false,
        })
        .await
        .unwrap()
        .into_iter()
        .map(|e| (e.event.outcome, e.event.reason.unwrap_or_default()))
        .collect()
}

/// GET the form at `path`, POST the password; returns the POST response. A form bound to an
/// enrollment invitation posts its invitation too.
pub async fn password_step(b: &mut Browser, path: &str, user: &str, pw: &str) -> Resp {
    let fields = login_form(b, path).await;
    let mut form: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
    form.push(("username", user));
    form.push(("password", pw));
    b.post(path.split('?').next().unwrap(), &form).await
}

/// The hidden fields of the sign-in form at `path` (csrf_token, rd, and invite when bound).
pub async fn login_form(b: &mut Browser, path: &str) -> Vec<(&'static str, String)> {
    let form = b.get(path).await;
    assert_eq!(form.status, StatusCode::OK, "{}", form.text());
    let html = form.text();
    let mut out = vec![
        ("csrf_token", input_value(&html, "csrf_token").unwrap()),
        ("rd", input_value(&html, "rd").unwrap()),
    ];
    if let Some(i) = input_value(&html, "invite") {
        out.push(("invite", i));
    }
    out
}

/// The CSRF token of the MFA page at `path`, with the page.
pub async fn mfa_csrf(b: &mut Browser, path: &str) -> (Resp, String) {
    let page = b.get(path).await;
    let csrf = input_value(&page.text(), "csrf_token").unwrap_or_default();
    (page, csrf)
}

/// Posts `code` to the challenge of the pending login in `b`.
pub async fn submit_code(b: &mut Browser, code: &str) -> Resp {
    let (_, csrf) = mfa_csrf(b, "/_portcullis/mfa").await;
    b.post(
        "/_portcullis/mfa",
        &[("code", code), ("csrf_token", csrf.as_str())],
    )
    .await
}
