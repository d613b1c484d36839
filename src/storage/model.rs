//! Plain data carried in and out of a `UserStore`: users, second factors, remembered devices
//! and audit events. No I/O and no checks live here; hashing and sealing are done by callers.
//!
//! Times are Unix seconds (`i64`). A *principal* names whose factors these are:
//! `native:<username>` for native users, `oidc:<issuer>#<sub>` or `saml:<idp>#<nameid>` for
//! SSO users who step up to the gateway's own second factor.
//!
//! Secret-bearing fields (password hashes, sealed seeds, device token hashes) never appear in
//! `Debug` output or in serialized listings.

use std::fmt;

use serde::Serialize;

/// Largest page any listing returns (`list_users`, `query_audit`).
pub const MAX_PAGE: u32 = 500;

/// A native user as stored.
#[derive(Clone, PartialEq, Eq, Serialize)]
pub struct User {
    pub username: String,
    pub email: Option<String>,
    pub roles: Vec<String>,
    /// Argon2id PHC string; `None` when no password is set (login impossible).
    #[serde(skip_serializing)]
    pub password_hash: Option<String>,
    pub disabled: bool,
    pub created_at: i64,
}

impl fmt::Debug for User {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("User")
            .field("username", &self.username)
            .field("email", &self.email)
            .field("roles", &self.roles)
            .field("password_hash", &redacted_opt(self.password_hash.is_some()))
            .field("disabled", &self.disabled)
            .field("created_at", &self.created_at)
            .finish()
    }
}

/// A native user to create; the store stamps `created_at`.
#[derive(Clone, PartialEq, Eq)]
pub struct NewUser {
    pub username: String,
    pub email: Option<String>,
    pub roles: Vec<String>,
    /// Argon2id PHC string, already hashed by the caller.
    pub password_hash: Option<String>,
    pub disabled: bool,
}

impl fmt::Debug for NewUser {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NewUser")
            .field("username", &self.username)
            .field("email", &self.email)
            .field("roles", &self.roles)
            .field("password_hash", &redacted_opt(self.password_hash.is_some()))
            .field("disabled", &self.disabled)
            .finish()
    }
}

/// A principal's TOTP factor. The seed is sealed (encrypted) by `storage::seal` before storage.
#[derive(Clone, PartialEq, Eq)]
pub struct TotpFactor {
    pub principal: String,
    pub sealed_seed: Vec<u8>,
    /// False until the user proved possession with one code at enrollment.
    pub confirmed: bool,
    /// The last accepted time step; codes at or before it are replays.
    pub last_step: Option<i64>,
    pub created_at: i64,
}

impl fmt::Debug for TotpFactor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TotpFactor")
            .field("principal", &self.principal)
            .field("sealed_seed", &Redacted)
            .field("confirmed", &self.confirmed)
            .field("last_step", &self.last_step)
            .field("created_at", &self.created_at)
            .finish()
    }
}

/// A single-use, expiring invitation to enroll a first second factor (DESIGN.md §6). The
/// link's token is stored only as `token_hash`.
#[derive(Clone, PartialEq, Eq)]
pub struct EnrollmentInvite {
    pub token_hash: String,
    pub username: String,
    pub created_at: i64,
    pub expires_at: i64,
}

impl fmt::Debug for EnrollmentInvite {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EnrollmentInvite")
            .field("token_hash", &Redacted)
            .field("username", &self.username)
            .field("created_at", &self.created_at)
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

/// A device that may skip the second factor until `expires_at`. The cookie token is stored
/// only as `token_hash` (hashed by the caller).
#[derive(Clone, PartialEq, Eq, Serialize)]
pub struct RememberedDevice {
    /// Public identifier, used to list and revoke the device.
    pub id: String,
    pub principal: String,
    #[serde(skip_serializing)]
    pub token_hash: String,
    pub created_at: i64,
    pub expires_at: i64,
    pub user_agent: Option<String>,
}

impl fmt::Debug for RememberedDevice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RememberedDevice")
            .field("id", &self.id)
            .field("principal", &self.principal)
            .field("token_hash", &Redacted)
            .field("created_at", &self.created_at)
            .field("expires_at", &self.expires_at)
            .field("user_agent", &self.user_agent)
            .finish()
    }
}

