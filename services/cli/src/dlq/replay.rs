//! `intops dlq replay`: sends selected dead letters back to the topic they
//! failed from, in order per key, at a rate limit; marks each as sent once
//! the broker acknowledged it, parks records replayed too often, and
//! writes an audit trail and replay outcomes.

use std::collections::BTreeMap;

use intops_events::Topics;
use intops_kafka::ServiceContext;

use super::filter::Filters;
use super::marks;
use super::read::{Letter, Letters};
use select::{Selection, Step, Verdict, verdict};
use session::Session;

mod lane;
mod select;
mod session;

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

/// Runs the replay (or the dry run).
pub async fn run(ctx: &ServiceContext, args: &ReplayArgs) -> anyhow::Result<()> {
    let marked = marks::load(ctx).await?;
    let mut letters = Letters::open(ctx, &args.filters.topics(&ctx.topics)).await?;
    let mut selection = Selection::default();
    let mut session = if args.dry_run {
        None
    } else {
        let replay_id = uuid::Uuid::now_v7().to_string();
        Some(Session::start(ctx, args, replay_id).await?)
    };
    while let Some(letter) = letters.next().await? {
        if !args.filters.matches(&letter.letter) {
            continue;
        }
        let d = &letter.letter;
        let sent_before = marked.contains(&letter.location());
        let own = own_topic(&ctx.topics, &d.original_topic);
        let verdict = verdict(d, sent_before, args.again, args.max_replays, own);
        let action = match selection.admit(&letter, verdict, args.filters.limit) {
            Step::Stop => break,
            Step::Skip(why) => {
                warn_skipped(&ctx.topics, &letter, why);
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
    if letters.undecodable > 0 {
        eprintln!(
            "warning: {} undecodable record(s) in the dead-letter topics were skipped",
            letters.undecodable
        );
    }
    match session {
        Some(session) => session.finish(ctx, &selection, args.json).await,
        None => {
            selection.print_dry_run(args.json);
            Ok(())
        }
    }
}

/// Tells the operator why a selected dead letter is not sent.
fn warn_skipped(topics: &Topics, letter: &Letter, why: Verdict) {
    match why {
        Verdict::Unreplayable => eprintln!(
            "warning: {} has no original value; not replayed",
            letter.location()
        ),
        Verdict::ForeignTopic => eprintln!(
            "warning: {} names original topic {:?}, which is not one of this deployment's ({} or {}<target>); skipped",
            letter.location(),
            letter.letter.original_topic,
            topics.events(),
            topics.deliveries(""),
        ),
        Verdict::AlreadyReplayed | Verdict::Send(_) => {}
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

fn describe(args: &ReplayArgs) -> BTreeMap<String, String> {
    let mut d = args.filters.describe();
    d.insert("rate".into(), args.rate.to_string());
    d.insert("max_replays".into(), args.max_replays.to_string());
    if args.again {
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
