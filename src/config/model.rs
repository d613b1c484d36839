//! The validated configuration: one typed [`Config`] and the settings it is made of. Only the
//! validator (`validate.rs`) builds one; nothing here knows about TOML or serde (`raw.rs`).
//! Invariants: paths are absolute, `${ENV}` references are resolved, secrets are newtypes.

use super::error::ConfigError;
use super::ipnet::IpNet;
use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

/// The validated configuration. Paths are absolute; secrets are interpolated.
#[derive(Clone, Debug)]
pub struct Config {
    pub path: PathBuf,
    pub base_dir: PathBuf,
    pub server: ServerConfig,
    pub upstream: UpstreamConfig,
    pub admin: Option<AdminConfig>,
    pub session: SessionConfig,
    pub storage: Option<StorageConfig>,
    pub native: Option<NativeConfig>,
    pub mfa: MfaConfig,
    pub idps: Vec<IdpConfig>,
    pub roles: BTreeMap<String, RoleConfig>,
    pub routes: Vec<RouteConfig>,
    pub branding: Branding,
    /// `[pages]`: accent colour, custom stylesheet, default language.
    pub pages: PagesConfig,
    /// `[notify]`: account-safety mails (DESIGN.md §12).
    pub notify: NotifyConfig,
    /// `[break_glass]`: emergency access when the IdP is down (DESIGN.md §12).
    pub break_glass: BreakGlassConfig,
    /// `[admin] console_roles`, `console_fresh_mfa`: the browser console (DESIGN.md §12).
    pub console: ConsoleConfig,
    /// `[identity_headers]`: the names identity values go upstream under (DESIGN.md §2).
    pub identity_headers: IdentityHeaderNames,
    pub log: LogConfig,
    pub audit: AuditConfig,
    /// `[forward_auth]`: off unless enabled.
    pub forward_auth: ForwardAuthConfig,
    /// `[[service_tokens]]`: machine clients' tokens, by hash (DESIGN.md §9).
    pub service_tokens: Vec<ServiceTokenConfig>,
    /// Accepted but risky settings, each with file, line and key (`portcullis check` prints them).
    pub warnings: Vec<ConfigError>,
}

#[derive(Clone, Debug)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    /// Origin of the public URL, without a trailing slash (`https://helpdesk.example.com`).
    pub public_origin: String,
    pub public_host: String,
    pub https: bool,
    pub tls: Option<TlsFiles>,
    pub trusted_proxies: Vec<IpNet>,
    pub default_login: Option<LoginTarget>,
    pub workers: usize,
    pub access_log: bool,
    /// Reserved prefix for the gateway's own endpoints, e.g. `/_portcullis`.
    pub prefix: String,
    pub max_header_bytes: usize,
    pub max_headers: usize,
    pub header_timeout: Duration,
    pub max_body_bytes: usize,
    pub shutdown_grace: Duration,
    pub max_connections: usize,
    /// Connections at once from one client address; 0: no limit (behind a load balancer every
    /// connection comes from its address).
    pub max_connections_per_ip: usize,
    /// A request body of the gateway's own endpoints must arrive within this (`408`).
    pub body_timeout: Duration,
    /// A response write that makes no progress for this long closes the connection (a client
    /// that stops reading cannot hold a connection, an upstream connection and buffers forever).
    pub send_timeout: Duration,
    /// PKCS#8 file of the key that signs `X-Portcullis-Assertion`; generated when missing.
    pub signing_key: PathBuf,
    /// `Strict-Transport-Security` sent on every public response (DESIGN.md §6): a checked
    /// header value, `max-age=31536000` by default with an https `public_url`; `None` with an
    /// http one or `hsts = "off"`.
    pub hsts: Option<String>,
}

/// `[forward_auth]` (DESIGN.md §9): the auth endpoints for nginx, Caddy and Traefik.
#[derive(Clone, Debug, Default)]
pub struct ForwardAuthConfig {
    pub enabled: bool,
    /// Hosts (lower case, no port) a login may return to besides `server.public_url`'s.
    pub allowed_hosts: Vec<String>,
}

/// One `[[service_tokens]]` entry: the token itself is never stored, only its SHA-256.
#[derive(Clone, Debug)]
pub struct ServiceTokenConfig {
    pub name: String,
    pub sha256: [u8; 32],
    /// Defined roles, at least one.
    pub roles: Vec<String>,
}

