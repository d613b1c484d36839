//! Forward-auth (DESIGN.md §9): nginx `auth_request`, Traefik's ForwardAuth and Caddy's
//! `forward_auth` ask whether an original request may pass, and copy the identity headers back.
//! Invariant: the decision is the proxy path's own code (`phases`: normalise, classify,
//! load_session with its touch, authorize, `ForwardPlan`); the original request is read only
//! from a peer in `server.trusted_proxies`, and a login returns only to an allowed host.
//!
//! | answer              | nginx (`/auth/nginx`)                 | Traefik, Caddy (`/auth/forward`)      |
//! |---------------------|---------------------------------------|---------------------------------------|
//! | allowed             | 200 + identity headers                | 200 + identity headers                |
//! | no session          | 401, `X-Portcullis-Login` (browsers)  | 302 to the login (browsers), else 401 |
//! | role refused        | 403                                   | 403                                   |
//! | bad original request| 403 (nginx relays only 401 and 403)   | 400                                   |
//! | `.`, `..`, `//` path| 403, as above                         | 400 (the proxy forwards the raw path) |
//! | untrusted peer      | 403 + audit                           | 403 + audit                           |

use super::endpoint::{AuthStep, Endpoint};
use super::phases::{self, Authorized};
use crate::audit;
use crate::auth::policy::{self, LocalPath};
use crate::auth::return_to::ReturnUrl;
use crate::config::RouteConfig;
use crate::http::{query_param, respond, wants_html, Conn, GatewayError};
use crate::pages;
use crate::proxy::forward::GatewayBody;
use crate::proxy::path;
use crate::state::Gateway;
use hyper::header::{HeaderMap, HeaderName, HeaderValue, HOST};
use hyper::{Method, Request, Response, StatusCode, Uri};
use std::sync::Arc;

/// The response header that carries the login URL of a `401` to nginx (`auth_request_set`).
pub const X_PORTCULLIS_LOGIN: HeaderName = HeaderName::from_static("x-portcullis-login");

/// `/auth/nginx`, `/auth/forward` and `/auth/return` (the router checked `forward_auth.enabled`).
pub async fn entry<B>(
    gw: &Arc<Gateway>,
    req: &Request<B>,
    conn: Conn,
    step: AuthStep,
) -> Response<GatewayBody> {
    match step {
        AuthStep::Return => return_to(gw, req),
        AuthStep::Nginx | AuthStep::Forward => {
            // The proxy relays Traefik's and Caddy's answers to the browser, nginx's never.
            let html = step == AuthStep::Forward && wants_html(req);
            match check(gw, req, conn, step).await {
                Ok(r) => r,
                Err(e) => refusal(gw, e, html, step),
            }
        }
    }
}

/// A refusal from the one error mapping. nginx turns any status of an auth subrequest but
/// 2xx, 401 and 403 into a 500: the client errors it could not relay answer 403 there.
fn refusal(gw: &Gateway, e: GatewayError, html: bool, step: AuthStep) -> Response<GatewayBody> {
    let mut r = respond(gw, e, html);
    let s = r.status();
    if step == AuthStep::Nginx
        && s.is_client_error()
        && s != StatusCode::UNAUTHORIZED
        && s != StatusCode::FORBIDDEN
    {
        *r.status_mut() = StatusCode::FORBIDDEN;
    }
    r
}

/// The request the proxy in front is deciding about, from its headers.
struct Original {
    method: Method,
    /// `http` or `https`.
    scheme: String,
    /// The `Host` the client sent the proxy.
    authority: String,
    /// Path and query, as the client sent them (not yet normalised).
    target: Uri,
}

/// The one value of header `name`; Err when it is sent twice (which one would count?) or is
/// not text.
fn one<'h>(h: &'h HeaderMap, name: &str) -> Result<Option<&'h str>, GatewayError> {
    let mut all = h.get_all(name).iter();
    let (Some(v), None) = (all.next(), all.next()) else {
        return match h.contains_key(name) {
            true => Err(GatewayError::BadOriginal),
            false => Ok(None),
        };
    };
    v.to_str().map(Some).map_err(|_| GatewayError::BadOriginal)
}

