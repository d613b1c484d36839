//! The one router of the public listener: the normalised path is parsed once into an
//! `Endpoint` (`server::endpoint`), and one `match` sends it, with its method, to its handler. Nothing else
//! matches path strings: handlers receive the parsed step, and the proxy path receives the
//! normalised path it routes on.
//!
//! Invariant: a path under the reserved prefix never reaches the upstream, whatever follows the
//! prefix (an unknown one is `404`); the native login paths are the gateway's too.

use super::access;
use super::assets;
use super::endpoint::Endpoint;
use super::forward_auth;
use super::gateway;
use super::phases;
use crate::http::{respond, Conn, GatewayError};
use crate::login::{account, break_glass, entry as endpoints, mfa, native, oidc, report, saml};
use crate::metrics::RouteClass;
use crate::pages;
use crate::proxy::forward::GatewayBody;
use crate::proxy::path;
use crate::session::Session;
use crate::state::Gateway;
use hyper::body::Incoming;
use hyper::{Request, Response};
use std::sync::Arc;
use std::time::Instant;

/// Answers one request of the public listener: the path normalised once, parsed once, sent to
/// its handler; one access line and one metric per request. Never panics on client input; every
/// refusal of the proxy path goes through `respond`. `html`: whether the client wants pages
/// (computed once by the caller, which also needs it should this handler panic).
pub async fn handle(
    gw: &Arc<Gateway>,
    req: Request<Incoming>,
    conn: Conn,
    html: bool,
) -> Response<GatewayBody> {
    gw.panic_probe.check(req.uri().path());
    let started = Instant::now();
    // Copied for the access line only when one will be written (`access::enabled`).
    let logged = access::enabled(gw.config.server.access_log)
        .then(|| (req.method().clone(), req.uri().path().to_owned()));
    let head = req.method() == hyper::Method::HEAD;
    let mut user: Option<Arc<Session>> = None;
    // Kept for a browser only (a shared handle, no copy), so a refusal of the proxy path can be
    // written in its language; negotiated only when there is a refusal to write.
    let accept_language = html
        .then(|| req.headers().get(hyper::header::ACCEPT_LANGUAGE).cloned())
        .flatten();
    let refuse = |e: GatewayError| {
        let asked = accept_language.as_ref().and_then(|v| v.to_str().ok());
        let lang = pages::lang::negotiate(asked, gw.chrome.default_language);
        pages::lang::sync_scope(lang, html, || respond(gw, e, html))
    };
    // Owned: the request moves on to the proxy below.
    let (class, resp) = match path::normalize(req.uri().path()).map(std::borrow::Cow::into_owned) {
        Err(e) => (RouteClass::Proxy, refuse(GatewayError::BadPath(e))),
        Ok(normalized) => {
            let ep = Endpoint::parse(gw, &normalized);
            let class = ep.class();
            let resp = match ep {
                Endpoint::Proxy => {
                    match gateway::proxy(gw, req, conn, &normalized, &mut user).await {
                        Ok(r) => r,
                        Err(e) => refuse(e),
                    }
                }
                // The gateway's own pages are boxed: their futures are large, and inlined here
                // they would make every proxied request's future as large as the largest.
                ep => {
                    // Negotiated once here, for the pages of this request only: the proxy
                    // path above reads it only to write a refusal.
                    let lang = pages::lang::negotiate(
                        req.headers()
                            .get(hyper::header::ACCEPT_LANGUAGE)
                            .and_then(|v| v.to_str().ok()),
                        gw.chrome.default_language,
                    );
                    Box::pin(pages::lang::scope(
                        lang,
                        html,
                        dispatch(gw, req, conn, ep, html),
                    ))
                    .await
                }
            };
            (class, resp)
        }
    };
    let line = logged.as_ref().map(|(method, path)| access::AccessLine {
        lane: access::Lane::General,
        method: method.as_str(),
        path,
        peer: conn.peer.ip(),
        session: user.as_deref(),
    });
    // A HEAD answer carries no body, whatever its head declares.
    let bytes = if head {
        Some(0)
    } else {
        hyper::body::Body::size_hint(resp.body()).exact()
    };
    phases::log(
        gw,
        class,
        resp.status().as_u16(),
        bytes,
        (started, Instant::now()),
        line,
    );
    resp
}

/// The gateway's own endpoints: one match from the parsed endpoint to its handler.
async fn dispatch(
    gw: &Arc<Gateway>,
    req: Request<Incoming>,
    conn: Conn,
    ep: Endpoint<'_>,
    html: bool,
) -> Response<GatewayBody> {
    if !ep.allows(req.method()) {
        return gw.chrome.method_not_allowed(html);
    }
    match ep {
        Endpoint::Jwks => assets::jwks(gw),
        Endpoint::Stylesheet => assets::stylesheet(gw),
        Endpoint::Script => assets::passkey_script(),
        Endpoint::Logo => assets::logo(gw).unwrap_or_else(|e| respond(gw, e, false)),
        Endpoint::LoginStart => endpoints::login(gw, &req).await,
        Endpoint::Logout => endpoints::logout_entry(gw, req, conn).await,
        Endpoint::Mfa(step) => mfa::entry(gw, req, conn, step).await,
        Endpoint::Account(step) => account::entry(gw, req, conn, step).await,
        Endpoint::Report => report::entry(gw, req, conn).await,
        Endpoint::BreakGlass => break_glass::entry(gw, req, conn).await,
        Endpoint::Console(action) => crate::console::entry(gw, req, conn, action).await,
        Endpoint::Oidc(idp, step) => oidc::entry(gw, req, conn, idp, step).await,
        Endpoint::Saml(idp, step) => saml::entry(gw, req, conn, idp, step).await,
        Endpoint::NativeLogin(path) => native::entry(gw, req, conn, path).await,
        Endpoint::ForwardAuth(step) if gw.config.forward_auth.enabled => {
            forward_auth::entry(gw, &req, conn, step).await
        }
        Endpoint::ForwardAuth(_) | Endpoint::Unknown | Endpoint::Proxy => gw.chrome.not_found(html),
    }
}
