//! Passkeys in a real browser (headless Chromium with the WebDriver virtual authenticator, W3C
//! WebAuthn §11: CTAP2, internal transport, resident keys, user verification): registered at
//! enrollment, used as the second factor and for the passkey sign-in, refused from an
//! authenticator without the credential, removed on the account page; a role limited to
//! passkeys refusing a TOTP code. Skips without Chromium (fails under CI).

use super::{memory, Env};
use crate::support::login::PW;
use crate::support::webdriver::{available, ChromeDriver, WebDriver};
use serde_json::json;
use std::time::{Duration, Instant};

async fn sign_in(wd: &WebDriver, user: &str) {
    wd.fill("#username", user).await;
    wd.fill("#password", PW).await;
    let button = wd.find("button[type=submit]").await;
    wd.click(&button).await;
}

/// Waits until the script has shown the passkey button `id` (WebAuthn found), then clicks it.
async fn press(wd: &WebDriver, id: &str) {
    let deadline = Instant::now() + Duration::from_secs(15);
    let script = format!("var b = document.getElementById('{id}'); return !!b && !b.hidden;");
    while wd.execute(&script, json!([])).await != json!(true) {
        assert!(
            Instant::now() < deadline,
            "#{id} never shown: {}",
            wd.source().await
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let b = wd.find(&format!("#{id}")).await;
    wd.click(&b).await;
}

async fn sign_out(wd: &WebDriver, env: &Env) {
    wd.goto(&format!("{}/_portcullis/logout", env.origin)).await;
    let confirm = wd.find("#logout-confirm").await;
    wd.click(&confirm).await;
    wd.wait_for_text("You are signed out").await;
}

/// The upstream saw `x-auth-mfa: webauthn` (and the native method) on the current page.
async fn upstream_saw_webauthn(wd: &WebDriver) {
    let app = wd.source().await;
    assert!(app.contains("[\"x-auth-mfa\",\"webauthn\"]"), "{app}");
    assert!(app.contains("[\"x-auth-method\",\"native\"]"), "{app}");
}

#[tokio::test]
async fn in_chromium_a_passkey_is_registered_used_signed_in_with_refused_elsewhere_and_removed() {
    if !available() {
        return;
    }
    let env = Env::start(memory()).await;
    env.add_user("nina", &["contractor"]).await;
    let driver = ChromeDriver::start().await;
    let wd = driver.session().await;
    let auth = wd.add_virtual_authenticator().await;
    let home = format!("{}/normal?rd=%2Fcontract%2Fhome", env.origin);
    wd.goto(&home).await;
    sign_in(&wd, "nina").await;
    wd.wait_for_url(|u| u.ends_with("/_portcullis/mfa/enroll"))
        .await;
    wd.set_window_size(1200, 1100).await;
    wd.screenshot("passkey-enroll-1200").await;
    press(&wd, "webauthn-register").await;
    let codes = wd.wait_for_all("#recovery-codes li").await;
    let code = wd.text(&codes[0]).await;
    assert_eq!(
        wd.authenticator_credentials(&auth).await.len(),
        1,
        "one resident key"
    );
    let next = wd.find("a.button").await;
    wd.click(&next).await;
    wd.wait_for_url(|u| u.ends_with("/contract/home")).await;
    upstream_saw_webauthn(&wd).await;

    // The second factor at a later sign-in.
    sign_out(&wd, &env).await;
    wd.goto(&home).await;
    sign_in(&wd, "nina").await;
    wd.wait_for_url(|u| u.ends_with("/_portcullis/mfa")).await;
    wd.set_window_size(1200, 900).await;
    wd.wait_for_all("#webauthn-login").await;
    wd.screenshot("passkey-challenge-1200").await;
    wd.set_window_size(390, 844).await;
    wd.screenshot("passkey-challenge-390").await;
    let wide = wd
        .execute(
            "return [...document.querySelectorAll('body *')].filter(e => \
             e.getBoundingClientRect().right > document.documentElement.clientWidth + 1).length",
            json!([]),
        )
        .await;
    assert_eq!(wide, json!(0), "nothing wider than a phone");
    wd.set_window_size(1200, 900).await;
    press(&wd, "webauthn-login").await;
    wd.wait_for_url(|u| u.ends_with("/contract/home")).await;
    upstream_saw_webauthn(&wd).await;

    // The passkey sign-in: one ceremony from /normal, no password.
    sign_out(&wd, &env).await;
    wd.goto(&home).await;
    press(&wd, "passkey-signin").await;
    wd.wait_for_url(|u| u.ends_with("/contract/home")).await;
    upstream_saw_webauthn(&wd).await;

    // Another browser whose authenticator lacks the credential cannot pass; the page says so.
    let other = driver.session().await;
    other.add_virtual_authenticator().await;
    other.goto(&home).await;
    sign_in(&other, "nina").await;
    other
        .wait_for_url(|u| u.ends_with("/_portcullis/mfa"))
        .await;
    press(&other, "webauthn-login").await;
    let alert = other
        .wait_for_all("#webauthn-login-alert:not([hidden])")
        .await;
    assert!(!other.text(&alert[0]).await.is_empty());
    assert!(other.current_url().await.ends_with("/_portcullis/mfa"));
    other.quit().await;

    // Removed on the account page (with a fresh code): the challenge no longer offers it.
    wd.goto(&format!("{}/_portcullis/account", env.origin))
        .await;
    wd.wait_for_text("Passkeys").await;
    wd.fill("#code-remove-0", &code).await;
    let remove = wd.find("#remove-passkey-0").await;
    wd.click(&remove).await;
    wd.wait_for_text("The passkey was removed").await;
    sign_out(&wd, &env).await;
    wd.goto(&home).await;
    sign_in(&wd, "nina").await;
    wd.wait_for_url(|u| u.ends_with("/_portcullis/mfa")).await;
    let offered = wd
        .execute(
            "return document.getElementById('webauthn-login') !== null",
            json!([]),
        )
        .await;
    assert_eq!(offered, json!(false));
    wd.quit().await;
}

#[tokio::test]
async fn in_chromium_a_role_limited_to_passkeys_enrolls_one_and_refuses_a_totp_code() {
    if !available() {
        return;
    }
    let env = Env::start(memory()).await;
    env.add_user("kim", &["keyonly"]).await;
    let acc = env.gw.gateway().accounts.as_ref().unwrap();
    let (seed, _) = acc
        .enroll_totp_now("kim", env.gw.clock.now())
        .await
        .unwrap();
    let driver = ChromeDriver::start().await;
    let wd = driver.session().await;
    wd.add_virtual_authenticator().await;
    let home = format!("{}/normal?rd=%2Fcontract%2Fhome", env.origin);
    wd.goto(&home).await;
    sign_in(&wd, "kim").await;
    wd.wait_for_url(|u| u.ends_with("/_portcullis/mfa/enroll"))
        .await;
    let app_offered = wd
        .execute(
            "return document.getElementById('totp-uri') !== null",
            json!([]),
        )
        .await;
    assert_eq!(app_offered, json!(false), "only a passkey is offered");
    press(&wd, "webauthn-register").await;
    wd.wait_for_text("Your passkey is set up").await;
    sign_out(&wd, &env).await;
    wd.goto(&home).await;
    sign_in(&wd, "kim").await;
    wd.wait_for_url(|u| u.ends_with("/_portcullis/mfa")).await;
    let field = wd
        .execute("return document.getElementById('code') !== null", json!([]))
        .await;
    assert_eq!(field, json!(false), "no code field for this role");
    // A code posted anyway (a form built in the page) is refused.
    env.gw.clock.advance(60);
    let code = portcullis::mfa::totp::code_at(&seed, env.gw.clock.now());
    wd.execute(
        "var f = document.createElement('form'); f.method = 'post'; f.action = arguments[0];\
         var add = function (n, v) { var i = document.createElement('input'); i.type = 'hidden';\
         i.name = n; i.value = v; f.appendChild(i); };\
         add('csrf_token', document.querySelector('input[name=csrf_token]').value);\
         add('code', arguments[1]); document.body.appendChild(f); f.submit(); return true;",
        json!(["/_portcullis/mfa", code]),
    )
    .await;
    wd.wait_for_text("That kind of code is not accepted").await;
    press(&wd, "webauthn-login").await;
    wd.wait_for_url(|u| u.ends_with("/contract/home")).await;
    upstream_saw_webauthn(&wd).await;
    wd.quit().await;
}
