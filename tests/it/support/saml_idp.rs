//! A test SAML 2.0 Identity Provider: builds real signed SAML Responses (enveloped XML-DSig,
//! exclusive c14n, RSA-SHA256, signed with xmlsec through samael), the attack variants of
//! `conformance/saml-sp.md` (wrong key, tampering, the eight XML Signature Wrapping variants,
//! two assertions, comment injection, SHA-1, DTDs, oversized messages), IdP metadata, the
//! HTTP-Redirect binding (deflate + base64 + urlencode, optionally signed with SigAlg/Signature),
//! the HTTP-POST form body, and IdP-initiated SLO messages.
//!
//! Keys: every `SamlIdp::new` generates an RSA-2048 key and a self-signed certificate, plus a
//! second, unrelated RSA-2048 key + certificate used for `Signer::Other` (the "attacker" key whose
//! certificate is put in KeyInfo). TEST-ONLY; nothing here is suitable for production.
//!
//! XML is produced as text. Every element that can be signed declares the namespaces it uses
//! itself (saml, samlp, ds, xs, xsi), so a signed Assertion can be moved into another document
//! (which the XSW variants do) without breaking its digest.
//!
//! Uses only std, samael (feature "xmlsec"), openssl, flate2, base64, quick-xml and chrono.

#![allow(dead_code)]

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use openssl::hash::MessageDigest;
use openssl::pkey::{PKey, Private};
use openssl::x509::X509;
use samael::crypto::{Crypto, CryptoProvider};
use std::io::{Read as _, Write as _};

pub const ASSERTION_NS: &str = "urn:oasis:names:tc:SAML:2.0:assertion";
pub const PROTOCOL_NS: &str = "urn:oasis:names:tc:SAML:2.0:protocol";
pub const METADATA_NS: &str = "urn:oasis:names:tc:SAML:2.0:metadata";
pub const DSIG_NS: &str = "http://www.w3.org/2000/09/xmldsig#";
pub const XS_NS: &str = "http://www.w3.org/2001/XMLSchema";
pub const XSI_NS: &str = "http://www.w3.org/2001/XMLSchema-instance";

pub const BINDING_REDIRECT: &str = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect";
pub const BINDING_POST: &str = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST";

pub const STATUS_SUCCESS: &str = "urn:oasis:names:tc:SAML:2.0:status:Success";
pub const STATUS_REQUESTER: &str = "urn:oasis:names:tc:SAML:2.0:status:Requester";
pub const STATUS_RESPONDER: &str = "urn:oasis:names:tc:SAML:2.0:status:Responder";
pub const STATUS_VERSION_MISMATCH: &str = "urn:oasis:names:tc:SAML:2.0:status:VersionMismatch";
pub const STATUS_AUTHN_FAILED: &str = "urn:oasis:names:tc:SAML:2.0:status:AuthnFailed";
pub const STATUS_NO_PASSIVE: &str = "urn:oasis:names:tc:SAML:2.0:status:NoPassive";
pub const STATUS_REQUEST_DENIED: &str = "urn:oasis:names:tc:SAML:2.0:status:RequestDenied";

pub const NAMEID_EMAIL: &str = "urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress";
pub const NAMEID_PERSISTENT: &str = "urn:oasis:names:tc:SAML:2.0:nameid-format:persistent";
pub const NAMEID_TRANSIENT: &str = "urn:oasis:names:tc:SAML:2.0:nameid-format:transient";
pub const NAMEID_UNSPECIFIED: &str = "urn:oasis:names:tc:SAML:1.1:nameid-format:unspecified";

pub const AC_PASSWORD_PROTECTED: &str =
    "urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport";
pub const AC_PASSWORD: &str = "urn:oasis:names:tc:SAML:2.0:ac:classes:Password";
/// REFEDS MFA profile.
pub const AC_REFEDS_MFA: &str = "https://refeds.org/profile/mfa";
pub const AC_MULTI_FACTOR: &str = "urn:oasis:names:tc:SAML:2.0:ac:classes:MultiFactor";

pub const ALG_RSA_SHA256: &str = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256";
pub const ALG_RSA_SHA1: &str = "http://www.w3.org/2000/09/xmldsig#rsa-sha1";
pub const DIGEST_SHA256: &str = "http://www.w3.org/2001/04/xmlenc#sha256";
pub const DIGEST_SHA1: &str = "http://www.w3.org/2000/09/xmldsig#sha1";
pub const C14N_EXCL: &str = "http://www.w3.org/2001/10/xml-exc-c14n#";
pub const TRANSFORM_ENVELOPED: &str = "http://www.w3.org/2000/09/xmldsig#enveloped-signature";

/// Which elements of a Response carry an enveloped signature.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Sign {
    None,
    Response,
    #[default]
    Assertion,
    /// Assertion signed first (as its own document), then the Response around it.
    Both,
}

/// Signature algorithm: `Sha256` = rsa-sha256 + sha256 digest, `Sha1` = rsa-sha1 + sha1 digest.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Alg {
    #[default]
    Sha256,
    Sha1,
}

/// Whose key signs. `Other` is an unrelated RSA key generated with the IdP; its own certificate
/// goes into KeyInfo (the "attacker brings his own cert" case).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Signer {
    #[default]
    Idp,
    Other,
}

/// How the forged copies in the XSW variants choose their ID attributes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum XswIds {
    /// Forged elements get fresh IDs; only the signed original carries the signed ID. Nothing
    /// is duplicated, so an implementation must really use the element the signature covers
    /// (this is what `SamlIdp::xsw` uses).
    #[default]
    Fresh,
    /// The forged element carries the same ID as the signed original (the document then has a
    /// duplicate ID): fools implementations that check "Reference URI == ID of the element I
    /// read" while the ID lookup of the verifier picks the other element.
    Same,
}

/// Document-type attacks for the DTD row (`dtd_attack`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DtdAttack {
    /// A harmless `<!DOCTYPE>` with an empty internal subset: must be refused all the same.
    Doctype,
    /// An internal entity `&e;` referenced inside the NameID.
    InternalEntity,
    /// The "billion laughs" nested entities, `&lol9;` referenced inside the NameID.
    BillionLaughs,
    /// An external entity (`SYSTEM "file:///etc/passwd"`), `&xxe;` referenced inside the NameID.
    ExternalEntity,
}

