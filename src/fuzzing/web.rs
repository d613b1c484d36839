//! Fuzz targets for what a browser sends: return paths, cookies, forms, headers, upgrades and
//! request targets, each checked against DESIGN.md's rule restated here, not the code under test.

use super::input::{text, MAX_INPUT};
use crate::auth::policy::{LocalPath, RouteDecision, Routes};
use crate::config::{Access, RouteConfig};
use crate::http::{form_value, query_param};
use crate::proxy::headers::{strip_inbound, IdentityHeaders, Upgrade};
use crate::proxy::path::normalize;
use crate::proxy::plan::upstream_target;
use crate::secret::SessionToken;
use crate::session::cookie::{self, CookieNames};
use crate::session::SessionId;
use crate::state::enc;
use base64::Engine as _;
use hyper::header::{HeaderMap, HeaderName, HeaderValue, CONNECTION, COOKIE, UPGRADE};

/// The origin accepted return paths are emitted on (`LocalPath::absolute`).
pub(super) const ORIGIN: &str = "https://gw.example";

/// DESIGN.md §3: a return path is local: one leading `/`, no `//`, no `\`, no scheme, no
/// control characters, also after one more percent-decoding; and as the absolute URL the
/// gateway emits, a WHATWG URL parser (what browsers use) still finds the gateway's origin.
pub fn check_local_path(p: &str) -> Result<(), String> {
    fn local(p: &str, allow_space: bool) -> Result<(), String> {
        if !p.starts_with('/') {
            return Err(format!("{p:?} does not start with /"));
        }
        if p.contains("//") || p.contains('\\') {
            return Err(format!("{p:?} has // or \\"));
        }
        if p.chars()
            .any(|c| c.is_control() || (c.is_whitespace() && !(allow_space && c == ' ')))
        {
            return Err(format!("{p:?} has a control or space character"));
        }
        if p.starts_with("/ ") {
            return Err(format!("{p:?} starts with a space"));
        }
        let before_query = p.split(['?', '#']).next().unwrap_or_default();
        if before_query.contains(':') {
            return Err(format!("{p:?} could carry a scheme"));
        }
        Ok(())
    }
    local(p, false)?;
    let again = percent_encoding::percent_decode_str(p)
        .decode_utf8()
        .map_err(|_| format!("{p:?} decodes to invalid UTF-8"))?;
    local(&again, true)?;
    let url = openidconnect::url::Url::parse(&format!("{ORIGIN}{p}"))
        .map_err(|e| format!("{p:?} is not a URL path: {e}"))?;
    if url.origin().ascii_serialization() != ORIGIN {
        return Err(format!("{p:?} leaves the origin: {url}"));
    }
    Ok(())
}

/// `rd` as it arrives: raw, and as a query parameter (decoded once by the gateway).
pub fn rd(data: &[u8]) {
    let s = text(data);
    let raw = LocalPath::parse(&s);
    let from_query = query_param(Some(&format!("rd={s}")), "rd").and_then(|v| LocalPath::parse(&v));
    for p in raw.iter().chain(from_query.iter()) {
        let local = check_local_path(p.as_str());
        assert!(local.is_ok(), "accepted rd is not local: {local:?}");
        // The login link carries rd encoded and gets it back decoded, unchanged.
        let back = query_param(Some(&format!("rd={}", enc(p.as_str()))), "rd");
        assert_eq!(back.as_deref(), Some(p.as_str()), "rd round trip");
        assert!(p.absolute(ORIGIN).starts_with(ORIGIN));
    }
}

