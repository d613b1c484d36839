//! Signed single-use links (the "this was not me" report and break-glass links carry no state
//! in the link beyond what is signed). Invariants: a token is `payload.mac`, base64url both; the
//! MAC is HMAC-SHA256 under a gateway key and checked in constant time (`ring::hmac::verify`)
//! before the payload is parsed; expiry is checked against a time the caller passes in.
//! Single use is the caller's job (an atomic claim in the session store).

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine as _;
use serde::{Deserialize, Serialize};

/// Longest token accepted: anything longer is refused before it is decoded.
pub const MAX_TOKEN_BYTES: usize = 2048;

/// What a "this was not me" link says: whose sign-in, and until when it works.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Report {
    /// The principal whose sessions the report ends.
    #[serde(rename = "p")]
    pub principal: String,
    /// The display name (for pages and mails).
    #[serde(rename = "u")]
    pub user: String,
    /// Single-use key: the claim in the session store is made under it.
    #[serde(rename = "n")]
    pub nonce: String,
    /// Unix seconds after which the link does nothing.
    #[serde(rename = "x")]
    pub expires_at: i64,
}

/// Why a link does nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LinkError {
    /// Not a token of this gateway: malformed, or its MAC does not match (tampered).
    #[error("link is not valid")]
    Invalid,
    /// Signed, but past its expiry.
    #[error("link has expired")]
    Expired,
}

/// Signs `report` into a link token.
pub fn sign(key: &ring::hmac::Key, report: &Report) -> String {
    let payload = B64.encode(serde_json::to_vec(report).unwrap_or_default());
    let tag = ring::hmac::sign(key, payload.as_bytes());
    format!("{payload}.{}", B64.encode(tag.as_ref()))
}

/// Verifies a token's MAC (constant time), then its expiry at `now`.
pub fn verify(key: &ring::hmac::Key, token: &str, now: i64) -> Result<Report, LinkError> {
    if token.len() > MAX_TOKEN_BYTES {
        return Err(LinkError::Invalid);
    }
    let (payload, mac) = token.split_once('.').ok_or(LinkError::Invalid)?;
    let mac = B64.decode(mac).map_err(|_| LinkError::Invalid)?;
    ring::hmac::verify(key, payload.as_bytes(), &mac).map_err(|_| LinkError::Invalid)?;
    let bytes = B64.decode(payload).map_err(|_| LinkError::Invalid)?;
    let report: Report = serde_json::from_slice(&bytes).map_err(|_| LinkError::Invalid)?;
    if now >= report.expires_at {
        return Err(LinkError::Expired);
    }
    Ok(report)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn key(b: u8) -> ring::hmac::Key {
        ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &[b; 32])
    }

    fn report() -> Report {
        Report {
            principal: "native:ann".into(),
            user: "ann".into(),
            nonce: "n1".into(),
            expires_at: 100,
        }
    }

    #[test]
    fn a_signed_link_verifies_until_it_expires() {
        let t = sign(&key(1), &report());
        assert_eq!(verify(&key(1), &t, 99), Ok(report()));
        assert_eq!(verify(&key(1), &t, 100), Err(LinkError::Expired));
    }

    #[test]
    fn a_tampered_or_foreign_link_is_invalid() {
        let t = sign(&key(1), &report());
        assert_eq!(verify(&key(2), &t, 1), Err(LinkError::Invalid));
        let other = Report {
            principal: "native:bob".into(),
            ..report()
        };
        let forged_payload = sign(&key(9), &other);
        let (p, _) = forged_payload.split_once('.').unwrap();
        let (_, mac) = t.split_once('.').unwrap();
        assert_eq!(
            verify(&key(1), &format!("{p}.{mac}"), 1),
            Err(LinkError::Invalid)
        );
        for bad in ["", ".", "abc", "a.b.c", &"x".repeat(MAX_TOKEN_BYTES + 1)] {
            assert_eq!(verify(&key(1), bad, 1), Err(LinkError::Invalid), "{bad}");
        }
    }
}
