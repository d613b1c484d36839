//! OpenID Connect relying-party checks (DESIGN.md §6, `conformance/oidc-rp.md`): ID token and
//! back-channel logout token verification, identity from claims, MFA evidence. Pure functions
//! over tokens, keys and time; no HTTP types (fetching keys and tokens lives in `server::oidc`).
//!
//! ID tokens go through `openidconnect`'s verifier (signature with keys from the provider's
//! JWKS, `iss`, `aud`, `exp`, nonce), restricted to the asymmetric algorithms the provider
//! announces; this module adds what the crate leaves to the client: `azp` with several
//! audiences, `iat` bounds, leeway, keys without `kid`, and logout tokens (whose signature
//! check is `auth::jws`, shared with the JWT access tokens of `auth::bearer`).

use super::jws::{self, JwsError};
use openidconnect::core::{
    CoreIdToken, CoreIdTokenVerifier, CoreJsonWebKeySet, CoreJwsSigningAlgorithm,
};
use openidconnect::{
    ClaimsVerificationError, ClientId, IssuerUrl, Nonce, SignatureVerificationError,
};
use serde_json::{Map, Value};

/// Clock skew tolerated on `exp` and `iat`, in seconds.
pub const LEEWAY_SECS: i64 = 60;

/// The event a back-channel logout token must carry (OIDC Back-Channel Logout 1.0 §2.4).
pub const BACKCHANNEL_EVENT: &str = "http://schemas.openid.net/event/backchannel-logout";

