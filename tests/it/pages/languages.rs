//! Pages in the browser's language (issue 21): chosen by `Accept-Language` with q-values and
//! region fallback, English when nothing we have is asked for, `[pages] default_language`.

use crate::support::login::{mfa_csrf, password_step, LoginEnv, LoginOpts, PW};
use crate::support::*;
use hyper::StatusCode;

async fn page(http: &Http, url: &str, lang: Option<&str>) -> String {
    let mut headers = vec![("accept", "text/html")];
    if let Some(l) = lang {
        headers.push(("accept-language", l));
    }
    http.get(url, &headers).await.text()
}

#[tokio::test]
async fn the_sign_in_page_is_in_german_or_english_as_accept_language_asks() {
    let env = LoginEnv::start(LoginOpts::default()).await;
    let url = env.gw.url("/normal");
    let http = &env.http;

    let en = page(http, &url, None).await;
    assert!(en.contains("<html lang=\"en\">"), "{en}");
    assert!(
        en.contains("<label for=\"username\">Username</label>"),
        "{en}"
    );
    assert!(
        en.contains("<button type=\"submit\">Sign in</button>"),
        "{en}"
    );
    assert!(en.contains("Protected by portcullis"), "{en}");

    // A region falls back to its language.
    let de = page(http, &url, Some("de-CH")).await;
    assert!(de.contains("<html lang=\"de\">"), "{de}");
    assert!(
        de.contains("<label for=\"username\">Benutzername</label>"),
        "{de}"
    );
    assert!(
        de.contains("<label for=\"password\">Passwort</label>"),
        "{de}"
    );
    assert!(
        de.contains("<button type=\"submit\">Anmelden</button>"),
        "{de}"
    );
    assert!(de.contains("Geschützt durch portcullis"), "{de}");
    assert!(!de.contains("Username"), "{de}");

    // q-values decide, not the order.
    for (header, want) in [
        ("en;q=0.4, de;q=0.8", "de"),
        ("de;q=0.4, en-GB;q=0.8", "en"),
        ("fr-FR, fr;q=0.9, de;q=0.7, en;q=0.6", "de"),
        ("de;q=0, en;q=0.1", "en"),
    ] {
        let html = page(http, &url, Some(header)).await;
        assert!(
            html.contains(&format!("<html lang=\"{want}\">")),
            "{header}: {html}"
        );
    }
    // A language we do not have: English.
    let fr = page(http, &url, Some("fr-FR, ja;q=0.5")).await;
    assert!(
        fr.contains("<html lang=\"en\">") && fr.contains("Username"),
        "{fr}"
    );
}

#[tokio::test]
async fn a_refusal_page_is_translated_and_default_language_serves_browsers_asking_for_nothing_we_have(
) {
    let gw = TestGateway::start_with("[pages]\ndefault_language = \"de\"\n", |_| {}).await;
    let http = Http::new();
    let url = gw.url("/_portcullis/no-such-page");
    let de = page(&http, &url, Some("fr")).await;
    assert!(de.contains("<html lang=\"de\">"), "{de}");
    assert!(de.contains("<h1>Seite nicht gefunden</h1>"), "{de}");
    assert!(
        de.contains(">Erneut anmelden</a>") && de.contains(">Abmelden</a>"),
        "{de}"
    );
    assert!(de.contains("Referenz: <code"), "{de}");
    let none = page(&http, &url, None).await;
    assert!(none.contains("<html lang=\"de\">"), "{none}");
    // Asked for English, English it is.
    let en = page(&http, &url, Some("en-US")).await;
    assert!(en.contains("<h1>Page not found</h1>"), "{en}");
    assert!(en.contains("Reference: <code"), "{en}");
    let r = http.get(&url, &[("accept", "text/html")]).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
}

/// A page as a German-speaking browser with `b`'s cookies sees it.
async fn german(env: &LoginEnv, b: &crate::support::browser::Browser, path: &str) -> String {
    let cookie = b.cookie_header();
    let h = [
        ("accept", "text/html"),
        ("accept-language", "de-DE,de;q=0.9,en;q=0.8"),
        ("cookie", cookie.as_str()),
    ];
    env.http.get(&env.gw.url(path), &h).await.text()
}

