//! A pending login: the state between the first factor and a session (DESIGN.md §5). It lives
//! in the session store under a hash of its own cookie, expires quickly and grants no access.
//! What may happen to it, and which checks each step makes, is `auth::native`'s table.
//!
//! Invariant: everything a step needs is in the record itself, never looked up by user name
//! alone: an enrollment secret lives here (sealed), so it belongs to this one pending login,
//! and no other login of the same user can see or confirm it.

use crate::session::{AuthMethod, Identity, MfaUsed};
use serde::{Deserialize, Serialize};

/// Where a pending login stands.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Stage {
    /// The first factor is proven and the principal has a second factor: `/mfa`.
    Challenge,
    /// The first factor is proven and the principal has no second factor: `/mfa/enroll`, with
    /// the authenticator secret made for this pending login alone.
    Enroll {
        /// The TOTP seed, sealed under the principal (base64url), shown by every GET of the
        /// enrollment page of this pending login and confirmed by its POST.
        sealed_seed: String,
        /// The enrollment invitation this login came through (its token hash), spent when the
        /// enrollment is confirmed. `None` only with `[mfa] enrollment = "first_login"` or for
        /// an SSO step-up (the IdP vouched for the first factor).
        invite: Option<String>,
    },
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PendingLogin {
    pub stage: Stage,
    pub user: String,
    /// Whose factors are checked and who will own the session: `native:<user>` or an SSO
    /// principal.
    pub principal: String,
    pub email: Option<String>,
    pub groups: Vec<String>,
    pub roles: Vec<String>,
    /// How the first factor was proven (`X-Auth-Method`).
    pub method: LoginMethod,
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
    /// The id of the known-device cookie the browser brought (signature checked), if any: a
    /// sign-in without one, or with one this principal has not used, sends the new-device
    /// notice (DESIGN.md §12).
    #[serde(default)]
    pub known_device: Option<String>,
    /// The user has a passkey the challenge may offer (set after the first factor).
    #[serde(default)]
    pub passkeys: bool,
}

/// The first factor of a login, kept typed (never re-parsed from a string).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum LoginMethod {
    Native,
    Oidc(String),
    Saml(String),
    /// Emergency access through a break-glass link (DESIGN.md §12).
    BreakGlass,
}

impl LoginMethod {
    pub fn auth_method(&self) -> AuthMethod {
        match self {
            LoginMethod::Native => AuthMethod::Native,
            LoginMethod::Oidc(i) => AuthMethod::Oidc(i.clone()),
            LoginMethod::Saml(i) => AuthMethod::Saml(i.clone()),
            LoginMethod::BreakGlass => AuthMethod::BreakGlass,
        }
    }

    /// The `X-Auth-Method` value, also used in audit events.
    pub fn as_header(&self) -> String {
        self.auth_method().header_value()
    }
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
    /// A native user's login once its first factor is proven (password or passkey sign-in):
    /// at the challenge, a fresh CSRF token, `remember_secs` from the roles' policy.
    pub fn native(
        user: &crate::storage::User,
        roles: Vec<String>,
        rd: &crate::auth::policy::LocalPath,
        remember_secs: u64,
        now: i64,
        known_device: Option<String>,
    ) -> PendingLogin {
        PendingLogin {
            stage: Stage::Challenge,
            user: user.username.clone(),
            principal: crate::accounts::native_principal(&user.username),
            email: user.email.clone(),
            groups: Vec::new(),
            roles,
            method: LoginMethod::Native,
            csrf: crate::session::random_id(24),
            rd: rd.as_str().to_owned(),
            remember_secs,
            created_at: now,
            sso: None,
            known_device,
            passkeys: false,
        }
    }

    pub fn auth_method(&self) -> AuthMethod {
        self.method.auth_method()
    }

    /// The identity the session will carry once `mfa` is verified.
    pub fn identity(&self, mfa: MfaUsed) -> Identity {
        Identity {
            user: self.user.clone(),
            principal: self.principal.clone(),
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

    /// `None` for anything that is not a pending login of this version (treated as expired).
    pub fn from_bytes(b: &[u8]) -> Option<PendingLogin> {
        serde_json::from_slice(b).ok()
    }
}
