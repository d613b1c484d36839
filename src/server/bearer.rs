//! Phase load_caller of the proxy path (DESIGN.md §9): who a request is, a session (cookie) or
//! a machine client (`Authorization: Bearer`: a service token, or a bearer IdP's JWT).
//! Invariants: a bearer on a protected route decides alone (a bad one is 401 even beside a good
//! cookie, and no session is read, made or touched); only `bearer = true` routes take one;
//! public routes stay public; every refusal is audited and counted.

use super::phases;
use crate::audit;
use crate::auth::bearer::{
    claimed_issuer, machine_session, roles_of, token_of, verify_access_token, AccessTrust,
    BearerError,
};
use crate::config::{Access, RouteConfig};
use crate::http::{Conn, GatewayError};
use crate::session::{AuthMethod, Identity, MfaUsed, Session};
use crate::state::Gateway;
use hyper::header::AUTHORIZATION;
use hyper::Request;
use std::sync::Arc;

/// Which credential a machine client used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BearerKind {
    /// A `[[service_tokens]]` token: the gateway's own secret, never forwarded upstream.
    ServiceToken,
    /// A bearer IdP's JWT access token: forwarded, so the app may verify it again.
    Jwt,
}

/// Who the request is: the session (a stored one, or a machine client's request identity)
/// and, for a machine client, how it authenticated.
pub struct Caller {
    pub session: Option<Arc<Session>>,
    pub bearer: Option<BearerKind>,
}

/// Phase load_caller: the bearer of a protected route, else the session cookie
/// (`phases::load_session`). A refused bearer is `GatewayError::InvalidToken` (audited).
pub async fn load_caller<B>(
    gw: &Gateway,
    req: &Request<B>,
    route: &RouteConfig,
    conn: Conn,
) -> Result<Caller, GatewayError> {
    // Public routes stay public: a bearer there is the app's business, passed as sent.
    if !req.headers().contains_key(AUTHORIZATION) || route.access == Access::Public {
        return Ok(Caller {
            session: phases::load_session(gw, req).await?,
            bearer: None,
        });
    }
    // Boxed: rare next to cookie requests, and the JWT check with its key refresh is large.
    Box::pin(bearer_caller(gw, req, route, conn)).await
}

async fn bearer_caller<B>(
    gw: &Gateway,
    req: &Request<B>,
    route: &RouteConfig,
    conn: Conn,
) -> Result<Caller, GatewayError> {
    let values: Vec<&[u8]> = req
        .headers()
        .get_all(AUTHORIZATION)
        .iter()
        .map(|v| v.as_bytes())
        .collect();
    let token = match token_of(&values) {
        // Another scheme (Basic…): not ours; the session cookie decides, as before.
        Ok(None) => {
            return Ok(Caller {
                session: phases::load_session(gw, req).await?,
                bearer: None,
            })
        }
        Ok(Some(t)) => t,
        Err(e) => return Err(refuse(gw, conn, route, e, None).await),
    };
    // DESIGN.md §9: a bearer on a route without `bearer = true` is refused, cookie or not.
    if !route.bearer {
        return Err(refuse(gw, conn, route, BearerError::NotBearerRoute, None).await);
    }
    match authenticate(gw, token).await {
        Ok((session, kind)) => {
            gw.metrics.bearer_accepted(kind == BearerKind::Jwt);
            // The audit stream gets every acceptance; the audit table only refusals (one row
            // per API call would grow it without bound).
            tracing::info!(target: "audit", kind = "bearer.accepted", user = %session.identity.user, method = %session.identity.method.header_value(), ip = %conn.peer.ip(), route = %route.prefix, "bearer token accepted");
            Ok(Caller {
                session: Some(session),
                bearer: Some(kind),
            })
        }
        Err(Refused::Token(e, method)) => Err(refuse(gw, conn, route, e, method.as_deref()).await),
        Err(Refused::Unavailable(idp)) => {
            tracing::warn!(idp = %idp, "bearer token of an idp whose keys are not loaded");
            Err(GatewayError::BearerIdpUnavailable)
        }
    }
}