/// Why an OIDC login or logout token was refused.
#[derive(Debug, thiserror::Error)]
pub enum OidcError {
    /// The token is not a well-formed compact JWS.
    #[error("malformed token")]
    Malformed,
    /// The token's `alg` is not an asymmetric algorithm the provider announces (`none`, HS256…).
    #[error("algorithm not allowed")]
    AlgNotAllowed,
    /// No key of the JWKS matches the token's `kid` (and algorithm).
    #[error("no key matches the token's kid")]
    UnknownKid,
    /// No key, or several keys and none unique, could verify the signature.
    #[error("signature does not verify")]
    BadSignature,
    /// `iss` is not the discovered issuer.
    #[error("issuer mismatch")]
    Issuer,
    /// `aud` does not name this client, or `azp` is missing/wrong with several audiences.
    #[error("audience or authorized party mismatch")]
    Audience,
    /// `exp` is in the past (beyond the leeway) or `iat` is missing or in the future.
    #[error("token expired or not yet valid")]
    Time,
    /// The nonce is not the one sent with this login.
    #[error("nonce mismatch")]
    NonceMismatch,
    /// A required claim is missing or has the wrong type.
    #[error("claim missing or invalid: {0}")]
    Claim(&'static str),
    /// The userinfo `sub` differs from the ID token's.
    #[error("userinfo subject mismatch")]
    UserinfoSubject,
    /// An identity value (user name, email, a group) cannot be forwarded exactly: a control
    /// character, or over 8 KiB (DESIGN.md §6).
    #[error("identity value cannot be forwarded: {0}")]
    UnusableIdentity(&'static str),
}

/// What a token is checked against: the provider's discovered issuer, this client, its keys.
pub struct Trust<'a> {
    pub issuer: &'a str,
    pub client_id: &'a str,
    pub jwks: &'a CoreJsonWebKeySet,
    /// Algorithms allowed: the provider's announced ones, asymmetric only.
    pub algs: &'a [CoreJwsSigningAlgorithm],
    /// Unix seconds.
    pub now: i64,
}

/// Proof that an ID token passed every check; the login step requires it.
#[derive(Debug)]
pub struct IdTokenVerified(());

/// A verified ID token's claims (the signed payload as JSON).
#[derive(Debug)]
pub struct VerifiedIdToken {
    pub claims: Map<String, Value>,
    pub sub: String,
    pub proof: IdTokenVerified,
}

/// The asymmetric algorithms among those a provider announces. HMAC is never accepted: a
/// public client secret or a public key must not be usable as a MAC key.
pub fn allowed_algs(announced: &[CoreJwsSigningAlgorithm]) -> Vec<CoreJwsSigningAlgorithm> {
    announced
        .iter()
        .filter(|a| jws::is_asymmetric(a))
        .cloned()
        .collect()
}

/// The `kid` in a token's header, if any (unverified: used only to pick keys).
pub fn header_kid(token: &str) -> Result<Option<String>, OidcError> {
    Ok(jws::header_kid(token)?)
}

/// Whether the key set has a key with this id.
pub fn has_kid(jwks: &CoreJsonWebKeySet, kid: &str) -> bool {
    jws::has_kid(jwks, kid)
}

impl From<JwsError> for OidcError {
    fn from(e: JwsError) -> Self {
        match e {
            JwsError::Malformed => OidcError::Malformed,
            JwsError::AlgNotAllowed => OidcError::AlgNotAllowed,
            JwsError::UnknownKid => OidcError::UnknownKid,
            JwsError::BadSignature => OidcError::BadSignature,
        }
    }
}

fn map_crate_error(e: ClaimsVerificationError) -> OidcError {
    match e {
        ClaimsVerificationError::InvalidIssuer(_) => OidcError::Issuer,
        ClaimsVerificationError::InvalidAudience(_) => OidcError::Audience,
        ClaimsVerificationError::Expired(_) => OidcError::Time,
        ClaimsVerificationError::InvalidNonce(_) => OidcError::NonceMismatch,
        ClaimsVerificationError::InvalidSubject(_) => OidcError::Claim("sub"),
        ClaimsVerificationError::SignatureVerification(s) => match s {
            SignatureVerificationError::DisallowedAlg(_)
            | SignatureVerificationError::UnsupportedAlg(_)
            | SignatureVerificationError::NoSignature => OidcError::AlgNotAllowed,
            SignatureVerificationError::NoMatchingKey => OidcError::UnknownKid,
            _ => OidcError::BadSignature,
        },
        _ => OidcError::Claim("id_token"),
    }
}

fn verify_with(
    token: &CoreIdToken,
    nonce: &Nonce,
    t: &Trust<'_>,
    jwks: CoreJsonWebKeySet,
) -> Result<(), OidcError> {
    let issuer = IssuerUrl::new(t.issuer.to_owned()).map_err(|_| OidcError::Issuer)?;
    let now = t.now;
    let verifier =
        CoreIdTokenVerifier::new_public_client(ClientId::new(t.client_id.to_owned()), issuer, jwks)
            .set_allowed_algs(t.algs.iter().cloned())
            // Extra audiences are allowed only with `azp` naming this client, checked below.
            .set_other_audience_verifier_fn(|_| true)
            // `exp` with leeway: the crate refuses when now >= exp.
            .set_time_fn(move || {
                chrono::DateTime::from_timestamp(now.saturating_sub(LEEWAY_SECS), 0)
                    .unwrap_or_default()
            })
            .set_issue_time_verifier_fn(move |iat| {
                if iat.timestamp() > now.saturating_add(LEEWAY_SECS) {
                    Err("issued in the future".into())
                } else {
                    Ok(())
                }
            });
    token
        .claims(&verifier, nonce)
        .map(|_| ())
        .map_err(map_crate_error)
}

/// Verifies an ID token for the login that sent `nonce`. Keys: the token's `kid` picks one;
/// without a `kid`, a single candidate key is used, and with several each is tried and the
/// token is accepted only if one verifies (conformance: kid-absent-multiple-jwks).
pub fn verify_id_token(
    raw: &str,
    nonce: &str,
    t: &Trust<'_>,
) -> Result<VerifiedIdToken, OidcError> {
    let jws = jws::split(raw)?;
    let token: CoreIdToken = raw.parse().map_err(|_| OidcError::Malformed)?;
    let nonce = Nonce::new(nonce.to_owned());
    let kid = jws.header.get("kid").and_then(Value::as_str);
    match verify_with(&token, &nonce, t, t.jwks.clone()) {
        Ok(()) => {}
        // Several eligible keys and no kid: try each key alone.
        Err(OidcError::BadSignature) if kid.is_none() && t.jwks.keys().len() > 1 => {
            let one_verifies = t.jwks.keys().iter().any(|k| {
                verify_with(&token, &nonce, t, CoreJsonWebKeySet::new(vec![k.clone()])).is_ok()
            });
            if !one_verifies {
                return Err(OidcError::BadSignature);
            }
        }
        Err(e) => return Err(e),
    }
    let claims = jws.payload;
    check_azp(&claims, t.client_id)?;
    let sub = claims
        .get("sub")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty() && s.len() <= 255)
        .ok_or(OidcError::Claim("sub"))?
        .to_owned();
    Ok(VerifiedIdToken {
        claims,
        sub,
        proof: IdTokenVerified(()),
    })
}

