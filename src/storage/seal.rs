//! Sealing of secrets at rest (TOTP seeds) with AES-256-GCM, and loading of the 32-byte data key.
//! Sealed bytes are `version ‖ nonce ‖ ciphertext+tag`; the caller's AAD (a user or factor id) is bound
//! in, so a sealed value opens only under the same key, version and AAD.

use std::io::Write;
use std::path::{Path, PathBuf};

use base64::Engine;
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use zeroize::Zeroizing;

use crate::mfa::fill_random;
use crate::secret::DataKey;

/// Length of a data key in bytes.
pub const KEY_LEN: usize = 32;
/// First byte of every sealed value; bumped if the format ever changes.
const VERSION: u8 = 1;
/// AES-GCM tag length.
const TAG_LEN: usize = 16;

/// Why a key could not be loaded or a value could not be sealed or opened.
#[derive(Debug, thiserror::Error)]
pub enum SealError {
    /// The key is not 64 hex characters or standard base64 of exactly 32 bytes.
    #[error("encryption key must be 32 bytes as 64 hex characters or standard base64")]
    BadKey,
    /// The key file can be read by its group or by others.
    #[error(
        "key file {path} has mode {mode:o}; it must not be group or world accessible (chmod 600)"
    )]
    KeyFilePermissions {
        /// The key file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// The key file or its directory could not be read or written.
    #[error("key file {path}: {source}")]
    KeyFileIo {
        /// The key file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// Encryption failed (not expected with a valid key).
    #[error("sealing failed")]
    Seal,
    /// The sealed value is truncated, has an unknown version, was tampered with, or belongs to
    /// another key or AAD. Deliberately one variant: the reason is not revealed.
    #[error("sealed value could not be opened")]
    Open,
}

/// Parses a configured key: 64 hex characters, or standard base64 (with padding) of 32 bytes.
/// Surrounding whitespace is ignored.
pub fn parse_key(s: &str) -> Result<DataKey, SealError> {
    let s = s.trim();
    let bytes = if s.len() == 2 * KEY_LEN && s.bytes().all(|b| b.is_ascii_hexdigit()) {
        decode_hex(s).ok_or(SealError::BadKey)?
    } else {
        Zeroizing::new(
            base64::engine::general_purpose::STANDARD
                .decode(s)
                .map_err(|_| SealError::BadKey)?,
        )
    };
    if bytes.len() != KEY_LEN {
        return Err(SealError::BadKey);
    }
    Ok(DataKey::new(bytes.to_vec()))
}

fn decode_hex(s: &str) -> Option<Zeroizing<Vec<u8>>> {
    let nibble = |c: u8| {
        char::from(c)
            .to_digit(16)
            .and_then(|d| u8::try_from(d).ok())
    };
    let mut out = Zeroizing::new(Vec::with_capacity(s.len() / 2));
    for pair in s.as_bytes().chunks_exact(2) {
        let (hi, lo) = match pair {
            [hi, lo] => (nibble(*hi)?, nibble(*lo)?),
            _ => return None,
        };
        out.push((hi << 4) | lo);
    }
    Some(out)
}

fn encode_hex(bytes: &[u8]) -> Zeroizing<String> {
    use std::fmt::Write as _;
    let mut out = Zeroizing::new(String::with_capacity(bytes.len() * 2));
    for b in bytes {
        let _ = write!(out, "{b:02x}");
    }
    out
}

/// A fresh random 32-byte key from the operating system's CSPRNG.
pub fn generate_key() -> DataKey {
    let mut key = vec![0u8; KEY_LEN];
    fill_random(&mut key);
    DataKey::new(key)
}

/// Reads the key in `path`, or creates it (mode 0600, parent directories 0700) with a new key.
///
/// An existing file readable by group or others is refused. Creating a key logs a warning: data
/// sealed with it is lost if the file is lost, so production should configure a key explicitly.
pub fn load_or_create_key_file(path: &Path) -> Result<DataKey, SealError> {
    let io = |source| SealError::KeyFileIo {
        path: path.to_path_buf(),
        source,
    };
    match std::fs::metadata(path) {
        Ok(_) => read_key_file(path),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => match create_key_file(path) {
            Ok(key) => Ok(key),
            // Another process created it between our two calls: use theirs.
            Err(SealError::KeyFileIo { source, .. })
                if source.kind() == std::io::ErrorKind::AlreadyExists =>
            {
                read_key_file(path)
            }
            Err(e) => Err(e),
        },
        Err(e) => Err(io(e)),
    }
}

/// Checks the key file `load_or_create_key_file` would use, without creating it: `Ok(false)`
/// when it does not exist yet (it will be generated), an error when it exists but would be
/// refused (readable by others, not a key).
pub fn check_key_file(path: &Path) -> Result<bool, SealError> {
    match std::fs::metadata(path) {
        Ok(_) => read_key_file(path).map(|_| true),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(source) => Err(SealError::KeyFileIo {
            path: path.to_path_buf(),
            source,
        }),
    }
}

fn read_key_file(path: &Path) -> Result<DataKey, SealError> {
    let io = |source| SealError::KeyFileIo {
        path: path.to_path_buf(),
        source,
    };
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(path).map_err(io)?.permissions().mode();
        // Fail closed: a key others can read protects nothing.
        if mode & 0o077 != 0 {
            return Err(SealError::KeyFilePermissions {
                path: path.to_path_buf(),
                mode: mode & 0o7777,
            });
        }
    }
    let text = Zeroizing::new(std::fs::read_to_string(path).map_err(io)?);
    parse_key(&text)
}