/// `Cookie` headers (one per line): session cookie lookup, session id, removal before upstream.
pub fn cookie_header(data: &[u8]) {
    let mut h = HeaderMap::new();
    for line in data.get(..MAX_INPUT).unwrap_or(data).split(|b| *b == b'\n') {
        if let Ok(v) = HeaderValue::from_bytes(line) {
            h.append(COOKIE, v);
        }
    }
    for names in [CookieNames::new(true), CookieNames::new(false)] {
        for name in [names.session, names.pending, names.device] {
            if let Some(v) = cookie::get(&h, name) {
                assert!(!v.is_empty() && v.len() <= 128, "cookie value length");
                assert!(
                    v.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
                    "cookie value {v:?} is not base64url"
                );
                let id = SessionId::of(&SessionToken::new(v.to_owned()));
                assert_eq!(SessionId::parse(id.as_str()).as_ref(), Some(&id));
            }
        }
        let untouched = !h
            .get_all(COOKIE)
            .iter()
            .any(|v| v.as_bytes().windows(10).any(|w| w == b"portcullis"));
        let mut stripped = h.clone();
        names.strip(&mut stripped);
        if untouched {
            assert_eq!(stripped, h, "headers without our cookies are left alone");
        } else {
            assert!(stripped.get_all(COOKIE).iter().count() <= 1);
        }
        for name in [names.session, names.pending, names.device] {
            assert_eq!(
                cookie::get(&stripped, name),
                None,
                "{name} reached upstream"
            );
        }
        for v in stripped.get_all(COOKIE) {
            let s = v.to_str().unwrap_or_default();
            for pair in s.split(';') {
                let n = pair.split_once('=').map_or(pair, |(n, _)| n).trim();
                assert!(!n.contains("portcullis"), "cookie {n:?} reached upstream");
            }
        }
    }
}

/// Fields the gateway reads from forms and queries.
pub(super) const FIELDS: [&str; 9] = [
    "username",
    "password",
    "csrf_token",
    "rd",
    "code",
    "remember",
    "logout_token",
    "state",
    "id",
];

/// `application/x-www-form-urlencoded` bodies and query strings (`form_value`, `query_param`).
pub fn form(data: &[u8]) {
    // As the handlers read a body: lossy UTF-8 (`String::from_utf8_lossy`).
    let body = text(data);
    for name in FIELDS {
        let v = form_value(&body, name);
        assert_eq!(query_param(Some(&body), name), v);
        if let Some(v) = v {
            // What a browser encodes, the gateway decodes unchanged.
            let again = form_value(&format!("x=1&{name}={}&{name}=2", enc(&v)), name);
            assert_eq!(again.as_deref(), Some(v.as_str()), "form round trip");
            if name == "rd" {
                if let Some(p) = LocalPath::parse(&v) {
                    let local = check_local_path(p.as_str());
                    assert!(local.is_ok(), "accepted rd is not local: {local:?}");
                }
            }
        }
    }
}

/// The canonical form of a header name as an app framework may read it.
pub(super) fn canonical(name: &str) -> String {
    name.to_ascii_lowercase().replace('_', "-")
}

/// DESIGN.md §2: whether a (canonical) name is one the gateway alone may send upstream.
pub fn is_identity_or_forwarding(canonical_name: &str) -> bool {
    const OURS: [&str; 13] = [
        "x-forwarded-user",
        "x-forwarded-email",
        "x-forwarded-groups",
        "x-auth-roles",
        "x-auth-method",
        "x-auth-mfa",
        "x-auth-session",
        "x-portcullis-assertion",
        "x-forwarded-for",
        "x-forwarded-proto",
        "x-forwarded-host",
        "x-real-ip",
        "forwarded",
    ];
    OURS.contains(&canonical_name) || canonical_name.starts_with("x-portcullis-")
}

pub(super) const HOP_BY_HOP: [&str; 8] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
];

/// Request headers (`name: value` per line; first byte odd = a WebSocket upgrade) through
/// the proxy's stripping: nothing the client sent may be read as an identity header upstream.
pub fn identity_headers(data: &[u8]) {
    let keep_upgrade = data.first().is_some_and(|b| b & 1 == 1);
    let mut h = HeaderMap::new();
    let lines = data.get(1..).unwrap_or_default();
    for line in lines
        .get(..MAX_INPUT)
        .unwrap_or(lines)
        .split(|b| *b == b'\n')
    {
        let mut parts = line.splitn(2, |b| *b == b':');
        let (Some(n), Some(v)) = (parts.next(), parts.next()) else {
            continue;
        };
        let v = v.strip_prefix(b" ").unwrap_or(v);
        if let (Ok(n), Ok(v)) = (HeaderName::from_bytes(n), HeaderValue::from_bytes(v)) {
            h.append(n, v);
        }
    }
    let before = h.clone();
    let xff = strip_inbound(&mut h, &IdentityHeaders::default(), keep_upgrade);
    assert_eq!(xff.as_ref(), before.get("x-forwarded-for"));
    let listed: Vec<String> = before
        .get_all(CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(',').map(|t| t.trim().to_ascii_lowercase()))
        .collect();
    for (name, value) in &h {
        let n = name.as_str();
        assert!(
            !is_identity_or_forwarding(&canonical(n)),
            "client header {n} reached upstream"
        );
        if keep_upgrade && (name == CONNECTION || name == UPGRADE) {
            if name == CONNECTION {
                assert_eq!(value, "upgrade");
            }
            continue;
        }
        assert!(
            !HOP_BY_HOP.contains(&n) && name != UPGRADE,
            "hop-by-hop {n} kept"
        );
        assert!(
            !listed.iter().any(|l| l == n),
            "{n} named in Connection kept"
        );
    }
    // Nothing else is lost: every other header keeps all its values, in order.
    for name in before.keys() {
        let n = name.as_str();
        if is_identity_or_forwarding(&canonical(n))
            || HOP_BY_HOP.contains(&n)
            || name == UPGRADE
            || listed.iter().any(|l| l == n)
        {
            continue;
        }
        let a: Vec<_> = before.get_all(name).iter().collect();
        let b: Vec<_> = h.get_all(name).iter().collect();
        assert_eq!(a, b, "{n} was altered");
    }
}

