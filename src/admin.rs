//! The admin listener (DESIGN.md §3): sessions that really end, native users, recovery codes,
//! the audit log, metrics, health. Bearer tokens are compared as SHA-256 hashes in constant
//! time. Not served on the public listener. Every change is an audit event.

pub mod openapi;
pub mod routes;

use crate::accounts::{native_principal, normalise_user};
use crate::audit::{self, Event};
use crate::clock::{parse_rfc3339, rfc3339};
use crate::http::{query_param, read_body, Conn};
use crate::pages::{json_error, json_response};
use crate::proxy::forward::GatewayBody;
use crate::secret::{ct_eq, Password};
use crate::session::{Session, SessionId, SessionStore};
use crate::state::Gateway;
use crate::storage::{AuditQuery, StoreError, User, UserStore};
use hyper::body::Incoming;
use hyper::header::{HeaderValue, AUTHORIZATION, CONTENT_TYPE};
use hyper::{Request, Response, StatusCode};
use openapi::set;
use routes::Op;
use serde::Deserialize;
use serde_json::{json, Value};
use std::sync::Arc;

const DEFAULT_PAGE: usize = 100;
const MAX_PAGE: usize = 500;

/// The name of the configured token that `Authorization: Bearer …` matches, if any.
fn authenticate(gw: &Gateway, req: &Request<Incoming>) -> Option<String> {
    let admin = gw.config.admin.as_ref()?;
    let header = req.headers().get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = header.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let digest = ring::digest::digest(&ring::digest::SHA256, token.trim().as_bytes());
    // Compare against every configured hash, without an early exit.
    let mut found = None;
    for t in &admin.tokens {
        if ct_eq(&t.sha256, digest.as_ref()) {
            found = Some(t.name.clone());
        }
    }
    found
}

fn unauthorized() -> Response<GatewayBody> {
    let mut r = json_error(
        StatusCode::UNAUTHORIZED,
        "unauthorized",
        "A valid bearer token is required.",
    );
    r.headers_mut()
        .insert("www-authenticate", HeaderValue::from_static("Bearer"));
    r
}

fn store_unavailable(gw: &Gateway, e: &StoreError) -> Response<GatewayBody> {
    gw.metrics.store_error();
    tracing::warn!(error = %e, "admin request failed: store unavailable");
    json_error(
        StatusCode::SERVICE_UNAVAILABLE,
        "unavailable",
        "A store is unreachable.",
    )
}

#[allow(clippy::result_large_err)] // the error is the finished response, returned once
fn page_limit(q: Option<&str>) -> Result<usize, Response<GatewayBody>> {
    match query_param(q, "limit") {
        None => Ok(DEFAULT_PAGE),
        Some(v) => match v.parse::<usize>() {
            Ok(n) if (1..=MAX_PAGE).contains(&n) => Ok(n),
            _ => Err(json_error(
                StatusCode::BAD_REQUEST,
                "bad_request",
                "limit must be between 1 and 500.",
            )),
        },
    }
}

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

async fn user_json(gw: &Gateway, u: &User) -> Value {
    let mut v = json!({
        "username": u.username,
        "email": u.email,
        "roles": u.roles,
        "disabled": u.disabled,
        "created_at": rfc3339(u.created_at),
    });
    if let Some(acc) = &gw.accounts {
        let p = native_principal(&u.username);
        let now = gw.clock.now();
        if let Ok(t) = acc.users.get_totp(&p).await {
            set(&mut v, "totp", json!(t.is_some_and(|t| t.confirmed)));
        }
        if let Ok(n) = acc.users.count_recovery_codes(&p, now).await {
            set(&mut v, "recovery_codes_left", json!(n));
        }
    }
    v
}

