//! `[native]`: the native login's paths (clean, outside the reserved prefix) and its lockout.

use super::ctx::{i, is_clean_path, k, Ctx};
use crate::config::model::{LockoutConfig, NativeConfig};
use crate::config::raw::RawNative;
use std::time::Duration;

/// `[native]`, when present; `prefix` is the validated `server.prefix`.
pub(super) fn native(
    cx: &mut Ctx<'_>,
    raw: Option<&RawNative>,
    prefix: &str,
) -> Option<NativeConfig> {
    raw.map(|nv| {
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
            } else if p.as_str() == prefix || p.starts_with(&format!("{prefix}/")) {
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
        NativeConfig {
            paths,
            lockout,
            passkey_login: nv.passkey_login.unwrap_or(false),
        }
    })
}
