//! The known-device cookie (DESIGN.md §12): a long-lived random id signed by the gateway, so
//! a browser can be recognised at its next sign-in. Separate from the remembered-MFA device
//! cookie: it proves nothing and skips no factor; it only decides whether a notice is sent.
//! Invariant: only a hash of the id reaches the user store; a cookie whose MAC does not match
//! (constant-time check) is treated as absent.

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine as _;

/// Browsers keep a cookie at most 400 days (RFC 6265bis); the notice then repeats once.
pub const MAX_AGE_SECS: u64 = 400 * 86_400;
/// Bytes of MAC kept in the cookie (128 bits).
const MAC_BYTES: usize = 16;
/// Random bytes of an id; base64url makes it `ID_CHARS` characters.
const ID_BYTES: usize = 18;
const ID_CHARS: usize = 24;

/// A new cookie value: a fresh id and its MAC, base64url both and side by side (cookie values
/// of the gateway are base64url only: `session::cookie` refuses anything else). Returns
/// (value, id).
pub fn mint(key: &ring::hmac::Key) -> (String, String) {
    let id = crate::session::random_id(ID_BYTES);
    (value_for(key, &id), id)
}

/// The cookie value for an id.
pub fn value_for(key: &ring::hmac::Key, id: &str) -> String {
    let tag = ring::hmac::sign(key, id.as_bytes());
    let mac = B64.encode(tag.as_ref().get(..MAC_BYTES).unwrap_or_default());
    format!("{id}{mac}")
}

/// The id of a cookie value this gateway signed; `None` for anything else.
pub fn verify(key: &ring::hmac::Key, value: &str) -> Option<String> {
    let id = value.get(..ID_CHARS)?;
    crate::secret::ct_eq(value_for(key, id).as_bytes(), value.as_bytes()).then(|| id.to_owned())
}

/// What the user store keeps of a device id.
pub fn hash(id: &str) -> String {
    crate::mfa::sha256_hex(id.as_bytes())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_minted_cookie_verifies_and_a_changed_one_does_not() {
        let k = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &[7; 32]);
        let (v, id) = mint(&k);
        assert_eq!(verify(&k, &v), Some(id.clone()));
        let other = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &[8; 32]);
        assert_eq!(verify(&other, &v), None);
        assert_eq!(verify(&k, &format!("{v}x")), None);
        assert_eq!(verify(&k, &format!("a{v}")), None);
        assert_eq!(verify(&k, &id), None);
        assert_eq!(verify(&k, ""), None);
    }
}
