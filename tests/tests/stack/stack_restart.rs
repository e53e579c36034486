//! The embedded stack loses no data on restart (issue 14, item 9).
//!
//! A private broker and registry (deploy/local/start.sh on their own
//! directory and ports, never the shared stack's) get an event, a delivery
//! request, its dead letter, and a replay of it (marks, audit records);
//! then the whole stack is killed with SIGKILL, as a power cut would, and
//! started again. Every record reads back with a codec that has never seen
//! the schemas, the replay marks still say what was replayed, and the dead
//! letter replays again. A journal whose ids do not match refuses to start.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use intops_events::{
    Codec, DeliveryRequest, IntegrationEvent, RecordKind, RegistrySettings, Stage, Topics,
};
use intops_kafka::{DeadLetterWriter, Failure, KafkaSettings, Producer, Scan, Start};
use intops_tests::poll_until;
use rdkafka::message::{Message, OwnedMessage};

const WAIT: Duration = Duration::from_secs(60);

/// A broker and registry of this test's own, run by the stack scripts.
struct PrivateStack {
    dir: tempfile::TempDir,
    broker_port: u16,
    registry_port: u16,
}

impl PrivateStack {
    fn new() -> Self {
        Self {
            dir: tempfile::tempdir().expect("tempdir"),
            broker_port: intops_tests::stack::free_port(),
            registry_port: intops_tests::stack::free_port(),
        }
    }

    fn script(&self, name: &str) -> std::process::Output {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("../deploy/local/{name}"));
        Command::new(path)
            .env("INTOPS_STACK_DIR", self.dir.path())
            .env("INTOPS_BROKER_PORT", self.broker_port.to_string())
            .env("INTOPS_REGISTRY_PORT", self.registry_port.to_string())
            .env_remove("INTOPS_STACK_FRESH")
            .output()
            .unwrap_or_else(|e| panic!("{name}: {e}"))
    }

    fn start(&self) {
        let out = self.script("start.sh");
        assert!(
            out.status.success(),
            "start.sh failed:\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// SIGKILL to every process of the stack, as a power cut would.
    fn crash(&self) {
        for name in ["journal", "registry", "tansu"] {
            let pidfile = self.dir.path().join(format!("{name}.pid"));
            let pid = std::fs::read_to_string(&pidfile).expect("pid file");
            let _ = Command::new("kill").args(["-9", pid.trim()]).status();
            let _ = std::fs::remove_file(pidfile);
        }
    }

    fn journal(&self) -> PathBuf {
        self.dir.path().join("registry-schemas.json")
    }

    fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.broker_port)
    }

    fn registry_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.registry_port)
    }

    fn kafka(&self) -> KafkaSettings {
        KafkaSettings::new(self.bootstrap(), Default::default()).expect("settings")
    }

    /// A codec with empty caches, as a service started after the restart
    /// has.
    fn codec(&self) -> Codec {
        Codec::new(&RegistrySettings {
            url: self.registry_url(),
            basic_auth: None,
            timeout: Duration::from_secs(10),
            ca_pem: None,
        })
        .expect("codec")
    }

    /// `intops args...` against this stack; its JSON report.
    async fn intops(&self, prefix: &str, args: &[&str]) -> serde_json::Value {
        let out = tokio::process::Command::new(intops_tests::cli::binary())
            .args(args)
            .env("INTOPS_TOPIC_PREFIX", prefix)
            .env("INTOPS_KAFKA_BOOTSTRAP", self.bootstrap())
            .env("INTOPS_SCHEMA_REGISTRY_URL", self.registry_url())
            .env("INTOPS_TOPIC_PARTITIONS", "3")
            .output()
            .await
            .expect("intops runs");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "intops {args:?}: {}\n{text}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_str(text.trim()).unwrap_or_else(|e| panic!("{e}: {text}"))
    }
}

impl Drop for PrivateStack {
    fn drop(&mut self) {
        let _ = self.script("stop.sh");
    }
}

