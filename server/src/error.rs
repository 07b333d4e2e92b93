//! The one HTTP error type. Every failure a client can see is an RFC 9457 problem document
//! (`application/problem+json`) with a `detail` a person can act on; internal errors are
//! logged with their cause and answered with a generic detail, never with internals.

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

/// An RFC 9457 problem document.
#[derive(Debug, Clone, Serialize, serde::Deserialize, ToSchema)]
pub struct Problem {
    /// Always `about:blank`: `code` tells problems apart for programs.
    #[serde(rename = "type")]
    pub kind: String,
    /// The HTTP status phrase.
    pub title: String,
    pub status: u16,
    /// What went wrong, for a person.
    pub detail: String,
    /// A stable machine-readable identifier, e.g. `invalid_architecture`.
    pub code: String,
}

// The problems many operations share, declared once for the OpenAPI document: a route lists
// the sets its extractors and checks produce (`responses((status = 200, ..), AuthProblems,
// JsonBodyProblems)`) next to its own outcomes, so every route documents an extractor's
// rejections the same way (scripts/fuzz-api checks them against the running server).

/// What every operation behind a bearer token can answer besides its own outcomes.
#[derive(utoipa::IntoResponses)]
pub enum AuthProblems {
    /// No bearer token, or one that is unknown, revoked, expired or of the wrong kind.
    #[response(status = 401, content_type = "application/problem+json")]
    Unauthorized(Problem),
    /// The database did not answer in time; retry shortly.
    #[response(status = 503, content_type = "application/problem+json")]
    Unavailable(Problem),
}

/// [`AuthProblems`], and 403 for a valid token without the admin role.
#[derive(utoipa::IntoResponses)]
pub enum AdminProblems {
    /// No bearer token, or one that is unknown, revoked, expired or of the wrong kind.
    #[response(status = 401, content_type = "application/problem+json")]
    Unauthorized(Problem),
    /// The token is valid but this operation needs an admin token.
    #[response(status = 403, content_type = "application/problem+json")]
    Forbidden(Problem),
    /// The database did not answer in time; retry shortly.
    #[response(status = 503, content_type = "application/problem+json")]
    Unavailable(Problem),
}

/// What the JSON body extractor ([`crate::extract::ApiJson`]) and the checks after it answer.
#[derive(utoipa::IntoResponses)]
pub enum JsonBodyProblems {
    /// The path, query or body is malformed (e.g. an id that is not a UUID, or invalid JSON).
    #[response(status = 400, content_type = "application/problem+json")]
    BadRequest(Problem),
    /// The body is larger than the server accepts.
    #[response(status = 413, content_type = "application/problem+json")]
    TooLarge(Problem),
    /// The body is not sent as `application/json`.
    #[response(status = 415, content_type = "application/problem+json")]
    UnsupportedMediaType(Problem),
    /// The body is JSON but not of the documented shape, or its values are invalid.
    #[response(status = 422, content_type = "application/problem+json")]
    Unprocessable(Problem),
}

/// What the path and query extractors ([`crate::extract::ApiPath`], [`crate::extract::ApiQuery`])
/// answer when a parameter does not parse.
#[derive(utoipa::IntoResponses)]
#[response(
    status = 400,
    description = "The path, query or body is malformed (e.g. an id that is not a UUID, or invalid JSON).",
    content_type = "application/problem+json"
)]
pub struct BadRequest(pub Problem);

