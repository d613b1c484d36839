//! Shared test harness: a real upstream app, the gateway on an ephemeral loopback port, an
//! HTTP client, and temporary directories; everything torn down on drop.

#![allow(dead_code)]

pub mod browser;
pub mod login;
pub mod oidc_provider;
pub mod relay;
pub mod saml_idp;
pub mod servers;
pub mod smtp;
pub mod softkey;
pub mod stores;
pub mod tls_upstream;
pub mod upstream;
pub mod webdriver;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::header::{HeaderMap, HeaderName, HeaderValue};
use hyper::{Method, Request, StatusCode};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use portcullis::clock::Clock;
use portcullis::config::Config;
use portcullis::server::Running;
use portcullis::session::{
    new_token, AuthMethod, Identity, MfaUsed, Session, SessionId, SessionStore,
};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

pub use upstream::TestUpstream;

/// A directory under the system temp dir, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        let p = std::env::temp_dir().join(format!(
            "portcullis-it-{tag}-{}",
            portcullis::session::random_id(9)
        ));
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The one decision "skip or fail" for a missing service (Redis, PostgreSQL, an installed
/// server or browser): fails under CI (`CI` set), prints `skipped: …` elsewhere.
pub use portcullis::testing::{database_url, redis_url, require};

/// A port number for configs that are validated or used by the CLI but never served.
pub const UNSERVED_PORT: u16 = 9;

/// A loopback listener on a port of its own, bound once: its port goes into the config and
/// the listener itself into `start_gateway`, so the port is never free for someone else.
pub fn loopback_listener() -> (std::net::TcpListener, u16) {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    (l, port)
}

/// The gateway in this process on a listener bound once: `config_for(port)` is the config text
/// (written to `config_path`), served on that very port.
pub async fn start_gateway(
    config_path: &Path,
    clock: Clock,
    config_for: impl FnOnce(u16) -> String,
) -> Running {
    start_gateway_with(config_path, clock, config_for, |_| {}).await
}

/// As `start_gateway`, with `state` given the gateway's state before it serves.
pub async fn start_gateway_with(
    config_path: &Path,
    clock: Clock,
    config_for: impl FnOnce(u16) -> String,
    state: impl FnOnce(&mut portcullis::server::Gateway),
) -> Running {
    let (listener, port) = loopback_listener();
    std::fs::write(config_path, config_for(port)).unwrap();
    let config = Config::load(config_path).unwrap_or_else(|e| panic!("test config invalid:\n{e}"));
    portcullis::server::start_prepared(config, clock, Some(listener), state)
        .await
        .unwrap_or_else(|e| panic!("gateway did not start: {e}"))
}

/// A child process that binds a port itself: `spawn(port)` starts it on a port just probed
/// free. The probe releases the port, so a child that exits before the port accepts (another
/// process took it: EADDRINUSE) is started again on a new one, up to five times.
pub async fn spawn_listening(
    what: &str,
    wait: Duration,
    mut spawn: impl FnMut(u16) -> std::process::Child,
) -> (std::process::Child, u16) {
    for _ in 0..5 {
        let port = loopback_listener().1;
        let mut child = spawn(port);
        if wait_listening(&mut child, &[port], what, wait).await {
            return (child, port);
        }
        eprintln!("{what} exited before listening on {port}; retrying on another port");
    }
    panic!("{what} did not get a port in five tries");
}

/// Waits until every one of `ports` accepts while `child` runs; false when the child exited
/// first (its port was taken). Panics (killing the child) after `wait`.
pub async fn wait_listening(
    child: &mut std::process::Child,
    ports: &[u16],
    what: &str,
    wait: Duration,
) -> bool {
    let deadline = std::time::Instant::now() + wait;
    loop {
        let mut all = true;
        for p in ports {
            all &= tokio::net::TcpStream::connect(("127.0.0.1", *p))
                .await
                .is_ok();
        }
        // A connect that succeeds while the child has exited reached someone else.
        if child.try_wait().unwrap().is_some() {
            return false;
        }
        if all {
            return true;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what} did not listen on {ports:?} within {wait:?}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The base config the tests share; `extra` is appended (more roles, routes, sections).
pub fn base_config(port: u16, upstream: SocketAddr, extra: &str) -> String {
    base_config_with(port, upstream, "", extra)
}

/// `base_config` with more `[server]` keys (`server_extra`, one per line).
pub fn base_config_with(
    port: u16,
    upstream: SocketAddr,
    server_extra: &str,
    extra: &str,
) -> String {
    base_config_full(port, upstream, server_extra, "", extra)
}

/// `base_config_with` and more `[session]` keys (`session_extra`, e.g. a Redis store).
pub fn base_config_full(
    port: u16,
    upstream: SocketAddr,
    server_extra: &str,
    session_extra: &str,
    extra: &str,
) -> String {
    format!(
        r#"
[server]
listen = "127.0.0.1:{port}"
public_url = "http://127.0.0.1:{port}"
access_log = false
shutdown_grace = "5s"
{server_extra}

[upstream]
url = "http://{upstream}"
timeout = "3s"
connect_timeout = "1s"

[session]
idle_timeout = "30m"
max_lifetime = "12h"
{session_extra}

[roles.agent]
groups = ["agents"]
require_mfa = true

[roles.admin]
groups = ["admins"]
require_mfa = true

[roles.end_user]
groups = ["end-users"]
require_mfa = false

[[routes]]
prefix = "/hc"
access = "public"

[[routes]]
prefix = "/agent"
allow_roles = ["agent", "admin"]

[[routes]]
prefix = "/admin"
allow_roles = ["admin"]

[[routes]]
prefix = "/"
allow_roles = ["agent", "admin", "end_user"]
{extra}
"#
    )
}

/// The gateway running in this test process, with its upstream.
pub struct TestGateway {
    pub dir: TempDir,
    pub upstream: TestUpstream,
    pub running: Option<Running>,
    pub addr: SocketAddr,
    pub clock: Clock,
    pub config_path: PathBuf,
}

impl TestGateway {
    pub async fn start() -> TestGateway {
        Self::start_with("", |_| {}).await
    }

    /// Starts with `extra` TOML appended to the base config; `prepare` may write files first.
    pub async fn start_with(extra: &str, prepare: impl FnOnce(&Path)) -> TestGateway {
        Self::start_tuned("", extra, prepare).await
    }

    /// As `start_with`, with `server_extra` keys in the `[server]` section.
    pub async fn start_tuned(
        server_extra: &str,
        extra: &str,
        prepare: impl FnOnce(&Path),
    ) -> TestGateway {
        Self::start_full(server_extra, "", extra, prepare).await
    }

    /// As `start_tuned`, with `session_extra` keys in the `[session]` section.
    pub async fn start_full(
        server_extra: &str,
        session_extra: &str,
        extra: &str,
        prepare: impl FnOnce(&Path),
    ) -> TestGateway {
        Self::start_state(server_extra, session_extra, extra, prepare, |_| {}).await
    }

    /// The base config, with `state` given the gateway's state before it serves (for what
    /// the config does not set, such as `Gateway::ids`).
    pub async fn start_with_state(state: impl Fn(&mut portcullis::server::Gateway)) -> TestGateway {
        Self::start_state("", "", "", |_| {}, state).await
    }

    async fn start_state(
        server_extra: &str,
        session_extra: &str,
        extra: &str,
        prepare: impl FnOnce(&Path),
        state: impl Fn(&mut portcullis::server::Gateway),
    ) -> TestGateway {
        let upstream = TestUpstream::start().await;
        let dir = TempDir::new("gw");
        prepare(dir.path());
        let config_path = dir.path().join("portcullis.toml");
        let clock = Clock::manual(1_800_000_000);
        let running = start_gateway_with(
            &config_path,
            clock.clone(),
            |port| base_config_full(port, upstream.addr, server_extra, session_extra, extra),
            &state,
        )
        .await;
        let addr = running.addr;
        TestGateway {
            dir,
            upstream,
            running: Some(running),
            addr,
            clock,
            config_path,
        }
    }

    /// The base config with `upstream.url` on `upstream`, a server the test started itself
    /// (the test upstream still runs, unused).
    pub async fn in_front_of(upstream: SocketAddr) -> TestGateway {
        let unused = TestUpstream::start().await;
        let dir = TempDir::new("gw");
        let config_path = dir.path().join("portcullis.toml");
        let clock = Clock::manual(1_800_000_000);
        let running = start_gateway(&config_path, clock.clone(), |port| {
            base_config(port, upstream, "")
        })
        .await;
        let addr = running.addr;
        TestGateway {
            dir,
            upstream: unused,
            running: Some(running),
            addr,
            clock,
            config_path,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub fn gateway(&self) -> &Arc<portcullis::server::Gateway> {
        &self.running.as_ref().unwrap().gateway
    }

    /// Creates a session directly in the store (what a completed login does) and returns the
    /// Cookie header value that carries it.
    pub async fn session_for(&self, user: &str, roles: &[&str]) -> (String, SessionId) {
        let gw = self.gateway();
        let token = new_token().unwrap();
        let id = SessionId::of(&token);
        let identity = Identity {
            user: user.into(),
            principal: format!("native:{user}"),
            email: Some(format!("{user}@example.com")),
            groups: vec!["agents".into()],
            roles: roles.iter().map(|r| r.to_string()).collect(),
            method: AuthMethod::Native,
            mfa: MfaUsed::Totp,
        };
        let s = Session::new(
            id.clone(),
            identity,
            self.clock.now(),
            gw.config.session.max_lifetime,
            gw.config.session.idle_timeout,
            Some("127.0.0.1".into()),
            None,
        )
        .unwrap();
        gw.store.insert(s).await.unwrap();
        (format!("{}={}", gw.cookies.session, token.expose()), id)
    }

    /// (outcome, reason) of every audit event `kind` in the user store, oldest first.
    pub async fn audit(&self, kind: &str) -> Vec<(String, String)> {
        use portcullis::storage::UserStore;
        let acc = self.gateway().accounts.as_ref().unwrap();
        acc.users
            .query_audit(&portcullis::storage::AuditQuery {
                since: None,
                user: None,
                kind: Some(kind.into()),
                after_id: None,
                limit: 100,
                newest_first: false,
            })
            .await
            .unwrap()
            .into_iter()
            .map(|e| (e.event.outcome, e.event.reason.unwrap_or_default()))
            .collect()
    }

    pub async fn stop(mut self) {
        if let Some(r) = self.running.take() {
            r.shutdown().await;
        }
    }
}

/// A response, fully read.
pub struct Resp {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Resp {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
    /// The headers the test upstream says it received, as (lower-case name, value) pairs.
    pub fn upstream_headers(&self) -> Vec<(String, String)> {
        let v = self.json();
        v["headers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| {
                (
                    p[0].as_str().unwrap().to_owned(),
                    p[1].as_str().unwrap().to_owned(),
                )
            })
            .collect()
    }
    pub fn upstream_header(&self, name: &str) -> Option<String> {
        self.upstream_headers()
            .into_iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v)
    }
}

/// A plain HTTP/1.1 client that never follows redirects.
pub struct Http {
    client: Client<HttpConnector, Full<Bytes>>,
    /// How long one request may take before the test fails.
    timeout: Duration,
}

impl Default for Http {
    fn default() -> Self {
        Self::new()
    }
}

impl Http {
    pub fn new() -> Http {
        Self::with_timeout(Duration::from_secs(30))
    }

    /// A client whose requests may take up to `timeout` (starting a browser, say).
    pub fn with_timeout(timeout: Duration) -> Http {
        Http {
            client: Client::builder(TokioExecutor::new()).build(HttpConnector::new()),
            timeout,
        }
    }

    pub async fn send(
        &self,
        method: Method,
        url: &str,
        headers: &[(&str, &str)],
        body: Vec<u8>,
    ) -> Resp {
        let mut req = Request::builder().method(method).uri(url);
        for (n, v) in headers {
            req = req.header(
                HeaderName::from_bytes(n.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        let req = req.body(Full::new(Bytes::from(body))).unwrap();
        let resp = tokio::time::timeout(self.timeout, self.client.request(req))
            .await
            .expect("request timed out")
            .expect("request failed");
        let (parts, body) = resp.into_parts();
        let body = body.collect().await.unwrap().to_bytes();
        Resp {
            status: parts.status,
            headers: parts.headers,
            body,
        }
    }

    pub async fn get(&self, url: &str, headers: &[(&str, &str)]) -> Resp {
        self.send(Method::GET, url, headers, Vec::new()).await
    }

    pub async fn post_form(
        &self,
        url: &str,
        headers: &[(&str, &str)],
        form: &[(&str, &str)],
    ) -> Resp {
        let body = form
            .iter()
            .map(|(k, v)| format!("{}={}", enc(k), enc(v)))
            .collect::<Vec<_>>()
            .join("&");
        let mut h: Vec<(&str, &str)> = headers.to_vec();
        h.push(("content-type", "application/x-www-form-urlencoded"));
        self.send(Method::POST, url, &h, body.into_bytes()).await
    }
}

pub fn enc(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
}

/// Lower-case hex SHA-256 of `s`: what `[admin] tokens` holds for a bearer token.
pub fn sha256_hex(s: &str) -> String {
    ring::digest::digest(&ring::digest::SHA256, s.as_bytes())
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Resident set size of a process in KiB, from /proc.
pub fn rss_kib(pid: u32) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    s.lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// The path of the shared test data (`../shared/data` beside the repository).
pub fn shared_data(file: &str) -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for cand in [
        root.join("../shared/data").join(file),
        root.join("tests/data").join(file),
    ] {
        if cand.exists() {
            return cand;
        }
    }
    panic!("test data {file} not found beside the repository (../shared/data) or in tests/data");
}
