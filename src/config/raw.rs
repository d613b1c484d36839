//! The serde view of `portcullis.toml` (DESIGN.md §4). Every struct denies unknown keys.
//! Nothing outside `config` sees these types: `validate` turns them into the typed `Config`.

use super::duration::Dur;
use serde::Deserialize;
use std::collections::BTreeMap;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    pub server: RawServer,
    pub upstream: RawUpstream,
    pub admin: Option<RawAdmin>,
    #[serde(default)]
    pub session: RawSession,
    pub storage: Option<RawStorage>,
    pub native: Option<RawNative>,
    pub mfa: Option<RawMfa>,
    #[serde(default)]
    pub idp: Vec<RawIdp>,
    #[serde(default)]
    pub roles: BTreeMap<String, RawRole>,
    #[serde(default)]
    pub routes: Vec<RawRoute>,
    pub branding: Option<RawBranding>,
    pub pages: Option<RawPages>,
    pub notify: Option<RawNotify>,
    pub break_glass: Option<RawBreakGlass>,
    pub identity_headers: Option<RawIdentityHeaders>,
    pub log: Option<RawLog>,
    pub audit: Option<RawAudit>,
    pub forward_auth: Option<RawForwardAuth>,
    #[serde(default)]
    pub service_tokens: Vec<RawServiceToken>,
}

/// One `[[service_tokens]]` entry (DESIGN.md §9): a machine client's token, by its hash.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawServiceToken {
    pub name: String,
    pub sha256: String,
    #[serde(default)]
    pub roles: Vec<String>,
}

/// `[[idp]] bearer = { audience, roles_claim }`: the IdP vouches for JWT access tokens.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawBearer {
    pub audience: String,
    pub roles_claim: Option<String>,
}

