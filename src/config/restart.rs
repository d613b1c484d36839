//! The keys a live reload cannot apply (DESIGN.md §11): listeners, stores, the assertion key and
//! what the shared user store was opened with. Invariant: `pin` leaves each such key of the new
//! config at its running value and names it, so the reloaded config says what is in force.

use super::model::Config;

/// Copies every restart-only key of `old` into `new` where they differ; returns their names
/// (`server.listen`, …) in file-schema order.
pub fn pin(old: &Config, new: &mut Config) -> Vec<&'static str> {
    let mut keys = Vec::new();
    // Compared by their `Debug` text: the settings are plain data, and none of this is printed.
    macro_rules! pin {
        ($key:literal, $($field:tt).+) => {
            if format!("{:?}", old.$($field).+) != format!("{:?}", new.$($field).+) {
                new.$($field).+ = old.$($field).+.clone();
                keys.push($key);
            }
        };
    }
    pin!("server.listen", server.listen);
    // The origin names the cookies (`__Host-` with https) and the assertion issuer.
    if old.server.public_origin != new.server.public_origin {
        new.server.public_origin = old.server.public_origin.clone();
        new.server.public_host = old.server.public_host.clone();
        new.server.https = old.server.https;
        keys.push("server.public_url");
    }
    // The certificate and key files are read again on every reload; only turning TLS on or
    // off needs a new listener.
    if old.server.tls.is_some() != new.server.tls.is_some() {
        new.server.tls = old.server.tls.clone();
        keys.push("server.tls");
    }
    pin!("server.workers", server.workers);
    pin!("server.max_header_bytes", server.max_header_bytes);
    pin!("server.max_headers", server.max_headers);
    pin!("server.header_timeout", server.header_timeout);
    pin!("server.shutdown_grace", server.shutdown_grace);
    pin!("server.max_connections", server.max_connections);
    pin!(
        "server.max_connections_per_ip",
        server.max_connections_per_ip
    );
    pin!("server.signing_key", server.signing_key);
    match (&old.admin, &mut new.admin) {
        (Some(o), Some(n)) => {
            if o.listen != n.listen {
                n.listen = o.listen;
                keys.push("admin.listen");
            }
            if o.tls.is_some() != n.tls.is_some() {
                n.tls = o.tls.clone();
                keys.push("admin.tls");
            }
        }
        (None, None) => {}
        // Removing the section: the listener stays until a restart, but with no token left, so
        // removing `[admin]` revokes every admin token at once (fail closed).
        (Some(o), n @ None) => {
            let mut kept = o.clone();
            kept.tokens.clear();
            *n = Some(kept);
            keys.push("admin");
        }
        // Adding the admin listener needs a restart.
        (None, n @ Some(_)) => {
            *n = None;
            keys.push("admin");
        }
    }
    pin!("session.store", session.store);
    pin!("session.redis_url", session.redis_url);
    pin!("session.redis_sentinel", session.redis_sentinel);
    pin!("session.redis_tls", session.redis_tls);
    pin!("session.redis_prefix", session.redis_prefix);
    pin!("session.max_sessions", session.max_sessions);
    // The user store is opened once, with its sealing key, mail sender and lockout settings.
    pin!("storage", storage);
    pin!("mfa.issuer", mfa.issuer);
    pin!("mfa.email", mfa.email);
    // The log subscriber and the audit file are set up once, at start.
    pin!("log", log);
    pin!("audit.file", audit);
    let lockout = |c: &Config| c.native.as_ref().map(|n| format!("{:?}", n.lockout));
    if lockout(old) != lockout(new) {
        if let (Some(o), Some(n)) = (&old.native, &mut new.native) {
            n.lockout = o.lockout;
        }
        keys.push("native.lockout");
    }
    keys
}

#[cfg(test)]
#[allow(clippy::panic, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use std::path::Path;

    fn config(listen: &str, route_role: &str, max_sessions: u32) -> Config {
        Config::from_str(
            Path::new("/tmp/restart-test.toml"),
            &base_text(listen, route_role, max_sessions),
        )
        .unwrap_or_else(|e| panic!("{e}"))
    }

    fn base_text(listen: &str, route_role: &str, max_sessions: u32) -> String {
        format!(
            r#"
[server]
listen = "{listen}"
public_url = "http://127.0.0.1:8080"
[upstream]
url = "http://127.0.0.1:3000"
[session]
max_sessions = {max_sessions}
[roles.agent]
groups = ["agents"]
[roles.admin]
groups = ["admins"]
[[routes]]
prefix = "/"
allow_roles = ["{route_role}"]
"#
        )
    }

    #[test]
    fn restart_keys_are_named_and_kept_while_live_keys_change() {
        let old = config("127.0.0.1:8080", "agent", 10);
        let mut new = config("127.0.0.1:9999", "admin", 20);
        assert_eq!(
            pin(&old, &mut new),
            vec!["server.listen", "session.max_sessions"]
        );
        assert_eq!(new.server.listen, old.server.listen);
        assert_eq!(new.session.max_sessions, 10);
        assert_eq!(
            new.routes[0].access,
            crate::config::Access::Roles(vec!["admin".into()])
        );
    }

    #[test]
    fn removing_the_admin_section_keeps_the_listener_but_revokes_every_token() {
        let with = config("127.0.0.1:8443", "agent", 100);
        let old_text = base_text("127.0.0.1:8443", "agent", 100)
            + "[admin]\nlisten = \"127.0.0.1:9090\"\ntokens = [{ name = \"ops\", sha256 = \""
            + &"a".repeat(64)
            + "\" }]\n";
        let old = Config::from_str(Path::new("/tmp/restart-test.toml"), &old_text)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(old.admin.as_ref().map(|a| a.tokens.len()), Some(1));
        let mut new = with;
        let keys = pin(&old, &mut new);
        assert!(keys.contains(&"admin"));
        let a = new
            .admin
            .unwrap_or_else(|| panic!("the listener stays until a restart"));
        assert_eq!(a.listen.to_string(), "127.0.0.1:9090");
        assert!(
            a.tokens.is_empty(),
            "a removed [admin] still accepted its tokens"
        );
    }

    #[test]
    fn an_unchanged_config_needs_no_restart() {
        let old = config("127.0.0.1:8080", "agent", 10);
        let mut new = config("127.0.0.1:8080", "agent", 10);
        assert!(pin(&old, &mut new).is_empty());
    }
}
