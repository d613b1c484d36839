//! Where a login returns to in forward-auth mode: an absolute URL (`ReturnUrl`) only on
//! `server.public_url`'s host or a `forward_auth.allowed_hosts` one, carried through the login as
//! a `LocalPath` to the gateway's return endpoint. Invariant: no other URL is ever a redirect.

use super::policy::LocalPath;
use crate::config::Config;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;

/// The longest original URL kept: its encoding must fit in a `LocalPath` with room to spare.
pub const MAX_URL_LEN: usize = 1400;

/// An absolute `http(s)` URL on an allowed host whose path and query are a `LocalPath`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReturnUrl(String);

impl ReturnUrl {
    /// Parses an absolute URL, refusing any whose host is not allowed by `config` (compared
    /// case-insensitively, the port aside: cookies do not tell ports apart either).
    pub fn parse(config: &Config, s: &str) -> Option<ReturnUrl> {
        // A request target is visible ASCII (RFC 9112 §3.2), and so is a `Location` value.
        if s.len() > MAX_URL_LEN || !s.bytes().all(|b| b.is_ascii_graphic()) {
            return None;
        }
        let (scheme, rest) = s.split_once("://")?;
        let scheme = scheme.to_ascii_lowercase();
        if scheme != "http" && scheme != "https" {
            return None;
        }
        let split = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        let (authority, tail) = rest.split_at(split);
        let host = host_of(authority)?;
        if !allowed(config, &host) {
            return None;
        }
        // The path and query obey every rule of a local return path (no `//`, `\`, control
        // characters, scheme, also after one more decoding).
        let tail = match tail {
            "" => "/",
            t if t.starts_with('/') => t,
            _ => return None,
        };
        let path = LocalPath::parse(tail)?;
        Some(ReturnUrl(format!(
            "{scheme}://{}{}",
            authority.to_ascii_lowercase(),
            path.as_str()
        )))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The gateway path that redirects to this URL after a login (`/PREFIX/auth/return?to=…`):
    /// what the login machinery carries as its `rd`.
    pub fn via_gateway(&self, prefix: &str) -> LocalPath {
        let to = URL_SAFE_NO_PAD.encode(self.0.as_bytes());
        LocalPath::parse(&format!("{prefix}/auth/return?to={to}")).unwrap_or_else(LocalPath::root)
    }

    /// The URL a `to` value of the return endpoint names, if it is still allowed.
    pub fn from_gateway(config: &Config, to: &str) -> Option<ReturnUrl> {
        let bytes = URL_SAFE_NO_PAD.decode(to.as_bytes()).ok()?;
        Self::parse(config, std::str::from_utf8(&bytes).ok()?)
    }
}

/// The host of an authority (`host`, `host:port`, `[v6]:port`), lower case; None when it holds
/// user info, an empty or odd host, or a port that is not a number.
fn host_of(authority: &str) -> Option<String> {
    let ok = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'[' | b']');
    if authority.is_empty() || !authority.bytes().all(ok) {
        return None;
    }
    let (host, port) = if let Some(rest) = authority.strip_prefix('[') {
        let (v6, after) = rest.split_once(']')?;
        v6.parse::<std::net::Ipv6Addr>().ok()?;
        (format!("[{v6}]"), after.strip_prefix(':'))
    } else {
        match authority.split_once(':') {
            Some((h, p)) => (h.to_owned(), Some(p)),
            None => (authority.to_owned(), None),
        }
    };
    if !authority.starts_with('[') && host.contains(['[', ']']) {
        return None;
    }
    if let Some(p) = port {
        if p.is_empty() || p.len() > 5 || !p.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
    } else if authority.starts_with('[') && !authority.ends_with(']') {
        return None;
    }
    let host = host.to_ascii_lowercase();
    (!host.is_empty() && !host.starts_with('.') && !host.ends_with('.')).then_some(host)
}

/// Whether `host` is `server.public_url`'s host or one of `forward_auth.allowed_hosts`.
fn allowed(config: &Config, host: &str) -> bool {
    let public = host_of(&config.server.public_host);
    public.as_deref() == Some(host) || config.forward_auth.allowed_hosts.iter().any(|h| h == host)
}

