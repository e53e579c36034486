//! Work spread over lanes by key: a fixed set of lanes, each a bounded
//! channel and the task that drains it; an item goes to the lane of its
//! key's hash. One key's items are handled one at a time, in the order
//! they were sent; different keys proceed in parallel; a full lane makes
//! its sender wait.
//!
//! The consumer loop runs its own lane task over each channel (see
//! `lane.rs`: dead letters, the cap's holds, acknowledgements); the CLI's
//! replays and rewinds give each lane a handler per item
//! ([`KeyedLanes::each`]), and the first failing item fails the run.

use std::future::Future;
use std::hash::{DefaultHasher, Hash, Hasher};

use tokio::sync::mpsc;
use tokio::task::{JoinError, JoinSet};

/// Lanes taking items of type `T`, whose tasks end with `R`.
#[derive(Debug)]
pub struct KeyedLanes<T, R = ()> {
    senders: Vec<mpsc::Sender<T>>,
    tasks: JoinSet<R>,
}

/// A lane's task ended (after a failure, or at shutdown) and takes no more
/// items.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the lane is closed")]
pub struct LaneClosed;

impl<T: Send + 'static, R: Send + 'static> KeyedLanes<T, R> {
    /// `count` lanes (at least one), each queueing up to `depth` items (at
    /// least one) for the task `lane` makes of its receiver.
    pub fn spawn<F, Fut>(count: usize, depth: usize, mut lane: F) -> Self
    where
        F: FnMut(mpsc::Receiver<T>) -> Fut,
        Fut: Future<Output = R> + Send + 'static,
    {
        let mut senders = Vec::new();
        let mut tasks = JoinSet::new();
        for _ in 0..count.max(1) {
            let (tx, rx) = mpsc::channel(depth.max(1));
            tasks.spawn(lane(rx));
            senders.push(tx);
        }
        Self { senders, tasks }
    }

    /// The lane of `key`: always the same one for the same key.
    pub fn lane_of<K: Hash + ?Sized>(&self, key: &K) -> usize {
        let mut hasher = DefaultHasher::new();
        key.hash(&mut hasher);
        (hasher.finish() % self.senders.len() as u64) as usize
    }

    /// Queues `item` on lane `lane` (from [`KeyedLanes::lane_of`]), waiting
    /// while that lane is full.
    pub async fn send_to(&self, lane: usize, item: T) -> Result<(), LaneClosed> {
        let sender = self.senders.get(lane).ok_or(LaneClosed)?;
        sender.send(item).await.map_err(|_| LaneClosed)
    }

    /// Queues `item` on the lane of `key`, waiting while that lane is full.
    pub async fn send<K: Hash + ?Sized>(&self, key: &K, item: T) -> Result<(), LaneClosed> {
        self.send_to(self.lane_of(key), item).await
    }

    /// Takes no more items: each lane's task ends after what it queued.
    pub fn close(&mut self) {
        self.senders.clear();
    }

    /// Closes the lanes and waits for every lane's task to end.
    pub async fn join(mut self) {
        self.close();
        while self.tasks.join_next().await.is_some() {}
    }
}

impl<T: Send + 'static, E: From<JoinError> + Send + 'static> KeyedLanes<T, Result<(), E>> {
    /// `count` lanes of `depth` items, each calling `handler` per item in
    /// order. A lane stops at its first error: sending to it fails with
    /// [`LaneClosed`] and [`KeyedLanes::finish`] returns the error.
    pub fn each<F, Fut>(count: usize, depth: usize, handler: F) -> Self
    where
        F: Fn(T) -> Fut + Clone + Send + 'static,
        Fut: Future<Output = Result<(), E>> + Send,
    {
        Self::spawn(count, depth, move |mut rx| {
            let handler = handler.clone();
            async move {
                while let Some(item) = rx.recv().await {
                    handler(item).await?;
                }
                Ok(())
            }
        })
    }

    /// Takes no more items and waits for every queued one; the first lane
    /// error (a panic too), after which the other lanes are stopped.
    pub async fn finish(mut self) -> Result<(), E> {
        self.close();
        let mut first = Ok(());
        while let Some(joined) = self.tasks.join_next().await {
            let result = joined.map_err(E::from).and_then(|r| r);
            if first.is_ok() && result.is_err() {
                first = result;
                self.tasks.abort_all();
            }
        }
        first
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    #[derive(Debug, thiserror::Error)]
    enum TestError {
        #[error("item {0} failed")]
        Item(u32),
        #[error(transparent)]
        Join(#[from] JoinError),
    }

    #[tokio::test]
    async fn one_keys_items_keep_their_order() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let record = seen.clone();
        let lanes = KeyedLanes::each(8, 4, move |(key, n): (u8, u32)| {
            let record = record.clone();
            async move {
                // Items yield a varying number of times, so without the
                // lanes one key's later items could finish first.
                for _ in 0..(50 - n) % 7 {
                    tokio::task::yield_now().await;
                }
                record.lock().expect("lock").push((key, n));
                Ok::<_, TestError>(())
            }
        });
        for n in 0..50u32 {
            let key = (n % 5) as u8;
            lanes.send(&[key][..], (key, n)).await.expect("send");
        }
        lanes.finish().await.expect("finish");
        let seen = seen.lock().expect("lock");
        assert_eq!(seen.len(), 50);
        for key in 0..5u8 {
            let order: Vec<u32> = seen
                .iter()
                .filter(|(k, _)| *k == key)
                .map(|(_, n)| *n)
                .collect();
            let mut sorted = order.clone();
            sorted.sort_unstable();
            assert_eq!(order, sorted, "key {key}");
        }
    }

    #[tokio::test]
    async fn a_failing_item_fails_the_run() {
        let lanes = KeyedLanes::each(2, 4, |n: u32| async move {
            if n == 3 {
                return Err(TestError::Item(n));
            }
            Ok(())
        });
        for n in 0..10u32 {
            if lanes.send(&n.to_be_bytes()[..], n).await.is_err() {
                break;
            }
        }
        let error = lanes.finish().await.expect_err("fails");
        assert!(matches!(error, TestError::Item(3)), "{error}");
    }

    #[tokio::test]
    async fn a_key_always_gets_the_same_lane() {
        let drain = |mut rx: mpsc::Receiver<u8>| async move { while rx.recv().await.is_some() {} };
        let lanes: KeyedLanes<u8> = KeyedLanes::spawn(16, 1, drain);
        let key: &[u8] = b"customer-42";
        let lane = lanes.lane_of(key);
        assert!(lane < 16);
        assert_eq!(lanes.lane_of(key), lane);
        assert_eq!(lanes.lane_of(&key.to_vec()[..]), lane);
        // The consumer loop's fallback key for records without one.
        let by_partition = lanes.lane_of(&("events", 3));
        assert_eq!(lanes.lane_of(&("events", 3)), by_partition);
        lanes.join().await;
    }
}
