//! The SAML error type and the protocol constants every part of the SP shares.
//! No parsing here: the other modules return these errors and match these names.

pub const PROTOCOL_NS: &str = "urn:oasis:names:tc:SAML:2.0:protocol";
pub const ASSERTION_NS: &str = "urn:oasis:names:tc:SAML:2.0:assertion";
pub(super) const DSIG_NS: &str = "http://www.w3.org/2000/09/xmldsig#";
pub const STATUS_SUCCESS: &str = "urn:oasis:names:tc:SAML:2.0:status:Success";
pub(super) const BEARER: &str = "urn:oasis:names:tc:SAML:2.0:cm:bearer";
pub const REDIRECT_BINDING: &str = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect";
pub const POST_BINDING: &str = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST";
/// Deeper nesting than this is not SAML but an attack on the parser.
pub(super) const MAX_DEPTH: usize = 48;
/// An inflated redirect-binding message larger than this is refused (deflate bombs).
pub(super) const MAX_INFLATED: u64 = 256 * 1024;

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