/// `[[idp]] bearer`: the OIDC IdP vouches for JWT access tokens whose `aud` names `audience`.
#[derive(Clone, Debug)]
pub struct BearerSettings {
    pub audience: String,
    /// The claim holding role names: an array of strings or one space-separated string.
    pub roles_claim: String,
}

#[derive(Clone, Debug)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

#[derive(Clone, Debug)]
pub struct UpstreamConfig {
    /// `http` or `https` (then `tls` is set).
    pub scheme: String,
    /// `host:port` of the upstream.
    pub authority: String,
    /// Path prefix of the upstream URL without a trailing slash ("" for the root).
    pub base_path: String,
    pub connect_timeout: Duration,
    pub timeout: Duration,
    pub pool_idle_timeout: Duration,
    pub pool_max_idle: usize,
    /// Set exactly when `scheme` is `https`: how the upstream's certificate is verified.
    pub tls: Option<UpstreamTls>,
}

/// TLS to an https upstream (DESIGN.md §9), read from the files at load: the certificate and
/// the name are always verified (there is no setting that turns either off).
#[derive(Clone)]
pub struct UpstreamTls {
    /// Verified against the certificate and sent as SNI: `server_name`, else the URL's host.
    pub server_name: rustls::pki_types::ServerName<'static>,
    /// ALPN `h2`, `http/1.1`: requests.
    pub client: std::sync::Arc<rustls::ClientConfig>,
    /// ALPN `http/1.1` only: WebSocket upgrades, which HTTP/2 cannot carry here.
    pub client_h1: std::sync::Arc<rustls::ClientConfig>,
    /// SHA-256 over the name and the files' contents: a reload that changed any of them (a
    /// rotated CA or client certificate) makes a new upstream client; an unchanged one keeps
    /// its pool.
    pub fingerprint: [u8; 32],
}

impl std::fmt::Debug for UpstreamTls {
    /// The name and the fingerprint only: never the key, and reload compares this text.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpstreamTls")
            .field("server_name", &self.server_name)
            .field("fingerprint", &self.fingerprint)
            .finish()
    }
}

#[derive(Clone, Debug)]
pub struct AdminConfig {
    pub listen: SocketAddr,
    pub tokens: Vec<AdminTokenHash>,
    pub tls: Option<TlsFiles>,
}

#[derive(Clone, Debug)]
pub struct AdminTokenHash {
    pub name: String,
    pub sha256: [u8; 32],
    /// What the token may do; every scope unless the config lists some.
    pub scopes: Scopes,
}

/// One scope of an admin token (DESIGN.md §11).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    /// `GET /metrics`.
    Metrics,
    /// Every other `GET` of the admin API.
    Read,
    /// Every request that changes something (`POST`, `PATCH`, `DELETE`).
    Write,
}

impl Scope {
    pub const ALL: [Scope; 3] = [Scope::Metrics, Scope::Read, Scope::Write];

    pub const fn as_str(self) -> &'static str {
        match self {
            Scope::Metrics => "metrics",
            Scope::Read => "read",
            Scope::Write => "write",
        }
    }

    pub fn parse(s: &str) -> Option<Scope> {
        Scope::ALL.into_iter().find(|x| x.as_str() == s)
    }
}

/// A set of scopes. No scope implies another: a `write` token without `read` cannot list.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Scopes {
    metrics: bool,
    read: bool,
    write: bool,
}

impl Scopes {
    /// Every scope: what a token without a `scopes` list has, as before scopes existed.
    pub const fn all() -> Scopes {
        Scopes {
            metrics: true,
            read: true,
            write: true,
        }
    }

    pub fn with(mut self, s: Scope) -> Scopes {
        match s {
            Scope::Metrics => self.metrics = true,
            Scope::Read => self.read = true,
            Scope::Write => self.write = true,
        }
        self
    }

