//! Draining before a rebalance: when the group takes partitions away, the
//! records of those partitions still being processed here finish first and
//! their offsets are committed, so the next owner starts after them instead
//! of repeating them, and never overtakes an update still in flight here.
//!
//! librdkafka runs the rebalance callback on the thread that polls the
//! consumer, which is the dispatcher's task inside [`consume`](crate::consume).
//! The callback blocks that thread (`block_in_place`, so the runtime's other
//! tasks, the lanes among them, move to other workers) while it settles
//! finished records as they arrive, up to [`DRAIN_TIMEOUT`]. What has not
//! finished by then is left to the next owner (at least once: the offset was
//! not committed, so it processes the record again).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::{
    BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance, StreamConsumer,
};
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use tokio::sync::{Mutex, Notify, mpsc};

use crate::KafkaError;
use crate::offsets::OffsetTracker;

mod assigned;

pub use assigned::{Assignment, lag, starved, watch};

/// The assignment record of `consumer` (updated by its rebalances).
pub fn assignment_of(consumer: &GroupConsumer) -> Arc<Assignment> {
    consumer.context().assignment().clone()
}

/// The longest a rebalance waits for in-flight records of the partitions it
/// takes away. Well inside the group's rebalance timeout (librdkafka's
/// `max.poll.interval.ms`, 5 minutes by default).
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(20);

/// A consumer group member whose rebalances drain in-flight work.
pub type GroupConsumer = StreamConsumer<DrainContext>;

/// The consumer context of a [`GroupConsumer`].
#[derive(Default)]
pub struct DrainContext {
    inflight: Arc<InFlight>,
    assignment: Arc<Assignment>,
}

impl std::fmt::Debug for DrainContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DrainContext")
            .field("drains", &self.drains())
            .finish_non_exhaustive()
    }
}

impl DrainContext {
    pub(crate) fn inflight(&self) -> &Arc<InFlight> {
        &self.inflight
    }

    /// Rebalances that found in-flight records of revoked partitions and
    /// waited for them (for tests and diagnostics).
    pub fn drains(&self) -> u64 {
        self.inflight.drains.load(Ordering::Relaxed)
    }

    /// The partitions this member holds (see [`watch`]).
    pub fn assignment(&self) -> &Arc<Assignment> {
        &self.assignment
    }

    /// The client's fatal error, once one was raised (for example
    /// `FENCED_INSTANCE_ID`: another process joined with this process's
    /// instance id).
    pub fn fatal(&self) -> Option<&str> {
        self.inflight.fatal.get().map(String::as_str)
    }
}

impl ClientContext for DrainContext {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, log_message: &str) {
        // librdkafka raises a fatal error (fencing among them) as this log
        // line and as a consumer error the loop only warns about: stop the
        // loop here, so the service exits non-zero instead of consuming
        // nothing forever.
        if fac == "FATAL" {
            tracing::error!(target: "librdkafka", error = log_message, "fatal consumer error, stopping");
            if self.inflight.fatal.set(log_message.to_string()).is_ok() {
                self.inflight.wake.notify_one();
            }
            return;
        }
        match level {
            RDKafkaLogLevel::Emerg
            | RDKafkaLogLevel::Alert
            | RDKafkaLogLevel::Critical
            | RDKafkaLogLevel::Error => {
                tracing::error!(target: "librdkafka", facility = fac, "{log_message}")
            }
            RDKafkaLogLevel::Warning => {
                tracing::warn!(target: "librdkafka", facility = fac, "{log_message}")
            }
            RDKafkaLogLevel::Notice | RDKafkaLogLevel::Info => {
                tracing::info!(target: "librdkafka", facility = fac, "{log_message}")
            }
            RDKafkaLogLevel::Debug => {
                tracing::debug!(target: "librdkafka", facility = fac, "{log_message}")
            }
        }
    }
}

impl ConsumerContext for DrainContext {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(revoked) = rebalance {
            self.inflight.drain(consumer, revoked);
        }
    }

    fn post_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        let held = match rebalance {
            Rebalance::Error(_) => return,
            _ => consumer.assignment().map(|a| a.count()).unwrap_or(0),
        };
        self.assignment.set(held);
        tracing::debug!(held, "partitions assigned after rebalance");
    }
}

/// A record a lane finished (or gave up on at shutdown or a fatal error).
pub(crate) struct Finished {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    /// The partition's epoch when the record was begun.
    pub epoch: u64,
    /// `Ok(true)` done, `Ok(false)` interrupted by shutdown, `Err` fatal.
    pub result: Result<bool, KafkaError>,
}

