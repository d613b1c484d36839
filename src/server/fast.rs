//! The HTTP/1.1 fast lane: the common request — a bodiless GET or HEAD on a proxied route, by
//! a signed-in user whose role the route admits (or on a public route) — is parsed with
//! httparse and forwarded from the raw bytes, with no header maps and no task hand-offs.
//! Anything else (a body, an upgrade, an `Authorization` header (machine clients are decided on
//! the general path only, `server::bearer`), a gateway or login path, no or a bad session, a header
//! this lane does not handle, HTTP/2) is handed with its bytes intact to hyper and
//! `gateway::handle`, for the rest of the connection.
//! Invariant: the lane forwards exactly what `gateway` would forward for the same request, by
//! the same code: the phases in `phases` (classify, load_session, authorize, the `ForwardPlan`,
//! log), path normalisation, reserved and hop-by-hop names, cookie stripping, and one error
//! mapping; every refusal and redirect is made on the hyper path. The raw pieces live in
//! `proxy::request_head` (the client's head), `proxy::h1` (upstream) and `proxy::relay`.

use super::access::{self, AccessLine, Lane};
use super::endpoint::Endpoint;
use super::phases::{self, Authorized};
use super::reload::Live;
use crate::http::{Conn, GatewayError};
use crate::proxy::deadline::Deadline;
use crate::proxy::error::ProxyError;
use crate::proxy::h1::Framing;
use crate::proxy::path;
use crate::proxy::plan::{push_field, ForwardPlan};
use crate::proxy::relay::{client_head, relay, Broken};
use crate::proxy::request_head::{
    cookie_texts, field, parse, session_token, text, wants_html, Field, Kind, Parse, Request,
};
use crate::session::LastToken;
use crate::state::Gateway;
use bytes::{Buf, Bytes, BytesMut};
use std::future::Future;
use std::pin::Pin;
use std::time::Instant;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// How a connection left the lane.
pub enum Outcome<IO> {
    /// Closed (by the client, a timeout, an error or shutdown): nothing more to do.
    Closed,
    /// Everything from the first byte of this request on is for hyper.
    Handoff(IO, Bytes),
}

/// Writes the upstream request head: the `rewrite` phase on raw fields. The client's fields
/// pass as sent but for the ones `gateway` strips (hop-by-hop and reserved names, our cookies);
/// then `plan` adds the gateway's own, as the general path adds them to its header map.
fn upstream_head(
    gw: &Gateway,
    buf: &[u8],
    req: &Request,
    fields: &[Field],
    plan: &ForwardPlan<'_, &[u8]>,
    up: &mut Vec<u8>,
) {
    up.clear();
    plan.write_request_line(if req.head { "HEAD" } else { "GET" }, up);
    for f in fields {
        match f.kind {
            Kind::ForwardedFor | Kind::Dropped => continue,
            Kind::Close if req.close => continue,
            Kind::Cookie if req.ours_in_cookies => continue,
            Kind::Host | Kind::Cookie | Kind::Accept | Kind::Close | Kind::Other => {}
        }
        let (n, v) = field(buf, f);
        push_field(up, n, v);
    }
    if req.ours_in_cookies {
        // Cookie fields that are not text are dropped whole, as on the hyper path (they could
        // hide our cookie).
        let mut kept = Vec::new();
        for s in cookie_texts(buf, fields) {
            gw.cookies.keep_others(s, &mut kept);
        }
        if !kept.is_empty() {
            push_field(up, b"cookie", &kept);
        }
    }
    plan.write_fields(up);
    up.extend_from_slice(b"\r\n");
}

/// Answers an upstream failure from the one error mapping (`http::error::answer`), written
/// straight as bytes. Returns the status, the body's length and whether the connection is done.
async fn write_failure<IO: AsyncWrite + Unpin>(
    gw: &Gateway,
    io: &mut IO,
    e: ProxyError,
    html: bool,
    head_request: bool,
    close: bool,
    out: &mut Vec<u8>,
) -> (u16, Option<u64>, bool) {
    let answer = crate::http::error::answer(gw, GatewayError::Upstream(e), html);
    out.clear();
    let hsts = gw.hsts.as_ref().map(hyper::header::HeaderValue::as_bytes);
    answer.write_h1(out, head_request, close, hsts);
    let written = io.write_all(out).await;
    out.clear();
    let bytes = if head_request { 0 } else { answer.body.len() };
    (
        answer.status.as_u16(),
        u64::try_from(bytes).ok(),
        written.is_err() || close,
    )
}

