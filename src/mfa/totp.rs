//! TOTP second factor (RFC 6238 over RFC 4226 HOTP): SHA-1, 6 digits, 30 s steps, ±1 step of drift.
//! Codes are compared in constant time and a step at or below the last used one is refused; storing
//! that last step (an atomic conditional update) is the user store's job, not this module's.

use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use ring::hmac;

use super::MfaError;
use crate::clock::UnixTime;
use crate::secret::{ct_eq, TotpSeed};

/// Length of a fresh seed in bytes (160 bits, the HMAC-SHA-1 block output size; RFC 4226 §4 R6).
pub const SEED_BYTES: usize = 20;
/// Digits in a code.
pub const DIGITS: u32 = 6;
/// Length of a time step in seconds.
pub const PERIOD_SECS: i64 = 30;
/// Accepted drift, in steps, on either side of the current one.
const DRIFT_STEPS: u64 = 1;

/// Unreserved characters of RFC 3986 §2.3 stay as they are; everything else is percent-encoded.
const URI_COMPONENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// A TOTP time step (`floor(unix_time / 30)`) that a code matched; persist it as `last_used_step`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TotpStep(pub u64);

/// One user's TOTP factor: the shared seed plus the labels shown in authenticator apps.
#[derive(Debug, Clone)]
pub struct Totp {
    seed: TotpSeed,
    issuer: String,
    account: String,
}

/// Draws a new 160-bit seed from the operating system's CSPRNG.
pub fn generate_seed() -> TotpSeed {
    let mut bytes = vec![0u8; SEED_BYTES];
    super::fill_random(&mut bytes);
    TotpSeed::new(bytes)
}

/// The 6-digit code for `seed` at Unix time `t` (for tests and demos; checks use [`Totp::verify`]).
pub fn code_at(seed: &TotpSeed, t: UnixTime) -> String {
    let step = u64::try_from(t.div_euclid(PERIOD_SECS)).unwrap_or(0);
    hotp(seed.expose(), step, DIGITS)
}

/// Splits a base32 secret into space-separated groups of four characters for manual entry.
pub fn group_secret(secret: &str) -> String {
    let mut out = String::with_capacity(secret.len() + secret.len() / 4);
    for (i, c) in secret.chars().enumerate() {
        if i > 0 && i % 4 == 0 {
            out.push(' ');
        }
        out.push(c);
    }
    out
}

impl Totp {
    /// A TOTP factor for `account` (e.g. the user name) under `issuer` (the configured `mfa.issuer`).
    pub fn new(seed: TotpSeed, issuer: impl Into<String>, account: impl Into<String>) -> Self {
        Self {
            seed,
            issuer: issuer.into(),
            account: account.into(),
        }
    }

    /// Checks `code` at time `now`, accepting the current step and one step either side.
    ///
    /// Returns the matched step, which the caller must store (conditionally, only if it is still
    /// greater than the stored one) before treating the factor as verified. Refuses anything that is
    /// not exactly six ASCII digits, a wrong code, and a step at or below `last_used_step`.
    pub fn verify(
        &self,
        code: &str,
        now: UnixTime,
        last_used_step: Option<u64>,
    ) -> Result<TotpStep, MfaError> {
        if code.len() != DIGITS as usize || !code.bytes().all(|b| b.is_ascii_digit()) {
            return Err(MfaError::MalformedCode);
        }
        // A clock before 1970 matches nothing: fail closed.
        let current =
            u64::try_from(now.div_euclid(PERIOD_SECS)).map_err(|_| MfaError::WrongCode)?;
        let first = current.saturating_sub(DRIFT_STEPS);
        let last = current.saturating_add(DRIFT_STEPS);

        // Every candidate is computed and compared, without an early exit, so the timing does not
        // reveal which step matched. On a (1-in-10^6) collision the latest step wins.
        let mut matched = None;
        for step in first..=last {
            let expected = hotp(self.seed.expose(), step, DIGITS);
            if ct_eq(expected.as_bytes(), code.as_bytes()) {
                matched = Some(step);
            }
        }
        let step = matched.ok_or(MfaError::WrongCode)?;
        // Single use per time step (DESIGN.md §6): a replay within the window is refused.
        if last_used_step.is_some_and(|used| step <= used) {
            return Err(MfaError::CodeReused);
        }
        Ok(TotpStep(step))
    }

    /// The seed in RFC 4648 base32 without padding, as typed into an authenticator app.
    pub fn secret_base32(&self) -> String {
        base32_encode(self.seed.expose())
    }

