//! Fuzz targets for what an OIDC provider sends: ID and logout tokens (genuine ones signed by a
//! key made here, and forged ones), JWKS, discovery and userinfo, and the config loader.

use super::input::{text, MAX_INPUT};
use crate::auth::oidc::{self as rp, Trust, BACKCHANNEL_EVENT, LEEWAY_SECS};
use crate::auth::policy::Routes;
use crate::config::Config;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine as _;
use openidconnect::core::{CoreJsonWebKeySet, CoreJwsSigningAlgorithm, CoreTokenResponse};
use openidconnect::{ProviderMetadataWithLogout, TokenResponse as _};
use ring::rand::SystemRandom;
use ring::signature::{EcdsaKeyPair, KeyPair as _, ECDSA_P256_SHA256_FIXED_SIGNING};
use serde_json::{json, Map, Value};
use std::path::Path;
use std::sync::OnceLock;

pub(super) const ISSUER: &str = "https://op.example";
pub(super) const CLIENT: &str = "portcullis-client";
pub(super) const NONCE: &str = "fuzz-nonce-0123456789";
pub(super) const KID: &str = "fuzz-k1";
/// The fuzz clock (Unix seconds); seeds use `iat` = NOW and `exp` = NOW + 600.
pub(super) const NOW: i64 = 1_800_000_000;
pub(super) static ES256: [CoreJwsSigningAlgorithm; 1] = [CoreJwsSigningAlgorithm::EcdsaP256Sha256];

/// A signing key made once per process (so no test key ships in the binary), its JWKS, and
/// tokens it signed with claims that pass every check.
pub(super) struct Op {
    key: EcdsaKeyPair,
    rng: SystemRandom,
    jwks: CoreJsonWebKeySet,
    /// The public key as a JWK JSON text, the favourite HMAC secret of alg-confusion attacks.
    jwk_json: String,
    x: String,
    y: String,
    good_id_token: String,
    good_logout_token: String,
}

pub(super) fn op() -> Option<&'static Op> {
    static OP: OnceLock<Option<Op>> = OnceLock::new();
    OP.get_or_init(|| {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).ok()?;
        let key =
            EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng)
                .ok()?;
        let public = key.public_key().as_ref();
        let x = B64.encode(public.get(1..33)?);
        let y = B64.encode(public.get(33..65)?);
        let jwk = json!({"kty": "EC", "crv": "P-256", "x": x, "y": y, "kid": KID, "use": "sig", "alg": "ES256"});
        let jwk_json = jwk.to_string();
        let jwks = serde_json::from_value(json!({ "keys": [jwk] })).ok()?;
        let mut op = Op {
            key,
            rng,
            jwks,
            jwk_json,
            x,
            y,
            good_id_token: String::new(),
            good_logout_token: String::new(),
        };
        let claims = json!({"iss": ISSUER, "aud": CLIENT, "sub": "s-1", "iat": NOW, "exp": NOW + 600, "nonce": NONCE});
        op.good_id_token = op.es256(true, claims.to_string().as_bytes())?;
        let logout = json!({"iss": ISSUER, "aud": CLIENT, "sid": "sid-1", "iat": NOW, "exp": NOW + 120, "jti": "j1", "events": {BACKCHANNEL_EVENT: {}}});
        op.good_logout_token = op.es256(true, logout.to_string().as_bytes())?;
        Some(op)
    })
    .as_ref()
}

impl Op {
    fn trust<'a>(&'a self, jwks: &'a CoreJsonWebKeySet) -> Trust<'a> {
        Trust {
            issuer: ISSUER,
            client_id: CLIENT,
            jwks,
            algs: &ES256,
            now: NOW,
        }
    }

    fn es256(&self, with_kid: bool, payload: &[u8]) -> Option<String> {
        let header = if with_kid {
            json!({"alg": "ES256", "typ": "JWT", "kid": KID})
        } else {
            json!({"alg": "ES256", "typ": "JWT"})
        };
        let input = format!("{}.{}", B64.encode(header.to_string()), B64.encode(payload));
        let sig = self.key.sign(&self.rng, input.as_bytes()).ok()?;
        Some(format!("{input}.{}", B64.encode(sig.as_ref())))
    }