/// [`BadRequest`], and 422 for operations that look up free text from the path or query
/// (names, block keys, `DEVICE/FRAMEWORK` pairs): a value that parses but cannot be looked up,
/// such as one with a NUL character, which Postgres cannot compare.
#[derive(utoipa::IntoResponses)]
pub enum ParamProblems {
    /// The path, query or body is malformed (e.g. an id that is not a UUID, or invalid JSON).
    #[response(status = 400, content_type = "application/problem+json")]
    BadRequest(Problem),
    /// A path or query value parses but cannot be used (e.g. it holds a NUL character).
    #[response(status = 422, content_type = "application/problem+json")]
    Unprocessable(Problem),
}

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{detail}")]
    Client {
        status: StatusCode,
        code: &'static str,
        detail: String,
    },
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("internal error: {0}")]
    Internal(String),
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, detail: impl Into<String>) -> Self {
        Self::Client {
            status,
            code,
            detail: detail.into(),
        }
    }

    pub fn bad_request(code: &'static str, detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, detail)
    }

    pub fn unprocessable(code: &'static str, detail: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, code, detail)
    }

    pub fn not_found(code: &'static str, detail: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, code, detail)
    }

    pub fn unauthorized(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", detail)
    }

    pub fn forbidden(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", detail)
    }

    pub fn status(&self) -> StatusCode {
        match self {
            Self::Client { status, .. } => *status,
            Self::Database(e) if database_unavailable(e) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Database(e) if unstorable_text(e) => StatusCode::UNPROCESSABLE_ENTITY,
            Self::Database(_) | Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    pub fn problem(&self) -> Problem {
        let status = self.status();
        let (code, detail) = match self {
            Self::Client { code, detail, .. } => (*code, detail.clone()),
            Self::Database(e) if database_unavailable(e) => (
                "unavailable",
                "the database is not answering; try again shortly".to_string(),
            ),
            Self::Database(e) if unstorable_text(e) => (
                "invalid_text",
                "a text value holds a NUL character (\\u0000), which cannot be stored or looked up; remove it"
                    .to_string(),
            ),
            Self::Database(_) | Self::Internal(_) => (
                "internal",
                "internal error; the server log has the details (search for the x-request-id)"
                    .to_string(),
            ),
        };
        Problem {
            kind: "about:blank".into(),
            title: status.canonical_reason().unwrap_or("Error").into(),
            status: status.as_u16(),
            detail,
            code: code.into(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if self.status().is_server_error() {
            tracing::error!(error = %self, "request failed");
        }
        let mut response = problem_response(&self.problem());
        match self.status() {
            StatusCode::UNAUTHORIZED => {
                response
                    .headers_mut()
                    .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            // The database comes back within seconds (a restart, a failover).
            StatusCode::SERVICE_UNAVAILABLE => {
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            }
            _ => {}
        }
        response
    }
}

pub fn problem_response(problem: &Problem) -> Response {
    let status = StatusCode::from_u16(problem.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = (status, axum::Json(problem)).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/problem+json"),
    );
    response
}

impl From<JsonRejection> for ApiError {
    fn from(r: JsonRejection) -> Self {
        let status = r.status();
        let (code, detail) = match &r {
            JsonRejection::MissingJsonContentType(_) => (
                "unsupported_media_type",
                "the body must be JSON, sent with `content-type: application/json`".to_string(),
            ),
            JsonRejection::JsonSyntaxError(_) => ("malformed_json", r.body_text()),
            JsonRejection::JsonDataError(_) => ("invalid_body", r.body_text()),
            _ if status == StatusCode::PAYLOAD_TOO_LARGE => (
                "body_too_large",
                "the request body is larger than this server accepts".to_string(),
            ),
            _ => ("invalid_body", r.body_text()),
        };
        Self::new(status, code, detail)
    }
}

impl From<PathRejection> for ApiError {
    fn from(r: PathRejection) -> Self {
        Self::bad_request("invalid_path", r.body_text())
    }
}

impl From<QueryRejection> for ApiError {
    fn from(r: QueryRejection) -> Self {
        Self::bad_request("invalid_query", r.body_text())
    }
}

impl From<gpulut_tables::ArchError> for ApiError {
    fn from(e: gpulut_tables::ArchError) -> Self {
        Self::unprocessable("invalid_architecture", e.to_string())
    }
}

/// Postgres refuses NUL in `text` (22021) and `\u0000` in `jsonb` (22P05). Every string of a
/// request can reach a query as a value or a lookup key, so this is the client's bad input
/// wherever it happens (the failed statement's transaction rolls back), not a server fault.
/// Whether the database is out of reach rather than the request wrong: no pooled connection in
/// time, a connection cut (Postgres restarting, the network), or Postgres shutting down or not
/// yet accepting (SQLSTATE classes 08 and 57). Nothing was written (the transaction died with the
/// connection), so the client may simply retry: 503, which agents retry with backoff.
fn database_unavailable(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) => true,
        _ => e
            .as_database_error()
            .and_then(|d| d.code())
            .is_some_and(|c| c.starts_with("08") || c.starts_with("57")),
    }
}

fn unstorable_text(e: &sqlx::Error) -> bool {
    e.as_database_error()
        .and_then(|d| d.code())
        .is_some_and(|c| c == "22021" || c == "22P05")
}

pub type ApiResult<T> = Result<T, ApiError>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_database_out_of_reach_is_503_not_500() {
        let reset = std::io::Error::from(std::io::ErrorKind::ConnectionReset);
        for e in [
            sqlx::Error::PoolTimedOut,
            sqlx::Error::PoolClosed,
            sqlx::Error::Io(reset),
        ] {
            let e = ApiError::Database(e);
            assert_eq!(e.status(), StatusCode::SERVICE_UNAVAILABLE, "{e}");
            assert_eq!(e.problem().code, "unavailable");
        }
        let other = ApiError::Database(sqlx::Error::RowNotFound);
        assert_eq!(other.status(), StatusCode::INTERNAL_SERVER_ERROR);
    }

    #[test]
    fn internal_errors_do_not_leak_their_cause() {
        let p = ApiError::Internal("secret connection string".into()).problem();
        assert_eq!(p.status, 500);
        assert!(!p.detail.contains("secret"));
        assert_eq!(p.code, "internal");
    }

    #[test]
    fn client_errors_keep_their_detail() {
        let p = ApiError::unprocessable("invalid_architecture", "wrong length").problem();
        assert_eq!((p.status, p.title.as_str()), (422, "Unprocessable Entity"));
        assert_eq!(p.detail, "wrong length");
    }
}
