//! A consumer group's committed offsets against its topic's end, read
//! without joining the group: what a killed member may process again, and
//! whether a stage is moving.

use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

/// Per partition of `topic`: (committed offset or the partition's start
/// when nothing is committed, end offset). `None` while the broker does
/// not answer.
pub fn positions(bootstrap: &str, group: &str, topic: &str) -> Option<Vec<(i64, i64)>> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("broker.address.family", "v4")
        .set("group.id", group)
        .create()
        .ok()?;
    let timeout = Duration::from_secs(5);
    let partitions = intops_kafka::topics::partitions(&consumer, topic, timeout).ok()?;
    if partitions.is_empty() {
        return None;
    }
    let mut tpl = TopicPartitionList::new();
    for p in &partitions {
        tpl.add_partition(topic, *p);
    }
    let committed = consumer.committed_offsets(tpl, timeout).ok()?;
    partitions
        .iter()
        .map(|&p| {
            let (low, high) = consumer.fetch_watermarks(topic, p, timeout).ok()?;
            let at = match committed.find_partition(topic, p)?.offset() {
                Offset::Offset(o) => o,
                _ => low,
            };
            Some((at, high))
        })
        .collect()
}

/// Records of `topic` past `group`'s committed offsets (the most a member
/// killed now can have read and not committed).
pub fn uncommitted(bootstrap: &str, group: &str, topic: &str) -> Option<u64> {
    positions(bootstrap, group, topic).map(|ps| {
        ps.iter()
            .map(|(at, end)| u64::try_from(end - at).unwrap_or(0))
            .sum()
    })
}

/// Whether a stage works again since `before` (its positions when the
/// fault hit): every partition either committed past where it was then, or
/// has nothing left to do. A partition held by a dead member never does.
pub fn progressed(before: &[(i64, i64)], now: &[(i64, i64)]) -> bool {
    !now.is_empty()
        && now.iter().enumerate().all(|(p, &(at, end))| {
            let was = before.get(p).map_or(-1, |&(was, _)| was);
            at > was || at >= end
        })
}

#[cfg(test)]
mod tests {
    use super::progressed;

    #[test]
    fn every_partition_with_work_must_move() {
        let before = [(10, 20), (5, 9), (7, 7)];
        // Partition 1 still at 5 with work left: not yet.
        assert!(!progressed(&before, &[(12, 25), (5, 9), (7, 7)]));
        assert!(progressed(&before, &[(12, 25), (6, 9), (7, 7)]));
        // Caught up counts as working; new work left untouched does not.
        assert!(progressed(&before, &[(25, 25), (9, 9), (7, 7)]));
        assert!(!progressed(&before, &[(25, 25), (9, 9), (7, 8)]));
        assert!(!progressed(&before, &[]), "no answer is no progress");
    }
}
