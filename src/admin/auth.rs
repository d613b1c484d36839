//! Bearer tokens of the admin listener (DESIGN.md §3). The config holds only SHA-256 hashes of
//! the tokens; a presented token is hashed and compared with every configured hash in
//! constant time, without an early exit, so timing tells nothing about which hash came close.

use super::error::AdminError;
use crate::http::Conn;
use crate::secret::ct_eq;
use crate::state::Gateway;
use hyper::body::Incoming;
use hyper::header::AUTHORIZATION;
use hyper::Request;

/// The name of the configured token that `Authorization: Bearer …` matches, if any.
fn authenticate(gw: &Gateway, req: &Request<Incoming>) -> Option<String> {
    let admin = gw.config.admin.as_ref()?;
    let header = req.headers().get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = header.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let digest = ring::digest::digest(&ring::digest::SHA256, token.trim().as_bytes());
    // Compare against every configured hash, without an early exit.
    let mut found = None;
    for t in &admin.tokens {
        if ct_eq(&t.sha256, digest.as_ref()) {
            found = Some(t.name.clone());
        }
    }
    found
}

/// The acting token's name; a request without a valid token is an audit event and
/// `Unauthorized`.
pub fn actor(
    gw: &Gateway,
    req: &Request<Incoming>,
    conn: Conn,
    path: &str,
) -> Result<String, AdminError> {
    authenticate(gw, req).ok_or_else(|| {
        tracing::info!(target: "audit", kind = "admin.unauthorized", ip = %conn.peer.ip(), path = %path, "admin request without a valid token");
        AdminError::Unauthorized
    })
}
