//! What a normalised request path names: one of the gateway's own endpoints (with its typed
//! step), a native login path, or the proxy path. Parsed once per request, without allocation,
//! by the router and by the fast lane alike.

use crate::metrics::RouteClass;
use crate::state::Gateway;
use hyper::Method;

/// A step of a pending login (`/mfa…`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MfaStep {
    Challenge,
    Enroll,
    Email,
    /// `/mfa/webauthn`: the passkey ceremony's options (JSON) for this stage.
    Passkey,
}

/// A page or form of the account page (`/account…`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AccountStep {
    Page,
    SessionsEnd,
    DevicesForget,
    RecoveryCodes,
    Totp,
    TotpConfirm,
    /// `/account/passkeys/options`: registration options (JSON) bound to this session.
    PasskeyOptions,
    PasskeyAdd,
    PasskeyRename,
    PasskeyRemove,
}

/// An OIDC endpoint of one IdP (`/oidc/{idp}/…`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OidcStep {
    Callback,
    BackchannelLogout,
}

/// A SAML endpoint of one IdP (`/saml/{idp}/…`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SamlStep {
    Metadata,
    Acs,
    Slo,
}

/// A forward-auth endpoint (`/auth/…`, DESIGN.md §9): the checks of nginx `auth_request`, of
/// Traefik's and Caddy's forward auth, and the return after a login they started.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuthStep {
    Nginx,
    Forward,
    Return,
}

