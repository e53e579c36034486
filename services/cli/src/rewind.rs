//! `intops flow rewind`: re-runs one flow's routing and mapping (its
//! current version) over past events, producing delivery requests for that
//! flow only: for when a mapping was wrong and targets need corrected data.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use intops_events::{DeliveryRequest, IDEMPOTENCY_KEY, IntegrationEvent, RecordKind};
use intops_flows::Flow;
use intops_flows::route::plan_flow;
use intops_kafka::{Message, Record, Scan, ServiceContext, Start, topics};

use crate::audit::{self, Audit};
use crate::lanes::{LANES, Lanes};
use crate::{send, when};

/// The header naming the rewind that produced a delivery request.
pub const REWIND_ID: &str = "intops.rewind.id";

/// Records whose broker timestamp is this much older than `--since` are
/// skipped without decoding (the event's `ingested_at` decides the rest).
const TIMESTAMP_SLACK_MS: i64 = 60_000;

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

#[derive(Debug, Default)]
struct Tally {
    scanned: i64,
    in_range: i64,
    matched: i64,
    failed: i64,
    samples: Vec<String>,
}

/// Runs the rewind (or its dry run). `flow` comes from the loaded file.
pub async fn run(ctx: &ServiceContext, args: &RewindArgs, flow: &Flow) -> anyhow::Result<bool> {
    let rewind_id = uuid::Uuid::now_v7().to_string();
    let until = args.until.unwrap_or(i64::MAX);
    let events = ctx.topics.events();
    anyhow::ensure!(
        topics::exists(&ctx.kafka, &events)?,
        "topic {events} does not exist"
    );
    let target_topic = ctx.topics.deliveries(&flow.target);
    let produced = Arc::new(AtomicI64::new(0));

    let mut running = None;
    if !args.dry_run {
        anyhow::ensure!(
            topics::exists(&ctx.kafka, &target_topic)?,
            "topic {target_topic} does not exist: start transform with this flows file first"
        );
        let mut filters = BTreeMap::new();
        filters.insert("flow".to_string(), flow.id.clone());
        filters.insert("flow_version".to_string(), flow.version.clone());
        filters.insert("since".to_string(), when::format(args.since));
        if let Some(u) = args.until {
            filters.insert("until".to_string(), when::format(u));
        }
        let mut audit = Audit::new(
            "flow.rewind",
            &rewind_id,
            &audit::operator(args.operator.as_deref()),
            &filters,
        );
        audit.started(ctx).await?;
        let lanes = {
            let (ctx, topic, id, produced) = (
                ctx.clone(),
                target_topic.clone(),
                rewind_id.clone(),
                produced.clone(),
            );
            Lanes::new(LANES, move |(key, request): (Vec<u8>, DeliveryRequest)| {
                let (ctx, topic, id, produced) =
                    (ctx.clone(), topic.clone(), id.clone(), produced.clone());
                async move {
                    let value = ctx
                        .codec
                        .encode(&topic, RecordKind::DeliveryRequest, &request)
                        .await?;
                    let headers: [(&str, &[u8]); 1] = [(REWIND_ID, id.as_bytes())];
                    send::raw(
                        &ctx,
                        Record {
                            topic: &topic,
                            key: &key,
                            value: &value,
                            headers: &headers,
                        },
                    )
                    .await?;
                    produced.fetch_add(1, Ordering::Relaxed);
                    Ok(())
                }
            })
        };
        running = Some((audit, lanes));
    }

    let limiter = crate::pace::limiter(args.rate);
    let mut tally = Tally::default();
    let mut scan = Scan::open(
        &ctx.kafka,
        std::slice::from_ref(&events),
        Start::Beginning,
        false,
    )?;
    while let Some(message) = scan.next().await? {
        tally.scanned += 1;
        let stamp = message.timestamp().to_millis().unwrap_or(i64::MAX);
        if stamp < args.since / 1000 - TIMESTAMP_SLACK_MS {
            continue;
        }
        let Some(bytes) = message.payload() else {
            continue;
        };
        let event: IntegrationEvent = match ctx.codec.decode(bytes).await {
            Ok(e) => e,
            Err(e) if e.is_retryable() => return Err(e.into()),
            Err(_) => continue, // transform dead-lettered it already
        };
        if event.source_id != flow.source
            || event.ingested_at < args.since
            || event.ingested_at >= until
        {
            continue;
        }
        tally.in_range += 1;
        let mut request = match plan_flow(flow, &event) {
            Ok(Some(r)) => r,
            Ok(None) => continue,
            Err(e) => {
                tally.failed += 1;
                eprintln!("warning: event {} fails the flow: {e}", event.event_id);
                continue;
            }
        };
        tally.matched += 1;
        request.headers.insert(
            IDEMPOTENCY_KEY.to_string(),
            format!(
                "{}:{}:rewind:{}",
                request.event_id, request.flow_id, request.flow_version
            ),
        );
        if tally.samples.len() < 3 {
            tally.samples.push(format!(
                "event {} -> {} {} {}",
                event.event_id, request.method, request.path, request.body
            ));
        }
        if let Some((_, lanes)) = &running {
            limiter.until_ready().await;
            let key = event.kafka_key().into_bytes();
            if lanes.push(&key.clone(), (key, request)).await.is_err() {
                break;
            }
        }
    }

    let done = match running {
        Some((mut audit, lanes)) => {
            let finished = lanes.finish().await;
            let mut counts = BTreeMap::new();
            counts.insert("scanned", tally.scanned);
            counts.insert("in_range", tally.in_range);
            counts.insert("matched", tally.matched);
            counts.insert("mapping_failed", tally.failed);
            counts.insert("produced", produced.load(Ordering::Relaxed));
            audit.finished(ctx, &counts).await?;
            finished?;
            true
        }
        None => false,
    };
    report(
        args,
        &rewind_id,
        &tally,
        produced.load(Ordering::Relaxed),
        &target_topic,
        done,
    );
    Ok(tally.failed == 0)
}

fn report(args: &RewindArgs, id: &str, t: &Tally, produced: i64, topic: &str, wrote: bool) {
    if args.json {
        println!(
            "{}",
            serde_json::json!({
                "rewind_id": if wrote { Some(id) } else { None },
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
    if wrote {
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
