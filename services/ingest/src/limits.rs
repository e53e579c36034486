//! Per-source rate limits and per-tenant quotas (token buckets through
//! governor), counted in events so a batch costs what it writes.

use std::collections::BTreeMap;
use std::num::NonZeroU32;
use std::sync::Arc;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use intops_flows::{Flows, RateLimit};

use crate::error::IngestError;

type Bucket = (RateLimit, Arc<DefaultDirectRateLimiter>);

/// The rate limiters of the sources that declare `rate_limit`, and of the
/// tenants with a `quota`.
#[derive(Debug, Default)]
pub(crate) struct Limits {
    by_source: BTreeMap<String, Bucket>,
    by_tenant: BTreeMap<String, Bucket>,
    /// The tenant of each source with a quota.
    tenant_of: BTreeMap<String, String>,
}

impl Limits {
    pub(crate) fn new(flows: &Flows) -> Self {
        Self::reloaded(flows, &Limits::default())
    }

    /// The limits of `flows`, keeping the limiter (and what it has
    /// counted) of every source and tenant whose rate is the same in
    /// `previous`: a reload does not hand a source a fresh burst.
    pub(crate) fn reloaded(flows: &Flows, previous: &Limits) -> Self {
        let mut out = Limits::default();
        for s in flows.sources.values() {
            if let Some(bucket) = bucket(s.rate_limit, previous.by_source.get(&s.id)) {
                out.by_source.insert(s.id.clone(), bucket);
            }
            if let (Some(tenant), Some(quota)) = (&s.tenant, s.tenant_quota) {
                out.tenant_of.insert(s.id.clone(), tenant.clone());
                if !out.by_tenant.contains_key(tenant)
                    && let Some(bucket) = bucket(Some(quota), previous.by_tenant.get(tenant))
                {
                    out.by_tenant.insert(tenant.clone(), bucket);
                }
            }
        }
        out
    }

    /// Takes `events` tokens of `source` (and of its tenant's quota), or
    /// says when to retry.
    pub(crate) fn take(&self, source: &str, events: usize) -> Result<(), IngestError> {
        // The source's own limit first: a request it refuses costs the
        // tenant's quota nothing, so one retrying source cannot starve its
        // siblings.
        if let Some((_, limiter)) = self.by_source.get(source) {
            check(limiter, events, &format!("source {source}"), "rate limit")?;
        }
        if let Some(tenant) = self.tenant_of.get(source)
            && let Some((_, limiter)) = self.by_tenant.get(tenant)
        {
            check(limiter, events, &format!("tenant {tenant}"), "quota")?;
        }
        Ok(())
    }
}

/// The bucket for `rate`: `kept`'s when its rate is the same.
fn bucket(rate: Option<RateLimit>, kept: Option<&Bucket>) -> Option<Bucket> {
    let rate = rate?;
    if let Some((old, limiter)) = kept
        && *old == rate
    {
        return Some((rate, limiter.clone()));
    }
    let burst = NonZeroU32::new(rate.count)?;
    let quota = Quota::with_period(rate.per / rate.count)?.allow_burst(burst);
    Some((rate, Arc::new(RateLimiter::direct(quota))))
}

/// Takes `events` tokens of `limiter` (of `whom`'s `what`).
fn check(
    limiter: &DefaultDirectRateLimiter,
    events: usize,
    whom: &str,
    what: &str,
) -> Result<(), IngestError> {
    let n = NonZeroU32::new(u32::try_from(events).unwrap_or(u32::MAX)).unwrap_or(NonZeroU32::MIN);
    match limiter.check_n(n) {
        Ok(Ok(())) => Ok(()),
        Ok(Err(not_until)) => {
            let wait = not_until.wait_time_from(DefaultClock::default().now());
            Err(IngestError::RateLimited {
                detail: format!("{whom} is over its {what}"),
                retry_after: wait.as_secs() + u64::from(wait.subsec_nanos() > 0),
            })
        }
        Err(_) => Err(IngestError::RateLimited {
            detail: format!(
                "a request of {events} events exceeds {whom}'s {what} burst; send smaller batches"
            ),
            retry_after: 1,
        }),
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

    /// A tenant's quota is shared by all its sources; another tenant's
    /// sources are not touched by it.
    #[test]
    fn a_tenant_quota_spans_its_sources_only() {
        let flows = intops_flows::load_str(
            r#"
[[templates]]
id = "t"
  [[templates.sources]]
  id = "a"
  kind = "webhook"
  auth = "none"
  entity_key = ".id"
  [[templates.sources]]
  id = "b"
  kind = "webhook"
  auth = "none"
  entity_key = ".id"

[[tenants]]
id = "acme"
template = "t"
quota = "10/m"

[[tenants]]
id = "globex"
template = "t"
"#,
        )
        .expect("valid");
        let limits = Limits::new(&flows);
        assert!(limits.take("acme.a", 6).is_ok());
        assert!(limits.take("acme.b", 4).is_ok());
        match limits.take("acme.b", 1) {
            Err(IngestError::RateLimited { detail, .. }) => {
                assert_eq!(detail, "tenant acme is over its quota")
            }
            other => panic!("expected 429, got {other:?}"),
        }
        assert!(limits.take("globex.a", 100).is_ok());
    }
}
