//! The passkeys of the account page (DESIGN.md §10): list, add, rename, remove a native user's
//! own credentials. Adding and removing change the account's factors, so the account page asks
//! for a fresh factor first, as for every factor change (`account::check_factor_change`);
//! removing the last factor a role that requires one accepts is refused. The account page
//! renders what these return.

use super::display::{code_field, hidden, time_html};
use super::views::{passkey_block, PasskeyButton};
use crate::audit::{self, Event};
use crate::auth::passkey::{self as pk, Bound, Registration};
use crate::auth::policy::effective_policy;
use crate::config::MfaMethod;
use crate::http::{form_value, store_error};
use crate::pages::{esc, json_error, Msg};
use crate::proxy::forward::GatewayBody;
use crate::session::{AuthMethod, Session};
use crate::state::Gateway;
use crate::storage::UserStore;
use hyper::{Response, StatusCode};
use std::net::IpAddr;

/// What an action leads to: the account page with a notice or an error, or an answer of its
/// own (a store failure).
// Allowed: one value per account action, returned and matched at once, never stored or
// collected, so its size costs nothing (boxing would allocate on the error path only to save it).
#[allow(clippy::large_enum_variant)]
pub(super) enum Outcome {
    Notice(Msg),
    Refused(Msg),
    Answer(Response<GatewayBody>),
}

fn is_native(s: &Session) -> bool {
    s.identity.method == AuthMethod::Native
}

/// Whether this session may hold passkeys: a native account whose roles accept them.
fn passkeys_allowed(gw: &Gateway, s: &Session) -> bool {
    is_native(s)
        && gw.passkeys.is_some()
        && gw
            .config
            .mfa_methods_for(&s.identity.roles)
            .contains(&MfaMethod::Webauthn)
}

/// The "Passkeys" section: each credential with its dates, a rename and a remove form; then
/// the button that adds one.
pub(super) async fn section(
    gw: &Gateway,
    s: &Session,
    acc: &crate::accounts::Accounts,
    token: &str,
    needs_code: bool,
) -> String {
    let fresh = |id: &str| {
        if needs_code {
            code_field(&gw.chrome, id)
        } else {
            String::new()
        }
    };
    if !passkeys_allowed(gw, s) {
        return String::new();
    }
    let p = esc(&gw.config.server.prefix);
    let now = gw.clock.now();
    let rows = acc
        .users
        .list_passkeys(&s.identity.principal)
        .await
        .unwrap_or_default();
    let t = |m: Msg| esc(gw.chrome.t(m));
    let mut out = format!("<h2>{}</h2>", t(Msg::PkHeading));
    if rows.is_empty() {
        out.push_str(&format!("<p id=\"passkeys\">{}</p>", t(Msg::PkNone)));
    } else {
        out.push_str("<ul id=\"passkeys\">");
        for (n, r) in rows.iter().enumerate() {
            let used = r
                .last_used_at
                .map_or_else(|| t(Msg::PkNever), |at| time_html(now, at));
            out.push_str(&format!(
                "<li data-credential=\"{id}\"><strong>{name}</strong> — {added_label} {added}, {used_label} {used}\
<form method=\"post\" action=\"{p}/account/passkeys/rename\">{tok}<input type=\"hidden\" name=\"id\" value=\"{id}\">\
<label for=\"rename-{n}\">{new_name}</label><input id=\"rename-{n}\" name=\"name\" type=\"text\" maxlength=\"64\" value=\"{name}\" required>\
<button type=\"submit\" class=\"secondary\">{rename}</button></form>\
<form method=\"post\" action=\"{p}/account/passkeys/remove\">{tok}<input type=\"hidden\" name=\"id\" value=\"{id}\">{fresh}\
<button type=\"submit\" class=\"secondary\" id=\"remove-passkey-{n}\">{remove}</button></form></li>",
                id = esc(&r.credential_id),
                name = esc(&r.name),
                added = time_html(now, r.created_at),
                tok = hidden(token),
                fresh = fresh(&format!("code-remove-{n}")),
                added_label = t(Msg::PkAdded),
                used_label = t(Msg::PkLastUsed),
                new_name = t(Msg::PkNewName),
                rename = t(Msg::PkRename),
                remove = t(Msg::PkRemove),
            ));
        }
        out.push_str("</ul>");
    }
    let extra = format!(
        "<label for=\"passkey-name\">{label}</label><input id=\"passkey-name\" name=\"name\" type=\"text\" maxlength=\"64\" value=\"Passkey\">{fresh}",
        label = esc(gw.chrome.t(Msg::PasskeyName)),
        fresh = fresh("code-passkey"),
    );
    let prefix = &gw.config.server.prefix;
    out.push_str(&passkey_block(
        &gw.chrome,
        &PasskeyButton {
            kind: "register",
            id: "webauthn-register",
            label: Msg::PasskeyRegister,
            prefix,
            options_url: &format!("{prefix}/account/passkeys/options"),
            options_mode: None,
            csrf: token,
            action: &format!("{prefix}/account/passkeys/add"),
            mode: "webauthn",
            extra: &extra,
        },
    ));
    out
}

