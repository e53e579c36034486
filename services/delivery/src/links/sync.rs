//! The sync on a lookup miss: before delivery treats an entity as not
//! linked it reads the links topic's high watermarks and waits (bounded)
//! until the follower has read up to them, so a link written by another
//! replica or process (before a rebalance moved the entity here) is seen.
//! Misses at the same time share one sync: a miss waits for a sync that
//! started after it missed, never for one that may have read the
//! watermarks before. Hits never sync.
//!
//! A capture flow's link for an entity is written only by the member
//! that holds the entity's deliveries partition, and this process's own
//! writes are in its index at once. So a consumer's misses sync only until
//! one sync has reached the topic's end since its partitions were last
//! assigned ([`Owned`]): on a stable assignment a create costs no broker
//! round trip for the lookup.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use intops_kafka::{Assignment, KafkaError};
use intops_runtime::metrics as m;

use super::LinkIndex;

/// Per partition of the links topic: (partition, low, high watermark).
pub type Ends = Vec<(i32, i64, i64)>;

/// Where the high watermarks come from (the broker in production).
pub trait Watermarks: std::fmt::Debug + Send + Sync + 'static {
    /// The links topic's watermarks now.
    fn fetch(&self) -> Pin<Box<dyn Future<Output = Result<Ends, KafkaError>> + Send + '_>>;
}

/// Whether one consumer's lookups still need a sync: true until a sync
/// that started after its latest rebalance reached the links topic's end.
#[derive(Debug)]
pub struct Owned {
    assignment: Arc<Assignment>,
    /// The assignment generation a reached sync started in (`u64::MAX`:
    /// none yet).
    synced: AtomicU64,
}

impl Owned {
    /// For the consumer whose assignment is `assignment`.
    pub fn new(assignment: Arc<Assignment>) -> Self {
        Self {
            assignment,
            synced: AtomicU64::new(u64::MAX),
        }
    }

    /// Whether the links of this consumer's entities are all in the index.
    pub fn is_synced(&self) -> bool {
        self.synced.load(Ordering::SeqCst) == self.assignment.generation()
    }

    /// Syncs with `syncer` unless [`Self::is_synced`].
    pub async fn sync(&self, syncer: &Syncer) {
        if self.is_synced() {
            return;
        }
        let generation = self.assignment.generation();
        if syncer.sync().await {
            self.synced.store(generation, Ordering::SeqCst);
        }
    }
}

/// Longest a sync waits (the watermarks and the follower) before the
/// lookup goes ahead with what the index has.
pub const SYNC_WITHIN: Duration = Duration::from_secs(10);

/// Shared syncs of one index.
#[derive(Debug)]
pub struct Syncer {
    index: Arc<LinkIndex>,
    watermarks: Option<Arc<dyn Watermarks>>,
    within: Duration,
    /// One sync at a time.
    running: tokio::sync::Mutex<()>,
    /// Syncs started.
    started: AtomicU64,
    /// The number of the last sync that finished (syncs are numbered from
    /// 1 as they start).
    finished: AtomicU64,
    /// Whether the last finished sync reached the topic's end.
    reached: std::sync::atomic::AtomicBool,
}