/// A login's `rd` parameter: a local path, or with forward-auth on an absolute URL on an
/// allowed host (sent on through the return endpoint); anything else is `/`.
pub fn rd_param(config: &Config, raw: &str) -> LocalPath {
    if let Some(p) = LocalPath::parse(raw) {
        return p;
    }
    if config.forward_auth.enabled {
        if let Some(u) = ReturnUrl::parse(config, raw) {
            return u.via_gateway(&config.server.prefix);
        }
    }
    LocalPath::root()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::path::Path;

    fn config(forward_auth: &str) -> Config {
        let text = format!(
            r#"[server]
listen = "127.0.0.1:8443"
public_url = "https://helpdesk.example.com:8443"
trusted_proxies = ["127.0.0.1/32"]

[upstream]
url = "http://127.0.0.1:3000"

[roles.agent]
groups = ["agents"]

[[routes]]
prefix = "/"
allow_roles = ["agent"]

{forward_auth}
"#
        );
        Config::from_str(Path::new("/etc/portcullis/t.toml"), &text).unwrap()
    }

    fn on() -> Config {
        config("[forward_auth]\nenabled = true\nallowed_hosts = [\"app.example.com\", \"[::1]\"]")
    }

    #[test]
    fn urls_on_the_public_host_or_an_allowed_one_are_accepted() {
        let c = on();
        for (url, want) in [
            (
                "https://helpdesk.example.com/a?b=1",
                "https://helpdesk.example.com/a?b=1",
            ),
            (
                "http://HELPDESK.example.com:9000/x",
                "http://helpdesk.example.com:9000/x",
            ),
            ("https://app.example.com", "https://app.example.com/"),
            (
                "https://App.Example.Com:443/t#top",
                "https://app.example.com:443/t#top",
            ),
            ("http://[::1]:8080/agent", "http://[::1]:8080/agent"),
        ] {
            assert_eq!(ReturnUrl::parse(&c, url).unwrap().as_str(), want, "{url}");
        }
    }

    #[test]
    fn urls_on_other_hosts_or_with_tricks_are_refused() {
        let c = on();
        for bad in [
            "https://evil.com/",
            "https://app.example.com.evil.com/",
            "https://evil.com\\@app.example.com/",
            "https://app.example.com@evil.com/",
            "https://user@app.example.com/",
            "https://app.example.com:x/",
            "https://app.example.com:/",
            "https://app.example.com//evil.com",
            "https://app.example.com/\\evil.com",
            "https://app.example.com/%2f%2fevil.com",
            "https://app.example.com?x",
            "https://%61pp.example.com/",
            "javascript://app.example.com/%0aalert(1)",
            "ftp://app.example.com/",
            "//app.example.com/",
            "https://app.example.com/a\nb",
            "https://[::2]/",
            "https://app.example.com]/",
            "https://.app.example.com/",
            "https://app.example.com/\u{3031}x",
            "https://app.example.com/a b",
        ] {
            assert_eq!(ReturnUrl::parse(&c, bad), None, "{bad:?} must be refused");
        }
        let long = format!("https://app.example.com/{}", "a".repeat(MAX_URL_LEN));
        assert_eq!(ReturnUrl::parse(&c, &long), None);
    }

    #[test]
    fn an_absolute_rd_goes_through_the_return_endpoint_only_with_forward_auth_on() {
        let c = on();
        let rd = rd_param(&c, "https://app.example.com/t?id=4");
        let to = rd
            .as_str()
            .strip_prefix("/_portcullis/auth/return?to=")
            .unwrap();
        assert_eq!(
            ReturnUrl::from_gateway(&c, to).unwrap().as_str(),
            "https://app.example.com/t?id=4"
        );
        assert_eq!(rd_param(&c, "/local?x=1").as_str(), "/local?x=1");
        assert_eq!(rd_param(&c, "https://evil.com/").as_str(), "/");
        let off = config("");
        assert_eq!(rd_param(&off, "https://app.example.com/t").as_str(), "/");
        assert_eq!(ReturnUrl::from_gateway(&c, "not base64!"), None);
    }
}
