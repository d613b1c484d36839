//! Configuration: `raw` holds the serde structs, `validate` turns them into one typed `Config`.
//! Every error names the file, the line and the key; the process refuses to start on any.
//!
//! This file only declares the modules and re-exports the names the rest of the crate uses
//! (`crate::config::Config` and so on); the children import each other directly, so the files
//! form no cycle:
//!
//! | file           | holds                                                              |
//! |----------------|--------------------------------------------------------------------|
//! | `raw.rs`       | the serde structs of the TOML file (`deny_unknown_fields`)         |
//! | `model.rs`     | the validated `Config` and its settings                            |
//! | `error.rs`     | `ConfigError`, `ConfigErrors`                                      |
//! | `ipnet.rs`     | `IpNet` (trusted proxies)                                          |
//! | `duration.rs`  | durations as written in the file (`"15m"`)                         |
//! | `env.rs`       | `${NAME}` expansion in string values (`$${` is a literal `${`)      |
//! | `suggest.rs`   | "did you mean" for unknown keys (edit distance)                    |
//! | `locate.rs`    | line numbers and key paths of TOML positions                       |
//! | `restart.rs`   | the keys a live reload cannot apply (`restart::pin`)               |
//! | `validate.rs`, `validate/` | `Config::load`: defaults, `${ENV}`, paths, cross-checks |

pub mod duration;
mod env;
mod error;
mod ipnet;
pub mod locate;
mod model;
pub mod raw;
pub mod restart;
mod suggest;
mod validate;

pub use duration::{parse_duration, Dur};
pub use error::{ConfigError, ConfigErrors};
pub use ipnet::IpNet;
pub use model::{
    Access, AdminConfig, AdminTokenHash, AuditConfig, AuditSink, BearerSettings, Branding,
    BreakGlassConfig, ClientAuth, Config, CustomCss, EmailConfig, Enrollment, IdentityHeaderNames,
    IdpConfig, IdpKind, Language, LockoutConfig, LogConfig, LogFormat, LoginTarget, MfaConfig,
    MfaMethod, NativeConfig, NotifyConfig, OidcSettings, OnMissingMfa, PagesConfig, RedisSentinel,
    RoleConfig, RouteConfig, SamlMetadata, SamlSettings, Scope, Scopes, ServerConfig,
    ServiceTokenConfig, SessionConfig, SessionStoreKind, StorageConfig, StoreTls, TlsFiles,
    UpstreamConfig, UpstreamTls, WebauthnConfig, SAML_DEFAULT_ALGORITHMS, SAML_KNOWN_ALGORITHMS,
};
