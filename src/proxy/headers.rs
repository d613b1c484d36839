//! Header hygiene on the way upstream: hop-by-hop headers go, every client-sent identity
//! header goes (any case, `_` for `-`, any number of times), the gateway's own are added.
//! Invariant: after `strip_inbound`, no header the client sent can be read as an identity header.

use crate::session::IdentityField;
use base64::Engine as _;
use hyper::header::{HeaderMap, HeaderName, HeaderValue, CONNECTION, UPGRADE};
use hyper::{Method, Version};

/// The identity header names of one deployment (lower-case, `-` separated).
#[derive(Clone, Debug)]
pub struct IdentityHeaders {
    pub user: HeaderName,
    pub email: HeaderName,
    pub groups: HeaderName,
    pub roles: HeaderName,
    pub method: HeaderName,
    pub mfa: HeaderName,
    pub session: HeaderName,
    pub assertion: HeaderName,
}

impl Default for IdentityHeaders {
    fn default() -> Self {
        Self {
            user: HeaderName::from_static("x-forwarded-user"),
            email: HeaderName::from_static("x-forwarded-email"),
            groups: HeaderName::from_static("x-forwarded-groups"),
            roles: HeaderName::from_static("x-auth-roles"),
            method: HeaderName::from_static("x-auth-method"),
            mfa: HeaderName::from_static("x-auth-mfa"),
            session: HeaderName::from_static("x-auth-session"),
            assertion: HeaderName::from_static("x-portcullis-assertion"),
        }
    }
}

/// Headers that apply to one connection only (RFC 9110 §7.6.1), plus legacy ones.
const HOP_BY_HOP: [&str; 8] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
];

/// Compares a header name with a canonical lower-case, dash-separated name, reading `_` as `-`
/// (many frameworks map `X_Forwarded_User` to the same variable as `X-Forwarded-User`).
/// Both sides are folded the same way, so a configured name written with `_` is matched by a
/// client's `-` too.
fn same_name(candidate: &str, canonical: &str) -> bool {
    let fold = |c: u8| {
        if c == b'_' {
            b'-'
        } else {
            c.to_ascii_lowercase()
        }
    };
    candidate.len() == canonical.len()
        && candidate
            .bytes()
            .zip(canonical.bytes())
            .all(|(a, b)| fold(a) == fold(b))
}

/// The default names (DESIGN.md §2). Reserved whatever the config names: an app that used
/// them before a rename may still read them, so a client must never be able to send them.
const DEFAULT_NAMES: [&str; 8] = [
    "x-forwarded-user",
    "x-forwarded-email",
    "x-forwarded-groups",
    "x-auth-roles",
    "x-auth-method",
    "x-auth-mfa",
    "x-auth-session",
    "x-portcullis-assertion",
];

impl IdentityHeaders {
    /// The names `[identity_headers]` configured (validated there; a name that still did not
    /// parse keeps its default).
    pub fn configured(n: &crate::config::IdentityHeaderNames) -> Self {
        let d = Self::default();
        let name =
            |s: &str, default: HeaderName| HeaderName::from_bytes(s.as_bytes()).unwrap_or(default);
        Self {
            user: name(&n.user, d.user),
            email: name(&n.email, d.email),
            groups: name(&n.groups, d.groups),
            roles: name(&n.roles, d.roles),
            method: name(&n.method, d.method),
            mfa: name(&n.mfa, d.mfa),
            session: name(&n.session, d.session),
            assertion: name(&n.assertion, d.assertion),
        }
    }

    /// The header an identity value is sent under (the assertion's is `assertion`).
    pub fn name(&self, field: IdentityField) -> &HeaderName {
        match field {
            IdentityField::User => &self.user,
            IdentityField::Email => &self.email,
            IdentityField::Groups => &self.groups,
            IdentityField::Roles => &self.roles,
            IdentityField::Method => &self.method,
            IdentityField::Mfa => &self.mfa,
            IdentityField::Session => &self.session,
        }
    }