#[tokio::test]
async fn the_challenge_and_the_sign_out_confirmation_follow_the_language_through_a_sign_in() {
    let env = LoginEnv::start(LoginOpts::default()).await;
    let seed = env.add_enrolled("jana").await;
    let mut b = env.browser();
    password_step(&mut b, "/normal", "jana", PW).await;
    let challenge = german(&env, &b, "/_portcullis/mfa").await;
    assert!(
        challenge.contains("<h1>Bestätigung in zwei Schritten</h1>"),
        "{challenge}"
    );
    assert!(
        challenge.contains("<label for=\"code\">Bestätigungscode</label>"),
        "{challenge}"
    );
    assert!(challenge.contains(">Überprüfen</button>"), "{challenge}");
    // The same step without the header: English, as every other test sees it.
    let (_, csrf) = mfa_csrf(&mut b, "/_portcullis/mfa").await;
    let r = b
        .post(
            "/_portcullis/mfa",
            &[("code", &env.code(&seed)), ("csrf_token", &csrf)],
        )
        .await;
    assert_eq!(r.status, StatusCode::FOUND, "{}", r.text());
    let confirm = german(&env, &b, "/_portcullis/logout").await;
    assert!(confirm.contains("<h1>Abmelden?</h1>"), "{confirm}");
    assert!(
        confirm.contains("Sie sind als <strong>jana</strong> angemeldet."),
        "{confirm}"
    );
    assert!(
        confirm.contains(">Angemeldet bleiben und zu Ihrem Konto gehen</a>"),
        "{confirm}"
    );
}

/// The sign-in refusal pages (`login::error::page`) come from the catalogue too.
#[tokio::test]
async fn a_sign_in_refusal_is_in_german_or_english_as_accept_language_asks() {
    let env = LoginEnv::start(LoginOpts::default()).await;
    let http = &env.http;
    // The challenge without a pending sign-in: "sign-in expired".
    let url = env.gw.url("/_portcullis/mfa");
    let de = page(http, &url, Some("de-DE,de;q=0.9")).await;
    assert!(de.contains("<h1>Anmeldung abgelaufen</h1>"), "{de}");
    assert!(!de.contains("Sign-in expired"), "{de}");
    let en = page(http, &url, Some("en")).await;
    assert!(en.contains("<h1>Sign-in expired</h1>"), "{en}");
}

/// A POST as a browser asking for `lang` sends it, with `b`'s cookies.
async fn post_in(
    b: &crate::support::browser::Browser,
    lang: &str,
    path: &str,
    form: &[(&str, &str)],
) -> Resp {
    let cookie = b.cookie_header();
    let h = [
        ("accept", "text/html"),
        ("accept-language", lang),
        ("cookie", cookie.as_str()),
    ];
    b.http
        .post_form(&format!("{}{path}", b.base), &h, form)
        .await
}

