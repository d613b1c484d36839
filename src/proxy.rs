//! The proxy path: path normalisation, header hygiene, forwarding to the upstream with streamed
//! bodies, and protocol upgrades. Nothing here decides who may pass; `server::gateway` does.

pub mod forward;
pub mod h1;
pub mod headers;
pub mod idle;
pub mod path;
