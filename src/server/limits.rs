//! Per-connection limits applied at accept time: how many connections one client address may
//! hold, a deadline for a connection's first bytes, and a guard that cuts a connection whose
//! response writes stall (a client that stops reading). All keep a slow or hostile client from
//! holding resources other clients need.

use dashmap::mapref::entry::Entry;
use dashmap::DashMap;
use std::io;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Sleep;

/// Open connections per client address, bounded by `max` (0: unlimited, nothing tracked).
pub struct PerIp {
    max: usize,
    counts: DashMap<IpAddr, usize>,
}

/// One counted connection; dropping it gives the slot back.
pub struct IpSlot {
    ip: IpAddr,
    table: Arc<PerIp>,
}

impl PerIp {
    pub fn new(max: usize) -> Arc<PerIp> {
        Arc::new(PerIp {
            max,
            counts: DashMap::new(),
        })
    }

    /// A slot for `ip`, or None when it already holds `max` connections.
    pub fn try_acquire(self: &Arc<Self>, ip: IpAddr) -> Option<Option<IpSlot>> {
        if self.max == 0 {
            return Some(None);
        }
        let mut n = self.counts.entry(ip).or_insert(0);
        if *n >= self.max {
            return None;
        }
        *n += 1;
        Some(Some(IpSlot {
            ip,
            table: Arc::clone(self),
        }))
    }

    #[cfg(test)]
    fn held(&self, ip: IpAddr) -> usize {
        self.counts.get(&ip).map_or(0, |n| *n)
    }
}

impl Drop for IpSlot {
    fn drop(&mut self) {
        if let Entry::Occupied(mut o) = self.table.counts.entry(self.ip) {
            let n = o.get_mut();
            *n = n.saturating_sub(1);
            // Bounded: an address without connections leaves no entry behind.
            if *n == 0 {
                o.remove();
            }
        }
    }
}

/// Wraps a connection's transport: a write (or flush) that stays pending for `timeout` fails
/// with `TimedOut`, which ends the connection. Progress resets the clock, so slow but live
/// downloads are unaffected; the timer exists only while a write is blocked.
pub struct SendGuard<T> {
    inner: T,
    timeout: Duration,
    stalled: Option<Pin<Box<Sleep>>>,
    on_timeout: Option<Box<dyn FnOnce() + Send + Sync>>,
}

impl<T> SendGuard<T> {
    pub fn new(inner: T, timeout: Duration, on_timeout: Box<dyn FnOnce() + Send + Sync>) -> Self {
        SendGuard {
            inner,
            timeout,
            stalled: None,
            on_timeout: Some(on_timeout),
        }
    }

