//! Dead letters: the failed record, byte for byte, with provenance headers
//! and a typed body (`DeadLetter` in `schemas/dead_letter.avsc`).

use std::sync::Arc;

use intops_events::{Codec, DeadLetter, KafkaHeader, RecordKind, Stage, now_micros};
use rdkafka::message::{Headers, Message, OwnedMessage};

use crate::{KafkaError, Producer, Record};

/// Header names on every dead letter (values are UTF-8 text).
pub mod headers {
    /// Topic the record failed from.
    pub const ORIGINAL_TOPIC: &str = "intops.original.topic";
    /// Its partition.
    pub const ORIGINAL_PARTITION: &str = "intops.original.partition";
    /// Its offset.
    pub const ORIGINAL_OFFSET: &str = "intops.original.offset";
    /// The stage that gave up.
    pub const STAGE: &str = "intops.stage";
    /// The error class.
    pub const ERROR_CLASS: &str = "intops.error.class";
    /// How often the record has been replayed (set by replay).
    pub const REPLAY_COUNT: &str = "intops.replay.count";
    /// The replay that sent the record back (set by replay).
    pub const REPLAY_ID: &str = "intops.replay.id";
    /// The dead letter it was replayed from, `topic/partition/offset`.
    pub const REPLAY_SOURCE: &str = "intops.replay.source";
    /// What every replay header name starts with.
    pub const REPLAY_PREFIX: &str = "intops.replay.";
}

/// Why a record failed, as the stage knows it.
#[derive(Debug, Clone, Default)]
pub struct Failure {
    /// Short stable class (`decode`, `mapping`, `http_4xx`, ...).
    pub class: String,
    /// Redacted reason.
    pub message: String,
    /// Whether a replay can succeed without a fix.
    pub retryable: bool,
    /// Attempts made.
    pub attempts: i32,
    /// The event, if known.
    pub event_id: Option<String>,
    /// The flow, if known.
    pub flow_id: Option<String>,
    /// The flow's version, if known.
    pub flow_version: Option<String>,
    /// The target, if known.
    pub target_id: Option<String>,
    /// Last HTTP status.
    pub http_status: Option<i32>,
    /// Redacted response excerpt.
    pub response_excerpt: Option<String>,
}

impl Failure {
    /// A failure of `class` with `message`.
    pub fn new(class: &str, message: impl Into<String>) -> Self {
        Self {
            class: class.into(),
            message: message.into(),
            ..Self::default()
        }
    }
}

/// Writes dead letters of one stage to its topic.
#[derive(Debug, Clone)]
pub struct DeadLetterWriter {
    producer: Producer,
    codec: Arc<Codec>,
    topic: String,
    stage: Stage,
}

impl DeadLetterWriter {
    /// A writer for `stage` to `topic`.
    pub fn new(producer: Producer, codec: Arc<Codec>, topic: String, stage: Stage) -> Self {
        Self {
            producer,
            codec,
            topic,
            stage,
        }
    }

    /// Writes the dead letter and waits for the acknowledgement.
    pub async fn write(
        &self,
        original: &OwnedMessage,
        failure: &Failure,
    ) -> Result<(), KafkaError> {
        let letter = build(self.stage, original, failure);
        let value = self
            .codec
            .encode(&self.topic, RecordKind::DeadLetter, &letter)
            .await?;
        let hdrs = provenance(self.stage, original, failure);
        let hdr_refs: Vec<(&str, &[u8])> = hdrs.iter().map(|(k, v)| (*k, v.as_bytes())).collect();
        self.producer
            .send(Record {
                topic: &self.topic,
                key: original.key().unwrap_or_default(),
                value: &value,
                headers: &hdr_refs,
            })
            .await?;
        metrics::counter!(
            intops_runtime::metrics::DEAD_LETTERS,
            "stage" => self.stage.as_str(),
            "class" => failure.class.clone()
        )
        .increment(1);
        tracing::warn!(
            topic = original.topic(),
            partition = original.partition(),
            offset = original.offset(),
            class = %failure.class,
            error = %failure.message,
            "record dead-lettered"
        );
        Ok(())
    }
}