/// Answers one admin request.
pub async fn handle(
    gw: &Arc<Gateway>,
    req: Request<Incoming>,
    conn: Conn,
) -> Response<GatewayBody> {
    let path = req.uri().path().to_owned();
    let (route, caps) = match routes::find(req.method().as_str(), &path) {
        Ok(x) => x,
        Err(true) => {
            return json_error(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "This method is not allowed here.",
            )
        }
        Err(false) => {
            return json_error(
                StatusCode::NOT_FOUND,
                "not_found",
                "No such admin endpoint.",
            )
        }
    };
    let actor = if route.auth {
        match authenticate(gw, &req) {
            Some(name) => name,
            None => {
                tracing::info!(target: "audit", kind = "admin.unauthorized", ip = %conn.peer.ip(), path = %path, "admin request without a valid token");
                return unauthorized();
            }
        }
    } else {
        String::new()
    };
    let cap = |i: usize| caps.get(i).cloned().unwrap_or_default();
    let q = req.uri().query().map(str::to_owned);
    let q = q.as_deref();
    match route.op {
        Op::Healthz => json_response(StatusCode::OK, &json!({"status": "ok"})),
        Op::Readyz => readyz(gw).await,
        Op::Metrics => {
            let active = gw.store.count().await.ok();
            let mut r = Response::new(GatewayBody::from(gw.metrics.render(active)));
            r.headers_mut().insert(
                CONTENT_TYPE,
                HeaderValue::from_static("text/plain; version=0.0.4"),
            );
            r
        }
        Op::OpenApi => json_response(StatusCode::OK, &openapi::document()),
        Op::ListSessions => list_sessions(gw, q).await,
        Op::DeleteSession => delete_session(gw, &cap(0), &actor, conn).await,
        Op::DeleteUserSessions => {
            let devices = query_param(q, "devices").is_some_and(|v| v == "true" || v == "1");
            delete_user_sessions(gw, &cap(0), devices, &actor, conn).await
        }
        Op::ListUsers => list_users(gw, q).await,
        Op::CreateUser => create_user(gw, req, &actor, conn).await,
        Op::GetUser => get_user(gw, &cap(0)).await,
        Op::DisableUser => set_disabled(gw, &cap(0), true, &actor, conn).await,
        Op::EnableUser => set_disabled(gw, &cap(0), false, &actor, conn).await,
        Op::ResetMfa => reset_mfa(gw, &cap(0), &actor, conn).await,
        Op::IssueRecoveryCodes => recovery_codes(gw, req, &cap(0), &actor, conn).await,
        Op::Audit => audit_events(gw, q).await,
    }
}

async fn readyz(gw: &Gateway) -> Response<GatewayBody> {
    let sessions = gw.store.ping().await.is_ok();
    let users = match &gw.accounts {
        Some(acc) => acc.users.ping().await.is_ok(),
        None => true,
    };
    // OIDC providers load in the background; not ready until every one has its metadata.
    let idps = gw.oidc.ready() && gw.saml.ready();
    let ok = sessions && users && idps;
    let status = if ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    json_response(
        status,
        &json!({"status": if ok { "ready" } else { "unavailable" }, "checks": {"session_store": sessions, "user_store": users, "idp_metadata": idps}}),
    )
}

async fn record_admin(
    gw: &Gateway,
    kind: &str,
    user: Option<&str>,
    actor: &str,
    conn: Conn,
    detail: Option<String>,
) {
    let reason = format!("token:{actor}");
    audit::record(
        gw,
        Event {
            kind,
            user,
            method: Some("admin"),
            outcome: "success",
            reason: Some(&reason),
            ip: Some(conn.peer.ip()),
            detail,
            ..Default::default()
        },
    )
    .await;
}

async fn list_sessions(gw: &Gateway, q: Option<&str>) -> Response<GatewayBody> {
    let limit = match page_limit(q) {
        Ok(l) => l,
        Err(r) => return r,
    };
    // Sessions belong to principals (DESIGN.md §6): `user=alice` is the native user alice;
    // another origin's user is named by its principal (`user=oidc:…#sub`, as listed).
    let principal = query_param(q, "user").map(|u| owner_of(&u));
    let cursor = match query_param(q, "cursor") {
        Some(c) => match SessionId::parse(&c) {
            Some(id) => Some(id),
            None => return json_error(StatusCode::BAD_REQUEST, "bad_request", "Invalid cursor."),
        },
        None => None,
    };
    match gw
        .store
        .list(principal.as_deref(), cursor.as_ref(), limit + 1)
        .await
    {
        Ok(mut items) => {
            let next = (items.len() > limit).then(|| {
                items.truncate(limit);
                items.last().map(|s| s.id.as_str().to_owned())
            });
            let items: Vec<Value> = items.iter().map(|s| session_json(s)).collect();
            json_response(
                StatusCode::OK,
                &json!({"items": items, "next": next.flatten()}),
            )
        }
        Err(e) => store_unavailable(gw, &e),
    }
}

/// The principal an admin names: a native user name, or a principal as sessions list it.
fn owner_of(user: &str) -> String {
    if user.contains(':') {
        user.to_owned()
    } else {
        native_principal(&normalise_user(user).unwrap_or_else(|| user.to_owned()))
    }
}

