//! `[identity_headers]` (DESIGN.md §2): the names identity values go upstream under. Invariant:
//! every name is a lower-case header token, the eight are distinct (also with `_` read as `-`),
//! and none is a name HTTP or the gateway already uses for something else.

use super::ctx::{k, Ctx};
use crate::config::model::IdentityHeaderNames;
use crate::config::raw::RawIdentityHeaders;

/// Names that already mean something: hop-by-hop and framing headers, what the client
/// authenticates or addresses with, and the forwarding headers the gateway sets itself.
const TAKEN: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "host",
    "content-length",
    "content-type",
    "cookie",
    "authorization",
    "expect",
    "x-forwarded-for",
    "x-forwarded-proto",
    "x-forwarded-host",
    "x-real-ip",
    "forwarded",
    "via",
    // The fast lane reads these itself before it looks for identity names.
    "accept",
];

fn canonical(name: &str) -> String {
    name.to_ascii_lowercase().replace('_', "-")
}

pub(super) fn identity_headers(
    cx: &mut Ctx<'_>,
    raw: Option<&RawIdentityHeaders>,
) -> IdentityHeaderNames {
    let d = IdentityHeaderNames::default();
    let Some(raw) = raw else { return d };
    let mut seen: Vec<(String, &'static str)> = Vec::new();
    let mut pick = |cx: &mut Ctx<'_>, key: &'static str, v: &Option<String>, default: String| {
        let Some(v) = v else {
            // A default is checked like a configured name: `user = "x-auth-roles"` with
            // `roles` unset would send two values under one name.
            if let Some((_, other)) = seen
                .iter()
                .find(|(n, _)| canonical(n) == canonical(&default))
            {
                cx.err(
                    &[k("identity_headers"), k(key)],
                    format!("the default name {default:?} is already the name for {other}: give {key} a name of its own"),
                );
            }
            seen.push((default.clone(), key));
            return default;
        };
        let name = v.to_ascii_lowercase();
        let token = !name.is_empty()
            && name.len() <= 64
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !token {
            cx.err(
                &[k("identity_headers"), k(key)],
                "must be a header name: letters, digits, '-' or '_', at most 64",
            );
            return default;
        }
        if TAKEN.contains(&canonical(&name).as_str()) {
            cx.err(
                &[k("identity_headers"), k(key)],
                format!("{name:?} already has a meaning in HTTP or for the gateway; choose another name"),
            );
            return default;
        }
        if let Some((_, other)) = seen.iter().find(|(n, _)| canonical(n) == canonical(&name)) {
            cx.err(
                &[k("identity_headers"), k(key)],
                format!("{name:?} is also the name for {other}: each identity value needs its own header"),
            );
            return default;
        }
        seen.push((name.clone(), key));
        name
    };
    IdentityHeaderNames {
        user: pick(cx, "user", &raw.user, d.user),
        email: pick(cx, "email", &raw.email, d.email),
        groups: pick(cx, "groups", &raw.groups, d.groups),
        roles: pick(cx, "roles", &raw.roles, d.roles),
        method: pick(cx, "method", &raw.method, d.method),
        mfa: pick(cx, "mfa", &raw.mfa, d.mfa),
        session: pick(cx, "session", &raw.session, d.session),
        assertion: pick(cx, "assertion", &raw.assertion, d.assertion),
    }
}
