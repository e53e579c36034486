//! Polling positions, kept in the compacted `<prefix>.ingest.cursors`
//! topic (key: source id) so a restart or another replica resumes where
//! the last run left off, with no local state.

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use intops_events::{IngestCursor, RecordKind, now_micros};
use intops_kafka::{KafkaError, Message, Scan, ServiceContext, Start};

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

/// How long reading the saved positions may take before the run fails.
const LOAD_TIMEOUT: Duration = Duration::from_secs(60);

/// Reads every saved position (the latest per source).
pub(crate) async fn load(ctx: &ServiceContext) -> Result<HashMap<String, Position>, KafkaError> {
    let topic = ctx.topics.ingest_cursors();
    let read = async {
        let mut scan = Scan::open(
            &ctx.kafka,
            std::slice::from_ref(&topic),
            Start::Beginning,
            false,
        )
        .await?;
        let mut out = HashMap::new();
        while let Some(message) = scan.next().await? {
            let Some(value) = message.payload() else {
                continue;
            };
            let saved: IngestCursor = ctx.codec.decode(value).await?;
            let position = Position {
                cursor: saved.cursor,
                seen: saved.seen_at_cursor.into_iter().collect(),
            };
            out.insert(saved.source_id, position);
        }
        Ok(out)
    };
    tokio::time::timeout(LOAD_TIMEOUT, read)
        .await
        .map_err(|_| KafkaError::Unavailable(format!("cannot read {topic} to its end")))?
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
