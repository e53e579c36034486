use std::future::Future;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer as _};
use rdkafka::types::RDKafkaErrorCode;
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
///
/// When a send times out, the broker answers with an unknown error, or
/// librdkafka raises a fatal error, the client is replaced by a new one
/// with a new producer id, and the failed send is reported as retryable.
/// An idempotent producer whose records timed out carries sequence state
/// the broker may never accept again: with tansu 0.6.0, the old producer's
/// first send after the broker returns breaks later produces to that
/// partition even from new producers (measured; docs/architecture.md).
#[derive(Clone)]
pub struct Producer {
    inner: Arc<RwLock<FutureProducer>>,
    config: ClientConfig,
}

impl std::fmt::Debug for Producer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Producer").finish_non_exhaustive()
    }
}

impl Producer {
    /// Creates the producer.
    pub fn new(settings: &KafkaSettings) -> Result<Self, KafkaError> {
        Self::from_config(settings.producer_config())
    }

    /// Creates a producer that gives a record up (and reports it failed)
    /// `timeout` after it was sent: once a send fails, the record will not
    /// be written later.
    pub fn with_delivery_timeout(
        settings: &KafkaSettings,
        timeout: Duration,
    ) -> Result<Self, KafkaError> {
        let mut config = settings.producer_config();
        config.set("message.timeout.ms", timeout.as_millis().max(1).to_string());
        Self::from_config(config)
    }

    fn from_config(config: ClientConfig) -> Result<Self, KafkaError> {
        let inner = config
            .create()
            .map_err(|e| KafkaError::Config(e.to_string()))?;
        Ok(Self {
            inner: Arc::new(RwLock::new(inner)),
            config,
        })
    }

    fn current(&self) -> Result<FutureProducer, KafkaError> {
        self.inner
            .read()
            .map(|p| p.clone())
            .map_err(|_| KafkaError::Fatal("producer lock poisoned".into()))
    }

    /// Sends one record and waits for the broker's acknowledgement;
    /// returns its partition and offset.
    pub async fn send(&self, record: Record<'_>) -> Result<(i32, i64), KafkaError> {
        let producer = self.current()?;
        let delivery = producer
            .send(
                to_future_record(&record),
                Timeout::After(Duration::from_secs(5)),
            )
            .await;
        self.acknowledged(&producer, delivery.map_err(|(e, _)| e))
    }

    /// Sends a tombstone (a record with a key and no value: compaction
    /// removes the key) and waits for the broker's acknowledgement.
    pub async fn send_tombstone(&self, topic: &str, key: &[u8]) -> Result<(i32, i64), KafkaError> {
        let producer = self.current()?;
        let delivery = producer
            .send(
                FutureRecord::<[u8], [u8]>::to(topic).key(key),
                Timeout::After(Duration::from_secs(5)),
            )
            .await;
        self.acknowledged(&producer, delivery.map_err(|(e, _)| e))
    }

    /// Queues one record now and returns the wait for its acknowledgement.
    /// Records queued one after another for one partition are written in
    /// that order (idempotent producer), so a caller keeping per-key order
    /// need not wait for one acknowledgement before queuing the next. An
    /// `Err` here means the record was not queued (a full queue is
    /// retryable).
    pub fn enqueue(
        &self,
        record: Record<'_>,
    ) -> Result<impl Future<Output = Result<(i32, i64), KafkaError>> + Send + 'static, KafkaError>
    {
        let producer = self.current()?;
        let queued = producer
            .send_result(to_future_record(&record))
            .map_err(|(e, _)| classify_produce(&e))?;
        let this = self.clone();
        Ok(async move {
            let delivery = match queued.await {
                Ok(result) => result.map_err(|(e, _)| e),
                Err(_) => return Err(KafkaError::Unavailable("the producer was dropped".into())),
            };
            this.acknowledged(&producer, delivery)
        })
    }

    /// The partition and offset of an acknowledged record, or the
    /// classified error (replacing the client after errors that leave it
    /// unusable on the local broker; see docs/architecture.md).
    fn acknowledged(
        &self,
        producer: &FutureProducer,
        delivery: Result<rdkafka::producer::future_producer::Delivery, rdkafka::error::KafkaError>,
    ) -> Result<(i32, i64), KafkaError> {
        match delivery {
            Ok(delivery) => Ok((delivery.partition, delivery.offset)),
            Err(e) => {
                let fatal = producer.client().fatal_error().is_some();
                let code = e.rdkafka_error_code();
                if fatal
                    || matches!(
                        code,
                        Some(RDKafkaErrorCode::Unknown | RDKafkaErrorCode::MessageTimedOut)
                    )
                {
                    self.replace(producer, &e.to_string());
                    return Err(KafkaError::Unavailable(e.to_string()));
                }
                Err(classify_produce(&e))
            }
        }
    }

    /// Swaps in a new client unless another send already did.
    fn replace(&self, failed: &FutureProducer, reason: &str) {
        let Ok(mut inner) = self.inner.write() else {
            return;
        };
        if !std::ptr::eq(inner.client().native_ptr(), failed.client().native_ptr()) {
            return;
        }
        match self.config.create::<FutureProducer>() {
            Ok(fresh) => {
                tracing::warn!(error = %reason, "replacing the producer after a failed send");
                let old = std::mem::replace(&mut *inner, fresh);
                // Dropping purges and flushes for up to 500 ms: not on an
                // async worker.
                tokio::task::spawn_blocking(move || drop(old));
            }
            Err(e) => tracing::error!(error = %e, "cannot replace the producer"),
        }
    }

    /// Waits up to `timeout` for every queued record to be acknowledged.
    pub fn flush(&self, timeout: Duration) -> Result<(), KafkaError> {
        self.current()?
            .flush(Timeout::After(timeout))
            .map_err(|e| KafkaError::Unavailable(e.to_string()))
    }

    /// Whether a broker answers a metadata request within `timeout`.
    pub async fn broker_reachable(&self, timeout: Duration) -> bool {
        let Ok(producer) = self.current() else {
            return false;
        };
        crate::blocking(move || Ok(producer.client().fetch_metadata(None, timeout).is_ok()))
            .await
            .unwrap_or(false)
    }
}

fn to_future_record<'a>(record: &Record<'a>) -> FutureRecord<'a, [u8], [u8]> {
    let mut headers = OwnedHeaders::new_with_capacity(record.headers.len());
    for (key, value) in record.headers {
        headers = headers.insert(Header {
            key,
            value: Some(*value),
        });
    }
    FutureRecord::to(record.topic)
        .key(record.key)
        .payload(record.value)
        .headers(headers)
}
