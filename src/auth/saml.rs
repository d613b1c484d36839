//! SAML 2.0 service-provider checks (issue 5, DESIGN.md §6): IdP metadata, the response pipeline
//! and the redirect binding. No HTTP here; `login::saml` fetches, stores and decides.
//!
//! Invariants: a document is scanned (DOCTYPE refused, one assertion, algorithms allowed) before
//! libxml2 sees it; the signature is checked against the configured certificates only and the
//! identity is read from what the signature covers (samael's reduction), nothing else; every
//! condition is checked against the gateway's clock with a small skew.

mod documents;
mod error;
mod metadata;
mod redirect;
mod response;
mod scan;
#[cfg(test)]
mod tests;

pub use documents::{
    authn_request, esc, instant, logout_request, logout_response, sp_metadata, AuthnRequestSpec,
};
pub use error::*;
pub use metadata::{IdpMetadata, SpKeys};
pub use redirect::{redirect_url, verify_redirect, SloMessage};
pub use response::{decode_post, verify_response, Expect, Verified, STABLE_NAMEID_FORMATS};
