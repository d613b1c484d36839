//! Who a session belongs to: the [`Identity`] decided at login, how it was reached
//! ([`AuthMethod`], [`MfaUsed`]), and the identity header values rendered from it once
//! ([`HeaderValues`]). Invariant (DESIGN.md §6): a value is forwarded exactly as it is or the
//! login is refused ([`IdentityValueError`]); nothing here substitutes a placeholder.

use super::id::SessionId;
use hyper::header::HeaderValue;

/// How the user authenticated (`X-Auth-Method`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AuthMethod {
    Native,
    Oidc(String),
    Saml(String),
    /// Demo mode only: a session made by the built-in sample login.
    Demo,
    /// Emergency access armed by an admin (DESIGN.md §12): `X-Auth-Method: break_glass`.
    BreakGlass,
    /// A machine client's service token, by name (DESIGN.md §9): `token:<name>`. Never stored.
    Token(String),
    /// A JWT access token of a bearer IdP (DESIGN.md §9): `bearer:<idp>`. Never stored.
    Bearer(String),
}

impl AuthMethod {
    pub fn header_value(&self) -> String {
        match self {
            AuthMethod::Native => "native".into(),
            AuthMethod::Oidc(i) => format!("oidc:{i}"),
            AuthMethod::Saml(i) => format!("saml:{i}"),
            AuthMethod::Demo => "demo".into(),
            AuthMethod::BreakGlass => "break_glass".into(),
            AuthMethod::Token(n) => format!("token:{n}"),
            AuthMethod::Bearer(i) => format!("bearer:{i}"),
        }
    }

    /// The inverse of `header_value`, for sessions read back from a store.
    pub fn parse(s: &str) -> Option<AuthMethod> {
        match s {
            "native" => Some(AuthMethod::Native),
            "demo" => Some(AuthMethod::Demo),
            "break_glass" => Some(AuthMethod::BreakGlass),
            _ => s
                .strip_prefix("oidc:")
                .map(|idp| AuthMethod::Oidc(idp.to_owned()))
                .or_else(|| {
                    s.strip_prefix("saml:")
                        .map(|idp| AuthMethod::Saml(idp.to_owned()))
                })
                .or_else(|| {
                    s.strip_prefix("token:")
                        .map(|n| AuthMethod::Token(n.to_owned()))
                })
                .or_else(|| {
                    s.strip_prefix("bearer:")
                        .map(|idp| AuthMethod::Bearer(idp.to_owned()))
                }),
        }
    }

    pub fn idp(&self) -> Option<&str> {
        match self {
            AuthMethod::Oidc(i) | AuthMethod::Saml(i) => Some(i),
            _ => None,
        }
    }
}

/// Which second factor was verified for this session (`X-Auth-MFA`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MfaUsed {
    Idp,
    Totp,
    Email,
    RecoveryCode,
    RememberedDevice,
    None,
    Webauthn,
}

impl MfaUsed {
    /// Every kind, in a fixed order (stores may refer to a kind by its position).
    pub const ALL: [MfaUsed; 7] = [
        MfaUsed::None,
        MfaUsed::Idp,
        MfaUsed::Totp,
        MfaUsed::Email,
        MfaUsed::RecoveryCode,
        MfaUsed::RememberedDevice,
        MfaUsed::Webauthn,
    ];

    /// The inverse of `as_str`.
    pub fn parse(s: &str) -> Option<MfaUsed> {
        Self::ALL.into_iter().find(|m| m.as_str() == s)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            MfaUsed::Idp => "idp",
            MfaUsed::Totp => "totp",
            MfaUsed::Email => "email",
            MfaUsed::RecoveryCode => "recovery_code",
            // The factor was verified at an earlier login on this device.
            MfaUsed::RememberedDevice => "remembered_device",
            MfaUsed::None => "none",
            MfaUsed::Webauthn => "webauthn",
        }
    }
}

/// Who a session belongs to, as decided at login.
#[derive(Clone, Debug)]
pub struct Identity {
    /// The display name (`X-Forwarded-User`).
    pub user: String,
    /// Who owns the session (DESIGN.md §6): `native:<user>` or the IdP's principal for the
    /// subject. Listing and ending "a user's sessions" go by this, never by the display name,
    /// so a native `bob` and an SSO `bob` never reach each other's sessions.
    pub principal: String,
    pub email: Option<String>,
    pub groups: Vec<String>,
    pub roles: Vec<String>,
    pub method: AuthMethod,
    pub mfa: MfaUsed,
}

