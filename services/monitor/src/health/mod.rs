//! Per-flow and per-target health: counts folded from the delivery
//! requests and outcomes over the monitor's window, evaluated against each
//! flow's objectives into healthy, degraded or failing with the reason;
//! payload drift of the fields each flow reads ([`drift`]) degrades it.

mod drift;
pub mod series;

use std::collections::BTreeMap;
use std::time::Duration;

use intops_events::{DeliveryRequest, IntegrationEvent, Outcome, OutcomeStatus, Stage};
use intops_flows::{Flows, Slo};
use serde::Serialize;

use self::drift::Drifts;
use self::series::{Counts, Series};

/// A flow's health.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Every objective holds.
    Healthy,
    /// Slower or further behind than an objective allows, or dead letters
    /// without an explicit objective.
    Degraded,
    /// Failing its success ratio or silent for too long.
    Failing,
}

impl Status {
    /// As text.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Healthy => "healthy",
            Status::Degraded => "degraded",
            Status::Failing => "failing",
        }
    }

    /// As a metric value: 0, 1, 2.
    pub fn level(self) -> f64 {
        match self {
            Status::Healthy => 0.0,
            Status::Degraded => 1.0,
            Status::Failing => 2.0,
        }
    }
}

/// Latency quantiles, milliseconds (bucket upper bounds).
#[derive(Debug, Clone, Serialize)]
pub struct Latency {
    /// Median.
    pub p50: Option<i64>,
    /// 95th percentile.
    pub p95: Option<i64>,
    /// 99th percentile.
    pub p99: Option<i64>,
}

/// Counts over a span, as the API shows them.
#[derive(Debug, Clone, Serialize)]
pub struct Figures {
    /// The span (`24h`, `5m`).
    pub span: String,
    /// Delivery requests written.
    pub routed: u64,
    /// Delivered.
    pub delivered: u64,
    /// Dead-lettered.
    pub dead_lettered: u64,
    /// Not sent: the target already had what the request would write
    /// (neither delivered nor failed).
    pub echoes: u64,
    /// Write-backs not sent: no link for their entity (neither delivered
    /// nor failed).
    pub no_link: u64,
    /// Attempts beyond the first.
    pub retries: u64,
    /// Delivered share of final results.
    pub success_ratio: Option<f64>,
    /// Ingested → delivered.
    pub latency_ms: Latency,
}

impl Figures {
    fn of(span: Duration, c: &Counts) -> Self {
        Self {
            span: humantime::format_duration(span).to_string(),
            routed: c.routed,
            delivered: c.delivered,
            dead_lettered: c.dead_lettered,
            echoes: c.echoes,
            no_link: c.no_link,
            retries: c.retries,
            success_ratio: c.success_ratio(),
            latency_ms: Latency {
                p50: c.latency_quantile_ms(0.50),
                p95: c.latency_quantile_ms(0.95),
                p99: c.latency_quantile_ms(0.99),
            },
        }
    }
}

/// One flow's health as the API shows it.
#[derive(Debug, Clone, Serialize)]
pub struct FlowHealth {
    /// The flow.
    pub flow_id: String,
    /// Its tenant, owner, description and tags.
    #[serde(flatten)]
    pub owner: Owner,
    /// Its source.
    pub source_id: String,
    /// Its target.
    pub target_id: String,
    /// Healthy, degraded or failing.
    pub status: Status,
    /// Why it is not healthy (empty when it is).
    pub reason: String,
    /// Since when it has had this status (RFC 3339).
    pub since: String,
    /// Over the monitor's window.
    pub window: Figures,
    /// Over the objectives' window.
    pub recent: Figures,
    /// The last delivery (RFC 3339).
    pub last_success: Option<String>,
    /// Seconds since then.
    pub seconds_since_success: Option<i64>,
    /// Consumer lag of the target's delivery group (records).
    pub lag: Option<i64>,
}

/// A recent dead letter, as the status page lists it.
#[derive(Debug, Clone, Serialize)]
pub struct DeadView {
    /// The event.
    pub event_id: String,
    /// `transform` or `delivery`.
    pub stage: &'static str,
    /// The flow, if known.
    pub flow_id: Option<String>,
    /// The target, if known.
    pub target_id: Option<String>,
    /// The tenant, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
    /// Why.
    pub error: Option<String>,
    /// When (RFC 3339).
    pub at: String,
    #[serde(skip)]
    at_micros: i64,
}

/// Dead letters the status page lists.
const RECENT_DEAD: usize = 50;

/// A flow whose status changed at an evaluation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// The flow.
    pub flow_id: String,
    /// Its target.
    pub target_id: String,
    /// Before.
    pub from: Status,
    /// Now.
    pub to: Status,
    /// Why (empty when healthy again).
    pub reason: String,
    /// Who answers for the flow.
    pub owner: Owner,
}

