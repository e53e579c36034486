//! The replay of dead letters (`intops dlq replay`, the console): sends
//! selected dead letters back to the topic they failed from, in order per
//! key, at a rate limit; marks each as sent once the broker acknowledged
//! it, parks records replayed too often, and writes an audit trail and
//! replay outcomes.

use std::collections::BTreeMap;
use std::sync::Arc;

use intops_events::Topics;
use intops_kafka::ServiceContext;

use super::filter::Filters;
use super::marks;
use super::read::{Letter, Letters};
use crate::Watch;
pub use select::DryRun;
use select::{Selection, Step, Verdict, verdict};
pub use session::Done;
use session::Session;

mod lane;
mod select;
mod session;

/// What a replay selects and how it runs (`intops dlq replay`'s flags,
/// the console's `POST /api/v1/dead-letters/replay` body).
#[derive(Debug, Clone)]
pub struct Replay {
    /// Which dead letters.
    pub filters: Filters,
    /// Report what would be replayed, and write nothing.
    pub dry_run: bool,
    /// Also send dead letters that an earlier replay already sent.
    pub again: bool,
    /// Records per second at most.
    pub rate: u32,
    /// Replays a record may have had before it is parked.
    pub max_replays: i32,
    /// Who runs the replay, for the audit record.
    pub operator: String,
}

/// What a replay did, or a dry run would do.
#[derive(Debug, Clone, PartialEq)]
pub enum Report {
    /// Nothing was written.
    DryRun(DryRun),
    /// The replay ran to its end.
    Done(Done),
}

impl Report {
    /// Dead letters the selection matched (already replayed ones aside).
    pub fn matched(&self) -> i64 {
        match self {
            Self::DryRun(d) => d.selected,
            Self::Done(d) => d.total("selected"),
        }
    }

    /// Dead letters sent back (or, in a dry run, that would be).
    pub fn replayed(&self) -> i64 {
        match self {
            Self::DryRun(d) => d.would_replay,
            Self::Done(d) => d.total("sent"),
        }
    }

    /// The report as one JSON object (`intops dlq replay --json`).
    pub fn to_json(&self) -> serde_json::Value {
        match self {
            Self::DryRun(d) => d.to_json(),
            Self::Done(d) => d.to_json(),
        }
    }
}

/// Runs the replay (or the dry run); `watch` hears of skipped records and
/// progress.
pub async fn run(
    ctx: &ServiceContext,
    replay: &Replay,
    watch: Arc<dyn Watch>,
) -> anyhow::Result<Report> {
    let marked = marks::load(ctx, watch.as_ref()).await?;
    let mut letters = Letters::open(ctx, &replay.filters.topics(&ctx.topics)).await?;
    let mut selection = Selection::default();
    let mut session = if replay.dry_run {
        None
    } else {
        let replay_id = uuid::Uuid::now_v7().to_string();
        Some(Session::start(ctx, replay, replay_id, watch.clone()).await?)
    };
    while let Some(letter) = letters.next().await? {
        if !replay.filters.matches(&letter.letter) {
            continue;
        }
        let d = &letter.letter;
        let sent_before = marked.contains(&letter.location());
        let own = own_topic(&ctx.topics, &d.original_topic);
        let verdict = verdict(d, sent_before, replay.again, replay.max_replays, own);
        let action = match selection.admit(&letter, verdict, replay.filters.limit) {
            Step::Stop => break,
            Step::Skip(why) => {
                if let Some(text) = skipped(&ctx.topics, &letter, why) {
                    watch.warning(&text);
                }
                continue;
            }
            Step::Take(action) => action,
        };
        if let Some(session) = session.as_mut()
            && session.send(ctx, letter, action).await?.is_break()
        {
            break; // a lane failed: finish() reports why
        }
    }
    for text in letters.take_warnings() {
        watch.warning(&text);
    }
    match session {
        Some(session) => session.finish(ctx, &selection).await.map(Report::Done),
        None => Ok(Report::DryRun(selection.dry_run())),
    }
}

/// Why a selected dead letter is not sent, for the operator.
fn skipped(topics: &Topics, letter: &Letter, why: Verdict) -> Option<String> {
    match why {
        Verdict::Unreplayable => Some(format!(
            "{} has no original value; not replayed",
            letter.location()
        )),
        Verdict::ForeignTopic => Some(format!(
            "{} names original topic {:?}, which is not one of this deployment's ({} or {}<target>); skipped",
            letter.location(),
            letter.letter.original_topic,
            topics.events(),
            topics.deliveries(""),
        )),
        Verdict::AlreadyReplayed | Verdict::Send(_) => None,
    }
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

fn describe(replay: &Replay) -> BTreeMap<String, String> {
    let mut d = replay.filters.describe();
    d.insert("rate".into(), replay.rate.to_string());
    d.insert("max_replays".into(), replay.max_replays.to_string());
    if replay.again {
        d.insert("again".into(), "true".into());
    }
    d
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