impl Original {
    /// nginx: `X-Original-URL` (absolute) and `X-Original-Method`; Traefik and Caddy:
    /// `X-Forwarded-Method`, `-Proto`, `-Host`, `-Uri`.
    fn read(h: &HeaderMap, step: AuthStep) -> Result<Original, GatewayError> {
        let (method, scheme, authority, target) = if step == AuthStep::Nginx {
            let url = one(h, "x-original-url")?.ok_or(GatewayError::BadOriginal)?;
            let url = Uri::try_from(url).map_err(|_| GatewayError::BadOriginal)?;
            let (Some(scheme), Some(authority)) = (url.scheme_str(), url.authority()) else {
                return Err(GatewayError::BadOriginal);
            };
            let target = url.path_and_query().map_or("/", |p| p.as_str());
            (
                one(h, "x-original-method")?,
                scheme.to_owned(),
                authority.as_str().to_owned(),
                Uri::try_from(target).map_err(|_| GatewayError::BadOriginal)?,
            )
        } else {
            let host = match one(h, "x-forwarded-host")? {
                Some(host) => host,
                None => one(h, HOST.as_str())?.ok_or(GatewayError::BadOriginal)?,
            };
            let uri = one(h, "x-forwarded-uri")?.ok_or(GatewayError::BadOriginal)?;
            (
                one(h, "x-forwarded-method")?,
                one(h, "x-forwarded-proto")?.unwrap_or("http").to_owned(),
                host.to_owned(),
                Uri::try_from(uri).map_err(|_| GatewayError::BadOriginal)?,
            )
        };
        let method = match method {
            Some(m) => Method::from_bytes(m.as_bytes()).map_err(|_| GatewayError::BadOriginal)?,
            None => Method::GET,
        };
        let scheme = scheme.to_ascii_lowercase();
        // Origin-form only: an absolute or authority-form target is not a path to route.
        let origin_form = target.scheme().is_none() && target.path().starts_with('/');
        if !matches!(scheme.as_str(), "http" | "https") || !origin_form || authority.is_empty() {
            return Err(GatewayError::BadOriginal);
        }
        Ok(Original {
            method,
            scheme,
            authority,
            target,
        })
    }
}

/// The decision for the original request, made by the proxy path's phases.
async fn check<B>(
    gw: &Gateway,
    req: &Request<B>,
    conn: Conn,
    step: AuthStep,
) -> Result<Response<GatewayBody>, GatewayError> {
    // Only a trusted proxy may say what the original request was: anyone else could ask about
    // any path and read the identity headers of a stolen cookie's session.
    if !gw.config.is_trusted_proxy(conn.peer.ip()) {
        audit::record(
            gw,
            audit::Event {
                ip: Some(conn.peer.ip()),
                reason: Some("untrusted_peer"),
                ..audit::Event::new(audit::Kind::ForwardAuthUntrusted, audit::Outcome::Refused)
            },
        )
        .await;
        return Err(GatewayError::UntrustedProxy);
    }
    let original = Original::read(req.headers(), step)?;

    // Phase: classify, on the path normalised exactly as the proxy path normalises its own.
    let raw = original.target.path();
    let normalized = path::normalize(raw).map_err(GatewayError::BadPath)?;
    // The proxy in front forwards the path as sent, not the normalised one: a path whose
    // segments normalisation removed (`.`, `..`, `//`; the proxy path resolves and forwards
    // those) would name other segments at the app than the ones decided on. Normalisation
    // only decodes or removes segments, so an equal count means none was removed.
    if raw.split('/').count() != normalized.split('/').count() {
        return Err(GatewayError::AmbiguousPath);
    }
    if Endpoint::parse(gw, &normalized) != Endpoint::Proxy {
        // The gateway's own paths are never the app's: the proxy must send them here instead.
        tracing::info!(path = %normalized, "forward-auth check of a gateway path refused");
        return Err(GatewayError::NoRoute);
    }
    let route = phases::classify(gw, &normalized)?;

    // Phase: load_session (the client's bearer or cookie, which the proxy passes on; a
    // session is touched as usual).
    let caller = super::bearer::load_caller(gw, req, route, conn).await?;
    let session = caller.session;

    // Phase: authorize.
    match phases::authorize(route, session.as_deref()) {
        Authorized::Pass => {}
        Authorized::Refused => {
            if let Some(s) = &session {
                tracing::info!(target: "audit", event = "access.denied", user = %s.identity.user, route = %route.prefix, "role not allowed on route");
                if caller.bearer.is_some() {
                    super::bearer::refused_role(gw, conn, route, s).await;
                }
            }
            return Err(GatewayError::RoleNotAllowed);
        }
        Authorized::SignIn => return sign_in(gw, req, &original, route, &normalized, step),
    }

    // Phase: rewrite, its identity part: the same plan the proxy path would send upstream.
    let query = original.target.query();
    let plan = phases::plan(
        gw,
        conn,
        &normalized,
        query,
        None::<HeaderValue>,
        None,
        session.as_deref(),
    );
    let mut r = Response::new(GatewayBody::empty());
    plan.identity_response(&gw.ids, r.headers_mut());
    r.headers_mut().insert(
        hyper::header::CACHE_CONTROL,
        HeaderValue::from_static("no-store"),
    );
    Ok(r)
}

