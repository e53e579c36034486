//! The lineage index: for each recent event, what every stage did with it.
//! Built only from topic records; bounded to `capacity` events (the oldest
//! first seen is forgotten first).

use std::collections::{HashMap, HashSet, VecDeque};
use std::time::{Duration, UNIX_EPOCH};

use intops_events::{DeadLetter, DeliveryRequest, IntegrationEvent, LinkAction, Outcome, Stage};
use serde::Serialize;

pub mod feed;

pub use feed::{BadQuery, FeedPage, FeedQuery, FeedRow, STATUSES};

/// What one stage did with an event, as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StageView {
    /// `ingest`, `transform`, `delivery` or `replay`.
    pub stage: &'static str,
    /// `accepted`, `routed`, `unrouted`, `delivered`, `dead_lettered`, `replayed`.
    pub status: &'static str,
    /// When (RFC 3339, UTC).
    pub at: String,
    /// The flow, when about one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub flow_id: Option<String>,
    /// The flow's version, for routed requests.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub flow_version: Option<String>,
    /// Where that version's definition is (`/api/v1/flow-versions/..`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub flow_version_url: Option<String>,
    /// The target, when about one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target_id: Option<String>,
    /// HTTP attempts (delivery).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attempts: Option<i32>,
    /// Last HTTP status (delivery).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub http_status: Option<i32>,
    /// Milliseconds since ingest (delivery).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub latency_ms: Option<i64>,
    /// Why it failed, or why it was not sent (`no link`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// For flows with links (delivery): `create`, `update`, `write_back`,
    /// `echo` or `no_link`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub link_action: Option<&'static str>,
    /// The target's record id the request created, updated or wrote back
    /// to (the link), when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub record_id: Option<String>,
    #[serde(skip)]
    at_micros: i64,
}

/// A dead letter of an event, as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DeadLetterView {
    /// `transform` or `delivery`.
    pub stage: &'static str,
    /// Error class (`http_4xx`, `exhausted`, `mapping`, ...).
    pub error_class: String,
    /// The error.
    pub error_message: String,
    /// Whether a later try could succeed.
    pub retryable: bool,
    /// Attempts made.
    pub attempts: i32,
    /// The flow and its version.
    pub flow_id: Option<String>,
    /// The flow's version.
    pub flow_version: Option<String>,
    /// Where that version's definition is (`/api/v1/flow-versions/..`).
    pub flow_version_url: Option<String>,
    /// The target.
    pub target_id: Option<String>,
    /// The target's last status.
    pub http_status: Option<i32>,
    /// The start of the target's last answer (redacted).
    pub response_excerpt: Option<String>,
    /// Where the failed record was.
    pub original: String,
    /// Replays before this failure.
    pub replay_count: i32,
    /// When (RFC 3339).
    pub failed_at: String,
}

/// Everything known about one event.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Trace {
    /// The event id.
    pub event_id: String,
    /// Its source, once the event record was read.
    pub source_id: Option<String>,
    /// Its entity key.
    pub entity_key: Option<String>,
    /// Its event type.
    pub event_type: Option<String>,
    /// Its tenant (of its source or flows), when it has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
    /// Stage results in time order.
    pub stages: Vec<StageView>,
    /// The dead letters written for the event, oldest first (without the
    /// original bytes: `intops dlq show --event-id` prints those).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub dead_letters: Vec<DeadLetterView>,
    /// Where the event record is (for its payload on the event page).
    #[serde(skip)]
    pub event_at: Option<Location>,
    /// Where each of its delivery requests is: flow, target, location.
    #[serde(skip)]
    pub requests_at: Vec<(String, String, Location)>,
    /// Search terms: the entity key, the payload's short top-level values
    /// and the target record ids of its outcomes, lowercase.
    #[serde(skip)]
    terms: Vec<String>,
}

/// Where a record is stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
}

/// The bounded index of recent events.
#[derive(Debug)]
pub struct Lineage {
    traces: HashMap<String, Trace>,
    order: VecDeque<String>,
    capacity: usize,
    /// Search term → events carrying it. A set: a forgotten event leaves
    /// each of its terms at once, whatever the order it was indexed in (a
    /// list kept in indexing order cost a scan of every event with a
    /// common term per eviction once the records of an event's three
    /// topics arrived in another order than the events: the monitor spent
    /// most of a core on it at half of saturation, docs/benchmarks.md).
    terms: HashMap<String, HashSet<String>>,
    /// Each source's `redact` paths: their top-level fields are no search
    /// terms (a search would tell whether a hidden value is there).
    redact: crate::bodies::Redactions,
}

