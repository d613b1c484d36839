//! SAML 2.0 service-provider checks (issue 5, DESIGN.md §6): IdP metadata, the response pipeline
//! and the redirect binding. No HTTP here; `server::saml` fetches, stores and decides.
//!
//! Invariants: a document is scanned (DOCTYPE refused, one assertion, algorithms allowed) before
//! libxml2 sees it; the signature is checked against the configured certificates only and the
//! identity is read from what the signature covers (samael's reduction), nothing else; every
//! condition is checked against the gateway's clock with a small skew.

use crate::auth::oidc::clean;
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use openssl::pkey::{PKey, Private, Public};
use quick_xml::events::Event as Xml;
use quick_xml::name::ResolveResult;
use quick_xml::NsReader;
use samael::crypto::{
    AllowedSignatureAlgorithm, CertificateDer, Crypto, CryptoProvider, ReduceMode,
};
use samael::metadata::EntityDescriptor;
use samael::schema::{Assertion, LogoutRequest, LogoutResponse, Response};
use std::io::{Read, Write};
use std::path::Path;

pub const PROTOCOL_NS: &str = "urn:oasis:names:tc:SAML:2.0:protocol";
pub const ASSERTION_NS: &str = "urn:oasis:names:tc:SAML:2.0:assertion";
const DSIG_NS: &str = "http://www.w3.org/2000/09/xmldsig#";
pub const STATUS_SUCCESS: &str = "urn:oasis:names:tc:SAML:2.0:status:Success";
const BEARER: &str = "urn:oasis:names:tc:SAML:2.0:cm:bearer";
pub const REDIRECT_BINDING: &str = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect";
pub const POST_BINDING: &str = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST";
/// Deeper nesting than this is not SAML but an attack on the parser.
const MAX_DEPTH: usize = 48;
/// An inflated redirect-binding message larger than this is refused (deflate bombs).
const MAX_INFLATED: u64 = 256 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum SamlError {
    #[error("not valid base64 / UTF-8")]
    Encoding,
    #[error("not well-formed XML: {0}")]
    Malformed(String),
    #[error("a DOCTYPE or entity declaration is not allowed")]
    Dtd,
    #[error("the root element is not a {0}")]
    Root(&'static str),
    #[error("the IdP answered with status {code}")]
    Status {
        code: String,
        message: Option<String>,
    },
    #[error("{0} assertions in one response; exactly one is allowed")]
    AssertionCount(usize),
    #[error("encrypted assertions are not supported")]
    Encrypted,
    #[error("signature algorithm {0} is not allowed")]
    Algorithm(String),
    #[error("the signature does not verify against the IdP's certificate")]
    Signature,
    #[error("the signed content has no usable assertion: {0}")]
    Content(String),
    #[error("issuer {0:?} is not the configured IdP")]
    Issuer(String),
    #[error("the audience is missing or is not this service provider")]
    Audience,
    #[error("recipient or destination {0:?} is not this ACS URL")]
    Recipient(String),
    #[error("the assertion is not valid yet (NotBefore)")]
    NotYetValid,
    #[error("the assertion has expired (NotOnOrAfter)")]
    Expired,
    #[error("no bearer subject confirmation")]
    Confirmation,
    #[error("InResponseTo differs between the response and the assertion")]
    InResponseTo,
    /// No stable subject: a transient (or unspecified) NameID and no `subject_attribute`, or
    /// that attribute missing, empty or with several values.
    #[error("no stable subject: {0}")]
    NoStableSubject(String),
    /// The `username_attribute` is missing, empty, has several values or cannot be a header.
    #[error("no usable username: {0}")]
    Username(String),
    #[error("metadata: {0}")]
    Metadata(String),
    #[error("key: {0}")]
    Key(String),
}

impl SamlError {
    /// The audit reason.
    pub fn reason(&self) -> &'static str {
        match self {
            SamlError::Encoding | SamlError::Malformed(_) | SamlError::Root(_) => "malformed",
            SamlError::Dtd => "dtd",
            SamlError::Status { .. } => "idp_status",
            SamlError::AssertionCount(_) => "assertion_count",
            SamlError::Encrypted => "encrypted",
            SamlError::Algorithm(_) => "algorithm",
            SamlError::Signature => "signature",
            SamlError::Content(_) => "content",
            SamlError::Issuer(_) => "issuer",
            SamlError::Audience => "audience",
            SamlError::Recipient(_) => "recipient",
            SamlError::NotYetValid => "not_yet_valid",
            SamlError::Expired => "expired",
            SamlError::Confirmation => "subject_confirmation",
            SamlError::InResponseTo => "in_response_to",
            SamlError::NoStableSubject(_) => "no_stable_subject",
            SamlError::Username(_) => "username",
            SamlError::Metadata(_) => "metadata",
            SamlError::Key(_) => "key",
        }
    }

    /// Whether the request itself was malformed (400) rather than refused (403).
    pub fn is_malformed(&self) -> bool {
        matches!(
            self,
            SamlError::Encoding | SamlError::Malformed(_) | SamlError::Root(_) | SamlError::Dtd
        )
    }
}

/// What the gateway needs of an IdP's metadata.
#[derive(Clone, Debug)]
pub struct IdpMetadata {
    pub entity_id: String,
    /// Only these certificates verify responses; a KeyInfo in a message never counts.
    pub certs: Vec<CertificateDer>,
    pub sso_redirect: String,
    pub slo_redirect: Option<String>,
    /// Where LogoutResponses go (`ResponseLocation`, else `Location`).
    pub slo_response: Option<String>,
}

