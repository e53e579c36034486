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
            async move {
                Ok::<_, ProcessError>(Handled::Acknowledging(Box::pin(async move {
                    tokio::select! {
                        r = rx => Ok(r.is_ok()),
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