/// `azp` must name this client when present, and must be present with several audiences.
fn check_azp(claims: &Map<String, Value>, client_id: &str) -> Result<(), OidcError> {
    let several = claims
        .get("aud")
        .and_then(Value::as_array)
        .is_some_and(|a| a.len() > 1);
    match claims.get("azp") {
        Some(Value::String(azp)) if azp == client_id => Ok(()),
        Some(_) => Err(OidcError::Audience),
        None if several => Err(OidcError::Audience),
        None => Ok(()),
    }
}

/// Whether `aud` (a string or an array) names `client_id`.
pub fn audience_contains(claims: &Map<String, Value>, client_id: &str) -> bool {
    match claims.get("aud") {
        Some(Value::String(a)) => a == client_id,
        Some(Value::Array(a)) => a.iter().any(|v| v.as_str() == Some(client_id)),
        _ => false,
    }
}

/// Longest a logout token may stay valid from now: its `jti` stays in the replay cache until
/// `exp`, so an unbounded `exp` would be an unbounded cache entry (real tokens live minutes).
pub const LOGOUT_TOKEN_MAX_SECS: i64 = 24 * 3600;

/// A verified back-channel logout token: whose sessions to end.
#[derive(Debug)]
pub struct LogoutVerified {
    pub sid: Option<String>,
    pub sub: Option<String>,
    /// Required: the replay cache key (Back-Channel Logout 1.0 §2.4).
    pub jti: String,
    /// Required: the replay cache keeps `jti` until then (plus the leeway).
    pub exp: i64,
}

/// Verifies a back-channel logout token like an ID token (signature, `iss`, `aud`, `iat`,
/// `exp`) plus its own rules (Back-Channel Logout 1.0 §2.4, §2.6): a `jti`, the back-channel
/// `events` member, `sid` or `sub`, and no `nonce` (so an ID token cannot be replayed as a
/// logout token).
pub fn verify_logout_token(raw: &str, t: &Trust<'_>) -> Result<LogoutVerified, OidcError> {
    let c = jws::verify(raw, t.jwks, t.algs)?;
    if c.get("iss").and_then(Value::as_str) != Some(t.issuer) {
        return Err(OidcError::Issuer);
    }
    if !audience_contains(&c, t.client_id) {
        return Err(OidcError::Audience);
    }
    check_azp(&c, t.client_id)?;
    let iat = c
        .get("iat")
        .and_then(Value::as_i64)
        .ok_or(OidcError::Time)?;
    if iat > t.now.saturating_add(LEEWAY_SECS) {
        return Err(OidcError::Time);
    }
    // `exp` and `jti` are required: without `exp` a captured token is good forever, without
    // `jti` it cannot be recognised when replayed.
    let exp = c
        .get("exp")
        .ok_or(OidcError::Claim("exp"))?
        .as_i64()
        .ok_or(OidcError::Claim("exp"))?;
    if t.now.saturating_sub(LEEWAY_SECS) >= exp || exp > t.now.saturating_add(LOGOUT_TOKEN_MAX_SECS)
    {
        return Err(OidcError::Time);
    }
    if c.contains_key("nonce") {
        return Err(OidcError::Claim("nonce"));
    }
    let event_ok = c
        .get("events")
        .and_then(Value::as_object)
        .and_then(|e| e.get(BACKCHANNEL_EVENT))
        .is_some_and(Value::is_object);
    if !event_ok {
        return Err(OidcError::Claim("events"));
    }
    let text = |name: &str| {
        c.get(name)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty() && s.len() <= 255)
            .map(str::to_owned)
    };
    let (sid, sub) = (text("sid"), text("sub"));
    if sid.is_none() && sub.is_none() {
        return Err(OidcError::Claim("sid"));
    }
    let jti = text("jti").ok_or(OidcError::Claim("jti"))?;
    Ok(LogoutVerified { sid, sub, jti, exp })
}

/// Adds the userinfo claims the ID token does not have. The userinfo `sub` must be the ID
/// token's (OIDC Core §5.3.2), else the response may belong to another user.
pub fn merge_userinfo(
    claims: &mut Map<String, Value>,
    userinfo: Map<String, Value>,
    sub: &str,
) -> Result<(), OidcError> {
    if userinfo.get("sub").and_then(Value::as_str) != Some(sub) {
        return Err(OidcError::UserinfoSubject);
    }
    for (k, v) in userinfo {
        claims.entry(k).or_insert(v);
    }
    Ok(())
}

