//! The login state machine and the gateway's own credential checks (DESIGN.md §6). No HTTP
//! types: `server::native` turns each outcome into a page.
//!
//! | state        | entered by                                   | accepts                    | leads to |
//! |--------------|----------------------------------------------|----------------------------|----------|
//! | (none)       | the sign-in form                             | password (+ invitation)    | `Challenge`, `Enroll`, a session, or nothing |
//! | `Challenge`  | first factor proven, principal has a factor  | TOTP, email or recovery code | a session |
//! | `Enroll`     | first factor proven, principal has no factor (and, for `invite`, an invitation) | a code of the secret made for this login | a session |
//!
//! Rules every transition keeps:
//! * A step is reached only through the one before: a password check returns
//!   [`FirstFactorVerified`], a second-factor check returns [`MfaVerified`], and the next step
//!   takes that proof by value; neither can be made outside this module (SSO gets its
//!   first-factor proof from `by_idp`, after the IdP's answer was verified).
//! * Every step re-reads the user ([`revalidate`]): it must still exist, be enabled and hold the
//!   roles the login started with, and no admin action on the principal (disable, factor reset,
//!   ending sessions) may have happened since the login started.
//! * A pending login is taken (atomically deleted) when it ends in a session: two tabs, two
//!   replicas or a replay cannot finish it twice.
//! * An enrollment secret belongs to the one pending login that made it, and a confirmed factor
//!   is never replaced by an enrollment (`UserStore::enroll_totp` is conditional).
//! * Lockout counts before the check (`Lockout::admit`); a store failure mid-check is an error
//!   (503), never a wrong code, and takes its count back.
//!
//! Illegal transitions (a `Challenge` login posting to `/mfa/enroll`, an `Enroll` login posting a
//! code to `/mfa`, any step after the pending login was taken) are refused by `server::native`
//! from the stage alone, before any check runs.

use crate::accounts::{native_principal, normalise_user, Accounts, HashBusy};
use crate::auth::lockout::{Admission, LockState};
use crate::auth::pending::{PendingLogin, Stage};
use crate::auth::policy::EffectivePolicy;
use crate::config::{Config, Enrollment, MfaMethod};
use crate::mfa::{email, recovery, MfaError};
use crate::secret::{ct_eq, Password, TotpSeed};
use crate::session::{AnySessionStore, MfaUsed, SessionStore};
use crate::storage::{StoreError, User, UserStore};
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine as _;
use std::net::IpAddr;
use std::time::Duration;

/// Proof that the first factor of a login was verified: a password here, or an IdP's answer.
#[derive(Debug)]
pub struct FirstFactorVerified(());

impl FirstFactorVerified {
    /// For SSO: the IdP's signed answer was verified (`auth::oidc`, `auth::saml`).
    pub(crate) fn by_idp() -> Self {
        FirstFactorVerified(())
    }
}

/// Proof that the second factor a policy asks for is satisfied, and how.
#[derive(Debug)]
pub struct MfaVerified(MfaUsed);

impl MfaVerified {
    pub fn used(&self) -> MfaUsed {
        self.0
    }

    /// No role of the login requires a second factor.
    pub fn not_required(policy: &EffectivePolicy) -> Option<MfaVerified> {
        (!policy.require_mfa).then_some(MfaVerified(MfaUsed::None))
    }

    /// The IdP's MFA evidence matched `mfa_evidence`.
    pub(crate) fn by_idp_evidence() -> MfaVerified {
        MfaVerified(MfaUsed::Idp)
    }

    /// A passkey ceremony verified it (or registered the first one): `webauthn`.
    pub(crate) fn by_passkey() -> MfaVerified {
        MfaVerified(MfaUsed::Webauthn)
    }

    /// `on_missing_mfa = "trust"`: accepted without evidence, marked `none`.
    pub(crate) fn trusted_without_evidence() -> MfaVerified {
        MfaVerified(MfaUsed::None)
    }
}

/// Why a pending login can no longer go on (the person signs in again).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Stale {
    /// The user was deleted meanwhile.
    #[error("user no longer exists")]
    UserGone,
    /// The user was disabled meanwhile.
    #[error("user is disabled")]
    Disabled,
    /// The user's roles changed, or a role is no longer configured.
    #[error("roles changed")]
    RolesChanged,
    /// An admin acted on the principal (disable, factor reset, ended sessions) meanwhile.
    #[error("revoked by an admin action")]
    Revoked,
    /// The principal's factors changed under an enrollment (someone enrolled meanwhile).
    #[error("factors changed")]
    FactorsChanged,
}

