//! The admin console (`/_portcullis/admin`, DESIGN.md §12): its gate (off, no session, no
//! role, a stale factor and the step-up), its forms' CSRF and Origin checks, each action leaving
//! its audit event with the acting admin, and what it renders being escaped.

use crate::support::browser::input_value;
use crate::support::*;
use hyper::StatusCode;
use portcullis::mfa::totp::code_at;
use portcullis::secret::{Password, TotpSeed};
use portcullis::session::SessionStore;
use portcullis::storage::UserStore;

const PW: &str = "correct horse battery staple";
const CONSOLE: &str = "/_portcullis/admin";
/// What every console action is blamed on: the admin session's principal.
const ACTOR: &str = "console:native:boss";

async fn start() -> TestGateway {
    start_console("console_roles = [\"admin\"]").await
}

async fn start_console(keys: &str) -> TestGateway {
    TestGateway::start_with(
        &format!(
            "[storage]\nurl = \"sqlite://users.db\"\n[native]\n\
[admin]\nlisten = \"127.0.0.1:0\"\n{keys}\n"
        ),
        |_| {},
    )
    .await
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

/// The admin `boss` with an authenticator, and a session of theirs just signed in with it.
async fn boss(gw: &TestGateway) -> (String, TotpSeed) {
    add_user(gw, "boss", &["admin"]).await;
    let g = gw.gateway();
    let seed = g
        .accounts
        .as_ref()
        .unwrap()
        .enroll_totp_now("boss", gw.clock.now())
        .await
        .unwrap()
        .0;
    let (cookie, _) = gw.session_for("boss", &["admin"]).await;
    (cookie, seed)
}

async fn get(gw: &TestGateway, cookie: &str, path: &str) -> Resp {
    let mut h = vec![("accept", "text/html")];
    if !cookie.is_empty() {
        h.push(("cookie", cookie));
    }
    Http::new().get(&gw.url(path), &h).await
}

async fn post(
    gw: &TestGateway,
    cookie: &str,
    origin: Option<&str>,
    path: &str,
    form: &[(&str, &str)],
) -> Resp {
    let mut h = vec![("accept", "text/html"), ("cookie", cookie)];
    if let Some(o) = origin {
        h.push(("origin", o));
    }
    Http::new().post_form(&gw.url(path), &h, form).await
}

/// The console's CSRF token, read from its page.
async fn token(gw: &TestGateway, cookie: &str) -> String {
    let page = get(gw, cookie, CONSOLE).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.text());
    input_value(&page.text(), "csrf_token").unwrap()
}

/// Posts the console form `action` with a valid token and the gateway's own Origin.
async fn act(gw: &TestGateway, cookie: &str, action: &str, fields: &[(&str, &str)]) -> Resp {
    let t = token(gw, cookie).await;
    let mut form = vec![("csrf_token", t.as_str())];
    form.extend_from_slice(fields);
    let origin = format!("http://{}", gw.addr);
    post(
        gw,
        cookie,
        Some(&origin),
        &format!("{CONSOLE}/{action}"),
        &form,
    )
    .await
}

async fn user_disabled(gw: &TestGateway, name: &str) -> bool {
    let acc = gw.gateway().accounts.as_ref().unwrap();
    acc.users.get_user(name).await.unwrap().unwrap().disabled
}

/// (outcome, reason) of every audit event `kind`, oldest first.
async fn audited(gw: &TestGateway, kind: &str) -> Vec<(String, String)> {
    gw.audit(kind).await
}

#[tokio::test]
async fn the_console_is_a_404_while_console_roles_is_empty() {
    let gw = start_console("").await;
    let (cookie, _) = boss(&gw).await;
    let r = get(&gw, &cookie, CONSOLE).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert!(!r.text().contains("Admin console"));
    let r = post(
        &gw,
        &cookie,
        None,
        &format!("{CONSOLE}/users/disable"),
        &[("user", "boss")],
    )
    .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert!(!user_disabled(&gw, "boss").await);
    gw.stop().await;
}

