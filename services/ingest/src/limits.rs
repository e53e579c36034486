//! Per-source rate limits (token buckets through governor), counted in
//! events so a batch costs what it writes.

use std::collections::BTreeMap;
use std::num::NonZeroU32;
use std::sync::Arc;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use intops_flows::{Flows, RateLimit};

use crate::error::IngestError;

/// The rate limiters of the sources that declare `rate_limit`.
#[derive(Debug, Default)]
pub(crate) struct Limits {
    by_source: BTreeMap<String, (RateLimit, Arc<DefaultDirectRateLimiter>)>,
}

impl Limits {
    pub(crate) fn new(flows: &Flows) -> Self {
        Self::reloaded(flows, &Limits::default())
    }

    /// The limits of `flows`, keeping the limiter (and what it has
    /// counted) of every source whose rate is the same in `previous`: a
    /// reload does not hand a source a fresh burst.
    pub(crate) fn reloaded(flows: &Flows, previous: &Limits) -> Self {
        let by_source = flows
            .sources
            .values()
            .filter_map(|s| {
                let rate = s.rate_limit?;
                if let Some((old, limiter)) = previous.by_source.get(&s.id)
                    && *old == rate
                {
                    return Some((s.id.clone(), (rate, limiter.clone())));
                }
                let burst = NonZeroU32::new(rate.count)?;
                let quota = Quota::with_period(rate.per / rate.count)?.allow_burst(burst);
                Some((s.id.clone(), (rate, Arc::new(RateLimiter::direct(quota)))))
            })
            .collect();
        Self { by_source }
    }

    /// Takes `events` tokens of `source`, or says when to retry.
    pub(crate) fn take(&self, source: &str, events: usize) -> Result<(), IngestError> {
        let Some((_, limiter)) = self.by_source.get(source) else {
            return Ok(());
        };
        let n =
            NonZeroU32::new(u32::try_from(events).unwrap_or(u32::MAX)).unwrap_or(NonZeroU32::MIN);
        match limiter.check_n(n) {
            Ok(Ok(())) => Ok(()),
            Ok(Err(not_until)) => {
                let wait = not_until.wait_time_from(DefaultClock::default().now());
                Err(IngestError::RateLimited {
                    detail: format!("source {source} is over its rate limit"),
                    retry_after: wait.as_secs() + u64::from(wait.subsec_nanos() > 0),
                })
            }
            Err(_) => Err(IngestError::RateLimited {
                detail: format!(
                    "a request of {events} events exceeds source {source}'s burst; send smaller batches"
                ),
                retry_after: 1,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bursts_pass_then_the_source_waits() {
        let flows = intops_flows::load_str(
            "[[sources]]\nid = \"s\"\nkind = \"webhook\"\nauth = \"none\"\nentity_key = \".id\"\nrate_limit = \"10/m\"\n",
        )
        .expect("valid");
        let limits = Limits::new(&flows);
        assert!(limits.take("s", 6).is_ok());
        assert!(limits.take("s", 4).is_ok());
        match limits.take("s", 1) {
            Err(IngestError::RateLimited { retry_after, .. }) => {
                assert!((1..=6).contains(&retry_after), "{retry_after}")
            }
            other => panic!("expected 429, got {other:?}"),
        }
        assert!(matches!(
            limits.take("s", 11),
            Err(IngestError::RateLimited { .. })
        ));
        assert!(limits.take("unlimited", 1000).is_ok());

        // A reload with the same rate keeps what was counted; a new rate
        // starts a new bucket.
        let same = Limits::reloaded(&flows, &limits);
        assert!(same.take("s", 1).is_err());
        let raised = intops_flows::load_str(
            "[[sources]]\nid = \"s\"\nkind = \"webhook\"\nauth = \"none\"\nentity_key = \".id\"\nrate_limit = \"20/m\"\n",
        )
        .expect("valid");
        assert!(Limits::reloaded(&raised, &limits).take("s", 20).is_ok());
    }
}