enum Refused {
    /// Refused, with the method when the token was attributed to a client (`bearer:<idp>`).
    Token(BearerError, Option<String>),
    /// The token names a bearer IdP whose keys are not loaded yet.
    Unavailable(String),
}

/// A service token (compared against every configured one), else a JWT of the bearer IdP its
/// `iss` names, verified against that IdP's keys (one rate-limited refresh for an unknown kid).
async fn authenticate(gw: &Gateway, token: &str) -> Result<(Arc<Session>, BearerKind), Refused> {
    if let Some((s, _proof)) = gw.machines.authenticate(token) {
        return Ok((Arc::clone(s), BearerKind::ServiceToken));
    }
    let unknown = || Refused::Token(BearerError::Unknown, None);
    let iss = claimed_issuer(token).ok_or_else(unknown)?;
    let provider = gw
        .config
        .idps
        .iter()
        .filter(|i| {
            i.oidc
                .as_ref()
                .is_some_and(|o| o.bearer.is_some() && o.issuer == iss)
        })
        .find_map(|i| gw.oidc.get(&i.id))
        .ok_or_else(unknown)?;
    let idp = provider.idp.id.clone();
    let method = AuthMethod::Bearer(idp.clone()).header_value();
    let Some(settings) = provider.settings.bearer.as_ref() else {
        return Err(unknown());
    };
    if provider.loaded().is_none() {
        return Err(Refused::Unavailable(idp));
    }
    let now = gw.clock.now();
    let verified = provider
        .with_keys_as(
            token,
            now,
            |e| *e == BearerError::UnknownKid,
            |t| {
                verify_access_token(
                    token,
                    &AccessTrust {
                        issuer: t.issuer,
                        audience: &settings.audience,
                        jwks: t.jwks,
                        algs: t.algs,
                        now: t.now,
                    },
                )
            },
        )
        .await
        .map_err(|e| Refused::Token(e, Some(method.clone())))?;
    // Roles as for SSO logins: only defined ones, within the IdP's `roles` cap.
    let (roles, dropped) = roles_of(&verified.claims, &settings.roles_claim, |r| {
        gw.config.roles.contains_key(r) && provider.idp.may_grant(r)
    });
    if dropped {
        tracing::info!(target: "audit", kind = "bearer.roles_dropped", idp = %idp, user = %verified.sub, "token listed roles this idp may not grant, or undefined ones");
    }
    let identity = Identity {
        principal: format!("{idp}:{}", verified.sub),
        user: verified.sub,
        email: None,
        groups: Vec::new(),
        roles,
        method: AuthMethod::Bearer(idp),
        mfa: MfaUsed::None,
    };
    let session = machine_session(identity, now)
        .map_err(|_| Refused::Token(BearerError::Claim("sub"), Some(method)))?;
    Ok((Arc::new(session), BearerKind::Jwt))
}

/// Audits and counts a refused bearer; the error the caller returns (401).
async fn refuse(
    gw: &Gateway,
    conn: Conn,
    route: &RouteConfig,
    e: BearerError,
    method: Option<&str>,
) -> GatewayError {
    gw.metrics.bearer_refused(e.reason());
    let detail = format!("route {}: {e}", route.prefix);
    audit::record(
        gw,
        audit::Event {
            method,
            reason: Some(e.reason()),
            ip: Some(conn.peer.ip()),
            detail: Some(detail),
            ..audit::Event::new(audit::Kind::BearerRefused, audit::Outcome::Refused)
        },
    )
    .await;
    GatewayError::InvalidToken(e)
}

/// Audits and counts a machine client whose roles the route does not admit (403).
pub async fn refused_role(gw: &Gateway, conn: Conn, route: &RouteConfig, s: &Session) {
    gw.metrics.bearer_refused("role");
    let method = s.identity.method.header_value();
    audit::record(
        gw,
        audit::Event {
            user: Some(&s.identity.user),
            method: Some(&method),
            reason: Some("role"),
            ip: Some(conn.peer.ip()),
            detail: Some(format!("route {}", route.prefix)),
            ..audit::Event::new(audit::Kind::BearerRefused, audit::Outcome::Refused)
        },
    )
    .await;
}
