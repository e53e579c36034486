//! Delivery requests written straight to a target's deliveries topic, and
//! what a [`MockTarget`] received of them: for delivery tests that run
//! without ingest and transform.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use intops_events::{DeliveryRequest, RecordKind, Topics};
use intops_kafka::topics::TopicSpec;
use intops_kafka::{KafkaSettings, Producer, Record};

use crate::{MockTarget, stack};

/// Produces `n` requests for target `crm` (flow `app-to-crm`) over `keys`
/// entity keys to its deliveries topic (3 partitions), each body naming
/// its event id; returns the event ids in order.
pub async fn produce(topics: &Topics, n: usize, keys: usize) -> Vec<String> {
    let settings = KafkaSettings::new(stack::bootstrap(), Default::default()).expect("settings");
    let topic = topics.deliveries("crm");
    intops_kafka::topics::ensure(&settings, &[TopicSpec::new(&topic, 3, 1)])
        .await
        .expect("topic");
    let codec = stack::codec();
    let producer = Producer::new(&settings).expect("producer");
    let mut records = Vec::new();
    for i in 0..n {
        let event_id = uuid::Uuid::now_v7().to_string();
        let request = DeliveryRequest {
            tenant: None,
            link: None,
            event_id: event_id.clone(),
            flow_id: "app-to-crm".into(),
            flow_version: "v1".into(),
            target_id: "crm".into(),
            entity_key: format!("k{}", i % keys.max(1)),
            method: "POST".into(),
            path: "/records".into(),
            headers: HashMap::new(),
            body: serde_json::json!({ "event": event_id }).to_string(),
            created_at: 1,
            ingested_at: 1,
        };
        let value = codec
            .encode(&topic, RecordKind::DeliveryRequest, &request)
            .await
            .expect("encode");
        records.push((format!("app:{}", request.entity_key), value, event_id));
    }
    futures::future::try_join_all(records.iter().map(|(key, value, _)| {
        producer.send(Record {
            topic: &topic,
            key: key.as_bytes(),
            value,
            headers: &[],
        })
    }))
    .await
    .expect("produce");
    records.into_iter().map(|(_, _, id)| id).collect()
}

/// Requests the target received, per event id.
pub fn received(target: &MockTarget) -> HashMap<String, usize> {
    let mut seen = HashMap::new();
    for r in target.requests() {
        if let Some(id) = r.json()["event"].as_str() {
            *seen.entry(id.to_string()).or_insert(0) += 1;
        }
    }
    seen
}

/// A target `crm` answering after `latency`, and a flows file (in the
/// returned directory) delivering to it with concurrency 4.
pub async fn crm_target(latency: Duration) -> (MockTarget, tempfile::TempDir, PathBuf) {
    let target = MockTarget::start().await.expect("target");
    target.set_latency(latency);
    let dir = tempfile::tempdir().expect("tempdir");
    let flows = dir.path().join("flows.toml");
    let text = crate::pipeline::app_flows(
        &target.base_url(),
        "crm",
        "concurrency = 4\ntimeout = \"5s\"",
        "",
    );
    std::fs::write(&flows, text).expect("flows");
    (target, dir, flows)
}
