//! Paths as the upstream sees them (issue 14, DESIGN.md §6), against real servers: Debian's
//! Tomcat 10 and Jetty 9 serving files, nginx serving files and nginx `proxy_pass` in front of
//! Tomcat, an Express app and a Flask app. Each test starts its server once (the JVMs are slow
//! to start), on a loopback port with its own temporary base directory and config, then:
//!
//! 1. calibrates: sends a list of tricky paths straight to the server and checks that the model
//!    in `portcullis::proxy::path::models` resolves each one as the server did, so the property
//!    test over those models speaks for the real server;
//! 2. puts the gateway in front (`upstream.url` on the server) and sends the attack paths, without
//!    a session and with an agent's, through the fast lane (a plain GET) and the general path
//!    (`Content-Length: 0`): every one is refused with 400, and no response ever carries content
//!    of a route the requester may not reach;
//! 3. keeps positive controls: a public page, an agent page and an admin page with their sessions.
//!
//! Every file or app answer is one line `resolved=<path>` naming the path the server acted on.
//! A missing server fails the test in CI (`CI` set) and is reported as skipped elsewhere;
//! `scripts/setup-system --tests` installs them.

use crate::support::{loopback_listener, require, TempDir, TestGateway};
use portcullis::proxy::path::models;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The files of the static servers; `/` is the index page.
const FILES: &[&str] = &[
    "/",
    "/hc/page",
    "/hc/admin/secret",
    "/agent/tickets",
    "/agent/x",
    "/admin/secret",
    "/admin/users",
    "/admin/x",
];

/// The app servers' routers, mounted where the gateway's routes are.
const MOUNTS: &[&str] = &["/hc", "/agent", "/admin"];

/// Paths on which every model must agree with its server: dot segments with parameters in
/// every spelling, `%3B`, encoded dots, slashes and backslashes, `%u` escapes, overlong UTF-8,
/// double encoding, trailing dots, empty segments with parameters, case.
const TRICKY: &[&str] = &[
    "/hc/page",
    "/hc/..;/admin/secret",
    "/hc/%2e%2e;/admin/secret",
    "/hc/%2E%2e;x=1/admin/secret",
    "/hc/..;x=1/agent/tickets",
    "/hc/..;a;b/admin/secret",
    "/hc/.;/page",
    "/hc/%2e;/page",
    "/hc/x/..;/page",
    "/hc/x/..;/../admin/secret",
    "/hc/..;/..;/admin/secret",
    "/hc/..;",
    "/hc/..;/",
    "/hc/.%2e;/admin/secret",
    "/hc/...;/admin/secret",
    "/hc/%2e%2e/admin/secret",
    "/hc/%2E%2E/admin/secret",
    "/hc/%2e./admin/secret",
    "/hc/..%2e/admin/secret",
    "/hc/%2E%2E",
    "/hc/..%3b/admin/secret",
    "/hc/..%3B/admin/secret",
    "/hc/.%2e%3B/admin/secret",
    "/hc/%3B/admin/secret",
    "/hc;/../admin/secret",
    "/hc;x/page",
    "/hc%3Bx/page",
    "/admin;x/secret",
    "/admin;/secret",
    "/admin%3Bx/secret",
    "/admin/secret;x",
    "/admin/secret;",
    "/admin/secret%3bx",
    "/admin/secret.",
    "/admin./secret",
    "/admin%2e/secret",
    "/admin/secret...",
    "/admin/./secret",
    "/admin//secret",
    "//admin/secret",
    "/;x/admin/secret",
    "/hc/;x/../admin/secret",
    "/hc/;/../admin/secret",
    "/hc/;x/admin/secret",
    "/hc//../admin/secret",
    "/a;b;c/../admin/secret",
    "/hc/%252e%252e/admin/secret",
    "/hc/%252e%252e;/admin/secret",
    "/hc/%25%32%65/admin/secret",
    "/hc/..../admin/secret",
    "/hc\\..\\admin\\secret",
    "/hc/%5c../admin/secret",
    "/hc/..%5cadmin/secret",
    "/hc/..%2fadmin/secret",
    "/hc%2f..%2fadmin/secret",
    "/hc/x/..%2f..%2fadmin/secret",
    "/hc/%u002e%u002e/admin/secret",
    "/hc/%c0%ae%c0%ae/admin/secret",
    "/hc/%ff",
    "/hc/%c3%a9",
    "/hc/%zz",
    "/hc/page%00",
    "/hc/page%2500",
    "/hc/../../admin/secret",
    "/../admin/secret",
    "/%2e%2e/admin/secret",
    "/ADMIN/secret",
    "/Admin/secret",
    "/admin/SECRET",
    "/HC/page",
    "/%61dmin/secret",
    "/hc/page;x/",
    "/agent/tickets;jsessionid=1",
    "/agent/;jsessionid=1",
];

