//! Passkeys over HTTP (DESIGN.md §10): the ceremony options a page's script asks for (JSON),
//! and the answers it posts back in the page's form (a page in return, never raw JSON). The
//! checks and the state are `auth::passkey`'s; this file adds the roles' say (a factor outside
//! `mfa_methods` is refused and audited) and the audit events.

use super::complete::{enrolled_landing, finish, finish_with, pending_key};
use super::error::{audit_failure, page, LoginError, Shown};
use crate::accounts::Accounts;
use crate::audit::{self, Event};
use crate::auth::native::{self as login, configured_roles, CodeCheck, MfaVerified};
use crate::auth::passkey::{self as pk, Bound, Registration, SignIn};
use crate::auth::pending::{PendingLogin, Stage};
use crate::auth::policy::{effective_policy, LocalPath};
use crate::config::MfaMethod;
use crate::http::{form_value, store_error};
use crate::mfa::webauthn::{PasskeyError, Passkeys};
use crate::mfa::MfaError;
use crate::pages::{json_error, json_response, Msg};
use crate::proxy::forward::GatewayBody;
use crate::session::{SessionId, SessionStore};
use crate::state::Gateway;
use hyper::{Response, StatusCode};
use std::net::IpAddr;

/// Shown when a ceremony's answer was refused (the audit keeps the reason).
pub(crate) const REFUSED: crate::pages::Msg = crate::pages::Msg::PasskeyNotAccepted;

/// The relying party, or the JSON refusal a script shows in its alert element.
#[allow(clippy::result_large_err)]
fn relying_party(gw: &Gateway) -> Result<&Passkeys, Response<GatewayBody>> {
    gw.passkeys.as_deref().ok_or_else(|| {
        json_error(
            StatusCode::NOT_FOUND,
            "passkeys_off",
            gw.chrome.t(Msg::PasskeyFailed),
        )
    })
}

/// A ceremony's options as the page's script takes them, or a refusal it can show.
pub(crate) fn options_answer(
    gw: &Gateway,
    made: Result<String, PasskeyError>,
) -> Response<GatewayBody> {
    match made.map(|o| serde_json::from_str::<serde_json::Value>(&o)) {
        Ok(Ok(v)) => json_response(StatusCode::OK, &v),
        Ok(Err(_)) | Err(_) => json_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "passkey_options",
            gw.chrome.t(Msg::PasskeyFailed),
        ),
    }
}

/// `POST /mfa/webauthn`: the options for this pending login: an assertion at the challenge,
/// a registration at enrollment. Refused as JSON when the roles do not accept passkeys.
pub(crate) async fn options(
    gw: &Gateway,
    acc: &Accounts,
    id: &SessionId,
    p: &PendingLogin,
    ip: IpAddr,
) -> Response<GatewayBody> {
    let rp = match relying_party(gw) {
        Ok(rp) => rp,
        Err(r) => return r,
    };
    if !login::allowed(&gw.config, acc, p).webauthn {
        audit_failure(
            gw,
            &p.user,
            audit::Outcome::Refused,
            "webauthn_not_allowed",
            ip,
        )
        .await;
        return json_error(
            StatusCode::FORBIDDEN,
            "not_allowed",
            gw.chrome.t(Msg::PasskeyFailed),
        );
    }
    let made = match &p.stage {
        Stage::Enroll { .. } => {
            pk::begin_register(
                acc,
                &gw.store,
                rp,
                &p.principal,
                &p.user,
                Bound::Enroll(id.as_str()),
            )
            .await
        }
        Stage::Challenge => {
            match pk::begin_login(
                acc,
                &gw.store,
                rp,
                &p.principal,
                Bound::Pending(id.as_str()),
            )
            .await
            {
                Ok(Some(made)) => Ok(made),
                Ok(None) => {
                    return json_error(
                        StatusCode::NOT_FOUND,
                        "no_passkey",
                        gw.chrome.t(Msg::PasskeyFailed),
                    )
                }
                Err(e) => Err(e),
            }
        }
    };
    match made {
        Ok(made) => options_answer(gw, made),
        Err(e) => store_error(gw, e),
    }
}

