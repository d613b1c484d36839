//! Machine clients' credentials (DESIGN.md §9), without HTTP types: service tokens matched by
//! hash in constant time against every configured one, and JWT access tokens of a bearer IdP
//! checked with the ID-token rules (`jws::verify`, `iss`, `aud`, `exp`, `nbf`, `iat`, leeway).
//! Invariant: an identity comes out only with a proof (`BearerVerified`) of a passed check.

use super::jws::{self, JwsError};
use super::oidc::{audience_contains, identity_value, LEEWAY_SECS};
use crate::clock::UnixTime;
use crate::config::ServiceTokenConfig;
use crate::secret::ct_eq;
use crate::session::{AuthMethod, Identity, IdentityValueError, MfaUsed, Session, SessionId};
use openidconnect::core::{CoreJsonWebKeySet, CoreJwsSigningAlgorithm};
use serde_json::{Map, Value};
use std::sync::Arc;
use std::time::Duration;

/// Why a bearer token was refused. Each maps to one closed metrics label (`reason`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BearerError {
    /// `Authorization: Bearer` on a route without `bearer = true`.
    #[error("bearer token on a route that does not take one")]
    NotBearerRoute,
    /// The header is not `Bearer <token>` with one token of RFC 6750 characters, or repeated.
    #[error("malformed Authorization header or token")]
    Malformed,
    /// No service token matches and the token is not a JWT of a bearer IdP.
    #[error("unknown token")]
    Unknown,
    /// The JWT's `alg` is not an allowed asymmetric algorithm (`none`, HMAC…).
    #[error("algorithm not allowed")]
    AlgNotAllowed,
    /// No key has the JWT's `kid`, even after the one JWKS refresh.
    #[error("no key matches the token's kid")]
    UnknownKid,
    /// The signature does not verify.
    #[error("signature does not verify")]
    BadSignature,
    /// `iss` is not the IdP's issuer.
    #[error("issuer mismatch")]
    Issuer,
    /// `aud` does not name the configured audience.
    #[error("audience mismatch")]
    Audience,
    /// `exp` is missing, or past (beyond the leeway).
    #[error("token expired")]
    Expired,
    /// `nbf` or `iat` is in the future (beyond the leeway).
    #[error("token not yet valid")]
    NotYetValid,
    /// `sub` is missing, or cannot be forwarded exactly.
    #[error("claim missing or invalid: {0}")]
    Claim(&'static str),
}

impl From<super::oidc::OidcError> for BearerError {
    fn from(e: super::oidc::OidcError) -> Self {
        use super::oidc::OidcError as O;
        match e {
            O::Malformed => BearerError::Malformed,
            O::AlgNotAllowed => BearerError::AlgNotAllowed,
            O::UnknownKid => BearerError::UnknownKid,
            O::BadSignature => BearerError::BadSignature,
            O::Issuer => BearerError::Issuer,
            O::Audience => BearerError::Audience,
            O::Time => BearerError::Expired,
            O::NonceMismatch | O::Claim(_) | O::UserinfoSubject | O::UnusableIdentity(_) => {
                BearerError::Claim("token")
            }
        }
    }
}

impl From<JwsError> for BearerError {
    fn from(e: JwsError) -> Self {
        match e {
            JwsError::Malformed => BearerError::Malformed,
            JwsError::AlgNotAllowed => BearerError::AlgNotAllowed,
            JwsError::UnknownKid => BearerError::UnknownKid,
            JwsError::BadSignature => BearerError::BadSignature,
        }
    }
}

impl BearerError {
    /// The closed label of metrics and audit `reason`.
    pub const fn reason(self) -> &'static str {
        match self {
            BearerError::NotBearerRoute => "not_bearer_route",
            BearerError::Malformed => "malformed",
            BearerError::Unknown => "unknown_token",
            BearerError::AlgNotAllowed => "algorithm",
            BearerError::UnknownKid => "unknown_kid",
            BearerError::BadSignature => "signature",
            BearerError::Issuer => "issuer",
            BearerError::Audience => "audience",
            BearerError::Expired => "expired",
            BearerError::NotYetValid => "not_yet_valid",
            BearerError::Claim(_) => "claim",
        }
    }

    /// Every reason, in the order metrics are rendered.
    pub const REASONS: [&'static str; 11] = [
        "not_bearer_route",
        "malformed",
        "unknown_token",
        "algorithm",
        "unknown_kid",
        "signature",
        "issuer",
        "audience",
        "expired",
        "not_yet_valid",
        "claim",
    ];
}

/// Proof that a bearer token passed every check; the identity is built only from one.
#[derive(Debug)]
pub struct BearerVerified(());

