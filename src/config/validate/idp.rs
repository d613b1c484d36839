//! `[[idp]]`: the IdPs (unique ids, a known kind, the roles each may grant) with their OpenID
//! Connect or SAML settings. A key of the other protocol is refused, not ignored; a SAML
//! metadata file is read and checked now (it must name a signing certificate), and so are SP
//! keys; issuer and metadata URLs are https (plain http only on loopback).

use super::ctx::{i, is_name, k, Ctx};
use crate::config::model::{
    ClientAuth, IdpConfig, IdpKind, OidcSettings, OnMissingMfa, RoleConfig, SamlMetadata,
    SamlSettings, SAML_DEFAULT_ALGORITHMS, SAML_KNOWN_ALGORITHMS,
};
use crate::config::raw::{RawConfig, RawIdp};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

/// Every `[[idp]]`, and the set of their ids (for login targets). OIDC and SAML arrive with
/// their own issues; the keys parse, using them is refused.
pub(super) fn idps(
    cx: &mut Ctx<'_>,
    raw: &RawConfig,
    roles: &BTreeMap<String, RoleConfig>,
) -> (Vec<IdpConfig>, BTreeSet<String>) {
    let mut idps = Vec::new();
    let mut seen = BTreeSet::new();
    for (n, idp) in raw.idp.iter().enumerate() {
        if let Some(c) = build_idp(cx, n, idp, &mut seen, roles) {
            // Step-up keeps the SSO user's own second factor in the user store.
            if c.on_missing_mfa == OnMissingMfa::StepUp
                && raw.storage.is_none()
                && raw.native.is_none()
            {
                cx.err(
                    &[k("idp"), i(n), k("on_missing_mfa")],
                    "\"step_up\" needs a [storage] section, where the gateway keeps second factors",
                );
            }
            idps.push(c);
        }
    }
    (idps, seen)
}

fn build_idp(
    cx: &mut Ctx<'_>,
    n: usize,
    idp: &RawIdp,
    seen: &mut BTreeSet<String>,
    roles: &BTreeMap<String, RoleConfig>,
) -> Option<IdpConfig> {
    let p = |key: &str| vec![k("idp"), i(n), k(key)];
    if !is_name(&idp.id) {
        cx.err(&p("id"), "IdP ids use a-z, 0-9, '_' and '-'");
    } else if idp.id == "native" {
        cx.err(&p("id"), "\"native\" is reserved for the native login");
    }
    if !seen.insert(idp.id.clone()) {
        cx.err(&p("id"), format!("duplicate IdP id {:?}", idp.id));
    }
    let kind = match idp.kind.as_str() {
        "oidc" => IdpKind::Oidc,
        "saml" => IdpKind::Saml,
        other => {
            cx.err(
                &p("kind"),
                format!("unknown kind {other:?}; use \"oidc\" or \"saml\""),
            );
            return None;
        }
    };
    let on_missing_mfa = match idp.on_missing_mfa.as_deref() {
        None | Some("deny") => OnMissingMfa::Deny,
        Some("step_up") => OnMissingMfa::StepUp,
        Some("trust") => OnMissingMfa::Trust,
        Some(other) => {
            cx.err(
                &p("on_missing_mfa"),
                format!("unknown value {other:?}; use \"deny\", \"step_up\" or \"trust\""),
            );
            OnMissingMfa::Deny
        }
    };
    // The roles this IdP may grant: each a defined role; an empty list would admit no one.
    if let Some(list) = &idp.roles {
        if list.is_empty() {
            cx.err(
                &p("roles"),
                "an empty list lets no user of this IdP in; name the roles it may grant, or remove the key to allow every role",
            );
        }
        for (m, role) in list.iter().enumerate() {
            if !roles.contains_key(role) {
                cx.err(
                    &[k("idp"), i(n), k("roles"), i(m)],
                    format!("unknown role {role:?}; define [roles.{role}]"),
                );
            }
        }
    }
    let (oidc, saml) = match kind {
        IdpKind::Oidc => (build_oidc(cx, n, idp), None),
        IdpKind::Saml => (None, build_saml(cx, n, idp)),
    };
    Some(IdpConfig {
        id: idp.id.clone(),
        kind,
        display_name: idp.display_name.clone().unwrap_or_else(|| idp.id.clone()),
        on_missing_mfa,
        roles: idp.roles.clone(),
        oidc,
        saml,
    })
}

