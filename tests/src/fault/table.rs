//! The checker's figures as markdown tables, ready to paste into docs.

use std::fmt::Write as _;

use super::checker::Report;

/// The figures and the faults as two markdown tables.
pub fn markdown(report: &Report, elapsed_secs: f64) -> String {
    let f = &report.figures;
    let mut out = String::new();
    let mut row = |name: &str, value: String| {
        let _ = writeln!(out, "| {name} | {value} |");
    };
    row("figure", "value".into());
    row("---", "---".into());
    row("events acknowledged", f.acknowledged.to_string());
    row("delivered", f.delivered.to_string());
    row(
        "dead-lettered (transform / delivery)",
        format!(
            "{} / {}",
            f.dead_lettered_transform, f.dead_lettered_delivery
        ),
    );
    row("unrouted", f.unrouted.to_string());
    row("lost", f.lost.to_string());
    row("faults", report.faults.len().to_string());
    row(
        "kills (SIGKILL)",
        report
            .faults
            .iter()
            .filter(|x| x.name.starts_with("kill -9"))
            .count()
            .to_string(),
    );
    row(
        "requests the target received",
        f.target_requests.to_string(),
    );
    for (stage, d) in [
        ("ingest", f.ingest),
        ("transform", f.transform),
        ("delivery", f.delivery),
    ] {
        row(
            &format!("duplicates added by {stage} (bound)"),
            format!("{} ({})", d.added, d.bound),
        );
    }
    row(
        "events the target accepted twice or more (extra 2xx)",
        format!("{} ({})", f.delivered_twice, f.end_to_end_duplicates),
    );
    let classes: Vec<String> = f
        .dead_letter_classes
        .iter()
        .map(|(class, n)| format!("{class} {n}"))
        .collect();
    row("dead letters by class", classes.join(", "));
    row("run time", format!("{elapsed_secs:.0} s"));
    out.push('\n');
    let _ = writeln!(
        out,
        "| # | fault | at (s) | recovered after (s) | in flight: transform | in flight: delivery | extra 2xx at the target until the next fault |"
    );
    let _ = writeln!(out, "| --- | --- | --- | --- | --- | --- | --- |");
    for (i, x) in report.faults.iter().enumerate() {
        let recovered = x
            .recovered_secs
            .map_or_else(|| "-".to_string(), |s| format!("{s:.1}"));
        let _ = writeln!(
            out,
            "| {} | {} | {:.1} | {} | {} | {} | {} |",
            i + 1,
            x.name,
            x.at_secs,
            recovered,
            x.transform_in_flight,
            x.delivery_in_flight,
            f.duplicates_after.get(i).copied().unwrap_or(0)
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fault::checker::{Fault, Figures};

    #[test]
    fn tables_name_every_figure_and_fault() {
        let report = Report {
            figures: Figures {
                acknowledged: 10,
                ..Figures::default()
            },
            faults: vec![Fault {
                name: "kill -9 transform".into(),
                at_secs: 1.0,
                recovered_secs: Some(2.5),
                transform_in_flight: 7,
                ..Fault::default()
            }],
            violations: vec![],
        };
        let text = markdown(&report, 12.0);
        assert!(text.contains("| events acknowledged | 10 |"), "{text}");
        assert!(text.contains("| kills (SIGKILL) | 1 |"), "{text}");
        assert!(
            text.contains("| 1 | kill -9 transform | 1.0 | 2.5 | 7 | 0 | 0 |"),
            "{text}"
        );
    }
}
