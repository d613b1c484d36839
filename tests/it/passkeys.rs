//! Passkeys without a browser (DESIGN.md §10): a software authenticator (`support::softkey`)
//! answers the gateway's real options with real signatures, so each refusal (replayed
//! challenge, another login's challenge, wrong origin, wrong RP id, a counter going backwards,
//! another user's credential, a factor the role does not accept) is checked against the real
//! ceremony code, and a ceremony started on one replica finishes on another (Redis).

mod browser;

use crate::support::browser::{input_value, Browser};
use crate::support::login::{password_step, ADMIN_TOKEN, PW};
use crate::support::softkey::{Lie, SoftKey};
use crate::support::stores::Store;
use crate::support::*;
use hyper::{Method, StatusCode};
use portcullis::secret::Password;
use serde_json::Value;
use std::path::PathBuf;

const EXTRA: &str = r#"
[roles.contractor]
groups = ["contractors"]
require_mfa = true

[roles.keyonly]
groups = ["keyonly"]
require_mfa = true
mfa_methods = ["webauthn"]

[roles.codesonly]
groups = ["codesonly"]
require_mfa = true
mfa_methods = ["recovery_code"]

[[routes]]
prefix = "/contract"
allow_roles = ["contractor", "keyonly", "codesonly"]

[native]
passkey_login = true
lockout = { max_failures = MAX_FAILURES, window = "15m", duration = "15m" }

[mfa]
issuer = "Test Helpdesk"
methods = ["webauthn", "totp", "recovery_code"]
enrollment = "first_login"
recovery_codes = { count = 10 }
"#;

struct Opts {
    store: Store,
    /// `server.public_url`; default `http://localhost:PORT` (browsers refuse an IP as RP id).
    public: Option<String>,
    /// A signing key and a user store shared with another replica.
    shared: Option<(PathBuf, String)>,
    max_failures: u32,
}

struct Env {
    gw: TestGateway,
    origin: String,
    admin_base: String,
}

impl Env {
    async fn start(o: Opts) -> Env {
        let upstream = TestUpstream::start().await;
        let dir = TempDir::new("passkeys");
        let config_path = dir.path().join("portcullis.toml");
        let clock = portcullis::clock::Clock::manual(1_800_000_000);
        let (server_extra, storage) = match &o.shared {
            Some((key, db)) => (format!("signing_key = \"{}\"", key.display()), db.clone()),
            None => (String::new(), "sqlite://users.db".to_owned()),
        };
        let extra = format!(
            "{}\n[storage]\nurl = \"{storage}\"\n\n[admin]\nlisten = \"127.0.0.1:0\"\nconsole_roles = [\"keyonly\"]\ntokens = [{{ name = \"ops\", sha256 = \"{}\" }}]\n",
            EXTRA.replace("MAX_FAILURES", &o.max_failures.to_string()),
            sha256_hex(ADMIN_TOKEN)
        );
        let session = o.store.session_toml();
        let mut origin = String::new();
        let running = start_gateway(&config_path, clock.clone(), |port| {
            origin = o
                .public
                .clone()
                .unwrap_or_else(|| format!("http://localhost:{port}"));
            base_config_full(port, upstream.addr, &server_extra, &session, &extra).replace(
                &format!("public_url = \"http://127.0.0.1:{port}\""),
                &format!("public_url = \"{origin}\""),
            )
        })
        .await;
        let addr = running.addr;
        let admin_base = format!("http://{}", running.admin_addr.unwrap());
        Env {
            gw: TestGateway {
                dir,
                upstream,
                running: Some(running),
                addr,
                clock,
                config_path,
            },
            origin,
            admin_base,
        }
    }

    fn browser(&self) -> Browser {
        Browser::new(&format!("http://{}", self.gw.addr))
    }

    fn key(&self) -> SoftKey {
        SoftKey::new("localhost", &self.origin)
    }

