//! User and session management, one function per action: the admin API's handlers and the CLI
//! call the same ones, so both have the same effect and both audit it, naming the actor (the
//! admin token, or `cli`). Invariant: whatever takes a way in away (disable, new password,
//! lost role, deletion) changes the user row first, then ends sessions and pending logins, so a
//! login finishing in between is refused by `auth::native::revalidate`; a store failure on the
//! way is an error, never a success with sessions left alive.

use crate::accounts::{native_principal, normalise_user, Accounts, AccountsError};
use crate::audit::{self, Event};
use crate::auth::native::revoke_pending;
use crate::auth::password::{generate_password, MIN_PASSWORD_CHARS};
use crate::clock::UnixTime;
use crate::config::Config;
use crate::secret::{Password, RecoveryCode};
use crate::session::{AnySessionStore, SessionId, SessionStore};
use crate::storage::{StoreError, User, UserStore};
use std::net::IpAddr;
use std::time::Duration;

/// Who acted: an admin API token (by name, from an address), a console session's principal
/// (from an address), or the command line.
#[derive(Clone, Copy, Debug)]
pub enum Actor<'a> {
    Token { name: &'a str, ip: IpAddr },
    Console { principal: &'a str, ip: IpAddr },
    Cli,
}

impl Actor<'_> {
    /// The audit event's `reason`: `token:NAME`, `console:PRINCIPAL` or `cli`.
    pub fn reason(&self) -> String {
        match self {
            Actor::Token { name, .. } => format!("token:{name}"),
            Actor::Console { principal, .. } => format!("console:{principal}"),
            Actor::Cli => "cli".to_owned(),
        }
    }

    fn ip(&self) -> Option<IpAddr> {
        match self {
            Actor::Token { ip, .. } | Actor::Console { ip, .. } => Some(*ip),
            Actor::Cli => None,
        }
    }
}

/// What every action needs: the config in force, the stores, the time, the actor.
pub struct Ctx<'a> {
    pub config: &'a Config,
    pub store: &'a AnySessionStore,
    pub accounts: &'a Accounts,
    pub now: UnixTime,
    pub actor: Actor<'a>,
}

/// Why an action was refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum ManageError {
    #[error("no such user")]
    NoSuchUser,
    #[error("invalid user name: use 1-64 characters from a-z, 0-9, '.', '_', '-', '@'")]
    BadUserName,
    #[error("unknown role {0:?}")]
    UnknownRole(String),
    #[error("at least one role is needed")]
    NoRoles,
    #[error("the password must have at least {MIN_PASSWORD_CHARS} characters")]
    ShortPassword,
    #[error("invalid email address")]
    BadEmail,
    #[error("a user with this name exists")]
    UserExists,
    #[error("store unavailable: {0}")]
    Store(#[from] StoreError),
    /// Hashing, sealing or mail set-up failed on our side.
    #[error("{0}")]
    Failed(AccountsError),
}

impl From<AccountsError> for ManageError {
    fn from(e: AccountsError) -> Self {
        match e {
            AccountsError::Store(StoreError::Conflict) => ManageError::UserExists,
            AccountsError::Store(e) => ManageError::Store(e),
            AccountsError::BadUserName(_) => ManageError::BadUserName,
            AccountsError::UnknownRole(r) => ManageError::UnknownRole(r),
            e @ (AccountsError::Key(_) | AccountsError::Email(_) | AccountsError::Hashing) => {
                ManageError::Failed(e)
            }
        }
    }
}

/// A password an admin chose, held to the same minimum as everywhere else.
pub fn chosen_password(p: String) -> Result<Password, ManageError> {
    if p.chars().count() < MIN_PASSWORD_CHARS {
        return Err(ManageError::ShortPassword);
    }
    Ok(Password::new(p))
}

/// An email address as an admin gives it: one `@` with something either side, no spaces or
/// control characters, at most 254 bytes (it ends up in mail headers).
pub fn valid_email(e: &str) -> Result<String, ManageError> {
    let e = e.trim();
    let ok = e.len() <= 254
        && e.split('@').count() == 2
        && e.split('@').all(|part| !part.is_empty())
        && !e.chars().any(|c| c.is_whitespace() || c.is_control());
    ok.then(|| e.to_owned()).ok_or(ManageError::BadEmail)
}

