//! `/_portcullis/account`: a signed-in user's own sessions (end the others), second factors
//! (a new authenticator or new recovery codes) and remembered devices (forget them). Acting on
//! other sessions or on factors needs a fresh second factor (DESIGN.md §6), so a stolen cookie
//! can neither evict its owner nor take over the account. Every form carries a CSRF token bound
//! to the session and is refused when its `Origin` is another site's. "Your sessions" are the
//! principal's, never everyone's who shares the display name.

use super::account_passkeys::{self as passkeys, Outcome};
use super::display::{agent_html, code_field, hidden, time_html};
use super::error::{form_status, page as login_page, LoginError};
use super::views;
use crate::audit::{self, Event};
use crate::auth::native::{self as login, Allowed, CodeCheck, Typing};
use crate::auth::policy::LocalPath;
use crate::config::{LoginTarget, MfaMethod};
use crate::http::{form_value, origin_ok, read_body, respond, store_error, Conn, GatewayError};
use crate::mfa::{qr, totp};
use crate::pages::{self, esc, Msg};
use crate::proxy::forward::GatewayBody;
use crate::secret::{ct_eq, TotpSeed};
use crate::server::endpoint::AccountStep;
use crate::server::phases::load_session;
use crate::session::{AuthMethod, Session, SessionId, SessionStore};
use crate::state::Gateway;
use crate::storage::UserStore;
use hyper::body::Incoming;
use hyper::{Method, Request, Response};
use std::sync::Arc;

fn csrf(gw: &Gateway, s: &Session) -> String {
    gw.session_csrf("account", s)
}

fn reenroll_key(s: &Session) -> String {
    format!("reenroll:{}", s.id.as_str())
}

/// Entry for `/account` and its form targets.
pub async fn entry(
    gw: &Arc<Gateway>,
    req: Request<Incoming>,
    conn: Conn,
    step: AccountStep,
) -> Response<GatewayBody> {
    let session = match load_session(gw, &req).await {
        Ok(Some(s)) => s,
        Ok(None) => {
            let rd = LocalPath::parse(&format!("{}/account", gw.config.server.prefix))
                .unwrap_or_else(LocalPath::root);
            return match gw.config.server.default_login.as_ref() {
                Some(t) => pages::redirect(&gw.login_url(t, &rd)),
                None => pages::redirect(&gw.login_url(&LoginTarget::Native, &rd)),
            };
        }
        Err(e) => return respond(gw, e, true),
    };
    if *req.method() == Method::GET && step == AccountStep::Page {
        return page(gw, &session, None, None).await;
    }
    if *req.method() != Method::POST {
        return login_page(gw, LoginError::MethodNotAllowed);
    }
    if !origin_ok(gw, req.headers()) {
        return login_page(gw, LoginError::CrossSite);
    }
    let body = match read_body(gw, req.into_body()).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    let form = String::from_utf8_lossy(&body).into_owned();
    let token = form_value(&form, "csrf_token").unwrap_or_default();
    if !ct_eq(token.as_bytes(), csrf(gw, &session).as_bytes()) {
        return login_page(gw, LoginError::FormExpired);
    }
    let ip = conn.peer.ip();
    match step {
        AccountStep::SessionsEnd => end_sessions(gw, &session, &form, ip).await,
        AccountStep::DevicesForget => forget_devices(gw, &session, &form).await,
        AccountStep::RecoveryCodes => new_recovery_codes(gw, &session, &form, ip).await,
        AccountStep::Totp => start_reenroll(gw, &session, &form, ip).await,
        AccountStep::TotpConfirm => confirm_reenroll(gw, &session, &form, ip).await,
        AccountStep::PasskeyOptions => passkeys::options(gw, &session).await,
        AccountStep::PasskeyAdd => match check_factor_change(gw, &session, &form, ip).await {
            Some(refused) => refused,
            None => outcome(gw, &session, passkeys::add(gw, &session, &form, ip).await).await,
        },
        AccountStep::PasskeyRename => {
            outcome(gw, &session, passkeys::rename(gw, &session, &form).await).await
        }
        AccountStep::PasskeyRemove => match check_factor_change(gw, &session, &form, ip).await {
            Some(refused) => refused,
            None => {
                outcome(
                    gw,
                    &session,
                    passkeys::remove(gw, &session, &form, ip).await,
                )
                .await
            }
        },
        AccountStep::Page => login_page(gw, LoginError::MethodNotAllowed),
    }
}

