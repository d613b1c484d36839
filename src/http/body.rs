//! Request bodies of the gateway's own endpoints: capped (at `server.max_body_bytes`, or a
//! caller's limit) and due within `server.body_timeout` (slow POST); the one mapping of what
//! went wrong to `408`/`413`/`400`.

use crate::pages;
use crate::proxy::forward::GatewayBody;
use crate::state::Gateway;
use bytes::Bytes;
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper::{Response, StatusCode};

/// Why a request body was not read.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum BodyError {
    /// The whole body did not arrive within `body_timeout`.
    #[error("request body not received in time")]
    Timeout,
    /// Longer than the limit (never read whole).
    #[error("request body over the limit")]
    TooLarge,
    /// The connection broke or the framing was wrong.
    #[error("request body could not be read")]
    Broken,
}

impl BodyError {
    /// The JSON answer to this failure.
    pub fn response(self) -> Response<GatewayBody> {
        tracing::info!(error = %self, "request body refused");
        match self {
            BodyError::Timeout => pages::json_error(
                StatusCode::REQUEST_TIMEOUT,
                "request_timeout",
                "The request body did not arrive in time.",
            ),
            BodyError::TooLarge => pages::json_error(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                "The request body is too large.",
            ),
            BodyError::Broken => pages::json_error(
                StatusCode::BAD_REQUEST,
                "bad_request",
                "The request body could not be read.",
            ),
        }
    }
}

/// Reads a request body up to `server.max_body_bytes`, answering a failure with its response.
pub async fn read_body(gw: &Gateway, body: Incoming) -> Result<Bytes, Response<GatewayBody>> {
    read_body_up_to(gw, body, gw.config.server.max_body_bytes)
        .await
        .map_err(BodyError::response)
}

/// Reads a request body of at most `limit` bytes within `server.body_timeout`.
pub async fn read_body_up_to(
    gw: &Gateway,
    body: Incoming,
    limit: usize,
) -> Result<Bytes, BodyError> {
    // Slow POST: the whole body must arrive within `body_timeout`; the limit comes before any
    // parsing, so an oversized body is never held whole.
    let collected = tokio::time::timeout(
        gw.config.server.body_timeout,
        Limited::new(body, limit).collect(),
    )
    .await
    .map_err(|_| BodyError::Timeout)?;
    match collected {
        Ok(c) => Ok(c.to_bytes()),
        Err(e)
            if e.downcast_ref::<http_body_util::LengthLimitError>()
                .is_some() =>
        {
            Err(BodyError::TooLarge)
        }
        Err(_) => Err(BodyError::Broken),
    }
}
