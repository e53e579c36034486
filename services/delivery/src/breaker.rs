//! A target's circuit breaker: after `failures` consecutive retryable
//! failures (across all lanes) no lane calls the target for `open_for`;
//! then exactly one request goes out as a probe, and its answer closes the
//! circuit or opens it again.

use std::sync::Arc;

use intops_flows::CircuitBreaker;
use intops_runtime::CancellationToken;
use intops_runtime::metrics as m;
use tokio::sync::watch;

use crate::states::Board;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Circuit {
    Closed,
    Open,
    HalfOpen { probe_taken: bool },
}

/// What an attempt may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Permit {
    /// The circuit is closed.
    Normal,
    /// This attempt is the half-open circuit's single probe.
    Probe,
}

/// How an attempt went, as the breaker counts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The target answered (2xx, or a status that is not retryable).
    Answered,
    /// A retryable failure: timeout, connection error, retryable status.
    Failed,
}

/// The circuit and the failure streak: pure transitions, tested without
/// time; [`Breaker`] shares it between lanes and runs the `open_for` timer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct State {
    circuit: Circuit,
    /// Consecutive retryable failures.
    failures: u32,
}

impl State {
    const CLOSED: Self = Self {
        circuit: Circuit::Closed,
        failures: 0,
    };

    /// A permit if an attempt may go out now: any while closed, the one
    /// probe while half-open.
    fn admit(&mut self) -> Option<Permit> {
        match self.circuit {
            Circuit::Closed => Some(Permit::Normal),
            Circuit::HalfOpen { probe_taken: false } => {
                self.circuit = Circuit::HalfOpen { probe_taken: true };
                Some(Permit::Probe)
            }
            _ => None,
        }
    }

    /// Counts an attempt's result against `threshold` consecutive failures
    /// (0: never open); the circuit it moved to, if it moved.
    fn record(&mut self, permit: Permit, verdict: Verdict, threshold: u32) -> Option<Circuit> {
        match (permit, verdict) {
            (_, Verdict::Answered) => {
                self.failures = 0;
                (permit == Permit::Probe).then(|| self.moved(Circuit::Closed))
            }
            (Permit::Probe, Verdict::Failed) => Some(self.moved(Circuit::Open)),
            (Permit::Normal, Verdict::Failed) => {
                self.failures = self.failures.saturating_add(1);
                (threshold > 0 && self.failures >= threshold && self.circuit == Circuit::Closed)
                    .then(|| self.moved(Circuit::Open))
            }
        }
    }

    /// `open_for` passed: an open circuit half-opens; `false` if it was not
    /// open (a probe closed it meanwhile).
    fn half_open(&mut self) -> bool {
        let open = self.circuit == Circuit::Open;
        if open {
            self.circuit = Circuit::HalfOpen { probe_taken: false };
        }
        open
    }

    fn moved(&mut self, circuit: Circuit) -> Circuit {
        if circuit == Circuit::Open {
            self.failures = 0;
        }
        self.circuit = circuit;
        circuit
    }
}

/// One target's breaker, shared by its lanes.
#[derive(Debug)]
pub struct Breaker {
    target: String,
    settings: CircuitBreaker,
    state: Arc<watch::Sender<State>>,
    /// Where the replica reports its targets' states (none in tests).
    board: Option<Board>,
}

impl Breaker {
    /// A closed breaker for `target`.
    #[cfg(test)]
    pub fn new(target: &str, settings: CircuitBreaker) -> Self {
        Self::reporting(target, settings, None)
    }

    /// [`Breaker::new`], its states also told to `board`.
    pub fn reporting(target: &str, settings: CircuitBreaker, board: Option<Board>) -> Self {
        let breaker = Self {
            target: target.to_string(),
            settings,
            state: Arc::new(watch::Sender::new(State::CLOSED)),
            board,
        };
        publish(&breaker.target, Circuit::Closed, breaker.board.as_ref());
        breaker
    }

    /// Waits until an attempt may go out; `None` when shutdown came first.
    pub async fn admit(&self, shutdown: &CancellationToken) -> Option<Permit> {
        let mut rx = self.state.subscribe();
        loop {
            let mut permit = None;
            self.state.send_if_modified(|s| {
                permit = s.admit();
                permit == Some(Permit::Probe)
            });
            if let Some(p) = permit {
                return Some(p);
            }
            tokio::select! {
                () = shutdown.cancelled() => return None,
                r = rx.changed() => r.ok()?,
            }
        }
    }

    /// Counts an attempt's result.
    pub fn record(&self, permit: Permit, verdict: Verdict) {
        let mut moved = None;
        self.state.send_if_modified(|s| {
            moved = s.record(permit, verdict, self.settings.failures);
            moved.is_some()
        });
        match moved {
            Some(Circuit::Closed) => {
                publish(&self.target, Circuit::Closed, self.board.as_ref());
                tracing::info!(target = %self.target, "circuit closed: the probe got an answer");
            }
            Some(Circuit::Open) => self.opened(),
            _ => {}
        }
    }