    /// Every name of ours, for `is_reserved`.
    fn names(&self) -> [&HeaderName; 8] {
        [
            &self.user,
            &self.email,
            &self.groups,
            &self.roles,
            &self.method,
            &self.mfa,
            &self.session,
            &self.assertion,
        ]
    }

    /// True when a client-sent header name could be read as one of ours or as a forwarding header.
    pub fn is_reserved(&self, name: &str) -> bool {
        self.names().iter().any(|n| same_name(name, n.as_str()))
            || DEFAULT_NAMES.iter().any(|n| same_name(name, n))
            || [
                "x-forwarded-for",
                "x-forwarded-proto",
                "x-forwarded-host",
                "x-real-ip",
                "forwarded",
            ]
            .iter()
            .any(|n| same_name(name, n))
            || name.len() >= 13 && same_name(name.get(..13).unwrap_or_default(), "x-portcullis-")
    }
}

/// Forwarding headers: the client's own are removed, the gateway sets these.
pub const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
pub const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
pub const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");

/// Whether a (lower-case) header name is hop-by-hop by definition.
fn is_hop_by_hop(name: &str) -> bool {
    HOP_BY_HOP.contains(&name)
}

/// Whether a header name, in any case, is hop-by-hop or `Upgrade`: the names `strip` removes
/// by definition, for the HTTP/1.1 fast lane, which sees names as sent.
pub fn is_connection_level(name: &str) -> bool {
    name.eq_ignore_ascii_case("upgrade") || HOP_BY_HOP.iter().any(|h| h.eq_ignore_ascii_case(name))
}

/// Removes, in one pass over the headers: hop-by-hop headers, headers named in `Connection`
/// (RFC 9110 §7.6.1), `Upgrade`, and every name `also` picks. With `websocket` (a handshake
/// `Upgrade::of` accepted, or the 101 that answered it) exactly `Connection: upgrade` and
/// `Upgrade: websocket` are then set: no other protocol name can pass, whatever was sent.
///
/// One pass, no lookups by string: this runs twice per proxied request, and a request without
/// any of these headers (the common case) costs one comparison per header and no allocation.
fn strip(headers: &mut HeaderMap, websocket: bool, also: impl Fn(&str) -> bool) {
    let mut doomed: Vec<HeaderName> = Vec::new();
    for (name, value) in headers.iter() {
        let n = name.as_str();
        if *name == CONNECTION {
            // A header value that is not text cannot name a header we would keep anyway.
            if let Ok(s) = value.to_str() {
                for token in s.split(',').map(str::trim) {
                    if token.is_empty() || token.eq_ignore_ascii_case("upgrade") {
                        continue;
                    }
                    // Names in the fixed list go below anyway; only others are parsed.
                    if !HOP_BY_HOP.iter().any(|h| h.eq_ignore_ascii_case(token)) {
                        if let Ok(n) = HeaderName::from_bytes(token.as_bytes()) {
                            doomed.push(n);
                        }
                    }
                }
            }
        }
        if is_hop_by_hop(n) || *name == UPGRADE || also(n) {
            doomed.push(name.clone());
        }
    }
    for n in &doomed {
        headers.remove(n);
    }
    if websocket {
        headers.insert(CONNECTION, HeaderValue::from_static("upgrade"));
        headers.insert(UPGRADE, HeaderValue::from_static("websocket"));
    }
}

/// Removes hop-by-hop headers, headers named in `Connection`, `Upgrade`, and every reserved
/// header. `websocket` (only for a request `Upgrade::of` found to be a WebSocket handshake)
/// sets `Connection: upgrade` and `Upgrade: websocket` again.
/// Returns the client's own X-Forwarded-For, so a trusted proxy's chain can be kept.
pub fn strip_inbound(
    headers: &mut HeaderMap,
    ids: &IdentityHeaders,
    websocket: bool,
) -> Option<HeaderValue> {
    let client_xff = headers.get(X_FORWARDED_FOR).cloned();
    strip(headers, websocket, |n| ids.is_reserved(n));
    client_xff
}

