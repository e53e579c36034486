//! Whether a target may be called: open, paused by a misconfiguration
//! status (resumed by a successful probe or an operator), or paused by an
//! operator (resumed by an operator only). While paused, no lane sends.

use intops_runtime::metrics as m;
use intops_runtime::{CancellationToken, Readiness};
use tokio::sync::watch;

use crate::states::Board;

/// Why a target is paused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum State {
    /// Requests flow.
    Open,
    /// The target answered a pause status; probes may resume it.
    Misconfigured(String),
    /// An operator paused it (`intops target pause`).
    Operator(String),
}

/// One target's gate, shared by its lanes.
#[derive(Debug)]
pub struct Gate {
    target: String,
    state: watch::Sender<State>,
    readiness: Readiness,
    /// Where the replica reports its targets' states (none in tests).
    board: Option<Board>,
}

impl Gate {
    /// An open gate for `target`, reporting readiness as `target:<id>`.
    #[cfg(test)]
    pub fn new(target: &str, readiness: Readiness) -> Self {
        Self::reporting(target, readiness, None)
    }

    /// [`Gate::new`], its states also told to `board`.
    pub fn reporting(target: &str, readiness: Readiness, board: Option<Board>) -> Self {
        let gate = Self {
            target: target.to_string(),
            state: watch::Sender::new(State::Open),
            readiness,
            board,
        };
        gate.publish(&State::Open);
        gate
    }

    /// The current state.
    pub fn state(&self) -> State {
        self.state.borrow().clone()
    }

    /// Pauses the target (an operator pause is not undone by probes).
    pub fn pause(&self, state: State) {
        let changed = self.state.send_if_modified(|s| {
            let stronger = matches!(state, State::Operator(_)) || *s == State::Open;
            if stronger && *s != state {
                *s = state.clone();
                true
            } else {
                false
            }
        });
        if changed {
            match &state {
                State::Misconfigured(why) => tracing::error!(
                    target = %self.target,
                    reason = %why,
                    "target paused: it looks misconfigured (check its credentials); probing until it answers otherwise"
                ),
                State::Operator(why) => {
                    tracing::warn!(target = %self.target, reason = %why, "target paused by an operator");
                }
                State::Open => {}
            }
            self.publish(&state);
        }
    }

    /// Resumes the target. `by_probe` resumes only a misconfiguration
    /// pause; an operator's resume resumes any.
    pub fn resume(&self, by_probe: bool) {
        let changed = self.state.send_if_modified(|s| {
            let allowed = match s {
                State::Open => false,
                State::Misconfigured(_) => true,
                State::Operator(_) => !by_probe,
            };
            if allowed {
                *s = State::Open;
            }
            allowed
        });
        if changed {
            tracing::info!(target = %self.target, by_probe, "target resumed");
            self.publish(&State::Open);
        }
    }

    /// Waits until the gate is open; `false` when shutdown came first.
    pub async fn wait_open(&self, shutdown: &CancellationToken) -> bool {
        let mut rx = self.state.subscribe();
        tokio::select! {
            () = shutdown.cancelled() => false,
            r = rx.wait_for(|s| *s == State::Open) => r.is_ok(),
        }
    }

    /// Waits until the gate changes from `seen`, up to `max`.
    pub async fn changed_within(&self, max: std::time::Duration) {
        let mut rx = self.state.subscribe();
        let _ = tokio::time::timeout(max, rx.changed()).await;
    }

    fn publish(&self, state: &State) {
        let open = *state == State::Open;
        if let Some(board) = &self.board {
            let why = match state {
                State::Open => None,
                State::Misconfigured(why) | State::Operator(why) => Some(why.clone()),
            };
            board.paused(&self.target, why);
        }
        self.readiness.set(&format!("target:{}", self.target), open);
        metrics::gauge!(m::DELIVERY_TARGET_PAUSED, "target" => self.target.clone()).set(if open {
            0.0
        } else {
            1.0
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probes_do_not_undo_an_operator_pause() {
        let readiness = Readiness::default();
        let gate = Gate::new("crm", readiness.clone());
        assert!(readiness.is_ready());
        gate.pause(State::Misconfigured("401".into()));
        assert_eq!(readiness.not_ready(), ["target:crm"]);
        gate.pause(State::Operator("maintenance".into()));
        gate.resume(true);
        assert_eq!(gate.state(), State::Operator("maintenance".into()));
        gate.resume(false);
        assert_eq!(gate.state(), State::Open);
        assert!(readiness.is_ready());
    }

    #[tokio::test]
    async fn waiting_lanes_go_on_when_resumed() {
        let gate = std::sync::Arc::new(Gate::new("crm", Readiness::default()));
        gate.pause(State::Misconfigured("401".into()));
        let waiter = {
            let gate = gate.clone();
            tokio::spawn(async move { gate.wait_open(&CancellationToken::new()).await })
        };
        gate.resume(true);
        assert!(waiter.await.expect("joined"));
    }
}