/// Everything a Response is built from. Start from `ResponseSpec::valid` and change fields.
#[derive(Clone, Debug)]
pub struct ResponseSpec {
    /// Both the Response's and the Assertion's Issuer.
    pub issuer: String,
    /// Response@Destination (None: attribute omitted).
    pub destination: Option<String>,
    /// SubjectConfirmationData@Recipient.
    pub recipient: String,
    /// None: no AudienceRestriction at all.
    pub audience: Option<String>,
    /// On the Response and on SubjectConfirmationData.
    pub in_response_to: Option<String>,
    /// Inserted verbatim, NOT escaped (so `admin@corp.example<!---->.evil.example` makes a comment).
    pub name_id: String,
    pub name_id_format: String,
    /// The Subject carries no NameID at all (name_id and name_id_format are ignored).
    pub omit_name_id: bool,
    /// AuthnStatement@SessionIndex.
    pub session_index: Option<String>,
    /// AttributeStatement (omitted if empty); each value an `xsi:type="xs:string"` AttributeValue.
    pub attributes: Vec<(String, Vec<String>)>,
    /// AuthnContextClassRef. None: the AuthnStatement has no AuthnContext at all.
    pub authn_context: Option<String>,
    /// Seconds relative to now for Conditions@NotBefore (e.g. -60).
    pub not_before_offset: i64,
    /// Conditions@NotOnOrAfter and SubjectConfirmationData@NotOnOrAfter (e.g. 300).
    pub not_on_or_after_offset: i64,
    /// Override for SubjectConfirmationData@NotOnOrAfter only.
    pub subject_not_on_or_after_offset: Option<i64>,
    /// IssueInstant of Response and Assertion, and AuthnInstant, relative to now.
    pub issue_instant_offset: i64,
    /// Status code URI. A second-level code (anything but Success/Requester/Responder/
    /// VersionMismatch) is nested inside a top-level Responder code.
    pub status: String,
    pub status_message: Option<String>,
    pub sign: Sign,
    pub algorithm: Alg,
    pub signer: Signer,
    /// After signing, replace the first occurrence of .0 with .1 in the XML text.
    pub tamper: Option<(String, String)>,
    /// Default: a fresh random "_..." id.
    pub assertion_id: Option<String>,
    /// Default: a fresh random "_..." id.
    pub response_id: Option<String>,
    /// Append a second, unsigned Assertion (fresh ID, same content) after the first one. It is
    /// added before the Response is signed, so with Sign::Response/Both it is covered by the
    /// Response signature (the SP must still refuse two assertions).
    pub extra_assertion: bool,
    /// Leave the Assertion out entirely (e.g. for a realistic error Status). By default an
    /// Assertion is present even when `status` is not Success, so an SP that ignores the Status
    /// would log the user in.
    pub omit_assertion: bool,
}

impl ResponseSpec {
    /// A response every correct SP accepts: issuer = the IdP's entity id, Destination and
    /// Recipient = `acs_url`, Audience = `sp_entity_id`, NameID (emailAddress format) =
    /// `name_id`, a fresh SessionIndex, attributes `email` = [name_id] and `groups` = ["agents"],
    /// AuthnContextClassRef PasswordProtectedTransport, NotBefore now-60s, NotOnOrAfter now+300s,
    /// Status Success, Assertion signed (Sign::Assertion) with RSA-SHA256 by the IdP key.
    pub fn valid(
        idp: &SamlIdp,
        sp_entity_id: &str,
        acs_url: &str,
        in_response_to: Option<&str>,
        name_id: &str,
    ) -> ResponseSpec {
        ResponseSpec {
            issuer: idp.entity_id.clone(),
            destination: Some(acs_url.to_string()),
            recipient: acs_url.to_string(),
            audience: Some(sp_entity_id.to_string()),
            in_response_to: in_response_to.map(str::to_string),
            name_id: name_id.to_string(),
            name_id_format: NAMEID_EMAIL.to_string(),
            omit_name_id: false,
            session_index: Some(new_id()),
            attributes: vec![
                ("email".to_string(), vec![name_id.to_string()]),
                ("groups".to_string(), vec!["agents".to_string()]),
            ],
            authn_context: Some(AC_PASSWORD_PROTECTED.to_string()),
            not_before_offset: -60,
            not_on_or_after_offset: 300,
            subject_not_on_or_after_offset: None,
            issue_instant_offset: 0,
            status: STATUS_SUCCESS.to_string(),
            status_message: None,
            sign: Sign::Assertion,
            algorithm: Alg::Sha256,
            signer: Signer::Idp,
            tamper: None,
            assertion_id: None,
            response_id: None,
            extra_assertion: false,
            omit_assertion: false,
        }
    }
}

/// One RSA key with its self-signed certificate.
struct KeyPair {
    key: PKey<Private>,
    cert: X509,
}

impl KeyPair {
    fn generate(common_name: &str) -> KeyPair {
        let rsa = openssl::rsa::Rsa::generate(2048).expect("generate RSA-2048 key");
        let key = PKey::from_rsa(rsa).expect("wrap RSA key");
        let cert = self_signed_cert(&key, common_name);
        KeyPair { key, cert }
    }

    fn private_key_der(&self) -> Vec<u8> {
        self.key
            .rsa()
            .expect("RSA key")
            .private_key_to_der()
            .expect("private key to DER")
    }

    fn cert_der(&self) -> Vec<u8> {
        self.cert.to_der().expect("cert to DER")
    }

    fn cert_b64(&self) -> String {
        B64.encode(self.cert_der())
    }
}

fn self_signed_cert(key: &PKey<Private>, common_name: &str) -> X509 {
    use openssl::asn1::Asn1Time;
    use openssl::bn::{BigNum, MsbOption};
    use openssl::nid::Nid;
    let mut name = openssl::x509::X509NameBuilder::new().expect("name builder");
    name.append_entry_by_nid(Nid::COMMONNAME, common_name)
        .expect("CN");
    let name = name.build();
    let mut b = X509::builder().expect("x509 builder");
    b.set_version(2).expect("version");
    let mut serial = BigNum::new().expect("bn");
    serial
        .rand(127, MsbOption::MAYBE_ZERO, false)
        .expect("serial");
    b.set_serial_number(&serial.to_asn1_integer().expect("serial"))
        .expect("serial");
    b.set_subject_name(&name).expect("subject");
    b.set_issuer_name(&name).expect("issuer");
    b.set_pubkey(key).expect("pubkey");
    // One day back so that a clock skew between this and the verifier never matters.
    let not_before = Asn1Time::from_unix(now_unix() - 86_400).expect("not before");
    b.set_not_before(&not_before).expect("not before");
    let not_after = Asn1Time::days_from_now(3650).expect("not after");
    b.set_not_after(&not_after).expect("not after");
    b.sign(key, MessageDigest::sha256()).expect("self-sign");
    b.build()
}

