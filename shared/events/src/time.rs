use std::time::{SystemTime, UNIX_EPOCH};

/// Microseconds since the Unix epoch: the unit of every `timestamp-micros`
/// field in the canonical schemas.
pub fn now_micros() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}
