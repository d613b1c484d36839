//! The listener sections: `[server]` (public URL, TLS, HSTS, trusted proxies, the reserved
//! prefix, limits and timeouts, the assertion signing key) and `[admin]` (its own address,
//! bearer tokens as SHA-256 hashes). `[upstream]` is `upstream.rs`.

use super::ctx::{i, is_clean_path, k, Ctx};
use crate::config::ipnet::IpNet;
use crate::config::locate::Seg;
use crate::config::model::{
    AdminConfig, AdminTokenHash, LoginTarget, Scope, Scopes, ServerConfig, TlsFiles,
};
use crate::config::raw::{RawAdmin, RawServer};
use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// What `[server]` yields before the rest of the file is read: `default_login` needs the
/// `[native]` section and the IdPs, and `listen` may have failed to parse.
pub(super) struct Server {
    pub(super) listen: Option<SocketAddr>,
    public_origin: String,
    public_host: String,
    https: bool,
    tls: Option<TlsFiles>,
    pub(super) trusted_proxies: Vec<IpNet>,
    workers: usize,
    pub(super) prefix: String,
    max_header_bytes: usize,
    max_headers: usize,
    signing_key: PathBuf,
    hsts: Option<String>,
}

/// Reads `[server]` (except `default_login`, which [`Server::finish`] takes resolved).
pub(super) fn server(cx: &mut Ctx<'_>, s: &RawServer) -> Server {
    let srv = |key: &str| vec![k("server"), k(key)];

    let listen = cx.socket(&srv("listen"), &s.listen);

    // public_url: absolute http(s) origin, no path beyond "/".
    let (public_origin, public_host, https) = match s.public_url.split_once("://") {
        Some((scheme @ ("http" | "https"), rest)) => {
            let host = rest.trim_end_matches('/');
            if host.is_empty()
                || host.contains('/')
                || host.contains('?')
                || host.contains('#')
                || host.contains('@')
            {
                cx.err(&srv("public_url"), "must be an origin like \"https://helpdesk.example.com\" (no path, query or user info)");
            }
            (
                format!("{scheme}://{host}"),
                host.to_owned(),
                scheme == "https",
            )
        }
        _ => {
            cx.err(&srv("public_url"), format!("{:?} is not an absolute http(s) URL; write e.g. \"https://helpdesk.example.com\"", s.public_url));
            (String::new(), String::new(), false)
        }
    };

    let tls = s.tls.as_ref().map(|t| cx.tls(&srv("tls"), t));

    let hsts = match s.hsts.as_deref() {
        None => https.then(|| DEFAULT_HSTS.to_owned()),
        Some("off") => None,
        // Browsers ignore the header over plain http (RFC 6797 §8.1): a value here would be a
        // setting that silently does nothing.
        Some(_) if !https => {
            cx.err(&srv("hsts"), "Strict-Transport-Security is sent only when public_url is https; remove this key (or write \"off\")");
            None
        }
        Some(v) => match check_hsts(v) {
            Ok(()) => Some(v.to_owned()),
            Err(why) => {
                cx.err(&srv("hsts"), format!("{v:?} is not a Strict-Transport-Security value ({why}); write e.g. \"max-age=31536000; includeSubDomains\", or \"off\""));
                None
            }
        },
    };

    let mut trusted_proxies = Vec::new();
    for (n, p) in s.trusted_proxies.iter().enumerate() {
        match IpNet::parse(p) {
            Some(net) => trusted_proxies.push(net),
            None => cx.err(
                &[k("server"), k("trusted_proxies"), i(n)],
                format!("{p:?} is not an IP address or CIDR network"),
            ),
        }
    }

    let prefix = s
        .prefix
        .clone()
        .unwrap_or_else(|| "/_portcullis".to_owned());
    if !is_clean_path(&prefix) || prefix == "/" || prefix.ends_with('/') {
        cx.err(
            &srv("prefix"),
            "must be a clean absolute path such as \"/_portcullis\"",
        );
    }
    let workers = match s.workers {
        Some(0) => {
            cx.err(&srv("workers"), "must be at least 1");
            1
        }
        Some(n) => n,
        None => std::thread::available_parallelism().map_or(1, |n| n.get()),
    };
    let max_header_bytes = s.max_header_bytes.unwrap_or(16 * 1024);
    if !(1024..=1024 * 1024).contains(&max_header_bytes) {
        cx.err(&srv("max_header_bytes"), "must be between 1024 and 1048576");
    }
    let max_headers = s.max_headers.unwrap_or(100);
    if !(8..=1000).contains(&max_headers) {
        cx.err(&srv("max_headers"), "must be between 8 and 1000");
    }
    let signing_key = cx.path(
        s.signing_key
            .as_deref()
            .unwrap_or("certs/assertion-signing.p8"),
    );
    if !cx.suppressed(&srv("signing_key")) {
        super::files::signing_key(cx, &srv("signing_key"), &signing_key);
    }
    Server {
        listen,
        public_origin,
        public_host,
        https,
        tls,
        trusted_proxies,
        workers,
        prefix,
        max_header_bytes,
        max_headers,
        signing_key,
        hsts,
    }
}

