//! A target's circuit breaker: after `failures` consecutive retryable
//! failures (across all lanes) no lane calls the target for `open_for`;
//! then exactly one request goes out as a probe, and its answer closes the
//! circuit or opens it again.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use intops_flows::CircuitBreaker;
use intops_runtime::CancellationToken;
use intops_runtime::metrics as m;
use tokio::sync::watch;

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

/// One target's breaker, shared by its lanes.
#[derive(Debug)]
pub struct Breaker {
    target: String,
    settings: CircuitBreaker,
    state: Arc<watch::Sender<Circuit>>,
    failures: AtomicU32,
}

impl Breaker {
    /// A closed breaker for `target`.
    pub fn new(target: &str, settings: CircuitBreaker) -> Self {
        let breaker = Self {
            target: target.to_string(),
            settings,
            state: Arc::new(watch::Sender::new(Circuit::Closed)),
            failures: AtomicU32::new(0),
        };
        publish(&breaker.target, Circuit::Closed);
        breaker
    }

    /// Waits until an attempt may go out; `None` when shutdown came first.
    pub async fn admit(&self, shutdown: &CancellationToken) -> Option<Permit> {
        let mut rx = self.state.subscribe();
        loop {
            let mut permit = None;
            self.state.send_if_modified(|c| match c {
                Circuit::Closed => {
                    permit = Some(Permit::Normal);
                    false
                }
                Circuit::HalfOpen { probe_taken: false } => {
                    *c = Circuit::HalfOpen { probe_taken: true };
                    permit = Some(Permit::Probe);
                    true
                }
                _ => false,
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
        match (permit, verdict) {
            (_, Verdict::Answered) => {
                self.failures.store(0, Ordering::Relaxed);
                if permit == Permit::Probe {
                    self.set(Circuit::Closed);
                    tracing::info!(target = %self.target, "circuit closed: the probe got an answer");
                }
            }
            (Permit::Probe, Verdict::Failed) => self.open(),
            (Permit::Normal, Verdict::Failed) => {
                let n = self.failures.fetch_add(1, Ordering::Relaxed) + 1;
                if self.settings.failures > 0
                    && n >= self.settings.failures
                    && *self.state.borrow() == Circuit::Closed
                {
                    self.open();
                }
            }
        }
    }

    fn open(&self) {
        self.failures.store(0, Ordering::Relaxed);
        self.set(Circuit::Open);
        tracing::warn!(
            target = %self.target,
            open_for_ms = self.settings.open_for.as_millis() as u64,
            "circuit open: the target keeps failing; one probe after the pause"
        );
        let (state, target, wait) = (
            self.state.clone(),
            self.target.clone(),
            self.settings.open_for,
        );
        tokio::spawn(async move {
            tokio::time::sleep(wait).await;
            let half = Circuit::HalfOpen { probe_taken: false };
            if state.send_if_modified(|c| {
                let open = *c == Circuit::Open;
                if open {
                    *c = half;
                }
                open
            }) {
                publish(&target, half);
            }
        });
    }

    fn set(&self, circuit: Circuit) {
        self.state.send_replace(circuit);
        publish(&self.target, circuit);
    }
}

fn publish(target: &str, circuit: Circuit) {
    let value = match circuit {
        Circuit::Closed => 0.0,
        Circuit::Open => 1.0,
        Circuit::HalfOpen { .. } => 2.0,
    };
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
        assert_eq!(*b.state.borrow(), Circuit::Open);

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
        assert_eq!(*b.state.borrow(), Circuit::Open);
        // The next half-open probe goes to the waiting lane; it succeeds.
        assert_eq!(second.await.expect("joined"), Some(Permit::Probe));
        b.record(Permit::Probe, Verdict::Answered);
        assert_eq!(*b.state.borrow(), Circuit::Closed);
        assert_eq!(b.admit(&stop).await, Some(Permit::Normal));
    }

    #[tokio::test]
    async fn zero_failures_never_opens() {
        let b = breaker(0);
        for _ in 0..100 {
            b.record(Permit::Normal, Verdict::Failed);
        }
        assert_eq!(*b.state.borrow(), Circuit::Closed);
    }
}
