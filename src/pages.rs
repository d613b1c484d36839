//! Responses the gateway writes itself: HTML pages (one layout, one stylesheet, no scripts),
//! JSON errors for API clients, and the security headers every such response carries.
//! Page texts come from `catalogue`, in the language `lang` chose for the request.

pub mod catalogue;
pub mod lang;
pub mod template;

use crate::config::{Language, PagesConfig};
use crate::proxy::forward::GatewayBody;
pub use catalogue::Msg;
use hyper::header::{HeaderMap, HeaderValue, CONTENT_TYPE};
use hyper::{Response, StatusCode};
use std::fmt::Write as _;
use std::sync::Arc;
use template::{Layout, Slot};

pub const STYLESHEET: &str = include_str!("../templates/style.css");

/// The stylesheet a config serves: ours, then the accent colour (a later `:root` rule wins, so
/// it overrides our default), then the operator's CSS (last, so it may override anything).
/// The colour was validated as `#rgb`/`#rrggbb`, so it cannot end the rule it sits in.
pub fn stylesheet_of(pages: &PagesConfig) -> String {
    let mut css = String::from(STYLESHEET);
    if let Some(colour) = &pages.accent_color {
        let _ = write!(css, "\n:root{{--accent:{colour}}}\n");
    }
    if let Some(custom) = &pages.custom_css {
        css.push_str("\n/* custom_css */\n");
        css.push_str(&custom.text);
        css.push('\n');
    }
    css
}

/// A short digest of a stylesheet, put in its URL so a browser fetches it again after a reload
/// changed it (it is cached for an hour).
fn version_of(css: &str) -> String {
    let d = ring::digest::digest(&ring::digest::SHA256, css.as_bytes());
    d.as_ref().iter().take(6).fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

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
/// One list for both ways a response is written (`security_headers`, `Answer::write_h1`).
// `same-origin`, not `no-referrer`: our own form POSTs then carry our real `Origin` (under
// `no-referrer` browsers send `Origin: null`, which the form check must refuse), while no
// other site ever sees a URL of ours (return paths, enrollment links) as a referrer.
pub const SECURITY_HEADERS: [(&str, &str); 6] = [
    (
        "content-security-policy",
        "default-src 'none'; script-src 'self'; connect-src 'self'; style-src 'self'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    ),
    ("x-frame-options", "DENY"),
    ("cache-control", "no-store"),
    ("pragma", "no-cache"),
    ("x-content-type-options", "nosniff"),
    ("referrer-policy", "same-origin"),
];

/// Sets `SECURITY_HEADERS` on a response's headers.
pub fn security_headers(h: &mut HeaderMap) {
    for (name, value) in SECURITY_HEADERS {
        h.insert(name, HeaderValue::from_static(value));
    }
}

const HTML: &str = "text/html; charset=utf-8";
const JSON: &str = "application/json";

/// A page or JSON answer the gateway made, before it is written: as a hyper response
/// (`into_response`), or as raw HTTP/1.1 bytes by the fast lane (`write_h1`), with the same
/// status, headers and body either way.
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    content_type: &'static str,
    pub body: String,
}

impl Answer {
    pub fn html(status: StatusCode, body: String) -> Answer {
        Answer {
            status,
            content_type: HTML,
            body,
        }
    }

    pub fn json(status: StatusCode, v: &serde_json::Value) -> Answer {
        Answer {
            status,
            content_type: JSON,
            body: v.to_string(),
        }
    }

    pub fn into_response(self) -> Response<GatewayBody> {
        let mut r = Response::new(GatewayBody::from(self.body));
        *r.status_mut() = self.status;
        r.headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static(self.content_type));
        security_headers(r.headers_mut());
        r
    }

    /// The whole response as HTTP/1.1 bytes into `out`: the head `into_response` would get,
    /// then `hsts` (the edge header, `server::gateway::edge_headers`), `Date`, the length and,
    /// with `close`, `Connection: close`; the body unless `head_request`.
    pub fn write_h1(
        &self,
        out: &mut Vec<u8>,
        head_request: bool,
        close: bool,
        hsts: Option<&[u8]>,
    ) {
        let field = |out: &mut Vec<u8>, name: &str, value: &[u8]| {
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(b": ");
            out.extend_from_slice(value);
            out.extend_from_slice(b"\r\n");
        };
        out.extend_from_slice(b"HTTP/1.1 ");
        out.extend_from_slice(self.status.as_str().as_bytes());
        out.push(b' ');
        out.extend_from_slice(self.status.canonical_reason().unwrap_or("").as_bytes());
        out.extend_from_slice(b"\r\n");
        field(out, "content-type", self.content_type.as_bytes());
        for (name, value) in SECURITY_HEADERS {
            field(out, name, value.as_bytes());
        }
        if let Some(v) = hsts {
            field(out, "strict-transport-security", v);
        }
        let date = httpdate::fmt_http_date(std::time::SystemTime::now());
        field(out, "date", date.as_bytes());
        field(
            out,
            "content-length",
            self.body.len().to_string().as_bytes(),
        );
        if close {
            field(out, "connection", b"close");
        }
        out.extend_from_slice(b"\r\n");
        if !head_request {
            out.extend_from_slice(self.body.as_bytes());
        }
    }
}