/// The token of `Authorization: Bearer <token>`, RFC 6750 §2.1: one `b64token` (letters,
/// digits, `-._~+/`, then `=` padding). `Err` for a Bearer header that is not exactly that.
/// `Ok(None)`: no Bearer credential (no header, or another scheme).
pub fn token_of<'h>(values: &[&'h [u8]]) -> Result<Option<&'h str>, BearerError> {
    let mut found = None;
    let mut bearer_headers = 0usize;
    for v in values {
        let v = v.trim_ascii();
        let (scheme, rest) = match v.iter().position(|&b| b == b' ') {
            Some(i) => (
                v.get(..i).unwrap_or_default(),
                v.get(i + 1..).unwrap_or_default(),
            ),
            None => (v, &b""[..]),
        };
        if !scheme.eq_ignore_ascii_case(b"bearer") {
            continue;
        }
        bearer_headers += 1;
        let token = rest.trim_ascii();
        let body_end = token.iter().rposition(|&b| b != b'=').map_or(0, |i| i + 1);
        let ok = !token.is_empty()
            && token.get(..body_end).is_some_and(|body| {
                !body.is_empty()
                    && body.iter().all(|&b| {
                        b.is_ascii_alphanumeric()
                            || matches!(b, b'-' | b'.' | b'_' | b'~' | b'+' | b'/')
                    })
            });
        if !ok {
            return Err(BearerError::Malformed);
        }
        found = std::str::from_utf8(token).ok();
    }
    // Two Bearer credentials: which one counts is something two parties could read differently.
    if bearer_headers > 1 {
        return Err(BearerError::Malformed);
    }
    Ok(found)
}

/// The service token whose hash is SHA-256(`presented`). Every configured hash is compared in
/// constant time, with no early exit, so timing tells nothing about which one (nearly) matched.
pub fn match_service_token<'a>(
    tokens: &'a [ServiceTokenConfig],
    presented: &str,
) -> Option<(&'a ServiceTokenConfig, BearerVerified)> {
    let digest = ring::digest::digest(&ring::digest::SHA256, presented.as_bytes());
    let mut found = None;
    for t in tokens {
        if ct_eq(&t.sha256, digest.as_ref()) {
            found = Some(t);
        }
    }
    found.map(|t| (t, BearerVerified(())))
}

/// The `iss` a JWT claims, unverified: only to pick which bearer IdP checks it.
pub fn claimed_issuer(raw: &str) -> Option<String> {
    let jws = jws::split(raw).ok()?;
    jws.payload
        .get("iss")
        .and_then(Value::as_str)
        .map(str::to_owned)
}

/// What a JWT access token is checked against: the IdP's issuer and keys, the audience.
pub struct AccessTrust<'a> {
    pub issuer: &'a str,
    pub audience: &'a str,
    pub jwks: &'a CoreJsonWebKeySet,
    /// The provider's announced asymmetric algorithms (as for ID tokens).
    pub algs: &'a [CoreJwsSigningAlgorithm],
    /// Unix seconds.
    pub now: i64,
}

/// A verified access token: its subject and claims.
#[derive(Debug)]
pub struct VerifiedAccessToken {
    pub sub: String,
    pub claims: Map<String, Value>,
    pub proof: BearerVerified,
}

/// Verifies a JWT access token: signature and algorithm (`jws::verify`), then `iss`, `aud`
/// (must name the audience), `exp` (required), `nbf` and `iat` (optional, not in the future),
/// all with the ID tokens' leeway, and a `sub` that can be forwarded exactly.
pub fn verify_access_token(
    raw: &str,
    t: &AccessTrust<'_>,
) -> Result<VerifiedAccessToken, BearerError> {
    let c = jws::verify(raw, t.jwks, t.algs)?;
    if c.get("iss").and_then(Value::as_str) != Some(t.issuer) {
        return Err(BearerError::Issuer);
    }
    if !audience_contains(&c, t.audience) {
        return Err(BearerError::Audience);
    }
    // Without `exp` a captured token would be good forever.
    let exp = c
        .get("exp")
        .and_then(Value::as_i64)
        .ok_or(BearerError::Expired)?;
    if t.now.saturating_sub(LEEWAY_SECS) >= exp {
        return Err(BearerError::Expired);
    }
    for claim in ["nbf", "iat"] {
        match c.get(claim) {
            None => {}
            Some(v) => {
                let at = v.as_i64().ok_or(BearerError::Claim(claim))?;
                if at > t.now.saturating_add(LEEWAY_SECS) {
                    return Err(BearerError::NotYetValid);
                }
            }
        }
    }
    let sub = c
        .get("sub")
        .and_then(Value::as_str)
        .filter(|s| s.len() <= 255)
        .and_then(|s| identity_value(s).ok().flatten())
        .ok_or(BearerError::Claim("sub"))?;
    Ok(VerifiedAccessToken {
        sub,
        claims: c,
        proof: BearerVerified(()),
    })
}

