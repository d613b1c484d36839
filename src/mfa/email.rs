//! Email second factor: 8-digit one-time codes, their stored hash, and an SMTP sender (lettre).
//! Codes are never logged; expiry and single use are enforced by the store that holds the hash.

use std::time::Duration;

use lettre::message::header::{ContentTransferEncoding, ContentType};
use lettre::message::Body;
use lettre::message::Mailbox;
use lettre::{Address, AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use super::{fill_random, sha256_hex, MfaError};

/// Digits in an email code.
pub const EMAIL_CODE_DIGITS: usize = 8;
/// Upper bound on one delivery attempt, connection included.
pub const SEND_TIMEOUT: Duration = Duration::from_secs(10);

/// Draws a uniformly random 8-digit code (leading zeros kept) from the operating system's CSPRNG.
pub fn generate_email_code() -> String {
    // 42 * 10^8 is the largest multiple of 10^8 below 2^32; values at or above it are redrawn so
    // that `% 10^8` has no modulo bias.
    const RANGE: u32 = 100_000_000;
    const LIMIT: u32 = 42 * RANGE;
    loop {
        let mut bytes = [0u8; 4];
        fill_random(&mut bytes);
        let v = u32::from_be_bytes(bytes);
        if v < LIMIT {
            return format!("{:08}", v % RANGE);
        }
    }
}

/// Normalises a typed email code (spaces and dashes removed); `None` unless exactly 8 ASCII digits.
pub fn normalise_email_code(input: &str) -> Option<String> {
    let code = strip(input);
    (code.len() == EMAIL_CODE_DIGITS && code.bytes().all(|b| b.is_ascii_digit())).then_some(code)
}

/// The stored form of an email code: lowercase hex SHA-256 of the code (spaces and dashes removed).
///
/// Eight digits are only ~26.6 bits, so this hash alone would not resist an offline search; what
/// protects the code is its short lifetime, single use and the login rate limits, not the hash.
/// The hash keeps a store dump from showing live codes at a glance.
pub fn hash_email_code(code: &str) -> String {
    sha256_hex(strip(code).as_bytes())
}

fn strip(input: &str) -> String {
    input
        .chars()
        .filter(|c| !matches!(c, ' ' | '-' | '\t'))
        .collect()
}

/// Sends email codes through one SMTP relay (`smtp://`, `smtp://…?tls=required`, `smtps://`).
#[derive(Clone)]
pub struct EmailSender {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
}

impl std::fmt::Debug for EmailSender {
    // The transport may hold SMTP credentials: show only the sender address.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmailSender")
            .field("from", &self.from.to_string())
            .finish_non_exhaustive()
    }
}

impl EmailSender {
    /// Builds a sender from the configured `mfa.email.smtp_url` and `from` (`a@b` or `Name <a@b>`).
    /// No connection is made until the first send.
    pub fn new(smtp_url: &str, from: &str) -> Result<Self, MfaError> {
        let from: Mailbox = from.parse().map_err(|_| MfaError::BadAddress)?;
        let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(smtp_url)
            .map_err(|e| MfaError::Smtp(e.to_string()))?
            .timeout(Some(SEND_TIMEOUT))
            .build();
        Ok(Self { transport, from })
    }

    /// Sends `code` to `to` as a plain-text message naming `issuer` and the code's lifetime.
    /// Gives up after [`SEND_TIMEOUT`]. The code appears only in the message body.
    pub async fn send_code(
        &self,
        to: &str,
        code: &str,
        issuer: &str,
        ttl_minutes: u64,
    ) -> Result<(), MfaError> {
        // Lines stay under 76 characters so that the body goes out as readable 7bit text.
        let body = format!(
            "Your {issuer} sign-in code is: {code}\r\n\
             \r\n\
             It expires in {ttl_minutes} minutes and works once.\r\n\
             If you did not try to sign in, ignore this message\r\n\
             and tell your administrator.\r\n"
        );
        self.send(to, &format!("Your {issuer} sign-in code"), body)
            .await
    }

    /// Sends the single-use enrollment link of a new account (or of one whose factors were
    /// reset). The link appears only in the message body.
    pub async fn send_invite(
        &self,
        to: &str,
        link: &str,
        issuer: &str,
        ttl_days: u64,
    ) -> Result<(), MfaError> {
        let body = format!(
            "An administrator of {issuer} set up sign-in for you.\r\n\
             \r\n\
             Open this link to sign in and set up two-step verification:\r\n\
             {link}\r\n\
             \r\n\
             The link works once and expires in {ttl_days} days.\r\n\
             If you did not expect this message, tell your administrator.\r\n"
        );
        self.send(to, &format!("Set up your {issuer} sign-in"), body)
            .await
    }

