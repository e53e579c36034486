//! Counts over time in fixed buckets: what one flow or target did, kept
//! for the monitor's window and summed over any recent span. Memory is
//! bounded by the window: at most window / BUCKET buckets per series, and
//! only buckets in which something happened are kept.

use std::collections::VecDeque;

/// Width of one bucket, in seconds.
pub const BUCKET_SECS: i64 = 5;

/// Upper bounds (milliseconds) of the latency histogram's buckets; the last
/// one holds everything slower.
pub const LATENCY_BOUNDS_MS: [i64; 13] = [
    50,
    100,
    250,
    500,
    1_000,
    2_500,
    5_000,
    10_000,
    30_000,
    60_000,
    300_000,
    3_600_000,
    i64::MAX,
];

/// The index of the latency bucket holding `ms`.
pub fn latency_bucket(ms: i64) -> usize {
    LATENCY_BOUNDS_MS.partition_point(|bound| *bound < ms)
}

/// What happened in one bucket (or a sum of buckets).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// Delivery requests written (events the flow routed).
    pub routed: u64,
    /// Requests delivered.
    pub delivered: u64,
    /// Requests or events dead-lettered.
    pub dead_lettered: u64,
    /// Requests not sent because the target already had what they would
    /// write (`echo`): neither delivered nor failed.
    pub echoes: u64,
    /// Write-backs not sent because their entity has no link (`unrouted`,
    /// `no_link`): neither delivered nor failed.
    pub no_link: u64,
    /// Attempts beyond the first, over final results.
    pub retries: u64,
    /// Ingested → delivered latencies, by `LATENCY_BOUNDS_MS`.
    pub latency: [u64; 13],
}

impl Counts {
    fn add(&mut self, other: &Counts) {
        self.routed += other.routed;
        self.delivered += other.delivered;
        self.dead_lettered += other.dead_lettered;
        self.echoes += other.echoes;
        self.no_link += other.no_link;
        self.retries += other.retries;
        for (a, b) in self.latency.iter_mut().zip(other.latency) {
            *a += b;
        }
    }

    fn subtract(&mut self, other: &Counts) {
        self.routed -= other.routed;
        self.delivered -= other.delivered;
        self.dead_lettered -= other.dead_lettered;
        self.echoes -= other.echoes;
        self.no_link -= other.no_link;
        self.retries -= other.retries;
        for (a, b) in self.latency.iter_mut().zip(other.latency) {
            *a -= b;
        }
    }

    /// Records one delivered latency.
    pub fn observe_latency(&mut self, ms: i64) {
        if let Some(slot) = self.latency.get_mut(latency_bucket(ms)) {
            *slot += 1;
        }
    }

    /// The upper bound (ms) of the bucket holding the `q` quantile of the
    /// latencies; `None` without latencies. `i64::MAX` means slower than
    /// the largest bound.
    pub fn latency_quantile_ms(&self, q: f64) -> Option<i64> {
        intops_events::quantile_bound(&LATENCY_BOUNDS_MS, &self.latency, q)
    }

    /// Delivered share of final results that were sent (delivered or
    /// dead-lettered; echoes and write-backs without a link were not sent
    /// and count neither way); `None` without such results.
    pub fn success_ratio(&self) -> Option<f64> {
        let finals = self.delivered + self.dead_lettered;
        (finals > 0).then(|| self.delivered as f64 / finals as f64)
    }
}

/// Buckets in time order, keyed by their start (seconds since the epoch),
/// with their running sum (so the whole window costs nothing to read).
#[derive(Debug, Clone, Default)]
pub struct Series {
    buckets: VecDeque<(i64, Counts)>,
    total: Counts,
}

impl Series {
    /// Adds to the bucket of `at_micros`.
    pub fn record(&mut self, at_micros: i64, f: impl FnOnce(&mut Counts)) {
        let start = (at_micros / 1_000_000).div_euclid(BUCKET_SECS) * BUCKET_SECS;
        let i = self.buckets.partition_point(|(s, _)| *s < start);
        let mut added = Counts::default();
        f(&mut added);
        match self.buckets.get_mut(i) {
            Some((s, counts)) if *s == start => counts.add(&added),
            _ => self.buckets.insert(i, (start, added)),
        }
        self.total.add(&added);
    }

    /// Forgets buckets that ended before `before_secs`.
    pub fn prune(&mut self, before_secs: i64) {
        while let Some((start, _)) = self.buckets.front() {
            if start + BUCKET_SECS > before_secs {
                break;
            }
            if let Some((_, old)) = self.buckets.pop_front() {
                self.total.subtract(&old);
            }
        }
    }

    /// The sum of the buckets that end after `since_secs`.
    pub fn since(&self, since_secs: i64) -> Counts {
        let first = self
            .buckets
            .partition_point(|(s, _)| s + BUCKET_SECS <= since_secs);
        if first == 0 {
            return self.total;
        }
        let mut sum = Counts::default();
        for (_, counts) in self.buckets.range(first..) {
            sum.add(counts);
        }
        sum
    }

    /// The buckets summed into periods of `width_secs` (a multiple of
    /// [`BUCKET_SECS`]), each keyed by its start, oldest first; periods
    /// without a bucket are left out.
    pub fn per(&self, width_secs: i64) -> Vec<(i64, Counts)> {
        let width = width_secs.max(BUCKET_SECS);
        let mut out: Vec<(i64, Counts)> = Vec::new();
        for (start, counts) in &self.buckets {
            let period = start.div_euclid(width) * width;
            match out.last_mut() {
                Some((p, sum)) if *p == period => sum.add(counts),
                _ => out.push((period, *counts)),
            }
        }
        out
    }

    /// Buckets held.
    pub fn len(&self) -> usize {
        self.buckets.len()
    }

    /// Whether no bucket is held.
    pub fn is_empty(&self) -> bool {
        self.buckets.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: i64 = 1_000_000;

    #[test]
    fn buckets_sum_recent_spans_and_forget_old_ones() {
        let mut series = Series::default();
        series.record(100 * S, |c| c.delivered += 1);
        series.record(30 * S, |c| c.dead_lettered += 1); // out of order
        series.record(101 * S, |c| c.delivered += 1);
        assert_eq!(series.len(), 2);
        assert_eq!(series.since(0).delivered, 2);
        assert_eq!(series.since(0).dead_lettered, 1);
        assert_eq!(series.since(90).dead_lettered, 0);
        series.prune(50);
        assert_eq!(series.len(), 1);
        assert_eq!(series.since(0).success_ratio(), Some(1.0));
        assert_eq!(
            series.since(0).delivered,
            2,
            "the running sum forgot the pruned bucket only"
        );
        series.prune(200);
        assert_eq!(series.since(0), Counts::default());
    }

    #[test]
    fn quantiles_name_the_bucket_bound() {
        let mut c = Counts::default();
        for ms in [10, 20, 30, 40, 700, 700, 700, 700, 700, 40_000] {
            c.observe_latency(ms);
        }
        assert_eq!(c.latency_quantile_ms(0.4), Some(50));
        assert_eq!(c.latency_quantile_ms(0.5), Some(1_000));
        assert_eq!(c.latency_quantile_ms(0.95), Some(60_000));
        assert_eq!(Counts::default().latency_quantile_ms(0.5), None);
    }
}
