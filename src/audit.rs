//! Audit events: every authentication decision is written as a structured log line on the
//! `audit` target and, when a user store is configured, as a row in the audit table. Kinds and
//! outcomes are closed enums: a typo is a compile error, and the metrics follow from the kind.

use crate::accounts::Accounts;
use crate::clock::UnixTime;
use crate::state::Gateway;
use crate::storage::{AuditEvent, UserStore};
use std::net::IpAddr;

/// What happened. Stored and logged as its dotted name (`Kind::as_str`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// `login.password`: the password step passed.
    LoginPassword,
    /// `login.success`: a session was made.
    LoginSuccess,
    /// `login.failure`: a login was refused or failed.
    LoginFailure,
    /// `login.roles_dropped`: an IdP asserted roles beyond its `roles`.
    LoginRolesDropped,
    /// `mfa.success`: a second factor was verified.
    MfaSuccess,
    /// `mfa.failure`: a second factor was refused.
    MfaFailure,
    /// `mfa.enroll`: a second factor was enrolled (or its confirmation refused).
    MfaEnroll,
    /// `mfa.email_sent`: an email code was sent.
    MfaEmailSent,
    /// `mfa.removed`: a user removed one of their factors (a passkey), or was refused.
    MfaRemoved,
    /// `recovery_code.used`: a recovery code signed someone in.
    RecoveryCodeUsed,
    /// `recovery_codes.issued`: new recovery codes were issued.
    RecoveryCodesIssued,
    /// `lockout`: a lock period started.
    Lockout,
    /// `logout`: a session ended by its owner.
    Logout,
    /// `logout.idp`: a session ended by an IdP-initiated logout.
    LogoutIdp,
    /// `logout.backchannel`: a session ended by an OIDC back-channel logout.
    LogoutBackchannel,
    /// `session.terminated`: a session ended by an admin or from the account page.
    SessionTerminated,
    /// `session.terminated_all`: all of a principal's sessions ended by an admin.
    SessionTerminatedAll,
    /// `stepup.decision`: what an SSO login's MFA evidence led to.
    StepupDecision,
    /// `admin.user_created`: an admin created a user.
    AdminUserCreated,
    /// `admin.user_disabled`: an admin disabled a user.
    AdminUserDisabled,
    /// `admin.user_enabled`: an admin enabled a user.
    AdminUserEnabled,
    /// `admin.mfa_reset`: an admin reset a user's second factors.
    AdminMfaReset,
    /// `admin.recovery_codes_issued`: an admin issued recovery codes.
    AdminRecoveryCodesIssued,
    /// `admin.user_password_set`: an admin set or generated a user's password.
    AdminUserPasswordSet,
    /// `admin.user_updated`: an admin changed a user's roles or email (detail: before/after).
    AdminUserUpdated,
    /// `admin.user_deleted`: an admin deleted a user and everything keyed to them.
    AdminUserDeleted,
    /// `account.reported`: a "this was not me" link was confirmed (or refused).
    AccountReported,
    /// `break_glass.armed`: an admin armed emergency access for a user.
    BreakGlassArmed,
    /// `break_glass.disarmed`: an admin disarmed emergency access (its sessions ended).
    BreakGlassDisarmed,
    /// `break_glass.link`: a break-glass link was opened (or refused).
    BreakGlassLink,
    /// `break_glass.session`: a break-glass session was made.
    BreakGlassSession,
    /// `config.reload`: the config was reloaded live, or the reload refused.
    ConfigReload,
    /// `forward_auth.untrusted`: a forward-auth check from a peer not in `trusted_proxies`.
    ForwardAuthUntrusted,
    /// `bearer.refused`: a bearer token was refused (401), or its roles are not admitted (403).
    BearerRefused,
    /// The admin console refused a session (no role, a stale factor, a bad form).
    ConsoleRefused,
}