    async fn add_user(&self, name: &str, roles: &[&str]) {
        let g = self.gw.gateway();
        g.accounts
            .as_ref()
            .unwrap()
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

    async fn admin(&self, method: Method, path: &str) -> Resp {
        let auth = format!("Bearer {ADMIN_TOKEN}");
        Http::new()
            .send(
                method,
                &format!("{}{path}", self.admin_base),
                &[("authorization", auth.as_str())],
                Vec::new(),
            )
            .await
    }

    /// `(outcome, reason)` of the audit events `kind` of `user`.
    async fn audit_of(&self, kind: &str, user: &str) -> Vec<(String, String)> {
        crate::support::login::audit_of(self.gw.gateway().accounts.as_ref().unwrap(), kind, user)
            .await
    }
}

/// The CSRF token of the page at `path`, with the page.
async fn page_csrf(b: &mut Browser, path: &str) -> (Resp, String) {
    let page = b.get(path).await;
    let csrf = input_value(&page.text(), "csrf_token").unwrap_or_default();
    (page, csrf)
}

/// The ceremony options of the pending login in `b` (POST `/mfa/webauthn`).
async fn options(b: &mut Browser, csrf: &str) -> Value {
    let r = b
        .post("/_portcullis/mfa/webauthn", &[("csrf_token", csrf)])
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    r.json()
}

/// Password, then a passkey registered at enrollment; the session exists afterwards.
async fn enroll(env: &Env, b: &mut Browser, user: &str, key: &mut SoftKey) -> Resp {
    let r = password_step(b, "/normal", user, PW).await;
    assert_eq!(r.status, StatusCode::FOUND, "{}", r.text());
    assert!(r.header("location").unwrap().ends_with("/mfa/enroll"));
    let (page, csrf) = page_csrf(b, "/_portcullis/mfa/enroll").await;
    assert!(
        page.text().contains("id=\"webauthn-register\""),
        "{}",
        page.text()
    );
    let answer = key.register(&options(b, &csrf).await);
    let done = b
        .post(
            "/_portcullis/mfa/enroll",
            &[
                ("csrf_token", &csrf),
                ("mode", "webauthn"),
                ("credential", &answer),
                ("name", "Work laptop"),
            ],
        )
        .await;
    let _ = env;
    done
}

/// Password, then the challenge answered by `key` as `lie` says; the challenge's answer.
async fn sign_in(b: &mut Browser, user: &str, key: &mut SoftKey, lie: &Lie) -> Resp {
    let r = password_step(b, "/normal", user, PW).await;
    assert_eq!(r.status, StatusCode::FOUND, "{}", r.text());
    assert!(
        r.header("location").unwrap().ends_with("/mfa"),
        "{:?}",
        r.header("location")
    );
    let (page, csrf) = page_csrf(b, "/_portcullis/mfa").await;
    assert!(
        page.text().contains("id=\"webauthn-login\""),
        "{}",
        page.text()
    );
    let answer = key.assert_lying(&options(b, &csrf).await, lie);
    post_answer(b, &csrf, &answer).await
}

async fn post_answer(b: &mut Browser, csrf: &str, answer: &str) -> Resp {
    b.post(
        "/_portcullis/mfa",
        &[
            ("csrf_token", csrf),
            ("mode", "webauthn"),
            ("credential", answer),
        ],
    )
    .await
}

/// The factor the upstream was told, when `b` reaches `/contract`.
async fn mfa_seen(b: &mut Browser) -> Option<(String, String)> {
    let r = b.get("/contract/x").await;
    (r.status == StatusCode::OK).then(|| {
        (
            r.upstream_header("x-auth-method").unwrap_or_default(),
            r.upstream_header("x-auth-mfa").unwrap_or_default(),
        )
    })
}

fn memory() -> Opts {
    Opts {
        store: Store::Memory,
        public: None,
        shared: None,
        max_failures: 10,
    }
}

fn refused(r: &Resp) {
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.text());
    assert!(
        r.text().contains("The passkey was not accepted"),
        "the page's alert says so: {}",
        r.text()
    );
}

