//! How `intops flows diff` prints its result: text for people, one JSON
//! object (`--json`, pinned shape) for pipelines.

use std::time::Duration;

use serde_json::json;

use super::compare::{Comparison, Example, FlowDiff};
use crate::when;

/// What a diff found, and how.
#[derive(Debug)]
pub struct Report<'a> {
    pub comparison: &'a Comparison<'a>,
    /// What was compared with.
    pub base: &'a str,
    pub since: i64,
    pub until: Option<i64>,
    /// Records read from the events topic.
    pub scanned: u64,
    /// Records that were not events (skipped; transform dead-lettered
    /// them).
    pub undecodable: u64,
    pub took: Duration,
    pub json: bool,
}

/// Prints `report` on stdout.
pub fn print(report: &Report<'_>) -> anyhow::Result<()> {
    let c = report.comparison;
    let flows: Vec<&FlowDiff> = c.flows.values().collect();
    if report.json {
        println!(
            "{}",
            serde_json::to_string(&json!({
                "events": c.events,
                "flows": flows,
                "changed": c.changed(),
                "base": report.base,
                "since": when::format(report.since),
                "until": report.until.map(when::format),
                "scanned": report.scanned,
                "undecodable": report.undecodable,
            }))?
        );
        return Ok(());
    }
    let until = report.until.map_or("now".to_string(), when::format);
    println!(
        "flows diff: {} event(s) ingested from {} to {until} ({} record(s) read in {:.1} s, {} not events); base: {}",
        c.events,
        when::format(report.since),
        report.scanned,
        report.took.as_secs_f64(),
        report.undecodable,
        report.base
    );
    for flow in &flows {
        print!("{}", text(flow));
    }
    let changed = flows.iter().filter(|f| f.changed()).count();
    println!(
        "{changed} of {} flow(s) would treat events differently",
        flows.len()
    );
    if let Some(line) = per_tenant(&flows) {
        println!("{line}");
    }
    Ok(())
}

/// `per tenant: acme 1 of 2 changed, globex 0 of 2`; `None` without
/// tenants.
fn per_tenant(flows: &[&FlowDiff]) -> Option<String> {
    let mut by: std::collections::BTreeMap<&str, (usize, usize)> = Default::default();
    for f in flows {
        if let Some(t) = f.tenant.as_deref() {
            let (changed, all) = by.entry(t).or_default();
            *changed += usize::from(f.changed());
            *all += 1;
        }
    }
    (!by.is_empty()).then(|| {
        let parts: Vec<String> = by
            .iter()
            .map(|(t, (changed, all))| format!("{t} {changed} of {all} changed"))
            .collect();
        format!("per tenant: {}", parts.join(", "))
    })
}

/// One flow's lines.
fn text(f: &FlowDiff) -> String {
    let versions = match (&f.version_before, &f.version_after) {
        (Some(b), Some(a)) if a == b => format!("version {a}, unchanged"),
        (Some(b), Some(a)) => format!("version {b} -> {a}"),
        (None, Some(a)) => format!("new, version {a}"),
        (Some(b), None) => format!("removed, was version {b}"),
        (None, None) => "no version".into(),
    };
    let tenant = f
        .tenant
        .as_deref()
        .map_or(String::new(), |t| format!(" [tenant {t}]"));
    let mut out = format!(
        "flow {}{tenant} ({versions}): {} event(s), routed {} -> {}",
        f.flow_id, f.events, f.routed_before, f.routed_after
    );
    if !f.changed() {
        out.push_str(", no change\n");
        return out;
    }
    let counts = [
        (f.newly_routed, "newly routed"),
        (f.no_longer_routed, "no longer routed"),
        (f.body_changed, "bodies changed"),
        (f.request_changed, "requests changed"),
        (f.new_errors, "new errors"),
        (f.fixed_errors, "errors fixed"),
    ];
    let said: Vec<String> = counts
        .iter()
        .filter(|(n, _)| *n > 0)
        .map(|(n, what)| format!("{n} {what}"))
        .collect();
    out.push_str(&format!(": {}\n", said.join(", ")));
    for e in &f.examples {
        out.push_str(&example(e));
    }
    out
}

fn example(e: &Example) -> String {
    let mut out = format!("  {} event {} ({})", e.kind, e.event_id, e.entity_key);
    if let Some(r) = &e.request {
        out.push_str(&format!(": {r}"));
    }
    if let Some(err) = &e.error {
        out.push_str(&format!(": {err}"));
    }
    out.push('\n');
    for c in &e.changes {
        let show =
            |v: &Option<serde_json::Value>| v.as_ref().map_or("(absent)".into(), |v| v.to_string());
        out.push_str(&format!(
            "    {}: {} -> {}\n",
            c.path,
            show(&c.before),
            show(&c.after)
        ));
    }
    out
}
