//! Live reload (DESIGN.md §11): `SIGHUP` and `POST /api/v1/reload` read the config file and every
//! file it names again, validate them as `check` and the start do, and swap the new state in
//! whole. Invariants: a refused reload changes nothing; the session and user stores, the
//! assertion key, metrics and clock carry over, so sessions and requests in flight carry on;
//! keys that need a restart keep their running value and are named (`config::restart`).

use super::tls;
use crate::audit::{self, Event, Kind, Outcome};
use crate::auth::policy::Routes;
use crate::config::{restart, Config, ConfigErrors};
use crate::proxy::forward::Upstream;
use crate::proxy::headers::IdentityHeaders;
use crate::state::{chrome_of, hsts_of, Gateway, PanicProbe};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use tokio_rustls::TlsAcceptor;

/// The state in force: what every request and every new connection reads first, and what a
/// reload replaces. Reads take a short read lock and clone an `Arc`; nothing holds the lock
/// across an await.
pub struct Live {
    current: RwLock<Current>,
    /// Bumped after every swap: a connection that holds a state (`Held`) re-reads it only
    /// when this moved, so the fast lane takes no lock per request.
    generation: AtomicU64,
    /// One reload at a time: two racing reloads would each start from the same old state.
    reloading: tokio::sync::Mutex<()>,
}

#[derive(Clone)]
struct Current {
    gateway: Arc<Gateway>,
    public_tls: Option<TlsAcceptor>,
    admin_tls: Option<TlsAcceptor>,
}

/// A reload that was applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reloaded {
    /// Keys whose change needs a restart: named, and left at their running value.
    pub restart_required: Vec<&'static str>,
    /// The new config's warnings, as `check` prints them.
    pub warnings: Vec<String>,
}

/// A connection's copy of the state in force and the generation it was read at.
pub struct Held {
    generation: u64,
    pub gateway: Arc<Gateway>,
}

/// Why a reload was refused; the running config stays in force.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    /// The config does not validate: every error with file, line and key, as `check` says.
    #[error("{0}")]
    Invalid(ConfigErrors),
    /// A certificate, key or metadata file the config names does not load.
    #[error("{0}")]
    Load(String),
}

impl ReloadError {
    /// One line per problem (the `check` lines for an invalid config).
    pub fn lines(&self) -> Vec<String> {
        match self {
            ReloadError::Invalid(errors) => errors.0.iter().map(ToString::to_string).collect(),
            ReloadError::Load(why) => vec![why.clone()],
        }
    }
}

impl Live {
    pub(crate) fn new(
        gateway: Arc<Gateway>,
        public_tls: Option<Arc<rustls::ServerConfig>>,
        admin_tls: Option<Arc<rustls::ServerConfig>>,
    ) -> Live {
        Live {
            current: RwLock::new(Current {
                gateway,
                public_tls: public_tls.map(TlsAcceptor::from),
                admin_tls: admin_tls.map(TlsAcceptor::from),
            }),
            reloading: tokio::sync::Mutex::new(()),
            generation: AtomicU64::new(0),
        }
    }

    /// The state in force, held by one connection (see `refresh`).
    pub fn hold(&self) -> Held {
        Held {
            generation: self.generation.load(Ordering::Acquire),
            gateway: self.gateway(),
        }
    }

    /// Brings `held` up to the state in force: one atomic load while nothing was reloaded.
    pub fn refresh(&self, held: &mut Held) {
        let now = self.generation.load(Ordering::Acquire);
        if now != held.generation {
            *held = Held {
                generation: now,
                gateway: self.gateway(),
            };
        }
    }