/// The test IdP.
pub struct SamlIdp {
    pub entity_id: String,
    pub sso_url: String,
    pub slo_url: String,
    idp: KeyPair,
    other: KeyPair,
}

impl SamlIdp {
    /// RSA-2048 key and a self-signed certificate generated for the test (plus an unrelated
    /// "other" key + cert for `Signer::Other`). sso_url = "https://idp.test/sso",
    /// slo_url = "https://idp.test/slo".
    pub fn new(entity_id: &str) -> SamlIdp {
        SamlIdp {
            entity_id: entity_id.to_string(),
            sso_url: "https://idp.test/sso".to_string(),
            slo_url: "https://idp.test/slo".to_string(),
            idp: KeyPair::generate("portcullis-test-idp"),
            other: KeyPair::generate("attacker-test-idp"),
        }
    }

    /// The same with a fixed private key (PEM, PKCS#1 or PKCS#8 RSA), e.g. a TEST-ONLY key under
    /// tests/fixtures; the self-signed certificate is still generated here.
    pub fn from_private_key_pem(entity_id: &str, pem: &[u8]) -> SamlIdp {
        let key = PKey::private_key_from_pem(pem).expect("parse private key PEM");
        let cert = self_signed_cert(&key, "portcullis-test-idp");
        SamlIdp {
            entity_id: entity_id.to_string(),
            sso_url: "https://idp.test/sso".to_string(),
            slo_url: "https://idp.test/slo".to_string(),
            idp: KeyPair { key, cert },
            other: KeyPair::generate("attacker-test-idp"),
        }
    }

    /// The IdP's signing certificate, DER.
    pub fn cert_der(&self) -> Vec<u8> {
        self.idp.cert_der()
    }

    /// The IdP's signing certificate, DER in standard base64 (no line breaks), as in metadata.
    pub fn cert_b64(&self) -> String {
        self.idp.cert_b64()
    }

    /// The IdP's signing certificate, PEM.
    pub fn cert_pem(&self) -> String {
        String::from_utf8(self.idp.cert.to_pem().expect("cert to PEM")).expect("PEM is ASCII")
    }

    /// The IdP's private key, PKCS#1 DER.
    pub fn private_key_der(&self) -> Vec<u8> {
        self.idp.private_key_der()
    }

    /// The certificate of the unrelated `Signer::Other` key, DER.
    pub fn other_cert_der(&self) -> Vec<u8> {
        self.other.cert_der()
    }

    pub fn other_cert_b64(&self) -> String {
        self.other.cert_b64()
    }

    fn keypair(&self, signer: Signer) -> &KeyPair {
        match signer {
            Signer::Idp => &self.idp,
            Signer::Other => &self.other,
        }
    }

    /// IdP metadata: EntityDescriptor entityID, IDPSSODescriptor with protocolSupportEnumeration,
    /// KeyDescriptor use="signing" with the cert, SingleLogoutService and SingleSignOnService
    /// HTTP-Redirect at slo_url / sso_url, NameIDFormat emailAddress.
    pub fn metadata_xml(&self) -> String {
        self.metadata_xml_with_certs(&[self.cert_der()])
    }

    /// The same without any KeyDescriptor (a config using it must be refused).
    pub fn metadata_xml_without_certs(&self) -> String {
        self.metadata_xml_with_certs(&[])
    }

