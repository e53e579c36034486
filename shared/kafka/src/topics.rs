//! Explicit topic creation: the local broker does not auto-create topics,
//! and production clusters often forbid it.

use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::types::RDKafkaErrorCode;

use crate::{KafkaError, KafkaSettings};

/// A topic and how to create it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicSpec {
    /// Name.
    pub name: String,
    /// Final partition count (the local broker cannot add partitions later).
    pub partitions: i32,
    /// Replication factor.
    pub replication: i32,
    /// Topic configs (`cleanup.policy`, `retention.ms`).
    pub configs: Vec<(String, String)>,
}

impl TopicSpec {
    /// A topic with default configs.
    pub fn new(name: impl Into<String>, partitions: i32, replication: i32) -> Self {
        Self {
            name: name.into(),
            partitions,
            replication,
            configs: Vec::new(),
        }
    }
}

/// Creates the topics that do not exist yet; existing ones are left as
/// they are.
pub async fn ensure(settings: &KafkaSettings, topics: &[TopicSpec]) -> Result<(), KafkaError> {
    let admin: AdminClient<DefaultClientContext> = settings
        .admin_config()
        .create()
        .map_err(|e| KafkaError::Config(e.to_string()))?;
    let new: Vec<NewTopic<'_>> = topics
        .iter()
        .map(|t| {
            t.configs.iter().fold(
                NewTopic::new(
                    &t.name,
                    t.partitions,
                    TopicReplication::Fixed(t.replication),
                ),
                |nt, (k, v)| nt.set(k, v),
            )
        })
        .collect();
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
    let results = admin
        .create_topics(new.iter(), &options)
        .await
        .map_err(|e| KafkaError::Admin(e.to_string()))?;
    for result in results {
        match result {
            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((topic, code)) => {
                return Err(KafkaError::Admin(format!(
                    "cannot create topic {topic}: {code}"
                )));
            }
        }
    }
    Ok(())
}

/// How long a metadata lookup waits for the broker.
pub const METADATA_TIMEOUT: Duration = Duration::from_secs(10);

/// The partition ids of `topic` from the cluster's metadata, read with
/// `client` (any consumer: a lookup never joins a group). Empty when the
/// topic does not exist. The one lookup of a topic's partitions; it
/// blocks up to `timeout`: from async code, call it inside
/// [`crate::blocking`].
pub fn partitions<C: ConsumerContext + 'static>(
    client: &impl Consumer<C>,
    topic: &str,
    timeout: Duration,
) -> Result<Vec<i32>, KafkaError> {
    let metadata = client
        .fetch_metadata(Some(topic), timeout)
        .map_err(|e| KafkaError::Unavailable(e.to_string()))?;
    Ok(metadata
        .topics()
        .iter()
        .filter(|t| t.name() == topic)
        .flat_map(|t| t.partitions().iter().map(|p| p.id()))
        .collect())
}

/// Whether `topic` exists (has partitions) on the cluster.
pub async fn exists(settings: &KafkaSettings, topic: &str) -> Result<bool, KafkaError> {
    let client = lookup_client(settings)?;
    let topic = topic.to_string();
    crate::blocking(move || {
        let metadata = client
            .fetch_metadata(Some(&topic), METADATA_TIMEOUT)
            .map_err(|e| KafkaError::Unavailable(e.to_string()))?;
        Ok(metadata
            .topics()
            .iter()
            .any(|t| t.name() == topic && t.error().is_none() && !t.partitions().is_empty()))
    })
    .await
}

/// A client for metadata lookups (creating one does not block).
pub(crate) fn lookup_client(settings: &KafkaSettings) -> Result<BaseConsumer, KafkaError> {
    settings
        .admin_config()
        .create()
        .map_err(|e| KafkaError::Config(e.to_string()))
}
