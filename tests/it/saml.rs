//! SAML single sign-on against the test IdP (`support::saml_idp`, real XML signatures made with
//! keys generated for the test): one test per row of `conformance/saml-sp.md` (named after the
//! row), MFA evidence under deny / step_up / trust, SP metadata, and Single Logout both ways.

use crate::support::browser::*;
use crate::support::saml_idp::*;
use crate::support::stores::Store;
use crate::support::*;
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use hyper::StatusCode;
use portcullis::session::SessionStore;
use std::process::Command;

const SP: &str = "https://helpdesk.test/_portcullis/saml/corp";
const IDP: &str = "https://idp.test/saml";
const STORAGE: &str = "\n[storage]\nurl = \"sqlite://users.db\"\n";
const MFA: &str = "https://refeds.org/profile/mfa";

fn idp_toml(extra: &str) -> String {
    format!(
        r#"
[[idp]]
id = "corp"
kind = "saml"
display_name = "Corp SAML"
metadata = "idp-metadata.xml"
sp_entity_id = "{SP}"
groups_attribute = "groups"
email_attribute = "email"
clock_skew = "60s"
mfa_evidence = {{ authn_context_any = ["{MFA}"] }}
{extra}
"#
    )
}

struct Env {
    idp: SamlIdp,
    gw: TestGateway,
}

impl Env {
    /// One SAML IdP `corp` with `extra` keys (after the [[idp]] keys) and `tail` TOML after it.
    async fn start(extra: &str) -> Env {
        Self::start_full(extra, "").await
    }

    async fn start_full(extra: &str, tail: &str) -> Env {
        Self::start_on(&Store::Memory, extra, tail).await
    }

    /// As `start_full`, with the gateway's sessions and single-use state in `store`.
    async fn start_on(store: &Store, extra: &str, tail: &str) -> Env {
        let idp = SamlIdp::new(IDP);
        let metadata = idp.metadata_xml();
        let toml = format!("{STORAGE}{}{tail}", idp_toml(extra));
        let gw = TestGateway::start_on(store, &toml, |d| {
            std::fs::write(d.join("idp-metadata.xml"), &metadata).unwrap();
        })
        .await;
        // The test IdP stamps real time; the gateway's manual clock follows it.
        let real = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64;
        gw.clock.advance(real - gw.clock.now());
        Env { idp, gw }
    }

    fn browser(&self) -> Browser {
        Browser::new(&format!("http://{}", self.gw.addr))
    }

    fn acs(&self) -> String {
        format!("http://{}/_portcullis/saml/corp/acs", self.gw.addr)
    }

    fn slo(&self) -> String {
        format!("http://{}/_portcullis/saml/corp/slo", self.gw.addr)
    }

    /// A valid response for `request_id` naming `user`, with MFA evidence and the agents group.
    fn spec(&self, request_id: Option<&str>, user: &str) -> ResponseSpec {
        let mut s = ResponseSpec::valid(&self.idp, SP, &self.acs(), request_id, user);
        s.attributes = vec![
            ("groups".into(), vec!["agents".into()]),
            ("email".into(), vec![format!("{user}")]),
        ];
        s.authn_context = Some(MFA.into());
        s.session_index = Some("_idp-session-1".into());
        s
    }

    async fn audit(&self, kind: &str) -> Vec<(String, String)> {
        self.gw.audit(kind).await
    }
}

fn location(r: &Resp) -> String {
    r.header("location")
        .unwrap_or_else(|| panic!("no redirect: {} {}", r.status, r.text()))
        .to_owned()
}

/// From a protected page to the IdP: the AuthnRequest URL the browser is sent to.
async fn to_idp(b: &mut Browser, start: &str) -> String {
    let r = b.get(start).await;
    assert_eq!(r.status, StatusCode::FOUND, "{}", r.text());
    let r = b.get(&location(&r)).await; // gateway /login → the IdP
    assert_eq!(r.status, StatusCode::FOUND, "{}", r.text());
    let url = location(&r);
    assert!(url.starts_with("https://idp.test/sso?"), "{url}");
    url
}

/// Starts a login at `/agent/tickets`; the AuthnRequest's ID.
async fn start_login(b: &mut Browser) -> String {
    let url = to_idp(b, "/agent/tickets").await;
    root_attr(&decode_redirect(&url, "SAMLRequest"), "ID").unwrap()
}

async fn post(b: &mut Browser, xml: &str) -> Resp {
    b.post(
        "/_portcullis/saml/corp/acs",
        &[("SAMLResponse", &B64.encode(xml))],
    )
    .await
}

/// Posts `xml` and follows the redirects: the final response.
async fn post_and_follow(b: &mut Browser, xml: &str) -> Resp {
    let r = post(b, xml).await;
    b.follow(r).await
}

/// A response the gateway must refuse: a 4xx page with a correlation id, and no session.
async fn assert_refused(env: &Env, b: &mut Browser, xml: &str, status: StatusCode) {
    let r = post(b, xml).await;
    assert_eq!(r.status, status, "{}", r.text());
    assert!(
        r.text().contains("id=\"correlation-id\""),
        "a clear page with a reference: {}",
        r.text()
    );
    assert!(!b.jar.contains_key("portcullis"), "no session cookie");
    let again = b.get("/agent/tickets").await;
    assert_eq!(again.status, StatusCode::FOUND, "still signed out");
    let _ = env;
}

/// SP-initiated login, then `mutate` the valid spec; the response must be refused with 403.
async fn refused_after(env: &Env, mutate: impl FnOnce(&mut ResponseSpec)) {
    let mut b = env.browser();
    let id = start_login(&mut b).await;
    let mut spec = env.spec(Some(&id), "sam@corp.example");
    mutate(&mut spec);
    let xml = env.idp.response(&spec);
    assert_refused(env, &mut b, &xml, StatusCode::FORBIDDEN).await;
}

async fn signed_in_as(env: &Env, b: &mut Browser, xml: &str) -> Resp {
    let r = post_and_follow(b, xml).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(
        r.upstream_header("x-auth-method").as_deref(),
        Some("saml:corp")
    );
    let _ = env;
    r
}

