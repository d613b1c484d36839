//! Turns `RawConfig` into `Config`: defaults, `${ENV}` interpolation, relative paths, and the
//! cross-checks (unknown roles/IdPs, duplicates, missing files, overlapping listeners).

use super::locate::{render, Locator, Seg};
use super::raw::{RawConfig, RawIdp, RawTls};
use super::*;
use std::collections::BTreeSet;

/// A network in CIDR form (`10.0.0.0/8`, `::1/128`), or one address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IpNet {
    addr: IpAddr,
    prefix: u8,
}

impl IpNet {
    pub fn parse(s: &str) -> Option<IpNet> {
        let (a, p) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr: IpAddr = a.trim().parse().ok()?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match p {
            Some(p) => p.trim().parse::<u8>().ok().filter(|p| *p <= max)?,
            None => max,
        };
        Some(IpNet { addr, prefix })
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        match (self.addr, ip) {
            (IpAddr::V4(n), IpAddr::V4(a)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(n) & mask == u32::from(a) & mask
            }
            (IpAddr::V6(n), IpAddr::V6(a)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(n) & mask == u128::from(a) & mask
            }
            _ => false,
        }
    }
}

struct Ctx<'a> {
    file: PathBuf,
    base_dir: PathBuf,
    loc: Locator,
    env: &'a dyn Fn(&str) -> Option<String>,
    errors: Vec<ConfigError>,
    warnings: Vec<ConfigError>,
}

fn k(s: &str) -> Seg {
    Seg::Key(s.to_owned())
}

fn i(n: usize) -> Seg {
    Seg::Index(n)
}

impl Ctx<'_> {
    fn err(&mut self, path: &[Seg], message: impl Into<String>) {
        self.errors.push(ConfigError {
            file: self.file.clone(),
            line: self.loc.line_of_path(path),
            key: render(path),
            message: message.into(),
        });
    }

    /// A setting that is valid but weakens security: reported, not refused.
    fn warn(&mut self, path: &[Seg], message: impl Into<String>) {
        self.warnings.push(ConfigError {
            file: self.file.clone(),
            line: self.loc.line_of_path(path),
            key: render(path),
            message: message.into(),
        });
    }

    /// A key that parses but whose feature is not part of this build: refuse, never ignore.
    fn unsupported(&mut self, path: &[Seg], what: &str) {
        self.err(
            path,
            format!("{what} is not available in this build of portcullis yet; remove this setting"),
        );
    }

    /// Resolves `${NAME}` references from the environment.
    fn interpolate(&mut self, path: &[Seg], value: &str) -> Option<String> {
        let mut out = String::with_capacity(value.len());
        let mut rest = value;
        while let Some(start) = rest.find("${") {
            out.push_str(rest.get(..start).unwrap_or_default());
            let after = rest.get(start + 2..).unwrap_or_default();
            let Some(end) = after.find('}') else {
                self.err(path, "unterminated ${...} reference");
                return None;
            };
            let name = after.get(..end).unwrap_or_default();
            if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
                self.err(path, format!("invalid environment variable name {name:?}"));
                return None;
            }
            match (self.env)(name) {
                Some(v) => out.push_str(&v),
                None => {
                    self.err(path, format!("environment variable {name} is not set"));
                    return None;
                }
            }
            rest = after.get(end + 1..).unwrap_or_default();
        }
        out.push_str(rest);
        Some(out)
    }

    fn path(&self, rel: &str) -> PathBuf {
        let p = Path::new(rel);
        if p.is_absolute() {
            p.to_owned()
        } else {
            self.base_dir.join(p)
        }
    }

    fn existing_file(&mut self, path: &[Seg], rel: &str) -> PathBuf {
        let p = self.path(rel);
        if !p.is_file() {
            self.err(path, format!("file {} does not exist", p.display()));
        }
        p
    }

    fn socket(&mut self, path: &[Seg], s: &str) -> Option<SocketAddr> {
        match s.parse::<SocketAddr>() {
            Ok(a) => Some(a),
            Err(_) => {
                self.err(
                    path,
                    format!("{s:?} is not an address like \"0.0.0.0:8443\" or \"[::1]:8443\""),
                );
                None
            }
        }
    }

    fn tls(&mut self, path: &[Seg], t: &RawTls) -> TlsFiles {
        let cert = self.existing_file(&[path, &[k("cert")]].concat(), &t.cert);
        let key = self.existing_file(&[path, &[k("key")]].concat(), &t.key);
        TlsFiles { cert, key }
    }
}