    /// Reports the open circuit and half-opens it after `open_for`.
    fn opened(&self) {
        publish(&self.target, Circuit::Open, self.board.as_ref());
        tracing::warn!(
            target = %self.target,
            open_for_ms = self.settings.open_for.as_millis() as u64,
            "circuit open: the target keeps failing; one probe after the pause"
        );
        let (state, target, wait, board) = (
            self.state.clone(),
            self.target.clone(),
            self.settings.open_for,
            self.board.clone(),
        );
        tokio::spawn(async move {
            tokio::time::sleep(wait).await;
            if state.send_if_modified(State::half_open) {
                publish(
                    &target,
                    Circuit::HalfOpen { probe_taken: false },
                    board.as_ref(),
                );
            }
        });
    }
}

fn publish(target: &str, circuit: Circuit, board: Option<&Board>) {
    let (value, name) = match circuit {
        Circuit::Closed => (0.0, "closed"),
        Circuit::Open => (1.0, "open"),
        Circuit::HalfOpen { .. } => (2.0, "half_open"),
    };
    if let Some(board) = board {
        board.circuit(target, name);
    }
    metrics::gauge!(m::DELIVERY_CIRCUIT_STATE, "target" => target.to_string()).set(value);
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn breaker(failures: u32) -> Arc<Breaker> {
        Arc::new(Breaker::new(
            "crm",
            CircuitBreaker {
                failures,
                open_for: Duration::from_millis(20),
            },
        ))
    }

    #[test]
    fn the_circuit_opens_after_a_streak_of_failures_then_half_opens_for_one_probe() {
        let mut s = State::CLOSED;
        for _ in 0..2 {
            assert_eq!(s.record(Permit::Normal, Verdict::Failed, 3), None);
        }
        // An answer ends the streak.
        assert_eq!(s.record(Permit::Normal, Verdict::Answered, 3), None);
        assert_eq!(s.failures, 0);
        for _ in 0..2 {
            assert_eq!(s.record(Permit::Normal, Verdict::Failed, 3), None);
        }
        assert_eq!(s.admit(), Some(Permit::Normal));
        assert_eq!(
            s.record(Permit::Normal, Verdict::Failed, 3),
            Some(Circuit::Open)
        );
        // Open: nothing goes out; late failures of attempts already out do
        // not open it again.
        assert_eq!(s.admit(), None);
        assert_eq!(s.record(Permit::Normal, Verdict::Failed, 1), None);
        // open_for passed: exactly one probe.
        assert!(s.half_open());
        assert_eq!(s.admit(), Some(Permit::Probe));
        assert_eq!(s.admit(), None);
        assert!(!s.half_open(), "only an open circuit half-opens");
    }

    #[test]
    fn a_failed_probe_opens_again_and_an_answered_one_closes() {
        let mut s = State {
            circuit: Circuit::HalfOpen { probe_taken: true },
            failures: 0,
        };
        assert_eq!(
            s.record(Permit::Probe, Verdict::Failed, 3),
            Some(Circuit::Open)
        );
        assert!(s.half_open());
        assert_eq!(s.admit(), Some(Permit::Probe));
        // A permanent answer is an answer: the target is reachable.
        assert_eq!(
            s.record(Permit::Probe, Verdict::Answered, 3),
            Some(Circuit::Closed)
        );
        assert_eq!(s.admit(), Some(Permit::Normal));
    }

    #[test]
    fn a_zero_threshold_never_opens() {
        let mut s = State::CLOSED;
        for _ in 0..100 {
            assert_eq!(s.record(Permit::Normal, Verdict::Failed, 0), None);
        }
        assert_eq!(s.circuit, Circuit::Closed);
    }

    #[tokio::test]
    async fn opens_after_consecutive_failures_and_lets_one_probe_through() {
        let b = breaker(3);
        let stop = CancellationToken::new();
        for _ in 0..2 {
            b.record(Permit::Normal, Verdict::Failed);
        }
        b.record(Permit::Normal, Verdict::Answered); // the streak resets
        for _ in 0..2 {
            b.record(Permit::Normal, Verdict::Failed);
        }
        assert_eq!(b.admit(&stop).await, Some(Permit::Normal));
        b.record(Permit::Normal, Verdict::Failed);
        assert_eq!(b.state.borrow().circuit, Circuit::Open);

        // Half-open after open_for: the first lane probes, a second waits.
        assert_eq!(b.admit(&stop).await, Some(Permit::Probe));
        let second = {
            let b = b.clone();
            let stop = stop.clone();
            tokio::spawn(async move { b.admit(&stop).await })
        };
        tokio::task::yield_now().await;
        assert!(!second.is_finished());
        b.record(Permit::Probe, Verdict::Failed); // open again
        assert_eq!(b.state.borrow().circuit, Circuit::Open);
        // The next half-open probe goes to the waiting lane; it succeeds.
        assert_eq!(second.await.expect("joined"), Some(Permit::Probe));
        b.record(Permit::Probe, Verdict::Answered);
        assert_eq!(b.state.borrow().circuit, Circuit::Closed);
        assert_eq!(b.admit(&stop).await, Some(Permit::Normal));
    }

    #[tokio::test]
    async fn zero_failures_never_opens() {
        let b = breaker(0);
        for _ in 0..100 {
            b.record(Permit::Normal, Verdict::Failed);
        }
        assert_eq!(b.state.borrow().circuit, Circuit::Closed);
    }
}
