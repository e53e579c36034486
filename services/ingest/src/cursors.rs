//! Polling positions, kept in the compacted `<prefix>.ingest.cursors`
//! topic (key: source id) so a restart or another replica resumes where
//! the last run left off, with no local state.

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use intops_events::{IngestCursor, RecordKind, now_micros};
use intops_kafka::{KafkaError, Message, ServiceContext};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Offset, TopicPartitionList};

/// Where a source's polling stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Position {
    /// Highest cursor value acknowledged.
    pub cursor: String,
    /// Event ids captured at exactly that cursor value.
    pub seen: BTreeSet<String>,
}

impl Position {
    pub(crate) fn new(cursor: String) -> Self {
        Self {
            cursor,
            seen: BTreeSet::new(),
        }
    }

    /// Whether a record at `cursor` with `event_id` was captured already.
    pub(crate) fn covers(&self, cursor: &str, event_id: &str) -> bool {
        match compare(cursor, &self.cursor) {
            std::cmp::Ordering::Less => true,
            std::cmp::Ordering::Equal => self.seen.contains(event_id),
            std::cmp::Ordering::Greater => false,
        }
    }

    /// Records a captured record.
    pub(crate) fn advance(&mut self, cursor: &str, event_id: &str) {
        match compare(cursor, &self.cursor) {
            std::cmp::Ordering::Greater => {
                self.cursor = cursor.to_string();
                self.seen = BTreeSet::from([event_id.to_string()]);
            }
            std::cmp::Ordering::Equal => {
                self.seen.insert(event_id.to_string());
            }
            std::cmp::Ordering::Less => {}
        }
    }
}

/// Numbers compare as numbers, everything else as text (ISO 8601 times
/// sort correctly as text).
fn compare(a: &str, b: &str) -> std::cmp::Ordering {
    match (a.parse::<f64>(), b.parse::<f64>()) {
        (Ok(x), Ok(y)) => x.partial_cmp(&y).unwrap_or(std::cmp::Ordering::Equal),
        _ => a.cmp(b),
    }
}

/// Reads every saved position (the latest per source).
pub(crate) async fn load(ctx: &ServiceContext) -> Result<HashMap<String, Position>, KafkaError> {
    let topic = ctx.topics.ingest_cursors();
    let kafka = ctx.kafka.clone();
    let group = ctx.topics.group("ingest.cursors");
    let values = tokio::task::spawn_blocking(move || read_to_end(&kafka, &group, &topic))
        .await
        .map_err(|e| KafkaError::Fatal(e.to_string()))??;
    let mut out = HashMap::new();
    for value in values {
        let saved: IngestCursor = ctx.codec.decode(&value).await?;
        let position = Position {
            cursor: saved.cursor,
            seen: saved.seen_at_cursor.into_iter().collect(),
        };
        out.insert(saved.source_id, position);
    }
    Ok(out)
}

fn read_to_end(
    kafka: &intops_kafka::KafkaSettings,
    group: &str,
    topic: &str,
) -> Result<Vec<Vec<u8>>, KafkaError> {
    let consumer: BaseConsumer = kafka
        .consumer_config(group)
        .create()
        .map_err(|e| KafkaError::Config(e.to_string()))?;
    let mut assignment = TopicPartitionList::new();
    let mut remaining = HashMap::new();
    for p in intops_kafka::topics::partitions(kafka, topic)? {
        let (low, high) = consumer
            .fetch_watermarks(topic, p, Duration::from_secs(10))
            .map_err(|e| KafkaError::Admin(e.to_string()))?;
        if high > low {
            remaining.insert(p, high);
            assignment
                .add_partition_offset(topic, p, Offset::Beginning)
                .map_err(|e| KafkaError::Admin(e.to_string()))?;
        }
    }
    let mut values = Vec::new();
    if remaining.is_empty() {
        return Ok(values);
    }
    consumer
        .assign(&assignment)
        .map_err(|e| KafkaError::Admin(e.to_string()))?;
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while !remaining.is_empty() {
        if std::time::Instant::now() > deadline {
            return Err(KafkaError::Unavailable(format!(
                "cannot read {topic} to its end"
            )));
        }
        let Some(m) = consumer.poll(Duration::from_millis(200)) else {
            continue;
        };
        let m = m.map_err(|e| KafkaError::Unavailable(e.to_string()))?;
        if let Some(v) = m.payload() {
            values.push(v.to_vec());
        }
        if remaining
            .get(&m.partition())
            .is_some_and(|high| m.offset() + 1 >= *high)
        {
            remaining.remove(&m.partition());
        }
    }
    Ok(values)
}

/// Saves a source's position and waits for the acknowledgement.
pub(crate) async fn save(
    ctx: &ServiceContext,
    source_id: &str,
    position: &Position,
) -> Result<(), KafkaError> {
    let record = IngestCursor {
        source_id: source_id.to_string(),
        cursor: position.cursor.clone(),
        seen_at_cursor: position.seen.iter().cloned().collect(),
        updated_at: now_micros(),
    };
    ctx.publish(
        &ctx.topics.ingest_cursors(),
        RecordKind::IngestCursor,
        source_id.as_bytes(),
        &record,
    )
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlapping_windows_skip_what_was_captured() {
        let mut p = Position::new("2026-11-28T08:00:00Z".into());
        assert!(p.covers("2026-11-28T07:59:59Z", "x"));
        assert!(!p.covers("2026-11-28T08:00:00Z", "a"));
        p.advance("2026-11-28T08:00:00Z", "a");
        assert!(p.covers("2026-11-28T08:00:00Z", "a"));
        assert!(
            !p.covers("2026-11-28T08:00:00Z", "b"),
            "same time, another record"
        );
        p.advance("2026-11-28T08:01:00Z", "c");
        assert_eq!(p.cursor, "2026-11-28T08:01:00Z");
        assert_eq!(p.seen.len(), 1);
        assert!(
            p.covers("2026-11-28T08:00:00Z", "b"),
            "older than the cursor"
        );
    }

    #[test]
    fn numeric_cursors_compare_as_numbers() {
        let mut p = Position::new("9".into());
        p.advance("10", "a");
        assert_eq!(p.cursor, "10");
    }
}
