//! How a login ends: the step after the first factor (a session, a remembered device, the
//! challenge or enrollment), the pending login's storage under its own cookie, and the session
//! itself under a fresh cookie. Shared by the native login and every SSO kind.

use super::error::{accounts, audit_failure, page, LoginError};
use super::views::{self};
use crate::accounts::Accounts;
use crate::audit::{self, Event};
use crate::auth::break_glass;
use crate::auth::native::Stale;
use crate::auth::native::{self as login, EnrollGate, FirstFactorVerified, MfaVerified};
use crate::auth::pending::SsoLink;
use crate::auth::pending::{LoginMethod, PendingLogin, Stage};
use crate::auth::policy::{effective_policy, EffectivePolicy, LocalPath};
use crate::http::{respond, set_cookie, store_error, GatewayError};
use crate::mfa::email;
use crate::pages;
use crate::proxy::forward::GatewayBody;
use crate::secret::SessionToken;
use crate::session::links::{self, SessionLink};
use crate::session::{
    cookie, new_token, random_id, Identity, IdentityValueError, Session, SessionId, SessionStore,
};
use crate::state::Gateway;
use crate::storage::{RememberedDevice, StoreError, UserStore};
use hyper::header::HeaderMap;
use hyper::Response;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

/// The cookies an SSO callback reads before its body: the remembered-MFA device and the
/// known device of the new-device notice (signature checked).
pub struct BrowserCookies {
    pub remembered: Option<String>,
    pub known: Option<String>,
}

