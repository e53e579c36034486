//! The Grafana dashboard and the Prometheus rules in deploy/observability
//! name only metrics the services declare (shared/runtime/src/metrics.rs,
//! the one place metric names live) and recording rules that exist.
//! (`promtool check rules` and `promtool test rules` run in deploy/check.sh.)

use std::collections::BTreeSet;

const ROOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/..");

fn read(path: &str) -> String {
    std::fs::read_to_string(format!("{ROOT}/{path}")).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The metric names declared as `pub const X: &str = "intops_..."`.
fn declared() -> BTreeSet<String> {
    read("shared/runtime/src/metrics.rs")
        .lines()
        .filter(|l| l.starts_with("pub const") && l.contains(": &str = \"intops_"))
        .filter_map(|l| l.split('"').nth(1).map(str::to_string))
        .collect()
}

/// Every `intops_...` metric name in a PromQL expression.
fn metric_names(expr: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut rest = expr;
    while let Some(i) = rest.find("intops_") {
        let before = rest[..i].chars().last();
        let tail = &rest[i..];
        let end = tail
            .find(|c: char| !(c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'))
            .unwrap_or(tail.len());
        // `intops:...` recording rules and label values are not metrics.
        if before != Some(':') && before != Some('"') {
            names.push(tail[..end].to_string());
        }
        rest = &tail[end..];
    }
    names
}

fn dashboard_exprs(v: &serde_json::Value, out: &mut Vec<String>) {
    match v {
        serde_json::Value::Object(map) => {
            for (k, v) in map {
                match (k.as_str(), v) {
                    ("expr" | "query", serde_json::Value::String(e)) => out.push(e.clone()),
                    _ => dashboard_exprs(v, out),
                }
            }
        }
        serde_json::Value::Array(items) => items.iter().for_each(|v| dashboard_exprs(v, out)),
        _ => {}
    }
}

#[test]
fn dashboards_and_rules_name_declared_metrics() {
    let declared = declared();
    assert!(declared.len() > 20, "metric names parsed: {declared:?}");
    let dashboard: serde_json::Value =
        serde_json::from_str(&read("deploy/observability/grafana-dashboard.json"))
            .expect("dashboard json");
    let mut exprs = Vec::new();
    dashboard_exprs(&dashboard, &mut exprs);
    let rules = read("deploy/observability/alerts.yaml");
    let records: BTreeSet<String> = rules
        .lines()
        .filter_map(|l| {
            l.trim()
                .strip_prefix("- record: ")
                .map(|r| r.trim().to_string())
        })
        .collect();
    exprs.extend(
        rules
            .lines()
            .filter_map(|l| l.trim().strip_prefix("expr: ").map(str::to_string)),
    );
    assert!(exprs.len() > 20, "expressions found: {}", exprs.len());

    let mut unknown = BTreeSet::new();
    for expr in &exprs {
        for name in metric_names(expr) {
            let base = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|s| name.strip_suffix(s).filter(|b| declared.contains(*b)))
                .unwrap_or(&name);
            if !declared.contains(base) {
                unknown.insert(format!("{name} (in {expr})"));
            }
        }
        for word in expr.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':')) {
            if word.starts_with("intops:") && !records.contains(word) {
                unknown.insert(format!("recording rule {word} is not defined"));
            }
        }
    }
    assert!(
        unknown.is_empty(),
        "not exported by any service:\n{}",
        unknown.into_iter().collect::<Vec<_>>().join("\n")
    );
}