/// The account page after a passkey action.
async fn outcome(gw: &Gateway, s: &Session, o: Outcome) -> Response<GatewayBody> {
    match o {
        Outcome::Notice(n) => page(gw, s, None, Some(gw.chrome.t(n))).await,
        Outcome::Refused(e) => page(gw, s, Some(gw.chrome.t(e)), None).await,
        Outcome::Answer(r) => r,
    }
}

fn is_native(s: &Session) -> bool {
    s.identity.method == AuthMethod::Native
}

async fn page(
    gw: &Gateway,
    s: &Session,
    error: Option<&str>,
    notice: Option<&str>,
) -> Response<GatewayBody> {
    let token = csrf(gw, s);
    let p = esc(&gw.config.server.prefix);
    let c = &gw.chrome;
    let t = |m: Msg| esc(c.t(m));
    let mut body = format!("<h1>{}</h1>", t(Msg::YourAccount));
    if let Some(n) = notice {
        body.push_str(&format!(
            "<div class=\"notice\" role=\"status\">{}</div>",
            esc(n)
        ));
    }
    if let Some(e) = error {
        body.push_str(&format!(
            "<div class=\"error\" role=\"alert\" id=\"form-error\">{}</div>",
            esc(e)
        ));
    }
    // The template is escaped first, then the (escaped) values go in its placeholders.
    body.push_str(&format!(
        "<p>{}</p>",
        t(Msg::AccSignedInAs)
            .replace(
                "{user}",
                &format!("<strong>{}</strong>", esc(&s.identity.user))
            )
            .replace("{method}", &esc(&s.identity.method.header_value()))
    ));

    // Sessions.
    let sessions = match gw.store.list(Some(&s.identity.principal), None, 200).await {
        Ok(v) => v,
        Err(e) => return store_error(gw, e),
    };
    let now = gw.clock.now();
    body.push_str(&format!(
        "<h2>{}</h2><table id=\"sessions\"><thead><tr><th scope=\"col\">{}</th><th scope=\"col\">{}</th><th scope=\"col\">{}</th><th scope=\"col\"><span class=\"muted\">{}</span></th></tr></thead><tbody>",
        t(Msg::AccWhereSignedIn),
        t(Msg::AccDevice),
        t(Msg::AccAddress),
        t(Msg::AccSignedInCol),
        t(Msg::AccAction),
    ));
    for other in &sessions {
        let action = if other.id == s.id {
            format!("<em>{}</em>", t(Msg::AccThisDevice))
        } else {
            format!(
                "<form method=\"post\" action=\"{p}/account/sessions/end\">{}<input type=\"hidden\" name=\"id\" value=\"{}\">{}<button type=\"submit\" class=\"secondary\">{}</button></form>",
                hidden(&token),
                esc(other.id.as_str()),
                fresh_field(gw, s, &format!("code-{}", other.id.as_str())).await,
                t(Msg::AccEnd),
            )
        };
        body.push_str(&format!(
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{action}</td></tr>",
            agent_html(other.user_agent.as_deref()),
            esc(other.ip.as_deref().unwrap_or("-")),
            time_html(now, other.created_at),
        ));
    }
    body.push_str("</tbody></table>");
    if sessions.len() > 1 {
        body.push_str(&format!(
            "<form method=\"post\" action=\"{p}/account/sessions/end\">{}<input type=\"hidden\" name=\"id\" value=\"others\">{}<button type=\"submit\">{}</button></form>",
            hidden(&token),
            fresh_field(gw, s, "code-end").await,
            t(Msg::AccSignOutElsewhere),
        ));
    }

    // Second factors and devices: the gateway's own, for native accounts.
    if let (true, Some(acc)) = (is_native(s), gw.accounts.as_ref()) {
        let principal = s.identity.principal.clone();
        let now = gw.clock.now();
        let has_totp = matches!(acc.users.get_totp(&principal).await, Ok(Some(f)) if f.confirmed);
        let left = acc
            .users
            .count_recovery_codes(&principal, now)
            .await
            .unwrap_or(0);
        body.push_str(&format!(
            "<h2>{h}</h2><p>{app} <strong>{}</strong>. {left_label} <strong id=\"codes-left\">{left}</strong>.</p>\
<p class=\"muted\">{why}</p>\
<form method=\"post\" action=\"{p}/account/totp\">{tok}<label for=\"code-totp\">{code}</label>\
<input id=\"code-totp\" name=\"code\" type=\"text\" autocomplete=\"one-time-code\" autocapitalize=\"none\" spellcheck=\"false\" required>\
<button type=\"submit\" class=\"secondary\">{new_app}</button></form>",
            t(if has_totp { Msg::AccSetUp } else { Msg::AccNotSetUp }),
            h = t(Msg::TwoStep),
            app = t(Msg::AccAuthApp),
            left_label = t(Msg::AccCodesLeft),
            why = t(Msg::AccConfirmToChange),
            code = t(Msg::AccCurrentCode),
            new_app = t(Msg::AccNewApp),
            tok = hidden(&token),
        ));
        if gw.config.mfa.allows(MfaMethod::RecoveryCode) {
            body.push_str(&format!(
                "<form method=\"post\" action=\"{p}/account/recovery-codes\">{}<label for=\"code-rc\">{}</label>\
<input id=\"code-rc\" name=\"code\" type=\"text\" autocomplete=\"one-time-code\" autocapitalize=\"none\" spellcheck=\"false\" required>\
<button type=\"submit\" class=\"secondary\">{}</button></form>",
                hidden(&token),
                t(Msg::AccCurrentCode),
                t(Msg::AccNewCodes),
            ));
        }
        let code = has_gateway_factor(gw, s).await;
        body.push_str(&passkeys::section(gw, s, acc, &token, code).await);
        let devices = acc
            .users
            .list_devices(&principal, now)
            .await
            .unwrap_or_default();
        body.push_str(&format!("<h2>{}</h2>", t(Msg::AccRememberedDevices)));
        if devices.is_empty() {
            body.push_str(&format!("<p id=\"devices\">{}</p>", t(Msg::AccNoDevice)));
        } else {
            body.push_str("<ul id=\"devices\">");
            for d in &devices {
                body.push_str(&format!(
                    "<li>{} — {until} {} <form method=\"post\" action=\"{p}/account/devices/forget\">{}<input type=\"hidden\" name=\"id\" value=\"{}\"><button type=\"submit\" class=\"secondary\">{forget}</button></form></li>",
                    agent_html(d.user_agent.as_deref()),
                    time_html(now, d.expires_at),
                    hidden(&token),
                    esc(&d.id),
                    until = t(Msg::AccUntil),
                    forget = t(Msg::AccForget),
                ));
            }
            body.push_str(&format!(
                "</ul><form method=\"post\" action=\"{p}/account/devices/forget\">{}<input type=\"hidden\" name=\"id\" value=\"all\"><button type=\"submit\">{}</button></form>",
                hidden(&token),
                t(Msg::AccForgetAll),
            ));
        }
    }
    body.push_str(&super::entry::logout_form(gw, &s.id, c.t(Msg::SignOut)));
    pages::html_response(
        form_status(error.is_some()),
        c.layout(c.t(Msg::YourAccount), &body, true),
    )
}

