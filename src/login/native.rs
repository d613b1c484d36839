//! Native login over HTTP (DESIGN.md §3): the password form at the native paths, then the
//! second-factor steps under the reserved prefix (`/mfa`, `/mfa/enroll`, `/mfa/email`). The
//! state machine and every credential check live in `auth::native`; this file turns their
//! outcomes into pages. Every POST carries a CSRF token bound to the login and is refused when
//! its `Origin` is another site's; every decision is audited; the session exists only once the
//! policy is satisfied, under a fresh cookie.

use super::complete::{after_first_factor, pending_key, Next};
use super::views::{self, LoginForm};
use crate::accounts::{native_principal, Accounts};
use crate::audit::{self, Event};
use crate::auth::native::{self as login, configured_roles, ChosenPassword, PasswordCheck, Stale};
use crate::auth::pending::{LoginMethod, PendingLogin, Stage};
use crate::auth::policy::{effective_policy, LocalPath};
use crate::http::{
    client_ip, form_value, origin_ok, query_param, read_body, respond, set_cookie, store_error,
    user_agent, Conn, GatewayError,
};
use crate::pages;
use crate::proxy::forward::GatewayBody;
use crate::secret::{ct_eq, Password};
use crate::session::{cookie, random_id, SessionId, SessionStore};
use crate::state::Gateway;
use crate::storage::UserStore;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine as _;
use hyper::body::Incoming;
use hyper::header::{HeaderValue, RETRY_AFTER};
use hyper::{Method, Request, Response, StatusCode};
use std::net::IpAddr;
use std::sync::Arc;

pub(crate) const BAD_CREDENTIALS: &str = "Incorrect username or password.";
pub(crate) const LOCKED: &str =
    "Too many failed attempts. For your security, sign-in is paused for a while; try again later.";
pub(crate) const BAD_CODE: &str = "That code is not valid. Check it and try again.";
pub(crate) const EXPIRED: &str = "Your sign-in attempt has expired or was already completed.";

pub(crate) fn csrf_for(gw: &Gateway, nonce: &str) -> String {
    let tag = ring::hmac::sign(&gw.csrf_key, nonce.as_bytes());
    B64.encode(tag.as_ref().get(..24).unwrap_or_default())
}

pub(crate) fn accounts(gw: &Gateway) -> Option<&Accounts> {
    gw.accounts.as_ref()
}

pub(crate) fn first_native_path(gw: &Gateway) -> String {
    gw.config
        .native
        .as_ref()
        .and_then(|n| n.paths.first())
        .cloned()
        .unwrap_or_else(|| "/".into())
}

pub(crate) fn expired_page(gw: &Gateway) -> Response<GatewayBody> {
    gw.chrome.error_page(
        StatusCode::BAD_REQUEST,
        "Sign-in expired",
        EXPIRED,
        &format!("Start again at {}.", first_native_path(gw)),
        &random_id(9),
    )
}

/// The answer to a cross-site form POST (logged: someone's page tried to use our forms).
pub(crate) fn cross_site(gw: &Gateway) -> Response<GatewayBody> {
    tracing::info!(target: "audit", kind = "csrf.refused", reason = "origin", "form posted from another site refused");
    gw.chrome.error_page(
        StatusCode::FORBIDDEN,
        "Form refused",
        "This form was sent from another website, so it was not accepted.",
        "Open the sign-in page of this site directly and try again.",
        &random_id(9),
    )
}

pub(crate) fn forbidden_form(gw: &Gateway) -> Response<GatewayBody> {
    tracing::info!(target: "audit", kind = "csrf.refused", "form without a valid csrf token refused");
    gw.chrome.error_page(
        StatusCode::FORBIDDEN,
        "Form expired",
        "This form was not accepted because its security token is missing or out of date.",
        "Go back, reload the page and try again.",
        &random_id(9),
    )
}

pub(crate) fn busy(gw: &Gateway) -> Response<GatewayBody> {
    let mut r = gw.chrome.error_page(
        StatusCode::SERVICE_UNAVAILABLE,
        "Busy",
        "The sign-in service is handling too many requests right now.",
        "Wait a few seconds and try again.",
        &random_id(9),
    );
    r.headers_mut()
        .insert(RETRY_AFTER, HeaderValue::from_static("5"));
    r
}

pub(crate) fn invalid_link_page(gw: &Gateway) -> Response<GatewayBody> {
    gw.chrome.error_page(
        StatusCode::BAD_REQUEST,
        "Link not valid",
        "This enrollment link is not valid: it was already used, it expired, or a newer one replaced it.",
        "Ask your administrator for a new enrollment link.",
        &random_id(9),
    )
}

/// A pending login that can no longer go on (user disabled, roles changed, an admin action):
/// it is ended, audited, and the person is told to start again.
pub(crate) async fn stale(
    gw: &Gateway,
    id: &SessionId,
    p: &PendingLogin,
    why: Stale,
    ip: IpAddr,
) -> Response<GatewayBody> {
    // Ended for good: a later request with the same cookie finds nothing.
    if let Err(e) = gw.store.take_ephemeral(&pending_key(id)).await {
        return store_error(gw, e);
    }
    let reason = why.to_string();
    let method = p.method.as_header();
    audit::record(
        gw,
        Event {
            kind: "login.failure",
            user: Some(&p.user),
            method: Some(&method),
            outcome: "refused",
            reason: Some(&reason),
            ip: Some(ip),
            ..Default::default()
        },
    )
    .await;
    gw.chrome.error_page(
        StatusCode::FORBIDDEN,
        "Sign in again",
        "Your account changed while you were signing in, so this sign-in was stopped.",
        &format!(
            "Start again at {}. If it keeps failing, ask your administrator.",
            first_native_path(gw)
        ),
        &random_id(9),
    )
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
        Method::POST if !origin_ok(gw, req.headers()) => cross_site(gw),
        Method::POST => submit_login(gw, req, conn, path).await,
        _ => pages::json_error(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            "Use GET or POST.",
        ),
    }
}