/// Sent without a session: each is routed to the public `/hc` by some reading and names a
/// protected prefix in another. All must get 400.
const PUBLIC_ATTACKS: &[&str] = &[
    "/hc/..;/admin/secret",
    "/hc/%2e%2e;/admin/secret",
    "/hc/%2E%2e;x=1/admin/secret",
    "/hc/..;x=1/agent/tickets",
    "/hc/.%2e;/admin/secret",
    "/hc/..;a;b/admin/secret",
    "/hc/..%3B/admin/secret",
    "/hc/..%3b/admin/secret",
    "/hc/%2e%2e%3Bx/admin/secret",
    "/hc/..;/..;/admin/secret",
    "/hc/..;",
    "/hc/.;/page",
    "/hc;x/page",
    "/hc;/admin/secret",
    "/hc%3B/admin/secret",
    "/HC/..;/admin/secret",
    "/HC/page",
    "/;x/admin/secret",
    "/%3B/admin/secret",
];

/// Sent with an agent's session (it may reach /hc, /agent and /): each names /admin for some
/// server. All must get 400.
const AGENT_ATTACKS: &[&str] = &[
    "/agent/..;/admin/users",
    "/agent/%2e%2e;/admin/users",
    "/agent/..;x=1/admin/users",
    "/agent/..%3B/admin/users",
    "/agent/.%2E%3b/admin/users",
    "/agent;x/tickets",
    "/Agent/..;/admin/users",
    "/;/admin/users",
    "/;x/admin/users",
    "/ADMIN/users",
    "/Admin;x/users",
    "/admin%3Bx/users",
    "/admin;x/users",
];

/// Sent with and without a session: no status is required, only that no content of a route
/// the requester may not reach comes back (dot segments the gateway resolves itself, double
/// encoding, parameters on named segments, refused escapes).
const OTHER: &[&str] = &[
    "/hc/x/..;/../page",
    "/hc/%252e%252e/admin/secret",
    "/hc/%252e%252e;/admin/secret",
    "/hc/...;/admin/secret",
    "/hc/page;x",
    "/hc/;jsessionid=1",
    "/hc/%u002e%u002e/admin/secret",
    "/hc/..%2fadmin/secret",
    "/hc/%c0%ae%c0%ae/admin/secret",
    "/hc/../admin/secret",
    "/agent/tickets;jsessionid=1",
    "/agent/x/..;/../../admin/users",
];

#[derive(Clone, Copy, Debug, PartialEq)]
enum Kind {
    Tomcat,
    Jetty,
    Nginx,
    NginxToTomcat,
    Express,
    Flask,
}

impl Kind {
    /// What the model says the server acts on.
    fn model(self, path: &str) -> Option<String> {
        match self {
            Kind::Tomcat => models::tomcat(path),
            Kind::Jetty => models::jetty(path),
            Kind::Nginx => models::nginx(path),
            Kind::NginxToTomcat => models::nginx_proxy_to_tomcat(path),
            Kind::Express => models::express(path, MOUNTS),
            Kind::Flask => models::flask(path),
        }
    }

    /// Static files (a path that is no file has no content) or an app (every path answers).
    fn serves_files(self) -> bool {
        !matches!(self, Kind::Express | Kind::Flask)
    }
}

