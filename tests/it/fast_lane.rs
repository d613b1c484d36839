//! The HTTP/1.1 fast lane (`server::fast`): it forwards exactly what the general path forwards,
//! relays every response framing intact, refuses ambiguous upstream framing, never reuses an
//! upstream connection with bytes left over, and hands a connection to hyper mid-stream.

use crate::support::*;
use hyper::{Method, StatusCode};
use portcullis::session::SessionStore;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

fn handoffs(gw: &TestGateway) -> u64 {
    gw.gateway().metrics.handoffs()
}

fn sorted_without(mut h: Vec<(String, String)>, drop: &[&str]) -> Vec<(String, String)> {
    h.retain(|(n, _)| !drop.contains(&n.as_str()));
    h.sort();
    h
}

#[tokio::test]
async fn the_lane_and_the_general_path_forward_the_same_request() {
    let gw = TestGateway::start().await;
    let (cookie, _) = gw.session_for("ann", &["agent"]).await;
    let cookies = format!("theme=dark; {cookie}; portcullis-login=x; lang=en");
    let headers: Vec<(&str, &str)> = vec![
        ("cookie", &cookies),
        ("x-forwarded-user", "mallory"),
        ("X_Auth_Roles", "admin"),
        ("x-portcullis-assertion", "forged"),
        ("x-forwarded-for", "10.9.9.9"),
        ("forwarded", "for=10.9.9.9"),
        ("proxy-authorization", "Basic eA=="),
        ("te", "trailers"),
        ("x-keep", "yes"),
        ("accept", "application/json"),
    ];
    let http = Http::new();
    let url = gw.url("/agent/page?q=1&r=%20x");
    let before = handoffs(&gw);
    let lane = http.get(&url, &headers).await;
    assert_eq!(lane.status, StatusCode::OK);
    assert_eq!(handoffs(&gw), before, "a signed-in GET stays in the lane");
    // `Content-Length: 0` is not for the lane: the same request, by the general path.
    let mut general_headers = headers.clone();
    general_headers.push(("content-length", "0"));
    let general = http.get(&url, &general_headers).await;
    assert_eq!(general.status, StatusCode::OK);
    assert_eq!(handoffs(&gw), before + 1, "handed to hyper");

    let a = sorted_without(lane.upstream_headers(), &["content-length"]);
    let b = sorted_without(general.upstream_headers(), &["content-length"]);
    assert_eq!(a, b, "the upstream sees the same request from both paths");
    assert_eq!(lane.json()["path"], general.json()["path"]);
    assert_eq!(lane.json()["query"], "q=1&r=%20x");
    assert_eq!(lane.json()["query"], general.json()["query"]);
    // And it is the right request: ours in, theirs out.
    let get = |n: &str| a.iter().find(|(k, _)| k == n).map(|(_, v)| v.as_str());
    assert_eq!(get("x-forwarded-user"), Some("ann"));
    assert_eq!(get("x-auth-roles"), Some("agent"));
    assert_eq!(get("x-forwarded-for"), Some("127.0.0.1"));
    assert_eq!(get("cookie"), Some("theme=dark; lang=en"));
    assert_eq!(get("x-keep"), Some("yes"));
    for gone in ["forwarded", "proxy-authorization", "te", "x_auth_roles"] {
        assert_eq!(get(gone), None, "{gone} reached the upstream");
    }
    assert_ne!(get("x-portcullis-assertion"), Some("forged"));
    gw.stop().await;
}