/// Records in flight, shared by the dispatcher, its lanes (through
/// [`Reporter`]s) and the rebalance callback.
#[derive(Default)]
pub(crate) struct InFlight {
    state: Mutex<State>,
    /// Rung by every report; the dispatcher settles when it rings.
    pub wake: Notify,
    drains: AtomicU64,
    /// The client's fatal error (see [`DrainContext::fatal`]).
    fatal: OnceLock<String>,
}

#[derive(Default)]
struct State {
    books: Books,
    finished: Option<mpsc::UnboundedReceiver<Finished>>,
    stage: &'static str,
}

/// What finished records change: the offsets and the first fatal failure.
#[derive(Default)]
struct Books {
    tracker: OffsetTracker,
    failure: Option<KafkaError>,
}

/// How lanes report finished records.
#[derive(Clone)]
pub(crate) struct Reporter {
    tx: mpsc::UnboundedSender<Finished>,
    inflight: Arc<InFlight>,
}

impl Reporter {
    pub fn report(&self, finished: Finished) {
        // The receiver lives as long as the dispatcher that made this.
        let _ = self.tx.send(finished);
        self.inflight.wake.notify_one();
    }
}

impl InFlight {
    /// Starts tracking for a dispatcher; lanes report through the returned
    /// reporter (and its clones).
    pub async fn open(self: &Arc<Self>, stage: &'static str) -> Reporter {
        let (tx, rx) = mpsc::unbounded_channel();
        let mut state = self.state.lock().await;
        *state = State {
            finished: Some(rx),
            stage,
            ..State::default()
        };
        Reporter {
            tx,
            inflight: self.clone(),
        }
    }

    /// A record was handed to a lane; returns its epoch.
    pub async fn begin(&self, topic: &str, partition: i32, offset: i64) -> u64 {
        self.state
            .lock()
            .await
            .books
            .tracker
            .begin(topic, partition, offset)
    }

    /// Stores the offsets of everything reported so far. True when a
    /// record failed fatally.
    pub async fn settle<C: Consumer<DrainContext>>(&self, consumer: &C) -> bool {
        let mut state = self.state.lock().await;
        let State {
            books, finished, ..
        } = &mut *state;
        if let Some(rx) = finished.as_mut() {
            books.apply_queued(consumer, rx);
        }
        if let Some(fatal) = self.fatal.get() {
            books
                .failure
                .get_or_insert_with(|| KafkaError::Fatal(format!("kafka consumer: {fatal}")));
        }
        books.failure.is_some()
    }

    /// Waits for every reporter to be gone, storing what they report, and
    /// stops tracking (later rebalances have nothing to drain). Returns the
    /// first fatal failure and how many records were left unfinished.
    pub async fn close<C: Consumer<DrainContext>>(
        &self,
        consumer: &C,
    ) -> (Option<KafkaError>, usize) {
        let mut state = self.state.lock().await;
        let State {
            books, finished, ..
        } = &mut *state;
        if let Some(mut rx) = finished.take() {
            while let Some(done) = rx.recv().await {
                books.apply(consumer, done);
            }
        }
        let left = books.tracker.in_flight();
        (std::mem::take(books).failure, left)
    }

    /// The rebalance callback's part: waits for the revoked partitions'
    /// records, commits their offsets and forgets them.
    fn drain(&self, consumer: &BaseConsumer<DrainContext>, revoked: &TopicPartitionList) {
        let partitions: Vec<(String, i32)> = revoked
            .elements()
            .iter()
            .map(|e| (e.topic().to_string(), e.partition()))
            .collect();
        // Not dispatching (before the first record or after the loop ended,
        // as when the consumer closes): nothing to wait for.
        let busy = self
            .state
            .try_lock()
            .is_ok_and(|s| s.finished.is_some() && !partitions.is_empty());
        if !busy {
            return;
        }
        if consumer.assignment_lost() {
            // The session expired: the group has already given these
            // partitions to others, so a commit would be refused and
            // waiting only delays the rejoin. Their records still running
            // here no longer count.
            if let Ok(mut state) = self.state.try_lock() {
                let stage = state.stage;
                let left = state.books.tracker.pending_in(&partitions);
                state.books.tracker.forget(&partitions);
                tracing::warn!(
                    stage,
                    left,
                    "assignment lost; in-flight records left to the next owner"
                );
            }
            return;
        }
        let Ok(handle) = tokio::runtime::Handle::try_current() else {
            return;
        };
        if handle.runtime_flavor() != tokio::runtime::RuntimeFlavor::MultiThread {
            // The lanes could not run while this thread waits.
            tracing::warn!("rebalance not drained: needs the multi-threaded runtime");
            return;
        }
        tokio::task::block_in_place(|| handle.block_on(self.drain_async(consumer, &partitions)));
    }

