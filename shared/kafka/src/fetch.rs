//! Reading one record where it is stored (`topic/partition@offset`): the
//! monitor's event page shows an event's payload and its delivery requests
//! from where the lineage index saw them, without keeping their bytes.

use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Message, OwnedMessage};
use rdkafka::{Offset, TopicPartitionList};

use crate::{KafkaError, KafkaSettings, Pace, topics};

/// The record at `offset` of `topic`'s `partition`, or `None` when the
/// broker no longer keeps it (retention, compaction) or it did not arrive
/// within `wait`.
pub async fn one(
    settings: &KafkaSettings,
    topic: &str,
    partition: i32,
    offset: i64,
    wait: Duration,
) -> Result<Option<OwnedMessage>, KafkaError> {
    let settings = settings.clone();
    let topic = topic.to_string();
    crate::blocking(move || read(&settings, &topic, partition, offset, wait)).await
}

fn read(
    settings: &KafkaSettings,
    topic: &str,
    partition: i32,
    offset: i64,
    wait: Duration,
) -> Result<Option<OwnedMessage>, KafkaError> {
    let consumer: BaseConsumer = settings
        .scan_config("earliest", Pace::Prompt)
        .create()
        .map_err(|e| KafkaError::Config(e.to_string()))?;
    let (low, high) = consumer
        .fetch_watermarks(topic, partition, topics::METADATA_TIMEOUT)
        .map_err(|e| KafkaError::Admin(format!("watermarks of {topic}: {e}")))?;
    if offset < low || offset >= high {
        return Ok(None);
    }
    let mut assignment = TopicPartitionList::new();
    assignment
        .add_partition_offset(topic, partition, Offset::Offset(offset))
        .map_err(|e| KafkaError::Admin(e.to_string()))?;
    consumer
        .assign(&assignment)
        .map_err(|e| KafkaError::Admin(e.to_string()))?;
    let deadline = Instant::now() + wait;
    while Instant::now() < deadline {
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(m)) if m.offset() == offset => return Ok(Some(m.detach())),
            // Compaction removed it: the next record is already later.
            Some(Ok(m)) if m.offset() > offset => return Ok(None),
            Some(Ok(_)) | None => {}
            Some(Err(e)) => return Err(KafkaError::Admin(format!("reading {topic}: {e}"))),
        }
    }
    Ok(None)
}
