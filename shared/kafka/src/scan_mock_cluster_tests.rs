//! Scans on rdkafka's in-process MockCluster (not the real stack), on the
//! current-thread runtime of `#[tokio::test]`: the look-ups at open run
//! off the async workers there too.

use std::time::Duration;

use rdkafka::mocking::MockCluster;
use rdkafka::producer::{DefaultProducerContext, FutureProducer, FutureRecord};

use super::*;

const TOPIC: &str = "scanned";

/// A cluster with `TOPIC` in two partitions, and a producer.
fn cluster() -> (
    MockCluster<'static, DefaultProducerContext>,
    KafkaSettings,
    FutureProducer,
) {
    let cluster = MockCluster::new(1).expect("mock cluster");
    cluster.create_topic(TOPIC, 2, 1).expect("topic");
    let settings =
        KafkaSettings::new(cluster.bootstrap_servers(), Default::default()).expect("settings");
    let producer: FutureProducer = settings.producer_config().create().expect("producer");
    (cluster, settings, producer)
}

async fn produce(producer: &FutureProducer, partition: i32, value: &str) {
    producer
        .send(
            FutureRecord::<(), _>::to(TOPIC)
                .partition(partition)
                .payload(value),
            Duration::from_secs(5),
        )
        .await
        .expect("produce");
}

fn value(message: &OwnedMessage) -> String {
    String::from_utf8_lossy(message.payload().unwrap_or_default()).into_owned()
}

/// Records written after open are past the scan's end: whether one is
/// skipped depends on when the consumer fetched it, so the unit tests of
/// `Ends` cover that.
#[tokio::test]
async fn a_scan_reads_to_the_end_it_had_at_open_and_says_so_once() {
    let (_cluster, settings, producer) = cluster();
    for (partition, v) in [(1, "a"), (1, "b"), (1, "c")] {
        produce(&producer, partition, v).await;
    }
    let mut scan = Scan::open(&settings, &[TOPIC.to_string()], Start::Beginning, false)
        .await
        .expect("open");
    assert_eq!(
        (scan.assigned(), scan.behind()),
        (2, 1),
        "partition 0 is empty"
    );
    let mut read = Vec::new();
    let mut caught_up = 0;
    while let Some(next) = scan.next_scanned().await.expect("next") {
        match next {
            Scanned::Record(m) => {
                assert_eq!(caught_up, 0, "records before the end come first");
                read.push(value(&m));
            }
            Scanned::CaughtUp => caught_up += 1,
        }
    }
    assert_eq!(read, ["a", "b", "c"]);
    assert_eq!(caught_up, 1);
}

#[tokio::test]
async fn a_scan_of_an_empty_topic_is_caught_up_at_once() {
    let (_cluster, settings, _producer) = cluster();
    let mut scan = Scan::open(&settings, &[TOPIC.to_string()], Start::Beginning, false)
        .await
        .expect("open");
    assert!(matches!(
        scan.next_scanned().await.expect("next"),
        Some(Scanned::CaughtUp)
    ));
    assert!(scan.next().await.expect("next").is_none());
}

#[tokio::test]
async fn a_following_scan_from_the_end_reads_only_new_records() {
    let (_cluster, settings, producer) = cluster();
    produce(&producer, 0, "old").await;
    let mut scan = Scan::open(&settings, &[TOPIC.to_string()], Start::End, true)
        .await
        .expect("open");
    let first = tokio::time::timeout(Duration::from_secs(30), scan.next_scanned())
        .await
        .expect("caught up within the deadline")
        .expect("next");
    assert!(matches!(first, Some(Scanned::CaughtUp)), "{first:?}");
    produce(&producer, 1, "new").await;
    let message = tokio::time::timeout(Duration::from_secs(30), scan.next())
        .await
        .expect("a record within the deadline")
        .expect("next")
        .expect("following never ends");
    assert_eq!(value(&message), "new");
}

#[tokio::test]
async fn a_missing_topic_fails_the_open() {
    let (_cluster, settings, _producer) = cluster();
    let error = Scan::open(&settings, &["absent".to_string()], Start::Beginning, false)
        .await
        .expect_err("no such topic");
    assert!(error.to_string().contains("absent"), "{error}");
}
