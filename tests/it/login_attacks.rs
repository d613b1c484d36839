//! The login state machine under attack (issue 14): stale and out-of-order steps, planted and
//! overwritten enrollment secrets, users changed mid-login, racing lockouts and single-use
//! values, store outages mid-check, users of different origins with one name, cross-site forms.
//! Races run on the memory store and on Redis.

use crate::support::browser::{element_text, input_value, seed_of, Browser};
use crate::support::login::*;
use crate::support::*;
use hyper::{Method, StatusCode};
use portcullis::mfa::totp::code_at;
use portcullis::session::{AuthMethod, Identity, MfaUsed, Session, SessionId, SessionStore};
use portcullis::storage::UserStore;
use std::time::Duration;

async fn env(enrollment: &'static str) -> LoginEnv {
    LoginEnv::start(LoginOpts {
        enrollment,
        ..Default::default()
    })
    .await
}

/// The enrollment page's secret in `b`'s pending login.
async fn enrollment_seed(b: &mut Browser) -> portcullis::secret::TotpSeed {
    let page = b.get("/_portcullis/mfa/enroll").await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.text());
    seed_of(&element_text(&page.text(), "totp-uri").expect("otpauth URI"))
}

/// Posts `code` to the challenge with a CSRF token read earlier (the page itself would already
/// answer for a login that went stale).
async fn post_code(b: &mut Browser, csrf: &str, code: &str) -> Resp {
    b.post("/_portcullis/mfa", &[("code", code), ("csrf_token", csrf)])
        .await
}

async fn confirm_enrollment(b: &mut Browser, code: &str) -> Resp {
    let page = b.get("/_portcullis/mfa/enroll").await;
    let csrf = input_value(&page.text(), "csrf_token").unwrap_or_default();
    b.post(
        "/_portcullis/mfa/enroll",
        &[("code", code), ("csrf_token", csrf.as_str())],
    )
    .await
}

// Finding 2.
#[tokio::test]
async fn a_stale_password_only_login_cannot_overwrite_an_authenticator_confirmed_meanwhile() {
    let env = env("first_login").await;
    env.add_user("vic", &["contractor"]).await;
    // The attacker has only the password and stops at the enrollment stage, having seen its
    // own secret; the victim then enrolls.
    let mut attacker = env.browser();
    let r = password_step(&mut attacker, "/normal", "vic", PW).await;
    assert!(r.header("location").unwrap().ends_with("/mfa/enroll"));
    let attackers_seed = enrollment_seed(&mut attacker).await;
    let mut victim = env.browser();
    password_step(&mut victim, "/normal", "vic", PW).await;
    let victims_seed = enrollment_seed(&mut victim).await;
    let ok = confirm_enrollment(&mut victim, &env.code(&victims_seed)).await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.text());
    env.gw.clock.advance(30);
    // The stale login can neither see a new secret nor confirm its old one.
    let page = attacker.get("/_portcullis/mfa/enroll").await;
    assert_eq!(page.status, StatusCode::FORBIDDEN);
    assert!(page.text().contains("Sign in again"));
    assert!(element_text(&page.text(), "totp-uri").is_none());
    let r = attacker
        .post(
            "/_portcullis/mfa/enroll",
            &[("code", &env.code(&attackers_seed)), ("csrf_token", "x")],
        )
        .await;
    assert_ne!(r.status, StatusCode::OK);
    assert!(!attacker.jar.contains_key("portcullis"), "no session");
    // The victim's authenticator still works.
    let mut again = env.browser();
    password_step(&mut again, "/normal", "vic", PW).await;
    let r = submit_code(&mut again, &env.code(&victims_seed)).await;
    assert_eq!(r.status, StatusCode::FOUND);
}

