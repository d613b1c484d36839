//! Native users on the admin API (DESIGN.md §3, §11): list, create, show, change, delete,
//! disable and enable, set a password, reset second factors, issue recovery codes. Each change
//! is one `manage` function, the same the CLI calls, which audits it with the acting token. With
//! `[mfa] enrollment = "invite"`, creation and a factor reset answer a new enrollment link
//! (`enrollment_url`) and whether it was mailed.

use super::error::{AdminError, BodyRefusal};
use super::page;
use super::reply::{created, no_content, ok, set};
use crate::accounts::{native_principal, normalise_user, Accounts};
use crate::clock::rfc3339;
use crate::config::Enrollment;
use crate::http::{query_param, read_body, Conn};
use crate::manage::{self, Actor, Ctx};
use crate::proxy::forward::GatewayBody;
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
        // Names, ids and dates only: the public-key record stays in the store.
        if let Ok(keys) = acc.users.list_passkeys(&p).await {
            let keys: Vec<Value> = keys
                .iter()
                .map(|k| {
                    json!({
                        "id": k.credential_id,
                        "name": k.name,
                        "created_at": rfc3339(k.created_at),
                        "last_used_at": k.last_used_at.map(rfc3339),
                    })
                })
                .collect();
            set(&mut v, "passkeys", Value::Array(keys));
        }
    }
    v
}

