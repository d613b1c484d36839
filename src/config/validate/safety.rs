//! `[notify]` and `[break_glass]` (DESIGN.md §12): which account-safety mails go out and to
//! whom, and the limits of emergency access. Invariant: a mail that is asked for explicitly
//! has a sender and a store behind it, or the config is refused.

use super::ctx::{i, k, Ctx};
use crate::config::model::{BreakGlassConfig, ConsoleConfig, MfaConfig, NotifyConfig, RoleConfig};
use crate::config::raw::RawConfig;
use std::collections::BTreeMap;
use std::time::Duration;

/// How long a "this was not me" link works unless `[notify] report_ttl` says otherwise.
const DEFAULT_REPORT_TTL: Duration = Duration::from_secs(7 * 86_400);
/// The longest break-glass window unless `[break_glass] max_window` says otherwise.
const DEFAULT_MAX_WINDOW: Duration = Duration::from_secs(4 * 3600);

pub(super) fn notify(cx: &mut Ctx<'_>, raw: &RawConfig, mfa: &MfaConfig) -> NotifyConfig {
    // Mails need a sender and (for known devices and the audit) a user store.
    let can_mail = mfa.email.is_some() && raw.storage.is_some();
    let n = raw.notify.as_ref();
    // Each notice defaults to on where it can be sent, once a `[notify]` table exists. Without
    // the table nothing is sent: a deployment that shares its mail relay (and the tests that
    // read one inbox) sees no new mails until it asks for them.
    let default = can_mail && n.is_some();
    let mut flag = |key: &str, v: Option<bool>| -> bool {
        if v == Some(true) && !can_mail {
            cx.err(
                &[k("notify"), k(key)],
                "needs [mfa.email] (smtp_url, from) and [storage] to send the notice",
            );
        }
        v.unwrap_or(default)
    };
    let new_device = flag("new_device", n.and_then(|n| n.new_device));
    let recovery_code_used = flag("recovery_code_used", n.and_then(|n| n.recovery_code_used));
    let factor_changed = flag("factor_changed", n.and_then(|n| n.factor_changed));
    let report_ttl = n
        .and_then(|n| n.report_ttl)
        .map_or(DEFAULT_REPORT_TTL, |d| d.0);
    if report_ttl < Duration::from_secs(60) || report_ttl > Duration::from_secs(90 * 86_400) {
        cx.err(
            &[k("notify"), k("report_ttl")],
            "must be between 1m and 90d",
        );
    }
    let admins = n.map(|n| n.admins.clone()).unwrap_or_default();
    for (j, a) in admins.iter().enumerate() {
        if !a.contains('@') || a.trim() != a {
            cx.err(
                &[k("notify"), k("admins"), i(j)],
                "must be an email address",
            );
        }
    }
    NotifyConfig {
        new_device,
        recovery_code_used,
        factor_changed,
        report_ttl,
        admins,
    }
}

/// The console's default freshness of the second factor (DESIGN.md §12).
const DEFAULT_CONSOLE_FRESH_MFA: Duration = Duration::from_secs(15 * 60);

/// `[admin] console_roles` and `console_fresh_mfa`. Without `[admin]` the console is off.
pub(super) fn console(
    cx: &mut Ctx<'_>,
    raw: &RawConfig,
    roles: &BTreeMap<String, RoleConfig>,
) -> ConsoleConfig {
    let a = raw.admin.as_ref();
    let list = a.and_then(|a| a.console_roles.clone()).unwrap_or_default();
    for (j, r) in list.iter().enumerate() {
        if !roles.contains_key(r) {
            cx.err(
                &[k("admin"), k("console_roles"), i(j)],
                format!("unknown role {r:?}; define [roles.{r}]"),
            );
        }
    }
    let fresh_mfa = a
        .and_then(|a| a.console_fresh_mfa)
        .map_or(DEFAULT_CONSOLE_FRESH_MFA, |d| d.0);
    if fresh_mfa < Duration::from_secs(60) || fresh_mfa > Duration::from_secs(86_400) {
        cx.err(
            &[k("admin"), k("console_fresh_mfa")],
            "must be between 1m and 24h",
        );
    }
    ConsoleConfig {
        roles: list,
        fresh_mfa,
    }
}

pub(super) fn break_glass(
    cx: &mut Ctx<'_>,
    raw: &RawConfig,
    roles: &BTreeMap<String, RoleConfig>,
) -> BreakGlassConfig {
    let b = raw.break_glass.as_ref();
    let max_window = b
        .and_then(|b| b.max_window)
        .map_or(DEFAULT_MAX_WINDOW, |d| d.0);
    if max_window < Duration::from_secs(60) || max_window > Duration::from_secs(7 * 86_400) {
        cx.err(
            &[k("break_glass"), k("max_window")],
            "must be between 1m and 7d",
        );
    }
    let list = b.and_then(|b| b.roles.clone()).unwrap_or_default();
    for (j, r) in list.iter().enumerate() {
        if !roles.contains_key(r) {
            cx.err(
                &[k("break_glass"), k("roles"), i(j)],
                format!("unknown role {r:?}"),
            );
        }
    }
    if b.is_some() && (raw.storage.is_none() || raw.admin.is_none()) {
        cx.err(
            &[k("break_glass")],
            "needs [storage] (the second factor) and [admin] (arming it)",
        );
    }
    BreakGlassConfig {
        max_window,
        roles: list,
    }
}
