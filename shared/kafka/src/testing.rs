//! Test doubles for handler tests (no broker, no registry): an in-memory
//! [`Publish`] that records every record a handler publishes and fails on
//! demand, and a codec that never reaches a registry. Used by the unit
//! tests of transform and delivery; not for production code.

use std::any::Any;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use intops_events::{Codec, CodecError, RecordKind, RegistrySettings, Topics};
use serde::Serialize;

use crate::{KafkaError, Publish};

/// One record a handler published.
#[derive(Clone)]
pub struct Published {
    /// Topic.
    pub topic: String,
    /// Record kind (schema).
    pub kind: RecordKind,
    /// Kafka key.
    pub key: Vec<u8>,
    record: Arc<dyn Any + Send + Sync>,
}

impl Published {
    /// The record, if it is a `T`.
    pub fn record<T: Any>(&self) -> Option<&T> {
        self.record.downcast_ref()
    }

    /// The key as text (keys of intops records are `source:entity`).
    pub fn key_text(&self) -> String {
        String::from_utf8_lossy(&self.key).into_owned()
    }
}

impl std::fmt::Debug for Published {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Published")
            .field("topic", &self.topic)
            .field("kind", &self.kind)
            .field("key", &self.key_text())
            .finish_non_exhaustive()
    }
}

/// Failures to answer instead of acknowledging, for one topic.
#[derive(Debug)]
struct Failing {
    topic: String,
    /// How many more publishes to this topic fail.
    left: usize,
    error: fn(String) -> KafkaError,
}

#[derive(Debug, Default)]
struct State {
    published: Vec<Published>,
    failing: Vec<Failing>,
}

/// An in-memory [`Publish`]: every acknowledged record is kept, in
/// publish order; [`MemoryPublisher::fail`] makes publishes to a topic
/// fail first. Clones share the same records.
#[derive(Debug, Clone)]
pub struct MemoryPublisher {
    topics: Topics,
    state: Arc<Mutex<State>>,
}

impl MemoryPublisher {
    /// A publisher for topics under `prefix`.
    pub fn new(prefix: &str) -> Self {
        Self {
            topics: Topics::new(prefix),
            state: Arc::default(),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The next `times` publishes to `topic` fail with `error(topic)`
    /// (for example `KafkaError::Rejected` for a record the broker refuses,
    /// `KafkaError::Unavailable` for a broker that is away).
    pub fn fail(&self, topic: &str, times: usize, error: fn(String) -> KafkaError) {
        self.state().failing.push(Failing {
            topic: topic.to_string(),
            left: times,
            error,
        });
    }

    /// Every acknowledged record, in publish order.
    pub fn published(&self) -> Vec<Published> {
        self.state().published.clone()
    }

    /// The acknowledged records of `topic` that are `T`s, in order.
    pub fn records<T: Any + Clone>(&self, topic: &str) -> Vec<T> {
        self.state()
            .published
            .iter()
            .filter(|p| p.topic == topic)
            .filter_map(|p| p.record::<T>().cloned())
            .collect()
    }
}

impl Publish for MemoryPublisher {
    fn topics(&self) -> &Topics {
        &self.topics
    }

    async fn publish<T>(
        &self,
        topic: &str,
        kind: RecordKind,
        key: &[u8],
        record: &T,
    ) -> Result<(i32, i64), KafkaError>
    where
        T: Serialize + Clone + Send + Sync + 'static,
    {
        let mut state = self.state();
        if let Some(failing) = state
            .failing
            .iter_mut()
            .find(|f| f.topic == topic && f.left > 0)
        {
            failing.left -= 1;
            return Err((failing.error)(topic.to_string()));
        }
        let offset = state.published.iter().filter(|p| p.topic == topic).count();
        state.published.push(Published {
            topic: topic.to_string(),
            kind,
            key: key.to_vec(),
            record: Arc::new(record.clone()),
        });
        Ok((0, i64::try_from(offset).unwrap_or(i64::MAX)))
    }
}

/// A codec whose registry is a closed local port: bytes that are not
/// Confluent-framed fail as undecodable without contacting it, anything
/// that needs a schema fails as "registry unavailable".
pub fn offline_codec() -> Result<Arc<Codec>, CodecError> {
    Codec::new(&RegistrySettings {
        url: "http://127.0.0.1:1".into(),
        basic_auth: None,
        timeout: Duration::from_secs(2),
        ca_pem: None,
    })
    .map(Arc::new)
}

/// A consumed record of `topic` (partition 0, offset 0) with `key` and
/// `value`, as the consumer loop hands it to a handler.
pub fn message(topic: &str, key: &[u8], value: &[u8]) -> rdkafka::message::OwnedMessage {
    rdkafka::message::OwnedMessage::new(
        Some(value.to_vec()),
        Some(key.to_vec()),
        topic.to_string(),
        rdkafka::Timestamp::NotAvailable,
        0,
        0,
        None,
    )
}