/// Ends everything a principal has running: its sessions and its pending logins (a login past
/// the password must not finish after an admin acted). Returns the ended sessions' count.
async fn end_principal(gw: &Gateway, principal: &str) -> Result<usize, StoreError> {
    crate::auth::native::revoke_pending(
        &gw.store,
        principal,
        gw.clock.now(),
        gw.config.session.pending_ttl,
    )
    .await?;
    Ok(gw.store.remove_principal(principal).await?.len())
}

async fn delete_session(gw: &Gateway, id: &str, actor: &str, conn: Conn) -> Response<GatewayBody> {
    let Some(id) = SessionId::parse(id) else {
        return json_error(StatusCode::NOT_FOUND, "not_found", "No such session.");
    };
    match gw.store.remove(&id).await {
        Ok(Some(s)) => {
            record_admin(
                gw,
                "session.terminated",
                Some(&s.identity.user),
                actor,
                conn,
                Some(format!("{{\"session\":\"{}\"}}", id.as_str())),
            )
            .await;
            let mut r = Response::new(GatewayBody::empty());
            *r.status_mut() = StatusCode::NO_CONTENT;
            r
        }
        Ok(None) => json_error(StatusCode::NOT_FOUND, "not_found", "No such session."),
        Err(e) => store_unavailable(gw, &e),
    }
}

async fn delete_user_sessions(
    gw: &Gateway,
    user: &str,
    devices: bool,
    actor: &str,
    conn: Conn,
) -> Response<GatewayBody> {
    let ended = match end_principal(gw, &owner_of(user)).await {
        Ok(n) => n,
        Err(e) => return store_unavailable(gw, &e),
    };
    let mut body = json!({"terminated": ended});
    if devices {
        if let Some(acc) = &gw.accounts {
            match acc.users.delete_devices(&native_principal(user)).await {
                Ok(n) => set(&mut body, "devices_forgotten", json!(n)),
                Err(e) => return store_unavailable(gw, &e),
            }
        }
    }
    record_admin(
        gw,
        "session.terminated_all",
        Some(user),
        actor,
        conn,
        Some(body.to_string()),
    )
    .await;
    json_response(StatusCode::OK, &body)
}

fn no_store() -> Response<GatewayBody> {
    json_error(
        StatusCode::NOT_FOUND,
        "not_found",
        "No user store is configured.",
    )
}

async fn list_users(gw: &Gateway, q: Option<&str>) -> Response<GatewayBody> {
    let Some(acc) = &gw.accounts else {
        return no_store();
    };
    let limit = match page_limit(q) {
        Ok(l) => l,
        Err(r) => return r,
    };
    let cursor = query_param(q, "cursor");
    let fetch = u32::try_from(limit + 1).unwrap_or(u32::MAX);
    match acc.users.list_users(cursor.as_deref(), fetch).await {
        Ok(mut users) => {
            let next = (users.len() > limit).then(|| {
                users.truncate(limit);
                users.last().map(|u| u.username.clone())
            });
            let mut items = Vec::with_capacity(users.len());
            for u in &users {
                items.push(user_json(gw, u).await);
            }
            json_response(
                StatusCode::OK,
                &json!({"items": items, "next": next.flatten()}),
            )
        }
        Err(e) => store_unavailable(gw, &e),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewUserBody {
    username: String,
    password: Option<String>,
    email: Option<String>,
    #[serde(default)]
    roles: Vec<String>,
}

async fn create_user(
    gw: &Gateway,
    req: Request<Incoming>,
    actor: &str,
    conn: Conn,
) -> Response<GatewayBody> {
    let Some(acc) = &gw.accounts else {
        return no_store();
    };
    let body = match read_body(gw, req.into_body()).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    let nu: NewUserBody = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => {
            return json_error(
                StatusCode::BAD_REQUEST,
                "bad_request",
                &format!("Invalid body: {e}"),
            )
        }
    };
    if nu.roles.is_empty() {
        return json_error(
            StatusCode::BAD_REQUEST,
            "bad_request",
            "roles must name at least one role.",
        );
    }
    if nu.password.as_ref().is_some_and(|p| p.chars().count() < 8) {
        return json_error(
            StatusCode::BAD_REQUEST,
            "bad_request",
            "The password must have at least 8 characters.",
        );
    }
    let password = nu.password.map(Password::new);
    match acc
        .create_user(
            &gw.config,
            &nu.username,
            nu.email,
            nu.roles,
            password,
            gw.clock.now(),
        )
        .await
    {
        Ok((user, generated)) => {
            record_admin(
                gw,
                "admin.user_created",
                Some(&user.username),
                actor,
                conn,
                None,
            )
            .await;
            let mut body = json!({"user": user_json(gw, &user).await});
            if let Some(p) = generated {
                set(&mut body, "password", json!(p.expose()));
            }
            match invite_for(gw, acc, &user).await {
                Ok(Some(Value::Object(invite))) => {
                    for (k, v) in invite {
                        set(&mut body, &k, v);
                    }
                }
                Ok(_) => {}
                Err(e) => return store_unavailable(gw, &e),
            }
            json_response(StatusCode::CREATED, &body)
        }
        Err(crate::accounts::AccountsError::Store(StoreError::Conflict)) => json_error(
            StatusCode::CONFLICT,
            "conflict",
            "A user with this name exists.",
        ),
        Err(crate::accounts::AccountsError::Store(e)) => store_unavailable(gw, &e),
        Err(
            e @ (crate::accounts::AccountsError::BadUserName(_)
            | crate::accounts::AccountsError::UnknownRole(_)),
        ) => json_error(StatusCode::BAD_REQUEST, "bad_request", &e.to_string()),
        Err(e) => {
            tracing::error!(error = %e, "user creation failed");
            json_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "The user could not be created.",
            )
        }
    }
}

