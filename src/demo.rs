//! `portcullis demo`: the gateway and a small sample helpdesk app on loopback, with a demo
//! contractor whose password and authenticator secret are printed, so a newcomer can try the
//! whole flow. Demo data lives in a directory of its own; nothing here runs in `portcullis run`.

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use std::convert::Infallible;
use std::net::SocketAddr;
use tokio::net::TcpListener;

/// The sample app: every page shows who the gateway says you are.
pub async fn start_sample_app() -> std::io::Result<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(|req: Request<Incoming>| async move {
                    Ok::<_, Infallible>(sample_page(&req))
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    Ok(addr)
}

fn sample_page(req: &Request<Incoming>) -> Response<Full<Bytes>> {
    let h = |n: &str| {
        req.headers()
            .get(n)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("(none)")
            .to_owned()
    };
    let rows: String = [
        "x-forwarded-user",
        "x-forwarded-email",
        "x-forwarded-groups",
        "x-auth-roles",
        "x-auth-method",
        "x-auth-mfa",
        "x-auth-session",
        "x-forwarded-for",
    ]
    .iter()
    .map(|n| {
        format!(
            "<tr><th>{}</th><td><code>{}</code></td></tr>",
            n,
            crate::pages::esc(&h(n))
        )
    })
    .collect();
    let assertion = h("x-portcullis-assertion");
    let shown: String = assertion.chars().take(48).collect();
    let html = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Sample helpdesk</title>\
<link rel=\"stylesheet\" href=\"/_portcullis/static/style.css\"></head><body><header class=\"brand\">Sample helpdesk</header>\
<main class=\"wide\"><h1>Welcome, {user}</h1><p>This page is the app behind the gateway. It received these identity headers \
(the gateway removed any the browser tried to send):</p><table>{rows}\
<tr><th>x-portcullis-assertion</th><td><code>{shown}…</code></td></tr></table>\
<p>You asked for <code>{path}</code>.</p><a class=\"button\" href=\"/_portcullis/logout\">Sign out</a></main></body></html>",
        user = crate::pages::esc(&h("x-forwarded-user")),
        shown = crate::pages::esc(&shown),
        path = crate::pages::esc(req.uri().path()),
    );
    let mut r = Response::new(Full::new(Bytes::from(html)));
    r.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    r
}

/// The demo configuration: gateway on `port`, the sample app as upstream, native login.
pub fn config_text(port: u16, app: SocketAddr) -> String {
    format!(
        r#"# Written by `portcullis demo`. Not for production.
[server]
listen = "127.0.0.1:{port}"
public_url = "http://127.0.0.1:{port}"
default_login = "native"
signing_key = "assertion-signing.p8"

[upstream]
url = "http://{app}"

[storage]
url = "sqlite://portcullis.db"

[native]
paths = ["/normal", "/access/normal"]

[mfa]
issuer = "Portcullis demo"
methods = ["totp", "recovery_code"]
# A first second factor only through a single-use enrollment link (printed at start).
enrollment = "invite"

[roles.contractor]
groups = ["contractors"]
require_mfa = true
remember_mfa = "1d"

[[routes]]
prefix = "/"
allow_roles = ["contractor"]
"#
    )
}
