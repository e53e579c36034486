//! `intops links show|find`: the links of conversations, read from
//! `<prefix>.links` (compacted) from its beginning to its end at start.
//! The latest record per key is the link; a tombstone (null value) removed
//! it. Joins no consumer group and commits nothing.

use std::collections::BTreeMap;
use std::process::ExitCode;

use intops_events::{Link, LinkMode};
use intops_kafka::{Message, Scan, ServiceContext, Start, topics};
use serde_json::{Value, json};

use crate::when;

/// Which links a command selects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Query {
    /// `show`: the link of one flow and source entity key.
    Show {
        /// The record key, `<flow>:<entity key>`.
        key: String,
    },
    /// `find`: every link whose record id is this one (case-insensitive).
    Find {
        /// The record id looked for.
        record_id: String,
    },
}

/// Why a link was selected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Match {
    /// Its flow and entity key (`show`).
    Key,
    /// The record id of a capture link: the target's record the flow
    /// created.
    CaptureRecord,
    /// The record id of a from link: the record it writes back to (the
    /// capture flow's source entity key).
    FromRecord,
}

impl Match {
    /// As printed and in `--json`'s `matched`.
    pub fn as_str(self) -> &'static str {
        match self {
            Match::Key => "key",
            Match::CaptureRecord => "capture_record_id",
            Match::FromRecord => "from_record_id",
        }
    }

    fn describe(self) -> &'static str {
        match self {
            Match::Key => "flow and entity key",
            Match::CaptureRecord => "record id of a capture link (the target's record it created)",
            Match::FromRecord => "record id of a from link (the record it writes back to)",
        }
    }
}

impl Query {
    /// `show FLOW ENTITY_KEY`.
    pub fn show(flow: &str, entity_key: &str) -> Self {
        Query::Show {
            key: Link::key_of(flow, entity_key),
        }
    }

    /// `find RECORD_ID`.
    pub fn find(record_id: &str) -> Self {
        Query::Find {
            record_id: record_id.trim().to_string(),
        }
    }

    /// Whether a record under `key` can be selected: `show` decodes only
    /// its own key's records.
    pub fn wants_key(&self, key: &str) -> bool {
        match self {
            Query::Show { key: wanted } => key == wanted,
            Query::Find { .. } => true,
        }
    }

    /// Why the link stored under `key` is selected, if it is.
    pub fn matches(&self, key: &str, link: &Link) -> Option<Match> {
        match self {
            Query::Show { key: wanted } => (key == wanted).then_some(Match::Key),
            Query::Find { record_id } => {
                let id = link.record_id.as_deref()?;
                if !id.eq_ignore_ascii_case(record_id) {
                    return None;
                }
                Some(match link.mode {
                    LinkMode::Capture => Match::CaptureRecord,
                    LinkMode::From => Match::FromRecord,
                })
            }
        }
    }
}

/// The links selected so far: per key, its latest record, if that one
/// matches. Holds only matching links, so `find` over a million links
/// keeps a handful.
#[derive(Debug, Default)]
pub struct Selected {
    links: BTreeMap<String, (Link, Match)>,
}

impl Selected {
    /// Folds the next record under `key` (`None`: a tombstone). A later
    /// record replaces every earlier one of its key, so a key whose latest
    /// record does not match, or is a tombstone, is dropped.
    pub fn fold(&mut self, query: &Query, key: &str, link: Option<Link>) {
        match link.and_then(|l| query.matches(key, &l).map(|m| (l, m))) {
            Some(found) => {
                self.links.insert(key.to_string(), found);
            }
            None => {
                self.links.remove(key);
            }
        }
    }

    /// The selected links: capture links first, then by key.
    pub fn into_links(self) -> Vec<(String, Link, Match)> {
        let mut links: Vec<_> = self
            .links
            .into_iter()
            .map(|(key, (link, m))| (key, link, m))
            .collect();
        // Stable: by key within each mode (the map's order).
        links.sort_by_key(|(_, link, _)| link.mode == LinkMode::From);
        links
    }
}

/// One link as `--json` prints it (one object per line).
pub fn to_json(key: &str, link: &Link, matched: Match) -> Value {
    json!({
        "key": key,
        "flow_id": link.flow_id,
        "mode": link.mode.as_str(),
        "via_flow": link.via_flow,
        "entity_key": link.entity_key,
        "target_id": link.target_id,
        "record_id": link.record_id,
        "pending": link.record_id.is_none(),
        "event_id": link.event_id,
        "last_write": link.last_write,
        "created_at": when::format(link.created_at),
        "updated_at": when::format(link.updated_at),
        "matched": matched.as_str(),
    })
}

