//! The success answers of the admin API: JSON with 200 or 201, an empty 204, the readiness
//! answer, plain text for metrics, and the one refusal that carries details (a reload's config
//! errors, for the operator). Other errors are not built here but in `error::respond`.

use crate::pages::json_response;
use crate::proxy::forward::GatewayBody;
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::{Response, StatusCode};
use serde_json::Value;

/// `200 OK` with `body` as JSON.
pub fn ok(body: &Value) -> Response<GatewayBody> {
    json_response(StatusCode::OK, body)
}

/// `201 Created` with `body` as JSON.
pub fn created(body: &Value) -> Response<GatewayBody> {
    json_response(StatusCode::CREATED, body)
}

/// `204 No Content`, with no body and no headers.
pub fn no_content() -> Response<GatewayBody> {
    let mut r = Response::new(GatewayBody::empty());
    *r.status_mut() = StatusCode::NO_CONTENT;
    r
}

/// `503 Service Unavailable` with a readiness `body`: not an error of the request, the answer
/// a load balancer reads.
pub fn not_ready(body: &Value) -> Response<GatewayBody> {
    json_response(StatusCode::SERVICE_UNAVAILABLE, body)
}

/// `422 Unprocessable Entity` for a reload whose config was refused: the answer carries the
/// `check` lines, which the operator on the admin listener needs (not an `AdminError`, whose
/// details are fixed strings).
pub fn config_refused(lines: Vec<String>) -> Response<GatewayBody> {
    json_response(
        StatusCode::UNPROCESSABLE_ENTITY,
        &serde_json::json!({
            "error": "config_invalid",
            "detail": "The configuration was refused; the running one stays in force.",
            "errors": lines,
        }),
    )
}

/// `200 OK` with a text `body` of the given content type.
pub fn text(content_type: &'static str, body: String) -> Response<GatewayBody> {
    let mut r = Response::new(GatewayBody::from(body));
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    r
}

/// Sets `key` on a JSON object (a no-op on anything else).
pub fn set(v: &mut Value, key: &str, val: Value) {
    if let Some(o) = v.as_object_mut() {
        o.insert(key.to_owned(), val);
    }
}