#[tokio::test]
async fn without_a_session_the_console_sends_the_browser_to_sign_in_and_back() {
    let gw = start().await;
    let r = get(&gw, "", CONSOLE).await;
    assert_eq!(r.status, StatusCode::FOUND);
    let loc = r.header("location").unwrap();
    assert!(loc.contains("rd=%2F%5Fportcullis%2Fadmin"), "{loc}");
    gw.stop().await;
}

#[tokio::test]
async fn a_session_without_a_console_role_gets_a_403_and_a_refusal_in_the_audit_log() {
    let gw = start().await;
    add_user(&gw, "ann", &["agent"]).await;
    let (cookie, _) = gw.session_for("ann", &["agent"]).await;
    let r = get(&gw, &cookie, CONSOLE).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(!r.text().contains("csrf_token"));
    let r = post(
        &gw,
        &cookie,
        None,
        &format!("{CONSOLE}/users/disable"),
        &[("user", "ann")],
    )
    .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(!user_disabled(&gw, "ann").await);
    assert_eq!(
        audited(&gw, "console.refused").await,
        vec![
            ("refused".to_owned(), "no console role".to_owned()),
            ("refused".to_owned(), "no console role".to_owned())
        ]
    );
    gw.stop().await;
}

#[tokio::test]
async fn a_stale_factor_is_asked_again_and_a_current_code_opens_the_console() {
    let gw = start().await;
    add_user(&gw, "ann", &["agent"]).await;
    let (cookie, seed) = boss(&gw).await;
    let t = token(&gw, &cookie).await;
    gw.clock.advance(16 * 60);
    let r = get(&gw, &cookie, CONSOLE).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert!(r.text().contains("id=\"step-up\""), "{}", r.text());
    assert!(!r.text().contains("id=\"sessions\""));
    // An action with a valid token is refused too while the factor is stale.
    let origin = format!("http://{}", gw.addr);
    let r = post(
        &gw,
        &cookie,
        Some(&origin),
        &format!("{CONSOLE}/users/disable"),
        &[("csrf_token", &t), ("user", "ann")],
    )
    .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert!(!user_disabled(&gw, "ann").await);
    // A wrong code does not open it.
    let verify = format!("{CONSOLE}/verify");
    let r = post(
        &gw,
        &cookie,
        Some(&origin),
        &verify,
        &[("csrf_token", &t), ("code", "000000")],
    )
    .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        get(&gw, &cookie, CONSOLE).await.status,
        StatusCode::UNAUTHORIZED
    );
    // A current code does, for `console_fresh_mfa`.
    let code = code_at(&seed, gw.clock.now());
    let r = post(
        &gw,
        &cookie,
        Some(&origin),
        &verify,
        &[("csrf_token", &t), ("code", &code)],
    )
    .await;
    assert_eq!(r.status, StatusCode::FOUND, "{}", r.text());
    assert_eq!(get(&gw, &cookie, CONSOLE).await.status, StatusCode::OK);
    gw.clock.advance(16 * 60);
    assert_eq!(
        get(&gw, &cookie, CONSOLE).await.status,
        StatusCode::UNAUTHORIZED
    );
    let refusals = audited(&gw, "console.refused").await;
    assert!(
        refusals.iter().all(|(_, why)| why == "stale second factor"),
        "{refusals:?}"
    );
    assert_eq!(refusals.len(), 4, "{refusals:?}");
    gw.stop().await;
}

#[tokio::test]
async fn a_console_form_without_its_csrf_token_or_with_a_wrong_one_changes_nothing() {
    let gw = start().await;
    add_user(&gw, "ann", &["agent"]).await;
    let (cookie, _) = boss(&gw).await;
    let origin = format!("http://{}", gw.addr);
    let path = format!("{CONSOLE}/users/disable");
    let r = post(&gw, &cookie, Some(&origin), &path, &[("user", "ann")]).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    // A token of another session is no token of this one.
    let (other, _) = gw.session_for("boss", &["admin"]).await;
    let theirs = token(&gw, &other).await;
    let r = post(
        &gw,
        &cookie,
        Some(&origin),
        &path,
        &[("csrf_token", &theirs), ("user", "ann")],
    )
    .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(!user_disabled(&gw, "ann").await);
    assert!(audited(&gw, "admin.user_disabled").await.is_empty());
    assert_eq!(audited(&gw, "console.refused").await.len(), 2);
    gw.stop().await;
}

