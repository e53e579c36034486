//! The at-least-once consumer loop: a record's offset is stored only after
//! its handler finished everything derived from it (outputs acknowledged,
//! or the record dead-lettered) and every earlier record of its partition
//! has too; stored offsets are committed in the background and on shutdown.

use std::future::Future;
use std::hash::{Hash, Hasher};
use std::pin::Pin;
use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};
use rdkafka::consumer::{CommitMode, Consumer};
use rdkafka::message::{Message, OwnedMessage};
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::dlq::{DeadLetterWriter, Failure};
use crate::drain::{DrainContext, Finished, GroupConsumer, Reporter};
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

/// A pending acknowledgement: `Ok(true)` acknowledged, `Ok(false)`
/// interrupted by shutdown, `Err` fatal.
pub type Ack = Pin<Box<dyn Future<Output = Result<bool, KafkaError>> + Send>>;

/// What a handler did with its record.
pub enum Handled {
    /// Everything derived from the record is acknowledged.
    Done,
    /// The record's own work is done (for delivery: the target answered)
    /// but a derived record is still being acknowledged. The lane moves on
    /// to its next record; the offset is stored only when this resolves to
    /// `Ok(true)`. `Ok(false)` means shutdown interrupted it (the record is
    /// redelivered after restart); `Err` stops the service. It must retry
    /// retryable failures itself: running the handler again would repeat
    /// work out of order.
    Acknowledging(Ack),
}

impl From<()> for Handled {
    fn from((): ()) -> Self {
        Handled::Done
    }
}

impl std::fmt::Debug for Handled {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Handled::Done => "Done",
            Handled::Acknowledging(_) => "Acknowledging",
        })
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
    /// Lanes processing records in parallel (records of one key share a
    /// lane, so they stay in order).
    pub concurrency: usize,
}

/// Records queued over all lanes before the consumer waits (at least 16
/// per lane). A full lane stops the dispatcher, so deeper queues keep
/// the other lanes busy while one key's lane is behind; the total bounds
/// the memory held.
const QUEUED: usize = 4096;

/// Creates a consumer of `group` subscribed to `topics`, whose rebalances
/// drain in-flight records while [`consume`] runs (see [`crate::drain`]).
pub fn new_consumer(
    settings: &KafkaSettings,
    group: &str,
    topics: &[&str],
) -> Result<GroupConsumer, KafkaError> {
    let consumer: GroupConsumer = settings
        .consumer_config(group)
        .create_with_context(DrainContext::default())
        .map_err(|e| KafkaError::Config(e.to_string()))?;
    consumer
        .subscribe(topics)
        .map_err(|e| KafkaError::Config(e.to_string()))?;
    Ok(consumer)
}

/// Runs `handle` over every record until `options.shutdown` is cancelled
/// or a handler fails fatally.
///
/// Records are spread over `options.concurrency` lanes by key: records with
/// the same key are handled one after the other, in partition order;
/// different keys proceed in parallel. An offset is stored only when every
/// record before it in its partition has finished (the contiguous low
/// watermark). When a rebalance takes partitions away, their in-flight
/// records finish and are committed first (up to
/// [`DRAIN_TIMEOUT`](crate::drain::DRAIN_TIMEOUT)). On return the stored
/// offsets have been committed.
pub async fn consume<F, Fut, H>(
    consumer: &GroupConsumer,
    options: &ConsumeOptions,
    handle: F,
) -> Result<(), KafkaError>
where
    F: Fn(OwnedMessage) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Result<H, ProcessError>> + Send + 'static,
    H: Into<Handled> + Send + 'static,
{
    let result = dispatch(consumer, options, handle).await;
    if let Err(e) = consumer.commit_consumer_state(CommitMode::Sync) {
        // NoOffset just means nothing new was stored since the last commit.
        if e.rdkafka_error_code() != Some(rdkafka::types::RDKafkaErrorCode::NoOffset) {
            tracing::warn!(stage = options.stage, error = %e, "final offset commit failed");
        }
    }
    result
}

async fn dispatch<F, Fut, H>(
    consumer: &GroupConsumer,
    options: &ConsumeOptions,
    handle: F,
) -> Result<(), KafkaError>
where
    F: Fn(OwnedMessage) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Result<H, ProcessError>> + Send + 'static,
    H: Into<Handled> + Send + 'static,
{
    let inflight = consumer.context().inflight().clone();
    let reporter = inflight.open(options.stage).await;
    let mut lanes = Vec::new();
    let mut tasks = JoinSet::new();
    let depth = (QUEUED / options.concurrency.max(1)).max(16);
    for _ in 0..options.concurrency.max(1) {
        let (tx, rx) = mpsc::channel::<(OwnedMessage, u64)>(depth);
        lanes.push(tx);
        tasks.spawn(lane(rx, reporter.clone(), options.clone(), handle.clone()));
    }
    drop(reporter);
    loop {
        tokio::select! {
            biased;
            () = options.shutdown.cancelled() => break,
            () = inflight.wake.notified() => {
                if inflight.settle(consumer).await {
                    options.shutdown.cancel();
                }
            }
            m = consumer.recv() => {
                let message = match m {
                    Ok(m) => m.detach(),
                    Err(e) => {
                        tracing::warn!(stage = options.stage, error = %e, "consumer error");
                        continue;
                    }
                };
                let epoch = inflight
                    .begin(message.topic(), message.partition(), message.offset())
                    .await;
                let lane = lane_of(&message, lanes.len());
                if lanes[lane].send((message, epoch)).await.is_err() {
                    break; // the lane ended: only at shutdown or on a fatal error
                }
            }
        }
    }
    // Stop handing out work, let lanes finish what they are doing, and
    // store what finished.
    drop(lanes);
    let (failure, unfinished) = inflight.close(consumer).await;
    while tasks.join_next().await.is_some() {}
    if unfinished > 0 {
        tracing::info!(
            stage = options.stage,
            unfinished,
            "records left for redelivery"
        );
    }
    failure.map_or(Ok(()), Err)
}