fn decode_sha256(s: &str) -> Option<[u8; 32]> {
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

fn is_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

/// A route prefix or native path: absolute, no dot segments, no `//`, no `\`, `%` or `;`.
fn is_clean_path(p: &str) -> bool {
    p.starts_with('/')
        && !p.contains("//")
        && !p.split('/').any(|s| s == "." || s == "..")
        && p.bytes()
            .all(|b| b.is_ascii_graphic() && !matches!(b, b'\\' | b'%' | b';' | b'?' | b'#'))
}

fn listeners_overlap(a: SocketAddr, b: SocketAddr) -> bool {
    a.port() == b.port()
        && a.port() != 0
        && (a.ip() == b.ip() || a.ip().is_unspecified() || b.ip().is_unspecified())
}

pub(super) fn validate(
    file: &Path,
    text: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Config, ConfigErrors> {
    let loc = Locator::new(text);
    let raw: RawConfig = match toml::from_str(text) {
        Ok(r) => r,
        Err(e) => {
            let (line, key) = match e.span() {
                Some(span) => (
                    Some(loc.line_of(span.start)),
                    render(&loc.path_at(span.start)),
                ),
                None => (None, String::new()),
            };
            return Err(ConfigErrors(vec![ConfigError {
                file: file.to_owned(),
                line,
                key,
                // toml leaves the message empty for some syntax errors (found by fuzzing).
                message: match e.message().trim() {
                    "" => "invalid TOML syntax".to_owned(),
                    m => m.to_owned(),
                },
            }]));
        }
    };
    let base_dir = file
        .parent()
        .map(|p| {
            if p.as_os_str().is_empty() {
                Path::new(".")
            } else {
                p
            }
        })
        .unwrap_or(Path::new("."))
        .to_owned();
    let base_dir = std::fs::canonicalize(&base_dir).unwrap_or(base_dir);
    let mut cx = Ctx {
        file: file.to_owned(),
        base_dir,
        loc,
        env,
        errors: Vec::new(),
        warnings: Vec::new(),
    };
    let config = build(&mut cx, raw);
    if cx.errors.is_empty() {
        cx.warnings.sort_by_key(|e| e.line.unwrap_or(usize::MAX));
        config
            .map(|c| Config {
                warnings: std::mem::take(&mut cx.warnings),
                ..c
            })
            .ok_or_else(|| ConfigErrors(Vec::new()))
    } else {
        cx.errors.sort_by_key(|e| e.line.unwrap_or(usize::MAX));
        Err(ConfigErrors(cx.errors))
    }
}

fn build(cx: &mut Ctx<'_>, raw: RawConfig) -> Option<Config> {
    let s = &raw.server;
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

    // Upstream: plain http in this build (TLS to the upstream would need a client TLS config).
    let u = &raw.upstream;
    let up_path = [k("upstream"), k("url")];
    let (scheme, authority, base_path) = match u.url.split_once("://") {
        Some(("http", rest)) => {
            let (auth, path) = rest.find('/').map_or((rest, ""), |i| {
                (rest.get(..i).unwrap_or(rest), rest.get(i..).unwrap_or(""))
            });
            if auth.is_empty() || auth.contains('@') || path.contains('?') || path.contains('#') {
                cx.err(&up_path, "must be a URL like \"http://127.0.0.1:3000\"");
            }
            let auth = if auth.contains(':') && !auth.ends_with(']') {
                auth.to_owned()
            } else {
                format!("{auth}:80")
            };
            (
                "http".to_owned(),
                auth,
                path.trim_end_matches('/').to_owned(),
            )
        }
        Some(("https", _)) => {
            cx.unsupported(&up_path, "an https upstream");
            (String::new(), String::new(), String::new())
        }
        _ => {
            cx.err(&up_path, format!("{:?} is not an absolute http URL", u.url));
            (String::new(), String::new(), String::new())
        }
    };
    let upstream = UpstreamConfig {
        scheme,
        authority,
        base_path,
        connect_timeout: u.connect_timeout.map_or(Duration::from_secs(5), |d| d.0),
        timeout: u.timeout.map_or(Duration::from_secs(60), |d| d.0),
        pool_idle_timeout: u.pool_idle_timeout.map_or(Duration::from_secs(90), |d| d.0),
        pool_max_idle: u.pool_max_idle.unwrap_or(256),
    };

    // Admin listener: its own address (loopback by default), bearer tokens as SHA-256 hashes.
    let admin = match &raw.admin {
        Some(a) => {
            let addr = cx.socket(&[k("admin"), k("listen")], &a.listen);
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
                match decode_sha256(&t.sha256) {
                    Some(sha256) => tokens.push(AdminTokenHash { name: t.name.clone(), sha256 }),
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
    };

    // Sessions.
    let rs = &raw.session;
    let store = match rs.store.as_deref() {
        None | Some("memory") => SessionStoreKind::Memory,
        Some("redis") => SessionStoreKind::Redis,
        Some(other) => {
            cx.err(
                &[k("session"), k("store")],
                format!("unknown store {other:?}; use \"memory\" or \"redis\""),
            );
            SessionStoreKind::Memory
        }
    };
    let redis_url = match &rs.redis_url {
        Some(u) => {
            if store != SessionStoreKind::Redis {
                cx.err(
                    &[k("session"), k("redis_url")],
                    "is set but session.store is not \"redis\"",
                );
            }
            cx.interpolate(&[k("session"), k("redis_url")], u)
        }
        None => None,
    };
    if store == SessionStoreKind::Redis && redis_url.is_none() && rs.redis_url.is_none() {
        cx.err(
            &[k("session"), k("store")],
            "\"redis\" needs session.redis_url, e.g. \"redis://127.0.0.1:6379/0\"",
        );
    }
    if let Some(u) = &redis_url {
        if !(u.starts_with("redis://")
            || u.starts_with("redis+unix://")
            || u.starts_with("unix://"))
        {
            cx.err(
                &[k("session"), k("redis_url")],
                "must start with redis:// (TLS to Redis is not supported in this build)",
            );
        }
    }
    let redis_prefix = rs
        .redis_prefix
        .clone()
        .unwrap_or_else(|| "portcullis:".to_owned());
    if redis_prefix.is_empty()
        || redis_prefix.len() > 64
        || redis_prefix.contains(char::is_whitespace)
    {
        cx.err(
            &[k("session"), k("redis_prefix")],
            "must be 1-64 characters without spaces",
        );
    }
    let session = SessionConfig {
        store,
        redis_url,
        redis_prefix,
        idle_timeout: rs
            .idle_timeout
            .map_or(Duration::from_secs(30 * 60), |d| d.0),
        max_lifetime: rs
            .max_lifetime
            .map_or(Duration::from_secs(12 * 3600), |d| d.0),
        touch_interval: rs.touch_interval.map_or(Duration::from_secs(60), |d| d.0),
        max_sessions: rs.max_sessions.unwrap_or(2_000_000),
        pending_ttl: rs.pending_ttl.map_or(Duration::from_secs(10 * 60), |d| d.0),
    };
    if session.idle_timeout.is_zero() {
        cx.err(&[k("session"), k("idle_timeout")], "must be above zero");
    }
    if session.max_lifetime.is_zero() {
        cx.err(&[k("session"), k("max_lifetime")], "must be above zero");
    }

    // Roles.
    let mut roles = BTreeMap::new();
    for (name, r) in &raw.roles {
        let p = [k("roles"), k(name)];
        if !is_name(name) {
            cx.err(&p, "role names use a-z, 0-9, '_' and '-'");
        }
        roles.insert(
            name.clone(),
            RoleConfig {
                name: name.clone(),
                groups: r.groups.clone(),
                require_mfa: r.require_mfa,
                remember_mfa: r.remember_mfa.map_or(Duration::ZERO, |d| d.0),
                idle_timeout: r.idle_timeout.map(|d| d.0),
                max_lifetime: r.max_lifetime.map(|d| d.0),
            },
        );
        if r.remember_mfa.is_some_and(|d| !d.is_zero()) && !r.require_mfa {
            cx.err(
                &[k("roles"), k(name), k("remember_mfa")],
                "only means something when require_mfa = true",
            );
        }
    }

    // IdPs: OIDC and SAML arrive with their own issues; the keys parse, using them is refused.
    let mut idps = Vec::new();
    let mut seen = BTreeSet::new();
    for (n, idp) in raw.idp.iter().enumerate() {
        if let Some(c) = build_idp(cx, n, idp, &mut seen, &roles) {
            // Step-up keeps the SSO user's own second factor in the user store.
            if c.on_missing_mfa == OnMissingMfa::StepUp
                && raw.storage.is_none()
                && raw.native.is_none()
            {
                cx.err(
                    &[k("idp"), i(n), k("on_missing_mfa")],
                    "\"step_up\" needs a [storage] section, where the gateway keeps second factors",
                );
            }
            idps.push(c);
        }
    }

    // Storage and native login.
    let storage = match &raw.storage {
        Some(st) => {
            let url = cx
                .interpolate(&[k("storage"), k("url")], &st.url)
                .unwrap_or_default();
            let postgres = url.starts_with("postgres://") || url.starts_with("postgresql://");
            if !postgres && !url.starts_with("sqlite:") {
                cx.err(
                    &[k("storage"), k("url")],
                    "must start with sqlite:// or postgres://",
                );
            }
            if postgres && st.encryption_key.is_none() {
                // A generated key file is per machine; replicas must share one key.
                cx.err(
                    &[k("storage"), k("encryption_key")],
                    "is required with PostgreSQL, so every replica can open the same sealed seeds",
                );
            }
            let encryption_key = match &st.encryption_key {
                Some(v) => cx.interpolate(&[k("storage"), k("encryption_key")], v),
                None => None,
            };
            Some(StorageConfig {
                url,
                encryption_key,
            })
        }
        None if raw.native.is_some() => Some(StorageConfig {
            url: "sqlite://data/portcullis.db".to_owned(),
            encryption_key: None,
        }),
        None => None,
    };
    let native = raw.native.as_ref().map(|nv| {
        let paths = nv
            .paths
            .clone()
            .unwrap_or_else(|| vec!["/normal".to_owned(), "/access/normal".to_owned()]);
        if paths.is_empty() {
            cx.err(&[k("native"), k("paths")], "needs at least one path");
        }
        for (n, p) in paths.iter().enumerate() {
            if !is_clean_path(p) || p == "/" || p.ends_with('/') {
                cx.err(
                    &[k("native"), k("paths"), i(n)],
                    format!("{p:?} must be a clean absolute path such as \"/normal\""),
                );
            } else if p == &prefix || p.starts_with(&format!("{prefix}/")) {
                cx.err(
                    &[k("native"), k("paths"), i(n)],
                    format!("{p:?} is inside the reserved prefix {prefix}"),
                );
            }
        }
        if nv.roles.is_some() {
            cx.unsupported(&[k("native"), k("roles")], "native.roles");
        }
        let lockout = match &nv.lockout {
            Some(l) => {
                if l.max_failures == 0 {
                    cx.err(
                        &[k("native"), k("lockout"), k("max_failures")],
                        "must be at least 1",
                    );
                }
                LockoutConfig {
                    max_failures: l.max_failures,
                    window: l.window.0,
                    duration: l.duration.0,
                }
            }
            None => LockoutConfig {
                max_failures: 5,
                window: Duration::from_secs(900),
                duration: Duration::from_secs(900),
            },
        };
        NativeConfig { paths, lockout }
    });

    let mfa = build_mfa(cx, &raw);
    if native.is_some() && raw.storage.is_some() && mfa.enrollment == Enrollment::FirstLogin {
        let at = if raw.mfa.as_ref().is_some_and(|m| m.enrollment.is_some()) {
            vec![k("mfa"), k("enrollment")]
        } else {
            vec![k("mfa")]
        };
        cx.warn(
            &at,
            "enrollment is \"first_login\": whoever holds a new user's password chooses their \
             second factor; set enrollment = \"invite\" to require a single-use enrollment link",
        );
    }

    // Login targets.
    let login_target = |cx: &mut Ctx<'_>, path: &[Seg], name: &str| -> Option<LoginTarget> {
        if name == "native" {
            if native.is_none() {
                cx.err(path, "\"native\" needs a [native] section");
            }
            Some(LoginTarget::Native)
        } else if seen.contains(name) {
            Some(LoginTarget::Idp(name.to_owned()))
        } else {
            cx.err(
                path,
                format!("unknown login {name:?}: name an [[idp]] id or \"native\""),
            );
            None
        }
    };
    let default_login = match &s.default_login {
        Some(name) => login_target(cx, &srv("default_login"), name),
        None if native.is_some() => Some(LoginTarget::Native),
        None => idps
            .first()
            .map(|i: &IdpConfig| LoginTarget::Idp(i.id.clone())),
    };

    // Routes.
    let mut routes = Vec::new();
    let mut prefixes = BTreeSet::new();
    if raw.routes.is_empty() {
        cx.err(
            &[k("routes")],
            "at least one [[routes]] entry is needed (requests matching no route are refused)",
        );
    }
    for (n, r) in raw.routes.iter().enumerate() {
        let p = |key: &str| vec![k("routes"), i(n), k(key)];
        if !is_clean_path(&r.prefix) {
            cx.err(
                &p("prefix"),
                format!(
                    "{:?} must be a clean absolute path (no //, dot segments, %, ; or \\)",
                    r.prefix
                ),
            );
        } else if r.prefix == prefix || r.prefix.starts_with(&format!("{prefix}/")) {
            cx.err(
                &p("prefix"),
                format!("{:?} is inside the reserved prefix {prefix}", r.prefix),
            );
        }
        let norm = if r.prefix.len() > 1 {
            r.prefix.trim_end_matches('/').to_owned()
        } else {
            r.prefix.clone()
        };
        if !prefixes.insert(norm.clone()) {
            cx.err(
                &p("prefix"),
                format!("duplicate route prefix {:?}", r.prefix),
            );
        }
        let access = match r.access.as_deref() {
            Some("public") => {
                if !r.allow_roles.is_empty() {
                    cx.err(
                        &p("allow_roles"),
                        "a public route admits everyone; remove allow_roles or access",
                    );
                }
                Access::Public
            }
            None | Some("protected") => {
                if r.allow_roles.is_empty() {
                    cx.err(
                        &p("allow_roles"),
                        "a protected route must name the roles it admits",
                    );
                }
                for (m, role) in r.allow_roles.iter().enumerate() {
                    if !roles.contains_key(role) {
                        cx.err(
                            &[k("routes"), i(n), k("allow_roles"), i(m)],
                            format!("unknown role {role:?}; define [roles.{role}]"),
                        );
                    }
                }
                Access::Roles(r.allow_roles.clone())
            }
            Some(other) => {
                cx.err(
                    &p("access"),
                    format!("unknown access {other:?}; use \"public\" or \"protected\""),
                );
                Access::Public
            }
        };
        let login = r
            .login
            .as_ref()
            .and_then(|l| login_target(cx, &p("login"), l));
        routes.push(RouteConfig {
            prefix: norm,
            access,
            login,
        });
    }

    let branding = Branding {
        product_name: raw
            .branding
            .as_ref()
            .and_then(|b| b.product_name.clone())
            .unwrap_or_else(|| mfa.issuer.clone()),
        logo: raw
            .branding
            .as_ref()
            .and_then(|b| b.logo.as_ref())
            .map(|l| cx.existing_file(&[k("branding"), k("logo")], l)),
    };

    for (key, d) in [
        ("header_timeout", s.header_timeout),
        ("body_timeout", s.body_timeout),
        ("send_timeout", s.send_timeout),
    ] {
        if d.is_some_and(|d| d.0.is_zero()) {
            cx.err(&[k("server"), k(key)], "must be above zero");
        }
    }
    let listen = listen?;
    Some(Config {
        warnings: Vec::new(),
        path: cx.file.clone(),
        base_dir: cx.base_dir.clone(),
        server: ServerConfig {
            listen,
            public_origin,
            public_host,
            https,
            tls,
            trusted_proxies,
            default_login,
            workers,
            access_log: s.access_log.unwrap_or(true),
            prefix,
            max_header_bytes,
            max_headers,
            header_timeout: s.header_timeout.map_or(Duration::from_secs(10), |d| d.0),
            max_body_bytes: s.max_body_bytes.unwrap_or(64 * 1024),
            shutdown_grace: s.shutdown_grace.map_or(Duration::from_secs(30), |d| d.0),
            max_connections: s.max_connections.unwrap_or(25_000),
            max_connections_per_ip: s.max_connections_per_ip.unwrap_or(0),
            body_timeout: s.body_timeout.map_or(Duration::from_secs(30), |d| d.0),
            send_timeout: s.send_timeout.map_or(Duration::from_secs(60), |d| d.0),
            signing_key,
            hsts,
        },
        upstream,
        admin,
        session,
        storage,
        native,
        mfa,
        idps,
        roles,
        routes,
        branding,
    })
}

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

fn build_idp(
    cx: &mut Ctx<'_>,
    n: usize,
    idp: &RawIdp,
    seen: &mut BTreeSet<String>,
    roles: &BTreeMap<String, RoleConfig>,
) -> Option<IdpConfig> {
    let p = |key: &str| vec![k("idp"), i(n), k(key)];
    if !is_name(&idp.id) {
        cx.err(&p("id"), "IdP ids use a-z, 0-9, '_' and '-'");
    } else if idp.id == "native" {
        cx.err(&p("id"), "\"native\" is reserved for the native login");
    }
    if !seen.insert(idp.id.clone()) {
        cx.err(&p("id"), format!("duplicate IdP id {:?}", idp.id));
    }
    let kind = match idp.kind.as_str() {
        "oidc" => IdpKind::Oidc,
        "saml" => IdpKind::Saml,
        other => {
            cx.err(
                &p("kind"),
                format!("unknown kind {other:?}; use \"oidc\" or \"saml\""),
            );
            return None;
        }
    };
    let on_missing_mfa = match idp.on_missing_mfa.as_deref() {
        None | Some("deny") => OnMissingMfa::Deny,
        Some("step_up") => OnMissingMfa::StepUp,
        Some("trust") => OnMissingMfa::Trust,
        Some(other) => {
            cx.err(
                &p("on_missing_mfa"),
                format!("unknown value {other:?}; use \"deny\", \"step_up\" or \"trust\""),
            );
            OnMissingMfa::Deny
        }
    };
    // The roles this IdP may grant: each a defined role; an empty list would admit no one.
    if let Some(list) = &idp.roles {
        if list.is_empty() {
            cx.err(
                &p("roles"),
                "an empty list lets no user of this IdP in; name the roles it may grant, or remove the key to allow every role",
            );
        }
        for (m, role) in list.iter().enumerate() {
            if !roles.contains_key(role) {
                cx.err(
                    &[k("idp"), i(n), k("roles"), i(m)],
                    format!("unknown role {role:?}; define [roles.{role}]"),
                );
            }
        }
    }
    let (oidc, saml) = match kind {
        IdpKind::Oidc => (build_oidc(cx, n, idp), None),
        IdpKind::Saml => (None, build_saml(cx, n, idp)),
    };
    Some(IdpConfig {
        id: idp.id.clone(),
        kind,
        display_name: idp.display_name.clone().unwrap_or_else(|| idp.id.clone()),
        on_missing_mfa,
        roles: idp.roles.clone(),
        oidc,
        saml,
    })
}

/// The OIDC keys of one `[[idp]]`: required keys present, SAML-only keys refused, the issuer an
/// absolute URL (plain http only on loopback, for tests and local development).
fn build_oidc(cx: &mut Ctx<'_>, n: usize, idp: &RawIdp) -> Option<OidcSettings> {
    let p = |key: &str| vec![k("idp"), i(n), k(key)];
    let saml_only = [
        ("metadata", idp.metadata.is_some()),
        ("metadata_url", idp.metadata_url.is_some()),
        ("sp_entity_id", idp.sp_entity_id.is_some()),
        ("sp_key", idp.sp_key.is_some()),
        ("sp_cert", idp.sp_cert.is_some()),
        ("groups_attribute", idp.groups_attribute.is_some()),
        ("username_attribute", idp.username_attribute.is_some()),
        ("subject_attribute", idp.subject_attribute.is_some()),
        ("email_attribute", idp.email_attribute.is_some()),
        ("allow_idp_initiated", idp.allow_idp_initiated.is_some()),
        ("allowed_algorithms", idp.allowed_algorithms.is_some()),
        ("clock_skew", idp.clock_skew.is_some()),
        ("metadata_refresh", idp.metadata_refresh.is_some()),
        (
            "requested_authn_context",
            idp.requested_authn_context.is_some(),
        ),
        ("force_authn", idp.force_authn.is_some()),
    ];
    for (key, set) in saml_only {
        if set {
            cx.err(
                &p(key),
                "is a SAML setting; an OIDC IdP (kind = \"oidc\") does not take it",
            );
        }
    }
    if idp
        .mfa_evidence
        .as_ref()
        .is_some_and(|m| !m.authn_context_any.is_empty())
    {
        cx.err(
            &[k("idp"), i(n), k("mfa_evidence"), k("authn_context_any")],
            "is a SAML setting; an OIDC IdP checks amr_any and acr_any",
        );
    }
    let required = |cx: &mut Ctx<'_>, key: &str, v: &Option<String>| -> Option<String> {
        match v {
            Some(v) if !v.trim().is_empty() => Some(v.clone()),
            _ => {
                cx.err(&p(key), "is required for an OIDC IdP (kind = \"oidc\")");
                None
            }
        }
    };
    let issuer = required(cx, "issuer", &idp.issuer);
    let client_id = required(cx, "client_id", &idp.client_id);
    let secret = required(cx, "client_secret", &idp.client_secret);
    let client_secret = secret.and_then(|s| cx.interpolate(&p("client_secret"), &s));
    if let Some(iss) = &issuer {
        if !is_issuer_url(iss) {
            cx.err(
                &p("issuer"),
                format!("{iss:?} is not an absolute https URL without query or fragment (plain http only on loopback)"),
            );
        }
    }
    let client_auth = match idp.client_auth.as_deref() {
        None | Some("client_secret_basic") => ClientAuth::ClientSecretBasic,
        Some("client_secret_post") => ClientAuth::ClientSecretPost,
        Some(other) => {
            cx.err(
                &p("client_auth"),
                format!("unknown value {other:?}; use \"client_secret_basic\" or \"client_secret_post\""),
            );
            ClientAuth::ClientSecretBasic
        }
    };
    let scopes = idp
        .scopes
        .clone()
        .unwrap_or_else(|| vec!["openid".into(), "email".into(), "profile".into()]);
    if !scopes.iter().any(|s| s == "openid") {
        cx.err(&p("scopes"), "must include \"openid\"");
    }
    if scopes
        .iter()
        .any(|s| s.is_empty() || s.contains(char::is_whitespace))
    {
        cx.err(&p("scopes"), "scopes are single words without spaces");
    }
    let http_timeout = idp.http_timeout.map_or(Duration::from_secs(10), |d| d.0);
    if http_timeout.is_zero() || http_timeout > Duration::from_secs(60) {
        cx.err(&p("http_timeout"), "must be above zero and at most 60s");
    }
    let evidence = idp.mfa_evidence.as_ref();
    Some(OidcSettings {
        issuer: issuer?,
        client_id: client_id?,
        client_secret: crate::secret::ClientSecret::new(client_secret?),
        client_auth,
        scopes,
        username_claim: idp.username_claim.clone(),
        groups_claim: idp.groups_claim.clone().unwrap_or_else(|| "groups".into()),
        acr_values: idp.acr_values.clone().unwrap_or_default(),
        userinfo: idp.userinfo.unwrap_or(false),
        logout: idp.logout.unwrap_or(false),
        amr_any: evidence.map(|m| m.amr_any.clone()).unwrap_or_default(),
        acr_any: evidence.map(|m| m.acr_any.clone()).unwrap_or_default(),
        http_timeout,
    })
}

/// The SAML keys of one `[[idp]]`: metadata from exactly one of `metadata` (a file, checked now:
/// it must name a signing certificate) or `metadata_url`; OIDC-only keys refused.
fn build_saml(cx: &mut Ctx<'_>, n: usize, idp: &RawIdp) -> Option<SamlSettings> {
    let p = |key: &str| vec![k("idp"), i(n), k(key)];
    let oidc_only = [
        ("issuer", idp.issuer.is_some()),
        ("client_id", idp.client_id.is_some()),
        ("client_secret", idp.client_secret.is_some()),
        ("client_auth", idp.client_auth.is_some()),
        ("scopes", idp.scopes.is_some()),
        ("username_claim", idp.username_claim.is_some()),
        ("groups_claim", idp.groups_claim.is_some()),
        ("acr_values", idp.acr_values.is_some()),
        ("userinfo", idp.userinfo.is_some()),
        ("logout", idp.logout.is_some()),
    ];
    for (key, set) in oidc_only {
        if set {
            cx.err(
                &p(key),
                "is an OIDC setting; a SAML IdP (kind = \"saml\") does not take it",
            );
        }
    }
    let evidence = idp.mfa_evidence.as_ref();
    if evidence.is_some_and(|m| !m.amr_any.is_empty() || !m.acr_any.is_empty()) {
        cx.err(
            &[k("idp"), i(n), k("mfa_evidence")],
            "amr_any and acr_any are OIDC settings; a SAML IdP checks authn_context_any",
        );
    }
    let refresh = idp
        .metadata_refresh
        .map_or(Duration::from_secs(3600), |d| d.0);
    let metadata = match (&idp.metadata, &idp.metadata_url) {
        (Some(_), Some(_)) => {
            cx.err(
                &p("metadata_url"),
                "set either metadata (a file) or metadata_url, not both",
            );
            None
        }
        (None, None) => {
            cx.err(
                &p("metadata"),
                "a SAML IdP needs its metadata: metadata = \"file.xml\" or metadata_url = \"https://…\"",
            );
            None
        }
        (Some(file), None) => {
            let path = cx.existing_file(&p("metadata"), file);
            match std::fs::read_to_string(&path) {
                Ok(xml) => match crate::auth::saml::IdpMetadata::parse(&xml) {
                    Ok(_) => Some(SamlMetadata::File { path, xml }),
                    Err(e) => {
                        cx.err(&p("metadata"), format!("{}: {e}", path.display()));
                        None
                    }
                },
                // existing_file already said so when it is missing.
                Err(e) if path.is_file() => {
                    cx.err(
                        &p("metadata"),
                        format!("cannot read {}: {e}", path.display()),
                    );
                    None
                }
                Err(_) => None,
            }
        }
        (None, Some(url)) => {
            if !is_issuer_url(url) {
                cx.err(
                    &p("metadata_url"),
                    format!("{url:?} is not an absolute https URL (plain http only on loopback)"),
                );
            }
            if refresh < Duration::from_secs(60) {
                cx.err(&p("metadata_refresh"), "must be at least 60s");
            }
            Some(SamlMetadata::Url {
                url: url.clone(),
                refresh,
            })
        }
    };
    if idp.metadata_refresh.is_some() && idp.metadata_url.is_none() {
        cx.err(&p("metadata_refresh"), "only applies with metadata_url");
    }
    let sp_entity_id = match &idp.sp_entity_id {
        Some(v) if !v.trim().is_empty() && !v.contains(char::is_whitespace) => Some(v.clone()),
        Some(_) => {
            cx.err(&p("sp_entity_id"), "must be a URI without spaces");
            None
        }
        None => {
            cx.err(
                &p("sp_entity_id"),
                "is required for a SAML IdP: the audience its assertions must name",
            );
            None
        }
    };
    let (sp_key, sp_cert) = match (&idp.sp_key, &idp.sp_cert) {
        (Some(key), Some(cert)) => {
            let key = cx.existing_file(&p("sp_key"), key);
            let cert = cx.existing_file(&p("sp_cert"), cert);
            if key.is_file() && cert.is_file() {
                if let Err(e) = crate::auth::saml::SpKeys::load(&key, &cert) {
                    cx.err(&p("sp_key"), e.to_string());
                }
            }
            (Some(key), Some(cert))
        }
        (None, None) => (None, None),
        (Some(_), None) => {
            cx.err(&p("sp_cert"), "sp_key needs sp_cert (its certificate) too");
            (None, None)
        }
        (None, Some(_)) => {
            cx.err(&p("sp_key"), "sp_cert needs sp_key (its private key) too");
            (None, None)
        }
    };
    let allowed_algorithms = match &idp.allowed_algorithms {
        None => SAML_DEFAULT_ALGORITHMS
            .iter()
            .map(|a| (*a).to_owned())
            .collect(),
        Some(list) => {
            for (m, a) in list.iter().enumerate() {
                if !SAML_KNOWN_ALGORITHMS.contains(&a.as_str()) {
                    cx.err(
                        &[k("idp"), i(n), k("allowed_algorithms"), i(m)],
                        format!(
                            "unknown algorithm {a:?}; use {}",
                            SAML_KNOWN_ALGORITHMS.join(", ")
                        ),
                    );
                }
            }
            if list.is_empty() {
                cx.err(&p("allowed_algorithms"), "must name at least one algorithm");
            }
            list.clone()
        }
    };
    for (key, v) in [
        ("subject_attribute", &idp.subject_attribute),
        ("username_attribute", &idp.username_attribute),
    ] {
        if v.as_ref().is_some_and(|a| a.trim().is_empty()) {
            cx.err(&p(key), "must name an attribute (its Name or FriendlyName)");
        }
    }
    let clock_skew = idp.clock_skew.map_or(Duration::from_secs(60), |d| d.0);
    if clock_skew > Duration::from_secs(300) {
        cx.err(&p("clock_skew"), "must be at most 5m");
    }
    let http_timeout = idp.http_timeout.map_or(Duration::from_secs(10), |d| d.0);
    if http_timeout.is_zero() || http_timeout > Duration::from_secs(60) {
        cx.err(&p("http_timeout"), "must be above zero and at most 60s");
    }
    Some(SamlSettings {
        metadata: metadata?,
        sp_entity_id: sp_entity_id?,
        sp_key,
        sp_cert,
        username_attribute: idp.username_attribute.clone(),
        subject_attribute: idp.subject_attribute.clone(),
        email_attribute: idp
            .email_attribute
            .clone()
            .unwrap_or_else(|| "email".into()),
        groups_attribute: idp
            .groups_attribute
            .clone()
            .unwrap_or_else(|| "groups".into()),
        allow_idp_initiated: idp.allow_idp_initiated.unwrap_or(false),
        allowed_algorithms,
        clock_skew,
        authn_context_any: evidence
            .map(|m| m.authn_context_any.clone())
            .unwrap_or_default(),
        requested_authn_context: idp.requested_authn_context.clone().unwrap_or_default(),
        force_authn: idp.force_authn.unwrap_or(false),
        http_timeout,
    })
}

/// An issuer URL: https, or http on a loopback host; a host; no query, fragment or user info.
fn is_issuer_url(s: &str) -> bool {
    let Ok(u) = openidconnect::url::Url::parse(s) else {
        return false;
    };
    let loopback = match u.host() {
        Some(openidconnect::url::Host::Domain(d)) => d == "localhost",
        Some(openidconnect::url::Host::Ipv4(a)) => a.is_loopback(),
        Some(openidconnect::url::Host::Ipv6(a)) => a.is_loopback(),
        None => return false,
    };
    (u.scheme() == "https" || (u.scheme() == "http" && loopback))
        && u.query().is_none()
        && u.fragment().is_none()
        && u.username().is_empty()
        && u.password().is_none()
}

fn build_mfa(cx: &mut Ctx<'_>, raw: &RawConfig) -> MfaConfig {
    let Some(m) = &raw.mfa else {
        return MfaConfig {
            issuer: "portcullis".to_owned(),
            methods: vec![MfaMethod::Totp, MfaMethod::RecoveryCode],
            email: None,
            recovery_count: 10,
            recovery_ttl: Duration::ZERO,
            enrollment: Enrollment::FirstLogin,
            invite_ttl: DEFAULT_INVITE_TTL,
        };
    };
    let mut methods = Vec::new();
    for (n, name) in m
        .methods
        .clone()
        .unwrap_or_else(|| vec!["totp".into(), "recovery_code".into()])
        .iter()
        .enumerate()
    {
        let p = [k("mfa"), k("methods"), i(n)];
        match name.as_str() {
            "totp" => methods.push(MfaMethod::Totp),
            "email" => methods.push(MfaMethod::Email),
            "recovery_code" => methods.push(MfaMethod::RecoveryCode),
            "webauthn" => cx.unsupported(&p, "WebAuthn"),
            other => cx.err(
                &p,
                format!("unknown method {other:?}; use totp, email or recovery_code"),
            ),
        }
    }
    let email = m.email.as_ref().and_then(|e| {
        let url = cx.interpolate(&[k("mfa"), k("email"), k("smtp_url")], &e.smtp_url)?;
        if !(url.starts_with("smtp://") || url.starts_with("smtps://")) {
            cx.err(
                &[k("mfa"), k("email"), k("smtp_url")],
                "must start with smtp:// or smtps://",
            );
        }
        if !e.from.contains('@') {
            cx.err(
                &[k("mfa"), k("email"), k("from")],
                "must be an email address",
            );
        }
        Some(EmailConfig {
            smtp_url: url,
            from: e.from.clone(),
            code_ttl: e.code_ttl.map_or(Duration::from_secs(600), |d| d.0),
            resend_interval: e.resend_interval.map_or(Duration::from_secs(30), |d| d.0),
        })
    });
    if methods.contains(&MfaMethod::Email) && m.email.is_none() {
        cx.err(
            &[k("mfa"), k("methods")],
            "\"email\" needs an [mfa.email] table with smtp_url and from",
        );
    }
    let rc = m.recovery_codes.as_ref();
    let recovery_count = rc.and_then(|r| r.count).unwrap_or(10);
    if !(1..=50).contains(&recovery_count) {
        cx.err(
            &[k("mfa"), k("recovery_codes"), k("count")],
            "must be between 1 and 50",
        );
    }
    // DESIGN.md §6: invitations are the default wherever they can be mailed.
    let enrollment = match m.enrollment.as_deref() {
        None if m.email.is_some() => Enrollment::Invite,
        None => Enrollment::FirstLogin,
        Some("invite") => Enrollment::Invite,
        Some("first_login") => Enrollment::FirstLogin,
        Some(other) => {
            cx.err(
                &[k("mfa"), k("enrollment")],
                format!("unknown enrollment {other:?}; use \"invite\" or \"first_login\""),
            );
            Enrollment::Invite
        }
    };
    let invite_ttl = m.invite_ttl.map_or(DEFAULT_INVITE_TTL, |d| d.0);
    if invite_ttl < Duration::from_secs(60) || invite_ttl > Duration::from_secs(90 * 86_400) {
        cx.err(&[k("mfa"), k("invite_ttl")], "must be between 1m and 90d");
    }
    MfaConfig {
        issuer: m.issuer.clone().unwrap_or_else(|| "portcullis".to_owned()),
        methods,
        email,
        recovery_count,
        recovery_ttl: rc.and_then(|r| r.ttl).map_or(Duration::ZERO, |d| d.0),
        enrollment,
        invite_ttl,
    }
}

/// How long an enrollment link lives unless `[mfa] invite_ttl` says otherwise.
const DEFAULT_INVITE_TTL: Duration = Duration::from_secs(7 * 86_400);