/// Who signed in, from verified claims.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SsoIdentity {
    pub sub: String,
    pub username: String,
    pub email: Option<String>,
    pub groups: Vec<String>,
    pub amr: Vec<String>,
    pub acr: Option<String>,
    pub sid: Option<String>,
}

/// Longest identity value an IdP may send (one header's worth, DESIGN.md §6).
pub const MAX_IDENTITY_VALUE: usize = 8 * 1024;

/// An identity value (user name, email, group) as an IdP sent it, trimmed: `Ok(None)` when
/// empty, `Err` when it cannot be forwarded exactly (a control character, over 8 KiB). Such a
/// value refuses the login (DESIGN.md §6); it is never dropped or replaced by another claim.
pub fn identity_value(s: &str) -> Result<Option<String>, Unusable> {
    let s = s.trim();
    if s.is_empty() {
        Ok(None)
    } else if s.len() > MAX_IDENTITY_VALUE || s.chars().any(char::is_control) {
        Err(Unusable)
    } else {
        Ok(Some(s.to_owned()))
    }
}

/// An identity value that cannot be forwarded exactly.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Unusable;

/// A claim value the gateway uses itself but never forwards (`amr`, `acr`, `sid`, `jti`):
/// trimmed, 1-256 characters, no control characters; anything else counts as absent.
pub fn clean(s: &str) -> Option<String> {
    let s = s.trim();
    (!s.is_empty() && s.len() <= 256 && !s.chars().any(char::is_control)).then(|| s.to_owned())
}

/// The items of a list claim: an array of strings, or one string separated by spaces or commas.
fn items(v: Option<&Value>) -> Vec<&str> {
    match v {
        Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).collect(),
        Some(Value::String(s)) => s.split(|c: char| c == ',' || c.is_whitespace()).collect(),
        _ => Vec::new(),
    }
}

/// A list the gateway uses itself (`amr`): unusable items are skipped.
pub fn groups_of(v: Option<&Value>) -> Vec<String> {
    items(v).into_iter().filter_map(clean).collect()
}

/// Groups, which are forwarded: every item exactly, or `Err` (the login is refused).
pub fn identity_groups(v: Option<&Value>) -> Result<Vec<String>, Unusable> {
    let mut out = Vec::new();
    for g in items(v) {
        out.extend(identity_value(g)?);
    }
    Ok(out)
}

/// The identity: username from `username_claim` (default `preferred_username`, then `email`,
/// then `sub`), email, groups from `groups_claim`, and the MFA evidence claims.
pub fn identity(
    claims: &Map<String, Value>,
    sub: &str,
    username_claim: Option<&str>,
    groups_claim: &str,
) -> Result<SsoIdentity, OidcError> {
    let text = |name: &str| claims.get(name).and_then(Value::as_str).and_then(clean);
    // A forwarded value: absent falls back to the next claim, present but unusable refuses.
    let value = |name: &str, what: &'static str| match claims.get(name).and_then(Value::as_str) {
        Some(v) => identity_value(v).map_err(|Unusable| OidcError::UnusableIdentity(what)),
        None => Ok(None),
    };
    let username = match username_claim {
        Some(c) => value(c, "username")?,
        None => match value("preferred_username", "username")? {
            Some(u) => Some(u),
            None => match value("email", "username")? {
                Some(e) => Some(e),
                None => {
                    identity_value(sub).map_err(|Unusable| OidcError::UnusableIdentity("sub"))?
                }
            },
        },
    }
    .ok_or(OidcError::Claim("username"))?;
    Ok(SsoIdentity {
        sub: sub.to_owned(),
        username,
        email: value("email", "email")?,
        groups: identity_groups(claims.get(groups_claim))
            .map_err(|Unusable| OidcError::UnusableIdentity("groups"))?,
        amr: groups_of(claims.get("amr")),
        acr: text("acr"),
        sid: text("sid"),
    })
}