fn revoked_key(principal: &str) -> String {
    format!("revoked:{principal}")
}

/// Ends every pending login of `principal` started up to now (an admin disabled the user, reset
/// its factors or ended its sessions). Lives as long as a pending login can.
pub async fn revoke_pending(
    store: &AnySessionStore,
    principal: &str,
    now: i64,
    pending_ttl: Duration,
) -> Result<(), StoreError> {
    store
        .put_ephemeral(
            &revoked_key(principal),
            now.to_le_bytes().to_vec(),
            pending_ttl,
        )
        .await
}

/// The re-check every step makes before anything else (see the module table).
pub async fn revalidate(
    acc: &Accounts,
    store: &AnySessionStore,
    config: &Config,
    p: &PendingLogin,
) -> Result<Result<(), Stale>, StoreError> {
    if let Some(at) = store.get_ephemeral(&revoked_key(&p.principal)).await? {
        let at = at
            .get(..8)
            .and_then(|b| b.try_into().ok())
            .map_or(i64::MAX, i64::from_le_bytes);
        // Same second counts as after: the safe side.
        if at >= p.created_at {
            return Ok(Err(Stale::Revoked));
        }
    }
    if p.roles.iter().any(|r| config.role(r).is_none()) {
        return Ok(Err(Stale::RolesChanged));
    }
    if p.principal == native_principal(&p.user) {
        let Some(user) = acc.users.get_user(&p.user).await? else {
            return Ok(Err(Stale::UserGone));
        };
        if user.disabled {
            return Ok(Err(Stale::Disabled));
        }
        if configured_roles(config, &user) != p.roles {
            return Ok(Err(Stale::RolesChanged));
        }
    }
    Ok(Ok(()))
}

/// The user's roles that the config defines, in the user's order.
pub fn configured_roles(config: &Config, user: &User) -> Vec<String> {
    user.roles
        .iter()
        .filter(|r| config.role(r).is_some())
        .cloned()
        .collect()
}

/// The answer to a password.
#[derive(Debug)]
pub enum PasswordCheck {
    /// Right password of an enabled user.
    Verified(User, FirstFactorVerified),
    /// Wrong password, unknown or disabled user (indistinguishable). `locked_now`: this failure
    /// started a lock period.
    Refused { locked_now: bool },
    /// Inside a lock period or over the limit: not evaluated.
    Locked,
    /// No hashing slot: retry later (503).
    Busy,
}

/// The lockout account of a user name as typed (so unknown names lock like real ones).
pub fn password_account(typed: &str) -> String {
    let key = normalise_user(typed).unwrap_or_else(|| typed.trim().to_lowercase());
    native_principal(&key)
}

/// Checks a password under the lockout: counted first, then hashed. Unknown, disabled and
/// wrong-password users cost the same hash and get the same answer.
pub async fn check_password(
    acc: &Accounts,
    store: &AnySessionStore,
    typed: &str,
    password: Password,
    ip: IpAddr,
) -> Result<PasswordCheck, StoreError> {
    let attempt = match acc
        .lockout
        .admit(store, &password_account(typed), ip)
        .await?
    {
        Admission::Admitted(a) => a,
        Admission::Locked => return Ok(PasswordCheck::Locked),
    };
    let user = match normalise_user(typed) {
        Some(n) => match acc.users.get_user(&n).await {
            Ok(u) => u,
            Err(e) => {
                acc.lockout.abandoned(store, attempt).await;
                return Err(e);
            }
        },
        None => None,
    };
    let ok = match acc.check_password(password, user.as_ref(), ip).await {
        Ok(ok) => ok,
        Err(HashBusy::Saturated) => {
            acc.lockout.abandoned(store, attempt).await;
            return Ok(PasswordCheck::Busy);
        }
    };
    match user.filter(|_| ok) {
        Some(user) => {
            acc.lockout.succeeded(store, attempt).await?;
            Ok(PasswordCheck::Verified(user, FirstFactorVerified(())))
        }
        None => {
            let state = acc.lockout.failed(store, attempt).await?;
            Ok(PasswordCheck::Refused {
                locked_now: state == LockState::Locked,
            })
        }
    }
}

