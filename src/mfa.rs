//! Second factors the gateway itself checks: TOTP, recovery codes, email codes, passkeys, QR
//! rendering.
//! Credential types own their checks; no HTTP types and no persistence here (the user store keeps state).

pub mod email;
pub mod qr;
pub mod recovery;
pub mod totp;
pub mod webauthn;

use ring::rand::{SecureRandom, SystemRandom};

/// Why a second factor was refused or could not be delivered.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum MfaError {
    /// The code does not have the expected shape (length or alphabet).
    #[error("malformed code")]
    MalformedCode,
    /// The code is well formed but does not match.
    #[error("wrong code")]
    WrongCode,
    /// The code matched a time step that was already used (DESIGN.md §6: single use per step).
    #[error("code already used")]
    CodeReused,
    /// The code was valid once but its lifetime is over.
    #[error("code expired")]
    Expired,
    /// The SMTP server could not be configured or refused the message.
    #[error("smtp error: {0}")]
    Smtp(String),
    /// The SMTP server did not accept the message within the sending timeout.
    #[error("smtp timed out")]
    SmtpTimeout,
    /// An email address (sender or recipient) does not parse.
    #[error("bad email address")]
    BadAddress,
    /// The data does not fit in a QR code.
    #[error("qr code could not be rendered")]
    Qr,
    /// A factor the login's roles do not accept (`roles.<r>.mfa_methods`).
    #[error("method not allowed for this role")]
    NotAllowed,
    /// A passkey ceremony was refused (its reason is the audit's).
    #[error("passkey {0}")]
    Passkey(webauthn::PasskeyError),
}

/// A typed code as the checks read it: every space and dash removed, whatever kind (ASCII or
/// the Unicode ones phones and copied text bring), so "123 456", "123-456" and "abcd-ef…" all
/// match. The one place codes are normalised before their shape is looked at.
pub fn compact_code(input: &str) -> String {
    input
        .chars()
        .filter(|c| !c.is_whitespace() && !matches!(c, '-' | '\u{2010}'..='\u{2015}' | '\u{2212}'))
        .collect()
}

/// Fills `buf` from the operating system's CSPRNG.
///
/// A failing OS random source leaves no safe way to continue: returning predictable codes or
/// seeds would be worse than stopping, so this fails closed by panicking.
#[allow(clippy::expect_used)] // Reason: see above; getrandom does not fail on supported platforms.
pub(crate) fn fill_random(buf: &mut [u8]) {
    SystemRandom::new()
        .fill(buf)
        .expect("operating system random source failed");
}

/// A uniformly random index below `n` (`0 < n <= 256`), by rejection sampling (no modulo bias).
pub(crate) fn random_below(n: usize) -> usize {
    debug_assert!(n > 0 && n <= 256);
    let n = n.clamp(1, 256);
    // Largest multiple of n that fits in one byte; bytes at or above it are redrawn.
    let limit = 256 - (256 % n);
    loop {
        let mut b = [0u8; 1];
        fill_random(&mut b);
        let v = usize::from(b[0]);
        if v < limit {
            return v % n;
        }
    }
}

/// A string of `len` characters drawn uniformly from `alphabet` (ASCII, at most 256 symbols).
pub(crate) fn random_string(alphabet: &[u8], len: usize) -> String {
    (0..len)
        .filter_map(|_| alphabet.get(random_below(alphabet.len())))
        .map(|&b| char::from(b))
        .collect()
}

/// Lowercase hex SHA-256 of `data`.
pub(crate) fn sha256_hex(data: &[u8]) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, data);
    digest
        .as_ref()
        .iter()
        .fold(String::with_capacity(64), |mut s, b| {
            use std::fmt::Write;
            let _ = write!(s, "{b:02x}");
            s
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_below_stays_in_range_and_hits_every_value() {
        let mut seen = [false; 31];
        for _ in 0..5_000 {
            let v = random_below(31);
            assert!(v < 31);
            if let Some(s) = seen.get_mut(v) {
                *s = true;
            }
        }
        assert!(seen.iter().all(|&s| s));
    }

    #[test]
    fn random_string_uses_only_the_alphabet() {
        let s = random_string(b"ab", 64);
        assert_eq!(s.len(), 64);
        assert!(s.bytes().all(|b| b == b'a' || b == b'b'));
    }

    #[test]
    fn codes_are_read_without_spaces_and_dashes() {
        assert_eq!(compact_code(" 123 456 "), "123456");
        assert_eq!(compact_code("123-456"), "123456");
        assert_eq!(compact_code("1234\u{2013}5678"), "12345678");
        assert_eq!(
            compact_code("abcdef - ghjkmn\t234567"),
            "abcdefghjkmn234567"
        );
    }

    #[test]
    fn sha256_hex_matches_the_fips_180_abc_vector() {
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
