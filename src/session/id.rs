//! Session identity on the wire: cookie tokens, the public [`SessionId`] derived from them, and
//! random identifiers. Invariant: a `SessionId` is a one-way hash of a cookie token; nothing
//! here (or anywhere in `session/`) turns an id back into a cookie, and the store only ever
//! sees ids.

use crate::secret::SessionToken;
use crate::storage::StoreError;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine as _;
use ring::digest;
use ring::rand::{SecureRandom, SystemRandom};

/// Public session id: base64url of the first 128 bits of SHA-256(cookie token). It is the
/// store key, the `X-Auth-Session` value and the admin API id; it cannot be turned back into
/// a cookie.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
// The field is open to the stores beside this file (`session/*`), which rebuild ids they
// wrote themselves; everyone else goes through `of` or `parse`.
pub struct SessionId(pub(super) String);

impl SessionId {
    pub fn of(token: &SessionToken) -> SessionId {
        Self::of_str(token.expose())
    }

    pub(crate) fn of_str(token: &str) -> SessionId {
        let d = digest::digest(&digest::SHA256, token.as_bytes());
        SessionId(B64.encode(d.as_ref().get(..16).unwrap_or_default()))
    }

    /// Accepts an id as typed by an admin: 22 base64url characters.
    pub fn parse(s: &str) -> Option<SessionId> {
        (s.len() == 22
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'))
        .then(|| SessionId(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A new random cookie token: 256 bits from the OS CSPRNG, base64url.
pub fn new_token() -> Result<SessionToken, StoreError> {
    let mut b = [0u8; 32];
    SystemRandom::new()
        .fill(&mut b)
        .map_err(|_| StoreError::Unavailable("system random generator failed".into()))?;
    Ok(token_of(&b))
}

/// The cookie form of 256 random bits: base64url without padding, 43 characters.
pub(crate) fn token_of(bits: &[u8; 32]) -> SessionToken {
    SessionToken::new(B64.encode(bits))
}

/// A random identifier of `bytes` bytes, base64url (CSRF tokens, request ids, nonces).
pub fn random_id(bytes: usize) -> String {
    let mut b = vec![0u8; bytes];
    // SystemRandom only fails when the OS has no randomness at all; an all-zero id is then
    // still refused later because it never matches a stored random value.
    let _ = SystemRandom::new().fill(&mut b);
    B64.encode(b)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn session_id_is_a_hash_not_the_token() {
        let t = SessionToken::new("token-value".into());
        let id = SessionId::of(&t);
        assert_eq!(id.as_str().len(), 22);
        assert!(!id.as_str().contains("token"));
        assert_eq!(SessionId::of(&t), id);
        assert_eq!(SessionId::parse(id.as_str()), Some(id));
        assert_eq!(SessionId::parse("short"), None);
        assert_eq!(SessionId::parse("aaaaaaaaaaaaaaaaaaaa/+"), None);
    }

    #[test]
    fn tokens_are_256_bit_and_distinct() {
        let a = new_token().unwrap_or_else(|_| SessionToken::new(String::new()));
        let b = new_token().unwrap_or_else(|_| SessionToken::new(String::new()));
        assert_eq!(B64.decode(a.expose()).map(|v| v.len()).ok(), Some(32));
        assert!(!a.ct_eq(b.expose()));
    }
}
