//! The console's forms, each the same service function the admin API calls (`manage`, and
//! `admin::users::reset_factors` for the mail and the invitation), audited with the acting
//! admin as `console:<principal>`. Secrets made here (a password, recovery codes, a link) are
//! answered once and never logged.

use super::view::{console, shown_once, Cx, Note};
use crate::accounts::Accounts;
use crate::admin::break_glass::{self, ArmRequest};
use crate::admin::AdminError;
use crate::http::{form_value, respond, store_error, GatewayError};
use crate::manage::{self, Actor, Ctx, ManageError, SessionCtx};
use crate::pages::Msg;
use crate::proxy::forward::GatewayBody;
use crate::session::SessionId;
use hyper::Response;

fn actor<'a>(cx: &'a Cx<'_>) -> Actor<'a> {
    Actor::Console {
        principal: &cx.s.identity.principal,
        ip: cx.ip,
    }
}

fn session_ctx<'a>(cx: &'a Cx<'_>) -> SessionCtx<'a> {
    SessionCtx {
        config: &cx.gw.config,
        store: &cx.gw.store,
        accounts: cx.gw.accounts.as_deref(),
        now: cx.gw.clock.now(),
        actor: actor(cx),
    }
}

fn user_ctx<'a>(cx: &'a Cx<'_>, acc: &'a Accounts) -> Ctx<'a> {
    Ctx {
        config: &cx.gw.config,
        store: &cx.gw.store,
        accounts: acc,
        now: cx.gw.clock.now(),
        actor: actor(cx),
    }
}

/// The page again, with `msg` on top.
async fn done(cx: &Cx<'_>, msg: &str) -> Response<GatewayBody> {
    console(cx, None, Some(Note::Done(msg))).await
}

async fn failed(cx: &Cx<'_>, msg: &str) -> Response<GatewayBody> {
    console(cx, None, Some(Note::Failed(msg))).await
}

/// A refused or failed action: a store failure is a 503, our own failure a 500 without detail;
/// the rest are the admin's mistakes, told in `ManageError`'s fixed words.
async fn manage_error(cx: &Cx<'_>, e: ManageError) -> Response<GatewayBody> {
    match e {
        ManageError::Store(e) => store_error(cx.gw, e),
        ManageError::Failed(e) => {
            tracing::warn!(error = %e, "console action failed");
            // Fail closed without detail: the log line above has it.
            let e = crate::storage::StoreError::Unavailable("console action".into());
            respond(cx.gw, GatewayError::Store(e), true)
        }
        e @ (ManageError::NoSuchUser
        | ManageError::BadUserName
        | ManageError::UnknownRole(_)
        | ManageError::NoRoles
        | ManageError::ShortPassword
        | ManageError::BadEmail
        | ManageError::UserExists) => failed(cx, &e.to_string()).await,
    }
}

/// Runs the form `action` with its fields `form` (CSRF, Origin and the gate already passed).
pub async fn run(cx: &Cx<'_>, action: &str, form: &str) -> Response<GatewayBody> {
    let field = |name: &str| form_value(form, name).unwrap_or_default();
    match action {
        "sessions/end" => {
            let Some(id) = SessionId::parse(&field("id")) else {
                return failed(cx, cx.gw.chrome.t(Msg::ConNoSuchSession)).await;
            };
            match manage::end_session(&session_ctx(cx), &id).await {
                Ok(Some(_)) => done(cx, cx.gw.chrome.t(Msg::ConSessionEnded)).await,
                Ok(None) => failed(cx, cx.gw.chrome.t(Msg::ConNoSuchSession)).await,
                Err(e) => store_error(cx.gw, e),
            }
        }
        "sessions/end-all" => {
            let user = field("user");
            if user.is_empty() {
                return failed(cx, cx.gw.chrome.t(Msg::ConNameUser)).await;
            }
            let owner = crate::admin::sessions::owner_of(&user);
            match manage::end_sessions_of(&session_ctx(cx), &user, &owner, false).await {
                Ok((n, _)) => {
                    let msg = cx
                        .gw
                        .chrome
                        .fill(Msg::ConEndedN, "n", &n.to_string())
                        .replace("{user}", &user);
                    done(cx, &msg).await
                }
                Err(e) => store_error(cx.gw, e),
            }
        }
        "break-glass/arm" => {
            let users: Vec<String> = field("users")
                .split(',')
                .map(str::trim)
                .filter(|u| !u.is_empty())
                .map(str::to_owned)
                .collect();
            let request = ArmRequest {
                users: &users,
                duration: &field("duration"),
                reason: &field("reason"),
                roles: None,
            };
            match break_glass::arm_users(cx.gw, request, actor(cx)).await {
                Ok(links) => {
                    let lines: Vec<String> = links
                        .iter()
                        .map(|(u, url, _)| format!("{u}: {url}"))
                        .collect();
                    let lines: Vec<&str> = lines.iter().map(String::as_str).collect();
                    shown_once(
                        cx,
                        cx.gw.chrome.t(Msg::ConBgArmedTitle),
                        cx.gw.chrome.t(Msg::ConBgArmedWhat),
                        &lines,
                    )
                }
                Err(e) => admin_error(cx, e).await,
            }
        }
        "break-glass/disarm" => match break_glass::disarm_all(cx.gw, actor(cx)).await {
            Ok((users, n)) => {
                let msg = cx
                    .gw
                    .chrome
                    .fill(Msg::ConDisarmed, "users", &users.len().to_string())
                    .replace("{n}", &n.to_string());
                done(cx, &msg).await
            }
            Err(e) => admin_error(cx, e).await,
        },
        _ => users(cx, action, form).await,
    }
}