fn create_key_file(path: &Path) -> Result<DataKey, SealError> {
    let io = |source| SealError::KeyFileIo {
        path: path.to_path_buf(),
        source,
    };
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        let mut builder = std::fs::DirBuilder::new();
        builder.recursive(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::DirBuilderExt;
            builder.mode(0o700);
        }
        builder.create(parent).map_err(io)?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path).map_err(io)?;
    let key = generate_key();
    let mut text = encode_hex(key.expose());
    text.push('\n');
    if let Err(e) = file
        .write_all(text.as_bytes())
        .and_then(|()| file.sync_all())
    {
        // Do not leave a truncated key behind for the next start to trip over.
        drop(file);
        let _ = std::fs::remove_file(path);
        return Err(io(e));
    }
    tracing::warn!(
        path = %path.display(),
        "generated a new storage encryption key; back up this file or configure storage.encryption_key"
    );
    Ok(key)
}

/// Seals and opens values with one data key (AES-256-GCM, random 96-bit nonces).
pub struct Sealer {
    key: LessSafeKey,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sealer(<redacted>)")
    }
}

impl Sealer {
    /// A sealer for `key`, which must be 32 bytes.
    pub fn new(key: &DataKey) -> Result<Self, SealError> {
        let unbound = UnboundKey::new(&AES_256_GCM, key.expose()).map_err(|_| SealError::BadKey)?;
        Ok(Self {
            key: LessSafeKey::new(unbound),
        })
    }

    /// Encrypts `plaintext`, binding `aad` (e.g. the user or factor id) and the format version.
    /// Random nonces are safe up to about 2^32 values per key, far beyond the number of seeds.
    pub fn seal(&self, plaintext: &[u8], aad: &[u8]) -> Result<Vec<u8>, SealError> {
        let mut nonce = [0u8; NONCE_LEN];
        fill_random(&mut nonce);
        let mut out = Vec::with_capacity(1 + NONCE_LEN + plaintext.len() + TAG_LEN);
        out.push(VERSION);
        out.extend_from_slice(&nonce);
        let mut in_out = plaintext.to_vec();
        self.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(bound_aad(aad)),
                &mut in_out,
            )
            .map_err(|_| SealError::Seal)?;
        out.extend_from_slice(&in_out);
        Ok(out)
    }

    /// Decrypts a value made by [`Sealer::seal`] with the same key and `aad`. Any truncation,
    /// tampering, unknown version, other key or other AAD gives [`SealError::Open`].
    pub fn open(&self, sealed: &[u8], aad: &[u8]) -> Result<Vec<u8>, SealError> {
        let (&version, rest) = sealed.split_first().ok_or(SealError::Open)?;
        if version != VERSION || rest.len() < NONCE_LEN + TAG_LEN {
            return Err(SealError::Open);
        }
        let (nonce, ciphertext) = rest.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| SealError::Open)?;
        let mut in_out = Zeroizing::new(ciphertext.to_vec());
        let plaintext = self
            .key
            .open_in_place(nonce, Aad::from(bound_aad(aad)), &mut in_out)
            .map_err(|_| SealError::Open)?;
        Ok(plaintext.to_vec())
    }
}

