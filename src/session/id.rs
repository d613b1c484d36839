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

    /// The empty id of a machine client's request identity (a service token or a JWT bearer,
    /// DESIGN.md §9): such an identity is never stored, and no `X-Auth-Session` is sent for it.
    pub fn machine() -> SessionId {
        SessionId(String::new())
    }

    /// Whether this is `machine()`'s id (no session behind it).
    pub fn is_machine(&self) -> bool {
        self.0.is_empty()
    }
}

/// The last cookie token seen on one connection and its id. A keep-alive client sends the same
/// cookie with every request, and hashing it again was the largest single cost of an
/// authenticated request (about a tenth of its instructions). The cached id is used only when
/// the new token equals the cached one (compared in constant time); any other token is hashed
/// and replaces it, so a connection never gets another token's id. The token stays zeroized on
/// drop as every `SessionToken`.
#[derive(Default)]
pub struct LastToken(Option<(SessionToken, SessionId)>);

impl LastToken {
    /// The id of `token`, hashed only when it differs from the previous one.
    pub fn id_of(&mut self, token: &str) -> &SessionId {
        let hit = matches!(&self.0, Some((t, _)) if t.ct_eq(token));
        if !hit {
            self.0 = None;
        }
        &self
            .0
            .get_or_insert_with(|| {
                (
                    SessionToken::new(token.to_owned()),
                    SessionId::of_str(token),
                )
            })
            .1
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

/// A random identifier of `bytes` bytes, base64url (CSRF tokens, request ids, nonces, device
/// and break-glass tokens).
pub fn random_id(bytes: usize) -> String {
    let mut b = vec![0u8; bytes];
    // Fails closed (`fill_random` stops the request) when the OS has no randomness: several of
    // these ids are stored and matched later (device tokens, break-glass links, nonces), so a
    // predictable all-zero value would be a credential anyone can guess.
    crate::mfa::fill_random(&mut b);
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
    fn a_connection_gets_the_id_of_the_token_it_sent_never_the_previous_one() {
        let mut last = LastToken::default();
        for t in ["tok-a", "tok-a", "tok-b", "tok-a", "tok-a2", "tok-a", ""] {
            assert_eq!(*last.id_of(t), SessionId::of_str(t), "{t:?}");
        }
    }

    #[test]
    fn tokens_are_256_bit_and_distinct() {
        let a = new_token().unwrap_or_else(|_| SessionToken::new(String::new()));
        let b = new_token().unwrap_or_else(|_| SessionToken::new(String::new()));
        assert_eq!(B64.decode(a.expose()).map(|v| v.len()).ok(), Some(32));
        assert!(!a.ct_eq(b.expose()));
    }
}
