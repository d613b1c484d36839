//! What every single sign-on kind shares once an IdP's answer is verified (DESIGN.md §4): roles
//! from groups, the MFA decision (`stepup.decision`), refusals, and the gateway's side (logging,
//! audit events) of the session ↔ IdP links that RP/SP-initiated, back-channel and
//! IdP-initiated logout use; the links themselves are `session::links`.

use super::complete::{after_first_factor, finish, BrowserCookies, Next};
use super::error::{SSO_MFA_EVIDENCE_MISSING, SSO_NO_ROLE};
use crate::audit::{self, Event};
use crate::auth::native::{FirstFactorVerified, MfaVerified};
use crate::auth::pending::{LoginMethod, PendingLogin, SsoLink, Stage};
use crate::auth::policy::{effective_policy, roles_for_groups, LocalPath};
use crate::config::{IdpConfig, IdpKind, OnMissingMfa};
use crate::proxy::forward::GatewayBody;
use crate::session::{links, random_id, SessionId};
use crate::state::Gateway;
use hyper::Response;
use std::net::IpAddr;

pub use super::error::Refusal;

/// A refused login: an audit event, a log line with the correlation id, a clear page.
pub async fn refuse(
    gw: &Gateway,
    method: &str,
    r: Refusal,
    detail: &str,
    user: Option<&str>,
    ip: IpAddr,
) -> Response<GatewayBody> {
    let correlation = random_id(9);
    tracing::warn!(method = %method, correlation = %correlation, reason = r.reason, error = %detail, "sso login refused");
    audit::record(
        gw,
        Event {
            user,
            method: Some(method),
            reason: Some(r.reason),
            ip: Some(ip),
            detail: Some(serde_json::json!({ "correlation": correlation }).to_string()),
            ..Event::new(audit::Kind::LoginFailure, audit::Outcome::Refused)
        },
    )
    .await;
    r.page(&gw.chrome, &correlation)
}

/// What an SSO login needs after the IdP (DESIGN.md §4), recorded as `stepup.decision`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Decision {
    /// The IdP's evidence matches `mfa_evidence`: `X-Auth-MFA: idp`.
    IdpEvidence,
    /// No role of the user requires MFA.
    NotRequired,
    /// Evidence missing, `on_missing_mfa = "deny"`: no session.
    Deny,
    /// Evidence missing, `on_missing_mfa = "step_up"`: the gateway's own second factor.
    StepUp,
    /// Evidence missing, `on_missing_mfa = "trust"`: a session with `X-Auth-MFA: none`.
    Trust,
}

impl Decision {
    fn outcome(self) -> audit::Outcome {
        match self {
            Decision::IdpEvidence => audit::Outcome::IdpEvidence,
            Decision::NotRequired => audit::Outcome::NotRequired,
            Decision::Deny => audit::Outcome::Deny,
            Decision::StepUp => audit::Outcome::StepUp,
            Decision::Trust => audit::Outcome::Trust,
        }
    }
}

/// The principal of an SSO user (DESIGN.md §6): `<idp-id>:<subject>`, where the subject is
/// what the IdP keeps stable for that user (OIDC `sub`, a persistent SAML NameID or the
/// configured subject attribute). IdP ids are `[a-z0-9_-]` and never `native`, so the first
/// `:` ends the id and no SSO principal can equal a native one (`native:<user>`).
pub fn principal(idp: &str, subject: &str) -> String {
    format!("{idp}:{subject}")
}

/// A verified SSO login, whatever the protocol.
pub struct SsoLogin<'a> {
    pub idp: &'a IdpConfig,
    /// `oidc:<id>` or `saml:<id>`.
    pub method: String,
    /// Who this is (`principal()`): whose gateway factors a step-up checks, and who owns the
    /// session.
    pub principal: String,
    pub username: String,
    pub email: Option<String>,
    pub groups: Vec<String>,
    pub link: SsoLink,
    pub rd: String,
    /// Whether the IdP's MFA evidence matched `mfa_evidence`.
    pub evidence: bool,
    /// What the evidence was, for the audit log.
    pub evidence_detail: serde_json::Value,
}

