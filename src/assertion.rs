//! `X-Portcullis-Assertion`: a short-lived ES256 JWT with the session's identity, so an app can
//! prove a request came through the gateway; the public key is served as a JWKS. The private
//! key is read from disk or generated once and written with mode 0600.
//!
//! Dependency direction: this module reads a [`Session`] and fills its
//! [`CachedAssertion`](crate::session::CachedAssertion) with the value and the deadline
//! (`REUSE_SECS`) until which it may be sent again; `session/` never imports this module
//! (signing keys and claims are not the store's business; the store only empties stale slots).

use crate::clock::UnixTime;
use crate::metrics::Metrics;
use crate::session::Session;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine as _;
use hyper::header::HeaderValue;
use ring::rand::SystemRandom;
use ring::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
use std::path::Path;

/// Lifetime of one assertion.
pub const TTL_SECS: i64 = 60;
/// An assertion is re-signed once it is older than this, so every one sent has ≥ 30 s left.
const REUSE_SECS: i64 = 30;

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The key file exists but cannot be read or parsed.
    #[error("cannot load the assertion signing key {path}: {reason}")]
    Load { path: String, reason: String },
    /// A new key could not be generated or written.
    #[error("cannot create the assertion signing key {path}: {reason}")]
    Create { path: String, reason: String },
}

pub struct Signer {
    key: EcdsaKeyPair,
    rng: SystemRandom,
    kid: String,
    issuer: String,
    jwks: String,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signer")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

impl Signer {
    /// Loads the PKCS#8 key at `path`, creating it (mode 0600) when absent.
    pub fn load_or_create(path: &Path, issuer: &str) -> Result<Signer, KeyError> {
        let rng = SystemRandom::new();
        let shown = path.display().to_string();
        let pkcs8 = match std::fs::read(path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let doc = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
                    .map_err(|_| KeyError::Create {
                        path: shown.clone(),
                        reason: "key generation failed".into(),
                    })?;
                write_private(path, doc.as_ref()).map_err(|e| KeyError::Create {
                    path: shown.clone(),
                    reason: e.to_string(),
                })?;
                tracing::info!(path = %shown, "generated a new assertion signing key");
                doc.as_ref().to_vec()
            }
            Err(e) => {
                return Err(KeyError::Load {
                    path: shown,
                    reason: e.to_string(),
                })
            }
        };
        let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &pkcs8, &rng)
            .map_err(|e| KeyError::Load {
                path: shown,
                reason: format!("not a P-256 PKCS#8 key: {e}"),
            })?;
        Ok(Self::from_key(key, issuer))
    }

    fn from_key(key: EcdsaKeyPair, issuer: &str) -> Signer {
        // Uncompressed point: 0x04 || x (32 bytes) || y (32 bytes).
        let public = key.public_key().as_ref();
        let x = B64.encode(public.get(1..33).unwrap_or_default());
        let y = B64.encode(public.get(33..65).unwrap_or_default());
        let digest = ring::digest::digest(&ring::digest::SHA256, public);
        let kid = B64.encode(digest.as_ref().get(..12).unwrap_or_default());
        let jwks = serde_json::json!({
            "keys": [{"kty": "EC", "crv": "P-256", "x": x, "y": y, "kid": kid, "use": "sig", "alg": "ES256"}]
        })
        .to_string();
        Signer {
            key,
            rng: SystemRandom::new(),
            kid,
            issuer: issuer.to_owned(),
            jwks,
        }
    }

    /// The JWKS document served at `/_portcullis/jwks.json`.
    pub fn jwks(&self) -> &str {
        &self.jwks
    }

    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// A signed assertion for `session`, valid for `TTL_SECS` from `now`.
    pub fn sign(&self, session: &Session, now: UnixTime) -> Option<String> {
        let header = serde_json::json!({"alg": "ES256", "typ": "JWT", "kid": self.kid});
        let id = &session.identity;
        let claims = serde_json::json!({
            "iss": self.issuer,
            "aud": self.issuer,
            // The principal: unique across origins (a native `bob` is not an IdP's `bob`).
            "sub": id.principal,
            "preferred_username": id.user,
            "email": id.email,
            "groups": id.groups,
            "roles": id.roles,
            "amr": id.method.header_value(),
            "mfa": id.mfa.as_str(),
            // A machine client's identity has no session (DESIGN.md §9).
            "sid": (!session.id.is_machine()).then(|| session.id.as_str()),
            "iat": now,
            "nbf": now - 5,
            "exp": now + TTL_SECS,
        });
        let signing_input = format!(
            "{}.{}",
            B64.encode(header.to_string()),
            B64.encode(claims.to_string())
        );
        let sig = self.key.sign(&self.rng, signing_input.as_bytes()).ok()?;
        Some(format!("{signing_input}.{}", B64.encode(sig.as_ref())))
    }

    /// The session's current assertion, re-signed only when the cached one is older than 30 s
    /// (each signature counted in `metrics`: the cache's misses).
    pub fn for_session(
        &self,
        session: &Session,
        now: UnixTime,
        metrics: &Metrics,
    ) -> Option<HeaderValue> {
        if let Some(v) = session.assertion.reusable(now) {
            return Some(v);
        }
        let value = HeaderValue::from_str(&self.sign(session, now)?).ok()?;
        metrics.assertion_signed();
        session
            .assertion
            .put(now, now.saturating_add(REUSE_SECS), value.clone());
        Some(value)
    }
}

