//! What one request sends upstream beyond the client's own cleaned headers (`ForwardPlan`): the
//! target, the forwarding headers and the identity headers, decided once per request by shared
//! code (`server::phases::plan`) and written by one of three serialisers: into a `HeaderMap` for
//! the general path (`apply`), as raw HTTP/1.1 bytes for the fast lane (`write_*`), or as the
//! response headers of a forward-auth answer (`identity_response`, the identity part only).
//! Invariant: the serialisers write the same names with the same values in the same order;
//! identity headers go by name (`IdentityField` to `IdentityHeaders::name`), never by position.

use super::headers::{IdentityHeaders, X_FORWARDED_FOR, X_FORWARDED_HOST, X_FORWARDED_PROTO};
use super::path::PathError;
use crate::session::{HeaderValues, IdentityField};
use hyper::header::{HeaderMap, HeaderValue, HOST};
use hyper::Uri;
use std::net::IpAddr;

/// One request's plan for the upstream. `V` is how the client's `Host` is held: a
/// `HeaderValue` on the general path, the raw bytes in the fast lane (no copy either way).
pub struct ForwardPlan<'a, V> {
    /// `upstream.base_path`, prefixed to `path`.
    pub base_path: &'a str,
    /// The normalised path the route was decided on (never the raw one).
    pub path: &'a str,
    /// The client's query, unchanged.
    pub query: Option<&'a str>,
    /// `X-Forwarded-For`: a trusted proxy's chain (None when the peer is not trusted), then
    /// the peer.
    pub chain: Option<&'a str>,
    pub peer: IpAddr,
    /// `X-Forwarded-Proto: https`.
    pub https: bool,
    /// `X-Forwarded-Host` (and `Host` on the general path, which may have had none but an
    /// HTTP/2 authority).
    pub host: Option<V>,
    /// The session's identity headers; None on a public route without a session.
    pub identity: Option<IdentityPlan<'a>>,
}

/// The identity headers of one session: its values under this deployment's names.
pub struct IdentityPlan<'a> {
    pub names: &'a IdentityHeaders,
    pub values: &'a HeaderValues,
    /// The signed `X-Portcullis-Assertion` (cached on the session), if one could be made.
    pub assertion: Option<HeaderValue>,
}

/// The origin-form URI sent upstream: the upstream's base path, then the normalised path the
/// route was decided on (never the raw one), then the client's query unchanged.
pub fn upstream_target(base_path: &str, path: &str, query: Option<&str>) -> Result<Uri, PathError> {
    // Origin-form: the upstream connection is HTTP/1.1 and `Host` is set separately.
    let mut s = String::with_capacity(base_path.len() + path.len() + 32);
    s.push_str(base_path);
    s.push_str(path);
    if let Some(q) = query {
        s.push('?');
        s.push_str(q);
    }
    Uri::try_from(s).map_err(|_| PathError::BadChar)
}

impl<V> ForwardPlan<'_, V> {
    /// The origin-form target (`upstream_target`).
    pub fn uri(&self) -> Result<Uri, PathError> {
        upstream_target(self.base_path, self.path, self.query)
    }

    fn proto(&self) -> &'static str {
        if self.https {
            "https"
        } else {
            "http"
        }
    }
}

impl ForwardPlan<'_, HeaderValue> {
    /// Adds the plan's headers to a request whose client headers were cleaned already
    /// (`headers::strip_inbound`, the cookie strip): the general path's serialiser.
    pub fn apply(self, h: &mut HeaderMap) {
        // Room for everything added below at once, instead of regrowing the map midway.
        h.reserve(12);
        let xff = match self.chain {
            Some(chain) => HeaderValue::from_maybe_shared(bytes::Bytes::from(format!(
                "{chain}, {}",
                self.peer
            )))
            .ok(),
            None => Some(ip_header(self.peer)),
        };
        if let Some(v) = xff {
            h.insert(X_FORWARDED_FOR, v);
        }
        h.insert(X_FORWARDED_PROTO, HeaderValue::from_static(self.proto()));
        if let Some(host) = self.host {
            h.insert(X_FORWARDED_HOST, host.clone());
            h.insert(HOST, host);
        }
        if let Some(id) = self.identity {
            id.insert(h);
        }
    }
}

impl<V> ForwardPlan<'_, V> {
    /// The identity headers alone (and the assertion), as the response headers of a
    /// forward-auth answer, for the proxy in front to copy onto its request: the same names and
    /// values `apply` sends upstream in proxy mode. A name without a value (no session, no
    /// email) is sent empty: proxies copy named headers unconditionally (Caddy 2.6 writes its
    /// placeholder's text for a missing one), and nginx drops an empty one.
    pub fn identity_response(self, names: &IdentityHeaders, h: &mut HeaderMap) {
        for field in IdentityField::ALL {
            h.insert(names.name(field).clone(), HeaderValue::from_static(""));
        }
        h.insert(names.assertion.clone(), HeaderValue::from_static(""));
        if let Some(id) = self.identity {
            id.insert(h);
        }
    }
}