impl Kind {
    pub const fn as_str(self) -> &'static str {
        match self {
            Kind::LoginPassword => "login.password",
            Kind::LoginSuccess => "login.success",
            Kind::LoginFailure => "login.failure",
            Kind::LoginRolesDropped => "login.roles_dropped",
            Kind::MfaSuccess => "mfa.success",
            Kind::MfaFailure => "mfa.failure",
            Kind::MfaEnroll => "mfa.enroll",
            Kind::MfaRemoved => "mfa.removed",
            Kind::MfaEmailSent => "mfa.email_sent",
            Kind::RecoveryCodeUsed => "recovery_code.used",
            Kind::RecoveryCodesIssued => "recovery_codes.issued",
            Kind::Lockout => "lockout",
            Kind::Logout => "logout",
            Kind::LogoutIdp => "logout.idp",
            Kind::LogoutBackchannel => "logout.backchannel",
            Kind::SessionTerminated => "session.terminated",
            Kind::SessionTerminatedAll => "session.terminated_all",
            Kind::StepupDecision => "stepup.decision",
            Kind::AdminUserCreated => "admin.user_created",
            Kind::AdminUserDisabled => "admin.user_disabled",
            Kind::AdminUserEnabled => "admin.user_enabled",
            Kind::AdminMfaReset => "admin.mfa_reset",
            Kind::AdminRecoveryCodesIssued => "admin.recovery_codes_issued",
            Kind::AdminUserPasswordSet => "admin.user_password_set",
            Kind::AdminUserUpdated => "admin.user_updated",
            Kind::AdminUserDeleted => "admin.user_deleted",
            Kind::AccountReported => "account.reported",
            Kind::BreakGlassArmed => "break_glass.armed",
            Kind::BreakGlassDisarmed => "break_glass.disarmed",
            Kind::BreakGlassLink => "break_glass.link",
            Kind::BreakGlassSession => "break_glass.session",
            Kind::ConfigReload => "config.reload",
            Kind::ForwardAuthUntrusted => "forward_auth.untrusted",
            Kind::BearerRefused => "bearer.refused",
            Kind::ConsoleRefused => "console.refused",
        }
    }
}

/// How it ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    Success,
    Failure,
    Refused,
    Locked,
    Dropped,
    IdpEvidence,
    NotRequired,
    Deny,
    StepUp,
    Trust,
}

impl Outcome {
    pub const fn as_str(self) -> &'static str {
        match self {
            Outcome::Success => "success",
            Outcome::Failure => "failure",
            Outcome::Refused => "refused",
            Outcome::Locked => "locked",
            Outcome::Dropped => "dropped",
            Outcome::IdpEvidence => "idp_evidence",
            Outcome::NotRequired => "not_required",
            Outcome::Deny => "deny",
            Outcome::StepUp => "step_up",
            Outcome::Trust => "trust",
        }
    }
}

/// One decision to record.
#[derive(Debug)]
pub struct Event<'a> {
    pub kind: Kind,
    pub user: Option<&'a str>,
    pub method: Option<&'a str>,
    pub outcome: Outcome,
    pub reason: Option<&'a str>,
    pub ip: Option<IpAddr>,
    pub session: Option<&'a str>,
    pub detail: Option<String>,
}

impl Event<'_> {
    /// An event of `kind` ending in `outcome`, every other field empty.
    pub fn new(kind: Kind, outcome: Outcome) -> Self {
        Event {
            kind,
            user: None,
            method: None,
            outcome,
            reason: None,
            ip: None,
            session: None,
            detail: None,
        }
    }
}

/// Logs the event and stores it. A store failure is logged, never turned into success.
pub async fn record(gw: &Gateway, ev: Event<'_>) {
    match ev.kind {
        Kind::LoginSuccess => gw.metrics.login(ev.method.unwrap_or("native"), true),
        Kind::LoginFailure => gw.metrics.login(ev.method.unwrap_or("native"), false),
        Kind::MfaSuccess => gw.metrics.mfa(ev.method.unwrap_or(""), true),
        Kind::MfaFailure => gw.metrics.mfa(ev.method.unwrap_or(""), false),
        Kind::Lockout => gw.metrics.lockout(),
        _ => {}
    }
    record_in(gw.accounts.as_deref(), gw.clock.now(), ev).await;
}

/// As `record`, without a running gateway (the CLI): logs the event and stores it in `acc`.
/// No metric follows from it (the CLI has no metrics to count in).
pub async fn record_in(acc: Option<&Accounts>, now: UnixTime, ev: Event<'_>) {
    let (kind, outcome) = (ev.kind.as_str(), ev.outcome.as_str());
    tracing::info!(
        target: "audit",
        kind,
        user = ev.user.unwrap_or("-"),
        method = ev.method.unwrap_or("-"),
        outcome,
        reason = ev.reason.unwrap_or("-"),
        ip = %ev.ip.map_or_else(|| "-".to_owned(), |i| i.to_string()),
        session = ev.session.unwrap_or("-"),
        "audit"
    );
    let Some(acc) = acc else { return };
    let row = AuditEvent {
        at: now,
        kind: kind.to_owned(),
        user: ev.user.map(str::to_owned),
        method: ev.method.map(str::to_owned),
        outcome: outcome.to_owned(),
        reason: ev.reason.map(str::to_owned),
        ip: ev.ip.map(|i| i.to_string()),
        session: ev.session.map(str::to_owned),
        detail: ev.detail,
    };
    if let Err(e) = acc.users.append_audit(&row).await {
        tracing::error!(error = %e, kind, "audit event could not be stored");
    }
}
