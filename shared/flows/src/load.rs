//! From TOML text to validated [`Flows`], with every problem reported at once.

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::path::Path;
use std::time::Duration;

use sha2::{Digest, Sha256};

use crate::jq::JqProgram;
use crate::model::{
    Alert, CircuitBreaker, Flow, Flows, HmacAuth, Poll, RateLimit, Retry, Slo, Source, SourceAuth,
    StatusSet, Target, TargetAuth,
};
use crate::spec::{
    AlertSpec, FlowSpec, FlowsFile, SignatureEncoding, SloSpec, SourceAuthSpec, SourceKind,
    SourceSpec, StatusSpec, TargetAuthSpec, TargetSpec,
};
use crate::template::Template;

/// One problem in a flows file, located by a path such as
/// `flows[snow-p1-to-jira].map`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadError {
    /// Where the problem is.
    pub at: String,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.at, self.message)
    }
}

/// Every problem found in a flows file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct LoadErrors(pub Vec<LoadError>);

impl fmt::Display for LoadErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "flows file has {} problem(s):", self.0.len())?;
        for e in &self.0 {
            writeln!(f, "  {e}")?;
        }
        Ok(())
    }
}

/// Reads and validates the flows file at `path`.
pub fn load_file(path: &Path) -> Result<Flows, LoadErrors> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        LoadErrors(vec![LoadError {
            at: path.display().to_string(),
            message: format!("cannot read: {e}"),
        }])
    })?;
    load_str(&text)
}

/// Validates flows-file text.
pub fn load_str(text: &str) -> Result<Flows, LoadErrors> {
    let file: FlowsFile = toml::from_str(text).map_err(|e| {
        LoadErrors(vec![LoadError {
            at: "toml".into(),
            message: e.to_string().trim_end().to_string(),
        }])
    })?;
    let mut v = Validator::default();
    let sources = v.sources(&file.sources);
    let targets = v.targets(&file.targets);
    let flows = v.flows(&file.flows, &sources, &targets);
    let alerts = v.alerts(&file.alerts);
    if v.errors.is_empty() {
        Ok(Flows {
            fields_read: crate::route::fields_read(&flows),
            sources,
            targets,
            flows,
            alerts,
        })
    } else {
        Err(LoadErrors(v.errors))
    }
}

#[derive(Default)]
struct Validator {
    errors: Vec<LoadError>,
}

impl Validator {
    fn error(&mut self, at: impl Into<String>, message: impl Into<String>) {
        self.errors.push(LoadError {
            at: at.into(),
            message: message.into(),
        });
    }

    fn jq(&mut self, at: String, code: &str) -> Option<JqProgram> {
        JqProgram::compile(code)
            .map_err(|e| self.error(at, e.to_string()))
            .ok()
    }

    fn template(&mut self, at: String, text: &str) -> Option<Template> {
        Template::compile(text)
            .map_err(|e| self.error(at, e.to_string()))
            .ok()
    }

    /// Compiles an optional program: `Some(None)` when absent, `None` when
    /// it does not compile (the error is recorded).
    fn optional_jq(&mut self, at: String, code: Option<&str>) -> Option<Option<JqProgram>> {
        match code {
            None => Some(None),
            Some(code) => self.jq(at, code).map(Some),
        }
    }

    fn duration(&mut self, at: String, text: Option<&str>, default: Duration) -> Duration {
        match text.map(humantime::parse_duration) {
            None => default,
            Some(Ok(d)) if !d.is_zero() => d,
            Some(Ok(_)) => {
                self.error(at, "must be greater than zero");
                default
            }
            Some(Err(e)) => {
                self.error(
                    at,
                    format!("not a duration ({e}); write for example \"10s\" or \"200ms\""),
                );
                default
            }
        }
    }

    fn id(&mut self, kind: &str, index: usize, id: &str, seen: &mut HashSet<String>) -> String {
        let at = format!("{kind}[{index}].id");
        if id.is_empty()
            || !id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        {
            self.error(
                &at,
                format!("{id:?} must be non-empty and use only letters, digits, '-', '_' and '.'"),
            );
        } else if !seen.insert(id.to_string()) {
            self.error(&at, format!("duplicate id {id:?}"));
        }
        format!("{kind}[{id}]")
    }