/// Roles, then the MFA decision: a session, a step-up, or a refusal.
pub async fn complete(
    gw: &Gateway,
    mut l: SsoLogin<'_>,
    device: BrowserCookies,
    ip: IpAddr,
    ua: Option<String>,
) -> Response<GatewayBody> {
    // The IdP's `roles` cap what its groups can grant: a partner IdP asserting `admins`
    // does not make an admin (DESIGN.md §6).
    let (roles, dropped): (Vec<String>, Vec<String>) = roles_for_groups(&gw.config, &l.groups)
        .into_iter()
        .partition(|r| l.idp.may_grant(r));
    // Nor are the groups that mean those roles here forwarded: an app reading
    // `X-Forwarded-Groups` must not see the `admins` the gateway refused to honour.
    let (groups, dropped_groups): (Vec<String>, Vec<String>) =
        std::mem::take(&mut l.groups).into_iter().partition(|g| {
            !dropped.iter().any(|r| {
                gw.config
                    .roles
                    .get(r)
                    .is_some_and(|rc| rc.groups.contains(g))
            })
        });
    l.groups = groups;
    if !dropped.is_empty() {
        tracing::warn!(method = %l.method, dropped = ?dropped, "roles beyond the idp's roles dropped");
        audit::record(
            gw,
            Event {
                user: Some(&l.username),
                method: Some(&l.method),
                reason: Some("idp_roles"),
                ip: Some(ip),
                detail: Some(
                    serde_json::json!({ "principal": l.principal, "dropped": dropped, "dropped_groups": dropped_groups, "kept": roles })
                        .to_string(),
                ),
                ..Event::new(audit::Kind::LoginRolesDropped, audit::Outcome::Dropped)
            },
        )
        .await;
    }
    if roles.is_empty() {
        return refuse(
            gw,
            &l.method,
            SSO_NO_ROLE,
            if dropped.is_empty() {
                "no configured role matches the user's groups"
            } else {
                "every role of the user's groups is beyond the idp's roles"
            },
            Some(&l.username),
            ip,
        )
        .await;
    }
    let policy = effective_policy(&gw.config, &roles);
    let method = match l.idp.kind {
        IdpKind::Oidc => LoginMethod::Oidc(l.idp.id.clone()),
        IdpKind::Saml => LoginMethod::Saml(l.idp.id.clone()),
    };
    let pending = PendingLogin {
        stage: Stage::Challenge,
        user: l.username.clone(),
        principal: l.principal,
        email: l.email,
        groups: l.groups,
        roles,
        method,
        csrf: random_id(24),
        rd: LocalPath::parse(&l.rd)
            .unwrap_or_else(LocalPath::root)
            .as_str()
            .to_owned(),
        remember_secs: policy.remember_mfa.as_secs(),
        created_at: gw.clock.now(),
        sso: Some(l.link),
        known_device: device.known,
        passkeys: false,
    };
    let decision = match (l.evidence, policy.require_mfa, l.idp.on_missing_mfa) {
        (true, _, _) => Decision::IdpEvidence,
        (false, false, _) => Decision::NotRequired,
        (false, true, OnMissingMfa::Deny) => Decision::Deny,
        (false, true, OnMissingMfa::StepUp) => Decision::StepUp,
        (false, true, OnMissingMfa::Trust) => Decision::Trust,
    };
    let mut detail = l.evidence_detail;
    if let Some(o) = detail.as_object_mut() {
        o.insert("require_mfa".into(), policy.require_mfa.into());
    }
    audit::record(
        gw,
        Event {
            user: Some(&l.username),
            method: Some(&l.method),
            reason: Some(if l.evidence {
                "evidence_present"
            } else {
                "evidence_missing"
            }),
            ip: Some(ip),
            detail: Some(detail.to_string()),
            ..Event::new(audit::Kind::StepupDecision, decision.outcome())
        },
    )
    .await;
    match decision {
        Decision::IdpEvidence => {
            finish(gw, &pending, MfaVerified::by_idp_evidence(), None, ip, ua).await
        }
        Decision::NotRequired => match MfaVerified::not_required(&policy) {
            Some(v) => finish(gw, &pending, v, None, ip, ua).await,
            // Unreachable by the decision table; fail closed all the same.
            None => respond_deny(gw, &l.method, &l.username, ip).await,
        },
        Decision::Trust => {
            finish(
                gw,
                &pending,
                MfaVerified::trusted_without_evidence(),
                None,
                ip,
                ua,
            )
            .await
        }
        Decision::StepUp => {
            let next = Next {
                device: device.remembered.as_deref(),
                invite: None,
                ip,
                ua,
            };
            // The IdP's signed answer, verified by the caller, is the first factor.
            after_first_factor(gw, FirstFactorVerified::by_idp(), pending, &policy, next).await
        }
        Decision::Deny => respond_deny(gw, &l.method, &l.username, ip).await,
    }
}

/// `on_missing_mfa = "deny"` and no evidence: no session.
async fn respond_deny(gw: &Gateway, method: &str, user: &str, ip: IpAddr) -> Response<GatewayBody> {
    refuse(
        gw,
        method,
        SSO_MFA_EVIDENCE_MISSING,
        "mfa evidence missing and on_missing_mfa = deny",
        Some(user),
        ip,
    )
    .await
}

// The session <-> IdP links live in `session::links` (keys, the record, atomic add/take);
// here only the gateway's side of them: logging and audit events.
pub use crate::session::keys::hashed;
pub use crate::session::links::{sid_key, sub_key, SessionLink};

/// The link of a session, taken (logout consumes it). A store error or an undecodable record
/// is no link: the local logout goes ahead without the IdP's.
pub async fn take_link(gw: &Gateway, id: &SessionId) -> Option<SessionLink> {
    links::take(&gw.store, id).await.ok().flatten()
}

/// Ends every session listed under `key` (IdP-initiated or back-channel logout of a subject or
/// an IdP session), each recorded as an audit event `kind`. Returns how many ended.
pub async fn end_listed(
    gw: &Gateway,
    key: &str,
    kind: audit::Kind,
    method: &str,
    ip: IpAddr,
) -> Result<usize, crate::storage::StoreError> {
    let mut ended = 0;
    for id in links::take_listed(&gw.store, key).await? {
        if let Some(s) = links::end_session(&gw.store, &id).await? {
            ended += 1;
            audit::record(
                gw,
                Event {
                    user: Some(&s.identity.user),
                    method: Some(method),
                    ip: Some(ip),
                    session: Some(id.as_str()),
                    ..Event::new(kind, audit::Outcome::Success)
                },
            )
            .await;
        }
    }
    Ok(ended)
}
