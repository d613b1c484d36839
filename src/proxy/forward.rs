//! Forwarding to the upstream for the general path: one pooled keep-alive hyper client, bodies
//! streamed both ways (never buffered), WebSocket upgrades spliced, and failures mapped to
//! `ProxyError` (502/504). Bodiless GET/HEAD from the HTTP/1.1 fast lane use `h1::Lane` instead.
//! Invariants: a connection is spliced only after a 101 that answers the client's WebSocket
//! handshake (`Upgrade: websocket` and the right `Sec-WebSocket-Accept`); any other 101 is a
//! 502 and its connection is closed. A connection goes back to the pool only after a complete
//! response (never after a HEAD, whose announced body a faulty upstream may still send), and is
//! taken again only if nothing arrived on it meanwhile (`idle::IdlePool::take`).
//! An https upstream (`proxy::tls`) that picks `h2` by ALPN gets one shared, multiplexed
//! HTTP/2 connection instead of the HTTP/1.1 pool (stream ids, not order, tie a response to
//! its request there); a WebSocket handshake always goes over an HTTP/1.1 connection (one
//! that offers only `http/1.1` when a new one is needed).

use super::error::ProxyError;
use crate::config::UpstreamConfig;
use bytes::Bytes;
use http_body_util::Full;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::client::conn::http1::SendRequest;
use hyper::client::conn::http2;
use hyper::header::{HeaderValue, HOST};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

/// A response body: streamed from the upstream, or made by the gateway.
pub enum GatewayBody {
    Upstream(ResponseBody),
    Full(Full<Bytes>),
}

impl GatewayBody {
    pub fn empty() -> Self {
        GatewayBody::Full(Full::new(Bytes::new()))
    }
}

impl From<String> for GatewayBody {
    fn from(s: String) -> Self {
        GatewayBody::Full(Full::new(Bytes::from(s)))
    }
}

impl From<&'static str> for GatewayBody {
    fn from(s: &'static str) -> Self {
        GatewayBody::Full(Full::new(Bytes::from_static(s.as_bytes())))
    }
}

impl From<Vec<u8>> for GatewayBody {
    fn from(s: Vec<u8>) -> Self {
        GatewayBody::Full(Full::new(Bytes::from(s)))
    }
}

impl Body for GatewayBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        match self.get_mut() {
            GatewayBody::Upstream(b) => Pin::new(b).poll_frame(cx),
            GatewayBody::Full(b) => match Pin::new(b).poll_frame(cx) {
                Poll::Ready(Some(Ok(f))) => Poll::Ready(Some(Ok(f))),
                Poll::Ready(Some(Err(never))) => match never {},
                Poll::Ready(None) => Poll::Ready(None),
                Poll::Pending => Poll::Pending,
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            GatewayBody::Upstream(b) => b.is_end_stream(),
            GatewayBody::Full(b) => b.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            GatewayBody::Upstream(b) => b.size_hint(),
            GatewayBody::Full(b) => b.size_hint(),
        }
    }
}

/// The request body on its way upstream; tells `Upstream::send` when the last byte went, so
/// the response timeout does not count the time a large upload takes.
pub struct UpstreamBody {
    inner: Incoming,
    done: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Body for UpstreamBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.inner).poll_frame(cx);
        if let Poll::Ready(None) = r {
            if let Some(tx) = this.done.take() {
                let _ = tx.send(());
            }
        }
        r
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// A keep-alive HTTP/1.1 connection to the upstream: hyper's sender, and the socket its
/// connection task owns (weakly: closed when that task ends).
struct Pooled {
    sender: SendRequest<UpstreamBody>,
    socket: std::sync::Weak<tokio::net::TcpStream>,
}

/// A connection checked out of the pool.
struct Conn {
    upstream: Pooled,
    pool: Arc<Pool>,
    /// False for upgrade and HEAD requests: such a connection is never given back.
    reuse: bool,
}

