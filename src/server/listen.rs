//! The accept loop of both listeners: the connection cap and per-address limit, rustls
//! (ALPN h2/http1.1), header limits and a head timeout, graceful drain on shutdown. An HTTP/1.x
//! connection of the public listener starts in the fast lane (`fast`), which hands it to hyper
//! and the router at the first request it does not take.

use super::limits::until_stopped;
use super::reload::Live;
use super::{contain, fast, gateway, limits, router, tls};
use crate::clock::Clock;
use crate::config::Config;
use crate::http::Conn;
use crate::state::{Gateway, StartError};
use hyper::body::Incoming;
use hyper::Request;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;

/// Which listener a connection came in on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Listener {
    Public,
    Admin,
}

/// A started gateway: its bound addresses, its state, and the handle that stops it.
pub struct Running {
    pub addr: SocketAddr,
    pub admin_addr: Option<SocketAddr>,
    /// The state as started. A reload replaces what `live` serves; the stores, keys and metrics
    /// of this one are shared with every later state.
    pub gateway: Arc<Gateway>,
    /// The state in force, which `Live::reload` replaces (`SIGHUP`, `POST /api/v1/reload`).
    pub live: Arc<Live>,
    stop: Option<tokio::sync::watch::Sender<bool>>,
    tasks: Vec<JoinHandle<()>>,
}

/// Triggers a graceful shutdown of every listener of a `Running` gateway.
pub struct Stopper(tokio::sync::watch::Sender<bool>);

impl Stopper {
    pub fn stop(self) {
        let _ = self.0.send(true);
    }
}

impl Running {
    /// Stops accepting, lets in-flight requests finish (up to `server.shutdown_grace`), returns.
    pub async fn shutdown(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(true);
        }
        for t in self.tasks.drain(..) {
            let _ = t.await;
        }
    }

    /// Waits until the server tasks end (after a shutdown signal).
    pub async fn wait(mut self) {
        for t in self.tasks.drain(..) {
            let _ = t.await;
        }
    }

    /// A handle that triggers the graceful shutdown.
    pub fn take_stop(&mut self) -> Option<Stopper> {
        self.stop.take().map(Stopper)
    }
}

async fn bind(addr: SocketAddr) -> Result<(TcpListener, SocketAddr), StartError> {
    let l = TcpListener::bind(addr)
        .await
        .map_err(|e| StartError::Bind {
            addr,
            reason: e.to_string(),
        })?;
    let bound = l.local_addr().map_err(|e| StartError::Bind {
        addr,
        reason: e.to_string(),
    })?;
    Ok((l, bound))
}

/// A listener bound before the config was written, handed to `start_on` as it is: a test
/// that binds port 0 and writes that port into `public_url` never releases it in between.
fn adopt(
    l: std::net::TcpListener,
    addr: SocketAddr,
) -> Result<(TcpListener, SocketAddr), StartError> {
    let failed = |e: std::io::Error| StartError::Bind {
        addr,
        reason: e.to_string(),
    };
    l.set_nonblocking(true).map_err(failed)?;
    let l = TcpListener::from_std(l).map_err(failed)?;
    let bound = l.local_addr().map_err(failed)?;
    Ok((l, bound))
}

/// Binds the public (and admin) listeners and starts serving. Background tasks start too.
pub async fn start(config: Config, clock: Clock) -> Result<Running, StartError> {
    start_listening(config, clock, None, |_| {}).await
}

/// As `start`, serving the public listener on `public` (already bound) instead of binding
/// `server.listen`; the admin listener is bound as configured.
pub async fn start_on(
    config: Config,
    clock: Clock,
    public: std::net::TcpListener,
) -> Result<Running, StartError> {
    start_listening(config, clock, Some(public), |_| {}).await
}

/// `start_on` (or `start` without a listener), with `prepare` given the state before any
/// connection shares it: a test seam for what the config does not set (other identity header
/// names, `Gateway::ids`).
#[doc(hidden)]
pub async fn start_prepared(
    config: Config,
    clock: Clock,
    public: Option<std::net::TcpListener>,
    prepare: impl FnOnce(&mut Gateway),
) -> Result<Running, StartError> {
    start_listening(config, clock, public, prepare).await
}