    fn guard<R>(&mut self, cx: &mut Context<'_>, r: Poll<io::Result<R>>) -> Poll<io::Result<R>> {
        match r {
            Poll::Ready(r) => {
                self.stalled = None;
                Poll::Ready(r)
            }
            Poll::Pending => {
                let timeout = self.timeout;
                let sleep = self
                    .stalled
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
                match sleep.as_mut().poll(cx) {
                    Poll::Ready(()) => {
                        if let Some(f) = self.on_timeout.take() {
                            f();
                        }
                        Poll::Ready(Err(io::Error::new(
                            io::ErrorKind::TimedOut,
                            "the client stopped reading",
                        )))
                    }
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }
}

use std::future::Future as _;

impl<T: AsyncRead + Unpin> AsyncRead for SendGuard<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for SendGuard<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.guard(cx, r)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.guard(cx, r)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let r = Pin::new(&mut self.inner).poll_flush(cx);
        self.guard(cx, r)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let r = Pin::new(&mut self.inner).poll_shutdown(cx);
        self.guard(cx, r)
    }
}

/// A deadline for a connection's first bytes: `hyper_util`'s protocol detection reads the
/// HTTP/2 preface (24 bytes) before hyper's own request-head timeout applies, with no deadline
/// of its own, so a client trickling `PRI * HTTP/2.0…` could hold a connection for ever. Until
/// `FIRST_BYTES` have been read, reads fail with `TimedOut` once `timeout` has passed since
/// the connection was accepted; after that the wrapper only forwards.
pub struct FirstBytes<T> {
    inner: T,
    remaining: usize,
    deadline: Option<Pin<Box<Sleep>>>,
}

/// The HTTP/2 connection preface is 24 bytes long.
const FIRST_BYTES: usize = 24;

impl<T> FirstBytes<T> {
    pub fn new(inner: T, timeout: Duration) -> Self {
        Self {
            inner,
            remaining: FIRST_BYTES,
            deadline: Some(Box::pin(tokio::time::sleep(timeout))),
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for FirstBytes<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        if self.deadline.is_none() {
            return r;
        }
        match r {
            Poll::Ready(Ok(())) => {
                let got = buf.filled().len().saturating_sub(before);
                self.remaining = self.remaining.saturating_sub(got);
                if self.remaining == 0 || got == 0 {
                    // Enough read (or end of stream): no deadline any more.
                    self.deadline = None;
                }
                Poll::Ready(Ok(()))
            }
            Poll::Pending => match self.deadline.as_mut().map(|d| d.as_mut().poll(cx)) {
                Some(Poll::Ready(())) => Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "the first bytes of the connection did not arrive in time",
                ))),
                _ => Poll::Pending,
            },
            other => other,
        }
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for FirstBytes<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Resolves once the stop flag is set (or its sender is gone).
pub async fn until_stopped(rx: &mut tokio::sync::watch::Receiver<bool>) {
    loop {
        if *rx.borrow_and_update() {
            return;
        }
        if rx.changed().await.is_err() {
            return;
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    #[test]
    fn per_ip_slots_are_bounded_and_given_back() {
        let t = PerIp::new(2);
        let ip: IpAddr = "192.0.2.7".parse().unwrap();
        let other: IpAddr = "192.0.2.8".parse().unwrap();
        let a = t.try_acquire(ip).unwrap();
        let b = t.try_acquire(ip).unwrap();
        assert!(t.try_acquire(ip).is_none(), "a third is refused");
        assert!(
            t.try_acquire(other).is_some(),
            "other addresses are not affected"
        );
        drop(a);
        assert_eq!(t.held(ip), 1);
        assert!(t.try_acquire(ip).is_some(), "a freed slot is usable again");
        drop(b);
        assert_eq!(t.held(ip), 0);
        assert!(t.counts.is_empty(), "no entry left behind");
        assert!(
            matches!(PerIp::new(0).try_acquire(ip), Some(None)),
            "0: unlimited"
        );
    }

    #[tokio::test]
    async fn the_first_bytes_have_a_deadline_and_later_ones_do_not() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        // Trickled: 10 of the 24 bytes, then nothing: the read fails at the deadline.
        let (mut client, server) = tokio::io::duplex(1024);
        let mut g = FirstBytes::new(server, Duration::from_millis(200));
        client.write_all(b"PRI * HTTP").await.unwrap();
        let mut buf = [0u8; 64];
        assert_eq!(g.read(&mut buf).await.unwrap(), 10);
        let t = std::time::Instant::now();
        let err = g.read(&mut buf).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        assert!(t.elapsed() < Duration::from_secs(2));
        // All 24 in time: later reads may wait as long as they like.
        let (mut client, server) = tokio::io::duplex(1024);
        let mut g = FirstBytes::new(server, Duration::from_millis(100));
        client.write_all(&[b'x'; 24]).await.unwrap();
        assert_eq!(g.read(&mut buf).await.unwrap(), 24);
        let late = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(300)).await;
            client.write_all(b"more").await.unwrap();
            client
        });
        assert_eq!(
            g.read(&mut buf).await.unwrap(),
            4,
            "no deadline after the first bytes"
        );
        drop(late.await.unwrap());
    }

    #[tokio::test]
    async fn a_stalled_write_times_out_and_progress_does_not() {
        // A pipe whose reader never reads: writes fill the buffer, then stall.
        let (client, _server) = tokio::io::duplex(1024);
        let fired = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let f = Arc::clone(&fired);
        let mut g = SendGuard::new(
            client,
            Duration::from_millis(100),
            Box::new(move || f.store(true, std::sync::atomic::Ordering::SeqCst)),
        );
        let t = std::time::Instant::now();
        let err = g.write_all(&vec![0u8; 64 * 1024]).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        assert!(t.elapsed() < Duration::from_secs(2));
        assert!(fired.load(std::sync::atomic::Ordering::SeqCst));

        // A reader that keeps reading, slowly: no timeout even though the total takes longer.
        let (client, mut server) = tokio::io::duplex(1024);
        let mut g = SendGuard::new(client, Duration::from_millis(100), Box::new(|| {}));
        let reader = tokio::spawn(async move {
            use tokio::io::AsyncReadExt;
            let mut buf = [0u8; 512];
            let mut n = 0;
            while n < 16 * 1024 {
                tokio::time::sleep(Duration::from_millis(10)).await;
                n += server.read(&mut buf).await.unwrap();
            }
        });
        g.write_all(&vec![0u8; 16 * 1024]).await.unwrap();
        reader.await.unwrap();
    }
}
