//! The admin side of the audit log: `GET /api/v1/audit`, which reads the audit table back,
//! oldest or newest first (admin actions record theirs in `manage`, blamed on the actor).

use super::error::AdminError;
use super::page;
use super::reply::ok;
use crate::clock::{parse_rfc3339, rfc3339};
use crate::http::query_param;
use crate::proxy::forward::GatewayBody;
use crate::state::Gateway;
use crate::storage::{AuditQuery, UserStore};
use hyper::Response;
use serde_json::{json, Value};

/// `GET /api/v1/audit?since=&user=&type=&order=`: a page of audit events, oldest first, or
/// with `order=desc` newest first (the cursor then pages back in time).
pub async fn audit_events(
    gw: &Gateway,
    q: Option<&str>,
) -> Result<Response<GatewayBody>, AdminError> {
    let acc = gw.accounts.as_ref().ok_or(AdminError::NoUserStore)?;
    let limit = page::limit(q)?;
    let since = match query_param(q, "since") {
        Some(s) => Some(parse_rfc3339(&s).ok_or(AdminError::BadSince)?),
        None => None,
    };
    let after_id = match query_param(q, "cursor") {
        Some(c) => Some(c.parse::<i64>().map_err(|_| AdminError::BadCursor)?),
        None => None,
    };
    let newest_first = match query_param(q, "order").as_deref() {
        None | Some("asc") => false,
        Some("desc") => true,
        Some(_) => return Err(AdminError::BadOrder),
    };
    let query = AuditQuery {
        newest_first,
        since,
        user: query_param(q, "user"),
        kind: query_param(q, "type"),
        after_id,
        limit: page::fetch(limit),
    };
    let mut rows = acc.users.query_audit(&query).await?;
    let next = page::cut(&mut rows, limit, |r| r.id.to_string());
    let items: Vec<Value> = rows
        .iter()
        .map(|r| {
            json!({
                "id": r.id, "at": rfc3339(r.event.at), "type": r.event.kind, "user": r.event.user,
                "method": r.event.method, "outcome": r.event.outcome, "reason": r.event.reason,
                "ip": r.event.ip, "session": r.event.session, "detail": r.event.detail,
            })
        })
        .collect();
    Ok(ok(&page::body(items, next)))
}