impl IdpMetadata {
    pub fn parse(xml: &str) -> Result<IdpMetadata, SamlError> {
        let m = |s: &str| SamlError::Metadata(s.to_owned());
        scan_prolog(xml)?;
        let ed: EntityDescriptor = xml
            .parse()
            .map_err(|e| SamlError::Metadata(format!("not an EntityDescriptor: {e}")))?;
        let entity_id = ed
            .entity_id
            .clone()
            .filter(|e| !e.trim().is_empty())
            .ok_or_else(|| m("EntityDescriptor has no entityID"))?;
        let descriptors = ed
            .idp_sso_descriptors
            .as_deref()
            .filter(|d| !d.is_empty())
            .ok_or_else(|| m("no IDPSSODescriptor (is this the IdP's metadata?)"))?;
        let mut certs = Vec::new();
        let mut sso = None;
        let mut slo = None;
        for d in descriptors {
            for kd in &d.key_descriptors {
                if !matches!(kd.key_use.as_deref(), None | Some("") | Some("signing")) {
                    continue;
                }
                for c in kd
                    .key_info
                    .x509_data
                    .iter()
                    .flat_map(|x| x.certificates.iter())
                {
                    let clean: String = c.chars().filter(|c| !c.is_whitespace()).collect();
                    let der = B64
                        .decode(clean)
                        .map_err(|_| m("a signing certificate is not valid base64"))?;
                    openssl::x509::X509::from_der(&der)
                        .map_err(|_| m("a signing certificate is not a valid X.509 certificate"))?;
                    certs.push(CertificateDer::from(der));
                }
            }
            sso = sso.or_else(|| {
                d.single_sign_on_services
                    .iter()
                    .find(|e| e.binding == REDIRECT_BINDING)
                    .map(|e| e.location.clone())
            });
            slo = slo.or_else(|| {
                d.single_logout_services
                    .iter()
                    .find(|e| e.binding == REDIRECT_BINDING)
                    .map(|e| (e.location.clone(), e.response_location.clone()))
            });
        }
        if certs.is_empty() {
            return Err(m(
                "the IdP metadata has no signing certificate; portcullis does not accept unsigned SAML, so add the IdP's signing certificate to its metadata",
            ));
        }
        let sso_redirect = sso.ok_or_else(|| {
            m("the IdP offers no SingleSignOnService with the HTTP-Redirect binding")
        })?;
        let (slo_redirect, slo_response) = match slo {
            Some((loc, resp)) => (Some(loc.clone()), Some(resp.unwrap_or(loc))),
            None => (None, None),
        };
        Ok(IdpMetadata {
            entity_id,
            certs,
            sso_redirect,
            slo_redirect,
            slo_response,
        })
    }
}

/// The SP's signing key and certificate (`sp_key`, `sp_cert`).
pub struct SpKeys {
    pub key: PKey<Private>,
    pub cert_der: Vec<u8>,
}

impl std::fmt::Debug for SpKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SpKeys(***)")
    }
}

impl SpKeys {
    pub fn load(key: &Path, cert: &Path) -> Result<SpKeys, SamlError> {
        let kp =
            std::fs::read(key).map_err(|e| SamlError::Key(format!("{}: {e}", key.display())))?;
        let cp =
            std::fs::read(cert).map_err(|e| SamlError::Key(format!("{}: {e}", cert.display())))?;
        let pkey = PKey::private_key_from_pem(&kp)
            .map_err(|_| SamlError::Key(format!("{} is not a PEM private key", key.display())))?;
        let x509 = openssl::x509::X509::from_pem(&cp)
            .map_err(|_| SamlError::Key(format!("{} is not a PEM certificate", cert.display())))?;
        let matches = x509.public_key().ok().is_some_and(|p| pkey.public_eq(&p));
        if !matches {
            return Err(SamlError::Key(format!(
                "{} is not the certificate of {}",
                cert.display(),
                key.display()
            )));
        }
        let cert_der = x509
            .to_der()
            .map_err(|_| SamlError::Key("cannot encode the certificate".into()))?;
        Ok(SpKeys {
            key: pkey,
            cert_der,
        })
    }
}

/// What one response is checked against.
pub struct Expect<'a> {
    pub idp: &'a IdpMetadata,
    pub sp_entity_id: &'a str,
    pub acs_url: &'a str,
    pub algorithms: &'a [String],
    pub skew_secs: i64,
    pub now: i64,
}

/// A verified assertion: everything in here came from signed content.
#[derive(Clone, Debug)]
pub struct Verified {
    pub assertion_id: String,
    /// Until when the assertion id must stay in the replay cache.
    pub replay_until: i64,
    /// From the bearer SubjectConfirmationData (or the signed Response).
    pub in_response_to: Option<String>,
    pub name_id: String,
    pub name_id_format: Option<String>,
    pub session_index: Option<String>,
    pub attributes: Vec<(String, Vec<String>)>,
    pub authn_contexts: Vec<String>,
}

impl Verified {
    /// Every value of attribute `name` (by Name, else FriendlyName).
    pub fn attribute(&self, name: &str) -> Vec<String> {
        self.attributes
            .iter()
            .filter(|(n, _)| n == name)
            .flat_map(|(_, v)| v.iter().cloned())
            .collect()
    }