#[tokio::test]
async fn a_contractor_registers_a_passkey_at_enrollment_and_uses_it_on_later_sign_ins() {
    let env = Env::start(memory()).await;
    env.add_user("cara", &["contractor"]).await;
    let mut key = env.key();
    let mut b = env.browser();
    let done = enroll(&env, &mut b, "cara", &mut key).await;
    assert_eq!(
        done.status,
        StatusCode::OK,
        "recovery codes once: {}",
        done.text()
    );
    assert!(done.text().contains("id=\"recovery-codes\""));
    assert_eq!(
        mfa_seen(&mut b).await,
        Some(("native".into(), "webauthn".into()))
    );
    assert_eq!(
        env.audit_of("mfa.enroll", "cara").await,
        [("success".to_owned(), String::new())]
    );
    // A later sign-in: password, then the passkey.
    let mut later = env.browser();
    let r = sign_in(&mut later, "cara", &mut key, &Lie::default()).await;
    assert_eq!(r.status, StatusCode::FOUND, "{}", r.text());
    assert_eq!(
        mfa_seen(&mut later).await,
        Some(("native".into(), "webauthn".into()))
    );
    // The admin API lists it, without key material, and its reset removes it.
    let u = env.admin(Method::GET, "/api/v1/users/cara").await.json();
    let keys = u["passkeys"].as_array().unwrap();
    assert_eq!(keys.len(), 1);
    assert_eq!(keys[0]["name"], "Work laptop");
    assert!(keys[0]["last_used_at"].is_string());
    assert!(keys[0].get("passkey").is_none() && !u.to_string().contains("\"cred\""));
    let r = env.admin(Method::DELETE, "/api/v1/users/cara/mfa").await;
    assert!(r.status.is_success(), "{}", r.text());
    let u = env.admin(Method::GET, "/api/v1/users/cara").await.json();
    assert_eq!(u["passkeys"], serde_json::json!([]));
}

#[tokio::test]
async fn replayed_foreign_and_forged_answers_are_refused_and_audited() {
    let env = Env::start(memory()).await;
    env.add_user("cara", &["contractor"]).await;
    env.add_user("bob", &["contractor"]).await;
    let mut key = env.key();
    enroll(&env, &mut env.browser(), "cara", &mut key).await;
    let mut bobs = env.key();
    enroll(&env, &mut env.browser(), "bob", &mut bobs).await;

    // Wrong origin (a phishing proxy's page), then the true answer to the same, spent
    // challenge: both refused, the second because a challenge is single-use.
    let mut b = env.browser();
    let lie = Lie {
        origin: Some("http://localhost.evil.example".into()),
        ..Lie::default()
    };
    let r = password_step(&mut b, "/normal", "cara", PW).await;
    assert_eq!(r.status, StatusCode::FOUND);
    let (_, csrf) = page_csrf(&mut b, "/_portcullis/mfa").await;
    let opts = options(&mut b, &csrf).await;
    refused(&post_answer(&mut b, &csrf, &key.assert_lying(&opts, &lie)).await);
    refused(&post_answer(&mut b, &csrf, &key.assert(&opts)).await);
    assert_eq!(mfa_seen(&mut b).await, None, "no session");

    // Wrong RP id.
    let lie = Lie {
        rp_id: Some("example.com".into()),
        ..Lie::default()
    };
    refused(&sign_in(&mut env.browser(), "cara", &mut key, &lie).await);

    // No user verification: a passkey stands for a factor only with it.
    let lie = Lie {
        no_uv: true,
        ..Lie::default()
    };
    refused(&sign_in(&mut env.browser(), "cara", &mut key, &lie).await);

    // The challenge of another pending login of the same user.
    let (mut x, mut y) = (env.browser(), env.browser());
    password_step(&mut x, "/normal", "cara", PW).await;
    password_step(&mut y, "/normal", "cara", PW).await;
    let (_, cx) = page_csrf(&mut x, "/_portcullis/mfa").await;
    let (_, cy) = page_csrf(&mut y, "/_portcullis/mfa").await;
    let ox = options(&mut x, &cx).await;
    let _oy = options(&mut y, &cy).await;
    refused(&post_answer(&mut y, &cy, &key.assert(&ox)).await);

    // Another user's credential, for cara's login.
    let mut b = env.browser();
    password_step(&mut b, "/normal", "cara", PW).await;
    let (_, csrf) = page_csrf(&mut b, "/_portcullis/mfa").await;
    let opts = options(&mut b, &csrf).await;
    refused(&post_answer(&mut b, &csrf, &bobs.assert(&opts)).await);

    // A counter that goes backwards (a cloned key): refused and audited as such.
    let ok = sign_in(&mut env.browser(), "cara", &mut key, &Lie::default()).await;
    assert_eq!(ok.status, StatusCode::FOUND, "{}", ok.text());
    let lie = Lie {
        counter: Some(1),
        ..Lie::default()
    };
    refused(&sign_in(&mut env.browser(), "cara", &mut key, &lie).await);

    let reasons: Vec<String> = env
        .audit_of("mfa.failure", "cara")
        .await
        .into_iter()
        .map(|(_, r)| r)
        .collect();
    for want in [
        "passkey wrong_origin",
        "passkey wrong_challenge",
        "passkey wrong_rp_id",
        "passkey user_not_verified",
        "passkey unknown_credential",
        "passkey sign_count_backwards",
    ] {
        assert!(reasons.iter().any(|r| r == want), "{want} in {reasons:?}");
    }
}

