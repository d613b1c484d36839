//! `/_portcullis/account`: a signed-in user's own sessions (end the others), second factors
//! (a new authenticator or new recovery codes, each only after a fresh second factor) and
//! remembered devices (forget them). Every form carries a CSRF token bound to the session.

use super::endpoints::{form_value, read_body};
use super::gateway::{load_session, respond, Conn, GatewayError};
use super::login_pages;
use super::native::{classify, forbidden_form, store_error, verify_totp, Typed};
use super::Gateway;
use crate::accounts::native_principal;
use crate::audit::{self, Event};
use crate::auth::policy::LocalPath;
use crate::clock::rfc3339;
use crate::config::{LoginTarget, MfaMethod};
use crate::mfa::{qr, recovery, totp, MfaError};
use crate::pages::{self, esc};
use crate::proxy::forward::GatewayBody;
use crate::secret::{ct_eq, TotpSeed};
use crate::session::{AuthMethod, Session, SessionId, SessionStore};
use crate::storage::UserStore;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine as _;
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use std::sync::Arc;

fn csrf(gw: &Gateway, s: &Session) -> String {
    let tag = ring::hmac::sign(
        &gw.csrf_key,
        format!("account:{}", s.id.as_str()).as_bytes(),
    );
    B64.encode(tag.as_ref().get(..24).unwrap_or_default())
}

fn hidden(token: &str) -> String {
    format!(
        "<input type=\"hidden\" name=\"csrf_token\" value=\"{}\">",
        esc(token)
    )
}

fn reenroll_key(s: &Session) -> String {
    format!("reenroll:{}", s.id.as_str())
}

