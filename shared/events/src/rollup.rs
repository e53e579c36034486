//! One hour of one flow's (or source's) figures for one tenant
//! (`<prefix>.rollups`): what SLA reports are made of.

use serde::{Deserialize, Serialize};

/// Microseconds in an hour.
pub const HOUR_MICROS: i64 = 3_600_000_000;

/// What one flow or source did for one tenant in one UTC hour
/// (`<prefix>.rollups`, compacted, key [`HourlyRollup::key_of`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HourlyRollup {
    /// `flow` or `source`.
    pub scope: String,
    /// The flow's or the source's id.
    pub id: String,
    /// The tenant the counted records carried.
    pub tenant: Option<String>,
    /// Start of the UTC hour (micros).
    pub hour: i64,
    /// Requests made plus events dead-lettered in transform (flow);
    /// events accepted (source). Replays are not counted again.
    pub received: i64,
    /// Requests delivered.
    pub delivered: i64,
    /// Requests or events dead-lettered.
    pub dead_lettered: i64,
    /// Dead letters a replay sent back.
    pub replayed: i64,
    /// Upper bounds (ms) of the latency buckets.
    pub latency_bounds_ms: Vec<i64>,
    /// Delivered latencies counted by `latency_bounds_ms`.
    pub latency_counts: Vec<i64>,
    /// Time judged healthy (ms).
    pub healthy_ms: i64,
    /// Time judged degraded (ms).
    pub degraded_ms: i64,
    /// Time judged failing (ms).
    pub failing_ms: i64,
    /// The flow's `slo.success_ratio`.
    pub success_objective: Option<f64>,
    /// The flow's `slo.latency_p95` (ms).
    pub latency_objective_ms: Option<i64>,
    /// When the monitor wrote it (micros).
    pub written_at: i64,
}

impl HourlyRollup {
    /// The record's key: `<scope>|<id>|<tenant>|<hour>`, the tenant empty
    /// for none and the hour as RFC 3339.
    pub fn key_of(scope: &str, id: &str, tenant: Option<&str>, hour: i64) -> String {
        let at = std::time::UNIX_EPOCH
            + std::time::Duration::from_micros(u64::try_from(hour).unwrap_or(0));
        format!(
            "{scope}|{id}|{}|{}",
            tenant.unwrap_or(""),
            humantime::format_rfc3339_seconds(at)
        )
    }

    /// This record's key.
    pub fn key(&self) -> String {
        Self::key_of(&self.scope, &self.id, self.tenant.as_deref(), self.hour)
    }
}

/// The start (micros) of the UTC hour holding `micros`.
pub fn hour_of(micros: i64) -> i64 {
    micros.div_euclid(HOUR_MICROS) * HOUR_MICROS
}

/// The upper bound of the bucket holding the `q` quantile of a histogram
/// (`counts` by `bounds`); `None` when it is empty.
pub fn quantile_bound(bounds: &[i64], counts: &[u64], q: f64) -> Option<i64> {
    let total: u64 = counts.iter().sum();
    if total == 0 {
        return None;
    }
    let rank = ((total as f64) * q).ceil().max(1.0) as u64;
    let mut seen = 0;
    for (count, bound) in counts.iter().zip(bounds) {
        seen += count;
        if seen >= rank {
            return Some(*bound);
        }
    }
    bounds.last().copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hours_start_on_the_hour_and_keys_name_them() {
        let at = 1_764_547_200_000_000 + 59 * 60 * 1_000_000 + 5;
        assert_eq!(hour_of(at), 1_764_547_200_000_000);
        assert_eq!(
            HourlyRollup::key_of("flow", "acme.p1", Some("acme"), hour_of(at)),
            "flow|acme.p1|acme|2025-12-01T00:00:00Z"
        );
        assert_eq!(
            HourlyRollup::key_of("source", "snow", None, 0),
            "source|snow||1970-01-01T00:00:00Z"
        );
    }

    #[test]
    fn quantiles_are_bucket_bounds() {
        let bounds = [100, 1_000, i64::MAX];
        assert_eq!(quantile_bound(&bounds, &[0, 0, 0], 0.5), None);
        assert_eq!(quantile_bound(&bounds, &[9, 1, 0], 0.5), Some(100));
        assert_eq!(quantile_bound(&bounds, &[9, 1, 0], 0.95), Some(1_000));
        assert_eq!(quantile_bound(&bounds, &[1, 0, 1], 0.95), Some(i64::MAX));
    }
}
