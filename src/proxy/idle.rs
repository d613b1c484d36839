//! Keep-alive connections to the upstream while idle, and opening new ones: one mechanism for
//! hyper's pool (general path) and the fast lane's raw pool.
//! Invariants: at most `max_idle` idle; `take` returns only a connection that says it is
//! alive and, checked on the socket itself right before, has received nothing since its last
//! response (DESIGN.md §6: bytes that arrive on an idle connection are never read as the next
//! request's response); a watcher closes an idle connection on which anything arrives, and
//! those idle past `idle_timeout` or dead.
//!
//! Why a system call before reuse: the runtime learns that a socket became readable only when
//! its I/O driver next polls the kernel, so between an upstream's late bytes (a second
//! response, a HEAD body) and that poll, a readiness-based check still sees an idle socket.
//! Under load that gap is when connections are reused. `quiet` asks the kernel (one
//! non-blocking `recv(MSG_PEEK)`, about a third of a microsecond when there is nothing).

use super::error::ProxyError;
use std::io;
use std::mem::MaybeUninit;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{ready, Context, Poll};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite, Interest, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::Notify;

/// A pooled connection.
pub trait Idle: Send + 'static {
    /// Whether the pool's watcher registers for `poll_arrival` (false: the connection has a
    /// task of its own that reads while idle, as hyper's do).
    const WATCHED: bool;
    /// Whether it can take a request now as far as known without a system call (not closed,
    /// nothing seen arriving). Called under the pool's lock: must not block.
    fn alive(&self) -> bool;
    /// Ready once something arrived on the idle connection (or it closed); else registers `cx`
    /// to be woken when it does. Called under the pool's lock: must not block.
    fn poll_arrival(&self, cx: &mut Context<'_>) -> Poll<()>;
    /// Right before reuse: the socket has nothing to read (asks the kernel, outside the lock).
    fn quiet(&self) -> bool;
}

/// Whether nothing is waiting to be read on `socket`: one non-blocking `recv(MSG_PEEK)` (the
/// socket is non-blocking), which sees bytes the runtime has not been told about yet.
pub fn socket_quiet(socket: &TcpStream) -> bool {
    let mut probe = [MaybeUninit::<u8>::uninit(); 1];
    match socket2::SockRef::from(socket).peek(&mut probe) {
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => true,
        // Closed by the upstream: not usable, nothing to report.
        Ok(0) => false,
        Ok(_) => {
            tracing::warn!(
                "upstream sent bytes on an idle keep-alive connection; connection closed"
            );
            false
        }
        Err(_) => false,
    }
}

/// The watcher passes over the idle connections at most this often, however busy the pool.
const WATCH_PACE: Duration = Duration::from_millis(50);

/// Idle connections, most recently used last.
pub struct IdlePool<T> {
    idle: Mutex<Vec<(T, Instant)>>,
    max_idle: usize,
    idle_timeout: Duration,
    reaper: AtomicBool,
    /// Tells the watcher a connection was put back, so it watches that one too. Shared with
    /// the watcher apart from the pool, which the watcher holds only weakly.
    added: Arc<Notify>,
    /// The watcher waits for `added` (set by it, cleared by the first `put` that notifies):
    /// while it paces, a `put` costs one relaxed load.
    watching: Arc<AtomicBool>,
}

impl<T: Idle> IdlePool<T> {
    pub fn new(max_idle: usize, idle_timeout: Duration) -> Arc<Self> {
        Arc::new(IdlePool {
            idle: Mutex::new(Vec::new()),
            max_idle,
            idle_timeout,
            reaper: AtomicBool::new(false),
            added: Arc::new(Notify::new()),
            watching: Arc::new(AtomicBool::new(false)),
        })
    }

    /// The most recently used connection that is alive and quiet (dropped, hence closed,
    /// otherwise). No clock is read here (this runs on every proxied request): age is the
    /// reaper's, every half `idle_timeout`, so a connection may serve up to 1.5 ×
    /// `idle_timeout` after its last use; one the upstream closes after `quiet` is caught by
    /// the caller's retry.
    pub fn take(&self) -> Option<T> {
        loop {
            let c = {
                let mut idle = self.idle.lock().ok()?;
                loop {
                    let (c, _) = idle.pop()?;
                    if c.alive() {
                        break c;
                    }
                }
            };
            // Outside the lock: a system call. Fail closed: anything to read, and it goes.
            if c.quiet() {
                return Some(c);
            }
        }
    }

    /// Keeps a connection for reuse (dropped, hence closed, when the pool is full).
    /// `since`: when it was last used.
    pub fn put(&self, c: T, since: Instant) {
        if let Ok(mut idle) = self.idle.lock() {
            if idle.len() < self.max_idle {
                idle.push((c, since));
            }
        }
        // Relaxed is enough: the lock above orders this after the watcher's last scan, which
        // came after it set the flag, so a connection is either scanned or announced.
        if T::WATCHED
            && self.watching.load(Ordering::Relaxed)
            && self.watching.swap(false, Ordering::Relaxed)
        {
            self.added.notify_one();
        }
    }

