//! Native-user passwords: argon2id hashing (OWASP parameters), verification and generation.
//! Unknown users and malformed hashes cost the same argon2 work as a real check and never verify.

use std::sync::OnceLock;

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};

use crate::mfa::{fill_random, random_string};
use crate::secret::Password;

/// Memory cost in KiB (OWASP Password Storage Cheat Sheet: m=19456 KiB, t=2, p=1).
pub const MEMORY_KIB: u32 = 19_456;
/// Iterations.
pub const ITERATIONS: u32 = 2;
/// Lanes.
pub const PARALLELISM: u32 = 1;

/// Upper bounds on the parameters a stored hash may ask for; larger ones are refused so that a
/// planted hash cannot make one login allocate gigabytes.
const MAX_MEMORY_KIB: u32 = 262_144;
const MAX_ITERATIONS: u32 = 16;
const MAX_PARALLELISM: u32 = 8;

/// Characters of generated passwords: letters and digits without look-alikes (`0 O 1 I l o`).
const GENERATED_ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnpqrstuvwxyz23456789";
/// Length of generated passwords: 20 symbols from 56, about 116 bits.
const GENERATED_LEN: usize = 20;

/// Why a password could not be hashed.
#[derive(Debug, thiserror::Error)]
pub enum PasswordError {
    /// argon2 refused the parameters or the input (for example an over-long password).
    #[error("password hashing failed: {0}")]
    Hashing(argon2::password_hash::Error),
}

fn hasher() -> Result<Argon2<'static>, PasswordError> {
    let params = Params::new(MEMORY_KIB, ITERATIONS, PARALLELISM, None)
        .map_err(|e| PasswordError::Hashing(e.into()))?;
    Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
}

/// Shortest password a user may choose or an admin may set.
pub const MIN_PASSWORD_CHARS: usize = 8;

/// Hashes `password` with argon2id and a fresh 128-bit salt; returns the PHC string to store.
/// Costs tens of milliseconds of CPU: call it from a blocking task, not directly on the runtime.
pub fn hash_password(password: &Password) -> Result<String, PasswordError> {
    let mut salt = [0u8; 16];
    fill_random(&mut salt);
    let salt = SaltString::encode_b64(&salt).map_err(PasswordError::Hashing)?;
    let hash = hasher()?
        .hash_password(password.expose().as_bytes(), &salt)
        .map_err(PasswordError::Hashing)?;
    Ok(hash.to_string())
}

/// A hash of a fixed password with the production parameters, computed once. Unknown users are
/// checked against it so that they cost the same time as known ones (DESIGN.md §6).
fn dummy_phc() -> Option<&'static str> {
    static DUMMY: OnceLock<Option<String>> = OnceLock::new();
    DUMMY
        .get_or_init(|| hash_password(&Password::new("portcullis-dummy-password".to_owned())).ok())
        .as_deref()
}

/// Checks `password` against the stored PHC string; `None` means the user does not exist.
///
/// Returns true only for a matching argon2id hash. An unknown user or a malformed or unacceptable
/// stored hash still runs one argon2 verification (against a dummy hash) and returns false, so the
/// answer and its timing do not tell those cases from a wrong password. Never panics.
pub fn verify_password(password: &Password, phc: Option<&str>) -> bool {
    let stored = phc
        .and_then(|s| PasswordHash::new(s).ok())
        .filter(acceptable);
    match stored {
        Some(hash) => check(password, &hash),
        None => {
            // Fail closed: the dummy check is only there to spend the same time.
            if let Some(hash) = dummy_phc().and_then(|s| PasswordHash::new(s).ok()) {
                let _ = check(password, &hash);
            }
            false
        }
    }
}

fn check(password: &Password, hash: &PasswordHash<'_>) -> bool {
    // The output comparison inside password-hash is constant time.
    Argon2::default()
        .verify_password(password.expose().as_bytes(), hash)
        .is_ok()
}

/// Only argon2id hashes with bounded costs are verified; anything else is treated as malformed.
fn acceptable(hash: &PasswordHash<'_>) -> bool {
    if hash.algorithm != argon2::ARGON2ID_IDENT {
        return false;
    }
    Params::try_from(hash).is_ok_and(|p| {
        p.m_cost() <= MAX_MEMORY_KIB
            && p.t_cost() <= MAX_ITERATIONS
            && p.p_cost() <= MAX_PARALLELISM
    })
}