/// Entry for `/account` and its form targets.
pub async fn entry(
    gw: &Arc<Gateway>,
    req: Request<Incoming>,
    conn: Conn,
    sub: &str,
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
    if *req.method() == Method::GET && sub == "/account" {
        return page(gw, &session, None, None).await;
    }
    if *req.method() != Method::POST {
        return pages::json_error(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            "This method is not allowed here.",
        );
    }
    let body = match read_body(gw, req.into_body()).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    let form = String::from_utf8_lossy(&body).into_owned();
    let token = form_value(&form, "csrf_token").unwrap_or_default();
    if !ct_eq(token.as_bytes(), csrf(gw, &session).as_bytes()) {
        return forbidden_form(gw);
    }
    let ip = conn.peer.ip();
    match sub {
        "/account/sessions/end" => end_sessions(gw, &session, &form, ip).await,
        "/account/devices/forget" => forget_devices(gw, &session, &form).await,
        "/account/recovery-codes" => new_recovery_codes(gw, &session, &form, ip).await,
        "/account/totp" => start_reenroll(gw, &session, &form, ip).await,
        "/account/totp/confirm" => confirm_reenroll(gw, &session, &form, ip).await,
        _ => pages::json_error(
            StatusCode::NOT_FOUND,
            "not_found",
            "No such gateway endpoint.",
        ),
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
    let mut body = String::from("<h1>Your account</h1>");
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
    body.push_str(&format!(
        "<p>Signed in as <strong>{}</strong> ({}).</p>",
        esc(&s.identity.user),
        esc(&s.identity.method.header_value())
    ));

    // Sessions.
    let sessions = match gw.store.list(Some(&s.identity.user), None, 200).await {
        Ok(v) => v,
        Err(e) => return store_error(gw, e),
    };
    body.push_str("<h2>Where you are signed in</h2><table id=\"sessions\"><thead><tr><th scope=\"col\">Device</th><th scope=\"col\">Address</th><th scope=\"col\">Signed in</th><th scope=\"col\"><span class=\"muted\">Action</span></th></tr></thead><tbody>");
    for other in &sessions {
        let action = if other.id == s.id {
            "<em>this device</em>".to_owned()
        } else {
            format!(
                "<form method=\"post\" action=\"{p}/account/sessions/end\">{}<input type=\"hidden\" name=\"id\" value=\"{}\"><button type=\"submit\" class=\"secondary\">End</button></form>",
                hidden(&token),
                esc(other.id.as_str())
            )
        };
        body.push_str(&format!(
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{action}</td></tr>",
            esc(other.user_agent.as_deref().unwrap_or("unknown")),
            esc(other.ip.as_deref().unwrap_or("-")),
            esc(&rfc3339(other.created_at)),
        ));
    }
    body.push_str("</tbody></table>");
    if sessions.len() > 1 {
        body.push_str(&format!(
            "<form method=\"post\" action=\"{p}/account/sessions/end\">{}<input type=\"hidden\" name=\"id\" value=\"others\"><button type=\"submit\">Sign out everywhere else</button></form>",
            hidden(&token)
        ));
    }

    // Second factors and devices: the gateway's own, for native accounts.
    if let (true, Some(acc)) = (is_native(s), gw.accounts.as_ref()) {
        let principal = native_principal(&s.identity.user);
        let now = gw.clock.now();
        let has_totp = matches!(acc.users.get_totp(&principal).await, Ok(Some(f)) if f.confirmed);
        let left = acc
            .users
            .count_recovery_codes(&principal, now)
            .await
            .unwrap_or(0);
        body.push_str(&format!(
            "<h2>Two-step verification</h2><p>Authenticator app: <strong>{}</strong>. Recovery codes left: <strong id=\"codes-left\">{left}</strong>.</p>\
<p class=\"muted\">To change these, confirm it is you with a current code from your authenticator app or a recovery code.</p>\
<form method=\"post\" action=\"{p}/account/totp\">{tok}<label for=\"code-totp\">Current code</label>\
<input id=\"code-totp\" name=\"code\" type=\"text\" inputmode=\"numeric\" autocomplete=\"one-time-code\" required>\
<button type=\"submit\" class=\"secondary\">Set up a new authenticator app</button></form>",
            if has_totp { "set up" } else { "not set up" },
            tok = hidden(&token),
        ));
        if gw.config.mfa.allows(MfaMethod::RecoveryCode) {
            body.push_str(&format!(
                "<form method=\"post\" action=\"{p}/account/recovery-codes\">{}<label for=\"code-rc\">Current code</label>\
<input id=\"code-rc\" name=\"code\" type=\"text\" inputmode=\"numeric\" autocomplete=\"one-time-code\" required>\
<button type=\"submit\" class=\"secondary\">Get new recovery codes</button></form>",
                hidden(&token)
            ));
        }
        let devices = acc
            .users
            .list_devices(&principal, now)
            .await
            .unwrap_or_default();
        body.push_str("<h2>Remembered devices</h2>");
        if devices.is_empty() {
            body.push_str("<p id=\"devices\">No device is remembered.</p>");
        } else {
            body.push_str("<ul id=\"devices\">");
            for d in &devices {
                body.push_str(&format!(
                    "<li>{} — until {} <form method=\"post\" action=\"{p}/account/devices/forget\">{}<input type=\"hidden\" name=\"id\" value=\"{}\"><button type=\"submit\" class=\"secondary\">Forget</button></form></li>",
                    esc(d.user_agent.as_deref().unwrap_or("unknown device")),
                    esc(&rfc3339(d.expires_at)),
                    hidden(&token),
                    esc(&d.id)
                ));
            }
            body.push_str(&format!(
                "</ul><form method=\"post\" action=\"{p}/account/devices/forget\">{}<input type=\"hidden\" name=\"id\" value=\"all\"><button type=\"submit\">Forget all devices</button></form>",
                hidden(&token)
            ));
        }
    }
    body.push_str(&format!("<p><a href=\"{p}/logout\">Sign out</a></p>"));
    let status = if error.is_some() {
        StatusCode::UNAUTHORIZED
    } else {
        StatusCode::OK
    };
    pages::html_response(status, gw.chrome.layout("Your account", &body, true))
}

async fn end_sessions(
    gw: &Gateway,
    s: &Session,
    form: &str,
    ip: std::net::IpAddr,
) -> Response<GatewayBody> {
    let target = form_value(form, "id").unwrap_or_default();
    let mine = match gw.store.list(Some(&s.identity.user), None, 1000).await {
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
            kind: "session.terminated",
            user: Some(&s.identity.user),
            method: Some("account"),
            outcome: "success",
            ip: Some(ip),
            session: Some(s.id.as_str()),
            detail: Some(format!("{{\"ended\":{ended}}}")),
            ..Default::default()
        },
    )
    .await;
    let msg = format!(
        "Ended {ended} other session{}.",
        if ended == 1 { "" } else { "s" }
    );
    page(gw, s, None, Some(&msg)).await
}

async fn forget_devices(gw: &Gateway, s: &Session, form: &str) -> Response<GatewayBody> {
    let Some(acc) = gw.accounts.as_ref().filter(|_| is_native(s)) else {
        return page(
            gw,
            s,
            Some("There is nothing to forget for this account."),
            None,
        )
        .await;
    };
    let principal = native_principal(&s.identity.user);
    let id = form_value(form, "id").unwrap_or_default();
    let result = if id == "all" {
        acc.users.delete_devices(&principal).await.map(|n| n > 0)
    } else {
        acc.users.delete_device(&principal, &id).await
    };
    match result {
        Ok(_) => {
            page(
                gw,
                s,
                None,
                Some("Done: that device will be asked for a second factor again."),
            )
            .await
        }
        Err(e) => store_error(gw, e),
    }
}

/// A fresh second factor: a current TOTP code or a recovery code (which it uses up).
async fn fresh_factor(gw: &Gateway, s: &Session, form: &str) -> Result<(), MfaError> {
    let acc = gw.accounts.as_ref().ok_or(MfaError::WrongCode)?;
    let principal = native_principal(&s.identity.user);
    let code = form_value(form, "code").unwrap_or_default();
    let now = gw.clock.now();
    match classify(&code) {
        Typed::Totp(c) => verify_totp(acc, &principal, &s.identity.user, &c, now).await,
        Typed::Recovery(c) => match acc
            .users
            .consume_recovery_code(&principal, &recovery::hash_code(&c), now)
            .await
        {
            Ok(Some(_)) => Ok(()),
            _ => Err(MfaError::WrongCode),
        },
        _ => Err(MfaError::MalformedCode),
    }
}