/// The answer to a password chosen through an enrollment link.
#[derive(Debug)]
pub enum ChosenPassword {
    /// Set: the link stands for the first factor (it is spent when the enrollment completes).
    Set(User, FirstFactorVerified),
    /// Too short, too long, or the two fields differ.
    Unacceptable(PasswordProblem),
    /// The link is unknown, used or expired, the user is gone or disabled, or already has a
    /// password (then the password is asked for, not chosen).
    InvalidLink,
}

/// Why a chosen password is not taken (the pages say it in their language).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PasswordProblem {
    /// Under `MIN_PASSWORD_CHARS`.
    TooShort,
    /// Over 1024 characters.
    TooLong,
    /// The confirmation differs.
    Differ,
}

/// Sets the password of a user created without one, through its enrollment invitation.
pub async fn choose_password(
    acc: &Accounts,
    invite_token: &str,
    new: Password,
    confirm: &Password,
    now: i64,
) -> Result<ChosenPassword, StoreError> {
    let Some(inv) = acc
        .users
        .find_invite(&invite_hash(invite_token), now)
        .await?
    else {
        return Ok(ChosenPassword::InvalidLink);
    };
    let user = match acc.users.get_user(&inv.username).await? {
        Some(u) if !u.disabled && u.password_hash.is_none() => u,
        _ => return Ok(ChosenPassword::InvalidLink),
    };
    let len = new.expose().chars().count();
    if len < crate::auth::password::MIN_PASSWORD_CHARS {
        return Ok(ChosenPassword::Unacceptable(PasswordProblem::TooShort));
    }
    if len > 1024 {
        return Ok(ChosenPassword::Unacceptable(PasswordProblem::TooLong));
    }
    if !new.ct_eq(confirm.expose()) {
        return Ok(ChosenPassword::Unacceptable(PasswordProblem::Differ));
    }
    if !acc.set_password(&user.username, new).await? {
        return Ok(ChosenPassword::InvalidLink);
    }
    Ok(ChosenPassword::Set(user, FirstFactorVerified(())))
}

/// Whether the principal has a usable second factor (a confirmed TOTP or a recovery code).
pub async fn has_factor(acc: &Accounts, principal: &str, now: i64) -> Result<bool, StoreError> {
    acc.users.has_second_factor(principal, now).await
}

/// What the first factor leads to when the principal has no second factor yet.
#[derive(Debug)]
pub enum EnrollGate {
    /// Enroll now, with this invitation (spent at confirmation) or without one.
    Open(Option<String>),
    /// `[mfa] enrollment = "invite"` and no valid invitation: say to use the link.
    NeedsInvite,
}

/// Decides whether a login without a factor may enroll (DESIGN.md §6: with `invite`, only
/// through a valid invitation of this very user; an SSO step-up is vouched for by the IdP).
pub async fn enroll_gate(
    acc: &Accounts,
    config: &Config,
    p: &PendingLogin,
    invite_token: Option<&str>,
    now: i64,
) -> Result<EnrollGate, StoreError> {
    let native = p.principal == native_principal(&p.user);
    if !native || config.mfa.enrollment == Enrollment::FirstLogin {
        return Ok(EnrollGate::Open(None));
    }
    let Some(token) = invite_token else {
        return Ok(EnrollGate::NeedsInvite);
    };
    let hash = invite_hash(token);
    Ok(match acc.users.find_invite(&hash, now).await? {
        Some(inv) if inv.username == p.user => EnrollGate::Open(Some(hash)),
        _ => EnrollGate::NeedsInvite,
    })
}

pub use crate::accounts::invite_hash;

/// The `Enroll` stage for a pending login: a fresh secret, sealed under the principal, kept in
/// the pending login alone (never in the user store before it is confirmed).
pub fn enroll_stage(
    acc: &Accounts,
    principal: &str,
    invite: Option<String>,
) -> Result<Stage, StoreError> {
    let seed = crate::mfa::totp::generate_seed();
    let sealed = acc
        .seal_seed(principal, &seed)
        .map_err(|e| StoreError::Unavailable(format!("seed sealing failed: {e}")))?;
    Ok(Stage::Enroll {
        sealed_seed: B64.encode(sealed),
        invite,
    })
}

/// The secret of an `Enroll` pending login, opened.
pub fn enrollment_seed(acc: &Accounts, p: &PendingLogin) -> Option<TotpSeed> {
    match &p.stage {
        Stage::Enroll { sealed_seed, .. } => {
            let sealed = B64.decode(sealed_seed).ok()?;
            acc.open_seed(&p.principal, &sealed)
        }
        Stage::Challenge => None,
    }
}

