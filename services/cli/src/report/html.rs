//! The report as one self-contained HTML page a service manager can send
//! to a customer: no scripts, no external assets, the chart as inline SVG.

use std::fmt::Write as _;

use super::figures::{DayFigures, FlowFigures, Report};

const W: f64 = 720.0;
const H: f64 = 220.0;
const PAD: f64 = 40.0;

fn esc(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn pct(r: Option<f64>) -> String {
    r.map_or_else(|| "–".into(), |r| format!("{:.2}%", r * 100.0))
}

fn ms(v: Option<i64>) -> String {
    v.map_or_else(|| "–".into(), |v| format!("≤ {v} ms"))
}

fn hours(secs: i64) -> String {
    format!("{:.1} h", secs as f64 / 3600.0)
}

/// Daily volume as bars (left scale) and success ratio as a line (right
/// scale, 0–100 %).
fn chart(days: &[DayFigures]) -> String {
    let max = days
        .iter()
        .map(|d| d.events.max(d.received))
        .max()
        .unwrap_or(0)
        .max(1);
    let n = days.len().max(1) as f64;
    let step = (W - 2.0 * PAD) / n;
    let y = |v: f64| H - PAD + 10.0 - v * (H - PAD - 10.0);
    let mut svg = format!(
        r#"<svg id="chart" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {W} {H}" width="{W}" height="{H}" role="img" aria-label="daily events and success ratio">"#
    );
    let _ = write!(
        svg,
        r##"<line x1="{PAD}" y1="{b}" x2="{r}" y2="{b}" stroke="#888"/><text x="4" y="{t}" font-size="10">{max}</text><text x="4" y="{b}" font-size="10">0</text><text x="{r2}" y="{t}" font-size="10">100%</text>"##,
        b = y(0.0),
        r = W - PAD,
        t = y(1.0),
        r2 = W - PAD + 4.0,
    );
    let mut line = Vec::new();
    for (i, d) in days.iter().enumerate() {
        let x = PAD + step * i as f64;
        let v = d.events.max(d.received) as f64 / max as f64;
        let _ = write!(
            svg,
            r##"<rect class="bar" data-date="{date}" data-events="{events}" x="{x:.1}" y="{top:.1}" width="{w:.1}" height="{h:.1}" fill="#7aa6d8"><title>{date}: {events} events</title></rect>"##,
            date = d.date,
            events = d.events,
            top = y(v),
            w = (step * 0.8).max(1.0),
            h = y(0.0) - y(v),
        );
        if let Some(r) = d.success_ratio {
            line.push(format!("{:.1},{:.1}", x + step * 0.4, y(r)));
        }
        if i % 7 == 0 {
            let _ = write!(
                svg,
                r#"<text x="{x:.1}" y="{ly:.1}" font-size="10">{}</text>"#,
                &d.date[5..],
                ly = H - 6.0
            );
        }
    }
    if !line.is_empty() {
        let _ = write!(
            svg,
            r##"<polyline id="success" points="{}" fill="none" stroke="#2e7d32" stroke-width="2"/>"##,
            line.join(" ")
        );
    }
    svg.push_str("</svg>");
    svg
}

fn flow_row(f: &FlowFigures) -> String {
    let met = match f.objectives_met {
        Some(true) => "met",
        Some(false) => "missed",
        None => "–",
    };
    format!(
        "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td class=\"met\">{met}</td><td>{}</td></tr>",
        esc(&f.flow_id),
        f.received,
        f.delivered,
        f.dead_lettered,
        f.replayed,
        pct(f.success_ratio),
        ms(f.latency_p50_ms),
        ms(f.latency_p95_ms),
        hours(f.healthy_seconds),
        hours(f.degraded_seconds),
        hours(f.failing_seconds),
        hours(f.unobserved_seconds),
        pct(f.attainment),
    )
}

/// The page.
pub fn render(r: &Report) -> String {
    let mut page = format!(
        r#"<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Service report: {t}</title>
<style>body{{font-family:sans-serif;margin:2em;color:#222}}table{{border-collapse:collapse;margin:1em 0}}td,th{{border:1px solid #ccc;padding:4px 8px;text-align:right}}td:first-child,th:first-child{{text-align:left}}.met{{font-weight:bold}}</style>
</head><body><h1>Service report: {t}</h1><p id="period">{from} to {to} (UTC) · {events} events</p>
<h2>Flows</h2><table id="flows"><tr><th>flow</th><th>received</th><th>delivered</th><th>dead-lettered</th><th>replayed</th><th>success</th><th>p50</th><th>p95</th><th>healthy</th><th>degraded</th><th>failing</th><th>unobserved</th><th>objectives</th><th>hours meeting objectives</th></tr>"#,
        t = esc(&r.tenant),
        from = esc(&r.from),
        to = esc(&r.to),
        events = r.events,
    );
    for f in &r.flows {
        page.push_str(&flow_row(f));
    }
    page.push_str("</table><h2>Daily volume and success ratio</h2>");
    page.push_str(&chart(&r.days));
    page.push_str(r#"<h2>Usage</h2><table id="days"><tr><th>day</th><th>events</th><th>delivered</th><th>dead-lettered</th><th>success</th></tr>"#);
    for d in &r.days {
        let _ = write!(
            page,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            d.date,
            d.events,
            d.delivered,
            d.dead_lettered,
            pct(d.success_ratio)
        );
    }
    page.push_str("</table><p>Latencies are the upper bounds of histogram buckets (ingested to delivered). Time healthy, degraded and failing is as the intops monitor judged it against each flow's objectives; unobserved is time it did not run.</p></body></html>\n");
    page
}
