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
    let _turn = intops_tests::serial::beside_others().await;
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
        let e = intops_tests::events::created("servicenow", &format!("k{}", i % 50), &payload);
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
    // On tansu the restarted member must join after the killed one's
    // session expired (see intops_tests::group).
    intops_tests::group::wait_until_killed_member_is_gone(
        &topics.group("transform"),
        &topics.events(),
        3,
        WAIT,
    )
    .await;
    // Counted once the killed member is gone, so no write of it is still
    // on its way: what it wrote, and what it committed.
    let at_kill = topic::count(&deliveries) as usize;
    let committed_at_kill =
        intops_tests::group::committed_records(&topics.group("transform"), &topics.events(), 3);
    assert!(
        committed_at_kill <= at_kill,
        "committed {committed_at_kill} events but wrote only {at_kill} requests"
    );

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
    // Everything the second process wrote, including any write after the
    // last event was seen.
    let total = total.max(topic::count(deliveries) as usize);
    let missing: Vec<&String> = ids.iter().filter(|id| !seen.contains_key(*id)).collect();
    assert!(
        missing.is_empty(),
        "{} events lost, first {:?}",
        missing.len(),
        missing.first()
    );
    let duplicates = total - EVENTS;
    println!(
        "kill -9 after {at_kill} delivery requests ({committed_at_kill} events committed): {duplicates} duplicates of {EVENTS} events"
    );
    // Each event routes to exactly one request, so the killed process's
    // requests for committed events are never written again: only those
    // past the last commit may be repeated.
    let uncommitted_at_kill = at_kill - committed_at_kill;
    assert!(
        duplicates <= uncommitted_at_kill,
        "{duplicates} duplicates, but only {uncommitted_at_kill} requests were written past the last commit"
    );
}

