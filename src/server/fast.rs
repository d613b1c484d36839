//! The HTTP/1.1 fast lane: the common request — a bodiless GET or HEAD on a proxied route, by
//! a signed-in user whose role the route admits (or on a public route) — is parsed with
//! httparse and forwarded from the raw bytes, with no header maps and no task hand-offs.
//! Anything else (a body, an upgrade, a gateway or login path, no or a bad session, a header
//! this lane does not handle, HTTP/2) is handed with its bytes intact to hyper and
//! `gateway::handle`, for the rest of the connection.
//! Invariant: the lane forwards exactly what `gateway` would forward for the same request, by
//! the same rules (shared functions: path normalisation, routes, session lookup, reserved and
//! hop-by-hop names, cookie stripping); every refusal and redirect is made on the hyper path.

use super::gateway::{self};
use super::Gateway;
use crate::auth::policy::{self, RouteDecision};
use crate::config::Access;
use crate::http::{Conn, GatewayError};
use crate::metrics::RouteClass;
use crate::proxy::forward::{GatewayBody, ProxyError};
use crate::proxy::h1::{Chunk, Chunked, Framing, Head, RawConn};
use crate::proxy::headers::{self, IdentityHeaders};
use crate::proxy::path;
use crate::session::{cookie, Session};
use bytes::{Buf, Bytes, BytesMut};
use std::io::Write as _;
use std::ops::Range;
use std::sync::Arc;
use std::time::Instant;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// How a connection left the lane.
pub enum Outcome<IO> {
    /// Closed (by the client, a timeout, an error or shutdown): nothing more to do.
    Closed,
    /// Everything from the first byte of this request on is for hyper.
    Handoff(IO, Bytes),
}

/// At most this many request header fields are parsed here (more: hyper decides).
const MAX_FIELDS: usize = 128;
/// Response bytes gathered into one write before they go out.
const COALESCE: usize = 64 * 1024;

/// A request head the lane takes: offsets into the connection's input buffer.
struct Request {
    len: usize,
    head: bool,
    path: Range<usize>,
    query: Option<Range<usize>>,
    /// The client sent `Connection: close`.
    close: bool,
    /// A `Cookie` field may hold one of the gateway's cookies: the cookies are rewritten.
    ours_in_cookies: bool,
}

/// What a request field is to the lane, decided once when the head is parsed.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Host,
    Cookie,
    Accept,
    /// Removed (reserved), but a trusted proxy's chain is kept from its first value.
    ForwardedFor,
    /// A field named `close`: removed when `Connection: close` names it, as on the hyper path.
    Close,
    /// Hop-by-hop or reserved (`headers::is_connection_level`, `IdentityHeaders::is_reserved`).
    Dropped,
    Other,
}

struct Field {
    name: Range<usize>,
    value: Range<usize>,
    kind: Kind,
}

fn kind(name: &str, ids: &IdentityHeaders) -> Kind {
    if name.eq_ignore_ascii_case("host") {
        Kind::Host
    } else if name.eq_ignore_ascii_case("cookie") {
        Kind::Cookie
    } else if name.eq_ignore_ascii_case("accept") {
        Kind::Accept
    } else if name.eq_ignore_ascii_case("x-forwarded-for") {
        Kind::ForwardedFor
    } else if headers::is_connection_level(name) || ids.is_reserved(name) {
        Kind::Dropped
    } else if name.eq_ignore_ascii_case("close") {
        Kind::Close
    } else {
        Kind::Other
    }
}

enum Parse {
    Partial,
    Handoff,
    Fast(Request),
}

/// Bytes of a request target the lane forwards as they are: a strict subset of what hyper's
/// URI parser accepts in a path and in a query, so both paths agree on every target taken here.
fn plain_target_byte(b: u8) -> bool {
    matches!(b, b'!' | b'$'..=b';' | b'=' | b'?'..=b'[' | b']' | b'_' | b'a'..=b'z' | b'~')
}

/// The text of a header value, as `HeaderValue::to_str` would give it (visible ASCII and tab).
fn text(v: &[u8]) -> Option<&str> {
    if v.iter().all(|&b| b == b'\t' || (0x20..0x7f).contains(&b)) {
        std::str::from_utf8(v).ok()
    } else {
        None
    }
}