/// Page chrome shared by every gateway page.
#[derive(Clone, Debug)]
pub struct Chrome {
    pub product: String,
    pub prefix: String,
    pub has_logo: bool,
    /// The served stylesheet (`stylesheet_of`) and its version for the URL.
    pub stylesheet: Arc<str>,
    style_version: String,
    /// For a browser that asks for no language the catalogue has (`pages.default_language`).
    pub default_language: Language,
    /// The frame every page is written into: the operator's (`pages.templates`) or ours.
    frame: Arc<Layout>,
}

impl Chrome {
    pub fn new(product: String, prefix: String, has_logo: bool, pages: &PagesConfig) -> Chrome {
        let css = stylesheet_of(pages);
        Chrome {
            product,
            prefix,
            has_logo,
            style_version: version_of(&css),
            stylesheet: Arc::from(css),
            default_language: pages.default_language,
            frame: pages
                .layout
                .clone()
                .unwrap_or_else(|| Arc::new(Layout::builtin())),
        }
    }

    /// The language of the page being written: the request's (`lang::scope`), else the default.
    pub fn lang(&self) -> Language {
        lang::current().unwrap_or(self.default_language)
    }

    /// A catalogue text in the page's language (raw: escape it like any text).
    pub fn t(&self, m: Msg) -> &'static str {
        m.text(self.lang())
    }

    /// `t` with its `{name}` placeholder filled in.
    pub fn fill(&self, m: Msg, name: &str, value: &str) -> String {
        m.fill(self.lang(), name, value)
    }

    /// Wraps page content in the frame (`template`). `body` must already be escaped HTML; the
    /// values that are text are escaped here, whoever wrote the frame.
    pub fn layout(&self, title: &str, body: &str, wide: bool) -> String {
        // The head parts the frame may place are ours: no value of the request reaches them
        // unescaped, and the CSP-safe stylesheet link is the only style a page loads.
        self.frame.render(body.len() + 512, |slot, out| match slot {
            Slot::Lang => out.push_str(self.lang().tag()),
            Slot::Title => out.push_str(&esc(title)),
            Slot::Brand => out.push_str(&esc(&self.product)),
            Slot::Stylesheet => {
                let _ = write!(
                    out,
                    "{}/static/style.css?v={}",
                    esc(&self.prefix),
                    self.style_version
                );
            }
            Slot::Logo => {
                if self.has_logo {
                    let _ = write!(
                        out,
                        "<img src=\"{}/static/logo\" alt=\"\">",
                        esc(&self.prefix)
                    );
                }
            }
            Slot::Content => {
                out.push_str(if wide {
                    "<main class=\"wide\">"
                } else {
                    "<main>"
                });
                out.push_str(body);
                out.push_str("</main>");
            }
            Slot::Footer => out.push_str(&esc(self.t(Msg::Footer))),
        })
    }

    /// The links under every refusal, so no page is a dead end: sign in again, the account page,
    /// sign out (its confirmation page: a link never signs anyone out by itself).
    pub fn ways_on(&self) -> String {
        format!(
            "<nav class=\"ways-on\" aria-label=\"{label}\"><ul>\
<li><a id=\"next-login\" href=\"{p}/login\">{again}</a></li>\
<li><a id=\"next-account\" href=\"{p}/account\">{account}</a></li>\
<li><a id=\"next-logout\" href=\"{p}/logout\">{out}</a></li></ul></nav>",
            p = esc(&self.prefix),
            label = esc(self.t(Msg::WaysOnLabel)),
            again = esc(self.t(Msg::SignInAgain)),
            account = esc(self.t(Msg::YourAccount)),
            out = esc(self.t(Msg::SignOut)),
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
        self.error_answer(status, title, what, next, correlation)
            .into_response()
    }

    /// An unknown gateway path: a page with the ways on for a browser, JSON for API clients.
    pub fn not_found(&self, html: bool) -> Response<GatewayBody> {
        let (code, detail) = ("not_found", "No such gateway endpoint.");
        self.refusal(
            html,
            StatusCode::NOT_FOUND,
            code,
            detail,
            Msg::PageNotFound,
            Msg::NoPageHere,
        )
    }

    /// A gateway path asked with a method it does not take: as `not_found`, with 405.
    pub fn method_not_allowed(&self, html: bool) -> Response<GatewayBody> {
        let (code, detail) = ("method_not_allowed", "This method is not allowed here.");
        let status = StatusCode::METHOD_NOT_ALLOWED;
        self.refusal(
            html,
            status,
            code,
            detail,
            Msg::NotAllowedTitle,
            Msg::NotAllowedWhat,
        )
    }

    /// A refusal with no state behind it: JSON (`code`, `detail`) or the page with the ways on.
    fn refusal(
        &self,
        html: bool,
        status: StatusCode,
        code: &str,
        detail: &str,
        title: Msg,
        what: Msg,
    ) -> Response<GatewayBody> {
        if !html {
            return json_error(status, code, detail);
        }
        let correlation = crate::session::random_id(9);
        let (title, what, next) = (self.t(title), self.t(what), self.t(Msg::CheckAddress));
        self.error_page(status, title, what, next, &correlation)
    }

    /// `error_page`, not yet written.
    pub fn error_answer(
        &self,
        status: StatusCode,
        title: &str,
        what: &str,
        next: &str,
        correlation: &str,
    ) -> Answer {
        let body = format!(
            "<h1>{}</h1><div class=\"error\" role=\"alert\">{}</div><p>{}</p>{}\
<p class=\"muted\">{} <code id=\"correlation-id\">{}</code></p>",
            esc(title),
            esc(what),
            esc(next),
            self.ways_on(),
            esc(self.t(Msg::Reference)),
            esc(correlation)
        );
        Answer::html(status, self.layout(title, &body, false))
    }
}

