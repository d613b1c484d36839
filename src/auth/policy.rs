//! Route policy and return paths: longest-prefix routes, who may enter them, the strictest
//! policy over a user's roles (DESIGN.md §4), and `LocalPath`, the only accepted `rd` value.

use crate::config::{Access, Config, LoginTarget, RoleConfig, RouteConfig};
use std::time::Duration;

/// The compiled route table: longest prefix first.
#[derive(Clone, Debug)]
pub struct Routes {
    routes: Vec<RouteConfig>,
    /// A prefix has an upper-case letter: every path needs the case-insensitive reading.
    upper: bool,
}

impl Routes {
    pub fn new(mut routes: Vec<RouteConfig>) -> Self {
        routes.sort_by_key(|r| std::cmp::Reverse(r.prefix.len()));
        let upper = routes
            .iter()
            .any(|r| r.prefix.bytes().any(|b| b.is_ascii_uppercase()));
        Self { routes, upper }
    }

    /// The longest route whose prefix matches `path` exactly, on a `/` boundary.
    pub fn find(&self, path: &str) -> Option<&RouteConfig> {
        self.routes
            .iter()
            .find(|r| prefix_matches(&r.prefix, path, false))
    }

    /// The route of a normalised path, refusing paths that common servers would read as another
    /// route (DESIGN.md §6). Each server's reading only widens what a prefix matches: decoding
    /// once (nginx, Flask), cutting `;parameters` (Tomcat, Jetty; `%3B` too behind a decoding
    /// proxy) and ignoring case (Express) turn a segment equal to a prefix segment into itself,
    /// since prefixes hold no `%`, `;` or dot segments (config validation) and normalisation
    /// left no segment that a reading could remove (`proxy::path`). So when the narrowest
    /// reading (the path as is) and the widest (`loosest_reading`, any case) pick the same
    /// route, every reading in between does too.
    pub fn decide(&self, path: &str) -> RouteDecision<'_> {
        let Some(route) = self.find(path) else {
            return RouteDecision::NoRoute;
        };
        let loose = crate::proxy::path::loosest_reading(path);
        if loose.is_none() && !self.upper && !path.bytes().any(|b| b.is_ascii_uppercase()) {
            return RouteDecision::Route(route);
        }
        let widest = loose.as_deref().unwrap_or(path);
        match self
            .routes
            .iter()
            .find(|r| prefix_matches(&r.prefix, widest, true))
        {
            Some(r) if r.prefix == route.prefix => RouteDecision::Route(route),
            _ => RouteDecision::Ambiguous,
        }
    }
}

/// Outcome of routing one path.
#[derive(Debug)]
pub enum RouteDecision<'a> {
    Route(&'a RouteConfig),
    /// No route matches: 403.
    NoRoute,
    /// Servers could disagree about which route this path is: 400.
    Ambiguous,
}

/// Whether `prefix` is `path` or its leading segments. `/` alone is the only boundary: to
/// nginx, Express and Flask `/agent;x` is another segment than `/agent` (`decide` refuses the
/// paths where that matters).
fn prefix_matches(prefix: &str, path: &str, ignore_case: bool) -> bool {
    if prefix == "/" {
        return true;
    }
    let (Some(head), Some(rest)) = (path.get(..prefix.len()), path.get(prefix.len()..)) else {
        return false;
    };
    let same = if ignore_case {
        head.eq_ignore_ascii_case(prefix)
    } else {
        head == prefix
    };
    same && (rest.is_empty() || rest.starts_with('/'))
}

/// Whether any of `roles` is admitted by the route.
pub fn admits(route: &RouteConfig, roles: &[String]) -> bool {
    match &route.access {
        Access::Public => true,
        Access::Roles(allowed) => roles.iter().any(|r| allowed.contains(r)),
    }
}

/// Where an unauthenticated browser on this route is sent.
pub fn login_for<'a>(config: &'a Config, route: &'a RouteConfig) -> Option<&'a LoginTarget> {
    route
        .login
        .as_ref()
        .or(config.server.default_login.as_ref())
}

/// The strictest policy over a set of roles (DESIGN.md §4).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EffectivePolicy {
    pub require_mfa: bool,
    /// Zero: no "remember this device".
    pub remember_mfa: Duration,
    pub idle_timeout: Duration,
    pub max_lifetime: Duration,
}

/// Combines role policies: MFA if any role requires it, the shortest remember/idle/lifetime.
pub fn effective_policy(config: &Config, roles: &[String]) -> EffectivePolicy {
    let mut p = EffectivePolicy {
        require_mfa: false,
        remember_mfa: Duration::MAX,
        idle_timeout: config.session.idle_timeout,
        max_lifetime: config.session.max_lifetime,
    };
    let mut any_mfa_role = false;
    for r in roles.iter().filter_map(|r| config.role(r)) {
        apply(&mut p, r, &mut any_mfa_role);
    }
    if !any_mfa_role {
        p.remember_mfa = Duration::ZERO;
    }
    p
}