/// `POST /account/passkeys/options`: registration options bound to this session (JSON).
pub(super) async fn options(gw: &Gateway, s: &Session) -> Response<GatewayBody> {
    let (Some(acc), Some(rp), true) = (
        gw.accounts.as_deref(),
        gw.passkeys.as_deref(),
        passkeys_allowed(gw, s),
    ) else {
        return json_error(
            StatusCode::FORBIDDEN,
            "not_allowed",
            gw.chrome.t(Msg::PasskeyFailed),
        );
    };
    match pk::begin_register(
        acc,
        &gw.store,
        rp,
        &s.identity.principal,
        &s.identity.user,
        Bound::Session(s.id.as_str()),
    )
    .await
    {
        Ok(Ok(o)) => super::passkey::options_answer(gw, Ok(o)),
        Ok(Err(_)) => json_error(
            StatusCode::CONFLICT,
            "too_many_passkeys",
            gw.chrome.t(Msg::PasskeyFailed),
        ),
        Err(e) => store_error(gw, e),
    }
}

/// `POST /account/passkeys/add` (after the fresh factor): the ceremony's answer.
pub(super) async fn add(gw: &Gateway, s: &Session, form: &str, ip: IpAddr) -> Outcome {
    let (Some(acc), Some(rp), true) = (
        gw.accounts.as_deref(),
        gw.passkeys.as_deref(),
        passkeys_allowed(gw, s),
    ) else {
        return Outcome::Refused(Msg::PkNotOffered);
    };
    let response = form_value(form, "credential").unwrap_or_default();
    let name = form_value(form, "name").unwrap_or_default();
    let reg = Registration {
        principal: &s.identity.principal,
        bound: Bound::Session(s.id.as_str()),
        response: &response,
        name: &name,
        invite: None,
        first: None,
    };
    let reason = match pk::finish_register(acc, &gw.store, rp, reg, gw.clock.now()).await {
        Ok(Ok(_)) => None,
        Ok(Err(e)) => Some(e.to_string()),
        Err(e) => return Outcome::Answer(store_error(gw, e)),
    };
    let outcome = if reason.is_some() {
        audit::Outcome::Failure
    } else {
        audit::Outcome::Success
    };
    audit::record(
        gw,
        Event {
            user: Some(&s.identity.user),
            method: Some("webauthn"),
            reason: reason.as_deref(),
            ip: Some(ip),
            session: Some(s.id.as_str()),
            ..Event::new(audit::Kind::MfaEnroll, outcome)
        },
    )
    .await;
    if reason.is_some() {
        return Outcome::Refused(super::passkey::REFUSED);
    }
    crate::alerts::factor_changed(
        gw,
        &s.identity.user,
        s.identity.email.as_deref(),
        crate::notify::mail::FactorChange::PasskeyAdded,
    );
    Outcome::Notice(Msg::PkAddedNotice)
}

