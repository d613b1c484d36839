//! The identity providers the gateway relays to, as run-time connectors: OIDC discovery and
//! keys, SAML metadata, and the HTTP client both use (its own rustls config, timeouts, size
//! caps). No HTTP handlers and no gateway state here; `login::{oidc, saml}` use these.

pub mod http;
pub mod oidc;
pub mod saml;
