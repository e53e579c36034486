//! The dead-letter cap: when more than `max_ratio` of the last `window`
//! records were dead-lettered (a bad deploy, not bad data), transform stops
//! processing — records are held, not dead-lettered — reports not ready,
//! and alerts through its log and a metric, until a valid flows file is
//! loaded or the service restarts.

use std::collections::VecDeque;
use std::sync::Mutex;

use intops_runtime::Readiness;
use intops_runtime::metrics as m;

const CHECK: &str = "dead_letter_cap";

/// The cap's state.
#[derive(Debug)]
pub(crate) struct DeadLetterCap {
    window: usize,
    max_ratio: f64,
    recent: Mutex<VecDeque<bool>>,
    tripped: Mutex<bool>,
    readiness: Readiness,
}

impl DeadLetterCap {
    pub(crate) fn new(window: usize, max_ratio: f64, readiness: Readiness) -> Self {
        readiness.set(CHECK, true);
        metrics::gauge!(m::TRANSFORM_CAP_TRIPPED).set(0.0);
        Self {
            window,
            max_ratio,
            recent: Mutex::new(VecDeque::new()),
            tripped: Mutex::new(false),
            readiness,
        }
    }

    /// Whether processing is stopped.
    pub(crate) fn is_tripped(&self) -> bool {
        self.tripped.lock().map(|t| *t).unwrap_or(true)
    }

    /// Records one finished record; trips the cap when the window holds
    /// too many dead letters.
    pub(crate) fn record(&self, dead_lettered: bool) {
        if self.window == 0 {
            return;
        }
        let Ok(mut recent) = self.recent.lock() else {
            return;
        };
        recent.push_back(dead_lettered);
        while recent.len() > self.window {
            recent.pop_front();
        }
        let failed = recent.iter().filter(|f| **f).count();
        let over =
            recent.len() == self.window && failed as f64 > self.max_ratio * self.window as f64;
        if over
            && let Ok(mut tripped) = self.tripped.lock()
            && !*tripped
        {
            *tripped = true;
            self.readiness.set(CHECK, false);
            metrics::gauge!(m::TRANSFORM_CAP_TRIPPED).set(1.0);
            tracing::error!(
                failed,
                window = self.window,
                max_ratio = self.max_ratio,
                "dead-letter cap tripped: most recent records failed, transform stops processing until a valid flows file is loaded"
            );
        }
    }

    /// Clears the window and resumes processing (after a reload).
    pub(crate) fn reset(&self) {
        if let Ok(mut recent) = self.recent.lock() {
            recent.clear();
        }
        if let Ok(mut tripped) = self.tripped.lock() {
            if *tripped {
                tracing::info!("dead-letter cap reset, transform resumes");
            }
            *tripped = false;
        }
        self.readiness.set(CHECK, true);
        metrics::gauge!(m::TRANSFORM_CAP_TRIPPED).set(0.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trips_over_the_ratio_and_resets() {
        let readiness = Readiness::default();
        let cap = DeadLetterCap::new(4, 0.5, readiness.clone());
        for f in [true, false, true] {
            cap.record(f);
        }
        assert!(!cap.is_tripped(), "window not full yet");
        cap.record(false);
        assert!(!cap.is_tripped(), "2 of 4 is not more than half");
        cap.record(true);
        assert!(!cap.is_tripped(), "still 2 of the last 4");
        cap.record(true);
        assert!(cap.is_tripped(), "3 of the last 4 failed");
        assert!(!readiness.is_ready());
        cap.reset();
        assert!(!cap.is_tripped());
        assert!(readiness.is_ready());
    }

    #[test]
    fn a_zero_window_disables_it() {
        let cap = DeadLetterCap::new(0, 0.0, Readiness::default());
        for _ in 0..100 {
            cap.record(true);
        }
        assert!(!cap.is_tripped());
    }
}
