//! Request path normalisation, done once per request: the result is both what the route policy
//! checks and what is forwarded upstream, so no encoding trick can separate the two.
//!
//! Rules: percent-encoded unreserved characters are decoded (`%61` → `a`, `%2e` → `.`); other
//! escapes are kept with upper-case hex; `//` collapses; `.` and `..` segments are resolved
//! (never above the root). Refused: encoded `/` or `\` (`%2f`, `%5c`), a raw `\`, `?` or `#`,
//! control characters, bad escapes, a `%00`.
//!
//! Paths as the upstream sees them (DESIGN.md §6). Servers disagree about `;` path parameters:
//! Tomcat and Jetty cut `;…` from every segment before they resolve dot segments (Tomcat serves
//! `/hc/..;/admin` as `/admin`, and `/;x/admin` too, since the emptied segment collapses), while
//! nginx, Express and Flask see a segment named `..;`. A decoding proxy in front of a servlet
//! container (nginx `proxy_pass` with a URI) turns `%3B` into `;` on the way. So, after the rules
//! above, a segment that is `.`, `..` or empty once cut at its first `;` or `%3B` is refused
//! ([`PathError::ParamDotSegment`]); only an empty *last* segment (`/agent/;jsessionid=1`, as
//! Tomcat's URL rewriting writes it) is kept, since it names the directory itself for every
//! server. A normalised path therefore has the same segments for every common server, up to
//! their parameters, escapes and case; which route those segments name is `Routes::decide`'s
//! check against [`loosest_reading`]. [`models`] restates how each of those servers resolves a
//! path; `tests/it/real_servers.rs` calibrates the models against the real servers and the
//! property test below checks the route decision against the models.

#[doc(hidden)]
pub mod models;

use std::borrow::Cow;

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
    /// A segment that is `.`, `..` or (not last) empty once its `;parameters` are cut (`..;`,
    /// `.;x=1`, `..%3B`, `;x`): servlet containers step out of or drop it, other servers do not.
    #[error("dot segment with parameters in path")]
    ParamDotSegment,
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

/// Whether `path` is its own normal form, known without building it: absolute, within the
/// limit, only printable ASCII other than `%`, `\\`, `?`, `#` and `;`, and no empty (`//`),
/// `.` or `..` segment (a trailing `/` is kept by `normalize`). The common request takes this
/// test only, with no allocation; `normalize` agrees (property test below).
fn already_normal(path: &str) -> bool {
    let bytes = path.as_bytes();
    if bytes.len() > MAX_PATH || bytes.first() != Some(&b'/') {
        return false;
    }
    if !bytes
        .iter()
        .all(|&b| b.is_ascii_graphic() && !matches!(b, b'%' | b'\\' | b'?' | b'#' | b';'))
    {
        return false;
    }
    let mut segments = bytes
        .get(1..)
        .unwrap_or_default()
        .split(|&b| b == b'/')
        .peekable();
    while let Some(seg) = segments.next() {
        match seg {
            // Empty only as the last segment: a trailing slash, or the root itself.
            b"" if segments.peek().is_some() => return false,
            b"." | b".." => return false,
            _ => {}
        }
    }
    true
}

/// Normalises the path part of a request target (without the query): borrowed when the path is
/// already normal (`already_normal`), as nearly every request's is.
pub fn normalize(path: &str) -> Result<Cow<'_, str>, PathError> {
    if already_normal(path) {
        return Ok(Cow::Borrowed(path));
    }
    rebuild(path).map(Cow::Owned)
}