// Finding 2, the other order: the stale login confirms its own secret after the victim did.
#[tokio::test]
async fn confirming_a_stale_enrollment_after_the_victim_enrolled_is_refused_and_changes_nothing() {
    let env = env("first_login").await;
    env.add_user("vera", &["contractor"]).await;
    let mut attacker = env.browser();
    password_step(&mut attacker, "/normal", "vera", PW).await;
    let page = attacker.get("/_portcullis/mfa/enroll").await;
    let attackers_seed = seed_of(&element_text(&page.text(), "totp-uri").unwrap());
    let csrf = input_value(&page.text(), "csrf_token").unwrap();
    let mut victim = env.browser();
    password_step(&mut victim, "/normal", "vera", PW).await;
    let victims_seed = enrollment_seed(&mut victim).await;
    assert_eq!(
        confirm_enrollment(&mut victim, &env.code(&victims_seed))
            .await
            .status,
        StatusCode::OK
    );
    let r = attacker
        .post(
            "/_portcullis/mfa/enroll",
            &[("code", &env.code(&attackers_seed)), ("csrf_token", &csrf)],
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text());
    assert!(!attacker.jar.contains_key("portcullis"));
    let stored = env
        .acc()
        .users
        .get_totp("native:vera")
        .await
        .unwrap()
        .unwrap();
    let opened = env
        .acc()
        .open_seed("native:vera", &stored.sealed_seed)
        .unwrap();
    assert_eq!(
        opened.expose(),
        victims_seed.expose(),
        "the victim's factor is kept"
    );
}

// Finding 3.
#[tokio::test]
async fn an_unconfirmed_enrollment_secret_is_never_shown_to_another_login() {
    let env = env("first_login").await;
    env.add_user("pia", &["contractor"]).await;
    let mut attacker = env.browser();
    password_step(&mut attacker, "/normal", "pia", PW).await;
    let planted = enrollment_seed(&mut attacker).await;
    // Reloading shows the same secret to the same login (a scanned QR code stays valid) ...
    assert_eq!(
        enrollment_seed(&mut attacker).await.expose(),
        planted.expose()
    );
    // ... but the victim's login gets its own.
    let mut victim = env.browser();
    password_step(&mut victim, "/normal", "pia", PW).await;
    let victims = enrollment_seed(&mut victim).await;
    assert_ne!(victims.expose(), planted.expose(), "seed planting");
    assert_eq!(
        confirm_enrollment(&mut victim, &env.code(&victims))
            .await
            .status,
        StatusCode::OK
    );
    assert!(
        env.acc()
            .users
            .get_totp("native:pia")
            .await
            .unwrap()
            .is_some(),
        "nothing is stored before confirmation, the victim's after"
    );
    // The planted secret never signs anyone in.
    env.gw.clock.advance(30);
    let mut later = env.browser();
    password_step(&mut later, "/normal", "pia", PW).await;
    let r = submit_code(&mut later, &env.code(&planted)).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
}

// Finding 4.
#[tokio::test]
async fn a_user_disabled_after_the_password_cannot_finish_the_login() {
    let env = env("invite").await;
    let seed = env.add_enrolled("dana").await;
    // Through the admin API (ends sessions and pending logins) ...
    let mut b = env.browser();
    password_step(&mut b, "/normal", "dana", PW).await;
    let (_, csrf) = mfa_csrf(&mut b, "/_portcullis/mfa").await;
    let r = env
        .admin(Method::POST, "/api/v1/users/dana/disable", None)
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let r = post_code(&mut b, &csrf, &env.code(&seed)).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text());
    assert!(!b.jar.contains_key("portcullis"), "no session");
    // ... and directly in the user store (every step re-reads the user).
    env.acc().users.set_disabled("dana", false).await.unwrap();
    env.gw.clock.advance(30);
    let mut c = env.browser();
    password_step(&mut c, "/normal", "dana", PW).await;
    let (_, csrf) = mfa_csrf(&mut c, "/_portcullis/mfa").await;
    env.acc().users.set_disabled("dana", true).await.unwrap();
    let r = post_code(&mut c, &csrf, &env.code(&seed)).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(!c.jar.contains_key("portcullis"));
    assert!(env
        .audit_of("login.failure", "dana")
        .await
        .contains(&("refused".into(), "user is disabled".into())));
    // The pending login is gone for good: enabling the user again does not revive it.
    env.acc().users.set_disabled("dana", false).await.unwrap();
    let r = post_code(&mut c, &csrf, &env.code(&seed)).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
}

