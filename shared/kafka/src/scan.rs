//! Reading topics without a consumer group: assigned partitions, no group
//! membership, nothing committed. The operator's tools, the monitor's
//! reader, delivery's control commands and ingest's cursors all read this
//! way. A scan either stops at the end the topics had when it opened, or
//! follows new records; either way it says once when it has read up to
//! that end ([`Scanned::CaughtUp`]).
//!
//! A partition's end is its high watermark at open. The record just before
//! it may never come: compaction removed it, or it is a transaction
//! marker. So a partition also counts as read to its end once the
//! consumer's fetch position reached the end, which the scan checks
//! whenever no record came for a while.

use std::collections::HashMap;
use std::time::Duration;

use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::{Message, OwnedMessage};
use rdkafka::{Offset, TopicPartitionList};

use crate::{KafkaError, KafkaSettings, Pace, topics};

/// Where a scan starts in every partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Start {
    /// The oldest record still kept.
    Beginning,
    /// After the newest record (only records written from now on).
    End,
}

/// What a scan read next.
#[derive(Debug)]
pub enum Scanned {
    /// A record.
    Record(OwnedMessage),
    /// Every partition was read up to the end it had when the scan opened
    /// (right away when there was nothing to read). Comes exactly once.
    CaughtUp,
}

/// How long the scan waits for a record before it checks the fetch
/// positions (see the module documentation).
const QUIET: Duration = Duration::from_millis(500);

/// A read over every partition of some topics.
pub struct Scan {
    consumer: StreamConsumer,
    ends: Ends,
    assigned: usize,
    follow: bool,
    announced: bool,
}

impl std::fmt::Debug for Scan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scan")
            .field("assigned", &self.assigned)
            .field("behind", &self.ends.behind())
            .field("follow", &self.follow)
            .finish_non_exhaustive()
    }
}

impl Scan {
    /// Opens a scan of `topics` from `start`, at [`Pace::Prompt`]. Without
    /// `follow`, the scan ends once every partition was read up to the end
    /// it had now. The metadata and watermark look-ups run off the async
    /// workers.
    pub async fn open(
        settings: &KafkaSettings,
        topic_names: &[String],
        start: Start,
        follow: bool,
    ) -> Result<Self, KafkaError> {
        Self::open_paced(settings, topic_names, start, follow, Pace::Prompt).await
    }

    /// [`Scan::open`] with the fetch wait of `pace`.
    pub async fn open_paced(
        settings: &KafkaSettings,
        topic_names: &[String],
        start: Start,
        follow: bool,
        pace: Pace,
    ) -> Result<Self, KafkaError> {
        let settings = settings.clone();
        let topic_names = topic_names.to_vec();
        crate::blocking(move || Self::assign(&settings, &topic_names, start, follow, pace)).await
    }

    fn assign(
        settings: &KafkaSettings,
        topic_names: &[String],
        start: Start,
        follow: bool,
        pace: Pace,
    ) -> Result<Self, KafkaError> {
        // Records the broker no longer has (retention) are skipped
        // forwards, never past what a scan from the beginning can read.
        let reset = match start {
            Start::Beginning => "earliest",
            Start::End => "latest",
        };
        let config = settings.scan_config(reset, pace);
        let consumer: StreamConsumer = config
            .create()
            .map_err(|e| KafkaError::Config(e.to_string()))?;
        let mut assignment = TopicPartitionList::new();
        let mut ends = Ends::default();
        for topic in topic_names {
            let partitions = topics::partitions(&consumer, topic, topics::METADATA_TIMEOUT)?;
            if partitions.is_empty() {
                return Err(KafkaError::Admin(format!(
                    "topic {topic} has no partitions"
                )));
            }
            for p in partitions {
                let (low, high) = consumer
                    .fetch_watermarks(topic, p, topics::METADATA_TIMEOUT)
                    .map_err(|e| KafkaError::Admin(format!("watermarks of {topic}: {e}")))?;
                let offset = match start {
                    Start::Beginning => Offset::Offset(low),
                    Start::End => Offset::Offset(high),
                };
                assignment
                    .add_partition_offset(topic, p, offset)
                    .map_err(|e| KafkaError::Admin(e.to_string()))?;
                if start == Start::Beginning && high > low {
                    ends.track(topic, p, high);
                }
            }
        }
        consumer
            .assign(&assignment)
            .map_err(|e| KafkaError::Admin(e.to_string()))?;
        Ok(Self {
            consumer,
            ends,
            assigned: assignment.count(),
            follow,
            announced: false,
        })
    }

    /// Partitions assigned.
    pub fn assigned(&self) -> usize {
        self.assigned
    }

    /// Partitions not read up to their end-at-open yet.
    pub fn behind(&self) -> usize {
        self.ends.behind()
    }

