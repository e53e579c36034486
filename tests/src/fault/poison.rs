//! Records that ingest would refuse, written straight to the events topic
//! by a plain producer (another producer, or an older ingest): a payload
//! nested 100,000 levels deep and a ~900 KB payload whose mapping fails.
//! Both must end as dead letters without stopping transform.

use std::collections::HashMap;

use intops_events::{IntegrationEvent, RecordKind, Topics};
use intops_kafka::{KafkaSettings, Producer, Record};

/// Nesting depth of the deep payload.
pub const DEPTH: usize = 100_000;
/// Size of the large payload's text field.
pub const LARGE: usize = 900_000;

fn event(source: &str, writer: &str, key: &str, payload: String) -> IntegrationEvent {
    IntegrationEvent {
        tenant: None,
        event_id: uuid::Uuid::now_v7().to_string(),
        source_id: source.into(),
        event_type: "updated".into(),
        entity_key: key.into(),
        occurred_at: 1,
        ingested_at: intops_events::now_micros(),
        correlation_id: None,
        attributes: HashMap::from([("written_by".to_string(), writer.to_string())]),
        payload,
    }
}

/// The deep payload: `{"id": .., "k": .., "n": [[[...]]]}`.
pub fn deep(id: &str) -> String {
    format!(
        r#"{{"id":"{id}","k":"k1","n":{}{}}}"#,
        "[".repeat(DEPTH),
        "]".repeat(DEPTH)
    )
}

/// The large payload: `n` is ~900 KB of text, so `.n + 1` fails and the
/// error quotes it.
pub fn large(id: &str) -> String {
    format!(r#"{{"id":"{id}","k":"k2","n":"{}"}}"#, "x".repeat(LARGE))
}

/// Writes one event of `source` (entity `key`) with `payload` to the
/// events topic on `bootstrap`; returns its event id once the broker
/// acknowledged it.
pub async fn write(
    bootstrap: &str,
    topics: &Topics,
    source: &str,
    key: &str,
    payload: String,
) -> String {
    let settings = KafkaSettings::new(bootstrap, Default::default()).expect("settings");
    let producer = Producer::new(&settings).expect("producer");
    let e = event(source, "test-producer", key, payload);
    let topic = topics.events();
    let value = crate::stack::codec()
        .encode(&topic, RecordKind::IntegrationEvent, &e)
        .await
        .expect("encode");
    producer
        .send(Record {
            topic: &topic,
            key: e.kafka_key().as_bytes(),
            value: &value,
            headers: &[],
        })
        .await
        .expect("the broker acknowledges the poison record");
    e.event_id
}
