//! The report as one CSV table: a `total` row per flow for the period,
//! then a row per day and flow, and a row per day for usage (empty
//! `flow_id`, `received` = events the tenant's sources accepted).

use super::figures::{FlowFigures, Report};

const HEADER: &str = "period,flow_id,received,delivered,dead_lettered,replayed,success_ratio,latency_p50_ms,latency_p95_ms,healthy_seconds,degraded_seconds,failing_seconds,unobserved_seconds,objectives_met,attainment";

fn field(text: &str) -> String {
    if text.contains([',', '"', '\n']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text.to_string()
    }
}

fn opt<T: ToString>(v: Option<T>) -> String {
    v.map(|v| v.to_string()).unwrap_or_default()
}

fn flow_row(period: &str, f: &FlowFigures) -> String {
    [
        field(period),
        field(&f.flow_id),
        f.received.to_string(),
        f.delivered.to_string(),
        f.dead_lettered.to_string(),
        f.replayed.to_string(),
        opt(f.success_ratio),
        opt(f.latency_p50_ms),
        opt(f.latency_p95_ms),
        f.healthy_seconds.to_string(),
        f.degraded_seconds.to_string(),
        f.failing_seconds.to_string(),
        f.unobserved_seconds.to_string(),
        opt(f.objectives_met),
        opt(f.attainment),
    ]
    .join(",")
}

/// The table; `daily` holds each day's per-flow figures.
pub fn render(r: &Report, daily: &[Report]) -> String {
    let mut out = vec![HEADER.to_string()];
    out.extend(r.flows.iter().map(|f| flow_row("total", f)));
    for day in daily {
        let date = day.days.first().map_or("", |d| d.date.as_str());
        out.extend(day.flows.iter().map(|f| flow_row(date, f)));
        out.push(format!("{date},,{},,,,,,,,,,,,", day.events));
    }
    out.join("\n") + "\n"
}
