//! `POST /v1/sources/{source_id}/events`.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use intops_events::{IntegrationEvent, RecordKind, now_micros};
use intops_flows::{JqValue, Source, parse_json};
use intops_runtime::metrics as m;
use serde_json::json;
use serde_json::value::RawValue;

use crate::AppState;
use crate::error::IngestError;

/// Accepts one JSON object or a JSON array of objects.
pub(crate) async fn accept(
    State(state): State<Arc<AppState>>,
    Path(source_id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let started = Instant::now();
    let result = accept_inner(&state, &source_id, &headers, &body).await;
    // Unknown ids would make the label set unbounded: count them as one.
    let source_label = if state.flows.sources.contains_key(&source_id) {
        source_id.clone()
    } else {
        "unknown".to_string()
    };
    let response = match result {
        Ok(ids) => {
            metrics::counter!(m::INGEST_EVENTS, "source" => source_label.clone())
                .increment(ids.len() as u64);
            metrics::histogram!(m::INGEST_ACK_SECONDS, "source" => source_label.clone())
                .record(started.elapsed().as_secs_f64());
            tracing::debug!(source = %source_id, accepted = ids.len(), "events accepted");
            (
                StatusCode::ACCEPTED,
                Json(json!({"accepted": ids.len(), "event_ids": ids})),
            )
                .into_response()
        }
        Err(e) => {
            tracing::info!(source = %source_label, status = e.status().as_u16(), error = %e, "request refused");
            e.into_response()
        }
    };
    metrics::counter!(m::INGEST_REQUESTS, "source" => source_label, "status" => response.status().as_str().to_string())
        .increment(1);
    response
}

async fn accept_inner(
    state: &AppState,
    source_id: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Vec<String>, IngestError> {
    let source = state.flows.sources.get(source_id).ok_or_else(|| {
        IngestError::UnknownSource(format!("no source {source_id:?} in the flows file"))
    })?;
    if let Some(Some(verifier)) = state.verifiers.get(source_id) {
        verifier
            .verify(headers, body)
            .map_err(|e| IngestError::Unauthorized(e.to_string()))?;
    }
    let records = split_records(body)?;
    // Validate every record before producing anything: a request is
    // accepted whole or not at all.
    let ingested_at = now_micros();
    let correlation_id = headers
        .get("x-correlation-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let mut events = Vec::with_capacity(records.len());
    for (index, (value, text)) in records.into_iter().enumerate() {
        events.push(build_event(
            source,
            index,
            &value,
            text,
            ingested_at,
            correlation_id.clone(),
        )?);
    }
    let topic = state.ctx.topics.events();
    let sends = events.iter().map(|event| produce(state, &topic, event));
    tokio::time::timeout(state.ack_timeout, futures::future::try_join_all(sends))
        .await
        .map_err(|_| {
            IngestError::Unavailable("the broker did not acknowledge in time; retry later".into())
        })??;
    Ok(events.into_iter().map(|e| e.event_id).collect())
}

async fn produce(
    state: &AppState,
    topic: &str,
    event: &IntegrationEvent,
) -> Result<(), IngestError> {
    let key = event.kafka_key();
    state
        .ctx
        .publish(topic, RecordKind::IntegrationEvent, key.as_bytes(), event)
        .await
        .map_err(|e| {
            tracing::warn!(error = %e, "cannot persist event");
            IngestError::Unavailable("events cannot be persisted right now; retry later".into())
        })?;
    Ok(())
}

/// Splits the body into records: one object, or an array of objects.
/// Returns each record's jq value and its JSON text exactly as received.
fn split_records(body: &[u8]) -> Result<Vec<(JqValue, String)>, IngestError> {
    let text = std::str::from_utf8(body)
        .map_err(|e| IngestError::MalformedJson(format!("the body is not UTF-8: {e}")))?;
    if text.trim().is_empty() {
        return Err(IngestError::InvalidBody("the body is empty".into()));
    }
    serde_json::from_str::<serde::de::IgnoredAny>(text).map_err(|e| {
        IngestError::MalformedJson(format!("line {}, column {}: {e}", e.line(), e.column()))
    })?;
    let trimmed = text.trim();
    let raws: Vec<&str> = if trimmed.starts_with('{') {
        vec![text]
    } else if trimmed.starts_with('[') {
        let items: Vec<&RawValue> =
            serde_json::from_str(trimmed).map_err(|e| IngestError::MalformedJson(e.to_string()))?;
        if items.is_empty() {
            return Err(IngestError::InvalidBody(
                "the array holds no records".into(),
            ));
        }
        items.iter().map(|r| r.get()).collect()
    } else {
        return Err(IngestError::InvalidBody(
            "expected a JSON object or an array of objects".into(),
        ));
    };
    raws.into_iter()
        .enumerate()
        .map(|(i, raw)| {
            if !raw.trim_start().starts_with('{') {
                return Err(IngestError::InvalidBody(format!(
                    "record {i} is not a JSON object"
                )));
            }
            let value = parse_json(raw.as_bytes())
                .map_err(|e| IngestError::InvalidBody(format!("record {i}: {e}")))?;
            Ok((value, raw.to_string()))
        })
        .collect()
}

fn build_event(
    source: &Source,
    index: usize,
    value: &JqValue,
    payload: String,
    ingested_at: i64,
    correlation_id: Option<String>,
) -> Result<IntegrationEvent, IngestError> {
    let entity_key = source.entity_key.first_text(value).map_err(|e| {
        IngestError::Unprocessable(format!(
            "record {index}: entity_key {}: {e}",
            source.entity_key.code()
        ))
    })?;
    let event_type = match &source.event_type {
        Some(p) => p.first_text(value).map_err(|e| {
            IngestError::Unprocessable(format!("record {index}: event_type {}: {e}", p.code()))
        })?,
        None => "updated".to_string(),
    };
    Ok(IntegrationEvent {
        event_id: uuid::Uuid::now_v7().to_string(),
        source_id: source.id.clone(),
        event_type,
        entity_key,
        occurred_at: ingested_at,
        ingested_at,
        correlation_id,
        attributes: HashMap::new(),
        payload,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_object_keeps_its_text_exactly() {
        let body = br#" {"z": 1, "a": [1, 2]} "#;
        let records = split_records(body).expect("valid");
        assert_eq!(records.len(), 1);
        assert_eq!(records[0].1, r#" {"z": 1, "a": [1, 2]} "#);
    }

    #[test]
    fn arrays_split_into_records_in_order() {
        let records = split_records(br#"[{"b":1}, {"a":2}]"#).expect("valid");
        let texts: Vec<_> = records.iter().map(|r| r.1.as_str()).collect();
        assert_eq!(texts, [r#"{"b":1}"#, r#"{"a":2}"#]);
    }

    #[test]
    fn bad_bodies_are_refused_clearly() {
        let err = split_records(b"{\n  \"a\": }").expect_err("malformed");
        assert!(
            matches!(&err, IngestError::MalformedJson(d) if d.contains("line 2")),
            "{err:?}"
        );
        assert!(matches!(
            split_records(b"  "),
            Err(IngestError::InvalidBody(_))
        ));
        assert!(matches!(
            split_records(b"[]"),
            Err(IngestError::InvalidBody(_))
        ));
        assert!(matches!(
            split_records(b"42"),
            Err(IngestError::InvalidBody(_))
        ));
        assert!(
            matches!(split_records(b"[{}, 1]"), Err(IngestError::InvalidBody(d)) if d.contains("record 1"))
        );
    }
}