/// `[identity_headers]`: the names identity values are sent upstream under.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawIdentityHeaders {
    pub user: Option<String>,
    pub email: Option<String>,
    pub groups: Option<String>,
    pub roles: Option<String>,
    pub method: Option<String>,
    pub mfa: Option<String>,
    pub session: Option<String>,
    pub assertion: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawServer {
    pub listen: String,
    pub public_url: String,
    pub tls: Option<RawTls>,
    #[serde(default)]
    pub trusted_proxies: Vec<String>,
    pub default_login: Option<String>,
    pub workers: Option<usize>,
    pub access_log: Option<bool>,
    pub prefix: Option<String>,
    pub max_header_bytes: Option<usize>,
    pub max_headers: Option<usize>,
    pub header_timeout: Option<Dur>,
    pub max_body_bytes: Option<usize>,
    pub shutdown_grace: Option<Dur>,
    pub max_connections: Option<usize>,
    pub max_connections_per_ip: Option<usize>,
    pub body_timeout: Option<Dur>,
    pub send_timeout: Option<Dur>,
    pub signing_key: Option<String>,
    pub hsts: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTls {
    pub cert: String,
    pub key: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawUpstream {
    pub url: String,
    pub connect_timeout: Option<Dur>,
    pub timeout: Option<Dur>,
    pub pool_idle_timeout: Option<Dur>,
    pub pool_max_idle: Option<usize>,
    pub tls: Option<RawUpstreamTls>,
}

/// `upstream.tls`: every key optional (web PKI roots and the URL's host by default).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawUpstreamTls {
    pub ca: Option<String>,
    pub server_name: Option<String>,
    pub client_cert: Option<String>,
    pub client_key: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAdmin {
    /// Default `127.0.0.1:9090`: the admin API is never public by accident.
    pub listen: Option<String>,
    #[serde(default)]
    pub tokens: Vec<RawAdminToken>,
    pub tls: Option<RawTls>,
    /// Roles that may use the browser console at `/_portcullis/admin`; empty: console off.
    pub console_roles: Option<Vec<String>>,
    /// How old the session's second factor may be for the console (default `15m`).
    pub console_fresh_mfa: Option<Dur>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAdminToken {
    pub name: String,
    pub sha256: String,
    /// `metrics`, `read`, `write`; absent: all three (DESIGN.md §11).
    pub scopes: Option<Vec<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSession {
    pub store: Option<String>,
    pub redis_url: Option<String>,
    pub redis_url_file: Option<String>,
    /// Instead of `redis_url`: the primary named by Redis Sentinel (DESIGN.md §11).
    pub redis_sentinel: Option<RawRedisSentinel>,
    /// CA and client certificate for `rediss://` (and TLS sentinels).
    pub redis_tls: Option<RawStoreTls>,
    pub redis_prefix: Option<String>,
    pub idle_timeout: Option<Dur>,
    pub max_lifetime: Option<Dur>,
    pub touch_interval: Option<Dur>,
    pub max_sessions: Option<usize>,
    pub pending_ttl: Option<Dur>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawStorage {
    pub url: Option<String>,
    pub url_file: Option<String>,
    pub encryption_key: Option<String>,
    pub encryption_key_file: Option<String>,
    /// CA and client certificate for PostgreSQL over TLS (`sslmode` in the URL).
    pub tls: Option<RawStoreTls>,
}

/// `session.redis_sentinel`: the master's name and the sentinels that know where it is.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRedisSentinel {
    pub master: String,
    pub nodes: Vec<String>,
    /// AUTH for the data nodes (the sentinels' own passwords go in their URLs).
    pub password: Option<String>,
}

/// TLS to a store (`session.redis_tls`, `storage.tls`): every key optional; the web PKI roots
/// when `ca` is absent. Named as `upstream.tls` names them (DESIGN.md §9).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawStoreTls {
    pub ca: Option<String>,
    pub client_cert: Option<String>,
    pub client_key: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawNative {
    pub paths: Option<Vec<String>>,
    pub lockout: Option<RawLockout>,
    pub roles: Option<Vec<String>>,
    /// `/normal` also offers a passkey sign-in (DESIGN.md §10).
    pub passkey_login: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLockout {
    pub max_failures: u32,
    pub window: Dur,
    pub duration: Dur,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMfa {
    pub issuer: Option<String>,
    pub methods: Option<Vec<String>>,
    pub email: Option<RawEmail>,
    pub recovery_codes: Option<RawRecoveryCodes>,
    pub enrollment: Option<String>,
    pub invite_ttl: Option<Dur>,
    pub webauthn: Option<RawWebauthn>,
}

/// `[mfa.webauthn]`: overrides of what `server.public_url` implies (DESIGN.md §10).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawWebauthn {
    pub rp_id: Option<String>,
    pub rp_name: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawEmail {
    pub smtp_url: Option<String>,
    pub smtp_url_file: Option<String>,
    pub from: String,
    pub code_ttl: Option<Dur>,
    pub resend_interval: Option<Dur>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRecoveryCodes {
    pub count: Option<usize>,
    pub ttl: Option<Dur>,
}

/// One `[[idp]]` table. The keys of both kinds live here; `validate` checks that each key
/// belongs to the declared `kind`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawIdp {
    pub id: String,
    pub kind: String,
    pub display_name: Option<String>,
    // OIDC
    pub issuer: Option<String>,
    pub client_id: Option<String>,
    pub client_secret: Option<String>,
    pub client_secret_file: Option<String>,
    pub client_auth: Option<String>,
    pub scopes: Option<Vec<String>>,
    pub username_claim: Option<String>,
    pub groups_claim: Option<String>,
    pub acr_values: Option<Vec<String>>,
    pub userinfo: Option<bool>,
    pub logout: Option<bool>,
    pub http_timeout: Option<Dur>,
    // SAML
    pub metadata: Option<String>,
    pub metadata_url: Option<String>,
    pub sp_entity_id: Option<String>,
    pub sp_key: Option<String>,
    pub sp_cert: Option<String>,
    pub groups_attribute: Option<String>,
    pub username_attribute: Option<String>,
    pub subject_attribute: Option<String>,
    pub email_attribute: Option<String>,
    pub allow_idp_initiated: Option<bool>,
    pub allowed_algorithms: Option<Vec<String>>,
    pub clock_skew: Option<Dur>,
    pub metadata_refresh: Option<Dur>,
    pub requested_authn_context: Option<Vec<String>>,
    pub force_authn: Option<bool>,
    // both
    pub mfa_evidence: Option<RawMfaEvidence>,
    pub on_missing_mfa: Option<String>,
    pub roles: Option<Vec<String>>,
    // OIDC only: JWT access tokens for `bearer = true` routes.
    pub bearer: Option<RawBearer>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMfaEvidence {
    #[serde(default)]
    pub amr_any: Vec<String>,
    #[serde(default)]
    pub acr_any: Vec<String>,
    #[serde(default)]
    pub authn_context_any: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRole {
    #[serde(default)]
    pub groups: Vec<String>,
    #[serde(default)]
    pub require_mfa: bool,
    pub remember_mfa: Option<Dur>,
    pub idle_timeout: Option<Dur>,
    pub max_lifetime: Option<Dur>,
    /// The second factors this role accepts (default: every `[mfa] methods` one).
    pub mfa_methods: Option<Vec<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRoute {
    pub prefix: String,
    pub access: Option<String>,
    #[serde(default)]
    pub allow_roles: Vec<String>,
    pub login: Option<String>,
    /// `Authorization: Bearer` accepted here (and only on such routes).
    pub bearer: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawBranding {
    pub product_name: Option<String>,
    pub logo: Option<String>,
}

/// `[pages]`: how the gateway's own pages look and which language they default to.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPages {
    pub accent_color: Option<String>,
    pub custom_css: Option<String>,
    /// A directory; its `layout.html`, if there, is the page frame.
    pub templates: Option<String>,
    pub default_language: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawNotify {
    pub new_device: Option<bool>,
    pub recovery_code_used: Option<bool>,
    pub factor_changed: Option<bool>,
    pub report_ttl: Option<Dur>,
    #[serde(default)]
    pub admins: Vec<String>,
}

/// `[log]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLog {
    pub format: Option<String>,
    pub level: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawBreakGlass {
    pub max_window: Option<Dur>,
    pub roles: Option<Vec<String>>,
}

/// `[audit]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAudit {
    pub file: Option<String>,
}

/// `[forward_auth]` (issue 17, DESIGN.md §9).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawForwardAuth {
    #[serde(default)]
    pub enabled: bool,
    #[serde(default)]
    pub allowed_hosts: Vec<String>,
}
