//! Ingest's answers to bad requests: a status and `{"error", "detail"}`.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// A refused request. Nothing was written for it.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// No source with that id.
    #[error("unknown source")]
    UnknownSource(String),
    /// Signature missing or wrong.
    #[error("unauthorized")]
    Unauthorized(String),
    /// The body is not JSON.
    #[error("malformed json")]
    MalformedJson(String),
    /// JSON, but not an object or array of objects.
    #[error("invalid body")]
    InvalidBody(String),
    /// A record's entity key (or event type) could not be computed.
    #[error("unprocessable record")]
    Unprocessable(String),
    /// The broker or registry did not acknowledge in time.
    #[error("unavailable")]
    Unavailable(String),
}

impl IngestError {
    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        match self {
            IngestError::UnknownSource(_) => StatusCode::NOT_FOUND,
            IngestError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            IngestError::MalformedJson(_) | IngestError::InvalidBody(_) => StatusCode::BAD_REQUEST,
            IngestError::Unprocessable(_) => StatusCode::UNPROCESSABLE_ENTITY,
            IngestError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    fn code(&self) -> &'static str {
        match self {
            IngestError::UnknownSource(_) => "unknown_source",
            IngestError::Unauthorized(_) => "unauthorized",
            IngestError::MalformedJson(_) => "malformed_json",
            IngestError::InvalidBody(_) => "invalid_body",
            IngestError::Unprocessable(_) => "unprocessable_record",
            IngestError::Unavailable(_) => "unavailable",
        }
    }

    fn detail(&self) -> &str {
        match self {
            IngestError::UnknownSource(d)
            | IngestError::Unauthorized(d)
            | IngestError::MalformedJson(d)
            | IngestError::InvalidBody(d)
            | IngestError::Unprocessable(d)
            | IngestError::Unavailable(d) => d,
        }
    }
}

impl IntoResponse for IngestError {
    fn into_response(self) -> Response {
        let body = Json(json!({"error": self.code(), "detail": self.detail()}));
        let mut response = (self.status(), body).into_response();
        if matches!(self, IngestError::Unavailable(_)) {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
        }
        response
    }
}