    /// The same with one signing KeyDescriptor per given DER certificate (e.g. key rollover:
    /// `&[idp.cert_der(), idp.other_cert_der()]`).
    pub fn metadata_xml_with_certs(&self, certs_der: &[Vec<u8>]) -> String {
        let mut keys = String::new();
        for der in certs_der {
            keys.push_str(&format!(
                "<md:KeyDescriptor use=\"signing\"><ds:KeyInfo xmlns:ds=\"{DSIG_NS}\"><ds:X509Data>\
                 <ds:X509Certificate>{}</ds:X509Certificate></ds:X509Data></ds:KeyInfo>\
                 </md:KeyDescriptor>",
                B64.encode(der)
            ));
        }
        format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
             <md:EntityDescriptor xmlns:md=\"{METADATA_NS}\" entityID=\"{entity}\">\
             <md:IDPSSODescriptor WantAuthnRequestsSigned=\"false\" \
             protocolSupportEnumeration=\"{PROTOCOL_NS}\">{keys}\
             <md:SingleLogoutService Binding=\"{BINDING_REDIRECT}\" Location=\"{slo}\"/>\
             <md:NameIDFormat>{NAMEID_EMAIL}</md:NameIDFormat>\
             <md:SingleSignOnService Binding=\"{BINDING_REDIRECT}\" Location=\"{sso}\"/>\
             </md:IDPSSODescriptor></md:EntityDescriptor>\n",
            entity = esc(&self.entity_id),
            slo = esc(&self.slo_url),
            sso = esc(&self.sso_url),
        )
    }

    /// A Response built from `spec`, signed as spec.sign says, returned as XML text (no XML
    /// declaration; the root element is `samlp:Response`).
    pub fn response(&self, spec: &ResponseSpec) -> String {
        self.build(spec).xml
    }

    /// The eight XML Signature Wrapping variants of conformance/saml-sp.md (n in 1..=8), built
    /// from a valid signed response for `spec`, where the attacker wants to become
    /// `evil_name_id`. Forged copies get fresh IDs (`XswIds::Fresh`); see `xsw_with_ids`.
    ///
    /// Variants 1–2 wrap a signed Response (spec.sign is forced to Sign::Response), 3–8 a
    /// signed Assertion (spec.sign forced to Sign::Assertion). spec.tamper, extra_assertion and
    /// omit_assertion are ignored. "Forged" = an unsigned copy of the original with the NameID
    /// replaced by `evil_name_id` (inserted verbatim, like spec.name_id). Moved originals have
    /// their own ds:Signature removed (as SAML Raider does; the enveloped-signature transform
    /// excludes it from the digest anyway), except where noted.
    ///
    /// 1. root = forged Response (new ID) with the forged Assertion; its ds:Signature is the
    ///    original Response's Signature, with the original Response appended inside it as the
    ///    last child (after KeyInfo): `Response#evil[Issuer, Signature[SignedInfo ref=#orig,
    ///    SignatureValue, KeyInfo, Response#orig[Issuer, Status, Assertion(good)]], Status,
    ///    Assertion(evil)]`.
    /// 2. root = forged Response (new ID); the original Response is a child placed as the
    ///    sibling right before the Signature (a detached signature):
    ///    `Response#evil[Issuer, Response#orig[...good...], Signature(ref=#orig), Status,
    ///    Assertion(evil)]`.
    /// 3. `Response[Issuer, Status, Assertion#evil(unsigned), Assertion#orig(signed)]`.
    /// 4. `Response[Issuer, Status, Assertion#evil[Issuer, Subject(evil), ..., Assertion#orig
    ///    (signed, last child)]]`.
    /// 5. `Response[Issuer, Status, Assertion#evil[Issuer, Signature(original, ref=#orig),
    ///    Subject(evil), ...], Assertion#orig(untouched copy without Signature, at the end)]`:
    ///    the Signature is kept on the modified Assertion, the reference resolves to the copy.
    /// 6. `Response[Issuer, Status, Assertion#evil[Issuer, Signature[SignedInfo ref=#orig,
    ///    SignatureValue, KeyInfo, Assertion#orig(good, without Signature)], Subject(evil),
    ///    ...]]`.
    /// 7. `Response[Issuer, samlp:Extensions[Assertion#evil(unsigned)], Status,
    ///    Assertion#orig(signed)]`.
    /// 8. `Response[Issuer, Status, Assertion#evil[Issuer, Signature[SignedInfo ref=#orig,
    ///    SignatureValue, KeyInfo, ds:Object[Assertion#orig(good, without Signature)]],
    ///    Subject(evil), ...]]`.
    ///
    /// What samael 0.0.22 `reduce_xml_to_signed_with_allowed_algorithms(.., ValidateAndMarkNoAncestors,
    /// [RsaSha256])` returns (measured in the scratch crate): 1, 6 Err (xmlsec: unexpected node
    /// inside ds:Signature); 8 Err (the enveloped-signature transform removes the ds:Object
    /// content, digest mismatch); 2 Ok, reduced root = the original signed Response, good NameID
    /// only; 3, 4, 5, 7 Ok, reduced root = the original signed Assertion, good NameID only.
    /// With `XswIds::Same` all eight are Err (XmlDuplicateIdAttribute).
    pub fn xsw(&self, n: u8, spec: &ResponseSpec, evil_name_id: &str) -> String {
        self.xsw_with_ids(n, spec, evil_name_id, XswIds::Fresh)
    }

    /// `xsw` with a choice of IDs for the forged copies. With `XswIds::Same` the forged
    /// Response (1, 2) or forged Assertion (3–8) carries the ID of the signed original, so the
    /// document has a duplicate ID.
    pub fn xsw_with_ids(
        &self,
        n: u8,
        spec: &ResponseSpec,
        evil_name_id: &str,
        ids: XswIds,
    ) -> String {
        assert!((1..=8).contains(&n), "XSW variants are 1..=8, got {n}");
        let mut spec = spec.clone();
        spec.tamper = None;
        spec.extra_assertion = false;
        spec.omit_assertion = false;
        spec.sign = if n <= 2 {
            Sign::Response
        } else {
            Sign::Assertion
        };
        let built = self.build(&spec);
        let now = built.now;
        let fresh_or = |orig: &str| match ids {
            XswIds::Fresh => new_id(),
            XswIds::Same => orig.to_string(),
        };

        if n <= 2 {
            let signed = built.xml;
            let (s, e) = element_span(&signed, "ds:Signature").expect("Response Signature");
            let signature = &signed[s..e];
            let original_without_sig = format!("{}{}", &signed[..s], &signed[e..]);
            let evil_assertion = self.assertion_xml(&spec, &new_id(), evil_name_id, now);
            let evil_response_id = fresh_or(&built.response_id);
            let after_issuer = if n == 1 {
                insert_before_end(signature, "ds:Signature", &original_without_sig)
            } else {
                format!("{original_without_sig}{signature}")
            };
            return self.response_xml(
                &spec,
                &evil_response_id,
                now,
                &after_issuer,
                &evil_assertion,
            );
        }

        let signed_response = built.xml;
        let (s, e) = element_span(&signed_response, "saml:Assertion").expect("Assertion");
        let signed_assertion = signed_response[s..e].to_string();
        let (ss, se) =
            element_span(&signed_assertion, "ds:Signature").expect("Assertion Signature");
        let signature = signed_assertion[ss..se].to_string();
        let assertion_without_sig =
            format!("{}{}", &signed_assertion[..ss], &signed_assertion[se..]);
        let evil_id = fresh_or(&built.assertion_id);
        let evil = self.assertion_xml(&spec, &evil_id, evil_name_id, now);
        let rid = built.response_id.as_str();

        let (extensions, assertions) = match n {
            3 => (String::new(), format!("{evil}{signed_assertion}")),
            4 => (
                String::new(),
                insert_before_end(&evil, "saml:Assertion", &signed_assertion),
            ),
            5 => (
                String::new(),
                format!(
                    "{}{assertion_without_sig}",
                    insert_after_issuer(&evil, &signature)
                ),
            ),
            6 => {
                let sig = insert_before_end(&signature, "ds:Signature", &assertion_without_sig);
                (String::new(), insert_after_issuer(&evil, &sig))
            }
            7 => (
                format!("<samlp:Extensions>{evil}</samlp:Extensions>"),
                signed_assertion.clone(),
            ),
            _ => {
                let object = format!("<ds:Object>{assertion_without_sig}</ds:Object>");
                let sig = insert_before_end(&signature, "ds:Signature", &object);
                (String::new(), insert_after_issuer(&evil, &sig))
            }
        };
        self.response_xml(&spec, rid, now, &extensions, &assertions)
    }

    /// HTTP-Redirect binding: deflate + base64 + urlencode `xml` under `param` ("SAMLRequest" or
    /// "SAMLResponse"), optional RelayState, signed with SigAlg rsa-sha256 + Signature (IdP key)
    /// when `sign`. Returns the query string (no leading '?'). Encoding is
    /// application/x-www-form-urlencoded exactly as the `url` crate serialises it (what samael's
    /// UrlVerifier re-creates before verifying).
    pub fn redirect_query(
        &self,
        param: &str,
        xml: &str,
        relay_state: Option<&str>,
        sign: bool,
    ) -> String {
        let signer = if sign { Some(Signer::Idp) } else { None };
        self.redirect_query_with(param, xml, relay_state, signer, ALG_RSA_SHA256)
    }

    /// `redirect_query` signed (rsa-sha256) by the given key (`Signer::Other`: the wrong key).
    pub fn redirect_query_signed_by(
        &self,
        param: &str,
        xml: &str,
        relay_state: Option<&str>,
        signer: Signer,
    ) -> String {
        self.redirect_query_with(param, xml, relay_state, Some(signer), ALG_RSA_SHA256)
    }

    /// `redirect_query` signed with an explicit SigAlg (`ALG_RSA_SHA256` or `ALG_RSA_SHA1`).
    pub fn redirect_query_with(
        &self,
        param: &str,
        xml: &str,
        relay_state: Option<&str>,
        signer: Option<Signer>,
        sig_alg: &str,
    ) -> String {
        let mut q = format!("{}={}", urlencode(param), urlencode(&deflate_b64(xml)));
        if let Some(rs) = relay_state {
            q.push_str(&format!("&RelayState={}", urlencode(rs)));
        }
        if let Some(signer) = signer {
            q.push_str(&format!("&SigAlg={}", urlencode(sig_alg)));
            let md = if sig_alg == ALG_RSA_SHA1 {
                MessageDigest::sha1()
            } else {
                MessageDigest::sha256()
            };
            let mut s = openssl::sign::Signer::new(md, &self.keypair(signer).key).expect("signer");
            s.update(q.as_bytes()).expect("sign update");
            let sig = s.sign_to_vec().expect("sign");
            q.push_str(&format!("&Signature={}", urlencode(&B64.encode(sig))));
        }
        q
    }

    /// A LogoutRequest (IdP-initiated SLO) for name_id (emailAddress format) / session_index,
    /// Destination = `destination`, unsigned XML (sign it with `redirect_query(.., true)` or
    /// `sign_enveloped`).
    pub fn logout_request(
        &self,
        destination: &str,
        name_id: &str,
        session_index: Option<&str>,
    ) -> String {
        let id = new_id();
        let session = session_index
            .map(|s| format!("<samlp:SessionIndex>{}</samlp:SessionIndex>", esc(s)))
            .unwrap_or_default();
        format!(
            "<samlp:LogoutRequest xmlns:samlp=\"{PROTOCOL_NS}\" xmlns:saml=\"{ASSERTION_NS}\" \
             ID=\"{id}\" Version=\"2.0\" IssueInstant=\"{instant}\" Destination=\"{dest}\">\
             <saml:Issuer>{issuer}</saml:Issuer>\
             <saml:NameID Format=\"{NAMEID_EMAIL}\">{name}</saml:NameID>{session}\
             </samlp:LogoutRequest>",
            instant = instant(now_unix()),
            dest = esc(destination),
            issuer = esc(&self.entity_id),
            name = esc(name_id),
        )
    }

    /// A LogoutResponse answering `in_response_to`, Status Success, Destination = `destination`,
    /// unsigned XML.
    pub fn logout_response(&self, destination: &str, in_response_to: &str) -> String {
        let id = new_id();
        format!(
            "<samlp:LogoutResponse xmlns:samlp=\"{PROTOCOL_NS}\" xmlns:saml=\"{ASSERTION_NS}\" \
             ID=\"{id}\" Version=\"2.0\" IssueInstant=\"{instant}\" Destination=\"{dest}\" \
             InResponseTo=\"{irt}\"><saml:Issuer>{issuer}</saml:Issuer>\
             <samlp:Status><samlp:StatusCode Value=\"{STATUS_SUCCESS}\"/></samlp:Status>\
             </samlp:LogoutResponse>",
            instant = instant(now_unix()),
            dest = esc(destination),
            irt = esc(in_response_to),
            issuer = esc(&self.entity_id),
        )
    }

    /// Enveloped-signs the root element of `xml` (which must have an `ID` attribute and a
    /// `saml:Issuer` child): the Signature goes right after the first `</saml:Issuer>`.
    /// For POST-binding logout messages or any other hand-made document.
    pub fn sign_enveloped(&self, xml: &str, alg: Alg, signer: Signer) -> String {
        let id = root_attr(xml, "ID").expect("root element has an ID attribute");
        self.sign_element(xml, &id, alg, signer)
    }

    // ---- building -----------------------------------------------------------------------

    fn build(&self, spec: &ResponseSpec) -> Built {
        let now = now_unix();
        let response_id = spec.response_id.clone().unwrap_or_else(new_id);
        let assertion_id = spec.assertion_id.clone().unwrap_or_else(new_id);
        let mut assertions = String::new();
        if !spec.omit_assertion {
            let mut assertion = self.assertion_xml(spec, &assertion_id, &spec.name_id, now);
            if matches!(spec.sign, Sign::Assertion | Sign::Both) {
                assertion =
                    self.sign_element(&assertion, &assertion_id, spec.algorithm, spec.signer);
            }
            assertions.push_str(&assertion);
            if spec.extra_assertion {
                assertions.push_str(&self.assertion_xml(spec, &new_id(), &spec.name_id, now));
            }
        }
        let mut xml = self.response_xml(spec, &response_id, now, "", &assertions);
        if matches!(spec.sign, Sign::Response | Sign::Both) {
            xml = self.sign_element(&xml, &response_id, spec.algorithm, spec.signer);
        }
        if let Some((from, to)) = &spec.tamper {
            assert!(
                xml.contains(from.as_str()),
                "tamper: {from:?} not found in the response"
            );
            xml = xml.replacen(from.as_str(), to, 1);
        }
        Built {
            xml,
            response_id,
            assertion_id,
            now,
        }
    }

    /// An unsigned Assertion (declares saml, xs, xsi itself).
    fn assertion_xml(&self, spec: &ResponseSpec, id: &str, name_id: &str, now: i64) -> String {
        let issued = instant(now + spec.issue_instant_offset);
        let scd_nooa = instant(
            now + spec
                .subject_not_on_or_after_offset
                .unwrap_or(spec.not_on_or_after_offset),
        );
        let irt = spec
            .in_response_to
            .as_ref()
            .map(|v| format!(" InResponseTo=\"{}\"", esc(v)))
            .unwrap_or_default();
        let audience = spec
            .audience
            .as_ref()
            .map(|a| {
                format!(
                    "<saml:AudienceRestriction><saml:Audience>{}</saml:Audience></saml:AudienceRestriction>",
                    esc(a)
                )
            })
            .unwrap_or_default();
        let session_index = spec
            .session_index
            .as_ref()
            .map(|s| format!(" SessionIndex=\"{}\"", esc(s)))
            .unwrap_or_default();
        let authn_context = spec
            .authn_context
            .as_ref()
            .map(|c| {
                format!(
                    "<saml:AuthnContext><saml:AuthnContextClassRef>{}</saml:AuthnContextClassRef></saml:AuthnContext>",
                    esc(c)
                )
            })
            .unwrap_or_default();
        let mut attrs = String::new();
        if !spec.attributes.is_empty() {
            attrs.push_str("<saml:AttributeStatement>");
            for (name, values) in &spec.attributes {
                attrs.push_str(&format!(
                    "<saml:Attribute Name=\"{}\" NameFormat=\"urn:oasis:names:tc:SAML:2.0:attrname-format:basic\">",
                    esc(name)
                ));
                for v in values {
                    attrs.push_str(&format!(
                        "<saml:AttributeValue xsi:type=\"xs:string\">{}</saml:AttributeValue>",
                        esc(v)
                    ));
                }
                attrs.push_str("</saml:Attribute>");
            }
            attrs.push_str("</saml:AttributeStatement>");
        }
        format!(
            "<saml:Assertion xmlns:saml=\"{ASSERTION_NS}\" xmlns:xs=\"{XS_NS}\" xmlns:xsi=\"{XSI_NS}\" \
             ID=\"{id}\" Version=\"2.0\" IssueInstant=\"{issued}\">\
             <saml:Issuer>{issuer}</saml:Issuer>\
             <saml:Subject>{name_id_element}\
             <saml:SubjectConfirmation Method=\"urn:oasis:names:tc:SAML:2.0:cm:bearer\">\
             <saml:SubjectConfirmationData{irt} NotOnOrAfter=\"{scd_nooa}\" Recipient=\"{recipient}\"/>\
             </saml:SubjectConfirmation></saml:Subject>\
             <saml:Conditions NotBefore=\"{nb}\" NotOnOrAfter=\"{nooa}\">{audience}</saml:Conditions>\
             <saml:AuthnStatement AuthnInstant=\"{issued}\"{session_index}>{authn_context}</saml:AuthnStatement>\
             {attrs}</saml:Assertion>",
            issuer = esc(&spec.issuer),
            name_id_element = if spec.omit_name_id {
                String::new()
            } else {
                format!(
                    "<saml:NameID Format=\"{}\">{name_id}</saml:NameID>",
                    esc(&spec.name_id_format)
                )
            },
            recipient = esc(&spec.recipient),
            nb = instant(now + spec.not_before_offset),
            nooa = instant(now + spec.not_on_or_after_offset),
        )
    }

    /// An unsigned Response: Issuer, `after_issuer` (Signature / Extensions / wrapped content),
    /// Status, `assertions`.
    fn response_xml(
        &self,
        spec: &ResponseSpec,
        id: &str,
        now: i64,
        after_issuer: &str,
        assertions: &str,
    ) -> String {
        let dest = spec
            .destination
            .as_ref()
            .map(|d| format!(" Destination=\"{}\"", esc(d)))
            .unwrap_or_default();
        let irt = spec
            .in_response_to
            .as_ref()
            .map(|v| format!(" InResponseTo=\"{}\"", esc(v)))
            .unwrap_or_default();
        let top_level = [
            STATUS_SUCCESS,
            STATUS_REQUESTER,
            STATUS_RESPONDER,
            STATUS_VERSION_MISMATCH,
        ];
        let code = if top_level.contains(&spec.status.as_str()) {
            format!("<samlp:StatusCode Value=\"{}\"/>", esc(&spec.status))
        } else {
            format!(
                "<samlp:StatusCode Value=\"{STATUS_RESPONDER}\"><samlp:StatusCode Value=\"{}\"/></samlp:StatusCode>",
                esc(&spec.status)
            )
        };
        let message = spec
            .status_message
            .as_ref()
            .map(|m| format!("<samlp:StatusMessage>{}</samlp:StatusMessage>", esc(m)))
            .unwrap_or_default();
        format!(
            "<samlp:Response xmlns:samlp=\"{PROTOCOL_NS}\" xmlns:saml=\"{ASSERTION_NS}\" \
             ID=\"{id}\" Version=\"2.0\" IssueInstant=\"{issued}\"{dest}{irt}>\
             <saml:Issuer>{issuer}</saml:Issuer>{after_issuer}\
             <samlp:Status>{code}{message}</samlp:Status>{assertions}</samlp:Response>",
            issued = instant(now + spec.issue_instant_offset),
            issuer = esc(&spec.issuer),
        )
    }

    /// Inserts a Signature template (Reference URI="#id") after the first `</saml:Issuer>` and
    /// signs it with xmlsec (samael `Crypto::sign_xml`, which signs the first Signature template
    /// in document order). Returns the signed element without an XML declaration.
    fn sign_element(&self, xml: &str, id: &str, alg: Alg, signer: Signer) -> String {
        let kp = self.keypair(signer);
        let (sig_alg, digest_alg) = match alg {
            Alg::Sha256 => (ALG_RSA_SHA256, DIGEST_SHA256),
            Alg::Sha1 => (ALG_RSA_SHA1, DIGEST_SHA1),
        };
        let template = format!(
            "<ds:Signature xmlns:ds=\"{DSIG_NS}\"><ds:SignedInfo>\
             <ds:CanonicalizationMethod Algorithm=\"{C14N_EXCL}\"/>\
             <ds:SignatureMethod Algorithm=\"{sig_alg}\"/>\
             <ds:Reference URI=\"#{id}\"><ds:Transforms>\
             <ds:Transform Algorithm=\"{TRANSFORM_ENVELOPED}\"/>\
             <ds:Transform Algorithm=\"{C14N_EXCL}\"/></ds:Transforms>\
             <ds:DigestMethod Algorithm=\"{digest_alg}\"/><ds:DigestValue></ds:DigestValue>\
             </ds:Reference></ds:SignedInfo><ds:SignatureValue></ds:SignatureValue>\
             <ds:KeyInfo><ds:X509Data><ds:X509Certificate>{cert}</ds:X509Certificate></ds:X509Data>\
             </ds:KeyInfo></ds:Signature>",
            cert = kp.cert_b64(),
        );
        let with_template = insert_after_issuer(xml, &template);
        let signed = Crypto::sign_xml(with_template.as_str(), &kp.private_key_der())
            .expect("xmlsec signs the document");
        strip_xml_declaration(&signed).to_string()
    }
}

