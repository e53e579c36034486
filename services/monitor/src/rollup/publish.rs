//! Writes the rollups: at start, reads what `<prefix>.rollups` holds;
//! then, on a timer once the monitor has caught up, writes every hour
//! whose figures changed, each acknowledged.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use intops_events::{HourlyRollup, RecordKind, now_micros};
use intops_kafka::{KafkaError, ServiceContext, latest};
use intops_runtime::metrics as m;
use intops_runtime::{CancellationToken, Readiness};

use super::Rollups;

/// Creates `<prefix>.rollups` if missing and seeds `rollups` with what it
/// holds.
pub(crate) async fn load(
    ctx: &ServiceContext,
    rollups: &RwLock<Rollups>,
) -> Result<usize, KafkaError> {
    let topic = ctx.topics.rollups();
    ctx.ensure_topics(std::slice::from_ref(&topic)).await?;
    let kept = latest::read::<HourlyRollup>(ctx, &topic).await?;
    let n = kept.len();
    if let Ok(mut r) = rollups.write() {
        r.seed(kept.into_values(), now_micros());
    }
    Ok(n)
}

/// The writer of changed hours.
#[derive(Debug)]
pub(crate) struct Publisher {
    pub ctx: ServiceContext,
    pub rollups: Arc<RwLock<Rollups>>,
    pub readiness: Readiness,
    pub every: Duration,
    pub shutdown: CancellationToken,
}

impl Publisher {
    /// Writes every `every` until shutdown, and once more at shutdown.
    pub(crate) async fn run(self) -> Result<(), KafkaError> {
        let mut tick = tokio::time::interval(self.every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let stopping = tokio::select! {
                () = self.shutdown.cancelled() => true,
                _ = tick.tick() => false,
            };
            // Before the monitor caught up, an hour's counts are partial.
            if self.readiness.is_ready() {
                self.write_changed().await;
            }
            if stopping {
                return Ok(());
            }
        }
    }

    async fn write_changed(&self) {
        let records = match self.rollups.write() {
            Ok(mut r) => r.take_dirty(now_micros()),
            Err(_) => return,
        };
        let topic = self.ctx.topics.rollups();
        for (i, record) in records.iter().enumerate() {
            let written = self
                .ctx
                .publish(
                    &topic,
                    RecordKind::HourlyRollup,
                    record.key().as_bytes(),
                    record,
                )
                .await;
            if let Err(e) = written {
                tracing::warn!(topic = %topic, error = %e, "rollups not written, retrying at the next tick");
                if let Ok(mut r) = self.rollups.write() {
                    r.unwritten(&records[i..]);
                }
                return;
            }
            metrics::counter!(m::MONITOR_ROLLUPS_WRITTEN).increment(1);
        }
    }
}
