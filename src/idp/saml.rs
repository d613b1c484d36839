//! The SAML IdPs at run time: metadata from a file, or fetched from a URL and refreshed (a
//! document without a signing certificate is refused, the last good one kept), and the SP's
//! own keys and endpoints. No HTTP handlers here: `login::saml` runs the flows against these.

use super::http::IdpHttp;
use crate::auth::saml::{IdpMetadata, SpKeys};
use crate::config::{Config, IdpConfig, SamlMetadata, SamlSettings};
use std::sync::{Arc, RwLock};
use std::time::Duration;

/// A SAMLResponse form body larger than this is refused with 413 before anything is parsed.
/// Real responses are a few KiB to a few tens of KiB (large group lists).
pub const MAX_RESPONSE_BYTES: usize = 512 * 1024;
const RETRY_START: Duration = Duration::from_secs(1);
const RETRY_MAX: Duration = Duration::from_secs(60);

/// One configured SAML IdP at run time.
pub struct Provider {
    pub idp: IdpConfig,
    pub settings: SamlSettings,
    pub(crate) meta: RwLock<Option<Arc<IdpMetadata>>>,
    pub(crate) keys: Option<SpKeys>,
    pub(crate) http: Option<IdpHttp>,
    pub(crate) acs_url: String,
    pub(crate) slo_url: String,
}

/// Every SAML IdP of the config.
pub struct Providers {
    list: Vec<Arc<Provider>>,
}

impl Providers {
    pub fn new(config: &Config) -> Result<Providers, String> {
        let mut list = Vec::new();
        let mut tls = None;
        for idp in &config.idps {
            let Some(settings) = idp.saml.clone() else {
                continue;
            };
            let keys = match (&settings.sp_key, &settings.sp_cert) {
                (Some(k), Some(c)) => Some(SpKeys::load(k, c).map_err(|e| e.to_string())?),
                _ => None,
            };
            let (meta, http) = match &settings.metadata {
                SamlMetadata::File { xml, path } => {
                    let m =
                        IdpMetadata::parse(xml).map_err(|e| format!("{}: {e}", path.display()))?;
                    (Some(Arc::new(m)), None)
                }
                SamlMetadata::Url { .. } => {
                    if tls.is_none() {
                        tls = Some(super::http::tls_client_config().map_err(|e| e.to_string())?);
                    }
                    let http = tls.clone().map(|t| IdpHttp::new(t, settings.http_timeout));
                    (None, http)
                }
            };
            let base = format!(
                "{}{}/saml/{}",
                config.server.public_origin, config.server.prefix, idp.id
            );
            list.push(Arc::new(Provider {
                idp: idp.clone(),
                acs_url: format!("{base}/acs"),
                slo_url: format!("{base}/slo"),
                settings,
                meta: RwLock::new(meta),
                keys,
                http,
            }));
        }
        Ok(Providers { list })
    }

    pub fn get(&self, id: &str) -> Option<&Arc<Provider>> {
        self.list.iter().find(|p| p.idp.id == id)
    }

    /// True when every SAML IdP's metadata is loaded (`/readyz`).
    pub fn ready(&self) -> bool {
        self.list.iter().all(|p| p.meta().is_some())
    }

    /// Fetches URL metadata in the background: at once (retrying with backoff while the IdP is
    /// down), then every `metadata_refresh`. A document that fails the checks keeps the last
    /// good one in place.
    pub fn spawn_refresh(&self) {
        for p in &self.list {
            spawn_refresh(p);
        }
    }

    /// The IdPs of a reloaded `config`. Metadata files are read again (the config load read
    /// them); an IdP with URL metadata and unchanged settings is the running one, so its fetched
    /// metadata carries over.
    pub fn renew(config: &Config, old: &Providers) -> Result<Providers, String> {
        let mut new = Providers::new(config)?;
        for p in &mut new.list {
            let by_url = matches!(p.settings.metadata, SamlMetadata::Url { .. });
            let same = |o: &&Arc<Provider>| format!("{:?}", o.idp) == format!("{:?}", p.idp);
            if let Some(o) = old.list.iter().find(same).filter(|_| by_url) {
                *p = Arc::clone(o);
            }
        }
        Ok(new)
    }

    /// Starts the refresh of the URL metadata that is not `old`'s (a reload).
    pub fn spawn_refresh_fresh(&self, old: &Providers) {
        for p in &self.list {
            if !old.list.iter().any(|o| Arc::ptr_eq(o, p)) {
                spawn_refresh(p);
            }
        }
    }
}

/// The refresh loop of one IdP with URL metadata; it ends once a reload dropped the IdP (the
/// task then holds its last reference).
fn spawn_refresh(p: &Arc<Provider>) {
    let SamlMetadata::Url { url, refresh } = &p.settings.metadata else {
        return;
    };
    let (p, url, refresh) = (Arc::clone(p), url.clone(), *refresh);
    tokio::spawn(async move {
        let mut wait = RETRY_START;
        while Arc::strong_count(&p) > 1 {
            match p.fetch(&url).await {
                Ok(m) => {
                    tracing::info!(idp = %p.idp.id, entity = %m.entity_id, "saml metadata loaded");
                    if let Ok(mut g) = p.meta.write() {
                        *g = Some(Arc::new(m));
                    }
                    wait = RETRY_START;
                    tokio::time::sleep(refresh).await;
                }
                Err(e) => {
                    tracing::warn!(idp = %p.idp.id, error = %e, retry_in_ms = wait.as_millis() as u64, "saml metadata fetch failed");
                    tokio::time::sleep(wait).await;
                    wait = (wait * 2).min(RETRY_MAX);
                }
            }
        }
    });
}

impl Provider {
    pub(crate) fn meta(&self) -> Option<Arc<IdpMetadata>> {
        self.meta.read().ok().and_then(|g| g.clone())
    }

    pub(crate) async fn fetch(&self, url: &str) -> Result<IdpMetadata, String> {
        let http = self.http.as_ref().ok_or("no HTTP client")?;
        let req = openidconnect::http::Request::builder()
            .method(openidconnect::http::Method::GET)
            .uri(url)
            .header("accept", "application/samlmetadata+xml, application/xml")
            .body(Vec::new())
            .map_err(|e| e.to_string())?;
        let resp = http.send(req).await.map_err(|e| e.to_string())?;
        if resp.status() != openidconnect::http::StatusCode::OK {
            return Err(format!("status {}", resp.status()));
        }
        let xml = std::str::from_utf8(resp.body()).map_err(|_| "metadata is not UTF-8")?;
        IdpMetadata::parse(xml).map_err(|e| e.to_string())
    }

    pub(crate) fn method(&self) -> String {
        format!("saml:{}", self.idp.id)
    }
}
