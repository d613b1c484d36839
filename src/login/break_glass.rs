//! The break-glass link (DESIGN.md §12): `GET {prefix}/break-glass?t=…` shows what the link is
//! for; its `POST` uses the link (once) and starts a pending login of the break-glass
//! principal (`break_glass:<user>`) at the gateway's own second factor: the TOTP challenge, or
//! enrollment when that principal has none. No password and no IdP: the link is the first
//! factor, the TOTP the second; `complete` caps the session at the window's end.
//! Invariants: the GET changes nothing (mail scanners and previews may open links); every
//! outcome is audited (`break_glass.link`) and mailed to `[notify] admins`.

use super::complete::save_pending;
use super::error::{accounts, page, LoginError};
use crate::alerts;
use crate::audit::{self, Event};
use crate::auth::break_glass::{self as bg, Armed};
use crate::auth::native as login;
use crate::auth::pending::{LoginMethod, PendingLogin, Stage};
use crate::http::{
    client_ip, form_value, origin_ok, query_param, read_body, set_cookie, store_error, Conn,
};
use crate::pages::{self, esc, Msg};
use crate::proxy::forward::GatewayBody;
use crate::session::random_id;
use crate::state::Gateway;
use hyper::body::Incoming;
use hyper::{Method, Request, Response};
use std::net::IpAddr;
use std::sync::Arc;

/// `GET|POST {prefix}/break-glass`.
pub async fn entry(gw: &Arc<Gateway>, req: Request<Incoming>, conn: Conn) -> Response<GatewayBody> {
    let Some(acc) = accounts(gw) else {
        return page(gw, LoginError::NotFound);
    };
    let ip = client_ip(gw, req.headers(), conn);
    match *req.method() {
        Method::GET | Method::HEAD => {
            let t = query_param(req.uri().query(), "t").unwrap_or_default();
            continue_page(gw, &t)
        }
        Method::POST if !origin_ok(gw, req.headers()) => page(gw, LoginError::CrossSite),
        Method::POST => {
            let body = match read_body(gw, req.into_body()).await {
                Ok(b) => b,
                Err(r) => return r,
            };
            let form = String::from_utf8_lossy(&body);
            let t = form_value(&form, "t").unwrap_or_default();
            let now = gw.clock.now();
            let armed = match bg::take_link(&gw.store, &t, now).await {
                Ok(Some(a)) => a,
                Ok(None) => return refused(gw, ip).await,
                Err(e) => return store_error(gw, e),
            };
            let principal = bg::principal(&armed.user);
            let stage = match login::has_factor(acc, &principal, now).await {
                Ok(true) => Stage::Challenge,
                // The link stands for the invitation: enrolling right after it is the design.
                Ok(false) => match login::enroll_stage(acc, &principal, None) {
                    Ok(s) => s,
                    Err(e) => return store_error(gw, e),
                },
                Err(e) => return store_error(gw, e),
            };
            started(gw, &armed, stage, ip).await
        }
        _ => page(gw, LoginError::MethodNotAllowed),
    }
}

/// What the link is for, and a button that uses it (the token travels in the form).
fn continue_page(gw: &Gateway, t: &str) -> Response<GatewayBody> {
    let c = &gw.chrome;
    let body = format!(
        "<h1>{title}</h1><p>{intro}</p>\
<form method=\"post\" action=\"{prefix}/break-glass\">\
<input type=\"hidden\" name=\"t\" value=\"{t}\">\
<button type=\"submit\" id=\"break-glass-continue\">{go}</button></form>",
        title = esc(c.t(Msg::BreakGlassTitle)),
        intro = esc(c.t(Msg::BreakGlassIntro)),
        go = esc(c.t(Msg::Continue)),
        prefix = esc(&gw.config.server.prefix),
        t = esc(t),
    );
    c.page(super::error::ok_status(), c.t(Msg::BreakGlassTitle), &body)
}

async fn refused(gw: &Gateway, ip: IpAddr) -> Response<GatewayBody> {
    audit::record(
        gw,
        Event {
            method: Some("break_glass"),
            reason: Some("invalid_link"),
            ip: Some(ip),
            ..Event::new(audit::Kind::BreakGlassLink, audit::Outcome::Refused)
        },
    )
    .await;
    alerts::break_glass(
        gw,
        "link refused",
        &format!("An unknown, used or withdrawn link was tried from {ip}."),
    );
    page(gw, LoginError::BreakGlassInvalid)
}

/// The pending login of the break-glass principal, under a new cookie; on to its factor.
async fn started(gw: &Gateway, a: &Armed, stage: Stage, ip: IpAddr) -> Response<GatewayBody> {
    let next = match stage {
        Stage::Challenge => "/mfa",
        Stage::Enroll { .. } => "/mfa/enroll",
    };
    let pending = PendingLogin {
        stage,
        user: a.user.clone(),
        principal: bg::principal(&a.user),
        // No address: the user's mail may be what the IdP outage took away; admins are told.
        email: None,
        groups: Vec::new(),
        roles: a.roles.clone(),
        method: LoginMethod::BreakGlass,
        csrf: random_id(24),
        rd: "/".to_owned(),
        remember_secs: 0,
        created_at: gw.clock.now(),
        sso: None,
        known_device: None,
        passkeys: false,
    };
    let cookie = match save_pending(gw, &pending).await {
        Ok(c) => c,
        Err(e) => return store_error(gw, e),
    };
    audit::record(
        gw,
        Event {
            user: Some(&a.user),
            method: Some("break_glass"),
            reason: Some(next.trim_start_matches('/')),
            ip: Some(ip),
            ..Event::new(audit::Kind::BreakGlassLink, audit::Outcome::Success)
        },
    )
    .await;
    alerts::break_glass(
        gw,
        &format!("link used by {}", a.user),
        &format!(
            "The link of {} was opened from {ip}; the second factor is next ({}).",
            a.user,
            if next == "/mfa" {
                "TOTP"
            } else {
                "TOTP enrollment"
            }
        ),
    );
    let mut r = pages::redirect(&format!(
        "{}{}{next}",
        gw.config.server.public_origin, gw.config.server.prefix
    ));
    set_cookie(&mut r, &cookie);
    r
}