/// One identity value, by name. The header each is sent under is configured apart
/// (`proxy::headers::IdentityHeaders::name`); values are read by this name, never by position.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IdentityField {
    User = 0,
    Email = 1,
    Groups = 2,
    Roles = 3,
    Method = 4,
    Mfa = 5,
    Session = 6,
}

impl IdentityField {
    /// Every field, in the order the identity headers are written upstream.
    pub const ALL: [IdentityField; 7] = [
        IdentityField::User,
        IdentityField::Email,
        IdentityField::Groups,
        IdentityField::Roles,
        IdentityField::Method,
        IdentityField::Mfa,
        IdentityField::Session,
    ];
}

/// Identity header values, rendered once at login into one buffer: the proxy path takes
/// slices of it (a reference count each), and a session holds one allocation instead of seven
/// (DESIGN.md §7: a million sessions in memory).
#[derive(Clone, Debug)]
pub struct HeaderValues {
    buf: bytes::Bytes,
    /// End offset of each part in `buf`, indexed by `IdentityField`.
    ends: [u16; 7],
    has_email: bool,
    /// False for a machine client's identity (`SessionId::machine`): no `X-Auth-Session`.
    has_session: bool,
}

/// An identity value that cannot be sent as a header exactly as it is (DESIGN.md §6): such a
/// login is refused, never forwarded with a placeholder.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum IdentityValueError {
    /// A control character (line breaks, NUL, tab, DEL): it could end or split a header.
    #[error("the {0} contains a control character")]
    ControlCharacter(&'static str),
    /// Longer than 8 KiB.
    #[error("the {0} is too long")]
    TooLong(&'static str),
}

/// Which identity value each of the seven header parts is, for error messages.
const PART_NAMES: [&str; 7] = [
    "user name",
    "email address",
    "group list",
    "role list",
    "login method",
    "second factor",
    "session id",
];

impl Identity {
    /// Whether every value can go upstream exactly as it is (UTF-8 is sent as its bytes).
    pub fn check_values(&self, id: &SessionId) -> Result<(), IdentityValueError> {
        HeaderValues::render(self, id).map(|_| ())
    }
}

impl HeaderValues {
    pub(super) fn render(
        identity: &Identity,
        id: &SessionId,
    ) -> Result<HeaderValues, IdentityValueError> {
        let method = identity.method.header_value();
        let groups = identity.groups.join(",");
        let roles = identity.roles.join(",");
        let parts: [&str; 7] = [
            &identity.user,
            identity.email.as_deref().unwrap_or_default(),
            &groups,
            &roles,
            &method,
            identity.mfa.as_str(),
            id.as_str(),
        ];
        let mut buf = Vec::with_capacity(parts.iter().map(|p| p.len().min(MAX_PART)).sum());
        let mut ends = [0u16; 7];
        for ((end, part), name) in ends.iter_mut().zip(parts).zip(PART_NAMES) {
            // Identity values come from IdPs and user records. A value is sent exactly or not
            // at all: two users must never reach the app as the same placeholder.
            if part.len() > MAX_PART {
                return Err(IdentityValueError::TooLong(name));
            }
            if part.bytes().any(|b| b < 0x20 || b == 0x7f) {
                return Err(IdentityValueError::ControlCharacter(name));
            }
            buf.extend_from_slice(part.as_bytes());
            *end = u16::try_from(buf.len()).map_err(|_| IdentityValueError::TooLong(name))?;
        }
        Ok(HeaderValues {
            buf: bytes::Bytes::from(buf),
            ends,
            has_email: identity.email.is_some(),
            has_session: !id.is_machine(),
        })
    }

    fn part(&self, i: usize) -> HeaderValue {
        let start = i
            .checked_sub(1)
            .and_then(|p| self.ends.get(p))
            .map_or(0, |&e| usize::from(e));
        let end = self.ends.get(i).map_or(0, |&e| usize::from(e));
        // Checked once at render time; checked again here rather than trusted (no `unsafe`).
        // Unreachable: every part was checked to be a header value, and the offsets are ours.
        self.buf
            .get(start..end)
            .map(|_| self.buf.slice(start..end))
            .and_then(|b| HeaderValue::from_maybe_shared(b).ok())
            .unwrap_or_else(|| HeaderValue::from_static(""))
    }

    /// The bytes of one value (None: the identity has no email). Checked as a header value
    /// when rendered.
    pub fn bytes(&self, field: IdentityField) -> Option<&[u8]> {
        let i = field as usize;
        if !self.has(field) {
            return None;
        }
        let start = i
            .checked_sub(1)
            .and_then(|p| self.ends.get(p))
            .map_or(0, |&e| usize::from(e));
        let end = self.ends.get(i).map_or(0, |&e| usize::from(e));
        self.buf.get(start..end)
    }

    /// One value as a header value sharing the session's buffer (a reference count, no copy);
    /// None: the identity has no email.
    pub fn value(&self, field: IdentityField) -> Option<HeaderValue> {
        if !self.has(field) {
            return None;
        }
        Some(self.part(field as usize))
    }

    /// Whether the identity has this value (an email; a session behind it).
    fn has(&self, field: IdentityField) -> bool {
        match field {
            IdentityField::Email => self.has_email,
            IdentityField::Session => self.has_session,
            _ => true,
        }
    }

    pub fn user(&self) -> HeaderValue {
        self.part(0)
    }
    pub fn email(&self) -> Option<HeaderValue> {
        self.has_email.then(|| self.part(1))
    }
    pub fn groups(&self) -> HeaderValue {
        self.part(2)
    }
    pub fn roles(&self) -> HeaderValue {
        self.part(3)
    }
    pub fn method(&self) -> HeaderValue {
        self.part(4)
    }
    pub fn mfa(&self) -> HeaderValue {
        self.part(5)
    }
    pub fn session(&self) -> HeaderValue {
        self.part(6)
    }
}

/// Longest identity header value accepted (a longer one refuses the login).
const MAX_PART: usize = 8 * 1024;

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::secret::SessionToken;

    #[test]
    fn identity_headers_render_into_one_buffer_and_values_that_cannot_be_sent_are_refused() {
        let id = SessionId::of(&SessionToken::new("t".into()));
        let identity = |email: Option<&str>, user: &str| Identity {
            user: user.into(),
            principal: format!("corp:{user}"),
            email: email.map(str::to_owned),
            groups: vec!["agents".into(), "tier2".into()],
            roles: vec!["agent".into()],
            method: AuthMethod::Oidc("corp".into()),
            mfa: MfaUsed::Idp,
        };
        let h = HeaderValues::render(&identity(Some("ann@example.com"), "ann"), &id).unwrap();
        assert_eq!(h.user(), "ann");
        assert_eq!(h.email(), Some(HeaderValue::from_static("ann@example.com")));
        assert_eq!(h.groups(), "agents,tier2");
        assert_eq!(h.roles(), "agent");
        assert_eq!(h.method(), "oidc:corp");
        assert_eq!(h.mfa(), "idp");
        assert_eq!(h.session(), id.as_str());
        // UTF-8 goes as its bytes, exactly.
        let h = HeaderValues::render(&identity(None, "zoë"), &id).unwrap();
        assert_eq!(h.user().as_bytes(), "zoë".as_bytes());
        assert!(h.email().is_none());
        // A value that cannot be a header is refused, never replaced by a placeholder (two such
        // users would reach the app as the same one).
        for bad in ["ann\r\nX-Evil: 1", "a\tb", "nul\0", "del\u{7f}"] {
            assert_eq!(
                HeaderValues::render(&identity(None, bad), &id).err(),
                Some(IdentityValueError::ControlCharacter("user name")),
                "{bad:?}"
            );
        }
        let long = "a".repeat(MAX_PART + 1);
        assert_eq!(
            HeaderValues::render(&identity(None, &long), &id).err(),
            Some(IdentityValueError::TooLong("user name"))
        );
        let mut i = identity(None, "ann");
        i.groups = vec!["g\n".into()];
        assert_eq!(
            i.check_values(&id),
            Err(IdentityValueError::ControlCharacter("group list"))
        );
    }
}
