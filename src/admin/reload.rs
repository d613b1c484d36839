//! `POST /api/v1/reload` (DESIGN.md §11): runs the live reload and says what happened. A refusal
//! is an answer, not an `AdminError`: its body carries the `check` lines, which the operator on
//! the admin listener needs and which never reach the public listener.

use super::reply::{config_refused, ok};
use crate::proxy::forward::GatewayBody;
use crate::server::reload::Live;
use hyper::Response;
use serde_json::json;

/// `200` with what needs a restart, or `422` with every error; the old config stays then.
pub async fn reload(live: &Live, actor: &str) -> Response<GatewayBody> {
    match live.reload(actor).await {
        Ok(r) => ok(&json!({
            "status": "reloaded",
            "restart_required": r.restart_required,
            "warnings": r.warnings,
        })),
        Err(e) => config_refused(e.lines()),
    }
}
