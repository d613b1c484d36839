//! Machine clients (DESIGN.md §9): `[[service_tokens]]` (unique names, a SHA-256 of 64 hex
//! characters, defined roles), `[[idp]] bearer` (OIDC only, a non-empty audience) and the
//! `bearer = true` routes. Invariant: a token's hash and name are unique, so a match names one client.

use super::ctx::{i, is_name, k, Ctx};
use crate::config::model::{BearerSettings, IdpConfig, RoleConfig, ServiceTokenConfig};
use crate::config::raw::{RawBearer, RawRoute, RawServiceToken};
use std::collections::{BTreeMap, BTreeSet};

/// `[[service_tokens]]`.
pub(super) fn service_tokens(
    cx: &mut Ctx<'_>,
    raw: &[RawServiceToken],
    roles: &BTreeMap<String, RoleConfig>,
) -> Vec<ServiceTokenConfig> {
    let mut out = Vec::with_capacity(raw.len());
    let mut names = BTreeSet::new();
    let mut hashes = BTreeSet::new();
    for (n, t) in raw.iter().enumerate() {
        let p = |key: &str| vec![k("service_tokens"), i(n), k(key)];
        if !is_name(&t.name) {
            cx.err(
                &p("name"),
                "token names use a-z, 0-9, '_' and '-' (at most 64)",
            );
        } else if !names.insert(t.name.clone()) {
            cx.err(
                &p("name"),
                format!("duplicate service token name {:?}", t.name),
            );
        }
        if t.roles.is_empty() {
            cx.err(
                &p("roles"),
                "a service token must name the roles it carries",
            );
        }
        for (m, role) in t.roles.iter().enumerate() {
            if !roles.contains_key(role) {
                cx.err(
                    &[k("service_tokens"), i(n), k("roles"), i(m)],
                    format!("unknown role {role:?}; define [roles.{role}]"),
                );
            }
        }
        let hex = t.sha256.trim();
        let sha256 = hex
            .bytes()
            .all(|b| b.is_ascii_hexdigit())
            .then(|| super::server::decode_sha256(hex))
            .flatten();
        match sha256 {
            Some(sha256) => {
                if !hashes.insert(sha256) {
                    cx.err(
                        &p("sha256"),
                        "the same token is configured twice; each client needs its own",
                    );
                }
                out.push(ServiceTokenConfig {
                    name: t.name.clone(),
                    sha256,
                    roles: t.roles.clone(),
                });
            }
            None => cx.err(
                &p("sha256"),
                "must be 64 hex characters: the SHA-256 of the token (`portcullis tokens new NAME --role R` prints one)",
            ),
        }
    }
    out
}

/// `[[idp]] bearer = { audience, roles_claim }` of an OIDC IdP.
pub(super) fn bearer_settings(
    cx: &mut Ctx<'_>,
    n: usize,
    raw: &RawBearer,
    client_id: Option<&str>,
) -> Option<BearerSettings> {
    let p = |key: &str| vec![k("idp"), i(n), k("bearer"), k(key)];
    let audience = raw.audience.trim();
    if audience.is_empty() {
        cx.err(
            &p("audience"),
            "must name the audience (aud) the access tokens are issued for",
        );
        return None;
    }
    // An ID token issued to the gateway names its client id: with that audience, an ID token
    // that leaked from a login would pass as an access token.
    if client_id == Some(audience) {
        cx.warn(
            &p("audience"),
            "is the gateway's own client_id: ID tokens issued to the gateway would be accepted as access tokens; use the API's own audience",
        );
    }
    let roles_claim = raw.roles_claim.as_deref().unwrap_or("roles").trim();
    if roles_claim.is_empty() {
        cx.err(&p("roles_claim"), "must name a claim (default \"roles\")");
        return None;
    }
    Some(BearerSettings {
        audience: audience.to_owned(),
        roles_claim: roles_claim.to_owned(),
    })
}

/// A `bearer = true` route that no bearer can reach (no service token, no bearer IdP): a
/// warning, not an error, so removing the last token by a reload still revokes it.
pub(super) fn check_bearer_routes(
    cx: &mut Ctx<'_>,
    routes: &[RawRoute],
    tokens: &[ServiceTokenConfig],
    idps: &[IdpConfig],
) {
    let any_idp = idps
        .iter()
        .any(|i| i.oidc.as_ref().is_some_and(|o| o.bearer.is_some()));
    if !tokens.is_empty() || any_idp {
        return;
    }
    for (n, r) in routes.iter().enumerate() {
        if r.bearer == Some(true) {
            cx.warn(
                &[k("routes"), i(n), k("bearer")],
                "no [[service_tokens]] and no [[idp]] with bearer: every bearer token is refused here",
            );
        }
    }
}