async fn end_sessions(
    gw: &Gateway,
    s: &Session,
    form: &str,
    ip: std::net::IpAddr,
) -> Response<GatewayBody> {
    // DESIGN.md §6: ending other sessions needs a fresh factor, or a stolen cookie could evict
    // its owner and stay.
    if let Some(refused) = check_fresh(gw, s, form, ip).await {
        return refused;
    }
    let target = form_value(form, "id").unwrap_or_default();
    let mine = match gw.store.list(Some(&s.identity.principal), None, 1000).await {
        Ok(v) => v,
        Err(e) => return store_error(gw, e),
    };
    let mut ended = 0;
    for other in mine.iter().filter(|o| o.id != s.id) {
        // Only the user's own sessions can be ended from here, never the current one.
        if target == "others" || SessionId::parse(&target).as_ref() == Some(&other.id) {
            if let Err(e) = gw.store.remove(&other.id).await {
                return store_error(gw, e);
            }
            ended += 1;
        }
    }
    audit::record(
        gw,
        Event {
            user: Some(&s.identity.user),
            method: Some("account"),
            ip: Some(ip),
            session: Some(s.id.as_str()),
            detail: Some(format!("{{\"ended\":{ended}}}")),
            ..Event::new(audit::Kind::SessionTerminated, audit::Outcome::Success)
        },
    )
    .await;
    let msg = if ended == 1 {
        gw.chrome.t(Msg::AccEndedOne).to_owned()
    } else {
        gw.chrome.fill(Msg::AccEndedMany, "n", &ended.to_string())
    };
    page(gw, s, None, Some(&msg)).await
}

