//! Limits on what one request may ask of ingest, the same for every
//! source (the body size is per source, in the flows file).

use std::time::Duration;

/// Request limits of the webhook API.
#[derive(Debug, Clone, clap::Args)]
pub struct RequestLimits {
    /// Deepest JSON nesting accepted in a body (objects and arrays, the
    /// outermost counting 1); deeper bodies get 400 before any parsing.
    #[arg(long, env = "INTOPS_INGEST_MAX_JSON_DEPTH", default_value_t = intops_events::DEFAULT_MAX_JSON_DEPTH)]
    pub max_json_depth: usize,

    /// Most records in one request (a JSON array or NDJSON lines); more
    /// get 413.
    #[arg(long, env = "INTOPS_INGEST_MAX_RECORDS", default_value_t = 1000)]
    pub max_records: usize,

    /// How long a request's body may take to arrive; slower requests get
    /// 408 and nothing is written.
    #[arg(long, env = "INTOPS_INGEST_READ_TIMEOUT", default_value = "30s", value_parser = humantime::parse_duration)]
    pub read_timeout: Duration,

    /// Webhook requests handled at once; more get 503 with Retry-After.
    #[arg(
        long,
        env = "INTOPS_INGEST_MAX_CONCURRENT_REQUESTS",
        default_value_t = 256
    )]
    pub max_concurrent_requests: usize,

    /// Signatures remembered per source for replay protection (sources
    /// with a timestamp header); when full, new signed requests get 503
    /// with Retry-After until the oldest leave their tolerance window.
    #[arg(long, env = "INTOPS_INGEST_REPLAY_CAPACITY", default_value_t = 100_000)]
    pub replay_capacity: usize,
}

impl Default for RequestLimits {
    fn default() -> Self {
        Self {
            max_json_depth: intops_events::DEFAULT_MAX_JSON_DEPTH,
            max_records: 1000,
            read_timeout: Duration::from_secs(30),
            max_concurrent_requests: 256,
            replay_capacity: 100_000,
        }
    }
}

impl RequestLimits {
    /// Refuses limits that would refuse every request.
    pub(crate) fn validate(&self) -> Result<(), intops_runtime::ConfigError> {
        let mut problems = Vec::new();
        for (name, value) in [
            ("INTOPS_INGEST_MAX_JSON_DEPTH", self.max_json_depth),
            ("INTOPS_INGEST_MAX_RECORDS", self.max_records),
            (
                "INTOPS_INGEST_MAX_CONCURRENT_REQUESTS",
                self.max_concurrent_requests,
            ),
            ("INTOPS_INGEST_REPLAY_CAPACITY", self.replay_capacity),
        ] {
            if value == 0 {
                problems.push(format!("{name} must be at least 1"));
            }
        }
        if self.max_json_depth > intops_events::DEFAULT_MAX_JSON_DEPTH {
            // Transform refuses payloads deeper than this before jq parses
            // them: a higher limit here would only turn 400s into dead
            // letters.
            problems.push(format!(
                "INTOPS_INGEST_MAX_JSON_DEPTH may not exceed {}, the depth transform accepts",
                intops_events::DEFAULT_MAX_JSON_DEPTH
            ));
        }
        if self.read_timeout.is_zero() {
            problems.push("INTOPS_INGEST_READ_TIMEOUT must be above zero".into());
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(intops_runtime::ConfigError(problems))
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser as _;

    use super::*;

    #[derive(clap::Parser)]
    struct Cli {
        #[command(flatten)]
        limits: RequestLimits,
    }

    #[test]
    fn defaults_match_the_flags_and_zero_is_refused() {
        let parsed = Cli::parse_from(["x"]).limits;
        let default = RequestLimits::default();
        assert_eq!(parsed.max_json_depth, default.max_json_depth);
        assert_eq!(parsed.max_records, default.max_records);
        assert_eq!(parsed.read_timeout, default.read_timeout);
        assert_eq!(
            parsed.max_concurrent_requests,
            default.max_concurrent_requests
        );
        assert_eq!(parsed.replay_capacity, default.replay_capacity);
        assert!(default.validate().is_ok());
        let zero = RequestLimits {
            max_records: 0,
            ..RequestLimits::default()
        };
        let e = zero.validate().expect_err("zero records");
        assert!(e.to_string().contains("INTOPS_INGEST_MAX_RECORDS"), "{e}");
    }

    #[test]
    fn a_depth_above_what_transform_accepts_is_refused() {
        let deeper = RequestLimits {
            max_json_depth: intops_events::DEFAULT_MAX_JSON_DEPTH + 1,
            ..RequestLimits::default()
        };
        let e = deeper.validate().expect_err("deeper than transform");
        assert!(
            e.to_string().contains("INTOPS_INGEST_MAX_JSON_DEPTH"),
            "{e}"
        );
        let shallower = RequestLimits {
            max_json_depth: 8,
            ..RequestLimits::default()
        };
        assert!(shallower.validate().is_ok());
    }
}
