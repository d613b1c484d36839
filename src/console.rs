//! `/_portcullis/admin`: the admin console in the browser (DESIGN.md §12). The gate lives here:
//! the console is off (404) while `[admin] console_roles` is empty; otherwise a request needs a
//! session (else the login), a console role (else 403) and a second factor at most
//! `console_fresh_mfa` old (else a step-up form asking the gateway's own factor again). Every
//! POST passes that same gate again, then the `Origin` check and a CSRF token bound to the
//! session, before `actions` runs the same `manage` function the admin API runs.

mod actions;
mod paging;
mod view;

use view::Cx;

use crate::audit::{self, Event};
use crate::auth::native::{self as login, Allowed, CodeCheck, Typing};
use crate::auth::policy::LocalPath;
use crate::config::{LoginTarget, MfaMethod};
use crate::http::{form_value, origin_ok, read_body, respond, store_error, Conn};
use crate::login::error::{page as login_page, LoginError};
use crate::pages;
use crate::pages::Msg;
use crate::proxy::forward::GatewayBody;
use crate::secret::ct_eq;
use crate::server::phases::load_session;
use crate::session::{MfaUsed, Session, SessionStore};
use crate::state::Gateway;
use crate::storage::StoreError;
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use std::net::IpAddr;
use std::sync::Arc;

fn csrf(gw: &Gateway, s: &Session) -> String {
    gw.session_csrf("console", s)
}

/// Where a step-up's proof lives: the time the factor was typed, for this session only.
fn stepped_up_key(s: &Session) -> String {
    format!("console-mfa:{}", s.id.as_str())
}

fn window_secs(gw: &Gateway) -> i64 {
    i64::try_from(gw.config.console.fresh_mfa.as_secs()).unwrap_or(i64::MAX)
}

/// Whether the session's second factor is fresh enough. The session records no factor time of
/// its own: it is made when the login's last factor is verified (a new id at every privilege
/// change), so its creation is that time, for a session that had a factor at all (a remembered
/// device or no factor never counts). A later step-up on the console records its own time.
async fn fresh(gw: &Gateway, s: &Session) -> Result<bool, StoreError> {
    let now = gw.clock.now();
    let window = window_secs(gw);
    let factor = matches!(
        s.identity.mfa,
        MfaUsed::Totp | MfaUsed::Email | MfaUsed::RecoveryCode | MfaUsed::Idp | MfaUsed::Webauthn
    );
    if factor && now >= s.created_at && now.saturating_sub(s.created_at) <= window {
        return Ok(true);
    }
    let Some(v) = gw.store.get_ephemeral(&stepped_up_key(s)).await? else {
        return Ok(false);
    };
    let at = std::str::from_utf8(&v)
        .ok()
        .and_then(|t| t.parse::<i64>().ok());
    Ok(at.is_some_and(|at| now >= at && now.saturating_sub(at) <= window))
}

/// Records a refusal of the console (who, why), so every decision is in the audit log.
async fn refused(gw: &Gateway, s: &Session, ip: IpAddr, why: &str) {
    audit::record(
        gw,
        Event {
            user: Some(&s.identity.user),
            method: Some("console"),
            reason: Some(why),
            ip: Some(ip),
            session: Some(s.id.as_str()),
            ..Event::new(audit::Kind::ConsoleRefused, audit::Outcome::Refused)
        },
    )
    .await;
}

fn console_path(gw: &Gateway) -> LocalPath {
    LocalPath::parse(&format!("{}/admin", gw.config.server.prefix)).unwrap_or_else(LocalPath::root)
}

/// The sign-in that comes back to the console.
fn login_url(gw: &Gateway) -> String {
    let target = gw
        .config
        .server
        .default_login
        .clone()
        .unwrap_or(LoginTarget::Native);
    gw.login_url(&target, &console_path(gw))
}