/// One link as text: a block of `label  value` lines.
pub fn to_text(key: &str, link: &Link, matched: Match) -> String {
    let mode = match (&link.mode, &link.via_flow) {
        (LinkMode::From, Some(via)) => format!("from (follows {via})"),
        (mode, _) => mode.as_str().to_string(),
    };
    let mut rows = vec![
        ("link", key.to_string()),
        ("flow", link.flow_id.clone()),
        ("mode", mode),
        ("entity key", link.entity_key.clone()),
        ("target", link.target_id.clone()),
        (
            "record id",
            link.record_id.clone().unwrap_or_else(|| {
                "pending (a create was sent, its answer not yet captured)".into()
            }),
        ),
        ("last event", link.event_id.clone()),
        (
            "last write",
            link.last_write.clone().unwrap_or_else(|| "-".into()),
        ),
        ("created", when::format(link.created_at)),
        ("updated", when::format(link.updated_at)),
    ];
    if matched != Match::Key {
        rows.push(("matched", matched.describe().to_string()));
    }
    rows.iter()
        .map(|(label, value)| format!("{label:<11} {value}\n"))
        .collect()
}

/// What `show` or `find` says when it selected nothing.
pub fn none_found(query: &Query, topic: &str) -> String {
    match query {
        Query::Show { key } => format!("no link {key} in {topic}"),
        Query::Find { record_id } => format!("no link with record id {record_id} in {topic}"),
    }
}

/// Reads the links topic and prints what `query` selects. Exit 0 when a
/// link was found, 1 when none (said on stderr).
pub async fn run(ctx: &ServiceContext, query: &Query, as_json: bool) -> anyhow::Result<ExitCode> {
    let topic = ctx.topics.links();
    if !topics::exists(&ctx.kafka, &topic).await? {
        eprintln!(
            "{} (the topic does not exist: no flow with links has run)",
            none_found(query, &topic)
        );
        return Ok(ExitCode::FAILURE);
    }
    let selected = read(ctx, &topic, query).await?;
    let links = selected.into_links();
    if links.is_empty() {
        eprintln!("{}", none_found(query, &topic));
        return Ok(ExitCode::FAILURE);
    }
    let count = links.len();
    for (i, (key, link, matched)) in links.iter().enumerate() {
        if as_json {
            println!("{}", serde_json::to_string(&to_json(key, link, *matched))?);
        } else {
            if i > 0 {
                println!();
            }
            print!("{}", to_text(key, link, *matched));
        }
    }
    if !as_json && matches!(query, Query::Find { .. }) {
        println!("\n{count} link(s) found");
    }
    Ok(ExitCode::SUCCESS)
}

