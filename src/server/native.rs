//! Native login over HTTP (DESIGN.md §3): the password form at the native paths, then the
//! second-factor steps under the reserved prefix (`/mfa`, `/mfa/enroll`, `/mfa/email`). The
//! state machine and every credential check live in `auth::native`; this file turns their
//! outcomes into pages. Every POST carries a CSRF token bound to the login and is refused when
//! its `Origin` is another site's; every decision is audited; the session exists only once the
//! policy is satisfied, under a fresh cookie.

use super::login_pages::{self, Challenge, LoginForm};
use super::router::MfaStep;
use crate::accounts::{native_principal, Accounts};
use crate::audit::{self, Event};
use crate::auth::native::{
    self as login, configured_roles, ChosenPassword, CodeCheck, EnrollGate, FirstFactorVerified,
    MfaVerified, PasswordCheck, Stale, Typing,
};
use crate::auth::pending::{LoginMethod, PendingLogin, Stage};
use crate::auth::policy::{effective_policy, EffectivePolicy, LocalPath};
use crate::config::MfaMethod;
use crate::http::{
    client_ip, form_value, origin_ok, query_param, read_body, respond, set_cookie, store_error,
    user_agent, Conn, GatewayError,
};
use crate::mfa::{email, qr, totp, MfaError};
use crate::pages;
use crate::proxy::forward::GatewayBody;
use crate::secret::{ct_eq, Password, SessionToken};
use crate::session::{
    cookie, new_token, random_id, Identity, IdentityValueError, Session, SessionId, SessionStore,
};
use crate::state::Gateway;
use crate::storage::{RememberedDevice, StoreError, UserStore};
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine as _;
use hyper::body::Incoming;
use hyper::header::{HeaderMap, HeaderValue, RETRY_AFTER};
use hyper::{Method, Request, Response, StatusCode};
use std::net::IpAddr;
use std::sync::Arc;

const BAD_CREDENTIALS: &str = "Incorrect username or password.";
const LOCKED: &str =
    "Too many failed attempts. For your security, sign-in is paused for a while; try again later.";
const BAD_CODE: &str = "That code is not valid. Check it and try again.";
const EXPIRED: &str = "Your sign-in attempt has expired or was already completed.";

fn csrf_for(gw: &Gateway, nonce: &str) -> String {
    let tag = ring::hmac::sign(&gw.csrf_key, nonce.as_bytes());
    B64.encode(tag.as_ref().get(..24).unwrap_or_default())
}

fn accounts(gw: &Gateway) -> Option<&Accounts> {
    gw.accounts.as_ref()
}

fn first_native_path(gw: &Gateway) -> String {
    gw.config
        .native
        .as_ref()
        .and_then(|n| n.paths.first())
        .cloned()
        .unwrap_or_else(|| "/".into())
}

