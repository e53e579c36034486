//! Consumer-group helpers for tests that kill a member.
//!
//! The local broker (tansu 0.6) does not evict a member whose session
//! expired while the group is stable: a member that joins before a killed
//! member's session ran out gets no partitions, and the group stays that
//! way. Joining after the session expired works. So a test that restarts a
//! killed service first waits, with a probe member, until a join gets
//! every partition — on Apache Kafka that happens by itself within the
//! session timeout.

use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

use crate::{poll_until, stack};

/// Waits until a fresh member of `group` is assigned all `partitions` of
/// `topic` (the killed member is gone), then leaves the group. The probe
/// commits nothing.
pub async fn wait_until_killed_member_is_gone(
    group: &str,
    topic: &str,
    partitions: usize,
    deadline: Duration,
) {
    let (group, topic) = (group.to_string(), topic.to_string());
    poll_until("the killed member to leave the group", deadline, || {
        let (group, topic) = (group.clone(), topic.clone());
        async move {
            tokio::task::spawn_blocking(move || probe(&group, &topic, partitions))
                .await
                .ok()
                .flatten()
        }
    })
    .await;
}

fn probe(group: &str, topic: &str, partitions: usize) -> Option<()> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", stack::bootstrap())
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("session.timeout.ms", "6000")
        .set("heartbeat.interval.ms", "1000")
        .create()
        .ok()?;
    consumer.subscribe(&[topic]).ok()?;
    let started = Instant::now();
    let mut assigned = 0;
    while started.elapsed() < Duration::from_secs(8) && assigned < partitions {
        // Records polled here are dropped: nothing is stored or committed.
        let _ = consumer.poll(Duration::from_millis(100));
        assigned = consumer.assignment().map(|a| a.count()).unwrap_or(0);
    }
    consumer.unsubscribe();
    (assigned == partitions).then_some(())
}

/// The offset `group` committed on each of `topic`'s first `partitions`
/// partitions (`None` where it committed nothing), read without joining.
pub fn committed(group: &str, topic: &str, partitions: i32) -> Vec<Option<i64>> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", stack::bootstrap())
        .set("group.id", group)
        .create()
        .expect("consumer");
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition(topic, p);
    }
    let committed = consumer
        .committed_offsets(tpl, Duration::from_secs(10))
        .expect("committed offsets");
    (0..partitions)
        .map(|p| match committed.find_partition(topic, p)?.offset() {
            Offset::Offset(o) => Some(o),
            _ => None,
        })
        .collect()
}

/// The records `group` has committed on `topic`'s first `partitions`
/// partitions: the sum of its committed offsets (nothing committed: 0).
pub fn committed_records(group: &str, topic: &str, partitions: i32) -> usize {
    committed(group, topic, partitions)
        .into_iter()
        .map(|at| at.unwrap_or(0).max(0) as usize)
        .sum()
}

/// [`committed`] beside each partition's end offset:
/// `(partition, committed, end)`.
pub fn committed_and_ends(
    group: &str,
    topic: &str,
    partitions: i32,
) -> Vec<(i32, Option<i64>, i64)> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", stack::bootstrap())
        .create()
        .expect("consumer");
    committed(group, topic, partitions)
        .into_iter()
        .zip(0..)
        .map(|(at, p)| {
            let (_, end) = consumer
                .fetch_watermarks(topic, p, Duration::from_secs(10))
                .expect("watermarks");
            (p, at, end)
        })
        .collect()
}
