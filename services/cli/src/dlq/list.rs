//! `intops dlq list`: how many dead letters there are, by stage, flow,
//! target and error class, with the oldest and newest.

use intops_kafka::ServiceContext;
use intops_ops::dlq::{Filters, summarize};
use intops_ops::watch;

/// Reads the selected dead letters and prints the summary.
pub async fn run(ctx: &ServiceContext, filters: &Filters, as_json: bool) -> anyhow::Result<()> {
    let summary = summarize(ctx, filters, 0, &watch::Stderr).await?;
    if as_json {
        println!("{}", serde_json::to_string(&summary)?);
        return Ok(());
    }
    println!(
        "{} dead letter(s), {} not replayed{}",
        summary.total,
        summary.pending,
        if summary.undecodable > 0 {
            format!(", {} undecodable record(s) skipped", summary.undecodable)
        } else {
            String::new()
        }
    );
    if summary.groups.is_empty() {
        return Ok(());
    }
    println!(
        "{:<10} {:<24} {:<16} {:<14} {:>7} {:>8}  {:<24}  {:<24}",
        "STAGE", "FLOW", "TARGET", "ERROR", "COUNT", "PENDING", "OLDEST", "NEWEST"
    );
    for g in &summary.groups {
        println!(
            "{:<10} {:<24} {:<16} {:<14} {:>7} {:>8}  {:<24}  {:<24}",
            g.stage,
            g.flow.as_deref().unwrap_or("-"),
            g.target.as_deref().unwrap_or("-"),
            g.error_class,
            g.count,
            g.pending,
            g.oldest,
            g.newest
        );
    }
    Ok(())
}