/// The normal form, built.
fn rebuild(path: &str) -> Result<String, PathError> {
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
    // Checked on what is forwarded (a `..;` that a later `..` removed never reaches anyone).
    let last = out.len().saturating_sub(1);
    for (n, seg) in out.iter().enumerate() {
        if let Some(name) = param_name(seg) {
            if name == "." || name == ".." || (name.is_empty() && n != last) {
                return Err(PathError::ParamDotSegment);
            }
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

/// The name of a segment that has parameters: the part before its first `;` or `%3B` (pass 1
/// writes every escape with upper-case hex). `None` when it has none.
fn param_name(seg: &str) -> Option<&str> {
    let semi = seg.find(';');
    let encoded = seg.find("%3B");
    match (semi, encoded) {
        (Some(a), Some(b)) => seg.get(..a.min(b)),
        (Some(a), None) | (None, Some(a)) => seg.get(..a),
        (None, None) => None,
    }
}

/// The path as the most lenient common server routes it, for `Routes::decide`: percent-decoded
/// once (nginx, Flask), with `;parameters` cut from every segment (servlet containers; after the
/// decoding, so a decoding proxy's `%3B` counts too). Prefixes match it ignoring ASCII case
/// (Express). Only for normalised paths (which hold no `%2F`, so decoding adds no segment).
/// `None` when there is nothing to decode or cut.
pub fn loosest_reading(path: &str) -> Option<String> {
    if !path.contains(['%', ';']) {
        return None;
    }
    let decoded = percent_encoding::percent_decode_str(path).decode_utf8_lossy();
    let mut out = String::with_capacity(decoded.len());
    for (n, seg) in decoded.split('/').enumerate() {
        if n > 0 {
            out.push('/');
        }
        out.push_str(seg.split_once(';').map_or(seg, |(s, _)| s));
    }
    Some(out)
}

/// The path with `;parameters` removed from every segment (how Java servlet containers read it);
/// the route decision uses the wider [`loosest_reading`].
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
    fn dot_segments_that_hide_behind_parameters_are_refused() {
        for bad in [
            "/hc/..;/admin/secret",
            "/hc/%2e%2e;/admin/x",
            "/hc/..;x=1/agent/tickets",
            "/hc/.;/x",
            "/hc/.%2E;a;b/x",
            "/hc/..%3B/admin",
            "/hc/..%3bx/admin",
            "/hc/%2E%3B/x",
            "/;x/admin/secret",
            "/hc/%3B/admin",
            "/hc/..;",
            "/hc/x/..;/y/",
        ] {
            assert_eq!(normalize(bad), Err(PathError::ParamDotSegment), "{bad}");
        }
        // Parameters on a named segment, an empty last segment (Tomcat's own URL rewriting),
        // a dot segment that normalisation removed, and names that are not dot segments.
        for (ok, want) in [
            ("/agent/x;jsessionid=1", "/agent/x;jsessionid=1"),
            ("/agent/;jsessionid=1", "/agent/;jsessionid=1"),
            ("/hc/..;/..", "/hc/"),
            ("/hc/...;/x", "/hc/...;/x"),
            ("/hc/.x;/y", "/hc/.x;/y"),
            ("/hc/%252e%252e;/x", "/hc/%252e%252e;/x"),
        ] {
            assert_eq!(normalize(ok).as_deref(), Ok(want), "{ok}");
        }
    }

    #[test]
    fn the_loosest_reading_decodes_once_and_cuts_parameters() {
        assert_eq!(loosest_reading("/agent/x"), None);
        assert_eq!(
            loosest_reading("/agent;x=1/a%3Bb/%21%252e").as_deref(),
            Some("/agent/a/!%2e")
        );
        assert_eq!(loosest_reading("/a%C3%A9;j").as_deref(), Some("/a\u{e9}"));
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

/// Property (issue 14): for every path the gateway accepts and routes, the route it decided is
/// the route of the path each modelled server acts on (Tomcat, Jetty, nginx, nginx in front of
/// Tomcat, Express, Flask), matched exactly on `/` boundaries, as the server's own routing does.
#[cfg(test)]
mod props {
    use super::*;
    use crate::auth::policy::{RouteDecision, Routes};
    use crate::config::{Access, RouteConfig};
    use proptest::prelude::*;

    const PREFIXES: &[&str] = &[
        "/",
        "/hc",
        "/agent",
        "/admin",
        "/agent/admin",
        "/Docs",
        "/a!b",
    ];

    fn routes() -> Routes {
        Routes::new(
            PREFIXES
                .iter()
                .map(|p| RouteConfig {
                    prefix: (*p).to_owned(),
                    access: Access::Public,
                    login: None,
                    bearer: false,
                })
                .collect(),
        )
    }

    /// Request paths built from dots, parameters, encodings of dots, `;` and letters in both
    /// cases, encoded percents, case changes and slashes.
    fn raw_path() -> impl Strategy<Value = String> {
        let piece = proptest::sample::select(
            &[
                "/", "//", "hc", "HC", "hC", "agent", "Agent", "admin", "ADMIN", "docs", "Docs",
                "a!b", "a%21b", "x", "..", ".", "%2e", "%2E", "%2e%2E", ";", ";x=1", ";a;b", "%3B",
                "%3b", "%3Bx", "%61", "%41", "%64ocs", "%25", "%252e", "%253B", "%2f", "%5c", "~",
                "%7E", "%20", "!", "%c3%a9",
            ][..],
        );
        proptest::collection::vec(piece, 0..10).prop_map(|p| format!("/{}", p.concat()))
    }

    /// The longest prefix whose segments lead `path`, compared exactly.
    fn route_of(path: &str) -> &'static str {
        PREFIXES
            .iter()
            .filter(|p| {
                **p == "/"
                    || path
                        .strip_prefix(**p)
                        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
            })
            .max_by_key(|p| p.len())
            .copied()
            .unwrap_or("/")
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 2048, ..ProptestConfig::default() })]
        /// The shortcut for paths already normal gives what building the normal form gives,
        /// for every path, also for arbitrary bytes.
        #[test]
        fn the_already_normal_shortcut_agrees_with_the_full_normalisation(
            raw in raw_path(),
            any in "/[a-z./;%?#\\\\ A-Z0-9~!]{0,24}",
        ) {
            for p in [raw.as_str(), any.as_str()] {
                prop_assert_eq!(normalize(p).map(Cow::into_owned), rebuild(p), "{}", p);
                if already_normal(p) {
                    let built = rebuild(p);
                    prop_assert_eq!(built.as_deref(), Ok(p));
                }
            }
        }

        #[test]
        fn the_routed_prefix_leads_what_every_modelled_server_resolves(raw in raw_path()) {
            let Ok(forwarded) = normalize(&raw) else { return Ok(()) };
            let table = routes();
            let RouteDecision::Route(route) = table.decide(&forwarded) else { return Ok(()) };
            let mounts: Vec<&str> = PREFIXES.iter().copied().filter(|p| *p != "/").collect();
            let mut by_length = mounts.clone();
            by_length.sort_by_key(|m| std::cmp::Reverse(m.len()));
            let readings = [
                ("tomcat", models::tomcat(&forwarded)),
                ("jetty", models::jetty(&forwarded)),
                ("nginx", models::nginx(&forwarded)),
                ("nginx+tomcat", models::nginx_proxy_to_tomcat(&forwarded)),
                ("express", models::express(&forwarded, &by_length)),
                ("flask", models::flask(&forwarded)),
            ];
            for (server, resolved) in readings {
                // A server that refuses the path serves nothing.
                let Some(resolved) = resolved else { continue };
                prop_assert_eq!(
                    route_of(&resolved),
                    route.prefix.as_str(),
                    "{} sent as {} is {} to {}", raw, forwarded, resolved, server
                );
            }
        }
    }
}