/// One security event (login, second factor, lockout, revocation, admin action).
/// Never put passwords, codes, tokens or cookies in any field.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct AuditEvent {
    pub at: i64,
    pub kind: String,
    pub user: Option<String>,
    pub method: Option<String>,
    pub outcome: String,
    pub reason: Option<String>,
    pub ip: Option<String>,
    /// Public session id (the `X-Auth-Session` value), never the cookie.
    pub session: Option<String>,
    pub detail: Option<String>,
}

/// An audit event with its store-assigned, ever-increasing id.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct AuditRecord {
    pub id: i64,
    #[serde(flatten)]
    pub event: AuditEvent,
}

/// Filters for `query_audit`, ANDed. Results are in ascending id order, strictly after
/// `after_id` (with `newest_first`: descending, strictly before it), at most `limit` (capped at [`MAX_PAGE`]; `0` returns nothing).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AuditQuery {
    /// Events at or after this time.
    pub since: Option<i64>,
    pub user: Option<String>,
    pub kind: Option<String>,
    /// Cursor: the id of the last record of the previous page.
    pub after_id: Option<i64>,
    pub limit: u32,
    /// Descending id order: the newest events first.
    pub newest_first: bool,
}

/// Prints `<redacted>` in place of a secret.
struct Redacted;

impl fmt::Debug for Redacted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// Shows whether an optional secret is present without showing it.
fn redacted_opt(present: bool) -> Option<Redacted> {
    present.then_some(Redacted)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_output_hides_password_hash_seed_and_device_token() {
        let user = User {
            username: "ann".into(),
            email: None,
            roles: vec!["agent".into()],
            password_hash: Some("$argon2id$v=19$secrethash".into()),
            disabled: false,
            created_at: 1,
        };
        let new_user = NewUser {
            username: "ann".into(),
            email: None,
            roles: vec![],
            password_hash: Some("$argon2id$v=19$secrethash".into()),
            disabled: false,
        };
        let totp = TotpFactor {
            principal: "native:ann".into(),
            sealed_seed: b"sealedseedbytes".to_vec(),
            confirmed: true,
            last_step: None,
            created_at: 1,
        };
        let device = RememberedDevice {
            id: "d1".into(),
            principal: "native:ann".into(),
            token_hash: "tokenhashvalue".into(),
            created_at: 1,
            expires_at: 2,
            user_agent: None,
        };
        let printed = format!("{user:?} {new_user:?} {totp:?} {device:?}");
        assert!(!printed.contains("secrethash"), "{printed}");
        assert!(!printed.contains("sealedseedbytes"), "{printed}");
        assert!(!printed.contains("115, 101"), "{printed}"); // no byte-list rendering either
        assert!(!printed.contains("tokenhashvalue"), "{printed}");
        assert!(
            printed.contains("password_hash: Some(<redacted>)"),
            "{printed}"
        );
    }

    #[test]
    fn serialized_user_and_device_omit_hashes() {
        let user = User {
            username: "ann".into(),
            email: Some("ann@example.com".into()),
            roles: vec!["agent".into()],
            password_hash: Some("$argon2id$secrethash".into()),
            disabled: false,
            created_at: 7,
        };
        let device = RememberedDevice {
            id: "d1".into(),
            principal: "native:ann".into(),
            token_hash: "tokenhashvalue".into(),
            created_at: 1,
            expires_at: 2,
            user_agent: Some("ua".into()),
        };
        let json = serde_json::to_value(&user).unwrap_or_default();
        assert_eq!(
            json,
            serde_json::json!({"username": "ann", "email": "ann@example.com",
                "roles": ["agent"], "disabled": false, "created_at": 7})
        );
        let json = serde_json::to_value(&device).unwrap_or_default();
        assert_eq!(
            json,
            serde_json::json!({"id": "d1", "principal": "native:ann", "created_at": 1,
                "expires_at": 2, "user_agent": "ua"})
        );
    }
}
