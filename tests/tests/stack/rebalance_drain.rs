//! Rebalance draining on the real broker: a second member joins the group
//! while records of both partitions are still being processed by the
//! first; the first gives its partitions up only after those records
//! finished and their offsets were committed, so the new owner repeats
//! nothing. (rdkafka's MockCluster cannot show this: it refuses offset
//! commits while a rebalance is in progress, where Kafka and tansu accept
//! them from the current generation.)

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use intops_events::Stage;
use intops_kafka::topics::TopicSpec;
use intops_kafka::{
    ConsumeOptions, DeadLetterWriter, Handled, KafkaSettings, ProcessError, Producer, Record,
    consume, new_consumer,
};
use intops_tests::{poll_until, stack};
use rdkafka::Message;
use rdkafka::consumer::{Consumer, StreamConsumer};
use tokio_util::sync::CancellationToken;

const RECORDS: usize = 12;

fn options(settings: &KafkaSettings, shutdown: CancellationToken) -> ConsumeOptions {
    let codec = stack::codec();
    ConsumeOptions {
        stage: "test",
        dead_letters: DeadLetterWriter::new(
            Producer::new(settings).expect("producer"),
            Arc::new(codec),
            "dlq".into(),
            Stage::Transform,
        ),
        cap: Arc::new(intops_kafka::DeadLetterCap::disabled("test")),
        shutdown,
        min_backoff: Duration::from_millis(10),
        max_backoff: Duration::from_millis(50),
        concurrency: 4,
    }
}

/// Polls a condition of this process's state with the harness's deadline.
async fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    poll_until(what, Duration::from_secs(60), || {
        let met = done();
        async move { met.then_some(()) }
    })
    .await;
}

/// Cancels its tokens when the test ends, passing or failing, so no
/// consumer task outlives it.
struct StopOnDrop(Vec<CancellationToken>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        for t in &self.0 {
            t.cancel();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rebalance_commits_in_flight_records_before_giving_partitions_up() {
    let _turn = intops_tests::serial::beside_others().await;
    let prefix = stack::random_prefix("drain");
    let topic = format!("{prefix}.records");
    let group = format!("{prefix}.group");
    let settings = KafkaSettings::new(stack::bootstrap(), Default::default()).expect("settings");
    intops_kafka::topics::ensure(&settings, &[TopicSpec::new(&topic, 2, 1)])
        .await
        .expect("topic");
    let producer = Producer::new(&settings).expect("producer");
    let mut ends = vec![None, None];
    for i in 0..RECORDS {
        // Fixed keys: the same partitions every run, both of them used.
        let key = format!("k{i}");
        let (partition, offset) = producer
            .send(Record {
                topic: &topic,
                key: key.as_bytes(),
                value: b"v",
                headers: &[],
            })
            .await
            .expect("produce");
        ends[partition as usize] = Some(offset + 1);
    }
    assert!(
        ends.iter().all(Option::is_some),
        "both partitions hold records: {ends:?}"
    );

    let shutdown = CancellationToken::new();
    let release = CancellationToken::new();
    let joiner_stop = CancellationToken::new();
    let _stop = StopOnDrop(vec![shutdown.clone(), release.clone(), joiner_stop.clone()]);

    // The first member holds every record until the test releases them.
    let first = Arc::new(new_consumer(&settings, &group, &[&topic]).expect("consumer"));
    let started: Arc<Mutex<BTreeSet<(i32, i64)>>> = Arc::default();
    let run = {
        let first = first.clone();
        let started = started.clone();
        let release = release.clone();
        let opts = options(&settings, shutdown.clone());
        tokio::spawn(async move {
            consume(&first, &opts, move |message| {
                started
                    .lock()
                    .expect("lock")
                    .insert((message.partition(), message.offset()));
                let release = release.clone();
                // Acknowledged in the background, like delivery's outcomes:
                // the lanes move on, the offsets wait.
                async move {
                    Ok::<_, ProcessError>(Handled::Acknowledging(Box::pin(async move {
                        release.cancelled().await;
                        Ok(true)
                    })))
                }
            })
            .await
        })
    };
    wait_for("every record in flight", || {
        started.lock().expect("lock").len() == RECORDS
    })
    .await;
    assert_eq!(
        intops_tests::group::committed(&group, &topic, 2),
        vec![None, None]
    );

    // A second member joins: the group takes partitions from the first.
    let joiner: StreamConsumer = settings.consumer_config(&group).create().expect("joiner");
    joiner.subscribe(&[&topic]).expect("subscribe");
    let received: Arc<Mutex<Vec<(i32, i64)>>> = Arc::default();
    let joined = {
        let received = received.clone();
        let stop = joiner_stop.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    () = stop.cancelled() => return,
                    m = joiner.recv() => if let Ok(m) = m {
                        received.lock().expect("lock").push((m.partition(), m.offset()));
                    },
                }
            }
        })
    };

    // The first member's revocation waits for its in-flight records.
    wait_for("the rebalance to start draining", || {
        first.context().drains() > 0
    })
    .await;
    release.cancel();
    wait_for("the drained records' offsets committed", || {
        intops_tests::group::committed(&group, &topic, 2) == ends
    })
    .await;
    assert!(
        received.lock().expect("lock").is_empty(),
        "the new owner repeated records the first member finished: {:?}",
        received.lock().expect("lock")
    );

    shutdown.cancel();
    joiner_stop.cancel();
    run.await.expect("join").expect("consume");
    joined.await.expect("join");
}
