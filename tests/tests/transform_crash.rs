//! kill -9 of the transform process mid-stream, then a restart: every
//! event still gets its delivery request (at least once); duplicates come
//! only from work done after the last offset commit, and are counted.

use std::collections::HashMap;
use std::time::Duration;

use intops_events::{DeliveryRequest, IntegrationEvent, RecordKind};
use intops_kafka::{KafkaSettings, Producer, Record};
use intops_tests::pipeline::example_flows;
use intops_tests::{poll_until, process, stack, topic};
use rdkafka::message::Message;

const EVENTS: usize = 3000;
const WAIT: Duration = Duration::from_secs(240);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_mid_stream_loses_nothing() {
    let prefix = stack::random_prefix("crash");
    let topics = intops_events::Topics::new(&prefix);
    let settings = KafkaSettings::new(stack::bootstrap(), Default::default()).expect("settings");
    let specs: Vec<_> = topics
        .all(["jira"])
        .iter()
        .map(|n| intops_kafka::topics::TopicSpec::new(n, 3, 1))
        .collect();
    intops_kafka::topics::ensure(&settings, &specs)
        .await
        .expect("topics");

    // The events, written the way ingest writes them.
    let codec = stack::codec();
    let producer = Producer::new(&settings).expect("producer");
    let payload = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/fixtures/servicenow-incident-created.json"
    ))
    .expect("fixture");
    let events = topics.events();
    let mut ids = Vec::new();
    let mut records = Vec::new();
    for i in 0..EVENTS {
        let e = IntegrationEvent {
            event_id: uuid::Uuid::now_v7().to_string(),
            source_id: "servicenow".into(),
            event_type: "created".into(),
            entity_key: format!("k{}", i % 50),
            occurred_at: 1,
            ingested_at: 1,
            correlation_id: None,
            attributes: HashMap::new(),
            payload: payload.clone(),
        };
        let value = codec
            .encode(&events, RecordKind::IntegrationEvent, &e)
            .await
            .expect("encode");
        records.push((e.kafka_key(), value));
        ids.push(e.event_id);
    }
    // Sends are started in order per key, so each entity's order holds.
    futures::future::try_join_all(records.iter().map(|(key, value)| {
        producer.send(Record {
            topic: &events,
            key: key.as_bytes(),
            value,
            headers: &[],
        })
    }))
    .await
    .expect("produce");

    let dir = tempfile::tempdir().expect("tempdir");
    let flows = dir.path().join("flows.toml");
    std::fs::write(
        &flows,
        example_flows("http://127.0.0.1:1").replace("{secrets}/snow", "/dev/null"),
    )
    .expect("flows");
    let deliveries = topics.deliveries("jira");

    let mut first = process::start("intops-transform", &flows, &prefix);
    poll_until("transform to be mid-stream", WAIT, || async {
        (topic::count(&deliveries) >= 300).then_some(())
    })
    .await;
    first.kill().expect("kill -9");
    let _ = first.wait();
    let at_kill = topic::count(&deliveries);
    // On tansu the restarted member must join after the killed one's
    // session expired (see intops_tests::group).
    intops_tests::group::wait_until_killed_member_is_gone(
        &topics.group("transform"),
        &topics.events(),
        3,
        WAIT,
    )
    .await;

    let mut second = process::start("intops-transform", &flows, &prefix);
    // Duplicates pad the topic, so wait for every event id, not a count.
    let codec = &codec;
    let deliveries = &deliveries;
    let (seen, total) = poll_until("every event's delivery request", WAIT, || async move {
        let total = topic::count(deliveries) as usize;
        let mut seen: HashMap<String, usize> = HashMap::new();
        for m in topic::read(deliveries, total, WAIT) {
            let r: DeliveryRequest = codec.decode(m.payload()?).await.ok()?;
            *seen.entry(r.event_id).or_default() += 1;
        }
        eprintln!(
            "delivery requests: {total}, distinct events: {}",
            seen.len()
        );
        (seen.len() >= EVENTS).then_some((seen, total))
    })
    .await;
    let _ = second.kill();
    let _ = second.wait();
    let missing: Vec<&String> = ids.iter().filter(|id| !seen.contains_key(*id)).collect();
    assert!(
        missing.is_empty(),
        "{} events lost, first {:?}",
        missing.len(),
        missing.first()
    );
    let duplicates = total - EVENTS;
    println!(
        "kill -9 after {at_kill} delivery requests: {duplicates} duplicates of {EVENTS} events"
    );
    assert!(
        duplicates < EVENTS,
        "duplicates are bounded by the work after the last commit"
    );
}
