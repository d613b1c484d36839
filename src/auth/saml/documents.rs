//! The XML documents the gateway writes itself (AuthnRequest, LogoutRequest/Response, SP
//! metadata). Every value is escaped; nothing here reads untrusted input.

use super::error::{
    ASSERTION_NS, DSIG_NS, POST_BINDING, PROTOCOL_NS, REDIRECT_BINDING, STATUS_SUCCESS,
};
use super::response::{NAMEID_UNSPECIFIED, STABLE_NAMEID_FORMATS};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;

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