fn apply(p: &mut EffectivePolicy, r: &RoleConfig, any_mfa_role: &mut bool) {
    if r.require_mfa {
        p.require_mfa = true;
        *any_mfa_role = true;
        p.remember_mfa = p.remember_mfa.min(r.remember_mfa);
    }
    if let Some(t) = r.idle_timeout {
        p.idle_timeout = p.idle_timeout.min(t);
    }
    if let Some(t) = r.max_lifetime {
        p.max_lifetime = p.max_lifetime.min(t);
    }
}

/// Roles whose `groups` intersect the user's groups (SSO users).
pub fn roles_for_groups(config: &Config, groups: &[String]) -> Vec<String> {
    config
        .roles
        .values()
        .filter(|r| r.groups.iter().any(|g| groups.contains(g)))
        .map(|r| r.name.clone())
        .collect()
}

/// A return path that stays on the gateway's origin (DESIGN.md §3): one leading `/`, no `//`,
/// no `\`, no scheme, no control characters, also after one more percent-decoding.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LocalPath(String);

impl LocalPath {
    pub const MAX_LEN: usize = 2048;

    /// Parses an already-decoded `rd` value. `None` means "use `/`".
    pub fn parse(s: &str) -> Option<LocalPath> {
        if s.len() > Self::MAX_LEN || s.contains(' ') || !Self::is_local(s) {
            return None;
        }
        // A second decoding must still be local: some servers and browsers decode again.
        let again = percent_encoding::percent_decode_str(s).decode_utf8().ok()?;
        if !Self::is_local(&again) {
            return None;
        }
        Some(LocalPath(s.to_owned()))
    }

    fn is_local(s: &str) -> bool {
        let b = s.as_bytes();
        b.first() == Some(&b'/')
            && !s.contains("//")
            && !s.contains('\\')
            && !s.chars().any(|c| {
                c.is_control()
                    || (c.is_whitespace() && c != ' ')
                    || matches!(c, '\u{200b}'..='\u{200f}' | '\u{2028}'..='\u{202e}' | '\u{feff}')
            })
            && !s.starts_with("/ ")
            && !s.split(['?', '#']).next().unwrap_or_default().contains(':')
    }

