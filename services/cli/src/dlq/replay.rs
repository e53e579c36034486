//! `intops dlq replay`: sends selected dead letters back to the topic they
//! failed from, in order per key, at a rate limit; marks each as sent once
//! the broker acknowledged it, parks records replayed too often, and
//! writes an audit trail and replay outcomes.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant};

use intops_events::{Outcome, OutcomeStatus, RecordKind, ReplayMark, Stage, Topics, now_micros};
use intops_kafka::{Record, ServiceContext, dlq_headers, topics};

use super::filter::Filters;
use super::marks::{self, Marker};
use super::read::{Letter, Letters};
use crate::audit::{self, Audit};
use crate::followups::{Followups, MAX_FOLLOWUPS};
use crate::lanes::{LANES, Lanes};
use crate::send;

/// `intops dlq replay` flags.
#[derive(Debug, clap::Args)]
pub struct ReplayArgs {
    #[command(flatten)]
    pub filters: Filters,
    /// Report what would be replayed, and write nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Also send dead letters that an earlier replay already sent.
    #[arg(long)]
    pub again: bool,
    /// Records per second at most.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..))]
    pub rate: u32,
    /// Replays a record may have had before it is parked
    /// (`<prefix>.dlq.parked`) instead of replayed again.
    #[arg(long, env = "INTOPS_REPLAY_MAX", default_value_t = 5)]
    pub max_replays: i32,
    /// Who runs the replay, for the audit record (default: the OS user).
    #[arg(long)]
    pub operator: Option<String>,
    /// Print the result as one JSON object.
    #[arg(long)]
    pub json: bool,
}

/// What a replay does with one dead letter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
    Replay,
    Park,
}

#[derive(Debug)]
struct Job {
    letter: Letter,
    action: Action,
}

#[derive(Debug, Default)]
struct Counts {
    sent: AtomicI64,
    parked: AtomicI64,
}

/// How many would be or were selected, and why others were not.
#[derive(Debug, Default)]
struct Selection {
    selected: i64,
    to_replay: i64,
    to_park: i64,
    already_replayed: i64,
    unreplayable: i64,
    /// Dead letters whose original topic is not this deployment's.
    foreign_topic: i64,
    by_group: BTreeMap<(String, String, String), i64>,
    samples: Vec<String>,
}

