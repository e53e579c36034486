//! A replay that writes (not a dry run): its audit record, lanes, counts
//! and marks from start to the final report.

use std::collections::{BTreeMap, HashSet};
use std::ops::ControlFlow;
use std::sync::Arc;
use std::time::{Duration, Instant};

use governor::DefaultDirectRateLimiter;
use intops_kafka::{ServiceContext, topics};

use super::super::marks::{self, Flush};
use super::super::read::Letter;
use super::Replay;
use super::lane::{Counts, Job, Run};
use super::select::{Action, Selection};
use crate::Watch;
use crate::audit::Audit;
use crate::followups::{Followups, MAX_FOLLOWUPS};
use crate::lanes::{DEPTH, LANES, Lanes};

/// The per-run state of a replay that writes.
#[derive(Debug)]
pub(super) struct Session {
    replay_id: String,
    audit: Audit,
    counts: Arc<Counts>,
    lanes: Lanes<Job>,
    followups: Followups,
    flush: Flush,
    limiter: DefaultDirectRateLimiter,
    /// Original topics checked to exist.
    known_topics: HashSet<String>,
    last_progress: Instant,
    started: Instant,
    watch: Arc<dyn Watch>,
}

impl Session {
    /// Creates the topics it writes to, records the start in the audit
    /// trail and starts the lanes.
    pub async fn start(
        ctx: &ServiceContext,
        replay: &Replay,
        replay_id: String,
        watch: Arc<dyn Watch>,
    ) -> anyhow::Result<Self> {
        ctx.ensure_topics(&[ctx.topics.dlq_parked(), ctx.topics.outcomes()])
            .await?;
        marks::ensure_topic(ctx).await?;
        let mut audit = Audit::new(
            "dlq.replay",
            &replay_id,
            &replay.operator,
            &super::describe(replay),
        );
        audit.started(ctx).await?;
        let counts = Arc::new(Counts::default());
        let followups = Followups::new(MAX_FOLLOWUPS);
        let (marker, flush) = marks::start(ctx, &replay_id);
        let run = Arc::new(Run {
            ctx: ctx.clone(),
            followups: followups.clone(),
            marker,
            counts: counts.clone(),
            replay_id: replay_id.clone(),
            parked_topic: ctx.topics.dlq_parked(),
            watch: watch.clone(),
        });
        let lanes = Lanes::each(LANES, DEPTH, move |job: Job| {
            let run = run.clone();
            async move { run.handle(job).await }
        });
        Ok(Self {
            replay_id,
            audit,
            counts,
            lanes,
            followups,
            flush,
            limiter: crate::pace::limiter(replay.rate),
            known_topics: HashSet::new(),
            last_progress: Instant::now(),
            started: Instant::now(),
            watch,
        })
    }

    /// Queues `letter` on its key's lane at the rate limit; `Break` once a
    /// lane failed ([`Session::finish`] reports why).
    pub async fn send(
        &mut self,
        ctx: &ServiceContext,
        letter: Letter,
        action: Action,
    ) -> anyhow::Result<ControlFlow<()>> {
        let d = &letter.letter;
        if action == Action::Replay && self.known_topics.insert(d.original_topic.clone()) {
            anyhow::ensure!(
                topics::exists(&ctx.kafka, &d.original_topic).await?,
                "topic {} (where {} failed from) does not exist",
                d.original_topic,
                letter.location()
            );
        }
        self.limiter.until_ready().await;
        let key = d.original_key.clone().unwrap_or_default();
        if self.lanes.send(&key, Job { letter, action }).await.is_err() {
            return Ok(ControlFlow::Break(()));
        }
        if self.last_progress.elapsed() >= Duration::from_secs(1) {
            self.last_progress = Instant::now();
            self.watch
                .progress(&self.replay_id, self.counts.sent(), self.counts.parked());
        }
        Ok(ControlFlow::Continue(()))
    }

    /// Waits for every send, then every outcome (each queueing its mark),
    /// then the last marks; records the totals in the audit trail and
    /// returns them.
    pub async fn finish(self, ctx: &ServiceContext, selection: &Selection) -> anyhow::Result<Done> {
        let Session {
            replay_id,
            mut audit,
            counts,
            lanes,
            followups,
            flush,
            started,
            ..
        } = self;
        let finished = lanes.finish().await;
        let finished = finished.and(followups.finish().await);
        let finished = finished.and(flush.finish().await);
        let elapsed = started.elapsed();
        let totals = totals(selection, &counts, finished.is_err());
        audit.finished(ctx, &totals).await?;
        finished?;
        Ok(Done {
            replay_id,
            totals,
            seconds: elapsed.as_secs_f64(),
        })
    }
}

