//! The second-factor steps of a pending login over HTTP (`/mfa`, `/mfa/enroll`,
//! `/mfa/email`): each re-validates the login first (`auth::native::revalidate`), takes only
//! the step its stage has, and hands a verified factor to `complete`.

use super::complete::stale;
use super::complete::{enrolled_landing, finish, finish_with, load_pending, pending_key, Landing};
use super::error::{accounts, audit_failure, page, LoginError, Shown};
use super::views::{self, Challenge};
use crate::accounts::Accounts;
use crate::audit::{self, Event};
use crate::auth::native::{self as login, CodeCheck, Stale, Typing};
use crate::auth::pending::{PendingLogin, Stage};
use crate::http::{client_ip, form_value, origin_ok, read_body, store_error, user_agent, Conn};
use crate::mfa::{email, qr, totp, MfaError};
use crate::pages;
use crate::proxy::forward::GatewayBody;
use crate::secret::ct_eq;
use crate::server::endpoint::MfaStep;
use crate::session::{SessionId, SessionStore};
use crate::state::Gateway;
use hyper::body::Incoming;
use hyper::{Method, Request, Response};
use std::net::IpAddr;
use std::sync::Arc;

/// `/mfa`, `/mfa/enroll`, `/mfa/email`: the steps of a pending login, each re-validated first.
pub async fn entry(
    gw: &Arc<Gateway>,
    req: Request<Incoming>,
    conn: Conn,
    step: MfaStep,
) -> Response<GatewayBody> {
    let Some(acc) = accounts(gw) else {
        return page(gw, LoginError::NotFound);
    };
    let method = req.method().clone();
    if method == Method::POST && !origin_ok(gw, req.headers()) {
        return page(gw, LoginError::CrossSite);
    }
    let (id, pending) = match load_pending(gw, req.headers()).await {
        Ok(Some(x)) => x,
        Ok(None) => return page(gw, LoginError::Expired),
        Err(e) => return store_error(gw, e),
    };
    let ip = client_ip(gw, req.headers(), conn);
    let ua = user_agent(req.headers());
    // DESIGN.md §6: every step re-checks the user (exists, enabled, same roles, no admin action).
    match login::revalidate(acc, &gw.store, &gw.config, &pending).await {
        Ok(Ok(())) => {}
        Ok(Err(why)) => return stale(gw, &id, &pending, why, ip).await,
        Err(e) => return store_error(gw, e),
    }
    // A break-glass login goes on only while its user is armed (disarm, window end).
    if pending.method == crate::auth::pending::LoginMethod::BreakGlass {
        match crate::auth::break_glass::armed_for(&gw.store, &pending.user, gw.clock.now()).await {
            Ok(Some(_)) => {}
            Ok(None) => return stale(gw, &id, &pending, Stale::Revoked, ip).await,
            Err(e) => return store_error(gw, e),
        }
    }
    let enrolling = matches!(pending.stage, Stage::Enroll { .. });
    match (step, &method, enrolling) {
        (MfaStep::Challenge, &Method::GET, false) => {
            // `?recovery=1`: the "use a recovery code" link, the field for letters.
            let recovery = crate::http::query_param(req.uri().query(), "recovery").is_some();
            challenge_page_as(gw, acc, &pending, Shown::Fresh, None, recovery)
        }
        (MfaStep::Enroll, &Method::GET, true) => {
            enroll_page(gw, acc, &id, &pending, Shown::Fresh, ip).await
        }
        // The wrong page for this stage: go to the right one.
        (MfaStep::Challenge, &Method::GET, true) => pages::redirect(&format!(
            "{}{}/mfa/enroll",
            gw.config.server.public_origin, gw.config.server.prefix
        )),
        (MfaStep::Enroll, &Method::GET, false) => pages::redirect(&format!(
            "{}{}/mfa",
            gw.config.server.public_origin, gw.config.server.prefix
        )),
        (_, &Method::POST, _) => {
            let body = match read_body(gw, req.into_body()).await {
                Ok(b) => b,
                Err(r) => return r,
            };
            let form = String::from_utf8_lossy(&body).into_owned();
            let csrf = form_value(&form, "csrf_token").unwrap_or_default();
            if !ct_eq(csrf.as_bytes(), pending.csrf.as_bytes()) {
                return page(gw, LoginError::FormExpired);
            }
            match (step, enrolling) {
                (MfaStep::Challenge, false) => {
                    submit_challenge(gw, acc, &id, &pending, &form, ip, ua).await
                }
                (MfaStep::Enroll, true)
                    if form_value(&form, "mode").as_deref() == Some("webauthn") =>
                {
                    match super::passkey::submit_enroll(gw, acc, &id, &pending, &form, ip, ua).await
                    {
                        Some(r) => r,
                        None => {
                            enroll_page(
                                gw,
                                acc,
                                &id,
                                &pending,
                                Shown::Refused(super::passkey::REFUSED),
                                ip,
                            )
                            .await
                        }
                    }
                }
                (MfaStep::Enroll, true) => {
                    submit_enroll(gw, acc, &id, &pending, &form, ip, ua).await
                }
                (MfaStep::Email, false) => send_email_code(gw, acc, &id, &pending, ip).await,
                (MfaStep::Passkey, _) => super::passkey::options(gw, acc, &id, &pending, ip).await,
                // A step this stage does not have (e.g. enrolling from a challenge): refused
                // from the stage alone, before any check runs; the login itself stays as it was.
                _ => {
                    audit_failure(
                        gw,
                        &pending.user,
                        audit::Outcome::Refused,
                        "illegal_step",
                        ip,
                    )
                    .await;
                    page(gw, LoginError::Expired)
                }
            }
        }
        _ => page(gw, LoginError::MethodNotAllowed),
    }
}

