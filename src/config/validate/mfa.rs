//! `[mfa]`: the second factors offered, email codes and their SMTP relay, recovery codes,
//! passkeys' relying party (from `server.public_url`), the per-role factor lists, and how a user
//! without a factor enrolls one (DESIGN.md §6: an invitation by default wherever one can be
//! mailed; `first_login` is accepted with a warning).

use super::ctx::{i, k, Ctx};
use crate::config::model::{
    EmailConfig, Enrollment, MfaConfig, MfaMethod, RoleConfig, WebauthnConfig,
};
use crate::config::raw::RawConfig;
use std::collections::BTreeMap;
use std::time::Duration;

/// A factor named in the config at `p` (`[mfa] methods`, `roles.<r>.mfa_methods`).
pub(super) fn method_named(
    cx: &mut Ctx<'_>,
    p: &[crate::config::locate::Seg],
    name: &str,
) -> Option<MfaMethod> {
    let m = MfaMethod::parse(name);
    if m.is_none() {
        cx.err(
            p,
            format!("unknown method {name:?}; use totp, email, recovery_code or webauthn"),
        );
    }
    m
}

/// `roles.<r>.mfa_methods` against `[mfa] methods` (DESIGN.md §10): each named factor must be
/// offered at all, and a role that requires a second factor must keep at least one; two such
/// roles with nothing in common get a warning (a user holding both could not sign in).
pub(super) fn role_methods(
    cx: &mut Ctx<'_>,
    roles: &BTreeMap<String, RoleConfig>,
    mfa: &MfaConfig,
) {
    for (name, role) in roles {
        let Some(list) = &role.mfa_methods else {
            continue;
        };
        let at = [k("roles"), k(name), k("mfa_methods")];
        for (n, m) in list.iter().enumerate() {
            if !mfa.allows(*m) {
                cx.err(
                    &[k("roles"), k(name), k("mfa_methods"), i(n)],
                    format!("{:?} is not one of [mfa] methods", m.as_str()),
                );
            }
        }
        if role.require_mfa && !list.iter().any(|m| mfa.allows(*m)) {
            cx.err(
                &at,
                "leaves this role no second factor: name one of [mfa] methods",
            );
        }
    }
    let strict: Vec<_> = roles.values().filter(|r| r.require_mfa).collect();
    for (n, a) in strict.iter().enumerate() {
        for b in strict.iter().skip(n + 1) {
            let both = [a.name.clone(), b.name.clone()];
            let common = mfa.methods.iter().filter(|m| {
                both.iter().all(|r| {
                    roles
                        .get(r)
                        .and_then(|r| r.mfa_methods.as_ref())
                        .is_none_or(|l| l.contains(m))
                })
            });
            if common.count() == 0 {
                cx.warn(
                    &[k("roles"), k(&b.name), k("mfa_methods")],
                    format!(
                        "has no factor in common with role {:?}: a user holding both cannot \
                         finish a sign-in",
                        a.name
                    ),
                );
            }
        }
    }
}

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
            webauthn: None,
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
        if let Some(m) = method_named(cx, &p, name) {
            methods.push(m);
        }
    }
    let webauthn = methods
        .contains(&MfaMethod::Webauthn)
        .then(|| webauthn(cx, raw, m.issuer.as_deref()))
        .flatten();
    if m.webauthn.is_some() && !methods.contains(&MfaMethod::Webauthn) {
        cx.warn(
            &[k("mfa"), k("webauthn")],
            "is ignored: \"webauthn\" is not one of [mfa] methods",
        );
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
        webauthn,
    }
}

/// The relying party of passkeys: `server.public_url`'s host and origin, `rp_id` narrowed to a
/// registrable suffix of that host at most (WebAuthn §5.1.4.1); an IP address is refused, as
/// browsers refuse it.
fn webauthn(cx: &mut Ctx<'_>, raw: &RawConfig, issuer: Option<&str>) -> Option<WebauthnConfig> {
    let w = raw.mfa.as_ref().and_then(|m| m.webauthn.as_ref());
    let url = raw.server.public_url.as_str();
    let (scheme, rest) = url.split_once("://")?;
    let authority = rest.split('/').next().unwrap_or_default();
    let host = match authority.rsplit_once(':') {
        Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => authority,
    }
    .to_ascii_lowercase();
    let at_url = [k("server"), k("public_url")];
    if host.parse::<std::net::IpAddr>().is_ok() || host.starts_with('[') {
        cx.err(
            &at_url,
            "is an IP address, which browsers refuse as a passkey relying party: use a host name \
             (\"http://localhost:PORT\" for local tests)",
        );
        return None;
    }
    let rp_id = match w.and_then(|w| w.rp_id.as_deref()) {
        Some(id) => {
            let id = id.to_ascii_lowercase();
            if id != host && !host.ends_with(&format!(".{id}")) {
                cx.err(
                    &[k("mfa"), k("webauthn"), k("rp_id")],
                    format!(
                        "{id:?} must be server.public_url's host {host:?} or a parent domain of it"
                    ),
                );
            }
            id
        }
        None => host,
    };
    Some(WebauthnConfig {
        rp_id,
        rp_name: w
            .and_then(|w| w.rp_name.clone())
            .or_else(|| issuer.map(str::to_owned))
            .unwrap_or_else(|| "portcullis".to_owned()),
        origin: format!("{scheme}://{authority}"),
    })
}

/// How long an enrollment link lives unless `[mfa] invite_ttl` says otherwise.
const DEFAULT_INVITE_TTL: Duration = Duration::from_secs(7 * 86_400);
