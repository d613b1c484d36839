//! Integration tests: the gateway on an ephemeral loopback port with a real upstream.
//! One binary (`cargo test --test it`); `support` holds the shared harness.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod account;
mod admin;
mod admin_users;
mod bearer;
mod break_glass;
mod browser_e2e;
mod cli;
mod config;
mod config_check;
mod console;
mod fast_lane;
mod forward_auth;
mod hostile;
mod login_attacks;
mod logs;
mod metrics;
mod native;
mod notify;
mod oidc;
mod package;
mod pages;
mod passkeys;
mod process;
mod proxy;
mod real_servers;
mod reload;
mod saml;
mod scale;
mod sentinel;
mod store_tls;
mod support;
mod upstream_tls;
