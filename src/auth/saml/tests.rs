#![allow(clippy::unwrap_used)]
use super::documents::*;
use super::error::*;
use super::metadata::*;
use super::response::*;
use super::scan::*;

fn verified(name_id: &str, format: Option<&str>, attrs: &[(&str, &[&str])]) -> Verified {
    Verified {
        assertion_id: "_a".into(),
        replay_until: 0,
        in_response_to: None,
        name_id: name_id.into(),
        name_id_format: format.map(str::to_owned),
        session_index: None,
        attributes: attrs
            .iter()
            .map(|(n, v)| ((*n).to_owned(), v.iter().map(|s| (*s).to_owned()).collect()))
            .collect(),
        authn_contexts: Vec::new(),
    }
}

#[test]
fn only_a_stable_name_id_or_one_subject_attribute_value_is_a_subject() {
    let persistent = "urn:oasis:names:tc:SAML:2.0:nameid-format:persistent";
    let email = "urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress";
    let transient = "urn:oasis:names:tc:SAML:2.0:nameid-format:transient";
    assert_eq!(
        verified("p-1", Some(persistent), &[])
            .subject(None)
            .unwrap(),
        "p-1"
    );
    assert_eq!(
        verified("a@x", Some(email), &[]).subject(None).unwrap(),
        "a@x"
    );
    for v in [
        verified("_t", Some(transient), &[]),
        verified("x", Some(NAMEID_UNSPECIFIED), &[]),
        verified("x", None, &[]),
        verified("", Some(persistent), &[]),
    ] {
        assert!(matches!(
            v.subject(None),
            Err(SamlError::NoStableSubject(_))
        ));
    }
    let uid = |values: &[&str]| {
        let attrs: &[(&str, &[&str])] = &[("uid", values)];
        verified("_t", Some(transient), attrs).subject(Some("uid"))
    };
    assert_eq!(uid(&["ann"]).unwrap(), "ann");
    for bad in [&[][..], &[" "][..], &["ann", "bob"][..], &["a\u{7}b"][..]] {
        assert!(
            matches!(uid(bad), Err(SamlError::NoStableSubject(_))),
            "{bad:?}"
        );
    }
    // The same attribute twice is several values, not the first one.
    let twice: &[(&str, &[&str])] = &[("uid", &["ann"]), ("uid", &["bob"])];
    assert!(verified("p", Some(persistent), twice)
        .subject(Some("uid"))
        .is_err());
}

#[test]
fn the_username_is_the_subject_unless_one_attribute_value_names_it() {
    let v = verified("p", None, &[("name", &["Ann"]), ("two", &["a", "b"])]);
    assert_eq!(v.username(None, "p-1").unwrap(), "p-1");
    assert_eq!(v.username(Some("name"), "p-1").unwrap(), "Ann");
    assert!(matches!(
        v.username(Some("two"), "p-1"),
        Err(SamlError::Username(_))
    ));
    assert!(matches!(
        v.username(Some("none"), "p-1"),
        Err(SamlError::Username(_))
    ));
}

#[test]
fn a_doctype_is_refused_before_anything_is_expanded() {
    let bomb = "<?xml version=\"1.0\"?><!DOCTYPE lolz [<!ENTITY lol \"lol\"><!ENTITY lol2 \"&lol;&lol;\">]><samlp:Response xmlns:samlp=\"urn:oasis:names:tc:SAML:2.0:protocol\">&lol2;</samlp:Response>";
    assert!(matches!(scan(bomb), Err(SamlError::Dtd)));
    let ext = "<!DOCTYPE r [<!ENTITY x SYSTEM \"file:///etc/passwd\">]><r>&x;</r>";
    assert!(matches!(scan(ext), Err(SamlError::Dtd)));
    // An undeclared entity without any DOCTYPE is refused too.
    assert!(matches!(scan("<r>&x;</r>"), Err(SamlError::Dtd)));
    assert!(scan("<r>&amp;&#65;</r>").is_ok());
    assert!(matches!(
        IdpMetadata::parse("<!DOCTYPE x><x/>"),
        Err(SamlError::Dtd)
    ));
}

#[test]
fn the_scan_counts_assertions_and_reads_the_status() {
    let xml = format!(
        "<p:Response xmlns:p=\"{PROTOCOL_NS}\" xmlns:a=\"{ASSERTION_NS}\" Destination=\"https://sp/acs\"><p:Status><p:StatusCode Value=\"urn:x:Requester\"><p:StatusCode Value=\"urn:x:inner\"/></p:StatusCode><p:StatusMessage>no &amp; never</p:StatusMessage></p:Status><a:Assertion/><x:y xmlns:x=\"urn:other\"><a:Assertion/></x:y></p:Response>"
    );
    let s = scan(&xml).unwrap();
    assert_eq!(s.assertions, 2);
    assert_eq!(s.status.as_deref(), Some("urn:x:Requester"));
    assert_eq!(s.status_message.as_deref(), Some("no & never"));
    assert_eq!(s.destination.as_deref(), Some("https://sp/acs"));
}

#[test]
fn deep_nesting_is_refused() {
    let xml = format!("{}{}", "<a>".repeat(100), "</a>".repeat(100));
    assert!(matches!(scan(&xml), Err(SamlError::Malformed(_))));
}

#[test]
fn comments_are_removed_so_text_reads_whole() {
    let out = without_comments("<n>admin@corp.example<!---->.evil.example</n>").unwrap();
    assert_eq!(out, "<n>admin@corp.example.evil.example</n>");
}

#[test]
fn sha1_is_refused_unless_listed() {
    let s = Scan {
        signature_algorithms: vec!["http://www.w3.org/2000/09/xmldsig#rsa-sha1".into()],
        digest_algorithms: vec!["http://www.w3.org/2000/09/xmldsig#sha1".into()],
        ..Default::default()
    };
    let default: Vec<String> = crate::config::SAML_DEFAULT_ALGORITHMS
        .iter()
        .map(|a| (*a).to_owned())
        .collect();
    assert!(matches!(
        check_algorithms(&s, &default),
        Err(SamlError::Algorithm(_))
    ));
    assert!(check_algorithms(&s, &["rsa-sha1".to_owned()]).is_ok());
}

#[test]
fn requests_escape_what_they_carry() {
    let x = authn_request(&AuthnRequestSpec {
        id: "_a\"b",
        now: 0,
        destination: "https://idp/sso?a=1&b=2",
        acs_url: "https://sp/acs",
        sp_entity_id: "urn:sp",
        force_authn: true,
        authn_contexts: &["urn:mfa<".to_owned()],
    });
    assert!(x.contains("ID=\"_a&quot;b\""));
    assert!(x.contains("a=1&amp;b=2"));
    assert!(x.contains("ForceAuthn=\"true\""));
    assert!(x.contains("urn:mfa&lt;"));
    assert!(scan(&x).is_ok());
}