    async fn drain_async(
        &self,
        consumer: &BaseConsumer<DrainContext>,
        partitions: &[(String, i32)],
    ) {
        let started = Instant::now();
        let deadline = tokio::time::Instant::now() + DRAIN_TIMEOUT;
        let mut state = self.state.lock().await;
        let State {
            books,
            finished,
            stage,
        } = &mut *state;
        let stage = *stage;
        let Some(rx) = finished.as_mut() else {
            return;
        };
        let waited_for = books.tracker.pending_in(partitions);
        if waited_for > 0 {
            self.drains.fetch_add(1, Ordering::Relaxed);
        }
        let mut result = "drained";
        loop {
            books.apply_queued(consumer, rx);
            if books.tracker.pending_in(partitions) == 0 {
                break;
            }
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Some(done)) => books.apply(consumer, done),
                Ok(None) => break,
                Err(_) => {
                    result = "timed_out";
                    break;
                }
            }
        }
        let tracker = &mut books.tracker;
        let left = tracker.pending_in(partitions);
        let mut offsets = TopicPartitionList::new();
        for (topic, partition) in partitions {
            if let Some(stored) = tracker.stored(topic, *partition) {
                let _ = offsets.add_partition_offset(topic, *partition, Offset::Offset(stored + 1));
            }
        }
        if offsets.count() > 0
            && let Err(e) = consumer.commit(&offsets, CommitMode::Sync)
        {
            tracing::warn!(stage, error = %e, "commit before rebalance failed");
        }
        tracker.forget(partitions);
        if waited_for > 0 {
            metrics::counter!(intops_runtime::metrics::REBALANCE_DRAINS, "stage" => stage, "result" => result)
                .increment(1);
            tracing::info!(
                stage,
                partitions = partitions.len(),
                waited_for,
                left,
                result,
                elapsed_ms = started.elapsed().as_millis() as u64,
                "drained in-flight records before giving partitions up"
            );
        }
    }
}

impl Books {
    /// Stores the offset a finished record lets through, or keeps its
    /// failure.
    fn apply<C: Consumer<DrainContext>>(&mut self, consumer: &C, done: Finished) {
        match done.result {
            Ok(true) => {
                if let Some(offset) =
                    self.tracker
                        .finish(&done.topic, done.partition, done.offset, done.epoch)
                    && let Err(e) = consumer.store_offset(&done.topic, done.partition, offset)
                {
                    tracing::debug!(topic = %done.topic, partition = done.partition, error = %e, "offset not stored");
                }
            }
            Ok(false) => {} // interrupted by shutdown: redelivered later
            Err(e) => {
                self.failure.get_or_insert(e);
            }
        }
    }

    /// Applies every report already queued.
    fn apply_queued<C: Consumer<DrainContext>>(
        &mut self,
        consumer: &C,
        rx: &mut mpsc::UnboundedReceiver<Finished>,
    ) {
        while let Ok(done) = rx.try_recv() {
            self.apply(consumer, done);
        }
    }
}

#[cfg(test)]
mod tests {
    use rdkafka::ClientConfig;

    use super::*;

    /// librdkafka reports a fatal error (`FENCED_INSTANCE_ID` when another
    /// process joined with this process's instance id) as a `FATAL` log
    /// line: the loop's next settle fails, so the service stops.
    #[tokio::test]
    async fn a_fatal_client_error_fails_the_loop() {
        let consumer: BaseConsumer<DrainContext> = ClientConfig::new()
            .set("bootstrap.servers", "127.0.0.1:1")
            .set("group.id", "g")
            .create_with_context(DrainContext::default())
            .expect("consumer");
        let inflight = consumer.context().inflight().clone();
        let reporter = inflight.open("transform").await;
        assert!(!inflight.settle(&consumer).await, "no failure yet");
        consumer.context().log(
            RDKafkaLogLevel::Emerg,
            "FATAL",
            "Fatal error: Broker: Static consumer fenced by other consumer with same group.instance.id",
        );
        assert!(consumer.context().fatal().is_some());
        assert!(inflight.settle(&consumer).await, "the loop stops");
        drop(reporter);
        let (failure, _) = inflight.close(&consumer).await;
        let failure = failure.expect("fatal failure");
        assert!(matches!(failure, KafkaError::Fatal(_)), "{failure}");
        assert!(failure.to_string().contains("fenced"), "{failure}");
    }
}