/// The AAD given to AES-GCM: the version byte followed by the caller's AAD.
fn bound_aad(aad: &[u8]) -> Vec<u8> {
    let mut bound = Vec::with_capacity(1 + aad.len());
    bound.push(VERSION);
    bound.extend_from_slice(aad);
    bound
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    fn sealer() -> Sealer {
        Sealer::new(&generate_key()).unwrap()
    }

    fn temp_dir(name: &str) -> PathBuf {
        let mut suffix = [0u8; 8];
        fill_random(&mut suffix);
        let dir = std::env::temp_dir().join(format!(
            "portcullis-seal-{name}-{}",
            encode_hex(&suffix).as_str()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn sealed_values_open_to_the_original() {
        let s = sealer();
        let sealed = s.seal(b"totp seed bytes", b"user:42").unwrap();
        assert_eq!(sealed.len(), 1 + 12 + 15 + 16);
        assert_eq!(sealed[0], 1);
        assert_eq!(s.open(&sealed, b"user:42").unwrap(), b"totp seed bytes");
        assert_eq!(s.open(&s.seal(b"", b"").unwrap(), b"").unwrap(), b"");
    }

    #[test]
    fn sealing_twice_gives_different_bytes() {
        let s = sealer();
        assert_ne!(s.seal(b"x", b"a").unwrap(), s.seal(b"x", b"a").unwrap());
    }

    #[test]
    fn a_tampered_value_does_not_open() {
        let s = sealer();
        let sealed = s.seal(b"totp seed bytes", b"user:42").unwrap();
        for i in 0..sealed.len() {
            let mut bad = sealed.clone();
            bad[i] ^= 0x01;
            assert!(
                matches!(s.open(&bad, b"user:42"), Err(SealError::Open)),
                "byte {i}"
            );
        }
        for len in 0..sealed.len() {
            assert!(matches!(
                s.open(&sealed[..len], b"user:42"),
                Err(SealError::Open)
            ));
        }
    }

    #[test]
    fn a_sealed_seed_cannot_be_moved_to_another_user() {
        let s = sealer();
        let sealed = s.seal(b"seed", b"user:42").unwrap();
        assert!(matches!(s.open(&sealed, b"user:43"), Err(SealError::Open)));
        assert!(matches!(s.open(&sealed, b""), Err(SealError::Open)));
    }

    #[test]
    fn a_value_sealed_under_another_key_does_not_open() {
        let sealed = sealer().seal(b"seed", b"user:42").unwrap();
        assert!(matches!(
            sealer().open(&sealed, b"user:42"),
            Err(SealError::Open)
        ));
    }

    #[test]
    fn keys_parse_from_hex_and_standard_base64() {
        let hex = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1F";
        let expected: Vec<u8> = (0u8..32).collect();
        assert_eq!(parse_key(hex).unwrap().expose(), expected.as_slice());
        assert_eq!(
            parse_key(&format!("  {hex}\n")).unwrap().expose(),
            expected.as_slice()
        );
        let b64 = base64::engine::general_purpose::STANDARD.encode(&expected);
        assert_eq!(b64, "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=");
        assert_eq!(parse_key(&b64).unwrap().expose(), expected.as_slice());
    }

    #[test]
    fn bad_keys_are_refused() {
        for bad in [
            "",
            "00",
            "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e",
            "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f00",
            "g00102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1",
            "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHg==",
            "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8gIQ==",
            "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8",
            "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh-=",
            "not a key at all",
        ] {
            assert!(matches!(parse_key(bad), Err(SealError::BadKey)), "{bad:?}");
        }
    }

    #[test]
    fn a_sealer_refuses_a_short_key() {
        let short = DataKey::new(vec![0u8; 16]);
        assert!(matches!(Sealer::new(&short), Err(SealError::BadKey)));
    }

    #[test]
    fn a_missing_key_file_is_created_with_mode_0600_and_then_reused() {
        let dir = temp_dir("create");
        let path = dir.join("nested").join("data.key");
        let created = load_or_create_key_file(&path).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.len(), 65, "64 hex characters and a newline");
        assert_eq!(parse_key(&text).unwrap().expose(), created.expose());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
            let dir_mode = std::fs::metadata(path.parent().unwrap())
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(dir_mode & 0o077, 0);
        }
        let loaded = load_or_create_key_file(&path).unwrap();
        assert_eq!(loaded.expose(), created.expose());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[cfg(unix)]
    #[test]
    fn a_key_file_readable_by_others_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = temp_dir("mode");
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("data.key");
        std::fs::write(&path, "00".repeat(32)).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = load_or_create_key_file(&path).unwrap_err();
        assert!(
            matches!(err, SealError::KeyFilePermissions { mode: 0o644, .. }),
            "{err:?}"
        );
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(load_or_create_key_file(&path).unwrap().expose(), &[0u8; 32]);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_key_file_with_garbage_is_refused() {
        let dir = temp_dir("garbage");
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("data.key");
        {
            let mut options = std::fs::OpenOptions::new();
            options.write(true).create_new(true);
            #[cfg(unix)]
            {
                use std::os::unix::fs::OpenOptionsExt;
                options.mode(0o600);
            }
            options.open(&path).unwrap().write_all(b"garbage").unwrap();
        }
        assert!(matches!(
            load_or_create_key_file(&path),
            Err(SealError::BadKey)
        ));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn debug_output_hides_the_key() {
        assert_eq!(format!("{:?}", sealer()), "Sealer(<redacted>)");
    }
}