/// What a replay did: its id, totals (as the audit record names them) and
/// how long it took.
#[derive(Debug, Clone, PartialEq)]
pub struct Done {
    /// The replay's id (its audit records' action id).
    pub replay_id: String,
    /// `selected`, `sent`, `parked`, `skipped_already_replayed`,
    /// `unreplayable`, `skipped_foreign_topic`, `failed`.
    pub totals: BTreeMap<&'static str, i64>,
    /// Seconds from start to end.
    pub seconds: f64,
}

impl Done {
    /// One total, 0 when absent.
    pub fn total(&self, name: &str) -> i64 {
        self.totals.get(name).copied().unwrap_or(0)
    }

    /// As `intops dlq replay --json` prints it.
    pub fn to_json(&self) -> serde_json::Value {
        totals_json(&self.replay_id, &self.totals)
    }

    /// As `intops dlq replay` prints it.
    pub fn text(&self) -> String {
        summary(&self.replay_id, &self.totals, self.seconds)
    }
}

/// The totals of a replay, as the audit record and `--json` name them.
fn totals(selection: &Selection, counts: &Counts, failed: bool) -> BTreeMap<&'static str, i64> {
    let mut totals = BTreeMap::new();
    totals.insert("selected", selection.selected);
    totals.insert("sent", counts.sent());
    totals.insert("parked", counts.parked());
    totals.insert("skipped_already_replayed", selection.already_replayed);
    totals.insert("unreplayable", selection.unreplayable);
    totals.insert("skipped_foreign_topic", selection.foreign_topic);
    totals.insert("failed", i64::from(failed));
    totals
}

fn totals_json(replay_id: &str, totals: &BTreeMap<&'static str, i64>) -> serde_json::Value {
    let mut out = serde_json::Map::new();
    out.insert("replay_id".into(), replay_id.into());
    for (k, v) in totals {
        out.insert((*k).into(), (*v).into());
    }
    serde_json::Value::Object(out)
}

fn summary(replay_id: &str, totals: &BTreeMap<&'static str, i64>, seconds: f64) -> String {
    format!(
        "replay {replay_id}: {} selected, {} sent, {} parked, {} skipped as already replayed{}, {} unreplayable, {} skipped for a topic not of this deployment ({:.1}s)",
        totals["selected"],
        totals["sent"],
        totals["parked"],
        totals["skipped_already_replayed"],
        if totals["skipped_already_replayed"] > 0 {
            " (--again sends them again)"
        } else {
            ""
        },
        totals["unreplayable"],
        totals["skipped_foreign_topic"],
        seconds
    )
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering;

    use super::*;

    fn example() -> BTreeMap<&'static str, i64> {
        let mut selection = Selection::default();
        selection.selected = 7;
        selection.already_replayed = 2;
        selection.unreplayable = 1;
        selection.foreign_topic = 1;
        let counts = Counts::default();
        counts.sent.fetch_add(4, Ordering::Relaxed);
        counts.parked.fetch_add(1, Ordering::Relaxed);
        totals(&selection, &counts, true)
    }

    #[test]
    fn json_report_names_every_total() {
        assert_eq!(
            totals_json("r-1", &example()),
            serde_json::json!({
                "replay_id": "r-1",
                "selected": 7,
                "sent": 4,
                "parked": 1,
                "skipped_already_replayed": 2,
                "unreplayable": 1,
                "skipped_foreign_topic": 1,
                "failed": 1,
            })
        );
    }

    #[test]
    fn summary_hints_at_again_only_when_some_were_skipped() {
        assert_eq!(
            summary("r-1", &example(), 2.0),
            "replay r-1: 7 selected, 4 sent, 1 parked, 2 skipped as already replayed (--again sends them again), 1 unreplayable, 1 skipped for a topic not of this deployment (2.0s)"
        );
        let mut none = example();
        none.insert("skipped_already_replayed", 0);
        assert!(!summary("r-1", &none, 0.0).contains("--again"));
    }
}
