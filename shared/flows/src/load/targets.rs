//! Validates the `[[targets]]` tables: auth, retry, pausing and the breaker.

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use super::{Validator, is_header_name, parse_rate};
use crate::model::{CircuitBreaker, OAuth2, Retry, StatusSet, Target, TargetAuth};
use crate::spec::{OAuth2Spec, StatusSpec, TargetAuthSpec, TargetSpec};

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
            let redact = self.redact(&at, &t.redact);
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
                    redact,
                },
            );
        }
        out
    }

    fn target_auth(&mut self, at: &str, spec: Option<&TargetAuthSpec>) -> TargetAuth {
        let Some(a) = spec else {
            return TargetAuth::None;
        };
        match (&a.bearer, &a.basic, &a.header, &a.oauth2) {
            (Some(token), None, None, None) => TargetAuth::Bearer(token.clone()),
            (None, Some(b), None, None) => TargetAuth::Basic {
                username: b.username.clone(),
                password: b.password.clone(),
            },
            (None, None, Some(h), None) => {
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
            (None, None, None, Some(o)) => self.oauth2(&format!("{at}.auth.oauth2"), o),
            (None, None, None, None) => {
                self.error(
                    format!("{at}.auth"),
                    "set one of bearer, basic, header or oauth2",
                );
                TargetAuth::None
            }
            _ => {
                self.error(
                    format!("{at}.auth"),
                    "set one of bearer, basic, header or oauth2, not several",
                );
                TargetAuth::None
            }
        }
    }

    /// OAuth2 client credentials: an http(s) token endpoint without user
    /// information or a fragment (a query is kept: some endpoints select a
    /// tenant or policy with one), and scopes as RFC 6749 section 3.3
    /// spells them.
    fn oauth2(&mut self, at: &str, spec: &OAuth2Spec) -> TargetAuth {
        if let Err(e) = check_token_url(&spec.token_url) {
            self.error(format!("{at}.token_url"), e);
        }
        let scope = spec.scope.as_deref().map(|s| s.trim().to_string());
        if let Some(s) = &scope
            && let Err(e) = check_scope(s)
        {
            self.error(format!("{at}.scope"), e);
        }
        TargetAuth::OAuth2(OAuth2 {
            token_url: spec.token_url.clone(),
            client_id: spec.client_id.clone(),
            client_secret: spec.client_secret.clone(),
            scope,
        })
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

/// An OAuth2 token endpoint: an absolute http(s) URL with a host, no user
/// information (the client authenticates with its id and secret, and a
/// URL is logged) and no fragment.
fn check_token_url(text: &str) -> Result<(), String> {
    let url = url::Url::parse(text).map_err(|e| format!("{text:?} is not a URL: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!("{text:?} must start with http:// or https://"));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(format!("{text:?} has no host"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("must not hold user information (set client_id and client_secret)".into());
    }
    if url.fragment().is_some() {
        return Err(format!("{text:?} must not have a fragment"));
    }
    Ok(())
}

/// Space-separated scope tokens of printable ASCII without `"` or `\`
/// (RFC 6749 section 3.3).
fn check_scope(scope: &str) -> Result<(), String> {
    if scope.is_empty() {
        return Err("must not be empty (leave it out to request no scope)".into());
    }
    let bad = |c: char| !c.is_ascii_graphic() || c == '"' || c == '\\';
    for token in scope.split(' ') {
        if token.is_empty() {
            return Err(format!(
                "{scope:?} has an empty scope (two spaces in a row)"
            ));
        }
        if token.chars().any(bad) {
            return Err(format!(
                "{token:?} is not a scope: printable ASCII without '\"' or '\\', separated by single spaces"
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
#[path = "targets_tests.rs"]
mod tests;
