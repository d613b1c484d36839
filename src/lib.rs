//! portcullis: an identity gateway. A reverse proxy that decides who reaches the app behind it
//! and tells the app who they are. DESIGN.md is the contract; this is the map, in layers (a file
//! only imports files of its own layer or below; `tests/layout.rs` proves the graph has no cycle).
//!
//! Entry and routing:
//! * `server`   — listeners (`listen`: accept loop, rustls, limits, drain), the HTTP/1.1 fast lane
//!   (`fast`), the one router (`endpoint` parses the path once, `router` dispatches), the proxy
//!   path's phases both lanes share (`phases`) and its hyper lane (`gateway`), the forward-auth
//!   answers for nginx, Caddy and Traefik on those same phases (`forward_auth`), static answers
//!   (`assets`), panic containment.
//! * `admin`    — the admin API on its own listener (tokens, sessions, users, audit, metrics).
//!
//! Handlers:
//! * `login`    — every way in over HTTP: native password form, second-factor steps, OIDC and
//!   SAML SSO, the account page, login start and logout; `login::error` maps refusals to pages.
//! * `console`  — the admin console in the browser (`/_portcullis/admin`): a fresh-factor gate,
//!   then the same `manage` actions the admin API runs, audited as `console:<principal>`.
//!
//! Shared state and leaf helpers:
//! * `state`    — `Gateway`, the state every connection shares, built once; imports no handler.
//! * `http`     — connection facts, form values, bounded bodies, the proxy path's error mapping.
//! * `audit`    — audit events (log line + audit table) and their metrics.
//! * `alerts`   — which account-safety mails go out when (new device, recovery code, factor
//!   change, reports and break-glass to the admins), built from `notify`'s parts.
//! * `pages`    — HTML/JSON responses and the page chrome.
//!
//! Domain (no HTTP types):
//! * `auth`     — route policy and return paths (`return_to`: absolute ones on allowed hosts), passwords, lockout, the login state machine
//!   (`auth::native`), OIDC token checks (`auth::jws` the shared JWS verifier), machine clients'
//!   bearer tokens (`auth::bearer`), SAML checks.
//! * `accounts` — native users, sealed seeds, password hashing admission, enrollment invitations.
//! * `manage`   — user and session actions, one function each, shared by the admin API and the
//!   CLI, audited with the actor (a token or `cli`).
//! * `mfa`      — second factors: TOTP, recovery codes, email codes, QR rendering.
//! * `idp`      — IdP connectors: OIDC discovery and keys, SAML metadata, their HTTP client.
//! * `proxy`    — path normalisation, header hygiene, the `ForwardPlan` both lanes write,
//!   upstream forwarding (hyper, and the lane's raw HTTP/1.1), pools, websockets, TLS to an
//!   https upstream (verified rustls, h2 or http/1.1 by ALPN), `ProxyError`.
//! * `session`  — the `Session` model, cookies, `SessionStore` (memory and Redis), IdP links.
//! * `storage`  — `UserStore` (one sqlx implementation for SQLite and PostgreSQL), sealing.
//! * `assertion`— the signed `X-Portcullis-Assertion` JWT and its JWKS.
//! * `config`   — TOML schema (`config/raw.rs`), validation into one typed `Config`, file/line/key errors.
//! * `notify`   — account-safety notices: the known-device cookie, signed single-use links,
//!   the mails and their background mailer (DESIGN.md §12).
//! * `secret`, `clock`, `metrics` — secret newtypes, injectable time, Prometheus counters.
//! * `logging`  — the process log (text or JSON lines) and the audit stream's own file.
//! * `fuzzing`  — fuzz targets over every parser of untrusted input (driven by `tests/fuzz_corpus.rs`).
//! * `testing`  — test support only: whether a test without its Redis/PostgreSQL/server skips or fails.

#![forbid(unsafe_code)]

pub mod accounts;
pub mod admin;
pub mod alerts;
pub mod assertion;
pub mod audit;
pub mod auth;
pub mod clock;
pub mod config;
pub mod console;
pub mod demo;
#[doc(hidden)]
pub mod fuzzing;
pub mod http;
pub mod idp;
pub mod logging;
pub mod login;
pub mod manage;
pub mod metrics;
pub mod mfa;
pub mod notify;
pub mod pages;
pub mod pem;
pub mod proxy;
pub mod secret;
pub mod server;
pub mod session;
pub mod state;
pub mod storage;
#[doc(hidden)]
pub mod testing;
