//! Whether a group member holds partitions, and the readiness rule built on
//! it: a member that has held no partition for longer than a grace period
//! while its group has records left to process reports not ready.
//!
//! That is the state a crash loop can leave a group in on a broker that
//! keeps a dead member's partitions (tansu 0.6: a member killed while it
//! was still joining held every partition; its replacement got none, and
//! the stage stalled). Static membership ([`INSTANCE_ID_ENV`]) prevents
//! it; readiness makes it visible when it happens anyway. An idle member
//! of a group that keeps up (more replicas than partitions, nothing left
//! to process) stays ready.
//!
//! [`INSTANCE_ID_ENV`]: crate::config::INSTANCE_ID_ENV

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use intops_runtime::Readiness;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Offset, TopicPartitionList};
use tokio_util::sync::CancellationToken;

use crate::drain::GroupConsumer;
use crate::{KafkaError, KafkaSettings};

/// How many partitions a member holds, and since when it holds none.
#[derive(Debug)]
pub struct Assignment {
    held: AtomicUsize,
    /// Rebalances seen (assignments and revocations).
    generation: AtomicU64,
    /// When `held` last went to or from zero (creation at first).
    since: std::sync::Mutex<Instant>,
}

impl Default for Assignment {
    fn default() -> Self {
        Self {
            held: AtomicUsize::new(0),
            generation: AtomicU64::new(0),
            since: std::sync::Mutex::new(Instant::now()),
        }
    }
}

impl Assignment {
    /// Records the member's assignment after a rebalance (the rebalance
    /// callback does; public for tests of what depends on it).
    pub fn set(&self, held: usize) {
        let before = self.held.swap(held, Ordering::Relaxed);
        self.generation.fetch_add(1, Ordering::SeqCst);
        if (before == 0) != (held == 0)
            && let Ok(mut since) = self.since.lock()
        {
            *since = Instant::now();
        }
    }

    /// How many rebalances changed the member's assignment so far: a
    /// record of a partition assigned after `generation()` returned `g`
    /// is handled only once it returns more than `g`.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::SeqCst)
    }

    /// Partitions held now.
    pub fn held(&self) -> usize {
        self.held.load(Ordering::Relaxed)
    }

    /// How long the member has held no partition; `None` while it holds
    /// some.
    pub fn idle_for(&self) -> Option<Duration> {
        if self.held() > 0 {
            return None;
        }
        self.since.lock().ok().map(|since| since.elapsed())
    }
}

/// The readiness rule: not ready when the member has held no partition for
/// longer than `grace` and its group has records left (`lag`, `None` when
/// it could not be read: the broker check reports that).
pub fn starved(idle_for: Option<Duration>, grace: Duration, lag: Option<i64>) -> bool {
    idle_for.is_some_and(|idle| idle > grace) && lag.is_some_and(|lag| lag > 0)
}

/// Keeps readiness check `partitions <group>` true unless `consumer` (a
/// member of `group`) is [`starved`], until `shutdown`. The group's lag on
/// the subscribed topics is read with a client of its own that never joins
/// the group, only while the member has been idle past `grace`.
pub fn watch(
    consumer: &GroupConsumer,
    kafka: &KafkaSettings,
    group: &str,
    readiness: Readiness,
    grace: Duration,
    shutdown: CancellationToken,
) -> Result<impl std::future::Future<Output = ()> + Send + 'static, KafkaError> {
    let assignment = consumer.context().assignment().clone();
    let topics: Vec<String> = consumer
        .subscription()
        .map_err(|e| KafkaError::Config(e.to_string()))?
        .elements()
        .iter()
        .map(|e| e.topic().to_string())
        .collect();
    let every = (grace / 6).clamp(Duration::from_secs(1), Duration::from_secs(10));
    let mut config = kafka.consumer_config(group);
    config.remove("group.instance.id");
    let reader: Arc<BaseConsumer> = Arc::new(
        config
            .create()
            .map_err(|e| KafkaError::Config(e.to_string()))?,
    );
    let check = format!("partitions {group}");
    let group = group.to_string();
    readiness.set(&check, true);
    Ok(async move {
        let mut was_starved = false;
        loop {
            let idle_for = assignment.idle_for();
            let lag = if idle_for.is_some_and(|idle| idle > grace) {
                let (reader, topics) = (reader.clone(), topics.clone());
                crate::blocking(move || topics.iter().map(|t| lag(&reader, t)).sum())
                    .await
                    .ok()
            } else {
                None
            };
            let now_starved = starved(idle_for, grace, lag);
            if now_starved != was_starved {
                if now_starved {
                    tracing::warn!(
                        group = %group,
                        idle_s = idle_for.unwrap_or_default().as_secs(),
                        lag = lag.unwrap_or_default(),
                        "holding no partition while the group has records left; not ready"
                    );
                } else {
                    tracing::info!(group = %group, "partitions assigned or group caught up; ready");
                }
                was_starved = now_starved;
            }
            readiness.set(&check, !now_starved);
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(every) => {}
            }
        }
    })
}

/// Records of `topic` after `consumer`'s group's committed offsets (from
/// the start of the partition where the group committed nothing), read
/// with OffsetFetch and ListOffsets without joining the group. Blocks up
/// to seconds per call: from async code, call it inside [`crate::blocking`].
pub fn lag(consumer: &BaseConsumer, topic: &str) -> Result<i64, KafkaError> {
    let timeout = Duration::from_secs(5);
    let unavailable = |e: rdkafka::error::KafkaError| KafkaError::Unavailable(e.to_string());
    let partitions = crate::topics::partitions(consumer, topic, timeout)?;
    let mut tpl = TopicPartitionList::new();
    for p in &partitions {
        tpl.add_partition(topic, *p);
    }
    let committed = consumer
        .committed_offsets(tpl, timeout)
        .map_err(unavailable)?;
    let mut total = 0;
    for p in partitions {
        let (low, high) = consumer
            .fetch_watermarks(topic, p, timeout)
            .map_err(unavailable)?;
        let at = match committed.find_partition(topic, p).map(|e| e.offset()) {
            Some(Offset::Offset(o)) => o.max(low),
            _ => low,
        };
        total += (high - at).max(0);
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    const GRACE: Duration = Duration::from_secs(60);

    #[test]
    fn idle_past_the_grace_with_lag_is_not_ready() {
        let long = Some(Duration::from_secs(61));
        assert!(starved(long, GRACE, Some(1)));
        // Holding partitions, inside the grace (a rebalance), a group with
        // nothing left, or lag unknown: ready.
        assert!(!starved(None, GRACE, Some(1_000)));
        assert!(!starved(Some(Duration::from_secs(59)), GRACE, Some(1_000)));
        assert!(!starved(long, GRACE, Some(0)));
        assert!(!starved(long, GRACE, None));
    }

    #[test]
    fn idle_time_counts_from_losing_the_last_partition() {
        let a = Assignment::default();
        assert!(a.idle_for().is_some(), "idle until first assigned");
        a.set(3);
        assert_eq!(a.idle_for(), None);
        assert_eq!(a.held(), 3);
        a.set(0);
        let idle = a.idle_for().expect("idle again");
        assert!(idle < Duration::from_secs(5), "{idle:?}");
        // Staying at zero keeps the start of the idle period.
        std::thread::sleep(Duration::from_millis(20));
        a.set(0);
        assert!(a.idle_for().expect("idle") >= Duration::from_millis(20));
    }
}
