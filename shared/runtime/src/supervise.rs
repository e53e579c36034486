//! Supervision of a service's background tasks: every task meant to live as
//! long as the service runs under a [`Supervisor`]. The first one that
//! fails or panics marks readiness false (check `task <name>`), cancels
//! the shutdown token so the whole service stops, and is the error the
//! service ends with (exit code 1). A task that returns `Ok` early simply
//! ends (for example, alerts with nothing to alert to).

use std::collections::HashMap;
use std::future::Future;

use tokio::task::{Id, JoinError, JoinSet};
use tokio_util::sync::CancellationToken;

use crate::Readiness;

/// A background task that failed or panicked.
#[derive(Debug, thiserror::Error)]
pub enum TaskFailed {
    /// The task returned an error.
    #[error("background task {name} failed")]
    Failed {
        /// The task's name.
        name: String,
        /// Its error.
        source: anyhow::Error,
    },
    /// The task panicked.
    #[error("background task {name} panicked: {message}")]
    Panicked {
        /// The task's name.
        name: String,
        /// The panic's message, when it had one.
        message: String,
    },
}

impl TaskFailed {
    /// The failed task's name.
    pub fn name(&self) -> &str {
        match self {
            Self::Failed { name, .. } | Self::Panicked { name, .. } => name,
        }
    }
}

/// What a supervised task may return: nothing, or a result.
pub trait TaskOutput {
    /// The output as a result.
    fn into_result(self) -> anyhow::Result<()>;
}

impl TaskOutput for () {
    fn into_result(self) -> anyhow::Result<()> {
        Ok(())
    }
}

impl<E: Into<anyhow::Error>> TaskOutput for Result<(), E> {
    fn into_result(self) -> anyhow::Result<()> {
        self.map_err(Into::into)
    }
}

/// Named background tasks of one service, tied to its readiness and its
/// shutdown token.
#[derive(Debug)]
pub struct Supervisor {
    tasks: JoinSet<anyhow::Result<()>>,
    names: HashMap<Id, String>,
    readiness: Readiness,
    shutdown: CancellationToken,
}

impl Supervisor {
    /// Supervises tasks of the service with `readiness` and `shutdown`.
    pub fn new(readiness: Readiness, shutdown: CancellationToken) -> Self {
        Self {
            tasks: JoinSet::new(),
            names: HashMap::new(),
            readiness,
            shutdown,
        }
    }

    /// Spawns `task` as `name`; it must end once the shutdown token is
    /// cancelled.
    pub fn spawn<F>(&mut self, name: impl Into<String>, task: F)
    where
        F: Future + Send + 'static,
        F::Output: TaskOutput,
    {
        let handle = self.tasks.spawn(async move { task.await.into_result() });
        self.names.insert(handle.id(), name.into());
    }

    /// Runs `main` (the service's own loop) beside the tasks. A task
    /// failure cancels the shutdown token, after which `main` is expected
    /// to end. Once `main` has ended the token is cancelled and every task
    /// awaited. Returns the first task failure if one came before `main`
    /// ended, else `main`'s error, else a failure seen while the tasks
    /// stopped.
    pub async fn run<T>(
        mut self,
        main: impl Future<Output = anyhow::Result<T>>,
    ) -> anyhow::Result<T> {
        let mut main = std::pin::pin!(main);
        let mut failed = None;
        let result = loop {
            tokio::select! {
                result = &mut main => break result,
                Some(joined) = self.tasks.join_next_with_id(), if !self.tasks.is_empty() => {
                    self.settle(joined, &mut failed);
                }
            }
        };
        self.shutdown.cancel();
        let mut late = None;
        while let Some(joined) = self.tasks.join_next_with_id().await {
            self.settle(joined, &mut late);
        }
        match (failed, result, late) {
            (Some(failed), result, _) => {
                if let Err(e) = result {
                    tracing::warn!(error = %format!("{e:#}"), "service loop also failed while stopping");
                }
                Err(failed.into())
            }
            (None, Err(e), _) => Err(e),
            (None, Ok(_), Some(late)) => Err(late.into()),
            (None, Ok(value), None) => Ok(value),
        }
    }

    /// Waits for every task to end; the first failure cancels the shutdown
    /// token and is returned once the others have ended.
    pub async fn join(mut self) -> Result<(), TaskFailed> {
        let mut failed = None;
        while let Some(joined) = self.tasks.join_next_with_id().await {
            self.settle(joined, &mut failed);
        }
        failed.map_or(Ok(()), Err)
    }

    /// Accounts for one ended task, keeping the first failure in `first`.
    fn settle(
        &mut self,
        joined: Result<(Id, anyhow::Result<()>), JoinError>,
        first: &mut Option<TaskFailed>,
    ) {
        let failure = match joined {
            Ok((id, Ok(()))) => {
                let name = self.names.remove(&id).unwrap_or_default();
                if !self.shutdown.is_cancelled() {
                    tracing::info!(task = %name, "background task ended");
                }
                None
            }
            Ok((id, Err(source))) => Some(TaskFailed::Failed {
                name: self.names.remove(&id).unwrap_or_default(),
                source,
            }),
            Err(e) => Some(TaskFailed::Panicked {
                name: self.names.remove(&e.id()).unwrap_or_default(),
                message: panic_message(e),
            }),
        };
        if let Some(failure) = failure {
            // Readiness first: a balancer stops sending work before the
            // service starts to stop.
            self.readiness
                .set(&format!("task {}", failure.name()), false);
            tracing::error!(task = %failure.name(), error = %failure, "background task failed, stopping the service");
            self.shutdown.cancel();
            first.get_or_insert(failure);
        }
    }
}

