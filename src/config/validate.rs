//! Turns `RawConfig` into `Config`: defaults, `${ENV}` interpolation, relative paths, and the
//! cross-checks (unknown roles/IdPs, duplicates, missing files, overlapping listeners). This
//! file is the entry (`Config::load`, `Config::from_str`) and the order of the sections; each
//! section is checked in a child of its own, all sharing one [`Ctx`]:
//!
//! | child        | sections                                   |
//! |--------------|--------------------------------------------|
//! | `document.rs`| text → `RawConfig`: `${ENV}` in every string, every refused key reported |
//! | `ctx.rs`     | the context: errors, warnings, placeholders, paths, files, secrets |
//! | `files.rs`   | what `run` reads at start: signing key, user store, SMTP, Redis URL |
//! | `server.rs`  | `[server]`, `[admin]`                      |
//! | `upstream.rs`| `[upstream]` and its TLS files             |
//! | `stores.rs`  | `[session]`, `[storage]`                   |
//! | `store_tls.rs` | their TLS files and `session.redis_sentinel` |
//! | `routes.rs`  | `[roles]`, login targets, `[[routes]]`     |
//! | `idp.rs`     | `[[idp]]` (OIDC and SAML settings)         |
//! | `native.rs`  | `[native]`                                 |
//! | `mfa.rs`     | `[mfa]`                                    |
//! | `safety.rs`  | `[notify]`, `[break_glass]`, the console   |
//! | `ops.rs`     | `[log]`, `[audit]`                         |
//! | `forward_auth.rs` | `[forward_auth]`                      |
//! | `headers.rs` | `[identity_headers]`                       |
//! | `bearer.rs`  | `[[service_tokens]]`, `[[idp]] bearer`, `bearer = true` routes |
//! | `pages.rs`   | `[pages]`                                  |
//!
//! Invariants: every problem of a file is reported at once, sorted by line (sections are read
//! in file-schema order, so problems on one line keep that order); a config with any error is
//! never returned; nothing panics on any input (fuzzed: `fuzzing::config`).

mod bearer;
mod ctx;
mod document;
mod files;
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
mod store_tls;
mod stores;
mod upstream;

use super::error::{ConfigError, ConfigErrors};
use super::locate::Locator;
use super::model::{Branding, Config};
use super::raw::RawConfig;
use ctx::{k, Ctx};
use routes::Logins;
use std::path::Path;

// The constructors of `Config` live here, with the validation that is the only way to make one.
impl Config {
    /// Reads, parses and validates a config file. Every error found is returned at once.
    pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
        Self::from_str(path, &read_file(path)?)
    }

    /// As `load`, for `check --no-env`: the environment is not read; each `${NAME}` holds a
    /// placeholder, and the checks that need its real value are skipped with a warning saying so.
    pub fn load_without_env(path: &Path) -> Result<Config, ConfigErrors> {
        validate(path, &read_file(path)?, &|_| None, true)
    }

    /// Parses and validates config text as if read from `path`.
    pub fn from_str(path: &Path, text: &str) -> Result<Config, ConfigErrors> {
        validate(path, text, &|k| std::env::var(k).ok(), false)
    }

    /// As `from_str`, with a custom environment (tests).
    pub fn from_str_with_env(
        path: &Path,
        text: &str,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigErrors> {
        validate(path, text, env, false)
    }

    /// As `from_str`, without an environment (`check --no-env`).
    pub fn from_str_without_env(path: &Path, text: &str) -> Result<Config, ConfigErrors> {
        validate(path, text, &|_| None, true)
    }
}

fn read_file(path: &Path) -> Result<String, ConfigErrors> {
    std::fs::read_to_string(path).map_err(|e| {
        ConfigErrors(vec![ConfigError {
            file: path.to_owned(),
            line: None,
            key: String::new(),
            message: format!("cannot read the config file: {e}"),
        }])
    })
}