/// The role names a token's `claim` lists: an array of strings, or one string separated by
/// spaces (as OAuth `scope` is). Only names `keep` accepts (defined, and within the IdP's
/// `roles` cap) are returned; the second value tells whether any was dropped.
pub fn roles_of(
    claims: &Map<String, Value>,
    claim: &str,
    keep: impl Fn(&str) -> bool,
) -> (Vec<String>, bool) {
    let listed: Vec<&str> = match claims.get(claim) {
        Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).collect(),
        Some(Value::String(s)) => s.split_ascii_whitespace().collect(),
        _ => Vec::new(),
    };
    let mut roles: Vec<String> = Vec::new();
    let mut dropped = false;
    for r in listed {
        if keep(r) {
            if !roles.iter().any(|x| x == r) {
                roles.push(r.to_owned());
            }
        } else {
            dropped = true;
        }
    }
    (roles, dropped)
}

/// A machine client's identity for one request: a `Session` value that is never stored (no
/// cookie, no store entry, no `X-Auth-Session`), so the proxy phases treat it as any session.
pub fn machine_session(identity: Identity, now: UnixTime) -> Result<Session, IdentityValueError> {
    // Never checked for expiry: it is made per request (JWT) or per config (service token).
    Session::new(
        SessionId::machine(),
        identity,
        now,
        Duration::from_secs(u64::from(u32::MAX)),
        Duration::from_secs(u64::from(u32::MAX)),
        None,
        None,
    )
}

/// The service tokens of one config with their identities, made once per config (start and
/// every reload), so a token removed by a reload is refused from the next request on, and a
/// token's signed assertion is cached between requests as a session's is.
#[derive(Debug, Default)]
pub struct MachineClients {
    tokens: Vec<ServiceTokenConfig>,
    identities: Vec<Arc<Session>>,
}

impl MachineClients {
    pub fn new(tokens: &[ServiceTokenConfig], now: UnixTime) -> MachineClients {
        let mut kept = Vec::with_capacity(tokens.len());
        let mut identities = Vec::with_capacity(tokens.len());
        for t in tokens {
            let identity = Identity {
                user: t.name.clone(),
                principal: format!("token:{}", t.name),
                email: None,
                groups: Vec::new(),
                roles: t.roles.clone(),
                method: AuthMethod::Token(t.name.clone()),
                mfa: MfaUsed::None,
            };
            // Names and roles are validated config names: they always render.
            if let Ok(s) = machine_session(identity, now) {
                kept.push(t.clone());
                identities.push(Arc::new(s));
            }
        }
        MachineClients {
            tokens: kept,
            identities,
        }
    }

    /// The identity of the service token `presented`, if it is one (`match_service_token`).
    pub fn authenticate(&self, presented: &str) -> Option<(&Arc<Session>, BearerVerified)> {
        let (t, proof) = match_service_token(&self.tokens, presented)?;
        let i = self.tokens.iter().position(|x| std::ptr::eq(x, t))?;
        self.identities.get(i).map(|s| (s, proof))
    }
}

