//! The sign-in pages in a real browser (headless Chromium through chromedriver), their
//! screenshots under `target/screenshots/`, and, over plain HTTP, the security headers and
//! an accessibility check of every page. Browser tests skip when Chromium is not installed.

use crate::support::browser::{input_value, seed_of, Browser};
use crate::support::oidc_provider::{TestOp, CLIENT_ID, CLIENT_SECRET};
use crate::support::webdriver::{available, ChromeDriver, WebDriver};
use crate::support::*;
use hyper::StatusCode;
use portcullis::mfa::totp::code_at;
use portcullis::secret::{Password, TotpSeed};
use serde_json::json;
use std::time::{Duration, Instant};

const PW: &str = "correct horse battery staple";

const NATIVE: &str = r#"
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

[mfa]
issuer = "Test Helpdesk"
methods = ["totp", "recovery_code"]
recovery_codes = { count = 10, ttl = "30d" }

[branding]
product_name = "Acme Support"
"#;

fn idp_toml(id: &str, name: &str, op: &TestOp) -> String {
    format!(
        r#"
[[idp]]
id = "{id}"
kind = "oidc"
display_name = "{name}"
issuer = "{issuer}"
client_id = "{CLIENT_ID}"
client_secret = "{CLIENT_SECRET}"
mfa_evidence = {{ amr_any = ["mfa", "hwk"] }}
http_timeout = "1s"
"#,
        issuer = op.issuer
    )
}

async fn native_gateway() -> TestGateway {
    TestGateway::start_with(NATIVE, |_| {}).await
}

async fn add_user(gw: &TestGateway, name: &str) {
    let g = gw.gateway();
    g.accounts
        .as_ref()
        .unwrap()
        .create_user(
            &g.config,
            name,
            None,
            vec!["contractor".into()],
            Some(Password::new(PW.into())),
            gw.clock.now(),
        )
        .await
        .unwrap();
}

async fn add_enrolled(gw: &TestGateway, name: &str) -> TotpSeed {
    add_user(gw, name).await;
    let acc = gw.gateway().accounts.as_ref().unwrap();
    acc.enroll_totp_now(name, gw.clock.now()).await.unwrap().0
}

/// Two test OPs (`corp`, the default relay, and `partner`) in front of the gateway.
struct OidcEnv {
    gw: TestGateway,
    ops: (TestOp, TestOp),
}