#[tokio::test]
async fn a_role_limited_to_passkeys_offers_only_them_and_refuses_a_totp_code() {
    let env = Env::start(memory()).await;
    env.add_user("kim", &["keyonly"]).await;
    let acc = env.gw.gateway().accounts.as_ref().unwrap();
    // Kim has an authenticator app from before the role was narrowed.
    let (seed, _) = acc
        .enroll_totp_now("kim", env.gw.clock.now())
        .await
        .unwrap();
    let code = portcullis::mfa::totp::code_at(&seed, env.gw.clock.now());
    let mut b = env.browser();
    let r = password_step(&mut b, "/normal", "kim", PW).await;
    assert!(
        r.header("location").unwrap().ends_with("/mfa/enroll"),
        "the app does not count for this role: enroll a passkey"
    );
    let (page, csrf) = page_csrf(&mut b, "/_portcullis/mfa/enroll").await;
    let html = page.text();
    assert!(html.contains("id=\"webauthn-register\""));
    assert!(
        !html.contains("totp-uri"),
        "no authenticator app offered: {html}"
    );
    // An app code posted at enrollment anyway is refused and audited.
    let r = b
        .post(
            "/_portcullis/mfa/enroll",
            &[("csrf_token", &csrf), ("code", &code)],
        )
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.text());
    assert!(env
        .audit_of("mfa.enroll", "kim")
        .await
        .contains(&("refused".into(), "method_not_allowed".into())));
    let mut key = env.key();
    let answer = key.register(&options(&mut b, &csrf).await);
    let r = b
        .post(
            "/_portcullis/mfa/enroll",
            &[
                ("csrf_token", &csrf),
                ("mode", "webauthn"),
                ("credential", &answer),
            ],
        )
        .await;
    assert!(
        r.status.is_success() || r.status.is_redirection(),
        "{}",
        r.text()
    );
    // Later: the challenge has no code field, and a code posted there is refused, audited.
    let mut b = env.browser();
    password_step(&mut b, "/normal", "kim", PW).await;
    let (page, csrf) = page_csrf(&mut b, "/_portcullis/mfa").await;
    assert!(page.text().contains("id=\"webauthn-login\""));
    assert!(!page.text().contains("name=\"code\""), "{}", page.text());
    let code = portcullis::mfa::totp::code_at(&seed, env.gw.clock.now() + 60);
    env.gw.clock.advance(60);
    let r = b
        .post(
            "/_portcullis/mfa",
            &[("csrf_token", &csrf), ("code", &code)],
        )
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.text());
    assert_eq!(mfa_seen(&mut b).await, None);
    assert!(env
        .audit_of("mfa.failure", "kim")
        .await
        .iter()
        .any(|(_, reason)| reason == "method not allowed for this role"));
    // The passkey still works.
    let answer = key.assert(&options(&mut b, &csrf).await);
    let r = post_answer(&mut b, &csrf, &answer).await;
    assert_eq!(r.status, StatusCode::FOUND, "{}", r.text());
    assert_eq!(
        mfa_seen(&mut b).await,
        Some(("native".into(), "webauthn".into()))
    );
}