    /// Turns fuzz bytes into a token. The first byte picks how: `S`/`N` the rest is a payload
    /// signed with the real key (with/without `kid`), `K` signed but naming an unknown `kid`,
    /// `0` `alg: none`, `H` HS256 keyed with the public key (alg confusion), `T` a token
    /// endpoint response carrying the token; anything else: the bytes are the token.
    /// Returns the token and whether a genuine signature by a known key is on it.
    fn token(&self, data: &[u8]) -> Option<(String, bool)> {
        let rest = data.get(1..).unwrap_or_default();
        let payload = B64.encode(rest);
        match data.first() {
            Some(b'S') => Some((self.es256(true, rest)?, true)),
            Some(b'N') => Some((self.es256(false, rest)?, true)),
            Some(b'K') => {
                let t = self.es256(false, rest)?;
                let (_, tail) = t.split_once('.')?;
                let h = json!({"alg": "ES256", "kid": "unknown-kid"}).to_string();
                Some((format!("{}.{tail}", B64.encode(h)), false))
            }
            Some(b'0') => {
                let h = B64.encode(json!({"alg": "none", "typ": "JWT"}).to_string());
                Some((format!("{h}.{payload}."), false))
            }
            Some(b'H') => {
                let h = B64.encode(json!({"alg": "HS256", "kid": KID}).to_string());
                let input = format!("{h}.{payload}");
                let secret = if rest.len() % 2 == 0 {
                    self.jwk_json.clone().into_bytes()
                } else {
                    B64.decode(&self.x).unwrap_or_default()
                };
                let k = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &secret);
                let tag = ring::hmac::sign(&k, input.as_bytes());
                Some((format!("{input}.{}", B64.encode(tag.as_ref())), false))
            }
            Some(b'T') => {
                let resp: CoreTokenResponse = serde_json::from_slice(rest).ok()?;
                Some((resp.id_token()?.to_string(), false))
            }
            _ => Some((text(data).into_owned(), false)),
        }
    }
}

pub(super) fn audience_ok(c: &Map<String, Value>) -> bool {
    let aud_ok = match c.get("aud") {
        Some(Value::String(a)) => a == CLIENT,
        Some(Value::Array(a)) => a.iter().any(|v| v.as_str() == Some(CLIENT)),
        _ => false,
    };
    let several = c
        .get("aud")
        .and_then(Value::as_array)
        .is_some_and(|a| a.len() > 1);
    let azp_ok = match c.get("azp") {
        Some(v) => v.as_str() == Some(CLIENT),
        None => !several,
    };
    aud_ok && azp_ok
}

pub(super) fn short_text(v: Option<&Value>) -> Option<&str> {
    v.and_then(Value::as_str)
        .filter(|s| !s.is_empty() && s.len() <= 255)
}

/// DESIGN.md §6, conformance/oidc-rp.md: what an accepted ID token's claims must satisfy.
pub(super) fn check_accepted_id_token(c: &Map<String, Value>, sub: &str) {
    assert_eq!(c.get("iss").and_then(Value::as_str), Some(ISSUER), "iss");
    assert!(audience_ok(c), "aud/azp");
    let exp = c.get("exp").and_then(Value::as_f64);
    assert!(exp.is_some_and(|e| e > (NOW - LEEWAY_SECS) as f64), "exp");
    let iat = c.get("iat").and_then(Value::as_f64);
    assert!(iat.is_some_and(|i| i <= (NOW + LEEWAY_SECS) as f64), "iat");
    assert_eq!(c.get("nonce").and_then(Value::as_str), Some(NONCE), "nonce");
    assert_eq!(short_text(c.get("sub")), Some(sub), "sub");
    if let Ok(id) = rp::identity(c, sub, None, "groups") {
        for s in std::iter::once(&id.username).chain(id.groups.iter()) {
            assert!(!s.is_empty() && s.len() <= 256, "identity text length");
            assert!(!s.chars().any(char::is_control), "control char in identity");
        }
    }
}

/// ID tokens (`verify_id_token`), genuine or forged; see `Op::token` for the first byte.
pub fn id_token(data: &[u8]) {
    let Some(op) = op() else { return };
    let Some((token, genuine)) = op.token(data) else {
        return;
    };
    let _ = rp::header_kid(&token);
    if let Ok(v) = rp::verify_id_token(&token, NONCE, &op.trust(&op.jwks)) {
        assert!(genuine, "a token without a genuine signature was accepted");
        check_accepted_id_token(&v.claims, &v.sub);
    }
}