/// The answer to a code at the challenge or at enrollment.
#[derive(Debug)]
pub enum CodeCheck {
    /// Accepted. For a recovery code, how many are left.
    Verified(MfaVerified, Option<u32>),
    /// Refused; `locked_now`: this failure started a lock period.
    Refused { error: MfaError, locked_now: bool },
    /// Inside a lock period or over the limit: not evaluated.
    Locked,
}

/// Which kind of code the user typed, by its shape.
pub enum Typed {
    Totp(String),
    Email(String),
    Recovery(String),
    Unknown,
}

impl Typed {
    pub fn name(&self) -> &'static str {
        match self {
            Typed::Totp(_) => "totp",
            Typed::Email(_) => "email",
            Typed::Recovery(_) => "recovery_code",
            Typed::Unknown => "unknown",
        }
    }
}

pub fn classify(code: &str) -> Typed {
    let compact = crate::mfa::compact_code(code);
    if compact.len() == 6 && compact.bytes().all(|b| b.is_ascii_digit()) {
        Typed::Totp(compact)
    } else if let Some(c) = email::normalise_email_code(&compact) {
        Typed::Email(c)
    } else if let Some(c) = recovery::normalise(&compact) {
        Typed::Recovery(c)
    } else {
        Typed::Unknown
    }
}

/// Where an email code of one pending login is kept: bound to that login (its id), so a code
/// sent to one login never completes another of the same user.
pub fn email_code_key(pending_id: &str) -> String {
    format!("email-code:{pending_id}")
}

/// What a second-factor check may accept (the methods configured and possible for this login).
pub struct Allowed {
    pub totp: bool,
    pub email: bool,
    pub recovery: bool,
    pub webauthn: bool,
}

/// One code typed at a step: what, when, from where.
pub struct Typing<'a> {
    pub code: &'a str,
    pub now: i64,
    pub ip: IpAddr,
}

/// Checks a code typed at the challenge, under the lockout (counted first). A store failure is
/// returned as an error (503), counts nothing, and never reads as a wrong code.
/// `pending_id` names the pending login whose email code counts (`None`: no email code, as on
/// the account page).
pub async fn check_code(
    acc: &Accounts,
    store: &AnySessionStore,
    principal: &str,
    user: &str,
    pending_id: Option<&str>,
    allowed: &Allowed,
    t: Typing<'_>,
) -> Result<CodeCheck, StoreError> {
    let Typing { code, now, ip } = t;
    let attempt = match acc.lockout.admit(store, principal, ip).await? {
        Admission::Admitted(a) => a,
        Admission::Locked => return Ok(CodeCheck::Locked),
    };
    let checked: Result<Result<(MfaUsed, Option<u32>), MfaError>, StoreError> = match classify(code)
    {
        Typed::Totp(c) if allowed.totp => verify_totp(acc, principal, user, &c, now)
            .await
            .map(|r| r.map(|()| (MfaUsed::Totp, None))),
        Typed::Email(c) if allowed.email => match pending_id {
            Some(id) => verify_email(store, id, &c)
                .await
                .map(|r| r.map(|()| (MfaUsed::Email, None))),
            None => Ok(Err(MfaError::MalformedCode)),
        },
        Typed::Recovery(c) if allowed.recovery => acc
            .users
            .consume_recovery_code(principal, &recovery::hash_code(&c), now)
            .await
            .map(|r| match r {
                Some(left) => Ok((MfaUsed::RecoveryCode, Some(left))),
                None => Err(MfaError::WrongCode),
            }),
        // A well-formed code of a kind the roles do not accept: refused as such (audited).
        Typed::Totp(_) | Typed::Email(_) | Typed::Recovery(_) => Ok(Err(MfaError::NotAllowed)),
        Typed::Unknown => Ok(Err(MfaError::MalformedCode)),
    };
    settle(acc, store, attempt, checked).await
}

