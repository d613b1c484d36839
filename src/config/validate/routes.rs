//! Who may reach what: `[roles]` (names and their groups), the login targets that
//! `server.default_login` and `[[routes]] login` name, and `[[routes]]` (clean prefixes outside
//! the reserved one, unique, public or protected by defined roles).

use super::ctx::{i, is_clean_path, is_name, k, Ctx};
use crate::config::locate::Seg;
use crate::config::model::{Access, IdpConfig, LoginTarget, RoleConfig, RouteConfig};
use crate::config::raw::{RawRole, RawRoute, RawServer};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

/// `[roles.*]`: each name `[a-z0-9_-]`; `remember_mfa` only with `require_mfa`.
pub(super) fn roles(
    cx: &mut Ctx<'_>,
    raw: &BTreeMap<String, RawRole>,
) -> BTreeMap<String, RoleConfig> {
    let mut roles = BTreeMap::new();
    for (name, r) in raw {
        let p = [k("roles"), k(name)];
        if !is_name(name) {
            cx.err(&p, "role names use a-z, 0-9, '_' and '-'");
        }
        let mfa_methods = r.mfa_methods.as_ref().map(|l| {
            if l.is_empty() {
                cx.err(
                    &[k("roles"), k(name), k("mfa_methods")],
                    "is empty: name the factors this role accepts, or leave it out for all",
                );
            }
            l.iter()
                .enumerate()
                .filter_map(|(n, m)| {
                    super::mfa::method_named(cx, &[k("roles"), k(name), k("mfa_methods"), i(n)], m)
                })
                .collect()
        });
        roles.insert(
            name.clone(),
            RoleConfig {
                name: name.clone(),
                groups: r.groups.clone(),
                require_mfa: r.require_mfa,
                remember_mfa: r.remember_mfa.map_or(Duration::ZERO, |d| d.0),
                idle_timeout: r.idle_timeout.map(|d| d.0),
                max_lifetime: r.max_lifetime.map(|d| d.0),
                mfa_methods,
            },
        );
        if r.remember_mfa.is_some_and(|d| !d.is_zero()) && !r.require_mfa {
            cx.err(
                &[k("roles"), k(name), k("remember_mfa")],
                "only means something when require_mfa = true",
            );
        }
    }
    roles
}

/// What a login target may name: `"native"` (when there is a `[native]` section) or an IdP id.
pub(super) struct Logins<'a> {
    pub(super) native: bool,
    pub(super) idps: &'a BTreeSet<String>,
}

impl Logins<'_> {
    /// The login target `name` at `path`, or an error there.
    pub(super) fn target(&self, cx: &mut Ctx<'_>, path: &[Seg], name: &str) -> Option<LoginTarget> {
        if name == "native" {
            if !self.native {
                cx.err(path, "\"native\" needs a [native] section");
            }
            Some(LoginTarget::Native)
        } else if self.idps.contains(name) {
            Some(LoginTarget::Idp(name.to_owned()))
        } else {
            cx.err(
                path,
                format!("unknown login {name:?}: name an [[idp]] id or \"native\""),
            );
            None
        }
    }
}

/// `server.default_login`; unset: the native login if there is one, else the first IdP.
pub(super) fn default_login(
    cx: &mut Ctx<'_>,
    s: &RawServer,
    logins: &Logins<'_>,
    idps: &[IdpConfig],
) -> Option<LoginTarget> {
    match &s.default_login {
        Some(name) => logins.target(cx, &[k("server"), k("default_login")], name),
        None if logins.native => Some(LoginTarget::Native),
        None => idps
            .first()
            .map(|i: &IdpConfig| LoginTarget::Idp(i.id.clone())),
    }
}

/// `[[routes]]`: at least one; `prefix` is the validated `server.prefix`.
pub(super) fn routes(
    cx: &mut Ctx<'_>,
    raw: &[RawRoute],
    prefix: &str,
    roles: &BTreeMap<String, RoleConfig>,
    logins: &Logins<'_>,
) -> Vec<RouteConfig> {
    let mut routes = Vec::new();
    let mut prefixes = BTreeSet::new();
    if raw.is_empty() {
        cx.err(
            &[k("routes")],
            "at least one [[routes]] entry is needed (requests matching no route are refused)",
        );
    }
    for (n, r) in raw.iter().enumerate() {
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
            .and_then(|l| logins.target(cx, &p("login"), l));
        let bearer = r.bearer.unwrap_or(false);
        if bearer && access == Access::Public {
            cx.err(
                &p("bearer"),
                "a public route admits everyone; bearer = true needs allow_roles",
            );
        }
        routes.push(RouteConfig {
            prefix: norm,
            access,
            login,
            bearer,
        });
    }
    routes
}
