//! Forwarding to the upstream: one pooled keep-alive hyper client, bodies streamed both ways
//! (never buffered), upgrades spliced, and failures mapped to `ProxyError` (502/504).

use crate::config::UpstreamConfig;
use bytes::Bytes;
use http_body_util::Full;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::{Request, Response, StatusCode};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use std::pin::Pin;
use std::task::{Context, Poll};

/// A response body: streamed from the upstream, or made by the gateway.
pub enum GatewayBody {
    Upstream(Incoming),
    Full(Full<Bytes>),
}

impl GatewayBody {
    pub fn empty() -> Self {
        GatewayBody::Full(Full::new(Bytes::new()))
    }
}

impl From<String> for GatewayBody {
    fn from(s: String) -> Self {
        GatewayBody::Full(Full::new(Bytes::from(s)))
    }
}

impl From<&'static str> for GatewayBody {
    fn from(s: &'static str) -> Self {
        GatewayBody::Full(Full::new(Bytes::from_static(s.as_bytes())))
    }
}

impl From<Vec<u8>> for GatewayBody {
    fn from(s: Vec<u8>) -> Self {
        GatewayBody::Full(Full::new(Bytes::from(s)))
    }
}

impl Body for GatewayBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        match self.get_mut() {
            GatewayBody::Upstream(b) => Pin::new(b).poll_frame(cx),
            GatewayBody::Full(b) => match Pin::new(b).poll_frame(cx) {
                Poll::Ready(Some(Ok(f))) => Poll::Ready(Some(Ok(f))),
                Poll::Ready(Some(Err(never))) => match never {},
                Poll::Ready(None) => Poll::Ready(None),
                Poll::Pending => Poll::Pending,
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            GatewayBody::Upstream(b) => b.is_end_stream(),
            GatewayBody::Full(b) => b.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            GatewayBody::Upstream(b) => b.size_hint(),
            GatewayBody::Full(b) => b.size_hint(),
        }
    }
}

/// The request body on its way upstream; tells `Upstream::send` when the last byte went, so
/// the response timeout does not count the time a large upload takes.
pub struct UpstreamBody {
    inner: Incoming,
    done: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Body for UpstreamBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.inner).poll_frame(cx);
        if let Poll::Ready(None) = r {
            if let Some(tx) = this.done.take() {
                let _ = tx.send(());
            }
        }
        r
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Why forwarding failed. Details go to the log; the client gets a fixed message.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    /// The upstream refused or reset the connection, or sent something unparseable.
    #[error("upstream unavailable: {0}")]
    Unavailable(String),
    /// The upstream did not answer within `upstream.timeout`.
    #[error("upstream timed out")]
    Timeout,
}

/// The pooled client to the one upstream.
#[derive(Clone)]
pub struct Upstream {
    client: Client<HttpConnector, UpstreamBody>,
    pub config: UpstreamConfig,
}

impl Upstream {
    pub fn new(config: UpstreamConfig) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(config.connect_timeout));
        connector.enforce_http(true);
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(config.pool_idle_timeout)
            .pool_max_idle_per_host(config.pool_max_idle)
            .pool_timer(TokioTimer::new())
            .timer(TokioTimer::new())
            .build(connector);
        Self { client, config }
    }

    /// Sends the request and returns the response head with a streaming body. The caller has
    /// already set the URI and cleaned the headers.
    /// `upstream.timeout` counts from the end of the request body: an upload is not cut off
    /// for being large, only an upstream that then does not answer.
    pub async fn send(&self, req: Request<Incoming>) -> Result<Response<Incoming>, ProxyError> {
        let map = |r: Result<Response<Incoming>, hyper_util::client::legacy::Error>| {
            r.map_err(|e| ProxyError::Unavailable(error_chain(&e)))
        };
        if req.body().is_end_stream() {
            let req = req.map(|inner| UpstreamBody { inner, done: None });
            return match tokio::time::timeout(self.config.timeout, self.client.request(req)).await {
                Ok(r) => map(r),
                Err(_) => Err(ProxyError::Timeout),
            };
        }
        let (tx, rx) = tokio::sync::oneshot::channel();
        let req = req.map(|inner| UpstreamBody {
            inner,
            done: Some(tx),
        });
        let fut = self.client.request(req);
        tokio::pin!(fut);
        tokio::select! {
            r = &mut fut => return map(r),
            _ = rx => {}
        }
        match tokio::time::timeout(self.config.timeout, fut).await {
            Ok(r) => map(r),
            Err(_) => Err(ProxyError::Timeout),
        }
    }

    /// Sends a WebSocket (or other) upgrade request; on `101` splices both connections.
    pub async fn send_upgrade(
        &self,
        mut req: Request<Incoming>,
    ) -> Result<Response<GatewayBody>, ProxyError> {
        let client_upgrade = hyper::upgrade::on(&mut req);
        let mut resp = self.send(req).await?;
        if resp.status() != StatusCode::SWITCHING_PROTOCOLS {
            return Ok(resp.map(GatewayBody::Upstream));
        }
        let upstream_upgrade = hyper::upgrade::on(&mut resp);
        tokio::spawn(async move {
            match tokio::try_join!(client_upgrade, upstream_upgrade) {
                Ok((client, upstream)) => {
                    let mut client = TokioIo::new(client);
                    let mut upstream = TokioIo::new(upstream);
                    if let Err(e) = tokio::io::copy_bidirectional(&mut client, &mut upstream).await
                    {
                        tracing::debug!(error = %e, "upgraded connection ended");
                    }
                }
                Err(e) => tracing::debug!(error = %e, "upgrade failed"),
            }
        });
        let (parts, _) = resp.into_parts();
        Ok(Response::from_parts(parts, GatewayBody::empty()))
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(inner) = src {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        src = inner.source();
    }
    s
}
