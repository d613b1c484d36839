//! Pages a person can use (issue 21): the recovery-code field, codes typed with spaces and
//! dashes, no dead ends (an HTML 404, links on refusals), logout by POST only, and the account
//! page's short user agents and relative times. `[pages]` branding, languages and the
//! operator's frame are in the submodules.

mod branding;
mod headings;
mod languages;
mod languages_more;
mod templates;

use crate::support::browser::*;
use crate::support::login::{mfa_csrf, password_step, LoginEnv, LoginOpts, PW};
use crate::support::oidc_provider::{TestOp, CLIENT_ID, CLIENT_SECRET};
use hyper::{Method, StatusCode};
use portcullis::accounts::native_principal;
use std::time::Duration;

const FIREFOX: &str =
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:128.0) Gecko/20100101 Firefox/128.0";

async fn env() -> LoginEnv {
    LoginEnv::start(LoginOpts::default()).await
}

/// A signed-in browser of an enrolled `name`.
async fn signed_in(env: &LoginEnv, name: &str) -> Browser {
    let seed = env.add_enrolled(name).await;
    let mut b = env.browser();
    b.user_agent = FIREFOX.into();
    password_step(&mut b, "/normal", name, PW).await;
    let (_, csrf) = mfa_csrf(&mut b, "/_portcullis/mfa").await;
    let r = b
        .post(
            "/_portcullis/mfa",
            &[("code", &env.code(&seed)), ("csrf_token", &csrf)],
        )
        .await;
    assert_eq!(r.status, StatusCode::FOUND, "{}", r.text());
    b
}

/// The `<input id="code" …>` tag of a page.
fn code_input(html: &str) -> String {
    let start = html.find("<input id=\"code\"").expect("a code field");
    let end = html[start..].find('>').unwrap() + start;
    html[start..=end].to_owned()
}