/// A fresh service token for `portcullis tokens new`: 256 random bits, base64url, and the
/// `[[service_tokens]]` block that accepts it (only its SHA-256 goes into the config). `Err`
/// names a bad argument, or says the system has no randomness.
pub fn new_service_token(name: &str, roles: &[String]) -> Result<(String, String), String> {
    use base64::Engine as _;
    use ring::rand::SecureRandom as _;
    let plain = |s: &str| {
        !s.is_empty()
            && s.len() <= 64
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
    };
    if !plain(name) {
        return Err(format!(
            "{name:?}: token names use a-z, 0-9, '_' and '-' (at most 64)"
        ));
    }
    if roles.is_empty() {
        return Err("name at least one role (--role R)".into());
    }
    if let Some(r) = roles.iter().find(|r| !plain(r)) {
        return Err(format!("{r:?}: role names use a-z, 0-9, '_' and '-'"));
    }
    let mut bytes = [0u8; 32];
    // A credential from a failed random source would be guessable: refuse, never fall back.
    ring::rand::SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| "the system random source failed".to_owned())?;
    let token = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    let digest = ring::digest::digest(&ring::digest::SHA256, token.as_bytes());
    let hex: String = digest.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    let roles = roles
        .iter()
        .map(|r| format!("\"{r}\""))
        .collect::<Vec<_>>()
        .join(", ");
    let toml =
        format!("[[service_tokens]]\nname = \"{name}\"\nsha256 = \"{hex}\"\nroles = [{roles}]\n");
    Ok((token, toml))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use serde_json::json;

    fn token(name: &str, secret: &str) -> ServiceTokenConfig {
        let d = ring::digest::digest(&ring::digest::SHA256, secret.as_bytes());
        ServiceTokenConfig {
            name: name.into(),
            sha256: d.as_ref().try_into().unwrap(),
            roles: vec!["integration".into()],
        }
    }

    #[test]
    fn a_new_service_token_is_256_random_bits_and_its_block_holds_only_its_hash() {
        let (token, toml) = new_service_token("crm-sync", &["integration".into()]).unwrap();
        assert_eq!(token.len(), 43, "32 bytes of base64url");
        let (other, _) = new_service_token("crm-sync", &["integration".into()]).unwrap();
        assert_ne!(token, other);
        assert!(!toml.contains(&token));
        let d = ring::digest::digest(&ring::digest::SHA256, token.as_bytes());
        let hex: String = d.as_ref().iter().map(|b| format!("{b:02x}")).collect();
        assert!(toml.contains(&format!("sha256 = \"{hex}\"")), "{toml}");
        assert!(toml.contains("roles = [\"integration\"]"), "{toml}");
        assert!(new_service_token("Bad Name", &["r".into()]).is_err());
        assert!(new_service_token("ok", &[]).is_err());
        assert!(new_service_token("ok", &["x\"]".into()]).is_err());
    }

    #[test]
    fn a_service_token_matches_by_hash_and_any_other_value_matches_none() {
        let list = [token("a", "tok-a"), token("b", "tok-b")];
        assert_eq!(match_service_token(&list, "tok-b").unwrap().0.name, "b");
        assert_eq!(match_service_token(&list, "tok-a").unwrap().0.name, "a");
        for other in ["", "tok-", "tok-c", "TOK-A", "tok-a "] {
            assert!(match_service_token(&list, other).is_none(), "{other:?}");
        }
        assert!(match_service_token(&[], "tok-a").is_none());
    }

    #[test]
    fn the_bearer_credential_is_read_strictly_from_the_authorization_header() {
        let one = |v: &'static str| token_of(&[v.as_bytes()]);
        assert_eq!(one("Bearer abc.DEF-_~+/=="), Ok(Some("abc.DEF-_~+/==")));
        assert_eq!(one("bearer abc"), Ok(Some("abc")));
        assert_eq!(one("Basic dXNlcjpwdw=="), Ok(None));
        assert_eq!(token_of(&[]), Ok(None));
        for bad in [
            "Bearer",
            "Bearer ",
            "Bearer a b",
            "Bearer a,b",
            "Bearer ===",
            "Bearer a\"b",
        ] {
            assert_eq!(one(bad), Err(BearerError::Malformed), "{bad:?}");
        }
        assert_eq!(
            token_of(&[b"Bearer a", b"Bearer b"]),
            Err(BearerError::Malformed),
            "two bearer credentials are ambiguous"
        );
        assert_eq!(token_of(&[b"Basic x", b"Bearer b"]), Ok(Some("b")));
    }

    #[test]
    fn roles_come_from_an_array_or_a_space_separated_string_and_are_capped() {
        let c = json!({"roles": ["integration", "admin", "integration", 7], "scope": "a b  c"});
        let c = c.as_object().unwrap();
        assert_eq!(
            roles_of(c, "roles", |r| r == "integration"),
            (vec!["integration".to_owned()], true)
        );
        assert_eq!(
            roles_of(c, "scope", |_| true),
            (vec!["a".to_owned(), "b".to_owned(), "c".to_owned()], false)
        );
        assert_eq!(roles_of(c, "missing", |_| true), (vec![], false));
    }

    #[test]
    fn malformed_and_unsigned_access_tokens_are_refused_without_panicking() {
        let jwks = CoreJsonWebKeySet::new(vec![]);
        let t = AccessTrust {
            issuer: "https://i",
            audience: "api",
            jwks: &jwks,
            algs: &[CoreJwsSigningAlgorithm::EcdsaP256Sha256],
            now: 0,
        };
        for raw in ["", "a.b.c", "e30.e30.", "eyJhbGciOiJub25lIn0.e30."] {
            assert!(verify_access_token(raw, &t).is_err(), "{raw:?}");
        }
        // `alg: none` and HS256 are refused before any key is looked at.
        let none = "eyJhbGciOiJub25lIn0.eyJpc3MiOiJodHRwczovL2kifQ.";
        assert_eq!(
            verify_access_token(none, &t).err(),
            Some(BearerError::AlgNotAllowed)
        );
        let hs = "eyJhbGciOiJIUzI1NiJ9.eyJpc3MiOiJodHRwczovL2kifQ.c2ln";
        assert_eq!(
            verify_access_token(hs, &t).err(),
            Some(BearerError::AlgNotAllowed)
        );
    }
}