async fn start_listening(
    config: Config,
    clock: Clock,
    public: Option<std::net::TcpListener>,
    prepare: impl FnOnce(&mut Gateway),
) -> Result<Running, StartError> {
    let tls = config
        .server
        .tls
        .as_ref()
        .map(tls::server_config)
        .transpose()?;
    let admin_tls = config
        .admin
        .as_ref()
        .and_then(|a| a.tls.as_ref())
        .map(tls::server_config)
        .transpose()?;
    let mut gw = Gateway::new(config, clock).await?;
    prepare(&mut gw);
    let gw = Arc::new(gw);
    let live = Arc::new(Live::new(Arc::clone(&gw), tls, admin_tls));
    gw.store.spawn_background();
    gw.oidc.spawn_discovery();
    gw.saml.spawn_refresh();
    let (listener, addr) = match public {
        Some(l) => adopt(l, gw.config.server.listen)?,
        None => bind(gw.config.server.listen).await?,
    };
    let admin = match &gw.config.admin {
        Some(a) => Some(bind(a.listen).await?),
        None => None,
    };
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let mut tasks = vec![tokio::spawn(serve(
        listener,
        Arc::clone(&live),
        Arc::clone(&gw),
        stopped.clone(),
        Listener::Public,
    ))];
    tracing::info!(%addr, tls = gw.config.server.tls.is_some(), "listening");
    let admin_addr = admin.map(|(l, a)| {
        tasks.push(tokio::spawn(serve(
            l,
            Arc::clone(&live),
            Arc::clone(&gw),
            stopped.clone(),
            Listener::Admin,
        )));
        tracing::info!(addr = %a, "admin API listening");
        a
    });
    Ok(Running {
        addr,
        admin_addr,
        gateway: gw,
        live,
        stop: Some(stop),
        tasks,
    })
}

fn builder(gw: &Gateway) -> auto::Builder<TokioExecutor> {
    let s = &gw.config.server;
    let mut b = auto::Builder::new(TokioExecutor::new());
    b.http1()
        .timer(TokioTimer::new())
        .header_read_timeout(s.header_timeout)
        .max_buf_size(s.max_header_bytes.max(8192))
        .max_headers(s.max_headers);
    b.http2()
        .timer(TokioTimer::new())
        .max_header_list_size(u32::try_from(s.max_header_bytes).unwrap_or(u32::MAX))
        .max_concurrent_streams(256);
    b
}

