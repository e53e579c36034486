//! Explicit topic creation: the local broker does not auto-create topics,
//! and production clusters often forbid it.

use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::metadata::Metadata;
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

/// The partition ids of `topic`, from the cluster's metadata.
pub fn partitions(settings: &KafkaSettings, topic: &str) -> Result<Vec<i32>, KafkaError> {
    let metadata = metadata(settings, topic).map_err(|e| KafkaError::Admin(e.to_string()))?;
    let ids: Vec<i32> = metadata
        .topics()
        .iter()
        .filter(|t| t.name() == topic)
        .flat_map(|t| t.partitions().iter().map(|p| p.id()))
        .collect();
    if ids.is_empty() {
        return Err(KafkaError::Admin(format!(
            "topic {topic} has no partitions"
        )));
    }
    Ok(ids)
}

/// Whether `topic` exists (has partitions) on the cluster.
pub fn exists(settings: &KafkaSettings, topic: &str) -> Result<bool, KafkaError> {
    let metadata = metadata(settings, topic)?;
    Ok(metadata
        .topics()
        .iter()
        .any(|t| t.name() == topic && t.error().is_none() && !t.partitions().is_empty()))
}

fn metadata(settings: &KafkaSettings, topic: &str) -> Result<Metadata, KafkaError> {
    let consumer: BaseConsumer = settings
        .admin_config()
        .create()
        .map_err(|e| KafkaError::Config(e.to_string()))?;
    consumer
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .map_err(|e| KafkaError::Unavailable(e.to_string()))
}
