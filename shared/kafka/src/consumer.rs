//! The at-least-once consumer loop: a record's offset is stored only after
//! its handler finished everything derived from it (outputs acknowledged,
//! or the record dead-lettered) and every earlier record of its partition
//! has too; stored offsets are committed in the background and on shutdown.
//!
//! The loop is the one writer of dead letters: a handler reports what
//! failed for good ([`ProcessError::Poison`], [`Handled::DeadLetters`]) and
//! the loop writes the dead letters, under the stage's dead-letter cap
//! ([`crate::cap`]), which holds the records of a scope that fails too
//! often instead (see `lane.rs`).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use rdkafka::consumer::{CommitMode, Consumer};
use rdkafka::message::{Message, OwnedMessage};
use tokio_util::sync::CancellationToken;

use crate::cap::DeadLetterCap;
use crate::dlq::{DeadLetterWriter, Failure};
use crate::drain::{DrainContext, GroupConsumer};
use crate::lane::lane;
use crate::lanes::KeyedLanes;
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
    /// Retryable stays retryable; a record the broker rejected (too large,
    /// invalid) is poison for the record being handled; anything else
    /// (settings, authorization) is fatal.
    fn from(e: KafkaError) -> Self {
        if e.is_retryable() {
            ProcessError::Retryable(e.to_string())
        } else if e.is_record_level() {
            ProcessError::Poison(Failure::new(REJECTED_CLASS, e.to_string()))
        } else {
            ProcessError::Fatal(e.to_string())
        }
    }
}

/// Dead-letter class of a record whose output the broker rejected.
pub const REJECTED_CLASS: &str = "record_rejected";

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
    /// Parts of the record failed for good (a flow's mapping, a target's
    /// final answer). The loop writes one dead letter of the record per
    /// failure, then waits for `then` as for [`Handled::Acknowledging`]
    /// (typically the outcomes saying so). When the dead-letter cap holds
    /// the record's scope, neither happens: the record is held and handled
    /// again after the cap is reset, so `then` must be what records the
    /// failure, not something already written.
    DeadLetters {
        /// What failed, one dead letter each.
        failures: Vec<Failure>,
        /// Acknowledged after the dead letters.
        then: Option<Ack>,
    },
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
            Handled::DeadLetters { .. } => "DeadLetters",
        })
    }
}

/// What the loop needs besides the consumer and the handler.
#[derive(Debug, Clone)]
pub struct ConsumeOptions {
    /// Stage name for logs and metrics (`transform`, `delivery`).
    pub stage: &'static str,
    /// Where poison records go (only the loop writes them).
    pub dead_letters: DeadLetterWriter,
    /// Holds a scope's records instead of dead-lettering them when too
    /// many of them failed.
    pub cap: Arc<DeadLetterCap>,
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
/// different keys proceed in parallel. Records of a scope the dead-letter
/// cap holds are set aside on their lane (in order, never dead-lettered,
/// their offsets not stored) while the lane goes on with other scopes'
/// records; a reset of the cap takes them up again before anything newer
/// of their scope. An offset is stored only when every
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
    let depth = (QUEUED / options.concurrency.max(1)).max(16);
    let mut lanes = KeyedLanes::spawn(options.concurrency, depth, |rx| {
        lane(rx, reporter.clone(), options.clone(), handle.clone())
    });
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
                let lane = lane_of(&lanes, &message);
                if lanes.send_to(lane, (message, epoch)).await.is_err() {
                    break; // the lane ended: only at shutdown or on a fatal error
                }
            }
        }
    }
    // Stop handing out work, let lanes finish what they are doing, and
    // store what finished.
    lanes.close();
    let (failure, unfinished) = inflight.close(consumer).await;
    lanes.join().await;
    if unfinished > 0 {
        tracing::info!(
            stage = options.stage,
            unfinished,
            "records left for redelivery"
        );
    }
    failure.map_or(Ok(()), Err)
}

/// Records with the same key always go to the same lane; records without
/// a key go to their partition's lane.
fn lane_of<T, R>(lanes: &KeyedLanes<T, R>, message: &OwnedMessage) -> usize
where
    T: Send + 'static,
    R: Send + 'static,
{
    match message.key() {
        Some(key) => lanes.lane_of(key),
        None => lanes.lane_of(&(message.topic(), message.partition())),
    }
}

/// Exponential backoff with jitter between retries of one record, cut
/// short by shutdown.
pub(crate) struct Pause<'a> {
    delays: crate::backoff::RetryDelays,
    max: Duration,
    shutdown: &'a CancellationToken,
}

impl<'a> Pause<'a> {
    pub(crate) fn new(options: &'a ConsumeOptions) -> Self {
        let delays = crate::backoff::retry_delays(options.min_backoff, options.max_backoff);
        Self {
            delays,
            max: options.max_backoff,
            shutdown: &options.shutdown,
        }
    }

    /// Waits for the next delay; false when shutdown came first.
    pub(crate) async fn wait(&mut self) -> bool {
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
