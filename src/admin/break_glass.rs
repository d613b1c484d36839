//! Break-glass on the admin API (DESIGN.md §12): `POST /api/v1/break-glass` arms emergency
//! access for named users and answers one single-use link each (shown once); `GET` shows who
//! is armed; `DELETE` disarms at once and ends every session it gave, on every replica (the
//! state is in the session store). Every step is audited with the acting token and mailed to
//! `[notify] admins`.

use super::error::{AdminError, BodyRefusal};
use super::reply::{created, ok};
use crate::accounts::normalise_user;
use crate::alerts;
use crate::audit;
use crate::auth::break_glass::{self as bg, Armed, Arming};
use crate::clock::rfc3339;
use crate::config::parse_duration;
use crate::http::{read_body, Conn};
use crate::manage::{self, Actor};
use crate::proxy::forward::GatewayBody;
use crate::session::{SessionId, SessionStore};
use crate::state::Gateway;
use hyper::body::Incoming;
use hyper::{Request, Response};
use serde::Deserialize;
use serde_json::{json, Value};

/// Longest reason kept (it goes to the audit log and the mails).
const MAX_REASON_CHARS: usize = 500;
/// Most users one request may arm.
const MAX_USERS: usize = 50;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ArmBody {
    users: Vec<String>,
    duration: String,
    reason: String,
    /// Fewer roles than `[break_glass] roles`, if the admin wants.
    #[serde(default)]
    roles: Option<Vec<String>>,
}

fn armed_json(a: &Armed) -> Value {
    json!({
        "user": a.user,
        "roles": a.roles,
        "armed_at": rfc3339(a.armed_at),
        "until": rfc3339(a.until),
        "reason": a.reason,
        "actor": a.actor,
    })
}

/// An arming as an admin asks for it, before any check.
pub struct ArmRequest<'a> {
    pub users: &'a [String],
    pub duration: &'a str,
    pub reason: &'a str,
    /// Fewer roles than `[break_glass] roles`; `None`: all of them.
    pub roles: Option<Vec<String>>,
}

/// Arms break-glass as every admin surface does: checks the request, arms, audits each user
/// with `actor`, mails the admins. Answers each user's single-use link (shown once) and end.
pub async fn arm_users(
    gw: &Gateway,
    r: ArmRequest<'_>,
    actor: Actor<'_>,
) -> Result<Vec<(String, String, i64)>, AdminError> {
    gw.accounts.as_ref().ok_or(AdminError::NoUserStore)?;
    if r.users.is_empty() || r.users.len() > MAX_USERS {
        return Err(AdminError::BadBody);
    }
    let mut users = Vec::new();
    for u in r.users {
        let n = normalise_user(u).ok_or(AdminError::BadUserName)?;
        if !users.contains(&n) {
            users.push(n);
        }
    }
    let window = parse_duration(r.duration).map_err(|_| AdminError::BadWindow)?;
    if window.is_zero() || window > gw.config.break_glass.max_window {
        return Err(AdminError::BadWindow);
    }
    let reason = r.reason.trim();
    if reason.is_empty() || reason.chars().count() > MAX_REASON_CHARS {
        return Err(AdminError::BadBody);
    }
    let allowed = &gw.config.break_glass.roles;
    let roles = r.roles.unwrap_or_else(|| allowed.clone());
    if roles.is_empty() {
        return Err(AdminError::NoRoles);
    }
    if roles.iter().any(|r| !allowed.contains(r)) {
        return Err(AdminError::UnknownRole);
    }
    let by = actor.reason();
    let now = gw.clock.now();
    let armed = bg::arm(
        &gw.store,
        now,
        &Arming {
            users: &users,
            roles: &roles,
            window,
            reason,
            actor: &by,
        },
    )
    .await?;
    let mut links = Vec::new();
    for (a, token) in &armed {
        manage::record_by(
            gw.accounts.as_deref(),
            now,
            actor,
            audit::Kind::BreakGlassArmed,
            Some(&a.user),
            Some(
                json!({"until": rfc3339(a.until), "roles": a.roles, "reason": a.reason})
                    .to_string(),
            ),
        )
        .await;
        let url = format!(
            "{}{}/break-glass?t={token}",
            gw.config.server.public_origin, gw.config.server.prefix
        );
        links.push((a.user.clone(), url, a.until));
    }
    alerts::break_glass(
        gw,
        &format!("armed for {}", users.join(", ")),
        &format!(
            "Armed by {by} until {} for: {}\r\nRoles: {}\r\nReason: {reason}",
            rfc3339(now.saturating_add(i64::try_from(window.as_secs()).unwrap_or(0))),
            users.join(", "),
            roles.join(", "),
        ),
    );
    Ok(links)
}