async fn forget_devices(gw: &Gateway, s: &Session, form: &str) -> Response<GatewayBody> {
    let Some(acc) = gw.accounts.as_ref().filter(|_| is_native(s)) else {
        return page(gw, s, Some(gw.chrome.t(Msg::AccNothingToForget)), None).await;
    };
    let principal = &s.identity.principal;
    let id = form_value(form, "id").unwrap_or_default();
    let result = if id == "all" {
        acc.users.delete_devices(principal).await.map(|n| n > 0)
    } else {
        acc.users.delete_device(principal, &id).await
    };
    match result {
        Ok(_) => page(gw, s, None, Some(gw.chrome.t(Msg::AccDeviceForgotten))).await,
        Err(e) => store_error(gw, e),
    }
}

/// How long after sign-in an SSO session counts as freshly verified, for principals without a
/// gateway factor (their IdP checked the factor at sign-in; DESIGN.md §12 uses 15 minutes too).
const FRESH_SSO_SECS: i64 = 15 * 60;

/// Whether this session's principal has a code to prove a fresh factor with: an authenticator
/// app or recovery codes (else a recent sign-in stands for it: an SSO user whose IdP checked
/// the factor, or a passkey-only user whose passkey did). A store failure counts as yes, so
/// the form asks for a code and the check then fails closed.
async fn has_gateway_factor(gw: &Gateway, s: &Session) -> bool {
    match &gw.accounts {
        Some(acc) => login::has_code_factor(acc, &s.identity.principal, gw.clock.now())
            .await
            .unwrap_or(true),
        None => false,
    }
}

/// The field a fresh-factor form carries, or a note when a fresh SSO sign-in stands for it.
async fn fresh_field(gw: &Gateway, s: &Session, id: &str) -> String {
    if has_gateway_factor(gw, s).await {
        code_field(&gw.chrome, id)
    } else {
        String::new()
    }
}

