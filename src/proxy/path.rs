//! Request path normalisation, done once per request: the result is both what the route policy
//! checks and what is forwarded upstream, so no encoding trick can separate the two.
//!
//! Rules: percent-encoded unreserved characters are decoded (`%61` → `a`, `%2e` → `.`); other
//! escapes are kept with upper-case hex; `//` collapses; `.` and `..` segments are resolved
//! (never above the root). Refused: encoded `/` or `\` (`%2f`, `%5c`), a raw `\`, `?` or `#`,
//! control characters, bad escapes, a `%00`.

/// Why a request path was refused (answered with 400).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    /// The path does not start with `/` (absolute-form and `*` targets are not proxied).
    #[error("path must start with /")]
    NotAbsolute,
    /// `%2F`, `%5C` or a raw backslash: ambiguous between servers.
    #[error("encoded slash or backslash in path")]
    EncodedSeparator,
    /// A `%` not followed by two hex digits, or `%00`.
    #[error("malformed percent-encoding in path")]
    BadEscape,
    /// Control characters, spaces or non-ASCII bytes.
    #[error("invalid character in path")]
    BadChar,
    /// Longer than the limit.
    #[error("path too long")]
    TooLong,
}

const MAX_PATH: usize = 8192;

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

fn unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

/// Normalises the path part of a request target (without the query).
pub fn normalize(path: &str) -> Result<String, PathError> {
    let bytes = path.as_bytes();
    if bytes.len() > MAX_PATH {
        return Err(PathError::TooLong);
    }
    if bytes.first() != Some(&b'/') {
        return Err(PathError::NotAbsolute);
    }
    // Pass 1: decode unreserved escapes, canonicalise the others, refuse the dangerous ones.
    let mut decoded = String::with_capacity(bytes.len());
    let mut idx = 0;
    while let Some(&b) = bytes.get(idx) {
        match b {
            b'%' => {
                let (Some(h), Some(l)) = (
                    bytes.get(idx + 1).copied().and_then(hex),
                    bytes.get(idx + 2).copied().and_then(hex),
                ) else {
                    return Err(PathError::BadEscape);
                };
                let v = h * 16 + l;
                match v {
                    b'/' | b'\\' => return Err(PathError::EncodedSeparator),
                    0 => return Err(PathError::BadEscape),
                    v if unreserved(v) => decoded.push(char::from(v)),
                    v => {
                        decoded.push('%');
                        decoded.push(char::from(
                            b"0123456789ABCDEF"
                                .get(usize::from(v >> 4))
                                .copied()
                                .unwrap_or(b'0'),
                        ));
                        decoded.push(char::from(
                            b"0123456789ABCDEF"
                                .get(usize::from(v & 15))
                                .copied()
                                .unwrap_or(b'0'),
                        ));
                    }
                }
                idx += 3;
            }
            b'\\' => return Err(PathError::EncodedSeparator),
            // Never in a request's path (hyper splits them off): a caller passing them would
            // route on one string and forward another (`/agent?x` routes `/agent?x`, sends `/agent`).
            b'?' | b'#' => return Err(PathError::BadChar),
            b if b.is_ascii_graphic() => {
                decoded.push(char::from(b));
                idx += 1;
            }
            _ => return Err(PathError::BadChar),
        }
    }
    // Pass 2: segments, with `//` collapsed and dot segments resolved (RFC 3986 §5.2.4).
    let trailing = decoded.ends_with('/') || decoded.ends_with("/.") || decoded.ends_with("/..");
    let mut out: Vec<&str> = Vec::new();
    for seg in decoded.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                out.pop();
            }
            s => out.push(s),
        }
    }
    let mut result = String::with_capacity(decoded.len());
    for s in &out {
        result.push('/');
        result.push_str(s);
    }
    if result.is_empty() || (trailing && !out.is_empty()) {
        result.push('/');
    }
    Ok(result)
}

/// The path with `;parameters` removed from every segment (how Java servlet containers read it).
pub fn without_params(path: &str) -> Option<String> {
    if !path.contains(';') {
        return None;
    }
    let mut out = String::with_capacity(path.len());
    for (n, seg) in path.split('/').enumerate() {
        if n > 0 {
            out.push('/');
        }
        out.push_str(seg.split_once(';').map_or(seg, |(s, _)| s));
    }
    Some(out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn dot_segments_and_double_slashes_are_resolved() {
        assert_eq!(normalize("/").unwrap(), "/");
        assert_eq!(normalize("/a/b/../c").unwrap(), "/a/c");
        assert_eq!(normalize("/a/./b/").unwrap(), "/a/b/");
        assert_eq!(normalize("//a///b").unwrap(), "/a/b");
        assert_eq!(normalize("/../../etc/passwd").unwrap(), "/etc/passwd");
        assert_eq!(normalize("/a/..").unwrap(), "/");
        assert_eq!(
            normalize("/public/..%2e/admin").unwrap(),
            "/public/.../admin"
        );
    }

    #[test]
    fn encoded_dots_and_letters_are_decoded_before_routing() {
        assert_eq!(normalize("/%61gent/x").unwrap(), "/agent/x");
        assert_eq!(normalize("/hc/%2e%2e/agent").unwrap(), "/agent");
        assert_eq!(normalize("/hc/%2E%2E/agent").unwrap(), "/agent");
        assert_eq!(normalize("/a%20b/%c3%a9").unwrap(), "/a%20b/%C3%A9");
    }

    #[test]
    fn encoded_separators_and_controls_are_refused() {
        assert_eq!(
            normalize("/hc%2f..%2fagent"),
            Err(PathError::EncodedSeparator)
        );
        assert_eq!(
            normalize("/hc%5C..%5Cagent"),
            Err(PathError::EncodedSeparator)
        );
        assert_eq!(
            normalize("/hc\\..\\agent"),
            Err(PathError::EncodedSeparator)
        );
        assert_eq!(normalize("/a%00"), Err(PathError::BadEscape));
        assert_eq!(normalize("/a%zz"), Err(PathError::BadEscape));
        assert_eq!(normalize("/a%4"), Err(PathError::BadEscape));
        assert_eq!(normalize("/a\tb"), Err(PathError::BadChar));
        assert_eq!(normalize("a/b"), Err(PathError::NotAbsolute));
        assert_eq!(normalize("/é"), Err(PathError::BadChar));
        assert_eq!(normalize("/agent?x"), Err(PathError::BadChar));
        assert_eq!(normalize("/a#ent"), Err(PathError::BadChar));
    }

    #[test]
    fn path_parameters_are_stripped_per_segment() {
        assert_eq!(
            without_params("/agent;jsessionid=1/x").as_deref(),
            Some("/agent/x")
        );
        assert_eq!(without_params("/plain"), None);
    }
}