/// The OIDC keys of one `[[idp]]`: required keys present, SAML-only keys refused, the issuer an
/// absolute URL (plain http only on loopback, for tests and local development).
fn build_oidc(cx: &mut Ctx<'_>, n: usize, idp: &RawIdp) -> Option<OidcSettings> {
    let p = |key: &str| vec![k("idp"), i(n), k(key)];
    let saml_only = [
        ("metadata", idp.metadata.is_some()),
        ("metadata_url", idp.metadata_url.is_some()),
        ("sp_entity_id", idp.sp_entity_id.is_some()),
        ("sp_key", idp.sp_key.is_some()),
        ("sp_cert", idp.sp_cert.is_some()),
        ("groups_attribute", idp.groups_attribute.is_some()),
        ("username_attribute", idp.username_attribute.is_some()),
        ("subject_attribute", idp.subject_attribute.is_some()),
        ("email_attribute", idp.email_attribute.is_some()),
        ("allow_idp_initiated", idp.allow_idp_initiated.is_some()),
        ("allowed_algorithms", idp.allowed_algorithms.is_some()),
        ("clock_skew", idp.clock_skew.is_some()),
        ("metadata_refresh", idp.metadata_refresh.is_some()),
        (
            "requested_authn_context",
            idp.requested_authn_context.is_some(),
        ),
        ("force_authn", idp.force_authn.is_some()),
    ];
    for (key, set) in saml_only {
        if set {
            cx.err(
                &p(key),
                "is a SAML setting; an OIDC IdP (kind = \"oidc\") does not take it",
            );
        }
    }
    if idp
        .mfa_evidence
        .as_ref()
        .is_some_and(|m| !m.authn_context_any.is_empty())
    {
        cx.err(
            &[k("idp"), i(n), k("mfa_evidence"), k("authn_context_any")],
            "is a SAML setting; an OIDC IdP checks amr_any and acr_any",
        );
    }
    let required = |cx: &mut Ctx<'_>, key: &str, v: &Option<String>| -> Option<String> {
        match v {
            Some(v) if !v.trim().is_empty() => Some(v.clone()),
            _ => {
                let also = if key == "client_secret" {
                    " (or client_secret_file)"
                } else {
                    ""
                };
                cx.err(
                    &p(key),
                    format!("is required for an OIDC IdP (kind = \"oidc\"){also}"),
                );
                None
            }
        }
    };
    let issuer = required(cx, "issuer", &idp.issuer);
    let client_id = required(cx, "client_id", &idp.client_id);
    let client_secret = match (&idp.client_secret, &idp.client_secret_file) {
        (None, None) => required(cx, "client_secret", &None),
        (inline, file) => cx
            .secret(
                &[k("idp"), i(n)],
                "client_secret",
                inline.as_ref(),
                file.as_ref(),
            )
            .and_then(|s| required(cx, "client_secret", &Some(s))),
    };
    if let Some(iss) = &issuer {
        if !is_issuer_url(iss) {
            cx.err(
                &p("issuer"),
                format!("{iss:?} is not an absolute https URL without query or fragment (plain http only on loopback)"),
            );
        }
    }
    let client_auth = match idp.client_auth.as_deref() {
        None | Some("client_secret_basic") => ClientAuth::ClientSecretBasic,
        Some("client_secret_post") => ClientAuth::ClientSecretPost,
        Some(other) => {
            cx.err(
                &p("client_auth"),
                format!("unknown value {other:?}; use \"client_secret_basic\" or \"client_secret_post\""),
            );
            ClientAuth::ClientSecretBasic
        }
    };
    let scopes = idp
        .scopes
        .clone()
        .unwrap_or_else(|| vec!["openid".into(), "email".into(), "profile".into()]);
    if !scopes.iter().any(|s| s == "openid") {
        cx.err(&p("scopes"), "must include \"openid\"");
    }
    if scopes
        .iter()
        .any(|s| s.is_empty() || s.contains(char::is_whitespace))
    {
        cx.err(&p("scopes"), "scopes are single words without spaces");
    }
    let http_timeout = idp.http_timeout.map_or(Duration::from_secs(10), |d| d.0);
    if http_timeout.is_zero() || http_timeout > Duration::from_secs(60) {
        cx.err(&p("http_timeout"), "must be above zero and at most 60s");
    }
    let evidence = idp.mfa_evidence.as_ref();
    let bearer = idp
        .bearer
        .as_ref()
        .and_then(|b| super::bearer::bearer_settings(cx, n, b, client_id.as_deref()));
    Some(OidcSettings {
        issuer: issuer?,
        client_id: client_id?,
        client_secret: crate::secret::ClientSecret::new(client_secret?),
        client_auth,
        scopes,
        username_claim: idp.username_claim.clone(),
        groups_claim: idp.groups_claim.clone().unwrap_or_else(|| "groups".into()),
        acr_values: idp.acr_values.clone().unwrap_or_default(),
        userinfo: idp.userinfo.unwrap_or(false),
        logout: idp.logout.unwrap_or(false),
        amr_any: evidence.map(|m| m.amr_any.clone()).unwrap_or_default(),
        acr_any: evidence.map(|m| m.acr_any.clone()).unwrap_or_default(),
        http_timeout,
        bearer,
    })
}

