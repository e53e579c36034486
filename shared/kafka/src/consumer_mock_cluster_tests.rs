//! Fault-injection unit tests of the consumer loop on rdkafka's in-process
//! MockCluster (not the real stack): offsets wait for a handler's
//! background acknowledgement, and the lane does not.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use intops_events::{Codec, RegistrySettings, Stage};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::mocking::MockCluster;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;

use super::*;
use crate::Producer;

const TOPIC: &str = "acks";

/// Acknowledgements the test releases, by offset.
type Releases = Arc<Mutex<Vec<(i64, oneshot::Sender<()>)>>>;
const GROUP: &str = "acks-group";

async fn cluster_with_records(
    n: usize,
) -> (
    MockCluster<'static, rdkafka::producer::DefaultProducerContext>,
    KafkaSettings,
) {
    let cluster = MockCluster::new(1).expect("mock cluster");
    cluster.create_topic(TOPIC, 1, 1).expect("topic");
    let settings =
        KafkaSettings::new(cluster.bootstrap_servers(), Default::default()).expect("settings");
    let producer: FutureProducer = settings.producer_config().create().expect("producer");
    for i in 0..n {
        let key = format!("k{i}");
        producer
            .send(
                FutureRecord::to(TOPIC).key(&key).payload("v"),
                Duration::from_secs(5),
            )
            .await
            .expect("produce");
    }
    (cluster, settings)
}

fn options(settings: &KafkaSettings, shutdown: CancellationToken) -> ConsumeOptions {
    let codec = Codec::new(&RegistrySettings {
        url: "http://127.0.0.1:1".into(),
        basic_auth: None,
        timeout: Duration::from_secs(1),
        ca_pem: None,
    })
    .expect("codec");
    ConsumeOptions {
        stage: "test",
        dead_letters: DeadLetterWriter::new(
            Producer::new(settings).expect("producer"),
            Arc::new(codec),
            "dlq".into(),
            Stage::Delivery,
        ),
        cap: Arc::new(crate::DeadLetterCap::disabled("test")),
        shutdown,
        min_backoff: Duration::from_millis(10),
        max_backoff: Duration::from_millis(50),
        // One lane: without background acknowledgements the second record
        // would wait for the first one's.
        concurrency: 1,
    }
}

fn committed(settings: &KafkaSettings) -> Option<i64> {
    let consumer: BaseConsumer = settings.consumer_config(GROUP).create().expect("consumer");
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition(TOPIC, 0);
    let c = consumer
        .committed_offsets(tpl, Duration::from_secs(5))
        .expect("committed");
    match c.find_partition(TOPIC, 0)?.offset() {
        Offset::Offset(o) => Some(o),
        _ => None,
    }
}

async fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !done() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_offset_waits_for_its_acknowledgement_and_the_lane_does_not() {
    let (_cluster, settings) = cluster_with_records(3).await;
    let shutdown = CancellationToken::new();
    let acks: Releases = Arc::default();
    let handler_acks = acks.clone();
    let handler_shutdown = shutdown.clone();
    // Acknowledgements that completed as done (`Ok(true)`).
    let acked = Arc::new(Mutex::new(0usize));
    let handler_acked = acked.clone();
    let consumer = new_consumer(&settings, GROUP, &[TOPIC]).expect("consumer");
    let opts = options(&settings, shutdown.clone());
    let run = tokio::spawn(async move {
        consume(&consumer, &opts, move |message| {
            let (tx, rx) = oneshot::channel();
            handler_acks
                .lock()
                .expect("lock")
                .push((message.offset(), tx));
            let shutdown = handler_shutdown.clone();
            let acked = handler_acked.clone();
            async move {
                Ok::<_, ProcessError>(Handled::Acknowledging(Box::pin(async move {
                    tokio::select! {
                        // A released acknowledgement wins over shutdown.
                        biased;
                        Ok(()) = rx => {
                            *acked.lock().expect("lock") += 1;
                            Ok(true)
                        }
                        () = shutdown.cancelled() => Ok(false),
                    }
                })))
            }
        })
        .await
    });
    // All three handled on one lane while no acknowledgement arrived.
    wait_for("three records handled", || {
        acks.lock().expect("lock").len() == 3
    })
    .await;
    // Acknowledge the later two only: offset 0 still holds the watermark.
    let mut held = Vec::new();
    for (offset, tx) in acks.lock().expect("lock").drain(..) {
        if offset > 0 {
            let _ = tx.send(());
        } else {
            held.push(tx);
        }
    }
    // The later two finished as done before the stop; the loop applies
    // every finished record before its final commit, so a watermark that
    // skipped the gap at offset 0 would commit 3 here.
    wait_for("the later two acknowledged", || {
        *acked.lock().expect("lock") == 2
    })
    .await;
    shutdown.cancel();
    run.await.expect("join").expect("consume");
    assert_eq!(
        committed(&settings),
        None,
        "nothing stored past an unacknowledged record"
    );
    drop(held);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_records_are_committed() {
    let (_cluster, settings) = cluster_with_records(3).await;
    let shutdown = CancellationToken::new();
    let handled = Arc::new(Mutex::new(0usize));
    let counter = handled.clone();
    let consumer = new_consumer(&settings, GROUP, &[TOPIC]).expect("consumer");
    let opts = options(&settings, shutdown.clone());
    let run = tokio::spawn(async move {
        consume(&consumer, &opts, move |_message| {
            let counter = counter.clone();
            async move {
                Ok::<_, ProcessError>(Handled::Acknowledging(Box::pin(async move {
                    *counter.lock().expect("lock") += 1;
                    Ok(true)
                })))
            }
        })
        .await
    });
    wait_for("three acknowledgements", || {
        *handled.lock().expect("lock") == 3
    })
    .await;
    shutdown.cancel();
    run.await.expect("join").expect("consume");
    assert_eq!(committed(&settings), Some(3));
}

/// Produces `(key, value)` records in order to a one-partition topic.
async fn cluster_with_keys(
    keys: &[(String, String)],
) -> (
    MockCluster<'static, rdkafka::producer::DefaultProducerContext>,
    KafkaSettings,
) {
    let cluster = MockCluster::new(1).expect("mock cluster");
    cluster.create_topic(TOPIC, 1, 1).expect("topic");
    let settings =
        KafkaSettings::new(cluster.bootstrap_servers(), Default::default()).expect("settings");
    let producer: FutureProducer = settings.producer_config().create().expect("producer");
    for (key, value) in keys {
        producer
            .send(
                FutureRecord::to(TOPIC).key(key).payload(value),
                Duration::from_secs(5),
            )
            .await
            .expect("produce");
    }
    (cluster, settings)
}

/// A burst of bad records from source `a` trips the cap for `a` only: its
/// later records are held (not dead-lettered, offsets not stored past the
/// first), `b`'s records go on; a reset takes the held ones up again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tripped_scope_is_held_while_other_scopes_go_on() {
    const EACH: usize = 30;
    // Five entity keys per source, so held records share keys.
    let keys: Vec<(String, String)> = (0..EACH)
        .flat_map(|i| {
            [
                (format!("a:{}", i % 5), i.to_string()),
                (format!("b:{}", i % 5), i.to_string()),
            ]
        })
        .collect();
    let (_cluster, settings) = cluster_with_keys(&keys).await;
    let shutdown = CancellationToken::new();
    let readiness = intops_runtime::Readiness::default();
    let cap = Arc::new(crate::DeadLetterCap::new(
        "test",
        "dead_letter_cap",
        crate::CapSettings::new(0, 0.0, 3).expect("valid"),
        readiness.clone(),
    ));
    let mut opts = options(&settings, shutdown.clone());
    opts.concurrency = 4;
    opts.cap = cap.clone();
    let (writer, dead) = opts.dead_letters.clone().in_memory();
    opts.dead_letters = writer;
    // Which keys were handled successfully; `a` fails until fixed.
    let handled: Arc<Mutex<Vec<String>>> = Arc::default();
    let fixed = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (h, f) = (handled.clone(), fixed.clone());
    let consumer = new_consumer(&settings, GROUP, &[TOPIC]).expect("consumer");
    let run = tokio::spawn(async move {
        consume(&consumer, &opts, move |message| {
            let key = String::from_utf8_lossy(message.key().unwrap_or_default()).into_owned();
            let value = String::from_utf8_lossy(message.payload().unwrap_or_default());
            let key = format!("{key}/{value}");
            let ok = !key.starts_with("a:") || f.load(std::sync::atomic::Ordering::SeqCst);
            let h = h.clone();
            async move {
                if ok {
                    h.lock().expect("lock").push(key);
                    Ok(Handled::Done)
                } else {
                    Err(ProcessError::Poison(Failure::new("mapping", "bad")))
                }
            }
        })
        .await
    });
    let count = |prefix: &str| {
        handled
            .lock()
            .expect("lock")
            .iter()
            .filter(|k| k.starts_with(prefix))
            .count()
    };
    wait_for("every b record handled", || count("b:") == EACH).await;
    wait_for("a's other records held", || {
        cap.held() + dead.lock().expect("lock").len() == EACH
    })
    .await;
    let dead_lettered = dead.lock().expect("lock").len();
    assert!(
        (3..3 + 4).contains(&dead_lettered),
        "the cap stops a's dead letters after 3 in a row (plus those in flight on other lanes): {dead_lettered}"
    );
    assert_eq!(cap.tripped(), vec!["a".to_string()]);
    assert!(!readiness.is_ready(), "a tripped cap reports not ready");
    assert_eq!(count("a:"), 0);
    // Nothing stored past the first held record of `a` (offset 2k).
    // Every b record is handled, so the next background commit (every
    // second) stores the watermark as it stands with a held.
    wait_for("an offset committed after b was handled", || {
        committed(&settings).is_some_and(|o| o > 0)
    })
    .await;
    let stored = committed(&settings).unwrap_or(0);
    assert!(
        stored < (2 * EACH) as i64,
        "offsets stop below the first held record: {stored}"
    );

    // The fix, then the reset: the held records are handled, in order.
    fixed.store(true, std::sync::atomic::Ordering::SeqCst);
    cap.reset();
    wait_for("a's held records handled", || {
        count("a:") + dead_lettered == EACH
    })
    .await;
    assert!(readiness.is_ready());
    assert_eq!(cap.held(), 0);
    assert_eq!(
        dead.lock().expect("lock").len(),
        dead_lettered,
        "no more dead letters"
    );
    // Per key, in partition order (held ones included).
    let handled_now = handled.lock().expect("lock").clone();
    for entity in 0..5 {
        let seq: Vec<usize> = handled_now
            .iter()
            .filter_map(|k| k.strip_prefix(&format!("a:{entity}/"))?.parse().ok())
            .collect();
        let mut sorted = seq.clone();
        sorted.sort_unstable();
        assert_eq!(seq, sorted, "records of key a:{entity} keep their order");
    }
    shutdown.cancel();
    run.await.expect("join").expect("consume");
    assert_eq!(committed(&settings), Some((2 * EACH) as i64));
}