/// Runs the replay (or the dry run).
pub async fn run(ctx: &ServiceContext, args: &ReplayArgs) -> anyhow::Result<()> {
    let marked = marks::load(ctx).await?;
    let mut letters = Letters::open(ctx, &args.filters.topics(&ctx.topics))?;
    let replay_id = uuid::Uuid::now_v7().to_string();
    let mut selection = Selection::default();

    let mut running = None;
    if !args.dry_run {
        ctx.ensure_topics(&[ctx.topics.dlq_parked(), ctx.topics.outcomes()])
            .await?;
        marks::ensure_topic(ctx).await?;
        let mut audit = Audit::new(
            "dlq.replay",
            &replay_id,
            &audit::operator(args.operator.as_deref()),
            &describe(args),
        );
        audit.started(ctx).await?;
        let counts = Arc::new(Counts::default());
        let followups = Followups::new(MAX_FOLLOWUPS);
        let (marker, flush) = marks::start(ctx, &replay_id);
        let lanes = {
            let run = Arc::new(Run {
                ctx: ctx.clone(),
                followups: followups.clone(),
                marker,
                counts: counts.clone(),
                replay_id: replay_id.clone(),
                parked_topic: ctx.topics.dlq_parked(),
            });
            Lanes::new(LANES, move |job: Job| {
                let run = run.clone();
                async move { run.handle(job).await }
            })
        };
        running = Some((audit, counts, lanes, followups, flush));
    }

    let limiter = crate::pace::limiter(args.rate);
    let mut known_topics = HashSet::new();
    let mut last_progress = Instant::now();
    let started = Instant::now();
    while let Some(letter) = letters.next().await? {
        if !args.filters.matches(&letter.letter) {
            continue;
        }
        if marked.contains(&letter.location()) && !args.again {
            selection.already_replayed += 1;
            continue;
        }
        if args
            .filters
            .limit
            .is_some_and(|n| selection.selected >= n as i64)
        {
            break;
        }
        selection.selected += 1;
        if letter.letter.original_value.is_none() {
            selection.unreplayable += 1;
            eprintln!(
                "warning: {} has no original value; not replayed",
                letter.location()
            );
            continue;
        }
        if !own_topic(&ctx.topics, &letter.letter.original_topic) {
            selection.foreign_topic += 1;
            eprintln!(
                "warning: {} names original topic {:?}, which is not one of this deployment's ({} or {}<target>); skipped",
                letter.location(),
                letter.letter.original_topic,
                ctx.topics.events(),
                ctx.topics.deliveries(""),
            );
            continue;
        }
        let action = if letter.letter.replay_count >= args.max_replays {
            selection.to_park += 1;
            Action::Park
        } else {
            selection.to_replay += 1;
            Action::Replay
        };
        note(&mut selection, &letter, action);
        let Some((_, counts, lanes, _, _)) = running.as_ref() else {
            continue;
        };
        let d = &letter.letter;
        if action == Action::Replay && known_topics.insert(d.original_topic.clone()) {
            anyhow::ensure!(
                topics::exists(&ctx.kafka, &d.original_topic)?,
                "topic {} (where {} failed from) does not exist",
                d.original_topic,
                letter.location()
            );
        }
        limiter.until_ready().await;
        let key = d.original_key.clone().unwrap_or_default();
        if lanes.push(&key, Job { letter, action }).await.is_err() {
            break; // a lane failed: finish() reports why
        }
        if last_progress.elapsed() >= Duration::from_secs(1) {
            last_progress = Instant::now();
            eprintln!(
                "replay {replay_id}: {} sent, {} parked",
                counts.sent.load(Ordering::Relaxed),
                counts.parked.load(Ordering::Relaxed)
            );
        }
    }
    if letters.undecodable > 0 {
        eprintln!(
            "warning: {} undecodable record(s) in the dead-letter topics were skipped",
            letters.undecodable
        );
    }

    let Some((mut audit, counts, lanes, followups, flush)) = running else {
        print_dry_run(&selection, args.json);
        return Ok(());
    };
    // In order: every send, then every outcome (each queueing its mark),
    // then the last marks.
    let finished = lanes.finish().await;
    let finished = finished.and(followups.finish().await);
    let finished = finished.and(flush.finish().await);
    let elapsed = started.elapsed();
    let mut totals = BTreeMap::new();
    totals.insert("selected", selection.selected);
    totals.insert("sent", counts.sent.load(Ordering::Relaxed));
    totals.insert("parked", counts.parked.load(Ordering::Relaxed));
    totals.insert("skipped_already_replayed", selection.already_replayed);
    totals.insert("unreplayable", selection.unreplayable);
    totals.insert("skipped_foreign_topic", selection.foreign_topic);
    totals.insert("failed", i64::from(finished.is_err()));
    audit.finished(ctx, &totals).await?;
    finished?;
    if args.json {
        let mut out = serde_json::Map::new();
        out.insert("replay_id".into(), replay_id.clone().into());
        for (k, v) in &totals {
            out.insert((*k).into(), (*v).into());
        }
        println!("{}", serde_json::Value::Object(out));
    } else {
        println!(
            "replay {replay_id}: {} selected, {} sent, {} parked, {} skipped as already replayed{}, {} unreplayable, {} skipped for a topic not of this deployment ({:.1}s)",
            totals["selected"],
            totals["sent"],
            totals["parked"],
            totals["skipped_already_replayed"],
            if selection.already_replayed > 0 {
                " (--again sends them again)"
            } else {
                ""
            },
            totals["unreplayable"],
            totals["skipped_foreign_topic"],
            elapsed.as_secs_f64()
        );
    }
    Ok(())
}