pub fn html_response(status: StatusCode, html: String) -> Response<GatewayBody> {
    Answer::html(status, html).into_response()
}

/// `{"error": ..., "detail": ...}` with the given status.
pub fn json_error(status: StatusCode, error: &str, detail: &str) -> Response<GatewayBody> {
    json_response(
        status,
        &serde_json::json!({"error": error, "detail": detail}),
    )
}

pub fn json_response(status: StatusCode, v: &serde_json::Value) -> Response<GatewayBody> {
    Answer::json(status, v).into_response()
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
#[allow(clippy::panic)]
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
        let c = Chrome::new(
            "Help<desk>".into(),
            "/_portcullis".into(),
            false,
            &PagesConfig::default(),
        );
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

    #[test]
    fn the_builtin_frame_writes_the_page_whole() {
        let c = Chrome::new(
            "Help<desk>".into(),
            "/p".into(),
            true,
            &PagesConfig::default(),
        );
        let v = &c.style_version;
        assert_eq!(
            c.layout("A & B", "<p>x</p>", true),
            format!(
                "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
<title>A &amp; B · Help&lt;desk&gt;</title><link rel=\"stylesheet\" href=\"/p/static/style.css?v={v}\"></head>\
<body><header class=\"brand\"><img src=\"/p/static/logo\" alt=\"\"><span>Help&lt;desk&gt;</span></header>\
<main class=\"wide\"><p>x</p></main><footer>Protected by portcullis</footer></body></html>\n"
            )
        );
    }

    #[test]
    fn an_operators_frame_places_the_values_escaped_where_they_are_text() {
        let frame = "<html lang={{lang}}><title>{{title}}</title>{{brand}}|{{stylesheet}}|{{logo}}|{{content}}|{{footer}}";
        let pages = PagesConfig {
            layout: Layout::parse(frame).ok().map(Arc::new),
            ..PagesConfig::default()
        };
        let c = Chrome::new("Help<desk>".into(), "/p".into(), false, &pages);
        let v = &c.style_version;
        assert_eq!(
            c.layout("<b>", "<p>x</p>", false),
            format!(
                "<html lang=en><title>&lt;b&gt;</title>Help&lt;desk&gt;|/p/static/style.css?v={v}||\
<main><p>x</p></main>|Protected by portcullis"
            )
        );
    }

    #[test]
    fn every_refusal_page_links_to_the_ways_on() {
        let c = Chrome::new(
            "Helpdesk".into(),
            "/p".into(),
            false,
            &PagesConfig::default(),
        );
        let a = c.error_answer(StatusCode::FORBIDDEN, "No", "x", "y", "abc");
        for href in ["/p/login", "/p/account", "/p/logout"] {
            assert!(a.body.contains(&format!("href=\"{href}\"")), "{href}");
        }
    }

    #[test]
    fn an_answer_written_as_bytes_is_the_response_hyper_would_send() {
        let c = Chrome::new(
            "Helpdesk".into(),
            "/_portcullis".into(),
            false,
            &PagesConfig::default(),
        );
        let answers = || {
            [
                c.error_answer(StatusCode::BAD_GATEWAY, "Down", "x", "y", "abc"),
                Answer::json(
                    StatusCode::GATEWAY_TIMEOUT,
                    &serde_json::json!({"error": "e"}),
                ),
            ]
        };
        for (answer, want) in answers().into_iter().zip(answers()) {
            let want = want.into_response();
            let mut out = Vec::new();
            answer.write_h1(&mut out, false, true, Some(b"max-age=1"));
            let mut fields = [httparse::EMPTY_HEADER; 16];
            let mut parsed = httparse::Response::new(&mut fields);
            let Ok(httparse::Status::Complete(len)) = parsed.parse(&out) else {
                panic!("not a complete response head");
            };
            assert_eq!(parsed.code, Some(want.status().as_u16()));
            assert_eq!(parsed.reason, want.status().canonical_reason());
            let got: Vec<(String, Vec<u8>)> = parsed
                .headers
                .iter()
                .map(|h| (h.name.to_owned(), h.value.to_vec()))
                .collect();
            // The response's own headers in its order, then the edge and framing headers.
            let mut expected: Vec<(String, Vec<u8>)> = want
                .headers()
                .iter()
                .map(|(n, v)| (n.as_str().to_owned(), v.as_bytes().to_vec()))
                .collect();
            expected.push(("strict-transport-security".into(), b"max-age=1".to_vec()));
            let date = got.iter().find(|(n, _)| n == "date").cloned();
            assert!(date.is_some(), "a Date header");
            expected.extend(date);
            expected.push((
                "content-length".into(),
                answer.body.len().to_string().into_bytes(),
            ));
            expected.push(("connection".into(), b"close".to_vec()));
            assert_eq!(got, expected);
            assert_eq!(out.get(len..), Some(answer.body.as_bytes()));
            let mut head_only = Vec::new();
            answer.write_h1(&mut head_only, true, false, None);
            assert!(head_only.ends_with(b"\r\n\r\n"), "HEAD: no body");
        }
    }
}