/// Waits for more request bytes within `deadline`; false: the connection is done (closed by
/// the client, timed out, failed, or idle at shutdown). `stop`: the connection's one wait for
/// shutdown, kept across requests (a new one per request would join and leave the stop
/// signal's waiter list under its lock every time); it ends the connection, so it is never
/// polled after it finished.
async fn read_more<IO: AsyncRead + Unpin, S: Future<Output = ()>>(
    io: &mut IO,
    inbuf: &mut BytesMut,
    deadline: &mut Deadline,
    stop: Pin<&mut S>,
    conn: Conn,
) -> bool {
    let idle = inbuf.is_empty();
    inbuf.reserve(4096);
    tokio::select! {
        // Shutdown closes idle keep-alive connections (checked first: one idle at shutdown is
        // closed even if a request is already waiting); a request under way is finished.
        biased;
        () = stop, if idle => false,
        r = deadline.within(io.read_buf(inbuf)) => match r {
            Ok(Ok(0)) => false,
            Ok(Ok(_)) => true,
            Ok(Err(e)) => {
                tracing::debug!(peer = %conn.peer, error = %e, "connection read failed");
                false
            }
            Err(_) => {
                tracing::debug!(peer = %conn.peer, "connection closed: no complete request head within the header timeout");
                false
            }
        },
    }
}