/// Whether a replay may write to `topic`: this deployment's events topic
/// or one of its deliveries topics (`<prefix>.deliveries.<target id>`),
/// the only topics dead letters come from. Anything else in a dead letter
/// (written by another deployment, or forged) is never produced to.
fn own_topic(topics: &Topics, topic: &str) -> bool {
    if topic == topics.events() {
        return true;
    }
    topic
        .strip_prefix(&topics.deliveries(""))
        .is_some_and(|target| {
            !target.is_empty()
                && target
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        })
}

fn describe(args: &ReplayArgs) -> BTreeMap<String, String> {
    let mut d = args.filters.describe();
    d.insert("rate".into(), args.rate.to_string());
    d.insert("max_replays".into(), args.max_replays.to_string());
    if args.again {
        d.insert("again".into(), "true".into());
    }
    d
}

fn note(selection: &mut Selection, l: &Letter, action: Action) {
    let d = &l.letter;
    let group = (
        d.flow_id.clone().unwrap_or_else(|| "-".into()),
        d.target_id.clone().unwrap_or_else(|| "-".into()),
        d.error_class.clone(),
    );
    *selection.by_group.entry(group).or_default() += 1;
    if selection.samples.len() < 5 {
        let to = match action {
            Action::Replay => format!("{} (replay {})", d.original_topic, d.replay_count + 1),
            Action::Park => "parked (replayed too often)".into(),
        };
        selection.samples.push(format!(
            "{} -> {to}  key {}  event {}",
            l.location(),
            d.original_key
                .as_deref()
                .map(String::from_utf8_lossy)
                .unwrap_or_default(),
            d.event_id.as_deref().unwrap_or("-")
        ));
    }
}

fn print_dry_run(s: &Selection, as_json: bool) {
    if as_json {
        let groups: Vec<serde_json::Value> = s
            .by_group
            .iter()
            .map(|((flow, target, class), n)| {
                serde_json::json!({"flow": flow, "target": target, "error_class": class, "count": n})
            })
            .collect();
        println!(
            "{}",
            serde_json::json!({
                "dry_run": true,
                "selected": s.selected,
                "would_replay": s.to_replay,
                "would_park": s.to_park,
                "skipped_already_replayed": s.already_replayed,
                "unreplayable": s.unreplayable,
                "skipped_foreign_topic": s.foreign_topic,
                "groups": groups,
                "first": s.samples,
            })
        );
        return;
    }
    println!(
        "dry run: {} selected; would replay {} and park {}; {} skipped as already replayed; {} unreplayable; {} skipped for a topic not of this deployment; nothing written",
        s.selected, s.to_replay, s.to_park, s.already_replayed, s.unreplayable, s.foreign_topic
    );
    if !s.by_group.is_empty() {
        println!(
            "{:<24} {:<16} {:<14} {:>7}",
            "FLOW", "TARGET", "ERROR", "COUNT"
        );
        for ((flow, target, class), n) in &s.by_group {
            println!("{flow:<24} {target:<16} {class:<14} {n:>7}");
        }
        println!("first records:");
        for line in &s.samples {
            println!("  {line}");
        }
    }
}

/// What every lane of one replay shares.
#[derive(Debug)]
struct Run {
    ctx: ServiceContext,
    followups: Followups,
    marker: Marker,
    counts: Arc<Counts>,
    replay_id: String,
    parked_topic: String,
}

