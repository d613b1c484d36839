//! The fast lane's upstream side: raw HTTP/1.1 keep-alive connections driven inside the
//! request's own task (no connection task, no channels), for bodiless GET and HEAD only.
//! Invariants: a response head is parsed by httparse and its framing decided strictly (two
//! lengths, a length with a transfer coding, or a coding other than `chunked` is a 502, never a
//! guess); a connection is pooled again only after a complete response with no byte left over
//! (and never after a HEAD, whose announced body a faulty upstream may still send), and is
//! reused only if nothing arrived on it while idle (`idle::IdlePool::take` asks the kernel), so
//! nothing one response sent can be read as part of the next. A 101 is a 502: the lane forwards
//! no upgrade.

use super::deadline::Deadline;
use super::error::ProxyError;
use bytes::{Buf, BytesMut};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The largest response head accepted from the upstream (hyper's client allows about as much).
pub const MAX_HEAD: usize = 256 * 1024;
/// The most response header fields accepted.
const MAX_HEADERS: usize = 128;
/// How much is read from the upstream at a time.
const READ_CHUNK: usize = 16 * 1024;

/// How the response body is delimited.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Framing {
    /// No body: a HEAD request, 204 or 304.
    Empty,
    /// Exactly this many bytes.
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked,
    /// Until the upstream closes (HTTP/1.1 allows it; the connection is not reused).
    Close,
}

/// What the caller needs of a parsed response head.
#[derive(Clone, Copy, Debug)]
pub struct Head {
    pub status: u16,
    pub framing: Framing,
    /// The upstream lets the connection be reused after this response.
    pub keep_alive: bool,
}

/// One upstream connection and the bytes read from it but not yet consumed.
pub struct RawConn {
    io: TcpStream,
    pub buf: BytesMut,
}

impl RawConn {
    /// Reads more of the response into `buf`; 0 means the upstream closed.
    pub async fn fill(&mut self) -> std::io::Result<usize> {
        self.buf.reserve(READ_CHUNK);
        self.io.read_buf(&mut self.buf).await
    }
}

/// Why reading a response head failed.
#[derive(Debug)]
enum HeadError {
    /// The connection ended or failed before a single response byte: on a reused connection
    /// the upstream closed it while idle, and the (idempotent) request may go again.
    Nothing(String),
    /// Anything else: the upstream answered something this gateway will not forward.
    Bad(String),
    /// A 101: the lane never asks for an upgrade.
    Switch,
}

impl HeadError {
    fn into_proxy(self) -> ProxyError {
        match self {
            HeadError::Nothing(s) | HeadError::Bad(s) => ProxyError::Unavailable(s),
            HeadError::Switch => {
                ProxyError::UnexpectedSwitch("101 to a request without an upgrade")
            }
        }
    }
}

impl super::idle::Idle for RawConn {
    /// No task reads an idle raw connection: the pool's watcher does.
    const WATCHED: bool = true;

    /// Without a readiness event this is no system call. Readable while idle means the upstream
    /// closed it (0) or sent something unasked: either way, not usable.
    fn alive(&self) -> bool {
        let mut probe = [0u8; 1];
        matches!(self.io.try_read(&mut probe), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock)
    }

    fn poll_arrival(&self, cx: &mut std::task::Context<'_>) -> std::task::Poll<()> {
        self.io.poll_read_ready(cx).map(|_| ())
    }

    fn quiet(&self) -> bool {
        super::idle::socket_quiet(&self.io)
    }
}

/// The fast lane's raw keep-alive connections to the one upstream.
pub struct Lane {
    pool: Arc<super::idle::IdlePool<RawConn>>,
    authority: String,
    connect_timeout: Duration,
    timeout: Duration,
    /// False for an https upstream, which the lane never connects to (`server::fast` hands
    /// its requests to hyper): fail closed rather than send a request in clear.
    plain: bool,
}

impl Lane {
    pub fn new(config: &crate::config::UpstreamConfig) -> Arc<Lane> {
        Arc::new(Lane {
            pool: super::idle::IdlePool::new(config.pool_max_idle, config.pool_idle_timeout),
            authority: config.authority.clone(),
            connect_timeout: config.connect_timeout,
            timeout: config.timeout,
            plain: config.tls.is_none(),
        })
    }

