//! The gateway's static answers: the assertion keys (`/jwks.json`), the stylesheet and the
//! configured logo.

use crate::http::GatewayError;
use crate::proxy::forward::GatewayBody;
use crate::state::Gateway;
use hyper::header::{HeaderValue, CACHE_CONTROL, CONTENT_TYPE};
use hyper::Response;

/// `GET /jwks.json`: the keys of the signed assertion.
pub fn jwks(gw: &Gateway) -> Response<GatewayBody> {
    let mut r = Response::new(GatewayBody::from(gw.signer.jwks().to_owned()));
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r.headers_mut().insert(
        CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=300"),
    );
    r
}

/// `GET /static/style.css`: ours with `[pages]` applied (`pages::stylesheet_of`), as the
/// running config built it (a reload builds it again).
pub fn stylesheet(gw: &Gateway) -> Response<GatewayBody> {
    let mut r = Response::new(GatewayBody::from(gw.chrome.stylesheet.to_string()));
    r.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/css; charset=utf-8"),
    );
    r.headers_mut().insert(
        CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=3600"),
    );
    r
}

/// The passkey pages' script (DESIGN.md §10): served from our origin, as the CSP's
/// `script-src 'self'` requires (no inline script anywhere).
pub const PASSKEY_SCRIPT: &str = include_str!("../../templates/webauthn.js");

/// `GET /static/webauthn.js`.
pub fn passkey_script() -> Response<GatewayBody> {
    let mut r = Response::new(GatewayBody::from(PASSKEY_SCRIPT));
    r.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/javascript; charset=utf-8"),
    );
    r.headers_mut().insert(
        CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=3600"),
    );
    r.headers_mut().insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    r
}

/// `GET /_portcullis/static/logo`: `branding.logo`, read at each request (an operator may replace it).
pub fn logo(gw: &Gateway) -> Result<Response<GatewayBody>, GatewayError> {
    let path = gw
        .config
        .branding
        .logo
        .as_ref()
        .ok_or(GatewayError::NoLogo)?;
    match std::fs::read(path) {
        Ok(bytes) => {
            let ct = match path.extension().and_then(|e| e.to_str()) {
                Some("svg") => "image/svg+xml",
                Some("jpg" | "jpeg") => "image/jpeg",
                _ => "image/png",
            };
            let mut r = Response::new(GatewayBody::from(bytes));
            r.headers_mut()
                .insert(CONTENT_TYPE, HeaderValue::from_static(ct));
            r.headers_mut().insert(
                "content-security-policy",
                HeaderValue::from_static("default-src 'none'; style-src 'unsafe-inline'"),
            );
            Ok(r)
        }
        Err(e) => {
            tracing::warn!(error = %e, path = %path.display(), "logo unreadable");
            Err(GatewayError::LogoUnreadable)
        }
    }
}