/// Turns a checked code into the lockout's settlement and the answer.
pub(crate) async fn settle(
    acc: &Accounts,
    store: &AnySessionStore,
    attempt: crate::auth::lockout::Attempt,
    checked: Result<Result<(MfaUsed, Option<u32>), MfaError>, StoreError>,
) -> Result<CodeCheck, StoreError> {
    match checked {
        Err(e) => {
            // Fail closed, and the outage counts toward nobody's lockout.
            acc.lockout.abandoned(store, attempt).await;
            Err(e)
        }
        Ok(Ok((used, left))) => {
            acc.lockout.succeeded(store, attempt).await?;
            Ok(CodeCheck::Verified(MfaVerified(used), left))
        }
        Ok(Err(error)) => {
            let state = acc.lockout.failed(store, attempt).await?;
            Ok(CodeCheck::Refused {
                error,
                locked_now: state == LockState::Locked,
            })
        }
    }
}

/// Confirms an enrollment: a code of this pending login's own secret, under the lockout; then
/// the factor is stored only if the principal still has no confirmed factor, and the invitation
/// (if any) is spent, atomically each. `Stale` when either lost a race.
pub async fn confirm_enrollment(
    acc: &Accounts,
    store: &AnySessionStore,
    p: &PendingLogin,
    code: &str,
    now: i64,
    ip: IpAddr,
) -> Result<Result<CodeCheck, Stale>, StoreError> {
    let Stage::Enroll {
        sealed_seed,
        invite,
    } = &p.stage
    else {
        return Ok(Err(Stale::FactorsChanged));
    };
    let attempt = match acc.lockout.admit(store, &p.principal, ip).await? {
        Admission::Admitted(a) => a,
        Admission::Locked => return Ok(Ok(CodeCheck::Locked)),
    };
    let code = crate::mfa::compact_code(code);
    let step = enrollment_seed(acc, p)
        .ok_or(MfaError::WrongCode)
        .and_then(|seed| acc.totp_for(seed, &p.user).verify(&code, now, None))
        .and_then(|s| i64::try_from(s.0).map_err(|_| MfaError::WrongCode));
    let step = match step {
        Ok(step) => step,
        Err(error) => return settle(acc, store, attempt, Ok(Err(error))).await.map(Ok),
    };
    // The invitation first: of two enrollments through one link, only one goes on.
    if let Some(hash) = invite {
        match acc.users.spend_invite(hash, now).await {
            Ok(true) => {}
            Ok(false) => {
                acc.lockout.abandoned(store, attempt).await;
                return Ok(Err(Stale::Revoked));
            }
            Err(e) => {
                acc.lockout.abandoned(store, attempt).await;
                return Err(e);
            }
        }
    }
    let Some(sealed) = B64.decode(sealed_seed).ok() else {
        acc.lockout.abandoned(store, attempt).await;
        return Ok(Err(Stale::FactorsChanged));
    };
    match acc
        .users
        .enroll_totp(&p.principal, &sealed, step, now)
        .await
    {
        Ok(true) => settle(acc, store, attempt, Ok(Ok((MfaUsed::Totp, None))))
            .await
            .map(Ok),
        Ok(false) => {
            // Someone enrolled this principal meanwhile: never replace their factor.
            acc.lockout.abandoned(store, attempt).await;
            Ok(Err(Stale::FactorsChanged))
        }
        Err(e) => {
            acc.lockout.abandoned(store, attempt).await;
            Err(e)
        }
    }
}

/// TOTP with the replay guard: the matched step must be newer than the last one used, and the
/// store's conditional update decides atomically which of two concurrent uses wins.
pub async fn verify_totp(
    acc: &Accounts,
    principal: &str,
    user: &str,
    code: &str,
    now: i64,
) -> Result<Result<(), MfaError>, StoreError> {
    let factor = match acc.users.get_totp(principal).await? {
        Some(f) if f.confirmed => f,
        _ => return Ok(Err(MfaError::WrongCode)),
    };
    let Some(seed) = acc.open_seed(principal, &factor.sealed_seed) else {
        // A seed that does not open (wrong key, row copied from another principal) is not a
        // store outage: the code cannot be right.
        return Ok(Err(MfaError::WrongCode));
    };
    let last = factor.last_step.and_then(|s| u64::try_from(s).ok());
    let step = match acc.totp_for(seed, user).verify(code, now, last) {
        Ok(step) => step,
        Err(e) => return Ok(Err(e)),
    };
    let Ok(step) = i64::try_from(step.0) else {
        return Ok(Err(MfaError::WrongCode));
    };
    Ok(if acc.users.advance_totp_step(principal, step).await? {
        Ok(())
    } else {
        Err(MfaError::CodeReused)
    })
}

