//! The session store a test runs the gateway on: memory, or the Redis of `REDIS_URL` under a
//! key prefix of the test's own (removed at the end), so single-use checks are proven on both.
//!
//! Without `REDIS_URL` a Redis test says it skipped, except under CI (`CI` set): there a
//! missing Redis fails the test, so a CI run can never pass by skipping it.

use super::TestGateway;
use std::path::Path;

/// Which session store the gateway of a test uses.
pub enum Store {
    Memory,
    Redis { url: String, prefix: String },
}

impl Store {
    /// Redis at `REDIS_URL` with a fresh key prefix; `None` (the test skips) when it is unset
    /// outside CI. Under CI a missing `REDIS_URL` panics: the test fails instead of skipping.
    pub fn redis(test: &str) -> Option<Store> {
        match std::env::var("REDIS_URL") {
            Ok(url) if !url.is_empty() => {
                let tag = portcullis::session::random_id(9)
                    .to_lowercase()
                    .replace(['-', '_'], "x");
                Some(Store::Redis {
                    url,
                    prefix: format!("pc-it-{tag}:"),
                })
            }
            _ if std::env::var_os("CI").is_some() => {
                panic!("{test}: CI is set but REDIS_URL is not; this test must run against Redis in CI")
            }
            _ => {
                eprintln!(
                    "skipped {test}: set REDIS_URL (e.g. redis://127.0.0.1:6379/0) to run it"
                );
                None
            }
        }
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
