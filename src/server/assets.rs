//! The gateway's static answers: the assertion keys (`/jwks.json`), the stylesheet and the
//! configured logo.

use crate::pages;
use crate::proxy::forward::GatewayBody;
use crate::state::Gateway;
use hyper::header::{HeaderValue, CACHE_CONTROL, CONTENT_TYPE};
use hyper::{Response, StatusCode};

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

/// `GET /static/style.css`.
pub fn stylesheet() -> Response<GatewayBody> {
    let mut r = Response::new(GatewayBody::from(pages::STYLESHEET));
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

pub fn logo(gw: &Gateway) -> Response<GatewayBody> {
    let Some(path) = &gw.config.branding.logo else {
        return pages::json_error(StatusCode::NOT_FOUND, "not_found", "No logo is configured.");
    };
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
            r
        }
        Err(e) => {
            tracing::warn!(error = %e, "logo unreadable");
            pages::json_error(
                StatusCode::NOT_FOUND,
                "not_found",
                "The logo could not be read.",
            )
        }
    }
}