/// `POST /api/v1/break-glass`.
pub async fn arm(
    gw: &Gateway,
    req: Request<Incoming>,
    actor: &str,
    conn: Conn,
) -> Result<Response<GatewayBody>, AdminError> {
    gw.accounts.as_ref().ok_or(AdminError::NoUserStore)?;
    let body = read_body(gw, req.into_body())
        .await
        .map_err(|r| AdminError::BodyRefused(BodyRefusal(Box::new(r))))?;
    let b: ArmBody = serde_json::from_slice(&body).map_err(|_| AdminError::BadBody)?;
    let request = ArmRequest {
        users: &b.users,
        duration: &b.duration,
        reason: &b.reason,
        roles: b.roles,
    };
    let actor = Actor::Token {
        name: actor,
        ip: conn.peer.ip(),
    };
    let links: Vec<Value> = arm_users(gw, request, actor)
        .await?
        .into_iter()
        .map(|(user, url, until)| json!({"user": user, "url": url, "until": rfc3339(until)}))
        .collect();
    Ok(created(&json!({ "links": links })))
}

/// `GET /api/v1/break-glass`.
pub async fn status(gw: &Gateway) -> Result<Response<GatewayBody>, AdminError> {
    let armed = bg::status(&gw.store, gw.clock.now()).await?;
    let items: Vec<Value> = armed.iter().map(armed_json).collect();
    Ok(ok(&json!({ "armed": !items.is_empty(), "users": items })))
}

/// Ends the pending break-glass logins of `users` (`auth::native::revalidate` refuses every
/// step of a login begun before the mark).
async fn end_pending<'a>(
    gw: &Gateway,
    users: impl Iterator<Item = &'a str>,
) -> Result<(), AdminError> {
    for user in users {
        crate::auth::native::revoke_pending(
            &gw.store,
            &bg::principal(user),
            gw.clock.now(),
            gw.config.session.pending_ttl,
        )
        .await?;
    }
    Ok(())
}

/// Disarms as every admin surface does: links stop working, pending logins and the sessions
/// it gave end, audited with `actor` and mailed to the admins. Answers the users that were armed
/// and how many sessions ended.
pub async fn disarm_all(
    gw: &Gateway,
    actor: Actor<'_>,
) -> Result<(Vec<String>, usize), AdminError> {
    let (was, sessions) = bg::disarm(&gw.store, gw.clock.now()).await?;
    // Logins begun with a link and not finished end too, also if the user is armed again later.
    end_pending(gw, was.iter().map(|a| a.user.as_str())).await?;
    let mut ended = 0usize;
    for id in &sessions {
        if let Some(id) = SessionId::parse(id) {
            if gw.store.remove(&id).await?.is_some() {
                ended += 1;
            }
        }
    }
    let users: Vec<String> = was.into_iter().map(|a| a.user).collect();
    let detail = json!({"users": users, "sessions_ended": ended});
    manage::record_by(
        gw.accounts.as_deref(),
        gw.clock.now(),
        actor,
        audit::Kind::BreakGlassDisarmed,
        None,
        Some(detail.to_string()),
    )
    .await;
    alerts::break_glass(
        gw,
        "disarmed",
        &format!(
            "Disarmed by {}. Users: {}. Sessions ended: {ended}.",
            actor.reason(),
            if users.is_empty() {
                "none".to_owned()
            } else {
                users.join(", ")
            }
        ),
    );
    Ok((users, ended))
}

/// `DELETE /api/v1/break-glass`: disarms and ends the sessions it gave.
pub async fn disarm(
    gw: &Gateway,
    actor: &str,
    conn: Conn,
) -> Result<Response<GatewayBody>, AdminError> {
    let actor = Actor::Token {
        name: actor,
        ip: conn.peer.ip(),
    };
    let (users, ended) = disarm_all(gw, actor).await?;
    Ok(ok(&json!({"users": users, "sessions_ended": ended})))
}
