//! `[forward_auth]`: whether the auth endpoints for nginx, Caddy and Traefik answer, and the
//! hosts a login may return to. Invariant: an enabled section has proxies to trust.

use super::ctx::{i, k, Ctx};
use super::server::Server;
use crate::config::model::ForwardAuthConfig;
use crate::config::raw::RawForwardAuth;

/// `[forward_auth]`; absent means off.
pub(super) fn forward_auth(
    cx: &mut Ctx<'_>,
    raw: Option<&RawForwardAuth>,
    srv: &Server,
) -> ForwardAuthConfig {
    let Some(raw) = raw else {
        return ForwardAuthConfig::default();
    };
    let mut allowed_hosts = Vec::with_capacity(raw.allowed_hosts.len());
    for (n, h) in raw.allowed_hosts.iter().enumerate() {
        let host = h.to_ascii_lowercase();
        if is_host(&host) {
            allowed_hosts.push(host);
        } else {
            cx.err(
                &[k("forward_auth"), k("allowed_hosts"), i(n)],
                format!("{h:?} must be a host name such as \"app.example.com\" (no scheme, port, path or wildcard)"),
            );
        }
    }
    // The original request is read from the proxy's headers only when the proxy is trusted:
    // enabled without any, every call would be refused (403).
    if raw.enabled && srv.trusted_proxies.is_empty() {
        cx.err(
            &[k("forward_auth"), k("enabled")],
            "forward-auth needs server.trusted_proxies: the addresses of the proxies that call it",
        );
    }
    ForwardAuthConfig {
        enabled: raw.enabled,
        allowed_hosts,
    }
}

/// A host name (`app.example.com`), an IPv4 address or a bracketed IPv6 one: lower case, no
/// scheme, port, path, user info or wildcard.
pub(super) fn is_host(h: &str) -> bool {
    if let Some(v6) = h.strip_prefix('[').and_then(|r| r.strip_suffix(']')) {
        return v6.parse::<std::net::Ipv6Addr>().is_ok();
    }
    !h.is_empty()
        && h.len() <= 253
        && h.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        })
}