/// A refused break-glass request: a store failure is a 503; the rest are fixed words.
async fn admin_error(cx: &Cx<'_>, e: AdminError) -> Response<GatewayBody> {
    match e {
        AdminError::Store(e) => store_error(cx.gw, e),
        e => {
            failed(
                cx,
                &cx.gw.chrome.fill(Msg::ConRefused, "why", &e.to_string()),
            )
            .await
        }
    }
}

/// The actions on native users.
async fn users(cx: &Cx<'_>, action: &str, form: &str) -> Response<GatewayBody> {
    let field = |name: &str| form_value(form, name).unwrap_or_default();
    let Some(acc) = cx.gw.accounts.as_deref() else {
        return failed(cx, cx.gw.chrome.t(Msg::ConNoUserStore)).await;
    };
    let ctx = user_ctx(cx, acc);
    let user = field("user");
    match action {
        "users/create" => {
            let email = Some(field("email")).filter(|e| !e.trim().is_empty());
            let roles: Vec<String> = field("roles")
                .split(',')
                .map(str::trim)
                .filter(|r| !r.is_empty())
                .map(str::to_owned)
                .collect();
            let (u, generated) =
                match manage::create_user(&ctx, &field("username"), email, roles, None).await {
                    Ok(x) => x,
                    Err(e) => return manage_error(cx, e).await,
                };
            let invite = match crate::admin::users::invite_for(cx.gw, acc, &u).await {
                Ok(i) => i,
                Err(e) => return store_error(cx.gw, e),
            };
            let mut lines = Vec::new();
            if let Some(p) = &generated {
                lines.push(format!("password: {}", p.expose()));
            }
            if let Some(url) = invite
                .as_ref()
                .and_then(|v| v.get("enrollment_url").and_then(|u| u.as_str()))
            {
                lines.push(format!("enrollment link: {url}"));
            }
            if lines.is_empty() {
                return done(cx, &cx.gw.chrome.fill(Msg::ConCreated, "user", &u.username)).await;
            }
            let lines: Vec<&str> = lines.iter().map(String::as_str).collect();
            shown_once(
                cx,
                cx.gw.chrome.t(Msg::ConUserCreated),
                &cx.gw.chrome.fill(Msg::ConHandTo, "user", &u.username),
                &lines,
            )
        }
        "users/disable" | "users/enable" => {
            let disable = action == "users/disable";
            match manage::set_disabled(&ctx, &user, disable).await {
                Ok(u) if disable => {
                    done(
                        cx,
                        &cx.gw.chrome.fill(Msg::ConDisabledUser, "user", &u.username),
                    )
                    .await
                }
                Ok(u) => {
                    done(
                        cx,
                        &cx.gw.chrome.fill(Msg::ConEnabledUser, "user", &u.username),
                    )
                    .await
                }
                Err(e) => manage_error(cx, e).await,
            }
        }
        "users/reset-mfa" => match crate::admin::users::reset_factors(cx.gw, &ctx, &user).await {
            Ok((u, Some(invite))) => {
                let url = invite
                    .get("enrollment_url")
                    .and_then(|u| u.as_str())
                    .unwrap_or_default();
                shown_once(
                    cx,
                    cx.gw.chrome.t(Msg::ConFactorsReset),
                    &cx.gw.chrome.fill(Msg::ConEnrollsAgain, "user", &u.username),
                    &[url],
                )
            }
            Ok((u, None)) => {
                done(cx, &cx.gw.chrome.fill(Msg::ConResetOf, "user", &u.username)).await
            }
            Err(e) => manage_error(cx, e).await,
        },
        "users/password" => match manage::set_password(&ctx, &user, None).await {
            Ok(set) => {
                let pw = set
                    .generated
                    .as_ref()
                    .map(|p| p.expose())
                    .unwrap_or_default();
                shown_once(
                    cx,
                    cx.gw.chrome.t(Msg::ConNewPassword),
                    &cx.gw
                        .chrome
                        .fill(Msg::ConNewPasswordOf, "user", &set.user.username)
                        .replace("{n}", &set.sessions_ended.to_string()),
                    &[pw],
                )
            }
            Err(e) => manage_error(cx, e).await,
        },
        "users/recovery-codes" => {
            let ttl = cx.gw.config.mfa.recovery_ttl;
            match manage::issue_recovery_codes(&ctx, &user, ttl).await {
                Ok((u, codes)) => {
                    let codes: Vec<&str> = codes.iter().map(|c| c.expose()).collect();
                    shown_once(
                        cx,
                        cx.gw.chrome.t(Msg::RecoveryCodes),
                        &cx.gw.chrome.fill(Msg::ConNewCodesOf, "user", &u.username),
                        &codes,
                    )
                }
                Err(e) => manage_error(cx, e).await,
            }
        }
        _ => failed(cx, cx.gw.chrome.t(Msg::ConNoSuchAction)).await,
    }
}
