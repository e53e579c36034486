//! `intops flow rewind`: re-runs one flow's routing and mapping (its
//! current version) over past events, producing delivery requests for that
//! flow only: for when a mapping was wrong and targets need corrected data.

use std::path::PathBuf;

use intops_events::IntegrationEvent;
use intops_flows::Flow;
use intops_kafka::{Message, OwnedMessage, Scan, ServiceContext, Start, topics};
use session::Session;
use tally::{Tally, Window};

use crate::when;

mod session;
mod tally;

/// The header naming the rewind that produced a delivery request.
pub const REWIND_ID: &str = "intops.rewind.id";

/// `intops flow rewind` flags.
#[derive(Debug, clap::Args)]
pub struct RewindArgs {
    /// The flow to re-run.
    #[arg(long)]
    pub flow: String,
    /// Events ingested at or after this time (RFC 3339 or a duration ago).
    #[arg(long, value_parser = when::parse)]
    pub since: i64,
    /// Events ingested before this time (default: now).
    #[arg(long, value_parser = when::parse)]
    pub until: Option<i64>,
    /// Report what would be produced, and write nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// The flows file (its current version of the flow is used).
    #[arg(long, env = "INTOPS_FLOWS")]
    pub flows: PathBuf,
    /// Delivery requests per second at most.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..))]
    pub rate: u32,
    /// Who runs the rewind, for the audit record (default: the OS user).
    #[arg(long)]
    pub operator: Option<String>,
    /// Print the result as one JSON object.
    #[arg(long)]
    pub json: bool,
}

/// Runs the rewind (or its dry run). `flow` comes from the loaded file.
pub async fn run(ctx: &ServiceContext, args: &RewindArgs, flow: &Flow) -> anyhow::Result<bool> {
    let events = ctx.topics.events();
    anyhow::ensure!(
        topics::exists(&ctx.kafka, &events).await?,
        "topic {events} does not exist"
    );
    let target_topic = ctx.topics.deliveries(&flow.target);
    let session = if args.dry_run {
        None
    } else {
        Some(Session::start(ctx, args, flow, &target_topic).await?)
    };
    let window = Window {
        since: args.since,
        until: args.until.unwrap_or(i64::MAX),
    };
    let mut tally = Tally::default();
    let mut scan = Scan::open(
        &ctx.kafka,
        std::slice::from_ref(&events),
        Start::Beginning,
        false,
    )
    .await?;
    while let Some(message) = scan.next().await? {
        tally.scanned += 1;
        let Some(event) = decode(ctx, &window, &message).await? else {
            continue;
        };
        let Some(request) = tally.plan(flow, &window, &event) else {
            continue;
        };
        let key = event.kafka_key().into_bytes();
        if let Some(session) = &session
            && session.push(key, request).await.is_break()
        {
            break;
        }
    }
    let done = match session {
        Some(session) => Some(session.finish(ctx, &tally).await?),
        None => None,
    };
    report(args, &tally, &target_topic, done.as_ref());
    Ok(tally.failed == 0)
}

/// The event in `message`, unless it is certainly outside `window` or
/// undecodable (transform dead-lettered those already).
async fn decode(
    ctx: &ServiceContext,
    window: &Window,
    message: &OwnedMessage,
) -> anyhow::Result<Option<IntegrationEvent>> {
    if window.too_old(message.timestamp().to_millis().unwrap_or(i64::MAX)) {
        return Ok(None);
    }
    let Some(bytes) = message.payload() else {
        return Ok(None);
    };
    match ctx.codec.decode(bytes).await {
        Ok(e) => Ok(Some(e)),
        Err(e) if e.is_retryable() => Err(e.into()),
        Err(_) => Ok(None),
    }
}

/// Prints the result; `done` is the id and produced count of a rewind
/// that wrote (`None` for a dry run).
fn report(args: &RewindArgs, t: &Tally, topic: &str, done: Option<&(String, i64)>) {
    let produced = done.map_or(0, |(_, n)| *n);
    if args.json {
        println!(
            "{}",
            serde_json::json!({
                "rewind_id": done.map(|(id, _)| id),
                "dry_run": args.dry_run,
                "flow": args.flow,
                "scanned": t.scanned,
                "in_range": t.in_range,
                "matched": t.matched,
                "mapping_failed": t.failed,
                "produced": produced,
                "first": t.samples,
            })
        );
        return;
    }
    if let Some((id, _)) = done {
        println!(
            "rewind {id}: flow {}: {} event(s) scanned, {} in range, {} matched, {} produced to {topic}, {} failed the mapping",
            args.flow, t.scanned, t.in_range, t.matched, produced, t.failed
        );
    } else {
        println!(
            "dry run: flow {}: {} event(s) scanned, {} in range, {} would be produced to {topic}, {} fail the mapping; nothing written",
            args.flow, t.scanned, t.in_range, t.matched, t.failed
        );
        for s in &t.samples {
            println!("  {s}");
        }
    }
}
