//! Sessions on the admin API (DESIGN.md §3, §6): listing, and terminating for real, so that
//! the very next request with an ended session is unauthenticated. Sessions belong to
//! principals: `user=alice` is the native user alice, another origin's user is named by its
//! principal (`oidc:…#sub`), as the list shows it. Ending a principal also ends its pending
//! logins, so a login already past the password cannot finish after an admin acted.

use super::error::AdminError;
use super::page;
use super::reply::{no_content, ok, set};
use crate::accounts::{native_principal, normalise_user};
use crate::clock::rfc3339;
use crate::http::{query_param, Conn};
use crate::manage::{self, Actor, SessionCtx};
use crate::proxy::forward::GatewayBody;
use crate::session::{Session, SessionId, SessionStore};
use crate::state::Gateway;
use hyper::Response;
use serde_json::{json, Value};

/// A session as the admin API lists it.
pub fn session_json(s: &Session) -> Value {
    let idle_end = s
        .last_seen()
        .saturating_add(i64::try_from(s.idle_timeout.as_secs()).unwrap_or(i64::MAX));
    json!({
        "id": s.id.as_str(),
        "user": s.identity.user,
        "principal": s.identity.principal,
        "roles": s.identity.roles,
        "method": s.identity.method.header_value(),
        "idp": s.identity.method.idp(),
        "mfa": s.identity.mfa.as_str(),
        "created_at": rfc3339(s.created_at),
        "last_seen_at": rfc3339(s.last_seen()),
        "expires_at": rfc3339(s.expires_at.min(idle_end)),
        "ip": s.ip,
        "user_agent": s.user_agent,
    })
}

/// The principal an admin names: a native user name, or a principal as sessions list it.
pub fn owner_of(user: &str) -> String {
    if user.contains(':') {
        user.to_owned()
    } else {
        native_principal(&normalise_user(user).unwrap_or_else(|| user.to_owned()))
    }
}

/// `GET /api/v1/sessions?user=`: a page of live sessions, of one principal if named.
pub async fn list_sessions(
    gw: &Gateway,
    q: Option<&str>,
) -> Result<Response<GatewayBody>, AdminError> {
    let limit = page::limit(q)?;
    let principal = query_param(q, "user").map(|u| owner_of(&u));
    let cursor = match query_param(q, "cursor") {
        Some(c) => Some(SessionId::parse(&c).ok_or(AdminError::BadCursor)?),
        None => None,
    };
    let mut items = gw
        .store
        .list(principal.as_deref(), cursor.as_ref(), limit + 1)
        .await?;
    let next = page::cut(&mut items, limit, |s| s.id.as_str().to_owned());
    let items: Vec<Value> = items.iter().map(|s| session_json(s)).collect();
    Ok(ok(&page::body(items, next)))
}

/// What a session action by token `actor` needs.
fn ctx<'g>(gw: &'g Gateway, actor: &'g str, conn: Conn) -> SessionCtx<'g> {
    SessionCtx {
        config: &gw.config,
        store: &gw.store,
        accounts: gw.accounts.as_deref(),
        now: gw.clock.now(),
        actor: Actor::Token {
            name: actor,
            ip: conn.peer.ip(),
        },
    }
}

/// `DELETE /api/v1/sessions/{id}`: ends one session.
pub async fn delete_session(
    gw: &Gateway,
    id: &str,
    actor: &str,
    conn: Conn,
) -> Result<Response<GatewayBody>, AdminError> {
    let id = SessionId::parse(id).ok_or(AdminError::NoSuchSession)?;
    manage::end_session(&ctx(gw, actor, conn), &id)
        .await?
        .ok_or(AdminError::NoSuchSession)?;
    Ok(no_content())
}

/// `DELETE /api/v1/users/{user}/sessions[?devices=true]`: ends all of a principal's sessions
/// and pending logins, and with `devices` forgets the native user's remembered devices.
pub async fn delete_user_sessions(
    gw: &Gateway,
    user: &str,
    devices: bool,
    actor: &str,
    conn: Conn,
) -> Result<Response<GatewayBody>, AdminError> {
    let (ended, forgotten) =
        manage::end_sessions_of(&ctx(gw, actor, conn), user, &owner_of(user), devices).await?;
    let mut body = json!({"terminated": ended});
    if let Some(n) = forgotten {
        set(&mut body, "devices_forgotten", json!(n));
    }
    Ok(ok(&body))
}
