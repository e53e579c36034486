//! Validates the `[[targets]]` tables: auth, retry, pausing and the breaker.

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use super::{Validator, is_header_name, parse_rate};
use crate::model::{CircuitBreaker, Retry, StatusSet, Target, TargetAuth};
use crate::spec::{StatusSpec, TargetAuthSpec, TargetSpec};

/// How long one record may keep its target paused by default.
const DEFAULT_MAX_PAUSE: Duration = Duration::from_secs(15 * 60);

impl Validator {
    pub(super) fn targets(&mut self, specs: &[TargetSpec]) -> BTreeMap<String, Target> {
        let mut seen = HashSet::new();
        let mut out = BTreeMap::new();
        for (i, t) in specs.iter().enumerate() {
            let at = self.id("targets", i, &t.id, &mut seen);
            if let Err(e) = crate::target_url::parse_base_url(&t.base_url) {
                self.error(format!("{at}.base_url"), e);
            }
            let timeout = self.duration(
                format!("{at}.timeout"),
                t.timeout.as_deref(),
                Duration::from_secs(10),
            );
            let concurrency = t.concurrency.unwrap_or(16);
            if concurrency == 0 {
                self.error(format!("{at}.concurrency"), "must be at least 1");
            }
            let rate_limit = t.rate_limit.as_deref().and_then(|r| {
                parse_rate(r)
                    .map_err(|m| self.error(format!("{at}.rate_limit"), m))
                    .ok()
            });
            let defaults = Retry::default();
            let retry = t.retry.as_ref().map_or(defaults, |r| Retry {
                max_attempts: r.max_attempts.unwrap_or(defaults.max_attempts),
                initial_backoff: self.duration(
                    format!("{at}.retry.initial_backoff"),
                    r.initial_backoff.as_deref(),
                    defaults.initial_backoff,
                ),
                max_backoff: self.duration(
                    format!("{at}.retry.max_backoff"),
                    r.max_backoff.as_deref(),
                    defaults.max_backoff,
                ),
                max_elapsed: r.max_elapsed.as_deref().map(|text| {
                    self.duration(
                        format!("{at}.retry.max_elapsed"),
                        Some(text),
                        Duration::ZERO,
                    )
                }),
            });
            if retry.max_attempts == 0 {
                self.error(format!("{at}.retry.max_attempts"), "must be at least 1");
            }
            let auth = self.target_auth(&at, t.auth.as_ref());
            let retryable_statuses = match &t.retryable_statuses {
                None => StatusSet::default(),
                Some(list) => self.status_set(&format!("{at}.retryable_statuses"), list),
            };
            // 401 alone by default: many APIs answer 403 for one record's
            // permissions, which must not pause every record.
            let pause_statuses = match &t.pause_statuses {
                None => StatusSet(vec![(401, 401)]),
                Some(list) => self.status_set(&format!("{at}.pause_statuses"), list),
            };
            let max_pause = self.duration(
                format!("{at}.max_pause"),
                t.max_pause.as_deref(),
                DEFAULT_MAX_PAUSE,
            );
            let breaker_defaults = CircuitBreaker::default();
            let circuit_breaker =
                t.circuit_breaker
                    .as_ref()
                    .map_or(breaker_defaults, |c| CircuitBreaker {
                        failures: c.failures.unwrap_or(breaker_defaults.failures),
                        open_for: self.duration(
                            format!("{at}.circuit_breaker.open_for"),
                            c.open_for.as_deref(),
                            breaker_defaults.open_for,
                        ),
                    });
            let probe_interval = self.duration(
                format!("{at}.probe_interval"),
                t.probe_interval.as_deref(),
                Duration::from_secs(30),
            );
            out.insert(
                t.id.clone(),
                Target {
                    id: t.id.clone(),
                    base_url: t.base_url.trim_end_matches('/').to_string(),
                    auth,
                    timeout,
                    concurrency,
                    rate_limit,
                    retry,
                    retryable_statuses,
                    pause_statuses,
                    probe_interval,
                    max_pause,
                    circuit_breaker,
                },
            );
        }
        out
    }

    fn target_auth(&mut self, at: &str, spec: Option<&TargetAuthSpec>) -> TargetAuth {
        let Some(a) = spec else {
            return TargetAuth::None;
        };
        match (&a.bearer, &a.basic, &a.header) {
            (Some(token), None, None) => TargetAuth::Bearer(token.clone()),
            (None, Some(b), None) => TargetAuth::Basic {
                username: b.username.clone(),
                password: b.password.clone(),
            },
            (None, None, Some(h)) => {
                let lower = h.name.to_ascii_lowercase();
                if !is_header_name(&h.name)
                    || ["idempotency-key", "content-type"].contains(&lower.as_str())
                {
                    self.error(
                        format!("{at}.auth.header.name"),
                        format!("{:?} cannot carry a credential", h.name),
                    );
                }
                TargetAuth::Header {
                    name: h.name.clone(),
                    value: h.value.clone(),
                }
            }
            (None, None, None) => {
                self.error(format!("{at}.auth"), "set one of bearer, basic or header");
                TargetAuth::None
            }
            _ => {
                self.error(
                    format!("{at}.auth"),
                    "set one of bearer, basic or header, not several",
                );
                TargetAuth::None
            }
        }
    }

    fn status_set(&mut self, at: &str, list: &[StatusSpec]) -> StatusSet {
        let mut ranges = Vec::new();
        for entry in list {
            match entry {
                // Redirects are never followed: a 3xx is always dead-lettered.
                StatusSpec::Code(c) if (400..=599).contains(c) => ranges.push((*c, *c)),
                StatusSpec::Class(c) if c.len() == 3 && c.ends_with("xx") => {
                    match c[..1].parse::<u16>() {
                        Ok(d @ 4..=5) => ranges.push((d * 100, d * 100 + 99)),
                        _ => self.error(at.to_string(), format!("{c:?} is not 4xx or 5xx")),
                    }
                }
                StatusSpec::Code(c) => {
                    self.error(
                        at.to_string(),
                        format!("{c} is not a failure status (400-599; a 3xx is never retried or paused on)"),
                    );
                }
                StatusSpec::Class(c) => {
                    self.error(
                        at.to_string(),
                        format!("{c:?} is neither a code nor a class like \"5xx\""),
                    );
                }
            }
        }
        StatusSet(ranges)
    }
}