    fn current(&self) -> Current {
        // A poisoned lock still holds a whole `Current` (it is only ever replaced whole).
        match self.current.read() {
            Ok(c) => c.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// The state in force now: read once per request, so each request sees one config.
    pub fn gateway(&self) -> Arc<Gateway> {
        match self.current.read() {
            Ok(c) => Arc::clone(&c.gateway),
            Err(poisoned) => Arc::clone(&poisoned.into_inner().gateway),
        }
    }

    /// The TLS acceptor for a new connection of the public (or admin) listener: the certificate
    /// of the last reload.
    pub(crate) fn tls(&self, admin: bool) -> Option<TlsAcceptor> {
        let c = self.current();
        if admin {
            c.admin_tls
        } else {
            c.public_tls
        }
    }

    /// Reads the config file again and swaps it in, or refuses it and keeps the running one.
    /// Counted (`portcullis_config_reloads_total{result}`), audited (`config.reload`, with
    /// `actor` as the user) and logged either way.
    pub async fn reload(&self, actor: &str) -> Result<Reloaded, ReloadError> {
        let _one = self.reloading.lock().await;
        // First, and whatever the new config holds: logrotate's `postrotate` reload expects
        // the next audit line (this reload's own) in a new file at the path.
        crate::logging::reopen_audit_file();
        let old = self.current();
        let result = successor(&old).await;
        let gw = match &result {
            Ok((next, _)) => Arc::clone(&next.gateway),
            Err(_) => Arc::clone(&old.gateway),
        };
        let mut ev = Event::new(Kind::ConfigReload, Outcome::Success);
        ev.user = Some(actor);
        let answer = match result {
            Ok((next, reloaded)) => {
                match self.current.write() {
                    Ok(mut c) => *c = next,
                    Err(poisoned) => *poisoned.into_inner() = next,
                }
                // After the swap: whoever sees the new generation reads the new state.
                self.generation.fetch_add(1, Ordering::Release);
                gw.metrics.reload(true);
                for w in &reloaded.warnings {
                    tracing::warn!(warning = %w, "configuration warning");
                }
                if reloaded.restart_required.is_empty() {
                    tracing::info!(actor, "configuration reloaded");
                } else {
                    let keys = reloaded.restart_required.join(", ");
                    tracing::warn!(actor, restart_required = %keys, "configuration reloaded; these changes need a restart and were not applied");
                    ev.detail = Some(format!("restart required: {keys}"));
                }
                Ok(reloaded)
            }
            Err(e) => {
                gw.metrics.reload(false);
                tracing::error!(actor, error = %e, "configuration reload refused; the running configuration stays");
                ev.outcome = Outcome::Refused;
                ev.detail = Some(e.to_string());
                Err(e)
            }
        };
        audit::record(&gw, ev).await;
        answer
    }
}

/// The state a reload would swap in, built from the file at the running config's path.
async fn successor(old: &Current) -> Result<(Current, Reloaded), ReloadError> {
    let running = &old.gateway;
    let mut config = Config::load(&running.config.path).map_err(ReloadError::Invalid)?;
    let restart_required = restart::pin(&running.config, &mut config);
    // The same loads as at start (`listen::start_listening`, `Gateway::new`), so a file that
    // `run` would refuse is refused here too.
    let public_tls = match &config.server.tls {
        Some(files) => Some(TlsAcceptor::from(
            tls::server_config(files).map_err(|e| ReloadError::Load(format!("server.tls: {e}")))?,
        )),
        None => None,
    };
    let admin_tls = match config.admin.as_ref().and_then(|a| a.tls.as_ref()) {
        Some(files) => Some(TlsAcceptor::from(
            tls::server_config(files).map_err(|e| ReloadError::Load(format!("admin.tls: {e}")))?,
        )),
        None => None,
    };
    let oidc = crate::idp::oidc::Providers::renew(&config, &running.oidc)
        .map_err(|e| ReloadError::Load(format!("OIDC client TLS: {e}")))?;
    let saml =
        crate::idp::saml::Providers::renew(&config, &running.saml).map_err(ReloadError::Load)?;
    // Before the swap, so a login right after the reload finds a new provider loaded.
    oidc.discover_fresh(&running.oidc).await;
    saml.spawn_refresh_fresh(&running.saml);
    // The pool of upstream connections carries over unless the upstream changed.
    let upstream = if format!("{:?}", running.upstream.config) == format!("{:?}", config.upstream) {
        running.upstream.clone()
    } else {
        Upstream::new(config.upstream.clone())
    };
    let warnings = config.warnings.iter().map(ToString::to_string).collect();
    let passkeys = crate::state::passkeys_of(&config).map_err(ReloadError::Load)?;
    let gateway = Gateway {
        passkeys,
        // Made from the new config: a removed token is refused from the next request on.
        machines: crate::auth::bearer::MachineClients::new(
            &config.service_tokens,
            running.clock.now(),
        ),
        hsts: hsts_of(&config),
        chrome: chrome_of(&config),
        routes: Routes::new(config.routes.clone()),
        oidc,
        saml,
        upstream,
        reloaded_at: Some(running.clock.now()),
        // Shared with the running state: sessions, users, keys and counters carry on.
        store: running.store.clone(),
        accounts: running.accounts.clone(),
        signer: Arc::clone(&running.signer),
        csrf_key: running.csrf_key.clone(),
        metrics: Arc::clone(&running.metrics),
        notifier: running.notifier.clone(),
        clock: running.clock.clone(),
        // `server.public_url` is pinned, so the cookie names are the running ones.
        cookies: running.cookies.clone(),
        ids: IdentityHeaders::configured(&config.identity_headers),
        panic_probe: PanicProbe::default(),
        config: Arc::new(config),
    };
    let next = Current {
        gateway: Arc::new(gateway),
        public_tls,
        admin_tls,
    };
    Ok((
        next,
        Reloaded {
            restart_required,
            warnings,
        },
    ))
}
