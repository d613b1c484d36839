//! The proxy path's errors and the one place they become responses: an exhaustive `match` with
//! fixed texts per variant (never upstream, IdP or database text), a page for browsers and JSON
//! for the rest; blame goes to the source (client 4xx, upstream 502/504, store 503, bug 500).

use crate::pages::Answer;
use crate::proxy::error::{ProxyError, Reply};
use crate::proxy::forward::GatewayBody;
use crate::proxy::path;
use crate::state::Gateway;
use crate::storage::StoreError;
use hyper::header::ACCEPT;
use hyper::{Request, Response, StatusCode};

/// Everything that can stop a request on the proxy path, mapped to a response in `respond`.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    /// The path could not be normalised.
    #[error("bad request path: {0}")]
    BadPath(path::PathError),
    /// Servers could read this path as different routes.
    #[error("ambiguous request path")]
    AmbiguousPath,
    /// No route matches the path.
    #[error("no route matches")]
    NoRoute,
    /// A protocol switch this gateway does not make (a malformed WebSocket handshake, CONNECT).
    #[error("upgrade refused: {0}")]
    BadUpgrade(crate::proxy::headers::BadUpgrade),
    /// Signed in, but none of the user's roles is admitted by the route.
    #[error("role not allowed on this route")]
    RoleNotAllowed,
    /// No valid session for a protected route, and the client is not a browser.
    #[error("authentication required")]
    Unauthenticated,
    /// A bearer token was refused (DESIGN.md §9): `401` with `WWW-Authenticate: Bearer
    /// error="invalid_token"`, whatever else the request carried.
    #[error("bearer token refused: {0}")]
    InvalidToken(crate::auth::bearer::BearerError),
    /// A JWT names a bearer IdP whose keys are not loaded yet (discovery pending): fail closed.
    #[error("the bearer token's IdP is not loaded")]
    BearerIdpUnavailable,
    /// No login method is configured for this route.
    #[error("no login method configured")]
    NoLogin,
    /// The session store could not be reached: fail closed.
    #[error("session store unavailable: {0}")]
    Store(#[from] StoreError),
    /// The upstream failed.
    #[error(transparent)]
    Upstream(#[from] ProxyError),
    /// `/static/logo` without `branding.logo`.
    #[error("no logo is configured")]
    NoLogo,
    /// `branding.logo` names a file that cannot be read (logged where it happened).
    #[error("the logo could not be read")]
    LogoUnreadable,
    /// A forward-auth check from a peer that is not in `server.trusted_proxies`.
    #[error("forward-auth check from an untrusted peer")]
    UntrustedProxy,
    /// A forward-auth check whose original method, host or URI headers are missing or invalid.
    #[error("forward-auth check without a valid original request")]
    BadOriginal,
    /// A request handler panicked (a bug); contained by `server::contain`.
    #[error("request handler panicked: {0}")]
    Panicked(String),
}

/// Whether the client asks for HTML (a browser): refusals are then pages, else JSON.
pub fn wants_html<B>(req: &Request<B>) -> bool {
    req.headers()
        .get_all(ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.contains("text/html"))
}

impl GatewayError {
    /// The fixed answer to this error: one exhaustive match (an upstream failure answers as
    /// `ProxyError::reply` says, in both lanes).
    pub fn reply(&self) -> Reply {
        let r = |status, code, title, what, next| Reply {
            status,
            code,
            title,
            what,
            next,
        };
        match self {
            GatewayError::BadPath(_) => r(
                StatusCode::BAD_REQUEST,
                "bad_request",
                "Bad request",
                "The address of this request is not valid.",
                "Check the link you followed.",
            ),
            GatewayError::AmbiguousPath => r(
                StatusCode::BAD_REQUEST,
                "bad_request",
                "Bad request",
                "The address of this request can be read in more than one way, so it was refused.",
                "Check the link you followed.",
            ),
            GatewayError::BadUpgrade(_) => r(
                StatusCode::BAD_REQUEST,
                "bad_request",
                "Bad request",
                "This request asks to switch protocols in a way this gateway does not allow.",
                "Only WebSocket connections (GET, HTTP/1.1, a complete handshake) are passed on.",
            ),
            GatewayError::NoRoute => r(
                StatusCode::FORBIDDEN,
                "forbidden",
                "Not available",
                "Nothing is published at this address.",
                "Check the link you followed, or go to the home page.",
            ),
            GatewayError::RoleNotAllowed => r(
                StatusCode::FORBIDDEN,
                "forbidden",
                "Access denied",
                "You are signed in, but your role does not give access to this page.",
                "Ask an administrator for access, or sign out and sign in with another account.",
            ),
            GatewayError::Unauthenticated => r(
                StatusCode::UNAUTHORIZED,
                "unauthenticated",
                "Sign-in required",
                "You need to sign in to reach this page.",
                "Sign in and try again.",
            ),
            GatewayError::InvalidToken(_) => r(
                StatusCode::UNAUTHORIZED,
                "invalid_token",
                "Sign-in required",
                "The bearer token of this request is not valid here.",
                "Use a valid token, on a route that accepts bearer tokens.",
            ),
            GatewayError::BearerIdpUnavailable => r(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "Temporarily unavailable",
                "The identity provider that issued this token cannot be checked right now.",
                "Try again in a minute.",
            ),
            GatewayError::NoLogin => r(
                StatusCode::FORBIDDEN,
                "no_login",
                "Sign-in unavailable",
                "This page needs a sign-in, but no sign-in method is configured for it.",
                "Tell the administrator of this site.",
            ),
            GatewayError::Store(_) => r(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "Temporarily unavailable",
                "The sign-in service cannot check your session right now.",
                "Try again in a minute.",
            ),
            GatewayError::Upstream(e) => e.reply(),
            GatewayError::NoLogo => r(
                StatusCode::NOT_FOUND,
                "not_found",
                "Not found",
                "No logo is configured.",
                "Nothing to do: the page works without it.",
            ),
            GatewayError::LogoUnreadable => r(
                StatusCode::NOT_FOUND,
                "not_found",
                "Not found",
                "The logo could not be read.",
                "Tell the administrator of this site.",
            ),
            GatewayError::UntrustedProxy => r(
                StatusCode::FORBIDDEN,
                "forbidden",
                "Access denied",
                "This endpoint answers only the proxies this gateway trusts.",
                "Send requests through the site's proxy.",
            ),
            GatewayError::BadOriginal => r(
                StatusCode::BAD_REQUEST,
                "bad_request",
                "Bad request",
                "The proxy did not say which request to check.",
                "Tell the administrator of this site.",
            ),
            GatewayError::Panicked(_) => r(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal_error",
                "Something went wrong",
                "The gateway hit an internal error while answering this request.",
                "Try again. If this keeps happening, tell the administrator and quote the reference.",
            ),
        }
    }
}

/// The one place a `GatewayError` becomes an answer: counted, logged once with a correlation
/// id, and rendered from its fixed `reply` (a page for browsers, else JSON). Fixed texts only;
/// details go to the log. Both lanes send this: hyper as a `Response` (`respond`), the fast
/// lane as raw bytes (`pages::Answer::write_h1`).
pub fn answer(gw: &Gateway, e: GatewayError, html: bool) -> Answer {
    let correlation = crate::session::random_id(9);
    match &e {
        GatewayError::Store(_) => gw.metrics.store_error(),
        GatewayError::Panicked(_) => gw.metrics.panic(),
        GatewayError::Upstream(ProxyError::Tls(_)) => gw.metrics.upstream_tls_failure(),
        _ => {}
    }
    let Reply {
        status,
        code,
        title,
        what,
        next,
    } = e.reply();
    if matches!(e, GatewayError::Panicked(_)) {
        tracing::error!(correlation = %correlation, error = %e, status = status.as_u16(), "request handler panicked");
    } else if status.is_server_error() {
        tracing::warn!(correlation = %correlation, error = %e, status = status.as_u16(), "request failed");
    } else {
        tracing::info!(correlation = %correlation, error = %e, status = status.as_u16(), "request refused");
    }
    if html {
        gw.chrome
            .error_answer(status, title, what, next, &correlation)
    } else if status.is_server_error() {
        // Our fault, not the client's: API clients get the log line's reference too.
        Answer::json(
            status,
            &serde_json::json!({"error": code, "detail": what, "reference": correlation}),
        )
    } else {
        Answer::json(status, &serde_json::json!({"error": code, "detail": what}))
    }
}

/// `answer` as a response of the general path.
pub fn respond(gw: &Gateway, e: GatewayError, html: bool) -> Response<GatewayBody> {
    // RFC 6750 §3: a refused bearer says so, so a client knows to get a new token.
    let challenge = matches!(e, GatewayError::InvalidToken(_));
    let mut r = answer(gw, e, html).into_response();
    if challenge {
        r.headers_mut().insert(
            hyper::header::WWW_AUTHENTICATE,
            hyper::header::HeaderValue::from_static(BEARER_CHALLENGE),
        );
    }
    r
}

/// The `WWW-Authenticate` value of a refused bearer token.
pub const BEARER_CHALLENGE: &str = "Bearer error=\"invalid_token\"";

/// A store failure on a gateway page: fail closed with `503`.
pub fn store_error(gw: &Gateway, e: StoreError) -> Response<GatewayBody> {
    respond(gw, GatewayError::Store(e), true)
}