/// A fresh second factor for an action on other sessions or on factors: a current TOTP code or
/// a recovery code (which it uses up), under the same lockout as the login. A principal without
/// any gateway factor (an SSO user whose IdP did the MFA) counts as fresh only within
/// `FRESH_SSO_SECS` of signing in. `None` means go on; otherwise the page to answer with.
async fn check_fresh(
    gw: &Gateway,
    s: &Session,
    form: &str,
    ip: std::net::IpAddr,
) -> Option<Response<GatewayBody>> {
    let now = gw.clock.now();
    let Some(acc) = gw.accounts.as_ref() else {
        return fresh_sso(gw, s, now).await;
    };
    let has_factor = match login::has_code_factor(acc, &s.identity.principal, now).await {
        Ok(b) => b,
        Err(e) => return Some(store_error(gw, e)),
    };
    if !has_factor {
        return fresh_sso(gw, s, now).await;
    }
    let code = form_value(form, "code").unwrap_or_default();
    let allowed = Allowed {
        totp: gw.config.mfa.allows(crate::config::MfaMethod::Totp),
        email: false,
        recovery: gw.config.mfa.allows(MfaMethod::RecoveryCode),
        webauthn: false,
    };
    let checked = login::check_code(
        acc,
        &gw.store,
        &s.identity.principal,
        &s.identity.user,
        None,
        &allowed,
        Typing {
            code: &code,
            now,
            ip,
        },
    )
    .await;
    let (outcome, method, reason) = match &checked {
        Ok(CodeCheck::Verified(v, _)) => (
            audit::Outcome::Success,
            v.used().as_str(),
            "account".to_owned(),
        ),
        Ok(CodeCheck::Refused { error, .. }) => {
            (audit::Outcome::Failure, "code", error.to_string())
        }
        Ok(CodeCheck::Locked) => (audit::Outcome::Refused, "code", "locked".to_owned()),
        Err(e) => return Some(store_error(gw, clone_store_error(e))),
    };
    audit::record(
        gw,
        Event {
            user: Some(&s.identity.user),
            method: Some(method),
            reason: Some(&reason),
            ip: Some(ip),
            session: Some(s.id.as_str()),
            ..Event::new(
                if outcome == audit::Outcome::Success {
                    audit::Kind::MfaSuccess
                } else {
                    audit::Kind::MfaFailure
                },
                outcome,
            )
        },
    )
    .await;
    match checked {
        Ok(CodeCheck::Verified(..)) => None,
        Ok(CodeCheck::Locked)
        | Ok(CodeCheck::Refused {
            locked_now: true, ..
        }) => Some(page(gw, s, Some(gw.chrome.t(Msg::AccLocked)), None).await),
        _ => Some(page(gw, s, Some(gw.chrome.t(Msg::AccWrongCode)), None).await),
    }
}

/// Factors are the gateway's own for native accounts only; then a fresh factor is needed.
async fn check_factor_change(
    gw: &Gateway,
    s: &Session,
    form: &str,
    ip: std::net::IpAddr,
) -> Option<Response<GatewayBody>> {
    if !is_native(s) || gw.accounts.is_none() {
        return Some(page(gw, s, Some(gw.chrome.t(Msg::AccFactorsElsewhere)), None).await);
    }
    check_fresh(gw, s, form, ip).await
}

fn clone_store_error(e: &crate::storage::StoreError) -> crate::storage::StoreError {
    crate::storage::StoreError::Unavailable(e.to_string())
}

/// An SSO session without a gateway factor: fresh while its sign-in is recent.
async fn fresh_sso(gw: &Gateway, s: &Session, now: i64) -> Option<Response<GatewayBody>> {
    if now.saturating_sub(s.created_at) <= FRESH_SSO_SECS {
        return None;
    }
    Some(page(gw, s, Some(gw.chrome.t(Msg::AccSignInAgainFirst)), None).await)
}

async fn new_recovery_codes(
    gw: &Gateway,
    s: &Session,
    form: &str,
    ip: std::net::IpAddr,
) -> Response<GatewayBody> {
    if let Some(refused) = check_factor_change(gw, s, form, ip).await {
        return refused;
    }
    let Some(acc) = &gw.accounts else {
        return respond(gw, GatewayError::NoLogin, true);
    };
    let now = gw.clock.now();
    match acc
        .issue_recovery_codes(
            &s.identity.principal,
            gw.config.mfa.recovery_count,
            gw.config.mfa.recovery_ttl,
            now,
        )
        .await
    {
        Ok(codes) => {
            audit::record(
                gw,
                Event {
                    user: Some(&s.identity.user),
                    method: Some("account"),
                    ip: Some(ip),
                    ..Event::new(audit::Kind::RecoveryCodesIssued, audit::Outcome::Success)
                },
            )
            .await;
            let codes: Vec<String> = codes.iter().map(|c| c.expose().to_owned()).collect();
            views::recovery_codes(
                &gw.chrome,
                &codes,
                &format!(
                    "{}{}/account",
                    gw.config.server.public_origin, gw.config.server.prefix
                ),
            )
        }
        Err(e) => store_error(gw, e),
    }
}