impl Server {
    /// The `[server]` settings, with the parsed `listen` and the resolved `default_login`.
    pub(super) fn finish(
        self,
        s: &RawServer,
        listen: SocketAddr,
        default_login: Option<LoginTarget>,
    ) -> ServerConfig {
        ServerConfig {
            listen,
            public_origin: self.public_origin,
            public_host: self.public_host,
            https: self.https,
            tls: self.tls,
            trusted_proxies: self.trusted_proxies,
            default_login,
            workers: self.workers,
            access_log: s.access_log.unwrap_or(true),
            prefix: self.prefix,
            max_header_bytes: self.max_header_bytes,
            max_headers: self.max_headers,
            header_timeout: s.header_timeout.map_or(Duration::from_secs(10), |d| d.0),
            max_body_bytes: s.max_body_bytes.unwrap_or(64 * 1024),
            shutdown_grace: s.shutdown_grace.map_or(Duration::from_secs(30), |d| d.0),
            max_connections: s.max_connections.unwrap_or(25_000),
            max_connections_per_ip: s.max_connections_per_ip.unwrap_or(0),
            body_timeout: s.body_timeout.map_or(Duration::from_secs(30), |d| d.0),
            send_timeout: s.send_timeout.map_or(Duration::from_secs(60), |d| d.0),
            signing_key: self.signing_key,
            hsts: self.hsts,
        }
    }
}

/// The `[server]` timeouts that must be above zero (checked after the other sections, where
/// the validator always checked them: errors on one line keep their order).
pub(super) fn check_timeouts(cx: &mut Ctx<'_>, s: &RawServer) {
    for (key, d) in [
        ("header_timeout", s.header_timeout),
        ("body_timeout", s.body_timeout),
        ("send_timeout", s.send_timeout),
    ] {
        if d.is_some_and(|d| d.0.is_zero()) {
            cx.err(&[k("server"), k(key)], "must be above zero");
        }
    }
}

/// `[admin]`: its own address (loopback by default, never overlapping `server.listen`), bearer
/// tokens as SHA-256 hashes.
pub(super) fn admin(
    cx: &mut Ctx<'_>,
    raw: Option<&RawAdmin>,
    listen: Option<SocketAddr>,
) -> Option<AdminConfig> {
    match raw {
        Some(a) => {
            let addr = cx.socket(
                &[k("admin"), k("listen")],
                a.listen.as_deref().unwrap_or(DEFAULT_ADMIN_LISTEN),
            );
            if let (Some(a), Some(l)) = (addr, listen) {
                if listeners_overlap(a, l) {
                    cx.err(
                        &[k("admin"), k("listen")],
                        format!(
                            "overlaps server.listen ({l}); the admin API needs its own address"
                        ),
                    );
                }
            }
            let mut tokens = Vec::new();
            let mut names = BTreeSet::new();
            for (n, t) in a.tokens.iter().enumerate() {
                let p = [k("admin"), k("tokens"), i(n)];
                if t.name.is_empty() || !names.insert(t.name.clone()) {
                    cx.err(
                        &[&p[..], &[k("name")]].concat(),
                        "token names must be unique and non-empty",
                    );
                }
                let scopes = token_scopes(cx, &p, t.scopes.as_deref());
                match decode_sha256(&t.sha256) {
                    Some(sha256) => tokens.push(AdminTokenHash { name: t.name.clone(), sha256, scopes }),
                    None => cx.err(
                        &[&p[..], &[k("sha256")]].concat(),
                        "must be 64 hex characters: the SHA-256 of the token (`portcullis admin-token NAME` prints one)",
                    ),
                }
            }
            let tls = a.tls.as_ref().map(|t| cx.tls(&[k("admin"), k("tls")], t));
            addr.map(|listen| AdminConfig {
                listen,
                tokens,
                tls,
            })
        }
        None => None,
    }
}