/// `[identity_headers]` renames what goes upstream, on both lanes; a client can send neither
/// the configured names nor the defaults (an app may still read those from before the rename).
#[tokio::test]
async fn configured_identity_header_names_are_sent_by_both_lanes_and_defaults_stay_reserved() {
    let gw = TestGateway::start_with(
        "[identity_headers]\nuser = \"X-Remote-User\"\nroles = \"x-remote-roles\"\n",
        |_| {},
    )
    .await;
    let (cookie, _) = gw.session_for("ann", &["agent"]).await;
    let spoof: Vec<(&str, &str)> = vec![
        ("cookie", &cookie),
        ("x-remote-user", "mallory"),
        ("X_Remote_Roles", "admin"),
        ("x-forwarded-user", "mallory"),
        ("x-auth-roles", "admin"),
    ];
    let http = Http::new();
    let url = gw.url("/agent/page");
    let before = handoffs(&gw);
    let lane = http.get(&url, &spoof).await;
    assert_eq!(handoffs(&gw), before, "stayed in the lane");
    let mut general_headers = spoof.clone();
    general_headers.push(("content-length", "0"));
    let general = http.get(&url, &general_headers).await;
    assert_eq!(handoffs(&gw), before + 1, "handed to hyper");
    for r in [&lane, &general] {
        assert_eq!(r.status, StatusCode::OK);
        let h = r.upstream_headers();
        let all = |n: &str| -> Vec<&str> {
            h.iter()
                .filter(|(k, _)| k == n)
                .map(|(_, v)| v.as_str())
                .collect()
        };
        assert_eq!(all("x-remote-user"), vec!["ann"]);
        assert_eq!(all("x-remote-roles"), vec!["agent"]);
        assert!(
            all("x-forwarded-user").is_empty(),
            "a default name reached the app"
        );
        assert!(
            all("x-auth-roles").is_empty(),
            "a default name reached the app"
        );
        assert!(all("x_remote_roles").is_empty());
        assert_eq!(
            all("x-forwarded-email"),
            vec!["ann@example.com"],
            "unrenamed stays"
        );
    }
    gw.stop().await;
}

/// A configured name written with `_` is reserved in every spelling a framework folds to it:
/// a client's `X-App-User` never reaches an app that reads `HTTP_X_APP_USER`.
#[tokio::test]
async fn a_configured_name_with_underscores_is_reserved_in_its_dash_spelling_too() {
    let gw = TestGateway::start_with("[identity_headers]\nuser = \"x_app_user\"\n", |_| {}).await;
    let (cookie, _) = gw.session_for("ann", &["agent"]).await;
    let http = Http::new();
    let url = gw.url("/agent/page");
    let spoof = [
        ("cookie", cookie.as_str()),
        ("X-App-User", "mallory"),
        ("x_APP-user", "eve"),
    ];
    let lane = http.get(&url, &spoof).await;
    let mut general_headers = spoof.to_vec();
    general_headers.push(("content-length", "0"));
    let general = http.get(&url, &general_headers).await;
    for r in [&lane, &general] {
        assert_eq!(r.status, StatusCode::OK);
        let values: Vec<(String, String)> = r
            .upstream_headers()
            .into_iter()
            .filter(|(k, _)| k.replace('_', "-") == "x-app-user")
            .collect();
        assert_eq!(values, vec![("x_app_user".to_owned(), "ann".to_owned())]);
    }
    gw.stop().await;
}

/// Identity header names other than the defaults, each named after the next field: a value
/// written by position instead of by name would land under another field's name.
fn rotated_identity_headers() -> portcullis::proxy::headers::IdentityHeaders {
    let n = hyper::header::HeaderName::from_static;
    portcullis::proxy::headers::IdentityHeaders {
        user: n("x-id-email"),
        email: n("x-id-groups"),
        groups: n("x-id-roles"),
        roles: n("x-id-method"),
        method: n("x-id-mfa"),
        mfa: n("x-id-session"),
        session: n("x-id-user"),
        assertion: n("x-id-proof"),
    }
}

