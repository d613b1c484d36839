//! The proxy path on hyper, as one fixed list of phases (DESIGN.md §2). The phases marked *
//! are `server::phases`, the same code the fast lane (`fast`) runs; `rewrite` adds what
//! `phases::plan` decided (`ForwardPlan::apply`), after this lane's own header hygiene.
//!
//! | phase          | may do                                                            |
//! |----------------|-------------------------------------------------------------------|
//! | classify *     | the path normalised once (by the router); pick the route           |
//! | load_session * | a bearer token (`bearer`), else the session cookie: look it up,   |
//! |                | check expiry, touch ≤ 1/min                                       |
//! | authorize *    | public / role check / send to login (302 for browsers, 401 JSON)  |
//! | rewrite        | decide the upgrade once (`headers::Upgrade`: WebSocket, or none);  |
//! |                | strip hop-by-hop, other upgrades, spoofed identity, our cookies; add ours |
//! | forward        | stream to the upstream, splice WebSocket upgrades, map failures to 502/504 |
//! | log *          | metrics (status, duration); one `access::emit` line (by the router) |
//!
//! Invariants: the path that `authorize` checked is the path `forward` sends; only a request
//! `headers::Upgrade::of` found to be a WebSocket handshake can become a tunnel; every response
//! gets the edge headers (`edge_headers`, HSTS) on its way out of the public listener.

use super::bearer;
use super::phases::{self, Authorized};
use crate::auth::policy::{self, LocalPath};
use crate::config::RouteConfig;
use crate::http::{wants_html, Conn, GatewayError};
use crate::pages;
use crate::proxy::forward::GatewayBody;
use crate::proxy::headers;
use crate::session::Session;
use crate::state::Gateway;
use hyper::body::Incoming;
use hyper::header::{HeaderValue, HOST};
use hyper::{Method, Request, Response};
use std::sync::Arc;
use std::time::Instant;

/// The proxy path for a request the router found to be `Endpoint::Proxy`, on its normalised
/// path (the one routed on, and the one forwarded). `user` is set to the session, for the log.
pub async fn proxy(
    gw: &Arc<Gateway>,
    req: Request<Incoming>,
    conn: Conn,
    normalized: &str,
    user: &mut Option<Arc<Session>>,
) -> Result<Response<GatewayBody>, GatewayError> {
    // Phase: classify (the path was normalised and found not to be the gateway's own).
    let route = phases::classify(gw, normalized)?;

    // Phase: load_session (a machine client's bearer, or the session cookie).
    let caller = bearer::load_caller(gw, &req, route, conn).await?;
    let session = caller.session;

    // Phase: authorize.
    match phases::authorize(route, session.as_deref()) {
        Authorized::Pass => {}
        Authorized::Refused => {
            *user = session.clone();
            if let Some(s) = &session {
                tracing::info!(target: "audit", event = "access.denied", user = %s.identity.user, route = %route.prefix, "role not allowed on route");
                if caller.bearer.is_some() {
                    Box::pin(bearer::refused_role(gw, conn, route, s)).await;
                }
            }
            return Err(GatewayError::RoleNotAllowed);
        }
        Authorized::SignIn => return login_redirect(gw, &req, route, normalized),
    }
    user.clone_from(&session);

    // Phase: rewrite. The upgrade is decided once, here, after the route admitted the session:
    // a WebSocket handshake keeps its upgrade, any other protocol's is stripped below.
    let upgrade = headers::Upgrade::of(req.method(), req.version(), req.headers())
        .map_err(GatewayError::BadUpgrade)?;
    let websocket = upgrade == headers::Upgrade::WebSocket;
    let (mut parts, body) = req.into_parts();
    let host = parts.headers.get(HOST).cloned().or_else(|| {
        parts
            .uri
            .authority()
            .and_then(|a| HeaderValue::from_str(a.as_str()).ok())
    });
    let client_xff = headers::strip_inbound(&mut parts.headers, &gw.ids, websocket);
    gw.cookies.strip(&mut parts.headers);
    // A service token is the gateway's own secret: the app gets the identity headers and the
    // signed assertion instead. A JWT is the IdP's, issued for the app's audience: it goes on,
    // so the app may verify it again (README, *Machine clients*).
    if caller.bearer == Some(bearer::BearerKind::ServiceToken) {
        parts.headers.remove(hyper::header::AUTHORIZATION);
    }
    let chain = client_xff.as_ref().and_then(|v| v.to_str().ok());
    let plan = phases::plan(
        gw,
        conn,
        normalized,
        parts.uri.query(),
        host,
        chain,
        session.as_deref(),
    );
    let uri = plan.uri().map_err(GatewayError::BadPath)?;
    plan.apply(&mut parts.headers);
    parts.uri = uri;
    // HTTP/2 clients arrive with version 2; the upstream connection is HTTP/1.1.
    parts.version = hyper::Version::HTTP_11;
    let req = Request::from_parts(parts, body);

    // Phase: forward (`send*` strip the response's hop-by-hop headers).
    if websocket {
        return Ok(Box::pin(gw.upstream.send_websocket(req)).await?);
    }
    let sent = Instant::now();
    let resp = gw.upstream.send(req).await?;
    gw.metrics.upstream_latency(sent.elapsed());
    Ok(resp.map(GatewayBody::Upstream))
}

/// Headers every response of the public listener carries, whoever made it (the gateway's
/// pages, refusals, redirects, proxied and 101 responses; the fast lane writes the same in
/// `proxy::relay::client_head` and `pages::Answer::write_h1`): `Strict-Transport-Security`
/// with an https `public_url` (DESIGN.md §6). The gateway's value replaces an upstream's own:
/// the operator's policy holds for the whole origin, and an app cannot shorten it or switch it
/// off (`max-age=0`). With `hsts = "off"` the upstream's header passes as it is.
pub fn edge_headers<B>(gw: &Gateway, resp: &mut Response<B>) {
    if let Some(v) = &gw.hsts {
        resp.headers_mut()
            .insert(hyper::header::STRICT_TRANSPORT_SECURITY, v.clone());
    }
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
    use crate::auth::policy::{RouteDecision, Routes};
    use crate::config::Access;
    use crate::proxy::path;
    use crate::proxy::plan::upstream_target;
    use hyper::Uri;
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
            bearer: false,
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
        let load = returned(|(gw, r): (&Gateway, &Request<Incoming>)| phases::load_session(gw, r));
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