/// Back-channel logout tokens (`verify_logout_token`); see `Op::token` for the first byte.
pub fn logout_token(data: &[u8]) {
    let Some(op) = op() else { return };
    let Some((token, genuine)) = op.token(data) else {
        return;
    };
    let Ok(v) = rp::verify_logout_token(&token, &op.trust(&op.jwks)) else {
        return;
    };
    assert!(
        genuine,
        "a logout token without a genuine signature was accepted"
    );
    let (_, payload) = token.split_once('.').unwrap_or_default();
    let payload = payload.split('.').next().unwrap_or_default();
    let c: Map<String, Value> = B64
        .decode(payload)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default();
    assert_eq!(c.get("iss").and_then(Value::as_str), Some(ISSUER), "iss");
    assert!(audience_ok(&c), "aud/azp");
    assert!(
        c.get("iat")
            .and_then(Value::as_i64)
            .is_some_and(|i| i <= NOW + LEEWAY_SECS),
        "iat"
    );
    assert!(
        c.get("exp")
            .and_then(Value::as_i64)
            .is_some_and(|e| e > NOW - LEEWAY_SECS && e <= NOW + rp::LOGOUT_TOKEN_MAX_SECS),
        "exp"
    );
    assert_eq!(Some(v.jti.as_str()), short_text(c.get("jti")), "jti");
    assert!(!c.contains_key("nonce"), "a logout token with a nonce");
    assert!(
        c.get("events")
            .and_then(|e| e.get(BACKCHANNEL_EVENT))
            .is_some_and(Value::is_object),
        "events"
    );
    assert_eq!(v.sid.as_deref(), short_text(c.get("sid")));
    assert_eq!(v.sub.as_deref(), short_text(c.get("sub")));
    assert!(v.sid.is_some() || v.sub.is_some(), "sid or sub");
}

/// JSON from the IdP about keys: a JWKS (as fetched) and discovery metadata.
pub fn jwks(data: &[u8]) {
    let Some(op) = op() else { return };
    let data = data.get(..MAX_INPUT).unwrap_or(data);
    if let Ok(set) = serde_json::from_slice::<CoreJsonWebKeySet>(data) {
        let ours = set.keys().iter().any(|k| {
            let k = serde_json::to_value(k).unwrap_or_default();
            k.get("x").and_then(Value::as_str) == Some(op.x.as_str())
                && k.get("y").and_then(Value::as_str) == Some(op.y.as_str())
        });
        let _ = rp::has_kid(&set, KID);
        // Tokens signed with our key verify only against a key set that holds our key.
        if rp::verify_id_token(&op.good_id_token, NONCE, &op.trust(&set)).is_ok() {
            assert!(ours, "an ID token verified with a foreign key");
        }
        if rp::verify_logout_token(&op.good_logout_token, &op.trust(&set)).is_ok() {
            assert!(ours, "a logout token verified with a foreign key");
        }
    }
    if let Ok(meta) = serde_json::from_slice::<ProviderMetadataWithLogout>(data) {
        let algs = rp::allowed_algs(meta.id_token_signing_alg_values_supported());
        assert!(
            !algs.iter().any(|a| matches!(
                a,
                CoreJwsSigningAlgorithm::None
                    | CoreJwsSigningAlgorithm::HmacSha256
                    | CoreJwsSigningAlgorithm::HmacSha384
                    | CoreJwsSigningAlgorithm::HmacSha512
            )),
            "a symmetric or no algorithm allowed"
        );
    }
}

/// Userinfo responses merged into verified claims (`merge_userinfo`).
pub fn userinfo(data: &[u8]) {
    let data = data.get(..MAX_INPUT).unwrap_or(data);
    let Ok(info) = serde_json::from_slice::<Map<String, Value>>(data) else {
        return;
    };
    let verified =
        json!({"iss": ISSUER, "sub": "s-1", "email": "ann@example.com", "groups": ["agents"]});
    let Value::Object(verified) = verified else {
        return;
    };
    let mut claims = verified.clone();
    let matches = info.get("sub").and_then(Value::as_str) == Some("s-1");
    let merged = rp::merge_userinfo(&mut claims, info, "s-1");
    assert_eq!(merged.is_ok(), matches, "userinfo of another subject");
    // Userinfo adds claims, never replaces what the signed ID token said.
    for (k, v) in &verified {
        assert_eq!(claims.get(k), Some(v), "userinfo replaced {k}");
    }
    if let Ok(id) = rp::identity(&claims, "s-1", None, "groups") {
        assert_eq!(id.email.as_deref(), Some("ann@example.com"));
    }
}

/// The config loader: TOML text as `portcullis check` reads it.
pub fn config(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data.get(..MAX_INPUT).unwrap_or(data)) else {
        return;
    };
    let file = Path::new("/nonexistent-portcullis-fuzz/portcullis.toml");
    let env = |k: &str| match k {
        "PORTCULLIS_KEY" => Some("00".repeat(32)),
        "OKTA_SECRET" | "OIDC_SECRET" => Some("s3cret".to_owned()),
        _ => None,
    };
    match Config::from_str_with_env(file, text, &env) {
        Ok(c) => {
            for r in &c.routes {
                assert!(r.prefix.starts_with('/'), "route prefix {:?}", r.prefix);
            }
            let _ = Routes::new(c.routes.clone()).decide("/");
        }
        Err(errors) => {
            assert!(!errors.0.is_empty(), "an error without a message");
            let lines = text.lines().count() + 1;
            for e in &errors.0 {
                assert_eq!(e.file, file, "error names another file");
                assert!(!e.message.is_empty(), "empty error message");
                if let Some(l) = e.line {
                    assert!(l >= 1 && l <= lines, "line {l} outside the file");
                }
            }
            let _ = errors.to_string();
        }
    }
}

