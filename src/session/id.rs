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
#[derive(Clone)]
pub struct SessionId {
    text: String,
    /// The 16 bytes `text` encodes (`None` when it encodes no 16 bytes), worked out once: the
    /// memory store keys on them, and the proxy path looks an id up on every request.
    bytes: Option<[u8; 16]>,
}

/// The base64url alphabet, in the order of the values its characters stand for.
pub(super) const ALPHABET: &[u8; 64] =
    b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// Marks a byte outside the base64url alphabet in `SEXTETS`.
const BAD: u8 = 0x80;

/// The value of each base64url character, by byte.
// Built at compile time: an index out of range would fail the build, never a request.
#[allow(clippy::indexing_slicing)]
const SEXTETS: [u8; 256] = {
    let mut table = [BAD; 256];
    let mut i = 0;
    while i < 64 {
        table[ALPHABET[i] as usize] = i as u8;
        i += 1;
    }
    table
};

/// Whether `c` is a base64url character.
fn is_b64url(c: u8) -> bool {
    SEXTETS.get(usize::from(c)).is_some_and(|v| *v != BAD)
}

// Printed, compared, ordered and hashed as its text alone: `bytes` is a function of it.
impl std::fmt::Debug for SessionId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("SessionId").field(&self.text).finish()
    }
}

impl PartialEq for SessionId {
    fn eq(&self, other: &Self) -> bool {
        self.text == other.text
    }
}

impl Eq for SessionId {}

impl std::hash::Hash for SessionId {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.text.hash(state);
    }
}

impl PartialOrd for SessionId {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for SessionId {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.text.cmp(&other.text)
    }
}

impl SessionId {
    pub fn of(token: &SessionToken) -> SessionId {
        Self::of_str(token.expose())
    }

    pub(crate) fn of_str(token: &str) -> SessionId {
        let d = digest::digest(&digest::SHA256, token.as_bytes());
        let bytes: [u8; 16] = d
            .as_ref()
            .get(..16)
            .and_then(|b| b.try_into().ok())
            .unwrap_or_default();
        SessionId::from_bytes(&bytes)
    }

    /// Accepts an id as typed by an admin: 22 base64url characters.
    pub fn parse(s: &str) -> Option<SessionId> {
        (s.len() == 22 && s.bytes().all(is_b64url)).then(|| SessionId::from_text(s.to_owned()))
    }

    /// An id as a store wrote it (the stores beside this file rebuild ids they wrote; everyone
    /// else goes through `of` or `parse`).
    pub(super) fn from_text(text: String) -> SessionId {
        let bytes = decode(&text);
        SessionId { text, bytes }
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The 16 bytes the id encodes, for a store that keys on bytes (six fewer than the text);
    /// `None` for a string that is not the exact encoding of 16 bytes (a wrong length, a
    /// character outside base64url, trailing bits set): no id the gateway made is such a
    /// string, so none is stored under it.
    pub fn to_bytes(&self) -> Option<[u8; 16]> {
        self.bytes
    }

    /// The id as text in a fixed array: the order of ids as the stores list them.
    pub fn text_of(bytes: &[u8; 16]) -> [u8; 22] {
        let mut out = [0u8; 22];
        let _ = B64.encode_slice(bytes, &mut out);
        out
    }

    /// The id whose bytes `to_bytes` gave.
    pub fn from_bytes(bytes: &[u8; 16]) -> SessionId {
        SessionId {
            text: B64.encode(bytes),
            bytes: Some(*bytes),
        }
    }

    /// The empty id of a machine client's request identity (a service token or a JWT bearer,
    /// DESIGN.md §9): such an identity is never stored, and no `X-Auth-Session` is sent for it.
    pub fn machine() -> SessionId {
        SessionId::from_text(String::new())
    }

    /// Whether this is `machine()`'s id (no session behind it).
    pub fn is_machine(&self) -> bool {
        self.text.is_empty()
    }
}

/// The 16 bytes 22 base64url characters encode; `None` for a wrong length, a character outside
/// the alphabet, or trailing bits set. By hand (a table and one 128-bit accumulator): the
/// general decoder took about 330 instructions for these 22 characters.
fn decode(text: &str) -> Option<[u8; 16]> {
    let text: &[u8; 22] = text.as_bytes().try_into().ok()?;
    let [head @ .., last] = text.map(|c| SEXTETS.get(usize::from(c)).copied().unwrap_or(BAD));
    // 21 characters give 126 bits, the last one 2 more and four trailing bits, which must
    // be zero (else two strings would name the same bytes).
    if head.iter().fold(last, |a, v| a | v) & BAD != 0 || last & 0x0f != 0 {
        return None;
    }
    let n = head.iter().fold(0u128, |a, v| a << 6 | u128::from(*v));
    Some((n << 2 | u128::from(last >> 4)).to_be_bytes())
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
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
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
    fn an_id_and_its_bytes_round_trip_and_no_other_string_has_those_bytes() {
        for i in 0..2000 {
            let id = SessionId::of_str(&format!("token-{i}"));
            let bytes = id.to_bytes().unwrap();
            assert_eq!(SessionId::from_bytes(&bytes), id);
            assert_eq!(SessionId::text_of(&bytes), id.as_str().as_bytes());
            // Parsed back from its text (admin API, Redis), the id has the same bytes.
            assert_eq!(
                SessionId::parse(id.as_str()).unwrap().to_bytes(),
                Some(bytes)
            );
            // The same 128 bits but for the 4 trailing ones: a different string, so it must
            // not reach the same stored session.
            let (head, last) = id.as_str().split_at(21);
            for other in ALPHABET.iter().map(|c| char::from(*c)) {
                if last.starts_with(other) {
                    continue;
                }
                let alias = SessionId::parse(&format!("{head}{other}")).unwrap();
                assert_ne!(alias.to_bytes(), Some(bytes), "{alias:?} aliases {id:?}");
            }
        }
        for bad in [
            "",
            "AAAAAAAAAAAAAAAAAAAAAB",
            "AAAAAAAAAAAAAAAAAAAAA",
            "AAAAAAAAAAAAAAAAAAAAAAA",
            "AAAAAAAAAAAAAAAAAAAA+A",
            "AAAAAAAAAAAAAAAAAAAA=A",
            "AAAAAAAAAAAAAAAAAAAA\u{e9}",
        ] {
            assert_eq!(SessionId::from_text(bad.into()).to_bytes(), None, "{bad:?}");
        }
    }

    proptest::proptest! {
        /// The hand-written decoder agrees with the general one on any 22 bytes.
        #[test]
        fn to_bytes_decodes_as_the_general_decoder_does(
            text in proptest::collection::vec(proptest::prelude::any::<u8>(), 22),
            alphabet_only in proptest::prelude::any::<bool>(),
        ) {
            let text: Vec<u8> = if alphabet_only {
                text.iter().map(|b| ALPHABET[usize::from(*b) % 64]).collect()
            } else {
                text
            };
            let Ok(s) = String::from_utf8(text) else { return Ok(()) };
            let general = B64.decode(&s).ok().and_then(|v| <[u8; 16]>::try_from(v).ok());
            proptest::prop_assert_eq!(SessionId::from_text(s).to_bytes(), general);
        }
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
