//! Dead letters: the failed record, byte for byte, with provenance headers
//! and a typed body (`DeadLetter` in `schemas/dead_letter.avsc`).
//!
//! A dead letter must always fit the record limit ([`MAX_RECORD_BYTES`]),
//! or a record that failed for being large would stop the stage a second
//! time: error texts are cut to [`MAX_ERROR_TEXT_BYTES`], and when the
//! original record does not fit beside them the dead letter is written
//! *slim*: without the original's value and headers, which stay readable
//! at the topic, partition and offset the dead letter names (header
//! [`headers::ORIGINAL_OMITTED`]).

use std::sync::Arc;

use intops_events::{Codec, DeadLetter, KafkaHeader, RecordKind, Stage, now_micros};
use rdkafka::message::{Headers, Message, OwnedMessage};

use crate::{KafkaError, MAX_RECORD_BYTES, Producer, Record};

/// The longest error message or response excerpt a dead letter holds
/// (bytes, cut at a character boundary).
pub const MAX_ERROR_TEXT_BYTES: usize = 4096;

/// Room left under [`MAX_RECORD_BYTES`] for what librdkafka adds to a
/// record (its framing and the headers' names).
const RECORD_OVERHEAD: usize = 4096;

/// The largest key a slim dead letter keeps (a longer one is left out).
const MAX_SLIM_KEY_BYTES: usize = 1024;

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
    /// Set on a slim dead letter: what of the original it leaves out
    /// (`value,headers`, and `key` when that was too long too); read the
    /// original at the topic, partition and offset above.
    pub const ORIGINAL_OMITTED: &str = "intops.original.omitted";
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
    /// The tenant of the record's source or flow.
    pub tenant: Option<String>,
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
    /// Unit tests of the consumer loop keep dead letters here instead.
    #[cfg(test)]
    memory: Option<Written>,
}

/// Dead letters kept in memory by unit tests: the original's key and the
/// failure's class.
#[cfg(test)]
pub(crate) type Written = Arc<std::sync::Mutex<Vec<(Vec<u8>, String)>>>;

impl DeadLetterWriter {
    /// A writer for `stage` to `topic`.
    pub fn new(producer: Producer, codec: Arc<Codec>, topic: String, stage: Stage) -> Self {
        Self {
            producer,
            codec,
            topic,
            stage,
            #[cfg(test)]
            memory: None,
        }
    }

    /// This writer keeping its dead letters in memory (unit tests).
    #[cfg(test)]
    pub(crate) fn in_memory(mut self) -> (Self, Written) {
        let written = Written::default();
        self.memory = Some(written.clone());
        (self, written)
    }

    /// Writes the dead letter and waits for the acknowledgement; slim
    /// when the full one would not fit (or the broker refused it as too
    /// large).
    pub async fn write(
        &self,
        original: &OwnedMessage,
        failure: &Failure,
    ) -> Result<(), KafkaError> {
        #[cfg(test)]
        if let Some(memory) = &self.memory {
            if let Ok(mut m) = memory.lock() {
                m.push((
                    original.key().unwrap_or_default().to_vec(),
                    failure.class.clone(),
                ));
            }
            return Ok(());
        }
        let failure = failure.bounded();
        let full = build(self.stage, original, &failure);
        let value = self
            .codec
            .encode(&self.topic, RecordKind::DeadLetter, &full)
            .await?;
        let key = original.key().unwrap_or_default();
        let hdrs = provenance(self.stage, original, &failure);
        let sent = if fits(key, &value, &hdrs) {
            self.send(key, &value, &hdrs).await
        } else {
            Err(KafkaError::Rejected(format!(
                "dead letter of {} bytes exceeds the record limit",
                value.len()
            )))
        };
        let slim = match sent {
            Ok(()) => false,
            Err(e) if e.is_record_level() => {
                self.write_slim(original, &failure, full).await?;
                true
            }
            Err(e) => return Err(e),
        };
        metrics::counter!(
            intops_runtime::metrics::DEAD_LETTERS,
            "stage" => self.stage.as_str(),
            "class" => failure.class.clone(),
            "tenant" => failure.tenant.clone().unwrap_or_default()
        )
        .increment(1);
        tracing::warn!(
            topic = original.topic(),
            partition = original.partition(),
            offset = original.offset(),
            class = %failure.class,
            error = %failure.message,
            slim,
            "record dead-lettered"
        );
        Ok(())
    }

