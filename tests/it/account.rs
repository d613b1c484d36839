//! The account page: a user ends their other sessions, renews factors after a fresh second
//! factor, and forgets remembered devices.

use crate::support::browser::*;
use crate::support::*;
use hyper::StatusCode;
use portcullis::accounts::native_principal;
use portcullis::mfa::totp::code_at;
use portcullis::secret::{Password, TotpSeed};
use portcullis::storage::UserStore;

const PW: &str = "correct horse battery staple";

async fn start() -> TestGateway {
    TestGateway::start_with(
        "[roles.contractor]\ngroups = [\"c\"]\nrequire_mfa = true\nremember_mfa = \"7d\"\n\
[[routes]]\nprefix = \"/contract\"\nallow_roles = [\"contractor\"]\n\
[storage]\nurl = \"sqlite://users.db\"\n[native]\n",
        |_| {},
    )
    .await
}

async fn enrolled(gw: &TestGateway, name: &str) -> TotpSeed {
    let g = gw.gateway();
    let acc = g.accounts.as_ref().unwrap();
    acc.create_user(
        &g.config,
        name,
        None,
        vec!["contractor".into()],
        Some(Password::new(PW.into())),
        gw.clock.now(),
    )
    .await
    .unwrap();
    acc.enroll_totp_now(name, gw.clock.now()).await.unwrap().0
}

async fn login(gw: &TestGateway, name: &str, seed: &TotpSeed, remember: bool) -> Browser {
    let mut b = Browser::new(&format!("http://{}", gw.addr));
    let form = b.get("/normal").await;
    let csrf = input_value(&form.text(), "csrf_token").unwrap();
    let r = b
        .post(
            "/normal",
            &[
                ("username", name),
                ("password", PW),
                ("csrf_token", &csrf),
                ("rd", "/contract/"),
            ],
        )
        .await;
    if r.header("location")
        .is_some_and(|l| l.ends_with("/_portcullis/mfa"))
    {
        let page = b.get("/_portcullis/mfa").await;
        let csrf = input_value(&page.text(), "csrf_token").unwrap();
        let mut form = vec![
            ("code", code_at(seed, gw.clock.now())),
            ("csrf_token", csrf),
        ];
        if remember {
            form.push(("remember", "1".into()));
        }
        let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let r = b.post("/_portcullis/mfa", &form).await;
        assert_eq!(r.status, StatusCode::FOUND);
        gw.clock.advance(30);
    }
    b.user_agent = "Other/2.0".into();
    b
}

#[tokio::test]
async fn the_account_page_needs_a_session() {
    let gw = start().await;
    let mut b = Browser::new(&format!("http://{}", gw.addr));
    let r = b.get("/_portcullis/account").await;
    assert_eq!(r.status, StatusCode::FOUND);
    assert!(
        r.header("location")
            .unwrap()
            .contains("/normal?rd=%2F%5Fportcullis%2Faccount"),
        "{:?}",
        r.header("location")
    );
}