fn offset(buf: &[u8], part: &[u8]) -> Option<Range<usize>> {
    let start = (part.as_ptr() as usize).checked_sub(buf.as_ptr() as usize)?;
    let r = start..start.checked_add(part.len())?;
    buf.get(r.clone()).map(|_| r)
}

/// Parses one request head and decides whether the lane may take it.
fn parse(buf: &[u8], fields: &mut Vec<Field>, max_fields: usize, ids: &IdentityHeaders) -> Parse {
    let mut raw = [httparse::EMPTY_HEADER; MAX_FIELDS];
    let mut r = httparse::Request::new(&mut raw);
    let len = match r.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Parse::Partial,
        Err(_) => return Parse::Handoff,
    };
    let head = match r.method {
        Some("GET") => false,
        Some("HEAD") => true,
        _ => return Parse::Handoff,
    };
    let Some(target) = r.path else {
        return Parse::Handoff;
    };
    if r.version != Some(1)
        || !target.starts_with('/')
        || !target.bytes().all(plain_target_byte)
        || r.headers.len() > max_fields
    {
        return Parse::Handoff;
    }
    let Some(t) = offset(buf, target.as_bytes()) else {
        return Parse::Handoff;
    };
    let (path, query) = match target.find('?') {
        Some(i) => (t.start..t.start + i, Some(t.start + i + 1..t.end)),
        None => (t, None),
    };
    fields.clear();
    let mut hosts = 0;
    let mut close = false;
    let mut ours_in_cookies = false;
    for h in r.headers.iter() {
        let n = h.name;
        if ["content-length", "transfer-encoding", "expect", "upgrade"]
            .iter()
            .any(|x| n.eq_ignore_ascii_case(x))
        {
            return Parse::Handoff;
        }
        if n.eq_ignore_ascii_case("host") {
            hosts += 1;
        } else if n.eq_ignore_ascii_case("connection") {
            for t in h.value.split(|&b| b == b',').map(<[u8]>::trim_ascii) {
                if t.eq_ignore_ascii_case(b"close") {
                    close = true;
                } else if !(t.is_empty() || t.eq_ignore_ascii_case(b"keep-alive")) {
                    // Names other headers as connection-specific: the hyper path strips them.
                    return Parse::Handoff;
                }
            }
        }
        let (Some(name), Some(value)) = (offset(buf, n.as_bytes()), offset(buf, h.value)) else {
            return Parse::Handoff;
        };
        let kind = kind(n, ids);
        ours_in_cookies |= kind == Kind::Cookie && cookie::mentions_ours(h.value);
        fields.push(Field { name, value, kind });
    }
    if hosts != 1 {
        return Parse::Handoff;
    }
    Parse::Fast(Request {
        len,
        head,
        path,
        query,
        close,
        ours_in_cookies,
    })
}

fn field<'a>(buf: &'a [u8], f: &Field) -> (&'a [u8], &'a [u8]) {
    (
        buf.get(f.name.clone()).unwrap_or_default(),
        buf.get(f.value.clone()).unwrap_or_default(),
    )
}

/// The text values of the fields of one kind, in order.
fn texts<'a>(buf: &'a [u8], fields: &'a [Field], k: Kind) -> impl Iterator<Item = &'a str> {
    fields
        .iter()
        .filter(move |f| f.kind == k)
        .filter_map(move |f| text(field(buf, f).1))
}

/// The session cookie's value, by the rule `cookie::get` applies to a header map.
fn session_token<'a>(buf: &'a [u8], fields: &'a [Field], name: &str) -> Option<&'a str> {
    cookie::first(texts(buf, fields, Kind::Cookie), name)
}

/// As `crate::http::wants_html`.
fn wants_html(buf: &[u8], fields: &[Field]) -> bool {
    texts(buf, fields, Kind::Accept).any(|s| s.contains("text/html"))
}

