//! What the gateway tells people, and when (DESIGN.md §12): the new-device and recovery-code
//! notices after a sign-in, the factor-change notice, and the mails to `[notify] admins`.
//! The parts (cookie, links, texts, mailer) are `notify`'s; this file decides with the config
//! and the stores. Invariant: nothing here can fail or delay a sign-in: store errors are
//! logged, mails go out on their own tasks.

use crate::auth::pending::PendingLogin;
use crate::metrics::MailKind;
use crate::notify::device;
use crate::notify::link::{self, Report};
use crate::notify::mail::{self, FactorChange, Mail, SignInFacts};
use crate::session::{cookie, random_id, MfaUsed};
use crate::state::Gateway;
use crate::storage::UserStore;
use hyper::header::HeaderMap;
use std::net::IpAddr;

/// The id in the browser's known-device cookie, when this gateway signed it.
pub fn known_device(gw: &Gateway, headers: &HeaderMap) -> Option<String> {
    cookie::get(headers, gw.cookies.known).and_then(|v| device::verify(&gw.notifier.device_key, v))
}

/// A fresh "this was not me" link for `principal`, valid for `[notify] report_ttl`.
pub fn report_url(gw: &Gateway, principal: &str, user: &str) -> String {
    let ttl = i64::try_from(gw.config.notify.report_ttl.as_secs()).unwrap_or(i64::MAX);
    let token = link::sign(
        &gw.notifier.report_key,
        &Report {
            principal: principal.to_owned(),
            user: user.to_owned(),
            nonce: random_id(18),
            expires_at: gw.clock.now().saturating_add(ttl),
        },
    );
    format!(
        "{}{}/not-me?t={token}",
        gw.config.server.public_origin, gw.config.server.prefix
    )
}

fn ttl_days(gw: &Gateway) -> u64 {
    (gw.config.notify.report_ttl.as_secs() / 86_400).max(1)
}

/// After a session was made: records the browser as known and mails the user when it was new
/// (`new_device`) or when a recovery code signed them in (`recovery_code_used`). Returns the
/// `Set-Cookie` of a new known-device cookie, if one is to be set.
pub async fn signed_in(
    gw: &Gateway,
    p: &PendingLogin,
    used: MfaUsed,
    ip: IpAddr,
    ua: Option<&str>,
) -> Option<String> {
    let n = &gw.config.notify;
    let acc = gw.accounts.as_ref()?;
    let now = gw.clock.now();
    let mut set = None;
    let mut fresh = false;
    if n.new_device {
        let id = match &p.known_device {
            Some(id) => id.clone(),
            None => {
                let (value, id) = device::mint(&gw.notifier.device_key);
                set = Some(gw.cookies.set_cross_site(
                    gw.cookies.known,
                    &value,
                    device::MAX_AGE_SECS,
                ));
                id
            }
        };
        fresh = match acc
            .users
            .note_known_device(&p.principal, &device::hash(&id), now)
            .await
        {
            Ok(f) => f,
            Err(e) => {
                // Never blocks the sign-in; without the store there is no telling, so no mail.
                tracing::warn!(error = %e, "known device not recorded");
                false
            }
        };
    }
    let Some(to) = p.email.clone() else {
        return set;
    };
    let method = p.method.as_header();
    let facts = SignInFacts {
        issuer: &gw.config.mfa.issuer,
        user: &p.user,
        at: now,
        ip,
        user_agent: ua,
        method: &method,
    };
    // One mail per sign-in: a recovery code says more than a new browser does.
    let (kind, m) = if used == MfaUsed::RecoveryCode && n.recovery_code_used {
        let left = acc
            .users
            .count_recovery_codes(&p.principal, now)
            .await
            .unwrap_or(0);
        let url = report_url(gw, &p.principal, &p.user);
        (
            MailKind::RecoveryCode,
            mail::recovery_code_used(&facts, left, &url, ttl_days(gw)),
        )
    } else if fresh {
        let url = report_url(gw, &p.principal, &p.user);
        (
            MailKind::NewDevice,
            mail::new_device(&facts, &url, ttl_days(gw)),
        )
    } else {
        return set;
    };
    gw.notifier.mailer.send_later(kind, vec![to], m);
    set
}

/// A second factor was added, replaced or removed: tells the user, when there is an address.
pub fn factor_changed(gw: &Gateway, user: &str, email: Option<&str>, change: FactorChange) {
    if !gw.config.notify.factor_changed {
        return;
    }
    let Some(to) = email else { return };
    let m = mail::factor_changed(&gw.config.mfa.issuer, user, gw.clock.now(), change);
    gw.notifier
        .mailer
        .send_later(MailKind::FactorChanged, vec![to.to_owned()], m);
}

/// Mails `m` to every address in `[notify] admins`.
pub fn to_admins(gw: &Gateway, kind: MailKind, m: Mail) {
    let admins = &gw.config.notify.admins;
    if admins.is_empty() {
        return;
    }
    gw.notifier.mailer.send_later(kind, admins.clone(), m);
}

/// One break-glass step, mailed to the admins.
pub fn break_glass(gw: &Gateway, step: &str, detail: &str) {
    let m = mail::break_glass(&gw.config.mfa.issuer, step, detail, gw.clock.now());
    to_admins(gw, MailKind::BreakGlass, m);
}
