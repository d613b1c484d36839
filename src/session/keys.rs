//! Store keys built from values that come from outside (IdP session ids, subjects, nonces,
//! assertion ids): [`hashed`] turns such a value into a short fixed-length key part, so a key
//! never carries the raw value, never grows with it, and cannot break out of its namespace
//! with a `:` of its own. Key namespaces themselves (`pending:`, `oidc-state:` …) are named
//! by the modules that own them; the IdP link indexes are in `links.rs`.

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine as _;

/// The store-key form of an outside value: base64url of the first 144 bits of its SHA-256
/// (24 characters).
pub fn hashed(s: &str) -> String {
    B64.encode(
        ring::digest::digest(&ring::digest::SHA256, s.as_bytes())
            .as_ref()
            .get(..18)
            .unwrap_or_default(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashed_keys_are_fixed_length_base64url_and_stable() {
        let a = hashed("sid:with:colons and spaces");
        assert_eq!(a.len(), 24);
        assert!(a
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
        assert_eq!(hashed("sid:with:colons and spaces"), a);
        assert_ne!(hashed("another"), a);
        assert_eq!(hashed(&"x".repeat(10_000)).len(), 24);
    }
}
