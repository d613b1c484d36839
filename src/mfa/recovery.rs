//! Recovery codes: generation (about 89 bits each), normalisation of what users type, and hashing.
//! Codes are shown once and only their hashes are stored; single use and expiry live in the user store.

use super::{random_string, sha256_hex};
use crate::secret::RecoveryCode;

/// Lowercase letters and digits without the look-alikes `0 o 1 i l` (31 symbols, ~4.95 bits each).
pub const ALPHABET: &[u8] = b"23456789abcdefghjkmnpqrstuvwxyz";
/// Symbols per group.
const GROUP_LEN: usize = 6;
/// Groups per code. 18 symbols from 31 give 18 * log2(31) ≈ 89.2 bits (DESIGN: at least 80).
const GROUPS: usize = 3;
/// Symbols in a normalised code (dashes and spaces removed).
pub const CODE_LEN: usize = GROUP_LEN * GROUPS;

/// Generates `n` fresh recovery codes shaped `xxxxxx-xxxxxx-xxxxxx`.
pub fn generate_codes(n: usize) -> Vec<RecoveryCode> {
    (0..n)
        .map(|_| {
            let groups: Vec<String> = (0..GROUPS)
                .map(|_| random_string(ALPHABET, GROUP_LEN))
                .collect();
            RecoveryCode::new(groups.join("-"))
        })
        .collect()
}

/// Normalises a typed code: lowercase, spaces and dashes removed. `None` when the result does not
/// have exactly [`CODE_LEN`] symbols of [`ALPHABET`]; refuse such input before any lookup.
pub fn normalise(input: &str) -> Option<String> {
    let code = strip(input);
    (code.len() == CODE_LEN && code.bytes().all(|b| ALPHABET.contains(&b))).then_some(code)
}

/// The stored form of a code: lowercase hex SHA-256 of its normalised text.
///
/// A fast, unsalted hash is enough here: codes carry about 89 bits of entropy, so a leaked hash
/// cannot be brute-forced, unlike a password. Input is normalised the same way as [`normalise`]
/// (without the shape check), so `hash_code("ABCDEF-…")` equals the hash of the generated code.
pub fn hash_code(code: &str) -> String {
    sha256_hex(strip(code).as_bytes())
}

/// Lowercases and removes spaces and dashes.
fn strip(input: &str) -> String {
    input
        .chars()
        .filter(|c| !matches!(c, ' ' | '-' | '\t'))
        .flat_map(char::to_lowercase)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn generated_codes_have_three_groups_of_six_from_the_alphabet() {
        let codes = generate_codes(10);
        assert_eq!(codes.len(), 10);
        for code in &codes {
            let groups: Vec<&str> = code.expose().split('-').collect();
            assert_eq!(groups.len(), 3, "{}", code.expose());
            for g in groups {
                assert_eq!(g.len(), 6);
                assert!(g.bytes().all(|b| ALPHABET.contains(&b)), "{g}");
            }
        }
    }

    #[test]
    fn generated_codes_carry_at_least_80_bits() {
        let bits = CODE_LEN as f64 * (ALPHABET.len() as f64).log2();
        assert!(bits >= 80.0, "{bits}");
        let unique: HashSet<u8> = ALPHABET.iter().copied().collect();
        assert_eq!(unique.len(), ALPHABET.len());
    }

    #[test]
    fn generated_codes_are_unique() {
        let codes = generate_codes(1_000);
        let unique: HashSet<&str> = codes.iter().map(RecoveryCode::expose).collect();
        assert_eq!(unique.len(), 1_000);
    }

    #[test]
    fn generated_codes_normalise_to_themselves_without_dashes() {
        for code in generate_codes(20) {
            assert_eq!(
                normalise(code.expose()),
                Some(code.expose().replace('-', ""))
            );
        }
    }

    #[test]
    fn normalise_accepts_upper_case_spaces_and_missing_dashes() {
        let expected = Some("abcdefghjkmn234567".to_owned());
        assert_eq!(normalise("abcdef-ghjkmn-234567"), expected);
        assert_eq!(normalise("ABCDEF-GHJKMN-234567"), expected);
        assert_eq!(normalise(" abcdef ghjkmn 234567 "), expected);
        assert_eq!(normalise("abcdefghjkmn234567"), expected);
    }

    #[test]
    fn normalise_rejects_wrong_length_or_alphabet() {
        for bad in [
            "",
            "abcdef-ghjkmn-23456",
            "abcdef-ghjkmn-2345678",
            "abcdef-ghjkmn-23456o",
            "abcdef-ghjkmn-23456l",
            "abcdef-ghjkmn-234561",
            "abcdef-ghjkmn-23456_",
            "abcdef-ghjkmn-23456\u{e9}",
            "abcdef\u{0}ghjkmn234567",
        ] {
            assert_eq!(normalise(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn hash_code_is_the_sha256_of_the_normalised_code() {
        let h = hash_code("ABCDEF-ghjkmn 234567");
        assert_eq!(h, sha256_hex(b"abcdefghjkmn234567"));
        assert_eq!(h, hash_code("abcdefghjkmn234567"));
        assert_eq!(h.len(), 64);
        assert_ne!(h, hash_code("abcdef-ghjkmn-234568"));
    }
}
