//! The message feed: the index's events newest first, filtered by flow,
//! source, target, tenant, status, time and free text, a page at a time,
//! with the index's own limits stated beside them.

use serde::{Deserialize, Serialize};

use super::{Lineage, Trace};

/// Events per page unless asked, and at most.
pub const PAGE: usize = 50;
/// At most this many per page.
pub const MAX_PAGE: usize = 200;

/// An event's status in the feed, from its stages: `dead_lettered` when any
/// of its routes ended in a dead letter (or was parked), else `in_flight`
/// while a route has no result, else `delivered` when one was delivered,
/// else `echo` (every route skipped as an echo), else `unrouted`.
pub const STATUSES: [&str; 5] = [
    "delivered",
    "dead_lettered",
    "unrouted",
    "in_flight",
    "echo",
];

/// The feed's filters (`GET /api/v1/feed`, the `/feed` page).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeedQuery {
    pub flow: Option<String>,
    pub source: Option<String>,
    pub target: Option<String>,
    pub tenant: Option<String>,
    /// One of [`STATUSES`].
    pub status: Option<String>,
    /// From (RFC 3339 or a duration ago: `2h`).
    pub since: Option<String>,
    /// Before.
    pub until: Option<String>,
    /// Free text: an event id, entity key, business key (ticket number)
    /// or a target's record id.
    pub q: Option<String>,
    pub limit: Option<usize>,
    pub offset: Option<usize>,
}

/// One row of the feed.
#[derive(Debug, Clone, Serialize)]
pub struct FeedRow {
    pub event_id: String,
    pub at: Option<String>,
    pub status: &'static str,
    pub source_id: Option<String>,
    pub entity_key: Option<String>,
    pub event_type: Option<String>,
    pub tenant: Option<String>,
    /// The flows that routed it.
    pub flows: Vec<String>,
    /// The targets it went to.
    pub targets: Vec<String>,
    /// The target's record ids it created or updated.
    pub record_ids: Vec<String>,
}

/// One page of the feed.
#[derive(Debug, Clone, Serialize)]
pub struct FeedPage {
    /// Events matching, in the index.
    pub total: usize,
    pub offset: usize,
    pub next_offset: Option<usize>,
    pub events: Vec<FeedRow>,
    /// What the index holds: the feed never shows more.
    pub index: IndexLimits,
}

/// The index's bounds, shown with every page.
#[derive(Debug, Clone, Serialize)]
pub struct IndexLimits {
    /// Events held.
    pub held: usize,
    /// Events held at most (`INTOPS_MONITOR_MAX_EVENTS`); the oldest first
    /// seen are forgotten first.
    pub capacity: usize,
    /// The first stage of the oldest event held (RFC 3339).
    pub oldest: Option<String>,
}

/// A filter that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadQuery(pub String);