/// Payload values longer than this are not search terms.
const MAX_TERM: usize = 64;
/// Search terms taken from one payload at most.
const MAX_TERMS: usize = 16;
/// Record ids longer than this are not search terms (a Jira key or a
/// sys_id is far shorter; a URL-shaped id may be longer than `MAX_TERM`).
const MAX_RECORD_ID_TERM: usize = 256;
/// Why an unrouted outcome of a write-back names no record.
pub const NO_LINK: &str = "no link";

impl Lineage {
    /// An empty index holding at most `capacity` events.
    pub fn new(capacity: usize) -> Self {
        Self {
            traces: HashMap::new(),
            order: VecDeque::new(),
            capacity: capacity.max(1),
            terms: HashMap::new(),
            redact: crate::bodies::Redactions::default(),
        }
    }

    /// The `redact` lists whose fields are kept out of the search terms
    /// of events read from now on.
    pub(crate) fn set_redactions(&mut self, redact: crate::bodies::Redactions) {
        self.redact = redact;
    }

    /// Events held.
    pub fn len(&self) -> usize {
        self.traces.len()
    }

    /// Whether no event is held.
    pub fn is_empty(&self) -> bool {
        self.traces.is_empty()
    }

    /// The trace of `event_id`.
    pub fn get(&self, event_id: &str) -> Option<&Trace> {
        self.traces.get(event_id)
    }

    /// Folds an accepted event.
    pub fn on_event(&mut self, e: &IntegrationEvent) {
        let terms = search_terms(e, self.redact.of_source(&e.source_id));
        let trace = self.entry(&e.event_id);
        trace.source_id = Some(e.source_id.clone());
        trace.entity_key = Some(e.entity_key.clone());
        trace.event_type = Some(e.event_type.clone());
        if e.tenant.is_some() {
            trace.tenant = e.tenant.clone();
        }
        push(trace, view("ingest", "accepted", e.ingested_at));
        self.index(&e.event_id, terms);
    }

    /// Keeps where the event's record is.
    pub fn locate_event(&mut self, event_id: &str, at: Location) {
        if let Some(t) = self.traces.get_mut(event_id) {
            t.event_at = Some(at);
        }
    }

    /// Keeps where a delivery request is (the latest of each flow and
    /// target: a replayed request replaces the first).
    pub fn locate_request(&mut self, r: &DeliveryRequest, at: Location) {
        if let Some(t) = self.traces.get_mut(&r.event_id) {
            t.requests_at
                .retain(|(flow, target, _)| !(flow == &r.flow_id && target == &r.target_id));
            t.requests_at
                .push((r.flow_id.clone(), r.target_id.clone(), at));
        }
    }

    /// Adds `terms` to the event's search terms (each once).
    fn index(&mut self, event_id: &str, terms: Vec<String>) {
        let Some(trace) = self.traces.get_mut(event_id) else {
            return;
        };
        let mut fresh: Vec<String> = Vec::new();
        for term in terms {
            if !trace.terms.contains(&term) && !fresh.contains(&term) {
                fresh.push(term);
            }
        }
        trace.terms.extend(fresh.iter().cloned());
        for term in fresh {
            self.terms
                .entry(term)
                .or_default()
                .insert(event_id.to_string());
        }
    }

    /// Folds a dead letter into its event's trace (dead letters of
    /// records without an event id, such as undecodable ones, are not
    /// about any event).
    pub fn on_dead_letter(&mut self, d: &DeadLetter) {
        let Some(event_id) = d.event_id.as_deref() else {
            return;
        };
        let view = DeadLetterView {
            stage: d.stage.as_str(),
            error_class: d.error_class.clone(),
            error_message: d.error_message.clone(),
            retryable: d.retryable,
            attempts: d.attempts,
            flow_id: d.flow_id.clone(),
            flow_version: d.flow_version.clone(),
            flow_version_url: d.flow_version.as_deref().map(version_url),
            target_id: d.target_id.clone(),
            http_status: d.http_status,
            response_excerpt: d.response_excerpt.clone(),
            original: format!(
                "{}/{}@{}",
                d.original_topic, d.original_partition, d.original_offset
            ),
            replay_count: d.replay_count,
            failed_at: view("", "", d.failed_at).at,
        };
        let trace = self.entry(event_id);
        if !trace.dead_letters.contains(&view) {
            trace.dead_letters.push(view);
        }
    }