    pub fn allows(self, s: Scope) -> bool {
        match s {
            Scope::Metrics => self.metrics,
            Scope::Read => self.read,
            Scope::Write => self.write,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SessionStoreKind {
    Memory,
    Redis,
}

#[derive(Clone, Debug)]
pub struct SessionConfig {
    pub store: SessionStoreKind,
    pub redis_url: Option<String>,
    /// Set instead of `redis_url` when the primary is found through Redis Sentinel.
    pub redis_sentinel: Option<RedisSentinel>,
    pub redis_tls: Option<StoreTls>,
    /// Prefix of every Redis key (several deployments can share one Redis).
    pub redis_prefix: String,
    pub idle_timeout: Duration,
    pub max_lifetime: Duration,
    /// How often at most the idle timestamp of one session is written.
    pub touch_interval: Duration,
    pub max_sessions: usize,
    /// Lifetime of a pending login (between the password and the second factor, or an SSO round trip).
    pub pending_ttl: Duration,
}

#[derive(Clone, Debug)]
pub struct StorageConfig {
    pub url: String,
    pub encryption_key: Option<String>,
    /// PostgreSQL only: the CA (instead of the web PKI roots) and a client certificate.
    pub tls: Option<StoreTls>,
}

/// `session.redis_sentinel` (DESIGN.md §11). `Debug` hides the password and the node URLs
/// (a sentinel URL may carry one too).
#[derive(Clone)]
pub struct RedisSentinel {
    pub master: String,
    /// `redis://` or `rediss://` URLs of the sentinels; the data nodes use TLS exactly when
    /// these do.
    pub nodes: Vec<String>,
    pub password: Option<String>,
}

impl std::fmt::Debug for RedisSentinel {
    /// Compared by `restart::pin`: the text changes when a node or the password does.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut h = ring::digest::Context::new(&ring::digest::SHA256);
        for n in &self.nodes {
            h.update(n.as_bytes());
            h.update(b"\0");
        }
        h.update(self.password.as_deref().unwrap_or_default().as_bytes());
        f.debug_struct("RedisSentinel")
            .field("master", &self.master)
            .field("nodes", &self.nodes.len())
            .field("digest", &h.finish().as_ref())
            .finish()
    }
}

/// TLS material for a store connection, read and checked at load (`portcullis check` parses
/// the same bytes the connection uses). Certificates and names are always verified.
#[derive(Clone)]
pub struct StoreTls {
    /// PEM of the only trusted roots; `None`: the web PKI roots.
    pub ca_pem: Option<Vec<u8>>,
    /// PEM of the client certificate chain and of its key (mutual TLS).
    pub client: Option<(Vec<u8>, zeroize::Zeroizing<Vec<u8>>)>,
    /// SHA-256 over all of it: what `Debug` (and so `restart::pin`) shows.
    pub fingerprint: [u8; 32],
}

impl std::fmt::Debug for StoreTls {
    /// The fingerprint only: never the key.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreTls")
            .field("ca", &self.ca_pem.is_some())
            .field("client_cert", &self.client.is_some())
            .field("fingerprint", &self.fingerprint)
            .finish()
    }
}

#[derive(Clone, Debug)]
pub struct NativeConfig {
    pub paths: Vec<String>,
    pub lockout: LockoutConfig,
    /// `/normal` offers a passkey sign-in standing for both factors.
    pub passkey_login: bool,
}

#[derive(Clone, Copy, Debug)]
pub struct LockoutConfig {
    pub max_failures: u32,
    pub window: Duration,
    pub duration: Duration,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum MfaMethod {
    Totp,
    Email,
    RecoveryCode,
    Webauthn,
}

impl MfaMethod {
    /// Every method, in the order pages offer them.
    pub const ALL: [MfaMethod; 4] = [
        MfaMethod::Webauthn,
        MfaMethod::Totp,
        MfaMethod::Email,
        MfaMethod::RecoveryCode,
    ];

    /// The name used in the config and in audit events.
    pub fn as_str(self) -> &'static str {
        match self {
            MfaMethod::Totp => "totp",
            MfaMethod::Email => "email",
            MfaMethod::RecoveryCode => "recovery_code",
            MfaMethod::Webauthn => "webauthn",
        }
    }