/// The user store, which every user endpoint needs.
fn accounts(gw: &Gateway) -> Result<&Accounts, AdminError> {
    gw.accounts.as_deref().ok_or(AdminError::NoUserStore)
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

/// What a change needs: the config, the stores, the time and the acting token.
fn ctx<'g>(gw: &'g Gateway, actor: &'g str, conn: Conn) -> Result<Ctx<'g>, AdminError> {
    Ok(Ctx {
        config: &gw.config,
        store: &gw.store,
        accounts: accounts(gw)?,
        now: gw.clock.now(),
        actor: Actor::Token {
            name: actor,
            ip: conn.peer.ip(),
        },
    })
}

/// The JSON body of a request; an empty one is `empty`, when the endpoint has a default.
async fn json_body<T: serde::de::DeserializeOwned>(
    gw: &Gateway,
    req: Request<Incoming>,
    empty: Option<T>,
) -> Result<T, AdminError> {
    let body = body(gw, req).await?;
    match empty {
        Some(d) if body.iter().all(u8::is_ascii_whitespace) => Ok(d),
        _ => serde_json::from_slice(&body).map_err(|_| AdminError::BadBody),
    }
}

/// `POST /api/v1/users`: creates a native user; a generated password is answered once.
pub async fn create_user(
    gw: &Gateway,
    req: Request<Incoming>,
    actor: &str,
    conn: Conn,
) -> Result<Response<GatewayBody>, AdminError> {
    let ctx = ctx(gw, actor, conn)?;
    let nu: NewUserBody = json_body(gw, req, None).await?;
    let password = nu.password.map(manage::chosen_password).transpose()?;
    let (user, generated) =
        manage::create_user(&ctx, &nu.username, nu.email, nu.roles, password).await?;
    let mut body = json!({"user": user_json(gw, &user).await});
    if let Some(p) = generated {
        set(&mut body, "password", json!(p.expose()));
    }
    if let Some(Value::Object(invite)) = invite_for(gw, ctx.accounts, &user).await? {
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
    let u = manage::set_disabled(&ctx(gw, actor, conn)?, name, disabled).await?;
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
    let ctx = ctx(gw, actor, conn)?;
    Ok(match reset_factors(gw, &ctx, name).await? {
        (_, Some(body)) => ok(&body),
        (_, None) => no_content(),
    })
}

/// A factor reset as every admin surface does it (`manage::reset_mfa`): the user is told, and
/// with invitations a new enrollment link is made (the answer's `enrollment_url`, `mailed`).
pub async fn reset_factors(
    gw: &Gateway,
    ctx: &Ctx<'_>,
    name: &str,
) -> Result<(User, Option<Value>), manage::ManageError> {
    let (u, _) = manage::reset_mfa(ctx, name).await?;
    crate::alerts::factor_changed(
        gw,
        &u.username,
        u.email.as_deref(),
        crate::notify::mail::FactorChange::RemovedByAdmin,
    );
    let invite = invite_for(gw, ctx.accounts, &u).await?;
    Ok((u, invite))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct PasswordBody {
    password: Option<String>,
    #[serde(default)]
    generate: bool,
}

/// `POST /api/v1/users/{user}/password`: `{"password": "..."}` sets it; `{}`, an empty body or
/// `{"generate": true}` generates one, answered once. The user's sessions and pending logins end.
pub async fn set_password(
    gw: &Gateway,
    req: Request<Incoming>,
    name: &str,
    actor: &str,
    conn: Conn,
) -> Result<Response<GatewayBody>, AdminError> {
    let ctx = ctx(gw, actor, conn)?;
    let pb = json_body(gw, req, Some(PasswordBody::default())).await?;
    let password = match (pb.password, pb.generate) {
        // Both would leave it unclear which one is in force.
        (Some(_), true) => return Err(AdminError::BadBody),
        (Some(p), false) => Some(manage::chosen_password(p)?),
        (None, _) => None,
    };
    let done = manage::set_password(&ctx, name, password).await?;
    let mut body = json!({
        "user": user_json(gw, &done.user).await,
        "sessions_ended": done.sessions_ended,
    });
    if let Some(p) = &done.generated {
        set(&mut body, "password", json!(p.expose()));
    }
    Ok(ok(&body))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UpdateBody {
    roles: Option<Vec<String>>,
    /// Absent: unchanged; `null`: cleared.
    #[serde(default, deserialize_with = "present")]
    email: Option<Option<String>>,
}

/// Tells a field given as `null` (`Some(None)`) from one left out (`None`).
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(d).map(Some)
}

/// `PATCH /api/v1/users/{user}`: new roles and/or email. Sessions carrying a role the user no
/// longer has end; the answer says how many.
pub async fn update_user(
    gw: &Gateway,
    req: Request<Incoming>,
    name: &str,
    actor: &str,
    conn: Conn,
) -> Result<Response<GatewayBody>, AdminError> {
    let ctx = ctx(gw, actor, conn)?;
    let ub: UpdateBody = json_body(gw, req, None).await?;
    if ub.roles.is_none() && ub.email.is_none() {
        return Err(AdminError::BadBody);
    }
    let change = manage::Update {
        roles: ub.roles,
        email: ub.email,
    };
    let (u, ended) = manage::update_user(&ctx, name, change).await?;
    Ok(ok(&json!({
        "user": user_json(gw, &u).await,
        "sessions_ended": ended,
    })))
}

/// `DELETE /api/v1/users/{user}`: the user's sessions end, then the user and everything keyed
/// to them is deleted.
pub async fn delete_user(
    gw: &Gateway,
    name: &str,
    actor: &str,
    conn: Conn,
) -> Result<Response<GatewayBody>, AdminError> {
    let ctx = ctx(gw, actor, conn)?;
    let u = manage::find_user(&ctx, name).await?;
    let ended = manage::delete_user(&ctx, &u.username).await?;
    Ok(ok(&json!({"deleted": u.username, "sessions_ended": ended})))
}

/// With `[mfa] enrollment = "invite"`: a new single-use enrollment link for `u`, mailed when
/// possible and returned once (`enrollment_url`, and whether it was mailed).
pub async fn invite_for(
    gw: &Gateway,
    acc: &Accounts,
    u: &User,
) -> Result<Option<Value>, StoreError> {
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
    // An empty body asks for the defaults.
    let rb = json_body(gw, req, Some(RecoveryBody::default())).await?;
    let ttl = match rb.ttl.as_deref().map(crate::config::parse_duration) {
        None => gw.config.mfa.recovery_ttl,
        Some(Ok(d)) => d,
        Some(Err(_)) => return Err(AdminError::BadTtl),
    };
    let ctx = ctx(gw, actor, conn)?;
    let (_, codes) = manage::issue_recovery_codes(&ctx, name, ttl).await?;
    let expires = (!ttl.is_zero()).then(|| {
        rfc3339(
            ctx.now
                .saturating_add(i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX)),
        )
    });
    let codes: Vec<&str> = codes.iter().map(|c| c.expose()).collect();
    Ok(created(&json!({"codes": codes, "expires_at": expires})))
}
