//! The HTTP handlers of every way in: the native password form (`native`), its second-factor
//! steps (`mfa`), the end of a login (`complete`), OIDC (`oidc`) and SAML (`saml`) single
//! sign-on with what they share (`sso`), the account page (`account`), login start and logout
//! (`entry`), the "this was not me" link of a notice (`report`), break-glass links
//! (`break_glass`), and the pages they render (`views`, `display`). The credential checks live in `auth`, the
//! IdP connectors in `idp`; handlers here turn their outcomes into responses.

pub mod account;
pub mod account_passkeys;
pub mod break_glass;
pub mod complete;
pub mod display;
pub mod entry;
pub mod error;
pub mod mfa;
pub mod native;
pub mod oidc;
pub mod passkey;
pub mod report;
pub mod saml;
pub mod sso;
pub mod views;