/// Removes hop-by-hop headers from an upstream response (`websocket`: a 101 that
/// `forward::accepts_websocket` found to answer the client's handshake).
pub fn strip_response(headers: &mut HeaderMap, websocket: bool) {
    strip(headers, websocket, |_| false);
}

/// What a request asks of its connection, decided once, before anything is forwarded
/// (DESIGN.md §6: only `Upgrade: websocket` passes upstream, on a route the session may reach).
///
/// | request                                              | decision                      |
/// |------------------------------------------------------|-------------------------------|
/// | no `Upgrade`                                         | `None`                        |
/// | `Upgrade` naming only other protocols (`h2c`, …)     | `None`: `Upgrade` is stripped |
/// | `Upgrade` naming `websocket`, a complete handshake   | `WebSocket`                   |
/// | `Upgrade` naming `websocket`, anything else          | `BadUpgrade` (400)            |
/// | method `CONNECT`                                     | `BadUpgrade` (400)            |
///
/// Other protocols are stripped rather than refused: RFC 9110 §7.8 lets a server ignore an
/// upgrade it does not want, and clients offer `h2c` on their own (`curl --http2` on an http
/// URL), so they keep working as plain HTTP/1.1. A request that names `websocket` is a client
/// that needs the upgrade: answering it as a plain request would only confuse it, so a
/// handshake that is not well-formed gets a clear 400 instead.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Upgrade {
    /// A plain request (any other protocol upgrade removed with the hop-by-hop headers).
    None,
    /// A well-formed WebSocket opening handshake (RFC 6455 §4.1).
    WebSocket,
}

/// Why a request that asks to switch protocols was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum BadUpgrade {
    /// `websocket` together with another protocol, or in more than one `Upgrade` field.
    #[error("websocket offered together with other upgrade protocols")]
    Mixed,
    /// A WebSocket handshake with a method other than GET.
    #[error("websocket handshake with a method other than GET")]
    Method,
    /// A WebSocket handshake on a version other than HTTP/1.1.
    #[error("websocket handshake not on HTTP/1.1")]
    Version,
    /// `Upgrade: websocket` without the `upgrade` connection option (RFC 9110 §7.8).
    #[error("websocket handshake without Connection: upgrade")]
    NoConnectionOption,
    /// `Sec-WebSocket-Key` missing, repeated, or not 16 bytes in base64 (RFC 6455 §4.1).
    #[error("websocket handshake without a valid Sec-WebSocket-Key")]
    Key,
    /// `Sec-WebSocket-Version` other than exactly `13` (RFC 6455 §4.1).
    #[error("websocket handshake with an unsupported Sec-WebSocket-Version")]
    WebSocketVersion,
    /// `CONNECT` asks for a tunnel, which a reverse proxy never makes.
    #[error("CONNECT is not proxied")]
    Connect,
}

/// `Sec-WebSocket-Key` and `Sec-WebSocket-Accept` (RFC 6455 §11.3).
pub const SEC_WEBSOCKET_KEY: HeaderName = HeaderName::from_static("sec-websocket-key");
pub const SEC_WEBSOCKET_ACCEPT: HeaderName = HeaderName::from_static("sec-websocket-accept");
const SEC_WEBSOCKET_VERSION: HeaderName = HeaderName::from_static("sec-websocket-version");

/// The comma-separated tokens of every field `name`, trimmed, empty ones skipped. A field that
/// is not text yields one token that matches nothing (it is read, never skipped).
fn tokens<'a>(headers: &'a HeaderMap, name: &HeaderName) -> impl Iterator<Item = &'a str> {
    headers.get_all(name).iter().flat_map(|v| {
        v.to_str()
            .unwrap_or("\u{0}")
            .split(',')
            .map(str::trim)
            .filter(|t| !t.is_empty())
    })
}

/// The one value of a field that must appear exactly once.
fn single<'a>(headers: &'a HeaderMap, name: &HeaderName) -> Option<&'a HeaderValue> {
    let mut all = headers.get_all(name).iter();
    match (all.next(), all.next()) {
        (Some(v), None) => Some(v),
        _ => None,
    }
}