#[tokio::test]
async fn valid_signed_response_assertion_or_both_logs_the_user_in() {
    let env = Env::start("on_missing_mfa = \"deny\"").await;
    for sign in [Sign::Response, Sign::Assertion, Sign::Both] {
        let mut b = env.browser();
        let id = start_login(&mut b).await;
        let mut spec = env.spec(Some(&id), "sam@corp.example");
        spec.sign = sign;
        let r = signed_in_as(&env, &mut b, &env.idp.response(&spec)).await;
        let v = r.json();
        assert_eq!(v["path"], "/agent/tickets", "back where the user started");
        assert_eq!(
            r.upstream_header("x-forwarded-user").as_deref(),
            Some("sam@corp.example")
        );
        assert_eq!(r.upstream_header("x-auth-mfa").as_deref(), Some("idp"));
        assert_eq!(r.upstream_header("x-auth-roles").as_deref(), Some("agent"));
        assert_eq!(
            r.upstream_header("x-forwarded-groups").as_deref(),
            Some("agents")
        );
        assert!(
            !b.jar.keys().any(|k| k.contains("saml")),
            "the request binding is spent"
        );
    }
    assert_eq!(
        env.audit("stepup.decision").await,
        vec![("idp_evidence".to_owned(), "evidence_present".to_owned()); 3]
    );
}

#[tokio::test]
async fn the_authn_request_has_a_long_random_id_no_relay_state_and_the_configured_options() {
    let env = Env::start(&format!(
        "force_authn = true\nrequested_authn_context = [\"{MFA}\"]"
    ))
    .await;
    let mut b = env.browser();
    let url = to_idp(&mut b, "/agent/tickets").await;
    assert!(!url.contains("RelayState"), "no user data through the IdP");
    assert!(!url.contains("Signature="), "unsigned without sp_key");
    let xml = decode_redirect(&url, "SAMLRequest");
    let id = root_attr(&xml, "ID").unwrap();
    assert!(id.len() > 22, "at least 128 random bits: {id}");
    assert_eq!(root_attr(&xml, "ForceAuthn").as_deref(), Some("true"));
    assert_eq!(
        root_attr(&xml, "AssertionConsumerServiceURL"),
        Some(env.acs())
    );
    assert_eq!(
        first_text(&xml, "AuthnContextClassRef").as_deref(),
        Some(MFA)
    );
    assert_eq!(first_text(&xml, "Issuer").as_deref(), Some(SP));
    let other = root_attr(
        &decode_redirect(&to_idp(&mut b, "/agent/x").await, "SAMLRequest"),
        "ID",
    );
    assert_ne!(other.as_deref(), Some(id.as_str()), "a fresh id each time");
}

#[tokio::test]
async fn authn_requests_are_signed_when_sp_key_is_set() {
    let dir = TempDir::new("spkeys");
    let key = dir.path().join("sp.key");
    let cert = dir.path().join("sp.crt");
    let ok = Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=sp",
        ])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .unwrap();
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let env = Env::start(&format!(
        "sp_key = \"{}\"\nsp_cert = \"{}\"",
        key.display(),
        cert.display()
    ))
    .await;
    let mut b = env.browser();
    let url = to_idp(&mut b, "/agent/tickets").await;
    assert!(
        url.contains("SigAlg=") && url.contains("Signature="),
        "{url}"
    );
    let pem = std::fs::read_to_string(&cert).unwrap();
    let verifier = samael::crypto::UrlVerifier::from_x509_cert_pem(&pem).unwrap();
    let query = url.split_once('?').unwrap().1;
    assert!(verifier
        .verify_percent_encoded_request_uri_string(&format!("/sso?{query}"))
        .unwrap());
    // The SP metadata publishes that certificate and says requests are signed.
    let md = b.get("/_portcullis/saml/corp/metadata").await.text();
    assert!(md.contains("AuthnRequestsSigned=\"true\""));
    let b64: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    assert!(md.contains(&b64), "the signing certificate is published");
}

#[tokio::test]
async fn unsigned_response_is_refused() {
    let env = Env::start("").await;
    refused_after(&env, |s| s.sign = Sign::None).await;
    assert!(env
        .audit("login.failure")
        .await
        .contains(&("refused".to_owned(), "signature".to_owned())));
}

#[tokio::test]
async fn unsigned_config_metadata_without_a_signing_certificate_is_refused_at_start() {
    let idp = SamlIdp::new(IDP);
    let dir = TempDir::new("nocert");
    std::fs::write(
        dir.path().join("idp-metadata.xml"),
        idp.metadata_xml_without_certs(),
    )
    .unwrap();
    let toml = base_config(UNSERVED_PORT, "127.0.0.1:9".parse().unwrap(), &idp_toml(""));
    let path = dir.path().join("p.toml");
    std::fs::write(&path, &toml).unwrap();
    let line = toml
        .lines()
        .position(|l| l.starts_with("metadata = "))
        .unwrap()
        + 1;
    for verb in ["check", "run"] {
        let out = Command::new(env!("CARGO_BIN_EXE_portcullis"))
            .args([verb, "--config"])
            .arg(&path)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1), "{verb} refuses");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains(&format!("{}:{line}: idp[0].metadata:", path.display()))
                && err.contains("no signing certificate"),
            "{verb}: {err}"
        );
    }
}

#[tokio::test]
async fn wrong_key_with_the_attackers_cert_in_key_info_is_refused() {
    let env = Env::start("").await;
    refused_after(&env, |s| s.signer = Signer::Other).await;
}

#[tokio::test]
async fn tampered_name_id_or_attribute_after_signing_is_refused() {
    let env = Env::start("").await;
    refused_after(&env, |s| {
        s.tamper = Some(("sam@corp.example<".into(), "admin@corp.example<".into()))
    })
    .await;
    refused_after(&env, |s| {
        s.tamper = Some((">agents<".into(), ">admins<".into()))
    })
    .await;
}

/// XSW1–XSW8: never signed in as the attacker's subject (and here: refused outright).
async fn xsw(n: u8) {
    let env = Env::start("").await;
    let mut b = env.browser();
    let id = start_login(&mut b).await;
    let mut spec = env.spec(Some(&id), "sam@corp.example");
    spec.sign = if n <= 2 {
        Sign::Response
    } else {
        Sign::Assertion
    };
    let xml = env.idp.xsw(n, &spec, "admin@corp.example");
    let r = post(&mut b, &xml).await;
    assert!(
        r.status.is_client_error(),
        "XSW{n} refused: {} {}",
        r.status,
        r.text()
    );
    // Neither the forged subject nor anyone else: no session at all.
    assert!(!b.jar.contains_key("portcullis"), "XSW{n}: no session");
    let after = b.get("/agent/tickets").await;
    assert_eq!(after.status, StatusCode::FOUND, "XSW{n}: still signed out");
    assert!(
        !after.text().contains("admin@corp.example"),
        "XSW{n} never yields the forged subject"
    );
}

