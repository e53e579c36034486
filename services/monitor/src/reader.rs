//! Reads the events, deliveries and outcomes topics from their beginning
//! (no consumer group offsets: every replica rebuilds the same state) and
//! folds them into the lineage index and the flows' health.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use intops_events::{Codec, CodecError, DeadLetter, DeliveryRequest, IntegrationEvent, Outcome};
use intops_kafka::backoff::retry_delays;
use intops_kafka::{
    Headers as _, KafkaError, KafkaSettings, Message, Pace, Scan, Scanned, Start, dlq_headers,
};
use intops_runtime::metrics as m;
use intops_runtime::{CancellationToken, Readiness};

use crate::health::Health;
use crate::lineage::{Lineage, Location};
use crate::rollup::Rollups;

/// Which record type a topic holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TopicKind {
    Event,
    Request,
    Outcome,
    DeadLetter,
}

/// The reader's inputs.
#[derive(Debug)]
pub(crate) struct Reader {
    pub kafka: KafkaSettings,
    pub codec: Arc<Codec>,
    pub topics: Vec<(String, TopicKind)>,
    pub lineage: Arc<RwLock<Lineage>>,
    pub health: Arc<RwLock<Health>>,
    pub rollups: Arc<RwLock<Rollups>>,
    pub readiness: Readiness,
    pub shutdown: CancellationToken,
}

impl Reader {
    /// Reads until shutdown. Ready once it has caught up with the end of
    /// every partition as it was at start.
    pub(crate) async fn run(self) -> Result<(), KafkaError> {
        let names: Vec<String> = self.topics.iter().map(|(t, _)| t.clone()).collect();
        let kinds: HashMap<String, TopicKind> = self.topics.iter().cloned().collect();
        self.readiness.set("caught_up", false);
        // The monitor's view may lag by about a second: its fetches read
        // every partition of every topic it follows, and at the prompt
        // pace they would cost the broker more than the pipeline does.
        let mut scan = Scan::open_paced(
            &self.kafka,
            &names,
            Start::Beginning,
            true,
            Pace::Background,
        )
        .await?;
        tracing::info!(
            partitions = scan.assigned(),
            behind = scan.behind(),
            "monitor reading"
        );
        loop {
            let next = tokio::select! {
                () = self.shutdown.cancelled() => return Ok(()),
                next = scan.next_scanned() => next?,
            };
            match next {
                Some(Scanned::Record(message)) => {
                    let kind = kinds.get(message.topic()).copied();
                    if let (Some(kind), Some(bytes)) = (kind, message.payload()) {
                        let at = Location {
                            topic: message.topic().to_string(),
                            partition: message.partition(),
                            offset: message.offset(),
                        };
                        self.fold(kind, bytes, is_replay(&message), at).await;
                    }
                }
                Some(Scanned::CaughtUp) => {
                    tracing::info!("monitor caught up");
                    self.readiness.set("caught_up", true);
                }
                // A following scan does not end.
                None => return Ok(()),
            }
        }
    }

    async fn fold(&self, kind: TopicKind, bytes: &[u8], replayed: bool, at: Location) {
        let mut backoff = retry_delays(Duration::from_millis(200), Duration::from_secs(10));
        loop {
            let result = match kind {
                TopicKind::Event => self.codec.decode::<IntegrationEvent>(bytes).await.map(|e| {
                    self.write(|l| {
                        l.on_event(&e);
                        l.locate_event(&e.event_id, at.clone());
                    });
                    self.fold_health(|h| h.on_event(&e));
                    self.fold_rollups(|r| r.on_event(&e, replayed));
                }),
                TopicKind::Request => self.codec.decode::<DeliveryRequest>(bytes).await.map(|r| {
                    self.write(|l| {
                        l.on_request(&r);
                        l.locate_request(&r, at.clone());
                    });
                    self.fold_health(|h| h.on_request(&r));
                    self.fold_rollups(|ro| ro.on_request(&r, replayed));
                }),
                TopicKind::Outcome => self.codec.decode::<Outcome>(bytes).await.map(|o| {
                    self.write(|l| l.on_outcome(&o));
                    self.fold_health(|h| h.on_outcome(&o));
                    self.fold_rollups(|r| r.on_outcome(&o));
                }),
                TopicKind::DeadLetter => self
                    .codec
                    .decode::<DeadLetter>(bytes)
                    .await
                    .map(|d| self.write(|l| l.on_dead_letter(&d))),
            };
            let label = match kind {
                TopicKind::Event => "event",
                TopicKind::Request => "delivery_request",
                TopicKind::Outcome => "outcome",
                TopicKind::DeadLetter => "dead_letter",
            };
            match result {
                Ok(()) => {
                    metrics::counter!(m::MONITOR_RECORDS, "kind" => label).increment(1);
                    return;
                }
                Err(e @ CodecError::Registry(_)) => {
                    let delay = backoff.next().unwrap_or(Duration::from_secs(10));
                    tracing::warn!(error = %e, "registry unavailable, retrying");
                    tokio::select! {
                        () = self.shutdown.cancelled() => return,
                        () = tokio::time::sleep(delay) => {}
                    }
                }
                Err(e) => {
                    // The monitor only reads: an undecodable record is the
                    // writing stage's dead letter, not the monitor's.
                    tracing::warn!(kind = label, error = %e, "skipping undecodable record");
                    return;
                }
            }
        }
    }

    fn fold_health(&self, f: impl FnOnce(&mut Health)) {
        if let Ok(mut health) = self.health.write() {
            f(&mut health);
        }
    }

    fn fold_rollups(&self, f: impl FnOnce(&mut Rollups)) {
        if let Ok(mut rollups) = self.rollups.write() {
            f(&mut rollups);
        }
    }

    fn write(&self, f: impl FnOnce(&mut Lineage)) {
        if let Ok(mut lineage) = self.lineage.write() {
            f(&mut lineage);
            metrics::gauge!(m::MONITOR_TRACKED_EVENTS).set(lineage.len() as f64);
        }
    }
}

/// Whether a replay wrote `message` (it carries the replay count header).
fn is_replay(message: &impl Message) -> bool {
    message
        .headers()
        .is_some_and(|hs| hs.iter().any(|h| h.key == dlq_headers::REPLAY_COUNT))
}