/// The SAML keys of one `[[idp]]`: metadata from exactly one of `metadata` (a file, checked now:
/// it must name a signing certificate) or `metadata_url`; OIDC-only keys refused.
fn build_saml(cx: &mut Ctx<'_>, n: usize, idp: &RawIdp) -> Option<SamlSettings> {
    let p = |key: &str| vec![k("idp"), i(n), k(key)];
    let oidc_only = [
        ("issuer", idp.issuer.is_some()),
        ("client_id", idp.client_id.is_some()),
        ("client_secret", idp.client_secret.is_some()),
        ("client_secret_file", idp.client_secret_file.is_some()),
        ("client_auth", idp.client_auth.is_some()),
        ("scopes", idp.scopes.is_some()),
        ("username_claim", idp.username_claim.is_some()),
        ("groups_claim", idp.groups_claim.is_some()),
        ("acr_values", idp.acr_values.is_some()),
        ("userinfo", idp.userinfo.is_some()),
        ("logout", idp.logout.is_some()),
        ("bearer", idp.bearer.is_some()),
    ];
    for (key, set) in oidc_only {
        if set {
            cx.err(
                &p(key),
                "is an OIDC setting; a SAML IdP (kind = \"saml\") does not take it",
            );
        }
    }
    let evidence = idp.mfa_evidence.as_ref();
    if evidence.is_some_and(|m| !m.amr_any.is_empty() || !m.acr_any.is_empty()) {
        cx.err(
            &[k("idp"), i(n), k("mfa_evidence")],
            "amr_any and acr_any are OIDC settings; a SAML IdP checks authn_context_any",
        );
    }
    let refresh = idp
        .metadata_refresh
        .map_or(Duration::from_secs(3600), |d| d.0);
    let metadata = match (&idp.metadata, &idp.metadata_url) {
        (Some(_), Some(_)) => {
            cx.err(
                &p("metadata_url"),
                "set either metadata (a file) or metadata_url, not both",
            );
            None
        }
        (None, None) => {
            cx.err(
                &p("metadata"),
                "a SAML IdP needs its metadata: metadata = \"file.xml\" or metadata_url = \"https://…\"",
            );
            None
        }
        (Some(file), None) => {
            let path = cx.existing_file(&p("metadata"), file);
            match std::fs::read_to_string(&path) {
                Ok(xml) => match crate::auth::saml::IdpMetadata::parse(&xml) {
                    Ok(_) => Some(SamlMetadata::File { path, xml }),
                    Err(e) => {
                        cx.err(&p("metadata"), format!("{}: {e}", path.display()));
                        None
                    }
                },
                // existing_file already said so when it is missing.
                Err(e) if path.is_file() => {
                    cx.err(
                        &p("metadata"),
                        format!("cannot read {}: {e}", path.display()),
                    );
                    None
                }
                Err(_) => None,
            }
        }
        (None, Some(url)) => {
            if !is_issuer_url(url) {
                cx.err(
                    &p("metadata_url"),
                    format!("{url:?} is not an absolute https URL (plain http only on loopback)"),
                );
            }
            if refresh < Duration::from_secs(60) {
                cx.err(&p("metadata_refresh"), "must be at least 60s");
            }
            Some(SamlMetadata::Url {
                url: url.clone(),
                refresh,
            })
        }
    };
    if idp.metadata_refresh.is_some() && idp.metadata_url.is_none() {
        cx.err(&p("metadata_refresh"), "only applies with metadata_url");
    }
    let sp_entity_id = match &idp.sp_entity_id {
        Some(v) if !v.trim().is_empty() && !v.contains(char::is_whitespace) => Some(v.clone()),
        Some(_) => {
            cx.err(&p("sp_entity_id"), "must be a URI without spaces");
            None
        }
        None => {
            cx.err(
                &p("sp_entity_id"),
                "is required for a SAML IdP: the audience its assertions must name",
            );
            None
        }
    };
    let (sp_key, sp_cert) = match (&idp.sp_key, &idp.sp_cert) {
        (Some(key), Some(cert)) => {
            let key = cx.existing_file(&p("sp_key"), key);
            let cert = cx.existing_file(&p("sp_cert"), cert);
            if key.is_file() && cert.is_file() {
                if let Err(e) = crate::auth::saml::SpKeys::load(&key, &cert) {
                    cx.err(&p("sp_key"), e.to_string());
                }
            }
            (Some(key), Some(cert))
        }
        (None, None) => (None, None),
        (Some(_), None) => {
            cx.err(&p("sp_cert"), "sp_key needs sp_cert (its certificate) too");
            (None, None)
        }
        (None, Some(_)) => {
            cx.err(&p("sp_key"), "sp_cert needs sp_key (its private key) too");
            (None, None)
        }
    };
    let allowed_algorithms = match &idp.allowed_algorithms {
        None => SAML_DEFAULT_ALGORITHMS
            .iter()
            .map(|a| (*a).to_owned())
            .collect(),
        Some(list) => {
            for (m, a) in list.iter().enumerate() {
                if !SAML_KNOWN_ALGORITHMS.contains(&a.as_str()) {
                    cx.err(
                        &[k("idp"), i(n), k("allowed_algorithms"), i(m)],
                        format!(
                            "unknown algorithm {a:?}; use {}",
                            SAML_KNOWN_ALGORITHMS.join(", ")
                        ),
                    );
                }
            }
            if list.is_empty() {
                cx.err(&p("allowed_algorithms"), "must name at least one algorithm");
            }
            list.clone()
        }
    };
    for (key, v) in [
        ("subject_attribute", &idp.subject_attribute),
        ("username_attribute", &idp.username_attribute),
    ] {
        if v.as_ref().is_some_and(|a| a.trim().is_empty()) {
            cx.err(&p(key), "must name an attribute (its Name or FriendlyName)");
        }
    }
    let clock_skew = idp.clock_skew.map_or(Duration::from_secs(60), |d| d.0);
    if clock_skew > Duration::from_secs(300) {
        cx.err(&p("clock_skew"), "must be at most 5m");
    }
    let http_timeout = idp.http_timeout.map_or(Duration::from_secs(10), |d| d.0);
    if http_timeout.is_zero() || http_timeout > Duration::from_secs(60) {
        cx.err(&p("http_timeout"), "must be above zero and at most 60s");
    }
    Some(SamlSettings {
        metadata: metadata?,
        sp_entity_id: sp_entity_id?,
        sp_key,
        sp_cert,
        username_attribute: idp.username_attribute.clone(),
        subject_attribute: idp.subject_attribute.clone(),
        email_attribute: idp
            .email_attribute
            .clone()
            .unwrap_or_else(|| "email".into()),
        groups_attribute: idp
            .groups_attribute
            .clone()
            .unwrap_or_else(|| "groups".into()),
        allow_idp_initiated: idp.allow_idp_initiated.unwrap_or(false),
        allowed_algorithms,
        clock_skew,
        authn_context_any: evidence
            .map(|m| m.authn_context_any.clone())
            .unwrap_or_default(),
        requested_authn_context: idp.requested_authn_context.clone().unwrap_or_default(),
        force_authn: idp.force_authn.unwrap_or(false),
        http_timeout,
    })
}

/// An issuer URL: https, or http on a loopback host; a host; no query, fragment or user info.
fn is_issuer_url(s: &str) -> bool {
    let Ok(u) = openidconnect::url::Url::parse(s) else {
        return false;
    };
    let loopback = match u.host() {
        Some(openidconnect::url::Host::Domain(d)) => d == "localhost",
        Some(openidconnect::url::Host::Ipv4(a)) => a.is_loopback(),
        Some(openidconnect::url::Host::Ipv6(a)) => a.is_loopback(),
        None => return false,
    };
    (u.scheme() == "https" || (u.scheme() == "http" && loopback))
        && u.query().is_none()
        && u.fragment().is_none()
        && u.username().is_empty()
        && u.password().is_none()
}