#[tokio::test]
async fn both_lanes_send_renamed_identity_headers_by_name() {
    // Not a config key (`Gateway::ids` is always the defaults from config): set on the state.
    let gw = TestGateway::start_with_state(|g| g.ids = rotated_identity_headers()).await;
    let (cookie, id) = gw.session_for("ann", &["agent"]).await;
    let headers: Vec<(&str, &str)> = vec![
        ("cookie", &cookie),
        // Spoofs of the configured names, in other spellings: never forwarded.
        ("x-id-email", "mallory@example.com"),
        ("X_Id_Method", "admin"),
        ("x-id-proof", "forged"),
        ("accept", "application/json"),
    ];
    let http = Http::new();
    let url = gw.url("/agent/page");
    let before = handoffs(&gw);
    let lane = http.get(&url, &headers).await;
    assert_eq!(lane.status, StatusCode::OK);
    assert_eq!(handoffs(&gw), before, "a signed-in GET stays in the lane");
    let mut general_headers = headers.clone();
    general_headers.push(("content-length", "0"));
    let general = http.get(&url, &general_headers).await;
    assert_eq!(general.status, StatusCode::OK);
    assert_eq!(handoffs(&gw), before + 1, "handed to hyper");

    let want = [
        ("x-id-email", "ann"),
        ("x-id-groups", "ann@example.com"),
        ("x-id-roles", "agents"),
        ("x-id-method", "agent"),
        ("x-id-mfa", "native"),
        ("x-id-session", "totp"),
        ("x-id-user", id.as_str()),
    ];
    for (lane_name, resp) in [("lane", &lane), ("general path", &general)] {
        let seen = resp.upstream_headers();
        for (name, value) in want {
            let values: Vec<&str> = seen
                .iter()
                .filter(|(n, _)| n == name)
                .map(|(_, v)| v.as_str())
                .collect();
            assert_eq!(values, vec![value], "{name} from the {lane_name}");
        }
        let proofs: Vec<&str> = seen
            .iter()
            .filter(|(n, _)| n == "x-id-proof")
            .map(|(_, v)| v.as_str())
            .collect();
        assert_eq!(proofs.len(), 1, "one assertion from the {lane_name}");
        assert_eq!(
            proofs[0].split('.').count(),
            3,
            "a JWT from the {lane_name}"
        );
        for default in [
            "x-forwarded-user",
            "x-forwarded-email",
            "x-auth-roles",
            "x-portcullis-assertion",
        ] {
            assert!(
                seen.iter().all(|(n, _)| n != default),
                "{default} sent by the {lane_name} under renamed headers"
            );
        }
    }
    let a = sorted_without(lane.upstream_headers(), &["content-length", "x-id-proof"]);
    let b = sorted_without(
        general.upstream_headers(),
        &["content-length", "x-id-proof"],
    );
    assert_eq!(a, b, "the upstream sees the same request from both paths");
    assert_eq!(
        lane.upstream_header("x-id-proof"),
        general.upstream_header("x-id-proof"),
        "the same cached assertion"
    );
    gw.stop().await;
}

#[tokio::test]
async fn requests_the_lane_does_not_take_are_answered_by_the_general_path() {
    let gw = TestGateway::start().await;
    let (cookie, _) = gw.session_for("eve", &["end_user"]).await;
    let json = ("accept", "application/json");
    // Each on a new connection: a connection is handed over once, for good.
    type Case<'a> = (String, Vec<(&'a str, &'a str)>, StatusCode);
    let cases: Vec<Case<'_>> = vec![
        // No session on a protected route: the general path sends the login answer.
        ("/agent/x".into(), vec![json], StatusCode::UNAUTHORIZED),
        // A role the route does not admit: refused there.
        (
            "/agent/x".into(),
            vec![("cookie", &cookie), json],
            StatusCode::FORBIDDEN,
        ),
        // A path no route matches, and one that does not normalise.
        (
            "/agent/%2e%2e/%2e%2e/x%2fy".into(),
            vec![json],
            StatusCode::BAD_REQUEST,
        ),
        // A gateway endpoint (login without a method to start: refused there).
        ("/_portcullis/login".into(), vec![], StatusCode::FORBIDDEN),
    ];
    for (path, headers, want) in cases {
        let before = handoffs(&gw);
        let r = Http::new().get(&gw.url(&path), &headers).await;
        assert_eq!(r.status, want, "{path}");
        assert_eq!(handoffs(&gw), before + 1, "{path} was handed over");
    }
    gw.stop().await;
}