    /// The dead letter without the original's value and headers (and key,
    /// when long): it names where the original is instead.
    async fn write_slim(
        &self,
        original: &OwnedMessage,
        failure: &Failure,
        mut letter: DeadLetter,
    ) -> Result<(), KafkaError> {
        let mut omitted = vec!["value", "headers"];
        let mut key = original.key().unwrap_or_default();
        if key.len() > MAX_SLIM_KEY_BYTES {
            key = &[];
            letter.original_key = None;
            omitted.push("key");
        }
        letter.original_value = None;
        letter.original_headers = Vec::new();
        let value = self
            .codec
            .encode(&self.topic, RecordKind::DeadLetter, &letter)
            .await?;
        let mut hdrs = provenance(self.stage, original, failure);
        hdrs.push((headers::ORIGINAL_OMITTED, omitted.join(",")));
        // A slim dead letter is a few KiB: a broker refusing it has a
        // record limit far below intops' and every dead letter would fail
        // (a configuration failure, so the error stops the service).
        self.send(key, &value, &hdrs).await.map_err(|e| match e {
            KafkaError::Rejected(reason) => KafkaError::Refused(format!(
                "even a slim dead letter was refused ({reason}); check the topic's max.message.bytes"
            )),
            other => other,
        })
    }

    async fn send(
        &self,
        key: &[u8],
        value: &[u8],
        hdrs: &[(&'static str, String)],
    ) -> Result<(), KafkaError> {
        let hdr_refs: Vec<(&str, &[u8])> = hdrs.iter().map(|(k, v)| (*k, v.as_bytes())).collect();
        self.producer
            .send(Record {
                topic: &self.topic,
                key,
                value,
                headers: &hdr_refs,
            })
            .await?;
        Ok(())
    }
}

/// Whether a record of this key, value and headers fits the record limit.
fn fits(key: &[u8], value: &[u8], hdrs: &[(&'static str, String)]) -> bool {
    let headers: usize = hdrs.iter().map(|(k, v)| k.len() + v.len()).sum();
    key.len() + value.len() + headers + RECORD_OVERHEAD <= MAX_RECORD_BYTES
}

impl Failure {
    /// The failure with its texts cut to [`MAX_ERROR_TEXT_BYTES`].
    fn bounded(&self) -> Failure {
        Failure {
            message: truncate(&self.message, MAX_ERROR_TEXT_BYTES),
            response_excerpt: self
                .response_excerpt
                .as_deref()
                .map(|e| truncate(e, MAX_ERROR_TEXT_BYTES)),
            ..self.clone()
        }
    }
}

/// `text` cut to at most `max` bytes at a character boundary, marked when
/// cut.
pub fn truncate(text: &str, max: usize) -> String {
    const MARK: &str = "… (truncated)";
    if text.len() <= max {
        return text.to_string();
    }
    let mut end = max.saturating_sub(MARK.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}{MARK}", &text[..end])
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
        tenant: failure.tenant.clone(),
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
    fn error_texts_are_cut_at_a_character_boundary() {
        let long = "é".repeat(10_000);
        let mut f = Failure::new("mapping", long.clone());
        f.response_excerpt = Some(long);
        let b = f.bounded();
        assert!(
            b.message.len() <= MAX_ERROR_TEXT_BYTES,
            "{}",
            b.message.len()
        );
        assert!(b.message.ends_with("(truncated)"));
        assert!(b.response_excerpt.expect("kept").len() <= MAX_ERROR_TEXT_BYTES);
        assert_eq!(truncate("short", 10), "short");
    }

    #[test]
    fn a_record_near_the_limit_does_not_fit_beside_its_dead_letter() {
        let h = provenance(Stage::Transform, &original(), &Failure::new("x", "y"));
        assert!(fits(b"k", &[0; 10_000], &h));
        assert!(!fits(b"k", &vec![0; MAX_RECORD_BYTES - 100], &h));
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