/// `headers::Upgrade::of` and the rewrite after it (DESIGN.md §6): a request is a WebSocket
/// handshake only when it is a complete one (GET, HTTP/1.1, `Upgrade: websocket` alone,
/// `Connection: upgrade`, a 16-byte key, version 13), CONNECT never passes, and afterwards the
/// upstream sees `Upgrade: websocket` for a handshake and no `Upgrade` at all otherwise.
/// Input: a first line `METHOD VERSION` (`1.0`, `1.1`, `2`), then `name: value` lines.
pub fn upgrade(data: &[u8]) {
    use base64::engine::general_purpose::STANDARD;
    use hyper::{Method, Version};
    let text = text(data);
    let mut lines = text.split('\n');
    let first = lines.next().unwrap_or_default();
    let (m, v) = first.split_once(' ').unwrap_or((first, ""));
    let method = Method::from_bytes(m.trim().as_bytes()).unwrap_or(Method::GET);
    let version = match v.trim() {
        "1.0" => Version::HTTP_10,
        "2" => Version::HTTP_2,
        _ => Version::HTTP_11,
    };
    let mut h = HeaderMap::new();
    for line in lines {
        let Some((n, v)) = line.split_once(':') else {
            continue;
        };
        if let (Ok(n), Ok(v)) = (
            HeaderName::from_bytes(n.trim().as_bytes()),
            HeaderValue::from_str(v.trim()),
        ) {
            h.append(n, v);
        }
    }
    let decided = Upgrade::of(&method, version, &h);
    if method == Method::CONNECT {
        assert!(decided.is_err(), "CONNECT accepted");
    }
    let websocket = decided == Ok(Upgrade::WebSocket);
    if websocket {
        assert!(method == Method::GET && version == Version::HTTP_11);
        // One field whose list (empty elements do not count, RFC 9110 §5.6.1) is `websocket`.
        let ups: Vec<_> = h.get_all(UPGRADE).iter().collect();
        let offers: Vec<String> = ups
            .iter()
            .filter_map(|u| u.to_str().ok())
            .flat_map(|u| u.split(','))
            .map(|t| t.trim().to_ascii_lowercase())
            .filter(|t| !t.is_empty())
            .collect();
        assert!(
            ups.len() == 1 && offers == ["websocket"],
            "a WebSocket with other upgrade offers: {ups:?}"
        );
        assert!(
            h.get_all(CONNECTION)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .any(|v| v
                    .split(',')
                    .any(|t| t.trim().eq_ignore_ascii_case("upgrade"))),
            "a WebSocket without Connection: upgrade"
        );
        let keys: Vec<_> = h.get_all("sec-websocket-key").iter().collect();
        assert!(
            keys.len() == 1
                && keys
                    .first()
                    .and_then(|k| STANDARD.decode(k.as_bytes()).ok())
                    .is_some_and(|k| k.len() == 16),
            "a WebSocket without a valid key"
        );
        let versions: Vec<_> = h.get_all("sec-websocket-version").iter().collect();
        assert!(
            versions.len() == 1 && versions.first().is_some_and(|v| v.as_bytes() == b"13"),
            "a WebSocket of another version"
        );
    }
    strip_inbound(&mut h, &IdentityHeaders::default(), websocket);
    let left: Vec<_> = h.get_all(UPGRADE).iter().collect();
    if websocket {
        assert_eq!(left, [HeaderValue::from_static("websocket")]);
    } else {
        assert!(
            left.is_empty(),
            "an upgrade offer reached the upstream: {left:?}"
        );
    }
}

