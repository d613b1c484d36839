//! A TCP relay in front of a shared server (Redis, PostgreSQL) that a test can take down and
//! bring back: one gateway sees an outage while other tests keep using the server.
//!
//! Its listener is bound once and kept for its life (never rebound, so its port cannot be
//! taken meanwhile); while down, every relayed connection is cut and each new one is closed
//! at once, which a client sees as the server being gone.

use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// A relay to `target`; dropped, it stops and cuts everything.
pub struct Relay {
    pub addr: SocketAddr,
    up: Arc<watch::Sender<bool>>,
    task: tokio::task::JoinHandle<()>,
}

impl Relay {
    pub async fn start(target: String) -> Relay {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (up, _) = watch::channel(true);
        let up = Arc::new(up);
        let state = Arc::clone(&up);
        let task = tokio::spawn(async move {
            // Dropped with this task: every relayed connection ends with it.
            let mut conns = tokio::task::JoinSet::new();
            while let Ok((mut client, _)) = listener.accept().await {
                let mut live = state.subscribe();
                if !*live.borrow_and_update() {
                    continue; // down: closed at once (dropped)
                }
                let target = target.clone();
                conns.spawn(async move {
                    let Ok(mut server) = TcpStream::connect(target).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                        // Going down cuts the connection.
                        _ = live.wait_for(|up| !*up) => {}
                    }
                });
            }
        });
        Relay { addr, up, task }
    }

    /// The outage starts: relayed connections are cut, new ones closed.
    pub fn down(&self) {
        self.up.send_replace(false);
    }

    /// The server is back for new connections.
    pub fn up(&self) {
        self.up.send_replace(true);
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// `scheme://userinfo@HOST:PORT/rest` with `HOST:PORT` replaced by `addr`, and the original
/// `HOST:PORT` (`default_port` if it has none); `None` if the URL has no `user@host` part.
pub fn via(url: &str, addr: SocketAddr, default_port: u16) -> Option<(String, String)> {
    let (scheme, rest) = url.split_once("://")?;
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    let (user, hostport) = match authority.rsplit_once('@') {
        Some((u, h)) => (format!("{u}@"), h),
        None => (String::new(), authority),
    };
    if hostport.is_empty() {
        return None;
    }
    let target = if hostport.contains(':') {
        hostport.to_owned()
    } else {
        format!("{hostport}:{default_port}")
    };
    Some((format!("{scheme}://{user}{addr}{tail}"), target))
}
