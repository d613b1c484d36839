//! Native login over HTTP (DESIGN.md §3): the password form at the native paths, then the
//! second-factor steps under the reserved prefix (`/mfa`, `/mfa/enroll`, `/mfa/email`). The
//! state machine and every credential check live in `auth::native`; this file turns their
//! outcomes into pages. Every POST carries a CSRF token bound to the login and is refused when
//! its `Origin` is another site's; every decision is audited; the session exists only once the
//! policy is satisfied, under a fresh cookie.

use super::complete::{after_first_factor, Next};
use super::error::{accounts, audit_failure, page, LoginError, Shown};
use super::views::{self, LoginForm};
use crate::audit::{self, Event};
use crate::auth::native::{self as login, configured_roles, ChosenPassword, PasswordCheck};
use crate::auth::pending::PendingLogin;
use crate::auth::policy::{effective_policy, LocalPath};
use crate::http::{
    client_ip, form_value, origin_ok, query_param, read_body, respond, set_cookie, store_error,
    user_agent, Conn, GatewayError,
};
use crate::proxy::forward::GatewayBody;
use crate::secret::{ct_eq, Password};
use crate::session::{cookie, random_id, SessionStore};
use crate::state::Gateway;
use crate::storage::UserStore;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine as _;
use hyper::body::Incoming;
use hyper::{Method, Request, Response};
use std::sync::Arc;

pub(crate) fn csrf_for(gw: &Gateway, nonce: &str) -> String {
    let tag = ring::hmac::sign(&gw.csrf_key, nonce.as_bytes());
    B64.encode(tag.as_ref().get(..24).unwrap_or_default())
}

/// `GET|POST` a native path.
pub async fn entry(
    gw: &Arc<Gateway>,
    req: Request<Incoming>,
    conn: Conn,
    path: &str,
) -> Response<GatewayBody> {
    match *req.method() {
        Method::GET | Method::HEAD => show_login(gw, &req, path).await,
        Method::POST if !origin_ok(gw, req.headers()) => page(gw, LoginError::CrossSite),
        Method::POST => submit_login(gw, req, conn, path).await,
        _ => page(gw, LoginError::MethodNotAllowed),
    }
}

/// The password form, with a fresh pre-login cookie and the CSRF token bound to it; through an
/// enrollment link (`?invite=`), the form bound to that invitation.
pub(crate) async fn show_login(
    gw: &Gateway,
    req: &Request<Incoming>,
    path: &str,
) -> Response<GatewayBody> {
    // With forward-auth on, an absolute URL on an allowed host too (`auth::return_to`).
    let rd = query_param(req.uri().query(), "rd")
        .map(|r| crate::auth::return_to::rd_param(&gw.config, &r))
        .unwrap_or_else(LocalPath::root);
    let Some(token) = query_param(req.uri().query(), "invite") else {
        return login_form_response(gw, Shown::Fresh, None, path, &rd, "", None);
    };
    let Some(acc) = accounts(gw) else {
        return page(gw, LoginError::InvalidLink);
    };
    let now = gw.clock.now();
    let invite = match acc
        .users
        .find_invite(&login::invite_hash(&token), now)
        .await
    {
        Ok(Some(i)) => i,
        Ok(None) => return page(gw, LoginError::InvalidLink),
        Err(e) => return store_error(gw, e),
    };
    match acc.users.get_user(&invite.username).await {
        Ok(Some(u)) if !u.disabled => {
            let choose = u.password_hash.is_none();
            login_form_response(
                gw,
                Shown::Fresh,
                None,
                path,
                &rd,
                &u.username,
                Some((&token, choose)),
            )
        }
        Ok(_) => page(gw, LoginError::InvalidLink),
        Err(e) => store_error(gw, e),
    }
}

/// The sign-in form as `shown` (with a log reference for the helpdesk when given), with a fresh
/// pre-login cookie and the CSRF token bound to it.
pub(crate) fn login_form_response(
    gw: &Gateway,
    shown: Shown,
    reference: Option<&str>,
    path: &str,
    rd: &LocalPath,
    username: &str,
    invite: Option<(&str, bool)>,
) -> Response<GatewayBody> {
    let message = shown.message(&gw.chrome).map(|m| match reference {
        Some(r) => format!("{m} {} {r}", gw.chrome.t(crate::pages::Msg::Reference)),
        None => m.to_owned(),
    });
    let error = message.as_deref();
    let status = shown.status();
    let nonce = random_id(32);
    let csrf = csrf_for(gw, &nonce);
    let mut r = views::login_form(
        &gw.chrome,
        status,
        &LoginForm {
            action: path,
            csrf: &csrf,
            passkey: (invite.is_none()
                && gw.passkeys.is_some()
                && gw.config.native.as_ref().is_some_and(|n| n.passkey_login))
            .then_some(gw.config.server.prefix.as_str()),
            rd: rd.as_str(),
            username,
            error,
            invite,
        },
    );
    set_cookie(
        &mut r,
        &gw.cookies.set(
            gw.cookies.pending,
            &nonce,
            Some(gw.config.session.pending_ttl.as_secs()),
        ),
    );
    r
}