/// Who answers for a flow, and for which tenant it runs.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Owner {
    /// The tenant whose instance of a template the flow is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
    /// Who answers for it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    /// What it is for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Free labels.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
}

impl Owner {
    fn of(f: &intops_flows::Flow) -> Self {
        Self {
            tenant: f.tenant.clone(),
            owner: f.owner.clone(),
            description: f.description.clone(),
            tags: f.tags.clone(),
        }
    }
}

#[derive(Debug)]
struct FlowState {
    owner: Owner,
    source: String,
    target: String,
    slo: Slo,
    series: Series,
    last_success: Option<i64>,
    /// The last echo: like a delivery, it shows the flow answering its
    /// events, so it restarts the `max_silence` clock.
    last_echo: Option<i64>,
    status: Status,
    since: i64,
    reason: String,
}

impl FlowState {
    /// A flow as it starts: healthy at `now`, with nothing counted.
    fn new(f: &intops_flows::Flow, now: i64) -> Self {
        Self {
            owner: Owner::of(f),
            source: f.source.clone(),
            target: f.target.clone(),
            slo: f.slo,
            series: Series::default(),
            last_success: None,
            last_echo: None,
            status: Status::Healthy,
            since: now,
            reason: String::new(),
        }
    }
}

/// Health of every flow of the flows file.
#[derive(Debug)]
pub struct Health {
    window: Duration,
    started: i64,
    flows: BTreeMap<String, FlowState>,
    targets: BTreeMap<String, Series>,
    lag: BTreeMap<String, i64>,
    unrouted: Series,
    dead: std::collections::VecDeque<DeadView>,
    /// The payload fields each flow reads, counted.
    drift: Drifts,
}

impl Health {
    /// Health of `flows`' flows over `window`, starting at `now` (micros).
    pub fn new(flows: &Flows, window: Duration, now: i64) -> Self {
        Self {
            window,
            started: now,
            flows: flows
                .flows
                .iter()
                .map(|f| (f.id.clone(), FlowState::new(f, now)))
                .collect(),
            targets: flows
                .targets
                .keys()
                .map(|t| (t.clone(), Series::default()))
                .collect(),
            lag: BTreeMap::new(),
            unrouted: Series::default(),
            dead: std::collections::VecDeque::new(),
            drift: Drifts::new(flows, None),
        }
    }

    /// Folds an event: counts the payload fields its flows read.
    pub fn on_event(&mut self, e: &IntegrationEvent) {
        self.drift.on_event(e);
    }

    /// Per flow and payload field it reads: the share of recent events
    /// without it, and whether it drifts.
    pub fn field_figures(&self, now: i64) -> Vec<(String, String, f64, bool)> {
        let secs = now / 1_000_000;
        // Each flow's drift is judged once, not once per field.
        let mut reasons: BTreeMap<&str, Vec<String>> = BTreeMap::new();
        self.drift
            .missing_shares(secs)
            .into_iter()
            .map(|(flow, field, missing)| {
                let drifting = reasons
                    .entry(flow)
                    .or_insert_with(|| self.drift.reasons(flow, secs))
                    .iter()
                    .any(|r| r.starts_with(&format!("reads .{field}:")));
                (flow.to_string(), field.to_string(), missing, drifting)
            })
            .collect()
    }

    /// Takes a reloaded flows file in: flows kept keep their figures and
    /// status with the new objectives, new flows start healthy at `now`,
    /// removed flows (and targets) are dropped.
    pub fn reconfigure(&mut self, flows: &Flows, now: i64) {
        let mut kept = std::mem::take(&mut self.flows);
        for f in &flows.flows {
            let state = match kept.remove(&f.id) {
                Some(mut state) => {
                    state.owner = Owner::of(f);
                    state.source = f.source.clone();
                    state.target = f.target.clone();
                    state.slo = f.slo;
                    state
                }
                None => FlowState::new(f, now),
            };
            self.flows.insert(f.id.clone(), state);
        }
        self.drift = Drifts::new(flows, Some(std::mem::take(&mut self.drift)));
        let mut targets = std::mem::take(&mut self.targets);
        self.targets = flows
            .targets
            .keys()
            .map(|t| (t.clone(), targets.remove(t).unwrap_or_default()))
            .collect();
    }

    /// Folds a delivery request: the flow routed an event.
    pub fn on_request(&mut self, r: &DeliveryRequest) {
        if let Some(f) = self.flows.get_mut(&r.flow_id) {
            f.series.record(r.created_at, |c| c.routed += 1);
        }
        if let Some(t) = self.targets.get_mut(&r.target_id) {
            t.record(r.created_at, |c| c.routed += 1);
        }
    }