/// A new random password (20 characters, about 116 bits) for accounts created without one.
pub fn generate_password() -> Password {
    Password::new(random_string(GENERATED_ALPHABET, GENERATED_LEN))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    fn pw(s: &str) -> Password {
        Password::new(s.to_owned())
    }

    #[test]
    fn hashes_are_argon2id_phc_strings_with_owasp_parameters() {
        let phc = hash_password(&pw("correct horse")).unwrap();
        assert!(phc.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{phc}");
        assert_ne!(
            phc,
            hash_password(&pw("correct horse")).unwrap(),
            "salts differ"
        );
    }

    #[test]
    fn the_right_password_verifies() {
        let phc = hash_password(&pw("correct horse")).unwrap();
        assert!(verify_password(&pw("correct horse"), Some(&phc)));
    }

    #[test]
    fn a_wrong_password_fails() {
        let phc = hash_password(&pw("correct horse")).unwrap();
        assert!(!verify_password(&pw("correct horsf"), Some(&phc)));
        assert!(!verify_password(&pw(""), Some(&phc)));
    }

    #[test]
    fn an_unknown_user_never_verifies() {
        assert!(dummy_phc().is_some());
        assert!(!verify_password(&pw("portcullis-dummy-password"), None));
        assert!(!verify_password(&pw("anything"), None));
    }

    #[test]
    fn malformed_or_unacceptable_stored_hashes_fail_without_panicking() {
        // A valid argon2i hash (cheap parameters): well formed, but not the algorithm we store.
        let cheap = Params::new(8, 1, 1, None).unwrap();
        let argon2i = Argon2::new(Algorithm::Argon2i, Version::V0x13, cheap)
            .hash_password(b"pw", &SaltString::encode_b64(&[7u8; 16]).unwrap())
            .unwrap()
            .to_string();
        assert!(Argon2::default()
            .verify_password(b"pw", &PasswordHash::new(&argon2i).unwrap())
            .is_ok());
        for stored in [
            "",
            "not a hash",
            "$argon2id$v=19$m=19456,t=2,p=1$",
            "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$",
            "$argon2id$v=19$m=99999999,t=2,p=1$c2FsdHNhbHRzYWx0$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
            "$argon2id$v=19$m=8,t=99,p=1$c2FsdHNhbHRzYWx0$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
            "$2b$12$R9h/cIPz0gi.URNNX3kh2OPST9/PgBkqquzi.Ss7KIUgO2t0jWMUW",
            &argon2i,
        ] {
            assert!(!verify_password(&pw("pw"), Some(stored)), "{stored:?}");
        }
    }

    /// CPU time of the calling thread (Linux `schedstat`, nanoseconds), which unlike wall time does
    /// not grow when other tests or builds take the cores; `None` elsewhere.
    fn thread_cpu_time() -> Option<Duration> {
        let stat = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
        let nanos = stat.split_whitespace().next()?.parse().ok()?;
        Some(Duration::from_nanos(nanos))
    }

    #[test]
    fn unknown_user_verification_takes_about_as_long_as_a_real_one() {
        let phc = hash_password(&pw("correct horse")).unwrap();
        let _ = dummy_phc(); // initialise outside the measurement
        let time = |f: &dyn Fn() -> bool| {
            let (wall, cpu) = (Instant::now(), thread_cpu_time());
            assert!(!f());
            match (cpu, thread_cpu_time()) {
                (Some(before), Some(after)) => after.saturating_sub(before),
                _ => wall.elapsed(),
            }
        };
        // Interleaved runs, keeping the fastest of each, to damp noise from a shared machine.
        let (mut known, mut unknown) = (Duration::MAX, Duration::MAX);
        for _ in 0..3 {
            known = known.min(time(&|| verify_password(&pw("wrong"), Some(&phc))));
            unknown = unknown.min(time(&|| verify_password(&pw("wrong"), None)));
        }
        let ratio = unknown.as_secs_f64() / known.as_secs_f64();
        assert!(
            (0.5..2.0).contains(&ratio),
            "known {known:?}, unknown {unknown:?}"
        );
    }

    #[test]
    fn generated_passwords_are_20_unambiguous_characters_and_differ() {
        let a = generate_password();
        let b = generate_password();
        assert_eq!(a.expose().len(), 20);
        assert!(a.expose().bytes().all(|c| GENERATED_ALPHABET.contains(&c)));
        assert!(!a.ct_eq(b.expose()));
        for ambiguous in ['0', 'O', '1', 'I', 'l', 'o'] {
            assert!(!GENERATED_ALPHABET.contains(&(ambiguous as u8)));
        }
    }

    #[test]
    fn generated_passwords_round_trip_through_hashing() {
        let p = generate_password();
        let phc = hash_password(&p).unwrap();
        assert!(verify_password(&p, Some(&phc)));
    }
}