    /// Events whose entity key, a short top-level payload value or the
    /// target record id of one of its outcomes equals `query`
    /// (case-insensitive), newest first.
    pub fn search(&self, query: &str) -> Vec<&Trace> {
        let mut found: Vec<&Trace> = self
            .terms
            .get(&query.trim().to_lowercase())
            .into_iter()
            .flatten()
            .filter_map(|id| self.traces.get(id))
            .collect();
        // A tie (same first time) is broken by the event id, so pages
        // are the same on every call.
        found.sort_by(|a, b| (b.first_at(), &b.event_id).cmp(&(a.first_at(), &a.event_id)));
        found
    }

    /// Folds a delivery request: the proof that a flow routed the event.
    pub fn on_request(&mut self, r: &DeliveryRequest) {
        let trace = self.entry(&r.event_id);
        if trace.entity_key.is_none() {
            trace.entity_key = Some(r.entity_key.clone());
        }
        if trace.tenant.is_none() {
            trace.tenant = r.tenant.clone();
        }
        push(
            trace,
            StageView {
                flow_id: Some(r.flow_id.clone()),
                flow_version: Some(r.flow_version.clone()),
                flow_version_url: Some(version_url(&r.flow_version)),
                target_id: Some(r.target_id.clone()),
                ..view("transform", "routed", r.created_at)
            },
        );
    }

    /// Folds an outcome; its record id becomes a search term of the
    /// event, so the conversation is found by the target's id too.
    pub fn on_outcome(&mut self, o: &Outcome) {
        let (stage, status) = (o.stage.as_str(), o.status.as_str());
        // A write-back without a link says why it was not sent even when
        // the writer left the reason out.
        let error = match (&o.error, o.link_action) {
            (None, Some(LinkAction::NoLink)) => Some(NO_LINK.to_string()),
            (error, _) => error.clone(),
        };
        let record_id = o.record_id.clone().filter(|id| !id.is_empty());
        let trace = self.entry(&o.event_id);
        push(
            trace,
            StageView {
                flow_id: o.flow_id.clone(),
                target_id: o.target_id.clone(),
                attempts: (o.stage == Stage::Delivery).then_some(o.attempts),
                http_status: o.http_status,
                latency_ms: o.latency_ms,
                error,
                link_action: o.link_action.map(LinkAction::as_str),
                record_id: record_id.clone(),
                ..view(stage, status, o.at)
            },
        );
        if let Some(id) = record_id.filter(|id| id.len() <= MAX_RECORD_ID_TERM) {
            self.index(&o.event_id, vec![id.to_lowercase()]);
        }
    }

    fn entry(&mut self, event_id: &str) -> &mut Trace {
        if !self.traces.contains_key(event_id) {
            while self.traces.len() >= self.capacity {
                match self.order.pop_front() {
                    Some(old) => self.forget(&old),
                    None => break,
                }
            }
            self.order.push_back(event_id.to_string());
        }
        self.traces
            .entry(event_id.to_string())
            .or_insert_with(|| Trace {
                event_id: event_id.to_string(),
                ..Trace::default()
            })
    }
}

impl Lineage {
    fn forget(&mut self, event_id: &str) {
        let Some(trace) = self.traces.remove(event_id) else {
            return;
        };
        for term in trace.terms {
            if let Some(ids) = self.terms.get_mut(&term) {
                ids.remove(event_id);
                if ids.is_empty() {
                    self.terms.remove(&term);
                }
            }
        }
    }
}

impl Trace {
    /// When the first stage happened (micros), for ordering.
    pub fn first_at(&self) -> i64 {
        self.stages.first().map_or(0, |s| s.at_micros)
    }

    /// Its stages that say what a flow's request did through a link
    /// (create, update, write-back, echo, no link), oldest first.
    pub fn link_results(&self) -> impl Iterator<Item = &StageView> {
        self.stages.iter().filter(|s| s.link_action.is_some())
    }