    /// Folds an outcome. An `echo` is a final result that is neither
    /// delivered nor failed: counted apart, outside the success ratio, and
    /// restarting the silence clock like a delivery. An `unrouted` outcome
    /// about a flow (a write-back without a link) is counted as the flow's
    /// `no_link`, not among the events no flow routed.
    pub fn on_outcome(&mut self, o: &Outcome) {
        if o.status == OutcomeStatus::Unrouted && o.flow_id.is_none() {
            self.unrouted.record(o.at, |c| c.routed += 1);
            return;
        }
        let fold = |c: &mut Counts| match o.status {
            OutcomeStatus::Delivered => {
                c.delivered += 1;
                c.retries += u64::try_from(o.attempts.saturating_sub(1)).unwrap_or(0);
                if let Some(ms) = o.latency_ms {
                    c.observe_latency(ms);
                }
            }
            OutcomeStatus::DeadLettered => {
                c.dead_lettered += 1;
                c.retries += u64::try_from(o.attempts.saturating_sub(1)).unwrap_or(0);
            }
            OutcomeStatus::Echo => c.echoes += 1,
            OutcomeStatus::Unrouted => c.no_link += 1,
            OutcomeStatus::Replayed | OutcomeStatus::Parked => {}
        };
        if !matches!(o.stage, Stage::Delivery | Stage::Transform) {
            return;
        }
        if o.status == OutcomeStatus::DeadLettered {
            self.remember_dead(o);
        }
        if let Some(f) = o.flow_id.as_ref().and_then(|id| self.flows.get_mut(id)) {
            f.series.record(o.at, fold);
            match o.status {
                OutcomeStatus::Delivered => f.last_success = f.last_success.max(Some(o.at)),
                OutcomeStatus::Echo => f.last_echo = f.last_echo.max(Some(o.at)),
                _ => {}
            }
        }
        if let Some(t) = o.target_id.as_ref().and_then(|id| self.targets.get_mut(id)) {
            t.record(o.at, fold);
        }
    }

    fn remember_dead(&mut self, o: &Outcome) {
        let view = DeadView {
            event_id: o.event_id.clone(),
            stage: o.stage.as_str(),
            flow_id: o.flow_id.clone(),
            target_id: o.target_id.clone(),
            tenant: o.tenant.clone(),
            error: o.error.clone(),
            at: rfc3339(o.at),
            at_micros: o.at,
        };
        let i = self.dead.partition_point(|d| d.at_micros <= o.at);
        self.dead.insert(i, view);
        while self.dead.len() > RECENT_DEAD {
            self.dead.pop_front();
        }
    }

    /// The most recent dead letters, newest first.
    pub fn recent_dead(&self) -> impl Iterator<Item = &DeadView> {
        self.dead.iter().rev()
    }

    /// The latest consumer lag of each target's delivery group.
    pub fn set_lag(&mut self, target: &str, lag: i64) {
        self.lag.insert(target.to_string(), lag);
    }

    /// Re-evaluates every flow at `now` (micros); returns the flows whose
    /// status changed.
    pub fn evaluate(&mut self, now: i64) -> Vec<Change> {
        let horizon = now / 1_000_000 - self.window.as_secs() as i64;
        self.unrouted.prune(horizon);
        self.drift.prune(horizon);
        for t in self.targets.values_mut() {
            t.prune(horizon);
        }
        let mut changes = Vec::new();
        for (id, f) in &mut self.flows {
            f.series.prune(horizon);
            let recent = f
                .series
                .since(now / 1_000_000 - f.slo.window.as_secs() as i64);
            let last_answer = f.last_success.max(f.last_echo);
            let silence_from = last_answer.unwrap_or(self.started);
            let (status, reason) = judge(
                &f.slo,
                &recent,
                Duration::from_micros(u64::try_from(now - silence_from).unwrap_or(0)),
                last_answer.is_some(),
                self.lag.get(&f.target).copied(),
            );
            let (status, reason) =
                with_drift(status, reason, self.drift.reasons(id, now / 1_000_000));
            if status != f.status {
                changes.push(Change {
                    owner: f.owner.clone(),
                    flow_id: id.clone(),
                    target_id: f.target.clone(),
                    from: f.status,
                    to: status,
                    reason: reason.clone(),
                });
                f.status = status;
                f.since = now;
            }
            f.reason = reason;
        }
        changes
    }

    /// Every flow's health at `now`, in id order.
    pub fn flows(&self, now: i64) -> Vec<FlowHealth> {
        self.flows
            .iter()
            .map(|(id, f)| self.view(id, f, now))
            .collect()
    }

    /// One flow's health.
    pub fn flow(&self, id: &str, now: i64) -> Option<FlowHealth> {
        self.flows.get(id).map(|f| self.view(id, f, now))
    }