    /// The one value of attribute `name`, usable as an identity value (`clean`). Several
    /// values (or the same attribute twice) are refused, never resolved by taking the first:
    /// which one is "the" value is the IdP's to say, not ours to guess.
    fn single(&self, name: &str) -> Result<String, String> {
        match self.attribute(name).as_slice() {
            [] => Err(format!("attribute {name:?} is missing")),
            [one] => clean(one).ok_or_else(|| format!("attribute {name:?} is empty or unusable")),
            more => Err(format!("attribute {name:?} has {} values", more.len())),
        }
    }

    /// The stable subject of this user at this IdP (issue 14, finding 9): the configured
    /// attribute's single value, else the NameID when its Format promises the same value at
    /// every login (persistent, emailAddress). A transient NameID is a new value per login
    /// (SAML core §8.3.8), and an unspecified one may be: keyed on either, every login would be
    /// a new principal without a factor, so a step-up would enrol afresh each time.
    pub fn subject(&self, subject_attribute: Option<&str>) -> Result<String, SamlError> {
        if let Some(a) = subject_attribute {
            return self.single(a).map_err(SamlError::NoStableSubject);
        }
        let format = self.name_id_format.as_deref().unwrap_or(NAMEID_UNSPECIFIED);
        if !STABLE_NAMEID_FORMATS.contains(&format) {
            return Err(SamlError::NoStableSubject(format!(
                "NameID format {format} is not stable and no subject_attribute is configured"
            )));
        }
        clean(&self.name_id)
            .ok_or_else(|| SamlError::NoStableSubject("the NameID is missing or empty".into()))
    }

    /// The user name shown (`X-Forwarded-User`): the single value of `username_attribute`, else
    /// the subject.
    pub fn username(
        &self,
        username_attribute: Option<&str>,
        subject: &str,
    ) -> Result<String, SamlError> {
        match username_attribute {
            Some(a) => self.single(a).map_err(SamlError::Username),
            None => Ok(subject.to_owned()),
        }
    }
}

/// `Format` of a NameID whose value is the same at every login of a user (SAML core §8.3.2,
/// §8.3.7). `unspecified` (also a missing Format) is not among them: the SP cannot know what
/// the IdP puts there, and many IdPs send transient-like values under it.
pub const STABLE_NAMEID_FORMATS: &[&str] = &[
    "urn:oasis:names:tc:SAML:2.0:nameid-format:persistent",
    "urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress",
];
const NAMEID_UNSPECIFIED: &str = "urn:oasis:names:tc:SAML:1.1:nameid-format:unspecified";

/// What a scan of the raw document learnt (before any signature check: only used to refuse).
#[derive(Debug, Default)]
struct Scan {
    root: String,
    root_ns: String,
    destination: Option<String>,
    in_response_to: Option<String>,
    status: Option<String>,
    status_message: Option<String>,
    assertions: usize,
    encrypted: usize,
    signature_algorithms: Vec<String>,
    digest_algorithms: Vec<String>,
}

fn malformed(e: impl std::fmt::Display) -> SamlError {
    SamlError::Malformed(e.to_string())
}

/// Refuses a DOCTYPE anywhere before the first element (metadata).
fn scan_prolog(xml: &str) -> Result<(), SamlError> {
    let mut r = quick_xml::Reader::from_str(xml);
    loop {
        match r.read_event().map_err(malformed)? {
            Xml::DocType(_) => return Err(SamlError::Dtd),
            Xml::Start(_) | Xml::Empty(_) | Xml::Eof => return Ok(()),
            _ => {}
        }
    }
}

fn attr(e: &quick_xml::events::BytesStart<'_>, name: &str) -> Result<Option<String>, SamlError> {
    match e.try_get_attribute(name).map_err(malformed)? {
        Some(a) => Ok(Some(
            a.normalized_value(quick_xml::XmlVersion::Implicit1_0)
                .map_err(malformed)?
                .into_owned(),
        )),
        None => Ok(None),
    }
}

