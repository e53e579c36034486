//! From a source record to an `IntegrationEvent`: entity key, event type,
//! and the event id (derived from the dedupe key when the source has one).

use std::collections::HashMap;

use intops_events::IntegrationEvent;
use intops_flows::{JqProgram, Source};
use uuid::Uuid;

use crate::error::IngestError;
use crate::records::Record;

/// Namespace of intops's derived (UUIDv5) event ids.
const EVENT_ID_NAMESPACE: Uuid = Uuid::from_u128(0x6f1c_2a3e_5b7d_4e09_8c41_d2f3_a4b5_c6d7);

/// Builds the event for record `index` of a request.
pub(crate) fn build(
    source: &Source,
    index: usize,
    record: Record,
    ingested_at: i64,
    correlation_id: Option<String>,
) -> Result<IntegrationEvent, IngestError> {
    let text = |p: &JqProgram, field: &str| {
        if let Some(text) = p.text_from_json(&record.text) {
            return Ok(text);
        }
        p.first_text(record.value(index)?).map_err(|e| {
            IngestError::Unprocessable(format!("record {index}: {field} {}: {e}", p.code()))
        })
    };
    let entity_key = text(&source.entity_key, "entity_key")?;
    let event_type = match &source.event_type {
        Some(p) => text(p, "event_type")?,
        None => "updated".to_string(),
    };
    let event_id = match &source.dedupe_key {
        Some(p) => derived_id(&source.id, &text(p, "dedupe_key")?),
        None => Uuid::now_v7(),
    };
    Ok(IntegrationEvent {
        tenant: source.tenant.clone(),
        event_id: event_id.to_string(),
        source_id: source.id.clone(),
        event_type,
        entity_key,
        occurred_at: ingested_at,
        ingested_at,
        correlation_id,
        attributes: HashMap::new(),
        payload: record.text,
    })
}

/// The same source and dedupe key always give the same id.
pub(crate) fn derived_id(source_id: &str, dedupe_key: &str) -> Uuid {
    Uuid::new_v5(
        &EVENT_ID_NAMESPACE,
        format!("{source_id}\u{0}{dedupe_key}").as_bytes(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(json: &str) -> Record {
        Record::from_text(json.to_string())
    }

    fn source(extra: &str) -> intops_flows::Flows {
        intops_flows::load_str(&format!(
            "[[sources]]\nid = \"s\"\nkind = \"webhook\"\nauth = \"none\"\nentity_key = \".id\"\n{extra}"
        ))
        .expect("valid")
    }

    #[test]
    fn dedupe_key_gives_stable_ids_per_source() {
        let flows = source("dedupe_key = '.id + \"@\" + .updated'");
        let s = &flows.sources["s"];
        let v = r#"{"id":"a","updated":"t1"}"#;
        let a = build(s, 0, record(v), 1, None).expect("event");
        let b = build(s, 0, record(v), 2, None).expect("event");
        assert_eq!(a.event_id, b.event_id);
        assert_eq!(
            Uuid::parse_str(&a.event_id)
                .expect("uuid")
                .get_version_num(),
            5
        );
        let later = r#"{"id":"a","updated":"t2"}"#;
        assert_ne!(
            build(s, 0, record(later), 1, None).expect("event").event_id,
            a.event_id
        );
        assert_ne!(derived_id("other", "a@t1"), derived_id("s", "a@t1"));
    }

    #[test]
    fn without_dedupe_key_ids_are_v7_and_unique() {
        let flows = source("");
        let v = r#"{"id":"a"}"#;
        let a = build(&flows.sources["s"], 0, record(v), 1, None).expect("event");
        let b = build(&flows.sources["s"], 0, record(v), 1, None).expect("event");
        assert_ne!(a.event_id, b.event_id);
        assert_eq!(
            Uuid::parse_str(&a.event_id)
                .expect("uuid")
                .get_version_num(),
            7
        );
        assert_eq!(a.event_type, "updated");
    }

    #[test]
    fn missing_keys_name_the_record_and_reason() {
        let flows = source("dedupe_key = '.rev'");
        let v = r#"{"id":"a"}"#;
        let e = build(&flows.sources["s"], 3, record(v), 1, None).expect_err("no rev");
        assert!(
            matches!(&e, IngestError::Unprocessable(d) if d.starts_with("record 3: dedupe_key .rev")),
            "{e:?}"
        );
        let v = r#"{"x":1}"#;
        let e = build(&flows.sources["s"], 0, record(v), 1, None).expect_err("no id");
        assert!(
            matches!(&e, IngestError::Unprocessable(d) if d.contains("entity_key .id: produced null")),
            "{e:?}"
        );
    }
}
