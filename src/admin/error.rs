//! Why an admin request failed, and the one place that turns it into a response.
//!
//! Every admin handler returns `Result<Response, AdminError>`; [`respond`] is the only mapping
//! from an error to a status and a `{"error": "...", "detail": "..."}` body. The match is
//! exhaustive, so a new variant cannot ship without its answer, and every detail is a fixed
//! string: store, parser and account text goes to the log at most, never into the body.
//! Blame follows the house rule: the caller's mistakes are 4xx, an unreachable store is 503,
//! a failure of our own is 500.

use crate::accounts::AccountsError;
use crate::manage::ManageError;
use crate::metrics::Metrics;
use crate::pages::json_error;
use crate::proxy::forward::GatewayBody;
use crate::storage::StoreError;
use hyper::header::{HeaderValue, ALLOW, WWW_AUTHENTICATE};
use hyper::{Response, StatusCode};

/// What went wrong in an admin request.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// The path is not an admin endpoint.
    #[error("no such admin endpoint")]
    NoSuchEndpoint,
    /// The path exists, but not with this method; the methods it has, for `Allow`.
    #[error("method not allowed")]
    MethodNotAllowed(Vec<&'static str>),
    /// A query parameter the endpoint does not take, or one given twice (two readers could
    /// read a repeated one differently).
    #[error("unknown or repeated query parameter")]
    BadQuery,
    /// `order` is neither `asc` nor `desc`.
    #[error("invalid order")]
    BadOrder,
    /// An email address that is not one.
    #[error("invalid email")]
    BadEmail,
    /// No `Authorization: Bearer` header names a configured token.
    #[error("missing or wrong bearer token")]
    Unauthorized,
    /// The token is valid but lacks the scope the endpoint needs.
    #[error("token lacks the scope")]
    Forbidden,
    /// `limit` is not a number from 1 to 500.
    #[error("invalid page limit")]
    BadLimit,
    /// `cursor` is not a value an earlier page returned.
    #[error("invalid cursor")]
    BadCursor,
    /// `since` is not an RFC 3339 time.
    #[error("invalid since")]
    BadSince,
    /// The request body is not the JSON object the endpoint documents.
    #[error("invalid request body")]
    BadBody,
    /// A new user without a role.
    #[error("no roles given")]
    NoRoles,
    /// A chosen password shorter than 8 characters.
    #[error("password too short")]
    ShortPassword,
    /// A user name outside the allowed alphabet.
    #[error("invalid user name")]
    BadUserName,
    /// A role the config does not define.
    #[error("unknown role")]
    UnknownRole,
    /// `ttl` is not a duration.
    #[error("invalid ttl")]
    BadTtl,
    /// A break-glass `duration` that is not a duration, zero, or over `[break_glass] max_window`.
    #[error("invalid break-glass window")]
    BadWindow,
    /// The session id names no live session.
    #[error("no such session")]
    NoSuchSession,
    /// The user name names no native user.
    #[error("no such user")]
    NoSuchUser,
    /// The endpoint needs the user store, and none is configured.
    #[error("no user store is configured")]
    NoUserStore,
    /// A user with this name exists already.
    #[error("user exists")]
    UserExists,
    /// A session or user store did not answer.
    #[error("store unavailable: {0}")]
    Store(#[from] StoreError),
    /// Creating a user failed on our side (sealing, hashing, mail set-up).
    #[error("user creation failed: {0}")]
    CreateFailed(AccountsError),
    /// The shared body reader refused the body (408, 413 or 400) and answered itself.
    #[error("request body refused")]
    BodyRefused(BodyRefusal),
}

/// The answer `http::read_body` built for a body it refused, passed on unchanged so that the
/// admin API and the public endpoints refuse bodies alike (boxed: it is rare and large).
pub struct BodyRefusal(pub Box<Response<GatewayBody>>);

impl std::fmt::Debug for BodyRefusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("BodyRefusal")
            .field(&self.0.status())
            .finish()
    }
}

impl From<ManageError> for AdminError {
    fn from(e: ManageError) -> Self {
        match e {
            ManageError::NoSuchUser => AdminError::NoSuchUser,
            ManageError::BadUserName => AdminError::BadUserName,
            ManageError::UnknownRole(_) => AdminError::UnknownRole,
            ManageError::NoRoles => AdminError::NoRoles,
            ManageError::ShortPassword => AdminError::ShortPassword,
            ManageError::BadEmail => AdminError::BadEmail,
            ManageError::UserExists => AdminError::UserExists,
            ManageError::Store(e) => AdminError::Store(e),
            ManageError::Failed(e) => AdminError::CreateFailed(e),
        }
    }
}

