//! Audit events: every authentication decision is written as a structured log line on the
//! `audit` target and, when a user store is configured, as a row in the audit table.

use crate::state::Gateway;
use crate::storage::{AuditEvent, UserStore};
use std::net::IpAddr;

/// One decision to record. `kind` is a dotted name such as `login.failure` or `mfa.success`.
#[derive(Debug, Default)]
pub struct Event<'a> {
    pub kind: &'a str,
    pub user: Option<&'a str>,
    pub method: Option<&'a str>,
    pub outcome: &'a str,
    pub reason: Option<&'a str>,
    pub ip: Option<IpAddr>,
    pub session: Option<&'a str>,
    pub detail: Option<String>,
}

/// Logs the event and stores it. A store failure is logged, never turned into success.
pub async fn record(gw: &Gateway, ev: Event<'_>) {
    tracing::info!(
        target: "audit",
        kind = ev.kind,
        user = ev.user.unwrap_or("-"),
        method = ev.method.unwrap_or("-"),
        outcome = ev.outcome,
        reason = ev.reason.unwrap_or("-"),
        ip = %ev.ip.map_or_else(|| "-".to_owned(), |i| i.to_string()),
        session = ev.session.unwrap_or("-"),
        "audit"
    );
    match ev.kind {
        "login.success" => gw.metrics.login(ev.method.unwrap_or("native"), true),
        "login.failure" => gw.metrics.login(ev.method.unwrap_or("native"), false),
        "mfa.success" => gw.metrics.mfa(ev.method.unwrap_or(""), true),
        "mfa.failure" => gw.metrics.mfa(ev.method.unwrap_or(""), false),
        "lockout" => gw.metrics.lockout(),
        _ => {}
    }
    let Some(acc) = &gw.accounts else { return };
    let row = AuditEvent {
        at: gw.clock.now(),
        kind: ev.kind.to_owned(),
        user: ev.user.map(str::to_owned),
        method: ev.method.map(str::to_owned),
        outcome: ev.outcome.to_owned(),
        reason: ev.reason.map(str::to_owned),
        ip: ev.ip.map(|i| i.to_string()),
        session: ev.session.map(str::to_owned),
        detail: ev.detail,
    };
    if let Err(e) = acc.users.append_audit(&row).await {
        tracing::error!(error = %e, kind = ev.kind, "audit event could not be stored");
    }
}
