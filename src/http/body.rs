//! Request bodies of the gateway's own endpoints: capped at `server.max_body_bytes` and due
//! within `server.body_timeout` (slow POST), answered `413`/`408`/`400` otherwise.

use crate::pages;
use crate::proxy::forward::GatewayBody;
use crate::state::Gateway;
use bytes::Bytes;
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper::{Response, StatusCode};

/// Reads a request body up to `server.max_body_bytes`; `None` when it is larger or broken.
pub async fn read_body(gw: &Gateway, body: Incoming) -> Result<Bytes, Response<GatewayBody>> {
    // Slow POST: the whole body must arrive within `body_timeout`.
    let collected = tokio::time::timeout(
        gw.config.server.body_timeout,
        Limited::new(body, gw.config.server.max_body_bytes).collect(),
    )
    .await;
    let Ok(collected) = collected else {
        tracing::info!("request body not received in time");
        return Err(pages::json_error(
            StatusCode::REQUEST_TIMEOUT,
            "request_timeout",
            "The request body did not arrive in time.",
        ));
    };
    match collected {
        Ok(c) => Ok(c.to_bytes()),
        Err(e) => {
            if e.downcast_ref::<http_body_util::LengthLimitError>()
                .is_some()
            {
                tracing::info!("request body over the limit refused");
                Err(pages::json_error(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "payload_too_large",
                    "The request body is too large.",
                ))
            } else {
                Err(pages::json_error(
                    StatusCode::BAD_REQUEST,
                    "bad_request",
                    "The request body could not be read.",
                ))
            }
        }
    }
}
