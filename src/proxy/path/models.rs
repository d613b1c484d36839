//! Models of how common upstream servers resolve a request path, for tests only (never on the
//! request path): Tomcat 10.1 and Jetty 9.4 (servlet containers serving files), nginx serving
//! files, nginx `proxy_pass` with a URI in front of Tomcat, an Express app with routers mounted
//! at prefixes, and a Flask (Werkzeug) app. Each takes the request target's path as sent on the
//! wire and returns the path the server acts on, or `None` where the server answers 400.
//!
//! They are restated from the servers' behaviour, not from the gateway's code, and
//! `tests/it/real_servers.rs` calibrates each against the real server on a list of tricky paths
//! (dot segments with `;` parameters, `%3B`, encoded dots and slashes, `%u002e`, double
//! encoding, case). The route property test in `proxy::path` checks, with them, that the route
//! the gateway decides is the route every one of these servers serves.

/// The value of a run of hex digits (two or four here).
fn hex(h: &[u8]) -> Option<u32> {
    h.iter()
        .try_fold(0, |v, d| Some(v * 16 + char::from(*d).to_digit(16)?))
}

/// `%XX` decoded; `None` where an escape is malformed or `%00` (every modelled decoder that
/// decodes refuses those).
fn decode(s: &str) -> Option<Vec<u8>> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while let Some(&c) = b.get(i) {
        if c == b'%' {
            let v = hex(b.get(i + 1..i + 3)?).and_then(|v| u8::try_from(v).ok())?;
            if v == 0 {
                return None;
            }
            out.push(v);
            i += 3;
        } else {
            out.push(c);
            i += 1;
        }
    }
    Some(out)
}

/// Each segment cut at its first `;` (servlet path parameters).
fn cut_params(s: &str) -> String {
    s.split('/')
        .map(|seg| seg.split_once(';').map_or(seg, |(name, _)| name))
        .collect::<Vec<_>>()
        .join("/")
}

/// RFC 3986 §5.2.4 over `/`-separated segments; `None` when `..` would climb above the root.
/// With `merge`, empty segments are dropped first (Tomcat, nginx); without, `..` pops an empty
/// segment like any other (Jetty's canonical path).
fn resolve(path: &str, merge: bool) -> Option<String> {
    let mut out: Vec<&str> = Vec::new();
    let segs: Vec<&str> = path.split('/').skip(1).collect();
    let last = segs.len().saturating_sub(1);
    let mut trailing = false;
    for (n, seg) in segs.iter().enumerate() {
        trailing = n == last && (seg.is_empty() || *seg == "." || *seg == "..");
        match *seg {
            "" if merge => {}
            "." => {}
            ".." => {
                out.pop()?;
            }
            s => out.push(s),
        }
    }
    let mut r: String = out.iter().map(|s| format!("/{s}")).collect();
    if r.is_empty() || (trailing && !r.ends_with('/')) {
        r.push('/');
    }
    Some(r)
}

fn graphic(path: &str) -> bool {
    path.starts_with('/') && path.bytes().all(|b| b.is_ascii_graphic())
}

/// Tomcat 10.1 (defaults): `;parameters` cut from every segment of the raw path, then decoded
/// (`%2F`, `%5C`, a raw `\`, `%00` and invalid UTF-8 refused), then `//` merged and dot segments
/// resolved (above the root: refused).
pub fn tomcat(path: &str) -> Option<String> {
    if !graphic(path) || path.contains('\\') {
        return None;
    }
    let cut = cut_params(path);
    // An encoded `/` or `\` is refused, not decoded (encodedSolidusHandling="reject").
    if escapes(&cut).any(|v| v == b'/' || v == b'\\') {
        return None;
    }
    let decoded = String::from_utf8(decode(&cut)?).ok()?;
    resolve(&decoded, true)
}

/// The values of the `%XX` escapes in `s`.
fn escapes(s: &str) -> impl Iterator<Item = u8> + '_ {
    s.match_indices('%')
        .filter_map(|(i, _)| u8::try_from(hex(s.as_bytes().get(i + 1..i + 3)?)?).ok())
}