/// JWT access tokens (DESIGN.md §9), genuine and forged as for logout tokens: accepted only
/// with a genuine signature and `iss`, `aud` (the API audience, here `CLIENT`), a live `exp`,
/// no `nbf`/`iat` in the future, and a `sub`.
pub fn access_token(data: &[u8]) {
    use crate::auth::bearer::{verify_access_token, AccessTrust};
    let Some(op) = op() else { return };
    let Some((token, genuine)) = op.token(data) else {
        return;
    };
    let t = AccessTrust {
        issuer: ISSUER,
        audience: CLIENT,
        jwks: &op.jwks,
        algs: &ES256,
        now: NOW,
    };
    let Ok(v) = verify_access_token(&token, &t) else {
        return;
    };
    assert!(
        genuine,
        "an access token without a genuine signature was accepted"
    );
    let c = &v.claims;
    assert_eq!(c.get("iss").and_then(Value::as_str), Some(ISSUER), "iss");
    assert!(rp::audience_contains(c, CLIENT), "aud");
    assert!(
        c.get("exp")
            .and_then(Value::as_i64)
            .is_some_and(|e| e > NOW - LEEWAY_SECS),
        "exp"
    );
    for claim in ["nbf", "iat"] {
        if let Some(at) = c.get(claim) {
            assert!(
                at.as_i64().is_some_and(|a| a <= NOW + LEEWAY_SECS),
                "{claim}"
            );
        }
    }
    assert!(
        !v.sub.is_empty() && !v.sub.chars().any(char::is_control),
        "sub"
    );
}

/// `Authorization` header values (one per line): a Bearer credential is taken only as one
/// RFC 6750 `b64token`, and never from two Bearer headers.
pub fn bearer_header(data: &[u8]) {
    let lines: Vec<&[u8]> = data
        .get(..MAX_INPUT)
        .unwrap_or(data)
        .split(|b| *b == b'\n')
        .collect();
    if let Ok(Some(t)) = crate::auth::bearer::token_of(&lines) {
        assert!(!t.is_empty() && !t.starts_with('='), "empty token: {t:?}");
        assert!(
            t.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-._~+/=".contains(&b)),
            "token outside b64token: {t:?}"
        );
        let bearers = lines
            .iter()
            .filter(|l| {
                let l = l.trim_ascii();
                let scheme = l.split(|b| *b == b' ').next().unwrap_or_default();
                scheme.eq_ignore_ascii_case(b"bearer")
            })
            .count();
        assert_eq!(bearers, 1, "a token from {bearers} bearer credentials");
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::fuzzing::{check_local_path, check_normalized, is_identity_or_forwarding};

    #[test]
    fn signed_token_seeds_reach_the_accepting_branch() {
        let op = op().unwrap();
        let claims = json!({"iss": ISSUER, "aud": CLIENT, "sub": "s-1", "iat": NOW, "exp": NOW + 600, "nonce": NONCE}).to_string();
        for (first, accepted) in [
            (b'S', true),
            (b'N', true),
            (b'0', false),
            (b'H', false),
            (b'K', false),
        ] {
            let mut data = vec![first];
            data.extend_from_slice(claims.as_bytes());
            let (token, genuine) = op.token(&data).unwrap();
            assert_eq!(genuine, first == b'S' || first == b'N');
            let r = rp::verify_id_token(&token, NONCE, &op.trust(&op.jwks));
            assert_eq!(r.is_ok(), accepted, "{} {r:?}", first as char);
        }
        assert!(rp::verify_logout_token(&op.good_logout_token, &op.trust(&op.jwks)).is_ok());
    }

    #[test]
    fn the_checks_refuse_what_the_contract_refuses() {
        for bad in [
            "",
            "x",
            "//evil.com",
            "/\\evil",
            "/%2f%2fevil.com",
            "/a\tb",
            "/javascript:x",
            "/%5cevil",
        ] {
            assert!(check_local_path(bad).is_err(), "{bad:?}");
        }
        for ok in ["/", "/a/b%20c?x=1#top", "/search?q=a:b"] {
            assert!(check_local_path(ok).is_ok(), "{ok:?}");
        }
        for bad in [
            "/a/../b", "//a", "/a/./b", "/%61", "/%2f", "/a?b", "/%2", "/%e2",
        ] {
            assert!(check_normalized(bad).is_err(), "{bad:?}");
        }
        assert!(check_normalized("/a/%E2%80%A8/~").is_ok());
        assert!(is_identity_or_forwarding("x-portcullis-"));
        assert!(!is_identity_or_forwarding("x-forwarded-port"));
    }
}