    /// Gives a connection back after a complete response (`buf` must be empty: see invariants).
    /// `since`: when its last exchange began (a clock reading the caller already has; the idle
    /// time is counted from there, a little early, never late).
    pub fn release(&self, conn: RawConn, since: Instant) {
        if conn.buf.is_empty() {
            self.pool.put(conn, since);
        }
    }

    async fn connect(&self) -> Result<RawConn, ProxyError> {
        if !self.plain {
            return Err(ProxyError::Unavailable("fast lane: https upstream".into()));
        }
        let io = super::idle::connect(&self.authority, self.connect_timeout).await?;
        self.pool.start_reaper();
        Ok(RawConn {
            io,
            buf: BytesMut::with_capacity(READ_CHUNK),
        })
    }

    /// Sends a complete bodiless request head and reads the response head. `emit` sees the
    /// parsed head (status, header fields, framing) once, before its bytes are consumed; the
    /// returned connection's `buf` then starts with the body. `upstream.timeout` covers
    /// sending and the head. A reused connection that turns out closed is replaced once (only
    /// GET and HEAD come this way, so sending again is safe).
    /// `sent`: the caller's clock reading just before; the timeout counts from it, on `timer`
    /// (the connection's own, moved to this exchange's deadline).
    pub async fn exchange<F>(
        self: &Arc<Self>,
        request: &[u8],
        head_request: bool,
        sent: Instant,
        timer: &mut Deadline,
        emit: F,
    ) -> Result<(RawConn, Head), ProxyError>
    where
        F: FnOnce(u16, &[httparse::Header<'_>], &Head),
    {
        let mut emit = Some(emit);
        let mut retried = false;
        timer.set(tokio::time::Instant::from_std(sent) + self.timeout);
        loop {
            let (mut conn, pooled) = match self.pool.take() {
                Some(c) => (c, true),
                // Boxed: connecting is rare (the pool is warm).
                None => (Box::pin(self.connect()).await?, false),
            };
            let attempt = async {
                if let Err(e) = conn.io.write_all(request).await {
                    return Err(HeadError::Nothing(format!("write: {e}")));
                }
                read_head(&mut conn, head_request, &mut emit).await
            };
            match timer.within(attempt).await {
                Err(_) => return Err(ProxyError::Timeout),
                Ok(Ok(head)) => return Ok((conn, head)),
                Ok(Err(HeadError::Nothing(_))) if pooled && !retried => retried = true,
                Ok(Err(e)) => return Err(e.into_proxy()),
            }
        }
    }
}

/// Reads until one final (non-1xx) response head is complete, hands it to `emit` and consumes it.
async fn read_head<F>(
    conn: &mut RawConn,
    head_request: bool,
    emit: &mut Option<F>,
) -> Result<Head, HeadError>
where
    F: FnOnce(u16, &[httparse::Header<'_>], &Head),
{
    let mut seen_any = false;
    loop {
        if !conn.buf.is_empty() {
            seen_any = true;
            match parse_head(&conn.buf, head_request, emit)? {
                Parsed::Final(len, head) => {
                    conn.buf.advance(len);
                    return Ok(head);
                }
                Parsed::Interim(len) => {
                    conn.buf.advance(len);
                    continue;
                }
                Parsed::Partial => {
                    if conn.buf.len() >= MAX_HEAD {
                        return Err(HeadError::Bad("response head too large".into()));
                    }
                }
            }
        }
        match conn.fill().await {
            Ok(0) if seen_any => {
                return Err(HeadError::Bad(
                    "connection closed in the response head".into(),
                ))
            }
            Ok(0) => return Err(HeadError::Nothing("connection closed".into())),
            Ok(_) => {}
            Err(e) if seen_any => return Err(HeadError::Bad(format!("read: {e}"))),
            Err(e) => return Err(HeadError::Nothing(format!("read: {e}"))),
        }
    }
}

enum Parsed {
    Partial,
    /// A 1xx informational response of this many bytes, to skip.
    Interim(usize),
    /// The final response head of this many bytes.
    Final(usize, Head),
}

fn parse_head<F>(buf: &[u8], head_request: bool, emit: &mut Option<F>) -> Result<Parsed, HeadError>
where
    F: FnOnce(u16, &[httparse::Header<'_>], &Head),
{
    let mut fields = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut r = httparse::Response::new(&mut fields);
    let len = match r.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Ok(Parsed::Partial),
        Err(e) => return Err(HeadError::Bad(format!("invalid response head: {e}"))),
    };
    let status = r.code.unwrap_or(0);
    if status == 101 {
        return Err(HeadError::Switch);
    }
    if (100..200).contains(&status) {
        return Ok(Parsed::Interim(len));
    }
    let http11 = r.version == Some(1);
    let head = decide(status, http11, head_request, r.headers).map_err(HeadError::Bad)?;
    if let Some(f) = emit.take() {
        f(status, r.headers, &head);
    }
    Ok(Parsed::Final(len, head))
}

/// The body framing of a final response (RFC 9112 §6.3), strictly.
pub fn decide(
    status: u16,
    http11: bool,
    head_request: bool,
    fields: &[httparse::Header<'_>],
) -> Result<Head, String> {
    let mut length: Option<u64> = None;
    let mut coding: Option<&[u8]> = None;
    let mut close = !http11;
    for f in fields {
        if f.name.eq_ignore_ascii_case("content-length") {
            let n = parse_length(f.value).ok_or("invalid Content-Length")?;
            if length.is_some_and(|l| l != n) {
                return Err("conflicting Content-Length values".into());
            }
            length = Some(n);
        } else if f.name.eq_ignore_ascii_case("transfer-encoding") {
            if coding.is_some() {
                return Err("more than one Transfer-Encoding field".into());
            }
            coding = Some(f.value);
        } else if f.name.eq_ignore_ascii_case("connection")
            && f.value
                .split(|&b| b == b',')
                .any(|t| t.trim_ascii().eq_ignore_ascii_case(b"close"))
        {
            close = true;
        }
    }
    if coding.is_some() && length.is_some() {
        return Err("both Transfer-Encoding and Content-Length".into());
    }
    if let Some(c) = coding {
        if !c.trim_ascii().eq_ignore_ascii_case(b"chunked") {
            return Err("unsupported Transfer-Encoding".into());
        }
    }
    let framing = if head_request || status == 204 || status == 304 {
        Framing::Empty
    } else if coding.is_some() {
        Framing::Chunked
    } else if let Some(n) = length {
        Framing::Length(n)
    } else {
        Framing::Close
    };
    Ok(Head {
        status,
        framing,
        // Never after HEAD: the body its head announces may still come, a moment late, from a
        // faulty upstream, and would be read as the next request's response.
        keep_alive: !close && framing != Framing::Close && !head_request,
    })
}

/// A Content-Length value: decimal digits only (no sign, no list), at most 18 of them.
fn parse_length(v: &[u8]) -> Option<u64> {
    let v = v.trim_ascii();
    if v.is_empty() || v.len() > 18 || !v.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(
        v.iter()
            .fold(0u64, |n, d| n * 10 + u64::from(d.saturating_sub(b'0'))),
    )
}

/// Decodes `Transfer-Encoding: chunked` in place, strictly: hex sizes of at most 16 digits,
/// CRLF line ends, extension lines and trailers bounded (then discarded).
#[derive(Debug)]
pub struct Chunked {
    state: State,
    /// Bytes of the current size line, or of all trailers.
    seen: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Size { value: u64, digits: u8 },
    Ext { value: u64 },
    SizeLf { value: u64 },
    Data(u64),
    DataCr,
    DataLf,
    TrailerStart,
    TrailerLine,
    TrailerLf,
    EndLf,
    Done,
}

/// One step of chunked decoding.
#[derive(Debug, PartialEq, Eq)]
pub enum Chunk {
    /// The first `n` bytes of the buffer are body data: use them, then `advance(n)`.
    Data(usize),
    /// The buffer holds no complete step: read more.
    More,
    /// The body (with its trailers) is complete.
    End,
}

const MAX_SIZE_LINE: usize = 4096;
const MAX_TRAILERS: usize = 16 * 1024;

impl Default for Chunked {
    fn default() -> Self {
        Chunked {
            state: State::Size {
                value: 0,
                digits: 0,
            },
            seen: 0,
        }
    }
}

impl Chunked {
    /// Consumes framing bytes from `buf` up to the next data, the end, or the end of `buf`.
    pub fn next(&mut self, buf: &mut BytesMut) -> Result<Chunk, &'static str> {
        loop {
            if let State::Data(rem) = self.state {
                let n = usize::try_from(rem).unwrap_or(usize::MAX).min(buf.len());
                if n == 0 {
                    return Ok(Chunk::More);
                }
                let left = rem - n as u64;
                self.state = if left == 0 {
                    State::DataCr
                } else {
                    State::Data(left)
                };
                return Ok(Chunk::Data(n));
            }
            if self.state == State::Done {
                return Ok(Chunk::End);
            }
            let Some(&b) = buf.first() else {
                return Ok(Chunk::More);
            };
            buf.advance(1);
            self.state = match self.state {
                State::Size { value, digits } => {
                    self.seen += 1;
                    match b {
                        b'0'..=b'9' | b'a'..=b'f' | b'A'..=b'F' => {
                            if digits >= 16 {
                                return Err("chunk size too large");
                            }
                            let d = char::from(b).to_digit(16).unwrap_or(0);
                            State::Size {
                                value: value << 4 | u64::from(d),
                                digits: digits + 1,
                            }
                        }
                        b';' | b' ' | b'\t' if digits > 0 => State::Ext { value },
                        b'\r' if digits > 0 => State::SizeLf { value },
                        _ => return Err("invalid chunk size"),
                    }
                }
                State::Ext { value } => {
                    self.seen += 1;
                    if self.seen > MAX_SIZE_LINE {
                        return Err("chunk extension too long");
                    }
                    match b {
                        b'\r' => State::SizeLf { value },
                        b'\n' => return Err("bare LF in a chunk size line"),
                        b'\t' | b' '..=b'~' | 0x80..=0xff => State::Ext { value },
                        _ => return Err("invalid byte in a chunk extension"),
                    }
                }
                State::SizeLf { value } => {
                    if b != b'\n' {
                        return Err("chunk size line without LF");
                    }
                    self.seen = 0;
                    if value == 0 {
                        State::TrailerStart
                    } else {
                        State::Data(value)
                    }
                }
                State::DataCr if b == b'\r' => State::DataLf,
                State::DataLf if b == b'\n' => State::Size {
                    value: 0,
                    digits: 0,
                },
                State::DataCr | State::DataLf => return Err("chunk data not followed by CRLF"),
                State::TrailerStart => match b {
                    b'\r' => State::EndLf,
                    _ => self.trailer_byte(b)?,
                },
                State::TrailerLine => match b {
                    b'\r' => State::TrailerLf,
                    _ => self.trailer_byte(b)?,
                },
                State::TrailerLf if b == b'\n' => State::TrailerStart,
                State::EndLf if b == b'\n' => State::Done,
                State::TrailerLf | State::EndLf => return Err("trailer line without LF"),
                State::Data(_) | State::Done => return Err("chunked decoder state"),
            };
        }
    }

    fn trailer_byte(&mut self, b: u8) -> Result<State, &'static str> {
        self.seen += 1;
        if self.seen > MAX_TRAILERS {
            return Err("trailers too large");
        }
        match b {
            b'\t' | b' '..=b'~' | 0x80..=0xff => Ok(State::TrailerLine),
            _ => Err("invalid byte in a trailer"),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn fields(list: &[(&'static str, &'static str)]) -> Vec<httparse::Header<'static>> {
        list.iter()
            .map(|(n, v)| httparse::Header {
                name: n,
                value: v.as_bytes(),
            })
            .collect()
    }

    fn framing(
        status: u16,
        head: bool,
        list: &[(&'static str, &'static str)],
    ) -> Result<Head, String> {
        decide(status, true, head, &fields(list))
    }

    #[test]
    fn framing_is_decided_strictly() {
        let h = framing(200, false, &[("Content-Length", "12")]).unwrap();
        assert_eq!(h.framing, Framing::Length(12));
        assert!(h.keep_alive);
        // Repeated identical lengths are one length; different ones are refused.
        assert_eq!(
            framing(
                200,
                false,
                &[("content-length", "5"), ("Content-Length", " 5 ")]
            )
            .unwrap()
            .framing,
            Framing::Length(5)
        );
        for bad in [
            vec![("content-length", "5"), ("content-length", "6")],
            vec![("content-length", "5, 5")],
            vec![("content-length", "+5")],
            vec![("content-length", "-1")],
            vec![("content-length", "")],
            vec![("content-length", "99999999999999999999")],
            vec![("transfer-encoding", "chunked"), ("content-length", "5")],
            vec![("transfer-encoding", "gzip, chunked")],
            vec![("transfer-encoding", "identity")],
            vec![
                ("transfer-encoding", "chunked"),
                ("transfer-encoding", "chunked"),
            ],
        ] {
            assert!(framing(200, false, &bad).is_err(), "{bad:?} accepted");
        }
        assert_eq!(
            framing(200, false, &[("Transfer-Encoding", "Chunked")])
                .unwrap()
                .framing,
            Framing::Chunked
        );
        let close = framing(200, false, &[]).unwrap();
        assert_eq!(close.framing, Framing::Close);
        assert!(!close.keep_alive);
        // No body whatever the headers say, for HEAD, 204 and 304; a HEAD's connection is not
        // reused (its announced body may still arrive).
        for (status, head) in [(200, true), (204, false), (304, false)] {
            let h = framing(status, head, &[("content-length", "40")]).unwrap();
            assert_eq!(h.framing, Framing::Empty);
            assert_eq!(h.keep_alive, !head);
        }
        assert!(
            !framing(
                200,
                false,
                &[("content-length", "1"), ("connection", "keep-alive, Close")]
            )
            .unwrap()
            .keep_alive
        );
        assert!(
            !decide(200, false, false, &fields(&[("content-length", "1")]))
                .unwrap()
                .keep_alive,
            "HTTP/1.0 responses end the connection"
        );
    }

    /// A pooled raw connection and the upstream's end of it, blocking (its writes never let the
    /// runtime run, so the runtime has not seen what they send when the pool is asked).
    async fn pooled_pair() -> (
        Arc<super::super::idle::IdlePool<RawConn>>,
        std::net::TcpStream,
    ) {
        let pool = super::super::idle::IdlePool::new(4, Duration::from_secs(60));
        let peer = pool_one(&pool).await;
        (pool, peer)
    }

    /// Puts one more raw connection in `pool`; returns the upstream's end of it.
    async fn pool_one(pool: &super::super::idle::IdlePool<RawConn>) -> std::net::TcpStream {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let io = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (peer, _) = listener.accept().unwrap();
        pool.put(
            RawConn {
                io,
                buf: BytesMut::new(),
            },
            Instant::now(),
        );
        peer
    }

    /// Whether the gateway closed its end (with bytes unread: a reset, not an orderly end).
    fn closed(peer: &mut std::net::TcpStream) -> bool {
        use std::io::Read as _;
        peer.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut rest = [0u8; 1];
        match peer.read(&mut rest) {
            Ok(0) => true,
            Err(e) => e.kind() == std::io::ErrorKind::ConnectionReset,
            Ok(_) => false,
        }
    }

    #[tokio::test]
    async fn a_raw_connection_with_late_bytes_the_runtime_has_not_seen_is_not_reused() {
        use std::io::Write as _;
        let (pool, mut peer) = pooled_pair().await;
        // A second, forged response after a complete one: in the kernel, not yet reported to
        // the runtime (no await since), which is the moment a busy gateway reuses connections.
        peer.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nFORGED")
            .unwrap();
        std::thread::sleep(Duration::from_millis(20));
        assert!(
            pool.take().is_none(),
            "a connection with unread bytes was reused"
        );
        // A quiet one is reused.
        let (pool, _peer) = pooled_pair().await;
        assert!(pool.take().is_some());
    }

    #[tokio::test]
    async fn bytes_arriving_on_an_idle_raw_connection_close_it() {
        use std::io::Write as _;
        let (pool, mut first) = pooled_pair().await;
        pool.start_reaper();
        // Let the watcher register on the idle connection, then send what nobody asked for.
        tokio::time::sleep(Duration::from_millis(200)).await;
        first
            .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
            .unwrap();
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(closed(&mut first), "the first connection is still open");
        // A connection put back while the watcher waits is watched too.
        let mut second = pool_one(&pool).await;
        tokio::time::sleep(Duration::from_millis(200)).await;
        second.write_all(b"FORGED").unwrap();
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(closed(&mut second), "the second connection is still open");
        assert!(pool.take().is_none());
    }

    /// Runs the decoder over `input` delivered in `cuts`-sized pieces; returns the body.    /// Runs the decoder over `input` delivered in `cuts`-sized pieces; returns the body.
    fn decode(input: &[u8], piece: usize) -> Result<(Vec<u8>, usize), &'static str> {
        let mut d = Chunked::default();
        let mut buf = BytesMut::new();
        let mut body = Vec::new();
        let mut fed = 0;
        loop {
            match d.next(&mut buf)? {
                Chunk::Data(n) => {
                    body.extend_from_slice(&buf[..n]);
                    buf.advance(n);
                }
                Chunk::More => {
                    if fed >= input.len() {
                        return Err("truncated");
                    }
                    let end = (fed + piece.max(1)).min(input.len());
                    buf.extend_from_slice(&input[fed..end]);
                    fed = end;
                }
                Chunk::End => return Ok((body, input.len() - fed + buf.len())),
            }
        }
    }

    #[test]
    fn chunked_bodies_decode_and_leftovers_are_seen() {
        let wire =
            b"5\r\nhello\r\n1;ext=\"x\"\r\n \r\n6\r\nworld!\r\n0\r\nX-Trailer: 1\r\n\r\nNEXT";
        for piece in [1, 2, 3, 7, 1000] {
            let (body, left) = decode(wire, piece).unwrap();
            assert_eq!(body, b"hello world!");
            assert_eq!(left, 4, "bytes after the body stay unread (piece {piece})");
        }
    }

    #[test]
    fn malformed_chunked_bodies_are_refused() {
        for bad in [
            &b"x\r\nhello\r\n0\r\n\r\n"[..],
            b"\r\n",
            b"5\nhello\r\n0\r\n\r\n",
            b"5\r\nhelloXX0\r\n\r\n",
            b"11111111111111111\r\n",
            b"-5\r\nhello\r\n0\r\n\r\n",
            b"5\r\nhello\r\n0\r\nbad\ntrailer\r\n\r\n",
            b"5;\x01\r\nhello\r\n0\r\n\r\n",
        ] {
            assert!(
                decode(bad, 3).is_err(),
                "{:?} accepted",
                String::from_utf8_lossy(bad)
            );
        }
        let long_ext = [
            b"1;".as_slice(),
            &[b'a'; MAX_SIZE_LINE],
            b"\r\nx\r\n0\r\n\r\n",
        ]
        .concat();
        assert!(decode(&long_ext, 512).is_err());
        let long_trailer = [b"0\r\nx: ".as_slice(), &[b'a'; MAX_TRAILERS], b"\r\n\r\n"].concat();
        assert!(decode(&long_trailer, 512).is_err());
        assert_eq!(decode(b"5\r\nhel", 2), Err("truncated"));
    }

    proptest! {
        #[test]
        fn any_chunking_of_any_body_round_trips(
            body in proptest::collection::vec(any::<u8>(), 0..2000),
            sizes in proptest::collection::vec(1usize..300, 1..20),
            piece in 1usize..64,
        ) {
            let mut wire = Vec::new();
            let mut rest = &body[..];
            let mut i = 0;
            while !rest.is_empty() {
                let n = sizes[i % sizes.len()].min(rest.len());
                wire.extend_from_slice(format!("{n:X}\r\n").as_bytes());
                wire.extend_from_slice(&rest[..n]);
                wire.extend_from_slice(b"\r\n");
                rest = &rest[n..];
                i += 1;
            }
            wire.extend_from_slice(b"0\r\n\r\n");
            let (out, left) = decode(&wire, piece).unwrap();
            prop_assert_eq!(out, body);
            prop_assert_eq!(left, 0);
        }

        #[test]
        fn the_decoder_never_panics(input in proptest::collection::vec(any::<u8>(), 0..512), piece in 1usize..32) {
            let _ = decode(&input, piece);
        }
    }
}