impl Lineage {
    /// The page of the feed that `query` asks for.
    pub fn feed(&self, query: &FeedQuery) -> Result<FeedPage, BadQuery> {
        if let Some(s) = query.status.as_deref().filter(|s| !s.is_empty())
            && !STATUSES.contains(&s)
        {
            return Err(BadQuery(format!(
                "status {s:?} is not one of {}",
                STATUSES.join(", ")
            )));
        }
        let time = |t: &Option<String>, name: &str| {
            t.as_deref()
                .filter(|t| !t.trim().is_empty())
                .map(|t| intops_ops::when::parse(t.trim()))
                .transpose()
                .map_err(|e| BadQuery(format!("{name}: {e}")))
        };
        let (since, until) = (time(&query.since, "since")?, time(&query.until, "until")?);
        let limit = query.limit.unwrap_or(PAGE).clamp(1, MAX_PAGE);
        let offset = query.offset.unwrap_or(0);
        let q = query.q.as_deref().map(str::trim).filter(|q| !q.is_empty());
        let found: Vec<&Trace> = match q {
            Some(q) => {
                let mut hits = self.search(q);
                if let Some(t) = self.traces.get(q)
                    && !hits.iter().any(|h| h.event_id == t.event_id)
                {
                    hits.insert(0, t);
                }
                hits
            }
            None => self
                .order
                .iter()
                .rev()
                .filter_map(|id| self.traces.get(id))
                .collect(),
        };
        let eq = |want: &Option<String>, have: Option<&str>| {
            want.as_deref()
                .filter(|w| !w.is_empty())
                .is_none_or(|w| have == Some(w))
        };
        let flow = query.flow.as_deref().filter(|w| !w.is_empty());
        let wanted_status = query.status.as_deref().filter(|w| !w.is_empty());
        let target = query.target.as_deref().filter(|w| !w.is_empty());
        // Filter on the traces themselves; rows are built for the page only.
        let matching: Vec<&Trace> = found
            .into_iter()
            .filter(|t| {
                let at = t.first_at();
                since.is_none_or(|s| at >= s)
                    && until.is_none_or(|u| at < u)
                    && eq(&query.source, t.source_id.as_deref())
                    && eq(&query.tenant, t.tenant.as_deref())
                    && flow.is_none_or(|f| t.stages.iter().any(|s| s.flow_id.as_deref() == Some(f)))
                    && target
                        .is_none_or(|g| t.stages.iter().any(|s| s.target_id.as_deref() == Some(g)))
                    && wanted_status.is_none_or(|w| status(t) == w)
            })
            .collect();
        let total = matching.len();
        let events: Vec<FeedRow> = matching
            .into_iter()
            .skip(offset)
            .take(limit)
            .map(row)
            .collect();
        let next_offset = (offset + events.len() < total).then_some(offset + events.len());
        Ok(FeedPage {
            total,
            offset,
            next_offset,
            events,
            index: IndexLimits {
                held: self.len(),
                capacity: self.capacity,
                oldest: self
                    .order
                    .front()
                    .and_then(|id| self.traces.get(id))
                    .and_then(|t| t.stages.first())
                    .map(|s| s.at.clone()),
            },
        })
    }
}

/// The feed's row of one event.
fn row(t: &Trace) -> FeedRow {
    let mut flows: Vec<String> = Vec::new();
    let mut targets: Vec<String> = Vec::new();
    let mut record_ids: Vec<String> = Vec::new();
    for s in &t.stages {
        for (list, value) in [
            (&mut flows, &s.flow_id),
            (&mut targets, &s.target_id),
            (&mut record_ids, &s.record_id),
        ] {
            if let Some(v) = value
                && !list.contains(v)
            {
                list.push(v.clone());
            }
        }
    }
    FeedRow {
        event_id: t.event_id.clone(),
        at: t.stages.first().map(|s| s.at.clone()),
        status: status(t),
        source_id: t.source_id.clone(),
        entity_key: t.entity_key.clone(),
        event_type: t.event_type.clone(),
        tenant: t.tenant.clone(),
        flows,
        targets,
        record_ids,
    }
}

/// The event's status (see [`STATUSES`]): the last word of each route (a
/// flow's stages), then the worst of them.
pub fn status(t: &Trace) -> &'static str {
    let mut routes: Vec<(Option<&str>, &'static str)> = Vec::new();
    for s in &t.stages {
        let word = match (s.stage, s.status) {
            ("ingest", _) => continue,
            (_, "routed" | "replayed") => "in_flight",
            (_, "parked") => "dead_lettered",
            (_, other) => other,
        };
        let key = s.flow_id.as_deref();
        match routes.iter_mut().find(|(k, _)| *k == key) {
            // Stages sort by their hosts' clocks: a request stamped after its
            // own result (clock skew) does not make the route in flight
            // again; a replay does.
            Some(route) if s.status == "routed" && route.1 != "in_flight" => {}
            Some(route) => route.1 = word,
            None => routes.push((key, word)),
        }
    }
    if !t.dead_letters.is_empty() && routes.iter().all(|(_, w)| *w != "delivered") {
        return "dead_lettered";
    }
    let has = |w: &str| routes.iter().any(|(_, r)| *r == w);
    if has("dead_lettered") {
        "dead_lettered"
    } else if has("in_flight") || routes.is_empty() {
        "in_flight"
    } else if has("delivered") {
        "delivered"
    } else if has("echo") {
        "echo"
    } else if has("unrouted") {
        "unrouted"
    } else {
        "in_flight"
    }
}

