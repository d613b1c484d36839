//! Fuzz targets (issue 9): one `fn(&[u8])` per parser of untrusted input, feeding arbitrary
//! bytes through the real code and asserting its invariants. Invariant: no input makes a target
//! panic; a panic here is a bug, either in the parser or in the rule the target asserts.
//!
//! Driven by `tests/fuzz_corpus.rs`: every file of `fuzz/corpus/<target>/` is replayed on each
//! test run, and `scripts/fuzz` runs a bounded-time mutation fuzzer over the same corpus on
//! stable Rust. Adding a target is one line in `TARGETS` plus its corpus directory.
//!
//! The checks here (`check_local_path` and friends) restate the rules from DESIGN.md rather than
//! call the code under test, so a parser that drifts from the contract fails them. They panic
//! with `assert!` on purpose: that is how a fuzzer learns about a broken invariant.

mod input;
mod oidc;
mod passkey;
mod saml;
mod template;
mod web;

pub use oidc::{access_token, bearer_header, config, id_token, jwks, logout_token, userinfo};
pub use passkey::passkey_answer;
pub use saml::{saml_metadata, saml_redirect, saml_response};
pub use template::page_template;
pub use web::{
    check_local_path, check_normalized, cookie_header, form, identity_headers,
    is_identity_or_forwarding, path, rd, upgrade,
};

/// A fuzz target: any bytes in; panics only when an invariant is broken.
pub type Target = fn(&[u8]);

/// Every fuzz target, by the name of its corpus directory under `fuzz/corpus/`.
pub const TARGETS: &[(&str, Target)] = &[
    ("rd", rd),
    ("cookie", cookie_header),
    ("form", form),
    ("identity_headers", identity_headers),
    ("upgrade", upgrade),
    ("path", path),
    ("id_token", id_token),
    ("logout_token", logout_token),
    ("access_token", access_token),
    ("bearer_header", bearer_header),
    ("jwks", jwks),
    ("userinfo", userinfo),
    ("config", config),
    ("saml_response", saml_response),
    ("saml_metadata", saml_metadata),
    ("saml_redirect", saml_redirect),
    ("page_template", page_template),
    ("passkey_answer", passkey_answer),
];