async fn check_fresh(
    gw: &Gateway,
    s: &Session,
    form: &str,
    ip: std::net::IpAddr,
) -> Option<Response<GatewayBody>> {
    if !is_native(s) || gw.accounts.is_none() {
        return Some(
            page(
                gw,
                s,
                Some("Second factors of this account are managed by your organisation's sign-in."),
                None,
            )
            .await,
        );
    }
    // The same lockout as the login: a signed-in attacker cannot guess codes here either.
    if let Some(acc) = &gw.accounts {
        match acc.lockout.check(&gw.store, &s.identity.user, ip).await {
            Ok(crate::auth::lockout::LockState::Open) => {}
            Ok(crate::auth::lockout::LockState::Locked) => {
                return Some(
                    page(
                        gw,
                        s,
                        Some("Too many failed attempts. For your security, this is paused for a while; try again later."),
                        None,
                    )
                    .await,
                )
            }
            Err(e) => return Some(store_error(gw, e)),
        }
    }
    match fresh_factor(gw, s, form).await {
        Ok(()) => {
            audit::record(
                gw,
                Event {
                    kind: "mfa.success",
                    user: Some(&s.identity.user),
                    method: Some("totp"),
                    outcome: "success",
                    reason: Some("account"),
                    ip: Some(ip),
                    ..Default::default()
                },
            )
            .await;
            None
        }
        Err(e) => {
            audit::record(
                gw,
                Event {
                    kind: "mfa.failure",
                    user: Some(&s.identity.user),
                    method: Some("totp"),
                    outcome: "failure",
                    reason: Some(&e.to_string()),
                    ip: Some(ip),
                    ..Default::default()
                },
            )
            .await;
            if let Some(acc) = &gw.accounts {
                let _ = acc
                    .lockout
                    .record_failure(&gw.store, &s.identity.user, ip)
                    .await;
            }
            Some(page(gw, s, Some("That code is not valid. Enter a current code from your authenticator app or a recovery code."), None).await)
        }
    }
}

async fn new_recovery_codes(
    gw: &Gateway,
    s: &Session,
    form: &str,
    ip: std::net::IpAddr,
) -> Response<GatewayBody> {
    if let Some(refused) = check_fresh(gw, s, form, ip).await {
        return refused;
    }
    let Some(acc) = &gw.accounts else {
        return respond(gw, GatewayError::NoLogin, true);
    };
    let now = gw.clock.now();
    match acc
        .issue_recovery_codes(
            &native_principal(&s.identity.user),
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
                    kind: "recovery_codes.issued",
                    user: Some(&s.identity.user),
                    method: Some("account"),
                    outcome: "success",
                    ip: Some(ip),
                    ..Default::default()
                },
            )
            .await;
            let codes: Vec<String> = codes.iter().map(|c| c.expose().to_owned()).collect();
            login_pages::recovery_codes(
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
    let view = login_pages::Enrollment {
        action: &action,
        csrf: &token,
        uri: &uri,
        qr_svg: &svg,
        grouped_secret: &secret,
        error,
    };
    login_pages::enroll(
        &gw.chrome,
        if error.is_some() {
            StatusCode::UNAUTHORIZED
        } else {
            StatusCode::OK
        },
        &view,
    )
}

async fn start_reenroll(
    gw: &Gateway,
    s: &Session,
    form: &str,
    ip: std::net::IpAddr,
) -> Response<GatewayBody> {
    if let Some(refused) = check_fresh(gw, s, form, ip).await {
        return refused;
    }
    let Some(acc) = &gw.accounts else {
        return respond(gw, GatewayError::NoLogin, true);
    };
    let seed = totp::generate_seed();
    let principal = native_principal(&s.identity.user);
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
    let principal = native_principal(&s.identity.user);
    let sealed = match gw.store.get_ephemeral(&reenroll_key(s)).await {
        Ok(Some(x)) => x,
        Ok(None) => return page(gw, s, Some("The setup expired. Start again."), None).await,
        Err(e) => return store_error(gw, e),
    };
    let Some(seed) = acc.open_seed(&principal, &sealed) else {
        return page(gw, s, Some("The setup expired. Start again."), None).await;
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
        _ => {
            return reenroll_page(
                gw,
                s,
                seed,
                Some("That code is not valid. Check it and try again."),
            )
        }
    };
    if let Err(e) = gw.store.take_ephemeral(&reenroll_key(s)).await {
        return store_error(gw, e);
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
            kind: "mfa.enroll",
            user: Some(&s.identity.user),
            method: Some("totp"),
            outcome: "success",
            reason: Some("account"),
            ip: Some(ip),
            ..Default::default()
        },
    )
    .await;
    page(
        gw,
        s,
        None,
        Some("Your new authenticator app is set up; the old one no longer works."),
    )
    .await
}
