//! Reading topics the way an operator's tool does: assigned partitions, no
//! consumer group membership, nothing committed. A scan either stops at the
//! end the topics had when it started, or follows new records.

use std::collections::HashMap;
use std::time::Duration;

use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::{Message, OwnedMessage};
use rdkafka::{Offset, TopicPartitionList};

use crate::{KafkaError, KafkaSettings, topics};

/// Where a scan starts in every partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Start {
    /// The oldest record still kept.
    Beginning,
    /// After the newest record (only records written from now on).
    End,
}

/// A read over every partition of some topics.
pub struct Scan {
    consumer: StreamConsumer,
    /// Partitions not read up to their end-at-start yet, with that end.
    pending: HashMap<(String, i32), i64>,
    follow: bool,
}

impl std::fmt::Debug for Scan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scan")
            .field("pending", &self.pending.len())
            .field("follow", &self.follow)
            .finish_non_exhaustive()
    }
}

impl Scan {
    /// Opens a scan of `topics` from `start`. Without `follow`, the scan
    /// ends once every partition was read up to the end it had now.
    pub fn open(
        settings: &KafkaSettings,
        topic_names: &[String],
        start: Start,
        follow: bool,
    ) -> Result<Self, KafkaError> {
        let mut config = settings.admin_config();
        config
            .set("group.id", format!("intops-scan-{}", uuid::Uuid::now_v7()))
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("fetch.wait.max.ms", "50");
        let consumer: StreamConsumer = config
            .create()
            .map_err(|e| KafkaError::Config(e.to_string()))?;
        let mut assignment = TopicPartitionList::new();
        let mut pending = HashMap::new();
        for topic in topic_names {
            for p in topics::partitions(settings, topic)? {
                let (low, high) = consumer
                    .fetch_watermarks(topic, p, Duration::from_secs(10))
                    .map_err(|e| KafkaError::Admin(format!("watermarks of {topic}: {e}")))?;
                let offset = match start {
                    Start::Beginning => Offset::Offset(low),
                    Start::End => Offset::Offset(high),
                };
                assignment
                    .add_partition_offset(topic, p, offset)
                    .map_err(|e| KafkaError::Admin(e.to_string()))?;
                if start == Start::Beginning && high > low {
                    pending.insert((topic.clone(), p), high);
                }
            }
        }
        consumer
            .assign(&assignment)
            .map_err(|e| KafkaError::Admin(e.to_string()))?;
        Ok(Self {
            consumer,
            pending,
            follow,
        })
    }

    /// The next record, or `None` once the scan reached its end (never
    /// when following).
    pub async fn next(&mut self) -> Result<Option<OwnedMessage>, KafkaError> {
        loop {
            if !self.follow && self.pending.is_empty() {
                return Ok(None);
            }
            let received =
                tokio::time::timeout(Duration::from_millis(500), self.consumer.recv()).await;
            let message = match received {
                Err(_) => {
                    self.settle_by_position();
                    continue;
                }
                Ok(Err(e)) => {
                    tracing::debug!(error = %e, "scan fetch error");
                    continue;
                }
                Ok(Ok(m)) => m.detach(),
            };
            let key = (message.topic().to_string(), message.partition());
            if let Some(end) = self.pending.get(&key) {
                if message.offset() >= *end {
                    // Written after the scan started: past its end.
                    self.pending.remove(&key);
                    if !self.follow {
                        continue;
                    }
                } else if message.offset() + 1 >= *end {
                    self.pending.remove(&key);
                }
            } else if !self.follow {
                continue;
            }
            return Ok(Some(message));
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
                let key = (e.topic().to_string(), e.partition());
                if self.pending.get(&key).is_some_and(|end| at >= *end) {
                    self.pending.remove(&key);
                }
            }
        }
    }
}