struct Built {
    xml: String,
    response_id: String,
    assertion_id: String,
    now: i64,
}

// ---- attacks on the document as a whole ----------------------------------------------------

/// Adds a DOCTYPE before the root element of `xml` (after an XML declaration, if any) and, for
/// the entity variants, a reference to the entity at the start of the first `saml:NameID` text.
/// Apply it to a signed response: the SP must refuse before expanding anything (the signature
/// no longer matters).
pub fn dtd_attack(xml: &str, attack: DtdAttack) -> String {
    let root = root_qname(xml).unwrap_or_else(|| "samlp:Response".to_string());
    let (doctype, reference) = match attack {
        DtdAttack::Doctype => (format!("<!DOCTYPE {root} []>"), None),
        DtdAttack::InternalEntity => (
            format!("<!DOCTYPE {root} [<!ENTITY e \"admin@corp.example\">]>"),
            Some("&e;"),
        ),
        DtdAttack::BillionLaughs => {
            let mut d = format!("<!DOCTYPE {root} [<!ENTITY lol \"lol\">");
            d.push_str("<!ENTITY lol1 \"&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;\">");
            for i in 2..=9 {
                let p = format!("&lol{};", i - 1);
                d.push_str(&format!("<!ENTITY lol{i} \"{}\">", p.repeat(10)));
            }
            d.push_str("]>");
            (d, Some("&lol9;"))
        }
        DtdAttack::ExternalEntity => (
            format!("<!DOCTYPE {root} [<!ENTITY xxe SYSTEM \"file:///etc/passwd\">]>"),
            Some("&xxe;"),
        ),
    };
    let start = root_element_offset(xml);
    let decl = &xml[..start];
    let mut body = xml[start..].to_string();
    if let Some(r) = reference {
        if let Some(pos) = body.find("<saml:NameID") {
            if let Some(gt) = body[pos..].find('>') {
                body.insert_str(pos + gt + 1, r);
            }
        }
    }
    format!("{decl}{doctype}{body}")
}

