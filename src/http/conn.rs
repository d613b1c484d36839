//! What a request says about its client: the connection it came on, its address (the peer, or
//! a trusted proxy's X-Forwarded-For), its user agent, whether its `Origin` is ours; and the
//! one way cookies are set on a response.

use crate::proxy::forward::GatewayBody;
use crate::state::Gateway;
use hyper::header::{HeaderMap, HeaderValue, ORIGIN, SET_COOKIE, USER_AGENT};
use hyper::Response;
use std::net::{IpAddr, SocketAddr};

/// Facts about the connection a request came in on.
#[derive(Clone, Copy, Debug)]
pub struct Conn {
    pub peer: SocketAddr,
    pub tls: bool,
}

/// The client's address: the peer, or the nearest X-Forwarded-For hop from a trusted proxy.
pub fn client_ip(gw: &Gateway, headers: &HeaderMap, conn: Conn) -> IpAddr {
    let peer = conn.peer.ip();
    if !gw.config.is_trusted_proxy(peer) {
        return peer;
    }
    headers
        .get("x-forwarded-for")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.rsplit(',').next())
        .and_then(|ip| ip.trim().parse().ok())
        .unwrap_or(peer)
}

pub fn user_agent(headers: &HeaderMap) -> Option<String> {
    headers
        .get(USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .map(|s| s.chars().take(256).collect())
}

pub fn set_cookie(r: &mut Response<GatewayBody>, value: &str) {
    if let Ok(v) = HeaderValue::from_str(value) {
        r.headers_mut().append(SET_COOKIE, v);
    }
}

/// DESIGN.md §6: a state-changing form POST whose `Origin` (when the browser sends one) is not
/// the gateway's own is refused: another site cannot submit our forms, whatever it knows.
/// `Origin: null` (an opaque origin: a sandboxed frame, or a page whose referrer policy hides
/// its origin) is refused too: our own pages send their origin (`Referrer-Policy: same-origin`).
pub fn origin_ok(gw: &Gateway, headers: &HeaderMap) -> bool {
    headers.get_all(ORIGIN).iter().all(|o| {
        o.as_bytes()
            .eq_ignore_ascii_case(gw.config.server.public_origin.as_bytes())
    })
}