#[tokio::test]
async fn xsw1_unsigned_copy_as_root_with_the_signed_original_in_its_signature() {
    xsw(1).await;
}
#[tokio::test]
async fn xsw2_signed_original_as_a_sibling_before_the_forged_content() {
    xsw(2).await;
}
#[tokio::test]
async fn xsw3_forged_assertion_before_the_signed_one() {
    xsw(3).await;
}
#[tokio::test]
async fn xsw4_forged_assertion_wraps_the_signed_one() {
    xsw(4).await;
}
#[tokio::test]
async fn xsw5_changed_signed_assertion_with_an_untouched_copy_elsewhere() {
    xsw(5).await;
}
#[tokio::test]
async fn xsw6_signed_original_inside_the_signature_of_a_forged_copy() {
    xsw(6).await;
}
#[tokio::test]
async fn xsw7_forged_assertion_inside_extensions() {
    xsw(7).await;
}
#[tokio::test]
async fn xsw8_signed_original_inside_an_object_of_the_forged_signature() {
    xsw(8).await;
}

#[tokio::test]
async fn two_assertions_in_one_response_are_refused() {
    let env = Env::start("").await;
    refused_after(&env, |s| s.extra_assertion = true).await;
    assert!(env
        .audit("login.failure")
        .await
        .contains(&("refused".to_owned(), "assertion_count".to_owned())));
}

#[tokio::test]
async fn comment_injection_in_name_id_yields_the_full_text_value() {
    let env = Env::start("on_missing_mfa = \"deny\"").await;
    let mut b = env.browser();
    let id = start_login(&mut b).await;
    let spec = env.spec(Some(&id), "admin@corp.example<!---->.evil.example");
    let r = signed_in_as(&env, &mut b, &env.idp.response(&spec)).await;
    assert_eq!(
        r.upstream_header("x-forwarded-user").as_deref(),
        Some("admin@corp.example.evil.example"),
        "the whole text, never the part before the comment"
    );
}

#[tokio::test]
async fn audience_missing_or_other_is_refused() {
    let env = Env::start("").await;
    refused_after(&env, |s| s.audience = None).await;
    refused_after(&env, |s| s.audience = Some("https://other.sp/".into())).await;
}

#[tokio::test]
async fn recipient_or_destination_of_another_acs_is_refused() {
    let env = Env::start("").await;
    refused_after(&env, |s| s.recipient = "https://other.sp/acs".into()).await;
    refused_after(&env, |s| {
        s.destination = Some("https://other.sp/acs".into())
    })
    .await;
}

#[tokio::test]
async fn in_response_to_unknown_used_or_missing_is_refused() {
    let env = Env::start("").await;
    // Unknown: a request id this gateway never made.
    refused_after(&env, |s| {
        s.in_response_to = Some("_never-issued-by-us".into())
    })
    .await;
    // Missing (an unsolicited response) while IdP-initiated login is off.
    refused_after(&env, |s| s.in_response_to = None).await;
    // Already used: the same request answered twice with two different assertions.
    let mut b = env.browser();
    let id = start_login(&mut b).await;
    let first = env.idp.response(&env.spec(Some(&id), "sam@corp.example"));
    signed_in_as(&env, &mut b, &first).await;
    let mut b2 = env.browser();
    b2.jar = b.jar.clone();
    b2.jar.remove("portcullis");
    let second = env.idp.response(&env.spec(Some(&id), "sam@corp.example"));
    assert_refused(&env, &mut b2, &second, StatusCode::FORBIDDEN).await;
    // Bound to the browser: the right id posted by another browser is refused.
    let mut b3 = env.browser();
    let id = start_login(&mut b3).await;
    let mut stranger = env.browser();
    let xml = env.idp.response(&env.spec(Some(&id), "sam@corp.example"));
    assert_refused(&env, &mut stranger, &xml, StatusCode::FORBIDDEN).await;
}

#[tokio::test]
async fn idp_initiated_login_only_when_allowed_and_then_replays_are_refused() {
    let env = Env::start("allow_idp_initiated = true\non_missing_mfa = \"deny\"").await;
    let xml = env.idp.response(&env.spec(None, "ida@corp.example"));
    let mut b = env.browser();
    let r = post(&mut b, &xml).await;
    assert_eq!(r.status, StatusCode::FOUND, "{}", r.text());
    assert_eq!(
        location(&r),
        format!("http://{}/", env.gw.addr),
        "IdP-initiated lands on /"
    );
    let r = b.get("/agent/tickets").await;
    assert_eq!(
        r.upstream_header("x-forwarded-user").as_deref(),
        Some("ida@corp.example")
    );
    // replay: the same valid response posted twice (another browser, same bytes).
    let mut b2 = env.browser();
    assert_refused(&env, &mut b2, &xml, StatusCode::FORBIDDEN).await;
    assert!(env
        .audit("login.failure")
        .await
        .contains(&("refused".to_owned(), "replay".to_owned())));
}

#[tokio::test]
async fn replay_of_the_same_valid_response_is_refused() {
    let env = Env::start("").await;
    let mut b = env.browser();
    let id = start_login(&mut b).await;
    let xml = env.idp.response(&env.spec(Some(&id), "sam@corp.example"));
    signed_in_as(&env, &mut b, &xml).await;
    let mut again = env.browser();
    again.jar = b.jar.clone();
    again.jar.remove("portcullis");
    assert_refused(&env, &mut again, &xml, StatusCode::FORBIDDEN).await;
}