/// The sign-in form's passkey step: options for this browser's cookie, then the answer.
async fn passkey_signin(b: &mut Browser, key: &mut SoftKey, lie: &Lie) -> Resp {
    let (page, csrf) = page_csrf(b, "/normal").await;
    assert!(
        page.text().contains("id=\"passkey-signin\""),
        "{}",
        page.text()
    );
    let r = b
        .post(
            "/normal",
            &[("csrf_token", &csrf), ("mode", "passkey-options")],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let opts = r.json();
    assert!(
        opts["publicKey"].get("allowCredentials").is_none()
            || opts["publicKey"]["allowCredentials"] == serde_json::json!([]),
        "discoverable: no allow-list"
    );
    let answer = key.assert_lying(&opts, lie);
    b.post(
        "/normal",
        &[
            ("csrf_token", &csrf),
            ("mode", "passkey"),
            ("credential", &answer),
            ("rd", "/contract/x"),
        ],
    )
    .await
}

#[tokio::test]
async fn a_passkey_sign_in_stands_for_both_factors_under_the_lockout() {
    let env = Env::start(Opts {
        max_failures: 3,
        ..memory()
    })
    .await;
    env.add_user("cara", &["contractor"]).await;
    env.add_user("dan", &["contractor"]).await;
    let mut key = env.key();
    enroll(&env, &mut env.browser(), "cara", &mut key).await;
    let mut b = env.browser();
    let r = passkey_signin(&mut b, &mut key, &Lie::default()).await;
    assert_eq!(r.status, StatusCode::FOUND, "{}", r.text());
    assert_eq!(
        mfa_seen(&mut b).await,
        Some(("native".into(), "webauthn".into()))
    );
    // A credential the store does not know: refused, nothing counted.
    let mut stranger = env.key();
    stranger.user_handle = key.user_handle.clone();
    let r = passkey_signin(&mut env.browser(), &mut stranger, &Lie::default()).await;
    refused_signin(&r);
    // Three forged answers lock cara out; then even the true one is refused.
    let lie = Lie {
        origin: Some("http://localhost:1".into()),
        ..Lie::default()
    };
    for _ in 0..3 {
        refused_signin(&passkey_signin(&mut env.browser(), &mut key, &lie).await);
    }
    let r = passkey_signin(&mut env.browser(), &mut key, &Lie::default()).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "{}", r.text());
    assert!(env
        .audit_of("lockout", "cara")
        .await
        .iter()
        .any(|(o, _)| o == "locked"));
    // A disabled user's passkey signs nobody in.
    let mut dans = env.key();
    enroll(&env, &mut env.browser(), "dan", &mut dans).await;
    let r = env.admin(Method::POST, "/api/v1/users/dan/disable").await;
    assert!(r.status.is_success(), "{}", r.text());
    let mut b = env.browser();
    let r = passkey_signin(&mut b, &mut dans, &Lie::default()).await;
    refused_signin(&r);
    assert_eq!(mfa_seen(&mut b).await, None);
    assert!(env
        .audit_of("login.failure", "dan")
        .await
        .contains(&("refused".into(), "disabled".into())));
}

fn refused_signin(r: &Resp) {
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.text());
    assert!(
        r.text().contains("The passkey was not accepted"),
        "{}",
        r.text()
    );
}

