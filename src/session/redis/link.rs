//! [`Link`]: the connection to the Redis primary, either one fixed server (`redis_url`) or the
//! primary Redis Sentinel names (`redis_sentinel`, DESIGN.md §11). Invariant: commands only go
//! to a node the sentinels named as master and that answered `ROLE` as primary; any command
//! error wakes a re-discovery, and until a new primary is confirmed commands fail (503, fail
//! closed), they are never retried elsewhere (a script may already have run).

use crate::config::{RedisSentinel, StoreTls};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::sentinel::{SentinelClient, SentinelClientBuilder, SentinelServerType};
use redis::{Client, ConnectionAddr, IntoConnectionInfo, RedisError, TlsCertificates, TlsMode};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

/// Longest one re-discovery may take (sentinel query, `ROLE` on the named master, connect).
pub(super) const DISCOVER_TIMEOUT: Duration = Duration::from_secs(3);

/// Where a `RedisStore` connects.
pub enum Target<'a> {
    /// One server: `redis://`, `rediss://` or a unix socket.
    Url(&'a str),
    /// The primary of a Sentinel-monitored master.
    Sentinel(&'a RedisSentinel),
}

/// One primary: the shared command connection and a client for the pub/sub connection.
pub(super) struct Node {
    pub(super) conn: ConnectionManager,
    pub(super) client: Client,
    /// `host:port`, for logs and to tell a new primary from the one in use.
    pub(super) addr: String,
    /// Bumped at every switch: the subscriber re-subscribes on the new primary.
    pub(super) epoch: u64,
}

pub(super) struct Link {
    current: RwLock<Arc<Node>>,
    sentinel: Option<Follow>,
    config: ConnectionManagerConfig,
}

struct Follow {
    client: tokio::sync::Mutex<SentinelClient>,
    /// Woken by every failed command; the follower (`subscribe.rs`) waits on it.
    wake: Arc<tokio::sync::Notify>,
    epochs: AtomicU64,
}

fn certificates(tls: &StoreTls) -> TlsCertificates {
    TlsCertificates {
        client_tls: tls.client.as_ref().map(|(c, k)| redis::ClientTlsConfig {
            client_cert: c.clone(),
            client_key: k.to_vec(),
        }),
        root_cert: tls.ca_pem.clone(),
    }
}

async fn manager(
    client: &Client,
    config: &ConnectionManagerConfig,
) -> Result<ConnectionManager, RedisError> {
    ConnectionManager::new_with_config(client.clone(), config.clone()).await
}

impl Link {
    /// Connects to `target`; for a sentinel target, asks the sentinels for the primary first.
    pub(super) async fn open(
        target: &Target<'_>,
        tls: Option<&StoreTls>,
        config: ConnectionManagerConfig,
    ) -> Result<Link, RedisError> {
        match target {
            Target::Url(url) => {
                let client = match tls {
                    Some(t) => Client::build_with_tls(*url, certificates(t))?,
                    None => Client::open(*url)?,
                };
                let conn = manager(&client, &config).await?;
                let addr = client.get_connection_info().addr.to_string();
                Ok(Link {
                    current: RwLock::new(Arc::new(Node {
                        conn,
                        client,
                        addr,
                        epoch: 0,
                    })),
                    sentinel: None,
                    config,
                })
            }
            Target::Sentinel(s) => {
                let mut sc = sentinel_client(s, tls)?;
                let client = sc.async_get_client().await?;
                let conn = manager(&client, &config).await?;
                let addr = client.get_connection_info().addr.to_string();
                tracing::info!(master = %s.master, primary = %addr, "redis primary found through sentinel");
                Ok(Link {
                    current: RwLock::new(Arc::new(Node {
                        conn,
                        client,
                        addr,
                        epoch: 0,
                    })),
                    sentinel: Some(Follow {
                        client: tokio::sync::Mutex::new(sc),
                        wake: Arc::new(tokio::sync::Notify::new()),
                        epochs: AtomicU64::new(0),
                    }),
                    config,
                })
            }
        }
    }

    /// The primary in use now.
    pub(super) fn node(&self) -> Arc<Node> {
        // A poisoned lock still holds a whole `Arc`: writers only swap it.
        Arc::clone(&self.current.read().unwrap_or_else(|e| e.into_inner()))
    }

    /// A command failed: with Sentinel, the primary may have moved; look again.
    pub(super) fn failed(&self) {
        if let Some(f) = &self.sentinel {
            f.wake.notify_one();
        }
    }

    /// The follower's wake-up, when the primary comes from Sentinel.
    pub(super) fn wake(&self) -> Option<Arc<tokio::sync::Notify>> {
        self.sentinel.as_ref().map(|f| Arc::clone(&f.wake))
    }

    /// Asks the sentinels for the primary (which must answer `ROLE` as one); switches to it if
    /// it is not the one in use. `Ok(Some(addr))` after a switch, `Ok(None)` when unchanged.
    pub(super) async fn rediscover(&self) -> Result<Option<String>, RedisError> {
        let Some(f) = &self.sentinel else {
            return Ok(None);
        };
        let client = f.client.lock().await.async_get_client().await?;
        let addr = client.get_connection_info().addr.to_string();
        if addr == self.node().addr {
            return Ok(None);
        }
        let conn = manager(&client, &self.config).await?;
        let epoch = f.epochs.fetch_add(1, Ordering::AcqRel) + 1;
        let node = Arc::new(Node {
            conn,
            client,
            addr: addr.clone(),
            epoch,
        });
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = node;
        Ok(Some(addr))
    }
}

/// A sentinel client for the master of `s`: the sentinels' AUTH from the first node URL, the
/// data nodes' from `password`; TLS (with `tls`'s CA and client certificate) to both exactly
/// when the node URLs are `rediss://`.
fn sentinel_client(
    s: &RedisSentinel,
    tls: Option<&StoreTls>,
) -> Result<SentinelClient, RedisError> {
    let infos = s
        .nodes
        .iter()
        .map(|u| u.as_str().into_connection_info())
        .collect::<Result<Vec<_>, _>>()?;
    let secure = infos
        .iter()
        .all(|i| matches!(i.addr, ConnectionAddr::TcpTls { .. }));
    let auth = infos.first().map(|i| i.redis.clone()).unwrap_or_default();
    let mut b = SentinelClientBuilder::new(
        infos.into_iter().map(|i| i.addr),
        s.master.clone(),
        SentinelServerType::Master,
    )?;
    if let Some(u) = auth.username {
        b = b.set_client_to_sentinel_username(u);
    }
    if let Some(p) = auth.password {
        b = b.set_client_to_sentinel_password(p);
    }
    if let Some(p) = &s.password {
        b = b.set_client_to_redis_password(p.clone());
    }
    if secure {
        b = b
            .set_client_to_sentinel_tls_mode(TlsMode::Secure)
            .set_client_to_redis_tls_mode(TlsMode::Secure);
        if let Some(t) = tls {
            b = b
                .set_client_to_sentinel_certificates(certificates(t))
                .set_client_to_redis_certificates(certificates(t));
        }
    }
    b.build()
}
