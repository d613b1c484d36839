//! The OpenID Providers at run time: discovery (with retry and backoff), the current JWKS
//! (refetched at most once per interval for an unknown `kid`), and the RFC 9207 metadata. No
//! HTTP handlers here: `login::oidc` runs the code flow against these.

use super::http::IdpHttp;
use crate::auth::oidc::{self as rp, OidcError, Trust};
use crate::config::{Config, IdpConfig, OidcSettings};
use openidconnect::core::{
    CoreAuthDisplay, CoreClaimName, CoreClaimType, CoreClientAuthMethod, CoreGrantType,
    CoreJsonWebKey, CoreJsonWebKeySet, CoreJweContentEncryptionAlgorithm,
    CoreJweKeyManagementAlgorithm, CoreJwsSigningAlgorithm, CoreResponseMode, CoreResponseType,
    CoreSubjectIdentifierType,
};
use openidconnect::{
    AdditionalProviderMetadata, IssuerUrl, LogoutProviderMetadata, ProviderMetadata,
};
use serde::{Deserialize, Serialize};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

/// At most one JWKS refetch per provider in this interval (unknown-`kid` floods).
const JWKS_REFETCH_INTERVAL: Duration = Duration::from_secs(10);
/// Discovery retry backoff: first retry after this, doubling up to the cap.
const DISCOVERY_BACKOFF_START: Duration = Duration::from_secs(1);
const DISCOVERY_BACKOFF_MAX: Duration = Duration::from_secs(60);

/// Discovery members beyond the crate's: RFC 9207 §3.
#[derive(Clone, Debug, Deserialize, Serialize)]
pub(crate) struct Rfc9207Metadata {
    /// The provider promises `iss` in every authorization response.
    #[serde(default)]
    pub(crate) authorization_response_iss_parameter_supported: bool,
}

impl AdditionalProviderMetadata for Rfc9207Metadata {}

/// Discovery with RP-initiated logout and RFC 9207 metadata.
pub(crate) type Metadata = ProviderMetadata<
    LogoutProviderMetadata<Rfc9207Metadata>,
    CoreAuthDisplay,
    CoreClientAuthMethod,
    CoreClaimName,
    CoreClaimType,
    CoreGrantType,
    CoreJweContentEncryptionAlgorithm,
    CoreJweKeyManagementAlgorithm,
    CoreJsonWebKey,
    CoreResponseMode,
    CoreResponseType,
    CoreSubjectIdentifierType,
>;

/// A provider's discovered metadata and current keys.
pub(crate) struct Loaded {
    pub(crate) meta: Metadata,
    pub(crate) jwks: CoreJsonWebKeySet,
    pub(crate) algs: Vec<CoreJwsSigningAlgorithm>,
}

/// One configured OpenID Provider at run time.
pub struct Provider {
    pub idp: IdpConfig,
    pub settings: OidcSettings,
    pub(crate) http: IdpHttp,
    /// None until discovery succeeds. Never held across an await.
    loaded: RwLock<Option<Arc<Loaded>>>,
    last_refetch: Mutex<Option<Instant>>,
    refetch_lock: tokio::sync::Mutex<()>,
}

/// Every OIDC provider of the config.
pub struct Providers {
    list: Vec<Arc<Provider>>,
}

impl Providers {
    pub fn new(config: &Config) -> Result<Providers, String> {
        let any = config.idps.iter().any(|i| i.oidc.is_some());
        let tls = if any {
            Some(super::http::tls_client_config().map_err(|e| e.to_string())?)
        } else {
            None
        };
        let list = config
            .idps
            .iter()
            .filter_map(|idp| {
                let settings = idp.oidc.clone()?;
                let tls = tls.clone()?;
                Some(Arc::new(Provider {
                    http: IdpHttp::new(tls, settings.http_timeout),
                    idp: idp.clone(),
                    settings,
                    loaded: RwLock::new(None),
                    last_refetch: Mutex::new(None),
                    refetch_lock: tokio::sync::Mutex::new(()),
                }))
            })
            .collect();
        Ok(Providers { list })
    }

    pub fn get(&self, id: &str) -> Option<&Arc<Provider>> {
        self.list.iter().find(|p| p.idp.id == id)
    }

    /// True when every OIDC provider's metadata and keys are loaded (`/readyz`).
    pub fn ready(&self) -> bool {
        self.list.iter().all(|p| p.loaded().is_some())
    }

    /// Starts discovery of every provider in the background, retrying with backoff: the
    /// gateway serves (and reports not-ready) while an IdP is down.
    pub fn spawn_discovery(&self) {
        for p in &self.list {
            spawn_discovery(Arc::clone(p));
        }
    }

    /// The providers of a reloaded `config`: one whose settings did not change is the running
    /// one, so its discovered metadata and keys carry over; the others are new.
    pub fn renew(config: &Config, old: &Providers) -> Result<Providers, String> {
        let mut new = Providers::new(config)?;
        for p in &mut new.list {
            if let Some(o) = old.list.iter().find(|o| unchanged(o, p)) {
                *p = Arc::clone(o);
            }
        }
        Ok(new)
    }

    /// Discovers the providers that are not `old`'s, once each and all at once (each bounded
    /// by its `http_timeout`), so a login right after a reload finds them loaded; one that
    /// fails keeps trying in the background, as at start.
    pub async fn discover_fresh(&self, old: &Providers) {
        let fresh = self
            .list
            .iter()
            .filter(|p| !old.list.iter().any(|o| Arc::ptr_eq(o, p)));
        let tries = fresh.map(|p| async move {
            if let Err(e) = p.discover().await {
                tracing::warn!(idp = %p.idp.id, error = %e, "oidc discovery failed");
                spawn_discovery(Arc::clone(p));
            } else {
                tracing::info!(idp = %p.idp.id, "oidc provider loaded");
            }
        });
        futures_util::future::join_all(tries).await;
    }
}