impl AdminError {
    /// The error a failed user creation is.
    pub fn from_creation(e: AccountsError) -> Self {
        AdminError::from(ManageError::from(e))
    }
}

/// The response for `e`; logs and counts what the operator must see, once, here.
pub fn respond(metrics: &Metrics, e: AdminError) -> Response<GatewayBody> {
    let bad = StatusCode::BAD_REQUEST;
    let not_found = StatusCode::NOT_FOUND;
    let (status, error, detail) = match e {
        AdminError::NoSuchEndpoint => (not_found, "not_found", "No such admin endpoint."),
        AdminError::MethodNotAllowed(methods) => {
            let mut r = json_error(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "This method is not allowed here.",
            );
            // RFC 9110 §15.5.6: a 405 lists the methods the resource has.
            if let Ok(v) = HeaderValue::from_str(&methods.join(", ")) {
                r.headers_mut().insert(ALLOW, v);
            }
            return r;
        }
        AdminError::BadQuery => (
            bad,
            "bad_request",
            "A query parameter is unknown to this endpoint or given twice.",
        ),
        AdminError::BadOrder => (bad, "bad_request", "order must be asc or desc."),
        AdminError::BadEmail => (bad, "bad_request", "Invalid email address."),
        AdminError::Unauthorized => {
            let mut r = json_error(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "A valid bearer token is required.",
            );
            // RFC 6750 §3: a 401 names the scheme it wants.
            r.headers_mut()
                .insert(WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            return r;
        }
        AdminError::Forbidden => (
            StatusCode::FORBIDDEN,
            "forbidden",
            "This token's scopes do not include this endpoint.",
        ),
        AdminError::BadLimit => (bad, "bad_request", "limit must be between 1 and 500."),
        AdminError::BadCursor => (bad, "bad_request", "Invalid cursor."),
        AdminError::BadSince => (bad, "bad_request", "since must be an RFC 3339 time."),
        AdminError::BadBody => (
            bad,
            "bad_request",
            "Invalid body: a JSON object with the documented fields is required.",
        ),
        AdminError::NoRoles => (bad, "bad_request", "roles must name at least one role."),
        AdminError::ShortPassword => (
            bad,
            "bad_request",
            "The password must have at least 8 characters.",
        ),
        AdminError::BadUserName => (
            bad,
            "bad_request",
            "Invalid user name: use 1-64 characters from a-z, 0-9, '.', '_', '-', '@'.",
        ),
        AdminError::UnknownRole => (
            bad,
            "bad_request",
            "roles names a role the config does not define.",
        ),
        AdminError::BadTtl => (
            bad,
            "bad_request",
            "ttl must be a duration such as \"30d\" (units ms, s, m, h, d, w).",
        ),
        AdminError::BadWindow => (
            bad,
            "bad_request",
            "duration must be a duration such as \"2h\", above zero and at most [break_glass] max_window.",
        ),
        AdminError::NoSuchSession => (not_found, "not_found", "No such session."),
        AdminError::NoSuchUser => (not_found, "not_found", "No such user."),
        AdminError::NoUserStore => (not_found, "not_found", "No user store is configured."),
        AdminError::UserExists => (
            StatusCode::CONFLICT,
            "conflict",
            "A user with this name exists.",
        ),
        AdminError::Store(e) => {
            metrics.store_error();
            tracing::warn!(error = %e, "admin request failed: store unavailable");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "A store is unreachable.",
            )
        }
        AdminError::CreateFailed(e) => {
            tracing::error!(error = %e, "user creation failed");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "The user could not be created.",
            )
        }
        AdminError::BodyRefused(BodyRefusal(r)) => return *r,
    };
    json_error(status, error, detail)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)] // a test that panics fails, as it should
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    /// Status, `error`, `detail` and the `WWW-Authenticate` header of the answer to `e`.
    async fn answer(metrics: &Metrics, e: AdminError) -> (u16, String, String, Option<String>) {
        let r = respond(metrics, e);
        let status = r.status().as_u16();
        let auth = r
            .headers()
            .get(WWW_AUTHENTICATE)
            .map(|v| v.to_str().unwrap().to_owned());
        let body = r.into_body().collect().await.unwrap().to_bytes();
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        (
            status,
            v["error"].as_str().unwrap().to_owned(),
            v["detail"].as_str().unwrap().to_owned(),
            auth,
        )
    }

    #[tokio::test]
    async fn every_error_answers_its_status_code_and_fixed_detail() {
        let metrics = Metrics::default();
        let cases = [
            (
                AdminError::NoSuchEndpoint,
                404,
                "not_found",
                "No such admin endpoint.",
            ),
            (
                AdminError::BadQuery,
                400,
                "bad_request",
                "A query parameter is unknown to this endpoint or given twice.",
            ),
            (
                AdminError::BadOrder,
                400,
                "bad_request",
                "order must be asc or desc.",
            ),
            (
                AdminError::BadEmail,
                400,
                "bad_request",
                "Invalid email address.",
            ),
            (
                AdminError::BadLimit,
                400,
                "bad_request",
                "limit must be between 1 and 500.",
            ),
            (AdminError::BadCursor, 400, "bad_request", "Invalid cursor."),
            (
                AdminError::BadSince,
                400,
                "bad_request",
                "since must be an RFC 3339 time.",
            ),
            (
                AdminError::NoRoles,
                400,
                "bad_request",
                "roles must name at least one role.",
            ),
            (
                AdminError::ShortPassword,
                400,
                "bad_request",
                "The password must have at least 8 characters.",
            ),
            (
                AdminError::BadBody,
                400,
                "bad_request",
                "Invalid body: a JSON object with the documented fields is required.",
            ),
            (
                AdminError::BadUserName,
                400,
                "bad_request",
                "Invalid user name: use 1-64 characters from a-z, 0-9, '.', '_', '-', '@'.",
            ),
            (
                AdminError::UnknownRole,
                400,
                "bad_request",
                "roles names a role the config does not define.",
            ),
            (
                AdminError::BadTtl,
                400,
                "bad_request",
                "ttl must be a duration such as \"30d\" (units ms, s, m, h, d, w).",
            ),
            (
                AdminError::NoSuchSession,
                404,
                "not_found",
                "No such session.",
            ),
            (AdminError::NoSuchUser, 404, "not_found", "No such user."),
            (
                AdminError::NoUserStore,
                404,
                "not_found",
                "No user store is configured.",
            ),
            (
                AdminError::UserExists,
                409,
                "conflict",
                "A user with this name exists.",
            ),
            (
                AdminError::CreateFailed(AccountsError::Hashing),
                500,
                "internal",
                "The user could not be created.",
            ),
        ];
        for (e, status, error, detail) in cases {
            assert_eq!(
                answer(&metrics, e).await,
                (status, error.to_owned(), detail.to_owned(), None)
            );
        }
    }

    #[tokio::test]
    async fn unauthorized_names_the_bearer_scheme() {
        let metrics = Metrics::default();
        assert_eq!(
            answer(&metrics, AdminError::Unauthorized).await,
            (
                401,
                "unauthorized".to_owned(),
                "A valid bearer token is required.".to_owned(),
                Some("Bearer".to_owned())
            )
        );
    }

    #[tokio::test]
    async fn store_text_never_reaches_the_body() {
        let metrics = Metrics::default();
        let e = AdminError::Store(StoreError::Unavailable(
            "connection to 10.0.0.7:5432 refused for role portcullis".to_owned(),
        ));
        assert_eq!(
            answer(&metrics, e).await,
            (
                503,
                "unavailable".to_owned(),
                "A store is unreachable.".to_owned(),
                None
            )
        );
        // Counted once, as a store failure.
        assert!(metrics
            .render(None)
            .lines()
            .any(|l| l == "portcullis_store_errors_total 1"));
    }

    #[test]
    fn a_taken_user_name_is_a_conflict_and_other_store_errors_stay_store_errors() {
        assert!(matches!(
            AdminError::from_creation(AccountsError::Store(StoreError::Conflict)),
            AdminError::UserExists
        ));
        assert!(matches!(
            AdminError::from_creation(AccountsError::Store(StoreError::Corrupt("x".into()))),
            AdminError::Store(StoreError::Corrupt(_))
        ));
        assert!(matches!(
            AdminError::from_creation(AccountsError::BadUserName("Bob Smith".into())),
            AdminError::BadUserName
        ));
        assert!(matches!(
            AdminError::from_creation(AccountsError::UnknownRole("root".into())),
            AdminError::UnknownRole
        ));
    }
}
