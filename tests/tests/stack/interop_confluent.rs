//! Analysts read intops topics with standard tools: Confluent's own Python
//! client and AvroDeserializer decode records written by intops's codec
//! and producer, with no intops code.
//!
//! Needs `INTOPS_INTEROP_PYTHON`: a Python with `tests/interop/requirements.txt`
//! installed. `deploy/local/test.sh` prepares one in `~/.cache/intops/venv`.

use std::collections::HashMap;
use std::process::Command;

use intops_events::{
    Codec, DeadLetter, IntegrationEvent, KafkaHeader, Outcome, OutcomeStatus, RecordKind, Stage,
};
use intops_kafka::topics::{self, TopicSpec};
use intops_kafka::{KafkaSettings, Producer, Record};
use intops_tests::stack;
use serde_json::{Value, json};

fn python() -> String {
    std::env::var("INTOPS_INTEROP_PYTHON")
        .expect("INTOPS_INTEROP_PYTHON is not set: run the suite through deploy/local/test.sh, which prepares it")
}

async fn write<T: serde::Serialize>(
    codec: &Codec,
    producer: &Producer,
    settings: &KafkaSettings,
    topic: &str,
    kind: RecordKind,
    record: &T,
) {
    topics::ensure(settings, &[TopicSpec::new(topic, 1, 1)])
        .await
        .expect("topic");
    let value = codec.encode(topic, kind, record).await.expect("encode");
    producer
        .send(Record {
            topic,
            key: b"servicenow:9d38",
            value: &value,
            headers: &[],
        })
        .await
        .expect("produce");
}

fn decode_with_confluent(topic: &str) -> Value {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/interop/confluent_decode.py");
    let out = Command::new(python())
        .args([
            script,
            &stack::bootstrap(),
            &stack::registry_url(),
            topic,
            "1",
        ])
        .output()
        .expect("python runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "confluent decode of {topic} failed: {}{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line = stdout.lines().next().expect("one record");
    let v: Value = serde_json::from_str(line).expect("json line");
    assert_eq!(v["key"], "servicenow:9d38");
    v["value"].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn confluent_avro_deserializer_reads_every_record_kind() {
    let _turn = intops_tests::serial::beside_others().await;
    let prefix = stack::random_prefix("interop");
    let settings = KafkaSettings::new(stack::bootstrap(), Default::default()).expect("settings");
    let producer = Producer::new(&settings).expect("producer");
    let codec = stack::codec();
    let event = IntegrationEvent {
        tenant: None,
        event_id: "01a22357-8714-74e3-ac1e-e593a53b7ac8".into(),
        source_id: "servicenow".into(),
        event_type: "created".into(),
        entity_key: "9d38".into(),
        occurred_at: 1_795_853_564_000_000,
        ingested_at: 1_795_853_565_000_000,
        correlation_id: None,
        attributes: HashMap::from([("k".into(), "v".into())]),
        payload: r#"{"number":"INC0010023"}"#.into(),
    };
    let topic = format!("{prefix}.events");
    write(
        &codec,
        &producer,
        &settings,
        &topic,
        RecordKind::IntegrationEvent,
        &event,
    )
    .await;
    let v = decode_with_confluent(&topic);
    assert_eq!(v["event_id"], event.event_id);
    assert_eq!(v["payload"], event.payload);
    assert_eq!(v["correlation_id"], Value::Null);
    assert_eq!(v["attributes"], json!({"k": "v"}));
    assert!(
        v["ingested_at"]
            .as_str()
            .unwrap_or_default()
            .starts_with("2026-11-28T"),
        "{v}"
    );

    let outcome = Outcome {
        tenant: None,
        link_action: None,
        record_id: None,
        event_id: event.event_id.clone(),
        stage: Stage::Delivery,
        status: OutcomeStatus::Delivered,
        flow_id: Some("snow-p1-to-jira".into()),
        target_id: Some("jira".into()),
        attempts: 2,
        http_status: Some(201),
        latency_ms: Some(150),
        error: None,
        at: 1_795_853_566_000_000,
    };
    let topic = format!("{prefix}.outcomes");
    write(
        &codec,
        &producer,
        &settings,
        &topic,
        RecordKind::Outcome,
        &outcome,
    )
    .await;
    let v = decode_with_confluent(&topic);
    assert_eq!(
        (v["stage"].clone(), v["status"].clone()),
        (json!("delivery"), json!("delivered"))
    );
    assert_eq!(
        (v["attempts"].clone(), v["http_status"].clone()),
        (json!(2), json!(201))
    );

    let request = intops_events::DeliveryRequest {
        tenant: None,
        link: None,
        event_id: event.event_id.clone(),
        flow_id: "snow-p1-to-jira".into(),
        flow_version: "2212afff42f2".into(),
        target_id: "jira".into(),
        entity_key: "9d38".into(),
        method: "POST".into(),
        path: "/rest/api/3/issue".into(),
        headers: HashMap::new(),
        body: r#"{"fields":{}}"#.into(),
        created_at: 1_795_853_565_500_000,
        ingested_at: 1_795_853_565_000_000,
    };
    let topic = format!("{prefix}.deliveries.jira");
    write(
        &codec,
        &producer,
        &settings,
        &topic,
        RecordKind::DeliveryRequest,
        &request,
    )
    .await;
    let v = decode_with_confluent(&topic);
    assert_eq!(v["body"], request.body);
    assert_eq!(v["flow_version"], "2212afff42f2");

    let letter = DeadLetter {
        tenant: None,
        stage: Stage::Delivery,
        error_class: "http_4xx".into(),
        error_message: "target answered 400".into(),
        retryable: false,
        attempts: 1,
        original_topic: topic.clone(),
        original_partition: 0,
        original_offset: 7,
        original_key: Some(b"servicenow:9d38".to_vec()),
        original_value: Some(vec![0, 0, 0, 0, 9, 1]),
        original_headers: vec![KafkaHeader {
            key: "h".into(),
            value: Some(b"x".to_vec()),
        }],
        failed_at: 1_795_853_567_000_000,
        replay_count: 0,
        event_id: Some(event.event_id.clone()),
        flow_id: Some("snow-p1-to-jira".into()),
        flow_version: Some("2212afff42f2".into()),
        target_id: Some("jira".into()),
        http_status: Some(400),
        response_excerpt: Some("{\"errors\":{}}".into()),
    };
    let topic = format!("{prefix}.dlq.delivery");
    write(
        &codec,
        &producer,
        &settings,
        &topic,
        RecordKind::DeadLetter,
        &letter,
    )
    .await;
    let v = decode_with_confluent(&topic);
    assert_eq!(v["original_offset"], 7);
    assert_eq!(v["original_key"], json!({"base64": "c2VydmljZW5vdzo5ZDM4"}));
    assert_eq!(v["original_headers"][0]["key"], "h");
    assert_eq!(v["http_status"], 400);
}