#[tokio::test]
async fn time_not_before_in_the_future_or_not_on_or_after_in_the_past_is_refused() {
    let env = Env::start("on_missing_mfa = \"deny\"").await;
    refused_after(&env, |s| s.not_before_offset = 600).await;
    refused_after(&env, |s| {
        s.not_before_offset = -900;
        s.not_on_or_after_offset = -300;
    })
    .await;
    refused_after(&env, |s| s.subject_not_on_or_after_offset = Some(-300)).await;
    // Within the configured skew (60s) both ways: accepted.
    let mut b = env.browser();
    let id = start_login(&mut b).await;
    let mut spec = env.spec(Some(&id), "sam@corp.example");
    spec.not_before_offset = 30;
    spec.subject_not_on_or_after_offset = Some(-30);
    signed_in_as(&env, &mut b, &env.idp.response(&spec)).await;
}

#[tokio::test]
async fn issuer_other_than_the_configured_idp_is_refused() {
    let env = Env::start("").await;
    refused_after(&env, |s| s.issuer = "https://evil.test/saml".into()).await;
}

#[tokio::test]
async fn weak_algorithm_rsa_sha1_is_refused_unless_explicitly_allowed() {
    let env = Env::start("").await;
    refused_after(&env, |s| s.algorithm = Alg::Sha1).await;
    assert!(env
        .audit("login.failure")
        .await
        .contains(&("refused".to_owned(), "algorithm".to_owned())));
    let env = Env::start(
        "allowed_algorithms = [\"rsa-sha256\", \"rsa-sha1\"]\non_missing_mfa = \"deny\"",
    )
    .await;
    let mut b = env.browser();
    let id = start_login(&mut b).await;
    let mut spec = env.spec(Some(&id), "sam@corp.example");
    spec.algorithm = Alg::Sha1;
    signed_in_as(&env, &mut b, &env.idp.response(&spec)).await;
}

#[tokio::test]
async fn dtd_doctype_internal_or_external_entities_are_refused_before_expansion() {
    let env = Env::start("").await;
    let mut b = env.browser();
    let id = start_login(&mut b).await;
    let valid = env.idp.response(&env.spec(Some(&id), "sam@corp.example"));
    let body = valid
        .trim_start_matches(|c| c != '<')
        .trim_start_matches("<?xml version=\"1.0\" encoding=\"UTF-8\"?>")
        .trim_start_matches("<?xml version=\"1.0\"?>")
        .to_owned();
    let laughs = "<!DOCTYPE r [<!ENTITY a \"aaaaaaaaaa\"><!ENTITY b \"&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;\"><!ENTITY c \"&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;\"><!ENTITY d \"&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;\">]>";
    let external = "<!DOCTYPE r [<!ENTITY x SYSTEM \"file:///etc/passwd\">]>";
    for dtd in [laughs, external, "<!DOCTYPE samlp:Response>"] {
        let xml = format!("<?xml version=\"1.0\"?>{dtd}{body}");
        assert_refused(&env, &mut b, &xml, StatusCode::BAD_REQUEST).await;
    }
    assert!(
        env.audit("login.failure")
            .await
            .iter()
            .filter(|(_, r)| r == "saml_malformed")
            .count()
            >= 3
    );
}

#[tokio::test]
async fn size_a_multi_megabyte_saml_response_is_refused_with_413() {
    let env = Env::start("").await;
    let mut b = env.browser();
    start_login(&mut b).await;
    let huge = "A".repeat(3 * 1024 * 1024);
    let r = b
        .post("/_portcullis/saml/corp/acs", &[("SAMLResponse", &huge)])
        .await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE, "{}", r.text());
    assert!(!b.jar.contains_key("portcullis"));
}

#[tokio::test]
async fn status_not_success_shows_the_idps_status_and_creates_no_session() {
    let env = Env::start("").await;
    let mut b = env.browser();
    let id = start_login(&mut b).await;
    let mut spec = env.spec(Some(&id), "sam@corp.example");
    spec.status = "urn:oasis:names:tc:SAML:2.0:status:Responder".into();
    spec.status_message = Some("User <b>cancelled</b>".into());
    let r = post(&mut b, &env.idp.response(&spec)).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let page = r.text();
    assert_eq!(
        element_text(&page, "saml-status").as_deref(),
        Some("Responder")
    );
    assert!(
        page.contains("User &lt;b&gt;cancelled&lt;/b&gt;"),
        "escaped: {page}"
    );
    assert!(!b.jar.contains_key("portcullis"));
    assert!(env
        .audit("login.failure")
        .await
        .contains(&("refused".to_owned(), "idp_status".to_owned())));
}

#[tokio::test]
async fn mfa_evidence_missing_under_deny_refuses_with_an_audit_event() {
    let env = Env::start("on_missing_mfa = \"deny\"").await;
    refused_after(&env, |s| {
        s.authn_context =
            Some("urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport".into())
    })
    .await;
    assert!(env
        .audit("stepup.decision")
        .await
        .contains(&("deny".to_owned(), "evidence_missing".to_owned())));
}

#[tokio::test]
async fn mfa_evidence_missing_under_trust_signs_in_with_mfa_none() {
    let env = Env::start("on_missing_mfa = \"trust\"").await;
    let mut b = env.browser();
    let id = start_login(&mut b).await;
    let mut spec = env.spec(Some(&id), "sam@corp.example");
    spec.authn_context = None;
    let r = signed_in_as(&env, &mut b, &env.idp.response(&spec)).await;
    assert_eq!(r.upstream_header("x-auth-mfa").as_deref(), Some("none"));
    assert!(env
        .audit("stepup.decision")
        .await
        .contains(&("trust".to_owned(), "evidence_missing".to_owned())));
}

#[tokio::test]
async fn mfa_evidence_missing_under_step_up_enrolls_the_gateways_own_factor() {
    let env = Env::start("on_missing_mfa = \"step_up\"").await;
    let mut b = env.browser();
    let id = start_login(&mut b).await;
    let mut spec = env.spec(Some(&id), "sam@corp.example");
    spec.authn_context =
        Some("urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport".into());
    let r = post(&mut b, &env.idp.response(&spec)).await;
    assert_eq!(r.status, StatusCode::FOUND, "{}", r.text());
    assert!(
        location(&r).ends_with("/_portcullis/mfa/enroll"),
        "{}",
        location(&r)
    );
    let page = b.get(&location(&r)).await;
    let uri = element_text(&page.text(), "totp-uri").unwrap();
    let seed = seed_of(&unescape(&uri));
    let csrf = input_value(&page.text(), "csrf_token").unwrap();
    let code = portcullis::mfa::totp::code_at(&seed, env.gw.clock.now());
    let r = b
        .post(
            "/_portcullis/mfa/enroll",
            &[("code", &code), ("csrf_token", &csrf)],
        )
        .await;
    let r = b.follow(r).await;
    // Recovery codes are shown once, then on to where the user was going.
    let next = r.text();
    assert!(next.contains("recovery"), "{next}");
    let r = b.get("/agent/tickets").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(r.upstream_header("x-auth-mfa").as_deref(), Some("totp"));
    assert_eq!(
        r.upstream_header("x-auth-method").as_deref(),
        Some("saml:corp")
    );
}

