//! The state every connection shares (`Gateway`) and what it is built from: the config, the
//! session and user stores, the upstream, the signer, the IdP connectors, metrics. Nothing in
//! here imports a request handler: handlers take `&Gateway`, never the other way round.

use crate::assertion::{KeyError, Signer};
use crate::auth::policy::{LocalPath, Routes};
use crate::clock::Clock;
use crate::config::{Config, LoginTarget, SessionStoreKind};
use crate::pages::Chrome;
use crate::proxy::forward::Upstream;
use crate::proxy::headers::IdentityHeaders;
use crate::session::cookie::CookieNames;
use crate::session::{AnySessionStore, MemoryStore};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};

/// Why the gateway could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The listen address could not be bound.
    #[error("cannot listen on {addr}: {reason}")]
    Bind { addr: SocketAddr, reason: String },
    #[error(transparent)]
    Tls(#[from] crate::server::tls::TlsError),
    #[error(transparent)]
    Key(#[from] KeyError),
    /// The user store or its key could not be opened.
    #[error("user store: {0}")]
    Accounts(String),
    /// A configured feature is unavailable or its backend unreachable at start.
    #[error("{0}")]
    Unsupported(String),
}

/// State shared by every connection.
pub struct Gateway {
    pub config: Arc<Config>,
    pub routes: Routes,
    pub store: AnySessionStore,
    pub upstream: Upstream,
    /// Shared with every config reloaded after the start (the assertion key needs a restart).
    pub signer: Arc<Signer>,
    pub cookies: CookieNames,
    pub ids: IdentityHeaders,
    pub chrome: Chrome,
    pub clock: Clock,
    /// Native users, factors and audit; present when `[storage]` is configured.
    /// Shared across reloads, as the session store is (`server::reload`).
    pub accounts: Option<Arc<crate::accounts::Accounts>>,
    /// Keys the CSRF token of the password form to its pre-login cookie.
    pub csrf_key: ring::hmac::Key,
    pub metrics: Arc<crate::metrics::Metrics>,
    /// Account-safety notices: device and link keys, the background mailer (DESIGN.md §12).
    pub notifier: crate::notify::Notifier,
    /// The OIDC providers (discovered in the background; see `oidc::Providers::ready`).
    pub oidc: crate::idp::oidc::Providers,
    /// The SAML IdPs (metadata from files now, from URLs in the background).
    pub saml: crate::idp::saml::Providers,
    /// Test-only panic trigger, disarmed unless armed from code (`inject_panic_on_path`).
    pub(crate) panic_probe: PanicProbe,
    /// `Strict-Transport-Security` for every public response (`server.hsts`), parsed once.
    pub hsts: Option<hyper::header::HeaderValue>,
    /// When this state replaced another by a live reload (`server::reload`); `None` as started.
    /// Sessions made up to then are judged again by this config's role policies.
    pub reloaded_at: Option<crate::clock::UnixTime>,
    /// `[[service_tokens]]` with their request identities, made from this config (DESIGN.md §9).
    pub machines: crate::auth::bearer::MachineClients,
    /// The passkey relying party, made from this config when `webauthn` is a method.
    pub passkeys: Option<Arc<crate::mfa::webauthn::Passkeys>>,
}

impl Gateway {
    /// The CSRF token of a signed-in page's forms: an HMAC of the session id under `label`
    /// (`account`, `console`), so one page's token is no other page's and dies with the session.
    pub fn session_csrf(&self, label: &str, s: &crate::session::Session) -> String {
        use base64::Engine as _;
        let tag = ring::hmac::sign(
            &self.csrf_key,
            format!("{label}:{}", s.id.as_str()).as_bytes(),
        );
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(tag.as_ref().get(..24).unwrap_or_default())
    }

    pub async fn new(config: Config, clock: Clock) -> Result<Gateway, StartError> {
        let store = open_session_store(&config, clock.clone()).await?;
        let signer =
            Signer::load_or_create(&config.server.signing_key, &config.server.public_origin)?;
        // Derived from the signing key so every replica sharing that key accepts the same forms.
        let key_bytes = std::fs::read(&config.server.signing_key)
            .map_err(|e| StartError::Unsupported(format!("cannot read the signing key: {e}")))?;
        let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
        ctx.update(b"portcullis csrf v1\0");
        ctx.update(&key_bytes);
        let csrf_key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, ctx.finish().as_ref());
        let accounts = crate::accounts::Accounts::open(&config)
            .await
            .map_err(|e| StartError::Accounts(e.to_string()))?;
        let metrics = Arc::new(crate::metrics::Metrics::default());
        let mailer = crate::notify::mail::Mailer::new(
            accounts.as_ref().and_then(|a| a.email.clone()),
            Arc::clone(&metrics),
        );
        let notifier = crate::notify::Notifier::new(&key_bytes, mailer);
        let oidc = crate::idp::oidc::Providers::new(&config)
            .map_err(|e| StartError::Unsupported(format!("OIDC client TLS: {e}")))?;
        let saml = crate::idp::saml::Providers::new(&config).map_err(StartError::Unsupported)?;
        let passkeys = passkeys_of(&config).map_err(StartError::Unsupported)?;
        Ok(Gateway {
            passkeys,
            machines: crate::auth::bearer::MachineClients::new(&config.service_tokens, clock.now()),
            hsts: hsts_of(&config),
            reloaded_at: None,
            oidc,
            saml,
            panic_probe: PanicProbe::default(),
            accounts: accounts.map(Arc::new),
            csrf_key,
            metrics,
            notifier,
            routes: Routes::new(config.routes.clone()),
            store,
            upstream: Upstream::new(config.upstream.clone()),
            signer: Arc::new(signer),
            cookies: CookieNames::new(config.server.https),
            ids: IdentityHeaders::configured(&config.identity_headers),
            chrome: chrome_of(&config),
            clock,
            config: Arc::new(config),
        })
    }

    /// Whether a normalised path is one of the native login paths.
    pub fn is_native_path(&self, path: &str) -> bool {
        self.config
            .native
            .as_ref()
            .is_some_and(|n| n.paths.iter().any(|p| p == path))
    }
}