/// The passkey answer posted at the challenge (`mode=webauthn`), checked like a code: under
/// the lockout, refused (and audited by the caller) when the roles do not accept passkeys.
pub(crate) async fn check_challenge(
    gw: &Gateway,
    acc: &Accounts,
    id: &SessionId,
    p: &PendingLogin,
    form: &str,
    ip: IpAddr,
) -> Result<CodeCheck, crate::storage::StoreError> {
    let Some(rp) = gw.passkeys.as_deref() else {
        return Ok(CodeCheck::Refused {
            error: MfaError::NotAllowed,
            locked_now: false,
        });
    };
    if !login::allowed(&gw.config, acc, p).webauthn {
        return Ok(CodeCheck::Refused {
            error: MfaError::NotAllowed,
            locked_now: false,
        });
    }
    let response = form_value(form, "credential").unwrap_or_default();
    pk::check_login(
        acc,
        &gw.store,
        rp,
        &p.principal,
        Bound::Pending(id.as_str()),
        pk::Answer {
            response: &response,
            now: gw.clock.now(),
            ip,
        },
    )
    .await
}

/// `POST /mfa/enroll` with `mode=webauthn`: the first factor of this login is a passkey.
/// `None`: refused (audited); the caller shows the enrollment page with `REFUSED`.
pub(crate) async fn submit_enroll(
    gw: &Gateway,
    acc: &Accounts,
    id: &SessionId,
    p: &PendingLogin,
    form: &str,
    ip: IpAddr,
    ua: Option<String>,
) -> Option<Response<GatewayBody>> {
    let allowed = login::allowed(&gw.config, acc, p);
    let (Some(rp), true) = (gw.passkeys.as_deref(), allowed.webauthn) else {
        audit_failure(
            gw,
            &p.user,
            audit::Outcome::Refused,
            "webauthn_not_allowed",
            ip,
        )
        .await;
        return None;
    };
    let Stage::Enroll { invite, .. } = &p.stage else {
        return Some(page(gw, LoginError::Expired));
    };
    let now = gw.clock.now();
    let response = form_value(form, "credential").unwrap_or_default();
    let name = form_value(form, "name").unwrap_or_default();
    let reg = Registration {
        principal: &p.principal,
        bound: Bound::Enroll(id.as_str()),
        response: &response,
        name: &name,
        invite: invite.as_deref(),
        first: Some(allowed.totp),
    };
    let record = match pk::finish_register(acc, &gw.store, rp, reg, now).await {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => {
            enroll_audit(gw, p, Some(&e.to_string()), ip).await;
            return None;
        }
        Err(e) => return Some(store_error(gw, e)),
    };
    match gw.store.take_ephemeral(&pending_key(id)).await {
        Ok(Some(_)) => {}
        Ok(None) => return Some(page(gw, LoginError::Expired)),
        Err(e) => return Some(store_error(gw, e)),
    }
    tracing::info!(user = %p.user, credential = %record.credential_id, "passkey registered");
    enroll_audit(gw, p, None, ip).await;
    crate::alerts::factor_changed(
        gw,
        &p.user,
        p.email.as_deref(),
        crate::notify::mail::FactorChange::PasskeyAdded,
    );
    let landing = match enrolled_landing(gw, acc, p, "Your passkey is set up.", now).await {
        Ok(l) => l,
        Err(e) => return Some(store_error(gw, e)),
    };
    Some(finish_with(gw, p, MfaVerified::by_passkey(), None, ip, ua, landing).await)
}

async fn enroll_audit(gw: &Gateway, p: &PendingLogin, refused: Option<&str>, ip: IpAddr) {
    let outcome = if refused.is_some() {
        audit::Outcome::Failure
    } else {
        audit::Outcome::Success
    };
    audit::record(
        gw,
        Event {
            user: Some(&p.user),
            method: Some("webauthn"),
            reason: refused,
            ip: Some(ip),
            ..Event::new(audit::Kind::MfaEnroll, outcome)
        },
    )
    .await;
}

/// `POST` a native path with `mode=passkey-options`: a discoverable ceremony bound to this
/// browser's pre-login cookie (its CSRF token checked, not spent: the answer spends it).
pub(crate) async fn signin_options(gw: &Gateway, nonce: Option<&str>) -> Response<GatewayBody> {
    let rp = match relying_party(gw) {
        Ok(rp) => rp,
        Err(r) => return r,
    };
    if !gw.config.native.as_ref().is_some_and(|n| n.passkey_login) {
        return json_error(
            StatusCode::NOT_FOUND,
            "passkey_login_off",
            gw.chrome.t(Msg::PasskeyFailed),
        );
    }
    let Some(nonce) = nonce else {
        return json_error(
            StatusCode::FORBIDDEN,
            "form_expired",
            gw.chrome.t(Msg::PasskeyFailed),
        );
    };
    match pk::begin_signin(&gw.store, rp, nonce).await {
        Ok(made) => options_answer(gw, made),
        Err(e) => store_error(gw, e),
    }
}