#[tokio::test]
async fn sp_metadata_is_well_formed_and_names_the_acs() {
    let env = Env::start("").await;
    let mut b = env.browser();
    let r = b.get("/_portcullis/saml/corp/metadata").await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(
        r.header("content-type"),
        Some("application/samlmetadata+xml")
    );
    let md: samael::metadata::EntityDescriptor = r.text().parse().expect("well-formed metadata");
    assert_eq!(md.entity_id.as_deref(), Some(SP));
    let sp = &md.sp_sso_descriptors.as_ref().unwrap()[0];
    let acs = &sp.assertion_consumer_services[0];
    assert_eq!(acs.location, env.acs());
    assert_eq!(
        acs.binding,
        "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST"
    );
    assert_eq!(sp.want_assertions_signed, Some(true));
    let slo = &sp.single_logout_services.as_ref().unwrap()[0];
    assert_eq!(slo.location, env.slo());
    // Only the NameID formats a login can be keyed on (no subject_attribute here).
    assert_eq!(
        sp.name_id_formats.as_deref(),
        Some(&[NAMEID_PERSISTENT.to_owned(), NAMEID_EMAIL.to_owned()][..])
    );
    assert!(b.get("/_portcullis/saml/nope/metadata").await.status == StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn sp_initiated_single_logout_sends_a_logout_request_and_verifies_the_response() {
    let env = Env::start("on_missing_mfa = \"deny\"").await;
    let mut b = env.browser();
    let id = start_login(&mut b).await;
    signed_in_as(
        &env,
        &mut b,
        &env.idp.response(&env.spec(Some(&id), "sam@corp.example")),
    )
    .await;
    let r = b.logout().await;
    assert_eq!(r.status, StatusCode::FOUND, "{}", r.text());
    let url = location(&r);
    assert!(url.starts_with("https://idp.test/slo?"), "{url}");
    assert!(
        !b.jar.contains_key("portcullis"),
        "signed out locally at once"
    );
    let lr = decode_redirect(&url, "SAMLRequest");
    assert_eq!(
        first_text(&lr, "NameID").as_deref(),
        Some("sam@corp.example")
    );
    assert_eq!(
        first_text(&lr, "SessionIndex").as_deref(),
        Some("_idp-session-1")
    );
    let req_id = root_attr(&lr, "ID").unwrap();
    // An unsigned LogoutResponse is refused.
    let unsigned = env.idp.redirect_query(
        "SAMLResponse",
        &env.idp.logout_response(&env.slo(), &req_id),
        None,
        false,
    );
    let r = b
        .get(&format!("/_portcullis/saml/corp/slo?{unsigned}"))
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text());
    // The signed one is accepted once.
    let signed = env.idp.redirect_query(
        "SAMLResponse",
        &env.idp.logout_response(&env.slo(), &req_id),
        None,
        true,
    );
    let r = b.get(&format!("/_portcullis/saml/corp/slo?{signed}")).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert!(r.text().contains("You are signed out"));
    let r = b.get(&format!("/_portcullis/saml/corp/slo?{signed}")).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "single use");
}

#[tokio::test]
async fn idp_initiated_single_logout_is_verified_and_ends_the_sessions() {
    let env = Env::start("on_missing_mfa = \"deny\"").await;
    let mut b = env.browser();
    let id = start_login(&mut b).await;
    signed_in_as(
        &env,
        &mut b,
        &env.idp.response(&env.spec(Some(&id), "sam@corp.example")),
    )
    .await;
    // A forged (unsigned) request changes nothing.
    let lr = env
        .idp
        .logout_request(&env.slo(), "sam@corp.example", Some("_idp-session-1"));
    let forged = env.idp.redirect_query("SAMLRequest", &lr, None, false);
    let mut idp_browser = env.browser();
    let r = idp_browser
        .get(&format!("/_portcullis/saml/corp/slo?{forged}"))
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text());
    assert_eq!(b.get("/agent/tickets").await.status, StatusCode::OK);
    // The signed request ends the session and answers with a LogoutResponse.
    let signed = env.idp.redirect_query("SAMLRequest", &lr, None, true);
    let r = idp_browser
        .get(&format!("/_portcullis/saml/corp/slo?{signed}"))
        .await;
    assert_eq!(r.status, StatusCode::FOUND, "{}", r.text());
    let url = location(&r);
    assert!(url.starts_with("https://idp.test/slo?"), "{url}");
    let resp = decode_redirect(&url, "SAMLResponse");
    assert_eq!(
        root_attr(&resp, "InResponseTo"),
        root_attr(&lr, "ID"),
        "answers that request"
    );
    assert!(resp.contains("status:Success"));
    assert_eq!(
        b.get("/agent/tickets").await.status,
        StatusCode::FOUND,
        "the session ended on the gateway"
    );
    assert!(env
        .audit("logout.idp")
        .await
        .iter()
        .any(|(o, _)| o == "success"));
}

/// A metadata endpoint that answers with each of `answers` in turn (the last one repeats).
async fn metadata_server(answers: Vec<(u16, String)>) -> std::net::SocketAddr {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        let mut n = 0usize;
        loop {
            let Ok((mut s, _)) = l.accept().await else {
                return;
            };
            let (status, body) = answers[n.min(answers.len() - 1)].clone();
            n += 1;
            let mut buf = vec![0u8; 4096];
            let mut head = Vec::new();
            while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                match s.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(k) => head.extend_from_slice(&buf[..k]),
                }
            }
            let resp = format!(
                "HTTP/1.1 {status} X\r\ncontent-type: application/samlmetadata+xml\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = s.write_all(resp.as_bytes()).await;
        }
    });
    addr
}

