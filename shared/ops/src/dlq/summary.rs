//! A summary of dead letters (`intops dlq list`, the console): how many
//! there are by stage, flow, target and error class, with the oldest and
//! newest, and the newest ones in brief.

use std::collections::{BTreeMap, VecDeque};

use intops_kafka::ServiceContext;
use serde::Serialize;

use super::filter::Filters;
use super::marks;
use super::read::{Letter, Letters};
use crate::{Watch, when};

/// One group of dead letters.
#[derive(Debug, Default, Clone, Serialize)]
pub struct Group {
    /// `transform` or `delivery`.
    pub stage: String,
    /// The flow, when known.
    pub flow: Option<String>,
    /// The target, when known.
    pub target: Option<String>,
    /// The error class.
    pub error_class: String,
    /// Dead letters in the group.
    pub count: u64,
    /// Not yet sent on by a replay.
    pub pending: u64,
    /// The oldest one's failure time (RFC 3339).
    pub oldest: String,
    /// The newest one's failure time (RFC 3339).
    pub newest: String,
    #[serde(skip)]
    oldest_at: i64,
    #[serde(skip)]
    newest_at: i64,
}

/// One dead letter in brief: where it is stored and why it failed (no
/// payload: `intops dlq show` and the event page decode that).
#[derive(Debug, Clone, Serialize)]
pub struct Brief {
    /// `topic/partition/offset`, the replay mark's key.
    pub location: String,
    /// `transform` or `delivery`.
    pub stage: String,
    /// The event, when known.
    pub event_id: Option<String>,
    /// The flow, when known.
    pub flow: Option<String>,
    /// The target, when known.
    pub target: Option<String>,
    /// The tenant, when the flow has one.
    pub tenant: Option<String>,
    /// The Kafka key (`<source>:<entity key>`).
    pub key: Option<String>,
    /// The error class.
    pub error_class: String,
    /// The error, as the stage wrote it.
    pub error_message: String,
    /// The target's last HTTP status.
    pub http_status: Option<i32>,
    /// When it failed (RFC 3339).
    pub failed_at: String,
    /// Replays it had before it failed this time.
    pub replay_count: i32,
    /// Whether a replay already sent it on.
    pub replayed: bool,
}

/// The whole summary.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    /// Dead letters selected.
    pub total: u64,
    /// Of those, not yet sent on by a replay.
    pub pending: u64,
    /// Records that are not dead letters (skipped).
    pub undecodable: usize,
    /// Counts by stage, flow, target and error class.
    pub groups: Vec<Group>,
    /// The newest selected dead letters, newest first (only when asked).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub letters: Vec<Brief>,
}

/// Reads the selected dead letters: their summary and, newest first, the
/// last `keep` of them in brief. Undecodable records are told to `watch`.
pub async fn summarize(
    ctx: &ServiceContext,
    filters: &Filters,
    keep: usize,
    watch: &dyn Watch,
) -> anyhow::Result<Summary> {
    let marked = marks::load(ctx, watch).await?;
    let mut letters = Letters::open(ctx, &filters.topics(&ctx.topics)).await?;
    let mut groups: BTreeMap<(String, String, String, String), Group> = BTreeMap::new();
    let mut kept: VecDeque<Brief> = VecDeque::new();
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
        let replayed = marked.contains(&l.location());
        if !replayed {
            g.pending += 1;
            pending += 1;
        }
        g.oldest_at = g.oldest_at.min(d.failed_at);
        g.newest_at = g.newest_at.max(d.failed_at);
        if keep > 0 {
            if kept.len() == keep {
                kept.pop_front();
            }
            kept.push_back(brief(&l, replayed));
        }
    }
    for text in letters.take_warnings() {
        watch.warning(&text);
    }
    let groups = groups
        .into_values()
        .map(|mut g| {
            g.oldest = when::format(g.oldest_at);
            g.newest = when::format(g.newest_at);
            g
        })
        .collect();
    let mut letters_kept: Vec<Brief> = kept.into_iter().collect();
    letters_kept.sort_by(|a, b| b.failed_at.cmp(&a.failed_at));
    Ok(Summary {
        total,
        pending,
        undecodable: letters.undecodable,
        groups,
        letters: letters_kept,
    })
}

fn brief(l: &Letter, replayed: bool) -> Brief {
    let d = &l.letter;
    Brief {
        location: l.location(),
        stage: d.stage.to_string(),
        event_id: d.event_id.clone(),
        flow: d.flow_id.clone(),
        target: d.target_id.clone(),
        tenant: d.tenant.clone(),
        key: d
            .original_key
            .as_deref()
            .map(|k| String::from_utf8_lossy(k).into_owned()),
        error_class: d.error_class.clone(),
        error_message: d.error_message.clone(),
        http_status: d.http_status,
        failed_at: when::format(d.failed_at),
        replay_count: d.replay_count,
        replayed,
    }
}
