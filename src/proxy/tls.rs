//! TLS to an https upstream: a TCP connection and a rustls handshake, both within
//! `upstream.connect_timeout`, verified by the clients `config::UpstreamTls` holds.
//! Invariants: a handshake that fails is a `ProxyError::Tls` (502), never a retry in plain
//! HTTP; the raw TCP socket stays reachable (`Weak`) for the pool's peek before reuse.

use super::error::ProxyError;
use super::idle::SharedSocket;
use crate::config::{UpstreamConfig, UpstreamTls};
use std::sync::{Arc, Weak};
use std::time::Instant;
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

/// A verified TLS connection to the upstream.
pub struct Connected {
    pub stream: TlsStream<SharedSocket>,
    /// The TCP socket under the TLS stream, for `idle::socket_quiet`.
    pub socket: Weak<TcpStream>,
    /// The upstream chose HTTP/2 by ALPN.
    pub h2: bool,
}

/// Connects and verifies. `h1_only`: offer only `http/1.1` (a WebSocket upgrade).
pub async fn connect(
    config: &UpstreamConfig,
    tls: &UpstreamTls,
    h1_only: bool,
) -> Result<Connected, ProxyError> {
    let started = Instant::now();
    let tcp = super::idle::connect(&config.authority, config.connect_timeout).await?;
    let (io, socket) = SharedSocket::new(tcp);
    let client = if h1_only { &tls.client_h1 } else { &tls.client };
    let connector = tokio_rustls::TlsConnector::from(Arc::clone(client));
    // One budget for both steps: an upstream that accepts and then stalls the handshake is
    // as unreachable as one that never accepts.
    let left = config.connect_timeout.saturating_sub(started.elapsed());
    let stream =
        match tokio::time::timeout(left, connector.connect(tls.server_name.clone(), io)).await {
            Ok(Ok(s)) => s,
            // The io::Error wraps the rustls error, which names the reason
            // ("invalid peer certificate: UnknownIssuer"); it goes to the log only.
            Ok(Err(e)) => return Err(ProxyError::Tls(e.to_string())),
            Err(_) => {
                return Err(ProxyError::Tls(
                    "handshake not finished within connect_timeout".into(),
                ))
            }
        };
    let h2 = stream.get_ref().1.alpn_protocol() == Some(b"h2".as_slice());
    Ok(Connected { stream, socket, h2 })
}