/// The provenance headers of a dead letter.
pub fn provenance(
    stage: Stage,
    original: &OwnedMessage,
    failure: &Failure,
) -> Vec<(&'static str, String)> {
    vec![
        (headers::ORIGINAL_TOPIC, original.topic().to_string()),
        (
            headers::ORIGINAL_PARTITION,
            original.partition().to_string(),
        ),
        (headers::ORIGINAL_OFFSET, original.offset().to_string()),
        (headers::STAGE, stage.to_string()),
        (headers::ERROR_CLASS, failure.class.clone()),
    ]
}

/// Builds the dead letter for `original`.
pub fn build(stage: Stage, original: &OwnedMessage, failure: &Failure) -> DeadLetter {
    let original_headers: Vec<KafkaHeader> = original
        .headers()
        .map(|hs| {
            hs.iter()
                .map(|h| KafkaHeader {
                    key: h.key.to_string(),
                    value: h.value.map(<[u8]>::to_vec),
                })
                .collect()
        })
        .unwrap_or_default();
    let replay_count = original_headers
        .iter()
        .find(|h| h.key == headers::REPLAY_COUNT)
        .and_then(|h| h.value.as_deref())
        .and_then(|v| std::str::from_utf8(v).ok())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    DeadLetter {
        stage,
        error_class: failure.class.clone(),
        error_message: failure.message.clone(),
        retryable: failure.retryable,
        attempts: failure.attempts,
        original_topic: original.topic().to_string(),
        original_partition: original.partition(),
        original_offset: original.offset(),
        original_key: original.key().map(<[u8]>::to_vec),
        original_value: original.payload().map(<[u8]>::to_vec),
        original_headers,
        failed_at: now_micros(),
        replay_count,
        event_id: failure.event_id.clone(),
        flow_id: failure.flow_id.clone(),
        flow_version: failure.flow_version.clone(),
        target_id: failure.target_id.clone(),
        http_status: failure.http_status,
        response_excerpt: failure.response_excerpt.clone(),
    }
}

#[cfg(test)]
mod tests {
    use rdkafka::Timestamp;
    use rdkafka::message::{Header, OwnedHeaders};

    use super::*;

    fn original() -> OwnedMessage {
        let headers = OwnedHeaders::new()
            .insert(Header {
                key: "traceparent",
                value: Some("00-abc".as_bytes()),
            })
            .insert(Header {
                key: headers::REPLAY_COUNT,
                value: Some("2".as_bytes()),
            });
        OwnedMessage::new(
            Some(vec![0, 0, 0, 0, 7, 1, 2]),
            Some(b"servicenow:abc".to_vec()),
            "p.events".into(),
            Timestamp::CreateTime(1),
            4,
            1234,
            Some(headers),
        )
    }

    #[test]
    fn provenance_headers_hold_what_they_name() {
        let f = Failure::new("mapping", "boom");
        let h = provenance(Stage::Transform, &original(), &f);
        let get = |k: &str| h.iter().find(|(n, _)| *n == k).map(|(_, v)| v.clone());
        assert_eq!(get(headers::ORIGINAL_PARTITION).as_deref(), Some("4"));
        assert_eq!(get(headers::ORIGINAL_OFFSET).as_deref(), Some("1234"));
        assert_eq!(get(headers::ORIGINAL_TOPIC).as_deref(), Some("p.events"));
        assert_eq!(get(headers::STAGE).as_deref(), Some("transform"));
        assert_eq!(get(headers::ERROR_CLASS).as_deref(), Some("mapping"));
    }

    #[test]
    fn dead_letter_carries_the_original_record() {
        let mut f = Failure::new("mapping", "boom");
        f.flow_id = Some("flow-a".into());
        let d = build(Stage::Transform, &original(), &f);
        assert_eq!(d.original_partition, 4);
        assert_eq!(d.original_offset, 1234);
        assert_eq!(d.original_key.as_deref(), Some(&b"servicenow:abc"[..]));
        assert_eq!(
            d.original_value.as_deref(),
            Some(&[0, 0, 0, 0, 7, 1, 2][..])
        );
        assert_eq!(d.original_headers.len(), 2);
        assert_eq!(d.original_headers[0].key, "traceparent");
        assert_eq!(d.replay_count, 2);
        assert_eq!(d.flow_id.as_deref(), Some("flow-a"));
    }
}
