//! The broker side of the links: the topic's watermarks for a sync
//! ([`super::sync::Watermarks`]) and the sweeper's tombstones
//! ([`super::sweeper::Tombstones`]).

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};

use intops_kafka::{KafkaError, KafkaSettings, topics};
use rdkafka::consumer::{BaseConsumer, Consumer as _};

use super::sweeper::Tombstones;
use super::sync::{Ends, Watermarks};

/// The links topic's watermarks from the broker.
pub struct KafkaWatermarks {
    settings: KafkaSettings,
    topic: String,
    client: Mutex<Option<Arc<BaseConsumer>>>,
}

impl std::fmt::Debug for KafkaWatermarks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaWatermarks")
            .field("topic", &self.topic)
            .finish_non_exhaustive()
    }
}

impl KafkaWatermarks {
    /// Watermarks of `topic`; the client is created on the first fetch.
    pub fn new(settings: &KafkaSettings, topic: &str) -> Self {
        Self {
            settings: settings.clone(),
            topic: topic.to_string(),
            client: Mutex::new(None),
        }
    }

    fn client(&self) -> Result<Arc<BaseConsumer>, KafkaError> {
        let mut client = self.client.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(c) = client.as_ref() {
            return Ok(c.clone());
        }
        let created: BaseConsumer = self
            .settings
            .scan_config("latest", intops_kafka::Pace::Prompt)
            .create()
            .map_err(|e| KafkaError::Config(e.to_string()))?;
        let created = Arc::new(created);
        *client = Some(created.clone());
        Ok(created)
    }
}

impl Drop for KafkaWatermarks {
    fn drop(&mut self) {
        let client = self
            .client
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        off_the_workers(client);
    }
}

impl Watermarks for KafkaWatermarks {
    fn fetch(&self) -> Pin<Box<dyn Future<Output = Result<Ends, KafkaError>> + Send + '_>> {
        Box::pin(async move {
            let client = self.client()?;
            let topic = self.topic.clone();
            intops_kafka::blocking(move || {
                let mut ends = Vec::new();
                for p in topics::partitions(client.as_ref(), &topic, topics::METADATA_TIMEOUT)? {
                    let (low, high) = client
                        .fetch_watermarks(&topic, p, topics::METADATA_TIMEOUT)
                        .map_err(|e| {
                            KafkaError::Unavailable(format!("watermarks of {topic}: {e}"))
                        })?;
                    ends.push((p, low, high));
                }
                Ok(ends)
            })
            .await
        })
    }
}

/// Tombstones on the links topic, through the service's producer.
#[derive(Debug)]
pub struct KafkaTombstones {
    producer: intops_kafka::Producer,
    topic: String,
}

impl KafkaTombstones {
    /// Tombstones on `topic`.
    pub fn new(producer: intops_kafka::Producer, topic: &str) -> Self {
        Self {
            producer,
            topic: topic.to_string(),
        }
    }
}

impl Tombstones for KafkaTombstones {
    fn write<'a>(
        &'a self,
        key: &'a str,
    ) -> Pin<Box<dyn Future<Output = Result<(), KafkaError>> + Send + 'a>> {
        Box::pin(async move {
            self.producer
                .send_tombstone(&self.topic, key.as_bytes())
                .await
                .map(|_| ())
        })
    }
}

/// Drops a client on tokio's blocking pool when there is a runtime: a
/// dropped librdkafka client can block for a while (rust-rdkafka #453).
fn off_the_workers<T: Send + 'static>(client: Option<T>) {
    let Some(client) = client else {
        return;
    };
    match tokio::runtime::Handle::try_current() {
        Ok(runtime) => {
            runtime.spawn_blocking(move || drop(client));
        }
        Err(_) => drop(client),
    }
}
