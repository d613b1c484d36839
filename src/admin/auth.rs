//! Bearer tokens of the admin listener (DESIGN.md §3). The config holds only SHA-256 hashes of
//! the tokens; a presented token is hashed and compared with every configured hash in
//! constant time, without an early exit, so timing tells nothing about which hash came close.
//! Each token carries scopes (DESIGN.md §11); a route needs one (`scope_of`), else 403.

use super::error::AdminError;
use super::routes::{Op, Route};
use crate::config::{AdminTokenHash, Scope};
use crate::http::Conn;
use crate::secret::ct_eq;
use crate::state::Gateway;
use hyper::body::Incoming;
use hyper::header::AUTHORIZATION;
use hyper::Request;

/// The scope a route needs: `metrics` for `/metrics`, `read` for any other `GET`, `write` for
/// everything that changes something. Derived from the route, so a new route cannot miss one.
pub fn scope_of(route: &Route) -> Scope {
    match (route.op, route.method) {
        (Op::Metrics, _) => Scope::Metrics,
        (_, "GET" | "HEAD") => Scope::Read,
        _ => Scope::Write,
    }
}

/// The configured token that `Authorization: Bearer …` matches, if any.
fn authenticate<'g>(gw: &'g Gateway, req: &Request<Incoming>) -> Option<&'g AdminTokenHash> {
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
            found = Some(t);
        }
    }
    found
}

/// The acting token's name; a request without a valid token is an audit event and
/// `Unauthorized`, one whose token lacks the route's scope an audit event and `Forbidden`.
pub fn actor(
    gw: &Gateway,
    req: &Request<Incoming>,
    conn: Conn,
    route: &Route,
) -> Result<String, AdminError> {
    let path = req.uri().path();
    let Some(token) = authenticate(gw, req) else {
        tracing::info!(target: "audit", kind = "admin.unauthorized", ip = %conn.peer.ip(), path = %path, "admin request without a valid token");
        return Err(AdminError::Unauthorized);
    };
    let scope = scope_of(route);
    if !token.scopes.allows(scope) {
        tracing::info!(target: "audit", kind = "admin.forbidden", token = %token.name, scope = scope.as_str(), ip = %conn.peer.ip(), path = %path, "admin token lacks the scope");
        return Err(AdminError::Forbidden);
    }
    Ok(token.name.clone())
}
