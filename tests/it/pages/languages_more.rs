//! The sign-in side's other pages in the browser's language (issue 21): SAML's "not completed"
//! and signed-out pages, the break-glass page and the "this was not me" pages, German and English.

use crate::notify::{report_path, Env, Opts};
use crate::support::browser::{element_text, input_value, Browser};
use crate::support::saml_idp::*;
use crate::support::*;
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use hyper::{Method, StatusCode};
use std::time::Duration;

const DE: &str = "de-DE,de;q=0.9,en;q=0.8";

/// `path` as `b` (its cookies) asks for it in `lang`; `b` does not take the answer's cookies.
async fn get_in(b: &Browser, path: &str, lang: &str) -> Resp {
    let cookie = b.cookie_header();
    let h = [
        ("accept", "text/html"),
        ("accept-language", lang),
        ("cookie", cookie.as_str()),
    ];
    b.http.get(&format!("{}{path}", b.base), &h).await
}

/// A form POST as `b` in `lang`.
async fn post_in(b: &Browser, path: &str, lang: &str, form: &[(&str, &str)]) -> Resp {
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

const SP: &str = "https://helpdesk.test/_portcullis/saml/corp";

/// A gateway with one SAML IdP `corp` (as in tests/it/saml.rs), its clock on real time.
async fn saml_env() -> (SamlIdp, TestGateway) {
    let idp = SamlIdp::new("https://idp.test/saml");
    let metadata = idp.metadata_xml();
    let toml = format!(
        r#"
[storage]
url = "sqlite://users.db"

[[idp]]
id = "corp"
kind = "saml"
display_name = "Corp SAML"
metadata = "idp-metadata.xml"
sp_entity_id = "{SP}"
groups_attribute = "groups"
clock_skew = "60s"
on_missing_mfa = "trust"
"#
    );
    let gw = TestGateway::start_with(&toml, |d| {
        std::fs::write(d.join("idp-metadata.xml"), &metadata).unwrap();
    })
    .await;
    let real = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    gw.clock.advance(real - gw.clock.now());
    (idp, gw)
}

/// From a protected page to the IdP in `b`: the AuthnRequest's ID.
async fn start_saml(b: &mut Browser) -> String {
    let r = b.get("/agent/tickets").await;
    let r = b.get(r.header("location").unwrap()).await;
    let url = r.header("location").unwrap().to_owned();
    assert!(url.starts_with("https://idp.test/sso?"), "{url}");
    root_attr(&decode_redirect(&url, "SAMLRequest"), "ID").unwrap()
}

fn spec_for(idp: &SamlIdp, gw: &TestGateway, id: &str) -> ResponseSpec {
    let acs = format!("http://{}/_portcullis/saml/corp/acs", gw.addr);
    let mut s = ResponseSpec::valid(idp, SP, &acs, Some(id), "sam@corp.example");
    s.attributes = vec![("groups".into(), vec!["agents".into()])];
    s.session_index = Some("_idp-session-1".into());
    s
}

#[tokio::test]
async fn the_saml_not_completed_page_is_in_german_and_keeps_the_idps_status() {
    let (idp, gw) = saml_env().await;
    for (lang, title, answered, next) in [
        (
            DE,
            "Anmeldung nicht abgeschlossen",
            "Ihr Identitätsanbieter hat Sie nicht angemeldet. Seine Antwort:",
            "Beginnen Sie die Anmeldung erneut oder fragen Sie Ihren Administrator, ob Sie Zugriff haben.",
        ),
        (
            "en",
            "Sign-in not completed",
            "Your identity provider did not sign you in. It answered:",
            "Start the sign-in again, or ask your administrator whether you have access.",
        ),
    ] {
        let mut b = Browser::new(&format!("http://{}", gw.addr));
        let id = start_saml(&mut b).await;
        let mut spec = spec_for(&idp, &gw, &id);
        spec.status = "urn:oasis:names:tc:SAML:2.0:status:Responder".into();
        spec.status_message = Some("User cancelled".into());
        let xml = B64.encode(idp.response(&spec));
        let r = post_in(&b, "/_portcullis/saml/corp/acs", lang, &[("SAMLResponse", &xml)]).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{lang}");
        let page = r.text();
        assert!(page.contains(&format!("<title>{title}")), "{page}");
        assert!(page.contains(&format!("<h1>{title}</h1>")), "{page}");
        assert!(page.contains(answered), "{page}");
        assert!(page.contains(&format!("<p>{next}</p>")), "{page}");
        // The IdP's own words are shown as it sent them, in any language.
        assert_eq!(
            element_text(&page, "saml-status").as_deref(),
            Some("Responder")
        );
        assert!(page.contains("(User cancelled)"), "{page}");
        assert!(page.contains("id=\"correlation-id\""), "{page}");
    }
}

#[tokio::test]
async fn the_saml_signed_out_page_is_in_german_or_english() {
    let (idp, gw) = saml_env().await;
    let slo = format!("http://{}/_portcullis/saml/corp/slo", gw.addr);
    for (lang, h1, button) in [
        (DE, "Sie sind abgemeldet", "Erneut anmelden"),
        ("en", "You are signed out", "Sign in again"),
    ] {
        let mut b = Browser::new(&format!("http://{}", gw.addr));
        let id = start_saml(&mut b).await;
        let xml = B64.encode(idp.response(&spec_for(&idp, &gw, &id)));
        let r = b
            .post("/_portcullis/saml/corp/acs", &[("SAMLResponse", &xml)])
            .await;
        let r = b.follow(r).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text());
        let r = b.logout().await;
        let url = r.header("location").unwrap().to_owned();
        assert!(url.starts_with("https://idp.test/slo?"), "{url}");
        let req_id = root_attr(&decode_redirect(&url, "SAMLRequest"), "ID").unwrap();
        let signed = idp.redirect_query(
            "SAMLResponse",
            &idp.logout_response(&slo, &req_id),
            None,
            true,
        );
        let r = get_in(&b, &format!("/_portcullis/saml/corp/slo?{signed}"), lang).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text());
        let page = r.text();
        assert!(page.contains(&format!("<h1>{h1}</h1>")), "{page}");
        assert!(
            page.contains(&format!("href=\"/_portcullis/login\">{button}</a>")),
            "{page}"
        );
    }
}