/// Reads one response with a Content-Length body from a raw connection (plain or TLS).
pub(crate) async fn read_response<S: tokio::io::AsyncRead + Unpin>(
    s: &mut S,
    buf: &mut Vec<u8>,
) -> (u16, Vec<u8>) {
    loop {
        let mut fields = [httparse::EMPTY_HEADER; 64];
        let mut r = httparse::Response::new(&mut fields);
        if let httparse::Status::Complete(n) = r.parse(buf).unwrap() {
            let len: usize = r
                .headers
                .iter()
                .find(|h| h.name.eq_ignore_ascii_case("content-length"))
                .map(|h| std::str::from_utf8(h.value).unwrap().parse().unwrap())
                .expect("a Content-Length response");
            let status = r.code.unwrap();
            if buf.len() >= n + len {
                let body = buf[n..n + len].to_vec();
                buf.drain(..n + len);
                return (status, body);
            }
        }
        let mut chunk = [0u8; 8192];
        let got = tokio::time::timeout(Duration::from_secs(10), s.read(&mut chunk))
            .await
            .expect("response timed out")
            .unwrap();
        assert!(got > 0, "connection closed before a complete response");
        buf.extend_from_slice(&chunk[..got]);
    }
}

#[tokio::test]
async fn pipelined_requests_and_a_mid_connection_handoff_are_answered_in_order() {
    let gw = TestGateway::start().await;
    let (cookie, _) = gw.session_for("ann", &["agent"]).await;
    let mut s = TcpStream::connect(gw.addr).await.unwrap();
    let host = gw.addr.to_string();
    let get =
        |n: u32| format!("GET /agent/p?n={n} HTTP/1.1\r\nHost: {host}\r\nCookie: {cookie}\r\n\r\n");
    let post = format!(
        "POST /agent/upload HTTP/1.1\r\nHost: {host}\r\nCookie: {cookie}\r\nContent-Length: 3\r\n\r\nabc"
    );
    // Two lane requests in one write, then a request with a body (handed to hyper), then one
    // more GET that hyper answers, all on one connection.
    let before = handoffs(&gw);
    let wire = [get(1), get(2), post, get(3)].concat();
    s.write_all(wire.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    for n in 1..=2 {
        let (status, body) = read_response(&mut s, &mut buf).await;
        assert_eq!(status, 200);
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["query"], format!("n={n}"));
    }
    let (status, body) = read_response(&mut s, &mut buf).await;
    assert_eq!(status, 200);
    assert_eq!(body, br#"{"received":3}"#);
    let (status, body) = read_response(&mut s, &mut buf).await;
    assert_eq!(status, 200);
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["query"], "n=3");
    assert_eq!(
        v["headers"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|h| h[0] == "x-forwarded-user")
            .count(),
        1
    );
    assert_eq!(handoffs(&gw), before + 1);
    gw.stop().await;
}

