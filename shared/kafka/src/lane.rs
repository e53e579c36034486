//! One lane of the consumer loop: handles its records in order, writes the
//! dead letters its handler reports, and sets aside (holds) the records of
//! scopes the dead-letter cap has tripped.
//!
//! Holding keeps per-key order and at-least-once: every record of a key
//! goes to one lane, and every key belongs to one scope, so once a record
//! is held every later record of its scope on this lane is held behind it
//! (even when the cap was reset in between: the held ones go first). A
//! held record is never reported finished, so its partition's offset is
//! not stored past it; later records of other scopes are processed and
//! delivered, and are handled again after a restart or rebalance that
//! happens while the hold lasts (duplicates, as at-least-once allows).
//! Held records stay in memory up to [`MAX_HELD_BYTES`]; beyond it the
//! lane waits for a reset.
//!
//! [`MAX_HELD_BYTES`]: crate::cap::MAX_HELD_BYTES

use std::collections::VecDeque;
use std::future::Future;
use std::sync::Arc;

use rdkafka::message::{Message, OwnedMessage};
use tokio::sync::{mpsc, watch};

use crate::KafkaError;
use crate::cap::DeadLetterCap;
use crate::consumer::{Ack, ConsumeOptions, Handled, Pause, ProcessError};
use crate::dlq::Failure;
use crate::drain::{Finished, Reporter};

/// A record set aside while its scope is held.
struct Held {
    message: OwnedMessage,
    epoch: u64,
    scope: String,
}

impl Held {
    fn bytes(&self) -> usize {
        self.message.payload().map_or(0, <[u8]>::len) + self.message.key().map_or(0, <[u8]>::len)
    }
}

/// How processing one record ended.
enum Step {
    Done,
    Interrupted,
    Acknowledging(Ack),
    DeadLetters(Vec<Failure>, Option<Ack>),
}

/// Whether the lane goes on.
type Go = Result<(), Stop>;

/// The lane stops: shutdown or a fatal failure (already reported).
struct Stop;

struct Lane<F> {
    done: Reporter,
    options: ConsumeOptions,
    cap: Arc<DeadLetterCap>,
    handle: F,
    held: VecDeque<Held>,
}

/// Runs one lane until its channel closes, shutdown, or a fatal failure.
pub(crate) async fn lane<F, Fut, H>(
    mut rx: mpsc::Receiver<(OwnedMessage, u64)>,
    done: Reporter,
    options: ConsumeOptions,
    handle: F,
) where
    F: Fn(OwnedMessage) -> Fut,
    Fut: Future<Output = Result<H, ProcessError>>,
    H: Into<Handled> + Send + 'static,
{
    let cap = options.cap.clone();
    let mut released = cap.subscribe();
    let mut lane = Lane {
        done,
        options,
        cap,
        handle,
        held: VecDeque::new(),
    };
    loop {
        let shutdown = lane.options.shutdown.clone();
        let next = tokio::select! {
            biased;
            () = shutdown.cancelled() => break,
            changed = released.changed(), if !lane.held.is_empty() => {
                if changed.is_err() {
                    break;
                }
                None
            }
            m = rx.recv() => match m {
                Some(m) => Some(m),
                None => break,
            },
        };
        let went = match next {
            None => lane.release().await,
            Some((message, epoch)) => lane.take(message, epoch, &mut released).await,
        };
        if went.is_err() {
            break;
        }
    }
    // Held records are left unfinished: redelivered after restart.
    for h in lane.held.drain(..) {
        lane.cap.unhold(h.bytes());
    }
}