/// Serves one HTTP/1.x connection while its requests suit the lane.
pub async fn serve<IO>(
    live: &Live,
    mut io: IO,
    conn: Conn,
    stopped: &mut tokio::sync::watch::Receiver<bool>,
) -> Outcome<IO>
where
    IO: AsyncRead + AsyncWrite + Unpin,
{
    let mut inbuf = BytesMut::with_capacity(4096);
    let mut fields: Vec<Field> = Vec::new();
    let mut up: Vec<u8> = Vec::with_capacity(2048);
    let mut out: Vec<u8> = Vec::with_capacity(4096);
    let mut last_token = LastToken::default();
    let mut held = live.hold();
    // The connection's timers, moved per request (`proxy::deadline`), and its wait for shutdown.
    let now = tokio::time::Instant::now();
    // When the connection last went idle (opened, or its last response was out).
    let mut idle_since = now;
    let mut head_deadline = Deadline::new(now + held.gateway.config.server.header_timeout);
    let mut upstream_deadline = Deadline::new(now + held.gateway.upstream.config.timeout);
    let mut stop = std::pin::pin!(super::limits::until_stopped(stopped));
    macro_rules! handoff {
        () => {{
            // The counters are shared by every state, so any one counts it.
            held.gateway.metrics.handoff();
            return Outcome::Handoff(io, inbuf.freeze());
        }};
    }
    loop {
        // The head is read with the state in force while waiting (its limits need a restart).
        live.refresh(&mut held);
        let waiting = &held.gateway;
        let cfg = &waiting.config.server;
        // Phase: a complete request head, within the header timeout (idle time included, as
        // hyper counts it).
        head_deadline.set(idle_since + cfg.header_timeout);
        let req = loop {
            if !inbuf.is_empty() {
                match parse(&inbuf, &mut fields, cfg.max_headers, &waiting.ids) {
                    // Over the size limit: hyper answers it (431), as for any other request.
                    Parse::Fast(r) if r.len > cfg.max_header_bytes => handoff!(),
                    Parse::Fast(r) => break r,
                    Parse::Handoff => handoff!(),
                    Parse::Partial if inbuf.len() >= cfg.max_header_bytes => handoff!(),
                    Parse::Partial => {}
                }
            }
            if !read_more(&mut io, &mut inbuf, &mut head_deadline, stop.as_mut(), conn).await {
                return Outcome::Closed;
            }
        };
        // Each request is served by the state in force once its head is in: a reload applies
        // from the next request on, on a keep-alive connection too.
        live.refresh(&mut held);
        let gw = &held.gateway;
        // An https upstream is hyper's (TLS, HTTP/2 by ALPN): the lane writes plain HTTP/1.1
        // to a TCP socket. Checked per request, as a reload may have switched the upstream.
        if gw.upstream.config.tls.is_some() {
            handoff!();
        }
        let started = Instant::now();

        // Phase: classify (as the router and `gateway::proxy`); gateway paths and login go
        // to hyper.
        if gw.panic_probe.armed() {
            handoff!();
        }
        let raw_path = inbuf
            .get(req.path.clone())
            .and_then(|p| std::str::from_utf8(p).ok())
            .unwrap_or_default();
        let Ok(normalized) = path::normalize(raw_path) else {
            handoff!()
        };
        // The router's own parse: only what it sends to the proxy path is the lane's.
        let endpoint = Endpoint::parse(gw, &normalized);
        if endpoint != Endpoint::Proxy {
            handoff!();
        }
        let Ok(route) = phases::classify(gw, &normalized) else {
            handoff!()
        };

        // Phases: load_session, authorize. No session, a refusal or a store error: hyper's.
        let session = match session_token(&inbuf, &fields, gw.cookies.session) {
            None => None,
            Some(token) => match phases::session_for_id(gw, last_token.id_of(token)).await {
                Ok(s) => s,
                Err(_) => handoff!(),
            },
        };
        if phases::authorize(route, session.as_deref()) != Authorized::Pass {
            handoff!();
        }

        // Phase: rewrite (the plan both lanes share, then this lane's serialiser).
        let plan = phases::plan(
            gw,
            conn,
            &normalized,
            // A target the lane took is ASCII (`request_head::plain_target_byte`).
            req.query
                .clone()
                .and_then(|q| inbuf.get(q))
                .and_then(|q| std::str::from_utf8(q).ok()),
            inbuf.get(req.host.clone()),
            req.forwarded_for
                .clone()
                .and_then(|r| inbuf.get(r))
                .and_then(text),
            session.as_deref(),
        );
        upstream_head(gw, &inbuf, &req, &fields, &plan, &mut up);

        // Phase: forward.
        let sent = Instant::now();
        let close = req.close;
        let hsts = gw.hsts.as_ref().map(hyper::header::HeaderValue::as_bytes);
        let exchanged = gw
            .upstream
            .lane
            .exchange(
                &up,
                req.head,
                sent,
                &mut upstream_deadline,
                |status, fields, head| client_head(&mut out, status, fields, head, close, hsts),
            )
            .await;
        let (status, bytes, done) = match exchanged {
            Ok((mut uc, head)) => {
                gw.metrics.upstream_latency(sent.elapsed());
                match relay(&mut io, &mut uc, head.framing, &mut out).await {
                    Ok(()) => {
                        if head.keep_alive {
                            gw.upstream.lane.release(uc, sent);
                        }
                        let done = close || head.framing == Framing::Close;
                        (head.status, declared(head.framing), done)
                    }
                    Err(Broken { why, sent: false }) => {
                        // Nothing reached the client yet: it gets a clean 502, not a torn
                        // response (the upstream connection is dropped).
                        let e = ProxyError::Unavailable(format!("response body: {why}"));
                        let html = wants_html(&inbuf, &fields);
                        write_failure(gw, &mut io, e, html, req.head, close, &mut out).await
                    }
                    Err(Broken { why, sent: true }) => {
                        tracing::warn!(peer = %conn.peer, why, "response relay ended early; connection closed");
                        (head.status, declared(head.framing), true)
                    }
                }
            }
            Err(e) => {
                let html = wants_html(&inbuf, &fields);
                write_failure(gw, &mut io, e, html, req.head, close, &mut out).await
            }
        };

        // Phase: log.
        let line = access::enabled(gw.config.server.access_log).then(|| AccessLine {
            lane: Lane::Fast,
            method: if req.head { "HEAD" } else { "GET" },
            path: raw_path,
            peer: conn.peer.ip(),
            session: session.as_deref(),
        });
        let ended = Instant::now();
        phases::log(gw, endpoint.class(), status, bytes, (started, ended), line);
        idle_since = tokio::time::Instant::from_std(ended);
        if done {
            let _ = io.shutdown().await;
            return Outcome::Closed;
        }
        inbuf.advance(req.len);
    }
}

/// The body length a response head declares, as the general path reads it from hyper's size
/// hint: none for a body streamed without a length.
fn declared(framing: Framing) -> Option<u64> {
    match framing {
        Framing::Empty => Some(0),
        Framing::Length(n) => Some(n),
        Framing::Chunked | Framing::Close => None,
    }
}

/// A connection handed to hyper: the bytes the lane read but did not take come first.
pub struct Replay<IO> {
    pre: Bytes,
    io: IO,
}

impl<IO> Replay<IO> {
    pub fn new(io: IO, pre: Bytes) -> Self {
        Replay { pre, io }
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for Replay<IO> {
    fn poll_read(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        let this = self.get_mut();
        if !this.pre.is_empty() {
            let n = this.pre.len().min(buf.remaining());
            buf.put_slice(this.pre.get(..n).unwrap_or_default());
            this.pre.advance(n);
            return std::task::Poll::Ready(Ok(()));
        }
        std::pin::Pin::new(&mut this.io).poll_read(cx, buf)
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for Replay<IO> {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.get_mut().io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}