/// No session on a protected route: the login URL, coming back to the original URL.
fn sign_in<B>(
    gw: &Gateway,
    req: &Request<B>,
    original: &Original,
    route: &RouteConfig,
    normalized: &str,
    step: AuthStep,
) -> Result<Response<GatewayBody>, GatewayError> {
    let browser = wants_html(req) && matches!(original.method, Method::GET | Method::HEAD);
    let login = policy::login_for(&gw.config, route)
        .map(|target| gw.login_url(target, &return_path(gw, original, normalized)));
    match (step, browser, login) {
        (AuthStep::Nginx, true, Some(url)) => {
            let mut r = respond(gw, GatewayError::Unauthenticated, false);
            if let Ok(v) = HeaderValue::from_str(&url) {
                r.headers_mut().insert(X_PORTCULLIS_LOGIN, v);
            }
            Ok(r)
        }
        (_, true, Some(url)) => Ok(pages::redirect(&url)),
        (_, true, None) => Err(GatewayError::NoLogin),
        (_, false, _) => Err(GatewayError::Unauthenticated),
    }
}

/// Where the login returns: the original URL (normalised path, query as sent) as a local path
/// on `public_url`'s own origin, through the return endpoint on another allowed host; `/`
/// when the host is not allowed (the proxy passes on whatever `Host` the client sent).
fn return_path(gw: &Gateway, original: &Original, normalized: &str) -> LocalPath {
    let local = match original.target.query() {
        Some(q) => format!("{normalized}?{q}"),
        None => normalized.to_owned(),
    };
    let origin = format!("{}://{}", original.scheme, original.authority);
    if origin.eq_ignore_ascii_case(&gw.config.server.public_origin) {
        return LocalPath::parse(&local).unwrap_or_else(LocalPath::root);
    }
    ReturnUrl::parse(&gw.config, &format!("{origin}{local}"))
        .map_or_else(LocalPath::root, |u| u.via_gateway(&gw.config.server.prefix))
}

/// `GET /auth/return?to=…`: after a login, on to the original URL if its host is (still)
/// allowed; anything else lands on the gateway's root.
fn return_to<B>(gw: &Gateway, req: &Request<B>) -> Response<GatewayBody> {
    let to = query_param(req.uri().query(), "to")
        .and_then(|to| ReturnUrl::from_gateway(&gw.config, &to));
    match to {
        Some(u) => pages::redirect(u.as_str()),
        None => pages::redirect(&LocalPath::root().absolute(&gw.config.server.public_origin)),
    }
}
