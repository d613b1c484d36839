//! The invalidation subscriber of the Redis session store: one subscription per replica to
//! `{prefix}inval`, on which every script that changes or ends a session publishes its id.
//! Invariant: the replica's session cache is trusted only while this replica's own heartbeats
//! come back through the subscription (proof that invalidations published now reach it); a
//! lost subscription, a late heartbeat or one Redis refuses empties the cache at once, and the
//! subscriber reconnects with backoff. With Sentinel, the follower here switches to the new
//! primary after a failover, and the switch empties the cache (a session the old primary held
//! may not have reached the new one) and moves the subscription to the new primary.

use super::link::DISCOVER_TIMEOUT;
use super::store::{
    store_error, Inner, RedisStore, COMMAND_TIMEOUT, CONNECT_TIMEOUT, RETRY_MAX_DELAY_MS,
};
use crate::session::id::{random_id, SessionId};
use crate::session::redis_cache::{HEARTBEAT_EVERY, LIVE_FOR};
use std::sync::Arc;
use std::time::Duration;

impl RedisStore {
    /// Starts the invalidation subscriber: it keeps the session cache usable while its own
    /// heartbeats come back through Redis, and empties it whenever they do not.
    pub fn spawn_invalidation(&self) {
        let weak = Arc::downgrade(&self.inner);
        tokio::spawn(async move {
            let mut backoff = Duration::from_millis(100);
            loop {
                let Some(inner) = weak.upgrade() else { return };
                let why = listen(&inner).await;
                inner.cache.lost();
                tracing::warn!(reason = %why, "session cache off: invalidation subscription lost; reading every session from Redis");
                drop(inner);
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_millis(RETRY_MAX_DELAY_MS));
            }
        });
        self.spawn_follower();
    }

    /// With Sentinel: looks for the primary after every failed command (at most a few times a
    /// second) and every `RECHECK_EVERY`, and keeps looking while none is confirmed.
    fn spawn_follower(&self) {
        let Some(wake) = self.inner.link.wake() else {
            return;
        };
        let weak = Arc::downgrade(&self.inner);
        tokio::spawn(async move {
            loop {
                // Woken by a failure, or a periodic look: a demoted primary still answers reads.
                let _ = tokio::time::timeout(RECHECK_EVERY, wake.notified()).await;
                loop {
                    let Some(inner) = weak.upgrade() else { return };
                    match tokio::time::timeout(DISCOVER_TIMEOUT, inner.link.rediscover()).await {
                        Ok(Ok(None)) => break,
                        Ok(Ok(Some(addr))) => {
                            // Nothing cached can be trusted across a switch; the subscriber sees
                            // the new epoch and re-subscribes on the new primary.
                            inner.cache.lost();
                            tracing::warn!(primary = %addr, "redis primary changed: following the sentinels");
                            break;
                        }
                        Ok(Err(e)) => {
                            tracing::warn!(error = %store_error("sentinel", &e), "no redis primary confirmed yet; failing closed")
                        }
                        Err(_) => tracing::warn!(
                            "no redis primary confirmed yet (sentinel timed out); failing closed"
                        ),
                    }
                    drop(inner);
                    tokio::time::sleep(REDISCOVER_PAUSE).await;
                }
                tokio::time::sleep(REDISCOVER_PAUSE).await;
            }
        });
    }
}

/// Pause between two looks for the primary.
const REDISCOVER_PAUSE: Duration = Duration::from_millis(250);
/// A look for the primary without any failure, at least this often.
const RECHECK_EVERY: Duration = Duration::from_secs(5);

/// Holds one subscription to the invalidation channel until it fails; returns why.
/// The cache is marked live only by this replica's own heartbeat arriving, which proves that
/// messages published now reach it; a heartbeat late by more than `LIVE_FOR` ends the listen.
async fn listen(inner: &Arc<Inner>) -> String {
    use futures_util::StreamExt as _;
    let node = inner.link.node();
    let mut pubsub =
        match tokio::time::timeout(CONNECT_TIMEOUT, node.client.get_async_pubsub()).await {
            Ok(Ok(p)) => p,
            Ok(Err(e)) => return store_error("subscribe", &e).to_string(),
            Err(_) => return "subscribe: connect timed out".into(),
        };
    match tokio::time::timeout(COMMAND_TIMEOUT, pubsub.subscribe(&inner.channel)).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => return store_error("subscribe", &e).to_string(),
        Err(_) => return "subscribe: timed out".into(),
    }
    let mut messages = pubsub.into_on_message();
    let beat = format!("hb:{}", random_id(12));
    let mut tick = tokio::time::interval(HEARTBEAT_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_beat = tokio::time::Instant::now();
    loop {
        tokio::select! {
            m = messages.next() => {
                let Some(m) = m else { return "subscription closed".into() };
                let payload = m.get_payload_bytes();
                if payload == beat.as_bytes() {
                    last_beat = tokio::time::Instant::now();
                    if !inner.cache.is_live() {
                        tracing::info!(channel = %inner.channel, "session cache on: invalidation subscription live");
                    }
                    inner.cache.heartbeat();
                } else if !payload.starts_with(b"hb:") {
                    // Session ids are base64url; anything else invalidates nothing, harmlessly.
                    if let Ok(id) = std::str::from_utf8(payload) {
                        inner.cache.invalidate(&SessionId::from_text(id.to_owned()));
                    }
                }
            }
            _ = tick.tick() => {
                if last_beat.elapsed() > LIVE_FOR * 2 {
                    return "heartbeat not seen".into();
                }
                if inner.link.node().epoch != node.epoch {
                    return "the primary changed".into();
                }
                // Sent on the shared connection, not awaited here: the loop keeps reading. A
                // heartbeat Redis refuses or does not take in time means it is gone or unwell:
                // the cache is dropped at once rather than when its trust window runs out.
                // Through the same node as the subscription: a heartbeat that comes back proves
                // that node's invalidations reach this replica.
                let mut c = node.conn.clone();
                let cmd = redis::cmd("PUBLISH").arg(&inner.channel).arg(&beat).to_owned();
                let weak = Arc::downgrade(inner);
                tokio::spawn(async move {
                    let sent = tokio::time::timeout(
                        HEARTBEAT_EVERY * 2,
                        cmd.query_async::<i64>(&mut c),
                    )
                    .await;
                    if !matches!(sent, Ok(Ok(_))) {
                        if let Some(inner) = weak.upgrade() {
                            inner.cache.lost();
                        }
                    }
                });
            }
        }
    }
}