/// Where a passkey sign-in answer came from and goes to.
pub(crate) struct SignInForm<'a> {
    pub nonce: &'a str,
    pub form: &'a str,
    pub rd: &'a LocalPath,
    pub ip: IpAddr,
    pub ua: Option<String>,
    pub known: Option<String>,
}

/// `POST` a native path with `mode=passkey` (its CSRF token already spent): one ceremony for
/// both factors. The user must exist, be enabled, and hold roles that accept passkeys.
/// `Err`: refused (audited); the caller shows the sign-in form so.
pub(crate) async fn sign_in(
    gw: &Gateway,
    acc: &Accounts,
    f: SignInForm<'_>,
) -> Result<Response<GatewayBody>, Shown> {
    let SignInForm {
        nonce,
        form,
        rd,
        ip,
        ua,
        known,
    } = f;
    let Some(rp) = gw
        .passkeys
        .as_deref()
        .filter(|_| gw.config.native.as_ref().is_some_and(|n| n.passkey_login))
    else {
        return Ok(page(gw, LoginError::MethodUnavailable));
    };
    let response = form_value(form, "credential").unwrap_or_default();
    let now = gw.clock.now();
    let user = match pk::check_signin(acc, &gw.store, rp, nonce, &response, now, ip).await {
        Ok(SignIn::Verified(u)) => u,
        Ok(SignIn::Refused(e)) => {
            signin_failure(gw, "-", &e.to_string(), audit::Outcome::Failure, ip).await;
            return Err(Shown::Refused(REFUSED));
        }
        Ok(SignIn::RefusedFor(user, e, locked_now)) => {
            signin_failure(gw, &user, &e.to_string(), audit::Outcome::Failure, ip).await;
            if locked_now {
                audit::record(
                    gw,
                    Event {
                        user: Some(&user),
                        method: Some("webauthn"),
                        ip: Some(ip),
                        ..Event::new(audit::Kind::Lockout, audit::Outcome::Locked)
                    },
                )
                .await;
            }
            return Err(Shown::Refused(REFUSED));
        }
        Ok(SignIn::Locked(user)) => {
            signin_failure(gw, &user, "locked", audit::Outcome::Refused, ip).await;
            return Err(Shown::Locked);
        }
        Ok(SignIn::Disabled(user)) => {
            signin_failure(gw, &user, "disabled", audit::Outcome::Refused, ip).await;
            return Err(Shown::Refused(REFUSED));
        }
        Err(e) => return Ok(store_error(gw, e)),
    };
    let roles = configured_roles(&gw.config, &user);
    if roles.is_empty() {
        signin_failure(gw, &user.username, "no_role", audit::Outcome::Refused, ip).await;
        return Ok(page(gw, LoginError::NoRole));
    }
    if !gw
        .config
        .mfa_methods_for(&roles)
        .contains(&MfaMethod::Webauthn)
    {
        signin_failure(
            gw,
            &user.username,
            "webauthn_not_allowed",
            audit::Outcome::Refused,
            ip,
        )
        .await;
        return Err(Shown::Refused(REFUSED));
    }
    let policy = effective_policy(&gw.config, &roles);
    let pending = PendingLogin {
        passkeys: true,
        ..PendingLogin::native(&user, roles, rd, policy.remember_mfa.as_secs(), now, known)
    };
    audit::record(
        gw,
        Event {
            user: Some(&user.username),
            method: Some("webauthn"),
            ip: Some(ip),
            ..Event::new(audit::Kind::MfaSuccess, audit::Outcome::Success)
        },
    )
    .await;
    Ok(finish(gw, &pending, MfaVerified::by_passkey(), None, ip, ua).await)
}

async fn signin_failure(
    gw: &Gateway,
    user: &str,
    reason: &str,
    outcome: audit::Outcome,
    ip: IpAddr,
) {
    audit::record(
        gw,
        Event {
            user: Some(user),
            method: Some("webauthn"),
            reason: Some(reason),
            ip: Some(ip),
            ..Event::new(audit::Kind::LoginFailure, outcome)
        },
    )
    .await;
}
