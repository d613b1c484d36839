//! The fast lane's reading of a client's request head (`parse`): httparse over the connection's
//! input, offsets into it (no copies), each field classified once (`Kind`), and the decision
//! whether the lane may take the request at all (else it is hyper's, bytes intact).
//! Invariant: the lane takes only what hyper would read the same way: bodiless GET/HEAD on
//! HTTP/1.1, one `Host`, a plain origin-form target, no `Connection` option naming a header.

use super::headers::{self, IdentityHeaders};
use crate::session::cookie;
use std::ops::Range;

/// At most this many request header fields are parsed here (more: hyper decides).
const MAX_FIELDS: usize = 128;

/// A request head the lane takes: offsets into the connection's input buffer.
pub struct Request {
    pub len: usize,
    pub head: bool,
    pub path: Range<usize>,
    pub query: Option<Range<usize>>,
    /// The value of the one `Host` field.
    pub host: Range<usize>,
    /// The value of the first `X-Forwarded-For` field.
    pub forwarded_for: Option<Range<usize>>,
    /// The client sent `Connection: close`.
    pub close: bool,
    /// A `Cookie` field may hold one of the gateway's cookies: the cookies are rewritten.
    pub ours_in_cookies: bool,
}

/// What a request field is to the lane, decided once when the head is parsed.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Kind {
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

pub struct Field {
    name: Range<usize>,
    value: Range<usize>,
    pub kind: Kind,
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

pub enum Parse {
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
pub fn text(v: &[u8]) -> Option<&str> {
    if is_text(v) {
        std::str::from_utf8(v).ok()
    } else {
        None
    }
}

/// Whether `HeaderValue::to_str` would read `v` as text: visible ASCII and tab. No early exit,
/// so the loop vectorises (this runs over every cookie of every proxied request).
pub fn is_text(v: &[u8]) -> bool {
    v.iter().fold(true, |ok, &b| {
        ok & ((b == b'\t') | (0x20..0x7f).contains(&b))
    })
}

fn offset(buf: &[u8], part: &[u8]) -> Option<Range<usize>> {
    let start = (part.as_ptr() as usize).checked_sub(buf.as_ptr() as usize)?;
    let r = start..start.checked_add(part.len())?;
    buf.get(r.clone()).map(|_| r)
}

/// Parses one request head and decides whether the lane may take it.
pub fn parse(
    buf: &[u8],
    fields: &mut Vec<Field>,
    max_fields: usize,
    ids: &IdentityHeaders,
) -> Parse {
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
    let mut host = 0..0;
    let mut forwarded_for = None;
    let mut close = false;
    let mut ours_in_cookies = false;
    for h in r.headers.iter() {
        let n = h.name;
        // `Authorization`: a machine client's bearer is decided on the general path alone
        // (`server::bearer`), so the lane never has to apply those checks.
        if [
            "content-length",
            "transfer-encoding",
            "expect",
            "upgrade",
            "authorization",
        ]
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
        match kind {
            Kind::Host => host = value.clone(),
            Kind::ForwardedFor if forwarded_for.is_none() => forwarded_for = Some(value.clone()),
            _ => {}
        }
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
        host,
        forwarded_for,
        close,
        ours_in_cookies,
    })
}

pub fn field<'a>(buf: &'a [u8], f: &Field) -> (&'a [u8], &'a [u8]) {
    (
        buf.get(f.name.clone()).unwrap_or_default(),
        buf.get(f.value.clone()).unwrap_or_default(),
    )
}

/// The text values of the fields of one kind, in order.
pub fn texts<'a>(buf: &'a [u8], fields: &'a [Field], k: Kind) -> impl Iterator<Item = &'a str> {
    fields
        .iter()
        .filter(move |f| f.kind == k)
        .filter_map(move |f| text(field(buf, f).1))
}

/// The session cookie's value, by the rule `cookie::get` applies to a header map.
pub fn session_token<'a>(buf: &'a [u8], fields: &'a [Field], name: &str) -> Option<&'a str> {
    cookie::first(cookie_texts(buf, fields), name)
}

/// The `Cookie` values that are text, in order, as bytes (the cookie rules read bytes).
pub fn cookie_texts<'a>(buf: &'a [u8], fields: &'a [Field]) -> impl Iterator<Item = &'a [u8]> {
    fields
        .iter()
        .filter(|f| f.kind == Kind::Cookie)
        .map(move |f| field(buf, f).1)
        .filter(|v| is_text(v))
}

/// As `crate::http::wants_html`.
pub fn wants_html(buf: &[u8], fields: &[Field]) -> bool {
    texts(buf, fields, Kind::Accept).any(|s| s.contains("text/html"))
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
        assert_eq!(&raw[r.host.clone()], "h");
        assert!(r.forwarded_for.is_none());
        let raw = "GET / HTTP/1.1\r\nX-Forwarded-For: a\r\nHost: h\r\nx-forwarded-for: b\r\n\r\n";
        let (r, _) = take(raw).unwrap();
        assert_eq!(&raw[r.forwarded_for.unwrap()], "a");
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
            "GET / HTTP/1.1\r\nHost: h\r\nAuthorization: Bearer t\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: h\r\nauthorization: Basic eA==\r\n\r\n",
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
}
