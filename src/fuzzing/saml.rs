//! Fuzz targets for what a SAML IdP sends: POST-binding responses, metadata and redirect-binding
//! messages, against an IdP whose private key was thrown away, so nothing may ever verify.

use super::input::text;
use super::oidc::NOW;
use std::sync::OnceLock;

/// A SAML IdP whose certificate's private key was generated here and thrown away: nothing can
/// be signed by it, so no input may ever verify.
pub(super) fn saml_idp() -> Option<&'static crate::auth::saml::IdpMetadata> {
    static IDP: OnceLock<Option<crate::auth::saml::IdpMetadata>> = OnceLock::new();
    IDP.get_or_init(|| {
        use openssl::{asn1::Asn1Time, hash::MessageDigest, pkey::PKey, rsa::Rsa, x509};
        let key = PKey::from_rsa(Rsa::generate(2048).ok()?).ok()?;
        let mut name = x509::X509NameBuilder::new().ok()?;
        name.append_entry_by_text("CN", "fuzz-idp").ok()?;
        let name = name.build();
        let mut b = x509::X509::builder().ok()?;
        b.set_version(2).ok()?;
        b.set_subject_name(&name).ok()?;
        b.set_issuer_name(&name).ok()?;
        b.set_pubkey(&key).ok()?;
        b.set_not_before(&*Asn1Time::days_from_now(0).ok()?).ok()?;
        b.set_not_after(&*Asn1Time::days_from_now(2).ok()?).ok()?;
        b.sign(&key, MessageDigest::sha256()).ok()?;
        let der = b.build().to_der().ok()?;
        Some(crate::auth::saml::IdpMetadata {
            entity_id: "https://idp.test/saml".into(),
            certs: vec![samael::crypto::CertificateDer::from(der)],
            sso_redirect: "https://idp.test/sso".into(),
            slo_redirect: Some("https://idp.test/slo".into()),
            slo_response: Some("https://idp.test/slo".into()),
        })
    })
    .as_ref()
}

pub(super) fn saml_algorithms() -> Vec<String> {
    crate::config::SAML_KNOWN_ALGORITHMS
        .iter()
        .map(|a| (*a).to_owned())
        .collect()
}

/// The ACS pipeline (scan, signature, conditions) on XML text, or on a base64 form value.
pub fn saml_response(data: &[u8]) {
    let Some(idp) = saml_idp() else { return };
    let raw = text(data);
    let xml = crate::auth::saml::decode_post(&raw).unwrap_or_else(|_| raw.into_owned());
    let algorithms = saml_algorithms();
    let r = crate::auth::saml::verify_response(
        &xml,
        &crate::auth::saml::Expect {
            idp,
            sp_entity_id: "https://sp.test/saml",
            acs_url: "https://sp.test/_portcullis/saml/corp/acs",
            algorithms: &algorithms,
            skew_secs: 60,
            now: NOW,
        },
    );
    assert!(r.is_err(), "a response verified without the IdP's key");
}

/// IdP metadata (`metadata` files and `metadata_url` documents).
pub fn saml_metadata(data: &[u8]) {
    if let Ok(m) = crate::auth::saml::IdpMetadata::parse(&text(data)) {
        assert!(
            !m.certs.is_empty(),
            "metadata accepted without a signing certificate"
        );
        assert!(
            !m.entity_id.trim().is_empty(),
            "metadata accepted without an entity id"
        );
        assert!(
            !m.sso_redirect.is_empty(),
            "metadata accepted without an SSO endpoint"
        );
    }
}

/// The SLO endpoint's redirect-binding query.
pub fn saml_redirect(data: &[u8]) {
    let Some(idp) = saml_idp() else { return };
    let r = crate::auth::saml::verify_redirect(&text(data), idp, &saml_algorithms());
    assert!(
        r.is_err(),
        "a redirect-binding message verified without the IdP's key"
    );
}