impl Conn {
    /// Gives the connection back once the response has been read to the end.
    fn release(self) {
        let Conn {
            mut upstream,
            pool,
            reuse,
        } = self;
        if !reuse || upstream.sender.is_closed() {
            return;
        }
        if upstream.sender.is_ready() {
            pool.put(upstream, Instant::now());
            return;
        }
        // The connection task has not yet seen the end of the exchange: give it back once
        // it is ready again (rare; dropped if it closes instead).
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move {
                if upstream.sender.ready().await.is_ok() {
                    pool.put(upstream, Instant::now());
                }
            });
        }
    }
}

type Pool = super::idle::IdlePool<Pooled>;

impl super::idle::Idle for Pooled {
    /// hyper's connection task reads while idle and ends the connection on any byte
    /// (`require_empty_read`): nothing for the pool's watcher to do.
    const WATCHED: bool = false;

    fn alive(&self) -> bool {
        self.sender.is_ready() && self.socket.strong_count() > 0
    }

    fn poll_arrival(&self, _: &mut std::task::Context<'_>) -> Poll<()> {
        if self.alive() {
            Poll::Pending
        } else {
            Poll::Ready(())
        }
    }

    /// hyper's task may not have been woken for bytes that already arrived: the kernel says.
    fn quiet(&self) -> bool {
        self.socket
            .upgrade()
            .is_some_and(|s| super::idle::socket_quiet(&s))
    }
}

/// The response body from the upstream; gives the connection back to the pool when it has
/// been read to the end (and drops it on an error or an early drop).
pub struct ResponseBody {
    inner: Incoming,
    conn: Option<Conn>,
    ended: bool,
}

impl ResponseBody {
    fn finish(&mut self) {
        if let Some(c) = self.conn.take() {
            if self.ended || self.inner.is_end_stream() {
                c.release();
            }
        }
    }
}

impl Drop for ResponseBody {
    fn drop(&mut self) {
        self.finish();
    }
}

