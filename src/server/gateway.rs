//! The proxy path as one fixed list of phases (DESIGN.md §2):
//!
//! | phase          | may do                                                            |
//! |----------------|-------------------------------------------------------------------|
//! | classify       | the path normalised once (by the router); pick the route           |
//! | load_session   | read the session cookie, look it up, check expiry, touch ≤ 1/min  |
//! | authorize      | public / role check / send to login (302 for browsers, 401 JSON)  |
//! | rewrite        | decide the upgrade once (`headers::Upgrade`: WebSocket, or none);  |
//! |                | strip hop-by-hop, other upgrades, spoofed identity, our cookies; add ours |
//! | forward        | stream to the upstream, splice WebSocket upgrades, map failures to 502/504 |
//! | log            | one access line when `server.access_log` is on                    |
//!
//! Invariants: the path that `authorize` checked is the path `forward` sends; only a request
//! `headers::Upgrade::of` found to be a WebSocket handshake can become a tunnel; every response
//! gets the edge headers (`edge_headers`, HSTS) on its way out of the public listener.

use super::Gateway;
use crate::auth::policy::{self, LocalPath, RouteDecision};
use crate::config::{Access, RouteConfig};
use crate::http::{wants_html, Conn, GatewayError};
use crate::pages;
use crate::proxy::forward::GatewayBody;
use crate::proxy::headers;
use crate::proxy::path;
use crate::session::{cookie, Session, SessionId, SessionStore};
use hyper::body::Incoming;
use hyper::header::{HeaderValue, HOST};
use hyper::{Method, Request, Response, StatusCode, Uri};
use std::sync::Arc;
use std::time::Instant;

/// The proxy path for a request the router found to be `Endpoint::Proxy`, on its normalised
/// path (the one routed on, and the one forwarded). `user` is set to the session, for the log.
pub async fn proxy(
    gw: &Arc<Gateway>,
    mut req: Request<Incoming>,
    conn: Conn,
    normalized: &str,
    user: &mut Option<Arc<Session>>,
) -> Result<Response<GatewayBody>, GatewayError> {
    // Phase: classify (the path was normalised and found not to be the gateway's own).
    let route = match gw.routes.decide(normalized) {
        RouteDecision::Route(r) => r,
        RouteDecision::NoRoute => return Err(GatewayError::NoRoute),
        RouteDecision::Ambiguous => return Err(GatewayError::AmbiguousPath),
    };

    // Phase: load_session.
    let session = load_session(gw, &req).await?;

    // Phase: authorize.
    match (&route.access, &session) {
        (Access::Public, _) => {}
        (Access::Roles(_), Some(s)) => {
            if !policy::admits(route, &s.identity.roles) {
                *user = session.clone();
                tracing::info!(target: "audit", event = "access.denied", user = %s.identity.user, route = %route.prefix, "role not allowed on route");
                return Err(GatewayError::RoleNotAllowed);
            }
        }
        (Access::Roles(_), None) => return login_redirect(gw, &req, route, normalized),
    }
    user.clone_from(&session);

    // Phase: rewrite. The upgrade is decided once, here, after the route admitted the session:
    // a WebSocket handshake keeps its upgrade, any other protocol's is stripped below.
    let upgrade = headers::Upgrade::of(req.method(), req.version(), req.headers())
        .map_err(GatewayError::BadUpgrade)?;
    let websocket = upgrade == headers::Upgrade::WebSocket;
    let host = req.headers().get(HOST).cloned().or_else(|| {
        req.uri()
            .authority()
            .and_then(|a| HeaderValue::from_str(a.as_str()).ok())
    });
    let client_xff = headers::strip_inbound(req.headers_mut(), &gw.ids, websocket);
    gw.cookies.strip(req.headers_mut());
    let h = req.headers_mut();
    // Room for everything added below at once, instead of regrowing the map midway.
    h.reserve(12);
    let peer_ip = conn.peer.ip();
    let trusted = gw.config.is_trusted_proxy(peer_ip);
    let xff = match client_xff.as_ref().and_then(|v| v.to_str().ok()) {
        Some(chain) if trusted => {
            HeaderValue::from_maybe_shared(bytes::Bytes::from(format!("{chain}, {peer_ip}"))).ok()
        }
        _ => Some(ip_header(peer_ip)),
    };
    if let Some(v) = xff {
        h.insert(headers::X_FORWARDED_FOR, v);
    }
    let https = conn.tls || (trusted && gw.config.server.https);
    h.insert(
        headers::X_FORWARDED_PROTO,
        HeaderValue::from_static(if https { "https" } else { "http" }),
    );
    if let Some(host) = host {
        h.insert(headers::X_FORWARDED_HOST, host.clone());
        h.insert(HOST, host);
    }
    if let Some(s) = &session {
        let v = &s.headers;
        h.insert(gw.ids.user.clone(), v.user());
        if let Some(e) = v.email() {
            h.insert(gw.ids.email.clone(), e);
        }
        h.insert(gw.ids.groups.clone(), v.groups());
        h.insert(gw.ids.roles.clone(), v.roles());
        h.insert(gw.ids.method.clone(), v.method());
        h.insert(gw.ids.mfa.clone(), v.mfa());
        h.insert(gw.ids.session.clone(), v.session());
        if let Some(a) = gw.signer.for_session(s, gw.clock.now()) {
            h.insert(gw.ids.assertion.clone(), a);
        }
    }
    *req.uri_mut() = upstream_target(&gw.upstream.config.base_path, normalized, req.uri().query())?;
    // HTTP/2 clients arrive with version 2; the upstream connection is HTTP/1.1.
    *req.version_mut() = hyper::Version::HTTP_11;

    // Phase: forward.
    if websocket {
        let mut resp = Box::pin(gw.upstream.send_websocket(req)).await?;
        // `send_websocket` returns a 101 only when it answers this handshake.
        let switched = resp.status() == StatusCode::SWITCHING_PROTOCOLS;
        headers::strip_response(resp.headers_mut(), switched);
        return Ok(resp);
    }
    let sent = Instant::now();
    let mut resp = gw.upstream.send(req).await?;
    gw.metrics.upstream_latency(sent.elapsed());
    headers::strip_response(resp.headers_mut(), false);
    Ok(resp.map(GatewayBody::Upstream))
}

