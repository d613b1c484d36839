//! Sessions: the `Session` model, cookie tokens and their hashed ids, and the `SessionStore`
//! seam (memory or Redis, picked at start-up) that also holds short-lived state (pending
//! logins, counters, single-use markers) and the IdP session links used by logout.
//! Invariant: the store never sees a cookie value, only its hash.
//!
//! This file only declares the modules and re-exports their public names (the paths the rest
//! of the crate uses, `crate::session::Session` and so on). The children import each other
//! directly, never through this facade, so the files form no cycle:
//!
//! | file             | holds                                                        |
//! |------------------|--------------------------------------------------------------|
//! | `id.rs`          | `SessionId`, cookie tokens, random ids                       |
//! | `identity.rs`    | `Identity`, `AuthMethod`, `MfaUsed`, `HeaderValues`          |
//! | `model.rs`       | `Session`, `Expiry`, `CachedAssertion`                       |
//! | `store.rs`       | the `SessionStore` trait                                     |
//! | `any_store.rs`   | `AnySessionStore`, the store picked at start-up              |
//! | `memory.rs`, `compact.rs` | the embedded store and its compact session encoding |
//! | `redis.rs`, `redis/`, `redis_cache.rs` | the shared store and its per-replica cache |
//! | `links.rs`       | IdP session links (sid/sub indexes) for logout               |
//! | `keys.rs`        | store-key helpers for values that come from outside          |
//! | `cookie.rs`      | the session cookie on the wire                               |

mod any_store;
pub mod compact;
pub mod cookie;
mod id;
mod identity;
pub mod keys;
pub mod links;
pub mod memory;
mod model;
mod owners;
pub mod redis;
pub mod redis_cache;
mod store;

pub use any_store::AnySessionStore;
pub use id::{new_token, random_id, LastToken, SessionId};
pub use identity::{
    AuthMethod, HeaderValues, Identity, IdentityField, IdentityValueError, MfaUsed,
};
pub use memory::MemoryStore;
pub use model::{CachedAssertion, Expiry, Session};
pub use store::SessionStore;
