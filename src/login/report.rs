//! The "this was not me" link of a notice (DESIGN.md §12): `GET {prefix}/not-me?t=…` shows
//! what confirming does; `POST` (Origin check, CSRF bound to a cookie set by the GET) ends
//! every session, pending login and remembered device of the principal, forgets its known
//! devices, audits `account.reported` and mails `[notify] admins`.
//! Invariants: nothing happens before the link's MAC and expiry are checked; the link works
//! once, across replicas (`claim_once` in the session store: of two concurrent uses one wins).

use super::error::{page, LoginError};
use crate::alerts;
use crate::audit::{self, Event};
use crate::auth::native::revoke_pending;
use crate::http::{client_ip, form_value, origin_ok, query_param, read_body, set_cookie, Conn};
use crate::metrics::MailKind;
use crate::notify::link::{self, LinkError, Report};
use crate::notify::mail;
use crate::pages::{esc, Msg};
use crate::proxy::forward::GatewayBody;
use crate::secret::ct_eq;
use crate::session::{cookie, random_id, SessionStore};
use crate::state::Gateway;
use crate::storage::{StoreError, UserStore};
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine as _;
use hyper::body::Incoming;
use hyper::{Method, Request, Response};
use std::net::IpAddr;
use std::sync::Arc;

/// How long the confirm form stays usable after the GET.
const FORM_TTL_SECS: u64 = 3600;

fn csrf(gw: &Gateway, nonce: &str) -> String {
    let tag = ring::hmac::sign(&gw.csrf_key, format!("report:{nonce}").as_bytes());
    B64.encode(tag.as_ref().get(..24).unwrap_or_default())
}

fn claim_key(r: &Report) -> String {
    format!("report-used:{}", r.nonce)
}

/// `GET|POST {prefix}/not-me`.
pub async fn entry(gw: &Arc<Gateway>, req: Request<Incoming>, conn: Conn) -> Response<GatewayBody> {
    if gw.accounts.is_none() {
        return page(gw, LoginError::NotFound);
    }
    let ip = client_ip(gw, req.headers(), conn);
    match *req.method() {
        Method::GET | Method::HEAD => {
            let t = query_param(req.uri().query(), "t").unwrap_or_default();
            match checked(gw, &t, ip).await {
                Ok(r) => confirm_page(gw, &t, &r),
                Err(e) => page(gw, e),
            }
        }
        Method::POST if !origin_ok(gw, req.headers()) => page(gw, LoginError::CrossSite),
        Method::POST => {
            let nonce = cookie::get(req.headers(), gw.cookies.report).map(str::to_owned);
            let body = match read_body(gw, req.into_body()).await {
                Ok(b) => b,
                Err(r) => return r,
            };
            let form = String::from_utf8_lossy(&body);
            let sent = form_value(&form, "csrf_token").unwrap_or_default();
            let csrf_ok = nonce.is_some_and(|n| ct_eq(csrf(gw, &n).as_bytes(), sent.as_bytes()));
            if !csrf_ok {
                return page(gw, LoginError::FormExpired);
            }
            let t = form_value(&form, "t").unwrap_or_default();
            let r = match checked(gw, &t, ip).await {
                Ok(r) => r,
                Err(e) => return page(gw, e),
            };
            match confirm(gw, &r, ip).await {
                Ok(r) => r,
                Err(e) => page(gw, e),
            }
        }
        _ => page(gw, LoginError::MethodNotAllowed),
    }
}

/// The link's MAC and expiry; a refusal is audited (nothing else happens).
async fn checked(gw: &Gateway, t: &str, ip: IpAddr) -> Result<Report, LoginError> {
    match link::verify(&gw.notifier.report_key, t, gw.clock.now()) {
        Ok(r) => Ok(r),
        Err(e) => {
            let reason = match e {
                LinkError::Invalid => "invalid",
                LinkError::Expired => "expired",
            };
            audit::record(
                gw,
                Event {
                    reason: Some(reason),
                    ip: Some(ip),
                    ..Event::new(audit::Kind::AccountReported, audit::Outcome::Refused)
                },
            )
            .await;
            Err(match e {
                LinkError::Invalid => LoginError::ReportInvalid,
                LinkError::Expired => LoginError::ReportExpired,
            })
        }
    }
}