/// Jetty 9.4 (defaults): a segment whose decoded name before `;` is `.` or `..` is refused as
/// ambiguous; otherwise `;parameters` are cut, the path is decoded (`%2F` becomes `/`, `%uXXXX`
/// is understood), dot segments resolve with `..` popping empty segments, and empty segments
/// merge when the file is looked up.
pub fn jetty(path: &str) -> Option<String> {
    if !graphic(path) {
        return None;
    }
    for seg in path.split('/') {
        if let Some((name, _)) = seg.split_once(';') {
            let name = decode_jetty(name)?;
            if name == "." || name == ".." {
                return None;
            }
        }
    }
    let decoded = decode_jetty(&cut_params(path))?;
    let canonical = resolve(&decoded, false)?;
    let merged = resolve(&canonical, true)?;
    Some(merged)
}

/// Jetty's decoder: `%XX` and `%uXXXX`, as UTF-8 (invalid sequences replaced); `%00` and
/// malformed escapes refused.
fn decode_jetty(s: &str) -> Option<String> {
    let mut out = String::with_capacity(s.len());
    let mut bytes = Vec::new();
    let b = s.as_bytes();
    let mut i = 0;
    while let Some(&c) = b.get(i) {
        if c == b'%' && b.get(i + 1) == Some(&b'u') {
            out.push_str(&String::from_utf8_lossy(&bytes));
            bytes.clear();
            let v = hex(b.get(i + 2..i + 6)?)?;
            out.push(char::from_u32(v).filter(|c| *c != '\0')?);
            i += 6;
        } else if c == b'%' {
            let v = hex(b.get(i + 1..i + 3)?).and_then(|v| u8::try_from(v).ok());
            let v = v.filter(|v| *v != 0)?;
            bytes.push(v);
            i += 3;
        } else {
            bytes.push(c);
            i += 1;
        }
    }
    out.push_str(&String::from_utf8_lossy(&bytes));
    Some(out)
}

/// nginx serving files (defaults): decoded (`%2F` becomes `/`, `%00` refused), `//` merged, dot
/// segments resolved (above the root: refused); `;` is an ordinary character.
pub fn nginx(path: &str) -> Option<String> {
    if !graphic(path) {
        return None;
    }
    let decoded = String::from_utf8_lossy(&decode(path)?).into_owned();
    resolve(&decoded, true)
}

/// nginx `location / { proxy_pass http://tomcat/; }` in front of Tomcat: nginx normalises the
/// path (as [`nginx`]), escapes only controls, space, `#`, `%`, `?` and non-ASCII again, and
/// Tomcat reads the result, so a `%3B` the client sent arrives as a parameter `;`.
pub fn nginx_proxy_to_tomcat(path: &str) -> Option<String> {
    if !graphic(path) {
        return None;
    }
    // Bytes as Latin-1 characters, so that resolving keeps them as they were.
    let decoded: String = decode(path)?.into_iter().map(char::from).collect();
    let normalised = resolve(&decoded, true)?;
    let mut sent = String::with_capacity(normalised.len());
    for c in normalised.chars() {
        let b = u8::try_from(c).ok()?;
        if b <= b' ' || matches!(b, b'#' | b'%' | b'?') || b >= 0x7f {
            sent.push_str(&format!("%{b:02X}"));
        } else {
            sent.push(c);
        }
    }
    tomcat(&sent)
}

/// An Express 4 app with a router mounted at each of `mounts` (and a catch-all): the raw path
/// goes to the first mount it starts with on a `/` boundary, ignoring ASCII case; nothing is
/// decoded or resolved before that. Returned as the mount as written plus the rest.
pub fn express(path: &str, mounts: &[&str]) -> Option<String> {
    if !graphic(path) {
        return None;
    }
    for m in mounts {
        let Some(head) = path.get(..m.len()) else {
            continue;
        };
        let rest = path.get(m.len()..).unwrap_or_default();
        if head.eq_ignore_ascii_case(m) && (rest.is_empty() || rest.starts_with('/')) {
            return Some(format!("{m}{rest}"));
        }
    }
    Some(path.to_owned())
}

/// A Flask app on Werkzeug: the path decoded once (invalid UTF-8 replaced), nothing resolved;
/// a leading `//x` is read as a network path whose host becomes the first segment.
pub fn flask(path: &str) -> Option<String> {
    if !graphic(path) {
        return None;
    }
    let path = match path.strip_prefix('/') {
        Some(rest) if rest.starts_with('/') && !rest.starts_with("//") => rest,
        _ => path,
    };
    let decoded = percent_encoding::percent_decode_str(path).decode_utf8_lossy();
    Some(decoded.into_owned())
}