    /// The Key Uri Format URI for QR codes:
    /// `otpauth://totp/Issuer:account?secret=…&issuer=Issuer&algorithm=SHA1&digits=6&period=30`.
    pub fn otpauth_uri(&self) -> String {
        let issuer = utf8_percent_encode(&self.issuer, URI_COMPONENT);
        let account = utf8_percent_encode(&self.account, URI_COMPONENT);
        format!(
            "otpauth://totp/{issuer}:{account}?secret={}&issuer={issuer}&algorithm=SHA1&digits={DIGITS}&period={PERIOD_SECS}",
            self.secret_base32()
        )
    }
}

/// RFC 4226 §5.3 HOTP value for `counter`, zero-padded to `digits` (at most 9) digits.
fn hotp(key: &[u8], counter: u64, digits: u32) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, key);
    let tag = hmac::sign(&key, &counter.to_be_bytes());
    let mac = tag.as_ref();
    // Dynamic truncation: the low nibble of the last byte picks a 4-byte window. The offset is at
    // most 15 and the MAC is 20 bytes, so the window is always complete.
    let offset = usize::from(mac.last().copied().unwrap_or(0) & 0x0f);
    let window = mac
        .iter()
        .skip(offset)
        .take(4)
        .fold(0u32, |acc, &b| (acc << 8) | u32::from(b));
    let binary = window & 0x7fff_ffff;
    let digits = digits.min(9);
    let modulus = 10u32.pow(digits);
    format!("{:0width$}", binary % modulus, width = digits as usize)
}

