//! Charts drawn on the server as inline SVG (no scripts, no external
//! assets): a flow's delivered and dead-lettered results per period as
//! stacked bars, and its p95 latency per period as a line.

use maud::{Markup, html};
use serde::Serialize;

use crate::health::series::Counts;

/// One period of a flow's chart.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct Period {
    /// Its start, seconds since the epoch.
    pub start: i64,
    pub delivered: u64,
    pub dead_lettered: u64,
    /// The bucket bound holding the 95th percentile (milliseconds).
    pub p95_ms: Option<i64>,
}

/// The slowest latency a period shows: the last finite bucket bound (an
/// hour); slower (a replay of old dead letters) shows as this.
pub(crate) const SLOWEST_SHOWN_MS: i64 = 3_600_000;

impl Period {
    pub fn of(start: i64, c: &Counts) -> Self {
        Self {
            start,
            delivered: c.delivered,
            dead_lettered: c.dead_lettered,
            p95_ms: c
                .latency_quantile_ms(0.95)
                .map(|ms| ms.min(SLOWEST_SHOWN_MS)),
        }
    }
}

const WIDTH: f64 = 720.0;
const HEIGHT: f64 = 160.0;
const LEFT: f64 = 48.0;
const BOTTOM: f64 = 20.0;

/// x of a period starting at `start` within `from..=to`.
fn x(start: i64, from: i64, to: i64) -> f64 {
    let span = (to - from).max(1) as f64;
    LEFT + (start - from) as f64 / span * (WIDTH - LEFT - 8.0)
}

/// Stacked bars: delivered (green) under dead-lettered (red), one per
/// period from `from` to `to` (seconds), `width_secs` wide.
pub(crate) fn results(periods: &[Period], from: i64, to: i64, width_secs: i64) -> Markup {
    let top = periods
        .iter()
        .map(|p| p.delivered + p.dead_lettered)
        .max()
        .unwrap_or(0)
        .max(1);
    let plot = HEIGHT - BOTTOM - 8.0;
    let bar = (x(from + width_secs, from, to) - x(from, from, to) - 1.0).max(1.0);
    let h = |n: u64| n as f64 / top as f64 * plot;
    html! {
        svg id="chart-results" xmlns="http://www.w3.org/2000/svg" width=(WIDTH) height=(HEIGHT) viewBox={ "0 0 " (WIDTH) " " (HEIGHT) } role="img" {
            title { "delivered and dead-lettered per period" }
            (axes(&top.to_string(), from, to))
            @for p in periods {
                @let (d, f) = (h(p.delivered), h(p.dead_lettered));
                rect class="delivered" x=(fmt(x(p.start, from, to))) y=(fmt(HEIGHT - BOTTOM - d)) width=(fmt(bar)) height=(fmt(d)) fill="#2e8540" {}
                @if p.dead_lettered > 0 {
                    rect class="dead-lettered" x=(fmt(x(p.start, from, to))) y=(fmt(HEIGHT - BOTTOM - d - f)) width=(fmt(bar)) height=(fmt(f)) fill="#c0392b" {}
                }
            }
        }
    }
}

/// The p95 latency per period as a line joining the periods with
/// deliveries, with a marker on each.
pub(crate) fn latency(periods: &[Period], from: i64, to: i64) -> Markup {
    let top = periods
        .iter()
        .filter_map(|p| p.p95_ms)
        .max()
        .unwrap_or(0)
        .max(1);
    let plot = HEIGHT - BOTTOM - 8.0;
    let y = |ms: i64| HEIGHT - BOTTOM - ms as f64 / top as f64 * plot;
    let xy: Vec<(String, String)> = periods
        .iter()
        .filter_map(|p| p.p95_ms.map(|ms| (fmt(x(p.start, from, to)), fmt(y(ms)))))
        .collect();
    let points: Vec<String> = xy.iter().map(|(x, y)| format!("{x},{y}")).collect();
    html! {
        svg id="chart-latency" xmlns="http://www.w3.org/2000/svg" width=(WIDTH) height=(HEIGHT) viewBox={ "0 0 " (WIDTH) " " (HEIGHT) } role="img" {
            title { "p95 latency per period (ms)" }
            (axes(&if top >= SLOWEST_SHOWN_MS { "≥ 1 h".to_string() } else { format!("{top} ms") }, from, to))
            @if !points.is_empty() {
                polyline points=(points.join(" ")) fill="none" stroke="#1f5fa8" stroke-width="2" {}
            }
            // A marker per period, so a lone period shows too.
            @for (cx, cy) in &xy {
                circle cx=(cx) cy=(cy) r="3" fill="#1f5fa8" {}
            }
        }
    }
}

fn axes(top: &str, from: i64, to: i64) -> Markup {
    let clock = |secs: i64| intops_ops::when::format(secs.saturating_mul(1_000_000));
    html! {
        line x1=(LEFT) y1=(HEIGHT - BOTTOM) x2=(WIDTH) y2=(HEIGHT - BOTTOM) stroke="#6b7785" {}
        line x1=(LEFT) y1="4" x2=(LEFT) y2=(HEIGHT - BOTTOM) stroke="#6b7785" {}
        text x="2" y="14" font-size="11" fill="#6b7785" { (top) }
        text x=(LEFT) y=(HEIGHT - 4.0) font-size="11" fill="#6b7785" { (clock(from)) }
        text x=(WIDTH - 4.0) y=(HEIGHT - 4.0) font-size="11" fill="#6b7785" text-anchor="end" { (clock(to)) }
    }
}

fn fmt(v: f64) -> String {
    format!("{v:.1}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn period(start: i64, delivered: u64, dead_lettered: u64, p95_ms: Option<i64>) -> Period {
        Period {
            start,
            delivered,
            dead_lettered,
            p95_ms,
        }
    }

    #[test]
    fn bars_are_as_tall_as_their_share_of_the_busiest_period() {
        let periods = [period(0, 10, 0, Some(100)), period(300, 5, 5, Some(400))];
        let svg = results(&periods, 0, 600, 300).into_string();
        assert_eq!(svg.matches("class=\"delivered\"").count(), 2, "{svg}");
        assert_eq!(svg.matches("class=\"dead-lettered\"").count(), 1, "{svg}");
        // The plot is 132 high: 10 results fill it, 5 fill half.
        assert!(svg.contains("height=\"132.0\""), "{svg}");
        assert_eq!(svg.matches("height=\"66.0\"").count(), 2, "{svg}");
        assert!(
            !svg.contains("style="),
            "no inline style (the policy forbids it)"
        );
    }

    #[test]
    fn the_latency_line_joins_periods_with_deliveries() {
        let periods = [
            period(0, 1, 0, Some(100)),
            period(300, 0, 1, None),
            period(600, 1, 0, Some(400)),
        ];
        let svg = latency(&periods, 0, 900).into_string();
        let points = svg
            .split("points=\"")
            .nth(1)
            .and_then(|s| s.split('"').next())
            .unwrap_or_default();
        assert_eq!(points.split(' ').count(), 2, "{svg}");
        assert!(svg.contains("400 ms"), "{svg}");
    }
}