#[tokio::test]
async fn a_user_ends_their_other_sessions_from_the_account_page() {
    let gw = start().await;
    let seed = enrolled(&gw, "amy").await;
    let mut a = login(&gw, "amy", &seed, false).await;
    let mut b = login(&gw, "amy", &seed, false).await;
    assert_eq!(b.get("/contract/").await.status, StatusCode::OK);
    let page = a.get("/_portcullis/account").await;
    assert_eq!(page.status, StatusCode::OK);
    let html = page.text();
    assert!(html.contains("this device"));
    assert_eq!(
        html.matches("/account/sessions/end").count(),
        2,
        "one End button and 'sign out everywhere else'"
    );
    let csrf = input_value(&html, "csrf_token").unwrap();
    // Without the CSRF token nothing happens.
    assert_eq!(
        a.post("/_portcullis/account/sessions/end", &[("id", "others")])
            .await
            .status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(b.get("/contract/").await.status, StatusCode::OK);
    // Finding 14: a stolen cookie alone cannot evict the owner: a fresh factor is needed.
    for code in [None, Some("000000")] {
        let mut form = vec![("id", "others"), ("csrf_token", csrf.as_str())];
        form.extend(code.map(|c| ("code", c)));
        let r = a.post("/_portcullis/account/sessions/end", &form).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{code:?}");
        assert!(r.text().contains("That code is not valid"));
        assert_eq!(b.get("/contract/").await.status, StatusCode::OK, "{code:?}");
    }
    let code = code_at(&seed, gw.clock.now());
    let r = a
        .post(
            "/_portcullis/account/sessions/end",
            &[("id", "others"), ("csrf_token", &csrf), ("code", &code)],
        )
        .await;
    assert!(r.text().contains("Ended 1 other session"), "{}", r.text());
    assert_eq!(
        b.get("/contract/").await.status,
        StatusCode::FOUND,
        "the other session ended"
    );
    assert_eq!(
        a.get("/contract/").await.status,
        StatusCode::OK,
        "this one lives"
    );
}

#[tokio::test]
async fn new_recovery_codes_and_a_new_authenticator_need_a_fresh_second_factor() {
    let gw = start().await;
    let seed = enrolled(&gw, "ben").await;
    let acc = gw.gateway().accounts.as_ref().unwrap();
    let old = acc
        .issue_recovery_codes(
            &native_principal("ben"),
            10,
            std::time::Duration::ZERO,
            gw.clock.now(),
        )
        .await
        .unwrap();
    let mut a = login(&gw, "ben", &seed, false).await;
    let csrf = input_value(&a.get("/_portcullis/account").await.text(), "csrf_token").unwrap();
    let bad = a
        .post(
            "/_portcullis/account/recovery-codes",
            &[("code", "000000"), ("csrf_token", &csrf)],
        )
        .await;
    assert_eq!(bad.status, StatusCode::UNAUTHORIZED);
    let ok = a
        .post(
            "/_portcullis/account/recovery-codes",
            &[
                ("code", &code_at(&seed, gw.clock.now())),
                ("csrf_token", &csrf),
            ],
        )
        .await;
    assert_eq!(ok.status, StatusCode::OK);
    assert_eq!(ok.text().matches("<li><code>").count(), 10);
    let p = native_principal("ben");
    let hash = portcullis::mfa::recovery::hash_code(
        &portcullis::mfa::recovery::normalise(old[0].expose()).unwrap(),
    );
    assert_eq!(
        acc.users
            .consume_recovery_code(&p, &hash, gw.clock.now())
            .await
            .unwrap(),
        None,
        "old codes are dead"
    );
    // New authenticator: fresh code, then confirm with the new app.
    gw.clock.advance(30);
    let r = a
        .post(
            "/_portcullis/account/totp",
            &[
                ("code", &code_at(&seed, gw.clock.now())),
                ("csrf_token", &csrf),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let uri = element_text(&r.text(), "totp-uri").unwrap();
    assert!(r
        .text()
        .contains("action=\"/_portcullis/account/totp/confirm\""));
    let new_seed = seed_of(&uri);
    let wrong = a
        .post(
            "/_portcullis/account/totp/confirm",
            &[
                ("code", &code_at(&seed, gw.clock.now() + 60)),
                ("csrf_token", &csrf),
            ],
        )
        .await;
    assert_eq!(
        wrong.status,
        StatusCode::UNAUTHORIZED,
        "the old app's code does not confirm the new one"
    );
    let done = a
        .post(
            "/_portcullis/account/totp/confirm",
            &[
                ("code", &code_at(&new_seed, gw.clock.now())),
                ("csrf_token", &csrf),
            ],
        )
        .await;
    assert!(
        done.text().contains("Your new authenticator app is set up"),
        "{}",
        done.text()
    );
    gw.clock.advance(30);
    // The old seed no longer signs in; the new one does.
    let mut c = Browser::new(&format!("http://{}", gw.addr));
    let form = c.get("/normal").await;
    let t = input_value(&form.text(), "csrf_token").unwrap();
    c.post(
        "/normal",
        &[
            ("username", "ben"),
            ("password", PW),
            ("csrf_token", &t),
            ("rd", "/contract/"),
        ],
    )
    .await;
    let page = c.get("/_portcullis/mfa").await;
    let t = input_value(&page.text(), "csrf_token").unwrap();
    assert_eq!(
        c.post(
            "/_portcullis/mfa",
            &[
                ("code", &code_at(&seed, gw.clock.now())),
                ("csrf_token", &t)
            ]
        )
        .await
        .status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        c.post(
            "/_portcullis/mfa",
            &[
                ("code", &code_at(&new_seed, gw.clock.now())),
                ("csrf_token", &t)
            ]
        )
        .await
        .status,
        StatusCode::FOUND
    );
}

#[tokio::test]
async fn forgetting_remembered_devices_brings_the_challenge_back() {
    let gw = start().await;
    let seed = enrolled(&gw, "cleo").await;
    let mut a = login(&gw, "cleo", &seed, true).await;
    assert!(a.jar.contains_key("portcullis-device"));
    let page = a.get("/_portcullis/account").await.text();
    assert!(page.contains("Forget all devices"));
    let csrf = input_value(&page, "csrf_token").unwrap();
    let r = a
        .post(
            "/_portcullis/account/devices/forget",
            &[("id", "all"), ("csrf_token", &csrf)],
        )
        .await;
    assert!(r.text().contains("No device is remembered"));
    a.logout().await;
    let form = a.get("/normal").await;
    let t = input_value(&form.text(), "csrf_token").unwrap();
    let r = a
        .post(
            "/normal",
            &[
                ("username", "cleo"),
                ("password", PW),
                ("csrf_token", &t),
                ("rd", "/contract/"),
            ],
        )
        .await;
    assert!(
        r.header("location").unwrap().ends_with("/_portcullis/mfa"),
        "challenged again"
    );
}

#[tokio::test]
async fn guessing_codes_on_the_account_page_hits_the_lockout() {
    let gw = start().await;
    let seed = enrolled(&gw, "gus").await;
    let mut a = login(&gw, "gus", &seed, false).await;
    let csrf = input_value(&a.get("/_portcullis/account").await.text(), "csrf_token").unwrap();
    // Default lockout: 5 failures per user name.
    for _ in 0..5 {
        let r = a
            .post(
                "/_portcullis/account/recovery-codes",
                &[("code", "111111"), ("csrf_token", &csrf)],
            )
            .await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    }
    gw.clock.advance(30);
    let r = a
        .post(
            "/_portcullis/account/recovery-codes",
            &[
                ("code", &code_at(&seed, gw.clock.now())),
                ("csrf_token", &csrf),
            ],
        )
        .await;
    assert_eq!(
        r.status,
        StatusCode::UNAUTHORIZED,
        "the right code is refused while locked"
    );
    assert!(r.text().contains("Too many failed attempts"));
    assert_eq!(r.text().matches("<li><code>").count(), 0, "no codes issued");
}