impl Upgrade {
    /// Decides what `method`, `version` and `headers` of a request ask for (see the table above).
    pub fn of(
        method: &Method,
        version: Version,
        headers: &HeaderMap,
    ) -> Result<Upgrade, BadUpgrade> {
        // hyper reads a 2xx answer to CONNECT as a tunnel, on both sides: never forwarded.
        if method == Method::CONNECT {
            return Err(BadUpgrade::Connect);
        }
        if !headers.contains_key(UPGRADE) {
            return Ok(Upgrade::None);
        }
        if !tokens(headers, &UPGRADE).any(|t| t.eq_ignore_ascii_case("websocket")) {
            return Ok(Upgrade::None);
        }
        if headers.get_all(UPGRADE).iter().count() != 1 || tokens(headers, &UPGRADE).count() != 1 {
            return Err(BadUpgrade::Mixed);
        }
        if method != Method::GET {
            return Err(BadUpgrade::Method);
        }
        if version != Version::HTTP_11 {
            return Err(BadUpgrade::Version);
        }
        if !tokens(headers, &CONNECTION).any(|t| t.eq_ignore_ascii_case("upgrade")) {
            return Err(BadUpgrade::NoConnectionOption);
        }
        let key = single(headers, &SEC_WEBSOCKET_KEY).ok_or(BadUpgrade::Key)?;
        match base64::engine::general_purpose::STANDARD.decode(key.as_bytes()) {
            Ok(nonce) if nonce.len() == 16 => {}
            _ => return Err(BadUpgrade::Key),
        }
        match single(headers, &SEC_WEBSOCKET_VERSION) {
            Some(v) if v.as_bytes().trim_ascii() == b"13" => {}
            _ => return Err(BadUpgrade::WebSocketVersion),
        }
        Ok(Upgrade::WebSocket)
    }
}