/// `scopes = ["metrics", "read", "write"]`: absent means all three; an empty list or an
/// unknown name is an error (a token that may do nothing is a typo).
fn token_scopes(cx: &mut Ctx<'_>, token: &[Seg], raw: Option<&[String]>) -> Scopes {
    let Some(list) = raw else {
        return Scopes::all();
    };
    let key = [token, &[k("scopes")]].concat();
    if list.is_empty() {
        cx.err(
            &key,
            "must name at least one scope: metrics, read, write (omit it for all three)",
        );
    }
    let mut scopes = Scopes::default();
    for (n, s) in list.iter().enumerate() {
        match Scope::parse(s) {
            Some(s) => scopes = scopes.with(s),
            None => cx.err(
                &[&key[..], &[i(n)]].concat(),
                format!("unknown scope {s:?}: the scopes are metrics, read, write"),
            ),
        }
    }
    scopes
}

pub(super) fn decode_sha256(s: &str) -> Option<[u8; 32]> {
    let s = s.trim();
    if s.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (n, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(s.get(2 * n..2 * n + 2)?, 16).ok()?;
    }
    Some(out)
}

fn listeners_overlap(a: SocketAddr, b: SocketAddr) -> bool {
    a.port() == b.port()
        && a.port() != 0
        && (a.ip() == b.ip() || a.ip().is_unspecified() || b.ip().is_unspecified())
}

/// `admin.listen` when it is not set: loopback only (DESIGN.md §4), so the admin API is never
/// reachable from the network unless someone says so.
const DEFAULT_ADMIN_LISTEN: &str = "127.0.0.1:9090";

/// `server.hsts` when it is not set and `public_url` is https: one year.
const DEFAULT_HSTS: &str = "max-age=31536000";

/// A `Strict-Transport-Security` value (RFC 6797 §6.1): visible ASCII directives separated by
/// `;`, each named once, `max-age` among them with a number of seconds.
fn check_hsts(v: &str) -> Result<(), &'static str> {
    if v.trim() != v
        || !v
            .bytes()
            .all(|b| b == b' ' || b == b'\t' || b.is_ascii_graphic())
    {
        return Err("only visible ASCII, no leading or trailing space");
    }
    let mut names: Vec<String> = Vec::new();
    let mut max_age = false;
    for d in v.split(';').map(str::trim).filter(|d| !d.is_empty()) {
        let (name, value) = match d.split_once('=') {
            Some((n, val)) => (n.trim(), Some(val.trim())),
            None => (d, None),
        };
        let token = |t: &str| {
            !t.is_empty()
                && t.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
        };
        if !token(name) {
            return Err("a directive name is not a token");
        }
        let name = name.to_ascii_lowercase();
        if names.contains(&name) {
            return Err("a directive appears twice");
        }
        if name == "max-age" {
            let secs = value.map(|x| {
                x.strip_prefix('"')
                    .and_then(|x| x.strip_suffix('"'))
                    .unwrap_or(x)
            });
            if !secs.is_some_and(|x| {
                !x.is_empty() && x.len() <= 18 && x.bytes().all(|b| b.is_ascii_digit())
            }) {
                return Err("max-age needs a number of seconds");
            }
            max_age = true;
        } else if let Some(x) = value {
            let quoted = x.len() >= 2 && x.starts_with('"') && x.ends_with('"');
            if !(token(x) || quoted) {
                return Err("a directive value is neither a token nor quoted");
            }
        }
        names.push(name);
    }
    if max_age {
        Ok(())
    } else {
        Err("max-age is required")
    }
}