// Finding 4: roles.
#[tokio::test]
async fn a_user_whose_roles_changed_after_the_password_cannot_finish_the_login() {
    let env = env("invite").await;
    let seed = env.add_enrolled("rolf").await;
    let mut b = env.browser();
    password_step(&mut b, "/normal", "rolf", PW).await;
    let (_, csrf) = mfa_csrf(&mut b, "/_portcullis/mfa").await;
    env.acc()
        .users
        .set_roles("rolf", &["end_user".into()])
        .await
        .unwrap();
    let r = post_code(&mut b, &csrf, &env.code(&seed)).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(!b.jar.contains_key("portcullis"));
}

#[tokio::test]
async fn a_role_change_through_the_admin_api_refuses_a_login_already_past_the_password() {
    let env = env("invite").await;
    let seed = env.add_enrolled("rhea").await;
    let mut b = env.browser();
    password_step(&mut b, "/normal", "rhea", PW).await;
    let (_, csrf) = mfa_csrf(&mut b, "/_portcullis/mfa").await;
    let r = env
        .admin(
            Method::PATCH,
            "/api/v1/users/rhea",
            Some(serde_json::json!({"roles": ["end_user"]})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let r = post_code(&mut b, &csrf, &env.code(&seed)).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(!b.jar.contains_key("portcullis"));
}

// Finding 4: factor reset by an admin mid-login.
#[tokio::test]
async fn a_factor_reset_ends_logins_already_past_the_password() {
    let env = env("invite").await;
    let seed = env.add_enrolled("fred").await;
    let mut b = env.browser();
    password_step(&mut b, "/normal", "fred", PW).await;
    let (_, csrf) = mfa_csrf(&mut b, "/_portcullis/mfa").await;
    let r = env
        .admin(Method::DELETE, "/api/v1/users/fred/mfa", None)
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let link = r.json()["enrollment_url"].as_str().unwrap().to_owned();
    assert!(link.starts_with(&format!("http://{}/normal?invite=", env.gw.addr)));
    let r = post_code(&mut b, &csrf, &env.code(&seed)).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    // The link is also mailed.
    let mail = env.smtp.next_message(Duration::from_secs(5)).await.unwrap();
    assert!(mail.body().contains(&link), "{}", mail.body());
}

/// `n` concurrent wrong passwords for one user from `n` addresses; returns how many were
/// evaluated (audited as bad credentials rather than refused as locked).
async fn race_wrong_passwords(store: Store, n: u8) -> usize {
    let env = LoginEnv::start(LoginOpts {
        store,
        max_failures: 5,
        trusted_proxy: true,
        ..Default::default()
    })
    .await;
    env.add_enrolled("target").await;
    // Every guess needs its own form (a CSRF token works once).
    let mut forms = Vec::new();
    for _ in 0..n {
        let mut b = env.browser();
        let fields = login_form(&mut b, "/normal").await;
        forms.push((b, fields));
    }
    let tasks: Vec<_> = forms
        .into_iter()
        .enumerate()
        .map(|(i, (b, fields))| {
            let url = env.gw.url("/normal");
            let cookie = b.cookie_header();
            tokio::spawn(async move {
                let xff = format!("198.51.100.{i}");
                let mut form: Vec<(&str, &str)> =
                    fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
                form.push(("username", "target"));
                form.push(("password", "wrong password"));
                Http::new()
                    .post_form(
                        &url,
                        &[
                            ("cookie", cookie.as_str()),
                            ("x-forwarded-for", xff.as_str()),
                        ],
                        &form,
                    )
                    .await
                    .status
            })
        })
        .collect();
    for t in tasks {
        let s = t.await.unwrap();
        assert!(
            s == StatusCode::UNAUTHORIZED || s == StatusCode::TOO_MANY_REQUESTS,
            "{s}"
        );
    }
    let audit = env.audit_of("login.failure", "target").await;
    let evaluated = audit.iter().filter(|(_, r)| r == "bad_credentials").count();
    let locked = audit.iter().filter(|(_, r)| r == "locked").count();
    assert_eq!(evaluated + locked, usize::from(n), "{audit:?}");
    evaluated
}

// Finding 5.
#[tokio::test]
async fn concurrent_wrong_passwords_from_many_addresses_get_at_most_max_failures_evaluations() {
    assert_eq!(race_wrong_passwords(Store::Memory, 60).await, 5);
}

#[tokio::test]
async fn concurrent_wrong_passwords_from_many_addresses_get_at_most_max_failures_evaluations_on_redis(
) {
    let Some(store) = Store::redis("lockout race") else {
        return;
    };
    assert_eq!(race_wrong_passwords(store, 60).await, 5);
}

// Finding 11.
#[tokio::test]
async fn a_store_outage_during_the_second_factor_check_is_a_503_and_counts_nothing() {
    let env = env("invite").await;
    let seed = env.add_enrolled("olga").await;
    let mut b = env.browser();
    password_step(&mut b, "/normal", "olga", PW).await;
    let (_, csrf) = mfa_csrf(&mut b, "/_portcullis/mfa").await;
    // The user store goes away mid-login (as PostgreSQL does in an outage).
    env.acc().users.close().await;
    for _ in 0..5 {
        let r = b
            .post(
                "/_portcullis/mfa",
                &[("code", &env.code(&seed)), ("csrf_token", &csrf)],
            )
            .await;
        assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE, "{}", r.text());
        assert!(!r.text().contains("not valid"), "never 'wrong code'");
    }
    let lockout = &env.acc().lockout;
    assert_eq!(
        lockout
            .count(&env.gw.gateway().store, "native:olga")
            .await
            .unwrap(),
        0,
        "an outage counts toward nobody's lockout"
    );
}

// Finding 10.
#[tokio::test]
async fn a_native_alice_never_sees_or_ends_an_sso_alices_sessions() {
    let env = env("invite").await;
    let seed = env.add_enrolled("alice").await;
    let g = env.gw.gateway();
    // Nine sessions of an SSO alice (another origin, same display name).
    let mut sso = Vec::new();
    for _ in 0..9 {
        let token = portcullis::session::new_token().unwrap();
        let id = SessionId::of(&token);
        let s = Session::new(
            id.clone(),
            Identity {
                user: "alice".into(),
                principal: "partner:alice-77".into(),
                email: None,
                groups: vec![],
                roles: vec!["agent".into()],
                method: AuthMethod::Oidc("partner".into()),
                mfa: MfaUsed::Idp,
            },
            env.gw.clock.now(),
            Duration::from_secs(3600),
            Duration::from_secs(1800),
            None,
            None,
        )
        .unwrap();
        g.store.insert(s).await.unwrap();
        sso.push(id);
    }
    let mut a = env.browser();
    password_step(&mut a, "/normal", "alice", PW).await;
    assert_eq!(
        submit_code(&mut a, &env.code(&seed)).await.status,
        StatusCode::FOUND
    );
    env.gw.clock.advance(30);
    let page = a.get("/_portcullis/account").await;
    for id in &sso {
        assert!(
            !page.text().contains(id.as_str()),
            "an SSO alice session is listed"
        );
    }
    assert_eq!(
        page.text().matches("/account/sessions/end").count(),
        0,
        "only this one"
    );
    // Ending "everything else" and the admin's "all of alice's sessions" spare the SSO alice.
    let csrf = input_value(&page.text(), "csrf_token").unwrap();
    a.post(
        "/_portcullis/account/sessions/end",
        &[
            ("id", "others"),
            ("csrf_token", &csrf),
            ("code", &env.code(&seed)),
        ],
    )
    .await;
    let r = env
        .admin(Method::DELETE, "/api/v1/users/alice/sessions", None)
        .await;
    assert_eq!(r.json()["terminated"], 1);
    for id in &sso {
        assert!(g.store.get(id).await.unwrap().is_some());
    }
    // The admin names the other alice by her principal, as sessions list it.
    let listed = env
        .admin(
            Method::GET,
            &format!("/api/v1/sessions?user={}", enc("partner:alice-77")),
            None,
        )
        .await;
    assert_eq!(listed.json()["items"].as_array().unwrap().len(), 9);
    assert_eq!(listed.json()["items"][0]["principal"], "partner:alice-77");
}

// Finding 14: Origin.
#[tokio::test]
async fn a_form_posted_from_another_site_is_refused() {
    let env = env("invite").await;
    let seed = env.add_enrolled("otto").await;
    for origin in ["https://evil.example", "null"] {
        let mut b = env.browser();
        let fields = login_form(&mut b, "/normal").await;
        let cookie = b.cookie_header();
        let mut form: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
        form.push(("username", "otto"));
        form.push(("password", PW));
        let r = b
            .http
            .post_form(
                &env.gw.url("/normal"),
                &[("cookie", cookie.as_str()), ("origin", origin)],
                &form,
            )
            .await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{origin}");
        assert!(r.text().contains("sent from another website"));
    }
    // The same form from our own origin works, and so do the later steps only from it.
    let mut b = env.browser();
    password_step(&mut b, "/normal", "otto", PW).await;
    let (_, csrf) = mfa_csrf(&mut b, "/_portcullis/mfa").await;
    let cookie = b.cookie_header();
    let code = env.code(&seed);
    let evil = b
        .http
        .post_form(
            &env.gw.url("/_portcullis/mfa"),
            &[
                ("cookie", cookie.as_str()),
                ("origin", "https://evil.example"),
            ],
            &[("code", &code), ("csrf_token", &csrf)],
        )
        .await;
    assert_eq!(evil.status, StatusCode::FORBIDDEN);
    let own = format!("http://{}", env.gw.addr);
    let ok = b
        .http
        .post_form(
            &env.gw.url("/_portcullis/mfa"),
            &[("cookie", cookie.as_str()), ("origin", own.as_str())],
            &[("code", &code), ("csrf_token", &csrf)],
        )
        .await;
    assert_eq!(ok.status, StatusCode::FOUND);
}

// The invitation class: findings 2 and 3 are instances of "the password sets the factor".
#[tokio::test]
async fn without_an_invitation_the_password_alone_cannot_enroll_a_first_factor() {
    let env = env("invite").await;
    env.add_user("ivan", &["contractor"]).await;
    let mut b = env.browser();
    let r = password_step(&mut b, "/normal", "ivan", PW).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(r.text().contains("enrollment link"), "{}", r.text());
    assert_eq!(
        b.get("/_portcullis/mfa/enroll").await.status,
        StatusCode::BAD_REQUEST,
        "no pending login was made"
    );
    assert!(env
        .audit_of("login.failure", "ivan")
        .await
        .contains(&("refused".into(), "enrollment_needs_invite".into())));
    // A forged invitation or another user's does not open it either.
    env.add_user("other", &["contractor"]).await;
    let others = env.invite("other").await;
    let token = others.split("invite=").nth(1).unwrap();
    let mut c = env.browser();
    let fields = login_form(&mut c, &others).await;
    let mut form: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
    form.retain(|(k, _)| *k != "invite");
    form.push(("invite", token));
    form.push(("username", "ivan"));
    form.push(("password", PW));
    let r = c.post("/normal", &form).await;
    // Another user's invitation is no invitation for ivan.
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text());
    assert!(r.text().contains("enrollment link"));
}

