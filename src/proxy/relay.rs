//! The fast lane's client side of a response: the response head written from the upstream's
//! parsed one (`client_head`), and the body relayed in its framing (`relay`), in bounded memory.
//! Invariants: no connection-level field of the upstream's reaches the client (as
//! `headers::strip_response`), the framing is always this connection's own, and a relay that
//! breaks says whether the client saw any byte (if not, it can still get a clean 502).

use super::h1::{Chunk, Chunked, Framing, Head, RawConn};
use super::headers;
use super::plan::push_field;
use bytes::Buf;
use std::io::Write as _;
use tokio::io::{AsyncWrite, AsyncWriteExt};

/// Response bytes gathered into one write before they go out.
const COALESCE: usize = 64 * 1024;

/// Writes the client's response head: the upstream's fields without connection-level ones
/// (`headers::strip_response` on raw fields), the edge headers (`server::gateway::edge_headers`: `hsts`
/// replaces the upstream's own), then this connection's own framing.
pub fn client_head(
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
    // Names the upstream's `Connection` fields list are connection-level too, looked up in
    // place (a list collected per response was an allocation on every request), and only when
    // the list names more than `keep-alive` (connection-level anyway) and `close`: the common
    // upstream sends just those.
    let connection = connection_tokens(fields).any(|t| {
        !(t.is_empty() || t.eq_ignore_ascii_case(b"keep-alive") || t.eq_ignore_ascii_case(b"close"))
    });
    let mut dated = false;
    for f in fields {
        if headers::is_connection_level(f.name)
            || (head.framing != Framing::Empty && f.name.eq_ignore_ascii_case("content-length"))
            || (hsts.is_some() && f.name.eq_ignore_ascii_case("strict-transport-security"))
            || (connection && listed_in_connection(fields, f.name))
        {
            continue;
        }
        dated |= f.name.eq_ignore_ascii_case("date");
        push_field(out, f.name.as_bytes(), f.value);
    }
    if !dated {
        // RFC 9110 §6.6.1: a recipient with a clock adds Date to a response it forwards.
        // Written in place (`fmt_http_date` would allocate a string).
        let _ = write!(
            out,
            "date: {}\r\n",
            httpdate::HttpDate::from(std::time::SystemTime::now())
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

/// The tokens of the response's `Connection` fields, trimmed.
fn connection_tokens<'a>(fields: &'a [httparse::Header<'_>]) -> impl Iterator<Item = &'a [u8]> {
    fields
        .iter()
        .filter(|f| f.name.eq_ignore_ascii_case("connection"))
        .flat_map(|f| f.value.split(|&b| b == b','))
        .map(<[u8]>::trim_ascii)
}

/// Whether `name` is one of the tokens of the response's `Connection` fields.
fn listed_in_connection(fields: &[httparse::Header<'_>], name: &str) -> bool {
    connection_tokens(fields).any(|t| t.eq_ignore_ascii_case(name.as_bytes()))
}

/// Why relaying a response stopped early (the connection then closes).
pub type RelayError = &'static str;

/// A relay that stopped early, and whether the client had been sent anything by then (if not,
/// it can still be given a proper 502).
pub struct Broken {
    pub why: RelayError,
    pub sent: bool,
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
pub async fn relay<IO: AsyncWrite + Unpin>(
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

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

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
