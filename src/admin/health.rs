//! The operator endpoints: liveness (`/healthz`, the process answers), readiness (`/readyz`,
//! the stores answer and every IdP has its metadata) and Prometheus metrics (`/metrics`).

use super::reply::{not_ready, ok, text};
use crate::proxy::forward::GatewayBody;
use crate::session::SessionStore;
use crate::state::Gateway;
use crate::storage::UserStore;
use hyper::Response;
use serde_json::json;

/// `GET /healthz`: always `{"status": "ok"}`.
pub fn healthz() -> Response<GatewayBody> {
    ok(&json!({"status": "ok"}))
}

/// `GET /readyz`: `200` when the session store, the user store (if any) and the IdP metadata
/// are all there, `503` otherwise; the body says which check failed.
pub async fn readyz(gw: &Gateway) -> Response<GatewayBody> {
    let sessions = gw.store.ping().await.is_ok();
    let users = match &gw.accounts {
        Some(acc) => acc.users.ping().await.is_ok(),
        None => true,
    };
    // OIDC providers load in the background; not ready until every one has its metadata.
    let idps = gw.oidc.ready() && gw.saml.ready();
    let ready = sessions && users && idps;
    let body = json!({"status": if ready { "ready" } else { "unavailable" }, "checks": {"session_store": sessions, "user_store": users, "idp_metadata": idps}});
    if ready {
        ok(&body)
    } else {
        not_ready(&body)
    }
}

/// `GET /metrics`: the Prometheus text format, with the live session count when the session
/// store answers.
pub async fn metrics(gw: &Gateway) -> Response<GatewayBody> {
    let active = gw.store.count().await.ok();
    text(
        "text/plain; version=0.0.4; charset=utf-8",
        gw.metrics.render(active),
    )
}