/// Pads `xml` with a comment right after the root start tag so that it is at least
/// `total_len` bytes long (e.g. 5 MiB for the size row). The signature stays valid.
pub fn padded(xml: &str, total_len: usize) -> String {
    let start = root_element_offset(xml);
    let gt = start + xml[start..].find('>').expect("root start tag") + 1;
    let overhead = xml.len() + "<!---->".len();
    let pad = "x".repeat(total_len.saturating_sub(overhead));
    format!("{}<!--{pad}-->{}", &xml[..gt], &xml[gt..])
}

// ---- bindings ------------------------------------------------------------------------------

/// HTTP-POST binding form body: `SAMLResponse=<urlencoded base64(xml)>[&RelayState=...]`
/// (application/x-www-form-urlencoded).
pub fn post_form(xml: &str, relay_state: Option<&str>) -> String {
    post_form_param("SAMLResponse", xml, relay_state)
}

/// The same under any parameter name ("SAMLRequest" for POST-binding requests).
pub fn post_form_param(param: &str, xml: &str, relay_state: Option<&str>) -> String {
    let mut body = format!(
        "{}={}",
        urlencode(param),
        urlencode(&B64.encode(xml.as_bytes()))
    );
    if let Some(rs) = relay_state {
        body.push_str(&format!("&RelayState={}", urlencode(rs)));
    }
    body
}