/// What a normalised request path names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Endpoint<'a> {
    Jwks,
    Stylesheet,
    /// `/static/webauthn.js`: the passkey pages' one script.
    Script,
    Logo,
    LoginStart,
    Logout,
    Mfa(MfaStep),
    Account(AccountStep),
    /// The "this was not me" link of a notice (DESIGN.md §12).
    Report,
    /// A break-glass link (DESIGN.md §12).
    BreakGlass,
    /// The admin console (`/admin`: its page; `/admin/…`: its forms, DESIGN.md §12).
    Console(&'a str),
    Oidc(&'a str, OidcStep),
    Saml(&'a str, SamlStep),
    ForwardAuth(AuthStep),
    /// Under the reserved prefix, but nothing is there.
    Unknown,
    /// One of `[native] paths` (the path itself: the form posts back to it).
    NativeLogin(&'a str),
    /// Everything else: the route table decides.
    Proxy,
}

impl<'a> Endpoint<'a> {
    /// Parses a normalised path (`proxy::path::normalize`). No allocation.
    pub fn parse(gw: &Gateway, path: &'a str) -> Endpoint<'a> {
        Self::parse_with(&gw.config.server.prefix, |p| gw.is_native_path(p), path)
    }

    /// `parse` given the reserved prefix and the native-path test.
    pub fn parse_with(
        prefix: &str,
        is_native: impl Fn(&str) -> bool,
        path: &'a str,
    ) -> Endpoint<'a> {
        let Some(sub) = path
            .strip_prefix(prefix)
            .filter(|rest| rest.is_empty() || rest.starts_with('/'))
        else {
            return if is_native(path) {
                Endpoint::NativeLogin(path)
            } else {
                Endpoint::Proxy
            };
        };
        let idp_step =
            |kind: &str| -> Option<(&'a str, &'a str)> { sub.strip_prefix(kind)?.split_once('/') };
        match sub {
            "/jwks.json" => Endpoint::Jwks,
            "/static/style.css" => Endpoint::Stylesheet,
            "/static/webauthn.js" => Endpoint::Script,
            "/static/logo" => Endpoint::Logo,
            "/login" => Endpoint::LoginStart,
            "/logout" => Endpoint::Logout,
            "/mfa" => Endpoint::Mfa(MfaStep::Challenge),
            "/mfa/enroll" => Endpoint::Mfa(MfaStep::Enroll),
            "/mfa/email" => Endpoint::Mfa(MfaStep::Email),
            "/mfa/webauthn" => Endpoint::Mfa(MfaStep::Passkey),
            "/not-me" => Endpoint::Report,
            "/break-glass" => Endpoint::BreakGlass,
            "/account" => Endpoint::Account(AccountStep::Page),
            "/account/sessions/end" => Endpoint::Account(AccountStep::SessionsEnd),
            "/account/devices/forget" => Endpoint::Account(AccountStep::DevicesForget),
            "/account/recovery-codes" => Endpoint::Account(AccountStep::RecoveryCodes),
            "/account/totp" => Endpoint::Account(AccountStep::Totp),
            "/account/totp/confirm" => Endpoint::Account(AccountStep::TotpConfirm),
            "/account/passkeys/options" => Endpoint::Account(AccountStep::PasskeyOptions),
            "/account/passkeys/add" => Endpoint::Account(AccountStep::PasskeyAdd),
            "/account/passkeys/rename" => Endpoint::Account(AccountStep::PasskeyRename),
            "/account/passkeys/remove" => Endpoint::Account(AccountStep::PasskeyRemove),
            "/auth/nginx" => Endpoint::ForwardAuth(AuthStep::Nginx),
            "/auth/forward" => Endpoint::ForwardAuth(AuthStep::Forward),
            "/auth/return" => Endpoint::ForwardAuth(AuthStep::Return),
            "/admin" => Endpoint::Console(""),
            _ => {
                if let Some(action) = sub.strip_prefix("/admin/") {
                    Endpoint::Console(action)
                } else if let Some((idp, step)) = idp_step("/oidc/") {
                    match step {
                        "callback" => Endpoint::Oidc(idp, OidcStep::Callback),
                        "backchannel-logout" => Endpoint::Oidc(idp, OidcStep::BackchannelLogout),
                        _ => Endpoint::Unknown,
                    }
                } else if let Some((idp, step)) = idp_step("/saml/") {
                    match step {
                        "metadata" => Endpoint::Saml(idp, SamlStep::Metadata),
                        "acs" => Endpoint::Saml(idp, SamlStep::Acs),
                        "slo" => Endpoint::Saml(idp, SamlStep::Slo),
                        _ => Endpoint::Unknown,
                    }
                } else {
                    Endpoint::Unknown
                }
            }
        }
    }

    /// The metrics label of this endpoint.
    pub fn class(&self) -> RouteClass {
        match self {
            Endpoint::Proxy => RouteClass::Proxy,
            Endpoint::NativeLogin(_) => RouteClass::Native,
            Endpoint::ForwardAuth(_) => RouteClass::ForwardAuth,
            Endpoint::Jwks
            | Endpoint::Stylesheet
            | Endpoint::Script
            | Endpoint::Logo
            | Endpoint::LoginStart
            | Endpoint::Logout
            | Endpoint::Mfa(_)
            | Endpoint::Account(_)
            | Endpoint::Report
            | Endpoint::BreakGlass
            | Endpoint::Console(_)
            | Endpoint::Oidc(..)
            | Endpoint::Saml(..)
            | Endpoint::Unknown => RouteClass::Gateway,
        }
    }

    /// The methods this endpoint answers; others get `405`.
    pub fn allows(&self, m: &Method) -> bool {
        let (get, post) = (m == Method::GET || m == Method::HEAD, m == Method::POST);
        match self {
            Endpoint::Jwks
            | Endpoint::Stylesheet
            | Endpoint::Script
            | Endpoint::Logo
            | Endpoint::LoginStart => get,
            Endpoint::Logout | Endpoint::NativeLogin(_) => get || post,
            Endpoint::Mfa(MfaStep::Email | MfaStep::Passkey) => post,
            Endpoint::Mfa(_) => get || post,
            Endpoint::Account(AccountStep::Page) | Endpoint::Report => get || post,
            Endpoint::BreakGlass => get || post,
            Endpoint::Account(_) => post,
            Endpoint::Console("") => get,
            Endpoint::Console(_) => post,
            Endpoint::Oidc(_, OidcStep::Callback) => get,
            Endpoint::Oidc(_, OidcStep::BackchannelLogout) => post,
            Endpoint::Saml(_, SamlStep::Acs) => post,
            Endpoint::Saml(_, SamlStep::Metadata | SamlStep::Slo) => get,
            // nginx's auth subrequest keeps the original request's method; the check reads
            // no body and changes nothing, whatever the method.
            Endpoint::ForwardAuth(AuthStep::Nginx | AuthStep::Forward) => true,
            Endpoint::ForwardAuth(AuthStep::Return) => get,
            Endpoint::Unknown | Endpoint::Proxy => true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(path: &str) -> Endpoint<'_> {
        Endpoint::parse_with("/_portcullis", |p| p == "/normal", path)
    }

    #[test]
    fn every_gateway_path_parses_to_its_endpoint_and_others_to_the_proxy() {
        use Endpoint as E;
        for (path, want) in [
            ("/_portcullis/jwks.json", E::Jwks),
            ("/_portcullis/static/style.css", E::Stylesheet),
            ("/_portcullis/static/webauthn.js", E::Script),
            ("/_portcullis/mfa/webauthn", E::Mfa(MfaStep::Passkey)),
            (
                "/_portcullis/account/passkeys/remove",
                E::Account(AccountStep::PasskeyRemove),
            ),
            ("/_portcullis/login", E::LoginStart),
            ("/_portcullis/logout", E::Logout),
            ("/_portcullis/mfa", E::Mfa(MfaStep::Challenge)),
            ("/_portcullis/mfa/enroll", E::Mfa(MfaStep::Enroll)),
            ("/_portcullis/mfa/email", E::Mfa(MfaStep::Email)),
            ("/_portcullis/account", E::Account(AccountStep::Page)),
            ("/_portcullis/admin", E::Console("")),
            (
                "/_portcullis/admin/users/disable",
                E::Console("users/disable"),
            ),
            (
                "/_portcullis/account/totp/confirm",
                E::Account(AccountStep::TotpConfirm),
            ),
            (
                "/_portcullis/oidc/corp/callback",
                E::Oidc("corp", OidcStep::Callback),
            ),
            (
                "/_portcullis/oidc/corp/backchannel-logout",
                E::Oidc("corp", OidcStep::BackchannelLogout),
            ),
            ("/_portcullis/saml/okta/acs", E::Saml("okta", SamlStep::Acs)),
            (
                "/_portcullis/saml/okta/metadata",
                E::Saml("okta", SamlStep::Metadata),
            ),
            ("/_portcullis/auth/nginx", E::ForwardAuth(AuthStep::Nginx)),
            (
                "/_portcullis/auth/forward",
                E::ForwardAuth(AuthStep::Forward),
            ),
            ("/_portcullis/auth/return", E::ForwardAuth(AuthStep::Return)),
            ("/_portcullis/auth", E::Unknown),
            ("/_portcullis/oidc/corp/other", E::Unknown),
            ("/_portcullis/oidc/corp", E::Unknown),
            ("/_portcullis", E::Unknown),
            ("/_portcullis/", E::Unknown),
            ("/_portcullis/nothing", E::Unknown),
            ("/normal", E::NativeLogin("/normal")),
            ("/_portcullisx/jwks.json", E::Proxy),
            ("/agent/_portcullis/jwks.json", E::Proxy),
            ("/", E::Proxy),
        ] {
            assert_eq!(parse(path), want, "{path}");
        }
    }

    #[test]
    fn only_the_methods_an_endpoint_answers_reach_it() {
        assert!(Endpoint::Jwks.allows(&Method::GET));
        assert!(!Endpoint::Jwks.allows(&Method::POST));
        assert!(!Endpoint::Mfa(MfaStep::Email).allows(&Method::GET));
        assert!(!Endpoint::Account(AccountStep::Totp).allows(&Method::GET));
        assert!(!Endpoint::Console("").allows(&Method::POST));
        assert!(!Endpoint::Console("users/disable").allows(&Method::GET));
        assert!(Endpoint::Saml("x", SamlStep::Acs).allows(&Method::POST));
        assert!(!Endpoint::Oidc("x", OidcStep::Callback).allows(&Method::DELETE));
    }
}