/// Records with the same key always go to the same lane.
fn lane_of(message: &OwnedMessage, lanes: usize) -> usize {
    let mut hasher = std::hash::DefaultHasher::new();
    match message.key() {
        Some(key) => key.hash(&mut hasher),
        None => (message.topic(), message.partition()).hash(&mut hasher),
    }
    (hasher.finish() % lanes as u64) as usize
}

async fn lane<F, Fut, H>(
    mut rx: mpsc::Receiver<(OwnedMessage, u64)>,
    done: Reporter,
    options: ConsumeOptions,
    handle: F,
) where
    F: Fn(OwnedMessage) -> Fut,
    Fut: Future<Output = Result<H, ProcessError>>,
    H: Into<Handled> + Send + 'static,
{
    while let Some((message, epoch)) = rx.recv().await {
        if options.shutdown.is_cancelled() {
            break;
        }
        let finished = |result| Finished {
            topic: message.topic().to_string(),
            partition: message.partition(),
            offset: message.offset(),
            epoch,
            result,
        };
        let result = match process_one(&message, &options, &handle).await {
            Ok(Step::Acknowledging(ack)) => {
                // The next record of this lane need not wait for the
                // acknowledgement; the offset does.
                let done = done.clone();
                let shutdown = options.shutdown.clone();
                let mut finished = finished(Ok(false));
                tokio::spawn(async move {
                    finished.result = ack.await;
                    if finished.result.is_err() {
                        shutdown.cancel();
                    }
                    done.report(finished);
                });
                continue;
            }
            Ok(Step::Done) => Ok(true),
            Ok(Step::Interrupted) => Ok(false),
            Err(e) => Err(e),
        };
        let fatal = result.is_err();
        done.report(finished(result));
        if fatal {
            options.shutdown.cancel();
            break;
        }
    }
}

/// How processing one record ended.
enum Step {
    Done,
    Interrupted,
    Acknowledging(Ack),
}

/// Processes one record until it is done, shutdown interrupts a retry, or
/// only an acknowledgement is left.
async fn process_one<F, Fut, H>(
    message: &OwnedMessage,
    options: &ConsumeOptions,
    handle: &F,
) -> Result<Step, KafkaError>
where
    F: Fn(OwnedMessage) -> Fut,
    Fut: Future<Output = Result<H, ProcessError>>,
    H: Into<Handled> + Send + 'static,
{
    let mut pause = Pause::new(options);
    loop {
        let error = match handle(message.clone()).await {
            Ok(h) => {
                return Ok(match h.into() {
                    Handled::Done => Step::Done,
                    Handled::Acknowledging(ack) => Step::Acknowledging(ack),
                });
            }
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
                tracing::warn!(
                    stage = options.stage,
                    topic = message.topic(),
                    partition = message.partition(),
                    offset = message.offset(),
                    error = %reason,
                    "retryable failure, retrying record"
                );
                if !pause.wait().await {
                    return Ok(Step::Interrupted);
                }
            }
            ProcessError::Poison(failure) => {
                // The dead letter must be acknowledged before the offset
                // moves on; keep trying while the broker is away.
                loop {
                    match options.dead_letters.write(message, &failure).await {
                        Ok(()) => return Ok(Step::Done),
                        Err(e) if e.is_retryable() => {
                            tracing::warn!(stage = options.stage, error = %e, "cannot write dead letter, retrying");
                            if !pause.wait().await {
                                return Ok(Step::Interrupted);
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
                return Err(KafkaError::Fatal(reason));
            }
        }
    }
}

/// Exponential backoff with jitter between retries of one record, cut
/// short by shutdown.
struct Pause<'a> {
    delays: backon::ExponentialBackoff,
    max: Duration,
    shutdown: &'a CancellationToken,
}

impl<'a> Pause<'a> {
    fn new(options: &'a ConsumeOptions) -> Self {
        let delays = ExponentialBuilder::default()
            .with_min_delay(options.min_backoff)
            .with_max_delay(options.max_backoff)
            .with_jitter()
            .without_max_times()
            .build();
        Self {
            delays,
            max: options.max_backoff,
            shutdown: &options.shutdown,
        }
    }

    /// Waits for the next delay; false when shutdown came first.
    async fn wait(&mut self) -> bool {
        let delay = self.delays.next().unwrap_or(self.max);
        tokio::select! {
            () = self.shutdown.cancelled() => false,
            () = tokio::time::sleep(delay) => true,
        }
    }
}

#[cfg(test)]
#[path = "consumer_mock_cluster_tests.rs"]
mod mock_cluster_tests;