fn expired_page(gw: &Gateway) -> Response<GatewayBody> {
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

fn invalid_link_page(gw: &Gateway) -> Response<GatewayBody> {
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
async fn stale(
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
async fn show_login(gw: &Gateway, req: &Request<Incoming>, path: &str) -> Response<GatewayBody> {
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

fn login_form_response(
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
    let mut r = login_pages::login_form(
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

async fn audit_failure(gw: &Gateway, user: &str, outcome: &str, reason: &str, ip: IpAddr) {
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

/// What the browser brought to the first factor, for the steps after it.
pub struct Next<'a> {
    /// The remembered-device cookie, if any.
    pub device: Option<&'a str>,
    /// The enrollment invitation the password step came through, if any.
    pub invite: Option<&'a str>,
    pub ip: IpAddr,
    pub ua: Option<String>,
}

/// Decides the next step once the first factor (password or SSO) is proven: a session when no
/// second factor is needed (or a remembered device satisfies it), else the challenge or, for a
/// principal without any factor, enrollment (through an invitation where the config asks).
pub async fn after_first_factor(
    gw: &Gateway,
    _proof: FirstFactorVerified,
    mut pending: PendingLogin,
    policy: &EffectivePolicy,
    next: Next<'_>,
) -> Response<GatewayBody> {
    let Next {
        device,
        invite,
        ip,
        ua,
    } = next;
    // DESIGN.md §6: an identity value that cannot be sent exactly refuses the login here,
    // before any second factor is asked for.
    let probe = SessionId::of(&SessionToken::new(String::new()));
    if let Err(e) = pending
        .identity(crate::session::MfaUsed::None)
        .check_values(&probe)
    {
        return refuse_identity(gw, &pending, e, ip).await;
    }
    if let Some(v) = MfaVerified::not_required(policy) {
        return finish(gw, &pending, v, None, ip, ua).await;
    }
    let Some(acc) = accounts(gw) else {
        return respond(gw, GatewayError::NoLogin, true);
    };
    let now = gw.clock.now();
    if let Some(token) = device.filter(|_| pending.remember_secs > 0) {
        match login::device_remembered(acc, &pending.principal, token, pending.remember_secs, now)
            .await
        {
            Ok(Some(v)) => {
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
                return finish(gw, &pending, v, None, ip, ua).await;
            }
            Ok(None) => {}
            Err(e) => return store_error(gw, e),
        }
    }
    // Enrollment is for principals with nothing at all; recovery codes alone still let one in.
    let has_factor = match login::has_factor(acc, &pending.principal, now).await {
        Ok(b) => b,
        Err(e) => return store_error(gw, e),
    };
    if !has_factor {
        match login::enroll_gate(acc, &gw.config, &pending, invite, now).await {
            Ok(EnrollGate::Open(invite)) => {
                pending.stage = match login::enroll_stage(acc, &pending.principal, invite) {
                    Ok(s) => s,
                    Err(e) => return store_error(gw, e),
                };
            }
            Ok(EnrollGate::NeedsInvite) => {
                audit_failure(gw, &pending.user, "refused", "enrollment_needs_invite", ip).await;
                return gw.chrome.error_page(
                    StatusCode::FORBIDDEN,
                    "Use your enrollment link",
                    "Your account has no two-step verification yet. It is set up through the enrollment link sent to you, not from this page.",
                    "Open the enrollment link from your email, or ask your administrator for a new one.",
                    &random_id(9),
                );
            }
            Err(e) => return store_error(gw, e),
        }
    }
    let next = match pending.stage {
        Stage::Challenge => "/mfa",
        Stage::Enroll { .. } => "/mfa/enroll",
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

/// A login whose identity cannot be sent upstream exactly (DESIGN.md §6).
async fn refuse_identity(
    gw: &Gateway,
    p: &PendingLogin,
    e: IdentityValueError,
    ip: IpAddr,
) -> Response<GatewayBody> {
    let reason = e.to_string();
    let method = p.method.as_header();
    let correlation = random_id(9);
    tracing::warn!(correlation = %correlation, error = %e, "login refused: identity value cannot be forwarded");
    audit::record(
        gw,
        Event {
            kind: "login.failure",
            // The name itself may be what cannot be shown; the principal is safe to store.
            user: Some(&p.principal),
            method: Some(&method),
            outcome: "refused",
            reason: Some(&reason),
            ip: Some(ip),
            detail: Some(serde_json::json!({ "correlation": correlation }).to_string()),
            ..Default::default()
        },
    )
    .await;
    gw.chrome.error_page(
        StatusCode::FORBIDDEN,
        "Account cannot be used here",
        "Your account's name, email or groups contain characters that cannot be passed on to the application safely, so the sign-in was refused.",
        "Ask your administrator to check your account details, and quote the reference.",
        &correlation,
    )
}

fn pending_key(id: &SessionId) -> String {
    format!("pending:{}", id.as_str())
}

/// Stores a pending login under a new cookie; returns the Set-Cookie.
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
    mfa: MfaVerified,
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
    mfa: MfaVerified,
    remember: Option<&Accounts>,
    ip: IpAddr,
    ua: Option<String>,
    landing: Landing,
) -> Response<GatewayBody> {
    let used = mfa.used();
    let identity = pending.identity(used);
    let (token, session) = match create_session(gw, identity, ip, ua.clone()).await {
        Ok(x) => x,
        Err(CreateError::Store(e)) => return store_error(gw, e),
        Err(CreateError::Identity(e)) => return refuse_identity(gw, pending, e, ip).await,
    };
    if let Some(link) = &pending.sso {
        super::sso::link_session(gw, &session, link).await;
    }
    let method = pending.method.as_header();
    audit::record(
        gw,
        Event {
            kind: "login.success",
            user: Some(&pending.user),
            method: Some(&method),
            outcome: "success",
            reason: Some(used.as_str()),
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
            token_hash: email::hash_email_code(&device_token),
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

/// Why a session could not be made.
#[derive(Debug, thiserror::Error)]
pub enum CreateError {
    #[error(transparent)]
    Store(#[from] StoreError),
    /// An identity value cannot be sent upstream exactly: the login is refused.
    #[error(transparent)]
    Identity(#[from] IdentityValueError),
}

/// A new session for `identity` under the strictest policy of its roles.
pub async fn create_session(
    gw: &Gateway,
    identity: Identity,
    ip: IpAddr,
    ua: Option<String>,
) -> Result<(SessionToken, Arc<Session>), CreateError> {
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
    )?;
    let s = gw.store.insert(s).await?;
    Ok((token, s))
}

/// `/mfa`, `/mfa/enroll`, `/mfa/email`: the steps of a pending login, each re-validated first.
pub async fn mfa_entry(
    gw: &Arc<Gateway>,
    req: Request<Incoming>,
    conn: Conn,
    step: MfaStep,
) -> Response<GatewayBody> {
    let Some(acc) = accounts(gw) else {
        return pages::json_error(
            StatusCode::NOT_FOUND,
            "not_found",
            "No such gateway endpoint.",
        );
    };
    let method = req.method().clone();
    if method == Method::POST && !origin_ok(gw, req.headers()) {
        return cross_site(gw);
    }
    let (id, pending) = match load_pending(gw, req.headers()).await {
        Ok(Some(x)) => x,
        Ok(None) => return expired_page(gw),
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
    let enrolling = matches!(pending.stage, Stage::Enroll { .. });
    match (step, &method, enrolling) {
        (MfaStep::Challenge, &Method::GET, false) => {
            challenge_page(gw, acc, &pending, StatusCode::OK, None, None)
        }
        (MfaStep::Enroll, &Method::GET, true) => {
            enroll_page(gw, acc, &id, &pending, StatusCode::OK, None, ip).await
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
                return forbidden_form(gw);
            }
            match (step, enrolling) {
                (MfaStep::Challenge, false) => {
                    submit_challenge(gw, acc, &id, &pending, &form, ip, ua).await
                }
                (MfaStep::Enroll, true) => {
                    submit_enroll(gw, acc, &id, &pending, &form, ip, ua).await
                }
                (MfaStep::Email, false) => send_email_code(gw, acc, &id, &pending, ip).await,
                // A step this stage does not have (e.g. enrolling from a challenge): refused
                // from the stage alone, before any check runs; the login itself stays as it was.
                _ => {
                    audit_failure(gw, &pending.user, "refused", "illegal_step", ip).await;
                    expired_page(gw)
                }
            }
        }
        _ => pages::json_error(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            "This method is not allowed here.",
        ),
    }
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
    let allowed = login::allowed(&gw.config, acc, p);
    let email_hint = allowed
        .email
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
            recovery: allowed.recovery,
            error,
            notice,
        },
    )
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
    let code = form_value(form, "code").unwrap_or_default();
    let remember = form_value(form, "remember").is_some_and(|v| v == "1" || v == "on");
    let typed_name = login::classify(&code).name();
    let allowed = login::allowed(&gw.config, acc, p);
    let typing = Typing {
        code: &code,
        now: gw.clock.now(),
        ip,
    };
    let checked = login::check_code(
        acc,
        &gw.store,
        &p.principal,
        &p.user,
        Some(id.as_str()),
        &allowed,
        typing,
    )
    .await;
    let (verified, left) = match checked {
        Ok(CodeCheck::Verified(v, left)) => (v, left),
        Ok(CodeCheck::Locked) => {
            return challenge_page(
                gw,
                acc,
                p,
                StatusCode::TOO_MANY_REQUESTS,
                Some(LOCKED),
                None,
            )
        }
        Ok(CodeCheck::Refused { error, locked_now }) => {
            return refused_code(gw, acc, p, typed_name, &error, locked_now, ip).await
        }
        // DESIGN.md §6: a store failing mid-check is a 503, never "wrong code".
        Err(e) => return store_error(gw, e),
    };
    // Single use of the pending login itself: a second tab cannot finish it again.
    match gw.store.take_ephemeral(&pending_key(id)).await {
        Ok(Some(_)) => {}
        Ok(None) => return expired_page(gw),
        Err(e) => return store_error(gw, e),
    }
    audit::record(
        gw,
        Event {
            kind: "mfa.success",
            user: Some(&p.user),
            method: Some(verified.used().as_str()),
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
            finish_with(gw, p, verified, remember_acc, ip, ua, landing).await
        }
        None => finish(gw, p, verified, remember_acc, ip, ua).await,
    }
}

/// A refused code: audited (and the lockout it started), answered on the challenge page.
async fn refused_code(
    gw: &Gateway,
    acc: &Accounts,
    p: &PendingLogin,
    typed_name: &str,
    error: &MfaError,
    locked_now: bool,
    ip: IpAddr,
) -> Response<GatewayBody> {
    let reason = error.to_string();
    audit::record(
        gw,
        Event {
            kind: "mfa.failure",
            user: Some(&p.user),
            method: Some(typed_name),
            outcome: "failure",
            reason: Some(&reason),
            ip: Some(ip),
            ..Default::default()
        },
    )
    .await;
    if locked_now {
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
    let msg = match error {
        MfaError::CodeReused => "That code was already used. Wait for the next code and try again.",
        _ => BAD_CODE,
    };
    challenge_page(gw, acc, p, StatusCode::UNAUTHORIZED, Some(msg), None)
}

async fn send_email_code(
    gw: &Gateway,
    acc: &Accounts,
    id: &SessionId,
    p: &PendingLogin,
    ip: IpAddr,
) -> Response<GatewayBody> {
    let unavailable = || {
        challenge_page(
            gw,
            acc,
            p,
            StatusCode::BAD_REQUEST,
            Some("Email codes are not available for this account."),
            None,
        )
    };
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

/// The enrollment page of an `Enroll` pending login: always the secret made for it.
async fn enroll_page(
    gw: &Gateway,
    acc: &Accounts,
    id: &SessionId,
    p: &PendingLogin,
    status: StatusCode,
    error: Option<&str>,
    ip: IpAddr,
) -> Response<GatewayBody> {
    // Someone enrolled this principal since the login started: never show a secret that could
    // replace their factor.
    match acc.users.get_totp(&p.principal).await {
        Ok(Some(f)) if f.confirmed => {
            return stale(gw, id, p, Stale::FactorsChanged, ip).await;
        }
        Ok(_) => {}
        Err(e) => return store_error(gw, e),
    }
    let Some(seed) = login::enrollment_seed(acc, p) else {
        return expired_page(gw);
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
    let code = form_value(form, "code").unwrap_or_default();
    let now = gw.clock.now();
    let verified = match login::confirm_enrollment(acc, &gw.store, p, &code, now, ip).await {
        Ok(Ok(CodeCheck::Verified(v, _))) => v,
        Ok(Ok(CodeCheck::Locked)) => {
            return enroll_page(
                gw,
                acc,
                id,
                p,
                StatusCode::TOO_MANY_REQUESTS,
                Some(LOCKED),
                ip,
            )
            .await
        }
        Ok(Ok(CodeCheck::Refused { .. })) => {
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
            return enroll_page(gw, acc, id, p, StatusCode::UNAUTHORIZED, Some(BAD_CODE), ip).await;
        }
        Ok(Err(why)) => return stale(gw, id, p, why, ip).await,
        Err(e) => return store_error(gw, e),
    };
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
    finish_with(gw, p, verified, None, ip, ua, landing).await
}