#[tokio::test]
async fn a_cross_origin_console_post_is_refused_and_changes_nothing() {
    let gw = start().await;
    add_user(&gw, "ann", &["agent"]).await;
    let (cookie, _) = boss(&gw).await;
    let t = token(&gw, &cookie).await;
    let r = post(
        &gw,
        &cookie,
        Some("http://evil.example"),
        &format!("{CONSOLE}/users/disable"),
        &[("csrf_token", &t), ("user", "ann")],
    )
    .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(!user_disabled(&gw, "ann").await);
    gw.stop().await;
}

#[tokio::test]
async fn each_console_action_works_and_is_audited_with_the_acting_admin() {
    let gw = start().await;
    let (cookie, _) = boss(&gw).await;
    let g = gw.gateway().clone();
    let acc = g.accounts.as_ref().unwrap();
    let ok = |r: &Resp| assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let by_console = |events: Vec<(String, String)>| {
        assert_eq!(events, vec![("success".to_owned(), ACTOR.to_owned())]);
    };

    // Create: the generated password is shown once and works.
    let r = act(
        &gw,
        &cookie,
        "users/create",
        &[("username", "ann"), ("email", ""), ("roles", "agent")],
    )
    .await;
    ok(&r);
    assert!(acc.users.get_user("ann").await.unwrap().is_some());
    by_console(audited(&gw, "admin.user_created").await);

    // Sessions: end one, then all of a user's.
    let (_, one) = gw.session_for("ann", &["agent"]).await;
    let page = get(&gw, &cookie, &format!("{CONSOLE}?user=ann")).await;
    assert!(page.text().contains(one.as_str()));
    ok(&act(&gw, &cookie, "sessions/end", &[("id", one.as_str())]).await);
    assert!(g.store.get(&one).await.unwrap().is_none());
    by_console(audited(&gw, "session.terminated").await);
    let (_, a) = gw.session_for("ann", &["agent"]).await;
    let (_, b) = gw.session_for("ann", &["agent"]).await;
    ok(&act(&gw, &cookie, "sessions/end-all", &[("user", "ann")]).await);
    assert!(g.store.get(&a).await.unwrap().is_none());
    assert!(g.store.get(&b).await.unwrap().is_none());
    by_console(audited(&gw, "session.terminated_all").await);

    // Disable (sessions end) and enable.
    let (_, c) = gw.session_for("ann", &["agent"]).await;
    ok(&act(&gw, &cookie, "users/disable", &[("user", "ann")]).await);
    assert!(user_disabled(&gw, "ann").await);
    assert!(g.store.get(&c).await.unwrap().is_none());
    by_console(audited(&gw, "admin.user_disabled").await);
    ok(&act(&gw, &cookie, "users/enable", &[("user", "ann")]).await);
    assert!(!user_disabled(&gw, "ann").await);
    by_console(audited(&gw, "admin.user_enabled").await);

    // Reset factors.
    acc.enroll_totp_now("ann", gw.clock.now()).await.unwrap();
    let r = act(&gw, &cookie, "users/reset-mfa", &[("user", "ann")]).await;
    assert!(r.status.is_success(), "{}", r.text());
    assert!(acc.users.get_totp("native:ann").await.unwrap().is_none());
    by_console(audited(&gw, "admin.mfa_reset").await);

    // Reset password: a new one, shown once, in force.
    let before = acc
        .users
        .get_user("ann")
        .await
        .unwrap()
        .unwrap()
        .password_hash;
    let r = act(&gw, &cookie, "users/password", &[("user", "ann")]).await;
    ok(&r);
    let shown = r.text();
    let new_pw = shown
        .split("<ul id=\"secret\"><li><code>")
        .nth(1)
        .and_then(|t| t.split('<').next())
        .unwrap()
        .to_owned();
    assert!(new_pw.len() >= 8, "{shown}");
    let after = acc
        .users
        .get_user("ann")
        .await
        .unwrap()
        .unwrap()
        .password_hash;
    assert_ne!(before, after);
    assert!(!shown.contains("id=\"sessions\""));
    by_console(audited(&gw, "admin.user_password_set").await);

    // Recovery codes, shown once.
    let r = act(&gw, &cookie, "users/recovery-codes", &[("user", "ann")]).await;
    ok(&r);
    assert_eq!(
        r.text().matches("<li><code>").count(),
        g.config.mfa.recovery_count as usize
    );
    by_console(audited(&gw, "admin.recovery_codes_issued").await);

    // The audit log on the console: newest first, filtered by event.
    let page = get(&gw, &cookie, &format!("{CONSOLE}?event=admin.user_enabled")).await;
    let audit = page.text();
    let audit = audit.split("<table id=\"audit\">").nth(1).unwrap();
    assert_eq!(audit.matches("<tr><td").count(), 1, "{audit}");
    assert!(audit.contains(ACTOR));
    gw.stop().await;
}

