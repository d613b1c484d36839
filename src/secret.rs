//! Newtypes for secret values: zeroized on drop, `Debug` prints `<redacted>`, no `Display`,
//! `Serialize` or `PartialEq`. Read them through `.expose()`; compare them with `ct_eq`.

use subtle::ConstantTimeEq;
use zeroize::Zeroize;

macro_rules! secret_string {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        pub struct $name(String);

        impl $name {
            pub fn new(value: String) -> Self {
                Self(value)
            }
            /// The secret value. Callers must not log it.
            pub fn expose(&self) -> &str {
                &self.0
            }
            /// Constant-time comparison with a candidate value.
            pub fn ct_eq(&self, candidate: &str) -> bool {
                ct_eq(self.0.as_bytes(), candidate.as_bytes())
            }
        }

        impl Drop for $name {
            fn drop(&mut self) {
                self.0.zeroize();
            }
        }

        impl std::fmt::Debug for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(concat!(stringify!($name), "(<redacted>)"))
            }
        }

        impl Clone for $name {
            fn clone(&self) -> Self {
                Self(self.0.clone())
            }
        }
    };
}

macro_rules! secret_bytes {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        pub struct $name(Vec<u8>);

        impl $name {
            pub fn new(value: Vec<u8>) -> Self {
                Self(value)
            }
            /// The secret bytes. Callers must not log them.
            pub fn expose(&self) -> &[u8] {
                &self.0
            }
        }

        impl Drop for $name {
            fn drop(&mut self) {
                self.0.zeroize();
            }
        }

        impl std::fmt::Debug for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(concat!(stringify!($name), "(<redacted>)"))
            }
        }

        impl Clone for $name {
            fn clone(&self) -> Self {
                Self(self.0.clone())
            }
        }
    };
}

secret_string!(
    /// The value of a session cookie (256 random bits, base64url). Only its hash is stored.
    SessionToken
);
secret_string!(
    /// A password typed by a user or set by an admin.
    Password
);
secret_string!(
    /// An OAuth client secret, an SMTP password, a store URL with credentials.
    ClientSecret
);
secret_string!(
    /// A bearer token for the admin API; only its SHA-256 is configured.
    AdminToken
);
secret_string!(
    /// A one-time recovery code, shown once to the user; only its hash is stored.
    RecoveryCode
);
secret_string!(
    /// A CSRF token bound to a pending login.
    CsrfToken
);
secret_bytes!(
    /// A TOTP shared secret (raw bytes, before base32).
    TotpSeed
);
secret_bytes!(
    /// A 32-byte symmetric key (storage encryption).
    DataKey
);
secret_bytes!(
    /// A PKCS#8 private key document.
    PrivateKeyDoc
);

/// Constant-time equality of two byte strings (length is not secret).
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && bool::from(a.ct_eq(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_output_hides_every_secret_value() {
        let shown = format!(
            "{:?} {:?} {:?} {:?} {:?}",
            SessionToken::new("tok-123".into()),
            Password::new("hunter2".into()),
            ClientSecret::new("s3cr3t".into()),
            TotpSeed::new(b"seedseed".to_vec()),
            DataKey::new(vec![7u8; 32]),
        );
        assert_eq!(
            shown,
            "SessionToken(<redacted>) Password(<redacted>) ClientSecret(<redacted>) TotpSeed(<redacted>) DataKey(<redacted>)"
        );
    }

    #[test]
    fn ct_eq_compares_whole_values() {
        assert!(ct_eq(b"abc", b"abc"));
        assert!(!ct_eq(b"abc", b"abd"));
        assert!(!ct_eq(b"abc", b"abcd"));
        let t = SessionToken::new("xyz".into());
        assert!(t.ct_eq("xyz"));
        assert!(!t.ct_eq("xy"));
    }
}