    fn sources(&mut self, specs: &[SourceSpec]) -> BTreeMap<String, Source> {
        let mut seen = HashSet::new();
        let mut out = BTreeMap::new();
        for (i, s) in specs.iter().enumerate() {
            let at = self.id("sources", i, &s.id, &mut seen);
            let auth = match (s.kind, &s.auth) {
                // A polled source is not called by anyone: nothing to authenticate.
                (SourceKind::Poll, None) => Some(SourceAuth::None),
                _ => self.source_auth(&at, s),
            };
            let poll = self.poll(&at, s);
            let entity_key = self.jq(format!("{at}.entity_key"), &s.entity_key);
            let event_type = self.optional_jq(format!("{at}.event_type"), s.event_type.as_deref());
            let dedupe_key = self.optional_jq(format!("{at}.dedupe_key"), s.dedupe_key.as_deref());
            let max_body_bytes = s.max_body_bytes.unwrap_or(DEFAULT_MAX_BODY);
            if max_body_bytes == 0 {
                self.error(format!("{at}.max_body_bytes"), "must be at least 1");
            }
            let rate_limit = s.rate_limit.as_deref().and_then(|r| {
                parse_rate(r)
                    .map_err(|m| self.error(format!("{at}.rate_limit"), m))
                    .ok()
            });
            if let (Some(auth), Some(entity_key), Some(event_type), Some(dedupe_key), Some(poll)) =
                (auth, entity_key, event_type, dedupe_key, poll)
            {
                out.insert(
                    s.id.clone(),
                    Source {
                        id: s.id.clone(),
                        kind: s.kind,
                        auth,
                        entity_key,
                        event_type,
                        dedupe_key,
                        max_body_bytes,
                        rate_limit,
                        poll,
                    },
                );
            }
        }
        out
    }