/// `POST /account/passkeys/rename`: names are the user's own labels (no fresh factor).
pub(super) async fn rename(gw: &Gateway, s: &Session, form: &str) -> Outcome {
    let Some(acc) = gw.accounts.as_deref().filter(|_| is_native(s)) else {
        return Outcome::Refused(Msg::PkNothingToRename);
    };
    let id = form_value(form, "id").unwrap_or_default();
    let name = pk::clean_name(&form_value(form, "name").unwrap_or_default());
    match acc
        .users
        .rename_passkey(&s.identity.principal, &id, &name)
        .await
    {
        Ok(true) => Outcome::Notice(Msg::PkRenamed),
        Ok(false) => Outcome::Refused(Msg::PkNoSuch),
        Err(e) => Outcome::Answer(store_error(gw, e)),
    }
}

/// `POST /account/passkeys/remove` (after the fresh factor): refused when it is the last
/// factor the account's roles accept and they require one.
pub(super) async fn remove(gw: &Gateway, s: &Session, form: &str, ip: IpAddr) -> Outcome {
    let Some(acc) = gw.accounts.as_deref().filter(|_| is_native(s)) else {
        return Outcome::Refused(Msg::PkNothingToRemove);
    };
    let principal = &s.identity.principal;
    let id = form_value(form, "id").unwrap_or_default();
    let now = gw.clock.now();
    let rows = match acc.users.list_passkeys(principal).await {
        Ok(r) => r,
        Err(e) => return Outcome::Answer(store_error(gw, e)),
    };
    if !rows.iter().any(|r| r.credential_id == id) {
        return Outcome::Refused(Msg::PkNoSuch);
    }
    let methods = gw.config.mfa_methods_for(&s.identity.roles);
    let totp = methods.contains(&MfaMethod::Totp)
        && matches!(acc.users.get_totp(principal).await, Ok(Some(f)) if f.confirmed);
    let codes = methods.contains(&MfaMethod::RecoveryCode)
        && acc
            .users
            .count_recovery_codes(principal, now)
            .await
            .unwrap_or(0)
            > 0;
    // Without another kind of factor the store keeps the last passkey itself (under the
    // principal's lock), so two removals racing for the last two cannot both succeed. A store
    // failure above reads as "no other factor": the stricter side.
    let keep_one = !(totp || codes) && effective_policy(&gw.config, &s.identity.roles).require_mfa;
    let removed = if keep_one {
        acc.users.delete_passkey_unless_last(principal, &id).await
    } else {
        acc.users.delete_passkey(principal, &id).await
    };
    match removed {
        Ok(true) => {}
        Ok(false) if keep_one => {
            audit_removal(gw, s, audit::Outcome::Refused, Some("last_factor"), ip).await;
            return Outcome::Refused(Msg::PkLastFactor);
        }
        Ok(false) => return Outcome::Refused(Msg::PkNoSuch),
        Err(e) => return Outcome::Answer(store_error(gw, e)),
    }
    audit_removal(gw, s, audit::Outcome::Success, None, ip).await;
    crate::alerts::factor_changed(
        gw,
        &s.identity.user,
        s.identity.email.as_deref(),
        crate::notify::mail::FactorChange::PasskeyRemoved,
    );
    Outcome::Notice(Msg::PkRemoved)
}

async fn audit_removal(
    gw: &Gateway,
    s: &Session,
    outcome: audit::Outcome,
    reason: Option<&str>,
    ip: IpAddr,
) {
    audit::record(
        gw,
        Event {
            user: Some(&s.identity.user),
            method: Some("webauthn"),
            reason,
            ip: Some(ip),
            session: Some(s.id.as_str()),
            detail: Some("{\"removed\":\"passkey\"}".to_owned()),
            ..Event::new(audit::Kind::MfaRemoved, outcome)
        },
    )
    .await;
}
