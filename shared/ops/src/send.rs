//! Producing from the command line: the broker's acknowledgement or a
//! clear error after a bounded number of retries.

use std::time::Duration;

use backon::Retryable;
use intops_events::RecordKind;
use intops_kafka::backoff::retry_delays;
use intops_kafka::{KafkaError, Record, ServiceContext};
use serde::Serialize;

/// Six retries, 200 ms to 5 s apart.
fn backoff() -> std::iter::Take<intops_kafka::backoff::RetryDelays> {
    retry_delays(Duration::from_millis(200), Duration::from_secs(5)).take(6)
}

/// Produces `record`, retrying while the broker is unavailable.
pub async fn raw(ctx: &ServiceContext, record: Record<'_>) -> Result<(i32, i64), KafkaError> {
    (|| ctx.producer.send(record))
        .retry(backoff())
        .when(KafkaError::is_retryable)
        .await
}

/// Queues `record` (retrying while the producer's queue is full or the
/// broker unavailable) and returns the wait for its acknowledgement:
/// records of one key queued one after another keep their order without
/// waiting for each other's acknowledgement.
pub async fn queue(
    ctx: &ServiceContext,
    record: Record<'_>,
) -> Result<
    impl std::future::Future<Output = Result<(i32, i64), KafkaError>> + Send + 'static,
    KafkaError,
> {
    (|| async { ctx.producer.enqueue(record) })
        .retry(backoff())
        .when(KafkaError::is_retryable)
        .await
}

/// Encodes `value` as `kind` for `topic` and produces it under `key`,
/// retrying while the broker or registry is unavailable.
pub async fn typed<T: Serialize>(
    ctx: &ServiceContext,
    topic: &str,
    kind: RecordKind,
    key: &[u8],
    value: &T,
) -> Result<(i32, i64), KafkaError> {
    (|| ctx.publish(topic, kind, key, value))
        .retry(backoff())
        .when(KafkaError::is_retryable)
        .await
}
