//! Every canonical schema registers under `<topic>-value` on the real
//! registry and round-trips a record framed the Confluent way. (That each
//! one parses and reads its released versions needs no registry:
//! tests/tests/checks/schemas.rs.)

use std::collections::HashMap;

use intops_events::{
    AuditRecord, Codec, DeadLetter, DeliveryRequest, IntegrationEvent, KafkaHeader, Outcome,
    OutcomeStatus, RecordKind, ReplayMark, ReplayMarks, Stage,
};
use intops_tests::stack;
use serde::Serialize;
use serde::de::DeserializeOwned;

async fn round_trip<T>(codec: &Codec, topic: &str, kind: RecordKind, record: &T)
where
    T: Serialize + DeserializeOwned + PartialEq + std::fmt::Debug,
{
    let bytes = codec.encode(topic, kind, record).await.expect("encode");
    assert_eq!(bytes[0], 0, "magic byte");
    let id = u32::from_be_bytes([bytes[1], bytes[2], bytes[3], bytes[4]]);
    let back: T = codec.decode(&bytes).await.expect("decode");
    assert_eq!(&back, record);

    // The registry holds the schema under <topic>-value with that id, as
    // any Confluent-compatible consumer will look it up.
    let url = format!(
        "{}/subjects/{topic}-value/versions/latest",
        stack::registry_url()
    );
    let latest: serde_json::Value = reqwest::get(&url)
        .await
        .expect("registry")
        .json()
        .await
        .expect("json");
    assert_eq!(latest["id"].as_u64(), Some(u64::from(id)), "{latest}");
    let stored: serde_json::Value =
        serde_json::from_str(latest["schema"].as_str().expect("schema text")).expect("schema json");
    let shipped: serde_json::Value =
        serde_json::from_str(kind.schema_text()).expect("shipped json");
    assert_eq!(stored["name"], shipped["name"]);
    assert_eq!(
        stored["fields"].as_array().map(Vec::len),
        shipped["fields"].as_array().map(Vec::len)
    );
}

#[tokio::test]
async fn every_record_kind_round_trips_through_the_registry() {
    let _turn = intops_tests::serial::beside_others().await;
    let codec = stack::codec();
    let prefix = stack::random_prefix("schemas");
    let event = IntegrationEvent {
        tenant: None,
        event_id: uuid::Uuid::now_v7().to_string(),
        source_id: "servicenow".into(),
        event_type: "created".into(),
        entity_key: "9d38".into(),
        occurred_at: 1_764_316_364_000_000,
        ingested_at: 1_764_316_365_000_000,
        correlation_id: Some("corr-1".into()),
        attributes: HashMap::from([("content_type".into(), "application/json".into())]),
        payload: r#"{"number":"INC0010023"}"#.into(),
    };
    round_trip(
        &codec,
        &format!("{prefix}.events"),
        RecordKind::IntegrationEvent,
        &event,
    )
    .await;
    let request = DeliveryRequest {
        tenant: None,
        link: None,
        event_id: event.event_id.clone(),
        flow_id: "f".into(),
        flow_version: "abcdef012345".into(),
        target_id: "jira".into(),
        entity_key: "9d38".into(),
        method: "POST".into(),
        path: "/rest/api/3/issue".into(),
        headers: HashMap::from([("x-extra".into(), "1".into())]),
        body: "{}".into(),
        created_at: 2,
        ingested_at: 1,
    };
    round_trip(
        &codec,
        &format!("{prefix}.deliveries.jira"),
        RecordKind::DeliveryRequest,
        &request,
    )
    .await;
    let outcome = Outcome {
        tenant: None,
        link_action: None,
        record_id: None,
        event_id: event.event_id.clone(),
        stage: Stage::Delivery,
        status: OutcomeStatus::DeadLettered,
        flow_id: Some("f".into()),
        target_id: None,
        attempts: 3,
        http_status: Some(503),
        latency_ms: Some(1234),
        error: Some("target answered 503".into()),
        at: 3,
    };
    round_trip(
        &codec,
        &format!("{prefix}.outcomes"),
        RecordKind::Outcome,
        &outcome,
    )
    .await;
    let letter = DeadLetter {
        tenant: None,
        stage: Stage::Transform,
        error_class: "mapping".into(),
        error_message: "jq runtime error".into(),
        retryable: false,
        attempts: 1,
        original_topic: format!("{prefix}.events"),
        original_partition: 2,
        original_offset: 41,
        original_key: Some(b"servicenow:9d38".to_vec()),
        original_value: Some(vec![0, 0, 0, 0, 1, 2, 3]),
        original_headers: vec![
            KafkaHeader {
                key: "h".into(),
                value: Some(vec![1, 2]),
            },
            KafkaHeader {
                key: "n".into(),
                value: None,
            },
        ],
        failed_at: 4,
        replay_count: 0,
        event_id: Some(event.event_id.clone()),
        flow_id: Some("f".into()),
        flow_version: Some("abcdef012345".into()),
        target_id: None,
        http_status: None,
        response_excerpt: None,
    };
    round_trip(
        &codec,
        &format!("{prefix}.dlq.transform"),
        RecordKind::DeadLetter,
        &letter,
    )
    .await;
    let marks = ReplayMarks {
        replay_id: "r".into(),
        marks: vec![ReplayMark {
            dead_letter_topic: format!("{prefix}.dlq.transform"),
            dead_letter_partition: 1,
            dead_letter_offset: 7,
            sent_to: format!("{prefix}.events"),
            replay_count: 1,
        }],
        at: 5,
    };
    round_trip(
        &codec,
        &format!("{prefix}.dlq.replays"),
        RecordKind::ReplayMarks,
        &marks,
    )
    .await;
    let audit = AuditRecord {
        action_id: "r".into(),
        action: "dlq.replay".into(),
        phase: "finished".into(),
        operator: "alice".into(),
        host: "h".into(),
        filters: HashMap::from([("target".to_string(), "jira".to_string())]),
        counts: HashMap::from([("sent".to_string(), 3)]),
        at: 6,
    };
    round_trip(
        &codec,
        &format!("{prefix}.audit"),
        RecordKind::AuditRecord,
        &audit,
    )
    .await;
}

#[tokio::test]
async fn garbage_is_undecodable_not_retryable() {
    let _turn = intops_tests::serial::beside_others().await;
    let codec = stack::codec();
    let e = codec
        .decode::<IntegrationEvent>(b"{\"not\":\"avro\"}")
        .await
        .expect_err("garbage");
    assert!(!e.is_retryable(), "{e}");
    let unknown_id = [0u8, 0x7f, 0xff, 0xff, 0xf0, 1, 2];
    let e = codec
        .decode::<IntegrationEvent>(&unknown_id)
        .await
        .expect_err("unknown schema id");
    assert!(!e.is_retryable(), "{e}");
}