#[cfg(test)]
mod tests {
    use intops_events::{OutcomeStatus, Stage};

    use super::super::tests::{delivered, event, request};
    use super::*;

    fn failed(id: &str, at: i64) -> intops_events::Outcome {
        intops_events::Outcome {
            status: OutcomeStatus::DeadLettered,
            http_status: Some(400),
            ..delivered(id, at)
        }
    }

    fn unrouted(id: &str, at: i64) -> intops_events::Outcome {
        intops_events::Outcome {
            stage: Stage::Transform,
            status: OutcomeStatus::Unrouted,
            flow_id: None,
            target_id: None,
            ..delivered(id, at)
        }
    }

    /// Five events: delivered, dead-lettered, unrouted, in flight, and one
    /// of another source delivered with a record id.
    fn lineage() -> Lineage {
        let mut l = Lineage::new(100);
        for (i, id) in ["ok", "bad", "none", "wait", "jira"].iter().enumerate() {
            let at = (i as i64 + 1) * 1_000_000;
            let mut e = event(id, at);
            if *id == "jira" {
                e.source_id = "jira".into();
            }
            l.on_event(&e);
            match *id {
                "none" => l.on_outcome(&unrouted(id, at + 1)),
                other => {
                    l.on_request(&request(id, at + 1));
                    match other {
                        "ok" => l.on_outcome(&delivered(id, at + 2)),
                        "bad" => l.on_outcome(&failed(id, at + 2)),
                        "jira" => l.on_outcome(&intops_events::Outcome {
                            record_id: Some("OPS-7".into()),
                            ..delivered(id, at + 2)
                        }),
                        _ => {}
                    }
                }
            }
        }
        l
    }

    fn ids(page: &FeedPage) -> Vec<&str> {
        page.events.iter().map(|r| r.event_id.as_str()).collect()
    }

    /// A query as the router reads one from `k=v` pairs.
    fn query(pairs: &[(&str, &str)]) -> FeedQuery {
        let map: serde_json::Map<String, serde_json::Value> = pairs
            .iter()
            .map(|(k, v)| {
                let value = match *k {
                    "limit" | "offset" => v.parse::<u64>().map(Into::into).unwrap_or_default(),
                    _ => serde_json::Value::String((*v).to_string()),
                };
                ((*k).to_string(), value)
            })
            .collect();
        serde_json::from_value(serde_json::Value::Object(map)).expect("query")
    }

    #[test]
    fn newest_first_with_each_events_status() {
        let page = lineage().feed(&FeedQuery::default()).expect("page");
        assert_eq!(ids(&page), ["jira", "wait", "none", "bad", "ok"]);
        let statuses: Vec<&str> = page.events.iter().map(|r| r.status).collect();
        assert_eq!(
            statuses,
            [
                "delivered",
                "in_flight",
                "unrouted",
                "dead_lettered",
                "delivered"
            ]
        );
        assert_eq!(page.events[0].record_ids, ["OPS-7"]);
        assert_eq!((page.index.held, page.index.capacity), (5, 100));
        assert!(page.index.oldest.is_some());
    }

