//! Native users on the admin API (DESIGN.md §3): list, create, show, disable and enable,
//! reset second factors, issue recovery codes. Every change is an audit event. Disabling a
//! user or resetting their factors also ends their pending logins (through
//! `auth::native::revoke_pending`), so a login already past the password cannot go on. With
//! `[mfa] enrollment = "invite"`, creation and a factor reset answer a new enrollment link
//! (`enrollment_url`) and whether it was mailed.

use super::audit::record_admin;
use super::error::{AdminError, BodyRefusal};
use super::page;
use super::reply::{created, no_content, ok, set};
use super::sessions::end_principal;
use crate::accounts::{native_principal, normalise_user, Accounts};
use crate::audit;
use crate::clock::rfc3339;
use crate::config::Enrollment;
use crate::http::{query_param, read_body, Conn};
use crate::proxy::forward::GatewayBody;
use crate::secret::Password;
use crate::state::Gateway;
use crate::storage::{StoreError, User, UserStore};
use bytes::Bytes;
use hyper::body::Incoming;
use hyper::{Request, Response};
use serde::Deserialize;
use serde_json::{json, Value};

/// A user as the admin API shows it, with their second factors when the store answers.
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

/// The user store, which every user endpoint needs.
fn accounts(gw: &Gateway) -> Result<&Accounts, AdminError> {
    gw.accounts.as_ref().ok_or(AdminError::NoUserStore)
}

/// The user store and the native user `name` names.
async fn find_user<'g>(gw: &'g Gateway, name: &str) -> Result<(&'g Accounts, User), AdminError> {
    let acc = accounts(gw)?;
    let n = normalise_user(name).ok_or(AdminError::NoSuchUser)?;
    let u = acc
        .users
        .get_user(&n)
        .await?
        .ok_or(AdminError::NoSuchUser)?;
    Ok((acc, u))
}

/// The request body, bounded as every body of the gateway is.
async fn body(gw: &Gateway, req: Request<Incoming>) -> Result<Bytes, AdminError> {
    read_body(gw, req.into_body())
        .await
        .map_err(|r| AdminError::BodyRefused(BodyRefusal(Box::new(r))))
}