/// Records a successful action of `kind` on `user` by the context's actor.
async fn record(ctx: &Ctx<'_>, kind: audit::Kind, user: &str, detail: Option<String>) {
    record_by(
        Some(ctx.accounts),
        ctx.now,
        ctx.actor,
        kind,
        Some(user),
        detail,
    )
    .await;
}

/// Records a successful admin action of `kind` on `user` by `actor`; the user store, when there
/// is one, keeps it (session actions work without one).
pub async fn record_by(
    accounts: Option<&Accounts>,
    now: UnixTime,
    actor: Actor<'_>,
    kind: audit::Kind,
    user: Option<&str>,
    detail: Option<String>,
) {
    let reason = actor.reason();
    let ev = Event {
        user,
        method: Some("admin"),
        reason: Some(&reason),
        ip: actor.ip(),
        detail,
        ..Event::new(kind, audit::Outcome::Success)
    };
    audit::record_in(accounts, now, ev).await;
}

/// What a session action needs: it works without a user store (an SSO-only gateway).
pub struct SessionCtx<'a> {
    pub config: &'a Config,
    pub store: &'a AnySessionStore,
    pub accounts: Option<&'a Accounts>,
    pub now: UnixTime,
    pub actor: Actor<'a>,
}

/// Ends one session; `None` when there is no such (live) session. The next request with it is
/// unauthenticated.
pub async fn end_session(
    ctx: &SessionCtx<'_>,
    id: &SessionId,
) -> Result<Option<std::sync::Arc<crate::session::Session>>, StoreError> {
    let Some(s) = ctx.store.remove(id).await? else {
        return Ok(None);
    };
    let detail = serde_json::json!({ "session": id.as_str() }).to_string();
    record_by(
        ctx.accounts,
        ctx.now,
        ctx.actor,
        audit::Kind::SessionTerminated,
        Some(&s.identity.user),
        Some(detail),
    )
    .await;
    Ok(Some(s))
}

/// Ends all of a principal's sessions and pending logins, and with `devices` forgets the
/// native user's remembered devices. `user` is how the admin named it (the audit's user).
/// Returns (sessions ended, devices forgotten when asked and there is a user store).
pub async fn end_sessions_of(
    ctx: &SessionCtx<'_>,
    user: &str,
    principal: &str,
    devices: bool,
) -> Result<(usize, Option<u64>), StoreError> {
    let ended = end_principal(ctx.store, ctx.config, ctx.now, principal).await?;
    let mut forgotten = None;
    if devices {
        if let Some(acc) = ctx.accounts {
            forgotten = Some(acc.users.delete_devices(&native_principal(user)).await?);
        }
    }
    let mut detail = serde_json::json!({ "terminated": ended });
    if let (Some(n), Some(o)) = (forgotten, detail.as_object_mut()) {
        o.insert("devices_forgotten".into(), n.into());
    }
    record_by(
        ctx.accounts,
        ctx.now,
        ctx.actor,
        audit::Kind::SessionTerminatedAll,
        Some(user),
        Some(detail.to_string()),
    )
    .await;
    Ok((ended, forgotten))
}

/// Ends everything a principal has running: its pending logins (a login past the password must
/// not finish after an admin acted) and its sessions. Returns the ended sessions' count.
pub async fn end_principal(
    store: &AnySessionStore,
    config: &Config,
    now: UnixTime,
    principal: &str,
) -> Result<usize, StoreError> {
    revoke_pending(store, principal, now, config.session.pending_ttl).await?;
    Ok(store.remove_principal(principal).await?.len())
}

/// The native user `name` names.
pub async fn find_user(ctx: &Ctx<'_>, name: &str) -> Result<User, ManageError> {
    let n = normalise_user(name).ok_or(ManageError::NoSuchUser)?;
    ctx.accounts
        .users
        .get_user(&n)
        .await?
        .ok_or(ManageError::NoSuchUser)
}

fn check_roles(config: &Config, roles: &[String]) -> Result<(), ManageError> {
    if roles.is_empty() {
        return Err(ManageError::NoRoles);
    }
    match roles.iter().find(|r| config.role(r).is_none()) {
        Some(r) => Err(ManageError::UnknownRole(r.clone())),
        None => Ok(()),
    }
}