impl Run {
    /// Sends one dead letter on (or parks it) and, once the broker
    /// acknowledged that, starts writing its outcome and then queues its mark.
    async fn handle(&self, job: Job) -> anyhow::Result<()> {
        let Run {
            ctx,
            followups,
            marker,
            counts,
            replay_id,
            parked_topic,
        } = self;
        followups.check()?;
        let location = job.letter.location();
        let d = &job.letter.letter;
        let key = d.original_key.clone().unwrap_or_default();
        // For a replay, the wait for the broker's acknowledgement: the lane
        // queues its key's next record meanwhile (same partition, so the
        // idempotent producer keeps their order).
        let mut acknowledgement = None;
        let (sent_to, replay_count, status) = match job.action {
            Action::Replay => {
                let count = (d.replay_count + 1).to_string();
                let mut headers: Vec<(&str, &[u8])> = d
                    .original_headers
                    .iter()
                    .filter(|h| !h.key.starts_with(dlq_headers::REPLAY_PREFIX))
                    .map(|h| (h.key.as_str(), h.value.as_deref().unwrap_or_default()))
                    .collect();
                headers.push((dlq_headers::REPLAY_COUNT, count.as_bytes()));
                headers.push((dlq_headers::REPLAY_ID, replay_id.as_bytes()));
                headers.push((dlq_headers::REPLAY_SOURCE, location.as_bytes()));
                let queued = send::queue(
                    ctx,
                    Record {
                        topic: &d.original_topic,
                        key: &key,
                        value: d.original_value.as_deref().unwrap_or_default(),
                        headers: &headers,
                    },
                )
                .await
                .map_err(|e| anyhow::anyhow!("cannot replay {location}: {e}"))?;
                acknowledgement = Some(queued);
                (
                    d.original_topic.clone(),
                    d.replay_count + 1,
                    OutcomeStatus::Replayed,
                )
            }
            Action::Park => {
                send::typed(ctx, parked_topic, RecordKind::DeadLetter, &key, d)
                    .await
                    .map_err(|e| anyhow::anyhow!("cannot park {location}: {e}"))?;
                counts.parked.fetch_add(1, Ordering::Relaxed);
                eprintln!(
                    "parked {location}: replayed {} time(s) already",
                    d.replay_count
                );
                (
                    parked_topic.to_string(),
                    d.replay_count,
                    OutcomeStatus::Parked,
                )
            }
        };
        let outcome = d.event_id.as_ref().map(|event_id| Outcome {
            event_id: event_id.clone(),
            stage: Stage::Replay,
            status,
            flow_id: d.flow_id.clone(),
            target_id: d.target_id.clone(),
            attempts: replay_count,
            http_status: None,
            latency_ms: None,
            error: (status == OutcomeStatus::Parked)
                .then(|| format!("replayed {} times; parked", d.replay_count)),
            at: now_micros(),
        });
        let mark = ReplayMark {
            dead_letter_topic: job.letter.topic.clone(),
            dead_letter_partition: job.letter.partition,
            dead_letter_offset: job.letter.offset,
            sent_to,
            replay_count,
        };
        // The acknowledgement, the outcome, then the mark: a dead letter
        // counts as replayed only once everything derived from it was
        // acknowledged.
        let (ctx, marker, counts) = (ctx.clone(), marker.clone(), counts.clone());
        followups
            .spawn(async move {
                if let Some(acknowledged) = acknowledgement {
                    acknowledged.await.map_err(|e| {
                        anyhow::anyhow!(
                            "cannot replay {location}: {e} (run the replay again: it resumes)"
                        )
                    })?;
                    counts.sent.fetch_add(1, Ordering::Relaxed);
                }
                if let Some(o) = &outcome {
                    send::typed(&ctx, &ctx.topics.outcomes(), RecordKind::Outcome, &key, o)
                        .await
                        .map_err(|e| {
                            anyhow::anyhow!("cannot write the outcome of {location}: {e}")
                        })?;
                }
                marker.mark(mark).await
            })
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_this_deployments_topics_are_replayed_to() {
        let topics = Topics::new("acme");
        for ok in [
            "acme.events",
            "acme.deliveries.jira",
            "acme.deliveries.crm-eu_2.v1",
        ] {
            assert!(own_topic(&topics, ok), "{ok}");
        }
        for foreign in [
            "other.events",
            "other.deliveries.jira",
            "acme.deliveries.",
            "acme.deliveries",
            "acme.outcomes",
            "acme.dlq.delivery",
            "acme.dlq.parked",
            "acme.control",
            "acme.audit",
            "acme.dlq.replays",
            "acme.ingest.cursors",
            "acme.events.x",
            "acme.deliveries.a/b",
            "acme.deliveries.a b",
            "acmeXevents",
            "",
        ] {
            assert!(!own_topic(&topics, foreign), "{foreign}");
        }
    }
}