    /// The next record, or `None` once the scan reached its end (never
    /// when following).
    pub async fn next(&mut self) -> Result<Option<OwnedMessage>, KafkaError> {
        loop {
            match self.next_scanned().await? {
                Some(Scanned::Record(message)) => return Ok(Some(message)),
                Some(Scanned::CaughtUp) => {}
                None => return Ok(None),
            }
        }
    }

    /// The next record or the moment the scan caught up, or `None` once
    /// the scan reached its end (never when following).
    pub async fn next_scanned(&mut self) -> Result<Option<Scanned>, KafkaError> {
        loop {
            if self.ends.behind() == 0 {
                if !self.announced {
                    self.announced = true;
                    return Ok(Some(Scanned::CaughtUp));
                }
                if !self.follow {
                    return Ok(None);
                }
            }
            let message = match tokio::time::timeout(QUIET, self.consumer.recv()).await {
                Err(_) => {
                    self.settle_by_position();
                    continue;
                }
                Ok(Err(e)) => {
                    if self.follow {
                        tracing::warn!(error = %e, "scan fetch error");
                    } else {
                        tracing::debug!(error = %e, "scan fetch error");
                    }
                    continue;
                }
                Ok(Ok(m)) => m.detach(),
            };
            let before_end = self
                .ends
                .read(message.topic(), message.partition(), message.offset());
            if before_end || self.follow {
                return Ok(Some(Scanned::Record(message)));
            }
            // Written after the scan opened: past its end.
        }
    }

    /// A partition whose last records were compacted away never yields the
    /// record just before its end: its fetch position tells instead.
    fn settle_by_position(&mut self) {
        let Ok(positions) = self.consumer.position() else {
            return;
        };
        for e in positions.elements() {
            if let Offset::Offset(at) = e.offset() {
                self.ends.reached(e.topic(), e.partition(), at);
            }
        }
    }
}

/// The partitions not read up to their end-at-open yet, with that end.
#[derive(Debug, Default)]
struct Ends(HashMap<(String, i32), i64>);

impl Ends {
    /// Partition `(topic, partition)` ends at `end` (exclusive).
    fn track(&mut self, topic: &str, partition: i32, end: i64) {
        self.0.insert((topic.to_string(), partition), end);
    }

    fn behind(&self) -> usize {
        self.0.len()
    }

    /// A record was read; whether it lies before its partition's end.
    fn read(&mut self, topic: &str, partition: i32, offset: i64) -> bool {
        if self.0.is_empty() {
            return false; // caught up: no key to build per record
        }
        let key = (topic.to_string(), partition);
        let Some(end) = self.0.get(&key).copied() else {
            return false;
        };
        if offset + 1 >= end {
            self.0.remove(&key);
        }
        offset < end
    }

    /// The fetch position of `(topic, partition)` is `at`: past its end,
    /// the partition was read to its end even if its last records never
    /// came.
    fn reached(&mut self, topic: &str, partition: i32, at: i64) {
        let key = (topic.to_string(), partition);
        if self.0.get(&key).is_some_and(|end| at >= *end) {
            self.0.remove(&key);
        }
    }
}

#[cfg(test)]
#[path = "scan_mock_cluster_tests.rs"]
mod mock_cluster_tests;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_partition_ends_with_the_record_before_its_end() {
        let mut ends = Ends::default();
        ends.track("t", 0, 3);
        ends.track("t", 1, 1);
        assert!(ends.read("t", 0, 0));
        assert!(ends.read("t", 0, 1));
        assert_eq!(ends.behind(), 2);
        assert!(ends.read("t", 1, 0));
        assert!(ends.read("t", 0, 2));
        assert_eq!(ends.behind(), 0);
        // Written after the scan opened.
        assert!(!ends.read("t", 0, 3));
    }

    #[test]
    fn a_record_past_the_end_also_ends_its_partition() {
        // The record before the end was never seen (compacted away), but
        // a newer one came while following.
        let mut ends = Ends::default();
        ends.track("t", 0, 5);
        assert!(ends.read("t", 0, 2));
        assert!(!ends.read("t", 0, 7));
        assert_eq!(ends.behind(), 0);
    }

    /// A compacted topic whose last records were compacted away: offsets 3
    /// and 4 below the end 5 never come, so only the fetch position (5,
    /// the end of the last batch) says the partition was read.
    #[test]
    fn a_compacted_tail_ends_by_the_fetch_position() {
        let mut ends = Ends::default();
        ends.track("t", 0, 5);
        for offset in 0..3 {
            assert!(ends.read("t", 0, offset));
        }
        ends.reached("t", 0, 3);
        assert_eq!(ends.behind(), 1, "position before the end");
        ends.reached("t", 1, 9);
        assert_eq!(ends.behind(), 1, "another partition");
        ends.reached("t", 0, 5);
        assert_eq!(ends.behind(), 0);
    }
}
