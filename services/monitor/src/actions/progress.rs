//! The console's replays: one that writes at a time per monitor, run to
//! its end even when the caller hangs up, its progress and result kept
//! for `GET /api/v1/replays/latest`.

use std::sync::{Arc, Mutex};

use intops_events::now_micros;
use intops_kafka::ServiceContext;
use intops_ops::Watch;
use intops_ops::dlq::{Replay, Report, replay};
use serde::Serialize;

/// Warnings kept per replay.
const MAX_WARNINGS: usize = 20;

/// The replay running or last run.
#[derive(Debug, Clone, Default)]
pub(crate) struct Replays {
    latest: Arc<Mutex<Latest>>,
}

/// What `GET /api/v1/replays/latest` shows.
#[derive(Debug, Clone, Default, Serialize)]
pub(crate) struct Latest {
    pub running: bool,
    pub replay_id: Option<String>,
    pub operator: Option<String>,
    pub started_at: Option<i64>,
    pub finished_at: Option<i64>,
    pub sent: i64,
    pub parked: i64,
    pub warnings: Vec<String>,
    pub result: Option<serde_json::Value>,
    pub error: Option<String>,
}

/// Why a replay did not report.
#[derive(Debug)]
pub(crate) enum RunError {
    /// Another replay is running (its id, when known).
    Busy(String),
    /// The replay failed.
    Failed(anyhow::Error),
}

impl Replays {
    /// The replay running or last run.
    pub fn latest(&self) -> Latest {
        self.latest.lock().map(|l| l.clone()).unwrap_or_default()
    }

    /// Runs `request` in a task of its own (a dry run beside anything;
    /// a replay that writes only when none is running) and waits for it.
    pub async fn run(&self, ctx: ServiceContext, request: Replay) -> Result<Report, RunError> {
        if request.dry_run {
            return replay::run(&ctx, &request, Arc::new(Log))
                .await
                .map_err(RunError::Failed);
        }
        let task = self.start(ctx, request)?;
        match task.await {
            Ok(result) => result.map_err(RunError::Failed),
            Err(e) => {
                self.update(|l| {
                    l.running = false;
                    l.error = Some(format!("replay task ended: {e}"));
                });
                Err(RunError::Failed(anyhow::anyhow!("replay task ended: {e}")))
            }
        }
    }

    /// Starts a replay that writes, unless one is running; its progress
    /// and result are kept for [`Replays::latest`].
    pub fn start(
        &self,
        ctx: ServiceContext,
        request: Replay,
    ) -> Result<tokio::task::JoinHandle<anyhow::Result<Report>>, RunError> {
        {
            let mut latest = self
                .latest
                .lock()
                .map_err(|_| RunError::Failed(anyhow::anyhow!("replay state unreadable")))?;
            if latest.running {
                return Err(RunError::Busy(
                    latest
                        .replay_id
                        .clone()
                        .unwrap_or_else(|| "(starting)".into()),
                ));
            }
            *latest = Latest {
                running: true,
                operator: Some(request.operator.clone()),
                started_at: Some(now_micros()),
                ..Latest::default()
            };
        }
        let this = self.clone();
        let task = tokio::spawn(async move {
            // However the task ends (a panic too), the replay stops
            // counting as running, or every later one would get 409.
            let _running = Running(this.clone());
            let watch = Arc::new(Console {
                replays: this.clone(),
            });
            let result = replay::run(&ctx, &request, watch).await;
            this.update(|l| {
                l.running = false;
                l.finished_at = Some(now_micros());
                match &result {
                    Ok(report) => {
                        if let Report::Done(d) = report {
                            l.replay_id = Some(d.replay_id.clone());
                            l.sent = d.total("sent");
                            l.parked = d.total("parked");
                        }
                        l.result = Some(report.to_json());
                    }
                    Err(e) => l.error = Some(format!("{e:#}")),
                }
            });
            result
        });
        Ok(task)
    }

    fn update(&self, change: impl FnOnce(&mut Latest)) {
        if let Ok(mut l) = self.latest.lock() {
            change(&mut l);
        }
    }
}

/// Marks the replay ended when dropped, unless it ended with a result.
#[derive(Debug)]
struct Running(Replays);

impl Drop for Running {
    fn drop(&mut self) {
        self.0.update(|l| {
            if l.running {
                l.running = false;
                l.finished_at = Some(now_micros());
                l.error =
                    Some("the replay task ended without a result (see the monitor's log)".into());
            }
        });
    }
}

/// A replay's warnings and progress, logged and kept.
#[derive(Debug)]
struct Console {
    replays: Replays,
}

impl Watch for Console {
    fn warning(&self, text: &str) {
        tracing::warn!(detail = text, "replay skipped a record");
        self.replays.update(|l| {
            if l.warnings.len() < MAX_WARNINGS {
                l.warnings.push(text.to_string());
            }
        });
    }

    fn progress(&self, replay_id: &str, sent: i64, parked: i64) {
        self.replays.update(|l| {
            l.replay_id = Some(replay_id.to_string());
            l.sent = sent;
            l.parked = parked;
        });
    }
}

/// Warnings of reads and dry runs, logged.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Log;

impl Watch for Log {
    fn warning(&self, text: &str) {
        tracing::warn!(detail = text, "dead-letter read skipped a record");
    }

    fn progress(&self, _replay_id: &str, _sent: i64, _parked: i64) {}
}