fn reenroll_page(
    gw: &Gateway,
    s: &Session,
    seed: TotpSeed,
    error: Option<&str>,
) -> Response<GatewayBody> {
    let Some(acc) = &gw.accounts else {
        return respond(gw, GatewayError::NoLogin, true);
    };
    let t = acc.totp_for(seed, &s.identity.user);
    let uri = t.otpauth_uri();
    let svg = qr::svg(&uri).unwrap_or_default();
    let secret = totp::group_secret(&t.secret_base32());
    let token = csrf(gw, s);
    let action = format!("{}/account/totp/confirm", gw.config.server.prefix);
    let view = views::Enrollment {
        action: &action,
        csrf: &token,
        uri: &uri,
        qr_svg: &svg,
        grouped_secret: &secret,
        error,
        totp: true,
        passkey: None,
    };
    views::enroll(&gw.chrome, form_status(error.is_some()), &view)
}

async fn start_reenroll(
    gw: &Gateway,
    s: &Session,
    form: &str,
    ip: std::net::IpAddr,
) -> Response<GatewayBody> {
    if let Some(refused) = check_factor_change(gw, s, form, ip).await {
        return refused;
    }
    let Some(acc) = &gw.accounts else {
        return respond(gw, GatewayError::NoLogin, true);
    };
    let seed = totp::generate_seed();
    let principal = s.identity.principal.clone();
    let sealed = match acc.seal_seed(&principal, &seed) {
        Ok(x) => x,
        Err(_) => {
            return respond(
                gw,
                GatewayError::Store(crate::storage::StoreError::Unavailable("seal".into())),
                true,
            )
        }
    };
    // The new seed waits in the session store until confirmed; the old one stays valid.
    if let Err(e) = gw
        .store
        .put_ephemeral(&reenroll_key(s), sealed, gw.config.session.pending_ttl)
        .await
    {
        return store_error(gw, e);
    }
    reenroll_page(gw, s, seed, None)
}

async fn confirm_reenroll(
    gw: &Gateway,
    s: &Session,
    form: &str,
    ip: std::net::IpAddr,
) -> Response<GatewayBody> {
    let Some(acc) = gw.accounts.as_ref().filter(|_| is_native(s)) else {
        return respond(gw, GatewayError::NoLogin, true);
    };
    let principal = s.identity.principal.clone();
    let sealed = match gw.store.get_ephemeral(&reenroll_key(s)).await {
        Ok(Some(x)) => x,
        Ok(None) => return page(gw, s, Some(gw.chrome.t(Msg::AccSetupExpired)), None).await,
        Err(e) => return store_error(gw, e),
    };
    let Some(seed) = acc.open_seed(&principal, &sealed) else {
        return page(gw, s, Some(gw.chrome.t(Msg::AccSetupExpired)), None).await;
    };
    let code: String = form_value(form, "code")
        .unwrap_or_default()
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    let now = gw.clock.now();
    let step = match acc
        .totp_for(seed.clone(), &s.identity.user)
        .verify(&code, now, None)
        .map(|st| i64::try_from(st.0))
    {
        Ok(Ok(step)) => step,
        _ => return reenroll_page(gw, s, seed, Some(gw.chrome.t(Msg::WrongCode))),
    };
    // Taken once: of two confirmations of one setup, only one replaces the factor.
    match gw.store.take_ephemeral(&reenroll_key(s)).await {
        Ok(Some(_)) => {}
        Ok(None) => return page(gw, s, Some(gw.chrome.t(Msg::AccSetupExpired)), None).await,
        Err(e) => return store_error(gw, e),
    }
    if let Err(e) = acc.users.put_totp(&principal, &sealed, true, now).await {
        return store_error(gw, e);
    }
    // The confirmation code is spent like any other.
    if let Err(e) = acc.users.advance_totp_step(&principal, step).await {
        return store_error(gw, e);
    }
    audit::record(
        gw,
        Event {
            user: Some(&s.identity.user),
            method: Some("totp"),
            reason: Some("account"),
            ip: Some(ip),
            ..Event::new(audit::Kind::MfaEnroll, audit::Outcome::Success)
        },
    )
    .await;
    crate::alerts::factor_changed(
        gw,
        &s.identity.user,
        s.identity.email.as_deref(),
        crate::notify::mail::FactorChange::Replaced,
    );
    page(gw, s, None, Some(gw.chrome.t(Msg::AccNewAppDone))).await
}