/// The route table the path target routes with.
pub(super) fn fuzz_routes() -> Routes {
    let route = |prefix: &str, access: Access| RouteConfig {
        prefix: prefix.to_owned(),
        access,
        login: None,
        bearer: false,
    };
    let roles = || Access::Roles(vec!["agent".to_owned()]);
    Routes::new(vec![
        route("/", roles()),
        route("/hc", Access::Public),
        route("/agent", roles()),
        route("/agent/admin", roles()),
    ])
}

/// DESIGN.md §2 / README "Path normalisation": what a normalised path looks like.
pub fn check_normalized(n: &str) -> Result<(), String> {
    if !n.starts_with('/') || n.contains("//") {
        return Err(format!("{n:?}: not one leading / or has //"));
    }
    if n.split('/').any(|seg| seg == "." || seg == "..") {
        return Err(format!("{n:?}: dot segment left"));
    }
    if !n.bytes().all(|b| b.is_ascii_graphic()) || n.contains(['\\', '?', '#']) {
        return Err(format!("{n:?}: invalid character"));
    }
    let b = n.as_bytes();
    for (i, _) in n.match_indices('%') {
        let hex = b.get(i + 1..i + 3).unwrap_or_default();
        let ok = hex.len() == 2
            && hex
                .iter()
                .all(|h| h.is_ascii_digit() || (b'A'..=b'F').contains(h));
        let v = std::str::from_utf8(hex)
            .ok()
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match v {
            Some(v) if ok => {
                if v.is_ascii_alphanumeric() || b"-._~/\\\0".contains(&v) {
                    return Err(format!(
                        "{n:?}: escape %{v:02X} should be decoded or refused"
                    ));
                }
            }
            _ => return Err(format!("{n:?}: bad escape")),
        }
    }
    Ok(())
}

/// Request targets: normalisation on any text, then what the gateway does with a target hyper
/// accepted: normalise its path once, route on it, forward exactly it.
pub fn path(data: &[u8]) {
    let s = text(data);
    if let Ok(n) = normalize(&s) {
        let shape = check_normalized(&n);
        assert!(shape.is_ok(), "normalised path malformed: {shape:?}");
        assert_eq!(normalize(&n).as_deref(), Ok(&*n), "not idempotent");
        assert!(n.len() <= s.len(), "normalising grew the path");
    }
    let Ok(target) = s.parse::<hyper::Uri>() else {
        return;
    };
    let Ok(n) = normalize(target.path()) else {
        return;
    };
    let routes = fuzz_routes();
    let decision = routes.decide(&n);
    if let RouteDecision::Route(r) = &decision {
        // Other readings of the same path (lower case, without `;` parameters) route the same.
        let same = |other: &str| routes.find(other).map(|o| &o.prefix) == Some(&r.prefix);
        assert!(
            same(&n.to_ascii_lowercase()),
            "case changes the route of {n:?}"
        );
        if let Some(stripped) = crate::proxy::path::without_params(&n) {
            assert!(same(&stripped), "parameters change the route of {n:?}");
        }
    }
    for base in ["", "/app"] {
        // The path the route was decided on is the path the upstream receives.
        let uri = upstream_target(base, &n, target.query());
        assert!(uri.is_ok(), "forwarding {n:?} failed");
        let Ok(uri) = uri else { continue };
        assert_eq!(uri.path(), format!("{base}{n}"), "forwarded path differs");
        assert_eq!(uri.query(), target.query(), "forwarded query differs");
        let upstream_view = uri.path().strip_prefix(base).unwrap_or_default();
        let same = match (&decision, &routes.decide(upstream_view)) {
            (RouteDecision::Route(a), RouteDecision::Route(b)) => a.prefix == b.prefix,
            (RouteDecision::NoRoute, RouteDecision::NoRoute)
            | (RouteDecision::Ambiguous, RouteDecision::Ambiguous) => true,
            _ => false,
        };
        assert!(same, "the forwarded path routes differently: {n:?}");
    }
}