#[allow(clippy::result_large_err)] // the error is the finished response, returned once
async fn find_user(gw: &Gateway, name: &str) -> Result<User, Response<GatewayBody>> {
    let Some(acc) = &gw.accounts else {
        return Err(no_store());
    };
    let Some(n) = normalise_user(name) else {
        return Err(json_error(
            StatusCode::NOT_FOUND,
            "not_found",
            "No such user.",
        ));
    };
    match acc.users.get_user(&n).await {
        Ok(Some(u)) => Ok(u),
        Ok(None) => Err(json_error(
            StatusCode::NOT_FOUND,
            "not_found",
            "No such user.",
        )),
        Err(e) => Err(store_unavailable(gw, &e)),
    }
}

async fn get_user(gw: &Gateway, name: &str) -> Response<GatewayBody> {
    match find_user(gw, name).await {
        Ok(u) => json_response(StatusCode::OK, &user_json(gw, &u).await),
        Err(r) => r,
    }
}

async fn set_disabled(
    gw: &Gateway,
    name: &str,
    disabled: bool,
    actor: &str,
    conn: Conn,
) -> Response<GatewayBody> {
    let mut u = match find_user(gw, name).await {
        Ok(u) => u,
        Err(r) => return r,
    };
    let Some(acc) = &gw.accounts else {
        return no_store();
    };
    if let Err(e) = acc.users.set_disabled(&u.username, disabled).await {
        return store_unavailable(gw, &e);
    }
    if disabled {
        // A disabled account must not keep a way in.
        if let Err(e) = end_principal(gw, &native_principal(&u.username)).await {
            return store_unavailable(gw, &e);
        }
    }
    u.disabled = disabled;
    let kind = if disabled {
        "admin.user_disabled"
    } else {
        "admin.user_enabled"
    };
    record_admin(gw, kind, Some(&u.username), actor, conn, None).await;
    json_response(StatusCode::OK, &user_json(gw, &u).await)
}

async fn reset_mfa(gw: &Gateway, name: &str, actor: &str, conn: Conn) -> Response<GatewayBody> {
    let u = match find_user(gw, name).await {
        Ok(u) => u,
        Err(r) => return r,
    };
    let Some(acc) = &gw.accounts else {
        return no_store();
    };
    let p = native_principal(&u.username);
    // A login already past the password must not go on to enroll or use the old factors.
    if let Err(e) = crate::auth::native::revoke_pending(
        &gw.store,
        &p,
        gw.clock.now(),
        gw.config.session.pending_ttl,
    )
    .await
    {
        return store_unavailable(gw, &e);
    }
    if let Err(e) = acc.users.delete_factors(&p).await {
        return store_unavailable(gw, &e);
    }
    if let Err(e) = acc.users.delete_devices(&p).await {
        return store_unavailable(gw, &e);
    }
    record_admin(gw, "admin.mfa_reset", Some(&u.username), actor, conn, None).await;
    match invite_for(gw, acc, &u).await {
        Ok(Some(body)) => json_response(StatusCode::OK, &body),
        Ok(None) => {
            let mut r = Response::new(GatewayBody::empty());
            *r.status_mut() = StatusCode::NO_CONTENT;
            r
        }
        Err(e) => store_unavailable(gw, &e),
    }
}