    /// Sends a plain-text message; gives up after [`SEND_TIMEOUT`].
    pub async fn send(&self, to: &str, subject: &str, body: String) -> Result<(), MfaError> {
        let to: Address = to.trim().parse().map_err(|_| MfaError::BadAddress)?;
        // Plain 7bit when the text allows it (ASCII, lines under 998 bytes): links stay links
        // for any mail reader, instead of quoted-printable with `=3D` and soft line breaks.
        // (lettre's own 7bit choice stops at 76 bytes a line; RFC 5322 allows 998.)
        let seven_bit = body.is_ascii()
            && !body.contains('\0')
            && body
                .split("\r\n")
                .all(|l| l.len() <= 998 && !l.contains(['\r', '\n']));
        let body = if seven_bit {
            Body::dangerous_pre_encoded(body.into_bytes(), ContentTransferEncoding::SevenBit)
        } else {
            Body::new(body)
        };
        let message = Message::builder()
            .from(self.from.clone())
            .to(Mailbox::new(None, to))
            .subject(subject)
            .header(ContentType::TEXT_PLAIN)
            .body(body)
            .map_err(|e| MfaError::Smtp(e.to_string()))?;
        match tokio::time::timeout(SEND_TIMEOUT, self.transport.send(message)).await {
            Ok(Ok(_response)) => Ok(()),
            Ok(Err(e)) => Err(MfaError::Smtp(e.to_string())),
            Err(_elapsed) => Err(MfaError::SmtpTimeout),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn email_codes_are_eight_ascii_digits() {
        for _ in 0..200 {
            let code = generate_email_code();
            assert_eq!(code.len(), 8, "{code}");
            assert!(code.bytes().all(|b| b.is_ascii_digit()), "{code}");
        }
    }

    #[test]
    fn email_codes_vary_and_use_every_leading_digit() {
        let codes: Vec<String> = (0..2_000).map(|_| generate_email_code()).collect();
        let unique: HashSet<&String> = codes.iter().collect();
        assert!(unique.len() > 1_990, "{}", unique.len());
        let leading: HashSet<u8> = codes.iter().filter_map(|c| c.bytes().next()).collect();
        assert_eq!(leading.len(), 10, "leading zeros must occur too");
    }

    #[test]
    fn hash_email_code_ignores_spaces_and_dashes() {
        let h = hash_email_code("1234 5678");
        assert_eq!(h, sha256_hex(b"12345678"));
        assert_eq!(h, hash_email_code("1234-5678"));
        assert_ne!(h, hash_email_code("12345679"));
    }

    #[test]
    fn normalise_email_code_accepts_only_eight_digits() {
        assert_eq!(
            normalise_email_code(" 0123-4567 "),
            Some("01234567".to_owned())
        );
        for bad in ["", "1234567", "123456789", "1234567a", "１２３４５６７８"] {
            assert_eq!(normalise_email_code(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn sender_refuses_a_bad_from_address() {
        let err = EmailSender::new("smtp://127.0.0.1:2525", "not an address").unwrap_err();
        assert_eq!(err, MfaError::BadAddress);
    }

    #[test]
    fn sender_refuses_an_unknown_url_scheme() {
        let err = EmailSender::new("http://127.0.0.1:2525", "helpdesk@example.com").unwrap_err();
        assert!(matches!(err, MfaError::Smtp(_)), "{err:?}");
    }

    #[test]
    fn sender_accepts_plain_tls_and_named_from_forms() {
        for url in [
            "smtp://127.0.0.1:2525",
            "smtp://mail.example.com:587?tls=required",
            "smtps://user:pa%40ss@mail.example.com",
        ] {
            let sender = EmailSender::new(url, "Helpdesk <helpdesk@example.com>").unwrap();
            let shown = format!("{sender:?}");
            assert!(
                !shown.contains("pa%40ss") && !shown.contains("pa@ss"),
                "{shown}"
            );
        }
    }

    #[tokio::test]
    async fn sending_to_a_bad_recipient_is_an_error_not_a_panic() {
        let sender = EmailSender::new("smtp://127.0.0.1:9", "helpdesk@example.com").unwrap();
        for bad in [
            "",
            "no-at-sign",
            "a@",
            "a b@example.com",
            "x@y\r\nBcc: evil@example.com",
        ] {
            assert_eq!(
                sender.send_code(bad, "12345678", "Helpdesk", 10).await,
                Err(MfaError::BadAddress),
                "{bad:?}"
            );
        }
    }

    #[tokio::test]
    async fn an_unreachable_server_is_an_smtp_error() {
        // Port 1 (privileged, never bound by a test): nothing listens, the connect is refused.
        let url = "smtp://127.0.0.1:1";
        let sender = EmailSender::new(url, "helpdesk@example.com").unwrap();
        let err = sender
            .send_code("alice@example.com", "12345678", "Helpdesk", 10)
            .await
            .unwrap_err();
        assert!(matches!(err, MfaError::Smtp(_)), "{err:?}");
    }
}
