//! The one backoff every retry loop in intops uses: exponential (factor 2)
//! from `min` to `max`, with jitter, never longer than `max`.
//!
//! Jitter rule: each delay is the exponential base plus a random part of
//! up to the base again (backon's jitter), the base growing from `min` to
//! `max / 2` (or `min`, if that is larger), cut to `max`. So a delay is
//! never below `min` and never above `max`, and once the base stops
//! growing the delays spread between `max / 2` and `max`: many lanes
//! retrying through a long outage do not wake in step. The sequence is
//! infinite: bound it with
//! [`Iterator::take`] where a caller gives up after some tries. It is a
//! [`backon::Backoff`], so it can be passed to `Retryable::retry` as is.

use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBackoff, ExponentialBuilder};

/// Jittered exponential delays between `min` and `max` (see the module
/// documentation). `max` below `min` is taken as `min`.
pub fn retry_delays(min: Duration, max: Duration) -> RetryDelays {
    let max = max.max(min);
    RetryDelays {
        inner: ExponentialBuilder::default()
            .with_min_delay(min)
            .with_max_delay((max / 2).max(min))
            .with_jitter()
            .without_max_times()
            .build(),
        max,
    }
}

/// The delays of [`retry_delays`].
#[derive(Debug)]
pub struct RetryDelays {
    inner: ExponentialBackoff,
    max: Duration,
}

impl Iterator for RetryDelays {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        Some(self.inner.next().map_or(self.max, |d| d.min(self.max)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: Duration = Duration::from_millis(200);
    const MAX: Duration = Duration::from_secs(5);

    #[test]
    fn delays_stay_within_min_and_max() {
        for _ in 0..100 {
            for delay in retry_delays(MIN, MAX).take(20) {
                assert!(delay >= MIN, "{delay:?} below min");
                assert!(delay <= MAX, "{delay:?} above max");
            }
        }
    }

    #[test]
    fn delays_grow_to_max_and_stay_there() {
        let delays: Vec<Duration> = retry_delays(MIN, MAX).take(20).collect();
        // The base doubles: the n-th delay is at least min * 2^n (jitter
        // only adds), until it is cut to max.
        for (n, delay) in delays.iter().enumerate().take(4) {
            assert!(*delay >= MIN * 2u32.pow(n as u32), "delay {n}: {delay:?}");
        }
        // At the cap the delays spread between max / 2 and max.
        assert!(
            delays[10..].iter().all(|d| *d >= MAX / 2 && *d <= MAX),
            "{delays:?}"
        );
    }

    #[test]
    fn is_infinite_and_bounded_by_take() {
        assert_eq!(retry_delays(MIN, MAX).take(1000).count(), 1000);
        assert_eq!(retry_delays(MIN, MAX).take(6).count(), 6);
    }

    #[test]
    fn max_below_min_means_min() {
        assert!(retry_delays(MAX, MIN).take(5).all(|d| d == MAX));
    }

    #[test]
    fn delays_at_the_cap_stay_spread() {
        let capped: std::collections::HashSet<Duration> =
            retry_delays(MIN, MAX).skip(10).take(50).collect();
        assert!(capped.len() > 1, "lanes at the cap would wake in step");
    }

    #[test]
    fn jitter_spreads_the_first_delay() {
        let firsts: std::collections::HashSet<Duration> = (0..50)
            .filter_map(|_| retry_delays(MIN, MAX).next())
            .collect();
        assert!(firsts.len() > 1, "no jitter: {firsts:?}");
    }
}