    /// What a search for `query` found it by: `entity_key`, `record_id`
    /// (a target's record id on one of its outcomes) or `payload`.
    pub fn matched_by(&self, query: &str) -> &'static str {
        let q = query.trim().to_lowercase();
        if self
            .entity_key
            .as_ref()
            .is_some_and(|k| k.to_lowercase() == q)
        {
            "entity_key"
        } else if self
            .stages
            .iter()
            .filter_map(|s| s.record_id.as_ref())
            .any(|id| id.to_lowercase() == q)
        {
            "record_id"
        } else {
            "payload"
        }
    }
}

/// The entity key and the payload's short top-level strings and numbers,
/// lowercase: what an operator searches by (a ticket number such as
/// INC0010023, a sys_id).
fn search_terms(e: &IntegrationEvent, hidden: &[intops_flows::redact::FieldPath]) -> Vec<String> {
    let mut terms = vec![e.entity_key.to_lowercase()];
    if let Ok(serde_json::Value::Object(fields)) = serde_json::from_str(&e.payload) {
        for (key, value) in &fields {
            if hidden.iter().any(|p| p.covers_top_level(key)) {
                continue;
            }
            let text = match value {
                serde_json::Value::String(s) => s.clone(),
                serde_json::Value::Number(n) => n.to_string(),
                _ => continue,
            };
            if !text.is_empty() && text.len() <= MAX_TERM && !terms.contains(&text.to_lowercase()) {
                terms.push(text.to_lowercase());
            }
            if terms.len() >= MAX_TERMS {
                break;
            }
        }
    }
    terms
}

/// Inserts in time order; a record read twice (a replayed topic, an
/// at-least-once duplicate) is kept once.
fn push(trace: &mut Trace, stage: StageView) {
    if trace.stages.contains(&stage) {
        return;
    }
    let at = trace
        .stages
        .partition_point(|s| s.at_micros <= stage.at_micros);
    trace.stages.insert(at, stage);
}

/// The monitor's address of a flow version's definition.
pub fn version_url(version: &str) -> String {
    format!("/api/v1/flow-versions/{version}")
}