/// Creates a native user; a generated password is returned once (none with invitations).
pub async fn create_user(
    ctx: &Ctx<'_>,
    name: &str,
    email: Option<String>,
    roles: Vec<String>,
    password: Option<Password>,
) -> Result<(User, Option<Password>), ManageError> {
    check_roles(ctx.config, &roles)?;
    let email = email.as_deref().map(valid_email).transpose()?;
    let (user, generated) = ctx
        .accounts
        .create_user(ctx.config, name, email, roles, password, ctx.now)
        .await?;
    record(ctx, audit::Kind::AdminUserCreated, &user.username, None).await;
    Ok((user, generated))
}

/// Disables or enables a user. A disabled user loses their sessions and pending logins at once.
pub async fn set_disabled(ctx: &Ctx<'_>, name: &str, disabled: bool) -> Result<User, ManageError> {
    let mut u = find_user(ctx, name).await?;
    if !ctx
        .accounts
        .users
        .set_disabled(&u.username, disabled)
        .await?
    {
        return Err(ManageError::NoSuchUser);
    }
    let detail = if disabled {
        let p = native_principal(&u.username);
        let ended = end_principal(ctx.store, ctx.config, ctx.now, &p).await?;
        Some(serde_json::json!({ "sessions_ended": ended }).to_string())
    } else {
        None
    };
    u.disabled = disabled;
    let kind = if disabled {
        audit::Kind::AdminUserDisabled
    } else {
        audit::Kind::AdminUserEnabled
    };
    record(ctx, kind, &u.username, detail).await;
    Ok(u)
}

/// Forgets a user's second factors and remembered devices; their pending logins end (one past
/// the password must not go on to enroll or use the old factors). Sessions stay.
pub async fn reset_mfa(ctx: &Ctx<'_>, name: &str) -> Result<(User, u64), ManageError> {
    let u = find_user(ctx, name).await?;
    let p = native_principal(&u.username);
    revoke_pending(ctx.store, &p, ctx.now, ctx.config.session.pending_ttl).await?;
    ctx.accounts.users.delete_factors(&p).await?;
    let devices = ctx.accounts.users.delete_devices(&p).await?;
    record(ctx, audit::Kind::AdminMfaReset, &u.username, None).await;
    Ok((u, devices))
}

/// New recovery codes for a user, valid for `ttl` (zero: no expiry); the old ones stop working.
pub async fn issue_recovery_codes(
    ctx: &Ctx<'_>,
    name: &str,
    ttl: Duration,
) -> Result<(User, Vec<RecoveryCode>), ManageError> {
    let u = find_user(ctx, name).await?;
    let count = ctx.config.mfa.recovery_count;
    let codes = ctx
        .accounts
        .issue_recovery_codes(&native_principal(&u.username), count, ttl, ctx.now)
        .await?;
    record(
        ctx,
        audit::Kind::AdminRecoveryCodesIssued,
        &u.username,
        None,
    )
    .await;
    Ok((u, codes))
}

/// What setting a password did.
pub struct PasswordSet {
    pub user: User,
    /// The generated password, to hand over once; `None` when the admin chose it.
    pub generated: Option<Password>,
    pub sessions_ended: usize,
}

/// Sets a user's password, or generates one (`None`). An admin reset means someone else may
/// know the old one: the user's sessions and pending logins end, the account's lockout is
/// cleared (the owner may sign in with the new one at once); second factors and remembered
/// devices stay (they do not stand in for the password).
pub async fn set_password(
    ctx: &Ctx<'_>,
    name: &str,
    password: Option<Password>,
) -> Result<PasswordSet, ManageError> {
    let user = find_user(ctx, name).await?;
    let (password, generated) = match password {
        Some(p) => (p, None),
        None => {
            let p = generate_password();
            (p.clone(), Some(p))
        }
    };
    if !ctx.accounts.set_password(&user.username, password).await? {
        return Err(ManageError::NoSuchUser);
    }
    let p = native_principal(&user.username);
    let sessions_ended = end_principal(ctx.store, ctx.config, ctx.now, &p).await?;
    // The password step locks the account under `password_account` of the typed name.
    let account = crate::auth::native::password_account(&user.username);
    ctx.accounts
        .lockout
        .clear_account(ctx.store, &account)
        .await?;
    let detail = serde_json::json!({
        "generated": generated.is_some(),
        "sessions_ended": sessions_ended,
    });
    record(
        ctx,
        audit::Kind::AdminUserPasswordSet,
        &user.username,
        Some(detail.to_string()),
    )
    .await;
    Ok(PasswordSet {
        user,
        generated,
        sessions_ended,
    })
}