#[tokio::test]
async fn an_invitation_enrolls_once_and_a_second_use_does_nothing() {
    let env = env("invite").await;
    env.add_user("una", &["contractor"]).await;
    let link = env.invite("una").await;
    let mut b = env.browser();
    let r = password_step(&mut b, &link, "una", PW).await;
    assert!(r.header("location").unwrap().ends_with("/mfa/enroll"));
    let seed = enrollment_seed(&mut b).await;
    assert_eq!(
        confirm_enrollment(&mut b, &env.code(&seed)).await.status,
        StatusCode::OK
    );
    let again = env.browser().get(&link).await;
    assert_eq!(again.status, StatusCode::BAD_REQUEST);
    assert!(again.text().contains("Link not valid"));
}

async fn race_one_invitation(store: Store) {
    let env = LoginEnv::start(LoginOpts {
        store,
        ..Default::default()
    })
    .await;
    env.add_user("twin", &["contractor"]).await;
    let link = env.invite("twin").await;
    let mut a = env.browser();
    let mut b = env.browser();
    password_step(&mut a, &link, "twin", PW).await;
    password_step(&mut b, &link, "twin", PW).await;
    let (sa, sb) = (enrollment_seed(&mut a).await, enrollment_seed(&mut b).await);
    let (ca, cb) = (env.code(&sa), env.code(&sb));
    let (ra, rb) = tokio::join!(
        confirm_enrollment(&mut a, &ca),
        confirm_enrollment(&mut b, &cb)
    );
    let wins = [&ra, &rb]
        .iter()
        .filter(|r| r.status == StatusCode::OK)
        .count();
    assert_eq!(wins, 1, "{} / {}", ra.status, rb.status);
    assert_eq!(
        [
            a.jar.contains_key("portcullis"),
            b.jar.contains_key("portcullis")
        ]
        .iter()
        .filter(|x| **x)
        .count(),
        1
    );
}