/// The messages above a form shown again (`login::error::Shown`) come from the catalogue.
#[tokio::test]
async fn a_wrong_password_and_a_wrong_code_are_told_in_german_or_english() {
    let env = LoginEnv::start(LoginOpts::default()).await;
    env.add_enrolled("jana").await;
    let mut b = env.browser();
    // Each form's token is used once: a fresh form for every try.
    let wrong_password = |fields: Vec<(&'static str, String)>| {
        let mut form: Vec<(&'static str, String)> = fields;
        form.push(("username", "jana".into()));
        form.push(("password", "not the password".into()));
        form
    };
    let form = wrong_password(crate::support::login::login_form(&mut b, "/normal").await);
    let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let de = post_in(&b, "de", "/normal", &form).await;
    assert_eq!(de.status, StatusCode::UNAUTHORIZED);
    let de = de.text();
    assert!(
        de.contains("Benutzername oder Passwort ist falsch."),
        "{de}"
    );
    assert!(!de.contains("Incorrect username or password."), "{de}");
    let form = wrong_password(crate::support::login::login_form(&mut b, "/normal").await);
    let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let en = post_in(&b, "en", "/normal", &form).await.text();
    assert!(en.contains("Incorrect username or password."), "{en}");

    password_step(&mut b, "/normal", "jana", PW).await;
    let (_, csrf) = mfa_csrf(&mut b, "/_portcullis/mfa").await;
    let wrong = [("code", "000000"), ("csrf_token", csrf.as_str())];
    let de = post_in(&b, "de-AT", "/_portcullis/mfa", &wrong).await;
    assert_eq!(de.status, StatusCode::UNAUTHORIZED);
    let de = de.text();
    assert!(
        de.contains("Dieser Code ist ungültig. Prüfen Sie ihn und versuchen Sie es erneut."),
        "{de}"
    );
    let (_, csrf) = mfa_csrf(&mut b, "/_portcullis/mfa").await;
    let wrong = [("code", "000000"), ("csrf_token", csrf.as_str())];
    let en = post_in(&b, "en", "/_portcullis/mfa", &wrong).await.text();
    assert!(
        en.contains("That code is not valid. Check it and try again."),
        "{en}"
    );
}

/// The SSO refusal pages (`login::error::Refusal`) are written from catalogue keys.
#[tokio::test]
async fn an_sso_refusal_is_in_german_or_english_as_accept_language_asks() {
    use crate::support::oidc_provider::{TestOp, CLIENT_ID, CLIENT_SECRET};
    let op = TestOp::start(portcullis::clock::Clock::manual(1_800_000_000)).await;
    let toml = format!(
        "[[idp]]\nid = \"corp\"\nkind = \"oidc\"\ndisplay_name = \"Corp\"\nissuer = \"{}\"\n\
client_id = \"{CLIENT_ID}\"\nclient_secret = \"{CLIENT_SECRET}\"\n",
        op.issuer
    );
    let gw = TestGateway::start_with(&toml, |_| {}).await;
    let http = Http::new();
    let url = gw.url("/_portcullis/oidc/corp/callback?code=forged&state=AAAAAAAAAAAAAAAAAAAAAAAA");
    let de = page(&http, &url, Some("de")).await;
    assert!(de.contains("<h1>Anmeldung abgelaufen</h1>"), "{de}");
    assert!(
        de.contains(
            "Dieser Anmeldeversuch ist unbekannt, abgelaufen oder wurde bereits abgeschlossen."
        ),
        "{de}"
    );
    assert!(de.contains("Beginnen Sie die Anmeldung erneut."), "{de}");
    let en = page(&http, &url, Some("en")).await;
    assert!(en.contains("<h1>Sign-in expired</h1>"), "{en}");
    assert!(
        en.contains("This sign-in attempt is unknown, has expired or was already completed."),
        "{en}"
    );
}

/// The proxy path's refusal pages (`http::error`) are in the browser's language; the JSON
/// `detail` stays English for API clients whatever they ask for.
#[tokio::test]
async fn a_proxy_refusal_page_is_in_german_and_its_json_stays_english() {
    let gw = TestGateway::start().await;
    let http = Http::new();
    let (cookie, _) = gw.session_for("eve", &["end_user"]).await;
    let url = gw.url("/admin/users");
    let ask = |html: bool, lang: &'static str| {
        let accept = if html {
            "text/html"
        } else {
            "application/json"
        };
        let h = [
            ("accept", accept),
            ("accept-language", lang),
            ("cookie", cookie.as_str()),
        ];
        let (http, url) = (&http, &url);
        async move { http.get(url, &h).await }
    };
    let de = ask(true, "de-DE").await;
    assert_eq!(de.status, StatusCode::FORBIDDEN);
    let de = de.text();
    assert!(de.contains("<h1>Zugriff verweigert</h1>"), "{de}");
    assert!(
        de.contains("Sie sind angemeldet, aber Ihre Rolle gibt keinen Zugriff auf diese Seite."),
        "{de}"
    );
    assert!(de.contains("Referenz: <code"), "{de}");
    assert!(!de.contains("Access denied"), "{de}");
    let en = ask(true, "en").await.text();
    assert!(en.contains("<h1>Access denied</h1>"), "{en}");
    let api = ask(false, "de").await;
    assert_eq!(api.status, StatusCode::FORBIDDEN);
    assert_eq!(
        api.json()["detail"],
        "You are signed in, but your role does not give access to this page."
    );
    gw.stop().await;
}

