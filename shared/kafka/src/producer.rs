use std::time::Duration;

use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer as _};
use rdkafka::util::Timeout;

use crate::error::classify_produce;
use crate::{KafkaError, KafkaSettings};

/// One record to produce.
#[derive(Debug, Clone, Copy)]
pub struct Record<'a> {
    /// Topic.
    pub topic: &'a str,
    /// Key (entity key: keeps one entity's records on one partition).
    pub key: &'a [u8],
    /// Value bytes.
    pub value: &'a [u8],
    /// Headers.
    pub headers: &'a [(&'a str, &'a [u8])],
}

/// A producer whose sends complete only once the broker acknowledged the
/// record (acks=all, idempotent).
#[derive(Clone)]
pub struct Producer {
    inner: FutureProducer,
}

impl std::fmt::Debug for Producer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Producer").finish_non_exhaustive()
    }
}

impl Producer {
    /// Creates the producer.
    pub fn new(settings: &KafkaSettings) -> Result<Self, KafkaError> {
        let inner = settings
            .producer_config()
            .create()
            .map_err(|e| KafkaError::Config(e.to_string()))?;
        Ok(Self { inner })
    }

    /// Sends one record and waits for the broker's acknowledgement;
    /// returns its partition and offset.
    pub async fn send(&self, record: Record<'_>) -> Result<(i32, i64), KafkaError> {
        let mut headers = OwnedHeaders::new_with_capacity(record.headers.len());
        for (key, value) in record.headers {
            headers = headers.insert(Header {
                key,
                value: Some(*value),
            });
        }
        let future_record = FutureRecord::to(record.topic)
            .key(record.key)
            .payload(record.value)
            .headers(headers);
        match self
            .inner
            .send(future_record, Timeout::After(Duration::from_secs(5)))
            .await
        {
            Ok(delivery) => Ok((delivery.partition, delivery.offset)),
            Err((e, _)) => Err(classify_produce(&e)),
        }
    }

    /// Waits up to `timeout` for every queued record to be acknowledged.
    pub fn flush(&self, timeout: Duration) -> Result<(), KafkaError> {
        self.inner
            .flush(Timeout::After(timeout))
            .map_err(|e| KafkaError::Unavailable(e.to_string()))
    }
}