/// One pass over the whole document with a streaming parser: refuses DTDs and undeclared
/// entities, bounds nesting, and reads what the policy needs before libxml2 parses anything.
fn scan(xml: &str) -> Result<Scan, SamlError> {
    let mut r = NsReader::from_str(xml);
    let mut s = Scan::default();
    let mut stack: Vec<(String, String)> = Vec::new();
    let mut in_status_message = false;
    loop {
        let (ns, ev) = r.read_resolved_event().map_err(malformed)?;
        let ns = match ns {
            ResolveResult::Bound(n) => String::from_utf8_lossy(n.as_ref()).into_owned(),
            ResolveResult::Unbound => String::new(),
            ResolveResult::Unknown(p) => {
                return Err(malformed(format!(
                    "undeclared namespace prefix {}",
                    String::from_utf8_lossy(&p)
                )))
            }
        };
        match ev {
            Xml::DocType(_) => return Err(SamlError::Dtd),
            Xml::GeneralRef(g) => {
                // Only the five predefined entities and character references exist without a DTD.
                let name = g.decode().map_err(malformed)?;
                let known =
                    matches!(&*name, "amp" | "lt" | "gt" | "quot" | "apos") || g.is_char_ref();
                if !known {
                    return Err(SamlError::Dtd);
                }
                if in_status_message {
                    let c = match &*name {
                        "amp" => Some('&'),
                        "lt" => Some('<'),
                        "gt" => Some('>'),
                        "quot" => Some('"'),
                        "apos" => Some('\''),
                        _ => g.resolve_char_ref().ok().flatten(),
                    };
                    if let Some(c) = c {
                        s.status_message.get_or_insert_with(String::new).push(c);
                    }
                }
            }
            Xml::Start(ref e) | Xml::Empty(ref e) => {
                let local = String::from_utf8_lossy(e.local_name().as_ref()).into_owned();
                let depth = stack.len();
                if depth == 0 {
                    if !s.root.is_empty() {
                        return Err(malformed("more than one root element"));
                    }
                    s.root = local.clone();
                    s.root_ns = ns.clone();
                    s.destination = attr(e, "Destination")?;
                    s.in_response_to = attr(e, "InResponseTo")?;
                }
                match (ns.as_str(), local.as_str()) {
                    (ASSERTION_NS, "Assertion") => s.assertions += 1,
                    (ASSERTION_NS, "EncryptedAssertion") => s.encrypted += 1,
                    (DSIG_NS, "SignatureMethod") => {
                        s.signature_algorithms
                            .push(attr(e, "Algorithm")?.unwrap_or_default());
                    }
                    (DSIG_NS, "DigestMethod") => {
                        s.digest_algorithms
                            .push(attr(e, "Algorithm")?.unwrap_or_default());
                    }
                    (PROTOCOL_NS, "StatusCode") if depth == 2 && s.status.is_none() => {
                        let parent_is_status = stack
                            .last()
                            .is_some_and(|(n, l)| n == PROTOCOL_NS && l == "Status");
                        if parent_is_status {
                            s.status = Some(attr(e, "Value")?.unwrap_or_default());
                        }
                    }
                    (PROTOCOL_NS, "StatusMessage") if depth == 2 => in_status_message = true,
                    _ => {}
                }
                if matches!(ev, Xml::Start(_)) {
                    if stack.len() >= MAX_DEPTH {
                        return Err(malformed("elements nested too deeply"));
                    }
                    stack.push((ns, local));
                }
            }
            Xml::End(_) => {
                stack.pop();
                in_status_message = false;
            }
            Xml::Text(t) if in_status_message => {
                let text = t.decode().map_err(malformed)?;
                s.status_message
                    .get_or_insert_with(String::new)
                    .push_str(&text);
            }
            Xml::Eof => break,
            _ => {}
        }
    }
    if s.root.is_empty() {
        return Err(malformed("no root element"));
    }
    Ok(s)
}

/// Signature-method and digest URIs of an algorithm name of `allowed_algorithms`.
fn algorithm_uris(name: &str) -> Option<(&'static str, &'static str)> {
    Some(match name {
        "rsa-sha256" => (
            "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256",
            "http://www.w3.org/2001/04/xmlenc#sha256",
        ),
        "rsa-sha384" => (
            "http://www.w3.org/2001/04/xmldsig-more#rsa-sha384",
            "http://www.w3.org/2001/04/xmldsig-more#sha384",
        ),
        "rsa-sha512" => (
            "http://www.w3.org/2001/04/xmldsig-more#rsa-sha512",
            "http://www.w3.org/2001/04/xmlenc#sha512",
        ),
        "ecdsa-sha256" => (
            "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256",
            "http://www.w3.org/2001/04/xmlenc#sha256",
        ),
        "ecdsa-sha384" => (
            "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha384",
            "http://www.w3.org/2001/04/xmldsig-more#sha384",
        ),
        "ecdsa-sha512" => (
            "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha512",
            "http://www.w3.org/2001/04/xmlenc#sha512",
        ),
        "rsa-sha1" => (
            "http://www.w3.org/2000/09/xmldsig#rsa-sha1",
            "http://www.w3.org/2000/09/xmldsig#sha1",
        ),
        _ => return None,
    })
}

fn samael_algorithm(name: &str) -> Option<AllowedSignatureAlgorithm> {
    Some(match name {
        "rsa-sha256" => AllowedSignatureAlgorithm::RsaSha256,
        "rsa-sha384" => AllowedSignatureAlgorithm::RsaSha384,
        "rsa-sha512" => AllowedSignatureAlgorithm::RsaSha512,
        "ecdsa-sha256" => AllowedSignatureAlgorithm::EcdsaSha256,
        "ecdsa-sha384" => AllowedSignatureAlgorithm::EcdsaSha384,
        "ecdsa-sha512" => AllowedSignatureAlgorithm::EcdsaSha512,
        _ => return None,
    })
}

/// Every SignatureMethod and DigestMethod in the document must be one of `allowed`.
fn check_algorithms(s: &Scan, allowed: &[String]) -> Result<(), SamlError> {
    let uris: Vec<(&str, &str)> = allowed.iter().filter_map(|a| algorithm_uris(a)).collect();
    for a in &s.signature_algorithms {
        if !uris.iter().any(|(sig, _)| sig == a) {
            return Err(SamlError::Algorithm(a.clone()));
        }
    }
    for a in &s.digest_algorithms {
        if !uris.iter().any(|(_, d)| d == a) {
            return Err(SamlError::Algorithm(a.clone()));
        }
    }
    Ok(())
}