/// Entry for `/admin` (`action` empty) and its form targets `/admin/{action}`.
pub async fn entry(
    gw: &Arc<Gateway>,
    req: Request<Incoming>,
    conn: Conn,
    action: &str,
) -> Response<GatewayBody> {
    // Off unless configured: nothing about the console is visible then.
    if gw.config.console.roles.is_empty() {
        return gw.chrome.error_page(
            StatusCode::NOT_FOUND,
            gw.chrome.t(Msg::PageNotFound),
            gw.chrome.t(Msg::NoPageHere),
            gw.chrome.t(Msg::CheckAddress),
            &crate::session::random_id(9),
        );
    }
    let s = match load_session(gw, &req).await {
        Ok(Some(s)) => s,
        Ok(None) => return pages::redirect(&login_url(gw)),
        Err(e) => return respond(gw, e, true),
    };
    let ip = conn.peer.ip();
    let query = req.uri().query().map(str::to_owned);
    let allowed = s
        .identity
        .roles
        .iter()
        .any(|r| gw.config.console.roles.contains(r));
    if !allowed {
        refused(gw, &s, ip, "no console role").await;
        return gw.chrome.error_page(
            StatusCode::FORBIDDEN,
            gw.chrome.t(Msg::ConNotAllowed),
            gw.chrome.t(Msg::ConNoRole),
            gw.chrome.t(Msg::ConAskRole),
            &crate::session::random_id(9),
        );
    }
    let form = if *req.method() == Method::POST {
        if !origin_ok(gw, req.headers()) {
            refused(gw, &s, ip, "cross-site form").await;
            return login_page(gw, LoginError::CrossSite);
        }
        let body = match read_body(gw, req.into_body()).await {
            Ok(b) => b,
            Err(r) => return r,
        };
        let form = String::from_utf8_lossy(&body).into_owned();
        let token = form_value(&form, "csrf_token").unwrap_or_default();
        if !ct_eq(token.as_bytes(), csrf(gw, &s).as_bytes()) {
            refused(gw, &s, ip, "csrf").await;
            return login_page(gw, LoginError::FormExpired);
        }
        Some(form)
    } else {
        None
    };
    if let (Some(form), "verify") = (form.as_deref(), action) {
        return step_up(gw, &s, form, ip).await;
    }
    match fresh(gw, &s).await {
        Ok(true) => {}
        Ok(false) => {
            refused(gw, &s, ip, "stale second factor").await;
            return step_up_page(gw, &s, None).await;
        }
        Err(e) => return store_error(gw, e),
    }
    let token = csrf(gw, &s);
    let cx = Cx {
        gw,
        s: &s,
        ip,
        token: &token,
    };
    match form {
        None => view::console(&cx, query.as_deref(), None).await,
        Some(form) => actions::run(&cx, action, &form).await,
    }
}

/// Whether the principal has a factor of the gateway's own to type again (an authenticator app
/// or recovery codes). A principal whose only factors are passkeys signs in again instead: that
/// sign-in's passkey is the fresh factor.
async fn has_gateway_factor(gw: &Gateway, s: &Session) -> Result<bool, StoreError> {
    match &gw.accounts {
        Some(acc) => login::has_code_factor(acc, &s.identity.principal, gw.clock.now()).await,
        None => Ok(false),
    }
}

/// The step-up: a form for the gateway's own factor (TOTP or a recovery code, under the
/// login's lockout), or, for a principal without one (an SSO user), a new sign-in, whose new
/// session carries the IdP's fresh factor.
async fn step_up_page(gw: &Gateway, s: &Session, error: Option<&str>) -> Response<GatewayBody> {
    let has = match has_gateway_factor(gw, s).await {
        Ok(b) => b,
        Err(e) => return store_error(gw, e),
    };
    let login = (!has).then(|| login_url(gw));
    view::step_up(gw, &csrf(gw, s), login.as_deref(), error)
}

/// `POST /admin/verify`: checks the typed code as the account page does; a verified one
/// records the time for this session, for `console_fresh_mfa`.
async fn step_up(gw: &Gateway, s: &Session, form: &str, ip: IpAddr) -> Response<GatewayBody> {
    let Some(acc) = gw.accounts.as_ref() else {
        return step_up_page(gw, s, None).await;
    };
    let now = gw.clock.now();
    let code = form_value(form, "code").unwrap_or_default();
    let allowed = Allowed {
        totp: gw.config.mfa.allows(MfaMethod::Totp),
        email: false,
        recovery: gw.config.mfa.allows(MfaMethod::RecoveryCode),
        webauthn: false,
    };
    let typing = Typing {
        code: &code,
        now,
        ip,
    };
    let checked = login::check_code(
        acc,
        &gw.store,
        &s.identity.principal,
        &s.identity.user,
        None,
        &allowed,
        typing,
    )
    .await;
    let checked = match checked {
        Ok(c) => c,
        Err(e) => return store_error(gw, e),
    };
    let (kind, outcome, method, reason) = match &checked {
        CodeCheck::Verified(v, _) => (
            audit::Kind::MfaSuccess,
            audit::Outcome::Success,
            v.used().as_str(),
            "console".to_owned(),
        ),
        CodeCheck::Refused { error, .. } => (
            audit::Kind::MfaFailure,
            audit::Outcome::Failure,
            "code",
            error.to_string(),
        ),
        CodeCheck::Locked => (
            audit::Kind::MfaFailure,
            audit::Outcome::Refused,
            "code",
            "locked".to_owned(),
        ),
    };
    audit::record(
        gw,
        Event {
            user: Some(&s.identity.user),
            method: Some(method),
            reason: Some(&reason),
            ip: Some(ip),
            session: Some(s.id.as_str()),
            ..Event::new(kind, outcome)
        },
    )
    .await;
    match checked {
        CodeCheck::Verified(..) => {
            let mark = now.to_string().into_bytes();
            let ttl = gw.config.console.fresh_mfa;
            if let Err(e) = gw.store.put_ephemeral(&stepped_up_key(s), mark, ttl).await {
                return store_error(gw, e);
            }
            pages::redirect(&format!(
                "{}{}",
                gw.config.server.public_origin,
                console_path(gw).as_str()
            ))
        }
        CodeCheck::Locked
        | CodeCheck::Refused {
            locked_now: true, ..
        } => step_up_page(gw, s, Some(gw.chrome.t(Msg::ConLocked))).await,
        CodeCheck::Refused { .. } => {
            step_up_page(gw, s, Some(gw.chrome.t(Msg::AccWrongCode))).await
        }
    }
}