#[tokio::test]
async fn metadata_from_a_url_is_retried_until_it_loads_and_a_certificate_less_one_is_refused() {
    let idp = SamlIdp::new(IDP);
    let addr = metadata_server(vec![
        (500, "down".into()),
        (200, idp.metadata_xml_without_certs()),
        (200, idp.metadata_xml()),
    ])
    .await;
    let toml = idp_toml("on_missing_mfa = \"deny\"").replace(
        "metadata = \"idp-metadata.xml\"",
        &format!("metadata_url = \"http://{addr}/md\""),
    );
    let gw = TestGateway::start_with(&format!("{STORAGE}{toml}"), |_| {}).await;
    let real = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    gw.clock.advance(real - gw.clock.now());
    let env = Env { idp, gw };
    // Not loaded yet: sign-in is refused with a clear 503, and the gateway is not ready.
    assert!(!env.gw.gateway().saml.ready());
    let mut b = env.browser();
    let r = b.get("/_portcullis/login?idp=corp&rd=%2Fagent%2Fx").await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE, "{}", r.text());
    // 500, then a document without a signing certificate (refused), then the real one.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !env.gw.gateway().saml.ready() {
        assert!(
            std::time::Instant::now() < deadline,
            "metadata never loaded"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let id = start_login(&mut b).await;
    signed_in_as(
        &env,
        &mut b,
        &env.idp.response(&env.spec(Some(&id), "sam@corp.example")),
    )
    .await;
}

/// Writes seeds for the SAML fuzz targets (`fuzz/corpus/saml_*`): responses of every
/// conformance row, XSW1–8, DTD attacks, metadata and redirect-binding queries. Run by hand:
/// `cargo test --test it write_saml_fuzz_seeds -- --ignored`.
#[test]
#[ignore]
fn write_saml_fuzz_seeds() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus");
    let idp = SamlIdp::new(IDP);
    let acs = "https://sp.test/_portcullis/saml/corp/acs";
    let put = |dir: &str, name: &str, body: &str| {
        let d = root.join(dir);
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join(name), body).unwrap();
    };
    let base = ResponseSpec::valid(
        &idp,
        "https://sp.test/saml",
        acs,
        Some("_req1"),
        "sam@corp.example",
    );
    let mut specs: Vec<(&str, ResponseSpec)> = Vec::new();
    for (name, sign) in [
        ("response", Sign::Response),
        ("assertion", Sign::Assertion),
        ("both", Sign::Both),
        ("unsigned", Sign::None),
    ] {
        let mut s = base.clone();
        s.sign = sign;
        specs.push((name, s));
    }
    let mut s = base.clone();
    s.algorithm = Alg::Sha1;
    specs.push(("sha1", s));
    let mut s = base.clone();
    s.extra_assertion = true;
    specs.push(("two-assertions", s));
    let mut s = base.clone();
    s.status = "urn:oasis:names:tc:SAML:2.0:status:Responder".into();
    specs.push(("status", s));
    let mut s = base.clone();
    s.name_id = "admin@corp.example<!---->.evil.example".into();
    specs.push(("comment", s));
    for (name, s) in &specs {
        let xml = idp.response(s);
        put("saml_response", name, &xml);
        put("saml_response", &format!("{name}.b64"), &B64.encode(&xml));
    }
    let valid = idp.response(&base);
    for n in 1..=8u8 {
        let mut s = base.clone();
        s.sign = if n <= 2 {
            Sign::Response
        } else {
            Sign::Assertion
        };
        put(
            "saml_response",
            &format!("xsw{n}"),
            &idp.xsw(n, &s, "admin@corp.example"),
        );
    }
    for (name, a) in [
        ("dtd-doctype", DtdAttack::Doctype),
        ("dtd-internal", DtdAttack::InternalEntity),
        ("dtd-laughs", DtdAttack::BillionLaughs),
        ("dtd-external", DtdAttack::ExternalEntity),
    ] {
        put("saml_response", name, &dtd_attack(&valid, a));
    }
    put("saml_metadata", "idp", &idp.metadata_xml());
    put(
        "saml_metadata",
        "no-certs",
        &idp.metadata_xml_without_certs(),
    );
    let lr = idp.logout_request(
        "https://sp.test/_portcullis/saml/corp/slo",
        "sam@corp.example",
        Some("_s1"),
    );
    put(
        "saml_redirect",
        "logout-request-signed",
        &idp.redirect_query("SAMLRequest", &lr, None, true),
    );
    put(
        "saml_redirect",
        "logout-request-unsigned",
        &idp.redirect_query("SAMLRequest", &lr, Some("rs"), false),
    );
    let resp = idp.logout_response("https://sp.test/_portcullis/saml/corp/slo", "_req1");
    put(
        "saml_redirect",
        "logout-response-signed",
        &idp.redirect_query("SAMLResponse", &resp, None, true),
    );
}

// --- stable subjects (issue 14, finding 9) ---

/// The page of a refused login names no subject; the audit log says why.
async fn assert_no_stable_subject(env: &Env, b: &mut Browser, xml: &str) {
    assert_refused(env, b, xml, StatusCode::FORBIDDEN).await;
    assert!(env
        .audit("login.failure")
        .await
        .contains(&("refused".to_owned(), "no_stable_subject".to_owned())));
    assert_eq!(env.gw.gateway().store.count().await.unwrap(), 0);
}

#[tokio::test]
async fn a_transient_or_unspecified_name_id_without_subject_attribute_is_refused() {
    let env = Env::start("on_missing_mfa = \"deny\"").await;
    for format in [NAMEID_TRANSIENT, NAMEID_UNSPECIFIED] {
        let mut b = env.browser();
        let id = start_login(&mut b).await;
        let mut spec = env.spec(Some(&id), &format!("_{}", new_id()));
        spec.name_id_format = format.into();
        assert_no_stable_subject(&env, &mut b, &env.idp.response(&spec)).await;
    }
}

