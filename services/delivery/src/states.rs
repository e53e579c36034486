//! What this replica tells the monitor about its targets: whether it sends
//! (or is paused, and why) and its circuit breaker's state, written to
//! `<prefix>.target-states` (compacted, key `<target>|<instance>`) at start
//! and on every change. The gate and the breaker report here; one task
//! writes, the latest state of a target only, retrying while the broker is
//! away (a state is information, not data: a lost write is repaired by the
//! next change or restart). A graceful stop removes the replica's states
//! (tombstones); a killed replica's last states stay until it starts again
//! under the same instance id.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use backon::Retryable;
use intops_events::{RecordKind, TargetState, now_micros};
use intops_kafka::ServiceContext;
use intops_kafka::backoff::retry_delays;
use intops_runtime::CancellationToken;
use tokio::sync::mpsc;

/// The replica's current state per target, and who to tell of changes.
#[derive(Debug, Clone)]
pub(crate) struct Board {
    current: Arc<Mutex<HashMap<String, TargetState>>>,
    changed: mpsc::UnboundedSender<String>,
    instance: String,
}

impl Board {
    /// A board for replica `instance`, and the changes to write.
    pub fn new(instance: &str) -> (Self, mpsc::UnboundedReceiver<String>) {
        let (changed, rx) = mpsc::unbounded_channel();
        let board = Self {
            current: Arc::default(),
            changed,
            instance: instance.to_string(),
        };
        (board, rx)
    }

    /// `target` pauses (`Some(why)`) or sends again (`None`).
    pub fn paused(&self, target: &str, why: Option<String>) {
        self.update(target, |s| s.paused = why);
    }

    /// `target`'s circuit is now `circuit` (`closed`, `open`, `half_open`).
    pub fn circuit(&self, target: &str, circuit: &str) {
        self.update(target, |s| s.circuit = circuit.to_string());
    }

    fn update(&self, target: &str, change: impl FnOnce(&mut TargetState)) {
        let Ok(mut current) = self.current.lock() else {
            return;
        };
        let state = current
            .entry(target.to_string())
            .or_insert_with(|| TargetState {
                target_id: target.to_string(),
                instance: self.instance.clone(),
                paused: None,
                circuit: "closed".into(),
                at: 0,
            });
        let before = state.clone();
        change(state);
        if *state != before || before.at == 0 {
            state.at = now_micros();
            let _ = self.changed.send(target.to_string());
        }
    }

    /// The state of `target` now.
    pub fn get(&self, target: &str) -> Option<TargetState> {
        self.current.lock().ok()?.get(target).cloned()
    }

    /// Writes each changed target's latest state until `shutdown`.
    pub async fn run(
        self,
        mut changes: mpsc::UnboundedReceiver<String>,
        ctx: ServiceContext,
        shutdown: CancellationToken,
    ) -> anyhow::Result<()> {
        let topic = ctx.topics.target_states();
        ctx.ensure_topics(std::slice::from_ref(&topic)).await?;
        loop {
            let target = tokio::select! {
                () = shutdown.cancelled() => {
                    self.forget(&ctx, &topic).await;
                    return Ok(());
                }
                t = changes.recv() => match t {
                    Some(t) => t,
                    None => return Ok(()),
                },
            };
            let Some(state) = self.get(&target) else {
                continue;
            };
            let key = TargetState::key_of(&state.target_id, &state.instance);
            let write = || ctx.publish(&topic, RecordKind::TargetState, key.as_bytes(), &state);
            let written = tokio::select! {
                () = shutdown.cancelled() => return Ok(()),
                r = write
                    .retry(retry_delays(Duration::from_millis(200), Duration::from_secs(10)))
                    .when(intops_kafka::KafkaError::is_retryable) => r,
            };
            if let Err(e) = written {
                tracing::warn!(target_id = %target, error = %e, "target state not written; the next change writes it");
            }
        }
    }
}

impl Board {
    /// On a graceful stop: a tombstone for each of this replica's states,
    /// so a replica that is gone (a pod replaced by a rollout) does not
    /// keep showing its last state. One try each: a kill leaves the record.
    async fn forget(&self, ctx: &ServiceContext, topic: &str) {
        let keys: Vec<String> = match self.current.lock() {
            Ok(current) => current
                .values()
                .map(|s| TargetState::key_of(&s.target_id, &s.instance))
                .collect(),
            Err(_) => return,
        };
        for key in keys {
            if let Err(e) = ctx.producer.send_tombstone(topic, key.as_bytes()).await {
                tracing::warn!(key = %key, error = %e, "target state not removed at stop");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_change_is_told_once_and_keeps_the_other_half() {
        let (board, mut rx) = Board::new("delivery-1");
        board.circuit("crm", "closed");
        board.paused("crm", None);
        assert_eq!(
            rx.try_recv().ok().as_deref(),
            Some("crm"),
            "the first state is told"
        );
        assert!(rx.try_recv().is_err(), "no change, nothing told");
        board.paused("crm", Some("target answered 401".into()));
        board.circuit("crm", "open");
        assert_eq!(rx.try_recv().ok().as_deref(), Some("crm"));
        assert_eq!(rx.try_recv().ok().as_deref(), Some("crm"));
        let s = board.get("crm").expect("state");
        assert_eq!(
            (s.paused.as_deref(), s.circuit.as_str(), s.instance.as_str()),
            (Some("target answered 401"), "open", "delivery-1")
        );
    }
}