/// Writes a private file with mode 0600, creating parent directories; refuses to overwrite.
pub fn write_private(path: &Path, data: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(path)?;
    f.write_all(data)?;
    f.sync_all()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use crate::session::{AuthMethod, Identity, MfaUsed, SessionId};
    use ring::signature::{UnparsedPublicKey, ECDSA_P256_SHA256_FIXED};
    use std::time::Duration;

    fn session() -> Session {
        Session::new(
            SessionId::of(&crate::secret::SessionToken::new("t".into())),
            Identity {
                user: "ann".into(),
                principal: "native:ann".into(),
                email: Some("ann@example.com".into()),
                groups: vec!["agents".into()],
                roles: vec!["agent".into()],
                method: AuthMethod::Native,
                mfa: MfaUsed::Totp,
            },
            1000,
            Duration::from_secs(3600),
            Duration::from_secs(600),
            None,
            None,
        )
        .unwrap()
    }

    #[test]
    fn assertion_verifies_with_the_published_jwk_and_carries_the_identity() {
        let dir = std::env::temp_dir().join(format!("pc-assert-{}", std::process::id()));
        let path = dir.join("k.p8");
        let _ = std::fs::remove_file(&path);
        let signer = Signer::load_or_create(&path, "https://gw.example").unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(
                std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
                0o600
            );
        }
        let jwt = signer.sign(&session(), 2000).unwrap();
        let parts: Vec<&str> = jwt.split('.').collect();
        assert_eq!(parts.len(), 3);
        let jwks: serde_json::Value = serde_json::from_str(signer.jwks()).unwrap();
        let k = &jwks["keys"][0];
        let mut point = vec![4u8];
        point.extend(B64.decode(k["x"].as_str().unwrap()).unwrap());
        point.extend(B64.decode(k["y"].as_str().unwrap()).unwrap());
        let msg = format!("{}.{}", parts[0], parts[1]);
        UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, &point)
            .verify(msg.as_bytes(), &B64.decode(parts[2]).unwrap())
            .unwrap();
        let claims: serde_json::Value =
            serde_json::from_slice(&B64.decode(parts[1]).unwrap()).unwrap();
        assert_eq!(claims["sub"], "native:ann");
        assert_eq!(claims["preferred_username"], "ann");
        assert_eq!(claims["exp"], 2060);
        assert_eq!(claims["mfa"], "totp");
        // The same key comes back on restart.
        let again = Signer::load_or_create(&path, "https://gw.example").unwrap();
        assert_eq!(again.kid(), signer.kid());
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn cached_assertion_is_reused_then_renewed() {
        let dir = std::env::temp_dir().join(format!("pc-assert2-{}", std::process::id()));
        let signer = Signer::load_or_create(&dir.join("k.p8"), "https://gw").unwrap();
        let s = session();
        let m = Metrics::default();
        let a = signer.for_session(&s, 2000, &m).unwrap();
        assert_eq!(m.assertions_signed(), 1);
        // Every request in the next 29 s is a hit: no signature.
        for now in 2001..2030 {
            assert_eq!(signer.for_session(&s, now, &m).unwrap(), a);
        }
        assert_eq!(m.assertions_signed(), 1);
        assert_ne!(signer.for_session(&s, 2030, &m).unwrap(), a);
        assert_eq!(m.assertions_signed(), 2);
        assert!(m
            .render(None)
            .contains("portcullis_assertions_signed_total 2\n"));
        std::fs::remove_dir_all(dir).unwrap();
    }
}