#[tokio::test]
async fn two_concurrent_enrollments_through_one_invitation_have_one_winner() {
    race_one_invitation(Store::Memory).await;
}

#[tokio::test]
async fn two_concurrent_enrollments_through_one_invitation_have_one_winner_on_redis() {
    if let Some(store) = Store::redis("invitation race") {
        race_one_invitation(store).await;
    }
}

#[tokio::test]
async fn an_expired_or_replaced_invitation_does_nothing() {
    let env = env("invite").await;
    env.add_user("exa", &["contractor"]).await;
    let old = env.invite("exa").await;
    let new = env.invite("exa").await;
    assert_eq!(
        env.browser().get(&old).await.status,
        StatusCode::BAD_REQUEST,
        "replaced"
    );
    env.gw.clock.advance(7 * 86_400 + 1);
    assert_eq!(
        env.browser().get(&new).await.status,
        StatusCode::BAD_REQUEST,
        "expired"
    );
}

#[tokio::test]
async fn a_user_created_without_a_password_chooses_one_through_the_mailed_invitation() {
    let env = env("invite").await;
    let r = env
        .admin(
            Method::POST,
            "/api/v1/users",
            Some(serde_json::json!({"username": "nina", "email": "nina@example.com", "roles": ["contractor"]})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    assert!(
        r.json().get("password").is_none(),
        "no password is generated"
    );
    assert_eq!(r.json()["mailed"], true);
    let link = r.json()["enrollment_url"].as_str().unwrap().to_owned();
    let mail = env.smtp.next_message(Duration::from_secs(5)).await.unwrap();
    assert!(mail.body().contains(&link));
    // Without the link there is no way in (no password at all).
    let mut x = env.browser();
    assert_eq!(
        password_step(&mut x, "/normal", "nina", "").await.status,
        StatusCode::UNAUTHORIZED
    );
    let path = env.local(&link);
    let mut b = env.browser();
    let form = b.get(&path).await;
    assert!(form.text().contains("name=\"new_password\""));
    let fields = login_form(&mut b, &path).await;
    let mut base: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
    base.push(("username", "nina"));
    let mut short = base.clone();
    short.extend([("new_password", "short"), ("confirm_password", "short")]);
    let r = b.post("/normal", &short).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(
        r.text()
            .contains("Choose a password of at least 8 characters."),
        "{}",
        r.text()
    );
    let fields = login_form(&mut b, &path).await;
    let mut good: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
    good.extend([
        ("username", "nina"),
        ("new_password", "a long new password"),
        ("confirm_password", "a long new password"),
    ]);
    let r = b.post("/normal", &good).await;
    assert!(
        r.header("location").unwrap().ends_with("/mfa/enroll"),
        "{}",
        r.text()
    );
    let seed = enrollment_seed(&mut b).await;
    assert_eq!(
        confirm_enrollment(&mut b, &env.code(&seed)).await.status,
        StatusCode::OK
    );
    // The chosen password and the new factor sign in from now on.
    env.gw.clock.advance(30);
    let mut c = env.browser();
    password_step(&mut c, "/normal", "nina", "a long new password").await;
    assert_eq!(
        submit_code(&mut c, &env.code(&seed)).await.status,
        StatusCode::FOUND
    );
}

// Illegal transitions of the table in auth::native.
#[tokio::test]
async fn steps_reached_out_of_order_are_refused_and_leave_the_login_as_it_was() {
    let env = env("first_login").await;
    let seed = env.add_enrolled("ord").await;
    env.add_user("newbie", &["contractor"]).await;
    // A challenge login posting to enrollment.
    let mut b = env.browser();
    password_step(&mut b, "/normal", "ord", PW).await;
    let (_, csrf) = mfa_csrf(&mut b, "/_portcullis/mfa").await;
    for step in ["/_portcullis/mfa/enroll"] {
        let r = b
            .post(step, &[("code", &env.code(&seed)), ("csrf_token", &csrf)])
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{step}");
    }
    assert_eq!(
        submit_code(&mut b, &env.code(&seed)).await.status,
        StatusCode::FOUND,
        "intact"
    );
    // After the login ended, none of its steps answers.
    env.gw.clock.advance(30);
    for step in [
        "/_portcullis/mfa",
        "/_portcullis/mfa/enroll",
        "/_portcullis/mfa/email",
    ] {
        let r = b
            .post(step, &[("code", &env.code(&seed)), ("csrf_token", &csrf)])
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{step} after the end");
    }
    // An enrollment login posting a code to the challenge, or asking for an email code.
    let mut n = env.browser();
    password_step(&mut n, "/normal", "newbie", PW).await;
    let page = n.get("/_portcullis/mfa/enroll").await;
    let csrf = input_value(&page.text(), "csrf_token").unwrap();
    let own = seed_of(&element_text(&page.text(), "totp-uri").unwrap());
    for step in ["/_portcullis/mfa", "/_portcullis/mfa/email"] {
        let r = n
            .post(step, &[("code", &env.code(&own)), ("csrf_token", &csrf)])
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{step}");
    }
    assert!(env
        .smtp
        .next_message(Duration::from_millis(300))
        .await
        .is_none());
    assert_eq!(
        confirm_enrollment(&mut n, &env.code(&own)).await.status,
        StatusCode::OK
    );
    // No pending login at all.
    let mut none = env.browser();
    for step in ["/_portcullis/mfa", "/_portcullis/mfa/enroll"] {
        assert_eq!(none.get(step).await.status, StatusCode::BAD_REQUEST);
    }
}

/// Two requests at once; returns how many got a session cookie.
async fn sessions_made(a: Resp, b: Resp) -> usize {
    [a, b]
        .iter()
        .filter(|r| {
            r.headers
                .get_all("set-cookie")
                .iter()
                .any(|c| c.to_str().unwrap().starts_with("portcullis="))
        })
        .count()
}

/// The single-use things of the native login, each used twice at once.
async fn race_single_use(store: Store) {
    let env = LoginEnv::start(LoginOpts {
        store,
        max_failures: 10,
        ..Default::default()
    })
    .await;
    let seed = env.add_enrolled("racer").await;
    // One TOTP code, two pending logins.
    let (mut a, mut b) = (env.browser(), env.browser());
    password_step(&mut a, "/normal", "racer", PW).await;
    password_step(&mut b, "/normal", "racer", PW).await;
    let code = env.code(&seed);
    let (ra, rb) = tokio::join!(submit_code(&mut a, &code), submit_code(&mut b, &code));
    assert_eq!(sessions_made(ra, rb).await, 1, "totp step");
    // One recovery code, two pending logins.
    env.gw.clock.advance(30);
    let codes = env
        .acc()
        .issue_recovery_codes("native:racer", 3, Duration::ZERO, env.gw.clock.now())
        .await
        .unwrap();
    let rc = codes[0].expose().to_owned();
    let (mut a, mut b) = (env.browser(), env.browser());
    password_step(&mut a, "/normal", "racer", PW).await;
    password_step(&mut b, "/normal", "racer", PW).await;
    let (ra, rb) = tokio::join!(submit_code(&mut a, &rc), submit_code(&mut b, &rc));
    assert_eq!(sessions_made(ra, rb).await, 1, "recovery code");
    // One email code, one pending login, two tabs.
    let mut a = env.browser();
    password_step(&mut a, "/normal", "racer", PW).await;
    let (_, csrf) = mfa_csrf(&mut a, "/_portcullis/mfa").await;
    a.post("/_portcullis/mfa/email", &[("csrf_token", &csrf)])
        .await;
    let mail = env.smtp.next_message(Duration::from_secs(5)).await.unwrap();
    let email_code = mail.code(8).unwrap();
    let mut b = Browser::new(&a.base);
    b.jar = a.jar.clone();
    let (ra, rb) = tokio::join!(
        submit_code(&mut a, &email_code),
        submit_code(&mut b, &email_code)
    );
    assert_eq!(sessions_made(ra, rb).await, 1, "email code");
    // One CSRF token of the password form, posted twice at once: one evaluation.
    let mut a = env.browser();
    let fields = login_form(&mut a, "/normal").await;
    let mut form: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
    form.push(("username", "racer"));
    form.push(("password", PW));
    let mut b = Browser::new(&a.base);
    b.jar = a.jar.clone();
    let (ra, rb) = tokio::join!(a.post("/normal", &form), b.post("/normal", &form));
    let statuses = [ra.status, rb.status];
    assert!(statuses.contains(&StatusCode::FOUND), "{statuses:?}");
    assert!(statuses.contains(&StatusCode::FORBIDDEN), "{statuses:?}");
    // One pending login finished by two different valid codes at once: one session.
    env.gw.clock.advance(30);
    let mut a = env.browser();
    password_step(&mut a, "/normal", "racer", PW).await;
    let mut b = Browser::new(&a.base);
    b.jar = a.jar.clone();
    let (c1, c2) = (env.code(&seed), codes[1].expose().to_owned());
    let (ra, rb) = tokio::join!(submit_code(&mut a, &c1), submit_code(&mut b, &c2));
    assert_eq!(sessions_made(ra, rb).await, 1, "pending login");
}

#[tokio::test]
async fn every_single_use_value_of_the_native_login_has_exactly_one_winner() {
    race_single_use(Store::Memory).await;
}

#[tokio::test]
async fn every_single_use_value_of_the_native_login_has_exactly_one_winner_on_redis() {
    if let Some(store) = Store::redis("single-use race") {
        race_single_use(store).await;
    }
}

// The TOTP replay guard across a code typed on the account page and at a login.
#[tokio::test]
async fn a_code_used_on_the_account_page_cannot_sign_in_again() {
    let env = env("invite").await;
    let seed = env.add_enrolled("acct").await;
    let mut a = env.browser();
    password_step(&mut a, "/normal", "acct", PW).await;
    submit_code(&mut a, &env.code(&seed)).await;
    env.gw.clock.advance(30);
    let page = a.get("/_portcullis/account").await;
    let csrf = input_value(&page.text(), "csrf_token").unwrap();
    let code = code_at(&seed, env.gw.clock.now());
    let r = a
        .post(
            "/_portcullis/account/recovery-codes",
            &[("csrf_token", &csrf), ("code", &code)],
        )
        .await;
    assert!(r.text().contains("Save your recovery codes"));
    let mut b = env.browser();
    password_step(&mut b, "/normal", "acct", PW).await;
    assert_eq!(
        submit_code(&mut b, &code).await.status,
        StatusCode::UNAUTHORIZED
    );
}
