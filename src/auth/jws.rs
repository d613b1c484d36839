//! The compact JWS checks every signed token from an OpenID Provider shares (back-channel
//! logout tokens, JWT access tokens): split and decode, the algorithm allow-list (asymmetric
//! algorithms the provider announces: never `none`, never HMAC), key choice by `kid`, signature.
//! Invariant: no claim is returned before the signature verified with an allowed key.

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine as _;
use openidconnect::core::{CoreJsonWebKey, CoreJsonWebKeySet, CoreJwsSigningAlgorithm};
use openidconnect::JsonWebKey;
use serde_json::{Map, Value};

/// Longest token accepted (real ones are a few KiB).
pub const MAX_TOKEN_BYTES: usize = 64 * 1024;

/// Why a JWS was refused before any claim was looked at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum JwsError {
    /// Not a well-formed compact JWS (three base64url parts, JSON header and payload).
    #[error("malformed token")]
    Malformed,
    /// `alg` is not an allowed asymmetric algorithm (`none`, HS256…).
    #[error("algorithm not allowed")]
    AlgNotAllowed,
    /// No key of the JWKS has the token's `kid`.
    #[error("no key matches the token's kid")]
    UnknownKid,
    /// No candidate key verifies the signature.
    #[error("signature does not verify")]
    BadSignature,
}

/// The parts of a compact JWS: header JSON, payload JSON, signing input, signature.
pub(crate) struct Jws<'t> {
    pub(crate) header: Map<String, Value>,
    pub(crate) payload: Map<String, Value>,
    pub(crate) signing_input: &'t str,
    pub(crate) signature: Vec<u8>,
}

pub(crate) fn split(token: &str) -> Result<Jws<'_>, JwsError> {
    if token.len() > MAX_TOKEN_BYTES {
        return Err(JwsError::Malformed);
    }
    let mut parts = token.split('.');
    let (Some(h), Some(p), Some(s), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(JwsError::Malformed);
    };
    let json = |part: &str| -> Result<Map<String, Value>, JwsError> {
        let bytes = B64.decode(part).map_err(|_| JwsError::Malformed)?;
        serde_json::from_slice(&bytes).map_err(|_| JwsError::Malformed)
    };
    let signing_input = token
        .get(..h.len() + 1 + p.len())
        .ok_or(JwsError::Malformed)?;
    Ok(Jws {
        header: json(h)?,
        payload: json(p)?,
        signing_input,
        signature: B64.decode(s).map_err(|_| JwsError::Malformed)?,
    })
}

/// The `kid` in a token's header, if any (unverified: used only to pick keys).
pub fn header_kid(token: &str) -> Result<Option<String>, JwsError> {
    let jws = split(token)?;
    Ok(jws
        .header
        .get("kid")
        .and_then(Value::as_str)
        .map(str::to_owned))
}

/// Whether the key set has a key with this id.
pub fn has_kid(jwks: &CoreJsonWebKeySet, kid: &str) -> bool {
    jwks.keys()
        .iter()
        .any(|k| k.key_id().is_some_and(|id| id.as_str() == kid))
}

/// Verifies a compact JWS against `jwks` with an algorithm from `algs` and returns its claims.
/// The token's `kid` picks the key; without one, each key is tried and one must verify.
pub fn verify(
    raw: &str,
    jwks: &CoreJsonWebKeySet,
    algs: &[CoreJwsSigningAlgorithm],
) -> Result<Map<String, Value>, JwsError> {
    let jws = split(raw)?;
    let alg: CoreJwsSigningAlgorithm = jws
        .header
        .get("alg")
        .cloned()
        .and_then(|a| serde_json::from_value(a).ok())
        .ok_or(JwsError::AlgNotAllowed)?;
    // `algs` is the provider's announced list already filtered to asymmetric ones
    // (`oidc::allowed_algs`); the explicit match keeps `none` and HMAC out even if it were not.
    if !algs.contains(&alg) || !is_asymmetric(&alg) {
        return Err(JwsError::AlgNotAllowed);
    }
    let kid = jws.header.get("kid").and_then(Value::as_str);
    let candidates: Vec<&CoreJsonWebKey> = jwks
        .keys()
        .iter()
        .filter(|k| kid.is_none_or(|kid| k.key_id().is_some_and(|id| id.as_str() == kid)))
        .collect();
    if candidates.is_empty() {
        return Err(JwsError::UnknownKid);
    }
    let verified = candidates.iter().any(|k| {
        k.verify_signature(&alg, jws.signing_input.as_bytes(), &jws.signature)
            .is_ok()
    });
    if !verified {
        return Err(JwsError::BadSignature);
    }
    Ok(jws.payload)
}

/// The asymmetric JWS algorithms: a public key can never be used as an HMAC secret.
pub fn is_asymmetric(a: &CoreJwsSigningAlgorithm) -> bool {
    matches!(
        a,
        CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256
            | CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha384
            | CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha512
            | CoreJwsSigningAlgorithm::RsaSsaPssSha256
            | CoreJwsSigningAlgorithm::RsaSsaPssSha384
            | CoreJwsSigningAlgorithm::RsaSsaPssSha512
            | CoreJwsSigningAlgorithm::EcdsaP256Sha256
            | CoreJwsSigningAlgorithm::EcdsaP384Sha384
            | CoreJwsSigningAlgorithm::EdDsa
    )
}
