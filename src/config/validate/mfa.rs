//! `[mfa]`: the second factors offered (WebAuthn is refused in this build), email codes and
//! their SMTP relay, recovery codes, and how a user without a factor enrolls one (DESIGN.md §6:
//! an invitation by default wherever one can be mailed; `first_login` is accepted with a
//! warning).

use super::ctx::{i, k, Ctx};
use crate::config::model::{EmailConfig, Enrollment, MfaConfig, MfaMethod};
use crate::config::raw::RawConfig;
use std::time::Duration;

/// `[mfa]`, and the warning for `first_login` enrollment where native users have a store.
pub(super) fn mfa(cx: &mut Ctx<'_>, raw: &RawConfig, has_native: bool) -> MfaConfig {
    let mfa = build_mfa(cx, raw);
    if has_native && raw.storage.is_some() && mfa.enrollment == Enrollment::FirstLogin {
        let at = if raw.mfa.as_ref().is_some_and(|m| m.enrollment.is_some()) {
            vec![k("mfa"), k("enrollment")]
        } else {
            vec![k("mfa")]
        };
        cx.warn(
            &at,
            "enrollment is \"first_login\": whoever holds a new user's password chooses their \
             second factor; set enrollment = \"invite\" to require a single-use enrollment link",
        );
    }
    mfa
}

fn build_mfa(cx: &mut Ctx<'_>, raw: &RawConfig) -> MfaConfig {
    let Some(m) = &raw.mfa else {
        return MfaConfig {
            issuer: "portcullis".to_owned(),
            methods: vec![MfaMethod::Totp, MfaMethod::RecoveryCode],
            email: None,
            recovery_count: 10,
            recovery_ttl: Duration::ZERO,
            enrollment: Enrollment::FirstLogin,
            invite_ttl: DEFAULT_INVITE_TTL,
        };
    };
    let mut methods = Vec::new();
    for (n, name) in m
        .methods
        .clone()
        .unwrap_or_else(|| vec!["totp".into(), "recovery_code".into()])
        .iter()
        .enumerate()
    {
        let p = [k("mfa"), k("methods"), i(n)];
        match name.as_str() {
            "totp" => methods.push(MfaMethod::Totp),
            "email" => methods.push(MfaMethod::Email),
            "recovery_code" => methods.push(MfaMethod::RecoveryCode),
            "webauthn" => cx.unsupported(&p, "WebAuthn"),
            other => cx.err(
                &p,
                format!("unknown method {other:?}; use totp, email or recovery_code"),
            ),
        }
    }
    let email = m.email.as_ref().and_then(|e| {
        let table = [k("mfa"), k("email")];
        let at_url = [k("mfa"), k("email"), k("smtp_url")];
        let at_from = [k("mfa"), k("email"), k("from")];
        if e.smtp_url.is_none() && e.smtp_url_file.is_none() {
            cx.err(
                &at_url,
                "is required: \"smtp://relay:587\" or \"smtps://…\" (or smtp_url_file)",
            );
        }
        let url = cx.secret(
            &table,
            "smtp_url",
            e.smtp_url.as_ref(),
            e.smtp_url_file.as_ref(),
        )?;
        if !(url.starts_with("smtp://") || url.starts_with("smtps://")) {
            cx.err(&at_url, "must start with smtp:// or smtps://");
        } else {
            super::files::smtp(cx, &at_url, &url, &at_from, &e.from);
        }
        if !e.from.contains('@') {
            cx.err(&at_from, "must be an email address");
        }
        Some(EmailConfig {
            smtp_url: url,
            from: e.from.clone(),
            code_ttl: e.code_ttl.map_or(Duration::from_secs(600), |d| d.0),
            resend_interval: e.resend_interval.map_or(Duration::from_secs(30), |d| d.0),
        })
    });
    if methods.contains(&MfaMethod::Email) && m.email.is_none() {
        cx.err(
            &[k("mfa"), k("methods")],
            "\"email\" needs an [mfa.email] table with smtp_url and from",
        );
    }
    let rc = m.recovery_codes.as_ref();
    let recovery_count = rc.and_then(|r| r.count).unwrap_or(10);
    if !(1..=50).contains(&recovery_count) {
        cx.err(
            &[k("mfa"), k("recovery_codes"), k("count")],
            "must be between 1 and 50",
        );
    }
    // DESIGN.md §6: invitations are the default wherever they can be mailed.
    let enrollment = match m.enrollment.as_deref() {
        None if m.email.is_some() => Enrollment::Invite,
        None => Enrollment::FirstLogin,
        Some("invite") => Enrollment::Invite,
        Some("first_login") => Enrollment::FirstLogin,
        Some(other) => {
            cx.err(
                &[k("mfa"), k("enrollment")],
                format!("unknown enrollment {other:?}; use \"invite\" or \"first_login\""),
            );
            Enrollment::Invite
        }
    };
    let invite_ttl = m.invite_ttl.map_or(DEFAULT_INVITE_TTL, |d| d.0);
    if invite_ttl < Duration::from_secs(60) || invite_ttl > Duration::from_secs(90 * 86_400) {
        cx.err(&[k("mfa"), k("invite_ttl")], "must be between 1m and 90d");
    }
    MfaConfig {
        issuer: m.issuer.clone().unwrap_or_else(|| "portcullis".to_owned()),
        methods,
        email,
        recovery_count,
        recovery_ttl: rc.and_then(|r| r.ttl).map_or(Duration::ZERO, |d| d.0),
        enrollment,
        invite_ttl,
    }
}

/// How long an enrollment link lives unless `[mfa] invite_ttl` says otherwise.
const DEFAULT_INVITE_TTL: Duration = Duration::from_secs(7 * 86_400);