/// Records that still reach the events topic although ingest would refuse
/// them (another producer, an older version) are dead-lettered, never
/// fatal: a payload nested 100,000 levels deep (jaq's recursive parser
/// overflowed the stack and aborted the process on it), a mapping whose
/// delivery request exceeds the record limit, and a mapping error quoting
/// a value so large that the dead letter holding the event would not fit
/// (written slim, naming the original's offset). A later event is still
/// delivered and the process keeps running.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poison_records_written_straight_to_the_events_topic_are_dead_lettered() {
    let _turn = intops_tests::serial::beside_others().await;
    use intops_events::DeadLetter;
    use intops_kafka::dlq_headers;

    let prefix = stack::random_prefix("poison");
    let topics = intops_events::Topics::new(&prefix);
    let settings = KafkaSettings::new(stack::bootstrap(), Default::default()).expect("settings");
    let specs: Vec<_> = topics
        .all(["crm"])
        .iter()
        .map(|n| intops_kafka::topics::TopicSpec::new(n, 3, 1))
        .collect();
    intops_kafka::topics::ensure(&settings, &specs)
        .await
        .expect("topics");
    let dir = tempfile::tempdir().expect("tempdir");
    let flows = dir.path().join("flows.toml");
    std::fs::write(
        &flows,
        r#"
[[sources]]
id = "app"
kind = "webhook"
auth = "none"
entity_key = ".id"

[[targets]]
id = "crm"
base_url = "http://127.0.0.1:1"

[[flows]]
id = "ok"
source = "app"
when = '.kind == "ok"'
target = "crm"
path = "/ok"
map = '{id: .id}'

[[flows]]
id = "double"
source = "app"
when = '.kind == "double"'
target = "crm"
path = "/double"
map = '{a: .big, b: .big}'

[[flows]]
id = "fail"
source = "app"
when = '.kind == "fail"'
target = "crm"
path = "/fail"
map = 'error(.big)'
"#,
    )
    .expect("flows");

    let codec = stack::codec();
    let producer = Producer::new(&settings).expect("producer");
    let events = topics.events();
    let depth = 100_000;
    let payloads = [
        (
            "deep",
            format!(
                r#"{{"id":"deep","kind":"ok","x":{}{}}}"#,
                "[".repeat(depth),
                "]".repeat(depth)
            ),
        ),
        (
            "double",
            format!(
                r#"{{"id":"double","kind":"double","big":"{}"}}"#,
                "d".repeat(600_000)
            ),
        ),
        (
            "fail",
            format!(
                r#"{{"id":"fail","kind":"fail","big":"{}"}}"#,
                "f".repeat(995_000)
            ),
        ),
        ("ok", r#"{"id":"ok","kind":"ok"}"#.to_string()),
    ];
    for (id, payload) in &payloads {
        let e = IntegrationEvent {
            event_id: format!("event-{id}"),
            ..intops_tests::events::created("app", id, payload)
        };
        let value = codec
            .encode(&events, RecordKind::IntegrationEvent, &e)
            .await
            .expect("encode");
        // All on one partition, in this order: the good event comes last.
        producer
            .send(Record {
                topic: &events,
                key: b"app:same",
                value: &value,
                headers: &[],
            })
            .await
            .expect("produce");
    }

    let mut transform = process::start("intops-transform", &flows, &prefix);
    let deliveries = topics.deliveries("crm");
    let requests = poll_until("the good event's delivery request", WAIT, || {
        // A process that died on a record fails the test at once.
        if let Some(status) = transform.try_wait().expect("status") {
            panic!("transform exited ({status}) instead of dead-lettering");
        }
        let deliveries = &deliveries;
        async move {
            let n = topic::count(deliveries) as usize;
            (n >= 1).then(|| topic::read(deliveries, n, WAIT))
        }
    })
    .await;
    let dlq = topics.dlq_transform();
    let letters = topic::read(&dlq, 3, WAIT);
    assert!(
        transform.try_wait().expect("status").is_none(),
        "transform is still running"
    );
    let _ = transform.kill();
    let _ = transform.wait();

    let mut ids = Vec::new();
    for m in &requests {
        let r: DeliveryRequest = codec
            .decode(m.payload().expect("value"))
            .await
            .expect("decode");
        ids.push(r.event_id);
    }
    assert_eq!(
        ids,
        vec!["event-ok".to_string()],
        "only the good event is routed"
    );
    let mut by_class = HashMap::new();
    for m in &letters {
        let d: DeadLetter = codec
            .decode(m.payload().expect("value"))
            .await
            .expect("decode");
        assert!(d.error_message.len() <= intops_kafka::MAX_ERROR_TEXT_BYTES);
        let omitted = topic::header(m, dlq_headers::ORIGINAL_OMITTED);
        by_class.insert(
            d.error_class.clone(),
            (d, omitted, m.payload().map_or(0, <[u8]>::len)),
        );
    }
    let classes: std::collections::BTreeSet<&str> = by_class.keys().map(String::as_str).collect();
    assert_eq!(
        classes,
        ["mapping", "payload_too_deep", "record_rejected"]
            .into_iter()
            .collect(),
        "one dead letter each"
    );
    let (deep, ..) = &by_class["payload_too_deep"];
    assert_eq!(deep.event_id.as_deref(), Some("event-deep"));
    assert!(deep.original_value.is_some(), "a small record is embedded");
    let (double, ..) = &by_class["record_rejected"];
    assert_eq!(double.flow_id.as_deref(), Some("double"));
    assert!(double.original_value.is_some(), "the event itself fits");
    let (fail, omitted, size) = &by_class["mapping"];
    assert_eq!(fail.event_id.as_deref(), Some("event-fail"));
    assert!(fail.original_value.is_none(), "too large to embed");
    assert_eq!(omitted.as_deref(), Some("value,headers"));
    assert!(*size < 20_000, "a slim dead letter: {size} bytes");
    assert!(fail.original_offset >= 0 && fail.original_topic == events);
}
