//! A tenant's figures over a period, summed from the hourly rollups:
//! per flow, and per day for usage and the chart.

use std::collections::BTreeMap;

use intops_events::{HourlyRollup, quantile_bound};
use serde::Serialize;

const DAY_MICROS: i64 = 24 * 3_600_000_000;

/// One flow over the whole period.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct FlowFigures {
    pub flow_id: String,
    pub received: i64,
    pub delivered: i64,
    pub dead_lettered: i64,
    pub replayed: i64,
    /// Delivered share of delivered plus dead-lettered.
    pub success_ratio: Option<f64>,
    /// Upper bound of the latency bucket holding the median; `null`
    /// without deliveries, or slower than the largest bound.
    pub latency_p50_ms: Option<i64>,
    pub latency_p95_ms: Option<i64>,
    pub healthy_seconds: i64,
    pub degraded_seconds: i64,
    pub failing_seconds: i64,
    /// The period's time the monitor did not judge the flow.
    pub unobserved_seconds: i64,
    /// The flow's objectives (as last judged in the period).
    pub success_objective: Option<f64>,
    pub latency_objective_ms: Option<i64>,
    /// Whether the period's figures meet every objective; `null` without
    /// objectives or without results.
    pub objectives_met: Option<bool>,
    /// Share of the hours with results in which every objective was met.
    pub attainment: Option<f64>,
    /// Hours with results.
    pub hours_with_results: i64,
    #[serde(skip)]
    latency: Histogram,
    /// Hours with results and objectives: (met, judged).
    #[serde(skip)]
    hours_met: (i64, i64),
}

/// One UTC day of the tenant.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct DayFigures {
    /// `YYYY-MM-DD`.
    pub date: String,
    /// Events the tenant's sources accepted (usage).
    pub events: i64,
    pub received: i64,
    pub delivered: i64,
    pub dead_lettered: i64,
    pub success_ratio: Option<f64>,
}

/// A tenant's report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    pub tenant: String,
    /// RFC 3339; inclusive.
    pub from: String,
    /// RFC 3339; exclusive.
    pub to: String,
    pub flows: Vec<FlowFigures>,
    pub days: Vec<DayFigures>,
    /// Events over the period (the days' sum).
    pub events: i64,
}

#[derive(Debug, Clone, Default, PartialEq)]
struct Histogram {
    bounds: Vec<i64>,
    counts: Vec<u64>,
}

impl Histogram {
    /// Adds `r`'s latencies; records with other bounds than the first
    /// are left out (the bounds never changed so far).
    fn add(&mut self, r: &HourlyRollup) {
        if self.bounds.is_empty() {
            self.bounds = r.latency_bounds_ms.clone();
            self.counts = vec![0; self.bounds.len()];
        }
        if r.latency_bounds_ms == self.bounds {
            for (c, n) in self.counts.iter_mut().zip(&r.latency_counts) {
                *c += u64::try_from(*n).unwrap_or(0);
            }
        }
    }

    fn quantile(&self, q: f64) -> Option<i64> {
        quantile_bound(&self.bounds, &self.counts, q).filter(|b| *b != i64::MAX)
    }
}

fn ratio(delivered: i64, dead: i64) -> Option<f64> {
    (delivered + dead > 0).then(|| delivered as f64 / (delivered + dead) as f64)
}

/// Whether figures meet the objectives they have; `None` when there is
/// nothing to judge.
fn meets(
    success: Option<f64>,
    p95: Option<i64>,
    success_objective: Option<f64>,
    latency_objective_ms: Option<i64>,
) -> Option<bool> {
    let checks: Vec<bool> = [
        success.zip(success_objective).map(|(s, o)| s >= o),
        p95.zip(latency_objective_ms).map(|(p, o)| p <= o),
    ]
    .into_iter()
    .flatten()
    .collect();
    (!checks.is_empty()).then(|| checks.iter().all(|ok| *ok))
}

/// The report of `tenant` over `[from, to)` (micros) from `rollups`.
pub fn report(
    tenant: &str,
    from: i64,
    to: i64,
    rollups: impl IntoIterator<Item = HourlyRollup>,
) -> Report {
    let mut flows: BTreeMap<String, FlowFigures> = BTreeMap::new();
    let mut days: BTreeMap<i64, DayFigures> = BTreeMap::new();
    let mut day = from.div_euclid(DAY_MICROS) * DAY_MICROS;
    while day < to {
        days.insert(
            day,
            DayFigures {
                date: crate::when::format(day)[..10].to_string(),
                ..Default::default()
            },
        );
        day += DAY_MICROS;
    }
    let mut rollups: Vec<HourlyRollup> = rollups
        .into_iter()
        .filter(|r| r.tenant.as_deref() == Some(tenant) && r.hour >= from && r.hour < to)
        .collect();
    rollups.sort_by_key(|r| r.hour);
    for r in &rollups {
        let day = days.get_mut(&(r.hour.div_euclid(DAY_MICROS) * DAY_MICROS));
        if r.scope == "source" {
            if let Some(d) = day {
                d.events += r.received;
            }
            continue;
        }
        if let Some(d) = day {
            d.received += r.received;
            d.delivered += r.delivered;
            d.dead_lettered += r.dead_lettered;
        }
        let f = flows.entry(r.id.clone()).or_insert_with(|| FlowFigures {
            flow_id: r.id.clone(),
            ..Default::default()
        });
        f.received += r.received;
        f.delivered += r.delivered;
        f.dead_lettered += r.dead_lettered;
        f.replayed += r.replayed;
        f.healthy_seconds += r.healthy_ms / 1_000;
        f.degraded_seconds += r.degraded_ms / 1_000;
        f.failing_seconds += r.failing_ms / 1_000;
        f.latency.add(r);
        if r.success_objective.is_some() || r.latency_objective_ms.is_some() {
            f.success_objective = r.success_objective;
            f.latency_objective_ms = r.latency_objective_ms;
        }
        if r.delivered + r.dead_lettered > 0 {
            f.hours_with_results += 1;
            let mut hour = Histogram::default();
            hour.add(r);
            let met = meets(
                ratio(r.delivered, r.dead_lettered),
                hour.quantile(0.95),
                r.success_objective,
                r.latency_objective_ms,
            );
            if let Some(met) = met {
                f.hours_met.0 += i64::from(met);
                f.hours_met.1 += 1;
            }
        }
    }
    let period_seconds = (to - from) / 1_000_000;
    let flows: Vec<FlowFigures> = flows
        .into_values()
        .map(|mut f| {
            f.success_ratio = ratio(f.delivered, f.dead_lettered);
            f.latency_p50_ms = f.latency.quantile(0.50);
            f.latency_p95_ms = f.latency.quantile(0.95);
            let judged = f.healthy_seconds + f.degraded_seconds + f.failing_seconds;
            f.unobserved_seconds = (period_seconds - judged).max(0);
            f.objectives_met = meets(
                f.success_ratio,
                f.latency_p95_ms,
                f.success_objective,
                f.latency_objective_ms,
            );
            let (n, of) = f.hours_met;
            f.attainment = (of > 0).then(|| n as f64 / of as f64);
            f
        })
        .collect();
    let days: Vec<DayFigures> = days
        .into_values()
        .map(|mut d| {
            d.success_ratio = ratio(d.delivered, d.dead_lettered);
            d
        })
        .collect();
    Report {
        tenant: tenant.to_string(),
        from: crate::when::format(from),
        to: crate::when::format(to),
        events: days.iter().map(|d| d.events).sum(),
        flows,
        days,
    }
}
