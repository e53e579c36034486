//! The broker's side of the end-to-end figures: its CPU, read from /proc
//! (the local stack's tansu, by the PID file `deploy/local/start.sh`
//! writes), and the record-operations bound of the pipeline.

use std::time::Instant;

/// The local stack's broker process, if its PID file is there.
pub fn pid() -> Option<u32> {
    let dir = std::env::var("INTOPS_STACK_DIR").ok().or_else(|| {
        std::env::var("HOME")
            .ok()
            .map(|h| format!("{h}/.cache/intops/stack"))
    })?;
    std::fs::read_to_string(format!("{dir}/tansu.pid"))
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// The CPU a process used from `start` on.
pub struct CpuMeter {
    pid: Option<u32>,
    cpu: f64,
    at: Instant,
}

impl CpuMeter {
    pub fn start(pid: Option<u32>) -> Self {
        let cpu = pid
            .and_then(|p| crate::processes::usage(p).ok())
            .map_or(0.0, |u| u.1);
        Self {
            pid,
            cpu,
            at: Instant::now(),
        }
    }

    /// Percent of one core since `start`.
    pub fn percent(&self) -> Option<f64> {
        let now = crate::processes::usage(self.pid?).ok()?.1;
        let secs = self.at.elapsed().as_secs_f64();
        (secs > 0.0).then(|| 100.0 * (now - self.cpu) / secs)
    }
}

/// Records the broker writes per delivered event: the event, the
/// delivery request, the outcome.
pub const WRITES_PER_EVENT: f64 = 3.0;
/// Records the broker serves per delivered event: transform reads the
/// event, delivery the request, the monitor all three.
pub const READS_PER_EVENT: f64 = 5.0;

/// Events/s if the broker did nothing but this pipeline's record
/// operations, one after the other, each as fast as the raw phases
/// measured them: `1 / (writes / produce + reads / consume)`.
pub fn record_bound(produce_rate: f64, consume_rate: f64) -> f64 {
    1.0 / (WRITES_PER_EVENT / produce_rate + READS_PER_EVENT / consume_rate)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bound_adds_the_time_of_every_operation() {
        // 3 writes at 30/s and 5 reads at 50/s: 0.1 + 0.1 s per event.
        assert!((record_bound(30.0, 50.0) - 5.0).abs() < 1e-9);
    }
}