#[tokio::test]
async fn a_ceremony_started_on_one_replica_finishes_on_another() {
    let Some(Store::Redis { url, prefix }) =
        Store::redis("a_ceremony_started_on_one_replica_finishes_on_another")
    else {
        return;
    };
    let shared = TempDir::new("pk-replicas");
    let key_file = shared.path().join("signing.p8");
    let db = format!("sqlite://{}", shared.path().join("users.db").display());
    let store = || Store::Redis {
        url: url.clone(),
        prefix: prefix.clone(),
    };
    let a = Env::start(Opts {
        store: store(),
        public: None,
        shared: Some((key_file.clone(), db.clone())),
        max_failures: 10,
    })
    .await;
    // Both replicas answer for one public origin, as behind a load balancer.
    let b_env = Env::start(Opts {
        store: store(),
        public: Some(a.origin.clone()),
        shared: Some((key_file, db)),
        max_failures: 10,
    })
    .await;
    a.add_user("cara", &["contractor"]).await;
    let mut key = a.key();
    // Registration: options from A, answer to B.
    let mut on_a = a.browser();
    password_step(&mut on_a, "/normal", "cara", PW).await;
    let (_, csrf) = page_csrf(&mut on_a, "/_portcullis/mfa/enroll").await;
    let answer = key.register(&options(&mut on_a, &csrf).await);
    let mut on_b = b_env.browser();
    on_b.jar = on_a.jar.clone();
    let r = on_b
        .post(
            "/_portcullis/mfa/enroll",
            &[
                ("csrf_token", &csrf),
                ("mode", "webauthn"),
                ("credential", &answer),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    // A later second factor: options from B, answer to A.
    let mut on_b = b_env.browser();
    password_step(&mut on_b, "/normal", "cara", PW).await;
    let (_, csrf) = page_csrf(&mut on_b, "/_portcullis/mfa").await;
    let opts = options(&mut on_b, &csrf).await;
    let mut on_a = a.browser();
    on_a.jar = on_b.jar.clone();
    let r = post_answer(&mut on_a, &csrf, &key.assert(&opts)).await;
    assert_eq!(r.status, StatusCode::FOUND, "{}", r.text());
    assert_eq!(
        mfa_seen(&mut on_a).await,
        Some(("native".into(), "webauthn".into()))
    );
    // Single use holds across replicas: the same answer again, on B, is refused.
    let mut again = b_env.browser();
    password_step(&mut again, "/normal", "cara", PW).await;
    let (_, c2) = page_csrf(&mut again, "/_portcullis/mfa").await;
    refused(&post_answer(&mut again, &c2, &key.assert(&opts)).await);
}

/// The recovery codes on the page that shows them once.
fn codes_of(html: &str) -> Vec<String> {
    html.split("<li><code>")
        .skip(1)
        .filter_map(|c| c.split("</code>").next())
        .map(str::to_owned)
        .collect()
}

#[tokio::test]
async fn the_account_page_lists_adds_renames_and_removes_passkeys_with_a_fresh_factor() {
    let env = Env::start(memory()).await;
    env.add_user("cara", &["contractor"]).await;
    env.add_user("kim", &["keyonly"]).await;
    let mut key = env.key();
    let mut b = env.browser();
    let done = enroll(&env, &mut b, "cara", &mut key).await;
    let codes = codes_of(&done.text());
    assert_eq!(codes.len(), 10, "{}", done.text());
    let (page, csrf) = page_csrf(&mut b, "/_portcullis/account").await;
    let html = page.text();
    assert!(
        html.contains("<h2>Passkeys</h2>") && html.contains("Work laptop"),
        "{html}"
    );
    assert!(html.contains("id=\"webauthn-register\""));
    // Adding one: the options exclude the key she has; the answer needs a fresh code.
    let r = b
        .post(
            "/_portcullis/account/passkeys/options",
            &[("csrf_token", &csrf)],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let opts = r.json();
    assert_eq!(
        opts["publicKey"]["excludeCredentials"]
            .as_array()
            .map(Vec::len),
        Some(1)
    );
    let mut phone = env.key();
    let answer = phone.register(&opts);
    let add = |code: String, answer: String| {
        let csrf = csrf.clone();
        let mut fields = vec![
            ("csrf_token".to_owned(), csrf),
            ("mode".to_owned(), "webauthn".to_owned()),
            ("credential".to_owned(), answer),
            ("name".to_owned(), "Phone".to_owned()),
        ];
        if !code.is_empty() {
            fields.push(("code".to_owned(), code));
        }
        fields
    };
    let no_code = add(String::new(), answer.clone());
    let form: Vec<(&str, &str)> = no_code
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let r = b.post("/_portcullis/account/passkeys/add", &form).await;
    assert!(
        !r.text().contains("Your passkey was added"),
        "no fresh factor: {}",
        r.text()
    );
    let fields = add(codes[0].clone(), answer);
    let form: Vec<(&str, &str)> = fields
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let r = b.post("/_portcullis/account/passkeys/add", &form).await;
    assert!(r.text().contains("Your passkey was added"), "{}", r.text());
    let u = env.admin(Method::GET, "/api/v1/users/cara").await.json();
    assert_eq!(u["passkeys"].as_array().unwrap().len(), 2);
    let phone_id = u["passkeys"][1]["id"].as_str().unwrap().to_owned();
    // Rename, then remove with a fresh code.
    let r = b
        .post(
            "/_portcullis/account/passkeys/rename",
            &[
                ("csrf_token", &csrf),
                ("id", &phone_id),
                ("name", "Old phone"),
            ],
        )
        .await;
    assert!(r.text().contains("Old phone"), "{}", r.text());
    let r = b
        .post(
            "/_portcullis/account/passkeys/remove",
            &[
                ("csrf_token", &csrf),
                ("id", &phone_id),
                ("code", &codes[1]),
            ],
        )
        .await;
    assert!(r.text().contains("The passkey was removed"), "{}", r.text());
    assert!(env
        .audit_of("mfa.removed", "cara")
        .await
        .contains(&("success".into(), String::new())));
    // Kim's roles accept passkeys only: her last one cannot be removed.
    let mut kims = env.key();
    let mut k = env.browser();
    enroll(&env, &mut k, "kim", &mut kims).await;
    let (_, kcsrf) = page_csrf(&mut k, "/_portcullis/account").await;
    let kim_id = env.admin(Method::GET, "/api/v1/users/kim").await.json()["passkeys"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = k
        .post(
            "/_portcullis/account/passkeys/remove",
            &[("csrf_token", &kcsrf), ("id", &kim_id)],
        )
        .await;
    assert!(
        r.text().contains("This is your last second factor"),
        "{}",
        r.text()
    );
    assert!(env
        .audit_of("mfa.removed", "kim")
        .await
        .contains(&("refused".into(), "last_factor".into())));
    // Nobody removes another user's passkey.
    let r = b
        .post(
            "/_portcullis/account/passkeys/remove",
            &[("csrf_token", &csrf), ("id", &kim_id), ("code", &codes[2])],
        )
        .await;
    assert!(
        r.text().contains("There is no such passkey"),
        "{}",
        r.text()
    );
    assert_eq!(
        env.admin(Method::GET, "/api/v1/users/kim").await.json()["passkeys"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
}

#[tokio::test]
async fn a_passkey_only_admin_reaches_the_console_fresh_and_later_signs_in_again_for_it() {
    let env = Env::start(memory()).await;
    env.add_user("kim", &["keyonly"]).await;
    let mut key = env.key();
    let mut b = env.browser();
    enroll(&env, &mut b, "kim", &mut key).await;
    // The passkey of this sign-in is a fresh factor for the console.
    let r = b.get("/_portcullis/admin").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert!(r.text().contains("<h2>Sessions</h2>"), "{}", r.text());
    // Later: no code to type, so the step-up is a new sign-in (with the passkey).
    env.gw.clock.advance(20 * 60);
    let r = b.get("/_portcullis/admin").await;
    assert!(!r.text().contains("name=\"code\""), "{}", r.text());
    assert!(!r.text().contains("<h2>Sessions</h2>"));
}

#[tokio::test]
async fn a_ceremony_expires_after_five_minutes() {
    let env = Env::start(memory()).await;
    env.add_user("cara", &["contractor"]).await;
    let mut key = env.key();
    enroll(&env, &mut env.browser(), "cara", &mut key).await;
    let mut b = env.browser();
    password_step(&mut b, "/normal", "cara", PW).await;
    let (_, csrf) = page_csrf(&mut b, "/_portcullis/mfa").await;
    let opts = options(&mut b, &csrf).await;
    env.gw.clock.advance(5 * 60 + 1);
    refused(&post_answer(&mut b, &csrf, &key.assert(&opts)).await);
    assert!(env
        .audit_of("mfa.failure", "cara")
        .await
        .contains(&("failure".into(), "passkey wrong_challenge".into())));
}

#[tokio::test]
async fn two_enrollments_racing_store_one_first_passkey() {
    let env = Env::start(memory()).await;
    env.add_user("cara", &["contractor"]).await;
    let (mut x, mut y) = (env.browser(), env.browser());
    password_step(&mut x, "/normal", "cara", PW).await;
    password_step(&mut y, "/normal", "cara", PW).await;
    let (_, cx) = page_csrf(&mut x, "/_portcullis/mfa/enroll").await;
    let (_, cy) = page_csrf(&mut y, "/_portcullis/mfa/enroll").await;
    let (mut kx, mut ky) = (env.key(), env.key());
    let ax = kx.register(&options(&mut x, &cx).await);
    let ay = ky.register(&options(&mut y, &cy).await);
    let post = |csrf: String, answer: String| {
        vec![
            ("csrf_token".to_owned(), csrf),
            ("mode".to_owned(), "webauthn".to_owned()),
            ("credential".to_owned(), answer),
        ]
    };
    let fx = post(cx, ax);
    let fy = post(cy, ay);
    let form = |f: &Vec<(String, String)>| -> Vec<(String, String)> { f.clone() };
    let (fx, fy) = (form(&fx), form(&fy));
    let rx = x
        .post(
            "/_portcullis/mfa/enroll",
            &fx.iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect::<Vec<_>>(),
        )
        .await;
    assert_eq!(rx.status, StatusCode::OK, "{}", rx.text());
    // The other login, started before, may not add a factor beside the one now enrolled.
    let ry = y
        .post(
            "/_portcullis/mfa/enroll",
            &fy.iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect::<Vec<_>>(),
        )
        .await;
    assert_ne!(ry.status, StatusCode::OK, "{}", ry.text());
    assert_eq!(mfa_seen(&mut y).await, None);
    let u = env.admin(Method::GET, "/api/v1/users/cara").await.json();
    assert_eq!(u["passkeys"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn a_role_whose_factors_cannot_be_enrolled_is_refused_clearly_not_sent_to_a_dead_end() {
    let env = Env::start(memory()).await;
    env.add_user("rey", &["codesonly"]).await;
    let mut b = env.browser();
    let r = password_step(&mut b, "/normal", "rey", PW).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text());
    assert!(
        r.text().contains("no second factor that this site offers"),
        "{}",
        r.text()
    );
    assert!(env
        .audit_of("login.failure", "rey")
        .await
        .contains(&("refused".into(), "no_enrollable_factor".into())));
}

#[tokio::test]
async fn a_passkey_sign_in_is_held_to_the_identity_values_check_too() {
    let env = Env::start(memory()).await;
    env.add_user("cara", &["contractor"]).await;
    let mut key = env.key();
    enroll(&env, &mut env.browser(), "cara", &mut key).await;
    // An address the identity header cannot carry exactly, written after enrollment.
    let acc = env.gw.gateway().accounts.as_ref().unwrap();
    assert!(acc
        .users
        .set_email("cara", Some("cara\u{7}@example.com"))
        .await
        .unwrap());
    let mut b = env.browser();
    let r = passkey_signin(&mut b, &mut key, &Lie::default()).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text());
    assert_eq!(mfa_seen(&mut b).await, None, "no session");
}
