//! A crash loop must not stall a consumer group (issue 14, item 8).
//!
//! On the local broker (tansu 0.6) a member killed while it was still
//! joining keeps the group's partitions: the next member is assigned
//! nothing and the stage stalls. With a stable instance id
//! (`INTOPS_INSTANCE_ID`, static membership) each restart takes the
//! partitions over at once. And a member that holds no partition for
//! longer than a grace period while its group has records left reports
//! not ready.

use std::collections::HashSet;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use intops_events::{DeliveryRequest, RecordKind, Topics};
use intops_kafka::{KafkaSettings, Producer, Record, new_consumer};
use intops_runtime::{CancellationToken, Readiness};
use intops_tests::pipeline::example_flows;
use intops_tests::{poll_until, stack, topic};
use rdkafka::consumer::Consumer;
use rdkafka::message::Message;

const WAIT: Duration = Duration::from_secs(60);
const PARTITIONS: i32 = 3;

/// A child process killed (SIGKILL) when dropped, also when the test
/// fails.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The transform binary as its own process (so it can be killed with
/// SIGKILL), with `instance` as `INTOPS_INSTANCE_ID` when given.
fn transform(flows: &Path, prefix: &str, instance: Option<&str>, admin_port: u16) -> Killed {
    let dir = std::env::var("INTOPS_BIN_DIR").expect(
        "INTOPS_BIN_DIR is not set: run the suite through deploy/local/test.sh, which builds the binaries",
    );
    let mut command = Command::new(Path::new(&dir).join("intops-transform"));
    command
        .env("INTOPS_FLOWS", flows)
        .env("INTOPS_TOPIC_PREFIX", prefix)
        .env("INTOPS_TOPIC_PARTITIONS", PARTITIONS.to_string())
        .env("INTOPS_KAFKA_BOOTSTRAP", stack::bootstrap())
        .env("INTOPS_SCHEMA_REGISTRY_URL", stack::registry_url())
        .env("INTOPS_ADMIN_LISTEN", format!("127.0.0.1:{admin_port}"))
        .env("INTOPS_KAFKA_OPTION_MAX_POLL_INTERVAL_MS", "30000")
        .env("INTOPS_KAFKA_OPTION_SESSION_TIMEOUT_MS", "10000")
        .env_remove("INTOPS_INSTANCE_ID")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    if let Some(id) = instance {
        command.env("INTOPS_INSTANCE_ID", id);
    }
    Killed(command.spawn().expect("intops-transform starts"))
}

async fn ready(admin_port: u16) {
    let url = format!("http://127.0.0.1:{admin_port}/readyz");
    poll_until("transform ready", WAIT, || {
        let url = url.clone();
        async move {
            let answer = reqwest::get(&url).await.ok()?;
            answer.status().is_success().then_some(())
        }
    })
    .await;
}

/// Writes `n` events the way ingest does; returns their ids.
async fn send_events(topics: &Topics, n: usize) -> Vec<String> {
    let settings = KafkaSettings::new(stack::bootstrap(), Default::default()).expect("settings");
    let producer = Producer::new(&settings).expect("producer");
    let codec = stack::codec();
    let events = topics.events();
    let payload = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/fixtures/servicenow-incident-created.json"
    ))
    .expect("fixture");
    let mut ids = Vec::new();
    for i in 0..n {
        let e = intops_tests::events::created("servicenow", &format!("k{}", i % 30), &payload);
        let value = codec
            .encode(&events, RecordKind::IntegrationEvent, &e)
            .await
            .expect("encode");
        producer
            .send(Record {
                topic: &events,
                key: e.kafka_key().as_bytes(),
                value: &value,
                headers: &[],
            })
            .await
            .expect("produce");
        ids.push(e.event_id);
    }
    ids
}

/// Waits until every one of `ids` has a delivery request.
async fn all_transformed(topics: &Topics, ids: &[String], what: &str) {
    let deliveries = topics.deliveries("jira");
    let codec = stack::codec();
    let (codec, deliveries) = (&codec, &deliveries);
    let wanted: HashSet<&String> = ids.iter().collect();
    let wanted = &wanted;
    poll_until(what, WAIT, || async move {
        let total = topic::count(deliveries) as usize;
        let mut seen = HashSet::new();
        for m in topic::read(deliveries, total, WAIT) {
            let r: DeliveryRequest = codec.decode(m.payload()?).await.ok()?;
            seen.insert(r.event_id);
        }
        let missing = wanted.iter().filter(|id| !seen.contains(**id)).count();
        eprintln!("{what}: {missing} of {} not transformed yet", wanted.len());
        (missing == 0).then_some(())
    })
    .await;
}

