//! The response pipeline of the HTTP-POST binding: scan, status, one assertion, algorithms,
//! signature, then every condition on the signed content; `Verified` holds only signed values.

use super::error::{SamlError, ASSERTION_NS, BEARER, PROTOCOL_NS, STATUS_SUCCESS};
use super::metadata::IdpMetadata;
use super::scan::{check_algorithms, samael_algorithm, scan, without_comments};
use crate::auth::oidc::clean;
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use samael::crypto::{AllowedSignatureAlgorithm, Crypto, CryptoProvider, ReduceMode};
use samael::schema::{Assertion, Response};

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
pub(super) const NAMEID_UNSPECIFIED: &str = "urn:oasis:names:tc:SAML:1.1:nameid-format:unspecified";

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

pub(super) fn check_assertion(
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