fn confirm_page(gw: &Gateway, t: &str, r: &Report) -> Response<GatewayBody> {
    let nonce = random_id(18);
    let c = &gw.chrome;
    // The text is escaped before the name goes in, so only the name's own markup is ours.
    let explain = esc(c.t(Msg::ReportExplain))
        .replace("{user}", &format!("<strong>{}</strong>", esc(&r.user)));
    let body = format!(
        "<h1>{question}</h1><p>{explain}</p>\
<form method=\"post\" action=\"{prefix}/not-me\">\
<input type=\"hidden\" name=\"t\" value=\"{t}\">\
<input type=\"hidden\" name=\"csrf_token\" value=\"{csrf}\">\
<button type=\"submit\" id=\"report-confirm\">{confirm}</button></form>\
<p class=\"muted\">{if_you}</p>",
        question = esc(c.t(Msg::ReportQuestion)),
        confirm = esc(c.t(Msg::ReportConfirm)),
        if_you = esc(c.t(Msg::ReportIfYou)),
        prefix = esc(&gw.config.server.prefix),
        t = esc(t),
        csrf = esc(&csrf(gw, &nonce)),
    );
    let mut resp = c.page(super::error::ok_status(), c.t(Msg::ReportTitle), &body);
    set_cookie(
        &mut resp,
        &gw.cookies
            .set(gw.cookies.report, &nonce, Some(FORM_TTL_SECS)),
    );
    resp
}

/// Claims the link once, then ends everything the principal has running.
async fn confirm(
    gw: &Gateway,
    r: &Report,
    ip: IpAddr,
) -> Result<Response<GatewayBody>, LoginError> {
    // The claim comes first: of two concurrent confirmations exactly one goes on. It lives as
    // long as the link could, so the link never works again.
    let ttl = gw.config.notify.report_ttl;
    if !gw.store.claim_once(&claim_key(r), ttl).await? {
        audit::record(
            gw,
            Event {
                user: Some(&r.user),
                reason: Some("used"),
                ip: Some(ip),
                ..Event::new(audit::Kind::AccountReported, audit::Outcome::Refused)
            },
        )
        .await;
        return Err(LoginError::ReportUsed);
    }
    let (ended, devices) = match end_everything(gw, &r.principal).await {
        Ok(x) => x,
        Err(e) => {
            // Nothing may be left half-done behind a used link: the claim is given back, so
            // the person can confirm again once the store answers (the error page says 503).
            let _ = gw.store.delete_ephemeral(&claim_key(r)).await;
            return Err(e.into());
        }
    };
    audit::record(
        gw,
        Event {
            user: Some(&r.user),
            ip: Some(ip),
            detail: Some(
                serde_json::json!({
                    "principal": r.principal,
                    "sessions_ended": ended,
                    "devices_forgotten": devices,
                })
                .to_string(),
            ),
            ..Event::new(audit::Kind::AccountReported, audit::Outcome::Success)
        },
    )
    .await;
    let m = mail::reported(
        &gw.config.mfa.issuer,
        &r.user,
        &r.principal,
        gw.clock.now(),
        ended,
    );
    alerts::to_admins(gw, MailKind::Reported, m);
    let c = &gw.chrome;
    let title = c.t(Msg::ReportDoneTitle);
    let body = format!(
        "<h1>{}</h1><div class=\"notice\" role=\"status\" id=\"report-done\">{}</div>",
        esc(title),
        esc(c.t(Msg::ReportDoneWhat)),
    );
    let mut resp = c.page(super::error::ok_status(), title, &body);
    set_cookie(&mut resp, &gw.cookies.clear(gw.cookies.report));
    Ok(resp)
}

/// Sessions, pending logins, remembered and known devices of `principal`; returns how many
/// sessions and remembered devices ended.
async fn end_everything(gw: &Gateway, principal: &str) -> Result<(usize, u64), StoreError> {
    let now = gw.clock.now();
    // Pending logins first: one past the password must not finish after the report.
    revoke_pending(&gw.store, principal, now, gw.config.session.pending_ttl).await?;
    let ended = gw.store.remove_principal(principal).await?.len();
    let mut devices = 0;
    if let Some(acc) = &gw.accounts {
        devices = acc.users.delete_devices(principal).await?;
        acc.users.forget_known_devices(principal).await?;
    }
    Ok((ended, devices))
}