/// Shown for a factor the login's roles do not accept (the audit says which).
const NOT_ALLOWED: crate::pages::Msg = crate::pages::Msg::FactorNotAccepted;

pub(crate) fn mask_email(e: &str) -> String {
    match e.split_once('@') {
        Some((local, domain)) => {
            let first: String = local.chars().take(1).collect();
            format!("{first}***@{domain}")
        }
        None => "your address".into(),
    }
}

/// The challenge page as `shown`, with an optional notice (an email code sent).
pub(crate) fn challenge_page(
    gw: &Gateway,
    acc: &Accounts,
    p: &PendingLogin,
    shown: Shown,
    notice: Option<&str>,
) -> Response<GatewayBody> {
    challenge_page_as(gw, acc, p, shown, notice, false)
}

/// `challenge_page`, its field for a recovery code when `recovery_mode`.
pub(crate) fn challenge_page_as(
    gw: &Gateway,
    acc: &Accounts,
    p: &PendingLogin,
    shown: Shown,
    notice: Option<&str>,
    recovery_mode: bool,
) -> Response<GatewayBody> {
    let (status, error) = (shown.status(), shown.message(&gw.chrome));
    let remember_days = (p.remember_secs > 0).then(|| (p.remember_secs / 86_400).max(1));
    let allowed = login::allowed(&gw.config, acc, p);
    let email_hint = allowed
        .email
        .then(|| p.email.as_deref().map(mask_email))
        .flatten();
    views::challenge(
        &gw.chrome,
        status,
        &Challenge {
            prefix: &gw.config.server.prefix,
            csrf: &p.csrf,
            remember_days,
            email_hint: email_hint.as_deref(),
            recovery: allowed.recovery,
            recovery_mode,
            error,
            notice,
            passkey: allowed.webauthn && p.passkeys && gw.passkeys.is_some(),
            codes: allowed.totp || allowed.email || allowed.recovery,
        },
    )
}

pub(crate) async fn submit_challenge(
    gw: &Gateway,
    acc: &Accounts,
    id: &SessionId,
    p: &PendingLogin,
    form: &str,
    ip: IpAddr,
    ua: Option<String>,
) -> Response<GatewayBody> {
    let code = form_value(form, "code").unwrap_or_default();
    let remember = form_value(form, "remember").is_some_and(|v| v == "1" || v == "on");
    let passkey = form_value(form, "mode").is_some_and(|m| m == "webauthn");
    let typed = Attempt {
        name: if passkey {
            "webauthn"
        } else {
            login::classify(&code).name()
        },
        recovery_mode: form_value(form, "mode").is_some_and(|m| m == "recovery"),
    };
    let allowed = login::allowed(&gw.config, acc, p);
    let typing = Typing {
        code: &code,
        now: gw.clock.now(),
        ip,
    };
    let checked = if passkey {
        super::passkey::check_challenge(gw, acc, id, p, form, ip).await
    } else {
        login::check_code(
            acc,
            &gw.store,
            &p.principal,
            &p.user,
            Some(id.as_str()),
            &allowed,
            typing,
        )
        .await
    };
    let (verified, left) = match checked {
        Ok(CodeCheck::Verified(v, left)) => (v, left),
        Ok(CodeCheck::Locked) => {
            return challenge_page_as(gw, acc, p, Shown::Locked, None, typed.recovery_mode)
        }
        Ok(CodeCheck::Refused { error, locked_now }) => {
            return refused_code(gw, acc, p, &typed, &error, locked_now, ip).await
        }
        // DESIGN.md §6: a store failing mid-check is a 503, never "wrong code".
        Err(e) => return store_error(gw, e),
    };
    // Single use of the pending login itself: a second tab cannot finish it again.
    match gw.store.take_ephemeral(&pending_key(id)).await {
        Ok(Some(_)) => {}
        Ok(None) => return page(gw, LoginError::Expired),
        Err(e) => return store_error(gw, e),
    }
    audit::record(
        gw,
        Event {
            user: Some(&p.user),
            method: Some(verified.used().as_str()),
            ip: Some(ip),
            ..Event::new(audit::Kind::MfaSuccess, audit::Outcome::Success)
        },
    )
    .await;
    let remember_acc = (remember && p.remember_secs > 0).then_some(acc);
    match left {
        Some(left) => {
            audit::record(
                gw,
                Event {
                    user: Some(&p.user),
                    method: Some("recovery_code"),
                    ip: Some(ip),
                    detail: Some(format!("{{\"remaining\":{left}}}")),
                    ..Event::new(audit::Kind::RecoveryCodeUsed, audit::Outcome::Success)
                },
            )
            .await;
            let message = format!(
                "Recovery code accepted. You have {left} recovery code{} left.{}",
                if left == 1 { "" } else { "s" },
                if left <= 3 {
                    " Set up your authenticator again or ask for new codes soon."
                } else {
                    ""
                }
            );
            let landing = Landing::Notice {
                title: "Signed in with a recovery code",
                message,
            };
            finish_with(gw, p, verified, remember_acc, ip, ua, landing).await
        }
        None => finish(gw, p, verified, remember_acc, ip, ua).await,
    }
}