    /// The inverse of `as_str`.
    pub fn parse(s: &str) -> Option<MfaMethod> {
        Self::ALL.into_iter().find(|m| m.as_str() == s)
    }
}

/// `[mfa.webauthn]` as resolved against `server.public_url`.
#[derive(Clone, Debug)]
pub struct WebauthnConfig {
    /// The relying party id: `public_url`'s host unless overridden (a registrable suffix of it).
    pub rp_id: String,
    pub rp_name: String,
    /// The only origin a ceremony may come from: `public_url`'s.
    pub origin: String,
}

#[derive(Clone, Debug)]
pub struct MfaConfig {
    pub issuer: String,
    pub methods: Vec<MfaMethod>,
    pub email: Option<EmailConfig>,
    pub recovery_count: usize,
    /// Zero: recovery codes never expire.
    pub recovery_ttl: Duration,
    /// How a user without any second factor gets a first one (DESIGN.md §6).
    pub enrollment: Enrollment,
    /// How long an enrollment link stays valid.
    pub invite_ttl: Duration,
    /// Present exactly when `webauthn` is one of `methods`.
    pub webauthn: Option<WebauthnConfig>,
}

/// `[notify]`: which account-safety mails are sent (each needs `[mfa.email]` and `[storage]`).
#[derive(Clone, Debug)]
pub struct NotifyConfig {
    /// A sign-in from a browser the user has not used before (default: on when mail is set).
    pub new_device: bool,
    /// A recovery code was used to sign in.
    pub recovery_code_used: bool,
    /// A second factor was added or removed (enrollment, re-enrollment, admin reset).
    pub factor_changed: bool,
    /// How long a "this was not me" link works.
    pub report_ttl: Duration,
    /// Who is told about reports and every break-glass step.
    pub admins: Vec<String>,
}

/// The browser console for admins (`[admin] console_*`, DESIGN.md §12).
#[derive(Clone, Debug)]
pub struct ConsoleConfig {
    /// Roles whose sessions may open the console; empty: the console answers 404.
    pub roles: Vec<String>,
    /// The oldest second factor the console accepts before asking for it again.
    pub fresh_mfa: Duration,
}

/// `[break_glass]`: emergency access for named staff while the IdP is down.
#[derive(Clone, Debug)]
pub struct BreakGlassConfig {
    /// The longest window an admin may arm.
    pub max_window: Duration,
    /// The roles a break-glass session carries (an arming request may name fewer).
    pub roles: Vec<String>,
}

/// `[mfa] enrollment`: what proves a user may enroll a first second factor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Enrollment {
    /// A single-use, expiring link (mailed, or handed over by an admin) and then the password.
    Invite,
    /// The password alone, right after it: whoever holds it picks the factor (small setups).
    FirstLogin,
}

impl MfaConfig {
    pub fn allows(&self, m: MfaMethod) -> bool {
        self.methods.contains(&m)
    }
}