async fn oidc_gateway() -> OidcEnv {
    let corp = TestOp::start(portcullis::clock::Clock::manual(1_800_000_000)).await;
    let partner = TestOp::start(portcullis::clock::Clock::manual(1_800_000_000)).await;
    let toml = format!(
        "\n[storage]\nurl = \"sqlite://users.db\"\n{}{}",
        idp_toml("corp", "Corp SSO", &corp),
        idp_toml("partner", "Partner portal", &partner)
    );
    let gw = TestGateway::start_with(&toml, |_| {}).await;
    for op in [&corp, &partner] {
        let clock = gw.clock.clone();
        op.with(|s| s.clock = clock);
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while !gw.gateway().oidc.ready() {
        assert!(Instant::now() < deadline, "oidc providers never loaded");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    OidcEnv {
        gw,
        ops: (corp, partner),
    }
}

/// Fills the password form on the current page and submits it.
async fn sign_in(wd: &WebDriver, user: &str) {
    wd.fill("#username", user).await;
    wd.fill("#password", PW).await;
    let button = wd.find("button[type=submit]").await;
    wd.click(&button).await;
}

/// Types a code into `#code` and submits its form.
async fn submit_code(wd: &WebDriver, code: &str) {
    wd.fill("#code", code).await;
    let button = wd.find("#code ~ button[type=submit]").await;
    wd.click(&button).await;
}

async fn body_text(wd: &WebDriver) -> String {
    wd.text(&wd.find("body").await).await
}

#[tokio::test]
async fn a_contractor_enrolls_totp_sees_recovery_codes_and_signs_in_again_with_a_code() {
    if !available() {
        return;
    }
    let gw = native_gateway().await;
    add_user(&gw, "nico").await;
    let driver = ChromeDriver::start().await;
    let wd = driver.session().await;
    wd.goto(&gw.url("/normal?rd=%2Fcontract%2Fhome")).await;
    assert_eq!(
        wd.execute("return document.title", json!([])).await,
        "Sign in · Acme Support"
    );
    wd.screenshot("login").await;
    // The same page at phone width.
    wd.set_window_size(390, 844).await;
    wd.screenshot("login-phone").await;
    wd.set_window_size(1200, 900).await;
    sign_in(&wd, "nico").await;
    wd.wait_for_url(|u| u.ends_with("/_portcullis/mfa/enroll"))
        .await;
    // Tall enough for the whole enrollment page.
    wd.set_window_size(1200, 1100).await;
    wd.screenshot("enroll").await;
    // The URI sits in a closed <details>; textContent reads it without opening it.
    let uri = wd
        .execute(
            "return document.getElementById('totp-uri').textContent",
            json!([]),
        )
        .await;
    let uri = uri.as_str().unwrap();
    assert!(
        uri.starts_with("otpauth://totp/Test%20Helpdesk:nico?secret="),
        "{uri}"
    );
    let seed = seed_of(uri);
    // A wrong code first: a clear message in an alert region, still on the enrollment page.
    submit_code(&wd, "000000").await;
    let alert = wd.wait_for_all("[role=alert]").await.remove(0);
    assert_eq!(
        wd.text(&alert).await,
        "That code is not valid. Check it and try again."
    );
    wd.screenshot("enroll-wrong-code").await;
    submit_code(&wd, &code_at(&seed, gw.clock.now())).await;
    let codes = wd.wait_for_all("#recovery-codes li").await;
    assert_eq!(codes.len(), 10, "ten recovery codes shown once");
    assert_eq!(
        wd.text(&codes[0]).await.len(),
        wd.text(&codes[9]).await.len()
    );
    wd.screenshot("recovery-codes").await;
    let next = wd.find("a.button").await;
    wd.click(&next).await;
    wd.wait_for_url(|u| u.ends_with("/contract/home")).await;
    let app = wd.source().await;
    assert!(app.contains("\"path\":\"/contract/home\""), "{app}");
    // Log out, then sign in again: now a challenge, answered with a fresh code.
    wd.goto(&gw.url("/_portcullis/logout")).await;
    wd.screenshot("sign-out").await;
    let confirm = wd.find("#logout-confirm").await;
    wd.click(&confirm).await;
    wd.wait_for_text("You are signed out").await;
    wd.screenshot("signed-out").await;
    gw.clock.advance(30);
    wd.goto(&gw.url("/contract/home")).await;
    wd.wait_for_url(|u| u.contains("/normal?rd=")).await;
    sign_in(&wd, "nico").await;
    wd.wait_for_url(|u| u.ends_with("/_portcullis/mfa")).await;
    wd.screenshot("challenge").await;
    submit_code(&wd, "123456").await;
    // A wrong code says so.
    wd.wait_for_text("That code is not valid. Check it and try again.")
        .await;
    assert_eq!(
        wd.attribute(&wd.find("#code").await, "aria-invalid")
            .await
            .as_deref(),
        Some("true")
    );
    wd.screenshot("challenge-wrong-code").await;
    submit_code(&wd, &code_at(&seed, gw.clock.now())).await;
    wd.wait_for_url(|u| u.ends_with("/contract/home")).await;
    assert!(wd.source().await.contains("\"path\":\"/contract/home\""));
    wd.quit().await;
    gw.stop().await;
}

#[tokio::test]
async fn a_staff_member_is_relayed_to_the_oidc_provider_and_back_to_the_page_asked_for() {
    if !available() {
        return;
    }
    let env = oidc_gateway().await;
    let driver = ChromeDriver::start().await;
    let wd = driver.session().await;
    wd.goto(&env.gw.url("/agent/tickets?id=7")).await;
    let at = wd.wait_for_url(|u| u.contains("/agent/tickets")).await;
    assert_eq!(at, env.gw.url("/agent/tickets?id=7"));
    let app = wd.source().await;
    assert!(app.contains("\"path\":\"/agent/tickets\""), "{app}");
    assert!(app.contains("sam.staff"), "{app}");
    let asked = env.ops.0.with(|s| s.last_authorize_query.clone());
    assert!(
        asked.is_some_and(|q| q.contains("response_type=code")),
        "the browser went through the OP"
    );
    // The chooser, from a second browser, picks an IdP and lands on the return path.
    let other = driver.session().await;
    other
        .goto(&env.gw.url("/_portcullis/login?rd=%2Fagent%2Fqueue"))
        .await;
    let text = body_text(&other).await;
    assert!(
        text.contains("Sign in with Corp SSO") && text.contains("Sign in with Partner portal"),
        "{text}"
    );
    other.screenshot("chooser").await;
    let corp = other.find("ul.choices li:first-child a").await;
    assert_eq!(other.text(&corp).await, "Sign in with Corp SSO");
    other.click(&corp).await;
    let at = other.wait_for_url(|u| u.contains("/agent/queue")).await;
    assert_eq!(at, env.gw.url("/agent/queue"));
    assert!(other.source().await.contains("sam.staff"));
    // An expired or forged login attempt: an error page with a reference.
    other
        .goto(
            &env.gw
                .url("/_portcullis/oidc/corp/callback?code=forged&state=AAAAAAAAAAAAAAAAAAAAAAAA"),
        )
        .await;
    let reference = other.find("#correlation-id").await;
    assert!(!other.text(&reference).await.is_empty());
    assert!(!other.find_all("[role=alert]").await.is_empty());
    other.screenshot("error").await;
    other.quit().await;
    wd.quit().await;
    env.gw.stop().await;
}

#[tokio::test]
async fn the_account_page_ends_another_session() {
    if !available() {
        return;
    }
    let gw = native_gateway().await;
    let seed = add_enrolled(&gw, "amy").await;
    // The other session: a plain HTTP client signing in the same way.
    let mut elsewhere = Browser::new(&format!("http://{}", gw.addr));
    let form = elsewhere.get("/normal").await;
    let csrf = input_value(&form.text(), "csrf_token").unwrap();
    elsewhere
        .post(
            "/normal",
            &[
                ("username", "amy"),
                ("password", PW),
                ("csrf_token", &csrf),
                ("rd", "/contract/"),
            ],
        )
        .await;
    let page = elsewhere.get("/_portcullis/mfa").await;
    let csrf = input_value(&page.text(), "csrf_token").unwrap();
    let r = elsewhere
        .post(
            "/_portcullis/mfa",
            &[
                ("code", &code_at(&seed, gw.clock.now())),
                ("csrf_token", &csrf),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::FOUND);
    assert_eq!(elsewhere.get("/contract/").await.status, StatusCode::OK);
    gw.clock.advance(30);
    let driver = ChromeDriver::start().await;
    let wd = driver.session().await;
    wd.goto(&gw.url("/_portcullis/account")).await;
    wd.wait_for_url(|u| u.contains("/normal?rd=")).await;
    sign_in(&wd, "amy").await;
    wd.wait_for_url(|u| u.ends_with("/_portcullis/mfa")).await;
    submit_code(&wd, &code_at(&seed, gw.clock.now())).await;
    wd.wait_for_url(|u| u.ends_with("/_portcullis/account"))
        .await;
    wd.wait_for_text("this device").await;
    wd.screenshot("account").await;
    // Ending other sessions asks for a fresh code.
    gw.clock.advance(30);
    wd.fill(
        "form[action$=\"/account/sessions/end\"]:has(input[value=others]) input[name=code]",
        &code_at(&seed, gw.clock.now()),
    )
    .await;
    let everywhere = wd
        .find("form[action$=\"/account/sessions/end\"]:has(input[value=others]) button")
        .await;
    wd.click(&everywhere).await;
    wd.wait_for_text("Ended 1 other session.").await;
    wd.screenshot("account-ended").await;
    assert_eq!(
        elsewhere.get("/contract/").await.status,
        StatusCode::FOUND,
        "the other session ended"
    );
    wd.goto(&gw.url("/contract/")).await;
    assert!(
        wd.source().await.contains("\"path\":\"/contract/\""),
        "this one lives"
    );
    wd.quit().await;
    gw.stop().await;
}

/// Every page a person can meet, fetched over plain HTTP: (name, response).
async fn all_pages() -> Vec<(&'static str, Resp)> {
    let mut pages = Vec::new();
    let gw = native_gateway().await;
    add_user(&gw, "pia").await;
    let mut b = Browser::new(&format!("http://{}", gw.addr));
    let login = b.get("/normal").await;
    let csrf = input_value(&login.text(), "csrf_token").unwrap();
    let wrong = b
        .post(
            "/normal",
            &[
                ("username", "pia"),
                ("password", "nope"),
                ("csrf_token", &csrf),
                ("rd", "/contract/"),
            ],
        )
        .await;
    let csrf = input_value(&wrong.text(), "csrf_token").unwrap();
    pages.push(("login", login));
    pages.push(("login-error", wrong));
    b.post(
        "/normal",
        &[
            ("username", "pia"),
            ("password", PW),
            ("csrf_token", &csrf),
            ("rd", "/contract/"),
        ],
    )
    .await;
    let enroll = b.get("/_portcullis/mfa/enroll").await;
    let html = enroll.text();
    let csrf = input_value(&html, "csrf_token").unwrap();
    let uri = crate::support::browser::element_text(&html, "totp-uri").unwrap();
    let seed = seed_of(&uri);
    pages.push(("enroll", enroll));
    let bad = b
        .post(
            "/_portcullis/mfa/enroll",
            &[("code", "000000"), ("csrf_token", &csrf)],
        )
        .await;
    pages.push(("enroll-error", bad));
    let codes = b
        .post(
            "/_portcullis/mfa/enroll",
            &[
                ("code", &code_at(&seed, gw.clock.now())),
                ("csrf_token", &csrf),
            ],
        )
        .await;
    pages.push(("recovery-codes", codes));
    pages.push(("account", b.get("/_portcullis/account").await));
    pages.push(("signed-out", b.logout().await));
    gw.clock.advance(30);
    let form = b.get("/normal").await;
    let csrf = input_value(&form.text(), "csrf_token").unwrap();
    b.post(
        "/normal",
        &[
            ("username", "pia"),
            ("password", PW),
            ("csrf_token", &csrf),
            ("rd", "/contract/"),
        ],
    )
    .await;
    let challenge = b.get("/_portcullis/mfa").await;
    let csrf = input_value(&challenge.text(), "csrf_token").unwrap();
    pages.push(("challenge", challenge));
    let bad = b
        .post(
            "/_portcullis/mfa",
            &[("code", "123456"), ("csrf_token", &csrf)],
        )
        .await;
    pages.push(("challenge-error", bad));
    gw.stop().await;
    let env = oidc_gateway().await;
    let mut b = Browser::new(&format!("http://{}", env.gw.addr));
    pages.push(("chooser", b.get("/_portcullis/login?rd=%2Fagent").await));
    pages.push((
        "error",
        b.get("/_portcullis/oidc/corp/callback?code=forged&state=AAAAAAAAAAAAAAAAAAAAAAAA")
            .await,
    ));
    env.gw.stop().await;
    pages
}

#[tokio::test]
async fn every_page_is_served_with_the_security_headers() {
    for (name, r) in all_pages().await {
        let expected = match name {
            "login-error" | "enroll-error" | "challenge-error" => StatusCode::UNAUTHORIZED,
            "error" => StatusCode::BAD_REQUEST,
            _ => StatusCode::OK,
        };
        assert_eq!(r.status, expected, "{name}");
        assert_eq!(
            r.header("content-type"),
            Some("text/html; charset=utf-8"),
            "{name}"
        );
        assert_eq!(
            r.header("content-security-policy"),
            Some(
                "default-src 'none'; script-src 'self'; connect-src 'self'; style-src 'self'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
            ),
            "{name}"
        );
        assert_eq!(r.header("x-frame-options"), Some("DENY"), "{name}");
        assert_eq!(r.header("cache-control"), Some("no-store"), "{name}");
        assert_eq!(
            r.header("x-content-type-options"),
            Some("nosniff"),
            "{name}"
        );
        assert_eq!(r.header("referrer-policy"), Some("same-origin"), "{name}");
    }
}

#[tokio::test]
async fn every_page_passes_the_accessibility_rules() {
    for (name, r) in all_pages().await {
        let problems = accessibility_problems(&r.text());
        assert!(problems.is_empty(), "{name}: {problems:#?}\n{}", r.text());
    }
}

#[test]
fn the_accessibility_rules_catch_the_usual_mistakes() {
    let bad = "<html><head></head><body><h1>A</h1><h1>B</h1>\
<input id=\"x\" name=\"x\"><button></button><img src=\"l\"><svg width=\"9\"></svg>\
<div class=\"error\">oops</div><a tabindex=\"2\" href=\"/\">x</a></body></html>";
    assert_eq!(
        accessibility_problems(bad),
        vec![
            "<html> has no lang".to_owned(),
            "no <title>".to_owned(),
            "2 <h1> elements, want 1".to_owned(),
            "input \"x\" has no label".to_owned(),
            "a button has no text".to_owned(),
            "an image has no alt".to_owned(),
            "an svg is neither named nor hidden".to_owned(),
            "an error region lacks role=\"alert\"".to_owned(),
            "positive tabindex 2".to_owned(),
        ]
    );
}

/// The start tags named `tag` in `html` (the text between `<tag` and the next `>`).
fn tags<'a>(html: &'a str, tag: &str) -> Vec<&'a str> {
    let open = format!("<{tag}");
    let mut out = Vec::new();
    let mut rest = html;
    while let Some(i) = rest.find(&open) {
        let after = &rest[i + open.len()..];
        let boundary = after.chars().next().is_some_and(|c| c == ' ' || c == '>');
        let end = after.find('>').unwrap_or(after.len());
        if boundary {
            out.push(&after[..end]);
        }
        rest = &after[end..];
    }
    out
}

/// The value of `name="..."` inside a start tag.
fn attr(tag: &str, name: &str) -> Option<String> {
    let marker = format!(" {name}=\"");
    let start = tag.find(&marker)? + marker.len();
    let end = tag[start..].find('"')? + start;
    Some(tag[start..end].to_owned())
}

fn has_flag(tag: &str, name: &str) -> bool {
    tag.split([' ', '>']).any(|w| w == name) || attr(tag, name).is_some()
}

/// Rules in the spirit of axe-core's serious ones, checked over the served HTML.
fn accessibility_problems(html: &str) -> Vec<String> {
    let mut problems = Vec::new();
    if tags(html, "html")
        .first()
        .and_then(|t| attr(t, "lang"))
        .is_none_or(|l| l.is_empty())
    {
        problems.push("<html> has no lang".to_owned());
    }
    let title = html
        .split_once("<title>")
        .and_then(|(_, t)| t.split_once("</title>"))
        .map(|(t, _)| t.trim().to_owned());
    if title.is_none_or(|t| t.is_empty()) {
        problems.push("no <title>".to_owned());
    }
    let h1 = tags(html, "h1").len();
    if h1 != 1 {
        problems.push(format!("{h1} <h1> elements, want 1"));
    }
    for input in tags(html, "input") {
        if attr(input, "type").as_deref() == Some("hidden") || has_flag(input, "aria-label") {
            continue;
        }
        let labelled = attr(input, "id").is_some_and(|id| {
            tags(html, "label")
                .iter()
                .any(|l| attr(l, "for").as_deref() == Some(id.as_str()))
        });
        if !labelled {
            problems.push(format!(
                "input {:?} has no label",
                attr(input, "name").unwrap_or_default()
            ));
        }
    }
    for (_, rest) in html.match_indices("<button").map(|(i, _)| html.split_at(i)) {
        let inner = rest
            .split_once('>')
            .and_then(|(_, r)| r.split_once("</button>"))
            .map(|(t, _)| strip_tags(t))
            .unwrap_or_default();
        if inner.trim().is_empty() {
            problems.push("a button has no text".to_owned());
        }
    }
    for img in tags(html, "img") {
        if attr(img, "alt").is_none() {
            problems.push("an image has no alt".to_owned());
        }
    }
    for svg in tags(html, "svg") {
        let named = attr(svg, "role").as_deref() == Some("img") && has_flag(svg, "aria-label");
        if !named && attr(svg, "aria-hidden").as_deref() != Some("true") {
            problems.push("an svg is neither named nor hidden".to_owned());
        }
    }
    for el in ["div", "p", "span"].iter().flat_map(|t| tags(html, t)) {
        let is_error = attr(el, "class").is_some_and(|c| c.split(' ').any(|c| c == "error"));
        if is_error && attr(el, "role").as_deref() != Some("alert") {
            problems.push("an error region lacks role=\"alert\"".to_owned());
        }
    }
    for t in html.split("tabindex=\"").skip(1) {
        let n: i64 = t.split('"').next().unwrap_or("0").parse().unwrap_or(0);
        if n > 0 {
            problems.push(format!("positive tabindex {n}"));
        }
    }
    problems
}

fn strip_tags(s: &str) -> String {
    let mut out = String::new();
    let mut in_tag = false;
    for c in s.chars() {
        match c {
            '<' => in_tag = true,
            '>' => in_tag = false,
            c if !in_tag => out.push(c),
            _ => {}
        }
    }
    out
}