/// An email code of this pending login: compared in constant time, then taken (single use: of
/// two concurrent uses only one gets the value).
async fn verify_email(
    store: &AnySessionStore,
    pending_id: &str,
    code: &str,
) -> Result<Result<(), MfaError>, StoreError> {
    let key = email_code_key(pending_id);
    let Some(stored) = store.get_ephemeral(&key).await? else {
        return Ok(Err(MfaError::Expired));
    };
    if !ct_eq(&stored, email::hash_email_code(code).as_bytes()) {
        return Ok(Err(MfaError::WrongCode));
    }
    Ok(match store.take_ephemeral(&key).await? {
        Some(_) => Ok(()),
        None => Err(MfaError::CodeReused),
    })
}

/// A remembered device satisfies the second factor only while the current policy still allows
/// that long (a stricter `remember_mfa` shortens every device at once).
pub async fn device_remembered(
    acc: &Accounts,
    principal: &str,
    token: &str,
    max_secs: u64,
    now: i64,
) -> Result<Option<MfaVerified>, StoreError> {
    let hash = email::hash_email_code(token);
    let devices = acc.users.list_devices(principal, now).await?;
    let max = i64::try_from(max_secs).unwrap_or(i64::MAX);
    Ok(devices
        .iter()
        .any(|d| {
            ct_eq(d.token_hash.as_bytes(), hash.as_bytes())
                && d.created_at.saturating_add(max) > now
                && d.expires_at > now
        })
        .then_some(MfaVerified(MfaUsed::RememberedDevice)))
}

/// Which second factors the challenge offers and accepts for this login.
/// The login's roles narrow `[mfa] methods` (DESIGN.md §10): a factor outside the intersection
/// is neither offered nor accepted. Passkeys are native users' only (their credentials live in
/// the user store under the native principal).
pub fn allowed(config: &Config, acc: &Accounts, p: &PendingLogin) -> Allowed {
    let methods = config.mfa_methods_for(&p.roles);
    let has = |m| methods.contains(&m);
    Allowed {
        totp: has(MfaMethod::Totp),
        email: has(MfaMethod::Email) && acc.email.is_some() && p.email.is_some(),
        recovery: has(MfaMethod::RecoveryCode),
        webauthn: has(MfaMethod::Webauthn) && p.principal == native_principal(&p.user),
    }
}

/// Whether the principal has a code to prove a fresh factor with (the account page, the
/// console's step-up): a confirmed authenticator app or an unused recovery code. A principal
/// with passkeys only has none to type; a recent sign-in stands for it there.
pub async fn has_code_factor(
    acc: &Accounts,
    principal: &str,
    now: i64,
) -> Result<bool, StoreError> {
    Ok(acc
        .users
        .get_totp(principal)
        .await?
        .is_some_and(|f| f.confirmed)
        || acc.users.count_recovery_codes(principal, now).await? > 0)
}

/// Whether the principal holds a factor the login may use now: one of the allowed kinds. A
/// user whose roles accept only passkeys but who has only an authenticator app enrolls a
/// passkey (under the enrollment rules), never signs in with the app.
pub async fn has_allowed_factor(
    acc: &Accounts,
    principal: &str,
    allowed: &Allowed,
    now: i64,
) -> Result<bool, StoreError> {
    if allowed.totp
        && acc
            .users
            .get_totp(principal)
            .await?
            .is_some_and(|f| f.confirmed)
    {
        return Ok(true);
    }
    if allowed.webauthn && !acc.users.list_passkeys(principal).await?.is_empty() {
        return Ok(true);
    }
    if allowed.recovery && acc.users.count_recovery_codes(principal, now).await? > 0 {
        return Ok(true);
    }
    Ok(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_classified_with_or_without_spaces_and_dashes() {
        for t in ["123456", "123 456", "123-456", " 12 34 56 "] {
            assert!(
                matches!(classify(t), Typed::Totp(c) if c == "123456"),
                "{t}"
            );
        }
        for t in ["1234-5678", "1234 5678"] {
            assert!(
                matches!(classify(t), Typed::Email(c) if c == "12345678"),
                "{t}"
            );
        }
        for t in [
            "ABCDEF-GHJKMN-234567",
            "abcdef ghjkmn 234567",
            "abcdefghjkmn234567",
        ] {
            assert!(
                matches!(classify(t), Typed::Recovery(c) if c == "abcdefghjkmn234567"),
                "{t}"
            );
        }
        assert!(matches!(classify("12-34-5"), Typed::Unknown));
    }
}