/// The rows of the console's table `id`.
fn table(html: &str, id: &str) -> String {
    html.split(&format!("<table id=\"{id}\">"))
        .nth(1)
        .and_then(|t| t.split("</table>").next())
        .unwrap_or_else(|| panic!("no table {id}: {html}"))
        .to_owned()
}

/// The target of the link `id`, as a path to GET.
fn href(html: &str, id: &str) -> Option<String> {
    html.split(&format!("id=\"{id}\" href=\""))
        .nth(1)
        .and_then(|t| t.split('"').next())
        .map(|h| h.replace("&amp;", "&"))
}

/// The "By / why" cells of the audit table, top to bottom.
fn reasons(html: &str) -> Vec<String> {
    table(html, "audit")
        .split("<tr>")
        .skip(2)
        .filter_map(|row| row.split("<td>").last())
        .filter_map(|cell| cell.split("</td>").next())
        .map(str::to_owned)
        .collect()
}

/// The session ids the sessions table offers to end, top to bottom.
fn session_ids(html: &str) -> Vec<String> {
    table(html, "sessions")
        .split("name=\"id\" value=\"")
        .skip(1)
        .filter_map(|t| t.split('"').next())
        .map(str::to_owned)
        .collect()
}

/// `n` failed sign-ins of `user`, one a second, each with its number as the reason.
async fn failures(gw: &TestGateway, user: &str, n: usize) {
    use portcullis::audit::{record, Event, Kind, Outcome};
    for i in 0..n {
        let reason = format!("{user}-{i:02}");
        let ev = Event {
            user: Some(user),
            reason: Some(&reason),
            ..Event::new(Kind::LoginFailure, Outcome::Failure)
        };
        record(gw.gateway(), ev).await;
        gw.clock.advance(1);
    }
}

#[tokio::test]
async fn the_audit_log_pages_by_fifty_newest_first_across_the_boundary_keeping_its_filters() {
    let gw = start().await;
    let (cookie, _) = boss(&gw).await;
    // Ann's 60 events among Bob's: the filter must hold on every page.
    failures(&gw, "bob", 3).await;
    failures(&gw, "ann", 60).await;
    failures(&gw, "bob", 3).await;
    let want = |range: std::ops::Range<usize>| -> Vec<String> {
        range.rev().map(|i| format!("ann-{i:02}")).collect()
    };
    let first = get(
        &gw,
        &cookie,
        &format!("{CONSOLE}?user=ann&event=login.failure"),
    )
    .await
    .text();
    assert_eq!(reasons(&first), want(10..60));
    assert!(href(&first, "audit-newer").is_none(), "the newest page");
    let older = href(&first, "audit-older").unwrap();
    assert!(
        older.contains("user=ann") && older.contains("event=login%2Efailure"),
        "{older}"
    );
    let second = get(&gw, &cookie, &older).await.text();
    assert_eq!(reasons(&second), want(0..10), "{older}");
    assert!(href(&second, "audit-older").is_none(), "the oldest page");
    // Back from the second page: the first again, exactly.
    let newer = href(&second, "audit-newer").unwrap();
    assert!(
        newer.contains("user=ann") && newer.contains("event=login%2Efailure"),
        "{newer}"
    );
    let again = get(&gw, &cookie, &newer).await.text();
    assert_eq!(reasons(&again), want(10..60), "{newer}");
    assert!(href(&again, "audit-newer").is_none(), "{newer}");
    assert_eq!(href(&again, "audit-older").as_deref(), Some(older.as_str()));
    // A larger page is clamped to the bound; a smaller one is kept in the links.
    let clamped = get(&gw, &cookie, &format!("{CONSOLE}?user=ann&per_page=500"))
        .await
        .text();
    assert_eq!(reasons(&clamped), want(10..60));
    let small = get(&gw, &cookie, &format!("{CONSOLE}?user=ann&per_page=7"))
        .await
        .text();
    assert_eq!(reasons(&small), want(53..60));
    let next = href(&small, "audit-older").unwrap();
    assert!(next.contains("per_page=7"), "{next}");
    assert_eq!(
        reasons(&get(&gw, &cookie, &next).await.text()),
        want(46..53)
    );
    gw.stop().await;
}

