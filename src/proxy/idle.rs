//! Keep-alive connections to the upstream while idle, and opening new ones: one mechanism for
//! hyper's pool (general path) and the fast lane's raw pool.
//! Invariants: at most `max_idle` idle; `take` returns only a connection that says it is
//! alive, most recently used first; a reaper closes those idle past `idle_timeout` or dead.

use super::forward::ProxyError;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::net::TcpStream;

/// A pooled connection.
pub trait Idle: Send + 'static {
    /// Whether it can take a request now (not closed by the upstream meanwhile). Called under
    /// the pool's lock: must not block.
    fn alive(&self) -> bool;
}

/// Idle connections, most recently used last.
pub struct IdlePool<T> {
    idle: Mutex<Vec<(T, Instant)>>,
    max_idle: usize,
    idle_timeout: Duration,
    reaper: AtomicBool,
}

impl<T: Idle> IdlePool<T> {
    pub fn new(max_idle: usize, idle_timeout: Duration) -> Arc<Self> {
        Arc::new(IdlePool {
            idle: Mutex::new(Vec::new()),
            max_idle,
            idle_timeout,
            reaper: AtomicBool::new(false),
        })
    }

    /// The most recently used connection that is alive. No clock is read here (this runs on
    /// every proxied request): age is the reaper's, every half `idle_timeout`, so a connection
    /// may serve up to 1.5 × `idle_timeout` after its last use; one the upstream closed
    /// meanwhile is caught by `alive` or by the caller's retry.
    pub fn take(&self) -> Option<T> {
        let mut idle = self.idle.lock().ok()?;
        while let Some((c, _)) = idle.pop() {
            if c.alive() {
                return Some(c);
            }
        }
        None
    }

    /// Keeps a connection for reuse (dropped, hence closed, when the pool is full).
    /// `since`: when it was last used.
    pub fn put(&self, c: T, since: Instant) {
        if let Ok(mut idle) = self.idle.lock() {
            if idle.len() < self.max_idle {
                idle.push((c, since));
            }
        }
    }

    /// Closes connections idle for `idle_timeout` or more, and dead ones.
    fn reap(&self) {
        let now = Instant::now();
        let expired: Vec<_> = match self.idle.lock() {
            Ok(mut idle) => {
                let (keep, expired) =
                    std::mem::take(&mut *idle)
                        .into_iter()
                        .partition(|(c, since)| {
                            now.saturating_duration_since(*since) < self.idle_timeout && c.alive()
                        });
                *idle = keep;
                expired
            }
            Err(_) => return,
        };
        // Closed outside the lock.
        drop(expired);
    }

    /// Starts the reaper once (it ends when the pool is dropped).
    pub fn start_reaper(self: &Arc<Self>) {
        if self.reaper.swap(true, Ordering::Relaxed) {
            return;
        }
        let weak = Arc::downgrade(self);
        let every = (self.idle_timeout / 2).max(Duration::from_millis(100));
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                match weak.upgrade() {
                    Some(p) => p.reap(),
                    None => return,
                }
            }
        });
    }
}

/// Opens a TCP connection to the upstream within `timeout`, with Nagle off.
pub async fn connect(authority: &str, timeout: Duration) -> Result<TcpStream, ProxyError> {
    let stream = match tokio::time::timeout(timeout, TcpStream::connect(authority)).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => return Err(ProxyError::Unavailable(format!("connect: {e}"))),
        Err(_) => {
            return Err(ProxyError::Unavailable(
                "connect: connection timed out".into(),
            ))
        }
    };
    stream
        .set_nodelay(true)
        .map_err(|e| ProxyError::Unavailable(format!("connect: {e}")))?;
    Ok(stream)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicBool;

    struct Fake(u32, Arc<AtomicBool>);

    impl Idle for Fake {
        fn alive(&self) -> bool {
            self.1.load(Ordering::Relaxed)
        }
    }

    #[test]
    fn the_most_recent_live_connection_is_taken_and_the_pool_is_bounded() {
        let pool = IdlePool::new(2, Duration::from_secs(60));
        let live = Arc::new(AtomicBool::new(true));
        let dead = Arc::new(AtomicBool::new(false));
        let now = Instant::now();
        pool.put(Fake(1, Arc::clone(&live)), now);
        pool.put(Fake(2, Arc::clone(&dead)), now);
        pool.put(Fake(3, Arc::clone(&live)), now); // over max_idle: dropped
        assert_eq!(pool.take().map(|f| f.0), Some(1), "the dead one is skipped");
        assert!(pool.take().is_none());
    }

    #[test]
    fn the_reaper_closes_old_and_dead_connections() {
        let pool = IdlePool::new(8, Duration::from_secs(60));
        let live = Arc::new(AtomicBool::new(true));
        let dying = Arc::new(AtomicBool::new(true));
        let now = Instant::now();
        let old = now.checked_sub(Duration::from_secs(61)).unwrap();
        pool.put(Fake(1, Arc::clone(&live)), old);
        pool.put(Fake(2, Arc::clone(&dying)), now);
        pool.put(Fake(3, Arc::clone(&live)), now);
        dying.store(false, Ordering::Relaxed);
        pool.reap();
        let left: Vec<u32> = pool.idle.lock().unwrap().iter().map(|(f, _)| f.0).collect();
        assert_eq!(left, [3]);
    }
}
