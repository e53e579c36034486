//! Work spread over lanes by key: one key's items are handled one at a
//! time, in the order they were pushed; different keys proceed in
//! parallel. Replays and rewinds keep one entity's records in order this
//! way while many entities are in flight.

use std::future::Future;
use std::hash::{DefaultHasher, Hash, Hasher};

use tokio::sync::mpsc;
use tokio::task::JoinSet;

/// Lanes of a replay or rewind: records in flight at once, at most.
pub const LANES: usize = 1024;

/// A fixed set of lanes, each a task handling its items in order.
#[derive(Debug)]
pub struct Lanes<T> {
    senders: Vec<mpsc::Sender<T>>,
    tasks: JoinSet<anyhow::Result<()>>,
}

impl<T: Send + 'static> Lanes<T> {
    /// `count` lanes (at least one), each calling `handler` per item.
    pub fn new<F, Fut>(count: usize, handler: F) -> Self
    where
        F: Fn(T) -> Fut + Clone + Send + 'static,
        Fut: Future<Output = anyhow::Result<()>> + Send,
    {
        let mut senders = Vec::new();
        let mut tasks = JoinSet::new();
        for _ in 0..count.max(1) {
            let (tx, mut rx) = mpsc::channel::<T>(4);
            let handler = handler.clone();
            tasks.spawn(async move {
                while let Some(item) = rx.recv().await {
                    handler(item).await?;
                }
                Ok(())
            });
            senders.push(tx);
        }
        Self { senders, tasks }
    }

    /// Queues `item` on the lane of `key`, waiting while that lane is full.
    /// Fails once a lane failed (the error comes from [`Lanes::finish`]).
    pub async fn push(&self, key: &[u8], item: T) -> Result<(), LaneClosed> {
        let mut hasher = DefaultHasher::new();
        key.hash(&mut hasher);
        let lane = (hasher.finish() % self.senders.len() as u64) as usize;
        self.senders[lane].send(item).await.map_err(|_| LaneClosed)
    }

    /// Waits for every queued item; the first lane error, if any.
    pub async fn finish(mut self) -> anyhow::Result<()> {
        self.senders.clear();
        let mut first = Ok(());
        while let Some(joined) = self.tasks.join_next().await {
            let result = joined.map_err(anyhow::Error::from).and_then(|r| r);
            if first.is_ok() && result.is_err() {
                first = result;
                self.tasks.abort_all();
            }
        }
        first
    }
}

/// A lane stopped after an error.
#[derive(Debug)]
pub struct LaneClosed;

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    #[tokio::test]
    async fn one_keys_items_keep_their_order() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let record = seen.clone();
        let lanes = Lanes::new(8, move |(key, n): (u8, u32)| {
            let record = record.clone();
            async move {
                // Items yield a varying number of times, so without the
                // lanes one key's later items could finish first.
                for _ in 0..(50 - n) % 7 {
                    tokio::task::yield_now().await;
                }
                record.lock().expect("lock").push((key, n));
                Ok(())
            }
        });
        for n in 0..50u32 {
            let key = (n % 5) as u8;
            lanes.push(&[key], (key, n)).await.expect("push");
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
        let lanes = Lanes::new(2, |n: u32| async move {
            anyhow::ensure!(n != 3, "item {n} failed");
            Ok(())
        });
        for n in 0..10u32 {
            if lanes.push(&n.to_be_bytes(), n).await.is_err() {
                break;
            }
        }
        let error = lanes.finish().await.expect_err("fails");
        assert!(error.to_string().contains("item 3 failed"));
    }
}