#[tokio::test]
async fn a_response_without_name_id_is_refused_unless_a_subject_attribute_names_the_user() {
    // Keyed on the NameID, every NameID-less user would be one principal (`saml:corp#`).
    let env = Env::start("username_attribute = \"uid\"\non_missing_mfa = \"deny\"").await;
    let mut b = env.browser();
    let id = start_login(&mut b).await;
    let mut spec = env.spec(Some(&id), "unused");
    spec.omit_name_id = true;
    spec.attributes.push(("uid".into(), vec!["ann".into()]));
    assert_no_stable_subject(&env, &mut b, &env.idp.response(&spec)).await;

    let env = Env::start("subject_attribute = \"uid\"\non_missing_mfa = \"deny\"").await;
    let mut b = env.browser();
    let id = start_login(&mut b).await;
    let mut spec = env.spec(Some(&id), "unused");
    spec.omit_name_id = true;
    spec.attributes.push(("uid".into(), vec!["ann".into()]));
    let r = signed_in_as(&env, &mut b, &env.idp.response(&spec)).await;
    assert_eq!(
        r.upstream_header("x-forwarded-user").as_deref(),
        Some("ann")
    );
    // No NameID to name at the IdP: the logout stays local.
    let out = b.logout().await;
    assert_eq!(out.status, StatusCode::OK, "{}", out.text());
}

#[tokio::test]
async fn a_subject_attribute_missing_empty_or_with_several_values_is_refused() {
    let env = Env::start("subject_attribute = \"uid\"\non_missing_mfa = \"deny\"").await;
    for uid in [
        None,
        Some(vec!["  ".to_owned()]),
        Some(vec!["ann".into(), "bob".into()]),
    ] {
        let mut b = env.browser();
        let id = start_login(&mut b).await;
        // A persistent NameID does not stand in for the configured attribute.
        let mut spec = env.spec(Some(&id), "persistent-ann");
        spec.name_id_format = NAMEID_PERSISTENT.into();
        if let Some(v) = uid {
            spec.attributes.push(("uid".into(), v));
        }
        assert_no_stable_subject(&env, &mut b, &env.idp.response(&spec)).await;
    }
}

#[tokio::test]
async fn a_username_attribute_with_several_values_is_refused_not_cut_to_the_first() {
    let env = Env::start("username_attribute = \"uid\"\non_missing_mfa = \"deny\"").await;
    let mut b = env.browser();
    let id = start_login(&mut b).await;
    let mut spec = env.spec(Some(&id), "sam@corp.example");
    spec.attributes
        .push(("uid".into(), vec!["admin".into(), "sam".into()]));
    assert_refused(
        &env,
        &mut b,
        &env.idp.response(&spec),
        StatusCode::FORBIDDEN,
    )
    .await;
    assert!(env
        .audit("login.failure")
        .await
        .contains(&("refused".to_owned(), "username".to_owned())));
}

#[tokio::test]
async fn a_persistent_name_id_without_subject_attribute_still_signs_in() {
    let env = Env::start("on_missing_mfa = \"deny\"").await;
    let mut b = env.browser();
    let id = start_login(&mut b).await;
    let mut spec = env.spec(Some(&id), "a1b2c3-persistent");
    spec.name_id_format = NAMEID_PERSISTENT.into();
    let r = signed_in_as(&env, &mut b, &env.idp.response(&spec)).await;
    assert_eq!(
        r.upstream_header("x-forwarded-user").as_deref(),
        Some("a1b2c3-persistent")
    );
}

/// Step-up after a login: the enrollment page (a new factor) or the challenge (an existing one).
async fn step_up_page(env: &Env, b: &mut Browser, transient: &str) -> String {
    let id = start_login(b).await;
    let mut spec = env.spec(Some(&id), transient);
    spec.name_id_format = NAMEID_TRANSIENT.into();
    spec.attributes.push(("uid".into(), vec!["sam".into()]));
    spec.authn_context = Some(AC_PASSWORD_PROTECTED.into());
    let r = post(b, &env.idp.response(&spec)).await;
    assert_eq!(r.status, StatusCode::FOUND, "{}", r.text());
    location(&r)
}

#[tokio::test]
async fn two_logins_with_different_transient_name_ids_and_one_subject_attribute_share_the_step_up_factor(
) {
    let env = Env::start("subject_attribute = \"uid\"\non_missing_mfa = \"step_up\"").await;
    let mut b = env.browser();
    let to = step_up_page(&env, &mut b, "_transient-1").await;
    assert!(to.ends_with("/_portcullis/mfa/enroll"), "{to}");
    let page = b.get(&to).await;
    let seed = seed_of(&unescape(&element_text(&page.text(), "totp-uri").unwrap()));
    let csrf = input_value(&page.text(), "csrf_token").unwrap();
    let code = portcullis::mfa::totp::code_at(&seed, env.gw.clock.now());
    let r = b
        .post(
            "/_portcullis/mfa/enroll",
            &[("code", &code), ("csrf_token", &csrf)],
        )
        .await;
    b.follow(r).await;
    let r = b.get("/agent/tickets").await;
    assert_eq!(
        r.upstream_header("x-forwarded-user").as_deref(),
        Some("sam")
    );
    // Single Logout echoes this login's own (transient) NameID and its format.
    let out = b.logout().await;
    let lr = decode_redirect(&location(&out), "SAMLRequest");
    assert_eq!(first_text(&lr, "NameID").as_deref(), Some("_transient-1"));
    assert!(lr.contains(NAMEID_TRANSIENT), "{lr}");

    // Another login, another transient NameID, the same uid: the same principal, so the
    // factor enrolled above is challenged; no second enrollment.
    env.gw.clock.advance(60);
    let mut b = env.browser();
    let to = step_up_page(&env, &mut b, "_transient-2").await;
    assert!(
        to.ends_with("/_portcullis/mfa"),
        "challenged, not enrolled: {to}"
    );
    let page = b.get(&to).await;
    let csrf = input_value(&page.text(), "csrf_token").unwrap();
    let code = portcullis::mfa::totp::code_at(&seed, env.gw.clock.now());
    let r = b
        .post(
            "/_portcullis/mfa",
            &[("code", &code), ("csrf_token", &csrf)],
        )
        .await;
    assert_eq!(r.status, StatusCode::FOUND, "{}", r.text());
    let r = b.get("/agent/tickets").await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.upstream_header("x-auth-mfa").as_deref(), Some("totp"));
}

// --- role caps per IdP (issue 14, finding 13) ---

const SP2: &str = "https://helpdesk.test/_portcullis/saml/partner";