/// What was typed at the challenge: the kind of code, and whether in the recovery-code field
/// (a refusal shows that field again).
pub(crate) struct Attempt {
    name: &'static str,
    recovery_mode: bool,
}

/// A refused code: audited (and the lockout it started), answered on the challenge page.
pub(crate) async fn refused_code(
    gw: &Gateway,
    acc: &Accounts,
    p: &PendingLogin,
    typed: &Attempt,
    error: &MfaError,
    locked_now: bool,
    ip: IpAddr,
) -> Response<GatewayBody> {
    let reason = error.to_string();
    audit::record(
        gw,
        Event {
            user: Some(&p.user),
            method: Some(typed.name),
            reason: Some(&reason),
            ip: Some(ip),
            ..Event::new(audit::Kind::MfaFailure, audit::Outcome::Failure)
        },
    )
    .await;
    if locked_now {
        audit::record(
            gw,
            Event {
                user: Some(&p.user),
                ip: Some(ip),
                ..Event::new(audit::Kind::Lockout, audit::Outcome::Locked)
            },
        )
        .await;
        return challenge_page_as(gw, acc, p, Shown::Locked, None, typed.recovery_mode);
    }
    let shown = match error {
        MfaError::CodeReused => Shown::CodeReused,
        MfaError::Passkey(_) => Shown::Refused(super::passkey::REFUSED),
        MfaError::NotAllowed => Shown::Refused(NOT_ALLOWED),
        _ => Shown::WrongCode,
    };
    challenge_page_as(gw, acc, p, shown, None, typed.recovery_mode)
}

pub(crate) async fn send_email_code(
    gw: &Gateway,
    acc: &Accounts,
    id: &SessionId,
    p: &PendingLogin,
    ip: IpAddr,
) -> Response<GatewayBody> {
    let unavailable = || challenge_page(gw, acc, p, Shown::EmailUnavailable, None);
    let (Some(to), Some(sender), Some(cfg)) = (
        p.email.as_deref(),
        acc.email.as_ref(),
        gw.config.mfa.email.as_ref(),
    ) else {
        return unavailable();
    };
    if !login::allowed(&gw.config, acc, p).email {
        return unavailable();
    }
    match gw
        .store
        .claim_once(
            &format!("email-resend:{}", p.principal),
            cfg.resend_interval,
        )
        .await
    {
        Ok(true) => {}
        Ok(false) => return challenge_page(gw, acc, p, Shown::EmailTooSoon, None),
        Err(e) => return store_error(gw, e),
    }
    let code = email::generate_email_code();
    // Bound to this pending login: a code never completes another login of the same user.
    if let Err(e) = gw
        .store
        .put_ephemeral(
            &login::email_code_key(id.as_str()),
            email::hash_email_code(&code).into_bytes(),
            cfg.code_ttl,
        )
        .await
    {
        return store_error(gw, e);
    }
    let minutes = (cfg.code_ttl.as_secs() / 60).max(1);
    match sender
        .send_code(to, &code, &gw.config.mfa.issuer, minutes)
        .await
    {
        Ok(()) => {
            audit::record(
                gw,
                Event {
                    user: Some(&p.user),
                    method: Some("email"),
                    ip: Some(ip),
                    ..Event::new(audit::Kind::MfaEmailSent, audit::Outcome::Success)
                },
            )
            .await;
            let msg = format!(
                "We sent a code to {}. It is valid for {minutes} minutes.",
                mask_email(to)
            );
            challenge_page(gw, acc, p, Shown::Fresh, Some(&msg))
        }
        Err(e) => {
            tracing::warn!(error = %e, user = %p.user, "email code could not be sent");
            challenge_page(gw, acc, p, Shown::EmailFailed, None)
        }
    }
}

