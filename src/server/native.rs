//! Native login over HTTP (DESIGN.md §3): the password form at the native paths, then the
//! second-factor steps under the reserved prefix (`/mfa`, `/mfa/enroll`, `/mfa/email`).
//! Every POST carries a CSRF token bound to the login cookie; every decision is audited;
//! the session exists only once the policy is satisfied, under a fresh cookie.

use super::endpoints::{form_value, query_param, read_body};
use super::gateway::{respond, Conn, GatewayError};
use super::login_pages::{self, Challenge};
use super::Gateway;
use crate::accounts::{native_principal, normalise_user, Accounts};
use crate::audit::{self, Event};
use crate::auth::lockout::LockState;
use crate::auth::pending::{PendingLogin, Stage};
use crate::auth::policy::{effective_policy, EffectivePolicy, LocalPath};
use crate::config::MfaMethod;
use crate::mfa::{email, qr, recovery, totp, MfaError};
use crate::pages;
use crate::proxy::forward::GatewayBody;
use crate::secret::{ct_eq, Password, SessionToken};
use crate::session::{
    cookie, new_token, random_id, Identity, MfaUsed, Session, SessionId, SessionStore,
};
use crate::storage::{RememberedDevice, StoreError, UserStore};
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine as _;
use hyper::body::Incoming;
use hyper::header::{HeaderMap, HeaderValue, RETRY_AFTER, SET_COOKIE, USER_AGENT};
use hyper::{Method, Request, Response, StatusCode};
use std::net::IpAddr;
use std::sync::Arc;

const BAD_CREDENTIALS: &str = "Incorrect username or password.";
const LOCKED: &str =
    "Too many failed attempts. For your security, sign-in is paused for a while; try again later.";
const BAD_CODE: &str = "That code is not valid. Check it and try again.";
const EXPIRED: &str = "Your sign-in attempt has expired or was already completed.";

/// The client's address: the peer, or the nearest X-Forwarded-For hop from a trusted proxy.
pub fn client_ip(gw: &Gateway, headers: &HeaderMap, conn: Conn) -> IpAddr {
    let peer = conn.peer.ip();
    if !gw.config.is_trusted_proxy(peer) {
        return peer;
    }
    headers
        .get("x-forwarded-for")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.rsplit(',').next())
        .and_then(|ip| ip.trim().parse().ok())
        .unwrap_or(peer)
}

