//! `intops flows diff NEW_FILE`: what a flows change would do to the
//! events that actually flowed. Reads the events recorded in a window from
//! `<prefix>.events`, runs the base flows and the new ones over each in
//! this process, and reports per flow what would be routed, changed or
//! failing differently. Exit 0: nothing would change; 1: something would;
//! 2: an input is invalid or the diff could not be made.

mod base;
mod changes;
mod compare;
mod report;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use intops_events::IntegrationEvent;
use intops_kafka::{Message, OwnedMessage, Scan, ServiceContext, Start, topics};

use crate::when;
use compare::Comparison;

/// Records whose broker timestamp is this much older than `--since` are
/// skipped without decoding (the event's `ingested_at` decides the rest).
const TIMESTAMP_SLACK_MS: i64 = 60_000;

/// `intops flows diff` flags.
#[derive(Debug, clap::Args)]
pub struct DiffArgs {
    /// The changed flows file.
    pub file: PathBuf,
    /// The flows file to compare with (default: the flow versions deployed
    /// now, from `<prefix>.flow-versions`, with the new file's sources and
    /// targets).
    #[arg(long)]
    pub base: Option<PathBuf>,
    /// Events ingested at or after this time (RFC 3339 or a duration ago).
    #[arg(long, default_value = "24h", value_parser = when::parse)]
    pub since: i64,
    /// Events ingested before this time (default: now).
    #[arg(long, value_parser = when::parse)]
    pub until: Option<i64>,
    /// Report only this flow.
    #[arg(long)]
    pub flow: Option<String>,
    /// Examples kept per flow and kind of difference.
    #[arg(long, default_value_t = 3)]
    pub examples: usize,
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
}

/// Loads the inputs (exit 2 when one is invalid), then diffs.
pub async fn run(ctx: &ServiceContext, args: &DiffArgs) -> ExitCode {
    match diff(ctx, args).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

async fn diff(ctx: &ServiceContext, args: &DiffArgs) -> anyhow::Result<ExitCode> {
    let new_text = std::fs::read_to_string(&args.file)
        .map_err(|e| anyhow::anyhow!("{}: cannot read: {e}", args.file.display()))?;
    let new = intops_flows::load_str_in(&new_text, args.file.parent())
        .map_err(|e| anyhow::anyhow!("{}: {e}", args.file.display()))?;
    let (base, base_name) = match &args.base {
        Some(path) => (
            intops_flows::load_file(path)
                .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?,
            path.display().to_string(),
        ),
        None => (
            base::deployed(ctx, &new_text, args.file.parent()).await?,
            format!("the deployed versions ({})", ctx.topics.flow_versions()),
        ),
    };
    if let Some(flow) = &args.flow {
        anyhow::ensure!(
            base.flows.iter().chain(&new.flows).any(|f| &f.id == flow),
            "no flow {flow:?} in the base or the new file"
        );
    }
    let started = Instant::now();
    let mut comparison = Comparison::new(&base, &new, args.flow.as_deref(), args.examples);
    let (scanned, undecodable) = compare_events(ctx, args, &mut comparison).await?;
    let took = started.elapsed();
    let changed = comparison.changed();
    report::print(&report::Report {
        comparison: &comparison,
        base: &base_name,
        since: args.since,
        until: args.until,
        scanned,
        undecodable,
        took,
        json: args.json,
    })?;
    Ok(if changed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// Feeds every event of the window to `comparison`; returns the records
/// scanned and those that did not decode (transform dead-lettered them).
async fn compare_events(
    ctx: &ServiceContext,
    args: &DiffArgs,
    comparison: &mut Comparison<'_>,
) -> anyhow::Result<(u64, u64)> {
    let events = ctx.topics.events();
    anyhow::ensure!(
        topics::exists(&ctx.kafka, &events).await?,
        "topic {events} does not exist (no event was ingested under this prefix)"
    );
    let until = args.until.unwrap_or(i64::MAX);
    let (mut scanned, mut undecodable) = (0, 0);
    let mut scan = Scan::open(
        &ctx.kafka,
        std::slice::from_ref(&events),
        Start::Beginning,
        false,
    )
    .await?;
    while let Some(message) = scan.next().await? {
        scanned += 1;
        match decode(ctx, args.since, &message).await? {
            Decoded::Event(event) => {
                if event.ingested_at >= args.since && event.ingested_at < until {
                    comparison.add(&event);
                }
            }
            Decoded::TooOld => {}
            Decoded::Undecodable => undecodable += 1,
        }
    }
    Ok((scanned, undecodable))
}

/// What a record of the events topic is to the diff.
enum Decoded {
    Event(Box<IntegrationEvent>),
    /// Certainly older than `--since` (not decoded).
    TooOld,
    /// Not an IntegrationEvent (or empty): transform dead-lettered it.
    Undecodable,
}

async fn decode(
    ctx: &ServiceContext,
    since: i64,
    message: &OwnedMessage,
) -> anyhow::Result<Decoded> {
    let stamp = message.timestamp().to_millis().unwrap_or(i64::MAX);
    if stamp < since / 1000 - TIMESTAMP_SLACK_MS {
        return Ok(Decoded::TooOld);
    }
    let Some(bytes) = message.payload() else {
        return Ok(Decoded::Undecodable);
    };
    match ctx.codec.decode(bytes).await {
        Ok(e) => Ok(Decoded::Event(Box::new(e))),
        Err(e) if e.is_retryable() => Err(e.into()),
        Err(_) => Ok(Decoded::Undecodable),
    }
}