/// A panic's message, when it is a string.
fn panic_message(e: JoinError) -> String {
    if !e.is_panic() {
        return e.to_string();
    }
    let payload = e.into_panic();
    payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(no message)".into())
}

#[cfg(test)]
pub(crate) mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    fn supervisor() -> (Supervisor, Readiness, CancellationToken) {
        let readiness = Readiness::default();
        readiness.register("consumer");
        readiness.set("consumer", true);
        let shutdown = CancellationToken::new();
        (
            Supervisor::new(readiness.clone(), shutdown.clone()),
            readiness,
            shutdown,
        )
    }

    /// Awaits `stopping`, failing the test (rather than hanging it) if the
    /// service never stops.
    pub(crate) async fn stops<T>(stopping: impl Future<Output = T>) -> T {
        tokio::time::timeout(std::time::Duration::from_secs(30), stopping)
            .await
            .expect("the service stops")
    }

    /// A task that panics with `message`.
    pub(crate) async fn explode(message: &'static str) {
        panic!("{message}");
    }

    /// A task that waits for shutdown, as long-lived tasks do.
    async fn until(shutdown: CancellationToken) {
        shutdown.cancelled().await;
    }

    #[tokio::test]
    async fn a_panicking_task_stops_the_service_and_is_named() {
        let (mut tasks, readiness, shutdown) = supervisor();
        tasks.spawn("lag", until(shutdown.clone()));
        tasks.spawn("evaluate", explode("evaluator broke"));
        // The service's own loop ends on shutdown.
        let stopped = shutdown.clone();
        let err = stops(tasks.run(async move {
            until(stopped).await;
            anyhow::Ok(())
        }))
        .await
        .expect_err("the panic is the error");
        let failed = err.downcast_ref::<TaskFailed>().expect("a task failure");
        assert!(matches!(failed, TaskFailed::Panicked { .. }), "{failed:?}");
        assert_eq!(failed.name(), "evaluate");
        assert!(err.to_string().contains("evaluator broke"), "{err}");
        assert!(shutdown.is_cancelled());
        assert_eq!(readiness.not_ready(), vec!["task evaluate".to_string()]);
    }

    #[tokio::test]
    async fn readiness_is_false_before_the_service_loop_ends() {
        let (mut tasks, readiness, shutdown) = supervisor();
        tasks.spawn("watch", async { anyhow::bail!("watch lost") });
        let ready_when_stopping = Arc::new(Mutex::new(None));
        let main = {
            let (shutdown, readiness) = (shutdown.clone(), readiness.clone());
            let seen = ready_when_stopping.clone();
            async move {
                shutdown.cancelled().await;
                *seen.lock().expect("lock") = Some(readiness.is_ready());
                anyhow::Ok(())
            }
        };
        let err = stops(tasks.run(main)).await.expect_err("failed");
        assert!(format!("{err:#}").contains("watch lost"), "{err:#}");
        assert_eq!(*ready_when_stopping.lock().expect("lock"), Some(false));
    }

    #[tokio::test]
    async fn a_task_that_ends_well_early_does_not_stop_the_service() {
        let (mut tasks, readiness, shutdown) = supervisor();
        tasks.spawn("alerts", async {});
        tasks.spawn("lag", until(shutdown.clone()));
        let (done_tx, done_rx) = tokio::sync::oneshot::channel::<()>();
        let main = {
            let shutdown = shutdown.clone();
            async move {
                // Ends when the test says, not on shutdown.
                let _ = done_rx.await;
                anyhow::Ok(shutdown.is_cancelled())
            }
        };
        let run = tokio::spawn(tasks.run(main));
        tokio::task::yield_now().await;
        let _ = done_tx.send(());
        let cancelled_before_main_ended = stops(run).await.expect("join").expect("ok");
        assert!(!cancelled_before_main_ended);
        assert!(shutdown.is_cancelled(), "cancelled once main ended");
        assert!(readiness.is_ready());
    }

    #[tokio::test]
    async fn the_service_loop_error_wins_when_no_task_failed() {
        let (mut tasks, _, shutdown) = supervisor();
        tasks.spawn("lag", until(shutdown.clone()));
        let err = stops(
            tasks.run(async { anyhow::Result::<()>::Err(anyhow::anyhow!("consumer fatal")) }),
        )
        .await
        .expect_err("failed");
        assert_eq!(err.to_string(), "consumer fatal");
        assert!(err.downcast_ref::<TaskFailed>().is_none());
    }

    #[tokio::test]
    async fn join_returns_the_first_failure_after_the_rest_stop() {
        let (mut tasks, _, shutdown) = supervisor();
        tasks.spawn("target a", until(shutdown.clone()));
        tasks.spawn("target b", async {
            Err::<(), _>(std::io::Error::other("b is gone"))
        });
        let failed = stops(tasks.join()).await.expect_err("failed");
        assert_eq!(failed.name(), "target b");
        assert!(shutdown.is_cancelled());
    }
}