fn view(stage: &'static str, status: &'static str, at_micros: i64) -> StageView {
    let at = UNIX_EPOCH + Duration::from_micros(u64::try_from(at_micros).unwrap_or(0));
    StageView {
        stage,
        status,
        at: humantime::format_rfc3339_micros(at).to_string(),
        flow_id: None,
        flow_version: None,
        flow_version_url: None,
        target_id: None,
        attempts: None,
        http_status: None,
        latency_ms: None,
        error: None,
        link_action: None,
        record_id: None,
        at_micros,
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::collections::HashMap;

    use intops_events::OutcomeStatus;

    use super::*;

    pub(crate) fn event(id: &str, at: i64) -> IntegrationEvent {
        IntegrationEvent {
            tenant: None,
            event_id: id.into(),
            source_id: "servicenow".into(),
            event_type: "created".into(),
            entity_key: "abc".into(),
            occurred_at: at,
            ingested_at: at,
            correlation_id: None,
            attributes: HashMap::new(),
            payload: "{}".into(),
        }
    }

    pub(crate) fn request(id: &str, at: i64) -> DeliveryRequest {
        DeliveryRequest {
            tenant: None,
            link: None,
            event_id: id.into(),
            flow_id: "f".into(),
            flow_version: "v1".into(),
            target_id: "jira".into(),
            entity_key: "abc".into(),
            method: "POST".into(),
            path: "/".into(),
            headers: HashMap::new(),
            body: "{}".into(),
            created_at: at,
            ingested_at: 0,
        }
    }

    /// A dead letter's view with nothing in particular.
    pub(crate) fn dead_letter_view() -> DeadLetterView {
        DeadLetterView {
            stage: "delivery",
            error_class: "http_4xx".into(),
            error_message: "target answered 400".into(),
            retryable: false,
            attempts: 1,
            flow_id: None,
            flow_version: None,
            flow_version_url: None,
            target_id: None,
            http_status: Some(400),
            response_excerpt: None,
            original: "p.deliveries.crm/0@0".into(),
            replay_count: 0,
            failed_at: String::new(),
        }
    }

    pub(crate) fn delivered(id: &str, at: i64) -> Outcome {
        Outcome {
            tenant: None,
            link_action: None,
            record_id: None,
            event_id: id.into(),
            stage: Stage::Delivery,
            status: OutcomeStatus::Delivered,
            flow_id: Some("f".into()),
            target_id: Some("jira".into()),
            attempts: 1,
            http_status: Some(201),
            latency_ms: Some(12),
            error: None,
            at,
        }
    }

    #[test]
    fn stages_are_ordered_by_time_whatever_the_read_order() {
        let mut l = Lineage::new(10);
        l.on_outcome(&delivered("e1", 3_000));
        l.on_request(&request("e1", 2_000));
        l.on_event(&event("e1", 1_000));
        l.on_request(&request("e1", 2_000)); // duplicate read
        let t = l.get("e1").expect("trace");
        let seen: Vec<_> = t.stages.iter().map(|s| (s.stage, s.status)).collect();
        assert_eq!(
            seen,
            [
                ("ingest", "accepted"),
                ("transform", "routed"),
                ("delivery", "delivered")
            ]
        );
        assert_eq!(t.source_id.as_deref(), Some("servicenow"));
        assert_eq!(t.stages[2].http_status, Some(201));
    }

    #[test]
    fn search_finds_by_entity_key_or_business_key_newest_first() {
        let mut l = Lineage::new(3);
        let mut a = event("a", 1);
        a.payload =
            r#"{"number": "INC0010023", "short_description": "disk full", "priority": 1}"#.into();
        let mut b = event("b", 2);
        b.payload = r#"{"number": "INC0010023"}"#.into();
        l.on_event(&a);
        l.on_event(&b);
        let found: Vec<_> = l
            .search("inc0010023")
            .iter()
            .map(|t| t.event_id.clone())
            .collect();
        assert_eq!(found, ["b", "a"]);
        assert_eq!(l.search("ABC").len(), 2, "entity key");
        assert_eq!(l.search("disk full").len(), 1);
        // Forgotten events leave the index too.
        l.on_event(&event("c", 3));
        l.on_event(&event("d", 4));
        assert_eq!(l.search("INC0010023").len(), 1);
        l.on_event(&event("e", 5));
        assert!(l.search("INC0010023").is_empty());
        assert!(!l.terms.contains_key("inc0010023"));
    }

    fn linked(
        id: &str,
        at: i64,
        status: OutcomeStatus,
        action: LinkAction,
        record_id: Option<&str>,
    ) -> Outcome {
        Outcome {
            status,
            link_action: Some(action),
            record_id: record_id.map(str::to_string),
            flow_id: Some("snow-p1-to-jira".into()),
            ..delivered(id, at)
        }
    }

    #[test]
    fn link_results_show_in_the_lineage_and_the_record_id_finds_the_conversation() {
        let mut l = Lineage::new(10);
        let mut created = event("e1", 1);
        created.entity_key = "sys-1".into();
        let mut updated = event("e2", 2);
        updated.entity_key = "sys-1".into();
        let mut echoed = event("e3", 3);
        echoed.entity_key = "sys-1".into();
        for e in [&created, &updated, &echoed] {
            l.on_event(e);
        }
        let create = linked(
            "e1",
            10,
            OutcomeStatus::Delivered,
            LinkAction::Create,
            Some("OPS-12"),
        );
        l.on_outcome(&create);
        l.on_outcome(&create); // read twice: one stage, one term
        l.on_outcome(&linked(
            "e2",
            20,
            OutcomeStatus::Delivered,
            LinkAction::Update,
            Some("OPS-12"),
        ));
        l.on_outcome(&linked(
            "e3",
            30,
            OutcomeStatus::Echo,
            LinkAction::Echo,
            Some("OPS-12"),
        ));

        let t = l.get("e1").expect("trace");
        let last = t.stages.last().expect("stage");
        assert_eq!(
            (last.status, last.link_action, last.record_id.as_deref()),
            ("delivered", Some("create"), Some("OPS-12"))
        );
        let json = serde_json::to_value(t).expect("json");
        assert_eq!(json["stages"][1]["link_action"], "create");
        assert_eq!(json["stages"][1]["record_id"], "OPS-12");
        assert!(
            json["stages"][0].get("link_action").is_none(),
            "absent when not about a link"
        );
        let echo = l.get("e3").expect("trace").stages.last().expect("stage");
        assert_eq!((echo.status, echo.link_action), ("echo", Some("echo")));

        let found: Vec<_> = l
            .search("ops-12")
            .iter()
            .map(|t| (t.event_id.clone(), t.matched_by("ops-12")))
            .collect();
        assert_eq!(
            found,
            [
                ("e3".to_string(), "record_id"),
                ("e2".to_string(), "record_id"),
                ("e1".to_string(), "record_id")
            ]
        );
        assert_eq!(l.search("SYS-1").len(), 3, "the source's key finds it too");
        assert_eq!(
            l.get("e1").expect("trace").matched_by("sys-1"),
            "entity_key"
        );
        assert_eq!(
            l.terms.get("ops-12").map(HashSet::len),
            Some(3),
            "each event once"
        );

        // Forgotten events take their record id term along.
        let mut small = Lineage::new(1);
        small.on_outcome(&create);
        small.on_event(&event("other", 5));
        assert!(small.search("OPS-12").is_empty());
        assert!(!small.terms.contains_key("ops-12"));
    }

    #[test]
    fn a_write_back_without_a_link_is_unrouted_with_the_reason_no_link() {
        let mut l = Lineage::new(10);
        let mut unlinked = linked("w1", 10, OutcomeStatus::Unrouted, LinkAction::NoLink, None);
        unlinked.flow_id = Some("jira-to-snow".into());
        unlinked.http_status = None;
        l.on_outcome(&unlinked);
        let s = &l.get("w1").expect("trace").stages[0];
        assert_eq!(
            (s.stage, s.status, s.link_action, s.error.as_deref()),
            ("delivery", "unrouted", Some("no_link"), Some("no link"))
        );
        assert_eq!(s.record_id, None);
        // A writer's own reason is kept.
        unlinked.event_id = "w2".into();
        unlinked.error = Some("no link for OPS-99".into());
        l.on_outcome(&unlinked);
        let s = &l.get("w2").expect("trace").stages[0];
        assert_eq!(s.error.as_deref(), Some("no link for OPS-99"));
    }

    #[test]
    fn a_forgotten_event_leaves_its_terms_whatever_the_order_its_records_came_in() {
        // Each event's delivery request is read before the event itself,
        // and every payload shares a term: the order the traces were made
        // in is not the order their terms were indexed in.
        let mut l = Lineage::new(10);
        for i in 0..100 {
            l.on_request(&request(&format!("e{i}"), i));
            if i > 0 {
                let mut e = event(&format!("e{}", i - 1), i - 1);
                e.payload = r#"{"state": "New"}"#.into();
                l.on_event(&e);
            }
        }
        let held = l.terms.get("new").expect("the common term");
        assert_eq!(held.len(), 9, "the nine held events that were read");
        assert!(held.iter().all(|id| l.get(id).is_some()), "{held:?}");
        let found: Vec<_> = l.search("new").iter().map(|t| t.event_id.clone()).collect();
        assert_eq!(
            found.first().map(String::as_str),
            Some("e98"),
            "newest first"
        );
        assert_eq!(found.len(), 9);
    }

    #[test]
    fn events_seen_at_the_same_time_are_found_in_one_order_on_every_call() {
        let mut l = Lineage::new(100);
        for i in 0..20 {
            l.on_event(&event(&format!("e{i:02}"), 7));
        }
        let ids = |l: &Lineage| -> Vec<String> {
            l.search("abc").iter().map(|t| t.event_id.clone()).collect()
        };
        let expected: Vec<String> = (0..20).rev().map(|i| format!("e{i:02}")).collect();
        assert_eq!(
            ids(&l),
            expected,
            "a tie is ordered by event id, newest id first"
        );
        assert_eq!(ids(&l), ids(&l), "the same page on every call");
    }

    #[test]
    fn capacity_forgets_the_oldest() {
        let mut l = Lineage::new(2);
        l.on_event(&event("a", 1));
        l.on_event(&event("b", 2));
        l.on_outcome(&delivered("a", 3)); // a is not re-queued by new stages
        l.on_event(&event("c", 4));
        assert!(l.get("a").is_none());
        assert!(l.get("b").is_some() && l.get("c").is_some());
        assert_eq!(l.len(), 2);
    }
}