const BREAK_GLASS: &str = "\n[break_glass]\nmax_window = \"4h\"\nroles = [\"agent\"]\n";

#[tokio::test]
async fn the_break_glass_page_is_in_german_or_english() {
    let env = Env::start(Opts {
        extra: BREAK_GLASS.into(),
        ..Default::default()
    })
    .await;
    let r = env
        .admin(
            Method::POST,
            "/api/v1/break-glass",
            Some(serde_json::json!({"users": ["ivy"], "duration": "1h", "reason": "IdP outage"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    let url = r.json()["links"][0]["url"].as_str().unwrap().to_owned();
    let link = url
        .strip_prefix(&format!("http://{}", env.gw.addr))
        .unwrap()
        .to_owned();
    let b = env.browser();
    let de = get_in(&b, &link, DE).await;
    assert_eq!(de.status, StatusCode::OK);
    let de = de.text();
    assert!(de.contains("<html lang=\"de\">"), "{de}");
    assert!(de.contains("<h1>Notfallzugang</h1>"), "{de}");
    assert!(
        de.contains("Er funktioniert nur einmal. Jeder Schritt wird aufgezeichnet"),
        "{de}"
    );
    assert!(
        de.contains("id=\"break-glass-continue\">Weiter</button>"),
        "{de}"
    );
    let en = get_in(&b, &link, "en").await.text();
    assert!(en.contains("<h1>Emergency access</h1>"), "{en}");
    assert!(
        en.contains("id=\"break-glass-continue\">Continue</button>"),
        "{en}"
    );
    // Only the words changed: the German form still uses the link.
    let t = input_value(&de, "t").unwrap();
    let used = post_in(&b, "/_portcullis/break-glass", DE, &[("t", &t)]).await;
    assert_eq!(used.status, StatusCode::FOUND, "{}", used.text());
}

#[tokio::test]
async fn the_not_me_pages_are_in_german_or_english() {
    let env = Env::start(Opts::default()).await;
    let seed = env.add_enrolled("ola").await;
    let mut b = env.browser();
    env.sign_in(&mut b, "ola", &seed).await;
    let m = env.mail_about("New sign-in", Duration::from_secs(5)).await;
    let path = report_path(&m);

    let en = b.get(&path).await.text();
    assert!(en.contains("<h1>Was this sign-in not you?</h1>"), "{en}");
    assert!(
        en.contains("Confirming signs out <strong>ola</strong> everywhere"),
        "{en}"
    );
    assert!(
        en.contains("id=\"report-confirm\">It was not me: sign out everywhere</button>"),
        "{en}"
    );
    // `b` now holds this page's form cookie; the German page shows the same form.
    let (t, csrf) = (
        input_value(&en, "t").unwrap(),
        input_value(&en, "csrf_token").unwrap(),
    );
    let de = get_in(&b, &path, DE).await.text();
    assert!(de.contains("<title>Eine Anmeldung melden"), "{de}");
    assert!(
        de.contains("<h1>War diese Anmeldung nicht von Ihnen?</h1>"),
        "{de}"
    );
    assert!(
        de.contains("Wenn Sie bestätigen, wird <strong>ola</strong> überall abgemeldet"),
        "{de}"
    );
    assert!(
        de.contains("id=\"report-confirm\">Das war ich nicht: überall abmelden</button>"),
        "{de}"
    );
    assert!(
        de.contains("Wenn Sie es waren, schließen Sie diese Seite."),
        "{de}"
    );

    let done = post_in(
        &b,
        "/_portcullis/not-me",
        DE,
        &[("t", &t), ("csrf_token", &csrf)],
    )
    .await;
    assert_eq!(done.status, StatusCode::OK, "{}", done.text());
    let done = done.text();
    assert!(done.contains("<h1>Überall abgemeldet</h1>"), "{done}");
    assert_eq!(
        element_text(&done, "report-done").as_deref(),
        Some(
            "Jede Sitzung dieses Kontos wurde beendet, und Ihre Administratoren wurden informiert. \
Ändern Sie jetzt Ihr Passwort (oder bitten Sie Ihren Administrator, es zurückzusetzen)."
        )
    );
    // The English done page is `notify`'s test (`Signed out everywhere`).
}
