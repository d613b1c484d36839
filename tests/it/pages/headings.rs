//! The heading outline of every page a person meets (issue 21): exactly one `<h1>`, first, and
//! no level skipped on the way down (an `<h1>` then an `<h3>` leaves a screen reader's outline
//! with a hole). Pages fetched over plain HTTP through the test helpers, no browser.

use crate::support::browser::{element_text, input_value, seed_of, Browser};
use crate::support::*;
use hyper::{Method, StatusCode};
use portcullis::mfa::totp::code_at;
use portcullis::secret::Password;

const PW: &str = "correct horse battery staple";

const CONFIG: &str = r#"
[[routes]]
prefix = "/contract"
allow_roles = ["contractor", "agent"]

[roles.contractor]
groups = ["contractors"]
require_mfa = true

[storage]
url = "sqlite://users.db"

[native]

[mfa]
issuer = "Test Helpdesk"
methods = ["totp", "recovery_code"]
recovery_codes = { count = 10, ttl = "30d" }

[admin]
listen = "127.0.0.1:0"
console_roles = ["admin"]

[break_glass]
max_window = "4h"
roles = ["contractor"]
"#;

/// The heading levels of `html` in document order (`<h1 …>` to `<h6 …>`).
fn levels(html: &str) -> Vec<u8> {
    let mut out = Vec::new();
    let mut rest = html;
    while let Some(i) = rest.find("<h") {
        let after = &rest[i + 2..];
        let mut chars = after.chars();
        if let (Some(d @ '1'..='6'), Some(' ' | '>')) = (chars.next(), chars.next()) {
            out.push(d as u8 - b'0');
        }
        rest = after;
    }
    out
}

/// What is wrong with the outline of `html`: not exactly one h1, a heading before it, or a
/// level more than one below the heading before it.
fn heading_problems(html: &str) -> Vec<String> {
    let levels = levels(html);
    let mut problems = Vec::new();
    let h1 = levels.iter().filter(|l| **l == 1).count();
    if h1 != 1 {
        problems.push(format!("{h1} <h1> elements, want 1"));
    }
    if let Some(first) = levels.first().filter(|l| **l != 1) {
        problems.push(format!("the first heading is an <h{first}>"));
    }
    for pair in levels.windows(2) {
        if let [a, b] = pair {
            if *b > a + 1 {
                problems.push(format!("<h{a}> then <h{b}>"));
            }
        }
    }
    problems
}

#[test]
fn the_heading_check_catches_a_skipped_level_a_second_h1_and_a_late_h1() {
    assert!(heading_problems("<h1>A</h1><h2>B</h2><h3 id=\"c\">C</h3><h2>D</h2>").is_empty());
    assert_eq!(
        heading_problems("<h1>A</h1><h3>B</h3><header><hgroup></hgroup></header>"),
        vec!["<h1> then <h3>"]
    );
    assert_eq!(
        heading_problems("<h1>A</h1><h1>B</h1>"),
        vec!["2 <h1> elements, want 1"]
    );
    assert_eq!(
        heading_problems("<h2>A</h2><h1>B</h1>"),
        vec!["the first heading is an <h2>"]
    );
    assert_eq!(
        heading_problems("<p>no heading</p>"),
        vec!["0 <h1> elements, want 1"]
    );
}

async fn add_user(gw: &TestGateway, name: &str, roles: &[&str]) {
    let g = gw.gateway();
    g.accounts
        .as_ref()
        .unwrap()
        .create_user(
            &g.config,
            name,
            None,
            roles.iter().map(|r| r.to_string()).collect(),
            Some(Password::new(PW.into())),
            gw.clock.now(),
        )
        .await
        .unwrap();
}

/// GET the sign-in form at `path`, POST `user` and `pw`; returns the POST's response.
async fn sign_in(b: &mut Browser, user: &str, pw: &str) -> Resp {
    let form = b.get("/normal").await;
    let html = form.text();
    let csrf = input_value(&html, "csrf_token").unwrap();
    let rd = input_value(&html, "rd").unwrap();
    b.post(
        "/normal",
        &[
            ("username", user),
            ("password", pw),
            ("csrf_token", &csrf),
            ("rd", &rd),
        ],
    )
    .await
}

/// GET as a browser with `cookie`.
async fn get_with(gw: &TestGateway, cookie: &str, path: &str) -> Resp {
    Http::new()
        .get(
            &gw.url(path),
            &[("accept", "text/html"), ("cookie", cookie)],
        )
        .await
}

