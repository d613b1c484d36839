//! The proxy path's phases that both lanes run (DESIGN.md §2), written once: classify the
//! route, load the session, authorize, plan what goes upstream, log. `gateway` (hyper) and
//! `fast` (raw HTTP/1.1) call these; each lane only reads its own representation of a request.
//! Invariant: a request the lane takes gets the decisions `gateway` would make for it.

use super::access::{self, AccessLine};
use crate::auth::policy::{self, RouteDecision};
use crate::clock::UnixTime;
use crate::config::{Access, OnMissingMfa, RouteConfig};
use crate::http::{Conn, GatewayError};
use crate::metrics::RouteClass;
use crate::proxy::plan::{ForwardPlan, IdentityPlan};
use crate::session::{cookie, AuthMethod, MfaUsed, Session, SessionId, SessionStore};
use crate::state::Gateway;
use hyper::Request;
use std::sync::Arc;
use std::time::Instant;

/// Phase classify: the route for the normalised path (the one routed on and forwarded).
pub fn classify<'g>(gw: &'g Gateway, normalized: &str) -> Result<&'g RouteConfig, GatewayError> {
    match gw.routes.decide(normalized) {
        RouteDecision::Route(r) => Ok(r),
        RouteDecision::NoRoute => Err(GatewayError::NoRoute),
        RouteDecision::Ambiguous => Err(GatewayError::AmbiguousPath),
    }
}

/// Reads the session cookie and returns the live session, if any (see `session_for_token`).
pub async fn load_session<B>(
    gw: &Gateway,
    req: &Request<B>,
) -> Result<Option<Arc<Session>>, GatewayError> {
    let Some(token) = cookie::get(req.headers(), gw.cookies.session) else {
        return Ok(None);
    };
    session_for_token(gw, token).await
}

/// Phase load_session, for a session cookie's value: the live session, if any. Expired
/// sessions are removed; the idle timestamp is written at most once per touch interval.
pub async fn session_for_token(
    gw: &Gateway,
    token: &str,
) -> Result<Option<Arc<Session>>, GatewayError> {
    // Hashed from the borrowed value: no copy of the secret is made.
    session_for_id(gw, &SessionId::of_str(token)).await
}

/// Phase load_session, for the id of a session cookie (the lane hashes it once per connection
/// and token: `session::LastToken`).
pub async fn session_for_id(
    gw: &Gateway,
    id: &SessionId,
) -> Result<Option<Arc<Session>>, GatewayError> {
    // Fail closed: a store error is a 503, never "no session" and never "allowed".
    let Some(s) = gw.store.get(id).await? else {
        return Ok(None);
    };
    let now = gw.clock.now();
    if let Err(why) = s.check(now) {
        Box::pin(gw.store.remove(id)).await?;
        tracing::info!(target: "audit", event = "session.expired", user = %s.identity.user, reason = ?why, "session expired");
        return Ok(None);
    }
    // After a live reload, a session made under an older config is judged by this one's role
    // policies too (DESIGN.md §11): a stricter policy applies from its next request.
    if gw.reloaded_at.is_some_and(|t| s.created_at <= t) {
        if let Err(why) = within_policy(gw, &s, now) {
            Box::pin(gw.store.remove(id)).await?;
            tracing::info!(target: "audit", event = "session.policy_changed", user = %s.identity.user, reason = why, "session ended: its roles' policy changed");
            return Ok(None);
        }
    }
    if s.needs_touch(now, gw.config.session.touch_interval) {
        // Boxed, as `remove` above: rare, and kept out of the per-request future.
        Box::pin(gw.store.touch(&s, now)).await?;
    }
    Ok(Some(s))
}

