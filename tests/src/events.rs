//! Integration events built the way ingest builds them, for tests that
//! write straight to an events topic.

use std::collections::HashMap;

use intops_events::IntegrationEvent;

/// A `created` event of `source` for `entity_key` carrying `payload`, with
/// a fresh UUIDv7 id (as ingest gives one).
pub fn created(source: &str, entity_key: &str, payload: &str) -> IntegrationEvent {
    IntegrationEvent {
        tenant: None,
        event_id: uuid::Uuid::now_v7().to_string(),
        source_id: source.into(),
        event_type: "created".into(),
        entity_key: entity_key.into(),
        occurred_at: 1,
        ingested_at: 1,
        correlation_id: None,
        attributes: HashMap::new(),
        payload: payload.into(),
    }
}