/// A change to a user: new roles, and/or a new email (`Some(None)` clears it).
#[derive(Debug, Default)]
pub struct Update {
    pub roles: Option<Vec<String>>,
    pub email: Option<Option<String>>,
}

/// Applies `change`. A session that carries a role the user no longer has ends; one whose
/// roles all still hold carries on. Pending logins whose roles changed are refused by
/// `revalidate` at their next step.
pub async fn update_user(
    ctx: &Ctx<'_>,
    name: &str,
    change: Update,
) -> Result<(User, usize), ManageError> {
    let mut u = find_user(ctx, name).await?;
    if let Some(roles) = &change.roles {
        check_roles(ctx.config, roles)?;
    }
    let email = match change.email {
        Some(Some(e)) => Some(Some(valid_email(&e)?)),
        other => other,
    };
    let before = u.roles.clone();
    if let Some(e) = &email {
        if !ctx
            .accounts
            .users
            .set_email(&u.username, e.as_deref())
            .await?
        {
            return Err(ManageError::NoSuchUser);
        }
        u.email.clone_from(e);
    }
    let mut ended = 0;
    if let Some(roles) = change.roles {
        if !ctx.accounts.users.set_roles(&u.username, &roles).await? {
            return Err(ManageError::NoSuchUser);
        }
        ended = end_lost_roles(ctx.store, &native_principal(&u.username), &roles).await?;
        u.roles = roles;
    }
    let detail = serde_json::json!({
        "roles": {"before": before, "after": u.roles},
        "email_changed": email.is_some(),
        "sessions_ended": ended,
    });
    record(
        ctx,
        audit::Kind::AdminUserUpdated,
        &u.username,
        Some(detail.to_string()),
    )
    .await;
    Ok((u, ended))
}

/// Ends the principal's sessions that carry a role outside `roles`; returns how many.
async fn end_lost_roles(
    store: &AnySessionStore,
    principal: &str,
    roles: &[String],
) -> Result<usize, StoreError> {
    let mut lost: Vec<SessionId> = Vec::new();
    let mut after: Option<SessionId> = None;
    loop {
        let page = store.list(Some(principal), after.as_ref(), 500).await?;
        let Some(last) = page.last() else { break };
        after = Some(last.id.clone());
        lost.extend(
            page.iter()
                .filter(|s| s.identity.roles.iter().any(|r| !roles.contains(r)))
                .map(|s| s.id.clone()),
        );
        if page.len() < 500 {
            break;
        }
    }
    let mut ended = 0;
    for id in &lost {
        if store.remove(id).await?.is_some() {
            ended += 1;
        }
    }
    Ok(ended)
}

/// Deletes a user: disabled first (a login finishing meanwhile is refused), then their sessions
/// and pending logins end, then the row and everything keyed to it go (factors, recovery
/// codes, remembered and known devices, invitations). Returns the ended sessions' count.
pub async fn delete_user(ctx: &Ctx<'_>, name: &str) -> Result<usize, ManageError> {
    let u = find_user(ctx, name).await?;
    let p = native_principal(&u.username);
    if !ctx.accounts.users.set_disabled(&u.username, true).await? {
        return Err(ManageError::NoSuchUser);
    }
    let ended = end_principal(ctx.store, ctx.config, ctx.now, &p).await?;
    if !ctx.accounts.users.delete_user(&u.username, &p).await? {
        return Err(ManageError::NoSuchUser);
    }
    let detail = serde_json::json!({ "sessions_ended": ended });
    record(
        ctx,
        audit::Kind::AdminUserDeleted,
        &u.username,
        Some(detail.to_string()),
    )
    .await;
    Ok(ended)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_one_at_sign_with_both_sides_and_no_spaces() {
        assert!(valid_email(" ann@example.com ").is_ok());
        for bad in [
            "",
            "ann",
            "@example.com",
            "ann@",
            "a@b@c",
            "an n@x.y",
            "a\r\n@x.y",
        ] {
            assert!(valid_email(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_chosen_password_needs_the_minimum_length() {
        assert!(chosen_password("1234567".into()).is_err());
        assert!(chosen_password("12345678".into()).is_ok());
    }
}