#[tokio::test]
async fn the_recovery_code_field_takes_letters_and_codes_may_have_spaces_or_dashes() {
    let env = env().await;
    env.add_enrolled("rhea").await;
    let codes = env
        .acc()
        .issue_recovery_codes(
            &native_principal("rhea"),
            10,
            Duration::from_secs(86_400),
            env.gw.clock.now(),
        )
        .await
        .unwrap();
    let mut b = env.browser();
    password_step(&mut b, "/normal", "rhea", PW).await;
    // The app-code field brings up digits, and offers the switch (a plain link, no script).
    let page = b.get("/_portcullis/mfa").await;
    let html = page.text();
    assert!(code_input(&html).contains("inputmode=\"numeric\""));
    assert!(
        html.contains("href=\"/_portcullis/mfa?recovery=1\">Use a recovery code</a>"),
        "{html}"
    );
    // The recovery-code field does not.
    let page = b.get("/_portcullis/mfa?recovery=1").await;
    assert_eq!(page.status, StatusCode::OK);
    let html = page.text();
    assert!(!code_input(&html).contains("inputmode"), "{html}");
    assert!(html.contains("<label for=\"code\">Recovery code</label>"));
    assert!(html.contains("href=\"/_portcullis/mfa\">Use the code from your authenticator app"));
    // A wrong code there shows the recovery field again.
    let csrf = input_value(&html, "csrf_token").unwrap();
    let r = b
        .post(
            "/_portcullis/mfa",
            &[
                ("code", "nope"),
                ("mode", "recovery"),
                ("csrf_token", &csrf),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert!(!code_input(&r.text()).contains("inputmode"));
    // Typed in capitals with spaces for dashes: accepted.
    let typed = codes[0].expose().to_uppercase().replace('-', " ");
    let r = b
        .post(
            "/_portcullis/mfa",
            &[
                ("code", &typed),
                ("mode", "recovery"),
                ("csrf_token", &csrf),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert!(r.text().contains("You have 9 recovery codes left"));
}

#[tokio::test]
async fn an_app_code_typed_with_a_dash_or_spaces_is_accepted() {
    let env = env().await;
    let seed = env.add_enrolled("tess").await;
    for (i, shape) in ["dash", "spaces"].into_iter().enumerate() {
        env.gw.clock.advance(30 * (i as i64 + 1));
        let code = env.code(&seed);
        let typed = match shape {
            "dash" => format!("{}-{}", &code[..3], &code[3..]),
            _ => format!(" {} {} ", &code[..3], &code[3..]),
        };
        let mut b = env.browser();
        password_step(&mut b, "/normal", "tess", PW).await;
        let (_, csrf) = mfa_csrf(&mut b, "/_portcullis/mfa").await;
        let r = b
            .post(
                "/_portcullis/mfa",
                &[("code", &typed), ("csrf_token", &csrf)],
            )
            .await;
        assert_eq!(r.status, StatusCode::FOUND, "{shape}: {}", r.text());
    }
}

#[tokio::test]
async fn an_unknown_gateway_path_is_a_page_for_browsers_and_json_for_the_rest() {
    let env = env().await;
    let mut b = env.browser();
    let r = b.get("/_portcullis/no-such-page").await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert!(r.header("content-type").unwrap().starts_with("text/html"));
    let html = r.text();
    assert!(html.contains("<h1>Page not found</h1>"), "{html}");
    for href in [
        "/_portcullis/login",
        "/_portcullis/account",
        "/_portcullis/logout",
    ] {
        assert!(html.contains(&format!("href=\"{href}\"")), "{href}: {html}");
    }
    let r = env
        .http
        .get(
            &env.gw.url("/_portcullis/no-such-page"),
            &[("accept", "application/json")],
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert!(r
        .header("content-type")
        .unwrap()
        .starts_with("application/json"));
    assert!(r.text().contains("\"not_found\""));
}

/// A method a gateway page does not take: a page with the ways on for a browser, JSON for the
/// rest, both for the router's own check and for a login handler's (`LoginError`).
#[tokio::test]
async fn a_method_a_page_does_not_take_and_a_handlers_not_found_are_pages_for_browsers_and_json_for_the_rest(
) {
    let env = env().await;
    let mut b = env.browser();
    for path in [
        "/normal",
        "/_portcullis/jwks.json",
        "/_portcullis/mfa",
        "/_portcullis/logout",
    ] {
        let r = b.send(Method::PUT, path).await;
        assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED, "{path}");
        assert!(
            r.header("content-type").unwrap().starts_with("text/html"),
            "{path}"
        );
        let html = r.text();
        assert!(
            html.contains("<h1>Not possible here</h1>"),
            "{path}: {html}"
        );
        assert!(
            html.contains("href=\"/_portcullis/login\""),
            "{path}: {html}"
        );
        let r = env
            .http
            .send(
                Method::PUT,
                &env.gw.url(path),
                &[("accept", "application/json")],
                Vec::new(),
            )
            .await;
        assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED, "{path}");
        assert!(r.text().contains("\"method_not_allowed\""), "{path}");
    }
    let r = b
        .http
        .send(
            Method::PUT,
            &env.gw.url("/normal"),
            &[("accept", "text/html"), ("accept-language", "de")],
            Vec::new(),
        )
        .await;
    assert!(r.text().contains("<h1>Hier nicht möglich</h1>"));
    // A login handler's "not found" (no such IdP) is a page too, and JSON for the rest.
    let path = "/_portcullis/oidc/no-such-idp/callback";
    let r = b.send(Method::GET, path).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert!(r.header("content-security-policy").is_some());
    assert!(r.text().contains("<h1>Page not found</h1>"), "{}", r.text());
    let r = env
        .http
        .get(&env.gw.url(path), &[("accept", "application/json")])
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert!(r.text().contains("\"not_found\""), "{}", r.text());
}

#[tokio::test]
async fn a_refusal_page_links_to_where_the_person_can_go_next() {
    let env = env().await;
    let mut b = env.browser();
    // No pending login: "Sign-in expired".
    let r = b.post("/_portcullis/mfa", &[("code", "123456")]).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let html = r.text();
    assert!(html.contains("Sign-in expired"), "{html}");
    for (id, href) in [
        ("next-login", "/_portcullis/login"),
        ("next-account", "/_portcullis/account"),
        ("next-logout", "/_portcullis/logout"),
    ] {
        assert!(
            html.contains(&format!("id=\"{id}\" href=\"{href}\"")),
            "{id}: {html}"
        );
    }
}

#[tokio::test]
async fn logout_is_asked_by_get_and_done_by_post_with_its_token() {
    let env = env().await;
    let mut b = signed_in(&env, "lou").await;
    let app = |b: &mut Browser| {
        let cookie = b.cookie_header();
        let http = &env.http;
        let url = env.gw.url("/contract/x");
        async move {
            http.get(&url, &[("cookie", &cookie), ("accept", "application/json")])
                .await
                .status
        }
    };
    // A GET (a link, a prefetch) only asks.
    let ask = b.get("/_portcullis/logout").await;
    assert_eq!(ask.status, StatusCode::OK);
    assert!(ask.text().contains("<h1>Sign out?</h1>"), "{}", ask.text());
    assert!(ask.header("set-cookie").is_none(), "the cookie stays");
    assert_eq!(app(&mut b).await, StatusCode::OK, "still signed in");
    let token = input_value(&ask.text(), "csrf_token").unwrap();
    // A POST without the token, or from another site, is refused.
    let r = b.post("/_portcullis/logout", &[]).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = b
        .post("/_portcullis/logout", &[("csrf_token", "forged")])
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let cookie = b.cookie_header();
    let r = env
        .http
        .post_form(
            &env.gw.url("/_portcullis/logout"),
            &[
                ("cookie", &cookie),
                ("origin", "https://evil.example"),
                ("accept", "text/html"),
            ],
            &[("csrf_token", &token)],
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(app(&mut b).await, StatusCode::OK, "still signed in");
    assert!(env.audit_of("logout", "lou").await.is_empty());
    // The form itself signs out.
    let r = b
        .post("/_portcullis/logout", &[("csrf_token", &token)])
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.text().contains("You are signed out"));
    assert_eq!(app(&mut b).await, StatusCode::UNAUTHORIZED);
    assert_eq!(env.audit_of("logout", "lou").await.len(), 1);
    // Asked again without a session: nothing to confirm, the signed-out page.
    let again = b.get("/_portcullis/logout").await;
    assert!(again.text().contains("You are signed out"));
}

#[tokio::test]
async fn the_account_page_shortens_agents_and_shows_times_in_words() {
    let env = env().await;
    let mut b = signed_in(&env, "ada").await;
    env.gw.clock.advance(180);
    let page = b.get("/_portcullis/account").await;
    assert_eq!(page.status, StatusCode::OK);
    let html = page.text();
    assert!(
        html.contains(&format!(
            "<span title=\"{FIREFOX}\">Firefox on Windows</span>"
        )),
        "{html}"
    );
    assert!(
        !html.contains(&format!(">{FIREFOX}<")),
        "the long agent is not shown as text"
    );
    assert!(html.contains(">3 minutes ago</time>"), "{html}");
    assert!(
        html.contains(" UTC\">3 minutes ago"),
        "the exact time in a title: {html}"
    );
    // The sign-out there is the POST form, not a link.
    assert!(html.contains("id=\"logout-confirm\""));
    let token = input_value(&html, "csrf_token");
    assert!(token.is_some());
}

/// The elements of the current page wider than the viewport or reaching past its edges
/// (tag, id, left..right), and the page's own scroll width when it is wider.
pub async fn overflowing(wd: &crate::support::webdriver::WebDriver) -> Vec<String> {
    let v = wd
        .execute(
            "const w = document.documentElement.clientWidth; const bad = []; \
             for (const e of document.querySelectorAll('body *')) { \
               const r = e.getBoundingClientRect(); \
               if (r.width > w + 0.5 || r.right > w + 0.5 || r.left < -0.5) \
                 bad.push(e.tagName + '#' + e.id + ' ' + Math.round(r.left) + '..' + Math.round(r.right) + ' of ' + w); } \
             if (document.documentElement.scrollWidth > w) bad.push('scrollWidth ' + document.documentElement.scrollWidth + ' of ' + w); \
             return bad;",
            serde_json::json!([]),
        )
        .await;
    v.as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap_or_default().to_owned())
        .collect()
}

/// Saves `name` at a desk's and a phone's width and fails if anything there is wider than the
/// window; the window is left at 390 px.
async fn look(wd: &crate::support::webdriver::WebDriver, name: &str) {
    for (width, height) in [(1200, 900), (390, 844)] {
        wd.set_window_size(width, height).await;
        wd.screenshot(&format!("{name}-{width}")).await;
        let bad = overflowing(wd).await;
        assert!(bad.is_empty(), "{name} at {width} px: {bad:?}");
    }
}

/// A user name as long as they come (64 characters at most) without a place to break.
const LONG_NAME: &str = "noor.abdulrahman_al_hashimi.contractors.northwind_consulting";

/// An `[[idp]]` table for the test OP `op`.
fn idp_toml(id: &str, name: &str, op: &TestOp) -> String {
    format!(
        "\n[[idp]]\nid = \"{id}\"\nkind = \"oidc\"\ndisplay_name = \"{name}\"\n\
         issuer = \"{issuer}\"\nclient_id = \"{CLIENT_ID}\"\nclient_secret = \"{CLIENT_SECRET}\"\n\
         http_timeout = \"1s\"\n",
        issuer = op.issuer
    )
}

/// The pages that need notices, break-glass or SSO: a gateway of their own (native login with
/// enrollment on first sign-in, mail, `[break_glass]` and three OIDC providers, one with a long
/// name), looked at in a fresh browser session.
async fn the_other_pages(driver: &crate::support::webdriver::ChromeDriver) {
    use crate::notify::{report_path, Env, Opts};
    let clock = portcullis::clock::Clock::manual(1_800_000_000);
    let mut ops = Vec::new();
    for _ in 0..3 {
        ops.push(TestOp::start(clock.clone()).await);
    }
    let names = [
        ("corp", "Corp SSO"),
        ("partner", "Partner portal"),
        (
            "contractors",
            "Northwind Contractor Identity Federation Service",
        ),
    ];
    let mut extra = String::from("\n[break_glass]\nmax_window = \"4h\"\nroles = [\"agent\"]\n");
    for ((id, name), op) in names.iter().zip(&ops) {
        extra.push_str(&idp_toml(id, name, op));
    }
    let env = Env::start(Opts {
        extra,
        ..Default::default()
    })
    .await;
    for op in &ops {
        let clock = env.gw.clock.clone();
        op.with(|s| s.clock = clock);
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !env.gw.gateway().oidc.ready() {
        assert!(
            std::time::Instant::now() < deadline,
            "oidc providers never loaded"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // A sign-in from a new browser mails its "this was not me" link. User names may be long
    // and have no spaces (up to 64 characters); the pages that show one must wrap it.
    let seed = env.add_enrolled(LONG_NAME).await;
    let mut b = env.browser();
    env.sign_in(&mut b, LONG_NAME, &seed).await;
    let notice = env.mail_about("New sign-in", Duration::from_secs(5)).await;
    // An armed break-glass link.
    let r = env
        .admin(
            Method::POST,
            "/api/v1/break-glass",
            Some(serde_json::json!({"users": ["ivy"], "duration": "1h", "reason": "IdP outage"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    let link = r.json()["links"][0]["url"].as_str().unwrap().to_owned();
    let wd = driver.session().await;
    wd.goto(&env.gw.url("/_portcullis/login?rd=%2Fagent")).await;
    wd.wait_for_text("Sign in with Northwind Contractor Identity Federation Service")
        .await;
    look(&wd, "pages-chooser").await;
    wd.goto(&link).await;
    wd.wait_for_text("Emergency access").await;
    look(&wd, "pages-break-glass").await;
    wd.goto(&env.gw.url(&report_path(&notice))).await;
    wd.wait_for_text(LONG_NAME).await;
    look(&wd, "pages-not-me").await;
    // A user without a factor signs in and is asked to enroll one (the QR code).
    let name = LONG_NAME.replacen("noor", "ezra", 1);
    env.add_user(&name).await;
    wd.goto(&env.gw.url("/normal?rd=%2Fcontract%2F")).await;
    wd.fill("#username", &name).await;
    wd.fill("#password", PW).await;
    let button = wd.find("button[type=submit]").await;
    wd.click(&button).await;
    wd.wait_for_url(|u| u.ends_with("/_portcullis/mfa/enroll"))
        .await;
    look(&wd, "pages-enroll").await;
    // The setup link, opened, is one long word too.
    let summary = wd.find("details summary").await;
    wd.click(&summary).await;
    wd.wait_for_text("otpauth://").await;
    look(&wd, "pages-enroll-link").await;
    wd.quit().await;
}

#[tokio::test]
async fn at_1200_and_390_px_no_element_is_wider_than_the_viewport() {
    use crate::support::webdriver::{available, ChromeDriver};
    if !available() {
        return;
    }
    let env = env().await;
    let seed = env.add_enrolled("pia").await;
    env.acc()
        .issue_recovery_codes(
            &native_principal("pia"),
            10,
            Duration::from_secs(86_400),
            env.gw.clock.now(),
        )
        .await
        .unwrap();
    // Another session with a long agent, so the account page lists two.
    let mut other = env.browser();
    other.user_agent = format!("{FIREFOX} {}", "Extension/1.0 ".repeat(12));
    password_step(&mut other, "/normal", "pia", PW).await;
    let (_, csrf) = mfa_csrf(&mut other, "/_portcullis/mfa").await;
    other
        .post(
            "/_portcullis/mfa",
            &[("code", &env.code(&seed)), ("csrf_token", &csrf)],
        )
        .await;
    env.gw.clock.advance(30);
    let driver = ChromeDriver::start().await;
    let wd = driver.session().await;
    // The session's window ends at 390 px, so the clicks between pages happen at phone width.
    let check = |name: &'static str| look(&wd, name);
    wd.goto(&env.gw.url("/normal?rd=%2F_portcullis%2Faccount"))
        .await;
    check("pages-login").await;
    wd.fill("#username", "pia").await;
    wd.fill("#password", PW).await;
    let button = wd.find("button[type=submit]").await;
    wd.click(&button).await;
    wd.wait_for_url(|u| u.ends_with("/_portcullis/mfa")).await;
    check("pages-mfa").await;
    let switch = wd.find("#use-recovery-code").await;
    wd.click(&switch).await;
    wd.wait_for_url(|u| u.ends_with("?recovery=1")).await;
    check("pages-mfa-recovery").await;
    let back = wd.find("#use-app-code").await;
    wd.click(&back).await;
    wd.wait_for_url(|u| u.ends_with("/_portcullis/mfa")).await;
    wd.fill("#code", &env.code(&seed)).await;
    let verify = wd.find("#code ~ button[type=submit]").await;
    wd.click(&verify).await;
    wd.wait_for_url(|u| u.ends_with("/_portcullis/account"))
        .await;
    wd.wait_for_text("this device").await;
    check("pages-account").await;
    wd.goto(&env.gw.url("/_portcullis/no-such-page")).await;
    check("pages-not-found").await;
    wd.goto(&env.gw.url("/_portcullis/logout")).await;
    check("pages-sign-out").await;
    wd.quit().await;
    the_other_pages(&driver).await;
}
