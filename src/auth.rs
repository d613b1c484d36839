//! Authentication: who the user is (passwords, native login) and what they may reach (route policy).
//! No HTTP types live in here except in the native-login handlers.

pub mod bearer;
pub mod break_glass;
pub mod jws;
pub mod lockout;
pub mod native;
pub mod oidc;
pub mod passkey;
pub mod password;
pub mod pending;
pub mod policy;
pub mod return_to;
pub mod saml;