/// The lane hashes a connection's session cookie once (`session::LastToken`): a connection that
/// changes cookie gets the new cookie's session on the very next request, never the previous
/// one's, and a revoked session is refused on its next request although its id was cached.
#[tokio::test]
async fn a_connection_that_changes_cookie_gets_that_cookies_session_and_revocation_still_holds() {
    let gw = TestGateway::start().await;
    let (ann, ann_id) = gw.session_for("ann", &["agent"]).await;
    let (bob, _) = gw.session_for("bob", &["agent"]).await;
    let mut s = TcpStream::connect(gw.addr).await.unwrap();
    let host = gw.addr.to_string();
    let get = |cookie: &str| {
        format!("GET /agent/p HTTP/1.1\r\nHost: {host}\r\nCookie: {cookie}\r\nAccept: application/json\r\n\r\n")
    };
    let user_of = |body: &[u8]| -> Option<String> {
        let v: serde_json::Value = serde_json::from_slice(body).ok()?;
        v["headers"]
            .as_array()?
            .iter()
            .find(|h| h[0] == "x-forwarded-user")
            .and_then(|h| h[1].as_str().map(str::to_owned))
    };
    let before = handoffs(&gw);
    let mut buf = Vec::new();
    for (cookie, user) in [(&ann, "ann"), (&ann, "ann"), (&bob, "bob"), (&ann, "ann")] {
        s.write_all(get(cookie).as_bytes()).await.unwrap();
        let (status, body) = read_response(&mut s, &mut buf).await;
        assert_eq!(status, 200);
        assert_eq!(user_of(&body).as_deref(), Some(user));
    }
    assert_eq!(handoffs(&gw), before, "all four stayed in the lane");
    gw.gateway().store.remove(&ann_id).await.unwrap();
    s.write_all(get(&ann).as_bytes()).await.unwrap();
    let (status, _) = read_response(&mut s, &mut buf).await;
    assert_eq!(
        status, 401,
        "a revoked session is refused on its next request"
    );
    gw.stop().await;
}

