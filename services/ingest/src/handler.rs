//! `POST /v1/sources/{source_id}/events`: checks in the order a source can
//! act on (unknown or polled source, size and read time, authentication,
//! nesting depth, body, record count, records, record size, replay, rate),
//! then produces every event and answers 202 once the broker acknowledged
//! all.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use intops_events::{IntegrationEvent, RecordKind, now_micros};
use intops_flows::SourceKind;
use intops_kafka::Record;
use intops_runtime::metrics as m;
use serde_json::json;

use crate::AppState;
use crate::error::IngestError;
use crate::sources::Sources;
use crate::{event, record_size, records};

/// The webhook endpoint.
pub(crate) async fn accept(
    State(state): State<Arc<AppState>>,
    Path(source_id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let started = Instant::now();
    // This request uses the sources as they are now to its end, whatever a
    // reload swaps in meanwhile.
    let sources = state.sources.load_full();
    // Unknown ids would make the label set unbounded: count them as one.
    let known = sources.flows.sources.contains_key(&source_id);
    let label = if known {
        source_id.clone()
    } else {
        "unknown".to_string()
    };
    // The flows file's tenants ("" for none): bounded like the sources.
    let tenant = sources
        .flows
        .sources
        .get(&source_id)
        .and_then(|s| s.tenant.clone())
        .unwrap_or_default();
    let response = match accept_inner(&state, &sources, &source_id, &headers, body).await {
        Ok(ids) => {
            metrics::counter!(m::INGEST_EVENTS, "source" => label.clone(), "tenant" => tenant.clone())
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
    metrics::counter!(m::INGEST_REQUESTS, "source" => label, "status" => response.status().as_str().to_string(), "tenant" => tenant)
        .increment(1);
    response
}

async fn accept_inner(
    state: &AppState,
    sources: &Sources,
    source_id: &str,
    headers: &HeaderMap,
    body: Body,
) -> Result<Vec<String>, IngestError> {
    let source = sources.flows.sources.get(source_id).ok_or_else(|| {
        IngestError::UnknownSource(format!("no source {source_id:?} in the flows file"))
    })?;
    if source.kind != SourceKind::Webhook {
        return Err(IngestError::NotWebhook(format!(
            "source {source_id:?} is polled by ingest and accepts no requests"
        )));
    }
    let body = read_body(body, source.max_body_bytes, state.requests.read_timeout).await?;
    metrics::counter!(m::INGEST_BYTES, "source" => source.id.clone()).increment(body.len() as u64);
    let signed = match sources.authenticators.get(source_id) {
        Some(auth) => auth
            .check(headers, &body, SystemTime::now())
            .map_err(IngestError::Unauthorized)?,
        None => None,
    };
    let ndjson = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("application/x-ndjson"));
    let shape = records::Shape {
        max_depth: state.requests.max_json_depth,
        max_records: state.requests.max_records,
    };
    let records = records::split(&body, ndjson, shape)?;
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
    let topic = state.ctx.topics.events();
    let encoded = encode_all(state, &topic, &events).await?;
    // A replayed signature is refused before anything is written; the
    // claim is released (dropped) unless the request is accepted.
    let claim = signed
        .map(|s| state.replay.claim(source_id, s, SystemTime::now()))
        .transpose()?;
    let written = async {
        sources.limits.take(source_id, events.len())?;
        futures::future::try_join_all(
            encoded
                .iter()
                .map(|(key, value)| produce(state, &topic, key, value)),
        )
        .await
    }
    .await;
    written?;
    if let Some(claim) = claim {
        claim.keep();
    }
    Ok(events.into_iter().map(|e| e.event_id).collect())
}

/// Encodes every event and checks that each fits in one Kafka record,
/// before anything is produced.
async fn encode_all(
    state: &AppState,
    topic: &str,
    events: &[IntegrationEvent],
) -> Result<Vec<(String, Vec<u8>)>, IngestError> {
    let mut out = Vec::with_capacity(events.len());
    for (i, event) in events.iter().enumerate() {
        let key = event.kafka_key();
        let value = state
            .ctx
            .codec
            .encode(topic, RecordKind::IntegrationEvent, event)
            .await
            .map_err(|e| {
                tracing::warn!(error = %e, "cannot encode event");
                IngestError::Unavailable(
                    "events cannot be encoded right now (schema registry); retry later".into(),
                )
            })?;
        record_size::check(i, key.as_bytes(), &value)?;
        out.push((key, value));
    }
    Ok(out)
}

async fn read_body(body: Body, limit: usize, timeout: Duration) -> Result<Bytes, IngestError> {
    let read = tokio::time::timeout(timeout, axum::body::to_bytes(body, limit))
        .await
        .map_err(|_| {
            IngestError::Timeout(format!(
                "the body did not arrive within {}",
                humantime::format_duration(timeout)
            ))
        })?;
    read.map_err(|e| {
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

/// Produces one encoded event. The producer's delivery timeout is the ack
/// deadline, so a 503 means librdkafka gave the record up: it will not be
/// written later behind the source's back.
async fn produce(
    state: &AppState,
    topic: &str,
    key: &str,
    value: &[u8],
) -> Result<(), IngestError> {
    state
        .ctx
        .producer
        .send(Record {
            topic,
            key: key.as_bytes(),
            value,
            headers: &[],
        })
        .await
        .map_err(|e| {
            tracing::warn!(error = %e, "cannot persist event");
            IngestError::Unavailable("events cannot be persisted right now; retry later".into())
        })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_body_that_does_not_arrive_in_time_gets_408() {
        let never = Body::from_stream(futures::stream::pending::<Result<Bytes, std::io::Error>>());
        let read = read_body(never, 1024, Duration::from_millis(50));
        let e = tokio::time::timeout(Duration::from_secs(10), read)
            .await
            .expect("the read timeout ends the read")
            .expect_err("timed out");
        assert_eq!(e.status(), StatusCode::REQUEST_TIMEOUT);
        assert!(e.to_string().contains("50ms"), "{e}");
        let ok = read_body(Body::from("{}"), 1024, Duration::from_secs(5))
            .await
            .expect("read");
        assert_eq!(&ok[..], b"{}");
        let e = read_body(Body::from("x".repeat(11)), 10, Duration::from_secs(5))
            .await
            .expect_err("too large");
        assert_eq!(e.status(), StatusCode::PAYLOAD_TOO_LARGE);
    }
}
