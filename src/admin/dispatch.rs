//! One admin request, from route to answer: find the route in `routes::ROUTES` (404, or 405
//! with `Allow`, otherwise), require a bearer token where the route does, refuse query
//! parameters the route does not list (400), run the handler, and turn its `AdminError` into
//! a response in `error::respond`, the only place that does.

use super::error::{respond, AdminError};
use super::routes::{self, Op};
use super::{audit, auth, break_glass, health, openapi, reload, reply, sessions, users};
use crate::http::{query_param, Conn};
use crate::proxy::forward::GatewayBody;
use crate::server::reload::Live;
use crate::state::Gateway;
use hyper::body::Incoming;
use hyper::{Request, Response};
use std::sync::Arc;

/// Answers one admin request with `gw`, the state in force (`live` only for a reload).
pub async fn handle(
    live: &Live,
    gw: &Arc<Gateway>,
    req: Request<Incoming>,
    conn: Conn,
) -> Response<GatewayBody> {
    match route(live, gw, req, conn).await {
        Ok(r) => r,
        Err(e) => respond(&gw.metrics, e),
    }
}

async fn route(
    live: &Live,
    gw: &Gateway,
    req: Request<Incoming>,
    conn: Conn,
) -> Result<Response<GatewayBody>, AdminError> {
    let path = req.uri().path().to_owned();
    let (route, caps) = routes::find(req.method().as_str(), &path).map_err(|allowed| {
        if allowed.is_empty() {
            AdminError::NoSuchEndpoint
        } else {
            AdminError::MethodNotAllowed(allowed)
        }
    })?;
    let actor = if route.auth {
        auth::actor(gw, &req, conn, route)?
    } else {
        String::new()
    };
    let cap = |i: usize| caps.get(i).cloned().unwrap_or_default();
    let q = req.uri().query().map(str::to_owned);
    let q = q.as_deref();
    // After the token: an unauthenticated caller learns nothing about an endpoint's parameters.
    if !routes::query_allowed(route, q) {
        return Err(AdminError::BadQuery);
    }
    match route.op {
        Op::Healthz => Ok(health::healthz()),
        Op::Readyz => Ok(health::readyz(gw).await),
        Op::Metrics => Ok(health::metrics(gw).await),
        Op::OpenApi => Ok(reply::ok(&openapi::document())),
        Op::ListSessions => sessions::list_sessions(gw, q).await,
        Op::DeleteSession => sessions::delete_session(gw, &cap(0), &actor, conn).await,
        Op::DeleteUserSessions => {
            let devices = query_param(q, "devices").is_some_and(|v| v == "true" || v == "1");
            sessions::delete_user_sessions(gw, &cap(0), devices, &actor, conn).await
        }
        Op::ListUsers => users::list_users(gw, q).await,
        Op::CreateUser => users::create_user(gw, req, &actor, conn).await,
        Op::GetUser => users::get_user(gw, &cap(0)).await,
        Op::DisableUser => users::set_disabled(gw, &cap(0), true, &actor, conn).await,
        Op::EnableUser => users::set_disabled(gw, &cap(0), false, &actor, conn).await,
        Op::ResetMfa => users::reset_mfa(gw, &cap(0), &actor, conn).await,
        Op::IssueRecoveryCodes => users::recovery_codes(gw, req, &cap(0), &actor, conn).await,
        Op::SetPassword => users::set_password(gw, req, &cap(0), &actor, conn).await,
        Op::UpdateUser => users::update_user(gw, req, &cap(0), &actor, conn).await,
        Op::DeleteUser => users::delete_user(gw, &cap(0), &actor, conn).await,
        Op::Audit => audit::audit_events(gw, q).await,
        Op::ArmBreakGlass => break_glass::arm(gw, req, &actor, conn).await,
        Op::BreakGlassStatus => break_glass::status(gw).await,
        Op::DisarmBreakGlass => break_glass::disarm(gw, &actor, conn).await,
        Op::Reload => Ok(reload::reload(live, &actor).await),
    }
}