/// Whether a reloaded provider is the running one: the same settings and the same secret (which
/// `Debug` does not show).
fn unchanged(a: &Provider, b: &Provider) -> bool {
    format!("{:?}", a.idp) == format!("{:?}", b.idp)
        && a.settings.client_secret.expose() == b.settings.client_secret.expose()
}

/// Discovery in the background until it succeeds, or until a reload dropped the provider (the
/// task then holds its last reference).
fn spawn_discovery(p: Arc<Provider>) {
    tokio::spawn(async move {
        let mut wait = DISCOVERY_BACKOFF_START;
        while Arc::strong_count(&p) > 1 {
            match p.discover().await {
                Ok(()) => {
                    tracing::info!(idp = %p.idp.id, "oidc provider loaded");
                    return;
                }
                Err(e) => {
                    tracing::warn!(idp = %p.idp.id, error = %e, retry_in_ms = wait.as_millis() as u64, "oidc discovery failed");
                    tokio::time::sleep(wait).await;
                    wait = (wait * 2).min(DISCOVERY_BACKOFF_MAX);
                }
            }
        }
    });
}

impl Provider {
    pub(crate) fn loaded(&self) -> Option<Arc<Loaded>> {
        self.loaded.read().ok().and_then(|g| g.clone())
    }

    pub(crate) async fn discover(&self) -> Result<(), String> {
        let issuer = IssuerUrl::new(self.settings.issuer.clone()).map_err(|e| e.to_string())?;
        let meta = Metadata::discover_async(issuer, &self.http)
            .await
            .map_err(|e| describe(&e))?;
        let algs = rp::allowed_algs(meta.id_token_signing_alg_values_supported());
        if algs.is_empty() {
            return Err("the provider announces no asymmetric ID token algorithm".into());
        }
        let jwks = meta.jwks().clone();
        if let Ok(mut g) = self.loaded.write() {
            *g = Some(Arc::new(Loaded { meta, jwks, algs }));
        }
        Ok(())
    }

    /// Fetches the JWKS again, at most once per `JWKS_REFETCH_INTERVAL`; true if it did.
    pub(crate) async fn refetch_jwks(&self) -> bool {
        let _one = self.refetch_lock.lock().await;
        {
            let Ok(mut last) = self.last_refetch.lock() else {
                return false;
            };
            if last.is_some_and(|t| t.elapsed() < JWKS_REFETCH_INTERVAL) {
                return false;
            }
            *last = Some(Instant::now());
        }
        let Some(l) = self.loaded() else { return false };
        match CoreJsonWebKeySet::fetch_async(l.meta.jwks_uri(), &self.http).await {
            Ok(jwks) => {
                tracing::info!(idp = %self.idp.id, keys = jwks.keys().len(), "oidc jwks refetched");
                let next = Loaded {
                    meta: l.meta.clone(),
                    jwks,
                    algs: l.algs.clone(),
                };
                if let Ok(mut g) = self.loaded.write() {
                    *g = Some(Arc::new(next));
                }
                true
            }
            Err(e) => {
                tracing::warn!(idp = %self.idp.id, error = %describe(&e), "oidc jwks refetch failed");
                false
            }
        }
    }

    pub(crate) fn trust<'a>(&'a self, l: &'a Loaded, now: i64) -> Trust<'a> {
        Trust {
            issuer: &self.settings.issuer,
            client_id: &self.settings.client_id,
            jwks: &l.jwks,
            algs: &l.algs,
            now,
        }
    }

    /// Runs `check` against the cached keys; when the token names a `kid` the cache does not
    /// have (key rotation), refetches the JWKS once (rate-limited) and checks again.
    pub(crate) async fn with_keys<T>(
        &self,
        raw: &str,
        now: i64,
        check: impl Fn(&Trust<'_>) -> Result<T, OidcError>,
    ) -> Result<T, OidcError> {
        self.with_keys_as(raw, now, |e| matches!(e, OidcError::UnknownKid), check)
            .await
    }

    /// `with_keys` for any check whose error says which value is "unknown `kid`" (`unknown`):
    /// ID tokens, logout tokens and JWT access tokens share one refresh rule and rate limit.
    pub(crate) async fn with_keys_as<T, E: From<OidcError>>(
        &self,
        raw: &str,
        now: i64,
        unknown: impl Fn(&E) -> bool,
        check: impl Fn(&Trust<'_>) -> Result<T, E>,
    ) -> Result<T, E> {
        let l = self.loaded().ok_or(OidcError::UnknownKid)?;
        let kid = rp::header_kid(raw)?;
        let unknown_kid = kid.as_deref().is_some_and(|k| !rp::has_kid(&l.jwks, k));
        if !unknown_kid {
            match check(&self.trust(&l, now)) {
                Err(e) if unknown(&e) => {}
                other => return other,
            }
        }
        if !self.refetch_jwks().await {
            return Err(OidcError::UnknownKid.into());
        }
        let l = self.loaded().ok_or(OidcError::UnknownKid)?;
        check(&self.trust(&l, now))
    }

    pub(crate) fn redirect_uri(&self, config: &Config) -> String {
        format!(
            "{}{}/oidc/{}/callback",
            config.server.public_origin, config.server.prefix, self.idp.id
        )
    }
}

/// Our error texts for the crate's generic errors (details to the log only).
pub(crate) fn describe(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}
