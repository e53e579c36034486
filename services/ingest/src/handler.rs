//! `POST /v1/sources/{source_id}/events`: checks in the order a source can
//! act on (unknown source, size, authentication, body, records, rate), then
//! produces every event and answers 202 once the broker acknowledged all.

use std::sync::Arc;
use std::time::{Instant, SystemTime};

use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use intops_events::{IntegrationEvent, RecordKind, now_micros};
use intops_runtime::metrics as m;
use serde_json::json;

use crate::AppState;
use crate::error::IngestError;
use crate::{event, records};

/// The webhook endpoint.
pub(crate) async fn accept(
    State(state): State<Arc<AppState>>,
    Path(source_id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let started = Instant::now();
    // Unknown ids would make the label set unbounded: count them as one.
    let known = state.flows.sources.contains_key(&source_id);
    let label = if known {
        source_id.clone()
    } else {
        "unknown".to_string()
    };
    let response = match accept_inner(&state, &source_id, &headers, body).await {
        Ok(ids) => {
            metrics::counter!(m::INGEST_EVENTS, "source" => label.clone())
                .increment(ids.len() as u64);
            metrics::histogram!(m::INGEST_ACK_SECONDS, "source" => label.clone())
                .record(started.elapsed().as_secs_f64());
            tracing::debug!(source = %source_id, accepted = ids.len(), "events accepted");
            (
                StatusCode::ACCEPTED,
                Json(json!({"accepted": ids.len(), "event_ids": ids})),
            )
                .into_response()
        }
        Err(e) => {
            tracing::info!(source = %label, status = e.status().as_u16(), error = %e, "request refused");
            e.into_response()
        }
    };
    metrics::counter!(m::INGEST_REQUESTS, "source" => label, "status" => response.status().as_str().to_string())
        .increment(1);
    response
}

async fn accept_inner(
    state: &AppState,
    source_id: &str,
    headers: &HeaderMap,
    body: Body,
) -> Result<Vec<String>, IngestError> {
    let source = state.flows.sources.get(source_id).ok_or_else(|| {
        IngestError::UnknownSource(format!("no source {source_id:?} in the flows file"))
    })?;
    let body = read_body(body, source.max_body_bytes).await?;
    metrics::counter!(m::INGEST_BYTES, "source" => source.id.clone()).increment(body.len() as u64);
    if let Some(auth) = state.authenticators.get(source_id) {
        auth.check(headers, &body, SystemTime::now())
            .map_err(IngestError::Unauthorized)?;
    }
    let ndjson = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("application/x-ndjson"));
    let records = records::split(&body, ndjson)?;
    // Every record is validated before anything is produced: a request is
    // accepted whole or not at all.
    let ingested_at = now_micros();
    let correlation_id = headers
        .get("x-correlation-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let events = records
        .into_iter()
        .enumerate()
        .map(|(i, record)| event::build(source, i, record, ingested_at, correlation_id.clone()))
        .collect::<Result<Vec<_>, _>>()?;
    state.limits.take(source_id, events.len())?;
    let topic = state.ctx.topics.events();
    futures::future::try_join_all(events.iter().map(|e| produce(state, &topic, e))).await?;
    Ok(events.into_iter().map(|e| e.event_id).collect())
}

async fn read_body(body: Body, limit: usize) -> Result<Bytes, IngestError> {
    axum::body::to_bytes(body, limit).await.map_err(|e| {
        let too_large = std::iter::successors(Some(&e as &dyn std::error::Error), |e| e.source())
            .any(|e| e.is::<http_body_util::LengthLimitError>());
        if too_large {
            IngestError::TooLarge(format!(
                "the body is over this source's limit of {limit} bytes"
            ))
        } else {
            IngestError::InvalidBody(format!("cannot read the body: {e}"))
        }
    })
}

/// Produces one event. The producer's delivery timeout is the ack
/// deadline, so a 503 means librdkafka gave the record up: it will not be
/// written later behind the source's back.
async fn produce(
    state: &AppState,
    topic: &str,
    event: &IntegrationEvent,
) -> Result<(), IngestError> {
    state
        .ctx
        .publish(
            topic,
            RecordKind::IntegrationEvent,
            event.kafka_key().as_bytes(),
            event,
        )
        .await
        .map_err(|e| {
            tracing::warn!(error = %e, "cannot persist event");
            IngestError::Unavailable("events cannot be persisted right now; retry later".into())
        })?;
    Ok(())
}
