//! Ingest's answers to refused requests: a status and
//! `{"error": <code>, "detail": <reason>}`. Nothing was written for them.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// A refused request.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// No source with that id (404).
    #[error("unknown source: {0}")]
    UnknownSource(String),
    /// Signature or token missing or wrong (401).
    #[error("unauthorized: {0}")]
    Unauthorized(String),
    /// The body is not JSON (400).
    #[error("malformed json: {0}")]
    MalformedJson(String),
    /// JSON, but not an object, array of objects or NDJSON of objects (400).
    #[error("invalid body: {0}")]
    InvalidBody(String),
    /// A record's entity key, event type or dedupe key could not be
    /// computed (422).
    #[error("unprocessable record: {0}")]
    Unprocessable(String),
    /// Body over the source's limit, too many records, or a record too
    /// large for the events topic (413).
    #[error("payload too large: {0}")]
    TooLarge(String),
    /// The source is polled by ingest and takes no requests (405).
    #[error("not a webhook source: {0}")]
    NotWebhook(String),
    /// A signed request seen before within its tolerance window (409).
    #[error("replayed request: {0}")]
    Replayed(String),
    /// The body did not arrive within the read timeout (408).
    #[error("request timeout: {0}")]
    Timeout(String),
    /// Ingest is at its limit of concurrent requests, or its replay
    /// memory is full; retry after the given seconds (503).
    #[error("overloaded: {detail}")]
    Overloaded {
        /// Why.
        detail: String,
        /// Seconds to wait.
        retry_after: u64,
    },
    /// The source's rate limit is exhausted; retry after the given seconds (429).
    #[error("rate limited: {detail}")]
    RateLimited {
        /// Why.
        detail: String,
        /// Seconds until the request fits.
        retry_after: u64,
    },
    /// The broker or registry did not acknowledge in time (503).
    #[error("unavailable: {0}")]
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
            IngestError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            IngestError::NotWebhook(_) => StatusCode::METHOD_NOT_ALLOWED,
            IngestError::Replayed(_) => StatusCode::CONFLICT,
            IngestError::Timeout(_) => StatusCode::REQUEST_TIMEOUT,
            IngestError::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            IngestError::Unavailable(_) | IngestError::Overloaded { .. } => {
                StatusCode::SERVICE_UNAVAILABLE
            }
        }
    }

    fn code(&self) -> &'static str {
        match self {
            IngestError::UnknownSource(_) => "unknown_source",
            IngestError::Unauthorized(_) => "unauthorized",
            IngestError::MalformedJson(_) => "malformed_json",
            IngestError::InvalidBody(_) => "invalid_body",
            IngestError::Unprocessable(_) => "unprocessable_record",
            IngestError::TooLarge(_) => "payload_too_large",
            IngestError::NotWebhook(_) => "not_a_webhook_source",
            IngestError::Replayed(_) => "replayed",
            IngestError::Timeout(_) => "request_timeout",
            IngestError::Overloaded { .. } => "overloaded",
            IngestError::RateLimited { .. } => "rate_limited",
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
            | IngestError::TooLarge(d)
            | IngestError::NotWebhook(d)
            | IngestError::Replayed(d)
            | IngestError::Timeout(d)
            | IngestError::Overloaded { detail: d, .. }
            | IngestError::RateLimited { detail: d, .. }
            | IngestError::Unavailable(d) => d,
        }
    }

    fn retry_after(&self) -> Option<u64> {
        match self {
            IngestError::RateLimited { retry_after, .. }
            | IngestError::Overloaded { retry_after, .. } => Some(*retry_after),
            IngestError::Unavailable(_) => Some(5),
            _ => None,
        }
    }
}

impl IntoResponse for IngestError {
    fn into_response(self) -> Response {
        let body = Json(json!({"error": self.code(), "detail": self.detail()}));
        let mut response = (self.status(), body).into_response();
        if let Some(secs) = self.retry_after() {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if matches!(self, IngestError::NotWebhook(_)) {
            // RFC 9110: an empty Allow means the resource allows no method.
            response
                .headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static(""));
        }
        response
    }
}
