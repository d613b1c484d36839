//! Turns `RawConfig` into `Config`: defaults, `${ENV}` interpolation, relative paths, and the
//! cross-checks (unknown roles/IdPs, duplicates, missing files, overlapping listeners). This
//! file is the entry (`Config::load`, `Config::from_str`) and the order of the sections; each
//! section is checked in a child of its own, all sharing one [`Ctx`]:
//!
//! | child        | sections                                   |
//! |--------------|--------------------------------------------|
//! | `ctx.rs`     | the context: errors, warnings, `${ENV}`, paths, shared checks |
//! | `server.rs`  | `[server]`, `[upstream]`, `[admin]`        |
//! | `stores.rs`  | `[session]`, `[storage]`                   |
//! | `routes.rs`  | `[roles]`, login targets, `[[routes]]`     |
//! | `idp.rs`     | `[[idp]]` (OIDC and SAML settings)         |
//! | `native.rs`  | `[native]`                                 |
//! | `mfa.rs`     | `[mfa]`                                    |
//! | `safety.rs`  | `[notify]`, `[break_glass]`                |
//! | `ops.rs`     | `[log]`, `[audit]`                         |
//! | `forward_auth.rs` | `[forward_auth]`                      |
//! | `headers.rs` | `[identity_headers]`                       |
//! | `pages.rs`   | `[pages]`                                  |
//!
//! Invariants: every problem of a file is reported at once, sorted by line (sections are read
//! in file-schema order, so problems on one line keep that order); a config with any error is
//! never returned; nothing panics on any input (fuzzed: `fuzzing::config`).

mod ctx;
mod forward_auth;
mod headers;
mod idp;
mod mfa;
mod native;
mod ops;
mod pages;
mod routes;
mod safety;
mod server;
mod stores;

use super::error::{ConfigError, ConfigErrors};
use super::locate::{render, Locator};
use super::model::{Branding, Config};
use super::raw::RawConfig;
use ctx::{k, Ctx};
use routes::Logins;
use std::path::Path;

// The constructors of `Config` live here, with the validation that is the only way to make one.
impl Config {
    /// Reads, parses and validates a config file. Every error found is returned at once.
    pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            ConfigErrors(vec![ConfigError {
                file: path.to_owned(),
                line: None,
                key: String::new(),
                message: format!("cannot read the config file: {e}"),
            }])
        })?;
        Self::from_str(path, &text)
    }

    /// Parses and validates config text as if read from `path`.
    pub fn from_str(path: &Path, text: &str) -> Result<Config, ConfigErrors> {
        validate(path, text, &|k| std::env::var(k).ok())
    }

    /// As `from_str`, with a custom environment (tests).
    pub fn from_str_with_env(
        path: &Path,
        text: &str,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigErrors> {
        validate(path, text, env)
    }
}

fn validate(
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
    let srv = server::server(cx, s);
    let upstream = server::upstream(cx, &raw.upstream);
    let admin = server::admin(cx, raw.admin.as_ref(), srv.listen);
    let session = stores::session(cx, &raw.session);
    let roles = routes::roles(cx, &raw.roles);
    let (idps, seen) = idp::idps(cx, &raw, &roles);
    let storage = stores::storage(cx, &raw);
    let native = native::native(cx, raw.native.as_ref(), &srv.prefix);
    let mfa = mfa::mfa(cx, &raw, native.is_some());
    let notify = safety::notify(cx, &raw, &mfa);
    let break_glass = safety::break_glass(cx, &raw, &roles);
    let identity_headers = headers::identity_headers(cx, raw.identity_headers.as_ref());
    let logins = Logins {
        native: native.is_some(),
        idps: &seen,
    };
    let default_login = routes::default_login(cx, s, &logins, &idps);
    let routes = routes::routes(cx, &raw.routes, &srv.prefix, &roles, &logins);

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

    let pages = pages::pages(cx, raw.pages.as_ref());
    let log = ops::log(cx, raw.log.as_ref());
    let audit = ops::audit(cx, raw.audit.as_ref());
    let forward_auth = forward_auth::forward_auth(cx, raw.forward_auth.as_ref(), &srv);

    server::check_timeouts(cx, s);
    let listen = srv.listen?;
    Some(Config {
        warnings: Vec::new(),
        path: cx.file.clone(),
        base_dir: cx.base_dir.clone(),
        server: srv.finish(s, listen, default_login),
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
        pages,
        notify,
        break_glass,
        identity_headers,
        log,
        audit,
        forward_auth,
    })
}