fn push_field(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.extend_from_slice(name);
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

/// Writes the upstream request head: the `rewrite` phase of `gateway`, on raw fields.
#[allow(clippy::too_many_arguments)] // one call site; the request's parts as parsed
fn upstream_head(
    gw: &Gateway,
    conn: Conn,
    buf: &[u8],
    req: &Request,
    fields: &[Field],
    normalized: &str,
    session: Option<&Session>,
    up: &mut Vec<u8>,
) {
    up.clear();
    up.extend_from_slice(if req.head { b"HEAD " } else { b"GET " });
    up.extend_from_slice(gw.upstream.config.base_path.as_bytes());
    up.extend_from_slice(normalized.as_bytes());
    if let Some(q) = req.query.clone().and_then(|q| buf.get(q)) {
        up.push(b'?');
        up.extend_from_slice(q);
    }
    up.extend_from_slice(b" HTTP/1.1\r\n");
    let mut client_xff: Option<&[u8]> = None;
    let mut host: &[u8] = b"";
    for f in fields {
        let (n, v) = field(buf, f);
        match f.kind {
            Kind::ForwardedFor => {
                client_xff.get_or_insert(v);
                continue;
            }
            Kind::Dropped => continue,
            Kind::Close if req.close => continue,
            Kind::Cookie if req.ours_in_cookies => continue,
            Kind::Host => host = v,
            Kind::Cookie | Kind::Accept | Kind::Close | Kind::Other => {}
        }
        push_field(up, n, v);
    }
    if req.ours_in_cookies {
        // Cookie fields that are not text are dropped whole, as on the hyper path (they could
        // hide our cookie).
        let mut kept = String::new();
        for s in texts(buf, fields, Kind::Cookie) {
            gw.cookies.keep_others(s, &mut kept);
        }
        if !kept.is_empty() {
            push_field(up, b"cookie", kept.as_bytes());
        }
    }
    let peer_ip = conn.peer.ip();
    let trusted = gw.config.is_trusted_proxy(peer_ip);
    up.extend_from_slice(b"x-forwarded-for: ");
    if let Some(chain) = client_xff.and_then(text).filter(|_| trusted) {
        up.extend_from_slice(chain.as_bytes());
        up.extend_from_slice(b", ");
    }
    gateway::write_ip(up, peer_ip);
    up.extend_from_slice(b"\r\n");
    let https = conn.tls || (trusted && gw.config.server.https);
    push_field(
        up,
        b"x-forwarded-proto",
        if https { b"https" } else { b"http" },
    );
    push_field(up, b"x-forwarded-host", host);
    if let Some(s) = session {
        let ids = &gw.ids;
        // `names` ends with the assertion's, which `raw` (seven values) leaves to the zip's end.
        for (name, value) in ids.names().into_iter().zip(s.headers.raw()) {
            if let Some(v) = value {
                push_field(up, name.as_str().as_bytes(), v);
            }
        }
        if let Some(a) = gw.signer.for_session(s, gw.clock.now()) {
            push_field(up, ids.assertion.as_str().as_bytes(), a.as_bytes());
        }
    }
    up.extend_from_slice(b"\r\n");
}

/// Writes the client's response head: the upstream's fields without connection-level ones
/// (`headers::strip_response` on raw fields), the edge headers (`gateway::edge_headers`: `hsts`
/// replaces the upstream's own), then this connection's own framing.
fn client_head(
    out: &mut Vec<u8>,
    status: u16,
    fields: &[httparse::Header<'_>],
    head: &Head,
    close: bool,
    hsts: Option<&[u8]>,
) {
    out.clear();
    out.extend_from_slice(b"HTTP/1.1 ");
    let code = [
        b'0' + (status / 100 % 10) as u8,
        b'0' + (status / 10 % 10) as u8,
        b'0' + (status % 10) as u8,
    ];
    out.extend_from_slice(&code);
    out.push(b' ');
    let reason = hyper::StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("");
    out.extend_from_slice(reason.as_bytes());
    out.extend_from_slice(b"\r\n");
    let listed: Vec<&[u8]> = fields
        .iter()
        .filter(|f| f.name.eq_ignore_ascii_case("connection"))
        .flat_map(|f| f.value.split(|&b| b == b','))
        .map(<[u8]>::trim_ascii)
        .filter(|t| !t.is_empty())
        .collect();
    let mut dated = false;
    for f in fields {
        if headers::is_connection_level(f.name)
            || (head.framing != Framing::Empty && f.name.eq_ignore_ascii_case("content-length"))
            || (hsts.is_some() && f.name.eq_ignore_ascii_case("strict-transport-security"))
            || listed
                .iter()
                .any(|t| t.eq_ignore_ascii_case(f.name.as_bytes()))
        {
            continue;
        }
        dated |= f.name.eq_ignore_ascii_case("date");
        push_field(out, f.name.as_bytes(), f.value);
    }
    if !dated {
        // RFC 9110 §6.6.1: a recipient with a clock adds Date to a response it forwards.
        push_field(
            out,
            b"date",
            httpdate::fmt_http_date(std::time::SystemTime::now()).as_bytes(),
        );
    }
    if let Some(v) = hsts {
        push_field(out, b"strict-transport-security", v);
    }
    match head.framing {
        Framing::Length(n) => {
            let _ = write!(out, "content-length: {n}\r\n");
        }
        Framing::Chunked => push_field(out, b"transfer-encoding", b"chunked"),
        Framing::Empty | Framing::Close => {}
    }
    if close || head.framing == Framing::Close {
        push_field(out, b"connection", b"close");
    }
    out.extend_from_slice(b"\r\n");
}

/// Why relaying a response stopped early (the connection then closes).
type RelayError = &'static str;

/// A relay that stopped early, and whether the client had been sent anything by then (if not,
/// it can still be given a proper 502).
struct Broken {
    why: RelayError,
    sent: bool,
}

/// The client side of a relay: small pieces are gathered in `out` and written together.
struct Sink<'a, IO> {
    io: &'a mut IO,
    out: &'a mut Vec<u8>,
    /// Some bytes of this response went to the client.
    sent: bool,
}

impl<IO: AsyncWrite + Unpin> Sink<'_, IO> {
    async fn flush(&mut self) -> Result<(), RelayError> {
        if !self.out.is_empty() {
            self.sent = true;
            self.io
                .write_all(self.out)
                .await
                .map_err(|_| "client write failed")?;
            self.out.clear();
        }
        Ok(())
    }

    /// Sends `data` after what is gathered: gathered while small, written through when large.
    async fn send(&mut self, data: &[u8]) -> Result<(), RelayError> {
        if self.out.len() + data.len() <= COALESCE {
            self.out.extend_from_slice(data);
            return Ok(());
        }
        self.flush().await?;
        self.sent = true;
        self.io
            .write_all(data)
            .await
            .map_err(|_| "client write failed")
    }
}