#[tokio::test]
async fn an_audit_page_past_the_end_is_empty_with_a_link_back_to_the_newest() {
    let gw = start().await;
    let (cookie, _) = boss(&gw).await;
    failures(&gw, "ann", 3).await;
    for past in ["audit_before=1", "audit_after=9000"] {
        let page = get(&gw, &cookie, &format!("{CONSOLE}?user=ann&{past}")).await;
        assert_eq!(page.status, StatusCode::OK);
        let html = page.text();
        assert!(reasons(&html).is_empty(), "{past}: {html}");
        assert!(html.contains("id=\"audit-none\""), "{past}");
        let back = href(&html, "audit-newest").unwrap();
        assert_eq!(back, format!("{CONSOLE}?user=ann"));
        let back = get(&gw, &cookie, &back).await.text();
        assert_eq!(reasons(&back), vec!["ann-02", "ann-01", "ann-00"]);
    }
    gw.stop().await;
}

#[tokio::test]
async fn the_session_list_pages_by_fifty_keeping_the_user_filter_and_past_the_end_links_back() {
    let gw = start().await;
    let (cookie, _) = boss(&gw).await;
    let mut anns = Vec::new();
    for _ in 0..60 {
        anns.push(
            gw.session_for("ann", &["agent"])
                .await
                .1
                .as_str()
                .to_owned(),
        );
    }
    gw.session_for("bob", &["agent"]).await;
    let first = get(&gw, &cookie, &format!("{CONSOLE}?user=ann"))
        .await
        .text();
    let one = session_ids(&first);
    assert_eq!(one.len(), 50);
    assert!(href(&first, "sessions-previous").is_none());
    let next = href(&first, "sessions-next").unwrap();
    assert_eq!(next, format!("{CONSOLE}?user=ann&sessions_page=2"));
    let second = get(&gw, &cookie, &next).await.text();
    let two = session_ids(&second);
    assert_eq!(two.len(), 10);
    assert!(href(&second, "sessions-next").is_none());
    assert_eq!(
        href(&second, "sessions-previous").as_deref(),
        Some(format!("{CONSOLE}?user=ann").as_str())
    );
    // Both pages together: each of Ann's sessions once, and only hers.
    let mut seen: Vec<String> = one.into_iter().chain(two).collect();
    seen.sort();
    anns.sort();
    assert_eq!(seen, anns);
    // Clamped, and past the end: empty, with the way back.
    let clamped = get(&gw, &cookie, &format!("{CONSOLE}?user=ann&per_page=1000"))
        .await
        .text();
    assert_eq!(session_ids(&clamped).len(), 50);
    // The filter forms carry the other list's filter and the page size.
    let small = get(
        &gw,
        &cookie,
        &format!("{CONSOLE}?user=ann&event=login.failure&per_page=20"),
    )
    .await
    .text();
    assert_eq!(session_ids(&small).len(), 20);
    let form = small
        .split("id=\"filter-user\"")
        .nth(1)
        .and_then(|t| t.split("</form>").next())
        .unwrap();
    assert!(
        form.contains("<input type=\"hidden\" name=\"event\" value=\"login.failure\">")
            && form.contains("<input type=\"hidden\" name=\"per_page\" value=\"20\">"),
        "{form}"
    );
    assert!(href(&small, "sessions-next")
        .unwrap()
        .contains("per_page=20"));
    let past = get(&gw, &cookie, &format!("{CONSOLE}?user=ann&sessions_page=9"))
        .await
        .text();
    assert!(session_ids(&past).is_empty());
    assert!(past.contains("id=\"sessions-none\""));
    assert_eq!(
        href(&past, "sessions-first").as_deref(),
        Some(format!("{CONSOLE}?user=ann").as_str())
    );
    gw.stop().await;
}