/// RFC 4648 §6 base32 (upper case), without `=` padding.
fn base32_encode(data: &[u8]) -> String {
    const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut out = String::with_capacity(data.len().div_ceil(5) * 8);
    let mut buffer: u32 = 0;
    let mut bits: u32 = 0;
    for &byte in data {
        buffer = (buffer << 8) | u32::from(byte);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            let index = ((buffer >> bits) & 0x1f) as usize;
            out.extend(ALPHABET.get(index).map(|&c| char::from(c)));
        }
        buffer &= (1 << bits) - 1;
    }
    if bits > 0 {
        let index = ((buffer << (5 - bits)) & 0x1f) as usize;
        out.extend(ALPHABET.get(index).map(|&c| char::from(c)));
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    /// The RFC 6238 Appendix B SHA-1 seed: ASCII "12345678901234567890".
    fn rfc_seed() -> TotpSeed {
        TotpSeed::new(b"12345678901234567890".to_vec())
    }

    fn rfc_totp() -> Totp {
        Totp::new(rfc_seed(), "Helpdesk", "alice@example.com")
    }

    #[test]
    fn generator_matches_rfc_6238_appendix_b_sha1_vectors() {
        let vectors: [(i64, &str); 6] = [
            (59, "94287082"),
            (1_111_111_109, "07081804"),
            (1_111_111_111, "14050471"),
            (1_234_567_890, "89005924"),
            (2_000_000_000, "69279037"),
            (20_000_000_000, "65353130"),
        ];
        for (t, expected) in vectors {
            let step = u64::try_from(t / PERIOD_SECS).unwrap();
            assert_eq!(hotp(rfc_seed().expose(), step, 8), expected, "t = {t}");
            assert_eq!(code_at(&rfc_seed(), t), expected[2..], "t = {t}");
        }
    }

    #[test]
    fn generator_matches_rfc_4226_appendix_d_hotp_vectors() {
        let expected = [
            "755224", "287082", "359152", "969429", "338314", "254676", "287922", "162583",
            "399871", "520489",
        ];
        for (counter, code) in (0u64..).zip(expected) {
            assert_eq!(hotp(rfc_seed().expose(), counter, 6), code);
        }
    }

    #[test]
    fn code_for_the_current_step_is_accepted_and_its_step_returned() {
        assert_eq!(
            rfc_totp().verify("287082", 59, None),
            Ok(TotpStep(1)),
            "RFC vector 94287082 truncated to six digits"
        );
    }

    #[test]
    fn codes_one_step_either_side_are_accepted_but_not_two() {
        let totp = rfc_totp();
        let now = 1_234_567_890;
        let step = u64::try_from(now / PERIOD_SECS).unwrap();
        let at = |s: u64| code_at(&rfc_seed(), i64::try_from(s).unwrap() * PERIOD_SECS);
        assert_eq!(
            totp.verify(&at(step - 1), now, None),
            Ok(TotpStep(step - 1))
        );
        assert_eq!(
            totp.verify(&at(step + 1), now, None),
            Ok(TotpStep(step + 1))
        );
        assert_eq!(
            totp.verify(&at(step - 2), now, None),
            Err(MfaError::WrongCode)
        );
        assert_eq!(
            totp.verify(&at(step + 2), now, None),
            Err(MfaError::WrongCode)
        );
    }

    #[test]
    fn totp_code_is_rejected_when_reused_in_same_step() {
        let totp = rfc_totp();
        let now = 1_111_111_111;
        let code = code_at(&rfc_seed(), now);
        let step = totp.verify(&code, now, None).unwrap();
        assert_eq!(
            totp.verify(&code, now, Some(step.0)),
            Err(MfaError::CodeReused)
        );
        assert_eq!(
            totp.verify(&code, now + 15, Some(step.0)),
            Err(MfaError::CodeReused)
        );
    }

    #[test]
    fn an_older_code_is_rejected_once_a_later_step_was_used() {
        let totp = rfc_totp();
        let now = 1_111_111_111;
        let previous = code_at(&rfc_seed(), now - PERIOD_SECS);
        let current_step = u64::try_from(now / PERIOD_SECS).unwrap();
        assert_eq!(
            totp.verify(&previous, now, Some(current_step)),
            Err(MfaError::CodeReused)
        );
        let next_step_code = code_at(&rfc_seed(), now + PERIOD_SECS);
        assert_eq!(
            totp.verify(&next_step_code, now + PERIOD_SECS, Some(current_step)),
            Ok(TotpStep(current_step + 1))
        );
    }

    #[test]
    fn wrong_code_is_rejected() {
        let now = 1_111_111_111;
        let good = code_at(&rfc_seed(), now);
        let bad = if good == "000000" { "000001" } else { "000000" };
        assert_eq!(rfc_totp().verify(bad, now, None), Err(MfaError::WrongCode));
    }

    #[test]
    fn codes_that_are_not_exactly_six_ascii_digits_are_malformed() {
        let totp = rfc_totp();
        for code in [
            "",
            "28708",
            "2870822",
            " 287082",
            "287082 ",
            "287 082",
            "28708a",
            "２８７０８２",
            "-28708",
            "+28708",
        ] {
            assert_eq!(
                totp.verify(code, 59, None),
                Err(MfaError::MalformedCode),
                "{code:?}"
            );
        }
    }

    #[test]
    fn a_clock_before_the_epoch_matches_nothing() {
        assert_eq!(
            rfc_totp().verify("287082", -1, None),
            Err(MfaError::WrongCode)
        );
    }

    #[test]
    fn base32_matches_rfc_4648_vectors() {
        let vectors = [
            ("", ""),
            ("f", "MY"),
            ("fo", "MZXQ"),
            ("foo", "MZXW6"),
            ("foob", "MZXW6YQ"),
            ("fooba", "MZXW6YTB"),
            ("foobar", "MZXW6YTBOI"),
        ];
        for (input, expected) in vectors {
            assert_eq!(base32_encode(input.as_bytes()), expected);
        }
    }

    #[test]
    fn secret_base32_encodes_the_seed() {
        assert_eq!(
            rfc_totp().secret_base32(),
            "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"
        );
    }

    #[test]
    fn otpauth_uri_carries_every_parameter_percent_encoded() {
        let totp = Totp::new(rfc_seed(), "Help Desk & Co", "alice+1@example.com");
        assert_eq!(
            totp.otpauth_uri(),
            "otpauth://totp/Help%20Desk%20%26%20Co:alice%2B1%40example.com\
             ?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&issuer=Help%20Desk%20%26%20Co\
             &algorithm=SHA1&digits=6&period=30"
        );
    }

    #[test]
    fn otpauth_uri_cannot_break_out_of_the_label_or_query() {
        let totp = Totp::new(rfc_seed(), "a:b?c#d\"<e>", "x&y=z/\u{e9}");
        let uri = totp.otpauth_uri();
        assert_eq!(
            uri,
            "otpauth://totp/a%3Ab%3Fc%23d%22%3Ce%3E:x%26y%3Dz%2F%C3%A9\
             ?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&issuer=a%3Ab%3Fc%23d%22%3Ce%3E\
             &algorithm=SHA1&digits=6&period=30"
        );
    }

    #[test]
    fn group_secret_splits_into_groups_of_four() {
        assert_eq!(group_secret("ABCDEFGHIJ"), "ABCD EFGH IJ");
        assert_eq!(group_secret("ABCD"), "ABCD");
        assert_eq!(group_secret(""), "");
    }

    #[test]
    fn generated_seeds_are_twenty_random_bytes() {
        let a = generate_seed();
        let b = generate_seed();
        assert_eq!(a.expose().len(), SEED_BYTES);
        assert_ne!(a.expose(), b.expose());
    }

    #[test]
    fn debug_output_hides_the_seed() {
        let shown = format!("{:?}", rfc_totp());
        assert!(!shown.contains("1234567890"), "{shown}");
        assert!(shown.contains("TotpSeed(<redacted>)"), "{shown}");
    }
}