    /// The root path, used whenever `rd` is missing or refused.
    pub fn root() -> LocalPath {
        LocalPath("/".to_owned())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// An absolute URL on the gateway's own origin.
    pub fn absolute(&self, origin: &str) -> String {
        format!("{origin}{}", self.0)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn route(prefix: &str) -> RouteConfig {
        RouteConfig {
            prefix: prefix.into(),
            access: Access::Public,
            login: None,
            bearer: false,
        }
    }

    #[test]
    fn longest_prefix_wins_on_segment_boundaries() {
        let r = Routes::new(vec![route("/"), route("/agent"), route("/agent/admin")]);
        assert_eq!(r.find("/agent/admin/x").unwrap().prefix, "/agent/admin");
        assert_eq!(r.find("/agent/x").unwrap().prefix, "/agent");
        assert_eq!(r.find("/agent").unwrap().prefix, "/agent");
        assert_eq!(r.find("/agentx").unwrap().prefix, "/");
    }

    #[test]
    fn no_route_when_nothing_matches() {
        let r = Routes::new(vec![route("/hc")]);
        assert!(matches!(r.decide("/other"), RouteDecision::NoRoute));
    }

    #[test]
    fn readings_that_change_the_route_are_refused() {
        let r = Routes::new(vec![route("/"), route("/agent")]);
        // Parameters after the prefix segment: every reading is /agent.
        assert!(
            matches!(r.decide("/agent/x;y=1/z"), RouteDecision::Route(rt) if rt.prefix == "/agent")
        );
        assert!(
            matches!(r.decide("/agent/;jsessionid=1"), RouteDecision::Route(rt) if rt.prefix == "/agent")
        );
        // On the prefix segment itself, servlet containers read /agent, nginx, Express and
        // Flask a segment `agent;x=1` of the / route (was routed /agent before issue 14).
        assert!(matches!(r.decide("/agent;x=1/y"), RouteDecision::Ambiguous));
        assert!(matches!(
            r.decide("/agent;jsessionid=1"),
            RouteDecision::Ambiguous
        ));
        // `%3B` is a `;` once a decoding proxy has passed it on.
        assert!(matches!(r.decide("/agent%3Bx/y"), RouteDecision::Ambiguous));
        assert!(matches!(r.decide("/foo;x/agent"), RouteDecision::Route(rt) if rt.prefix == "/"));
        assert!(matches!(r.decide("/AGENT/x"), RouteDecision::Ambiguous));
        assert!(matches!(r.decide("/hc;/agent"), RouteDecision::Route(rt) if rt.prefix == "/"));
        let r2 = Routes::new(vec![route("/"), route("/hc")]);
        // A public prefix with parameters would let Express's `/:tenant/tickets` see `hc;x`.
        assert!(matches!(r2.decide("/hc;x"), RouteDecision::Ambiguous));
        assert!(matches!(
            r2.decide("/hc;/tickets/5"),
            RouteDecision::Ambiguous
        ));
        assert!(matches!(r2.decide("/hcx;y"), RouteDecision::Route(rt) if rt.prefix == "/"));
        assert!(matches!(r2.decide("/x;/hc"), RouteDecision::Route(rt) if rt.prefix == "/"));
    }

    #[test]
    fn readings_that_decode_or_fold_case_into_a_prefix_are_refused() {
        let r = Routes::new(vec![route("/"), route("/a!b"), route("/Docs")]);
        // Flask and nginx decode `%21` before they route; the gateway keeps it encoded.
        assert!(matches!(r.decide("/a%21b/x"), RouteDecision::Ambiguous));
        assert!(matches!(r.decide("/a!b/x"), RouteDecision::Route(rt) if rt.prefix == "/a!b"));
        // Express matches `/docs` to a router mounted at `/Docs`.
        assert!(matches!(r.decide("/docs/x"), RouteDecision::Ambiguous));
        assert!(matches!(r.decide("/Docs/x"), RouteDecision::Route(rt) if rt.prefix == "/Docs"));
        assert!(matches!(r.decide("/x/Docs"), RouteDecision::Route(rt) if rt.prefix == "/"));
    }

    #[test]
    fn local_paths_are_accepted() {
        for ok in ["/", "/agent/tickets?id=4#top", "/a/b%20c", "/search?q=a:b"] {
            assert_eq!(LocalPath::parse(ok).unwrap().as_str(), ok);
        }
    }

    #[test]
    fn foreign_or_odd_paths_are_refused() {
        for bad in [
            "",
            "agent",
            "//evil.com",
            "/\\evil.com",
            "\\\\evil.com",
            "https://evil.com",
            "/%2f%2fevil.com",
            "/%5cevil.com",
            "/\tevil",
            "/a\nb",
            "javascript:alert(1)",
            "/x//y",
            "/%09/evil.com",
            "/ /evil.com",
            "/javascript:alert(1)",
        ] {
            assert_eq!(LocalPath::parse(bad), None, "{bad:?} must be refused");
        }
    }
}

/// Property (issue 9): every `rd` that `LocalPath::parse` accepts, raw or after the decoding a
/// query gets, is a local path by the contract's rules (checked independently of `is_local`).
#[cfg(test)]
mod props {
    use super::*;
    use crate::fuzzing::check_local_path;
    use proptest::prelude::*;

    /// Return paths built from the pieces open-redirect payloads are made of.
    fn rd() -> impl Strategy<Value = String> {
        let piece = proptest::sample::select(
            &[
                "/",
                "//",
                "\\",
                "%2f",
                "%2F",
                "%5c",
                "%5C",
                "%09",
                "%0a",
                "%0D",
                "%20",
                " ",
                "\t",
                "\n",
                ":",
                "https:",
                "javascript:",
                "evil.com",
                "@",
                "?",
                "#",
                "%3f",
                "%23",
                ".",
                "..",
                "a",
                "%25",
                "%",
                "%2525",
                "\u{2028}",
                "\u{200b}",
                "\u{feff}",
                "\u{ff0f}",
                "%e2%80%a8",
                "é",
                ";",
                "x=1",
                "&",
                "%3a",
            ][..],
        );
        (any::<bool>(), proptest::collection::vec(piece, 0..8))
            .prop_map(|(lead, p)| format!("{}{}", if lead { "/" } else { "" }, p.concat()))
    }

    proptest! {
        #[test]
        fn every_accepted_rd_is_a_local_path(s in rd()) {
            let decoded = percent_encoding::percent_decode_str(&s).decode_utf8_lossy().into_owned();
            for candidate in [&s, &decoded] {
                if let Some(p) = LocalPath::parse(candidate) {
                    prop_assert_eq!(p.as_str(), candidate.as_str());
                    let local = check_local_path(p.as_str());
                    prop_assert!(local.is_ok(), "{:?}", local);
                }
            }
        }
    }
}