#[tokio::test]
async fn a_malformed_page_number_or_cursor_is_a_400_page_with_the_way_back() {
    let gw = start().await;
    let (cookie, _) = boss(&gw).await;
    for bad in [
        "sessions_page=two",
        "sessions_page=0",
        "per_page=-3",
        "audit_before=%3Cx%3E",
        "audit_before=1&audit_after=2",
    ] {
        let r = get(&gw, &cookie, &format!("{CONSOLE}?{bad}")).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{bad}");
        let html = r.text();
        assert!(html.contains("<h1>No such page</h1>"), "{bad}: {html}");
        assert!(!html.contains("id=\"audit\""), "{bad}");
        assert_eq!(href(&html, "console-first").as_deref(), Some(CONSOLE));
    }
    gw.stop().await;
}

#[tokio::test]
async fn what_the_console_shows_is_escaped() {
    let gw = start().await;
    let (cookie, _) = boss(&gw).await;
    gw.session_for("<script>alert(1)</script>", &["agent"])
        .await;
    let page = get(&gw, &cookie, &format!("{CONSOLE}?event=%3Cscript%3Ex"))
        .await
        .text();
    assert!(!page.contains("<script>"), "{page}");
    assert!(page.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
    assert!(page.contains("value=\"&lt;script&gt;x\""));
    gw.stop().await;
}

#[tokio::test]
async fn break_glass_is_armed_shown_and_disarmed_from_the_console_with_the_acting_admin() {
    let gw = start_console(
        "console_roles = [\"admin\"]\n[break_glass]\nmax_window = \"4h\"\nroles = [\"agent\"]",
    )
    .await;
    let (cookie, _) = boss(&gw).await;
    add_user(&gw, "ann", &["agent"]).await;
    let page = get(&gw, &cookie, CONSOLE).await.text();
    assert!(page.contains("<p id=\"break-glass-status\">Not armed.</p>"));
    // Out of bounds is refused with the page, and nothing is armed.
    let r = act(
        &gw,
        &cookie,
        "break-glass/arm",
        &[("users", "ann"), ("duration", "5h"), ("reason", "IdP down")],
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(audited(&gw, "break_glass.armed").await.is_empty());

    let r = act(
        &gw,
        &cookie,
        "break-glass/arm",
        &[
            ("users", "ann"),
            ("duration", "2h"),
            ("reason", "IdP <down>"),
        ],
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert!(
        r.text().contains("/_portcullis/break-glass?t="),
        "{}",
        r.text()
    );
    assert_eq!(
        audited(&gw, "break_glass.armed").await,
        vec![("success".to_owned(), ACTOR.to_owned())]
    );
    let page = get(&gw, &cookie, CONSOLE).await.text();
    let status = page.split("id=\"break-glass-status\"").nth(1).unwrap();
    assert!(status.contains("<td>ann</td>"));
    assert!(status.contains("IdP &lt;down&gt;"));
    assert!(status.contains(ACTOR));
    // The link is shown once: the page never shows it again.
    assert!(!page.contains("break-glass?t="));

    let r = act(&gw, &cookie, "break-glass/disarm", &[("confirm", "yes")]).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(
        audited(&gw, "break_glass.disarmed").await,
        vec![("success".to_owned(), ACTOR.to_owned())]
    );
    assert!(get(&gw, &cookie, CONSOLE)
        .await
        .text()
        .contains("Not armed."));
    gw.stop().await;
}

#[tokio::test]
async fn a_session_made_by_a_remembered_device_is_asked_for_its_factor_at_once() {
    use portcullis::session::{new_token, AuthMethod, Identity, MfaUsed, Session, SessionId};
    let gw = start().await;
    boss(&gw).await;
    let g = gw.gateway();
    let token = new_token().unwrap();
    let identity = Identity {
        user: "boss".into(),
        principal: "native:boss".into(),
        email: None,
        groups: vec![],
        roles: vec!["admin".into()],
        method: AuthMethod::Native,
        mfa: MfaUsed::RememberedDevice,
    };
    let s = Session::new(
        SessionId::of(&token),
        identity,
        gw.clock.now(),
        g.config.session.max_lifetime,
        g.config.session.idle_timeout,
        None,
        None,
    )
    .unwrap();
    g.store.insert(s).await.unwrap();
    let cookie = format!("{}={}", g.cookies.session, token.expose());
    let r = get(&gw, &cookie, CONSOLE).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert!(r.text().contains("id=\"step-up\""));
    gw.stop().await;
}

#[tokio::test]
async fn the_console_fits_at_1200_and_390_px_after_a_real_sign_in() {
    use crate::support::webdriver::{available, ChromeDriver};
    if !available() {
        return;
    }
    let gw = start().await;
    let (_, seed) = boss(&gw).await;
    add_user(&gw, "ann", &["agent"]).await;
    // More than a page of each list, so the page links are on the page measured.
    for _ in 0..55 {
        gw.session_for("ann", &["agent"]).await;
    }
    failures(&gw, "ann", 55).await;
    let driver = ChromeDriver::start().await;
    let wd = driver.session().await;
    wd.set_window_size(1200, 900).await;
    wd.goto(&gw.url("/normal?rd=%2F_portcullis%2Fadmin")).await;
    wd.fill("#username", "boss").await;
    wd.fill("#password", PW).await;
    let button = wd.find("button[type=submit]").await;
    wd.click(&button).await;
    wd.wait_for_url(|u| u.ends_with("/_portcullis/mfa")).await;
    wd.fill("#code", &code_at(&seed, gw.clock.now())).await;
    let verify = wd.find("#code ~ button[type=submit]").await;
    wd.click(&verify).await;
    wd.wait_for_url(|u| u.ends_with("/_portcullis/admin")).await;
    wd.wait_for_text("Admin console").await;
    wd.wait_for_text("More sessions").await;
    wd.wait_for_text("Older events").await;
    for (w, h) in [(1200, 900), (390, 844)] {
        wd.set_window_size(w, h).await;
        wd.screenshot(&format!("console-{w}")).await;
        let bad = crate::pages::overflowing(&wd).await;
        assert!(bad.is_empty(), "console at {w} px: {bad:?}");
    }
    wd.quit().await;
    gw.stop().await;
}

/// The console speaks the browser's language (the catalogue's German beside English): the page,
/// its step-up and its refusals.
#[tokio::test]
async fn the_console_is_in_german_or_english_as_accept_language_asks() {
    let gw = start().await;
    let (cookie, _) = boss(&gw).await;
    let as_lang = |lang: &'static str| {
        let (gw, cookie) = (&gw, cookie.clone());
        async move {
            Http::new()
                .get(
                    &gw.url(CONSOLE),
                    &[
                        ("accept", "text/html"),
                        ("cookie", &cookie),
                        ("accept-language", lang),
                    ],
                )
                .await
                .text()
        }
    };
    let de = as_lang("de-DE,de;q=0.9").await;
    for want in [
        "<h1>Admin-Konsole</h1>",
        "<h2>Sitzungen</h2>",
        "<h2>Audit-Protokoll</h2>",
        "Benutzer anlegen",
        "Zweite Faktoren zurücksetzen",
    ] {
        assert!(de.contains(want), "{want}: {de}");
    }
    assert!(!de.contains("<h2>Sessions</h2>"));
    let en = as_lang("en").await;
    assert!(
        en.contains("<h2>Sessions</h2>") && en.contains("Create user"),
        "{en}"
    );
    // The step-up, once the factor is stale.
    gw.clock.advance(16 * 60);
    let de = as_lang("de").await;
    assert!(de.contains("Bestätigen Sie, dass Sie es sind"), "{de}");
    // A session without a console role: the refusal in German.
    add_user(&gw, "ann", &["agent"]).await;
    let (other, _) = gw.session_for("ann", &["agent"]).await;
    let r = Http::new()
        .get(
            &gw.url(CONSOLE),
            &[
                ("accept", "text/html"),
                ("cookie", &other),
                ("accept-language", "de"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(
        r.text()
            .contains("Dieses Konto darf die Admin-Konsole nicht benutzen."),
        "{}",
        r.text()
    );
}
