//! `GET /flows/{flow_id}`: one flow's health with its reason, objectives
//! and their attainment, and charts of its results and p95 latency per
//! 5 minutes over the window; `GET /api/v1/flows/{flow_id}/periods` is the
//! same data as JSON.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use intops_events::now_micros;
use intops_flows::Slo;
use maud::html;
use serde_json::json;

use super::chart::{self, Period};
use super::layout;
use crate::api::Shared;

/// The chart's period.
pub(crate) const PERIOD_SECS: i64 = 300;

/// A flow's periods and objectives, with the window's bounds (seconds).
struct Data {
    periods: Vec<Period>,
    slo: Slo,
    from: i64,
    to: i64,
}

fn data(s: &Shared, flow_id: &str) -> Option<(Data, crate::health::FlowHealth)> {
    let h = s.health.read().ok()?;
    let now = now_micros();
    let health = h.flow(flow_id, now)?;
    let (periods, slo) = h.flow_periods(flow_id, PERIOD_SECS)?;
    // From the start of the window's first period to the end of the
    // current one (so the current period's bar fits).
    let to = (now / 1_000_000).div_euclid(PERIOD_SECS) * PERIOD_SECS + PERIOD_SECS;
    let from = to - h.window_secs().div_euclid(PERIOD_SECS).max(1) * PERIOD_SECS;
    let periods = periods
        .iter()
        .filter(|(start, _)| *start >= from)
        .map(|(start, c)| Period::of(*start, c))
        .collect();
    Some((
        Data {
            periods,
            slo,
            from,
            to,
        },
        health,
    ))
}

/// The share of periods with results whose results met the flow's ratio
/// and p95 objectives; `None` without objectives or results.
pub(crate) fn attainment(periods: &[Period], slo: &Slo) -> Option<f64> {
    if slo.success_ratio.is_none() && slo.latency_p95.is_none() {
        return None;
    }
    let with_results: Vec<&Period> = periods
        .iter()
        .filter(|p| p.delivered + p.dead_lettered > 0)
        .collect();
    if with_results.is_empty() {
        return None;
    }
    let met = with_results
        .iter()
        .filter(|p| {
            let ratio = p.delivered as f64 / (p.delivered + p.dead_lettered) as f64;
            let ratio_ok = slo.success_ratio.is_none_or(|want| ratio >= want);
            let p95_ok = slo.latency_p95.is_none_or(|want| {
                p.p95_ms
                    .is_none_or(|ms| ms <= i64::try_from(want.as_millis()).unwrap_or(i64::MAX))
            });
            ratio_ok && p95_ok
        })
        .count();
    Some(met as f64 / with_results.len() as f64)
}

/// `GET /api/v1/flows/{flow_id}/periods`.
pub(crate) async fn periods(State(s): State<Shared>, Path(flow_id): Path<String>) -> Response {
    match data(&s, &flow_id) {
        Some((d, _)) => Json(json!({
            "flow_id": flow_id,
            "period_seconds": PERIOD_SECS,
            "from": d.from,
            "to": d.to,
            "attainment": attainment(&d.periods, &d.slo),
            "periods": d.periods,
        }))
        .into_response(),
        None => (
            StatusCode::NOT_FOUND,
            Json(json!({"error": "not_found", "detail": format!("no flow {flow_id} in the flows file")})),
        )
            .into_response(),
    }
}

/// `GET /flows/{flow_id}`.
pub(crate) async fn page(State(s): State<Shared>, Path(flow_id): Path<String>) -> Response {
    let Some((d, f)) = data(&s, &flow_id) else {
        return (
            StatusCode::NOT_FOUND,
            layout(
                "Flow",
                html! { p.error { "No flow " (flow_id) " in the flows file." } },
            ),
        )
            .into_response();
    };
    let status = f.status.as_str();
    let attained = attainment(&d.periods, &d.slo);
    let objective = |v: Option<String>| v.unwrap_or_else(|| "none".into());
    layout(
        &format!("Flow {flow_id}"),
        html! {
            p id="flow-health" {
                span class={ "status status-" (status) } { (status) } " " (f.reason) " " span.muted { "since " (f.since) }
            }
            p { (f.source_id) " → " (f.target_id)
                @if let Some(o) = &f.owner.owner { " · owner " (o) }
                @if let Some(t) = &f.owner.tenant { " · tenant " (t) } }
            table id="objectives" {
                tr { th { "objective" } th { "wanted" } }
                tr { td { "success ratio" } td { (objective(d.slo.success_ratio.map(|r| format!("≥ {r}")))) } }
                tr { td { "p95 latency" } td { (objective(d.slo.latency_p95.map(|l| format!("≤ {}", humantime::format_duration(l))))) } }
                tr { td { "longest silence" } td { (objective(d.slo.max_silence.map(|l| humantime::format_duration(l).to_string()))) } }
                tr { td { "consumer lag" } td { (objective(d.slo.max_lag.map(|l| format!("≤ {l}")))) } }
            }
            p id="attainment" {
                "Objectives met in "
                @match attained { Some(a) => { (format!("{:.1}", a * 100.0)) "%" }, None => { "- (no objectives or no results)" } }
                " of the 5-minute periods with results in the window; "
                (f.window.delivered) " delivered, " (f.window.dead_lettered) " dead-lettered."
            }
            h2 { "Delivered and dead-lettered per 5 minutes" }
            (chart::results(&d.periods, d.from, d.to, PERIOD_SECS))
            h2 { "p95 latency per 5 minutes" }
            (chart::latency(&d.periods, d.from, d.to))
            p {
                a href={ "/feed?flow=" (flow_id) } { "Events of this flow" } " · "
                a href={ "/dead-letters?flow=" (flow_id) } { "Its dead letters" } " · "
                a href={ "/api/v1/flows/" (flow_id) } { "JSON" }
            }
        },
    )
    .into_response()
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn attainment_counts_periods_meeting_every_objective() {
        let p = |delivered, dead_lettered, p95_ms| Period {
            start: 0,
            delivered,
            dead_lettered,
            p95_ms,
        };
        let periods = [
            p(10, 0, Some(100)),
            p(5, 5, Some(100)),
            p(10, 0, Some(5_000)),
            p(0, 0, None),
        ];
        let slo = Slo {
            success_ratio: Some(0.9),
            latency_p95: Some(Duration::from_secs(1)),
            ..Slo::default()
        };
        // Three periods with results; only the first meets both.
        assert_eq!(attainment(&periods, &slo), Some(1.0 / 3.0));
        assert_eq!(attainment(&periods, &Slo::default()), None);
        let ratio_only = Slo {
            success_ratio: Some(0.9),
            ..Slo::default()
        };
        assert_eq!(attainment(&periods, &ratio_only), Some(2.0 / 3.0));
    }
}