impl Body for ResponseBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.inner).poll_frame(cx);
        match &r {
            Poll::Ready(None) => {
                this.ended = true;
                this.finish();
            }
            Poll::Ready(Some(Err(_))) => this.conn = None,
            _ => {}
        }
        r
    }

    fn is_end_stream(&self) -> bool {
        self.ended || self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// The client to the one upstream: a small pool of HTTP/1.1 keep-alive connections.
#[derive(Clone)]
pub struct Upstream {
    pool: Arc<Pool>,
    /// Raw connections for the HTTP/1.1 fast lane (`server::fast`), pooled apart from hyper's.
    pub lane: Arc<super::h1::Lane>,
    /// `Host` for requests that came without one.
    host: Option<HeaderValue>,
    /// The shared HTTP/2 connection, when an https upstream chose `h2`.
    h2: Arc<SharedH2>,
    pub config: UpstreamConfig,
}

/// One HTTP/2 connection that every request shares (DESIGN.md §9: multiplexed, not pooled).
#[derive(Default)]
struct SharedH2 {
    sender: std::sync::Mutex<Option<http2::SendRequest<UpstreamBody>>>,
    /// Held while a new connection is made, so a burst of requests opens one, not one each.
    connecting: tokio::sync::Mutex<()>,
    /// The last new connection was HTTP/1.1: new ones are made without waiting for others.
    speaks_h1: AtomicBool,
}

impl SharedH2 {
    /// The shared sender while its connection is open (cheap clone).
    fn current(&self) -> Option<http2::SendRequest<UpstreamBody>> {
        let mut s = self.sender.lock().ok()?;
        match &*s {
            Some(x) if !x.is_closed() => Some(x.clone()),
            Some(_) => {
                *s = None;
                None
            }
            None => None,
        }
    }

    fn set(&self, sender: http2::SendRequest<UpstreamBody>) {
        if let Ok(mut s) = self.sender.lock() {
            *s = Some(sender);
        }
    }
}

/// A new connection: HTTP/1.1 (plain, or TLS without `h2`) or HTTP/2 (TLS with `h2`).
enum Link {
    H1(Pooled),
    H2(http2::SendRequest<UpstreamBody>),
}

/// The request as HTTP/2 sends it: the target in absolute form (`:scheme`, `:authority`
/// from `Host`, which HTTP/2 does not carry; RFC 9113 §8.3.1).
fn to_h2<B>(mut req: Request<B>) -> Result<Request<B>, ProxyError> {
    // RFC 9113 §8.3.1: no user info in :authority (an upstream could take the part after
    // `@` as the host), and one is required.
    let authority = req
        .headers()
        .get(HOST)
        .filter(|h| !h.as_bytes().contains(&b'@'))
        .and_then(|h| hyper::http::uri::Authority::try_from(h.as_bytes()).ok())
        .ok_or(ProxyError::BadHost)?;
    req.headers_mut().remove(HOST);
    let mut parts = req.uri().clone().into_parts();
    parts.scheme = Some(hyper::http::uri::Scheme::HTTPS);
    parts.authority = Some(authority);
    if parts.path_and_query.is_none() {
        parts.path_and_query = Some(hyper::http::uri::PathAndQuery::from_static("/"));
    }
    *req.uri_mut() = hyper::Uri::from_parts(parts)
        .map_err(|e| ProxyError::Unavailable(format!("h2 target: {e}")))?;
    *req.version_mut() = hyper::Version::HTTP_2;
    Ok(req)
}

/// `to_h2` undone, for a request an HTTP/2 connection gave back unsent.
fn to_h1<B>(mut req: Request<B>) -> Request<B> {
    if let Some(a) = req.uri().authority() {
        if let Ok(h) = HeaderValue::from_str(a.as_str()) {
            req.headers_mut().insert(HOST, h);
        }
    }
    let pq = req.uri().path_and_query().cloned();
    if let Some(pq) = pq {
        let mut parts = hyper::http::uri::Parts::default();
        parts.path_and_query = Some(pq);
        if let Ok(u) = hyper::Uri::from_parts(parts) {
            *req.uri_mut() = u;
        }
    }
    *req.version_mut() = hyper::Version::HTTP_11;
    req
}

impl Upstream {
    pub fn new(config: UpstreamConfig) -> Self {
        let pool = Pool::new(config.pool_max_idle, config.pool_idle_timeout);
        let default_port = if config.tls.is_some() { ":443" } else { ":80" };
        let host = HeaderValue::from_str(
            config
                .authority
                .strip_suffix(default_port)
                .unwrap_or(&config.authority),
        )
        .ok();
        Self {
            pool,
            lane: super::h1::Lane::new(&config),
            host,
            h2: Arc::default(),
            config,
        }
    }

    /// Opens a new connection to the upstream: plain, or TLS (verified; HTTP/2 when the
    /// upstream picks it, unless `upgrade` asks for HTTP/1.1 only).
    async fn connect(&self, upgrade: bool) -> Result<Link, ProxyError> {
        let unavailable = |e: &dyn std::error::Error| ProxyError::Unavailable(error_chain(e));
        self.pool.start_reaper();
        let Some(tls) = &self.config.tls else {
            let stream =
                super::idle::connect(&self.config.authority, self.config.connect_timeout).await?;
            let (io, socket) = super::idle::SharedSocket::new(stream);
            let (sender, conn) = hyper::client::conn::http1::Builder::new()
                .handshake(TokioIo::new(io))
                .await
                .map_err(|e| unavailable(&e))?;
            tokio::spawn(async move {
                if let Err(e) = conn.with_upgrades().await {
                    tracing::debug!(error = %e, "upstream connection ended");
                }
            });
            return Ok(Link::H1(Pooled { sender, socket }));
        };
        let c = super::tls::connect(&self.config, tls, upgrade).await?;
        self.h2.speaks_h1.store(!c.h2, Ordering::Relaxed);
        if c.h2 {
            let (sender, conn) = http2::Builder::new(TokioExecutor::new())
                .handshake(TokioIo::new(c.stream))
                .await
                .map_err(|e| unavailable(&e))?;
            tokio::spawn(async move {
                if let Err(e) = conn.await {
                    tracing::debug!(error = %e, "upstream h2 connection ended");
                }
            });
            return Ok(Link::H2(sender));
        }
        let (sender, conn) = hyper::client::conn::http1::Builder::new()
            .handshake(TokioIo::new(c.stream))
            .await
            .map_err(|e| unavailable(&e))?;
        tokio::spawn(async move {
            if let Err(e) = conn.with_upgrades().await {
                tracing::debug!(error = %e, "upstream connection ended");
            }
        });
        Ok(Link::H1(Pooled {
            sender,
            socket: c.socket,
        }))
    }

    /// Sends on the shared HTTP/2 connection; gives the request back when that connection
    /// closed before taking it (`Err(Some)`), to go on a new one.
    async fn send_h2(
        &self,
        mut sender: http2::SendRequest<UpstreamBody>,
        req: Request<UpstreamBody>,
    ) -> Result<Response<ResponseBody>, Result<Request<UpstreamBody>, ProxyError>> {
        let req = to_h2(req).map_err(Err)?;
        match sender.try_send_request(req).await {
            Ok(resp) => Ok(resp.map(|inner| ResponseBody {
                inner,
                conn: None,
                ended: false,
            })),
            Err(mut e) => match e.take_message() {
                Some(r) => Err(Ok(to_h1(r))),
                None => Err(Err(ProxyError::Unavailable(error_chain(&e.into_error())))),
            },
        }
    }

    /// Sends on a pooled connection (or a new one); a request that a pooled connection
    /// could not take (it was closing) is sent again on another.
    async fn request(
        &self,
        mut req: Request<UpstreamBody>,
        reuse: bool,
    ) -> Result<Response<ResponseBody>, ProxyError> {
        if !req.headers().contains_key(HOST) {
            if let Some(h) = &self.host {
                req.headers_mut().insert(HOST, h.clone());
            }
        }
        // A WebSocket handshake (the only request sent with `reuse` off) needs HTTP/1.1.
        let upgrade = !reuse;
        // A HEAD response announces a body it does not carry; a faulty upstream that sends it
        // anyway, a moment later, must not have it read as the next request's response.
        let reuse = reuse && req.method() != hyper::Method::HEAD;
        // A request an HTTP/2 connection gave back goes on once more, on a new connection.
        let mut h2_retried = false;
        loop {
            if !upgrade {
                if let Some(sender) = self.h2.current() {
                    // Boxed: keeps the request future small (HTTP/2 allocates per request
                    // anyway: its stream and channels).
                    match Box::pin(self.send_h2(sender, req)).await {
                        Ok(resp) => return Ok(resp),
                        Err(Ok(r)) if !h2_retried => {
                            h2_retried = true;
                            req = r;
                            continue;
                        }
                        Err(Ok(_)) => {
                            return Err(ProxyError::Unavailable(
                                "upstream h2 connection closed before the request went".into(),
                            ))
                        }
                        Err(Err(e)) => return Err(e),
                    }
                }
            }
            let (mut upstream, pooled) = match self.pool.take() {
                Some(s) => (s, true),
                None => {
                    // A new connection to an upstream that may speak HTTP/2: one at a time,
                    // and the first one made serves everyone waiting.
                    let _one = if !upgrade
                        && self.config.tls.is_some()
                        && !self.h2.speaks_h1.load(Ordering::Relaxed)
                    {
                        let guard = self.h2.connecting.lock().await;
                        if self.h2.current().is_some() {
                            continue;
                        }
                        Some(guard)
                    } else {
                        None
                    };
                    // Boxed: connecting is rare (the pool is warm) and its future is large.
                    match Box::pin(self.connect(upgrade)).await? {
                        Link::H1(p) => (p, false),
                        Link::H2(sender) => {
                            self.h2.set(sender);
                            continue;
                        }
                    }
                }
            };
            match upstream.sender.try_send_request(req).await {
                Ok(resp) => {
                    let conn = Conn {
                        upstream,
                        pool: Arc::clone(&self.pool),
                        reuse,
                    };
                    return Ok(resp.map(|inner| ResponseBody {
                        inner,
                        conn: Some(conn),
                        ended: false,
                    }));
                }
                Err(mut e) => match e.take_message() {
                    Some(r) if pooled => req = r,
                    _ => {
                        return Err(ProxyError::Unavailable(error_chain(&e.into_error())));
                    }
                },
            }
        }
    }

    /// Sends the request and returns the response head with a streaming body. The caller has
    /// already set the URI (origin-form) and cleaned the headers.
    /// `upstream.timeout` counts from the end of the request body: an upload is not cut off
    /// for being large, only an upstream that then does not answer.
    /// A 101 here is a 502: the request asked for no upgrade (`headers::Upgrade::None`), so
    /// whatever the upstream switched to must not reach the client or be spliced. The
    /// response's hop-by-hop headers are removed (`headers::strip_response`).
    pub async fn send(&self, req: Request<Incoming>) -> Result<Response<ResponseBody>, ProxyError> {
        let mut resp = self.send_inner(req, true).await?;
        if resp.status() == StatusCode::SWITCHING_PROTOCOLS {
            // Fail closed: the connection is not given back, and closes with the response.
            resp.body_mut().conn = None;
            return Err(ProxyError::UnexpectedSwitch(
                "101 to a request without an upgrade",
            ));
        }
        super::headers::strip_response(resp.headers_mut(), false);
        Ok(resp)
    }

    async fn send_inner(
        &self,
        req: Request<Incoming>,
        reuse: bool,
    ) -> Result<Response<ResponseBody>, ProxyError> {
        let (req, body_sent) = if req.body().is_end_stream() {
            (req.map(|inner| UpstreamBody { inner, done: None }), None)
        } else {
            let (tx, rx) = tokio::sync::oneshot::channel();
            let req = req.map(|inner| UpstreamBody {
                inner,
                done: Some(tx),
            });
            (req, Some(rx))
        };
        // One request future, pinned once: both paths below poll this same one.
        let fut = self.request(req, reuse);
        tokio::pin!(fut);
        if let Some(rx) = body_sent {
            tokio::select! {
                r = &mut fut => return r,
                _ = rx => {}
            }
        }
        match tokio::time::timeout(self.config.timeout, fut).await {
            Ok(r) => r,
            Err(_) => Err(ProxyError::Timeout),
        }
    }

    /// Sends a WebSocket handshake (`headers::Upgrade::WebSocket`); splices both connections
    /// on a 101 that answers it (`accepts_websocket`), and answers any other 101 with a 502.
    /// The response's hop-by-hop headers are removed, as in `send`.
    pub async fn send_websocket(
        &self,
        mut req: Request<Incoming>,
    ) -> Result<Response<GatewayBody>, ProxyError> {
        let expected = req
            .headers()
            .get(super::headers::SEC_WEBSOCKET_KEY)
            .map(|k| super::headers::websocket_accept(k.as_bytes()));
        let client_upgrade = hyper::upgrade::on(&mut req);
        let mut resp = self.send_inner(req, false).await?;
        if resp.status() != StatusCode::SWITCHING_PROTOCOLS {
            super::headers::strip_response(resp.headers_mut(), false);
            return Ok(resp.map(GatewayBody::Upstream));
        }
        // Fail closed: dropping the response drops its upgraded connection, never spliced.
        accepts_websocket(resp.headers(), expected.as_deref())?;
        // This 101 answers the handshake: exactly `Connection: upgrade`, `Upgrade: websocket`.
        super::headers::strip_response(resp.headers_mut(), true);
        let upstream_upgrade = hyper::upgrade::on(&mut resp);
        let (parts, body) = resp.into_parts();
        tokio::spawn(async move {
            // Keeps the upstream connection's sender alive until the splice ends.
            let _body = body;
            match tokio::try_join!(client_upgrade, upstream_upgrade) {
                Ok((client, upstream)) => {
                    let mut client = TokioIo::new(client);
                    let mut upstream = TokioIo::new(upstream);
                    if let Err(e) = tokio::io::copy_bidirectional(&mut client, &mut upstream).await
                    {
                        tracing::debug!(error = %e, "upgraded connection ended");
                    }
                }
                Err(e) => tracing::debug!(error = %e, "upgrade failed"),
            }
        });
        Ok(Response::from_parts(parts, GatewayBody::empty()))
    }
}

/// Whether a 101 answers the WebSocket handshake whose `Sec-WebSocket-Key` gave `expected`:
/// `Upgrade: websocket` alone and the matching `Sec-WebSocket-Accept` (RFC 6455 §4.1, the
/// checks a client makes), so the upstream really switched to a WebSocket for this request.
fn accepts_websocket(headers: &hyper::HeaderMap, expected: Option<&str>) -> Result<(), ProxyError> {
    let mut upgrade = headers.get_all(hyper::header::UPGRADE).iter();
    match (upgrade.next(), upgrade.next()) {
        (Some(v), None) if v.as_bytes().trim_ascii().eq_ignore_ascii_case(b"websocket") => {}
        _ => {
            return Err(ProxyError::UnexpectedSwitch(
                "101 to another protocol than websocket",
            ))
        }
    }
    let mut accept = headers.get_all(super::headers::SEC_WEBSOCKET_ACCEPT).iter();
    match (accept.next(), accept.next(), expected) {
        (Some(v), None, Some(want)) if v.as_bytes().trim_ascii() == want.as_bytes() => Ok(()),
        _ => Err(ProxyError::UnexpectedSwitch(
            "101 without the matching Sec-WebSocket-Accept",
        )),
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(inner) = src {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        src = inner.source();
    }
    s
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn upstream_to(addr: std::net::SocketAddr) -> Upstream {
        Upstream::new(UpstreamConfig {
            scheme: "http".into(),
            authority: addr.to_string(),
            base_path: String::new(),
            connect_timeout: Duration::from_secs(1),
            timeout: Duration::from_secs(1),
            pool_idle_timeout: Duration::from_secs(60),
            pool_max_idle: 4,
            tls: None,
        })
    }

    fn head(host: &str, target: &str) -> Request<()> {
        Request::builder()
            .uri(target)
            .header(HOST, host)
            .body(())
            .unwrap()
    }

    #[test]
    fn an_h2_request_carries_the_host_as_authority_and_converts_back() {
        let r = to_h2(head("helpdesk.example.com:8443", "/a/b?c=d")).unwrap();
        assert_eq!(
            r.uri().to_string(),
            "https://helpdesk.example.com:8443/a/b?c=d"
        );
        assert!(r.headers().get(HOST).is_none());
        assert_eq!(r.version(), hyper::Version::HTTP_2);
        let back = to_h1(r);
        assert_eq!(back.uri().to_string(), "/a/b?c=d");
        assert_eq!(back.headers()[HOST], "helpdesk.example.com:8443");
        assert_eq!(back.version(), hyper::Version::HTTP_11);
    }

    #[test]
    fn a_host_with_user_info_or_none_is_refused_for_h2_as_the_clients_error() {
        for host in ["evil.example@helpdesk.example.com", "a b", ""] {
            let e = to_h2(head(host, "/")).unwrap_err();
            assert!(matches!(e, ProxyError::BadHost), "{host}: {e}");
            assert_eq!(e.reply().status, StatusCode::BAD_REQUEST);
        }
        let mut no_host = head("x", "/");
        no_host.headers_mut().remove(HOST);
        assert!(matches!(to_h2(no_host), Err(ProxyError::BadHost)));
    }

    #[tokio::test]
    async fn a_hyper_connection_with_late_bytes_its_task_has_not_read_is_not_reused() {
        use std::io::Write as _;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let up = upstream_to(listener.local_addr().unwrap());
        let Link::H1(mut pooled) = up.connect(false).await.unwrap() else {
            panic!("plain upstreams speak HTTP/1.1")
        };
        let (mut peer, _) = listener.accept().unwrap();
        // hyper's connection task runs once and waits for a request (reading, as idle).
        pooled.sender.ready().await.unwrap();
        up.pool.put(pooled, Instant::now());
        // A forged response on the idle connection. hyper's connection task would end the
        // connection once woken for it, but it has not run since (no await): only the kernel
        // knows, which is the moment a busy gateway reuses connections.
        peer.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nFORGED")
            .unwrap();
        std::thread::sleep(Duration::from_millis(20));
        assert!(
            up.pool.take().is_none(),
            "a connection with unread bytes was reused"
        );
    }

    #[tokio::test]
    async fn hyper_ends_an_idle_connection_on_which_bytes_arrive() {
        use std::io::{Read as _, Write as _};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let up = upstream_to(listener.local_addr().unwrap());
        let Link::H1(pooled) = up.connect(false).await.unwrap() else {
            panic!("plain upstreams speak HTTP/1.1")
        };
        let (mut peer, _) = listener.accept().unwrap();
        up.pool.put(pooled, Instant::now());
        tokio::time::sleep(Duration::from_millis(100)).await;
        peer.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
            .unwrap();
        tokio::time::sleep(Duration::from_millis(200)).await;
        // The pool holds the socket only weakly: hyper's task ending closed it.
        peer.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut rest = [0u8; 1];
        assert_eq!(
            peer.read(&mut rest).unwrap(),
            0,
            "the connection was closed"
        );
        assert!(up.pool.take().is_none());
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic)]
mod tls_tests {
    use super::*;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
    use std::io::Write as _;
    use std::sync::mpsc;
    use std::time::Duration;

    /// A CA-signed certificate for 127.0.0.1: (CA certificate, leaf chain, leaf key).
    fn pki() -> (
        CertificateDer<'static>,
        Vec<CertificateDer<'static>>,
        PrivateKeyDer<'static>,
    ) {
        let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let ca_cert = ca.self_signed(&ca_key).unwrap();
        let issuer = rcgen::Issuer::new(ca, ca_key);
        let leaf_key = rcgen::KeyPair::generate().unwrap();
        let leaf = rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned()])
            .unwrap()
            .signed_by(&leaf_key, &issuer)
            .unwrap();
        (
            ca_cert.der().clone(),
            vec![leaf.der().clone()],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf_key.serialize_der())),
        )
    }

    #[tokio::test]
    async fn a_pooled_tls_connection_with_late_records_its_task_has_not_read_is_not_reused() {
        let (ca, chain, key) = pki();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut server = rustls::ServerConfig::builder_with_provider(Arc::clone(&provider))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .unwrap();
        // No session tickets: this connection is pooled fresh, without a first response that
        // would have carried them past the TLS layer (see `proxy::tls`).
        server.send_tls13_tickets = 0;
        let mut roots = rustls::RootCertStore::empty();
        roots.add(ca).unwrap();
        let client = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        let client = Arc::new(client);
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let up = Upstream::new(UpstreamConfig {
            scheme: "https".into(),
            authority: listener.local_addr().unwrap().to_string(),
            base_path: String::new(),
            connect_timeout: Duration::from_secs(2),
            timeout: Duration::from_secs(2),
            pool_idle_timeout: Duration::from_secs(60),
            pool_max_idle: 4,
            tls: Some(crate::config::UpstreamTls {
                server_name: ServerName::try_from("127.0.0.1").unwrap(),
                client: Arc::clone(&client),
                client_h1: client,
                fingerprint: [0; 32],
            }),
        });
        let (handshaken_tx, handshaken) = mpsc::channel();
        let (forge, forge_rx) = mpsc::channel::<()>();
        let (forged_tx, forged) = mpsc::channel();
        let peer = std::thread::spawn(move || {
            let (tcp, _) = listener.accept().unwrap();
            let conn = rustls::ServerConnection::new(Arc::new(server)).unwrap();
            let mut tls = rustls::StreamOwned::new(conn, tcp);
            while tls.conn.is_handshaking() {
                tls.conn.complete_io(&mut tls.sock).unwrap();
            }
            handshaken_tx.send(()).unwrap();
            forge_rx.recv().unwrap();
            tls.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nFORGED")
                .unwrap();
            tls.flush().unwrap();
            forged_tx.send(()).unwrap();
            // Keeps the connection open until the test ends.
            let _ = forge_rx.recv();
        });
        let Link::H1(mut pooled) = up.connect(false).await.unwrap() else {
            panic!("the test upstream offers no h2")
        };
        pooled.sender.ready().await.unwrap();
        handshaken.recv().unwrap();
        std::thread::sleep(Duration::from_millis(20));
        up.pool.put(pooled, Instant::now());
        let quiet = up.pool.take();
        assert!(quiet.is_some(), "a quiet TLS connection is reused");
        up.pool.put(quiet.unwrap(), Instant::now());
        // A TLS record on the idle connection: hyper's task has not run since (no await), so
        // only the kernel knows, through the TCP socket under the TLS stream.
        forge.send(()).unwrap();
        forged.recv().unwrap();
        std::thread::sleep(Duration::from_millis(20));
        assert!(
            up.pool.take().is_none(),
            "a TLS connection with unread records was reused"
        );
        drop(forge);
        peer.join().unwrap();
    }
}