async fn more(uc: &mut RawConn) -> Result<(), RelayError> {
    match uc.fill().await {
        Ok(0) => Err("upstream closed mid-body"),
        Ok(_) => Ok(()),
        Err(_) => Err("upstream read failed"),
    }
}

/// Streams the response body after the head already in `out` (bounded memory: one read
/// buffer, one write buffer).
async fn relay<IO: AsyncWrite + Unpin>(
    io: &mut IO,
    uc: &mut RawConn,
    framing: Framing,
    out: &mut Vec<u8>,
) -> Result<(), Broken> {
    let mut sink = Sink {
        io,
        out,
        sent: false,
    };
    match relay_body(&mut sink, uc, framing).await {
        Ok(()) => Ok(()),
        Err(why) => Err(Broken {
            why,
            sent: sink.sent,
        }),
    }
}

async fn relay_body<IO: AsyncWrite + Unpin>(
    sink: &mut Sink<'_, IO>,
    uc: &mut RawConn,
    framing: Framing,
) -> Result<(), RelayError> {
    match framing {
        Framing::Empty => {}
        Framing::Length(mut left) => loop {
            let n = usize::try_from(left)
                .unwrap_or(usize::MAX)
                .min(uc.buf.len());
            if n > 0 {
                sink.send(uc.buf.get(..n).unwrap_or_default()).await?;
                uc.buf.advance(n);
                left -= n as u64;
            }
            if left == 0 {
                break;
            }
            sink.flush().await?;
            more(uc).await?;
        },
        Framing::Chunked => {
            let mut dec = Chunked::default();
            loop {
                match dec.next(&mut uc.buf)? {
                    Chunk::Data(n) => {
                        let _ = write!(sink.out, "{n:x}\r\n");
                        sink.send(uc.buf.get(..n).unwrap_or_default()).await?;
                        sink.out.extend_from_slice(b"\r\n");
                        uc.buf.advance(n);
                    }
                    Chunk::More => {
                        sink.flush().await?;
                        more(uc).await?;
                    }
                    Chunk::End => {
                        sink.out.extend_from_slice(b"0\r\n\r\n");
                        break;
                    }
                }
            }
        }
        Framing::Close => loop {
            let n = uc.buf.len();
            sink.send(&uc.buf).await?;
            uc.buf.advance(n);
            sink.flush().await?;
            match uc.fill().await {
                Ok(0) => break,
                Ok(_) => {}
                Err(_) => return Err("upstream read failed"),
            }
        },
    }
    sink.flush().await
}