impl IdentityPlan<'_> {
    /// Inserts the identity headers by name, then the assertion.
    fn insert(self, h: &mut HeaderMap) {
        for field in IdentityField::ALL {
            if let Some(v) = self.values.value(field) {
                h.insert(self.names.name(field).clone(), v);
            }
        }
        if let Some(a) = self.assertion {
            h.insert(self.names.assertion.clone(), a);
        }
    }
}

impl<V: AsRef<[u8]>> ForwardPlan<'_, V> {
    /// `METHOD target HTTP/1.1\r\n`: the fast lane's request line.
    pub fn write_request_line(&self, method: &str, out: &mut Vec<u8>) {
        out.extend_from_slice(method.as_bytes());
        out.push(b' ');
        out.extend_from_slice(self.base_path.as_bytes());
        out.extend_from_slice(self.path.as_bytes());
        if let Some(q) = self.query {
            out.push(b'?');
            out.extend_from_slice(q.as_bytes());
        }
        out.extend_from_slice(b" HTTP/1.1\r\n");
    }

    /// The plan's header fields as raw bytes, after the client's own (`Host` is the client's
    /// field, kept as sent): the fast lane's serialiser.
    pub fn write_fields(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(X_FORWARDED_FOR.as_ref());
        out.extend_from_slice(b": ");
        if let Some(chain) = self.chain {
            out.extend_from_slice(chain.as_bytes());
            out.extend_from_slice(b", ");
        }
        write_ip(out, self.peer);
        out.extend_from_slice(b"\r\n");
        push_field(out, X_FORWARDED_PROTO.as_ref(), self.proto().as_bytes());
        if let Some(host) = &self.host {
            push_field(out, X_FORWARDED_HOST.as_ref(), host.as_ref());
        }
        if let Some(id) = &self.identity {
            for field in IdentityField::ALL {
                if let Some(v) = id.values.bytes(field) {
                    push_field(out, id.names.name(field).as_ref(), v);
                }
            }
            if let Some(a) = &id.assertion {
                push_field(out, id.names.assertion.as_ref(), a.as_bytes());
            }
        }
    }
}