/// Whether the IdP's evidence shows a second factor: `amr` ∩ `amr_any`, or `acr` ∈ `acr_any`.
pub fn has_mfa_evidence(id: &SsoIdentity, amr_any: &[String], acr_any: &[String]) -> bool {
    id.amr.iter().any(|a| amr_any.contains(a))
        || id.acr.as_ref().is_some_and(|a| acr_any.contains(a))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use serde_json::json;

    fn map(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap()
    }

    #[test]
    fn groups_come_from_arrays_or_separated_strings() {
        assert_eq!(groups_of(Some(&json!(["a", "b", 3]))), vec!["a", "b"]);
        assert_eq!(groups_of(Some(&json!("a, b c"))), vec!["a", "b", "c"]);
        assert_eq!(groups_of(Some(&json!({"x": 1}))), Vec::<String>::new());
        assert_eq!(groups_of(None), Vec::<String>::new());
    }

    #[test]
    fn username_falls_back_from_preferred_username_to_email_to_sub() {
        let c = map(json!({"preferred_username": "ann", "email": "a@x"}));
        assert_eq!(identity(&c, "s1", None, "groups").unwrap().username, "ann");
        let c = map(json!({"email": "a@x"}));
        assert_eq!(identity(&c, "s1", None, "groups").unwrap().username, "a@x");
        let c = map(json!({}));
        assert_eq!(identity(&c, "s1", None, "groups").unwrap().username, "s1");
        let c = map(json!({"upn": "ann@corp"}));
        assert_eq!(
            identity(&c, "s1", Some("upn"), "groups").unwrap().username,
            "ann@corp"
        );
        assert!(identity(&c, "s1", Some("missing"), "groups").is_err());
    }

    #[test]
    fn evidence_matches_amr_or_acr() {
        let c = map(json!({"amr": ["pwd", "mfa"], "acr": "urn:x"}));
        let id = identity(&c, "s", None, "groups").unwrap();
        assert!(has_mfa_evidence(&id, &["mfa".into()], &[]));
        assert!(has_mfa_evidence(&id, &[], &["urn:x".into()]));
        assert!(!has_mfa_evidence(&id, &["hwk".into()], &["urn:y".into()]));
    }

    #[test]
    fn userinfo_with_another_sub_is_refused_and_never_overrides() {
        let mut c = map(json!({"sub": "s", "email": "id@x"}));
        assert!(matches!(
            merge_userinfo(&mut c, map(json!({"sub": "other"})), "s"),
            Err(OidcError::UserinfoSubject)
        ));
        merge_userinfo(
            &mut c,
            map(json!({"sub": "s", "email": "ui@x", "groups": ["g"]})),
            "s",
        )
        .unwrap();
        assert_eq!(c["email"], json!("id@x"));
        assert_eq!(c["groups"], json!(["g"]));
    }

    #[test]
    fn azp_is_required_with_several_audiences() {
        assert!(check_azp(&map(json!({"aud": ["me", "x"]})), "me").is_err());
        assert!(check_azp(&map(json!({"aud": ["me", "x"], "azp": "x"})), "me").is_err());
        assert!(check_azp(&map(json!({"aud": ["me", "x"], "azp": "me"})), "me").is_ok());
        assert!(check_azp(&map(json!({"aud": "me"})), "me").is_ok());
    }

    #[test]
    fn malformed_tokens_are_refused_without_panicking() {
        for t in ["", "a", "a.b", "a.b.c.d", "!!.??.**", "e30.e30.", "e30..x"] {
            assert!(header_kid(t).is_err() || t == "e30.e30.", "{t}");
        }
        let jwks = CoreJsonWebKeySet::new(vec![]);
        let trust = Trust {
            issuer: "https://i",
            client_id: "c",
            jwks: &jwks,
            algs: &[CoreJwsSigningAlgorithm::EcdsaP256Sha256],
            now: 0,
        };
        for t in ["", "a.b.c", "e30.e30.", "eyJhbGciOiJub25lIn0.e30."] {
            assert!(verify_id_token(t, "n", &trust).is_err());
            assert!(verify_logout_token(t, &trust).is_err());
        }
    }

    #[test]
    fn hmac_and_none_are_never_allowed() {
        let all = [
            CoreJwsSigningAlgorithm::HmacSha256,
            CoreJwsSigningAlgorithm::None,
            CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256,
            CoreJwsSigningAlgorithm::EcdsaP256Sha256,
        ];
        assert_eq!(
            allowed_algs(&all),
            vec![
                CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256,
                CoreJwsSigningAlgorithm::EcdsaP256Sha256
            ]
        );
    }
}