async fn read(ctx: &ServiceContext, topic: &str, query: &Query) -> anyhow::Result<Selected> {
    let mut scan = Scan::open(
        &ctx.kafka,
        std::slice::from_ref(&topic.to_string()),
        Start::Beginning,
        false,
    )
    .await?;
    let mut selected = Selected::default();
    while let Some(message) = scan.next().await? {
        let Some(key) = message.key().and_then(|k| std::str::from_utf8(k).ok()) else {
            eprintln!(
                "warning: {topic}/{}/{} has no UTF-8 key, skipped",
                message.partition(),
                message.offset()
            );
            continue;
        };
        if !query.wants_key(key) {
            continue;
        }
        let link = match message.payload() {
            None => None,
            Some(bytes) => match ctx.codec.decode::<Link>(bytes).await {
                Ok(link) => Some(link),
                Err(e) if e.is_retryable() => return Err(e.into()),
                Err(e) => {
                    eprintln!(
                        "warning: {topic}/{}/{} is not a link: {e}",
                        message.partition(),
                        message.offset()
                    );
                    continue;
                }
            },
        };
        selected.fold(query, key, link);
    }
    Ok(selected)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn capture(entity_key: &str, record_id: Option<&str>, at: i64) -> Link {
        Link {
            tenant: None,
            flow_id: "snow-p1-to-jira".into(),
            mode: LinkMode::Capture,
            via_flow: None,
            entity_key: entity_key.into(),
            target_id: "jira".into(),
            record_id: record_id.map(str::to_string),
            event_id: format!("ev-{at}"),
            last_write: Some("00112233aabbccdd".into()),
            created_at: 1_795_860_000_000_000,
            updated_at: 1_795_860_000_000_000 + at,
            written_at: None,
            seen_at: None,
            basis_at: None,
            earlier_written_at: None,
            earlier_basis_at: None,
        }
    }

    fn from_link(entity_key: &str, record_id: &str) -> Link {
        Link {
            flow_id: "jira-to-snow".into(),
            mode: LinkMode::From,
            via_flow: Some("snow-p1-to-jira".into()),
            entity_key: entity_key.into(),
            target_id: "servicenow".into(),
            record_id: Some(record_id.into()),
            ..capture(entity_key, None, 0)
        }
    }

    fn key(l: &Link) -> String {
        Link::key_of(&l.flow_id, &l.entity_key)
    }

    fn fold_all(query: &Query, records: &[(String, Option<Link>)]) -> Vec<(String, Match)> {
        let mut selected = Selected::default();
        for (k, l) in records {
            if query.wants_key(k) {
                selected.fold(query, k, l.clone());
            }
        }
        selected
            .into_links()
            .into_iter()
            .map(|(k, _, m)| (k, m))
            .collect()
    }

    #[test]
    fn show_takes_the_latest_record_of_its_key_and_a_tombstone_removes_it() {
        let pending = capture("sys-1", None, 1);
        let linked = capture("sys-1", Some("OPS-12"), 2);
        let other = capture("sys-2", Some("OPS-13"), 3);
        let query = Query::show("snow-p1-to-jira", "sys-1");
        assert!(!query.wants_key(&key(&other)), "other keys are not decoded");

        let mut selected = Selected::default();
        selected.fold(&query, &key(&pending), Some(pending.clone()));
        selected.fold(&query, &key(&linked), Some(linked.clone()));
        let links = selected.into_links();
        assert_eq!(links.len(), 1);
        assert_eq!(links[0].1.record_id.as_deref(), Some("OPS-12"));
        assert_eq!(links[0].2, Match::Key);

        let expired = fold_all(
            &query,
            &[(key(&linked), Some(linked.clone())), (key(&linked), None)],
        );
        assert!(expired.is_empty(), "{expired:?}");
        // Written again after the tombstone: found again.
        let again = fold_all(
            &query,
            &[
                (key(&linked), Some(linked.clone())),
                (key(&linked), None),
                (key(&pending), Some(pending)),
            ],
        );
        assert_eq!(again.len(), 1);
    }

    #[test]
    fn find_matches_record_ids_of_capture_and_from_links_and_says_which() {
        let created = capture("sys-1", Some("OPS-12"), 1);
        let back = from_link("OPS-12", "sys-1");
        let moved_away = capture("sys-9", Some("OPS-12"), 1);
        let moved = capture("sys-9", Some("OPS-99"), 2);
        let records = vec![
            (key(&back), Some(back.clone())),
            (key(&created), Some(created.clone())),
            (key(&moved_away), Some(moved_away)),
            (key(&moved), Some(moved)),
        ];
        assert_eq!(
            fold_all(&Query::find("ops-12"), &records),
            [(key(&created), Match::CaptureRecord)],
            "case-insensitive; a key whose latest record moved away is dropped"
        );
        assert_eq!(
            fold_all(&Query::find(" sys-1 "), &records),
            [(key(&back), Match::FromRecord)]
        );
        assert!(fold_all(&Query::find("OPS-1"), &records).is_empty());
        // A pending capture link has no record id to find.
        let pending = capture("sys-3", None, 1);
        assert!(fold_all(&Query::find(""), &[(key(&pending), Some(pending))]).is_empty());
    }

    #[test]
    fn capture_links_are_listed_before_from_links() {
        let a = capture("zzz", Some("X-1"), 1);
        let b = from_link("aaa", "X-1");
        let links = fold_all(
            &Query::find("X-1"),
            &[(key(&b), Some(b.clone())), (key(&a), Some(a.clone()))],
        );
        assert_eq!(
            links,
            [
                (key(&a), Match::CaptureRecord),
                (key(&b), Match::FromRecord)
            ]
        );
    }

    #[test]
    fn text_and_json_name_every_field_and_a_pending_create() {
        let linked = capture("sys-1", Some("OPS-12"), 2);
        let text = to_text(&key(&linked), &linked, Match::Key);
        assert_eq!(
            text,
            "link        snow-p1-to-jira:sys-1\n\
             flow        snow-p1-to-jira\n\
             mode        capture\n\
             entity key  sys-1\n\
             target      jira\n\
             record id   OPS-12\n\
             last event  ev-2\n\
             last write  00112233aabbccdd\n\
             created     2026-11-28T10:00:00.000Z\n\
             updated     2026-11-28T10:00:00.000Z\n"
        );
        let pending = capture("sys-1", None, 1);
        assert!(to_text(&key(&pending), &pending, Match::Key).contains("record id   pending"));

        let back = from_link("OPS-12", "sys-1");
        let text = to_text(&key(&back), &back, Match::FromRecord);
        assert!(
            text.contains("mode        from (follows snow-p1-to-jira)\n"),
            "{text}"
        );
        assert!(
            text.contains("matched     record id of a from link"),
            "{text}"
        );

        let v = to_json(&key(&pending), &pending, Match::Key);
        assert_eq!(v["record_id"], Value::Null);
        assert_eq!(v["pending"], true);
        assert_eq!(v["mode"], "capture");
        assert_eq!(v["key"], "snow-p1-to-jira:sys-1");
        assert_eq!(v["created_at"], "2026-11-28T10:00:00.000Z");
        let v = to_json(&key(&back), &back, Match::FromRecord);
        assert_eq!(
            (
                v["record_id"].as_str(),
                v["via_flow"].as_str(),
                v["matched"].as_str()
            ),
            (
                Some("sys-1"),
                Some("snow-p1-to-jira"),
                Some("from_record_id")
            )
        );
    }

    #[test]
    fn nothing_found_names_what_was_looked_for() {
        assert_eq!(
            none_found(&Query::show("f", "k"), "intops.links"),
            "no link f:k in intops.links"
        );
        assert_eq!(
            none_found(&Query::find("OPS-1"), "intops.links"),
            "no link with record id OPS-1 in intops.links"
        );
    }
}
