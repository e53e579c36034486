//! Expiry: links idle longer than their flow's `expire_after` (default
//! 365 days) get tombstones. Idle means not written since (`updated_at`);
//! a capture link also counts as active while a write-back link follows it
//! (`from` links with `via_flow` = its flow and `record_id` = its entity
//! key) and is active itself. Each replica sweeps the links of the targets
//! it delivers to, every `min(shortest expire_after / 4, 1 h)` (at least
//! 1 s); two replicas of a target may both write a tombstone for the same
//! link, which is harmless.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use intops_events::{Link, now_micros};
use intops_flows::{DEFAULT_LINK_EXPIRY, FlowLink, Flows};
use intops_kafka::KafkaError;
use intops_runtime::CancellationToken;
use intops_runtime::metrics as m;

use super::LinkIndex;

/// Where tombstones go (the links topic in production).
pub trait Tombstones: std::fmt::Debug + Send + Sync + 'static {
    /// Writes a tombstone under `key`, acknowledged.
    fn write<'a>(
        &'a self,
        key: &'a str,
    ) -> Pin<Box<dyn Future<Output = Result<(), KafkaError>> + Send + 'a>>;
}

/// Longest time between sweeps.
const MAX_INTERVAL: Duration = Duration::from_secs(3600);
/// Shortest time between sweeps.
const MIN_INTERVAL: Duration = Duration::from_secs(1);

/// Each flow's `expire_after`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expiry {
    by_flow: HashMap<String, Duration>,
    default: Duration,
}

impl Default for Expiry {
    fn default() -> Self {
        Self::new(HashMap::new())
    }
}

impl Expiry {
    /// `by_flow`, and 365 days for any other flow.
    pub fn new(by_flow: HashMap<String, Duration>) -> Self {
        Self {
            by_flow,
            default: DEFAULT_LINK_EXPIRY,
        }
    }

    /// The flows file's `expire_after` of every flow with a `link`.
    pub fn from_flows(flows: &Flows) -> Self {
        Self::new(
            flows
                .flows
                .iter()
                .filter_map(|f| match &f.link {
                    Some(
                        FlowLink::Capture { expire_after, .. }
                        | FlowLink::From { expire_after, .. },
                    ) => Some((f.id.clone(), *expire_after)),
                    None => None,
                })
                .collect(),
        )
    }

    /// `flow`'s `expire_after` (365 days for a flow not in the file).
    pub fn of(&self, flow: &str) -> Duration {
        self.by_flow.get(flow).copied().unwrap_or(self.default)
    }

    /// Time between sweeps: a quarter of the shortest `expire_after`, at
    /// most an hour, at least a second.
    pub fn interval(&self) -> Duration {
        self.by_flow
            .values()
            .map(|d| *d / 4)
            .min()
            .unwrap_or(MAX_INTERVAL)
            .clamp(MIN_INTERVAL, MAX_INTERVAL)
    }
}

/// A link the sweeper removes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expired {
    /// Its flow.
    pub flow_id: String,
    /// Its entity key.
    pub entity_key: String,
    /// Its `updated_at` when found idle.
    pub updated_at: i64,
}

/// The links of `targets` idle at `now` (microseconds).
pub fn idle(
    index: &LinkIndex,
    expiry: &Expiry,
    targets: &HashSet<String>,
    now: i64,
) -> Vec<Expired> {
    let cutoff = |flow: &str| now.saturating_sub(micros(expiry.of(flow)));
    let mut found = Vec::new();
    index.for_each(|v| {
        if v.updated_at <= cutoff(v.flow_id) && targets.contains(v.target_id) {
            found.push((
                v.from,
                v.flow_id.to_string(),
                v.entity_key.to_string(),
                v.updated_at,
            ));
        }
    });
    // Capture links a recent write-back still follows stay.
    let captures: HashSet<(&str, &str)> = found
        .iter()
        .filter(|(from, ..)| !from)
        .map(|(_, flow, key, _)| (flow.as_str(), key.as_str()))
        .collect();
    let mut followed = HashSet::new();
    if !captures.is_empty() {
        index.for_each(|v| {
            if let (true, Some(via), Some(record_id)) = (v.from, v.via_flow, v.record_id)
                && captures.contains(&(via, record_id))
                && v.updated_at > cutoff(via)
            {
                followed.insert((via.to_string(), record_id.to_string()));
            }
        });
    }
    found
        .into_iter()
        .filter(|(from, flow, key, _)| *from || !followed.contains(&(flow.clone(), key.clone())))
        .map(|(_, flow_id, entity_key, updated_at)| Expired {
            flow_id,
            entity_key,
            updated_at,
        })
        .collect()
}

/// Removes the idle links of `targets` from the index and writes their
/// tombstones; how many. Stops at the first tombstone that cannot be
/// written (the next sweep goes on; a link removed here but not on the
/// topic comes back after a restart and is swept again).
pub async fn sweep(
    index: &LinkIndex,
    expiry: &Expiry,
    targets: &HashSet<String>,
    tombstones: &dyn Tombstones,
) -> usize {
    let mut written = 0;
    for e in idle(index, expiry, targets, now_micros()) {
        // Written to since it was found idle: not expired.
        if !index.expire_local(&e.flow_id, &e.entity_key, e.updated_at) {
            continue;
        }
        let key = Link::key_of(&e.flow_id, &e.entity_key);
        if let Err(error) = tombstones.write(&key).await {
            tracing::warn!(flow = %e.flow_id, %error, "cannot write a link's tombstone, sweeping again later");
            break;
        }
        metrics::counter!(m::LINK_EXPIRED, "flow" => e.flow_id.clone()).increment(1);
        written += 1;
    }
    if written > 0 {
        tracing::info!(expired = written, "expired idle links");
    }
    written
}

/// Sweeps every [`Expiry::interval`] until `shutdown`, each time only
/// after the index read the links topic up to its end: an index that lags
/// (or a follower that is stuck) would find links idle that another
/// replica just wrote, and its tombstones would remove them everywhere.
pub async fn run(
    index: Arc<LinkIndex>,
    syncer: Arc<super::sync::Syncer>,
    expiry: Expiry,
    targets: HashSet<String>,
    tombstones: Arc<dyn Tombstones>,
    shutdown: CancellationToken,
) {
    let every = expiry.interval();
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(every) => {}
        }
        if !syncer.sync().await {
            tracing::warn!(
                "links index behind the links topic: not sweeping expired links this time"
            );
            continue;
        }
        sweep(&index, &expiry, &targets, tombstones.as_ref()).await;
    }
}

fn micros(d: Duration) -> i64 {
    i64::try_from(d.as_micros()).unwrap_or(i64::MAX)
}

#[cfg(test)]
#[path = "sweeper_tests.rs"]
mod tests;
