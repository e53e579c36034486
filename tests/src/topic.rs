//! Reading a topic from its beginning, the way an analyst's tool would:
//! no consumer group, nothing committed.

use std::time::{Duration, Instant};

use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Message, OwnedMessage};
use rdkafka::{Offset, TopicPartitionList};

use intops_kafka::topics;

use crate::stack;

/// Reads `topic` of the local stack from the beginning until `count`
/// records arrived; panics naming the topic once `deadline` passed.
pub fn read(topic: &str, count: usize, deadline: Duration) -> Vec<OwnedMessage> {
    read_from(&stack::bootstrap(), topic, count, deadline)
}

/// [`read`] from the broker at `bootstrap`.
pub fn read_from(
    bootstrap: &str,
    topic: &str,
    count: usize,
    deadline: Duration,
) -> Vec<OwnedMessage> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("broker.address.family", "v4")
        .set("group.id", "intops-tests-reader")
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    let mut assignment = TopicPartitionList::new();
    for p in topics::partitions(&consumer, topic, Duration::from_secs(10)).expect("metadata") {
        assignment
            .add_partition_offset(topic, p, Offset::Beginning)
            .expect("partition");
    }
    consumer.assign(&assignment).expect("assign");
    let end = Instant::now() + deadline;
    let mut out = Vec::new();
    while out.len() < count {
        assert!(
            Instant::now() < end,
            "timed out reading {count} record(s) from {topic}; got {}",
            out.len()
        );
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(200)) {
            out.push(m.detach());
        }
    }
    out
}

/// The number of partitions of `topic` on the local stack; `None` until it
/// exists.
pub fn partitions(topic: &str) -> Option<i32> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", stack::bootstrap())
        .create()
        .ok()?;
    let n = topics::partitions(&consumer, topic, Duration::from_secs(10))
        .ok()?
        .len();
    (n > 0).then_some(n as i32)
}

/// A header's value as text.
pub fn header(message: &OwnedMessage, name: &str) -> Option<String> {
    use rdkafka::message::Headers;
    message.headers().and_then(|hs| {
        hs.iter()
            .find(|h| h.key == name)
            .and_then(|h| h.value.map(|v| String::from_utf8_lossy(v).into_owned()))
    })
}

/// Records currently in `topic` of the broker at `bootstrap` (sum of high
/// minus low watermarks); 0 when the topic does not exist.
pub fn count_at(bootstrap: &str, topic: &str) -> i64 {
    let Ok(consumer) = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("broker.address.family", "v4")
        .create::<BaseConsumer>()
    else {
        return 0;
    };
    let Ok(partitions) = topics::partitions(&consumer, topic, Duration::from_secs(10)) else {
        return 0;
    };
    partitions
        .into_iter()
        .filter_map(|p| {
            consumer
                .fetch_watermarks(topic, p, Duration::from_secs(10))
                .ok()
        })
        .map(|(low, high)| high - low)
        .sum()
}

/// [`count_at`] on the local stack.
pub fn count(topic: &str) -> i64 {
    count_at(&stack::bootstrap(), topic)
}