/// Re-serialises `xml` without comments, so that text split by a comment reads as its full
/// value (`admin@corp.example<!---->.evil.example` is that whole string, never its first half).
fn without_comments(xml: &str) -> Result<String, SamlError> {
    let mut r = quick_xml::Reader::from_str(xml);
    let mut w = quick_xml::Writer::new(Vec::with_capacity(xml.len()));
    loop {
        match r.read_event().map_err(malformed)? {
            Xml::Eof => break,
            Xml::Comment(_) => {}
            ev => w.write_event(ev).map_err(malformed)?,
        }
    }
    String::from_utf8(w.into_inner()).map_err(|_| SamlError::Encoding)
}

/// Decodes the `SAMLResponse` form value (base64, whitespace tolerated) to XML text.
pub fn decode_post(b64: &str) -> Result<String, SamlError> {
    let clean: Vec<u8> = b64.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
    let bytes = B64.decode(clean).map_err(|_| SamlError::Encoding)?;
    String::from_utf8(bytes).map_err(|_| SamlError::Encoding)
}

/// The whole response pipeline: scan, status, one assertion, algorithms, signature (samael +
/// xmlsec against the configured certificates), then every condition on the signed content.
/// CPU-bound; callers run it off the async workers.
pub fn verify_response(xml: &str, x: &Expect<'_>) -> Result<Verified, SamlError> {
    let s = scan(xml)?;
    if s.root_ns != PROTOCOL_NS || s.root != "Response" {
        return Err(SamlError::Root("samlp:Response"));
    }
    match s.status.as_deref() {
        Some(STATUS_SUCCESS) => {}
        other => {
            return Err(SamlError::Status {
                code: other.unwrap_or("(none)").to_owned(),
                message: s.status_message.clone(),
            })
        }
    }
    if s.encrypted > 0 {
        return Err(SamlError::Encrypted);
    }
    if s.assertions != 1 {
        return Err(SamlError::AssertionCount(s.assertions));
    }
    if s.signature_algorithms.is_empty() {
        return Err(SamlError::Signature);
    }
    check_algorithms(&s, x.algorithms)?;
    if let Some(d) = &s.destination {
        if d != x.acs_url {
            return Err(SamlError::Recipient(d.clone()));
        }
    }
    // With SHA-1 allowed explicitly samael gets no list (it has no SHA-1 entry); our own check
    // above has already limited the algorithms to the configured ones.
    let samael_list: Option<Vec<AllowedSignatureAlgorithm>> =
        if x.algorithms.iter().any(|a| a == "rsa-sha1") {
            None
        } else {
            Some(
                x.algorithms
                    .iter()
                    .filter_map(|a| samael_algorithm(a))
                    .collect(),
            )
        };
    let reduced = Crypto::reduce_xml_to_signed_with_allowed_algorithms(
        xml,
        &x.idp.certs,
        ReduceMode::PreDigest,
        samael_list.as_deref(),
    )
    .map_err(|_| SamlError::Signature)?;
    let reduced = without_comments(&reduced)?;
    let signed = scan(&reduced)?;
    let (assertion, response_irt) = match (signed.root_ns.as_str(), signed.root.as_str()) {
        (PROTOCOL_NS, "Response") => {
            let r: Response = reduced
                .parse()
                .map_err(|e| SamlError::Content(format!("{e}")))?;
            if let Some(i) = r.issuer.as_ref().and_then(|i| i.value.as_deref()) {
                if i != x.idp.entity_id {
                    return Err(SamlError::Issuer(i.to_owned()));
                }
            }
            if let Some(d) = &r.destination {
                if d != x.acs_url {
                    return Err(SamlError::Recipient(d.clone()));
                }
            }
            let a = r
                .assertion
                .ok_or_else(|| SamlError::Content("no assertion".into()))?;
            (a, r.in_response_to)
        }
        (ASSERTION_NS, "Assertion") => {
            let a: Assertion = reduced
                .parse()
                .map_err(|e| SamlError::Content(format!("{e}")))?;
            // The Response around it is unsigned: its InResponseTo can only refuse.
            (a, s.in_response_to.clone())
        }
        _ => {
            return Err(SamlError::Content(
                "the signature covers no assertion".into(),
            ))
        }
    };
    if signed.assertions != 1 {
        return Err(SamlError::AssertionCount(signed.assertions));
    }
    check_assertion(assertion, response_irt, x)
}

