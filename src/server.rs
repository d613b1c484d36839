//! The public and admin listeners: the accept loop with its limits and rustls (`listen`),
//! the HTTP/1.1 fast lane that serves the common request from raw bytes (`fast`), the one
//! router of every other request (`endpoint` parses, `router` dispatches), the proxy path's
//! phases both lanes share (`phases`; a machine client's bearer token in `bearer`), the one
//! access-log line (`access`) and its hyper lane (`gateway`), the static answers
//! (`assets`), the forward-auth answers for a proxy in front (`forward_auth`), panic
//! containment (`contain`), connection limits (`limits`), TLS (`tls`) and the live reload of
//! the config (`reload`).

pub mod access;
pub mod assets;
pub mod bearer;
pub mod contain;
pub mod endpoint;
pub mod fast;
pub mod forward_auth;
pub mod gateway;
pub mod limits;
pub mod listen;
pub mod phases;
pub mod reload;
pub mod router;
pub mod tls;

pub use crate::state::{Gateway, StartError};
pub use listen::{start, start_on, start_prepared, Running, Stopper};
