//! `intops dlq list`: how many dead letters there are, by stage, flow,
//! target and error class, with the oldest and newest.

use std::collections::BTreeMap;

use intops_kafka::ServiceContext;
use serde::Serialize;

use super::filter::Filters;
use super::marks;
use super::read::Letters;
use crate::when;

/// One group of dead letters.
#[derive(Debug, Default, Serialize)]
pub struct Group {
    stage: String,
    flow: Option<String>,
    target: Option<String>,
    error_class: String,
    count: u64,
    /// Not yet sent on by a replay.
    pending: u64,
    oldest: String,
    newest: String,
    #[serde(skip)]
    oldest_at: i64,
    #[serde(skip)]
    newest_at: i64,
}

/// The whole summary.
#[derive(Debug, Serialize)]
pub struct Summary {
    total: u64,
    pending: u64,
    undecodable: usize,
    groups: Vec<Group>,
}

/// Reads the selected dead letters and prints the summary.
pub async fn run(ctx: &ServiceContext, filters: &Filters, as_json: bool) -> anyhow::Result<()> {
    let summary = summarize(ctx, filters).await?;
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

async fn summarize(ctx: &ServiceContext, filters: &Filters) -> anyhow::Result<Summary> {
    let marked = marks::load(ctx).await?;
    let mut letters = Letters::open(ctx, &filters.topics(&ctx.topics)).await?;
    let mut groups: BTreeMap<(String, String, String, String), Group> = BTreeMap::new();
    let (mut total, mut pending) = (0u64, 0u64);
    while let Some(l) = letters.next().await? {
        if !filters.matches(&l.letter) {
            continue;
        }
        if filters.limit.is_some_and(|n| total >= n as u64) {
            break;
        }
        let d = &l.letter;
        let key = (
            d.stage.to_string(),
            d.flow_id.clone().unwrap_or_default(),
            d.target_id.clone().unwrap_or_default(),
            d.error_class.clone(),
        );
        let g = groups.entry(key).or_insert_with(|| Group {
            stage: d.stage.to_string(),
            flow: d.flow_id.clone(),
            target: d.target_id.clone(),
            error_class: d.error_class.clone(),
            oldest_at: i64::MAX,
            newest_at: i64::MIN,
            ..Group::default()
        });
        g.count += 1;
        total += 1;
        if !marked.contains(&l.location()) {
            g.pending += 1;
            pending += 1;
        }
        g.oldest_at = g.oldest_at.min(d.failed_at);
        g.newest_at = g.newest_at.max(d.failed_at);
    }
    let groups = groups
        .into_values()
        .map(|mut g| {
            g.oldest = when::format(g.oldest_at);
            g.newest = when::format(g.newest_at);
            g
        })
        .collect();
    Ok(Summary {
        total,
        pending,
        undecodable: letters.undecodable,
        groups,
    })
}
