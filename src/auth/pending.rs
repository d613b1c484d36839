//! A pending login: the state between the first factor and a session (DESIGN.md §5). It lives
//! in the session store under a hash of its own cookie, expires quickly and grants no access.
//!
//! | stage   | reached after            | next                                   |
//! |---------|--------------------------|----------------------------------------|
//! | Mfa     | password (has a factor)  | `/mfa`: TOTP, email or recovery code   |
//! | Enroll  | password (no factor yet) | `/mfa/enroll`: confirm a TOTP code     |
//!
//! Each step rotates the cookie; the session is created only at the end.

use crate::session::{AuthMethod, Identity, MfaUsed};
use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Stage {
    Mfa,
    Enroll,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PendingLogin {
    pub stage: Stage,
    pub user: String,
    /// Whose factors are checked: `native:<user>` or an SSO subject.
    pub principal: String,
    pub email: Option<String>,
    pub groups: Vec<String>,
    pub roles: Vec<String>,
    /// `native`, `oidc:<idp>` or `saml:<idp>`.
    pub method: String,
    /// The CSRF token every form of this login carries.
    pub csrf: String,
    /// Where to go afterwards (already a validated local path).
    pub rd: String,
    /// Longest "remember this device" the policy allows, in seconds; 0: not offered.
    pub remember_secs: u64,
    pub created_at: i64,
    /// For an SSO login: what logout needs once the session exists.
    #[serde(default)]
    pub sso: Option<SsoLink>,
}

/// Ties a session to its IdP login, for RP-initiated and back-channel logout. Kept server-side
/// only (the ID token is the `id_token_hint`).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SsoLink {
    pub idp: String,
    pub sub: String,
    pub sid: Option<String>,
    /// OIDC: the ID token (the `id_token_hint`); SAML: empty.
    pub id_token: String,
    /// SAML: the NameID's Format, echoed in a LogoutRequest.
    #[serde(default)]
    pub name_id_format: Option<String>,
}

impl PendingLogin {
    pub fn auth_method(&self) -> AuthMethod {
        match self.method.split_once(':') {
            Some(("oidc", idp)) => AuthMethod::Oidc(idp.to_owned()),
            Some(("saml", idp)) => AuthMethod::Saml(idp.to_owned()),
            _ => AuthMethod::Native,
        }
    }

    /// The identity the session will carry once `mfa` is verified.
    pub fn identity(&self, mfa: MfaUsed) -> Identity {
        Identity {
            user: self.user.clone(),
            email: self.email.clone(),
            groups: self.groups.clone(),
            roles: self.roles.clone(),
            method: self.auth_method(),
            mfa,
        }
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    pub fn from_bytes(b: &[u8]) -> Option<PendingLogin> {
        serde_json::from_slice(b).ok()
    }
}