    /// Ready when something arrived on an idle connection; registers `cx` on every other.
    fn poll_watch(&self, cx: &mut Context<'_>) -> Poll<()> {
        let Ok(idle) = self.idle.lock() else {
            return Poll::Ready(());
        };
        let mut arrived = false;
        for (c, _) in idle.iter() {
            arrived |= c.poll_arrival(cx).is_ready();
        }
        if arrived {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }

    /// Closes connections idle for `idle_timeout` or more, and dead ones.
    fn reap(&self) {
        let now = Instant::now();
        // In place: the watcher passes here up to every `WATCH_PACE` under load, and a pass
        // that closes nothing allocates nothing (tests/alloc.rs).
        let expired: Vec<_> = match self.idle.lock() {
            Ok(mut idle) => idle
                .extract_if(.., |(c, since)| {
                    now.saturating_duration_since(*since) >= self.idle_timeout || !c.alive()
                })
                .collect(),
            Err(_) => return,
        };
        // Closed outside the lock.
        drop(expired);
    }

    /// Starts the reaper once (it ends when the pool is dropped). It closes connections idle
    /// too long every half `idle_timeout`, and, for watched pools, any idle connection on which
    /// something arrives, as soon as the runtime reports it (a connection put back is watched
    /// from the next pass, at most `WATCH_PACE` later; until then `take` catches it).
    pub fn start_reaper(self: &Arc<Self>) {
        if self.reaper.swap(true, Ordering::Relaxed) {
            return;
        }
        let weak = Arc::downgrade(self);
        let added = Arc::clone(&self.added);
        let watching = Arc::clone(&self.watching);
        let every = (self.idle_timeout / 2).max(Duration::from_millis(100));
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                // The pool is held only while polled, so dropping it ends this task.
                let watch = std::future::poll_fn(|cx| match weak.upgrade() {
                    Some(p) if T::WATCHED => p.poll_watch(cx),
                    Some(_) => Poll::Pending,
                    None => Poll::Ready(()),
                });
                // Set before the first scan (the select's first poll of `watch`).
                watching.store(T::WATCHED, Ordering::Relaxed);
                tokio::select! {
                    _ = tick.tick() => {}
                    () = watch => {}
                    () = added.notified(), if T::WATCHED => {}
                }
                watching.store(false, Ordering::Relaxed);
                match weak.upgrade() {
                    Some(p) => p.reap(),
                    None => return,
                }
                if T::WATCHED {
                    tokio::time::sleep(WATCH_PACE).await;
                }
            }
        });
    }
}

/// The general path's upstream socket: hyper's connection task owns it, and its pool entry
/// keeps a `Weak` to ask the kernel right before reuse (`socket_quiet`), so the socket still
/// closes the moment hyper drops it (hyper's task reads while idle and ends the connection on
/// any unsolicited byte).
pub struct SharedSocket(Arc<TcpStream>);

impl SharedSocket {
    pub fn new(stream: TcpStream) -> (SharedSocket, std::sync::Weak<TcpStream>) {
        let s = Arc::new(stream);
        let weak = Arc::downgrade(&s);
        (SharedSocket(s), weak)
    }
}

impl AsyncRead for SharedSocket {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let s = &*self.0;
        loop {
            ready!(s.poll_read_ready(cx))?;
            let want = buf.remaining();
            let before = buf.filled().len();
            // As tokio's own `poll_read` (`PollEvented`): a read that leaves room shows the
            // socket drained, so readiness is cleared, with the readiness seen before the read,
            // and the next read waits instead of making a system call that would block.
            let r = s.try_io(Interest::READABLE, || match s.try_read_buf(buf)? {
                n if 0 < n && n < want => Err(io::ErrorKind::WouldBlock.into()),
                n => Ok(n),
            });
            let got = buf.filled().len() - before;
            match r {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock && got == 0 => continue,
                Err(e) if e.kind() != io::ErrorKind::WouldBlock => return Poll::Ready(Err(e)),
                _ => return Poll::Ready(Ok(())),
            }
        }
    }
}

impl AsyncWrite for SharedSocket {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let s = &*self.0;
        loop {
            ready!(s.poll_write_ready(cx))?;
            match s.try_write(buf) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                r => return Poll::Ready(r),
            }
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let s = &*self.0;
        loop {
            ready!(s.poll_write_ready(cx))?;
            match s.try_write_vectored(bufs) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                r => return Poll::Ready(r),
            }
        }
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(socket2::SockRef::from(&*self.0).shutdown(std::net::Shutdown::Write))
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

    /// (id, alive, quiet)
    struct Fake(u32, Arc<AtomicBool>, bool);

    impl Idle for Fake {
        const WATCHED: bool = false;
        fn alive(&self) -> bool {
            self.1.load(Ordering::Relaxed)
        }
        fn poll_arrival(&self, _: &mut Context<'_>) -> Poll<()> {
            Poll::Pending
        }
        fn quiet(&self) -> bool {
            self.2
        }
    }

    #[test]
    fn a_connection_that_is_not_quiet_is_dropped_and_the_next_one_taken() {
        let pool = IdlePool::new(4, Duration::from_secs(60));
        let live = Arc::new(AtomicBool::new(true));
        let now = Instant::now();
        pool.put(Fake(1, Arc::clone(&live), true), now);
        pool.put(Fake(2, Arc::clone(&live), false), now);
        assert_eq!(pool.take().map(|f| f.0), Some(1));
        assert!(pool.take().is_none());
    }

    #[test]
    fn the_most_recent_live_connection_is_taken_and_the_pool_is_bounded() {
        let pool = IdlePool::new(2, Duration::from_secs(60));
        let live = Arc::new(AtomicBool::new(true));
        let dead = Arc::new(AtomicBool::new(false));
        let now = Instant::now();
        pool.put(Fake(1, Arc::clone(&live), true), now);
        pool.put(Fake(2, Arc::clone(&dead), true), now);
        pool.put(Fake(3, Arc::clone(&live), true), now); // over max_idle: dropped
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
        pool.put(Fake(1, Arc::clone(&live), true), old);
        pool.put(Fake(2, Arc::clone(&dying), true), now);
        pool.put(Fake(3, Arc::clone(&live), true), now);
        dying.store(false, Ordering::Relaxed);
        pool.reap();
        let left: Vec<u32> = pool.idle.lock().unwrap().iter().map(|(f, _)| f.0).collect();
        assert_eq!(left, [3]);
    }
}