/// Inverse of the redirect binding: from a full URL or a query string, the parameter `param`
/// (SAMLRequest/SAMLResponse) url-decoded, base64-decoded and inflated to XML text. If the value
/// does not inflate it is returned base64-decoded only (so a POST-binding value works too).
/// Panics if the parameter is missing.
pub fn decode_redirect(url_or_query: &str, param: &str) -> String {
    let value = query_param(url_or_query, param)
        .unwrap_or_else(|| panic!("no {param} parameter in {url_or_query}"));
    let cleaned: String = value.chars().filter(|c| !c.is_whitespace()).collect();
    let raw = B64
        .decode(cleaned.as_bytes())
        .expect("base64 of the SAML message");
    let mut out = String::new();
    let mut inflater = flate2::read::DeflateDecoder::new(raw.as_slice());
    match inflater.read_to_string(&mut out) {
        Ok(_) if out.trim_start().starts_with('<') => out,
        _ => String::from_utf8(raw).expect("SAML message is UTF-8"),
    }
}

/// The form-url-decoded value of `name` in a full URL (query part) or a bare query string.
pub fn query_param(url_or_query: &str, name: &str) -> Option<String> {
    let query = match url_or_query.split_once('?') {
        Some((_, q)) => q,
        None => url_or_query,
    };
    let query = query.split('#').next().unwrap_or_default();
    query.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (urldecode(k) == name).then(|| urldecode(v))
    })
}

/// application/x-www-form-urlencoded serialisation, byte for byte as the `url` /
/// `form_urlencoded` crates do it: `A-Za-z0-9*-._` kept, space as `+`, the rest `%XX`.
pub fn urlencode(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 3);
    for &b in s.as_bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'*' | b'-' | b'.' | b'_' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// Form-url-decoding: `+` is a space, `%XX` a byte (malformed escapes kept literally).
pub fn urldecode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok();
                match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(v) => {
                        out.push(v);
                        i += 3;
                    }
                    None => {
                        out.push(b'%');
                        i += 1;
                    }
                }
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn deflate_b64(xml: &str) -> String {
    let mut enc = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(xml.as_bytes()).expect("deflate");
    B64.encode(enc.finish().expect("deflate"))
}