/// The password form, with a fresh pre-login cookie and the CSRF token bound to it; through an
/// enrollment link (`?invite=`), the form bound to that invitation.
pub(crate) async fn show_login(
    gw: &Gateway,
    req: &Request<Incoming>,
    path: &str,
) -> Response<GatewayBody> {
    let rd = query_param(req.uri().query(), "rd")
        .and_then(|r| LocalPath::parse(&r))
        .unwrap_or_else(LocalPath::root);
    let Some(token) = query_param(req.uri().query(), "invite") else {
        return login_form_response(gw, StatusCode::OK, path, &rd, "", None, None);
    };
    let Some(acc) = accounts(gw) else {
        return invalid_link_page(gw);
    };
    let now = gw.clock.now();
    let invite = match acc
        .users
        .find_invite(&login::invite_hash(&token), now)
        .await
    {
        Ok(Some(i)) => i,
        Ok(None) => return invalid_link_page(gw),
        Err(e) => return store_error(gw, e),
    };
    match acc.users.get_user(&invite.username).await {
        Ok(Some(u)) if !u.disabled => {
            let choose = u.password_hash.is_none();
            login_form_response(
                gw,
                StatusCode::OK,
                path,
                &rd,
                &u.username,
                None,
                Some((&token, choose)),
            )
        }
        Ok(_) => invalid_link_page(gw),
        Err(e) => store_error(gw, e),
    }
}

pub(crate) fn login_form_response(
    gw: &Gateway,
    status: StatusCode,
    path: &str,
    rd: &LocalPath,
    username: &str,
    error: Option<&str>,
    invite: Option<(&str, bool)>,
) -> Response<GatewayBody> {
    let nonce = random_id(32);
    let csrf = csrf_for(gw, &nonce);
    let mut r = views::login_form(
        &gw.chrome,
        status,
        &LoginForm {
            action: path,
            csrf: &csrf,
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

pub(crate) async fn audit_failure(
    gw: &Gateway,
    user: &str,
    outcome: &str,
    reason: &str,
    ip: IpAddr,
) {
    audit::record(
        gw,
        Event {
            kind: "login.failure",
            user: Some(user),
            method: Some("native"),
            outcome,
            reason: Some(reason),
            ip: Some(ip),
            ..Default::default()
        },
    )
    .await;
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
            "refused",
            if csrf_ok { "csrf_reused" } else { "csrf" },
            ip,
        )
        .await;
        return forbidden_form(gw);
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
                        StatusCode::BAD_REQUEST,
                        path,
                        &rd,
                        typed,
                        Some(why),
                        Some((token, true)),
                    )
                }
                Ok(ChosenPassword::InvalidLink) => return invalid_link_page(gw),
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
                    audit_failure(gw, typed, "refused", "locked", ip).await;
                    // The page names a reference that matches this log line, for the helpdesk.
                    let correlation = random_id(9);
                    tracing::info!(correlation = %correlation, ip = %ip, "sign-in refused: locked");
                    let msg = format!("{LOCKED} Reference: {correlation}");
                    return login_form_response(
                        gw,
                        StatusCode::TOO_MANY_REQUESTS,
                        path,
                        &rd,
                        typed,
                        Some(&msg),
                        invite.as_deref().map(|t| (t, false)),
                    );
                }
                Ok(PasswordCheck::Refused { locked_now }) => {
                    let reason = if crate::accounts::normalise_user(typed).is_none() {
                        "bad_username"
                    } else {
                        "bad_credentials"
                    };
                    audit_failure(gw, typed, "failure", reason, ip).await;
                    if locked_now {
                        audit::record(
                            gw,
                            Event {
                                kind: "lockout",
                                user: Some(typed),
                                method: Some("native"),
                                outcome: "locked",
                                ip: Some(ip),
                                ..Default::default()
                            },
                        )
                        .await;
                    }
                    return login_form_response(
                        gw,
                        StatusCode::UNAUTHORIZED,
                        path,
                        &rd,
                        typed,
                        Some(BAD_CREDENTIALS),
                        invite.as_deref().map(|t| (t, false)),
                    );
                }
                Ok(PasswordCheck::Busy) => return busy(gw),
                Err(e) => return store_error(gw, e),
            }
        }
    };

    let roles = configured_roles(&gw.config, &user);
    if roles.is_empty() {
        audit_failure(gw, &user.username, "refused", "no_role", ip).await;
        return gw.chrome.error_page(
            StatusCode::FORBIDDEN,
            "No access",
            "Your account is valid but has no role that gives access to this site.",
            "Ask an administrator to give your account a role.",
            &random_id(9),
        );
    }
    let policy = effective_policy(&gw.config, &roles);
    let pending = PendingLogin {
        stage: Stage::Challenge,
        user: user.username.clone(),
        principal: native_principal(&user.username),
        email: user.email.clone(),
        groups: Vec::new(),
        roles,
        method: LoginMethod::Native,
        csrf: random_id(24),
        rd: rd.as_str().to_owned(),
        remember_secs: policy.remember_mfa.as_secs(),
        created_at: now,
        sso: None,
    };
    audit::record(
        gw,
        Event {
            kind: "login.password",
            user: Some(&user.username),
            method: Some("native"),
            outcome: "success",
            ip: Some(ip),
            ..Default::default()
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