/// The session store the config names. The CLI opens it too: with Redis it then ends the same
/// sessions a running gateway checks; a memory store is only ever this process's own.
pub async fn open_session_store(
    config: &Config,
    clock: Clock,
) -> Result<AnySessionStore, StartError> {
    Ok(match config.session.store {
        SessionStoreKind::Memory => {
            AnySessionStore::Memory(MemoryStore::new(clock.clone(), config.session.max_sessions))
        }
        SessionStoreKind::Redis => {
            let target = match &config.session.redis_sentinel {
                Some(s) => crate::session::redis::Target::Sentinel(s),
                None => crate::session::redis::Target::Url(
                    config.session.redis_url.as_deref().unwrap_or_default(),
                ),
            };
            // Fail closed at start too: without the shared store no replica can check a session.
            let store = crate::session::redis::RedisStore::open(
                &target,
                config.session.redis_tls.as_ref(),
                &config.session.redis_prefix,
                clock.clone(),
                config.session.max_sessions,
            )
            .await
            .map_err(|e| {
                StartError::Unsupported(format!("cannot reach the Redis session store: {e}"))
            })?;
            AnySessionStore::Redis(store)
        }
    })
}

/// `Strict-Transport-Security` of a config. Checked as a header value by `config::validate`:
/// `ok()` never drops a configured one.
pub(crate) fn hsts_of(config: &Config) -> Option<hyper::header::HeaderValue> {
    config
        .server
        .hsts
        .as_deref()
        .and_then(|v| hyper::header::HeaderValue::from_str(v).ok())
}