#[derive(Clone, Debug)]
pub struct EmailConfig {
    pub smtp_url: String,
    pub from: String,
    pub code_ttl: Duration,
    pub resend_interval: Duration,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OnMissingMfa {
    Deny,
    StepUp,
    Trust,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IdpKind {
    Oidc,
    Saml,
}

#[derive(Clone, Debug)]
pub struct IdpConfig {
    pub id: String,
    pub kind: IdpKind,
    pub display_name: String,
    pub on_missing_mfa: OnMissingMfa,
    /// The roles this IdP may grant (`roles = [...]`); None: every role. Roles its groups map
    /// to outside this list are dropped at login (DESIGN.md §6: a partner IdP cannot make its
    /// users admins).
    pub roles: Option<Vec<String>>,
    /// The OpenID Connect settings of a `kind = "oidc"` IdP.
    pub oidc: Option<OidcSettings>,
    /// The SAML settings of a `kind = "saml"` IdP.
    pub saml: Option<SamlSettings>,
}

impl IdpConfig {
    /// Whether this IdP may grant `role` (its `roles` list, when set, names it).
    pub fn may_grant(&self, role: &str) -> bool {
        self.roles
            .as_ref()
            .is_none_or(|allowed| allowed.iter().any(|r| r == role))
    }
}

/// Where a SAML IdP's metadata comes from.
#[derive(Clone, Debug)]
pub enum SamlMetadata {
    /// Read and checked at load time (a file without a signing certificate is a config error).
    File { path: PathBuf, xml: String },
    /// Fetched at start and every `refresh`; a fetched document without a signing certificate is
    /// refused and the last good one kept.
    Url { url: String, refresh: Duration },
}

/// One SAML 2.0 IdP (issue 5): SP-initiated login over the HTTP-Redirect binding, responses
/// over HTTP-POST at `/saml/{id}/acs`, Single Logout over HTTP-Redirect.
#[derive(Clone, Debug)]
pub struct SamlSettings {
    pub metadata: SamlMetadata,
    pub sp_entity_id: String,
    /// PEM private key and certificate: AuthnRequests and LogoutRequests are signed when set.
    pub sp_key: Option<PathBuf>,
    pub sp_cert: Option<PathBuf>,
    /// None: the subject (below) is the username.
    pub username_attribute: Option<String>,
    /// The attribute whose single value is the stable subject of the principal
    /// (`<idp-id>:<subject>`). None: the NameID, which must then be persistent or emailAddress.
    pub subject_attribute: Option<String>,
    pub email_attribute: String,
    pub groups_attribute: String,
    pub allow_idp_initiated: bool,
    /// Signature algorithm names (`rsa-sha256`, …); `rsa-sha1` only when listed explicitly.
    pub allowed_algorithms: Vec<String>,
    pub clock_skew: Duration,
    pub authn_context_any: Vec<String>,
    /// `RequestedAuthnContext` of the AuthnRequest (exact comparison); empty: none sent.
    pub requested_authn_context: Vec<String>,
    pub force_authn: bool,
    pub http_timeout: Duration,
}

/// The signature algorithms a SAML IdP may use when `allowed_algorithms` is not set.
pub const SAML_DEFAULT_ALGORITHMS: &[&str] = &[
    "rsa-sha256",
    "rsa-sha384",
    "rsa-sha512",
    "ecdsa-sha256",
    "ecdsa-sha384",
    "ecdsa-sha512",
];

/// Every algorithm name `allowed_algorithms` accepts.
pub const SAML_KNOWN_ALGORITHMS: &[&str] = &[
    "rsa-sha256",
    "rsa-sha384",
    "rsa-sha512",
    "ecdsa-sha256",
    "ecdsa-sha384",
    "ecdsa-sha512",
    "rsa-sha1",
];

/// How the gateway authenticates to an OpenID Provider's token endpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClientAuth {
    ClientSecretBasic,
    ClientSecretPost,
}

/// One OpenID Provider (issue 4): discovery from `issuer`, code flow with PKCE.
#[derive(Clone, Debug)]
pub struct OidcSettings {
    /// The issuer exactly as discovered and as the `iss` claim must read.
    pub issuer: String,
    pub client_id: String,
    pub client_secret: crate::secret::ClientSecret,
    pub client_auth: ClientAuth,
    pub scopes: Vec<String>,
    /// None: `preferred_username`, then `email`, then `sub`.
    pub username_claim: Option<String>,
    pub groups_claim: String,
    pub acr_values: Vec<String>,
    /// Merge the userinfo endpoint's claims into the ID token's.
    pub userinfo: bool,
    /// RP-initiated logout at the provider's `end_session_endpoint`.
    pub logout: bool,
    pub amr_any: Vec<String>,
    pub acr_any: Vec<String>,
    /// Bound on every request to the provider (discovery, JWKS, token, userinfo).
    pub http_timeout: Duration,
    /// Set: JWT access tokens of this IdP are accepted on `bearer = true` routes.
    pub bearer: Option<BearerSettings>,
}

/// Where an unauthenticated browser is sent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LoginTarget {
    /// The native login form (the first of `native.paths`).
    Native,
    /// An `[[idp]]` by id.
    Idp(String),
}

#[derive(Clone, Debug)]
pub struct RoleConfig {
    pub name: String,
    pub groups: Vec<String>,
    pub require_mfa: bool,
    /// Zero: a second factor at every login, no "remember this device".
    pub remember_mfa: Duration,
    pub idle_timeout: Option<Duration>,
    pub max_lifetime: Option<Duration>,
    /// `roles.<r>.mfa_methods`; `None`: every `[mfa] methods` one.
    pub mfa_methods: Option<Vec<MfaMethod>>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Access {
    Public,
    Roles(Vec<String>),
}

#[derive(Clone, Debug)]
pub struct RouteConfig {
    pub prefix: String,
    pub access: Access,
    pub login: Option<LoginTarget>,
    /// `Authorization: Bearer` (a service token or a bearer IdP's JWT) is accepted here.
    pub bearer: bool,
}

/// The identity header names, validated (lower-case header tokens, distinct, none a name the
/// gateway or HTTP already gives another meaning). Defaults are DESIGN.md §2's.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdentityHeaderNames {
    pub user: String,
    pub email: String,
    pub groups: String,
    pub roles: String,
    pub method: String,
    pub mfa: String,
    pub session: String,
    pub assertion: String,
}