/// The `Sec-WebSocket-Accept` that answers `key` (RFC 6455 §4.2.2 item 5.4): base64 of the
/// SHA-1 of the key and the protocol's GUID.
pub fn websocket_accept(key: &[u8]) -> String {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY);
    ctx.update(key);
    ctx.update(b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11");
    base64::engine::general_purpose::STANDARD.encode(ctx.finish())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn identity_headers_are_removed_in_any_spelling() {
        let ids = IdentityHeaders::default();
        let mut h = HeaderMap::new();
        for (n, v) in [
            ("x-forwarded-user", "mallory"),
            ("X_Forwarded_User", "mallory"),
            ("x-auth-roles", "admin"),
            ("X-AUTH-MFA", "idp"),
            ("x_auth_session", "s"),
            ("x-portcullis-assertion", "forged"),
            ("x-portcullis-anything", "x"),
            ("x_portcullis_", "x"),
            ("x-forwarded-email", "m@x"),
            ("x-forwarded-groups", "admins"),
            ("x-auth-method", "oidc:okta"),
            ("x_forwarded_for", "1.2.3.4"),
            ("forwarded", "for=1.2.3.4"),
            ("x-keep", "yes"),
        ] {
            h.append(
                HeaderName::from_bytes(n.as_bytes()).unwrap(),
                HeaderValue::from_static(v),
            );
        }
        h.append("x-forwarded-user", HeaderValue::from_static("second"));
        strip_inbound(&mut h, &ids, false);
        let left: Vec<_> = h.keys().map(|k| k.as_str().to_owned()).collect();
        assert_eq!(left, vec!["x-keep"]);
    }

    #[test]
    fn connection_listed_headers_and_hop_by_hop_headers_go() {
        let ids = IdentityHeaders::default();
        let mut h = HeaderMap::new();
        h.insert(CONNECTION, HeaderValue::from_static("close, x-secret-hop"));
        h.insert("x-secret-hop", HeaderValue::from_static("1"));
        h.insert("te", HeaderValue::from_static("trailers"));
        h.insert(UPGRADE, HeaderValue::from_static("h2c"));
        h.insert("accept", HeaderValue::from_static("*/*"));
        strip_inbound(&mut h, &ids, false);
        let left: Vec<_> = h.keys().map(|k| k.as_str().to_owned()).collect();
        assert_eq!(left, vec!["accept"]);
    }

    fn handshake(extra: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(CONNECTION, HeaderValue::from_static("keep-alive, Upgrade"));
        h.insert(UPGRADE, HeaderValue::from_static("websocket"));
        h.insert(
            SEC_WEBSOCKET_KEY,
            HeaderValue::from_static("dGhlIHNhbXBsZSBub25jZQ=="),
        );
        h.insert(SEC_WEBSOCKET_VERSION, HeaderValue::from_static("13"));
        for (n, v) in extra {
            h.insert(*n, HeaderValue::from_static(v));
        }
        h
    }

    fn decide(h: &HeaderMap) -> Result<Upgrade, BadUpgrade> {
        Upgrade::of(&Method::GET, Version::HTTP_11, h)
    }

    #[test]
    fn a_complete_websocket_handshake_keeps_exactly_its_upgrade_headers() {
        let ids = IdentityHeaders::default();
        let mut h = handshake(&[("upgrade", "WebSocket")]);
        assert_eq!(decide(&h), Ok(Upgrade::WebSocket));
        strip_inbound(&mut h, &ids, true);
        assert_eq!(h.get(CONNECTION).unwrap(), "upgrade");
        assert_eq!(h.get(UPGRADE).unwrap(), "websocket");
    }

    #[test]
    fn upgrades_to_other_protocols_are_plain_requests_without_upgrade() {
        let ids = IdentityHeaders::default();
        for proto in [
            "h2c",
            "foo",
            "HTTP/2.0",
            "TLS/1.2, h2c",
            "websocketx",
            "\u{7f}",
        ] {
            let mut h = HeaderMap::new();
            h.insert(
                CONNECTION,
                HeaderValue::from_static("Upgrade, HTTP2-Settings"),
            );
            h.insert(
                "http2-settings",
                HeaderValue::from_static("AAMAAABkAARAAAAAAAIAAAAA"),
            );
            if let Ok(v) = HeaderValue::from_str(proto) {
                h.insert(UPGRADE, v);
            } else {
                h.insert(UPGRADE, HeaderValue::from_bytes(b"\xff").unwrap());
            }
            assert_eq!(decide(&h), Ok(Upgrade::None), "{proto}");
            strip_inbound(&mut h, &ids, false);
            assert!(h.is_empty(), "{proto}: {h:?}");
        }
        assert_eq!(decide(&HeaderMap::new()), Ok(Upgrade::None));
    }

    #[test]
    fn malformed_websocket_handshakes_are_refused() {
        let mut two_fields = handshake(&[]);
        two_fields.append(UPGRADE, HeaderValue::from_static("websocket"));
        let mut no_key = handshake(&[]);
        no_key.remove(SEC_WEBSOCKET_KEY);
        let mut two_keys = handshake(&[]);
        two_keys.append(
            SEC_WEBSOCKET_KEY,
            HeaderValue::from_static("dGhlIHNhbXBsZSBub25jZQ=="),
        );
        let mut no_version = handshake(&[]);
        no_version.remove(SEC_WEBSOCKET_VERSION);
        for (h, why) in [
            (
                handshake(&[("upgrade", "websocket, h2c")]),
                BadUpgrade::Mixed,
            ),
            (
                handshake(&[("upgrade", "h2c,websocket")]),
                BadUpgrade::Mixed,
            ),
            (two_fields, BadUpgrade::Mixed),
            (
                handshake(&[("connection", "keep-alive")]),
                BadUpgrade::NoConnectionOption,
            ),
            (no_key, BadUpgrade::Key),
            (two_keys, BadUpgrade::Key),
            (
                handshake(&[("sec-websocket-key", "c2hvcnQ=")]),
                BadUpgrade::Key,
            ),
            (
                handshake(&[("sec-websocket-key", "not base64!")]),
                BadUpgrade::Key,
            ),
            (no_version, BadUpgrade::WebSocketVersion),
            (
                handshake(&[("sec-websocket-version", "8")]),
                BadUpgrade::WebSocketVersion,
            ),
        ] {
            assert_eq!(decide(&h), Err(why), "{h:?}");
        }
        let h = handshake(&[]);
        assert_eq!(
            Upgrade::of(&Method::POST, Version::HTTP_11, &h),
            Err(BadUpgrade::Method)
        );
        assert_eq!(
            Upgrade::of(&Method::GET, Version::HTTP_10, &h),
            Err(BadUpgrade::Version)
        );
        assert_eq!(
            Upgrade::of(&Method::GET, Version::HTTP_2, &h),
            Err(BadUpgrade::Version)
        );
        assert_eq!(
            Upgrade::of(&Method::CONNECT, Version::HTTP_11, &HeaderMap::new()),
            Err(BadUpgrade::Connect)
        );
    }

    #[test]
    fn the_websocket_accept_value_is_the_rfc_6455_example() {
        // RFC 6455 §1.3.
        assert_eq!(
            websocket_accept(b"dGhlIHNhbXBsZSBub25jZQ=="),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }
}

/// Property (issue 9): whatever header set a client sends, no identity header survives.
#[cfg(test)]
mod props {
    use super::*;
    use crate::fuzzing::is_identity_or_forwarding;
    use proptest::prelude::*;

    /// Every name the gateway alone may send, canonical spelling.
    const OURS: [&str; 14] = [
        "x-forwarded-user",
        "x-forwarded-email",
        "x-forwarded-groups",
        "x-auth-roles",
        "x-auth-method",
        "x-auth-mfa",
        "x-auth-session",
        "x-portcullis-assertion",
        "x-portcullis-anything",
        "x-forwarded-for",
        "x-forwarded-proto",
        "x-forwarded-host",
        "x-real-ip",
        "forwarded",
    ];

    /// Any spelling of a name: each letter in either case, each `-` as `-` or `_`.
    fn spelling(canonical: &'static str) -> impl Strategy<Value = String> {
        proptest::collection::vec(any::<bool>(), canonical.len()).prop_map(move |flips| {
            canonical
                .chars()
                .zip(flips)
                .map(|(c, flip)| match (c, flip) {
                    ('-', true) => '_',
                    (c, true) => c.to_ascii_uppercase(),
                    (c, false) => c,
                })
                .collect()
        })
    }

    fn header_name() -> impl Strategy<Value = String> {
        prop_oneof![
            3 => proptest::sample::select(&OURS[..]).prop_flat_map(spelling),
            1 => "[xX][-_][pP][oO][rR][tT][cC][uU][lL][lL][iI][sS][-_][a-zA-Z_-]{0,8}",
            1 => "[xX][-_](auth|forwarded|AUTH|Forwarded)[-_][a-zA-Z_]{1,10}",
            3 => "[a-zA-Z0-9_-]{1,16}",
            1 => proptest::sample::select(&HOP_BY_HOP[..]).prop_map(str::to_owned),
        ]
    }

    proptest! {
        #[test]
        fn no_client_identity_header_reaches_the_upstream(
            sent in proptest::collection::vec((header_name(), "[ -~]{0,24}"), 0..24),
            connection in proptest::collection::vec(header_name(), 0..3),
            upgrade in any::<bool>(),
        ) {
            let mut h = HeaderMap::new();
            for (n, v) in &sent {
                if let (Ok(n), Ok(v)) = (HeaderName::from_bytes(n.as_bytes()), HeaderValue::from_str(v)) {
                    h.append(n, v);
                }
            }
            if let Ok(v) = HeaderValue::from_str(&connection.join(", ")) {
                h.append(CONNECTION, v);
            }
            strip_inbound(&mut h, &IdentityHeaders::default(), upgrade);
            for name in h.keys() {
                let canonical = name.as_str().replace('_', "-");
                prop_assert!(!is_identity_or_forwarding(&canonical), "{} reached the upstream", name);
            }
        }
    }
}
