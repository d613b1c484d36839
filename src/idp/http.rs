//! The HTTP client the gateway uses to talk to identity providers (discovery, JWKS, token,
//! userinfo): hyper's HTTP/1.1 client connection over tokio, TLS through tokio-rustls with the
//! `ring` provider and the webpki root store. One connection per request (IdP calls are a few
//! per login, never on the proxy path); no redirects followed; every call bounded in time and
//! size. It implements `openidconnect::AsyncHttpClient`, so the crate needs no HTTP stack.

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::header::{HeaderValue, HOST};
use hyper_util::rt::TokioIo;
use openidconnect::{HttpRequest, HttpResponse};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpStream;

/// Largest IdP response body read (discovery documents and JWKS are a few KiB).
const MAX_BODY_BYTES: usize = 1024 * 1024;

/// Why a request to an IdP failed. Details go to the log only.
#[derive(Debug, thiserror::Error)]
pub enum IdpHttpError {
    /// The URL is not absolute http(s) with a host.
    #[error("bad IdP URL")]
    BadUrl,
    /// TCP connect, TLS handshake or HTTP exchange failed.
    #[error("IdP connection failed: {0}")]
    Connect(String),
    /// The request did not complete within the configured bound.
    #[error("IdP request timed out")]
    Timeout,
    /// The response body was larger than the limit or broken.
    #[error("IdP response body unreadable or too large")]
    Body,
}

/// A client for one IdP, with its time bound.
#[derive(Clone)]
pub struct IdpHttp {
    tls: Arc<rustls::ClientConfig>,
    timeout: Duration,
}

/// The TLS client configuration: ring, webpki roots, HTTP/1.1 by ALPN.
pub fn tls_client_config() -> Result<Arc<rustls::ClientConfig>, rustls::Error> {
    let roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    let mut cfg = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_root_certificates(roots)
    .with_no_client_auth();
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(cfg))
}

impl IdpHttp {
    pub fn new(tls: Arc<rustls::ClientConfig>, timeout: Duration) -> IdpHttp {
        IdpHttp { tls, timeout }
    }

    /// Sends one request and reads the whole (bounded) response, within the time bound.
    pub async fn send(&self, req: HttpRequest) -> Result<HttpResponse, IdpHttpError> {
        match tokio::time::timeout(self.timeout, self.exchange(req)).await {
            Ok(r) => r,
            Err(_) => Err(IdpHttpError::Timeout),
        }
    }

    async fn exchange(&self, req: HttpRequest) -> Result<HttpResponse, IdpHttpError> {
        let (mut parts, body) = req.into_parts();
        let uri = parts.uri.clone();
        let https = match uri.scheme_str() {
            Some("https") => true,
            Some("http") => false,
            _ => return Err(IdpHttpError::BadUrl),
        };
        let host = uri.host().ok_or(IdpHttpError::BadUrl)?.to_owned();
        let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
        let authority = uri.authority().ok_or(IdpHttpError::BadUrl)?.clone();
        // Origin-form on the wire; Host names the authority.
        let path = uri.path_and_query().map_or("/", |p| p.as_str());
        parts.uri = path.parse().map_err(|_| IdpHttpError::BadUrl)?;
        let host_value =
            HeaderValue::from_str(authority.as_str()).map_err(|_| IdpHttpError::BadUrl)?;
        parts.headers.insert(HOST, host_value);
        let req = hyper::Request::from_parts(parts, Full::new(Bytes::from(body)));

        let bare = host.trim_start_matches('[').trim_end_matches(']');
        let tcp = TcpStream::connect((bare, port))
            .await
            .map_err(|e| IdpHttpError::Connect(e.to_string()))?;
        let _ = tcp.set_nodelay(true);
        let resp = if https {
            let name = rustls::pki_types::ServerName::try_from(bare.to_owned())
                .map_err(|_| IdpHttpError::BadUrl)?;
            let tls = tokio_rustls::TlsConnector::from(Arc::clone(&self.tls))
                .connect(name, tcp)
                .await
                .map_err(|e| IdpHttpError::Connect(e.to_string()))?;
            round_trip(TokioIo::new(tls), req).await?
        } else {
            round_trip(TokioIo::new(tcp), req).await?
        };
        let (parts, body) = resp.into_parts();
        let bytes = Limited::new(body, MAX_BODY_BYTES)
            .collect()
            .await
            .map_err(|_| IdpHttpError::Body)?
            .to_bytes();
        Ok(openidconnect::http::Response::from_parts(
            parts,
            bytes.to_vec(),
        ))
    }
}

async fn round_trip<T>(
    io: T,
    req: hyper::Request<Full<Bytes>>,
) -> Result<hyper::Response<hyper::body::Incoming>, IdpHttpError>
where
    T: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(io)
        .await
        .map_err(|e| IdpHttpError::Connect(e.to_string()))?;
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            tracing::debug!(error = %e, "idp connection ended with error");
        }
    });
    sender
        .send_request(req)
        .await
        .map_err(|e| IdpHttpError::Connect(e.to_string()))
}

impl<'c> openidconnect::AsyncHttpClient<'c> for IdpHttp {
    type Error = IdpHttpError;
    type Future = Pin<Box<dyn Future<Output = Result<HttpResponse, IdpHttpError>> + Send + 'c>>;

    fn call(&'c self, request: HttpRequest) -> Self::Future {
        Box::pin(self.send(request))
    }
}