    /// Filters given and the events they leave, newest first.
    type Case<'a> = (&'a [(&'a str, &'a str)], &'a [&'a str]);

    #[test]
    fn filters_narrow_and_pages_follow() {
        let l = lineage();
        let cases: [Case; 7] = [
            (&[("status", "delivered")], &["jira", "ok"]),
            (&[("status", "dead_lettered")], &["bad"]),
            (&[("source", "jira")], &["jira"]),
            (&[("flow", "f"), ("status", "in_flight")], &["wait"]),
            (&[("target", "nope")], &[]),
            (&[("q", "ops-7")], &["jira"]),
            (&[("q", "bad")], &["bad"]),
        ];
        // An empty field of the page's form filters nothing.
        let everything = l
            .feed(&query(&[("status", ""), ("since", ""), ("flow", "")]))
            .expect("page");
        assert_eq!(everything.total, 5);
        for (pairs, want) in cases {
            let page = l.feed(&query(pairs)).expect("page");
            assert_eq!(ids(&page), want, "{pairs:?}");
        }
        let first = l.feed(&query(&[("limit", "2")])).expect("page");
        assert_eq!(
            (ids(&first), first.next_offset),
            (vec!["jira", "wait"], Some(2))
        );
        let last = l
            .feed(&query(&[("limit", "2"), ("offset", "4")]))
            .expect("page");
        assert_eq!(
            (ids(&last), last.next_offset, last.total),
            (vec!["ok"], None, 5)
        );
    }

    #[test]
    fn a_request_stamped_after_its_result_leaves_it_delivered() {
        let mut l = Lineage::new(10);
        l.on_event(&event("skew", 1_000));
        // The transform host's clock is ahead of the delivery host's.
        l.on_outcome(&delivered("skew", 2_000));
        l.on_request(&request("skew", 3_000));
        let t = l.get("skew").expect("trace");
        assert_eq!(status(t), "delivered");
    }

    #[test]
    fn a_bad_filter_is_named() {
        let l = lineage();
        let e = l.feed(&query(&[("status", "lost")])).expect_err("status");
        assert!(e.0.contains("delivered, dead_lettered"), "{e:?}");
        let e = l
            .feed(&query(&[("since", "yesterday")]))
            .expect_err("since");
        assert!(e.0.starts_with("since:"), "{e:?}");
    }
}

/// The feed over a full index (100,000 events): each query finds exactly
/// what it should, and the time per page is printed (no timed assertion;
/// figures with `cargo test -p intops-monitor --release feed_speed --
/// --nocapture`, docs/benchmarks.md).
#[cfg(test)]
mod speed {
    use std::time::Instant;

    use super::super::tests::{delivered, event, request};
    use super::*;

    #[test]
    fn feed_speed() {
        let mut l = Lineage::new(100_000);
        for i in 0..100_000i64 {
            let id = format!("e{i}");
            let mut e = event(&id, i);
            e.entity_key = format!("INC{i:07}");
            l.on_event(&e);
            l.on_request(&request(&id, i + 1));
            if i % 10 != 0 {
                l.on_outcome(&delivered(&id, i + 2));
            }
        }
        let queries: [(&str, FeedQuery, usize); 4] = [
            ("newest page, no filter", FeedQuery::default(), 100_000),
            (
                "status=in_flight (10% match)",
                FeedQuery {
                    status: Some("in_flight".into()),
                    ..FeedQuery::default()
                },
                10_000,
            ),
            (
                "source=none (nothing matches)",
                FeedQuery {
                    source: Some("none".into()),
                    ..FeedQuery::default()
                },
                0,
            ),
            (
                "q=e99999 (an event id)",
                FeedQuery {
                    q: Some("e99999".into()),
                    ..FeedQuery::default()
                },
                1,
            ),
        ];
        for (what, q, matching) in queries {
            let runs = 5;
            let started = Instant::now();
            let mut total = 0;
            for _ in 0..runs {
                total = l.feed(&q).expect("feed").total;
            }
            let ms = started.elapsed().as_secs_f64() * 1000.0 / f64::from(runs);
            assert_eq!(total, matching, "{what}");
            println!("feed over 100,000 events, {what}: {ms:.1} ms per page ({total} match)");
        }
    }
}