/// `name: value\r\n`.
pub fn push_field(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.extend_from_slice(name);
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

/// The client address as a header value. IPv4 is written by hand: `Display` goes through the
/// formatting machinery, which costs more than the rest of this header's handling together.
pub fn ip_header(ip: IpAddr) -> HeaderValue {
    let mut v = Vec::with_capacity(15);
    write_ip(&mut v, ip);
    HeaderValue::from_maybe_shared(bytes::Bytes::from(v))
        .unwrap_or_else(|_| HeaderValue::from_static("unknown"))
}

/// The client address in its `Display` form, appended to `out`.
pub fn write_ip(out: &mut Vec<u8>, ip: IpAddr) {
    match ip {
        IpAddr::V4(v4) => {
            for (i, octet) in v4.octets().into_iter().enumerate() {
                if i > 0 {
                    out.push(b'.');
                }
                if octet >= 100 {
                    out.push(b'0' + octet / 100);
                }
                if octet >= 10 {
                    out.push(b'0' + octet / 10 % 10);
                }
                out.push(b'0' + octet % 10);
            }
        }
        IpAddr::V6(_) => {
            use std::io::Write as _;
            let _ = write!(out, "{ip}");
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use crate::session::{AuthMethod, Identity, MfaUsed, SessionId};
    use hyper::header::HeaderName;
    use proptest::prelude::*;

    fn values(email: Option<&str>) -> HeaderValues {
        session(email).headers
    }

    fn session(email: Option<&str>) -> crate::session::Session {
        let identity = Identity {
            user: "ann".into(),
            principal: "native:ann".into(),
            email: email.map(str::to_owned),
            groups: vec!["g1".into(), "g2".into()],
            roles: vec!["agent".into()],
            method: AuthMethod::Native,
            mfa: MfaUsed::None,
        };
        let day = std::time::Duration::from_secs(86_400);
        crate::session::Session::new(SessionId::of_str("tok"), identity, 0, day, day, None, None)
            .unwrap()
    }

    /// Names swapped around: a value written by position would land under another's name.
    fn swapped() -> IdentityHeaders {
        let n = HeaderName::from_static;
        IdentityHeaders {
            user: n("x-app-roles"),
            email: n("x-app-user"),
            groups: n("x-app-email"),
            roles: n("x-app-groups"),
            method: n("x-app-session"),
            mfa: n("x-app-method"),
            session: n("x-app-mfa"),
            assertion: n("x-app-proof"),
        }
    }

    fn plan<'a, V>(
        names: &'a IdentityHeaders,
        v: &'a HeaderValues,
        host: Option<V>,
        chain: Option<&'a str>,
    ) -> ForwardPlan<'a, V> {
        ForwardPlan {
            base_path: "/base",
            path: "/agent/x",
            query: Some("q=1"),
            chain,
            peer: IpAddr::from([10, 0, 0, 1]),
            https: true,
            host,
            identity: Some(IdentityPlan {
                names,
                values: v,
                assertion: Some(HeaderValue::from_static("jwt")),
            }),
        }
    }

    /// The fields `write_fields` wrote, as (name, value) pairs.
    fn raw_pairs(out: &[u8]) -> Vec<(String, String)> {
        String::from_utf8(out.to_vec())
            .unwrap()
            .split_terminator("\r\n")
            .map(|l| {
                let (n, v) = l.split_once(": ").unwrap();
                (n.to_owned(), v.to_owned())
            })
            .collect()
    }

    #[test]
    fn both_serialisers_write_the_same_headers_by_name() {
        for (names, email, chain) in [
            (IdentityHeaders::default(), Some("ann@example.com"), None),
            (swapped(), Some("ann@example.com"), Some("192.0.2.9")),
            (swapped(), None, None),
        ] {
            let v = values(email);
            let mut map = HeaderMap::new();
            plan(
                &names,
                &v,
                Some(HeaderValue::from_static("app.example")),
                chain,
            )
            .apply(&mut map);
            let from_map: Vec<(String, String)> = map
                .iter()
                .filter(|(n, _)| *n != HOST)
                .map(|(n, v)| (n.as_str().to_owned(), v.to_str().unwrap().to_owned()))
                .collect();
            let mut out = Vec::new();
            plan(&names, &v, Some(&b"app.example"[..]), chain).write_fields(&mut out);
            assert_eq!(raw_pairs(&out), from_map);
            let get = |n: &HeaderName| map.get(n).map(|v| v.to_str().unwrap().to_owned());
            assert_eq!(get(&names.user).as_deref(), Some("ann"));
            assert_eq!(get(&names.email).as_deref(), email);
            assert_eq!(get(&names.groups).as_deref(), Some("g1,g2"));
            assert_eq!(get(&names.roles).as_deref(), Some("agent"));
            assert_eq!(get(&names.method).as_deref(), Some("native"));
            assert_eq!(get(&names.mfa).as_deref(), Some("none"));
            assert_eq!(get(&names.assertion).as_deref(), Some("jwt"));
            let want_xff = chain.map_or("10.0.0.1".to_owned(), |c| format!("{c}, 10.0.0.1"));
            assert_eq!(get(&X_FORWARDED_FOR), Some(want_xff));
            assert_eq!(get(&X_FORWARDED_PROTO).as_deref(), Some("https"));
            assert_eq!(get(&HOST).as_deref(), Some("app.example"));
        }
    }

    #[test]
    fn the_forward_auth_answer_carries_the_identity_headers_apply_sends() {
        for names in [IdentityHeaders::default(), swapped()] {
            let v = values(None);
            let mut sent = HeaderMap::new();
            plan(&names, &v, None::<HeaderValue>, None).apply(&mut sent);
            let mut answer = HeaderMap::new();
            plan(&names, &v, None::<HeaderValue>, None).identity_response(&names, &mut answer);
            // Every identity name and the assertion: equal where `apply` sends one, and empty
            // where it sends none (no email here); never a forwarding header.
            assert_eq!(answer.len(), IdentityField::ALL.len() + 1);
            for (n, a) in &answer {
                let want = sent.get(n).map_or("", |s| s.to_str().unwrap());
                assert_eq!(a.to_str().unwrap(), want, "{n}");
            }
            assert_eq!(answer.get(&names.email).unwrap(), "");
            let mut anonymous = HeaderMap::new();
            let mut p = plan(&names, &v, None::<HeaderValue>, None);
            p.identity = None;
            p.identity_response(&names, &mut anonymous);
            assert!(anonymous.values().all(|v| v.is_empty()));
            assert_eq!(anonymous.len(), answer.len());
        }
    }

    #[test]
    fn the_request_line_carries_the_routed_path_under_the_base_path() {
        let names = IdentityHeaders::default();
        let v = values(None);
        let p = plan(&names, &v, None::<&[u8]>, None);
        let mut out = Vec::new();
        p.write_request_line("HEAD", &mut out);
        assert_eq!(out, b"HEAD /base/agent/x?q=1 HTTP/1.1\r\n");
        assert_eq!(p.uri().unwrap(), "/base/agent/x?q=1");
    }

    proptest! {
        #[test]
        fn ip_header_is_the_display_form(a: u8, b: u8, c: u8, d: u8, v6: [u16; 8]) {
            let v4 = IpAddr::from([a, b, c, d]);
            let h = ip_header(v4);
            prop_assert_eq!(h.to_str().unwrap(), v4.to_string());
            let v6 = IpAddr::from(v6);
            let h = ip_header(v6);
            prop_assert_eq!(h.to_str().unwrap(), v6.to_string());
        }
    }
}
