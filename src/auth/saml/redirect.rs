//! The HTTP-Redirect binding: building signed redirect URLs and verifying received ones (the
//! signature covers the query exactly as encoded; unsigned messages are refused, inflation bounded).

use super::error::{SamlError, MAX_INFLATED, PROTOCOL_NS};
use super::metadata::{IdpMetadata, SpKeys};
use super::scan::{algorithm_uris, malformed, scan, without_comments};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use openssl::pkey::{PKey, Public};
use samael::crypto::CertificateDer;
use samael::schema::{LogoutRequest, LogoutResponse};
use std::io::{Read, Write};

/// Deflate + base64 of a redirect-binding message.
pub(super) fn deflate_b64(xml: &str) -> Result<String, SamlError> {
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

pub(super) fn query_raw<'a>(query: &'a str, name: &str) -> Option<&'a str> {
    query
        .split('&')
        .filter_map(|p| p.split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

pub(super) fn url_decode(s: &str) -> Option<String> {
    let plus = s.replace('+', " ");
    percent_encoding::percent_decode_str(&plus)
        .decode_utf8()
        .ok()
        .map(|c| c.into_owned())
}

pub(super) fn public_keys(certs: &[CertificateDer]) -> Vec<PKey<Public>> {
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
