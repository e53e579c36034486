//! Writes that follow an acknowledged send (a replay's outcome and mark)
//! run in the background, so a lane can send its key's next record after
//! one broker round trip instead of three. At most a fixed number run at
//! once; the first failure stops the command.

use std::future::Future;
use std::sync::{Arc, Mutex};

use tokio::sync::Semaphore;
use tokio_util::task::TaskTracker;

/// Background writes in flight, at most this many.
pub const MAX_FOLLOWUPS: usize = 4096;

/// The background writes of one command.
#[derive(Debug, Clone)]
pub struct Followups {
    tracker: TaskTracker,
    permits: Arc<Semaphore>,
    failed: Arc<Mutex<Option<String>>>,
}

impl Followups {
    /// Room for `max` writes at once.
    pub fn new(max: usize) -> Self {
        Self {
            tracker: TaskTracker::new(),
            permits: Arc::new(Semaphore::new(max)),
            failed: Arc::new(Mutex::new(None)),
        }
    }

    /// An error once any write failed.
    pub fn check(&self) -> anyhow::Result<()> {
        match self.failed.lock().ok().and_then(|f| f.clone()) {
            Some(e) => Err(anyhow::anyhow!(e)),
            None => Ok(()),
        }
    }

    /// Starts `write`, waiting while `max` are in flight.
    pub async fn spawn(
        &self,
        write: impl Future<Output = anyhow::Result<()>> + Send + 'static,
    ) -> anyhow::Result<()> {
        self.check()?;
        let permit = self.permits.clone().acquire_owned().await?;
        let failed = self.failed.clone();
        self.tracker.spawn(async move {
            if let Err(e) = write.await
                && let Ok(mut f) = failed.lock()
            {
                f.get_or_insert_with(|| format!("{e:#}"));
            }
            drop(permit);
        });
        Ok(())
    }

    /// Waits for every write; the first failure, if any.
    pub async fn finish(&self) -> anyhow::Result<()> {
        self.tracker.close();
        self.tracker.wait().await;
        self.check()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    #[tokio::test]
    async fn every_write_finishes_before_finish_returns() {
        let f = Followups::new(2);
        let done = Arc::new(AtomicUsize::new(0));
        for _ in 0..10 {
            let done = done.clone();
            f.spawn(async move {
                tokio::task::yield_now().await;
                done.fetch_add(1, Ordering::Relaxed);
                Ok(())
            })
            .await
            .expect("spawn");
        }
        f.finish().await.expect("finish");
        assert_eq!(done.load(Ordering::Relaxed), 10);
    }

    #[tokio::test]
    async fn a_failed_write_is_reported() {
        let f = Followups::new(4);
        f.spawn(async { anyhow::bail!("mark not written") })
            .await
            .expect("spawn");
        let e = f.finish().await.expect_err("fails");
        assert!(e.to_string().contains("mark not written"));
    }
}