/// An upstream that answers each request with a scripted raw response, chosen by path, and
/// counts the connections it accepted.
struct RawUpstream {
    addr: SocketAddr,
    connections: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for RawUpstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A response an upstream should never have sent: whoever reads it was poisoned.
const FORGED: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nFORGED";

fn script(path: &str) -> (std::borrow::Cow<'static, [u8]>, bool) {
    // (response bytes, close the connection after writing them)
    if let Some(rest) = path.strip_prefix("/hc/echo/") {
        let body = format!("/hc/echo/{rest}");
        let wire = format!(
            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        return (wire.into_bytes().into(), false);
    }
    if path == "/hc/head-then-body" {
        // The length of the body it will send late (see the connection loop).
        let wire = format!(
            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n",
            FORGED.len()
        );
        return (wire.into_bytes().into(), false);
    }
    let (bytes, close): (&'static [u8], bool) = match path {
        "/hc/bad-chunk-late" => (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n", false),
        "/hc/chunked" => (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX-A: 1\r\n\r\n5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\nX-Trailer: t\r\n\r\n",
            false,
        ),
        "/hc/close" => (b"HTTP/1.1 200 OK\r\nX-A: 1\r\n\r\nuntil the end", true),
        "/hc/interim" => (
            b"HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
            false,
        ),
        "/hc/304" => (b"HTTP/1.1 304 Not Modified\r\nContent-Length: 5\r\nETag: \"e\"\r\n\r\n", false),
        "/hc/len" => (b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfive!", false),
        "/hc/te-and-cl" => (
            b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
            false,
        ),
        "/hc/two-lengths" => (
            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nabc",
            false,
        ),
        "/hc/gzip-chunked" => (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
            false,
        ),
        "/hc/bad-chunk" => (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", false),
        "/hc/extra" => (
            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokHTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nevil",
            false,
        ),
        "/hc/switch" => (b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\n\r\n", false),
        "/hc/twice" => (b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n/hc/twice", false),
        _ => (b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nplain", false),
    };
    (bytes.into(), close)
}

impl RawUpstream {
    async fn start() -> RawUpstream {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let connections = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let count = std::sync::Arc::clone(&connections);
        let task = tokio::spawn(async move {
            loop {
                let Ok((mut s, _)) = listener.accept().await else {
                    continue;
                };
                count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    // A HEAD body owed on this connection, sent when the next request comes.
                    let mut owed = false;
                    loop {
                        let head_end = loop {
                            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                                break i + 4;
                            }
                            let mut chunk = [0u8; 4096];
                            match s.read(&mut chunk).await {
                                Ok(0) | Err(_) => return,
                                Ok(n) => buf.extend_from_slice(&chunk[..n]),
                            }
                        };
                        let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
                        buf.drain(..head_end);
                        let path = head.split(' ').nth(1).unwrap_or("/").to_owned();
                        let (bytes, close) = script(&path);
                        if std::mem::take(&mut owed) && s.write_all(FORGED).await.is_err() {
                            return;
                        }
                        if s.write_all(&bytes).await.is_err() || close {
                            return;
                        }
                        owed = path == "/hc/head-then-body";
                        if path == "/hc/twice" {
                            // A second, forged response, a moment after the complete first.
                            tokio::time::sleep(Duration::from_millis(50)).await;
                            let _ = s.write_all(FORGED).await;
                        }
                        if path == "/hc/bad-chunk-late" {
                            // The rest of the body, broken, once the first chunk is relayed.
                            tokio::time::sleep(Duration::from_millis(200)).await;
                            let _ = s.write_all(b"zz\r\n").await;
                        }
                    }
                });
            }
        });
        RawUpstream {
            addr,
            connections,
            task,
        }
    }
}

pub(crate) async fn gateway_to(up: SocketAddr, dir: &TempDir) -> portcullis::server::Running {
    start_gateway(
        &dir.path().join("c.toml"),
        portcullis::clock::Clock::system(),
        |port| base_config(port, up, ""),
    )
    .await
}

#[tokio::test]
async fn every_response_framing_is_relayed_and_ambiguous_framing_is_refused() {
    let up = RawUpstream::start().await;
    let dir = TempDir::new("framing");
    let run = gateway_to(up.addr, &dir).await;
    let http = Http::new();
    let url = |p: &str| format!("http://{}{p}", run.addr);
    let json = [("accept", "application/json")];

    let r = http.get(&url("/hc/chunked"), &[]).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.text(), "hello world");
    assert_eq!(r.header("x-a"), Some("1"));
    assert_eq!(r.header("x-trailer"), None);

    let r = http.get(&url("/hc/close"), &[]).await;
    assert_eq!(r.text(), "until the end");

    let r = http.get(&url("/hc/interim"), &[]).await;
    assert_eq!((r.status, r.text().as_str()), (StatusCode::OK, "ok"));

    let r = http.get(&url("/hc/304"), &[]).await;
    assert_eq!(r.status, StatusCode::NOT_MODIFIED);
    assert_eq!(r.header("etag"), Some("\"e\""));
    assert!(r.body.is_empty());

    let r = http
        .send(Method::HEAD, &url("/hc/len"), &[], Vec::new())
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.header("content-length"), Some("5"));
    assert!(r.body.is_empty());
    // The next request is answered as usual (on another upstream connection: none is reused
    // after a HEAD).
    let r = http.get(&url("/hc/len"), &[]).await;
    assert_eq!(r.text(), "five!");

    for bad in [
        "/hc/te-and-cl",
        "/hc/two-lengths",
        "/hc/gzip-chunked",
        "/hc/switch",
    ] {
        let r = http.get(&url(bad), &json).await;
        assert_eq!(r.status, StatusCode::BAD_GATEWAY, "{bad}");
        assert_eq!(r.json()["error"], "upstream_unavailable", "{bad}");
    }

    // A broken body before anything reached the client: a clean 502.
    let r = http.get(&url("/hc/bad-chunk"), &json).await;
    assert_eq!(r.status, StatusCode::BAD_GATEWAY);
    // Broken after the first chunk went out: the response is cut, never ended cleanly.
    let mut s = TcpStream::connect(run.addr).await.unwrap();
    s.write_all(
        format!(
            "GET /hc/bad-chunk-late HTTP/1.1\r\nHost: {}\r\n\r\n",
            run.addr
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    let mut all = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut all))
        .await
        .expect("the connection is closed")
        .unwrap();
    let text = String::from_utf8_lossy(&all);
    assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{text}");
    assert!(text.contains("\r\n5\r\nhello\r\n"), "{text}");
    assert!(
        !text.contains("0\r\n\r\n"),
        "no clean end for a broken body: {text}"
    );

    // Bytes after a complete response: relayed no further, and that connection is not reused.
    let before = up.connections.load(std::sync::atomic::Ordering::SeqCst);
    let r = http.get(&url("/hc/extra"), &[]).await;
    assert_eq!(r.text(), "ok");
    for _ in 0..3 {
        let r = http.get(&url("/hc/plain"), &[]).await;
        assert_eq!(
            r.text(),
            "plain",
            "a leftover response was read as this one's"
        );
    }
    assert!(up.connections.load(std::sync::atomic::Ordering::SeqCst) > before);
    run.shutdown().await;
}

#[tokio::test]
async fn a_late_second_response_or_head_body_is_never_read_as_the_next_clients_response() {
    let up = RawUpstream::start().await;
    let dir = TempDir::new("poison");
    let run = gateway_to(up.addr, &dir).await;
    let http = Http::new();
    let url = |p: &str| format!("http://{}{p}", run.addr);
    // Through the lane, then through hyper (`Content-Length: 0` hands a GET to hyper, for the
    // rest of that client connection, so the lane goes first).
    for (via, extra) in [("lane", vec![]), ("general", vec![("content-length", "0")])] {
        let before = handoffs_of(&run);
        // A complete response, then a forged one on the same connection 50 ms later.
        let r = http.get(&url("/hc/twice"), &extra).await;
        assert_eq!(r.text(), "/hc/twice", "{via}");
        tokio::time::sleep(Duration::from_millis(300)).await;
        let r = http
            .get(&url(&format!("/hc/echo/{via}-after-twice")), &extra)
            .await;
        assert_eq!(
            r.text(),
            format!("/hc/echo/{via}-after-twice"),
            "{via}: poisoned"
        );
        // A HEAD whose announced body the upstream sends late, once the next request is there:
        // only a connection not reused after HEAD is safe from it, whatever the timing.
        let r = http
            .send(Method::HEAD, &url("/hc/head-then-body"), &extra, Vec::new())
            .await;
        assert_eq!(r.status, StatusCode::OK, "{via}");
        assert!(r.body.is_empty());
        let r = http
            .get(&url(&format!("/hc/echo/{via}-after-head")), &extra)
            .await;
        assert_eq!(
            r.text(),
            format!("/hc/echo/{via}-after-head"),
            "{via}: poisoned"
        );
        let handed = handoffs_of(&run) - before;
        assert!(
            if via == "lane" {
                handed == 0
            } else {
                handed >= 1
            },
            "{via}: {handed} hand-overs"
        );
    }
    run.shutdown().await;
}

fn handoffs_of(run: &portcullis::server::Running) -> u64 {
    run.gateway.metrics.handoffs()
}

#[tokio::test]
async fn idle_lane_connections_do_not_hold_up_shutdown() {
    let gw = TestGateway::start().await;
    let mut s = TcpStream::connect(gw.addr).await.unwrap();
    s.write_all(format!("GET /hc/x HTTP/1.1\r\nHost: {}\r\n\r\n", gw.addr).as_bytes())
        .await
        .unwrap();
    let mut buf = Vec::new();
    let (status, _) = read_response(&mut s, &mut buf).await;
    assert_eq!(status, 200);
    // The connection now idles in the lane; shutdown closes it at once (grace is 5 s).
    let t = std::time::Instant::now();
    gw.stop().await;
    assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
    let mut rest = Vec::new();
    let n = tokio::time::timeout(Duration::from_secs(3), s.read_to_end(&mut rest))
        .await
        .expect("closed")
        .unwrap_or(0);
    assert_eq!(n, 0);
}

/// A tiny deterministic generator (xorshift): the cases are the same on every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn pick<'a>(&mut self, from: &[&'a str]) -> &'a str {
        from[(self.next() % from.len() as u64) as usize]
    }
}

/// One raw request on a new connection; returns the headers the upstream reported.
async fn upstream_view(addr: SocketAddr, head: &str) -> (u16, Vec<(String, String)>) {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(head.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    let (status, body) = read_response(&mut s, &mut buf).await;
    if status != 200 {
        return (status, Vec::new());
    }
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    let mut h: Vec<(String, String)> = v["headers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p[0].as_str().unwrap().to_owned(),
                p[1].as_str().unwrap().to_owned(),
            )
        })
        .filter(|(n, _)| n != "content-length")
        .collect();
    h.sort();
    (status, h)
}