/// With `[mfa] enrollment = "invite"`: a new single-use enrollment link for `u`, mailed when
/// possible and returned once (`enrollment_url`, and whether it was mailed).
async fn invite_for(
    gw: &Gateway,
    acc: &crate::accounts::Accounts,
    u: &User,
) -> Result<Option<Value>, StoreError> {
    if gw.config.mfa.enrollment != crate::config::Enrollment::Invite {
        return Ok(None);
    }
    let url = acc
        .create_invite(&gw.config, &u.username, gw.clock.now())
        .await?;
    let mailed = acc.mail_invite(&gw.config, u, &url).await;
    Ok(Some(json!({"enrollment_url": url, "mailed": mailed})))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RecoveryBody {
    ttl: Option<String>,
}

async fn recovery_codes(
    gw: &Gateway,
    req: Request<Incoming>,
    name: &str,
    actor: &str,
    conn: Conn,
) -> Response<GatewayBody> {
    let body = match read_body(gw, req.into_body()).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    let rb: RecoveryBody = if body.iter().all(u8::is_ascii_whitespace) {
        RecoveryBody::default()
    } else {
        match serde_json::from_slice(&body) {
            Ok(v) => v,
            Err(e) => {
                return json_error(
                    StatusCode::BAD_REQUEST,
                    "bad_request",
                    &format!("Invalid body: {e}"),
                )
            }
        }
    };
    let ttl = match rb.ttl.as_deref().map(crate::config::parse_duration) {
        None => gw.config.mfa.recovery_ttl,
        Some(Ok(d)) => d,
        Some(Err(e)) => {
            return json_error(StatusCode::BAD_REQUEST, "bad_request", &format!("ttl: {e}"))
        }
    };
    let u = match find_user(gw, name).await {
        Ok(u) => u,
        Err(r) => return r,
    };
    let Some(acc) = &gw.accounts else {
        return no_store();
    };
    let now = gw.clock.now();
    match acc
        .issue_recovery_codes(
            &native_principal(&u.username),
            gw.config.mfa.recovery_count,
            ttl,
            now,
        )
        .await
    {
        Ok(codes) => {
            record_admin(
                gw,
                "admin.recovery_codes_issued",
                Some(&u.username),
                actor,
                conn,
                None,
            )
            .await;
            let expires = (!ttl.is_zero()).then(|| {
                rfc3339(now.saturating_add(i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX)))
            });
            let codes: Vec<&str> = codes.iter().map(|c| c.expose()).collect();
            json_response(
                StatusCode::CREATED,
                &json!({"codes": codes, "expires_at": expires}),
            )
        }
        Err(e) => store_unavailable(gw, &e),
    }
}

async fn audit_events(gw: &Gateway, q: Option<&str>) -> Response<GatewayBody> {
    let Some(acc) = &gw.accounts else {
        return no_store();
    };
    let limit = match page_limit(q) {
        Ok(l) => l,
        Err(r) => return r,
    };
    let since = match query_param(q, "since") {
        Some(s) => match parse_rfc3339(&s) {
            Some(t) => Some(t),
            None => {
                return json_error(
                    StatusCode::BAD_REQUEST,
                    "bad_request",
                    "since must be an RFC 3339 time.",
                )
            }
        },
        None => None,
    };
    let after_id = match query_param(q, "cursor") {
        Some(c) => match c.parse::<i64>() {
            Ok(n) => Some(n),
            Err(_) => return json_error(StatusCode::BAD_REQUEST, "bad_request", "Invalid cursor."),
        },
        None => None,
    };
    let query = AuditQuery {
        since,
        user: query_param(q, "user"),
        kind: query_param(q, "type"),
        after_id,
        limit: u32::try_from(limit + 1).unwrap_or(u32::MAX),
    };
    match acc.users.query_audit(&query).await {
        Ok(mut rows) => {
            let next = (rows.len() > limit).then(|| {
                rows.truncate(limit);
                rows.last().map(|r| r.id.to_string())
            });
            let items: Vec<Value> = rows
                .iter()
                .map(|r| {
                    json!({
                        "id": r.id, "at": rfc3339(r.event.at), "type": r.event.kind, "user": r.event.user,
                        "method": r.event.method, "outcome": r.event.outcome, "reason": r.event.reason,
                        "ip": r.event.ip, "session": r.event.session, "detail": r.event.detail,
                    })
                })
                .collect();
            json_response(
                StatusCode::OK,
                &json!({"items": items, "next": next.flatten()}),
            )
        }
        Err(e) => store_unavailable(gw, &e),
    }
}
