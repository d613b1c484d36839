//! The admin listener (DESIGN.md §3): sessions that really end, native users, recovery codes,
//! the audit log, metrics, health. Bearer tokens are compared as SHA-256 hashes in constant
//! time. Not served on the public listener. Every change is an audit event.
//!
//! This file is a facade; the work lives in the children, which import each other directly:
//!
//! | file | what |
//! |---|---|
//! | `routes.rs` | the route table (paths, methods, token or not) and `find` |
//! | `openapi.rs` | the OpenAPI 3 document, generated from the route table |
//! | `dispatch.rs` | `handle`: route, token, handler, error mapping |
//! | `auth.rs` | bearer tokens |
//! | `error.rs` | `AdminError` and its one mapping to a response |
//! | `reply.rs` | the success answers (`ok`, `created`, `no_content`, …) |
//! | `page.rs` | `limit`, cursors and the `{"items", "next"}` shape |
//! | `sessions.rs` | list and terminate sessions, end a principal |
//! | `users.rs` | native users, factor resets, recovery codes, invitations |
//! | `audit.rs` | the event each admin action records, and the audit query |
//! | `health.rs` | `/healthz`, `/readyz`, `/metrics` |
//! | `reload.rs` | `POST /api/v1/reload`: the live reload's answer |

mod audit;
mod auth;
pub mod break_glass;
mod dispatch;
mod error;
mod health;
pub mod openapi;
mod page;
mod reload;
mod reply;
pub mod routes;
pub mod sessions;
pub mod users;

pub use dispatch::handle;
pub use error::{AdminError, BodyRefusal};
pub use sessions::session_json;
