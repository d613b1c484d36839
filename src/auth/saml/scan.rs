//! The pre-parse of a SAML document with a streaming reader: refuses DTDs, entities, deep
//! nesting and disallowed algorithms before libxml2 sees anything. Learns only what refusing needs.

use super::error::{SamlError, ASSERTION_NS, DSIG_NS, MAX_DEPTH, PROTOCOL_NS};
use quick_xml::events::Event as Xml;
use quick_xml::name::ResolveResult;
use quick_xml::NsReader;
use samael::crypto::AllowedSignatureAlgorithm;

/// What a scan of the raw document learnt (before any signature check: only used to refuse).
#[derive(Debug, Default)]
pub(super) struct Scan {
    pub(super) root: String,
    pub(super) root_ns: String,
    pub(super) destination: Option<String>,
    pub(super) in_response_to: Option<String>,
    pub(super) status: Option<String>,
    pub(super) status_message: Option<String>,
    pub(super) assertions: usize,
    pub(super) encrypted: usize,
    pub(super) signature_algorithms: Vec<String>,
    pub(super) digest_algorithms: Vec<String>,
}

pub(super) fn malformed(e: impl std::fmt::Display) -> SamlError {
    SamlError::Malformed(e.to_string())
}

/// Refuses a DOCTYPE anywhere before the first element (metadata).
pub(super) fn scan_prolog(xml: &str) -> Result<(), SamlError> {
    let mut r = quick_xml::Reader::from_str(xml);
    loop {
        match r.read_event().map_err(malformed)? {
            Xml::DocType(_) => return Err(SamlError::Dtd),
            Xml::Start(_) | Xml::Empty(_) | Xml::Eof => return Ok(()),
            _ => {}
        }
    }
}

pub(super) fn attr(
    e: &quick_xml::events::BytesStart<'_>,
    name: &str,
) -> Result<Option<String>, SamlError> {
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
pub(super) fn scan(xml: &str) -> Result<Scan, SamlError> {
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
pub(super) fn algorithm_uris(name: &str) -> Option<(&'static str, &'static str)> {
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

pub(super) fn samael_algorithm(name: &str) -> Option<AllowedSignatureAlgorithm> {
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
pub(super) fn check_algorithms(s: &Scan, allowed: &[String]) -> Result<(), SamlError> {
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
pub(super) fn without_comments(xml: &str) -> Result<String, SamlError> {
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