/// Headers every response of the public listener carries, whoever made it (the gateway's
/// pages, refusals, redirects, proxied and 101 responses; the fast lane writes the same in
/// `fast::client_head`): `Strict-Transport-Security` with an https `public_url` (DESIGN.md
/// §6). The gateway's value replaces an upstream's own: the operator's policy holds for the
/// whole origin, and an app cannot shorten it or switch it off (`max-age=0`). With
/// `hsts = "off"` the upstream's header passes as it is.
pub fn edge_headers<B>(gw: &Gateway, resp: &mut Response<B>) {
    if let Some(v) = &gw.hsts {
        resp.headers_mut()
            .insert(hyper::header::STRICT_TRANSPORT_SECURITY, v.clone());
    }
}

/// The client address as a header value. IPv4 is written by hand: `Display` goes through the
/// formatting machinery, which costs more than the rest of this header's handling together.
pub(crate) fn ip_header(ip: std::net::IpAddr) -> HeaderValue {
    let mut v = Vec::with_capacity(15);
    write_ip(&mut v, ip);
    HeaderValue::from_maybe_shared(bytes::Bytes::from(v))
        .unwrap_or_else(|_| HeaderValue::from_static("unknown"))
}

/// The client address in its `Display` form, appended to `out` (the fast lane writes it
/// straight into the upstream head).
pub(crate) fn write_ip(out: &mut Vec<u8>, ip: std::net::IpAddr) {
    match ip {
        std::net::IpAddr::V4(v4) => {
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
        std::net::IpAddr::V6(_) => {
            use std::io::Write as _;
            let _ = write!(out, "{ip}");
        }
    }
}

/// The origin-form URI sent upstream: the upstream's base path, then the normalised path the
/// route was decided on (never the raw one), then the client's query unchanged.
pub fn upstream_target(
    base_path: &str,
    path: &str,
    query: Option<&str>,
) -> Result<Uri, GatewayError> {
    // Origin-form: the upstream connection is HTTP/1.1 and `Host` is set separately.
    let mut s = String::with_capacity(base_path.len() + path.len() + 32);
    s.push_str(base_path);
    s.push_str(path);
    if let Some(q) = query {
        s.push('?');
        s.push_str(q);
    }
    Uri::try_from(s).map_err(|_| GatewayError::BadPath(path::PathError::BadChar))
}

/// Reads the session cookie and returns the live session, if any. Expired sessions are
/// removed; the idle timestamp is written at most once per touch interval.
pub async fn load_session<B>(
    gw: &Gateway,
    req: &Request<B>,
) -> Result<Option<Arc<Session>>, GatewayError> {
    let Some(token) = cookie::get(req.headers(), gw.cookies.session) else {
        return Ok(None);
    };
    session_for_token(gw, token).await
}

/// The live session for a session cookie's value, if any (see `load_session`).
pub async fn session_for_token(
    gw: &Gateway,
    token: &str,
) -> Result<Option<Arc<Session>>, GatewayError> {
    // Hashed from the borrowed value: no copy of the secret is made.
    let id = SessionId::of_str(token);
    // Fail closed: a store error is a 503, never "no session" and never "allowed".
    let Some(s) = gw.store.get(&id).await? else {
        return Ok(None);
    };
    let now = gw.clock.now();
    if let Err(why) = s.check(now) {
        Box::pin(gw.store.remove(&id)).await?;
        tracing::info!(target: "audit", event = "session.expired", user = %s.identity.user, reason = ?why, "session expired");
        return Ok(None);
    }
    if s.needs_touch(now, gw.config.session.touch_interval) {
        // Boxed, as `remove` above: rare, and kept out of the per-request future.
        Box::pin(gw.store.touch(&s, now)).await?;
    }
    Ok(Some(s))
}

/// Sends a browser to the route's login with the original path remembered; others get 401.
fn login_redirect(
    gw: &Gateway,
    req: &Request<Incoming>,
    route: &RouteConfig,
    normalized: &str,
) -> Result<Response<GatewayBody>, GatewayError> {
    if !(wants_html(req) && matches!(*req.method(), Method::GET | Method::HEAD)) {
        return Err(GatewayError::Unauthenticated);
    }
    let rd = match req.uri().query() {
        Some(q) => format!("{normalized}?{q}"),
        None => normalized.to_owned(),
    };
    let rd = LocalPath::parse(&rd).unwrap_or_else(LocalPath::root);
    match policy::login_for(&gw.config, route) {
        Some(target) => Ok(pages::redirect(&gw.login_url(target, &rd))),
        None => Err(GatewayError::NoLogin),
    }
}

/// Property (issue 9): the path the route decision used is the path forwarded upstream, and
/// no other reading of it (again normalised, lower case, without `;` parameters) routes elsewhere.
#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod props {
    use super::*;
    use crate::auth::policy::Routes;
    use proptest::prelude::*;

    fn routes() -> Routes {
        let route = |prefix: &str, public: bool| RouteConfig {
            prefix: prefix.to_owned(),
            access: if public {
                Access::Public
            } else {
                Access::Roles(vec!["agent".to_owned()])
            },
            login: None,
        };
        Routes::new(vec![
            route("/", false),
            route("/hc", true),
            route("/agent", false),
            route("/agent/admin", false),
        ])
    }

    /// Request paths built from the pieces encoding tricks are made of.
    fn raw_path() -> impl Strategy<Value = String> {
        let piece = proptest::sample::select(
            &[
                "/", "//", "hc", "agent", "AGENT", "Agent", "admin", "x", "..", ".", "%2e",
                "%2E%2e", "%61", "%41", "%3B", ";", ";x=1", "%20", "%7e", "~", "%252e", "%2f",
                "%5c", "%00", "%", "\\", "%c3%a9",
            ][..],
        );
        proptest::collection::vec(piece, 0..10).prop_map(|p| format!("/{}", p.concat()))
    }

    fn prefix<'a>(d: &RouteDecision<'a>) -> Option<&'a str> {
        match d {
            RouteDecision::Route(r) => Some(r.prefix.as_str()),
            _ => None,
        }
    }

    proptest! {
        #[test]
        fn the_routed_path_is_the_forwarded_path(
            raw in raw_path(),
            query in proptest::option::of("[a-z0-9=&%.]{0,12}"),
            base in proptest::sample::select(&["", "/app"][..]),
        ) {
            let target = match &query {
                Some(q) => format!("{raw}?{q}"),
                None => raw.clone(),
            };
            let Ok(uri) = target.parse::<Uri>() else { return Ok(()) };
            // As `proxy` does: normalise once, decide on it, forward it.
            let Ok(normalized) = path::normalize(uri.path()) else { return Ok(()) };
            let table = routes();
            let decided = table.decide(&normalized);
            let forwarded = upstream_target(base, &normalized, uri.query()).unwrap();
            prop_assert_eq!(forwarded.path(), format!("{base}{normalized}"));
            prop_assert_eq!(forwarded.query(), uri.query());
            // An upstream that normalises again sees the same path, hence the same route.
            let seen = forwarded.path().strip_prefix(base).unwrap();
            prop_assert_eq!(path::normalize(seen), Ok(normalized.clone()));
            prop_assert_eq!(prefix(&table.decide(seen)), prefix(&decided));
            if let Some(p) = prefix(&decided) {
                let same = |other: &str| table.find(other).map(|r| r.prefix.as_str()) == Some(p);
                prop_assert!(same(&normalized.to_ascii_lowercase()), "case reading of {}", normalized);
                if let Some(bare) = path::without_params(&normalized) {
                    prop_assert!(same(&bare), "parameter reading of {}", normalized);
                }
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod ip_header_tests {
    use super::ip_header;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn ip_header_is_the_display_form(a: u8, b: u8, c: u8, d: u8, v6: [u16; 8]) {
            let v4 = std::net::IpAddr::from([a, b, c, d]);
            let h = ip_header(v4);
            prop_assert_eq!(h.to_str().unwrap(), v4.to_string());
            let v6 = std::net::IpAddr::from(v6);
            let h = ip_header(v6);
            prop_assert_eq!(h.to_str().unwrap(), v6.to_string());
        }
    }
}

/// Performance guard: hyper moves each request's future into place (a memcpy of its full size,
/// several times per request), so the proxy path's future must stay small. Large, rare steps
/// (the gateway's own pages, native login, connecting, touching, the Redis lookup) are boxed.
#[cfg(test)]
mod future_size {
    use super::*;
    use hyper::body::Incoming;

    /// The size of the future a function returns, without calling it.
    fn returned<A, R>(_: impl Fn(A) -> R) -> usize {
        std::mem::size_of::<R>()
    }

    #[test]
    fn the_proxy_path_future_stays_small() {
        let handle = returned(|(gw, r, c): (&Arc<Gateway>, Request<Incoming>, Conn)| {
            super::super::contain::contained(
                gw,
                false,
                super::super::router::handle(gw, r, c, false),
            )
        });
        let load = returned(|(gw, r): (&Gateway, &Request<Incoming>)| load_session(gw, r));
        let send = returned(|(gw, r): (&Gateway, Request<Incoming>)| gw.upstream.send(r));
        let proxy_f = returned(
            |(gw, r, c, u): (
                &Arc<Gateway>,
                Request<Incoming>,
                Conn,
                &mut Option<Arc<Session>>,
            )| { proxy(gw, r, c, "/", u) },
        );
        eprintln!(
            "future sizes: contained(handle)={handle} proxy={proxy_f} load_session={load} send={send}"
        );
        // Unoptimised test builds lay futures out larger than release builds do; the bound
        // holds for both. Before the cold steps were boxed this was above 8 KiB.
        assert!(handle <= 4 * 1024, "request future is {handle} bytes");
    }
}