/// The account page: headings, labels, buttons and its notices in the browser's language; its
/// element ids and field names are the same in every language.
#[tokio::test]
async fn the_account_page_and_its_notices_are_in_german_or_english() {
    let env = LoginEnv::start(LoginOpts::default()).await;
    let seed = env.add_enrolled("jana").await;
    let mut b = env.browser();
    password_step(&mut b, "/normal", "jana", PW).await;
    let r = crate::support::login::submit_code(&mut b, &env.code(&seed)).await;
    assert_eq!(r.status, StatusCode::FOUND, "{}", r.text());
    let de = german(&env, &b, "/_portcullis/account").await;
    for want in [
        "<title>Ihr Konto",
        "<h1>Ihr Konto</h1>",
        "Angemeldet als <strong>jana</strong> (native).",
        "<h2>Wo Sie angemeldet sind</h2>",
        "<th scope=\"col\">Gerät</th>",
        "<em>dieses Gerät</em>",
        "<h2>Bestätigung in zwei Schritten</h2>",
        "Authenticator-App: <strong>eingerichtet</strong>.",
        "<label for=\"code-totp\">Aktueller Code</label>",
        ">Neue Authenticator-App einrichten</button>",
        "<h2>Gemerkte Geräte</h2>",
        "<p id=\"devices\">Es ist kein Gerät gemerkt.</p>",
        "id=\"logout-confirm\">Abmelden</button>",
        ">gerade eben</time>",
    ] {
        assert!(de.contains(want), "{want}: {de}");
    }
    assert!(!de.contains("Your account"), "{de}");
    let en = b.get("/_portcullis/account").await.text();
    assert!(en.contains("<h1>Your account</h1>"), "{en}");
    assert!(en.contains(">just now</time>"), "{en}");
    assert!(
        en.contains("<p id=\"devices\">No device is remembered.</p>"),
        "{en}"
    );

    // A notice after an action: forgetting devices.
    let csrf = crate::support::browser::input_value(&de, "csrf_token").unwrap();
    let form = [("id", "all"), ("csrf_token", csrf.as_str())];
    let done = post_in(&b, "de", "/_portcullis/account/devices/forget", &form).await;
    assert_eq!(done.status, StatusCode::OK);
    assert!(
        done.text()
            .contains("Erledigt: Dieses Gerät wird wieder nach einem zweiten Faktor gefragt."),
        "{}",
        done.text()
    );
    // A refusal: ending other sessions with a wrong code.
    let form = [
        ("id", "others"),
        ("code", "000000"),
        ("csrf_token", csrf.as_str()),
    ];
    let wrong = post_in(&b, "de", "/_portcullis/account/sessions/end", &form).await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    assert!(
        wrong
            .text()
            .contains("Dieser Code ist ungültig. Geben Sie einen aktuellen Code"),
        "{}",
        wrong.text()
    );
}

/// The lockout message (`Shown::Locked`) in the browser's language.
#[tokio::test]
async fn the_lockout_is_told_in_german_or_english() {
    let env = LoginEnv::start(LoginOpts::default()).await;
    env.add_enrolled("lena").await;
    let mut b = env.browser();
    let mut last = String::new();
    // `max_failures = 3`: the fourth try meets the lock.
    for lang in ["en", "en", "en", "de"] {
        let fields = crate::support::login::login_form(&mut b, "/normal").await;
        let mut form: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
        form.extend([("username", "lena"), ("password", "wrong")]);
        let r = post_in(&b, lang, "/normal", &form).await;
        last = r.text();
        if lang == "de" {
            assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "{last}");
        }
    }
    assert!(
        last.contains("Zu viele fehlgeschlagene Versuche. Zu Ihrer Sicherheit ist die Anmeldung"),
        "{last}"
    );
    let fields = crate::support::login::login_form(&mut b, "/normal").await;
    let mut form: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
    form.extend([("username", "lena"), ("password", PW)]);
    let en = post_in(&b, "en", "/normal", &form).await.text();
    assert!(
        en.contains("Too many failed attempts. For your security, sign-in is paused"),
        "{en}"
    );
}