impl Default for IdentityHeaderNames {
    fn default() -> Self {
        Self {
            user: "x-forwarded-user".into(),
            email: "x-forwarded-email".into(),
            groups: "x-forwarded-groups".into(),
            roles: "x-auth-roles".into(),
            method: "x-auth-method".into(),
            mfa: "x-auth-mfa".into(),
            session: "x-auth-session".into(),
            assertion: "x-portcullis-assertion".into(),
        }
    }
}

/// `[log]` (DESIGN.md §11): how the process log is written. `RUST_LOG` wins over `level`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogConfig {
    pub format: LogFormat,
    /// A `tracing` filter directive (`info`, `warn,portcullis=debug`); checked at load.
    pub level: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines (colour only on a terminal).
    Text,
    /// One JSON object per line: `ts`, `level`, `target`, `message` and the fields.
    Json,
}

/// `[audit]`: where the audit stream goes besides the log and the audit table.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AuditConfig {
    pub file: Option<AuditSink>,
}

/// An audit stream of JSON lines, for a SIEM to tail.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AuditSink {
    /// `file = "-"`.
    Stdout,
    /// Appended to (absolute; relative paths are resolved against the config's directory).
    File(PathBuf),
}

#[derive(Clone, Debug)]
pub struct Branding {
    pub product_name: String,
    pub logo: Option<PathBuf>,
}

/// `[pages]`, validated: the colour is `#rgb` or `#rrggbb`, the custom CSS and the frame were
/// read (and size-checked) when this config was loaded, so a reload reads the files again.
#[derive(Clone, Debug, Default)]
pub struct PagesConfig {
    pub accent_color: Option<String>,
    pub custom_css: Option<CustomCss>,
    /// The operator's page frame (`templates`' `layout.html`), parsed at load; `None`: ours.
    pub layout: Option<std::sync::Arc<crate::pages::template::Layout>>,
    pub default_language: Language,
}

/// The operator's stylesheet: where it was read from and what it said then.
#[derive(Clone, Debug)]
pub struct CustomCss {
    pub path: PathBuf,
    pub text: String,
}

/// A language the gateway's pages are written in (`pages::catalogue`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Language {
    #[default]
    English,
    German,
}

impl Language {
    /// Every language, in the order `Accept-Language` ties are broken (English first).
    pub const ALL: [Language; 2] = [Language::English, Language::German];

    /// The primary subtag (`<html lang>`, `Accept-Language`, `default_language`).
    pub fn tag(self) -> &'static str {
        match self {
            Language::English => "en",
            Language::German => "de",
        }
    }

    /// The language of a primary subtag, case-insensitively.
    pub fn from_tag(tag: &str) -> Option<Language> {
        Language::ALL
            .into_iter()
            .find(|l| l.tag().eq_ignore_ascii_case(tag))
    }
}

impl Config {
    /// The role configs for role names; unknown names are skipped.
    pub fn role(&self, name: &str) -> Option<&RoleConfig> {
        self.roles.get(name)
    }

    /// The second factors a login holding `roles` may use (DESIGN.md §10): `[mfa] methods`,
    /// narrowed by every role that names its own list (the intersection). A role that is not
    /// configured narrows to nothing: fail closed.
    pub fn mfa_methods_for(&self, roles: &[String]) -> Vec<MfaMethod> {
        self.mfa
            .methods
            .iter()
            .copied()
            .filter(|m| {
                roles.iter().all(|r| match self.role(r) {
                    Some(role) => role.mfa_methods.as_ref().is_none_or(|l| l.contains(m)),
                    None => false,
                })
            })
            .collect()
    }

    /// True when `ip` may set X-Forwarded-For.
    pub fn is_trusted_proxy(&self, ip: IpAddr) -> bool {
        self.server.trusted_proxies.iter().any(|n| n.contains(ip))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_idp_without_roles_may_grant_every_role_and_one_with_roles_only_those() {
        let mut idp = IdpConfig {
            id: "p".into(),
            kind: IdpKind::Oidc,
            display_name: "p".into(),
            on_missing_mfa: OnMissingMfa::Deny,
            roles: None,
            oidc: None,
            saml: None,
        };
        assert!(idp.may_grant("admin"));
        idp.roles = Some(vec!["agent".into()]);
        assert!(idp.may_grant("agent"));
        assert!(!idp.may_grant("admin"));
    }
}