#[tokio::test]
async fn a_partner_saml_idp_whose_roles_lack_admin_cannot_make_its_user_an_admin() {
    let partner = format!(
        r#"
[[idp]]
id = "partner"
kind = "saml"
metadata = "idp-metadata.xml"
sp_entity_id = "{SP2}"
allow_idp_initiated = true
roles = ["agent"]
mfa_evidence = {{ authn_context_any = ["{MFA}"] }}
on_missing_mfa = "deny"
"#
    );
    let env = Env::start_full(
        "allow_idp_initiated = true\non_missing_mfa = \"deny\"",
        &partner,
    )
    .await;
    let response = |sp: &str, idp: &str| {
        let acs = format!("http://{}/_portcullis/saml/{idp}/acs", env.gw.addr);
        let mut s = ResponseSpec::valid(&env.idp, sp, &acs, None, "bob@corp.example");
        s.attributes = vec![("groups".into(), vec!["admins".into(), "agents".into()])];
        s.authn_context = Some(MFA.into());
        env.idp.response(&s)
    };
    // The corp IdP (no `roles`): admin and agent.
    let mut staff = env.browser();
    let r = staff
        .post(
            "/_portcullis/saml/corp/acs",
            &[("SAMLResponse", &B64.encode(response(SP, "corp")))],
        )
        .await;
    assert_eq!(r.status, StatusCode::FOUND, "{}", r.text());
    let r = staff.get("/admin/users").await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(
        r.upstream_header("x-auth-roles").as_deref(),
        Some("admin,agent")
    );
    // The same user and groups from the partner IdP: agent only; `admins` is not forwarded.
    let mut b = env.browser();
    let r = b
        .post(
            "/_portcullis/saml/partner/acs",
            &[("SAMLResponse", &B64.encode(response(SP2, "partner")))],
        )
        .await;
    assert_eq!(r.status, StatusCode::FOUND, "{}", r.text());
    let r = b.get("/agent/tickets").await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.upstream_header("x-auth-roles").as_deref(), Some("agent"));
    assert_eq!(
        r.upstream_header("x-forwarded-groups").as_deref(),
        Some("agents")
    );
    assert_eq!(
        r.upstream_header("x-auth-method").as_deref(),
        Some("saml:partner")
    );
    assert_eq!(b.get("/admin/users").await.status, StatusCode::FORBIDDEN);
    assert_eq!(
        env.audit("login.roles_dropped").await,
        vec![("dropped".to_owned(), "idp_roles".to_owned())]
    );
}

// --- single use under concurrency, on memory and on Redis (issue 14, class tests) ---

/// The session cookie a response sets, if any (a login that made a session).
fn sets_session(env: &Env, r: &Resp) -> bool {
    let name = format!("{}=", env.gw.gateway().cookies.session);
    r.headers.get_all("set-cookie").iter().any(|v| {
        let v = v.to_str().unwrap();
        v.starts_with(&name) && !v.contains("Max-Age=0")
    })
}

/// One valid SAMLResponse posted twice at the same time (from one browser, so the request
/// binding holds for both): exactly one session. SP-initiated, the request id decides;
/// IdP-initiated, the assertion id's replay cache does.
async fn one_response_posted_twice_concurrently(store: Store) {
    let env = Env::start_on(
        &store,
        "allow_idp_initiated = true\non_missing_mfa = \"deny\"",
        "",
    )
    .await;
    for sp_initiated in [true, false] {
        let mut b = env.browser();
        let id = if sp_initiated {
            Some(start_login(&mut b).await)
        } else {
            None
        };
        let xml = env
            .idp
            .response(&env.spec(id.as_deref(), "sam@corp.example"));
        let before = env.gw.gateway().store.count().await.unwrap();
        let (mut x, mut y) = (env.browser(), env.browser());
        x.jar = b.jar.clone();
        y.jar = b.jar.clone();
        let (r1, r2) = tokio::join!(post(&mut x, &xml), post(&mut y, &xml));
        let made = [&r1, &r2].iter().filter(|r| sets_session(&env, r)).count();
        assert_eq!(
            made, 1,
            "sp_initiated={sp_initiated}: {} / {}",
            r1.status, r2.status
        );
        let mut statuses = [r1.status, r2.status];
        statuses.sort();
        assert_eq!(statuses, [StatusCode::FOUND, StatusCode::FORBIDDEN]);
        assert_eq!(env.gw.gateway().store.count().await.unwrap(), before + 1);
    }
    store.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_saml_response_posted_twice_concurrently_makes_one_session_on_memory() {
    one_response_posted_twice_concurrently(Store::Memory).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_saml_response_posted_twice_concurrently_makes_one_session_on_redis() {
    let Some(store) = Store::redis("one_saml_response_posted_twice_concurrently") else {
        return;
    };
    one_response_posted_twice_concurrently(store).await;
}

/// Issue 18, live reload of an IdP's metadata: the IdP rotates its signing key, the operator
/// writes the new metadata and reloads; from then on only the new key's responses are
/// accepted, and requests in flight during the reload all succeed.
#[tokio::test]
async fn a_reloaded_metadata_file_swaps_the_trusted_signing_key_with_requests_in_flight() {
    let env = Env::start("").await;
    let rotated = SamlIdp::new(IDP);
    // Before: a response signed with the new key is not trusted yet.
    let mut b = env.browser();
    let id = start_login(&mut b).await;
    let spec = env.spec(Some(&id), "sam@corp.example");
    assert_refused(
        &env,
        &mut b,
        &rotated.response(&spec),
        StatusCode::FORBIDDEN,
    )
    .await;

    let load = crate::reload::Load::start(format!("http://{}", env.gw.addr), "/hc/x", None, 3);
    std::fs::write(
        env.gw.dir.path().join("idp-metadata.xml"),
        rotated.metadata_xml(),
    )
    .unwrap();
    let live = std::sync::Arc::clone(&env.gw.running.as_ref().unwrap().live);
    live.reload("test").await.unwrap();
    crate::reload::assert_all_ok(&load.finish().await);

    // After: the new key signs in, the old one is refused.
    let mut b = env.browser();
    let id = start_login(&mut b).await;
    let spec = env.spec(Some(&id), "sam@corp.example");
    signed_in_as(&env, &mut b, &rotated.response(&spec)).await;
    let mut b = env.browser();
    let id = start_login(&mut b).await;
    let spec = env.spec(Some(&id), "sam@corp.example");
    assert_refused(
        &env,
        &mut b,
        &env.idp.response(&spec),
        StatusCode::FORBIDDEN,
    )
    .await;
}
