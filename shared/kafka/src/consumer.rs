//! The at-least-once consumer loop: a record's offset is stored only after
//! its handler finished everything derived from it (outputs acknowledged,
//! or the record dead-lettered), and stored offsets are committed in the
//! background and on shutdown.

use std::future::Future;
use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::message::{Message, OwnedMessage};
use tokio_util::sync::CancellationToken;

use crate::dlq::{DeadLetterWriter, Failure};
use crate::{KafkaError, KafkaSettings};

/// How a handler failed, classified for the loop.
#[derive(Debug)]
pub enum ProcessError {
    /// Try the same record again after a backoff (broker or registry down).
    Retryable(String),
    /// The record can never succeed as it is: dead-letter it and move on.
    Poison(Failure),
    /// Stop the service (a bug or a misconfiguration): the offset is not
    /// stored, so the record is processed again after the fix.
    Fatal(String),
}

impl From<KafkaError> for ProcessError {
    fn from(e: KafkaError) -> Self {
        if e.is_retryable() {
            ProcessError::Retryable(e.to_string())
        } else {
            ProcessError::Fatal(e.to_string())
        }
    }
}

/// What the loop needs besides the consumer and the handler.
#[derive(Debug, Clone)]
pub struct ConsumeOptions {
    /// Stage name for logs and metrics (`transform`, `delivery`).
    pub stage: &'static str,
    /// Where poison records go.
    pub dead_letters: DeadLetterWriter,
    /// Stops the loop between records.
    pub shutdown: CancellationToken,
    /// First retry delay for retryable failures.
    pub min_backoff: Duration,
    /// Largest retry delay.
    pub max_backoff: Duration,
}

/// Creates a consumer of `group` subscribed to `topics`.
pub fn new_consumer(
    settings: &KafkaSettings,
    group: &str,
    topics: &[&str],
) -> Result<StreamConsumer, KafkaError> {
    let consumer: StreamConsumer = settings
        .consumer_config(group)
        .create()
        .map_err(|e| KafkaError::Config(e.to_string()))?;
    consumer
        .subscribe(topics)
        .map_err(|e| KafkaError::Config(e.to_string()))?;
    Ok(consumer)
}

/// Runs `handle` over every record, in order per partition, until
/// `options.shutdown` is cancelled or a handler fails fatally. On return
/// the stored offsets have been committed (best effort on a fatal error).
pub async fn consume<F, Fut>(
    consumer: &StreamConsumer,
    options: &ConsumeOptions,
    mut handle: F,
) -> Result<(), KafkaError>
where
    F: FnMut(OwnedMessage) -> Fut,
    Fut: Future<Output = Result<(), ProcessError>>,
{
    let result = consume_until_stopped(consumer, options, &mut handle).await;
    if let Err(e) = consumer.commit_consumer_state(CommitMode::Sync) {
        // NoOffset just means nothing new was stored since the last commit.
        if e.rdkafka_error_code() != Some(rdkafka::types::RDKafkaErrorCode::NoOffset) {
            tracing::warn!(stage = options.stage, error = %e, "final offset commit failed");
        }
    }
    result
}

async fn consume_until_stopped<F, Fut>(
    consumer: &StreamConsumer,
    options: &ConsumeOptions,
    handle: &mut F,
) -> Result<(), KafkaError>
where
    F: FnMut(OwnedMessage) -> Fut,
    Fut: Future<Output = Result<(), ProcessError>>,
{
    loop {
        let message = tokio::select! {
            () = options.shutdown.cancelled() => return Ok(()),
            m = consumer.recv() => m,
        };
        let message = match message {
            Ok(m) => m.detach(),
            Err(e) => {
                tracing::warn!(stage = options.stage, error = %e, "consumer error");
                continue;
            }
        };
        let (topic, partition, offset) = (
            message.topic().to_string(),
            message.partition(),
            message.offset(),
        );
        if !process_one(&message, options, handle).await? {
            return Ok(()); // shut down while retrying: the offset stays unstored
        }
        consumer
            .store_offset(&topic, partition, offset)
            .map_err(|e| KafkaError::Admin(format!("cannot store offset: {e}")))?;
    }
}

/// Processes one record until it is done (true) or shutdown interrupts a
/// retry (false).
async fn process_one<F, Fut>(
    message: &OwnedMessage,
    options: &ConsumeOptions,
    handle: &mut F,
) -> Result<bool, KafkaError>
where
    F: FnMut(OwnedMessage) -> Fut,
    Fut: Future<Output = Result<(), ProcessError>>,
{
    let mut backoff = ExponentialBuilder::default()
        .with_min_delay(options.min_backoff)
        .with_max_delay(options.max_backoff)
        .with_jitter()
        .without_max_times()
        .build();
    loop {
        let error = match handle(message.clone()).await {
            Ok(()) => return Ok(true),
            Err(e) => e,
        };
        let class = match &error {
            ProcessError::Retryable(_) => "retryable",
            ProcessError::Poison(_) => "poison",
            ProcessError::Fatal(_) => "fatal",
        };
        metrics::counter!(intops_runtime::metrics::CONSUMER_ERRORS, "stage" => options.stage, "class" => class)
            .increment(1);
        match error {
            ProcessError::Retryable(reason) => {
                let delay = backoff.next().unwrap_or(options.max_backoff);
                tracing::warn!(
                    stage = options.stage,
                    topic = message.topic(),
                    partition = message.partition(),
                    offset = message.offset(),
                    error = %reason,
                    delay_ms = delay.as_millis() as u64,
                    "retryable failure, retrying record"
                );
                tokio::select! {
                    () = options.shutdown.cancelled() => return Ok(false),
                    () = tokio::time::sleep(delay) => {}
                }
            }
            ProcessError::Poison(failure) => {
                // The dead letter must be acknowledged before the offset
                // moves on; keep trying while the broker is away.
                loop {
                    match options.dead_letters.write(message, &failure).await {
                        Ok(()) => return Ok(true),
                        Err(e) if e.is_retryable() => {
                            let delay = backoff.next().unwrap_or(options.max_backoff);
                            tracing::warn!(stage = options.stage, error = %e, "cannot write dead letter, retrying");
                            tokio::select! {
                                () = options.shutdown.cancelled() => return Ok(false),
                                () = tokio::time::sleep(delay) => {}
                            }
                        }
                        Err(e) => return Err(e),
                    }
                }
            }
            ProcessError::Fatal(reason) => {
                tracing::error!(
                    stage = options.stage,
                    topic = message.topic(),
                    partition = message.partition(),
                    offset = message.offset(),
                    error = %reason,
                    "fatal failure, stopping"
                );
                return Err(KafkaError::Config(reason));
            }
        }
    }
}