    /// `Some(None)` for a webhook source, `Some(Some(poll))` for a valid
    /// polled one, `None` when invalid.
    fn poll(&mut self, at: &str, s: &SourceSpec) -> Option<Option<Poll>> {
        match (s.kind, &s.poll) {
            (SourceKind::Webhook, None) => Some(None),
            (SourceKind::Webhook, Some(_)) => {
                self.error(
                    format!("{at}.poll"),
                    "only sources of kind = \"poll\" take a poll table",
                );
                None
            }
            (SourceKind::Poll, None) => {
                self.error(
                    format!("{at}.poll"),
                    "missing: a polled source needs url, records and cursor",
                );
                None
            }
            (SourceKind::Poll, Some(p)) => {
                if s.dedupe_key.is_none() {
                    self.error(
                        format!("{at}.dedupe_key"),
                        "a polled source needs one, so overlapping windows never duplicate events",
                    );
                }
                if !(p.url.starts_with("http://") || p.url.starts_with("https://")) {
                    self.error(
                        format!("{at}.poll.url"),
                        format!("{:?} must start with http:// or https://", p.url),
                    );
                }
                let interval = self.duration(
                    format!("{at}.poll.interval"),
                    p.interval.as_deref(),
                    Duration::from_secs(60),
                );
                let records = self.jq(format!("{at}.poll.records"), &p.records);
                let cursor = self.jq(format!("{at}.poll.cursor"), &p.cursor);
                let next = self.optional_jq(format!("{at}.poll.next"), p.next.as_deref());
                Some(Some(Poll {
                    url: p.url.clone(),
                    interval,
                    initial_cursor: p.initial_cursor.clone().unwrap_or_default(),
                    records: records?,
                    cursor: cursor?,
                    next: next?,
                    headers: p.headers.clone(),
                }))
            }
        }
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

    fn source_auth(&mut self, at: &str, s: &SourceSpec) -> Option<SourceAuth> {
        match &s.auth {
            None => {
                self.error(
                    format!("{at}.auth"),
                    "missing: set an hmac_sha256 secret, or auth = \"none\" to accept unauthenticated requests",
                );
                None
            }
            Some(SourceAuthSpec::Keyword(k)) if k == "none" => Some(SourceAuth::None),
            Some(SourceAuthSpec::Keyword(k)) => {
                self.error(
                    format!("{at}.auth"),
                    format!("{k:?} is not \"none\" or a table"),
                );
                None
            }
            Some(SourceAuthSpec::Table(t)) => {
                let secret = match (t.hmac_sha256.clone(), t.bearer.clone()) {
                    (Some(secret), None) => secret,
                    (None, Some(token)) => {
                        let extra = t.header.is_some()
                            || t.encoding.is_some()
                            || t.prefix.is_some()
                            || t.timestamp_header.is_some()
                            || t.tolerance.is_some();
                        if extra {
                            self.error(format!("{at}.auth"), "header, encoding, prefix, timestamp_header and tolerance apply to hmac_sha256 only");
                        }
                        return Some(SourceAuth::Bearer(token));
                    }
                    (Some(_), Some(_)) => {
                        self.error(format!("{at}.auth"), "set hmac_sha256 or bearer, not both");
                        return None;
                    }
                    (None, None) => {
                        self.error(
                            format!("{at}.auth"),
                            "needs hmac_sha256 or bearer = { env = \"NAME\" } or { file = \"PATH\" }",
                        );
                        return None;
                    }
                };
                let tolerance = self.duration(
                    format!("{at}.auth.tolerance"),
                    t.tolerance.as_deref(),
                    Duration::from_secs(300),
                );
                let header = t
                    .header
                    .clone()
                    .unwrap_or_else(|| "X-Intops-Signature".into());
                let default_prefix = if t.header.is_none() { "sha256=" } else { "" };
                Some(SourceAuth::Hmac(HmacAuth {
                    secret,
                    header,
                    encoding: t.encoding.unwrap_or(SignatureEncoding::Hex),
                    prefix: t.prefix.clone().unwrap_or_else(|| default_prefix.into()),
                    timestamp_header: t.timestamp_header.clone(),
                    tolerance,
                }))
            }
        }
    }

    fn targets(&mut self, specs: &[TargetSpec]) -> BTreeMap<String, Target> {
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

    fn flows(
        &mut self,
        specs: &[FlowSpec],
        sources: &BTreeMap<String, Source>,
        targets: &BTreeMap<String, Target>,
    ) -> Vec<Flow> {
        let mut seen = HashSet::new();
        let mut out = Vec::new();
        for (i, f) in specs.iter().enumerate() {
            let at = self.id("flows", i, &f.id, &mut seen);
            if !sources.contains_key(&f.source) {
                self.error(
                    format!("{at}.source"),
                    format!("unknown source {:?}", f.source),
                );
            }
            if !targets.contains_key(&f.target) {
                self.error(
                    format!("{at}.target"),
                    format!("unknown target {:?}", f.target),
                );
            }
            let method = f.method.as_deref().unwrap_or("POST").to_ascii_uppercase();
            if !["GET", "POST", "PUT", "PATCH", "DELETE"].contains(&method.as_str()) {
                self.error(
                    format!("{at}.method"),
                    format!("{method:?} is not GET, POST, PUT, PATCH or DELETE"),
                );
            }
            if !f.path.starts_with('/') {
                self.error(
                    format!("{at}.path"),
                    format!("{:?} must start with '/'", f.path),
                );
            } else if !f.path.contains("{{")
                && let Err(e) = crate::target_url::check_path(&f.path)
            {
                self.error(format!("{at}.path"), e.to_string());
            }
            let when = f.when.as_deref().map(|c| self.jq(format!("{at}.when"), c));
            let map = self.jq(format!("{at}.map"), f.map.as_deref().unwrap_or("."));
            let path = self.template(format!("{at}.path"), &f.path);
            let mut headers = Some(Vec::new());
            for (name, value) in &f.headers {
                if crate::target_url::is_reserved_header(name) {
                    self.error(
                        format!("{at}.headers.{name}"),
                        "is set by intops or steers where the request goes (credentials come from the target's auth)",
                    );
                } else if !is_header_name(name) {
                    self.error(format!("{at}.headers.{name}"), "is not a header name");
                } else if targets.get(&f.target).is_some_and(|t| {
                    matches!(&t.auth, TargetAuth::Header { name: n, .. } if n.eq_ignore_ascii_case(name))
                }) {
                    self.error(
                        format!("{at}.headers.{name}"),
                        "carries the target's credential (set by its auth)",
                    );
                }
                if let Err(e) = crate::target_url::check_header_value(value) {
                    self.error(format!("{at}.headers.{name}"), e.to_string());
                }
                match (
                    self.template(format!("{at}.headers.{name}"), value),
                    headers.as_mut(),
                ) {
                    (Some(t), Some(h)) => h.push((name.clone(), t)),
                    _ => headers = None,
                }
            }
            if let (Some(when), Some(map), Some(path), Some(headers)) =
                (when.map_or(Some(None), |p| p.map(Some)), map, path, headers)
            {
                let slo = self.slo(&at, f.slo.as_ref());
                out.push(Flow {
                    slo,
                    id: f.id.clone(),
                    version: flow_version(f),
                    source: f.source.clone(),
                    when,
                    target: f.target.clone(),
                    method,
                    path,
                    headers,
                    map,
                });
            }
        }
        out
    }
}

impl Validator {
    fn alerts(&mut self, specs: &[AlertSpec]) -> Vec<Alert> {
        let mut seen = HashSet::new();
        specs
            .iter()
            .enumerate()
            .map(|(i, a)| {
                let at = self.id("alerts", i, &a.id, &mut seen);
                Alert {
                    id: a.id.clone(),
                    kind: a.kind,
                    url: a.url.clone(),
                    cooldown: self.duration(
                        format!("{at}.cooldown"),
                        a.cooldown.as_deref(),
                        Duration::from_secs(600),
                    ),
                }
            })
            .collect()
    }

    fn slo(&mut self, at: &str, spec: Option<&SloSpec>) -> Slo {
        let defaults = Slo::default();
        let Some(spec) = spec else {
            return defaults;
        };
        if let Some(r) = spec.success_ratio
            && !(0.0..=1.0).contains(&r)
        {
            self.error(format!("{at}.slo.success_ratio"), "must be between 0 and 1");
        }
        if let Some(l) = spec.max_lag
            && l < 0
        {
            self.error(format!("{at}.slo.max_lag"), "must not be negative");
        }
        let optional = |check: &mut Self, name: &str, text: Option<&str>| {
            text.map(|t| check.duration(format!("{at}.slo.{name}"), Some(t), Duration::ZERO))
        };
        Slo {
            success_ratio: spec.success_ratio,
            latency_p95: optional(self, "latency_p95", spec.latency_p95.as_deref()),
            max_silence: optional(self, "max_silence", spec.max_silence.as_deref()),
            max_lag: spec.max_lag,
            window: self.duration(
                format!("{at}.slo.window"),
                spec.window.as_deref(),
                defaults.window,
            ),
        }
    }
}

/// How long one record may keep its target paused by default.
const DEFAULT_MAX_PAUSE: Duration = Duration::from_secs(15 * 60);

/// Default largest request body of a source: a one-record body this size
/// still fits in one Kafka record (producer `message.max.bytes` 1,000,000)
/// with 100,000 bytes left for the envelope, key and record overhead.
/// Ingest also checks each encoded record (docs/operations.md).
const DEFAULT_MAX_BODY: usize = 900_000;

/// Content hash of a flow definition: any change to any field changes it.
fn flow_version(f: &FlowSpec) -> String {
    let canonical = serde_json::to_vec(f).unwrap_or_default();
    let digest = Sha256::digest(&canonical);
    hex::encode(&digest[..6])
}

/// Parses `50/s`, `600/m`, `1000/h`.
/// An HTTP header name: one or more token characters (RFC 9110).
fn is_header_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

fn parse_rate(text: &str) -> Result<RateLimit, String> {
    let bad = || format!("{text:?} is not a rate; write for example \"50/s\" or \"600/m\"");
    let (count, unit) = text.split_once('/').ok_or_else(bad)?;
    let count: u32 = count.trim().parse().map_err(|_| bad())?;
    let per = match unit.trim() {
        "s" => Duration::from_secs(1),
        "m" => Duration::from_secs(60),
        "h" => Duration::from_secs(3600),
        _ => return Err(bad()),
    };
    if count == 0 {
        return Err(format!(
            "{text:?} allows nothing; the count must be at least 1"
        ));
    }
    Ok(RateLimit { count, per })
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = r#"
[[sources]]
id = "servicenow"
kind = "webhook"
auth = { hmac_sha256 = { env = "SNOW_SECRET" } }
entity_key = ".sys_id"
event_type = '.event_type // "updated"'

[[targets]]
id = "jira"
base_url = "https://jira.example.com/"
auth = { bearer = { env = "JIRA_TOKEN" } }
timeout = "10s"
concurrency = 16
rate_limit = "50/s"
retry = { max_attempts = 8, initial_backoff = "200ms", max_backoff = "30s" }

[[flows]]
id = "snow-p1-to-jira"
source = "servicenow"
when = '.priority == "1"'
target = "jira"
method = "POST"
path = "/rest/api/3/issue"
map = '''{fields: {summary: .short_description, labels: ["servicenow", .number]}}'''
"#;

    #[test]
    fn slo_objectives_load_and_leave_the_version_alone() {
        let with = format!(
            "{EXAMPLE}slo = {{ success_ratio = 0.99, latency_p95 = \"30s\", max_silence = \"15m\", max_lag = 10000 }}\n"
        );
        let a = load_str(EXAMPLE).expect("valid");
        let b = load_str(&with).expect("valid with slo");
        let slo = b.flows[0].slo;
        assert_eq!(slo.success_ratio, Some(0.99));
        assert_eq!(slo.latency_p95, Some(Duration::from_secs(30)));
        assert_eq!(slo.max_silence, Some(Duration::from_secs(900)));
        assert_eq!(slo.max_lag, Some(10_000));
        assert_eq!(slo.window, Duration::from_secs(300));
        assert_eq!(a.flows[0].slo, Slo::default());
        assert_eq!(a.flows[0].version, b.flows[0].version);

        let bad = format!("{EXAMPLE}slo = {{ success_ratio = 1.5, window = \"soon\" }}\n");
        let e = load_str(&bad).expect_err("invalid").to_string();
        assert!(
            e.contains("flows[0].slo.success_ratio") || e.contains("slo.success_ratio"),
            "{e}"
        );
        assert!(e.contains("slo.window"), "{e}");
    }

    #[test]
    fn design_example_loads() {
        let flows = load_str(EXAMPLE).expect("valid");
        let source = &flows.sources["servicenow"];
        match &source.auth {
            SourceAuth::Hmac(h) => {
                assert_eq!(h.header, "X-Intops-Signature");
                assert_eq!(h.prefix, "sha256=");
                assert_eq!(h.encoding, SignatureEncoding::Hex);
            }
            other => panic!("expected hmac, got {other:?}"),
        }
        let target = &flows.targets["jira"];
        assert_eq!(target.base_url, "https://jira.example.com");
        assert_eq!(
            target.rate_limit,
            Some(RateLimit {
                count: 50,
                per: Duration::from_secs(1)
            })
        );
        assert_eq!(target.retry.max_backoff, Duration::from_secs(30));
        let flow = &flows.flows[0];
        assert_eq!(flow.version.len(), 12);
        assert_eq!(flows.flows_for_source("servicenow").count(), 1);
    }

    #[test]
    fn flow_version_changes_with_the_flow() {
        let a = load_str(EXAMPLE).expect("valid");
        let b = load_str(&EXAMPLE.replace(r#"== "1""#, r#"== "2""#)).expect("valid");
        assert_ne!(a.flows[0].version, b.flows[0].version);
        let again = load_str(EXAMPLE).expect("valid");
        assert_eq!(a.flows[0].version, again.flows[0].version);
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let text = EXAMPLE
            .replace(r#"source = "servicenow""#, r#"source = "nosuch""#)
            .replace(r#"target = "jira""#, r#"target = "gone""#)
            .replace(".short_description", ".short_description |")
            .replace(r#"timeout = "10s""#, r#"timeout = "ten""#);
        let errs = load_str(&text).expect_err("invalid").0;
        let text = errs
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("\n");
        assert!(
            text.contains("flows[snow-p1-to-jira].source: unknown source \"nosuch\""),
            "{text}"
        );
        assert!(
            text.contains("flows[snow-p1-to-jira].target: unknown target \"gone\""),
            "{text}"
        );
        assert!(
            text.contains("flows[snow-p1-to-jira].map: jq error at line 1"),
            "{text}"
        );
        assert!(text.contains("targets[jira].timeout"), "{text}");
        assert_eq!(errs.len(), 4, "{text}");
    }

    #[test]
    fn target_auth_forms_and_status_sets_are_checked() {
        let basic = EXAMPLE.replace(
            r#"auth = { bearer = { env = "JIRA_TOKEN" } }"#,
            r#"auth = { basic = { username = "svc", password = { env = "JIRA_PW" } } }
retryable_statuses = [409, "5xx"]"#,
        );
        let flows = load_str(&basic).expect("valid");
        let target = &flows.targets["jira"];
        assert!(matches!(&target.auth, TargetAuth::Basic { username, .. } if username == "svc"));
        assert!(target.retryable_statuses.contains(409));
        assert!(target.retryable_statuses.contains(503));
        assert!(!target.retryable_statuses.contains(429));

        let header = EXAMPLE.replace(
            r#"auth = { bearer = { env = "JIRA_TOKEN" } }"#,
            r#"auth = { header = { name = "X-Api-Key", value = { env = "KEY" } } }"#,
        );
        let flows = load_str(&header).expect("valid");
        assert!(
            matches!(&flows.targets["jira"].auth, TargetAuth::Header { name, .. } if name == "X-Api-Key")
        );
        assert_eq!(
            flows.targets["jira"].retryable_statuses,
            StatusSet::default()
        );

        let bad = EXAMPLE.replace(
            r#"auth = { bearer = { env = "JIRA_TOKEN" } }"#,
            r#"auth = { bearer = { env = "T" }, header = { name = "Bad Name", value = { env = "K" } } }
retryable_statuses = [200, "6xx", "soon"]"#,
        );
        let e = load_str(&bad).expect_err("invalid").to_string();
        for needle in [
            "targets[jira].auth: set one of bearer, basic or header, not several",
            "200 is not a failure status",
            "\"6xx\" is not 4xx or 5xx",
            "\"soon\" is neither a code nor a class",
        ] {
            assert!(e.contains(needle), "{needle} in {e}");
        }
        let bad_header = EXAMPLE.replace(
            r#"auth = { bearer = { env = "JIRA_TOKEN" } }"#,
            r#"auth = { header = { name = "Idempotency-Key", value = { env = "K" } } }"#,
        );
        let e = load_str(&bad_header).expect_err("invalid").to_string();
        assert!(e.contains("targets[jira].auth.header.name"), "{e}");
    }

    #[test]
    fn pausing_defaults_to_401_alone_for_at_most_15_minutes() {
        let flows = load_str(EXAMPLE).expect("valid");
        let target = &flows.targets["jira"];
        assert!(target.pause_statuses.contains(401));
        assert!(!target.pause_statuses.contains(403));
        assert_eq!(target.max_pause, Duration::from_secs(900));

        let text = EXAMPLE.replace(
            "concurrency = 16",
            "concurrency = 16\npause_statuses = [401, 403]\nmax_pause = \"2m\"",
        );
        let target = &load_str(&text).expect("valid").targets["jira"];
        assert!(target.pause_statuses.contains(403));
        assert_eq!(target.max_pause, Duration::from_secs(120));

        let text = EXAMPLE.replace(
            "concurrency = 16",
            "concurrency = 16\npause_statuses = [307, \"3xx\"]\nretryable_statuses = [302]\nmax_pause = \"0s\"",
        );
        let e = load_str(&text).expect_err("invalid").to_string();
        for needle in [
            "targets[jira].pause_statuses: 307 is not a failure status (400-599",
            "targets[jira].pause_statuses: \"3xx\" is not 4xx or 5xx",
            "targets[jira].retryable_statuses: 302 is not a failure status",
            "targets[jira].max_pause: must be greater than zero",
        ] {
            assert!(e.contains(needle), "{needle} in {e}");
        }
    }

    #[test]
    fn paths_headers_and_base_urls_that_could_leave_the_target_are_refused() {
        let mut text = EXAMPLE.replace(
            "https://jira.example.com/",
            "https://user:pw@jira.example.com/",
        );
        text.push_str(
            r#"
[[flows]]
id = "climbs"
source = "servicenow"
target = "jira"
path = "/rest/../admin"

[[flows]]
id = "reserved"
source = "servicenow"
target = "jira"
path = "/x/{{ .a }}"
headers = { Host = "evil.example", "X-Line" = "a\r\nX-Evil: 1", "Bad Name" = "x" }
"#,
        );
        let e = load_str(&text).expect_err("invalid").to_string();
        for needle in [
            "targets[jira].base_url: must not hold user information",
            "flows[climbs].path: path \"/rest/../admin\" refused: it holds a dot segment",
            "flows[reserved].headers.Host: is set by intops or steers where the request goes",
            "flows[reserved].headers.X-Line: header value refused",
            "flows[reserved].headers.Bad Name: is not a header name",
        ] {
            assert!(e.contains(needle), "{needle} in {e}");
        }
        assert!(!e.contains("pw@"), "{e}");

        let own_key = EXAMPLE
            .replace(
                r#"auth = { bearer = { env = "JIRA_TOKEN" } }"#,
                r#"auth = { header = { name = "X-Api-Key", value = { env = "KEY" } } }"#,
            )
            .replace(
                r#"path = "/rest/api/3/issue""#,
                "path = \"/rest/api/3/issue\"\nheaders = { \"x-api-key\" = \"{{ .k }}\" }",
            );
        let e = load_str(&own_key).expect_err("invalid").to_string();
        assert!(
            e.contains("flows[snow-p1-to-jira].headers.x-api-key: carries the target's credential"),
            "{e}"
        );
    }

    #[test]
    fn max_elapsed_is_parsed() {
        let text = EXAMPLE.replace(
            r#"max_backoff = "30s" }"#,
            r#"max_backoff = "30s", max_elapsed = "10m" }"#,
        );
        let flows = load_str(&text).expect("valid");
        assert_eq!(
            flows.targets["jira"].retry.max_elapsed,
            Some(Duration::from_secs(600))
        );
    }

    #[test]
    fn unknown_fields_and_missing_auth_are_errors() {
        let e =
            load_str(&EXAMPLE.replace("concurrency = 16", "concurency = 16")).expect_err("typo");
        assert!(e.to_string().contains("concurency"), "{e}");
        let e =
            load_str(&EXAMPLE.replace(r#"auth = { hmac_sha256 = { env = "SNOW_SECRET" } }"#, ""))
                .expect_err("no auth");
        assert!(e.to_string().contains("sources[servicenow].auth"), "{e}");
        let ok = load_str(&EXAMPLE.replace(
            r#"auth = { hmac_sha256 = { env = "SNOW_SECRET" } }"#,
            r#"auth = "none""#,
        ))
        .expect("none");
        assert!(matches!(ok.sources["servicenow"].auth, SourceAuth::None));
    }

    #[test]
    fn source_options_of_the_design_load() {
        let zendesk = r#"
[[sources]]
id = "zendesk"
kind = "webhook"
entity_key = ".detail.id"
dedupe_key = '.id'
max_body_bytes = 2048
rate_limit = "100/s"
[sources.auth]
hmac_sha256 = { env = "ZENDESK_SECRET" }
header = "X-Zendesk-Webhook-Signature"
encoding = "base64"
timestamp_header = "X-Zendesk-Webhook-Signature-Timestamp"
tolerance = "2m"

[[sources]]
id = "jira"
kind = "webhook"
entity_key = ".issue.id"
auth = { hmac_sha256 = { env = "JIRA_SECRET" }, header = "X-Hub-Signature", prefix = "sha256=" }

[[sources]]
id = "tool"
kind = "webhook"
entity_key = ".id"
auth = { bearer = { file = "/run/secrets/tool" } }
"#;
        let flows = load_str(zendesk).expect("valid");
        let z = &flows.sources["zendesk"];
        assert_eq!(z.max_body_bytes, 2048);
        assert!(z.dedupe_key.is_some());
        match &z.auth {
            SourceAuth::Hmac(h) => {
                assert_eq!(
                    (h.encoding, h.prefix.as_str()),
                    (SignatureEncoding::Base64, "")
                );
                assert_eq!(h.tolerance, Duration::from_secs(120));
            }
            other => panic!("expected hmac, got {other:?}"),
        }
        match &flows.sources["jira"].auth {
            SourceAuth::Hmac(h) => assert_eq!(
                (h.header.as_str(), h.prefix.as_str()),
                ("X-Hub-Signature", "sha256=")
            ),
            other => panic!("expected hmac, got {other:?}"),
        }
        assert!(matches!(flows.sources["tool"].auth, SourceAuth::Bearer(_)));
        assert_eq!(flows.sources["tool"].max_body_bytes, 900_000);
        let both = zendesk.replace("tolerance = \"2m\"", "bearer = { env = \"X\" }");
        assert!(
            load_str(&both)
                .expect_err("both")
                .to_string()
                .contains("not both")
        );
    }

    #[test]
    fn duplicate_ids_are_errors() {
        let text = format!("{EXAMPLE}\n[[targets]]\nid = \"jira\"\nbase_url = \"http://x\"\n");
        let e = load_str(&text).expect_err("dup");
        assert!(e.to_string().contains("duplicate id \"jira\""), "{e}");
    }

    #[test]
    fn rates_parse() {
        assert_eq!(
            parse_rate("600/m"),
            Ok(RateLimit {
                count: 600,
                per: Duration::from_secs(60)
            })
        );
        assert!(parse_rate("fast").is_err());
        assert!(parse_rate("0/s").is_err());
    }
}