impl BrowserCookies {
    pub fn of(gw: &Gateway, headers: &HeaderMap) -> BrowserCookies {
        BrowserCookies {
            remembered: cookie::get(headers, gw.cookies.device).map(str::to_owned),
            known: crate::alerts::known_device(gw, headers),
        }
    }
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
                        user: Some(&pending.user),
                        method: Some("remembered_device"),
                        ip: Some(ip),
                        ..Event::new(audit::Kind::MfaSuccess, audit::Outcome::Success)
                    },
                )
                .await;
                return finish(gw, &pending, v, None, ip, ua).await;
            }
            Ok(None) => {}
            Err(e) => return store_error(gw, e),
        }
    }
    // Enrollment is for principals with no factor their roles accept; recovery codes alone
    // still let one in where the roles accept them.
    let allowed = login::allowed(&gw.config, acc, &pending);
    if !(allowed.totp || allowed.email || allowed.recovery || allowed.webauthn) {
        audit_failure(
            gw,
            &pending.user,
            audit::Outcome::Refused,
            "no_allowed_factor",
            ip,
        )
        .await;
        return page(gw, LoginError::NoAllowedFactor);
    }
    let mut has_factor =
        match login::has_allowed_factor(acc, &pending.principal, &allowed, now).await {
            Ok(b) => b,
            Err(e) => return store_error(gw, e),
        };
    // Nothing the roles accept can be enrolled (neither an app nor a passkey): email codes,
    // when accepted, are the factor; else a clear refusal rather than an enrollment page
    // without a way on.
    if !(has_factor || allowed.totp || allowed.webauthn) {
        if !allowed.email {
            audit_failure(
                gw,
                &pending.user,
                audit::Outcome::Refused,
                "no_enrollable_factor",
                ip,
            )
            .await;
            return page(gw, LoginError::NoAllowedFactor);
        }
        has_factor = true;
    }
    if allowed.webauthn {
        pending.passkeys = match acc.users.list_passkeys(&pending.principal).await {
            Ok(l) => !l.is_empty(),
            Err(e) => return store_error(gw, e),
        };
    }
    if !has_factor {
        match login::enroll_gate(acc, &gw.config, &pending, invite, now).await {
            Ok(EnrollGate::Open(invite)) => {
                pending.stage = match login::enroll_stage(acc, &pending.principal, invite) {
                    Ok(s) => s,
                    Err(e) => return store_error(gw, e),
                };
            }
            Ok(EnrollGate::NeedsInvite) => {
                audit_failure(
                    gw,
                    &pending.user,
                    audit::Outcome::Refused,
                    "enrollment_needs_invite",
                    ip,
                )
                .await;
                return page(gw, LoginError::NeedsInvite);
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
pub(crate) async fn refuse_identity(
    gw: &Gateway,
    p: &PendingLogin,
    e: IdentityValueError,
    ip: IpAddr,
) -> Response<GatewayBody> {
    let reason = e.to_string();
    let method = p.method.as_header();
    tracing::warn!(error = %e, "login refused: identity value cannot be forwarded");
    audit::record(
        gw,
        Event {
            // The name itself may be what cannot be shown; the principal is safe to store.
            user: Some(&p.principal),
            method: Some(&method),
            reason: Some(&reason),
            ip: Some(ip),
            ..Event::new(audit::Kind::LoginFailure, audit::Outcome::Refused)
        },
    )
    .await;
    page(gw, LoginError::UnusableIdentity)
}

pub(crate) fn pending_key(id: &SessionId) -> String {
    format!("pending:{}", id.as_str())
}

/// Stores a pending login under a new cookie; returns the Set-Cookie.
pub(crate) async fn save_pending(gw: &Gateway, p: &PendingLogin) -> Result<String, StoreError> {
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

pub(crate) async fn load_pending(
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
pub(crate) enum Landing {
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

/// The landing after a login enrolled its first factor: recovery codes, shown once, where the
/// login's roles accept them; else a notice saying `set_up`. Both enrollments (app, passkey)
/// come here, so the roles narrow recovery codes the same way for both.
pub(crate) async fn enrolled_landing(
    gw: &Gateway,
    acc: &Accounts,
    p: &PendingLogin,
    set_up: &str,
    now: i64,
) -> Result<Landing, StoreError> {
    if !login::allowed(&gw.config, acc, p).recovery {
        return Ok(Landing::Notice {
            title: "Two-step verification is on",
            message: set_up.to_owned(),
        });
    }
    let codes = acc
        .issue_recovery_codes(
            &p.principal,
            gw.config.mfa.recovery_count,
            gw.config.mfa.recovery_ttl,
            now,
        )
        .await?;
    Ok(Landing::RecoveryCodes(
        codes.iter().map(|c| c.expose().to_owned()).collect(),
    ))
}

pub(crate) async fn finish_with(
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
    // Break-glass (DESIGN.md §12): only while armed, and never past the window's end.
    let armed = match &pending.method {
        LoginMethod::BreakGlass => {
            match break_glass::armed_for(&gw.store, &pending.user, gw.clock.now()).await {
                Ok(Some(a)) => Some(a),
                Ok(None) => return page(gw, LoginError::BreakGlassInvalid),
                Err(e) => return store_error(gw, e),
            }
        }
        _ => None,
    };
    let until = armed.as_ref().map(|a| a.until);
    let (token, session) = match create_session(gw, identity, ip, ua.clone(), until).await {
        Ok(x) => x,
        Err(CreateError::Store(e)) => return store_error(gw, e),
        Err(CreateError::Identity(e)) => return refuse_identity(gw, pending, e, ip).await,
    };
    if let Some(link) = &pending.sso {
        link_session(gw, &session, link).await;
    }
    if let Some(a) = &armed {
        match break_glass_session(gw, a, &session, ip).await {
            Ok(true) => {}
            // Disarmed (or re-armed) while this session was made: it must not outlive that.
            Ok(false) => {
                let _ = gw.store.remove(&session.id).await;
                return page(gw, LoginError::BreakGlassInvalid);
            }
            Err(e) => {
                // Without the record a disarm could not end it: no session rather than that one.
                let _ = gw.store.remove(&session.id).await;
                return store_error(gw, e);
            }
        }
    }
    let method = pending.method.as_header();
    audit::record(
        gw,
        Event {
            user: Some(&pending.user),
            method: Some(&method),
            reason: Some(used.as_str()),
            ip: Some(ip),
            session: Some(session.id.as_str()),
            ..Event::new(audit::Kind::LoginSuccess, audit::Outcome::Success)
        },
    )
    .await;
    let next = LocalPath::parse(&pending.rd)
        .unwrap_or_else(LocalPath::root)
        .absolute(&gw.config.server.public_origin);
    let mut r = match landing {
        Landing::Redirect => pages::redirect(&next),
        Landing::Notice { title, message } => views::notice(
            &gw.chrome,
            title,
            &message,
            &next,
            gw.chrome.t(crate::pages::Msg::Continue),
        ),
        Landing::RecoveryCodes(codes) => views::recovery_codes(&gw.chrome, &codes, &next),
    };
    set_cookie(
        &mut r,
        &gw.cookies.set(gw.cookies.session, token.expose(), None),
    );
    set_cookie(&mut r, &gw.cookies.clear(gw.cookies.pending));
    // DESIGN.md §12: the new-device and recovery-code notices; never block the sign-in.
    if let Some(c) = crate::alerts::signed_in(gw, pending, used, ip, ua.as_deref()).await {
        set_cookie(&mut r, &c);
    }
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

/// A new session for `identity` under the strictest policy of its roles, ending at `until`
/// at the latest (a break-glass window).
pub async fn create_session(
    gw: &Gateway,
    identity: Identity,
    ip: IpAddr,
    ua: Option<String>,
    until: Option<i64>,
) -> Result<(SessionToken, Arc<Session>), CreateError> {
    let policy = effective_policy(&gw.config, &identity.roles);
    let token = new_token()?;
    let id = SessionId::of(&token);
    let now = gw.clock.now();
    let max_lifetime = match until {
        Some(end) => policy.max_lifetime.min(Duration::from_secs(
            u64::try_from(end.saturating_sub(now)).unwrap_or(0),
        )),
        None => policy.max_lifetime,
    };
    let s = Session::new(
        id,
        identity,
        now,
        max_lifetime,
        policy.idle_timeout,
        Some(ip.to_string()),
        ua,
    )?;
    let s = gw.store.insert(s).await?;
    Ok((token, s))
}

/// A break-glass session exists: recorded for disarming, then kept only if its arming still
/// holds (`Ok(false)`: a disarm ran meanwhile), audited, mailed to the admins.
async fn break_glass_session(
    gw: &Gateway,
    a: &break_glass::Armed,
    s: &Session,
    ip: IpAddr,
) -> Result<bool, StoreError> {
    break_glass::record_session(&gw.store, s.id.as_str(), a, gw.clock.now()).await?;
    if !break_glass::still_armed(&gw.store, a, gw.clock.now()).await? {
        return Ok(false);
    }
    let detail = serde_json::json!({ "until": crate::clock::rfc3339(a.until), "roles": a.roles });
    audit::record(
        gw,
        Event {
            user: Some(&a.user),
            method: Some("break_glass"),
            ip: Some(ip),
            session: Some(s.id.as_str()),
            detail: Some(detail.to_string()),
            ..Event::new(audit::Kind::BreakGlassSession, audit::Outcome::Success)
        },
    )
    .await;
    crate::alerts::break_glass(
        gw,
        &format!("session for {}", a.user),
        &format!(
            "{} passed the second factor from {ip} and has a session until {}\r\n(roles: {}).",
            a.user,
            crate::clock::rfc3339(a.until),
            a.roles.join(", ")
        ),
    );
    Ok(true)
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
            user: Some(&p.user),
            method: Some(&method),
            reason: Some(&reason),
            ip: Some(ip),
            ..Event::new(audit::Kind::LoginFailure, audit::Outcome::Refused)
        },
    )
    .await;
    page(gw, LoginError::Stale)
}

/// Records which IdP login a new session came from (for every kind of logout). Failures are
/// logged: the session stays valid and can still be ended locally and by the admin API.
pub async fn link_session(gw: &Gateway, session: &Session, link: &SsoLink) {
    let record = SessionLink {
        idp: link.idp.clone(),
        id_token: link.id_token.clone(),
        sub: link.sub.clone(),
        sid: link.sid.clone(),
        name_id_format: link.name_id_format.clone(),
    };
    if let Err(e) = links::add(&gw.store, gw.clock.now(), session, &record).await {
        tracing::warn!(error = %e, idp = %link.idp, "session not linked to its idp login");
    }
}
