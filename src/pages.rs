//! Responses the gateway writes itself: HTML pages (one layout, one stylesheet, no scripts),
//! JSON errors for API clients, and the security headers every such response carries.

use crate::proxy::forward::GatewayBody;
use hyper::header::{HeaderMap, HeaderValue, CACHE_CONTROL, CONTENT_TYPE};
use hyper::{Response, StatusCode};

pub const STYLESHEET: &str = include_str!("../templates/style.css");

/// Escapes text for HTML element content and quoted attribute values.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Headers for every page and JSON answer the gateway writes: no framing, no caching,
/// no sniffing, no referrer, and a CSP that allows only the gateway's own stylesheet and images.
pub fn security_headers(h: &mut HeaderMap) {
    h.insert(
        "content-security-policy",
        HeaderValue::from_static(
            "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    h.insert("x-frame-options", HeaderValue::from_static("DENY"));
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert("pragma", HeaderValue::from_static("no-cache"));
    h.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    // `same-origin`, not `no-referrer`: our own form POSTs then carry our real `Origin` (under
    // `no-referrer` browsers send `Origin: null`, which the form check must refuse), while no
    // other site ever sees a URL of ours (return paths, enrollment links) as a referrer.
    h.insert("referrer-policy", HeaderValue::from_static("same-origin"));
}

/// Page chrome shared by every gateway page.
#[derive(Clone, Debug)]
pub struct Chrome {
    pub product: String,
    pub prefix: String,
    pub has_logo: bool,
}

impl Chrome {
    /// Wraps page content in the common layout. `body` must already be escaped HTML.
    pub fn layout(&self, title: &str, body: &str, wide: bool) -> String {
        let logo = if self.has_logo {
            format!("<img src=\"{}/static/logo\" alt=\"\">", esc(&self.prefix))
        } else {
            String::new()
        };
        format!(
            "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
<title>{title} · {product}</title><link rel=\"stylesheet\" href=\"{prefix}/static/style.css\"></head>\
<body><header class=\"brand\">{logo}<span>{product}</span></header>\
<main{class}>{body}</main><footer>Protected by portcullis</footer></body></html>\n",
            title = esc(title),
            product = esc(&self.product),
            prefix = esc(&self.prefix),
            class = if wide { " class=\"wide\"" } else { "" },
        )
    }

    /// A full page response with the security headers.
    pub fn page(&self, status: StatusCode, title: &str, body: &str) -> Response<GatewayBody> {
        html_response(status, self.layout(title, body, false))
    }

    /// An error page: what happened, what to do next, and the correlation id of the log line.
    pub fn error_page(
        &self,
        status: StatusCode,
        title: &str,
        what: &str,
        next: &str,
        correlation: &str,
    ) -> Response<GatewayBody> {
        let body = format!(
            "<h1>{}</h1><div class=\"error\" role=\"alert\">{}</div><p>{}</p>\
<p class=\"muted\">Reference: <code id=\"correlation-id\">{}</code></p>",
            esc(title),
            esc(what),
            esc(next),
            esc(correlation)
        );
        self.page(status, title, &body)
    }
}

pub fn html_response(status: StatusCode, html: String) -> Response<GatewayBody> {
    let mut r = Response::new(GatewayBody::from(html));
    *r.status_mut() = status;
    r.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    security_headers(r.headers_mut());
    r
}

/// `{"error": ..., "detail": ...}` with the given status.
pub fn json_error(status: StatusCode, error: &str, detail: &str) -> Response<GatewayBody> {
    json_response(
        status,
        &serde_json::json!({"error": error, "detail": detail}),
    )
}

pub fn json_response(status: StatusCode, v: &serde_json::Value) -> Response<GatewayBody> {
    let mut r = Response::new(GatewayBody::from(v.to_string()));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    security_headers(r.headers_mut());
    r
}

/// A `302 Found` to `location` (always an absolute URL on our origin or a configured IdP).
pub fn redirect(location: &str) -> Response<GatewayBody> {
    let mut r = Response::new(GatewayBody::empty());
    *r.status_mut() = StatusCode::FOUND;
    if let Ok(v) = HeaderValue::from_str(location) {
        r.headers_mut().insert(hyper::header::LOCATION, v);
    }
    security_headers(r.headers_mut());
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_neutralises_markup() {
        assert_eq!(
            esc("<a href=\"x\">'&'</a>"),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
    }

    #[test]
    fn pages_carry_the_security_headers() {
        let c = Chrome {
            product: "Help<desk>".into(),
            prefix: "/_portcullis".into(),
            has_logo: false,
        };
        let r = c.error_page(StatusCode::FORBIDDEN, "Not allowed", "x", "y", "abc");
        assert_eq!(
            r.headers().get("x-frame-options").map(|v| v.as_bytes()),
            Some(&b"DENY"[..])
        );
        assert_eq!(
            r.headers().get("cache-control").map(|v| v.as_bytes()),
            Some(&b"no-store"[..])
        );
        assert!(r.headers().contains_key("content-security-policy"));
    }
}
