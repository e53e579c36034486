//! The delivery process killed with SIGKILL mid-stream and restarted:
//! every delivery request reaches the target at least once, nothing is
//! skipped, duplicates come only from the work after the last commit and
//! are counted. Then a SIGTERM stop: exit 0 with every offset committed,
//! so the next start repeats nothing.

use std::collections::HashMap;
use std::time::Duration;

use intops_events::{DeliveryRequest, RecordKind, Topics};
use intops_kafka::topics::TopicSpec;
use intops_kafka::{KafkaSettings, Producer, Record};
use intops_tests::{MockTarget, poll_until, process, stack};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

const REQUESTS: usize = 600;
const KEYS: usize = 20;
const WAIT: Duration = Duration::from_secs(120);

async fn produce_requests(topics: &Topics) -> Vec<String> {
    let settings = KafkaSettings::new(stack::bootstrap(), Default::default()).expect("settings");
    let topic = topics.deliveries("crm");
    intops_kafka::topics::ensure(&settings, &[TopicSpec::new(&topic, 3, 1)])
        .await
        .expect("topic");
    let codec = stack::codec();
    let producer = Producer::new(&settings).expect("producer");
    let mut records = Vec::new();
    for i in 0..REQUESTS {
        let event_id = uuid::Uuid::now_v7().to_string();
        let request = DeliveryRequest {
            event_id: event_id.clone(),
            flow_id: "app-to-crm".into(),
            flow_version: "v1".into(),
            target_id: "crm".into(),
            entity_key: format!("k{}", i % KEYS),
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

/// Requests the target received per event id.
fn received(target: &MockTarget) -> HashMap<String, usize> {
    let mut seen = HashMap::new();
    for r in target.requests() {
        if let Some(id) = r.json()["event"].as_str() {
            *seen.entry(id.to_string()).or_insert(0) += 1;
        }
    }
    seen
}

/// Partitions whose committed offset for `group` is behind the end.
fn uncommitted(group: &str, topic: &str) -> Vec<(i32, i64, i64)> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", stack::bootstrap())
        .set("group.id", group)
        .create()
        .expect("consumer");
    let mut tpl = TopicPartitionList::new();
    for p in 0..3 {
        tpl.add_partition(topic, p);
    }
    let committed = consumer
        .committed_offsets(tpl, Duration::from_secs(10))
        .expect("committed offsets");
    committed
        .elements()
        .iter()
        .filter_map(|e| {
            let (_, high) = consumer
                .fetch_watermarks(topic, e.partition(), Duration::from_secs(10))
                .expect("watermarks");
            let at = match e.offset() {
                Offset::Offset(o) => o,
                _ => -1,
            };
            (at != high).then_some((e.partition(), at, high))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill_9_then_sigterm_loses_nothing_and_repeats_only_uncommitted_work() {
    let prefix = stack::random_prefix("dcrash");
    let topics = Topics::new(&prefix);
    let ids = produce_requests(&topics).await;

    let target = MockTarget::start().await.expect("target");
    target.set_latency(Duration::from_millis(20));
    let dir = tempfile::tempdir().expect("tempdir");
    let flows = dir.path().join("flows.toml");
    let text = intops_tests::pipeline::app_flows(
        &target.base_url(),
        "crm",
        "concurrency = 4\ntimeout = \"5s\"",
        "",
    );
    std::fs::write(&flows, text).expect("flows");

    let mut first = process::start("intops-delivery", &flows, &prefix);
    poll_until("delivery to be mid-stream", WAIT, || async {
        (received(&target).len() >= REQUESTS / 2).then_some(())
    })
    .await;
    first.kill().expect("kill -9");
    let _ = first.wait();
    let at_kill = target.requests().len();
    // On tansu the restarted member must join after the killed one's
    // session expired (see intops_tests::group).
    intops_tests::group::wait_until_killed_member_is_gone(
        &topics.group("delivery.crm"),
        &topics.deliveries("crm"),
        3,
        WAIT,
    )
    .await;

    let second = process::start("intops-delivery", &flows, &prefix);
    let seen = poll_until("every request delivered", WAIT, || async {
        let seen = received(&target);
        (seen.len() >= REQUESTS).then_some(seen)
    })
    .await;
    let missing: Vec<&String> = ids.iter().filter(|id| !seen.contains_key(*id)).collect();
    assert!(
        missing.is_empty(),
        "{} requests never delivered",
        missing.len()
    );
    let total: usize = seen.values().sum();
    let duplicates = total - REQUESTS;
    println!(
        "kill -9 after {at_kill} requests: {duplicates} duplicates of {REQUESTS} (concurrency 4, 20 ms target)"
    );
    // Offsets are committed every second; at 4 × 50 requests/s at most
    // about one second of work plus what was in flight can repeat.
    assert!(
        duplicates <= 4 * 50 + 4 && duplicates <= at_kill,
        "{duplicates} duplicates: more than the uncommitted window"
    );

    // Graceful stop: exit 0, and every offset committed.
    let status = process::terminate(second);
    assert!(status.success(), "SIGTERM exit status {status}");
    let group = topics.group("delivery.crm");
    let behind = uncommitted(&group, &topics.deliveries("crm"));
    assert!(
        behind.is_empty(),
        "after a graceful stop, partitions (partition, committed, end) behind: {behind:?}"
    );
}