#[tokio::test]
async fn random_header_mixes_reach_the_upstream_the_same_by_both_paths() {
    let gw = TestGateway::start().await;
    let (cookie, _) = gw.session_for("ann", &["agent"]).await;
    let names = [
        "X-Forwarded-User",
        "x_forwarded_user",
        "X-AUTH-ROLES",
        "x-auth-mfa",
        "X_Auth_Session",
        "x-portcullis-assertion",
        "X-Portcullis-Other",
        "Forwarded",
        "X-Forwarded-For",
        "x_forwarded_for",
        "X-Forwarded-Host",
        "X-Forwarded-Proto",
        "X-Real-IP",
        "Keep-Alive",
        "Proxy-Authorization",
        "Proxy-Connection",
        "TE",
        "Trailer",
        "Cookie",
        "cookie",
        "Accept",
        "X-Custom",
        "x_custom",
        "User-Agent",
        "Connection",
        "Close",
        "X-Auth-Email-Not-Ours",
    ];
    let values = [
        "x",
        "close",
        "keep-alive",
        "a=1; portcullis=forged; b=2",
        "portcullis-login=1; c=3",
        "__Host-portcullis=zz",
        "10.0.0.1",
        "text/html",
        "admin",
        "  spaced  ",
        "é-not-ascii",
    ];
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut lane_taken = 0;
    for case in 0..60 {
        let mut fields = vec![format!("Host: {}", gw.addr), format!("Cookie: {cookie}")];
        for _ in 0..(rng.next() % 9) {
            let n = rng.pick(&names);
            let v = rng.pick(&values);
            fields.push(format!("{n}: {v}"));
        }
        // Shuffle, so the session cookie is not always first.
        for i in (1..fields.len()).rev() {
            fields.swap(i, (rng.next() % (i as u64 + 1)) as usize);
        }
        let head = fields.join("\r\n");
        let path = format!("/agent/case{case}?q={case}");
        let before = handoffs(&gw);
        let lane = upstream_view(gw.addr, &format!("GET {path} HTTP/1.1\r\n{head}\r\n\r\n")).await;
        if handoffs(&gw) == before {
            lane_taken += 1;
        }
        let general = upstream_view(
            gw.addr,
            &format!("GET {path} HTTP/1.1\r\n{head}\r\nContent-Length: 0\r\n\r\n"),
        )
        .await;
        assert_eq!(lane, general, "case {case}:\n{head}");
        if lane.0 == 200 {
            for (n, v) in &lane.1 {
                if n == "cookie" {
                    assert!(!v.contains("portcullis"), "case {case}: {n}: {v}");
                }
                if n == "x-portcullis-assertion" {
                    assert_eq!(v.split('.').count(), 3, "case {case}: {n}: {v}");
                }
            }
            let user: Vec<_> = lane
                .1
                .iter()
                .filter(|(n, _)| n == "x-forwarded-user")
                .collect();
            assert_eq!(
                user,
                [&("x-forwarded-user".to_owned(), "ann".to_owned())],
                "case {case}"
            );
        }
    }
    assert!(
        lane_taken >= 30,
        "the lane took only {lane_taken} of 60 cases"
    );
    gw.stop().await;
}