fn validate(
    file: &Path,
    text: &str,
    env: &dyn Fn(&str) -> Option<String>,
    no_env: bool,
) -> Result<Config, ConfigErrors> {
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
        loc: Locator::new(text),
        env,
        no_env,
        errors: Vec::new(),
        warnings: Vec::new(),
        unchecked: Vec::new(),
    };
    let config = document::read(&mut cx, text).and_then(|raw| build(&mut cx, raw));
    if cx.errors.is_empty() {
        cx.warnings.sort_by_key(|e| e.line.unwrap_or(usize::MAX));
        config
            .map(|c| Config {
                warnings: std::mem::take(&mut cx.warnings),
                ..c
            })
            .ok_or_else(|| {
                // Only a value that needed the environment can stop the reading unreported.
                ConfigErrors(vec![ConfigError {
                    file: cx.file.clone(),
                    line: None,
                    key: String::new(),
                    message: "cannot be checked further without the environment: a required \
                              key holds an unset ${NAME}"
                        .to_owned(),
                }])
            })
    } else {
        cx.errors.sort_by_key(|e| e.line.unwrap_or(usize::MAX));
        Err(ConfigErrors(cx.errors))
    }
}

fn build(cx: &mut Ctx<'_>, raw: RawConfig) -> Option<Config> {
    let s = &raw.server;
    let srv = server::server(cx, s);
    let upstream = upstream::upstream(cx, &raw.upstream);
    let admin = server::admin(cx, raw.admin.as_ref(), srv.listen);
    let session = stores::session(cx, &raw.session);
    let roles = routes::roles(cx, &raw.roles);
    let (idps, seen) = idp::idps(cx, &raw, &roles);
    let storage = stores::storage(cx, &raw);
    let native = native::native(cx, raw.native.as_ref(), &srv.prefix);
    let mfa = mfa::mfa(cx, &raw, native.is_some());
    mfa::role_methods(cx, &roles, &mfa);
    if native.as_ref().is_some_and(|n| n.passkey_login) && mfa.webauthn.is_none() {
        cx.err(
            &[k("native"), k("passkey_login")],
            "needs \"webauthn\" in [mfa] methods",
        );
    }
    let notify = safety::notify(cx, &raw, &mfa);
    let break_glass = safety::break_glass(cx, &raw, &roles);
    let console = safety::console(cx, &raw, &roles);
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
    let service_tokens = bearer::service_tokens(cx, &raw.service_tokens, &roles);
    bearer::check_bearer_routes(cx, &raw.routes, &service_tokens, &idps);

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
        console,
        identity_headers,
        log,
        audit,
        forward_auth,
        service_tokens,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    const MINIMAL: &str = "[server]\nlisten = \"127.0.0.1:8443\"\npublic_url = \"https://h.example.com\"\n\n[upstream]\nurl = \"http://127.0.0.1:3000\"\n\n[roles.agent]\ngroups = []\n\n[[routes]]\nprefix = \"/\"\nallow_roles = [\"agent\"]\n";

    fn dir(tag: &str) -> std::path::PathBuf {
        let d =
            std::env::temp_dir().join(format!("portcullis-validate-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    fn errors(path: &Path, text: &str) -> Vec<String> {
        match Config::from_str_with_env(path, text, &|_| None) {
            Ok(_) => Vec::new(),
            Err(e) => e.0.iter().map(ToString::to_string).collect(),
        }
    }

    #[test]
    fn a_secret_file_gives_its_text_less_one_trailing_newline() {
        let d = dir("secret");
        let key = "ab".repeat(32);
        std::fs::write(d.join("k"), format!("{key}\n")).unwrap();
        std::fs::write(d.join("crlf"), format!("{key}\r\n")).unwrap();
        for name in ["k", "crlf"] {
            let text = format!(
                "{MINIMAL}\n[storage]\nurl = \"sqlite://u.db\"\nencryption_key_file = \"{name}\"\n"
            );
            let c = Config::from_str_with_env(&d.join("c.toml"), &text, &|_| None).unwrap();
            assert_eq!(
                c.storage.unwrap().encryption_key.as_deref(),
                Some(key.as_str())
            );
        }
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn a_secret_given_twice_or_from_a_missing_file_is_an_error() {
        let d = dir("secret-bad");
        let both = format!("{MINIMAL}\n[storage]\nurl = \"sqlite://u.db\"\nencryption_key = \"x\"\nencryption_key_file = \"k\"\n");
        assert_eq!(
            errors(&d.join("c.toml"), &both),
            vec![format!(
                "{}:18: storage.encryption_key_file: set either encryption_key or encryption_key_file, not both",
                d.join("c.toml").display()
            )]
        );
        let missing = format!(
            "{MINIMAL}\n[storage]\nurl = \"sqlite://u.db\"\nencryption_key_file = \"nope\"\n"
        );
        let e = errors(&d.join("c.toml"), &missing);
        assert_eq!(e.len(), 1, "{e:?}");
        assert!(
            e[0].contains("storage.encryption_key_file: file ")
                && e[0].ends_with("nope does not exist"),
            "{e:?}"
        );
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn without_the_environment_a_secret_file_named_by_a_variable_is_not_read() {
        let text = format!("{MINIMAL}\n[storage]\nurl = \"sqlite://u.db\"\nencryption_key_file = \"${{SECRETS}}/key\"\n");
        let c = Config::from_str_without_env(Path::new("/nonexistent/c.toml"), &text).unwrap();
        assert!(
            c.warnings
                .iter()
                .any(|w| w.key == "storage.encryption_key_file"
                    && w.message.contains("${SECRETS} unset")),
            "{:?}",
            c.warnings
        );
        // With the environment, the same file is an error naming the variable.
        let e = errors(Path::new("/nonexistent/c.toml"), &text);
        assert_eq!(e, vec!["/nonexistent/c.toml:17: storage.encryption_key_file: environment variable SECRETS is not set".to_owned()]);
    }

    #[test]
    fn several_unknown_keys_and_bad_values_are_all_reported() {
        let text = MINIMAL
            .replace("[upstream]\n", "[upstream]\ntimout = \"5s\"\n")
            .replace(
                "groups = []",
                "groups = []\nremember_mfa = \"soon\"\nrequire_mfa = \"yes\"",
            );
        let e = errors(Path::new("/e/c.toml"), &text);
        assert_eq!(e.len(), 3, "{e:#?}");
        assert!(e[0].starts_with("/e/c.toml:6: upstream.timout: unknown key \"timout\" in [upstream] — did you mean \"timeout\"?"), "{e:#?}");
        assert!(
            e[1].starts_with("/e/c.toml:11: roles.agent.remember_mfa: invalid duration \"soon\""),
            "{e:#?}"
        );
        assert!(
            e[2].starts_with("/e/c.toml:12: roles.agent.require_mfa: invalid type"),
            "{e:#?}"
        );
    }

    #[test]
    fn the_console_is_off_by_default_and_its_keys_are_checked() {
        let c = Config::from_str_with_env(Path::new("/e/c.toml"), MINIMAL, &|_| None).unwrap();
        assert!(c.console.roles.is_empty());
        assert_eq!(c.console.fresh_mfa, std::time::Duration::from_secs(900));
        let text = format!(
            "{MINIMAL}\n[admin]\nconsole_roles = [\"agent\", \"ghost\"]\nconsole_fresh_mfa = \"30s\"\n"
        );
        let e = errors(Path::new("/e/c.toml"), &text);
        assert_eq!(e.len(), 2, "{e:#?}");
        assert!(
            e.iter()
                .any(|e| e
                    .starts_with("/e/c.toml:16: admin.console_roles[1]: unknown role \"ghost\"")),
            "{e:#?}"
        );
        assert!(
            e.iter().any(|e| e
                .starts_with("/e/c.toml:17: admin.console_fresh_mfa: must be between 1m and 24h")),
            "{e:#?}"
        );
    }

    #[test]
    fn a_required_key_of_the_wrong_type_does_not_hide_the_other_errors() {
        let text = MINIMAL
            .replace("listen = \"127.0.0.1:8443\"", "listen = 8443")
            .replace("allow_roles = [\"agent\"]", "allow_roles = [\"ghost\"]");
        let e = errors(Path::new("/e/c.toml"), &text);
        assert_eq!(e.len(), 2, "{e:#?}");
        assert!(
            e[0].starts_with(
                "/e/c.toml:2: server.listen: invalid type: integer `8443`, expected a string"
            ),
            "{e:#?}"
        );
        assert!(
            e[1].starts_with("/e/c.toml:13: routes[0].allow_roles[0]: unknown role \"ghost\""),
            "{e:#?}"
        );
    }
}