/// The page chrome a config names.
/// The passkey relying party of `config` (`None` without `webauthn` in `[mfa] methods`).
pub(crate) fn passkeys_of(
    config: &Config,
) -> Result<Option<Arc<crate::mfa::webauthn::Passkeys>>, String> {
    config
        .mfa
        .webauthn
        .as_ref()
        .map(|w| {
            crate::mfa::webauthn::Passkeys::new(w)
                .map(Arc::new)
                .map_err(|e| format!("mfa.webauthn: the relying party was refused: {e}"))
        })
        .transpose()
}

pub(crate) fn chrome_of(config: &Config) -> Chrome {
    Chrome::new(
        config.branding.product_name.clone(),
        config.server.prefix.clone(),
        config.branding.logo.is_some(),
        &config.pages,
    )
}

/// A deliberate panic on one path, for tests of the containment only. It exists because a
/// containment that is never exercised cannot be trusted, and no real input may reach a panic.
/// It is armed from Rust code alone (`Gateway::inject_panic_on_path`): never from the network
/// or the config file. Disarmed, it costs one relaxed atomic load per request.
#[derive(Debug, Default)]
pub struct PanicProbe {
    armed: AtomicBool,
    path: RwLock<Option<String>>,
}

impl PanicProbe {
    /// Panics when armed for exactly this raw request path.
    #[inline]
    pub fn check(&self, path: &str) {
        if self.armed.load(Ordering::Relaxed) {
            self.fire(path);
        }
    }

    /// Whether the probe is armed for some path (test-only; the fast lane then steps aside so
    /// the probe fires where panics are contained).
    #[inline]
    pub fn armed(&self) -> bool {
        self.armed.load(Ordering::Relaxed)
    }

    #[cold]
    #[inline(never)]
    fn fire(&self, path: &str) {
        let hit = self.path.read().is_ok_and(|p| p.as_deref() == Some(path));
        if hit {
            // The probe's one purpose: a real panic inside a request handler.
            #[allow(clippy::panic)]
            {
                panic!("injected test panic on {path}");
            }
        }
    }

    pub(crate) fn set(&self, path: Option<String>) {
        let armed = path.is_some();
        if let Ok(mut p) = self.path.write() {
            *p = path;
        }
        self.armed.store(armed, Ordering::Relaxed);
    }
}

impl Gateway {
    /// Test hook: the next requests whose raw path is `path` panic inside the handler
    /// (`None` disarms). See `PanicProbe` for why it exists; never reachable from outside.
    #[doc(hidden)]
    pub fn inject_panic_on_path(&self, path: Option<String>) {
        self.panic_probe.set(path);
    }
}

impl Gateway {
    /// Every way in: native login (when configured), then each IdP in config order.
    pub fn login_targets(&self) -> Vec<crate::config::LoginTarget> {
        let mut t = Vec::new();
        if self.config.native.is_some() {
            t.push(crate::config::LoginTarget::Native);
        }
        t.extend(
            self.config
                .idps
                .iter()
                .map(|i| crate::config::LoginTarget::Idp(i.id.clone())),
        );
        t
    }
}

impl Gateway {
    /// The absolute URL that starts `target`'s login and comes back to `rd`.
    pub fn login_url(&self, target: &LoginTarget, rd: &LocalPath) -> String {
        let origin = &self.config.server.public_origin;
        let rd = enc(rd.as_str());
        match target {
            LoginTarget::Native => {
                let p = self
                    .config
                    .native
                    .as_ref()
                    .and_then(|n| n.paths.first())
                    .map_or("/normal", String::as_str);
                format!("{origin}{p}?rd={rd}")
            }
            LoginTarget::Idp(id) => format!(
                "{origin}{}/login?idp={}&rd={rd}",
                self.config.server.prefix,
                enc(id)
            ),
        }
    }
}

/// Percent-encodes a query component.
pub fn enc(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
}

#[cfg(test)]
#[allow(clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn probe_fires_only_when_armed_for_that_path() {
        let p = PanicProbe::default();
        p.check("/boom");
        p.set(Some("/boom".into()));
        p.check("/other");
        assert!(std::panic::catch_unwind(|| p.check("/boom")).is_err());
        p.set(None);
        p.check("/boom");
    }
}