/// Accepts on one listener until stopped. `gw` is the state as started: what it sets for the
/// listener itself (limits, hyper's builder, the drain) needs a restart (`config::restart`);
/// each connection reads `live` for its TLS certificate, each request for its state.
async fn serve(
    listener: TcpListener,
    live: Arc<Live>,
    gw: Arc<Gateway>,
    mut stopped: tokio::sync::watch::Receiver<bool>,
    kind: Listener,
) {
    let builder = Arc::new(builder(&gw));
    let graceful = GracefulShutdown::new();
    // A connection the fast lane hands over is HTTP/1 (its first request is already read):
    // served as such, it is not cancelled mid-request by a shutdown, as version detection is.
    let h1_builder = Arc::new(self::builder(&gw).http1_only());
    let slots = Arc::new(Semaphore::new(gw.config.server.max_connections));
    let per_ip = limits::PerIp::new(gw.config.server.max_connections_per_ip);
    loop {
        // Backpressure: at the connection cap, stop accepting until one closes.
        let permit = tokio::select! {
            p = Arc::clone(&slots).acquire_owned() => match p { Ok(p) => p, Err(_) => break },
            _ = until_stopped(&mut stopped) => break,
        };
        let (stream, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = until_stopped(&mut stopped) => break,
        };
        let Some(ip_slot) = per_ip.try_acquire(peer.ip()) else {
            // Closed at once: one address cannot take every slot.
            gw.metrics.refused_per_ip();
            tracing::debug!(%peer, "connection refused: per-IP connection limit");
            drop(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let watcher = graceful.watcher();
        let gw = live.gateway();
        let live = Arc::clone(&live);
        let builder = Arc::clone(&builder);
        let h1_builder = Arc::clone(&h1_builder);
        let acceptor = live.tls(kind == Listener::Admin);
        let mut stopped = stopped.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let _ip_slot = ip_slot;
            // A connection that sends nothing at all never reaches hyper's header timeout (the
            // HTTP/2 preface detection waits first): it gets `header_timeout` for a first byte.
            let mut first = [0u8; 1];
            if tokio::time::timeout(gw.config.server.header_timeout, stream.peek(&mut first))
                .await
                .is_err()
            {
                tracing::debug!(%peer, "connection closed: nothing sent within the header timeout");
                return;
            }
            let metrics_gw = Arc::clone(&gw);
            let stream = limits::SendGuard::new(
                stream,
                gw.config.server.send_timeout,
                Box::new(move || {
                    metrics_gw.metrics.send_timeout();
                    tracing::info!(%peer, "connection cut: the client stopped reading");
                }),
            );
            let conn = Conn {
                peer,
                tls: acceptor.is_some(),
            };
            let svc_live = Arc::clone(&live);
            let svc = hyper::service::service_fn(move |req: Request<Incoming>| {
                // Each request reads the state in force (a reload applies from the next one).
                let gw = svc_live.gateway();
                let live = Arc::clone(&svc_live);
                async move {
                    // A panic in a handler is answered (500) here, so the connection lives on.
                    Ok::<_, Infallible>(match kind {
                        Listener::Public => {
                            let html = crate::http::wants_html(&req);
                            let mut resp =
                                contain::contained(&gw, html, router::handle(&gw, req, conn, html))
                                    .await;
                            gateway::edge_headers(&gw, &mut resp);
                            resp
                        }
                        Listener::Admin => {
                            // Boxed: the admin API is not the hot path and its future is large.
                            let admin = Box::pin(crate::admin::handle(&live, &gw, req, conn));
                            contain::contained(&gw, false, admin).await
                        }
                    })
                }
            });
            // The fast lane first (when `$lane`), then hyper for what it hands over, or for the
            // whole connection. A panic in the lane ends that connection only, counted and logged.
            macro_rules! serve_io {
                ($io:expr, $lane:expr) => {{
                    let (io, pre) = if $lane {
                        let lane = fast::serve(&live, $io, conn, &mut stopped);
                        match futures_util::FutureExt::catch_unwind(std::panic::AssertUnwindSafe(lane)).await {
                            Ok(fast::Outcome::Closed) => return,
                            Ok(fast::Outcome::Handoff(io, pre)) => (io, pre),
                            Err(_) => {
                                gw.metrics.panic();
                                tracing::error!(%peer, "fast lane panicked; connection closed");
                                return;
                            }
                        }
                    } else {
                        ($io, bytes::Bytes::new())
                    };
                    // After a hand-over the bytes are HTTP/1 unless they are the HTTP/2 preface.
                    let b = if pre.is_empty() || pre.starts_with(b"PRI ") { &builder } else { &h1_builder };
                    let io = limits::FirstBytes::new(
                        fast::Replay::new(io, pre),
                        gw.config.server.header_timeout,
                    );
                    let c = b.serve_connection_with_upgrades(TokioIo::new(io), svc);
                    if let Err(e) = watcher.watch(c).await {
                        tracing::debug!(%peer, error = %e, "connection ended with error");
                    }
                }};
            }
            // An https upstream is served by hyper's client only (`fast` checks again per
            // request, after a reload).
            let lane = kind == Listener::Public && gw.upstream.config.tls.is_none();
            match acceptor {
                Some(acc) => {
                    let hs =
                        tokio::time::timeout(gw.config.server.header_timeout, acc.accept(stream))
                            .await;
                    let tls_stream = match hs {
                        Ok(Ok(s)) => s,
                        Ok(Err(e)) => {
                            tracing::debug!(%peer, error = %e, "tls handshake failed");
                            return;
                        }
                        Err(_) => {
                            tracing::debug!(%peer, "tls handshake timed out");
                            return;
                        }
                    };
                    // HTTP/1.1 requests go to the fast lane first; HTTP/2 straight to hyper.
                    let h2 = tls_stream.get_ref().1.alpn_protocol() == Some(b"h2".as_slice());
                    serve_io!(tls_stream, lane && !h2);
                }
                None => serve_io!(stream, lane),
            }
        });
    }
    drop(listener);
    // Every connection task holds a watcher from its start, the fast lane's too, so this waits
    // for them all.
    tracing::info!(listener = ?kind, connections = graceful.count(), "shutting down: draining in-flight requests");
    let grace = gw.config.server.shutdown_grace;
    if tokio::time::timeout(grace, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("shutdown grace period over; closing remaining connections");
    }
}