pub(crate) async fn submit_login(
    gw: &Gateway,
    req: Request<Incoming>,
    conn: Conn,
    path: &str,
) -> Response<GatewayBody> {
    let Some(acc) = accounts(gw) else {
        return respond(gw, GatewayError::NoLogin, true);
    };
    let ip = client_ip(gw, req.headers(), conn);
    let ua = user_agent(req.headers());
    let nonce = cookie::get(req.headers(), gw.cookies.pending).map(str::to_owned);
    let device = cookie::get(req.headers(), gw.cookies.device).map(str::to_owned);
    let known = crate::alerts::known_device(gw, req.headers());
    let body = match read_body(gw, req.into_body()).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    let form = String::from_utf8_lossy(&body);
    let field = |n: &str| form_value(&form, n).unwrap_or_default();
    let rd = LocalPath::parse(&field("rd")).unwrap_or_else(LocalPath::root);

    // CSRF first: the token must be the HMAC of this browser's login cookie, and it works once
    // (each answer to the form carries a new one), so one token is one evaluation.
    let csrf_ok = nonce
        .as_deref()
        .is_some_and(|n| ct_eq(csrf_for(gw, n).as_bytes(), field("csrf_token").as_bytes()));
    // The passkey button's options: bound to this browser's cookie; the token is checked
    // here and spent by the answer.
    if field("mode") == "passkey-options" {
        return super::passkey::signin_options(gw, nonce.as_deref().filter(|_| csrf_ok)).await;
    }
    let fresh = match (&nonce, csrf_ok) {
        (Some(n), true) => match gw
            .store
            .claim_once(&format!("csrf:{n}"), gw.config.session.pending_ttl)
            .await
        {
            Ok(fresh) => fresh,
            Err(e) => return store_error(gw, e),
        },
        _ => false,
    };
    if !fresh {
        audit_failure(
            gw,
            "-",
            audit::Outcome::Refused,
            if csrf_ok { "csrf_reused" } else { "csrf" },
            ip,
        )
        .await;
        return page(gw, LoginError::FormExpired);
    }

    if let (Some(n), "passkey") = (nonce.as_deref(), field("mode").as_str()) {
        let f = super::passkey::SignInForm {
            nonce: n,
            form: &form,
            rd: &rd,
            ip,
            ua,
            known,
        };
        return match super::passkey::sign_in(gw, acc, f).await {
            Ok(r) => r,
            Err(shown) => login_form_response(gw, shown, None, path, &rd, "", None),
        };
    }
    let invite = Some(field("invite")).filter(|t| !t.is_empty());
    let typed = field("username");
    let typed = typed.trim();
    let now = gw.clock.now();
    let chosen = match invite.as_deref() {
        Some(token) if form_value(&form, "new_password").is_some() => {
            let new = Password::new(field("new_password"));
            let confirm = Password::new(field("confirm_password"));
            match login::choose_password(acc, token, new, &confirm, now).await {
                Ok(ChosenPassword::Set(user, proof)) => Some((user, proof)),
                Ok(ChosenPassword::Unacceptable(why)) => {
                    return login_form_response(
                        gw,
                        Shown::Unacceptable(why),
                        None,
                        path,
                        &rd,
                        typed,
                        Some((token, true)),
                    )
                }
                Ok(ChosenPassword::InvalidLink) => return page(gw, LoginError::InvalidLink),
                Err(e) => return store_error(gw, e),
            }
        }
        _ => None,
    };
    let (user, proof) = match chosen {
        Some(x) => x,
        None => {
            let password = Password::new(field("password"));
            match login::check_password(acc, &gw.store, typed, password, ip).await {
                Ok(PasswordCheck::Verified(user, proof)) => (user, proof),
                Ok(PasswordCheck::Locked) => {
                    audit_failure(gw, typed, audit::Outcome::Refused, "locked", ip).await;
                    // The page names a reference that matches this log line, for the helpdesk.
                    let correlation = random_id(9);
                    tracing::info!(correlation = %correlation, ip = %ip, "sign-in refused: locked");
                    return login_form_response(
                        gw,
                        Shown::Locked,
                        Some(&correlation),
                        path,
                        &rd,
                        typed,
                        invite.as_deref().map(|t| (t, false)),
                    );
                }
                Ok(PasswordCheck::Refused { locked_now }) => {
                    let reason = if crate::accounts::normalise_user(typed).is_none() {
                        "bad_username"
                    } else {
                        "bad_credentials"
                    };
                    audit_failure(gw, typed, audit::Outcome::Failure, reason, ip).await;
                    if locked_now {
                        audit::record(
                            gw,
                            Event {
                                user: Some(typed),
                                method: Some("native"),
                                ip: Some(ip),
                                ..Event::new(audit::Kind::Lockout, audit::Outcome::Locked)
                            },
                        )
                        .await;
                    }
                    return login_form_response(
                        gw,
                        Shown::WrongPassword,
                        None,
                        path,
                        &rd,
                        typed,
                        invite.as_deref().map(|t| (t, false)),
                    );
                }
                Ok(PasswordCheck::Busy) => return page(gw, LoginError::Busy),
                Err(e) => return store_error(gw, e),
            }
        }
    };

    let roles = configured_roles(&gw.config, &user);
    if roles.is_empty() {
        audit_failure(gw, &user.username, audit::Outcome::Refused, "no_role", ip).await;
        return page(gw, LoginError::NoRole);
    }
    let policy = effective_policy(&gw.config, &roles);
    let pending =
        PendingLogin::native(&user, roles, &rd, policy.remember_mfa.as_secs(), now, known);
    audit::record(
        gw,
        Event {
            user: Some(&user.username),
            method: Some("native"),
            ip: Some(ip),
            ..Event::new(audit::Kind::LoginPassword, audit::Outcome::Success)
        },
    )
    .await;
    let next = Next {
        device: device.as_deref(),
        invite: invite.as_deref(),
        ip,
        ua,
    };
    after_first_factor(gw, proof, pending, &policy, next).await
}