/// Whether a session still meets its roles' strictest policy in the config in force: a second
/// factor where one is now required (unless its IdP is trusted without one), and the lifetime
/// and idle timeout, which a reload may have shortened (never lengthened: `Session::check`).
fn within_policy(gw: &Gateway, s: &Session, now: UnixTime) -> Result<(), &'static str> {
    let p = policy::effective_policy(&gw.config, &s.identity.roles);
    if p.require_mfa && s.identity.mfa == MfaUsed::None {
        let trusted = match &s.identity.method {
            AuthMethod::Oidc(id) | AuthMethod::Saml(id) => gw
                .config
                .idps
                .iter()
                .any(|i| i.id == *id && i.on_missing_mfa == OnMissingMfa::Trust),
            // The demo's sample login has no second factor by design.
            AuthMethod::Demo => true,
            // Both pass the gateway's own factor; a session without one is not theirs.
            AuthMethod::Native | AuthMethod::BreakGlass => false,
            // Never stored: a machine client's identity lives for one request.
            AuthMethod::Token(_) | AuthMethod::Bearer(_) => false,
        };
        if !trusted {
            return Err("mfa_required");
        }
    }
    let secs = |d: std::time::Duration| i64::try_from(d.as_secs()).unwrap_or(i64::MAX);
    if now >= s.created_at.saturating_add(secs(p.max_lifetime)) {
        return Err("max_lifetime");
    }
    if now.saturating_sub(s.last_seen()) >= secs(p.idle_timeout) {
        return Err("idle_timeout");
    }
    Ok(())
}

/// What phase authorize decided.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Authorized {
    /// A public route, or a session with a role the route admits.
    Pass,
    /// A protected route and no session: the client is sent to sign in (or gets 401).
    SignIn,
    /// A session, but none of its roles is admitted (403).
    Refused,
}

/// Phase authorize: public routes pass; protected ones need a session with an admitted role.
pub fn authorize(route: &RouteConfig, session: Option<&Session>) -> Authorized {
    match (&route.access, session) {
        (Access::Public, _) => Authorized::Pass,
        (Access::Roles(_), Some(s)) if policy::admits(route, &s.identity.roles) => Authorized::Pass,
        (Access::Roles(_), Some(_)) => Authorized::Refused,
        (Access::Roles(_), None) => Authorized::SignIn,
    }
}

/// Phase rewrite, the part both lanes share: what the gateway adds to the request (target,
/// forwarding and identity headers). `chain`: the client's first `X-Forwarded-For` as text,
/// kept only from a trusted proxy; `host`: the client's `Host`.
pub fn plan<'a, V>(
    gw: &'a Gateway,
    conn: Conn,
    normalized: &'a str,
    query: Option<&'a str>,
    host: Option<V>,
    chain: Option<&'a str>,
    session: Option<&'a Session>,
) -> ForwardPlan<'a, V> {
    let peer = conn.peer.ip();
    let trusted = gw.config.is_trusted_proxy(peer);
    ForwardPlan {
        base_path: &gw.upstream.config.base_path,
        path: normalized,
        query,
        chain: chain.filter(|_| trusted),
        peer,
        https: conn.tls || (trusted && gw.config.server.https),
        host,
        identity: session.map(|s| IdentityPlan {
            names: &gw.ids,
            values: &s.headers,
            assertion: gw.signer.for_session(s, gw.clock.now(), &gw.metrics),
        }),
    }
}

/// Phase log: the request's metrics (status class, duration histogram: always), and its
/// access line (`access::emit`) when the lane built one (`access::enabled`). `bytes`: the
/// response body's declared length; `started`: when the request head was read; `ended`: a
/// clock reading taken once the response was out (the lane reuses it as the start of the
/// connection's next idle wait, so a request costs one clock reading fewer).
pub fn log(
    gw: &Gateway,
    class: RouteClass,
    status: u16,
    bytes: Option<u64>,
    (started, ended): (Instant, Instant),
    line: Option<AccessLine<'_>>,
) {
    let took = ended.saturating_duration_since(started);
    gw.metrics.request(class, status, took);
    if let Some(l) = line {
        access::emit(&l, class, status, bytes, took);
    }
}