/// Every page a person can meet on a gateway with native login and the console: (name, page).
async fn person_pages(gw: &TestGateway) -> Vec<(String, Resp)> {
    let mut pages: Vec<(String, Resp)> = Vec::new();
    let mut push = |name: &str, r: Resp| pages.push((name.to_owned(), r));
    add_user(gw, "pia", &["contractor"]).await;
    add_user(gw, "ed", &["contractor"]).await;
    add_user(gw, "boss", &["admin"]).await;
    let acc = gw.gateway().accounts.as_ref().unwrap();
    let ed_seed = acc.enroll_totp_now("ed", gw.clock.now()).await.unwrap().0;
    acc.enroll_totp_now("boss", gw.clock.now()).await.unwrap();

    // Sign-in, a wrong password, enrollment at sign-in and its recovery codes.
    let mut b = Browser::new(&format!("http://{}", gw.addr));
    push("sign-in", b.get("/normal").await);
    push("sign-in refused", sign_in(&mut b, "pia", "wrong").await);
    sign_in(&mut b, "pia", PW).await;
    let enroll = b.get("/_portcullis/mfa/enroll").await;
    let html = enroll.text();
    let csrf = input_value(&html, "csrf_token").unwrap();
    let seed = seed_of(&element_text(&html, "totp-uri").unwrap());
    push("enrollment", enroll);
    let bad = [("code", "000000"), ("csrf_token", csrf.as_str())];
    push(
        "enrollment refused",
        b.post("/_portcullis/mfa/enroll", &bad).await,
    );
    let code = code_at(&seed, gw.clock.now());
    let good = [("code", code.as_str()), ("csrf_token", csrf.as_str())];
    push(
        "recovery codes",
        b.post("/_portcullis/mfa/enroll", &good).await,
    );
    push("account", b.get("/_portcullis/account").await);
    push("sign-out confirmation", b.get("/_portcullis/logout").await);
    push("signed out", b.logout().await);

    // The second factor: app code, recovery code, a wrong code.
    let mut b = Browser::new(&format!("http://{}", gw.addr));
    sign_in(&mut b, "ed", PW).await;
    let challenge = b.get("/_portcullis/mfa").await;
    let csrf = input_value(&challenge.text(), "csrf_token").unwrap();
    push("second factor", challenge);
    push(
        "second factor, recovery code",
        b.get("/_portcullis/mfa?recovery=1").await,
    );
    let bad = [("code", "123456"), ("csrf_token", csrf.as_str())];
    push(
        "second factor refused",
        b.post("/_portcullis/mfa", &bad).await,
    );
    let code = code_at(&ed_seed, gw.clock.now());
    let good = [("code", code.as_str()), ("csrf_token", csrf.as_str())];
    b.post("/_portcullis/mfa", &good).await;

    // Refusals and errors.
    let mut anon = Browser::new(&format!("http://{}", gw.addr));
    push("404", anon.get("/_portcullis/no-such-page").await);
    push("405", anon.send(Method::PUT, "/normal").await);
    push(
        "sign-in expired",
        anon.post("/_portcullis/mfa", &[("code", "123456")]).await,
    );
    let chooser = anon.get("/_portcullis/login").await;
    push("login start", anon.follow(chooser).await);
    push(
        "not-me report, forged",
        anon.get("/_portcullis/not-me?t=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")
            .await,
    );
    push(
        "break-glass link, forged",
        anon.get("/_portcullis/break-glass?t=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")
            .await,
    );

    // The console: refused, the page, a malformed page, a secret shown once, the step-up.
    push("console, no role", b.get("/_portcullis/admin").await);
    let (boss, _) = gw.session_for("boss", &["admin"]).await;
    let console = get_with(gw, &boss, "/_portcullis/admin").await;
    let token = input_value(&console.text(), "csrf_token").unwrap();
    push("console", console);
    push(
        "console, past the end",
        get_with(
            gw,
            &boss,
            "/_portcullis/admin?sessions_page=9&audit_before=1",
        )
        .await,
    );
    push(
        "console, malformed page",
        get_with(gw, &boss, "/_portcullis/admin?sessions_page=x").await,
    );
    let origin = format!("http://{}", gw.addr);
    let shown = Http::new()
        .post_form(
            &gw.url("/_portcullis/admin/users/password"),
            &[
                ("accept", "text/html"),
                ("cookie", &boss),
                ("origin", &origin),
            ],
            &[("csrf_token", &token), ("user", "pia")],
        )
        .await;
    push("console, shown once", shown);
    let armed = Http::new()
        .post_form(
            &gw.url("/_portcullis/admin/break-glass/arm"),
            &[
                ("accept", "text/html"),
                ("cookie", &boss),
                ("origin", &origin),
            ],
            &[
                ("csrf_token", &token),
                ("users", "ed"),
                ("duration", "2h"),
                ("reason", "IdP down"),
            ],
        )
        .await;
    let html = armed.text();
    let link = html
        .split(&format!("ed: http://{}", gw.addr))
        .nth(1)
        .and_then(|t| t.split('<').next())
        .unwrap_or_else(|| panic!("no break-glass link: {html}"))
        .replace("&amp;", "&");
    push("console, break-glass armed", armed);
    push("break-glass link", anon.get(&link).await);
    gw.clock.advance(16 * 60);
    push(
        "console step-up",
        get_with(gw, &boss, "/_portcullis/admin").await,
    );
    pages
}

#[tokio::test]
async fn every_page_has_one_h1_and_skips_no_heading_level() {
    let gw = TestGateway::start_with(CONFIG, |_| {}).await;
    let pages = person_pages(&gw).await;
    let mut failures = Vec::new();
    for (name, r) in &pages {
        let html = r.text();
        assert!(
            r.header("content-type")
                .is_some_and(|t| t.starts_with("text/html")),
            "{name}: {} {html}",
            r.status
        );
        let problems = heading_problems(&html);
        if !problems.is_empty() {
            failures.push(format!("{name} ({}): {problems:?}", r.status));
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
    // The pages really are the ones named (a redirect or a login form would pass vacuously).
    let status = |name: &str| pages.iter().find(|(n, _)| n == name).map(|(_, r)| r.status);
    assert_eq!(status("console"), Some(StatusCode::OK));
    assert_eq!(status("console, no role"), Some(StatusCode::FORBIDDEN));
    assert_eq!(
        status("console, malformed page"),
        Some(StatusCode::BAD_REQUEST)
    );
    assert_eq!(status("console step-up"), Some(StatusCode::UNAUTHORIZED));
    assert_eq!(status("recovery codes"), Some(StatusCode::OK));
    assert_eq!(status("break-glass link"), Some(StatusCode::OK));
    assert_eq!(status("404"), Some(StatusCode::NOT_FOUND));
    assert_eq!(pages.len(), 25);
    gw.stop().await;
}