// ---- reading XML ---------------------------------------------------------------------------

/// An attribute of the root element (matched by qualified name, or by local name if no
/// qualified name matches), unescaped. E.g. `root_attr(&authn_request, "ID")`,
/// `root_attr(&authn_request, "ForceAuthn")`.
pub fn root_attr(xml: &str, name: &str) -> Option<String> {
    use quick_xml::events::Event;
    let mut reader = quick_xml::Reader::from_str(xml);
    loop {
        match reader.read_event().ok()? {
            Event::Start(e) | Event::Empty(e) => {
                let mut by_local = None;
                for a in e.attributes().with_checks(false).flatten() {
                    let value = || {
                        a.normalized_value(quick_xml::XmlVersion::Implicit1_0)
                            .map(|v| v.into_owned())
                            .ok()
                    };
                    if a.key.as_ref() == name.as_bytes() {
                        return value();
                    }
                    if by_local.is_none() && a.key.local_name().as_ref() == name.as_bytes() {
                        by_local = value();
                    }
                }
                return by_local;
            }
            Event::Eof => return None,
            _ => {}
        }
    }
}

/// The text of the first element with local name `local_name` (any namespace prefix): all text,
/// CDATA and character/predefined entity references inside it concatenated, comments and child
/// tags skipped. E.g. `first_text(&authn_request, "AuthnContextClassRef")`; on a NameID
/// `a@corp.example<!---->.evil.example` it gives the full `a@corp.example.evil.example`.
pub fn first_text(xml: &str, local_name: &str) -> Option<String> {
    use quick_xml::events::Event;
    let mut reader = quick_xml::Reader::from_str(xml);
    let mut depth: Option<usize> = None;
    let mut text = String::new();
    loop {
        let event = reader.read_event().ok()?;
        match (&event, depth) {
            (Event::Eof, _) => return None,
            (Event::Start(e), None) if e.local_name().as_ref() == local_name.as_bytes() => {
                depth = Some(0);
            }
            (Event::Empty(e), None) if e.local_name().as_ref() == local_name.as_bytes() => {
                return Some(String::new());
            }
            (Event::Start(_), Some(d)) => depth = Some(d + 1),
            (Event::End(_), Some(0)) => return Some(text),
            (Event::End(_), Some(d)) => depth = Some(d - 1),
            (Event::Text(t), Some(_)) => text.push_str(&t.xml10_content().ok()?),
            (Event::CData(t), Some(_)) => text.push_str(&t.decode().ok()?),
            (Event::GeneralRef(r), Some(_)) => {
                if let Ok(Some(c)) = r.resolve_char_ref() {
                    text.push(c);
                } else {
                    let name = r.decode().ok()?;
                    let resolved = match name.as_ref() {
                        "amp" => "&",
                        "lt" => "<",
                        "gt" => ">",
                        "quot" => "\"",
                        "apos" => "'",
                        _ => return None,
                    };
                    text.push_str(resolved);
                }
            }
            _ => {}
        }
    }
}

/// The qualified name of the root element.
pub fn root_qname(xml: &str) -> Option<String> {
    use quick_xml::events::Event;
    let mut reader = quick_xml::Reader::from_str(xml);
    loop {
        match reader.read_event().ok()? {
            Event::Start(e) | Event::Empty(e) => {
                return Some(String::from_utf8_lossy(e.name().as_ref()).into_owned())
            }
            Event::Eof => return None,
            _ => {}
        }
    }
}

// ---- small helpers -------------------------------------------------------------------------

/// A fresh SAML ID: "_" + 40 hex digits (NCName, 160 random bits).
pub fn new_id() -> String {
    let mut bytes = [0u8; 20];
    openssl::rand::rand_bytes(&mut bytes).expect("random bytes");
    let mut id = String::from("_");
    for b in bytes {
        id.push_str(&format!("{b:02x}"));
    }
    id
}

fn now_unix() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs() as i64
}

/// xs:dateTime in UTC, second precision, e.g. 2025-01-31T12:00:00Z.
fn instant(unix: i64) -> String {
    chrono::DateTime::from_timestamp(unix, 0)
        .expect("timestamp in range")
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

/// XML escaping for text and attribute values.
fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

/// Byte offset of the root element's `<` (skipping an XML declaration, comments, PIs, a
/// DOCTYPE without internal subset brackets, and whitespace).
fn root_element_offset(xml: &str) -> usize {
    let bytes = xml.as_bytes();
    let mut i = 0;
    while let Some(p) = xml[i..].find('<') {
        let at = i + p;
        match bytes.get(at + 1) {
            Some(b'?') | Some(b'!') => i = at + 1,
            Some(_) => return at,
            None => break,
        }
    }
    0
}

fn strip_xml_declaration(xml: &str) -> &str {
    let t = xml.trim_start();
    let t = if t.starts_with("<?xml") {
        match t.find("?>") {
            Some(end) => &t[end + 2..],
            None => t,
        }
    } else {
        t
    };
    t.trim()
}

/// Byte span of the first element `<qname ...>...</qname>` (no same-name nesting assumed).
fn element_span(xml: &str, qname: &str) -> Option<(usize, usize)> {
    let open = format!("<{qname}");
    let close = format!("</{qname}>");
    let mut from = 0;
    let start = loop {
        let pos = from + xml[from..].find(&open)?;
        let next = xml[pos + open.len()..].chars().next()?;
        if next == ' ' || next == '>' || next == '/' || next == '\n' || next == '\t' {
            break pos;
        }
        from = pos + open.len();
    };
    let end = start + xml[start..].find(&close)? + close.len();
    Some((start, end))
}

/// Inserts `content` right before the LAST `</qname>` of `xml` (the element's own end tag when
/// `xml` is that element).
fn insert_before_end(xml: &str, qname: &str, content: &str) -> String {
    let close = format!("</{qname}>");
    let pos = xml.rfind(&close).expect("end tag");
    format!("{}{content}{}", &xml[..pos], &xml[pos..])
}

/// Inserts `content` right after the first `</saml:Issuer>`.
fn insert_after_issuer(xml: &str, content: &str) -> String {
    let close = "</saml:Issuer>";
    let pos = xml.find(close).expect("saml:Issuer") + close.len();
    format!("{}{content}{}", &xml[..pos], &xml[pos..])
}
