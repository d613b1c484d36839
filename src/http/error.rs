//! The proxy path's errors and the one place they become responses: an exhaustive `match` with
//! fixed texts per variant (never upstream, IdP or database text), a page for browsers and JSON
//! for the rest; blame goes to the source (client 4xx, upstream 502/504, store 503, bug 500).

use crate::config::Language;
use crate::pages::{Answer, Msg};
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
    /// The fixed answer to this error, in English (the JSON `detail` API clients read): one
    /// exhaustive match (an upstream failure answers as `ProxyError::reply` says, in both lanes).
    pub fn reply(&self) -> Reply {
        if let GatewayError::Upstream(e) = self {
            return e.reply();
        }
        let (status, code, [title, what, next]) = self.fixed();
        let en = |m: Msg| m.text(Language::English);
        Reply {
            status,
            code,
            title: en(title),
            what: en(what),
            next: en(next),
        }
    }

    /// Status, JSON code, and the page's title, what happened and what to do next as catalogue
    /// keys (a browser reads them in its language).
    fn fixed(&self) -> (StatusCode, &'static str, [Msg; 3]) {
        let r = |status, code, texts| (status, code, texts);
        match self {
            GatewayError::BadPath(_) => r(
                StatusCode::BAD_REQUEST,
                "bad_request",
                [Msg::BadRequest, Msg::BadAddressWhat, Msg::CheckLink],
            ),
            GatewayError::AmbiguousPath => r(
                StatusCode::BAD_REQUEST,
                "bad_request",
                [Msg::BadRequest, Msg::AmbiguousWhat, Msg::CheckLink],
            ),
            GatewayError::BadUpgrade(_) => r(
                StatusCode::BAD_REQUEST,
                "bad_request",
                [Msg::BadRequest, Msg::UpgradeWhat, Msg::UpgradeNext],
            ),
            GatewayError::NoRoute => r(
                StatusCode::FORBIDDEN,
                "forbidden",
                [
                    Msg::NotAvailable,
                    Msg::NothingPublishedWhat,
                    Msg::CheckLinkOrHome,
                ],
            ),
            GatewayError::RoleNotAllowed => r(
                StatusCode::FORBIDDEN,
                "forbidden",
                [Msg::AccessDenied, Msg::RoleDeniedWhat, Msg::RoleDeniedNext],
            ),
            GatewayError::Unauthenticated => r(
                StatusCode::UNAUTHORIZED,
                "unauthenticated",
                [
                    Msg::SignInRequired,
                    Msg::SignInRequiredWhat,
                    Msg::SignInTryAgain,
                ],
            ),
            GatewayError::InvalidToken(_) => r(
                StatusCode::UNAUTHORIZED,
                "invalid_token",
                [Msg::SignInRequired, Msg::BadTokenWhat, Msg::BadTokenNext],
            ),
            GatewayError::BearerIdpUnavailable => r(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                [
                    Msg::TempUnavailable,
                    Msg::TokenIdpDownWhat,
                    Msg::ErrTryInMinute,
                ],
            ),
            GatewayError::NoLogin => r(
                StatusCode::FORBIDDEN,
                "no_login",
                [Msg::ErrMethodOffTitle, Msg::NoLoginWhat, Msg::TellSiteAdmin],
            ),
            GatewayError::Store(_) => r(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                [
                    Msg::TempUnavailable,
                    Msg::StoreDownWhat,
                    Msg::ErrTryInMinute,
                ],
            ),
            GatewayError::Upstream(e) => {
                let Reply { status, code, .. } = e.reply();
                (status, code, upstream_texts(e))
            }
            GatewayError::NoLogo => r(
                StatusCode::NOT_FOUND,
                "not_found",
                [Msg::NotFound, Msg::NoLogoWhat, Msg::NoLogoNext],
            ),
            GatewayError::LogoUnreadable => r(
                StatusCode::NOT_FOUND,
                "not_found",
                [Msg::NotFound, Msg::LogoUnreadableWhat, Msg::TellSiteAdmin],
            ),
            GatewayError::UntrustedProxy => r(
                StatusCode::FORBIDDEN,
                "forbidden",
                [
                    Msg::AccessDenied,
                    Msg::UntrustedProxyWhat,
                    Msg::UntrustedProxyNext,
                ],
            ),
            GatewayError::BadOriginal => r(
                StatusCode::BAD_REQUEST,
                "bad_request",
                [Msg::BadRequest, Msg::BadOriginalWhat, Msg::TellSiteAdmin],
            ),
            GatewayError::Panicked(_) => r(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal_error",
                [Msg::InternalTitle, Msg::InternalWhat, Msg::TryAgainQuote],
            ),
        }
    }
}

/// An upstream failure's page texts, beside `ProxyError::reply` (whose English they are, as a
/// test checks), so a browser reads them in its language.
fn upstream_texts(e: &ProxyError) -> [Msg; 3] {
    match e {
        ProxyError::Timeout => [
            Msg::UpstreamTimeoutTitle,
            Msg::UpstreamTimeoutWhat,
            Msg::ErrTryInMinute,
        ],
        ProxyError::BadHost => [Msg::BadRequest, Msg::BadHostWhat, Msg::CheckAddressUsed],
        ProxyError::Unavailable(_) | ProxyError::UnexpectedSwitch(_) | ProxyError::Tls(_) => [
            Msg::UpstreamDownTitle,
            Msg::UpstreamDownWhat,
            Msg::ErrTryInMinute,
        ],
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
    let (status, code, texts) = e.fixed();
    // API clients read English whatever they send in `Accept-Language`.
    let detail = e.reply().what;
    if matches!(e, GatewayError::Panicked(_)) {
        tracing::error!(correlation = %correlation, error = %e, status = status.as_u16(), "request handler panicked");
    } else if status.is_server_error() {
        tracing::warn!(correlation = %correlation, error = %e, status = status.as_u16(), "request failed");
    } else {
        tracing::info!(correlation = %correlation, error = %e, status = status.as_u16(), "request refused");
    }
    let [title, what, next] = texts;
    if html {
        let t = |m: Msg| gw.chrome.t(m);
        gw.chrome
            .error_answer(status, t(title), t(what), t(next), &correlation)
    } else if status.is_server_error() {
        // Our fault, not the client's: API clients get the log line's reference too.
        Answer::json(
            status,
            &serde_json::json!({"error": code, "detail": detail, "reference": correlation}),
        )
    } else {
        Answer::json(
            status,
            &serde_json::json!({"error": code, "detail": detail}),
        )
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_upstream_failure_page_in_english_says_what_its_json_says() {
        let failures = [
            ProxyError::Timeout,
            ProxyError::BadHost,
            ProxyError::Unavailable("connect: refused".into()),
            ProxyError::UnexpectedSwitch("101"),
            ProxyError::Tls("invalid peer certificate".into()),
        ];
        for e in failures {
            let r = e.reply();
            let page = upstream_texts(&e).map(|m| m.text(Language::English));
            assert_eq!(page, [r.title, r.what, r.next], "{e:?}");
        }
    }
}