impl<F, Fut, H> Lane<F>
where
    F: Fn(OwnedMessage) -> Fut,
    Fut: Future<Output = Result<H, ProcessError>>,
    H: Into<Handled> + Send + 'static,
{
    /// Whether records of `scope` wait on this lane.
    fn holds(&self, scope: &str) -> bool {
        self.held.iter().any(|h| h.scope == scope)
    }

    /// A new record from the dispatcher.
    async fn take(
        &mut self,
        message: OwnedMessage,
        epoch: u64,
        released: &mut watch::Receiver<u64>,
    ) -> Go {
        if self.options.shutdown.is_cancelled() {
            return Err(Stop);
        }
        let scope = self.cap.scope_of(message.key());
        let mut held = if self.cap.is_tripped(&scope) || self.holds(&scope) {
            Held {
                message,
                epoch,
                scope,
            }
        } else {
            match self.run(message, epoch, scope).await? {
                None => return Ok(()),
                Some(h) => h,
            }
        };
        loop {
            if self.cap.hold(held.bytes()) {
                self.held.push_back(held);
                return Ok(());
            }
            // Too much held already: wait for a reset, take up what is held,
            // then this record.
            let shutdown = self.options.shutdown.clone();
            tokio::select! {
                () = shutdown.cancelled() => return Err(Stop),
                changed = released.changed() => changed.map_err(|_| Stop)?,
            }
            self.release().await?;
            if self.cap.is_tripped(&held.scope) || self.holds(&held.scope) {
                continue;
            }
            let Held {
                message,
                epoch,
                scope,
            } = held;
            match self.run(message, epoch, scope).await? {
                None => return Ok(()),
                Some(h) => held = h,
            }
        }
    }

    /// Handles, in order, the held records whose scope is no longer held.
    async fn release(&mut self) -> Go {
        let mut still = VecDeque::new();
        while let Some(h) = self.held.pop_front() {
            if self.cap.is_tripped(&h.scope) || still.iter().any(|s: &Held| s.scope == h.scope) {
                still.push_back(h);
                continue;
            }
            let bytes = h.bytes();
            match self.run(h.message, h.epoch, h.scope).await {
                Ok(None) => self.cap.unhold(bytes),
                Ok(Some(again)) => still.push_back(again),
                Err(stop) => {
                    self.cap.unhold(bytes);
                    still.append(&mut self.held);
                    self.held = still;
                    return Err(stop);
                }
            }
        }
        self.held = still;
        Ok(())
    }

    /// Handles one record: `Ok(Some)` when it must be held instead.
    async fn run(
        &mut self,
        message: OwnedMessage,
        epoch: u64,
        scope: String,
    ) -> Result<Option<Held>, Stop> {
        let finished = |result| Finished {
            topic: message.topic().to_string(),
            partition: message.partition(),
            offset: message.offset(),
            epoch,
            result,
        };
        let step = match process_one(&message, &self.options, &self.handle).await {
            Ok(step) => step,
            Err(e) => return Err(self.fatal(finished(Err(e)))),
        };
        match step {
            Step::Done => {
                self.cap.record(&scope, false);
                self.done.report(finished(Ok(true)));
            }
            Step::Interrupted => self.done.report(finished(Ok(false))),
            Step::Acknowledging(ack) => {
                self.cap.record(&scope, false);
                self.acknowledge(ack, finished(Ok(false)));
            }
            Step::DeadLetters(failures, then) => {
                if self.cap.is_tripped(&scope) {
                    return Ok(Some(Held {
                        message,
                        epoch,
                        scope,
                    }));
                }
                match write_dead_letters(&message, &failures, &self.options).await {
                    Ok(true) => {}
                    Ok(false) => {
                        self.done.report(finished(Ok(false)));
                        return Ok(None);
                    }
                    Err(e) => return Err(self.fatal(finished(Err(e)))),
                }
                self.cap.record(&scope, true);
                match then {
                    Some(ack) => self.acknowledge(ack, finished(Ok(false))),
                    None => self.done.report(finished(Ok(true))),
                }
            }
        }
        Ok(None)
    }

    /// Reports a fatal failure and stops the loop.
    fn fatal(&self, finished: Finished) -> Stop {
        self.done.report(finished);
        self.options.shutdown.cancel();
        Stop
    }

    /// Waits for `ack` in the background: the next record of this lane
    /// need not wait for it; the offset does.
    fn acknowledge(&self, ack: Ack, mut finished: Finished) {
        let done = self.done.clone();
        let shutdown = self.options.shutdown.clone();
        tokio::spawn(async move {
            finished.result = ack.await;
            if finished.result.is_err() {
                shutdown.cancel();
            }
            done.report(finished);
        });
    }
}

/// Writes a dead letter per failure, retrying while the broker is away;
/// `Ok(false)` when shutdown came first.
async fn write_dead_letters(
    message: &OwnedMessage,
    failures: &[Failure],
    options: &ConsumeOptions,
) -> Result<bool, KafkaError> {
    let mut pause = Pause::new(options);
    for failure in failures {
        loop {
            match options.dead_letters.write(message, failure).await {
                Ok(()) => break,
                Err(e) if e.is_retryable() => {
                    tracing::warn!(stage = options.stage, error = %e, "cannot write dead letter, retrying");
                    if !pause.wait().await {
                        return Ok(false);
                    }
                }
                Err(e) => return Err(e),
            }
        }
    }
    Ok(true)
}

/// Processes one record until it is done, shutdown interrupts a retry, or
/// only dead letters or an acknowledgement are left.
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
                    Handled::DeadLetters { failures, then } => Step::DeadLetters(failures, then),
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
            ProcessError::Poison(failure) => return Ok(Step::DeadLetters(vec![failure], None)),
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