    /// Events no flow routed, over the window.
    pub fn unrouted(&self) -> u64 {
        self.unrouted.since(0).routed
    }

    /// A flow's results per period of `width_secs` over the window, and
    /// its objectives.
    pub fn flow_periods(&self, id: &str, width_secs: i64) -> Option<(Vec<(i64, Counts)>, Slo)> {
        self.flows
            .get(id)
            .map(|f| (f.series.per(width_secs), f.slo))
    }

    /// The window, in seconds.
    pub fn window_secs(&self) -> i64 {
        i64::try_from(self.window.as_secs()).unwrap_or(i64::MAX)
    }

    /// The flows file's targets, by id.
    pub fn target_ids(&self) -> Vec<String> {
        self.targets.keys().cloned().collect()
    }

    /// A target's counts over the window.
    pub fn target(&self, id: &str) -> Option<Figures> {
        self.targets
            .get(id)
            .map(|t| Figures::of(self.window, &t.since(0)))
    }

    /// Buckets held over all series (the state's size).
    pub fn buckets(&self) -> usize {
        self.flows.values().map(|f| f.series.len()).sum::<usize>()
            + self.targets.values().map(Series::len).sum::<usize>()
            + self.unrouted.len()
    }

    fn view(&self, id: &str, f: &FlowState, now: i64) -> FlowHealth {
        let now_secs = now / 1_000_000;
        FlowHealth {
            owner: f.owner.clone(),
            flow_id: id.to_string(),
            source_id: f.source.clone(),
            target_id: f.target.clone(),
            status: f.status,
            reason: f.reason.clone(),
            since: rfc3339(f.since),
            window: Figures::of(self.window, &f.series.since(0)),
            recent: Figures::of(
                f.slo.window,
                &f.series.since(now_secs - f.slo.window.as_secs() as i64),
            ),
            last_success: f.last_success.map(rfc3339),
            seconds_since_success: f.last_success.map(|at| (now - at) / 1_000_000),
            lag: self.lag.get(&f.target).copied(),
        }
    }
}

/// The status and reason that `recent` counts, the time since the last
/// delivery and the target's lag give under `slo`.
fn judge(
    slo: &Slo,
    recent: &Counts,
    silence: Duration,
    ever_delivered: bool,
    lag: Option<i64>,
) -> (Status, String) {
    let span = humantime::format_duration(slo.window);
    let mut failing = Vec::new();
    let mut degraded = Vec::new();
    match (slo.success_ratio, recent.success_ratio()) {
        (Some(objective), Some(ratio)) if ratio < objective => failing.push(format!(
            "success ratio {ratio:.2} below {objective} over {span} ({} of {} delivered)",
            recent.delivered,
            recent.delivered + recent.dead_lettered
        )),
        (None, _) if recent.dead_lettered > 0 => {
            degraded.push(format!("{} dead letter(s) in {span}", recent.dead_lettered))
        }
        _ => {}
    }
    if let (Some(objective), Some(p95)) = (slo.latency_p95, recent.latency_quantile_ms(0.95))
        && p95 > objective.as_millis() as i64
    {
        degraded.push(format!(
            "latency p95 above {} over {span}",
            humantime::format_duration(objective)
        ));
    }
    if let Some(max) = slo.max_silence
        && silence > max
    {
        let since = humantime::format_duration(Duration::from_secs(silence.as_secs()));
        failing.push(if ever_delivered {
            format!(
                "no delivery for {since} (max {})",
                humantime::format_duration(max)
            )
        } else {
            format!(
                "no delivery since the monitor started {since} ago (max {})",
                humantime::format_duration(max)
            )
        });
    }
    if let (Some(max), Some(lag)) = (slo.max_lag, lag)
        && lag > max
    {
        degraded.push(format!("consumer lag {lag} above {max}"));
    }
    let status = if !failing.is_empty() {
        Status::Failing
    } else if !degraded.is_empty() {
        Status::Degraded
    } else {
        Status::Healthy
    };
    failing.extend(degraded);
    (status, failing.join("; "))
}

/// A flow's status and reason with its payload drift (degraded at least).
fn with_drift(status: Status, reason: String, drift: Vec<String>) -> (Status, String) {
    if drift.is_empty() {
        return (status, reason);
    }
    let status = if status == Status::Healthy {
        Status::Degraded
    } else {
        status
    };
    let reason = std::iter::once(reason)
        .filter(|r| !r.is_empty())
        .chain(drift)
        .collect::<Vec<_>>()
        .join("; ");
    (status, reason)
}

fn rfc3339(micros: i64) -> String {
    let at = std::time::UNIX_EPOCH + Duration::from_micros(u64::try_from(micros).unwrap_or(0));
    humantime::format_rfc3339_seconds(at).to_string()
}

#[cfg(test)]
mod tests;