/// `GET /api/v1/users`: a page of native users, by name.
pub async fn list_users(
    gw: &Gateway,
    q: Option<&str>,
) -> Result<Response<GatewayBody>, AdminError> {
    let acc = accounts(gw)?;
    let limit = page::limit(q)?;
    let cursor = query_param(q, "cursor");
    let mut users = acc
        .users
        .list_users(cursor.as_deref(), page::fetch(limit))
        .await?;
    let next = page::cut(&mut users, limit, |u| u.username.clone());
    let mut items = Vec::with_capacity(users.len());
    for u in &users {
        items.push(user_json(gw, u).await);
    }
    Ok(ok(&page::body(items, next)))
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

/// `POST /api/v1/users`: creates a native user; a generated password is answered once.
pub async fn create_user(
    gw: &Gateway,
    req: Request<Incoming>,
    actor: &str,
    conn: Conn,
) -> Result<Response<GatewayBody>, AdminError> {
    let acc = accounts(gw)?;
    let body = body(gw, req).await?;
    let nu: NewUserBody = serde_json::from_slice(&body).map_err(|_| AdminError::BadBody)?;
    if nu.roles.is_empty() {
        return Err(AdminError::NoRoles);
    }
    if nu.password.as_ref().is_some_and(|p| p.chars().count() < 8) {
        return Err(AdminError::ShortPassword);
    }
    let password = nu.password.map(Password::new);
    let (user, generated) = acc
        .create_user(
            &gw.config,
            &nu.username,
            nu.email,
            nu.roles,
            password,
            gw.clock.now(),
        )
        .await
        .map_err(AdminError::from_creation)?;
    record_admin(
        gw,
        audit::Kind::AdminUserCreated,
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
    if let Some(Value::Object(invite)) = invite_for(gw, acc, &user).await? {
        for (k, v) in invite {
            set(&mut body, &k, v);
        }
    }
    Ok(created(&body))
}

/// `GET /api/v1/users/{user}`.
pub async fn get_user(gw: &Gateway, name: &str) -> Result<Response<GatewayBody>, AdminError> {
    let (_, u) = find_user(gw, name).await?;
    Ok(ok(&user_json(gw, &u).await))
}

/// `POST /api/v1/users/{user}/disable` and `…/enable`. A disabled user loses their sessions
/// and pending logins at once.
pub async fn set_disabled(
    gw: &Gateway,
    name: &str,
    disabled: bool,
    actor: &str,
    conn: Conn,
) -> Result<Response<GatewayBody>, AdminError> {
    let (acc, mut u) = find_user(gw, name).await?;
    acc.users.set_disabled(&u.username, disabled).await?;
    if disabled {
        // A disabled account must not keep a way in.
        end_principal(gw, &native_principal(&u.username)).await?;
    }
    u.disabled = disabled;
    let kind = if disabled {
        audit::Kind::AdminUserDisabled
    } else {
        audit::Kind::AdminUserEnabled
    };
    record_admin(gw, kind, Some(&u.username), actor, conn, None).await;
    Ok(ok(&user_json(gw, &u).await))
}

/// `DELETE /api/v1/users/{user}/mfa`: forgets the user's second factors and remembered
/// devices; `204`, or with invitations the new enrollment link.
pub async fn reset_mfa(
    gw: &Gateway,
    name: &str,
    actor: &str,
    conn: Conn,
) -> Result<Response<GatewayBody>, AdminError> {
    let (acc, u) = find_user(gw, name).await?;
    let p = native_principal(&u.username);
    // A login already past the password must not go on to enroll or use the old factors.
    crate::auth::native::revoke_pending(
        &gw.store,
        &p,
        gw.clock.now(),
        gw.config.session.pending_ttl,
    )
    .await?;
    acc.users.delete_factors(&p).await?;
    acc.users.delete_devices(&p).await?;
    record_admin(
        gw,
        audit::Kind::AdminMfaReset,
        Some(&u.username),
        actor,
        conn,
        None,
    )
    .await;
    crate::alerts::factor_changed(
        gw,
        &u.username,
        u.email.as_deref(),
        crate::notify::mail::FactorChange::RemovedByAdmin,
    );
    Ok(match invite_for(gw, acc, &u).await? {
        Some(body) => ok(&body),
        None => no_content(),
    })
}

/// With `[mfa] enrollment = "invite"`: a new single-use enrollment link for `u`, mailed when
/// possible and returned once (`enrollment_url`, and whether it was mailed).
async fn invite_for(gw: &Gateway, acc: &Accounts, u: &User) -> Result<Option<Value>, StoreError> {
    if gw.config.mfa.enrollment != Enrollment::Invite {
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

/// `POST /api/v1/users/{user}/recovery-codes`: new codes (answered once; the old ones stop
/// working), valid for the body's `ttl` or `[mfa] recovery_ttl`.
pub async fn recovery_codes(
    gw: &Gateway,
    req: Request<Incoming>,
    name: &str,
    actor: &str,
    conn: Conn,
) -> Result<Response<GatewayBody>, AdminError> {
    let body = body(gw, req).await?;
    // An empty body asks for the defaults.
    let rb: RecoveryBody = if body.iter().all(u8::is_ascii_whitespace) {
        RecoveryBody::default()
    } else {
        serde_json::from_slice(&body).map_err(|_| AdminError::BadBody)?
    };
    let ttl = match rb.ttl.as_deref().map(crate::config::parse_duration) {
        None => gw.config.mfa.recovery_ttl,
        Some(Ok(d)) => d,
        Some(Err(_)) => return Err(AdminError::BadTtl),
    };
    let (acc, u) = find_user(gw, name).await?;
    let now = gw.clock.now();
    let codes = acc
        .issue_recovery_codes(
            &native_principal(&u.username),
            gw.config.mfa.recovery_count,
            ttl,
            now,
        )
        .await?;
    record_admin(
        gw,
        audit::Kind::AdminRecoveryCodesIssued,
        Some(&u.username),
        actor,
        conn,
        None,
    )
    .await;
    let expires = (!ttl.is_zero())
        .then(|| rfc3339(now.saturating_add(i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX))));
    let codes: Vec<&str> = codes.iter().map(|c| c.expose()).collect();
    Ok(created(&json!({"codes": codes, "expires_at": expires})))
}