/// A server process this test started, killed (by its own handle) when dropped.
struct Server {
    kind: Kind,
    addr: SocketAddr,
    child: Child,
    log: PathBuf,
    _dir: TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Whether `program args…` runs and exits 0.
fn runs(program: &str, args: &[&str], env: &[(&str, &str)]) -> bool {
    Command::new(program)
        .args(args)
        .envs(env.iter().copied())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

const TOMCAT_HOME: &str = "/usr/share/tomcat10";
const JETTY_HOME: &str = "/usr/share/jetty9";
const NGINX: &str = "/usr/sbin/nginx";
const PYTHON: &str = "/usr/bin/python3";
const NODE_PATH: &str = "/usr/share/nodejs";

/// Whether the server is installed; if not, fails in CI and says it skipped elsewhere.
fn available(kind: Kind) -> bool {
    let (ok, what) = match kind {
        Kind::Tomcat => (
            runs("java", &["-version"], &[])
                && Path::new(TOMCAT_HOME).join("bin/bootstrap.jar").exists(),
            "Tomcat (tomcat10)",
        ),
        Kind::Jetty => (
            runs("java", &["-version"], &[]) && Path::new(JETTY_HOME).join("start.jar").exists(),
            "Jetty (jetty9)",
        ),
        Kind::Nginx | Kind::NginxToTomcat => (Path::new(NGINX).exists(), "nginx"),
        Kind::Express => (
            runs(
                "node",
                &["-e", "require('express')"],
                &[("NODE_PATH", NODE_PATH)],
            ),
            "Express (node-express)",
        ),
        Kind::Flask => (
            runs(PYTHON, &["-c", "import flask"], &[]),
            "Flask (python3-flask)",
        ),
    };
    let found = if ok {
        Ok(())
    } else {
        Err("not installed (scripts/setup-system --tests installs it)".to_owned())
    };
    require(what, found).is_some()
}

fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

/// The static files under `root`, each naming its own path.
fn write_files(root: &Path) {
    for f in FILES {
        let file = if *f == "/" {
            root.join("index.html")
        } else {
            root.join(f.trim_start_matches('/'))
        };
        write(&file, &format!("resolved={f}\n"));
    }
}

const EXPRESS_APP: &str = r#"
const express = require('express');
const app = express();
const say = (res, path) => res.type('text/plain').send(`resolved=${path}\n`);
for (const mount of ['/hc', '/agent', '/admin']) {
  const r = express.Router();
  // The mount as written plus the rest of the raw path Express matched it on.
  r.use((req, res) => say(res, mount + (req.originalUrl.split('?')[0].slice(mount.length))));
  app.use(mount, r);
}
app.use((req, res) => say(res, req.path));
app.listen(Number(process.argv[2]), '127.0.0.1');
"#;

const FLASK_APP: &str = r#"
import sys
from flask import Flask, request
app = Flask(__name__)
@app.route("/", defaults={"rest": ""})
@app.route("/<path:rest>")
def echo(rest):
    return "resolved=" + request.path + "\n", 200, {"content-type": "text/plain; charset=utf-8"}
app.run(host="127.0.0.1", port=int(sys.argv[1]))
"#;

/// Writes the base directory of `kind` for `port` and returns the command that serves it.
fn prepare(kind: Kind, dir: &Path, port: u16, backend: Option<SocketAddr>) -> Command {
    let d = dir.display();
    match kind {
        Kind::Tomcat => {
            write_files(&dir.join("webapps/ROOT"));
            for sub in ["logs", "temp", "work"] {
                std::fs::create_dir_all(dir.join(sub)).unwrap();
            }
            // The container's defaults (the file servlet, MIME types) from the package.
            std::fs::create_dir_all(dir.join("conf")).unwrap();
            std::fs::copy(
                Path::new(TOMCAT_HOME).join("etc/web.xml"),
                dir.join("conf/web.xml"),
            )
            .unwrap();
            write(
                &dir.join("conf/server.xml"),
                &format!(
                    r#"<?xml version="1.0" encoding="UTF-8"?>
<Server port="-1" shutdown="SHUTDOWN">
  <Service name="Catalina">
    <Connector port="{port}" address="127.0.0.1" protocol="HTTP/1.1" connectionTimeout="20000"/>
    <Engine name="Catalina" defaultHost="localhost">
      <Host name="localhost" appBase="webapps" unpackWARs="false" autoDeploy="false"/>
    </Engine>
  </Service>
</Server>
"#
                ),
            );
            let mut c = Command::new("java");
            c.args([
                "-Xmx192m",
                "-XX:TieredStopAtLevel=1",
                &format!("-Djava.io.tmpdir={d}/temp"),
                &format!("-Dcatalina.home={TOMCAT_HOME}"),
                &format!("-Dcatalina.base={d}"),
                "-cp",
                &format!("{TOMCAT_HOME}/bin/bootstrap.jar:{TOMCAT_HOME}/bin/tomcat-juli.jar"),
                "org.apache.catalina.startup.Bootstrap",
                "start",
            ]);
            c
        }
        Kind::Jetty => {
            write_files(&dir.join("webapps/ROOT"));
            std::fs::create_dir_all(dir.join("tmp")).unwrap();
            let mut c = Command::new("java");
            c.args([
                "-Xmx192m",
                "-XX:TieredStopAtLevel=1",
                &format!("-Djava.io.tmpdir={d}/tmp"),
                "-jar",
                &format!("{JETTY_HOME}/start.jar"),
                &format!("jetty.home={JETTY_HOME}"),
                &format!("jetty.base={d}"),
                "--module=http,deploy",
                "jetty.http.host=127.0.0.1",
                &format!("jetty.http.port={port}"),
            ]);
            c
        }
        Kind::Nginx | Kind::NginxToTomcat => {
            std::fs::create_dir_all(dir.join("tmp")).unwrap();
            let serve = match backend {
                Some(b) => format!("location / {{ proxy_pass http://{b}/; }}"),
                None => {
                    write_files(&dir.join("www"));
                    format!("root {d}/www;")
                }
            };
            write(
                &dir.join("nginx.conf"),
                &format!(
                    r#"master_process off;
error_log {d}/error.log;
pid {d}/nginx.pid;
events {{ worker_connections 64; }}
http {{
  access_log off;
  default_type text/plain;
  client_body_temp_path {d}/tmp/body;
  proxy_temp_path {d}/tmp/proxy;
  fastcgi_temp_path {d}/tmp/fastcgi;
  uwsgi_temp_path {d}/tmp/uwsgi;
  scgi_temp_path {d}/tmp/scgi;
  server {{
    listen 127.0.0.1:{port};
    {serve}
  }}
}}
"#
                ),
            );
            let mut c = Command::new(NGINX);
            c.args([
                "-p",
                &format!("{d}/"),
                "-e",
                &format!("{d}/error.log"),
                "-c",
                &format!("{d}/nginx.conf"),
                "-g",
                "daemon off;",
            ]);
            c
        }
        Kind::Express => {
            write(&dir.join("app.js"), EXPRESS_APP);
            let mut c = Command::new("node");
            c.env("NODE_PATH", NODE_PATH)
                .arg(dir.join("app.js"))
                .arg(port.to_string());
            c
        }
        Kind::Flask => {
            write(&dir.join("app.py"), FLASK_APP);
            let mut c = Command::new(PYTHON);
            c.arg(dir.join("app.py")).arg(port.to_string());
            c
        }
    }
}

/// Starts `kind` on a free loopback port and waits until it serves `/hc/page`; a server that
/// exits first or cannot bind (the port was taken in between) is started again on another port.
async fn start(kind: Kind, backend: Option<SocketAddr>) -> Server {
    for _ in 0..3 {
        let dir = TempDir::new(&format!("{kind:?}").to_lowercase());
        // Probed free, then released for the server to bind: a lost race is retried below.
        let port = loopback_listener().1;
        let log = dir.path().join("server.log");
        let out = std::fs::File::create(&log).unwrap();
        let mut cmd = prepare(kind, dir.path(), port, backend);
        let child = cmd
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .unwrap_or_else(|e| panic!("{kind:?} did not start: {e}"));
        let mut server = Server {
            kind,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            child,
            log,
            _dir: dir,
        };
        // JVMs on a loaded two-core machine take a while.
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            // Some servers keep running without their listener (Tomcat logs and goes on).
            let lost_port = server
                .log_text()
                .to_lowercase()
                .contains("address already in use");
            if lost_port || server.child.try_wait().unwrap().is_some() {
                break;
            }
            if let Some((200, Some(m))) = try_get(server.addr, "/hc/page", &[]).await {
                if m == "/hc/page" {
                    return server;
                }
            }
            assert!(
                Instant::now() < deadline,
                "{kind:?} did not come up:\n{}",
                server.log_tail()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        eprintln!(
            "{kind:?} did not get its port, retrying:\n{}",
            server.log_tail()
        );
    }
    panic!("{kind:?} did not start on three ports");
}

impl Server {
    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn log_tail(&self) -> String {
        let text = self.log_text();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }
}

/// One raw GET (the target exactly as given) on a new connection: the status and the
/// `resolved=` line of the body, if any. `None` if the connection failed.
async fn try_get(
    addr: SocketAddr,
    target: &str,
    headers: &[(&str, &str)],
) -> Option<(u16, Option<String>)> {
    let mut s = TcpStream::connect(addr).await.ok()?;
    let mut req = format!("GET {target} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n");
    for (n, v) in headers {
        req.push_str(&format!("{n}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).await.ok()?;
    let mut buf = Vec::new();
    tokio::time::timeout(Duration::from_secs(20), s.read_to_end(&mut buf))
        .await
        .ok()?
        .ok()?;
    let text = String::from_utf8_lossy(&buf);
    let status = text.get(9..12)?.parse().ok()?;
    let (_, body) = text.split_once("\r\n\r\n").unwrap_or_default();
    let marker = body
        .lines()
        .find_map(|l| l.strip_prefix("resolved="))
        .map(str::to_owned);
    Some((status, marker))
}

async fn get(addr: SocketAddr, target: &str, headers: &[(&str, &str)]) -> (u16, Option<String>) {
    try_get(addr, target, headers)
        .await
        .unwrap_or_else(|| panic!("no response from {addr} for {target}"))
}

/// The route of a path the server acted on: the longest of the gateway's prefixes leading it.
fn route_of(path: &str) -> &'static str {
    ["/hc", "/agent", "/admin"]
        .into_iter()
        .filter(|p| {
            path.strip_prefix(p)
                .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
        })
        .max_by_key(|p| p.len())
        .unwrap_or("/")
}

/// Step 1: the model resolves every tricky path as the server does.
async fn calibrate(server: &Server) {
    let mut wrong = Vec::new();
    for path in TRICKY {
        let (status, marker) = get(server.addr, path, &[]).await;
        let model = server.kind.model(path);
        let agrees = match &model {
            None => status == 400,
            Some(p) if server.kind.serves_files() && !FILES.contains(&p.as_str()) => {
                status != 400 && marker.is_none()
            }
            Some(p) => status == 200 && marker.as_deref() == Some(p.as_str()),
        };
        if !agrees {
            wrong.push(format!(
                "{path}: server {status} {marker:?}, model {model:?}"
            ));
        }
    }
    assert!(
        wrong.is_empty(),
        "the {:?} model disagrees with the server:\n{}",
        server.kind,
        wrong.join("\n")
    );
}

/// One request through the gateway by one lane; asserts that any content it returns belongs to
/// a route in `reachable`, and returns the status.
async fn through(
    gw: &TestGateway,
    kind: Kind,
    path: &str,
    cookie: Option<&str>,
    general: bool,
    reachable: &[&str],
) -> (u16, Option<String>) {
    let mut headers = vec![("accept", "application/json")];
    if let Some(c) = cookie {
        headers.push(("cookie", c));
    }
    if general {
        headers.push(("content-length", "0"));
    }
    let (status, marker) = get(gw.addr, path, &headers).await;
    if let Some(m) = &marker {
        assert!(
            reachable.contains(&route_of(m)),
            "{kind:?}: {path} (general path: {general}, session: {}) reached {m}, a route of {}",
            cookie.is_some(),
            route_of(m)
        );
    }
    (status, marker)
}

/// Steps 2 and 3 with the gateway in front of `server`.
async fn no_prefix_is_escaped_through_the_gateway(server: &Server) {
    let kind = server.kind;
    let gw = TestGateway::in_front_of(server.addr).await;
    let (agent, _) = gw.session_for("carol", &["agent"]).await;
    let (admin, _) = gw.session_for("root", &["admin"]).await;
    let handoffs = || gw.gateway().metrics.handoffs();
    let public = &["/hc"][..];
    let agent_may = &["/hc", "/agent", "/"][..];
    let everything = &["/hc", "/agent", "/admin", "/"][..];

    // Positive controls, by both lanes: the plain GET stays in the fast lane.
    for general in [false, true] {
        let before = handoffs();
        let r = through(&gw, kind, "/hc/page", None, general, public).await;
        assert_eq!(r, (200, Some("/hc/page".into())), "{kind:?} public page");
        let r = through(
            &gw,
            kind,
            "/agent/tickets",
            Some(&agent),
            general,
            agent_may,
        )
        .await;
        assert_eq!(
            r,
            (200, Some("/agent/tickets".into())),
            "{kind:?} agent page"
        );
        let r = through(
            &gw,
            kind,
            "/admin/secret",
            Some(&admin),
            general,
            everything,
        )
        .await;
        assert_eq!(
            r,
            (200, Some("/admin/secret".into())),
            "{kind:?} admin page"
        );
        assert_eq!(handoffs() - before, if general { 3 } else { 0 });
    }

    for general in [false, true] {
        for (attacks, cookie, reachable) in [
            (PUBLIC_ATTACKS, None, public),
            (PUBLIC_ATTACKS, Some(agent.as_str()), agent_may),
            (AGENT_ATTACKS, Some(agent.as_str()), agent_may),
        ] {
            for path in attacks {
                let before = handoffs();
                let (status, _) = through(&gw, kind, path, cookie, general, reachable).await;
                assert_eq!(status, 400, "{kind:?}: {path} (general path: {general})");
                // The fast lane hands it over, and the general path refuses it.
                assert_eq!(handoffs() - before, 1, "{path} was handed over");
            }
        }
        for path in OTHER {
            through(&gw, kind, path, None, general, public).await;
            through(&gw, kind, path, Some(&agent), general, agent_may).await;
        }
    }
    gw.stop().await;
}

async fn run(kind: Kind) {
    if !available(kind) {
        return;
    }
    let server = start(kind, None).await;
    calibrate(&server).await;
    no_prefix_is_escaped_through_the_gateway(&server).await;
}

#[tokio::test]
async fn path_parameters_cannot_escape_a_prefix_on_tomcat_or_nginx_in_front_of_it() {
    if !available(Kind::Tomcat) {
        return;
    }
    let tomcat = start(Kind::Tomcat, None).await;
    calibrate(&tomcat).await;
    no_prefix_is_escaped_through_the_gateway(&tomcat).await;
    // A decoding proxy between the gateway and Tomcat turns `%3B` into `;`.
    if available(Kind::NginxToTomcat) {
        let proxy = start(Kind::NginxToTomcat, Some(tomcat.addr)).await;
        calibrate(&proxy).await;
        no_prefix_is_escaped_through_the_gateway(&proxy).await;
    }
}

#[tokio::test]
async fn path_parameters_cannot_escape_a_prefix_on_jetty() {
    run(Kind::Jetty).await;
}

#[tokio::test]
async fn path_parameters_cannot_escape_a_prefix_on_nginx() {
    run(Kind::Nginx).await;
}

#[tokio::test]
async fn path_parameters_cannot_escape_a_prefix_on_an_express_app() {
    run(Kind::Express).await;
}

#[tokio::test]
async fn path_parameters_cannot_escape_a_prefix_on_a_flask_app() {
    run(Kind::Flask).await;
}
