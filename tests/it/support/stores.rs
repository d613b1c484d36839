//! The session store a test runs the gateway on: memory, or the Redis of `REDIS_URL` under a
//! key prefix of the test's own (removed at the end), so single-use checks are proven on both.
//!
//! Without Redis (`REDIS_URL` unset or unreachable) a Redis test says it skipped, except under
//! CI (`CI` set): there it fails, so a CI run can never pass by skipping it (`support::require`).

use super::TestGateway;
use std::path::Path;

/// Which session store the gateway of a test uses.
pub enum Store {
    Memory,
    Redis { url: String, prefix: String },
}

impl Store {
    /// Redis at `REDIS_URL` with a fresh key prefix; `None` (the test skips) when it is unset
    /// or unreachable outside CI. Under CI that fails the test instead (`support::require`).
    pub fn redis(test: &str) -> Option<Store> {
        let Some(url) = super::redis_url() else {
            eprintln!("skipped {test}: it runs against the Redis of REDIS_URL");
            return None;
        };
        let tag = portcullis::session::random_id(9)
            .to_lowercase()
            .replace(['-', '_'], "x");
        Some(Store::Redis {
            url,
            prefix: format!("pc-it-{tag}:"),
        })
    }

    /// The `[session]` keys that select this store.
    pub fn session_toml(&self) -> String {
        match self {
            Store::Memory => String::new(),
            Store::Redis { url, prefix } => {
                format!("store = \"redis\"\nredis_url = \"{url}\"\nredis_prefix = \"{prefix}\"\n")
            }
        }
    }

    /// Removes the test's Redis keys (nothing for memory).
    pub async fn cleanup(&self) {
        let Store::Redis { url, prefix } = self else {
            return;
        };
        let Ok(client) = redis::Client::open(url.as_str()) else {
            return;
        };
        let Ok(mut con) = client.get_multiplexed_async_connection().await else {
            return;
        };
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg(format!("{prefix}*"))
            .query_async(&mut con)
            .await
            .unwrap_or_default();
        if !keys.is_empty() {
            let _: Result<(), _> = redis::cmd("DEL").arg(keys).query_async(&mut con).await;
        }
    }
}

impl TestGateway {
    /// As `start_with`, on `store`.
    pub async fn start_on(store: &Store, extra: &str, prepare: impl FnOnce(&Path)) -> TestGateway {
        TestGateway::start_full("", &store.session_toml(), extra, prepare).await
    }
}