fn check_assertion(
    a: Assertion,
    response_irt: Option<String>,
    x: &Expect<'_>,
) -> Result<Verified, SamlError> {
    let issuer = a.issuer.value.clone().unwrap_or_default();
    if issuer.trim() != x.idp.entity_id {
        return Err(SamlError::Issuer(issuer));
    }
    let conditions = a.conditions.as_ref().ok_or(SamlError::Audience)?;
    if let Some(nb) = conditions.not_before {
        if nb.timestamp() > x.now + x.skew_secs {
            return Err(SamlError::NotYetValid);
        }
    }
    let mut replay_until = x.now + 300;
    if let Some(na) = conditions.not_on_or_after {
        if na.timestamp() + x.skew_secs <= x.now {
            return Err(SamlError::Expired);
        }
        replay_until = na.timestamp();
    }
    // Audience is required: every AudienceRestriction must name this SP (SAML core §2.5.1.4).
    let restrictions = conditions
        .audience_restrictions
        .as_deref()
        .filter(|r| !r.is_empty())
        .ok_or(SamlError::Audience)?;
    if !restrictions
        .iter()
        .all(|r| r.audience.iter().any(|a| a.trim() == x.sp_entity_id))
    {
        return Err(SamlError::Audience);
    }
    let subject = a.subject.as_ref().ok_or(SamlError::Confirmation)?;
    let name_id = subject.name_id.as_ref();
    // A bearer confirmation that passes every check; the first failure is reported otherwise.
    let mut first_error = None;
    let mut confirmed = None;
    for c in subject.subject_confirmations.iter().flatten() {
        if c.method.as_deref() != Some(BEARER) {
            continue;
        }
        let Some(d) = c.subject_confirmation_data.as_ref() else {
            first_error.get_or_insert(SamlError::Confirmation);
            continue;
        };
        if d.recipient.as_deref() != Some(x.acs_url) {
            first_error.get_or_insert(SamlError::Recipient(
                d.recipient.clone().unwrap_or_default(),
            ));
            continue;
        }
        let Some(na) = d.not_on_or_after else {
            first_error.get_or_insert(SamlError::Confirmation);
            continue;
        };
        if na.timestamp() + x.skew_secs <= x.now {
            first_error.get_or_insert(SamlError::Expired);
            continue;
        }
        if d.not_before
            .is_some_and(|nb| nb.timestamp() > x.now + x.skew_secs)
        {
            first_error.get_or_insert(SamlError::NotYetValid);
            continue;
        }
        replay_until = replay_until.max(na.timestamp());
        confirmed = Some(d.in_response_to.clone());
        break;
    }
    let in_response_to = match confirmed {
        Some(irt) => irt,
        None => return Err(first_error.unwrap_or(SamlError::Confirmation)),
    };
    if let (Some(a), Some(b)) = (&in_response_to, &response_irt) {
        if a != b {
            return Err(SamlError::InResponseTo);
        }
    }
    if in_response_to.is_none() && response_irt.is_some() {
        return Err(SamlError::InResponseTo);
    }
    let mut authn_contexts = Vec::new();
    let mut session_index = None;
    for st in a.authn_statements.iter().flatten() {
        if session_index.is_none() {
            session_index = st.session_index.clone();
        }
        if let Some(v) = st
            .authn_context
            .as_ref()
            .and_then(|c| c.value.as_ref())
            .and_then(|c| c.value.as_ref())
        {
            authn_contexts.push(v.trim().to_owned());
        }
    }
    let mut attributes = Vec::new();
    for st in a.attribute_statements.iter().flatten() {
        for at in &st.attributes {
            let Some(name) = at.name.clone().or_else(|| at.friendly_name.clone()) else {
                continue;
            };
            let values: Vec<String> = at
                .values
                .iter()
                .filter_map(|v| v.value.as_ref().map(|s| s.trim().to_owned()))
                .collect();
            attributes.push((name.clone(), values));
            if let Some(f) = &at.friendly_name {
                if *f != name {
                    let values = attributes
                        .last()
                        .map(|(_, v)| v.clone())
                        .unwrap_or_default();
                    attributes.push((f.clone(), values));
                }
            }
        }
    }
    Ok(Verified {
        assertion_id: a.id.clone(),
        replay_until: replay_until + x.skew_secs,
        in_response_to,
        name_id: name_id
            .map(|n| n.value.trim().to_owned())
            .unwrap_or_default(),
        name_id_format: name_id.and_then(|n| n.format.clone()),
        session_index,
        attributes,
        authn_contexts,
    })
}

/// Deflate + base64 of a redirect-binding message.
fn deflate_b64(xml: &str) -> Result<String, SamlError> {
    let mut enc = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(xml.as_bytes())
        .map_err(|e| SamlError::Malformed(e.to_string()))?;
    let bytes = enc
        .finish()
        .map_err(|e| SamlError::Malformed(e.to_string()))?;
    Ok(B64.encode(bytes))
}

/// An HTTP-Redirect binding URL for `param` (`SAMLRequest`/`SAMLResponse`), signed with the SP
/// key when there is one (SAML bindings §3.4.4.1).
pub fn redirect_url(
    location: &str,
    param: &str,
    xml: &str,
    relay_state: Option<&str>,
    key: Option<&SpKeys>,
) -> Result<String, SamlError> {
    let mut url = openidconnect::url::Url::parse(location)
        .map_err(|e| SamlError::Metadata(format!("bad IdP location {location:?}: {e}")))?;
    let encoded = deflate_b64(xml)?;
    url.query_pairs_mut().append_pair(param, &encoded);
    if let Some(rs) = relay_state {
        url.query_pairs_mut().append_pair("RelayState", rs);
    }
    if let Some(k) = key {
        url = samael::crypto::sign_url(url, &k.key).map_err(|e| SamlError::Key(e.to_string()))?;
    }
    Ok(url.to_string())
}

/// A redirect-binding message received at the SLO endpoint, its signature verified.
#[derive(Debug)]
pub enum SloMessage {
    Request(LogoutRequest),
    Response(LogoutResponse),
}