async fn create_topics(topics: &Topics) {
    let settings = KafkaSettings::new(stack::bootstrap(), Default::default()).expect("settings");
    let specs: Vec<_> = topics
        .all(["jira"])
        .iter()
        .map(|n| intops_kafka::topics::TopicSpec::new(n, PARTITIONS, 1))
        .collect();
    intops_kafka::topics::ensure(&settings, &specs)
        .await
        .expect("topics");
}

/// kill -9, a restart killed again while it joins, and a third start: with
/// one stable instance id the third takes every partition at once and the
/// stage goes on. (Without static membership the third is assigned
/// nothing on tansu 0.6 — measured 0 of 6 partitions for 150 s — and this
/// test times out.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_loop_does_not_stall_the_group_with_static_membership() {
    let _turn = intops_tests::serial::beside_others().await;
    let prefix = stack::random_prefix("static");
    let topics = Topics::new(&prefix);
    create_topics(&topics).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let flows = dir.path().join("flows.toml");
    std::fs::write(
        &flows,
        example_flows("http://127.0.0.1:1").replace("{secrets}/snow", "/dev/null"),
    )
    .expect("flows");
    let id = Some("transform-0");

    let before = send_events(&topics, 100).await;
    let port = stack::free_port();
    let first = transform(&flows, &prefix, id, port);
    all_transformed(&topics, &before, "events before the first kill").await;
    drop(first); // SIGKILL

    // The replacement is killed while it is still joining: right after it
    // reports ready (topics checked), when it has just subscribed.
    let port = stack::free_port();
    let second = transform(&flows, &prefix, id, port);
    ready(port).await;
    drop(second);

    let port = stack::free_port();
    let third = transform(&flows, &prefix, id, port);
    let after = send_events(&topics, 100).await;
    all_transformed(&topics, &after, "events after the crash loop").await;
    drop(third);
}

/// Polls `consumer` so its rebalances run, storing nothing (its group's
/// lag stays).
fn keep_polling(
    consumer: Arc<intops_kafka::GroupConsumer>,
    stop: CancellationToken,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                _ = consumer.recv() => {}
            }
        }
    })
}

/// The readiness rule against the real broker: a member of a group whose
/// only partition another member holds, while records wait, turns not
/// ready after the grace; ready again once the other member leaves and the
/// partition comes to it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_without_partitions_is_not_ready_while_its_group_has_lag() {
    let _turn = intops_tests::serial::beside_others().await;
    let prefix = stack::random_prefix("idle");
    let topics = Topics::new(&prefix);
    let settings = KafkaSettings::new(stack::bootstrap(), Default::default()).expect("settings");
    let events = topics.events();
    intops_kafka::topics::ensure(
        &settings,
        &[intops_kafka::topics::TopicSpec::new(&events, 1, 1)],
    )
    .await
    .expect("topic");
    let producer = Producer::new(&settings).expect("producer");
    for i in 0..5 {
        producer
            .send(Record {
                topic: &events,
                key: format!("k{i}").as_bytes(),
                value: b"x",
                headers: &[],
            })
            .await
            .expect("produce");
    }
    let group = topics.group("transform");
    let stop = CancellationToken::new();

    let holder = Arc::new(new_consumer(&settings, &group, &[&events]).expect("holder"));
    let holding = keep_polling(holder.clone(), stop.clone());
    poll_until("the first member to hold the partition", WAIT, || async {
        (holder.context().assignment().held() == 1).then_some(())
    })
    .await;

    let idle = Arc::new(new_consumer(&settings, &group, &[&events]).expect("idle member"));
    let idling = keep_polling(idle.clone(), stop.clone());
    let readiness = Readiness::default();
    tokio::spawn(
        intops_kafka::drain::watch(
            &idle,
            &settings,
            &group,
            readiness.clone(),
            Duration::from_secs(2),
            stop.clone(),
        )
        .expect("watch"),
    );
    let check = format!("partitions {group}");
    poll_until("the idle member to report not ready", WAIT, || async {
        readiness.not_ready().contains(&check).then_some(())
    })
    .await;
    assert_eq!(idle.context().assignment().held(), 0);

    // The holder leaves: the idle member gets the partition, and is ready.
    holding.abort();
    let _ = holding.await;
    drop(holder);
    poll_until(
        "the partition to move and readiness to return",
        WAIT,
        || async {
            (idle.context().assignment().held() == 1 && readiness.is_ready()).then_some(())
        },
    )
    .await;
    stop.cancel();
    let _ = idling.await;
}
