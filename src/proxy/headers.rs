//! Header hygiene on the way upstream: hop-by-hop headers go, every client-sent identity
//! header goes (any case, `_` for `-`, any number of times), the gateway's own are added.
//! Invariant: after `strip_inbound`, no header the client sent can be read as an identity header.

use hyper::header::{HeaderMap, HeaderName, HeaderValue, CONNECTION, UPGRADE};

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
fn same_name(candidate: &str, canonical: &str) -> bool {
    candidate.len() == canonical.len()
        && candidate
            .bytes()
            .zip(canonical.bytes())
            .all(|(a, b)| a.to_ascii_lowercase() == b || (a == b'_' && b == b'-'))
}

impl IdentityHeaders {
    pub(crate) fn names(&self) -> [&HeaderName; 8] {
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
/// (RFC 9110 §7.6.1), `Upgrade` unless `keep_upgrade`, and every name `also` picks. With
/// `keep_upgrade`, `Connection` is then set to exactly `upgrade`.
///
/// One pass, no lookups by string: this runs twice per proxied request, and a request without
/// any of these headers (the common case) costs one comparison per header and no allocation.
fn strip(headers: &mut HeaderMap, keep_upgrade: bool, also: impl Fn(&str) -> bool) {
    let mut doomed: Vec<HeaderName> = Vec::new();
    for (name, value) in headers.iter() {
        let n = name.as_str();
        if *name == CONNECTION {
            // A header value that is not text cannot name a header we would keep anyway.
            if let Ok(s) = value.to_str() {
                for token in s.split(',').map(str::trim) {
                    if (keep_upgrade && token.eq_ignore_ascii_case("upgrade")) || token.is_empty() {
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
        if is_hop_by_hop(n) || (!keep_upgrade && *name == UPGRADE) || also(n) {
            doomed.push(name.clone());
        }
    }
    for n in &doomed {
        headers.remove(n);
    }
    if keep_upgrade {
        headers.insert(CONNECTION, HeaderValue::from_static("upgrade"));
    }
}

/// Removes hop-by-hop headers, headers named in `Connection`, and every reserved header.
/// `keep_upgrade` keeps `Connection: upgrade` and `Upgrade` for a WebSocket handshake.
/// Returns the client's own X-Forwarded-For, so a trusted proxy's chain can be kept.
pub fn strip_inbound(
    headers: &mut HeaderMap,
    ids: &IdentityHeaders,
    keep_upgrade: bool,
) -> Option<HeaderValue> {
    let client_xff = headers.get(X_FORWARDED_FOR).cloned();
    strip(headers, keep_upgrade, |n| ids.is_reserved(n));
    client_xff
}

/// Removes hop-by-hop headers from an upstream response (keeping an accepted upgrade).
pub fn strip_response(headers: &mut HeaderMap, upgraded: bool) {
    strip(headers, upgraded, |_| false);
}

/// Whether the request asks for a protocol upgrade (WebSocket).
pub fn wants_upgrade(headers: &HeaderMap) -> bool {
    headers.contains_key(UPGRADE)
        && headers
            .get_all(CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .any(|v| {
                v.split(',')
                    .any(|t| t.trim().eq_ignore_ascii_case("upgrade"))
            })
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

    #[test]
    fn websocket_upgrade_headers_survive_when_asked() {
        let ids = IdentityHeaders::default();
        let mut h = HeaderMap::new();
        h.insert(CONNECTION, HeaderValue::from_static("keep-alive, Upgrade"));
        h.insert(UPGRADE, HeaderValue::from_static("websocket"));
        assert!(wants_upgrade(&h));
        strip_inbound(&mut h, &ids, true);
        assert_eq!(h.get(CONNECTION).unwrap(), "upgrade");
        assert_eq!(h.get(UPGRADE).unwrap(), "websocket");
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