fn query_raw<'a>(query: &'a str, name: &str) -> Option<&'a str> {
    query
        .split('&')
        .filter_map(|p| p.split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

fn url_decode(s: &str) -> Option<String> {
    let plus = s.replace('+', " ");
    percent_encoding::percent_decode_str(&plus)
        .decode_utf8()
        .ok()
        .map(|c| c.into_owned())
}

fn public_keys(certs: &[CertificateDer]) -> Vec<PKey<Public>> {
    certs
        .iter()
        .filter_map(|c| openssl::x509::X509::from_der(c.der_data()).ok())
        .filter_map(|c| c.public_key().ok())
        .collect()
}

/// Verifies a redirect-binding query (the signature covers the parameters exactly as they were
/// encoded on the wire), inflates and parses it. Unsigned messages are refused.
pub fn verify_redirect(
    query: &str,
    idp: &IdpMetadata,
    algorithms: &[String],
) -> Result<SloMessage, SamlError> {
    let (param, raw) = match (
        query_raw(query, "SAMLRequest"),
        query_raw(query, "SAMLResponse"),
    ) {
        (Some(r), None) => ("SAMLRequest", r),
        (None, Some(r)) => ("SAMLResponse", r),
        _ => return Err(malformed("exactly one of SAMLRequest or SAMLResponse")),
    };
    let sig_alg_raw = query_raw(query, "SigAlg").ok_or(SamlError::Signature)?;
    let sig_raw = query_raw(query, "Signature").ok_or(SamlError::Signature)?;
    let sig_alg = url_decode(sig_alg_raw).ok_or(SamlError::Encoding)?;
    let digest = algorithms
        .iter()
        .filter_map(|a| algorithm_uris(a).map(|(sig, _)| (a, sig)))
        .find(|(_, sig)| *sig == sig_alg)
        .map(|(a, _)| match a.rsplit('-').next() {
            Some("sha1") => openssl::hash::MessageDigest::sha1(),
            Some("sha384") => openssl::hash::MessageDigest::sha384(),
            Some("sha512") => openssl::hash::MessageDigest::sha512(),
            _ => openssl::hash::MessageDigest::sha256(),
        })
        .ok_or_else(|| SamlError::Algorithm(sig_alg.clone()))?;
    let mut signed = format!("{param}={raw}");
    if let Some(rs) = query_raw(query, "RelayState") {
        signed.push_str("&RelayState=");
        signed.push_str(rs);
    }
    signed.push_str("&SigAlg=");
    signed.push_str(sig_alg_raw);
    let signature = url_decode(sig_raw)
        .and_then(|s| B64.decode(s.trim()).ok())
        .ok_or(SamlError::Encoding)?;
    let ok = public_keys(&idp.certs).iter().any(|k| {
        openssl::sign::Verifier::new(digest, k)
            .and_then(|mut v| {
                v.update(signed.as_bytes())?;
                v.verify(&signature)
            })
            .unwrap_or(false)
    });
    if !ok {
        return Err(SamlError::Signature);
    }
    let b64 = url_decode(raw).ok_or(SamlError::Encoding)?;
    let deflated = B64.decode(b64.trim()).map_err(|_| SamlError::Encoding)?;
    let mut xml = String::new();
    flate2::read::DeflateDecoder::new(deflated.as_slice())
        .take(MAX_INFLATED)
        .read_to_string(&mut xml)
        .map_err(|_| SamlError::Encoding)?;
    if xml.len() as u64 >= MAX_INFLATED {
        return Err(malformed("the message is too large"));
    }
    let s = scan(&xml)?;
    let xml = without_comments(&xml)?;
    let issuer_ok = |i: Option<&samael::schema::Issuer>| {
        i.and_then(|i| i.value.as_deref())
            .is_some_and(|v| v.trim() == idp.entity_id)
    };
    match (s.root_ns.as_str(), s.root.as_str(), param) {
        (PROTOCOL_NS, "LogoutRequest", "SAMLRequest") => {
            let r: LogoutRequest = xml.parse().map_err(malformed)?;
            if !issuer_ok(r.issuer.as_ref()) {
                return Err(SamlError::Issuer(
                    r.issuer.and_then(|i| i.value).unwrap_or_default(),
                ));
            }
            Ok(SloMessage::Request(r))
        }
        (PROTOCOL_NS, "LogoutResponse", "SAMLResponse") => {
            let r: LogoutResponse = xml.parse().map_err(malformed)?;
            if !issuer_ok(r.issuer.as_ref()) {
                return Err(SamlError::Issuer(
                    r.issuer.and_then(|i| i.value).unwrap_or_default(),
                ));
            }
            Ok(SloMessage::Response(r))
        }
        _ => Err(SamlError::Root("LogoutRequest or LogoutResponse")),
    }
}

/// Minimal XML escaping for the documents the gateway writes itself.
pub fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&apos;"),
            c => o.push(c),
        }
    }
    o
}

/// An xs:dateTime in UTC for `unix` seconds.
pub fn instant(unix: i64) -> String {
    chrono::DateTime::from_timestamp(unix, 0)
        .unwrap_or_default()
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

/// The AuthnRequest of an SP-initiated login.
pub struct AuthnRequestSpec<'a> {
    pub id: &'a str,
    pub now: i64,
    pub destination: &'a str,
    pub acs_url: &'a str,
    pub sp_entity_id: &'a str,
    pub force_authn: bool,
    pub authn_contexts: &'a [String],
}

