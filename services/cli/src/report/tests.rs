use intops_events::HourlyRollup;

use super::*;

/// 2026-11-01T00:00:00Z.
const NOV: i64 = 1_793_491_200_000_000;
const HOUR: i64 = 3_600_000_000;
const BOUNDS: [i64; 3] = [100, 1_000, i64::MAX];

fn flow(id: &str, tenant: &str, hour: i64, delivered: i64, dead: i64) -> HourlyRollup {
    HourlyRollup {
        scope: "flow".into(),
        id: id.into(),
        tenant: Some(tenant.into()),
        hour,
        received: delivered + dead,
        delivered,
        dead_lettered: dead,
        replayed: 0,
        latency_bounds_ms: BOUNDS.to_vec(),
        latency_counts: vec![delivered, 0, 0],
        healthy_ms: 3_600_000,
        degraded_ms: 0,
        failing_ms: 0,
        success_objective: Some(0.9),
        latency_objective_ms: Some(500),
        written_at: hour,
    }
}

fn source(tenant: &str, hour: i64, events: i64) -> HourlyRollup {
    HourlyRollup {
        scope: "source".into(),
        id: "snow".into(),
        received: events,
        success_objective: None,
        latency_objective_ms: None,
        healthy_ms: 0,
        ..flow("snow", tenant, hour, 0, 0)
    }
}

/// November for acme: every hour 9 delivered, on the 10th one hour 5
/// dead letters and slow deliveries; a second tenant alongside.
fn november() -> Vec<HourlyRollup> {
    let mut all = Vec::new();
    for h in 0..30 * 24 {
        let at = NOV + h * HOUR;
        let mut r = flow("acme.p1", "acme", at, 9, 0);
        if h == 9 * 24 + 3 {
            r.dead_lettered = 5;
            r.received = 14;
            r.latency_counts = vec![0, 9, 0];
            r.healthy_ms = 1_800_000;
            r.failing_ms = 1_800_000;
        }
        all.push(r);
        all.push(source("acme", at, 10));
        all.push(flow("glx.p1", "glx", at, 1, 1));
    }
    all.push(flow("acme.p1", "acme", NOV + 30 * 24 * HOUR, 100, 0));
    all
}

#[test]
fn a_month_sums_per_flow_and_per_day() {
    let r = report("acme", NOV, NOV + 30 * 24 * HOUR, november());
    assert_eq!(r.flows.len(), 1, "only the tenant's flows: {r:?}");
    let f = &r.flows[0];
    assert_eq!(f.flow_id, "acme.p1");
    assert_eq!(
        (f.received, f.delivered, f.dead_lettered),
        (30 * 24 * 9 + 5, 30 * 24 * 9, 5)
    );
    let ratio = f.success_ratio.expect("results");
    assert!((ratio - 6480.0 / 6485.0).abs() < 1e-9);
    assert_eq!((f.latency_p50_ms, f.latency_p95_ms), (Some(100), Some(100)));
    assert_eq!(f.failing_seconds, 1_800);
    assert_eq!(f.healthy_seconds, 30 * 24 * 3600 - 1_800);
    assert_eq!(f.unobserved_seconds, 0);
    assert_eq!(f.objectives_met, Some(true));
    assert_eq!(f.hours_with_results, 720);
    let attainment = f.attainment.expect("judged hours");
    assert!((attainment - 719.0 / 720.0).abs() < 1e-9, "{attainment}");
    assert_eq!(r.days.len(), 30);
    assert_eq!(r.days[0].date, "2026-11-01");
    assert_eq!(r.days[9].dead_lettered, 5);
    assert_eq!(r.days[29].events, 240);
    assert_eq!(r.events, 30 * 240);
}

#[test]
fn a_missed_objective_and_time_not_observed_show() {
    let mut hours: Vec<HourlyRollup> = (0..2)
        .map(|h| flow("acme.p1", "acme", NOV + h * HOUR, 1, 1))
        .collect();
    hours[1].latency_counts = vec![0, 0, 1];
    let r = report("acme", NOV, NOV + 24 * HOUR, hours);
    let f = &r.flows[0];
    assert_eq!(f.objectives_met, Some(false), "50% is below 90%");
    assert_eq!(f.attainment, Some(0.0));
    assert_eq!(f.latency_p95_ms, None, "slower than the largest bound");
    assert_eq!(f.unobserved_seconds, 22 * 3600);
}

#[test]
fn dates_are_whole_days_and_instants_exact() {
    assert_eq!(bound("2026-11-01", false), Ok(NOV));
    assert_eq!(bound("2026-11-30", true), Ok(NOV + 30 * 24 * HOUR));
    assert_eq!(bound("2026-11-01T01:00:00Z", true), Ok(NOV + HOUR));
    assert!(bound("2026-13-01", false).is_err());
}

#[test]
fn csv_has_totals_days_and_usage() {
    let all = november();
    let whole = report("acme", NOV, NOV + 2 * 24 * HOUR, all.iter().cloned());
    let daily: Vec<Report> = (0..2)
        .map(|d| {
            let from = NOV + d * 24 * HOUR;
            report("acme", from, from + 24 * HOUR, all.iter().cloned())
        })
        .collect();
    let text = csv::render(&whole, &daily);
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines[0].starts_with("period,flow_id,received,delivered"));
    assert!(
        lines[1].starts_with("total,acme.p1,432,432,0,0,1,100,100,"),
        "{}",
        lines[1]
    );
    assert!(
        lines.contains(&"2026-11-01,acme.p1,216,216,0,0,1,100,100,86400,0,0,0,true,1"),
        "{text}"
    );
    assert!(lines.contains(&"2026-11-02,,240,,,,,,,,,,,,"), "{text}");
    assert_eq!(lines.len(), 1 + 1 + 2 * 2);
}

#[test]
fn html_is_one_page_with_a_bar_per_day_and_the_success_line() {
    let mut r = report("acme", NOV, NOV + 30 * 24 * HOUR, november());
    r.tenant = "acme & co".into();
    let page = html::render(&r);
    assert!(page.contains("Service report: acme &amp; co"));
    assert_eq!(page.matches(r#"<rect class="bar""#).count(), 30);
    assert!(page.contains(r#"<polyline id="success""#));
    assert!(!page.contains("<script"), "no scripts");
    assert!(
        !page.contains("src=") && !page.contains("href="),
        "no external assets"
    );
}