impl Syncer {
    /// Syncs `index` against `watermarks`, waiting at most `within`.
    pub fn new(index: Arc<LinkIndex>, watermarks: Arc<dyn Watermarks>, within: Duration) -> Self {
        Self {
            index,
            watermarks: Some(watermarks),
            within,
            running: tokio::sync::Mutex::new(()),
            started: AtomicU64::new(0),
            finished: AtomicU64::new(0),
            reached: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// A syncer that never syncs: the index is all there is (tests, tools).
    pub fn none(index: Arc<LinkIndex>) -> Self {
        Self {
            index,
            watermarks: None,
            within: Duration::ZERO,
            running: tokio::sync::Mutex::new(()),
            started: AtomicU64::new(0),
            finished: AtomicU64::new(0),
            reached: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// Syncs run so far.
    pub fn syncs(&self) -> u64 {
        self.finished.load(Ordering::SeqCst)
    }

    /// Returns once the index has read the links topic up to the high
    /// watermarks it has now (or the bound passed: then it warns);
    /// whether it reached them (always, without a broker).
    pub async fn sync(&self) -> bool {
        let Some(watermarks) = &self.watermarks else {
            return true;
        };
        let asked = self.started.load(Ordering::SeqCst);
        let _running = self.running.lock().await;
        if self.finished.load(Ordering::SeqCst) > asked {
            // a sync that started after this miss has finished
            return self.reached.load(Ordering::SeqCst);
        }
        let number = self.started.fetch_add(1, Ordering::SeqCst) + 1;
        let began = Instant::now();
        let synced = tokio::time::timeout(self.within, async {
            let ends = watermarks.fetch().await?;
            Ok::<bool, KafkaError>(self.index.reached(&ends, self.within).await)
        })
        .await;
        let reached = matches!(synced, Ok(Ok(true)));
        match synced {
            Ok(Ok(true)) => {}
            Ok(Ok(false)) | Err(_) => {
                tracing::warn!(
                    within_ms = self.within.as_millis() as u64,
                    "links index did not reach the links topic's end in time, going ahead with what it has"
                );
            }
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "cannot read the links topic's watermarks, going ahead with what the index has");
            }
        }
        self.reached.store(reached, Ordering::SeqCst);
        self.finished.store(number, Ordering::SeqCst);
        metrics::histogram!(m::LINK_SYNC_SECONDS).record(began.elapsed().as_secs_f64());
        reached
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;

    /// Watermarks from a list, counting the fetches.
    #[derive(Debug, Default)]
    struct Fixed {
        ends: Mutex<Ends>,
        fetches: AtomicU64,
    }

    impl Watermarks for Fixed {
        fn fetch(&self) -> Pin<Box<dyn Future<Output = Result<Ends, KafkaError>> + Send + '_>> {
            self.fetches.fetch_add(1, Ordering::SeqCst);
            let ends = self.ends.lock().expect("ends").clone();
            Box::pin(async move { Ok(ends) })
        }
    }

    #[tokio::test]
    async fn a_sync_waits_until_the_follower_reached_the_high_watermarks() {
        let index = Arc::new(LinkIndex::new());
        let fixed = Arc::new(Fixed::default());
        *fixed.ends.lock().expect("ends") = vec![(0, 0, 3), (1, 5, 5)];
        let syncer = Arc::new(Syncer::new(
            index.clone(),
            fixed.clone(),
            Duration::from_secs(30),
        ));
        index.read_position(0, 1);
        let task = tokio::spawn({
            let syncer = syncer.clone();
            async move { syncer.sync().await }
        });
        // Partition 1 is empty (low = high); partition 0 needs offset 2.
        tokio::task::yield_now().await;
        assert!(!task.is_finished());
        index.read_position(0, 2);
        let reached = tokio::time::timeout(Duration::from_secs(10), task)
            .await
            .expect("sync ends once reached")
            .expect("task");
        assert!(reached);
        assert_eq!(syncer.syncs(), 1);
    }

    #[tokio::test]
    async fn a_sync_gives_up_after_its_bound() {
        let index = Arc::new(LinkIndex::new());
        let fixed = Arc::new(Fixed::default());
        *fixed.ends.lock().expect("ends") = vec![(0, 0, 3)];
        let bound = Duration::from_millis(50);
        let syncer = Syncer::new(index, fixed, bound);
        let began = Instant::now();
        // Not reached: the sweeper must not trust the index now.
        assert!(!syncer.sync().await);
        assert!(began.elapsed() >= bound);
        assert_eq!(syncer.syncs(), 1);
    }

    #[tokio::test]
    async fn a_consumer_syncs_once_per_assignment() {
        let index = Arc::new(LinkIndex::new());
        let fixed = Arc::new(Fixed::default());
        *fixed.ends.lock().expect("ends") = vec![(0, 0, 1)];
        index.read_position(0, 0);
        let syncer = Syncer::new(index, fixed.clone(), Duration::from_secs(30));
        let assignment = Arc::new(Assignment::default());
        let owned = Owned::new(assignment.clone());
        // Before the first assignment, and after it: one sync each.
        owned.sync(&syncer).await;
        assert_eq!(fixed.fetches.load(Ordering::SeqCst), 1);
        owned.sync(&syncer).await;
        assert_eq!(fixed.fetches.load(Ordering::SeqCst), 1, "synced already");
        assignment.set(3);
        assert!(!owned.is_synced());
        owned.sync(&syncer).await;
        owned.sync(&syncer).await;
        assert_eq!(fixed.fetches.load(Ordering::SeqCst), 2);
        assert!(owned.is_synced());
    }

    #[tokio::test]
    async fn a_sync_that_did_not_reach_the_end_is_tried_again() {
        let index = Arc::new(LinkIndex::new());
        let fixed = Arc::new(Fixed::default());
        *fixed.ends.lock().expect("ends") = vec![(0, 0, 5)];
        let syncer = Syncer::new(index, fixed.clone(), Duration::from_millis(20));
        let owned = Owned::new(Arc::new(Assignment::default()));
        owned.sync(&syncer).await;
        owned.sync(&syncer).await;
        assert_eq!(fixed.fetches.load(Ordering::SeqCst), 2);
        assert!(!owned.is_synced());
    }

    #[tokio::test]
    async fn misses_at_the_same_time_share_a_sync() {
        let index = Arc::new(LinkIndex::new());
        let fixed = Arc::new(Fixed::default());
        *fixed.ends.lock().expect("ends") = vec![(0, 0, 1)];
        let syncer = Arc::new(Syncer::new(
            index.clone(),
            fixed.clone(),
            Duration::from_secs(30),
        ));
        let tasks: Vec<_> = (0..8)
            .map(|_| {
                let syncer = syncer.clone();
                tokio::spawn(async move { syncer.sync().await })
            })
            .collect();
        tokio::task::yield_now().await;
        index.read_position(0, 0);
        for t in tasks {
            tokio::time::timeout(Duration::from_secs(10), t)
                .await
                .expect("in time")
                .expect("task");
        }
        // The first miss's sync, and at most one more for the misses that
        // came while it ran.
        let fetches = fixed.fetches.load(Ordering::SeqCst);
        assert!((1..=2).contains(&fetches), "{fetches} fetches");
        // A miss after that syncs again.
        syncer.sync().await;
        assert_eq!(fixed.fetches.load(Ordering::SeqCst), fetches + 1);
    }
}