/// Every record of `topic`, from the beginning.
async fn read_all(kafka: &KafkaSettings, topic: &str) -> Vec<OwnedMessage> {
    let mut scan = Scan::open(kafka, &[topic.to_string()], Start::Beginning, false)
        .await
        .expect("scan");
    let mut out = Vec::new();
    while let Some(m) = scan.next().await.expect("read") {
        out.push(m);
    }
    out
}

/// Every record of every topic of the deployment, decoded by `codec`:
/// (topic, schema id, decoded value as JSON text).
async fn decode_everything(
    kafka: &KafkaSettings,
    codec: &Codec,
    topics: &[String],
) -> Vec<(String, u32, String)> {
    let mut out = Vec::new();
    for topic in topics {
        for m in read_all(kafka, topic).await {
            let bytes = m.payload().expect("value");
            let id = u32::from_be_bytes(bytes[1..5].try_into().expect("schema id"));
            let value = codec
                .decode_value(bytes)
                .await
                .unwrap_or_else(|e| panic!("{topic}/{}/{}: {e}", m.partition(), m.offset()));
            // As JSON, whose maps are ordered, unlike the Avro value's.
            let json = serde_json::Value::try_from(value).expect("as JSON");
            out.push((topic.clone(), id, json.to_string()));
        }
    }
    out.sort();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_stack_reads_back_and_replays_what_was_written() {
    let _turn = intops_tests::serial::beside_others().await;
    let stack = PrivateStack::new();
    stack.start();
    let prefix = intops_tests::stack::random_prefix("restart");
    let topics = Topics::new(&prefix);
    let kafka = stack.kafka();
    let specs: Vec<_> = topics
        .all(["crm"])
        .iter()
        .map(|n| intops_kafka::topics::TopicSpec::new(n, 3, 1))
        .collect();
    intops_kafka::topics::ensure(&kafka, &specs)
        .await
        .expect("topics");

    // An event and its delivery request, written as ingest and transform
    // write them; the request dead-lettered as delivery does.
    let codec = Arc::new(stack.codec());
    let producer = Producer::new(&kafka).expect("producer");
    let event = IntegrationEvent {
        tenant: None,
        event_id: uuid::Uuid::now_v7().to_string(),
        source_id: "app".into(),
        event_type: "created".into(),
        entity_key: "INC1".into(),
        occurred_at: 1,
        ingested_at: 2,
        correlation_id: None,
        attributes: HashMap::new(),
        payload: r#"{"number":"INC1"}"#.into(),
    };
    let request = DeliveryRequest {
        tenant: None,
        link: None,
        event_id: event.event_id.clone(),
        flow_id: "app-to-crm".into(),
        flow_version: "0123456789ab".into(),
        target_id: "crm".into(),
        entity_key: "INC1".into(),
        method: "POST".into(),
        path: "/tickets".into(),
        headers: HashMap::new(),
        body: r#"{"title":"INC1"}"#.into(),
        created_at: 3,
        ingested_at: 2,
    };
    let key = event.kafka_key();
    for (topic, kind, value) in [
        (
            topics.events(),
            RecordKind::IntegrationEvent,
            codec
                .encode(&topics.events(), RecordKind::IntegrationEvent, &event)
                .await,
        ),
        (
            topics.deliveries("crm"),
            RecordKind::DeliveryRequest,
            codec
                .encode(
                    &topics.deliveries("crm"),
                    RecordKind::DeliveryRequest,
                    &request,
                )
                .await,
        ),
    ] {
        let value = value.unwrap_or_else(|e| panic!("encode {kind:?}: {e}"));
        producer
            .send(intops_kafka::Record {
                topic: &topic,
                key: key.as_bytes(),
                value: &value,
                headers: &[],
            })
            .await
            .expect("produce");
    }
    let original = read_all(&kafka, &topics.deliveries("crm"))
        .await
        .pop()
        .expect("the request");
    let mut failure = Failure::new("http_4xx", "the target answered 422");
    failure.event_id = Some(event.event_id.clone());
    failure.target_id = Some("crm".into());
    DeadLetterWriter::new(
        producer.clone(),
        codec.clone(),
        topics.dlq_delivery(),
        Stage::Delivery,
    )
    .write(&original, &failure)
    .await
    .expect("dead letter");
    // A replay before the restart: marks and audit records.
    let first = stack.intops(&prefix, &["dlq", "replay", "--json"]).await;
    assert_eq!(first["sent"], 1, "{first}");

    let mut every_topic = topics.all(["crm"]);
    every_topic.extend([topics.dlq_replays(), topics.audit()]);
    let before = decode_everything(&kafka, &stack.codec(), &every_topic).await;
    assert!(
        before.len() >= 6,
        "event, 2 requests, dead letter, marks, audit: {before:?}"
    );
    drop(producer);

    stack.crash();
    stack.start();

    // Everything reads back, decoded by schema id with a codec that has
    // never seen these schemas.
    let kafka = stack.kafka();
    let wanted = before.len();
    let after = poll_until("the restarted broker to serve every record", WAIT, || {
        let (kafka, codec, topics) = (&kafka, stack.codec(), &every_topic);
        async move {
            let after = decode_everything(kafka, &codec, topics).await;
            (after.len() >= wanted).then_some(after)
        }
    })
    .await;
    assert_eq!(after, before, "records after the restart");

    // The marks still know the dead letter was replayed; it replays again
    // on request, to the topic it came from.
    let again = stack.intops(&prefix, &["dlq", "replay", "--json"]).await;
    assert_eq!(again["skipped_already_replayed"], 1, "{again}");
    assert_eq!(again["sent"], 0, "{again}");
    let forced = stack
        .intops(&prefix, &["dlq", "replay", "--json", "--again"])
        .await;
    assert_eq!(forced["sent"], 1, "{forced}");
    let codec = stack.codec();
    let requests = read_all(&kafka, &topics.deliveries("crm")).await;
    assert_eq!(requests.len(), 3, "the original and two replays");
    for m in &requests {
        let r: DeliveryRequest = codec
            .decode(m.payload().expect("value"))
            .await
            .expect("decodes");
        assert_eq!(r, request);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_journal_that_does_not_match_refuses_to_start() {
    let _turn = intops_tests::serial::beside_others().await;
    let stack = PrivateStack::new();
    stack.start();
    // One more schema beyond the shipped ones, as another producer would
    // register; saved to the journal by stop.sh.
    let schema =
        r#"{"type":"record","name":"Other","namespace":"x","fields":[{"name":"a","type":"long"}]}"#;
    let answer = reqwest::Client::new()
        .post(format!(
            "{}/subjects/other-value/versions",
            stack.registry_url()
        ))
        .header("content-type", "application/vnd.schemaregistry.v1+json")
        .json(&serde_json::json!({ "schema": schema }))
        .send()
        .await
        .expect("register");
    assert!(answer.status().is_success(), "{}", answer.status());
    let out = stack.script("stop.sh");
    assert!(out.status.success());

    // A journal whose id for that schema differs from what the registry
    // hands out: records carrying it would decode wrongly.
    let journal = std::fs::read_to_string(stack.journal()).expect("journal");
    let mut parsed: serde_json::Value = serde_json::from_str(&journal).expect("json");
    let entries = parsed["entries"].as_array_mut().expect("entries");
    let other = entries
        .iter_mut()
        .find(|e| e["subject"] == "other-value")
        .expect("saved by stop.sh");
    other["id"] = serde_json::json!(other["id"].as_i64().expect("id") + 5);
    std::fs::write(stack.journal(), parsed.to_string()).expect("write");
    let out = stack.script("start.sh");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "started on a mismatched journal");
    assert!(stderr.contains("schema id mismatch"), "{stderr}");

    // Broker data without any journal (an older start.sh's) is refused
    // too, instead of being served with ids nobody knows.
    std::fs::remove_file(stack.journal()).expect("remove journal");
    let out = stack.script("start.sh");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "started without a journal");
    assert!(stderr.contains("no registry journal"), "{stderr}");
}
