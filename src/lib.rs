//! portcullis: an identity gateway. A reverse proxy that decides who reaches the app behind it
//! and tells the app who they are. DESIGN.md is the contract; this is the map.
//!
//! * `config`   — TOML schema (`config/raw.rs`), validation into one typed `Config`, errors with file/line/key.
//! * `server`   — listeners (plain and rustls), connection limits, graceful shutdown, reserved-path routing.
//! * `proxy`    — the proxy path: path normalisation, header hygiene, forwarding, websockets.
//! * `session`  — the `Session` model, cookies, `SessionStore` (memory now, Redis later) and ephemeral state.
//! * `auth`     — route policy, return paths, passwords, native login, OIDC token checks (`auth::oidc`).
//! * `mfa`      — second factors: TOTP, recovery codes, email codes, QR rendering.
//! * `storage`  — `UserStore` (SQLite now, PostgreSQL later) and encryption of seeds at rest.
//! * `assertion`— the signed `X-Portcullis-Assertion` JWT and its JWKS.
//! * `pages`    — HTML/JSON responses for errors and gateway pages.
//! * `secret`, `clock` — secret newtypes and injectable time.
//! * `fuzzing`  — fuzz targets over every parser of untrusted input (driven by `tests/fuzz_corpus.rs`).

#![forbid(unsafe_code)]

pub mod accounts;
pub mod admin;
pub mod assertion;
pub mod audit;
pub mod auth;
pub mod clock;
pub mod config;
pub mod demo;
#[doc(hidden)]
pub mod fuzzing;
pub mod http;
pub mod idp;
pub mod login;
pub mod metrics;
pub mod mfa;
pub mod pages;
pub mod proxy;
pub mod secret;
pub mod server;
pub mod session;
pub mod state;
pub mod storage;