/// Writes a response the gateway made (an error page) with a length and, for HEAD, no body.
async fn write_own<IO: AsyncWrite + Unpin>(
    gw: &Gateway,
    io: &mut IO,
    mut resp: hyper::Response<GatewayBody>,
    head: bool,
    close: bool,
    out: &mut Vec<u8>,
) -> Result<(), RelayError> {
    use http_body_util::BodyExt;
    gateway::edge_headers(gw, &mut resp);
    let (parts, body) = resp.into_parts();
    let body = match body {
        GatewayBody::Full(f) => match f.collect().await {
            Ok(c) => c.to_bytes(),
            Err(never) => match never {},
        },
        GatewayBody::Upstream(_) => Bytes::new(),
    };
    out.clear();
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(parts.status.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(parts.status.canonical_reason().unwrap_or("").as_bytes());
    out.extend_from_slice(b"\r\n");
    for (n, v) in &parts.headers {
        if *n != hyper::header::CONTENT_LENGTH {
            push_field(out, n.as_str().as_bytes(), v.as_bytes());
        }
    }
    push_field(
        out,
        b"date",
        httpdate::fmt_http_date(std::time::SystemTime::now()).as_bytes(),
    );
    let _ = write!(out, "content-length: {}\r\n", body.len());
    if close {
        push_field(out, b"connection", b"close");
    }
    out.extend_from_slice(b"\r\n");
    if !head {
        out.extend_from_slice(&body);
    }
    let written = io.write_all(out).await.map_err(|_| "client write failed");
    out.clear();
    written
}

/// Waits for more request bytes within `deadline`; false: the connection is done (closed by
/// the client, timed out, failed, or idle at shutdown).
async fn read_more<IO: AsyncRead + Unpin>(
    io: &mut IO,
    inbuf: &mut BytesMut,
    deadline: tokio::time::Instant,
    stopped: &mut tokio::sync::watch::Receiver<bool>,
    conn: Conn,
) -> bool {
    let idle = inbuf.is_empty();
    if idle && *stopped.borrow() {
        return false;
    }
    inbuf.reserve(4096);
    tokio::select! {
        r = tokio::time::timeout_at(deadline, io.read_buf(inbuf)) => match r {
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
        // Shutdown closes idle keep-alive connections; a request under way is finished.
        _ = super::limits::until_stopped(stopped), if idle => false,
    }
}

/// Serves one HTTP/1.x connection while its requests suit the lane.
pub async fn serve<IO>(
    gw: &Arc<Gateway>,
    mut io: IO,
    conn: Conn,
    stopped: &mut tokio::sync::watch::Receiver<bool>,
) -> Outcome<IO>
where
    IO: AsyncRead + AsyncWrite + Unpin,
{
    let cfg = &gw.config.server;
    let mut inbuf = BytesMut::with_capacity(4096);
    let mut fields: Vec<Field> = Vec::new();
    let mut up: Vec<u8> = Vec::with_capacity(2048);
    let mut out: Vec<u8> = Vec::with_capacity(4096);
    macro_rules! handoff {
        () => {{
            gw.metrics.handoff();
            return Outcome::Handoff(io, inbuf.freeze());
        }};
    }
    loop {
        // Phase: a complete request head, within the header timeout (idle time included, as
        // hyper counts it).
        let deadline = tokio::time::Instant::now() + cfg.header_timeout;
        let req = loop {
            if !inbuf.is_empty() {
                match parse(&inbuf, &mut fields, cfg.max_headers, &gw.ids) {
                    // Over the size limit: hyper answers it (431), as for any other request.
                    Parse::Fast(r) if r.len > cfg.max_header_bytes => handoff!(),
                    Parse::Fast(r) => break r,
                    Parse::Handoff => handoff!(),
                    Parse::Partial if inbuf.len() >= cfg.max_header_bytes => handoff!(),
                    Parse::Partial => {}
                }
            }
            if !read_more(&mut io, &mut inbuf, deadline, stopped, conn).await {
                return Outcome::Closed;
            }
        };
        let started = cfg.access_log.then(Instant::now);

        // Phase: classify (as `gateway::proxy`); gateway paths and login go to hyper.
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
        if super::endpoint::Endpoint::parse(gw, &normalized) != super::endpoint::Endpoint::Proxy {
            handoff!();
        }
        let route = match gw.routes.decide(&normalized) {
            RouteDecision::Route(r) => r,
            RouteDecision::NoRoute | RouteDecision::Ambiguous => handoff!(),
        };
        let class = if raw_path.starts_with(cfg.prefix.as_str()) {
            RouteClass::Gateway
        } else if gw.is_native_path(raw_path) {
            RouteClass::Native
        } else {
            RouteClass::Proxy
        };

        // Phases: load_session, authorize. No session, a refusal or a store error: hyper's.
        let session = match session_token(&inbuf, &fields, gw.cookies.session) {
            None => None,
            Some(token) => match gateway::session_for_token(gw, token).await {
                Ok(s) => s,
                Err(_) => handoff!(),
            },
        };
        match (&route.access, &session) {
            (Access::Public, _) => {}
            (Access::Roles(_), Some(s)) if policy::admits(route, &s.identity.roles) => {}
            (Access::Roles(_), _) => handoff!(),
        }

        // Phase: rewrite.
        upstream_head(
            gw,
            conn,
            &inbuf,
            &req,
            &fields,
            &normalized,
            session.as_deref(),
            &mut up,
        );

        // Phase: forward.
        let sent = Instant::now();
        let close = req.close;
        let hsts = gw.hsts.as_ref().map(hyper::header::HeaderValue::as_bytes);
        let exchanged = gw
            .upstream
            .lane
            .exchange(&up, req.head, sent, |status, fields, head| {
                client_head(&mut out, status, fields, head, close, hsts)
            })
            .await;
        let (status, done) = match exchanged {
            Ok((mut uc, head)) => {
                gw.metrics.upstream_latency(sent.elapsed());
                match relay(&mut io, &mut uc, head.framing, &mut out).await {
                    Ok(()) => {
                        if head.keep_alive {
                            gw.upstream.lane.release(uc, sent);
                        }
                        (head.status, close || head.framing == Framing::Close)
                    }
                    Err(Broken { why, sent: false }) => {
                        // Nothing reached the client yet: it gets a clean 502, not a torn
                        // response (the upstream connection is dropped).
                        let e = ProxyError::Unavailable(format!("response body: {why}"));
                        let html = wants_html(&inbuf, &fields);
                        let resp = crate::http::respond(gw, GatewayError::Upstream(e), html);
                        let status = resp.status().as_u16();
                        let written = write_own(gw, &mut io, resp, req.head, close, &mut out).await;
                        (status, written.is_err() || close)
                    }
                    Err(Broken { why, sent: true }) => {
                        tracing::warn!(peer = %conn.peer, why, "response relay ended early; connection closed");
                        (head.status, true)
                    }
                }
            }
            Err(e) => {
                let html = wants_html(&inbuf, &fields);
                let resp = crate::http::respond(gw, GatewayError::Upstream(e), html);
                let status = resp.status().as_u16();
                let written = write_own(gw, &mut io, resp, req.head, close, &mut out).await;
                (status, written.is_err() || close)
            }
        };
        gw.metrics.request(class, status);
        if let Some(started) = started {
            tracing::info!(
                target: "access",
                method = if req.head { "HEAD" } else { "GET" },
                path = %raw_path,
                status,
                user = session.as_ref().map_or("-", |s| s.identity.user.as_str()),
                peer = %conn.peer.ip(),
                ms = started.elapsed().as_secs_f64() * 1000.0,
                "request"
            );
        }
        if done {
            let _ = io.shutdown().await;
            return Outcome::Closed;
        }
        inbuf.advance(req.len);
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

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic, clippy::indexing_slicing)]
mod tests {
    use super::*;

    fn take(raw: &str) -> Option<(Request, Vec<(String, String)>)> {
        let mut fields = Vec::new();
        match parse(
            raw.as_bytes(),
            &mut fields,
            100,
            &IdentityHeaders::default(),
        ) {
            Parse::Fast(r) => {
                let list = fields
                    .iter()
                    .map(|f| {
                        let (n, v) = field(raw.as_bytes(), f);
                        (
                            String::from_utf8_lossy(n).into_owned(),
                            String::from_utf8_lossy(v).into_owned(),
                        )
                    })
                    .collect();
                Some((r, list))
            }
            _ => None,
        }
    }

    #[test]
    fn the_lane_takes_only_plain_bodiless_get_and_head() {
        let (r, f) = take("GET /app/x?a=1 HTTP/1.1\r\nHost: h\r\nCookie: c=1\r\n\r\n").unwrap();
        assert!(!r.head && !r.close);
        assert_eq!(f.len(), 2);
        let raw = "GET /app/x?a=1 HTTP/1.1\r\nHost: h\r\nCookie: c=1\r\n\r\n";
        assert_eq!(&raw[r.path.clone()], "/app/x");
        assert_eq!(&raw[r.query.clone().unwrap()], "a=1");
        assert!(
            take("HEAD / HTTP/1.1\r\nhost: h\r\nConnection: close\r\n\r\n")
                .unwrap()
                .0
                .close
        );
        for refused in [
            "POST / HTTP/1.1\r\nHost: h\r\n\r\n",
            "GET / HTTP/1.0\r\nHost: h\r\n\r\n",
            "GET / HTTP/1.1\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: h\r\nConnection: x-secret\r\n\r\n",
            "GET http://h/ HTTP/1.1\r\nHost: h\r\n\r\n",
            "GET * HTTP/1.1\r\nHost: h\r\n\r\n",
            "GET /a|b HTTP/1.1\r\nHost: h\r\n\r\n",
            "GET /a#b HTTP/1.1\r\nHost: h\r\n\r\n",
            "GET /a\\b HTTP/1.1\r\nHost: h\r\n\r\n",
            "GET /a\"b HTTP/1.1\r\nHost: h\r\n\r\n",
            "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: h\r\nBad Name: x\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: h\r\nX: a\x01b\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: h\r\n folded\r\n\r\n",
        ] {
            assert!(take(refused).is_none(), "taken: {refused:?}");
        }
        let mut fields = Vec::new();
        assert!(matches!(
            parse(
                b"GET / HTTP/1.1\r\nHost: h\r\n",
                &mut fields,
                100,
                &IdentityHeaders::default()
            ),
            Parse::Partial
        ));
        let many: String = (0..10).map(|i| format!("X-{i}: v\r\n")).collect();
        let raw = format!("GET / HTTP/1.1\r\nHost: h\r\n{many}\r\n");
        assert!(matches!(
            parse(raw.as_bytes(), &mut fields, 5, &IdentityHeaders::default()),
            Parse::Handoff
        ));
    }

    #[test]
    fn every_target_byte_the_lane_takes_is_one_hyper_accepts() {
        for b in 0u8..=255 {
            if plain_target_byte(b) {
                let s = format!("/a{}b?q{}r", char::from(b), char::from(b));
                assert!(
                    hyper::Uri::try_from(s.as_str()).is_ok(),
                    "byte {b:#x} taken here but refused by hyper"
                );
            }
        }
    }

    #[test]
    fn the_session_cookie_is_read_as_the_hyper_path_reads_it() {
        let raw = "GET / HTTP/1.1\r\nHost: h\r\nCookie: a=1; portcullis=tok_1\r\nCookie: portcullis=other\r\n\r\n";
        let mut fields = Vec::new();
        assert!(matches!(
            parse(
                raw.as_bytes(),
                &mut fields,
                100,
                &IdentityHeaders::default()
            ),
            Parse::Fast(_)
        ));
        assert_eq!(
            session_token(raw.as_bytes(), &fields, "portcullis"),
            Some("tok_1")
        );
        let raw = "GET / HTTP/1.1\r\nHost: h\r\nCookie: portcullis=bad!value\r\nCookie: portcullis=tok\r\n\r\n";
        assert!(matches!(
            parse(
                raw.as_bytes(),
                &mut fields,
                100,
                &IdentityHeaders::default()
            ),
            Parse::Fast(_)
        ));
        assert_eq!(session_token(raw.as_bytes(), &fields, "portcullis"), None);
        let mut map = hyper::HeaderMap::new();
        map.append("cookie", "portcullis=bad!value".parse().unwrap());
        map.append("cookie", "portcullis=tok".parse().unwrap());
        assert_eq!(cookie::get(&map, "portcullis"), None);
    }

    fn response_head(
        status: u16,
        raw_fields: &[(&'static str, &'static str)],
        framing: Framing,
        close: bool,
    ) -> String {
        let fields: Vec<httparse::Header<'_>> = raw_fields
            .iter()
            .map(|(n, v)| httparse::Header {
                name: n,
                value: v.as_bytes(),
            })
            .collect();
        let mut out = Vec::new();
        let head = Head {
            status,
            framing,
            keep_alive: true,
        };
        client_head(&mut out, status, &fields, &head, close, None);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn our_hsts_replaces_the_upstreams_own_in_the_lanes_response_heads() {
        let fields = [
            httparse::Header {
                name: "Strict-Transport-Security",
                value: b"max-age=0",
            },
            httparse::Header {
                name: "date",
                value: b"x",
            },
        ];
        let head = Head {
            status: 200,
            framing: Framing::Length(0),
            keep_alive: true,
        };
        let mut out = Vec::new();
        client_head(
            &mut out,
            200,
            &fields,
            &head,
            false,
            Some(b"max-age=31536000"),
        );
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "HTTP/1.1 200 OK\r\ndate: x\r\nstrict-transport-security: max-age=31536000\r\ncontent-length: 0\r\n\r\n"
        );
    }

    #[test]
    fn response_heads_lose_connection_level_fields_and_get_our_framing() {
        let h = response_head(
            200,
            &[
                ("Date", "x"),
                ("Content-Length", "3"),
                ("Connection", "keep-alive, X-Hop"),
                ("X-Hop", "secret"),
                ("Keep-Alive", "timeout=5"),
                ("Transfer-Encoding", "chunked"),
                ("Upgrade", "h2c"),
                ("Set-Cookie", "a=b"),
            ],
            Framing::Length(3),
            false,
        );
        assert_eq!(
            h,
            "HTTP/1.1 200 OK\r\nDate: x\r\nSet-Cookie: a=b\r\ncontent-length: 3\r\n\r\n"
        );
        let h = response_head(404, &[("date", "x")], Framing::Chunked, true);
        assert_eq!(
            h,
            "HTTP/1.1 404 Not Found\r\ndate: x\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n"
        );
        // No body (HEAD, 304): the upstream's length describes the resource and stays.
        let h = response_head(
            304,
            &[("date", "x"), ("content-length", "9")],
            Framing::Empty,
            false,
        );
        assert_eq!(
            h,
            "HTTP/1.1 304 Not Modified\r\ndate: x\r\ncontent-length: 9\r\n\r\n"
        );
        let h = response_head(799, &[], Framing::Close, false);
        assert!(h.starts_with("HTTP/1.1 799 \r\ndate: "), "{h}");
        assert!(h.ends_with("connection: close\r\n\r\n"), "{h}");
    }
}
