//! Account-safety notices (DESIGN.md §12, issue 19): the known-device cookie (`device`), the
//! signed single-use links (`link`) and the mails with their background mailer (`mail`). No
//! HTTP types and no `Gateway`: `alerts` decides what to send when, with these parts.
//! Invariant: every key here is derived from the gateway's signing key, so every replica
//! sharing that key recognises the same devices and links.

pub mod device;
pub mod link;
pub mod mail;

use mail::Mailer;

/// The keys and the mailer of the notices, built once at start-up.
pub struct Notifier {
    /// Signs the known-device cookie.
    pub device_key: ring::hmac::Key,
    /// Signs "this was not me" links.
    pub report_key: ring::hmac::Key,
    pub mailer: Mailer,
}

impl Notifier {
    /// Keys derived from `secret` (the signing key's bytes), one label per use, so a MAC of
    /// one kind is never accepted as another.
    pub fn new(secret: &[u8], mailer: Mailer) -> Notifier {
        Notifier {
            device_key: derive(b"portcullis known device v1\0", secret),
            report_key: derive(b"portcullis report link v1\0", secret),
            mailer,
        }
    }
}

/// An HMAC-SHA256 key for `label` from `secret`.
pub fn derive(label: &[u8], secret: &[u8]) -> ring::hmac::Key {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    ctx.update(label);
    ctx.update(secret);
    ring::hmac::Key::new(ring::hmac::HMAC_SHA256, ctx.finish().as_ref())
}
