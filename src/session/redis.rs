//! The shared session store: sessions and short-lived state in Redis, so several gateway
//! replicas see the same sessions, counters and single-use markers (DESIGN.md §5). Sessions are
//! cached per replica only while the invalidation subscription is live
//! ([`SessionCache`](super::redis_cache::SessionCache)): every script that changes or ends a
//! session publishes its id on `{prefix}inval`, in the same atomic step, and a replica without
//! a live subscription reads every session from Redis.
//!
//! Key layout (every key starts with the configured prefix, e.g. `pc:`):
//!
//! | key            | type   | holds                                             | Redis TTL                  |
//! |----------------|--------|---------------------------------------------------|----------------------------|
//! | `s:{id}`       | hash   | `u` owner (principal), `d` compact JSON (`codec.rs`), `l` last seen | min(to absolute end, idle) |
//! | `u:{principal}`| set    | ids of the principal's sessions                   | longest of its sessions    |
//! | `ids`          | zset   | all session ids, score 0 (ordered by id for `list`) | none; pruned via `exp`   |
//! | `exp`          | zset   | session id → when its `s:` key expires (ms, Redis time) | none; pruned lazily  |
//! | `e:{key}`      | string | short-lived values and `claim_once` markers       | the caller's ttl           |
//! | `c:{key}`      | string | counters                                          | the window, from the first increment |
//! | `z:{key}`      | zset   | small sets (`set_add`), member → order added      | at least the caller's ttl  |
//!
//! Time: expiry of sessions is decided with the injected [`Clock`](crate::clock::Clock)
//! (`Session::check` in `get` and `list`), like the memory store; Redis TTLs only bound
//! storage, and are computed from durations so a test clock far from real time cannot make
//! them negative. Short-lived state
//! (ephemeral values, counters, claims) expires by Redis time alone: one time source for all
//! replicas, so a replica with a skewed clock can neither reopen a replay window nor end a
//! lockout early.
//!
//! Every multi-key change is one Lua script, and every single-use check (`take_ephemeral`,
//! `claim_once`) is one atomic command, so two replicas can never both accept the same value.
//! Needs a single Redis server (or primary) ≥ 6.2, not Redis Cluster: scripts touch keys that
//! may live in different slots.
//!
//! | file                | holds                                                        |
//! |---------------------|--------------------------------------------------------------|
//! | `redis/store.rs`    | [`RedisStore`]: connection, timeouts, the `SessionStore` operations |
//! | `redis/link.rs`     | the connection to the primary: one URL, or followed through Sentinel |
//! | `redis/lua.rs`      | the Lua scripts (every multi-key change)                     |
//! | `redis/codec.rs`    | a session as its stored hash fields, and the Redis TTLs      |
//! | `redis/subscribe.rs`| the invalidation subscriber that keeps the session cache honest |
//! | `redis_cache.rs`    | the per-replica session cache itself (beside this file)      |

mod codec;
mod link;
mod lua;
mod store;
mod subscribe;
#[cfg(test)]
mod tests;

pub use link::Target;
pub use store::RedisStore;