/// The enrollment page of an `Enroll` pending login: always the secret made for it.
pub(crate) async fn enroll_page(
    gw: &Gateway,
    acc: &Accounts,
    id: &SessionId,
    p: &PendingLogin,
    shown: Shown,
    ip: IpAddr,
) -> Response<GatewayBody> {
    let (status, error) = (shown.status(), shown.message(&gw.chrome));
    // Someone enrolled this principal since the login started: never show a secret that could
    // replace their factor.
    let allowed = login::allowed(&gw.config, acc, p);
    match login::has_allowed_factor(acc, &p.principal, &allowed, gw.clock.now()).await {
        Ok(true) => return stale(gw, id, p, Stale::FactorsChanged, ip).await,
        Ok(false) => {}
        Err(e) => return store_error(gw, e),
    }
    let Some(seed) = login::enrollment_seed(acc, p) else {
        return page(gw, LoginError::Expired);
    };
    let t = acc.totp_for(seed, &p.user);
    let uri = t.otpauth_uri();
    let svg = qr::svg(&uri).unwrap_or_default();
    let secret = totp::group_secret(&t.secret_base32());
    let action = format!("{}/mfa/enroll", gw.config.server.prefix);
    let view = views::Enrollment {
        action: &action,
        csrf: &p.csrf,
        uri: &uri,
        qr_svg: &svg,
        grouped_secret: &secret,
        error,
        totp: allowed.totp,
        passkey: (allowed.webauthn && gw.passkeys.is_some())
            .then_some(gw.config.server.prefix.as_str()),
    };
    views::enroll(&gw.chrome, status, &view)
}

pub(crate) async fn submit_enroll(
    gw: &Gateway,
    acc: &Accounts,
    id: &SessionId,
    p: &PendingLogin,
    form: &str,
    ip: IpAddr,
    ua: Option<String>,
) -> Response<GatewayBody> {
    let code = form_value(form, "code").unwrap_or_default();
    let now = gw.clock.now();
    // An authenticator app for roles that accept only passkeys: refused, audited.
    if !login::allowed(&gw.config, acc, p).totp {
        audit::record(
            gw,
            Event {
                user: Some(&p.user),
                method: Some("totp"),
                reason: Some("method_not_allowed"),
                ip: Some(ip),
                ..Event::new(audit::Kind::MfaEnroll, audit::Outcome::Refused)
            },
        )
        .await;
        return enroll_page(gw, acc, id, p, Shown::Refused(NOT_ALLOWED), ip).await;
    }
    let verified = match login::confirm_enrollment(acc, &gw.store, p, &code, now, ip).await {
        Ok(Ok(CodeCheck::Verified(v, _))) => v,
        Ok(Ok(CodeCheck::Locked)) => return enroll_page(gw, acc, id, p, Shown::Locked, ip).await,
        Ok(Ok(CodeCheck::Refused { .. })) => {
            audit::record(
                gw,
                Event {
                    user: Some(&p.user),
                    method: Some("totp"),
                    reason: Some("wrong_code"),
                    ip: Some(ip),
                    ..Event::new(audit::Kind::MfaEnroll, audit::Outcome::Failure)
                },
            )
            .await;
            return enroll_page(gw, acc, id, p, Shown::WrongCode, ip).await;
        }
        Ok(Err(why)) => return stale(gw, id, p, why, ip).await,
        Err(e) => return store_error(gw, e),
    };
    match gw.store.take_ephemeral(&pending_key(id)).await {
        Ok(Some(_)) => {}
        Ok(None) => return page(gw, LoginError::Expired),
        Err(e) => return store_error(gw, e),
    }
    audit::record(
        gw,
        Event {
            user: Some(&p.user),
            method: Some("totp"),
            ip: Some(ip),
            ..Event::new(audit::Kind::MfaEnroll, audit::Outcome::Success)
        },
    )
    .await;
    crate::alerts::factor_changed(
        gw,
        &p.user,
        p.email.as_deref(),
        crate::notify::mail::FactorChange::Added,
    );
    let landing = match enrolled_landing(gw, acc, p, "Your authenticator app is set up.", now).await
    {
        Ok(l) => l,
        Err(e) => return store_error(gw, e),
    };
    finish_with(gw, p, verified, None, ip, ua, landing).await
}