pub fn authn_request(r: &AuthnRequestSpec<'_>) -> String {
    let force = if r.force_authn {
        " ForceAuthn=\"true\""
    } else {
        ""
    };
    let mut ctx = String::new();
    if !r.authn_contexts.is_empty() {
        ctx.push_str("<samlp:RequestedAuthnContext Comparison=\"exact\">");
        for c in r.authn_contexts {
            ctx.push_str(&format!(
                "<saml:AuthnContextClassRef>{}</saml:AuthnContextClassRef>",
                esc(c)
            ));
        }
        ctx.push_str("</samlp:RequestedAuthnContext>");
    }
    format!(
        "<samlp:AuthnRequest xmlns:samlp=\"{PROTOCOL_NS}\" xmlns:saml=\"{ASSERTION_NS}\" ID=\"{}\" Version=\"2.0\" IssueInstant=\"{}\" Destination=\"{}\" AssertionConsumerServiceURL=\"{}\" ProtocolBinding=\"{POST_BINDING}\"{force}><saml:Issuer>{}</saml:Issuer><samlp:NameIDPolicy AllowCreate=\"true\"/>{ctx}</samlp:AuthnRequest>",
        esc(r.id),
        instant(r.now),
        esc(r.destination),
        esc(r.acs_url),
        esc(r.sp_entity_id),
    )
}

/// A LogoutRequest (SP-initiated Single Logout).
#[allow(clippy::too_many_arguments)] // the fields of one message
pub fn logout_request(
    id: &str,
    now: i64,
    destination: &str,
    sp_entity_id: &str,
    name_id: &str,
    name_id_format: Option<&str>,
    session_index: Option<&str>,
) -> String {
    let format = name_id_format
        .map(|f| format!(" Format=\"{}\"", esc(f)))
        .unwrap_or_default();
    let index = session_index
        .map(|s| format!("<samlp:SessionIndex>{}</samlp:SessionIndex>", esc(s)))
        .unwrap_or_default();
    format!(
        "<samlp:LogoutRequest xmlns:samlp=\"{PROTOCOL_NS}\" xmlns:saml=\"{ASSERTION_NS}\" ID=\"{}\" Version=\"2.0\" IssueInstant=\"{}\" Destination=\"{}\"><saml:Issuer>{}</saml:Issuer><saml:NameID{format}>{}</saml:NameID>{index}</samlp:LogoutRequest>",
        esc(id),
        instant(now),
        esc(destination),
        esc(sp_entity_id),
        esc(name_id),
    )
}

/// A LogoutResponse answering an IdP-initiated LogoutRequest.
pub fn logout_response(
    id: &str,
    now: i64,
    destination: &str,
    sp_entity_id: &str,
    in_response_to: &str,
) -> String {
    format!(
        "<samlp:LogoutResponse xmlns:samlp=\"{PROTOCOL_NS}\" xmlns:saml=\"{ASSERTION_NS}\" ID=\"{}\" Version=\"2.0\" IssueInstant=\"{}\" Destination=\"{}\" InResponseTo=\"{}\"><saml:Issuer>{}</saml:Issuer><samlp:Status><samlp:StatusCode Value=\"{STATUS_SUCCESS}\"/></samlp:Status></samlp:LogoutResponse>",
        esc(id),
        instant(now),
        esc(destination),
        esc(in_response_to),
        esc(sp_entity_id),
    )
}

/// The SP metadata served at `/saml/{idp}/metadata`. The NameID formats listed are those a
/// login can be keyed on: the stable ones, and any format once a `subject_attribute` names the
/// user (`any_name_id`).
pub fn sp_metadata(
    entity_id: &str,
    acs_url: &str,
    slo_url: &str,
    cert_der: Option<&[u8]>,
    any_name_id: bool,
) -> String {
    let mut formats: Vec<&str> = STABLE_NAMEID_FORMATS.to_vec();
    if any_name_id {
        formats.extend([
            NAMEID_UNSPECIFIED,
            "urn:oasis:names:tc:SAML:2.0:nameid-format:transient",
        ]);
    }
    let formats: String = formats
        .iter()
        .map(|f| format!("<md:NameIDFormat>{f}</md:NameIDFormat>"))
        .collect();
    let key = cert_der
        .map(|c| {
            format!(
                "<md:KeyDescriptor use=\"signing\"><ds:KeyInfo xmlns:ds=\"{DSIG_NS}\"><ds:X509Data><ds:X509Certificate>{}</ds:X509Certificate></ds:X509Data></ds:KeyInfo></md:KeyDescriptor>",
                B64.encode(c)
            )
        })
        .unwrap_or_default();
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<md:EntityDescriptor xmlns:md=\"urn:oasis:names:tc:SAML:2.0:metadata\" entityID=\"{}\"><md:SPSSODescriptor protocolSupportEnumeration=\"{PROTOCOL_NS}\" AuthnRequestsSigned=\"{}\" WantAssertionsSigned=\"true\">{key}<md:SingleLogoutService Binding=\"{REDIRECT_BINDING}\" Location=\"{}\"/>{formats}<md:AssertionConsumerService Binding=\"{POST_BINDING}\" Location=\"{}\" index=\"0\" isDefault=\"true\"/></md:SPSSODescriptor></md:EntityDescriptor>\n",
        esc(entity_id),
        cert_der.is_some(),
        esc(slo_url),
        esc(acs_url),
    )
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

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
}