pub(crate) fn user_agent(headers: &HeaderMap) -> Option<String> {
    headers
        .get(USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .map(|s| s.chars().take(256).collect())
}

fn csrf_for(gw: &Gateway, nonce: &str) -> String {
    let tag = ring::hmac::sign(&gw.csrf_key, nonce.as_bytes());
    B64.encode(tag.as_ref().get(..24).unwrap_or_default())
}

pub(crate) fn set_cookie(r: &mut Response<GatewayBody>, value: &str) {
    if let Ok(v) = HeaderValue::from_str(value) {
        r.headers_mut().append(SET_COOKIE, v);
    }
}

fn accounts(gw: &Gateway) -> Option<&Accounts> {
    gw.accounts.as_ref()
}

pub(crate) fn store_error(gw: &Gateway, e: StoreError) -> Response<GatewayBody> {
    respond(gw, GatewayError::Store(e), true)
}

fn expired_page(gw: &Gateway) -> Response<GatewayBody> {
    let start = gw
        .config
        .native
        .as_ref()
        .and_then(|n| n.paths.first())
        .cloned()
        .unwrap_or_else(|| "/".into());
    gw.chrome.error_page(
        StatusCode::BAD_REQUEST,
        "Sign-in expired",
        EXPIRED,
        &format!("Start again at {start}."),
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

fn busy(gw: &Gateway) -> Response<GatewayBody> {
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

/// `GET|POST` a native path.
pub async fn entry(
    gw: &Arc<Gateway>,
    req: Request<Incoming>,
    conn: Conn,
    path: &str,
) -> Response<GatewayBody> {
    match *req.method() {
        Method::GET | Method::HEAD => show_login(gw, &req, path),
        Method::POST => submit_login(gw, req, conn, path).await,
        _ => pages::json_error(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            "Use GET or POST.",
        ),
    }
}

/// The password form, with a fresh pre-login cookie and the CSRF token bound to it.
fn show_login(gw: &Gateway, req: &Request<Incoming>, path: &str) -> Response<GatewayBody> {
    let rd = query_param(req.uri().query(), "rd")
        .and_then(|r| LocalPath::parse(&r))
        .unwrap_or_else(LocalPath::root);
    login_form_response(gw, StatusCode::OK, path, &rd, "", None)
}

fn login_form_response(
    gw: &Gateway,
    status: StatusCode,
    path: &str,
    rd: &LocalPath,
    username: &str,
    error: Option<&str>,
) -> Response<GatewayBody> {
    let nonce = random_id(32);
    let csrf = csrf_for(gw, &nonce);
    let mut r = login_pages::login_form(
        &gw.chrome,
        status,
        path,
        &csrf,
        rd.as_str(),
        username,
        error,
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

async fn submit_login(
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

    // CSRF first: the token must be the HMAC of this browser's login cookie.
    let csrf_ok = nonce
        .as_deref()
        .is_some_and(|n| ct_eq(csrf_for(gw, n).as_bytes(), field("csrf_token").as_bytes()));
    if !csrf_ok {
        audit::record(
            gw,
            Event {
                kind: "login.failure",
                method: Some("native"),
                outcome: "refused",
                reason: Some("csrf"),
                ip: Some(ip),
                ..Default::default()
            },
        )
        .await;
        return forbidden_form(gw);
    }

    let typed = field("username");
    let typed = typed.trim();
    let password = Password::new(field("password"));
    let name = normalise_user(typed);
    let key = name.clone().unwrap_or_else(|| typed.to_lowercase());

    match acc.lockout.check(&gw.store, &key, ip).await {
        Ok(LockState::Locked) => {
            audit::record(
                gw,
                Event {
                    kind: "login.failure",
                    user: Some(&key),
                    method: Some("native"),
                    outcome: "refused",
                    reason: Some("locked"),
                    ip: Some(ip),
                    ..Default::default()
                },
            )
            .await;
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
            );
        }
        Ok(LockState::Open) => {}
        Err(e) => return store_error(gw, e),
    }

    let user = match &name {
        Some(n) => match acc.users.get_user(n).await {
            Ok(u) => u,
            Err(e) => return store_error(gw, e),
        },
        None => None,
    };
    // Unknown, disabled and wrong-password users cost the same hash and get the same answer.
    let ok = match acc.check_password(password, user.as_ref(), ip).await {
        Ok(ok) => ok,
        Err(_) => return busy(gw),
    };
    let Some(user) = user.filter(|_| ok) else {
        let reason = if name.is_none() {
            "bad_username"
        } else {
            "bad_credentials"
        };
        let state = acc.lockout.record_failure(&gw.store, &key, ip).await;
        audit::record(
            gw,
            Event {
                kind: "login.failure",
                user: Some(&key),
                method: Some("native"),
                outcome: "failure",
                reason: Some(reason),
                ip: Some(ip),
                ..Default::default()
            },
        )
        .await;
        if let Ok(LockState::Locked) = state {
            audit::record(
                gw,
                Event {
                    kind: "lockout",
                    user: Some(&key),
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
        );
    };
    if let Err(e) = acc.lockout.record_success(&gw.store, &key).await {
        return store_error(gw, e);
    }

    let roles: Vec<String> = user
        .roles
        .iter()
        .filter(|r| gw.config.role(r).is_some())
        .cloned()
        .collect();
    if roles.is_empty() {
        audit::record(
            gw,
            Event {
                kind: "login.failure",
                user: Some(&user.username),
                method: Some("native"),
                outcome: "refused",
                reason: Some("no_role"),
                ip: Some(ip),
                ..Default::default()
            },
        )
        .await;
        return gw.chrome.error_page(
            StatusCode::FORBIDDEN,
            "No access",
            "Your account is valid but has no role that gives access to this site.",
            "Ask an administrator to give your account a role.",
            &random_id(9),
        );
    }
    let policy = effective_policy(&gw.config, &roles);
    let principal = native_principal(&user.username);
    let pending = PendingLogin {
        stage: Stage::Mfa,
        user: user.username.clone(),
        principal: principal.clone(),
        email: user.email.clone(),
        groups: Vec::new(),
        roles,
        method: "native".into(),
        csrf: random_id(24),
        rd: rd.as_str().to_owned(),
        remember_secs: policy.remember_mfa.as_secs(),
        created_at: gw.clock.now(),
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
    after_first_factor(gw, pending, &policy, device.as_deref(), ip, ua).await
}

/// Decides the next step once the first factor (password or SSO) is proven: a session when no
/// second factor is needed (or a remembered device satisfies it), else the challenge or enrollment.
pub async fn after_first_factor(
    gw: &Gateway,
    mut pending: PendingLogin,
    policy: &EffectivePolicy,
    device: Option<&str>,
    ip: IpAddr,
    ua: Option<String>,
) -> Response<GatewayBody> {
    if !policy.require_mfa {
        return finish(gw, &pending, MfaUsed::None, None, ip, ua).await;
    }
    let Some(acc) = accounts(gw) else {
        return respond(gw, GatewayError::NoLogin, true);
    };
    if let Some(token) = device.filter(|_| pending.remember_secs > 0) {
        match device_remembered(gw, acc, &pending.principal, token, pending.remember_secs).await {
            Ok(true) => {
                audit::record(
                    gw,
                    Event {
                        kind: "mfa.success",
                        user: Some(&pending.user),
                        method: Some("remembered_device"),
                        outcome: "success",
                        ip: Some(ip),
                        ..Default::default()
                    },
                )
                .await;
                return finish(gw, &pending, MfaUsed::RememberedDevice, None, ip, ua).await;
            }
            Ok(false) => {}
            Err(e) => return store_error(gw, e),
        }
    }
    let now = gw.clock.now();
    let has_totp = match acc.users.get_totp(&pending.principal).await {
        Ok(t) => t.is_some_and(|t| t.confirmed),
        Err(e) => return store_error(gw, e),
    };
    let has_factor = match acc.users.has_second_factor(&pending.principal, now).await {
        Ok(b) => b,
        Err(e) => return store_error(gw, e),
    };
    // Enrollment is for users with nothing at all; recovery codes alone still let one in.
    pending.stage = if has_totp || has_factor {
        Stage::Mfa
    } else {
        Stage::Enroll
    };
    let next = match pending.stage {
        Stage::Mfa => "/mfa",
        Stage::Enroll => "/mfa/enroll",
    };
    match save_pending(gw, &pending).await {
        Ok(cookie) => {
            let mut r = pages::redirect(&format!(
                "{}{}{next}",
                gw.config.server.public_origin, gw.config.server.prefix
            ));
            set_cookie(&mut r, &cookie);
            r
        }
        Err(e) => store_error(gw, e),
    }
}

/// A remembered device counts only while the current policy still allows that long.
async fn device_remembered(
    gw: &Gateway,
    acc: &Accounts,
    principal: &str,
    token: &str,
    max_secs: u64,
) -> Result<bool, StoreError> {
    let now = gw.clock.now();
    let hash = crate::mfa::email::hash_email_code(token);
    let devices = acc.users.list_devices(principal, now).await?;
    let max = i64::try_from(max_secs).unwrap_or(i64::MAX);
    Ok(devices.iter().any(|d| {
        ct_eq(d.token_hash.as_bytes(), hash.as_bytes())
            && d.created_at.saturating_add(max) > now
            && d.expires_at > now
    }))
}

fn pending_key(id: &SessionId) -> String {
    format!("pending:{}", id.as_str())
}

/// Stores a pending login under a new cookie (rotated at every step); returns the Set-Cookie.
async fn save_pending(gw: &Gateway, p: &PendingLogin) -> Result<String, StoreError> {
    let token = new_token()?;
    let id = SessionId::of(&token);
    gw.store
        .put_ephemeral(
            &pending_key(&id),
            p.to_bytes(),
            gw.config.session.pending_ttl,
        )
        .await?;
    Ok(gw.cookies.set(
        gw.cookies.pending,
        token.expose(),
        Some(gw.config.session.pending_ttl.as_secs()),
    ))
}

async fn load_pending(
    gw: &Gateway,
    headers: &HeaderMap,
) -> Result<Option<(SessionId, PendingLogin)>, StoreError> {
    let Some(token) = cookie::get(headers, gw.cookies.pending) else {
        return Ok(None);
    };
    let id = SessionId::of(&SessionToken::new(token.to_owned()));
    let Some(bytes) = gw.store.get_ephemeral(&pending_key(&id)).await? else {
        return Ok(None);
    };
    Ok(PendingLogin::from_bytes(&bytes).map(|p| (id, p)))
}

/// Creates the session (new cookie), optionally remembers the device, and leaves the login.
pub(crate) async fn finish(
    gw: &Gateway,
    pending: &PendingLogin,
    mfa: MfaUsed,
    remember: Option<&Accounts>,
    ip: IpAddr,
    ua: Option<String>,
) -> Response<GatewayBody> {
    finish_with(gw, pending, mfa, remember, ip, ua, Landing::Redirect).await
}

/// What the browser sees once the session exists.
enum Landing {
    /// Straight to the return path.
    Redirect,
    /// A message first (e.g. recovery codes left), then on.
    Notice {
        title: &'static str,
        message: String,
    },
    /// The new recovery codes, shown once.
    RecoveryCodes(Vec<String>),
}

async fn finish_with(
    gw: &Gateway,
    pending: &PendingLogin,
    mfa: MfaUsed,
    remember: Option<&Accounts>,
    ip: IpAddr,
    ua: Option<String>,
    landing: Landing,
) -> Response<GatewayBody> {
    let identity = pending.identity(mfa);
    let (token, session) = match create_session(gw, identity, ip, ua.clone()).await {
        Ok(x) => x,
        Err(e) => return store_error(gw, e),
    };
    if let Some(link) = &pending.sso {
        super::sso::link_session(gw, &session, link).await;
    }
    let method = pending.method.clone();
    audit::record(
        gw,
        Event {
            kind: "login.success",
            user: Some(&pending.user),
            method: Some(&method),
            outcome: "success",
            reason: Some(mfa.as_str()),
            ip: Some(ip),
            session: Some(session.id.as_str()),
            ..Default::default()
        },
    )
    .await;
    let next = LocalPath::parse(&pending.rd)
        .unwrap_or_else(LocalPath::root)
        .absolute(&gw.config.server.public_origin);
    let mut r = match landing {
        Landing::Redirect => pages::redirect(&next),
        Landing::Notice { title, message } => {
            login_pages::notice(&gw.chrome, title, &message, &next, "Continue")
        }
        Landing::RecoveryCodes(codes) => login_pages::recovery_codes(&gw.chrome, &codes, &next),
    };
    set_cookie(
        &mut r,
        &gw.cookies.set(gw.cookies.session, token.expose(), None),
    );
    set_cookie(&mut r, &gw.cookies.clear(gw.cookies.pending));
    if let Some(acc) = remember.filter(|_| pending.remember_secs > 0) {
        let device_token = random_id(32);
        let now = gw.clock.now();
        let secs = i64::try_from(pending.remember_secs).unwrap_or(i64::MAX);
        let d = RememberedDevice {
            id: random_id(12),
            principal: pending.principal.clone(),
            token_hash: crate::mfa::email::hash_email_code(&device_token),
            created_at: now,
            expires_at: now.saturating_add(secs),
            user_agent: ua,
        };
        match acc.users.add_device(&d).await {
            Ok(()) => set_cookie(
                &mut r,
                &gw.cookies.set(
                    gw.cookies.device,
                    &device_token,
                    Some(pending.remember_secs),
                ),
            ),
            Err(e) => tracing::warn!(error = %e, "remembered device not stored"),
        }
    }
    r
}

/// A new session for `identity` under the strictest policy of its roles.
pub async fn create_session(
    gw: &Gateway,
    identity: Identity,
    ip: IpAddr,
    ua: Option<String>,
) -> Result<(SessionToken, Arc<Session>), StoreError> {
    let policy = effective_policy(&gw.config, &identity.roles);
    let token = new_token()?;
    let id = SessionId::of(&token);
    let s = Session::new(
        id,
        identity,
        gw.clock.now(),
        policy.max_lifetime,
        policy.idle_timeout,
        Some(ip.to_string()),
        ua,
    );
    let s = gw.store.insert(s).await?;
    Ok((token, s))
}

/// `/mfa`, `/mfa/enroll`, `/mfa/email`.
pub async fn mfa_entry(
    gw: &Arc<Gateway>,
    req: Request<Incoming>,
    conn: Conn,
    sub: &str,
) -> Response<GatewayBody> {
    let Some(acc) = accounts(gw) else {
        return pages::json_error(
            StatusCode::NOT_FOUND,
            "not_found",
            "No such gateway endpoint.",
        );
    };
    let (id, pending) = match load_pending(gw, req.headers()).await {
        Ok(Some(x)) => x,
        Ok(None) => return expired_page(gw),
        Err(e) => return store_error(gw, e),
    };
    let ip = client_ip(gw, req.headers(), conn);
    let ua = user_agent(req.headers());
    let method = req.method().clone();
    match (sub, method, pending.stage) {
        ("/mfa", Method::GET, Stage::Mfa) => {
            challenge_page(gw, acc, &pending, StatusCode::OK, None, None)
        }
        ("/mfa/enroll", Method::GET, Stage::Enroll) => {
            enroll_page(gw, acc, &pending, StatusCode::OK, None).await
        }
        // The wrong page for this stage: go to the right one.
        ("/mfa", Method::GET, Stage::Enroll) => pages::redirect(&format!(
            "{}{}/mfa/enroll",
            gw.config.server.public_origin, gw.config.server.prefix
        )),
        ("/mfa/enroll", Method::GET, Stage::Mfa) => pages::redirect(&format!(
            "{}{}/mfa",
            gw.config.server.public_origin, gw.config.server.prefix
        )),
        (_, Method::POST, stage) => {
            let body = match read_body(gw, req.into_body()).await {
                Ok(b) => b,
                Err(r) => return r,
            };
            let form = String::from_utf8_lossy(&body).into_owned();
            let csrf = form_value(&form, "csrf_token").unwrap_or_default();
            if !ct_eq(csrf.as_bytes(), pending.csrf.as_bytes()) {
                return forbidden_form(gw);
            }
            match (sub, stage) {
                ("/mfa", Stage::Mfa) => {
                    submit_challenge(gw, acc, &id, &pending, &form, ip, ua).await
                }
                ("/mfa/enroll", Stage::Enroll) => {
                    submit_enroll(gw, acc, &id, &pending, &form, ip, ua).await
                }
                ("/mfa/email", Stage::Mfa) => send_email_code(gw, acc, &pending, ip).await,
                _ => expired_page(gw),
            }
        }
        _ => pages::json_error(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            "This method is not allowed here.",
        ),
    }
}

fn email_allowed(gw: &Gateway, acc: &Accounts, p: &PendingLogin) -> bool {
    gw.config.mfa.allows(MfaMethod::Email) && acc.email.is_some() && p.email.is_some()
}

fn mask_email(e: &str) -> String {
    match e.split_once('@') {
        Some((local, domain)) => {
            let first: String = local.chars().take(1).collect();
            format!("{first}***@{domain}")
        }
        None => "your address".into(),
    }
}

fn challenge_page(
    gw: &Gateway,
    acc: &Accounts,
    p: &PendingLogin,
    status: StatusCode,
    error: Option<&str>,
    notice: Option<&str>,
) -> Response<GatewayBody> {
    let remember_days = (p.remember_secs > 0).then(|| (p.remember_secs / 86_400).max(1));
    let email_hint = email_allowed(gw, acc, p)
        .then(|| p.email.as_deref().map(mask_email))
        .flatten();
    login_pages::challenge(
        &gw.chrome,
        status,
        &Challenge {
            prefix: &gw.config.server.prefix,
            csrf: &p.csrf,
            remember_days,
            email_hint: email_hint.as_deref(),
            recovery: gw.config.mfa.allows(MfaMethod::RecoveryCode),
            error,
            notice,
        },
    )
}

/// Which kind of code the user typed, by its shape.
pub(crate) enum Typed {
    Totp(String),
    Email(String),
    Recovery(String),
    Unknown,
}

pub(crate) fn classify(code: &str) -> Typed {
    let compact: String = code.chars().filter(|c| !c.is_whitespace()).collect();
    if compact.len() == 6 && compact.bytes().all(|b| b.is_ascii_digit()) {
        Typed::Totp(compact)
    } else if let Some(c) = email::normalise_email_code(&compact) {
        Typed::Email(c)
    } else if let Some(c) = recovery::normalise(code) {
        Typed::Recovery(c)
    } else {
        Typed::Unknown
    }
}

async fn submit_challenge(
    gw: &Gateway,
    acc: &Accounts,
    id: &SessionId,
    p: &PendingLogin,
    form: &str,
    ip: IpAddr,
    ua: Option<String>,
) -> Response<GatewayBody> {
    match acc.lockout.check(&gw.store, &p.user, ip).await {
        Ok(LockState::Locked) => {
            return challenge_page(
                gw,
                acc,
                p,
                StatusCode::TOO_MANY_REQUESTS,
                Some(LOCKED),
                None,
            )
        }
        Ok(LockState::Open) => {}
        Err(e) => return store_error(gw, e),
    }
    let code = form_value(form, "code").unwrap_or_default();
    let remember = form_value(form, "remember").is_some_and(|v| v == "1" || v == "on");
    let now = gw.clock.now();
    let typed = classify(&code);
    let typed_name = match &typed {
        Typed::Totp(_) => "totp",
        Typed::Email(_) => "email",
        Typed::Recovery(_) => "recovery_code",
        Typed::Unknown => "unknown",
    };
    let result: Result<(MfaUsed, Option<u32>), MfaError> = match typed {
        Typed::Totp(c) if gw.config.mfa.allows(MfaMethod::Totp) => {
            verify_totp(acc, &p.principal, &p.user, &c, now)
                .await
                .map(|()| (MfaUsed::Totp, None))
        }
        Typed::Email(c) if email_allowed(gw, acc, p) => verify_email(gw, p, &c)
            .await
            .map(|()| (MfaUsed::Email, None)),
        Typed::Recovery(c) if gw.config.mfa.allows(MfaMethod::RecoveryCode) => {
            match acc
                .users
                .consume_recovery_code(&p.principal, &recovery::hash_code(&c), now)
                .await
            {
                Ok(Some(left)) => Ok((MfaUsed::RecoveryCode, Some(left))),
                Ok(None) => Err(MfaError::WrongCode),
                Err(e) => return store_error(gw, e),
            }
        }
        _ => Err(MfaError::MalformedCode),
    };
    match result {
        Ok((used, left)) => {
            // Single use of the pending login itself: a second tab cannot finish it again.
            match gw.store.take_ephemeral(&pending_key(id)).await {
                Ok(Some(_)) => {}
                Ok(None) => return expired_page(gw),
                Err(e) => return store_error(gw, e),
            }
            if let Err(e) = acc.lockout.record_success(&gw.store, &p.user).await {
                return store_error(gw, e);
            }
            audit::record(
                gw,
                Event {
                    kind: "mfa.success",
                    user: Some(&p.user),
                    method: Some(used.as_str()),
                    outcome: "success",
                    ip: Some(ip),
                    ..Default::default()
                },
            )
            .await;
            let remember_acc = (remember && p.remember_secs > 0).then_some(acc);
            match left {
                Some(left) => {
                    audit::record(
                        gw,
                        Event {
                            kind: "recovery_code.used",
                            user: Some(&p.user),
                            method: Some("recovery_code"),
                            outcome: "success",
                            ip: Some(ip),
                            detail: Some(format!("{{\"remaining\":{left}}}")),
                            ..Default::default()
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
                    finish_with(gw, p, used, remember_acc, ip, ua, landing).await
                }
                None => finish(gw, p, used, remember_acc, ip, ua).await,
            }
        }
        Err(e) => {
            let state = acc.lockout.record_failure(&gw.store, &p.user, ip).await;
            audit::record(
                gw,
                Event {
                    kind: "mfa.failure",
                    user: Some(&p.user),
                    method: Some(typed_name),
                    outcome: "failure",
                    reason: Some(&e.to_string()),
                    ip: Some(ip),
                    ..Default::default()
                },
            )
            .await;
            if let Ok(LockState::Locked) = state {
                audit::record(
                    gw,
                    Event {
                        kind: "lockout",
                        user: Some(&p.user),
                        outcome: "locked",
                        ip: Some(ip),
                        ..Default::default()
                    },
                )
                .await;
                return challenge_page(
                    gw,
                    acc,
                    p,
                    StatusCode::TOO_MANY_REQUESTS,
                    Some(LOCKED),
                    None,
                );
            }
            let msg = match e {
                MfaError::CodeReused => {
                    "That code was already used. Wait for the next code and try again."
                }
                _ => BAD_CODE,
            };
            challenge_page(gw, acc, p, StatusCode::UNAUTHORIZED, Some(msg), None)
        }
    }
}

/// TOTP with the replay guard: the matched step must be newer than the last one used, and
/// the store's conditional update decides atomically which of two concurrent uses wins.
pub(crate) async fn verify_totp(
    acc: &Accounts,
    principal: &str,
    user: &str,
    code: &str,
    now: i64,
) -> Result<(), MfaError> {
    let factor = match acc.users.get_totp(principal).await {
        Ok(Some(f)) if f.confirmed => f,
        _ => return Err(MfaError::WrongCode),
    };
    let seed = acc
        .open_seed(principal, &factor.sealed_seed)
        .ok_or(MfaError::WrongCode)?;
    let last = factor.last_step.and_then(|s| u64::try_from(s).ok());
    let step = acc.totp_for(seed, user).verify(code, now, last)?;
    let step = i64::try_from(step.0).map_err(|_| MfaError::WrongCode)?;
    match acc.users.advance_totp_step(principal, step).await {
        Ok(true) => Ok(()),
        Ok(false) => Err(MfaError::CodeReused),
        Err(_) => Err(MfaError::WrongCode),
    }
}

fn email_key(principal: &str) -> String {
    format!("email-code:{principal}")
}

async fn verify_email(gw: &Gateway, p: &PendingLogin, code: &str) -> Result<(), MfaError> {
    let key = email_key(&p.principal);
    let stored = gw
        .store
        .get_ephemeral(&key)
        .await
        .map_err(|_| MfaError::WrongCode)?
        .ok_or(MfaError::Expired)?;
    if !ct_eq(&stored, email::hash_email_code(code).as_bytes()) {
        return Err(MfaError::WrongCode);
    }
    // Taking it is what makes it single-use: of two concurrent uses only one gets the value.
    match gw.store.take_ephemeral(&key).await {
        Ok(Some(_)) => Ok(()),
        _ => Err(MfaError::CodeReused),
    }
}

async fn send_email_code(
    gw: &Gateway,
    acc: &Accounts,
    p: &PendingLogin,
    ip: IpAddr,
) -> Response<GatewayBody> {
    let (Some(to), Some(sender), Some(cfg)) = (
        p.email.as_deref(),
        acc.email.as_ref(),
        gw.config.mfa.email.as_ref(),
    ) else {
        return challenge_page(
            gw,
            acc,
            p,
            StatusCode::BAD_REQUEST,
            Some("Email codes are not available for this account."),
            None,
        );
    };
    if !email_allowed(gw, acc, p) {
        return challenge_page(
            gw,
            acc,
            p,
            StatusCode::BAD_REQUEST,
            Some("Email codes are not available for this account."),
            None,
        );
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
        Ok(false) => {
            return challenge_page(
                gw,
                acc,
                p,
                StatusCode::TOO_MANY_REQUESTS,
                Some("A code was sent a moment ago. Wait a little before asking for another."),
                None,
            )
        }
        Err(e) => return store_error(gw, e),
    }
    let code = email::generate_email_code();
    if let Err(e) = gw
        .store
        .put_ephemeral(
            &email_key(&p.principal),
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
                    kind: "mfa.email_sent",
                    user: Some(&p.user),
                    method: Some("email"),
                    outcome: "success",
                    ip: Some(ip),
                    ..Default::default()
                },
            )
            .await;
            let msg = format!(
                "We sent a code to {}. It is valid for {minutes} minutes.",
                mask_email(to)
            );
            challenge_page(gw, acc, p, StatusCode::OK, None, Some(&msg))
        }
        Err(e) => {
            tracing::warn!(error = %e, user = %p.user, "email code could not be sent");
            challenge_page(
                gw,
                acc,
                p,
                StatusCode::BAD_GATEWAY,
                Some("The email could not be sent. Use another method or try again later."),
                None,
            )
        }
    }
}

async fn enroll_page(
    gw: &Gateway,
    acc: &Accounts,
    p: &PendingLogin,
    status: StatusCode,
    error: Option<&str>,
) -> Response<GatewayBody> {
    let now = gw.clock.now();
    // Reuse the unconfirmed seed across reloads so a scanned QR code stays valid.
    let seed = match acc.users.get_totp(&p.principal).await {
        Ok(Some(f)) if !f.confirmed => acc.open_seed(&p.principal, &f.sealed_seed),
        Ok(_) => None,
        Err(e) => return store_error(gw, e),
    };
    let seed = match seed {
        Some(s) => s,
        None => {
            let s = totp::generate_seed();
            let sealed = match acc.seal_seed(&p.principal, &s) {
                Ok(x) => x,
                Err(e) => {
                    tracing::error!(error = %e, "seed sealing failed");
                    return respond(
                        gw,
                        GatewayError::Store(StoreError::Unavailable("seal".into())),
                        true,
                    );
                }
            };
            if let Err(e) = acc.users.put_totp(&p.principal, &sealed, false, now).await {
                return store_error(gw, e);
            }
            s
        }
    };
    let t = acc.totp_for(seed, &p.user);
    let uri = t.otpauth_uri();
    let svg = qr::svg(&uri).unwrap_or_default();
    let secret = totp::group_secret(&t.secret_base32());
    let action = format!("{}/mfa/enroll", gw.config.server.prefix);
    let view = login_pages::Enrollment {
        action: &action,
        csrf: &p.csrf,
        uri: &uri,
        qr_svg: &svg,
        grouped_secret: &secret,
        error,
    };
    login_pages::enroll(&gw.chrome, status, &view)
}

async fn submit_enroll(
    gw: &Gateway,
    acc: &Accounts,
    id: &SessionId,
    p: &PendingLogin,
    form: &str,
    ip: IpAddr,
    ua: Option<String>,
) -> Response<GatewayBody> {
    match acc.lockout.check(&gw.store, &p.user, ip).await {
        Ok(LockState::Locked) => {
            return enroll_page(gw, acc, p, StatusCode::TOO_MANY_REQUESTS, Some(LOCKED)).await
        }
        Ok(LockState::Open) => {}
        Err(e) => return store_error(gw, e),
    }
    let code: String = form_value(form, "code")
        .unwrap_or_default()
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    let now = gw.clock.now();
    let factor = match acc.users.get_totp(&p.principal).await {
        Ok(Some(f)) if !f.confirmed => f,
        Ok(_) => return expired_page(gw),
        Err(e) => return store_error(gw, e),
    };
    let verified = acc
        .open_seed(&p.principal, &factor.sealed_seed)
        .ok_or(MfaError::WrongCode)
        .and_then(|seed| acc.totp_for(seed, &p.user).verify(&code, now, None));
    let step = match verified.map(|s| i64::try_from(s.0)) {
        Ok(Ok(step)) => step,
        _ => {
            let _ = acc.lockout.record_failure(&gw.store, &p.user, ip).await;
            audit::record(
                gw,
                Event {
                    kind: "mfa.enroll",
                    user: Some(&p.user),
                    method: Some("totp"),
                    outcome: "failure",
                    reason: Some("wrong_code"),
                    ip: Some(ip),
                    ..Default::default()
                },
            )
            .await;
            return enroll_page(gw, acc, p, StatusCode::UNAUTHORIZED, Some(BAD_CODE)).await;
        }
    };
    match acc.users.confirm_totp(&p.principal, step).await {
        Ok(true) => {}
        Ok(false) => return expired_page(gw),
        Err(e) => return store_error(gw, e),
    }
    match gw.store.take_ephemeral(&pending_key(id)).await {
        Ok(Some(_)) => {}
        Ok(None) => return expired_page(gw),
        Err(e) => return store_error(gw, e),
    }
    let codes = if gw.config.mfa.allows(MfaMethod::RecoveryCode) {
        match acc
            .issue_recovery_codes(
                &p.principal,
                gw.config.mfa.recovery_count,
                gw.config.mfa.recovery_ttl,
                now,
            )
            .await
        {
            Ok(c) => c.iter().map(|c| c.expose().to_owned()).collect(),
            Err(e) => return store_error(gw, e),
        }
    } else {
        Vec::new()
    };
    audit::record(
        gw,
        Event {
            kind: "mfa.enroll",
            user: Some(&p.user),
            method: Some("totp"),
            outcome: "success",
            ip: Some(ip),
            ..Default::default()
        },
    )
    .await;
    let landing = if codes.is_empty() {
        Landing::Notice {
            title: "Two-step verification is on",
            message: "Your authenticator app is set up.".into(),
        }
    } else {
        Landing::RecoveryCodes(codes)
    };
    finish_with(gw, p, MfaUsed::Totp, None, ip, ua, landing).await
}
