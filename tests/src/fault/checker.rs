//! The fault suite's one checker: from what the topics and the target hold
//! at the end, is every acknowledged event accounted for, and are the
//! duplicates within what the faults can explain?
//!
//! Pure: the test reads the broker and the target ([`super::collect`]) and
//! hands the records here, so the checker's own failures are unit-tested
//! on synthetic input.

use std::collections::{BTreeMap, HashMap};

use intops_events::{OutcomeStatus, Stage};

/// What should become of an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// Delivered to the target, or dead-lettered (a target that keeps
    /// failing may exhaust the retries; counted, not an error).
    Deliver,
    /// A poison event: dead-lettered, never delivered.
    DeadLetter,
    /// No flow matches: an `unrouted` outcome.
    Unrouted,
}

/// One record of the outcomes topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutcomeSeen {
    /// The event.
    pub event_id: String,
    /// Who wrote it.
    pub stage: Stage,
    /// What it says.
    pub status: OutcomeStatus,
}

/// One record of a dead-letter topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetterSeen {
    /// The event (from the dead letter, or from the events record it
    /// references).
    pub event_id: String,
    /// Transform or delivery.
    pub stage: Stage,
    /// Its error class (`mapping`, `exhausted`, ...).
    pub class: String,
}

/// One request the target received.
#[derive(Debug, Clone, PartialEq)]
pub struct Answered {
    /// Its Idempotency-Key.
    pub key: String,
    /// The target's answer.
    pub status: u16,
    /// Seconds after the load started.
    pub at_secs: f64,
}

/// A fault injected during the run, with what it could repeat.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Fault {
    /// What was done (`kill -9 transform`).
    pub name: String,
    /// Seconds after the load started.
    pub at_secs: f64,
    /// Seconds until the affected part worked again (`None`: not measured).
    pub recovered_secs: Option<f64>,
    /// Records of the events topic that transform had read but possibly
    /// not committed when the fault hit (end offset minus committed offset,
    /// summed over partitions): the most it can process twice.
    pub transform_in_flight: u64,
    /// The same for delivery on the target's deliveries topic.
    pub delivery_in_flight: u64,
}

/// Everything the checker looks at.
#[derive(Debug, Clone, Default)]
pub struct Input {
    /// Every event whose write was acknowledged (ingest's 202 answers, and
    /// the acknowledged sends of the test's own producer), with what should
    /// become of it.
    pub acknowledged: BTreeMap<String, Expect>,
    /// Events sent in requests that got no 202 (ingest killed or the broker
    /// away): each may have been written anyway, then again on retry. The
    /// bound of ingest's duplicates.
    pub ingest_unanswered_events: u64,
    /// The event id of every record of the events topic.
    pub events: Vec<String>,
    /// The event id of every record of the target's deliveries topic.
    pub requests: Vec<String>,
    /// Every record of the outcomes topic.
    pub outcomes: Vec<OutcomeSeen>,
    /// Every record of the dead-letter topics.
    pub dead_letters: Vec<DeadLetterSeen>,
    /// Every request the target received.
    pub target: Vec<Answered>,
    /// The flow id, second half of the Idempotency-Key (`<event>:<flow>`).
    pub flow_id: String,
    /// The faults, in order.
    pub faults: Vec<Fault>,
}

/// Duplicates one stage added, and the most the faults allow.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Duplicates {
    /// Output records beyond one per input record.
    pub added: u64,
    /// What the faults can explain.
    pub bound: u64,
}

/// The figures of one run.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Figures {
    /// Events acknowledged.
    pub acknowledged: usize,
    /// Of them, delivered (the target answered 2xx).
    pub delivered: usize,
    /// Dead-lettered by transform.
    pub dead_lettered_transform: usize,
    /// Dead-lettered by delivery.
    pub dead_lettered_delivery: usize,
    /// Unrouted.
    pub unrouted: usize,
    /// Acknowledged but with no final result.
    pub lost: usize,
    /// Requests the target received, all answers.
    pub target_requests: usize,
    /// Duplicates ingest wrote (events records beyond one per event).
    pub ingest: Duplicates,
    /// Duplicates transform added.
    pub transform: Duplicates,
    /// Duplicates delivery added (2xx answers beyond one per request
    /// record).
    pub delivery: Duplicates,
    /// Events the target accepted more than once, and the extra 2xx answers.
    pub delivered_twice: usize,
    /// Extra 2xx answers in all.
    pub end_to_end_duplicates: u64,
    /// Extra 2xx answers that came after each fault and before the next
    /// (by fault, in order; those before the first fault are not counted).
    pub duplicates_after: Vec<u64>,
    /// The dead letters' error classes and their counts.
    pub dead_letter_classes: BTreeMap<String, usize>,
}

/// The verdict: figures, and every broken promise.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// The figures.
    pub figures: Figures,
    /// The faults, as given.
    pub faults: Vec<Fault>,
    /// Each broken promise, in words.
    pub violations: Vec<String>,
}

impl Report {
    /// Panics listing every violation.
    pub fn assert_holds(&self) {
        assert!(
            self.violations.is_empty(),
            "the fault suite's checker found {} problem(s):\n- {}",
            self.violations.len(),
            self.violations.join("\n- ")
        );
    }
}

fn count<'a>(ids: impl IntoIterator<Item = &'a str>) -> HashMap<&'a str, u64> {
    let mut counts = HashMap::new();
    for id in ids {
        *counts.entry(id).or_insert(0) += 1;
    }
    counts
}

fn first<'a>(ids: impl IntoIterator<Item = &'a String>) -> Vec<&'a str> {
    ids.into_iter().take(3).map(String::as_str).collect()
}

/// Checks `input`.
pub fn check(input: &Input) -> Report {
    let mut violations = Vec::new();
    let n = |m: &HashMap<&str, u64>, id: &str| m.get(id).copied().unwrap_or(0);
    let events = count(input.events.iter().map(String::as_str));
    let requests = count(input.requests.iter().map(String::as_str));
    let unrouted = count(
        input
            .outcomes
            .iter()
            .filter(|o| o.status == OutcomeStatus::Unrouted)
            .map(|o| o.event_id.as_str()),
    );
    let dead = |stage: Stage| {
        count(
            input
                .dead_letters
                .iter()
                .filter(|d| d.stage == stage)
                .map(|d| d.event_id.as_str()),
        )
    };
    let (dl_transform, dl_delivery) = (dead(Stage::Transform), dead(Stage::Delivery));
    let suffix = format!(":{}", input.flow_id);
    let ok: Vec<&Answered> = input
        .target
        .iter()
        .filter(|a| (200..300).contains(&a.status))
        .collect();
    let accepted = count(ok.iter().filter_map(|a| a.key.strip_suffix(&suffix)));
    let delivered_outcomes = count(
        input
            .outcomes
            .iter()
            .filter(|o| o.status == OutcomeStatus::Delivered)
            .map(|o| o.event_id.as_str()),
    );

    let mut f = Figures {
        acknowledged: input.acknowledged.len(),
        target_requests: input.target.len(),
        ..Figures::default()
    };
    let mut lost = Vec::new();
    let mut wrong = Vec::new();
    let mut unseen_keys = Vec::new();
    for (id, expect) in &input.acknowledged {
        let delivered = n(&delivered_outcomes, id) > 0;
        let (t, d, u) = (
            n(&dl_transform, id) > 0,
            n(&dl_delivery, id) > 0,
            n(&unrouted, id) > 0,
        );
        f.delivered += usize::from(delivered);
        f.dead_lettered_transform += usize::from(t);
        f.dead_lettered_delivery += usize::from(d);
        f.unrouted += usize::from(u);
        if !(delivered || t || d || u) {
            lost.push(id);
            continue;
        }
        let fits = match expect {
            Expect::Deliver => (delivered || t || d) && !u,
            Expect::DeadLetter => (t || d) && !delivered && !u,
            Expect::Unrouted => u && !delivered && !t && !d,
        };
        if !fits {
            wrong.push(format!(
                "{id} expected {expect:?}, got delivered={delivered} dead-lettered(transform={t}, delivery={d}) unrouted={u}"
            ));
        }
        if delivered && n(&accepted, id) == 0 {
            unseen_keys.push(id);
        }
    }
    f.lost = lost.len();
    if !lost.is_empty() {
        let not_written: Vec<&String> = lost
            .iter()
            .copied()
            .filter(|id| n(&events, id) == 0)
            .collect();
        let requested = lost.iter().filter(|id| n(&requests, id) > 0).count();
        violations.push(format!(
            "{} acknowledged event(s) lost (no delivery, dead letter or unrouted outcome): {} not on the events topic, {} with no delivery request (held before or in transform), {} with one (held in delivery); first {:?}",
            lost.len(),
            not_written.len(),
            lost.len() - not_written.len() - requested,
            requested,
            first(lost.iter().copied())
        ));
    }
    if !wrong.is_empty() {
        violations.push(format!(
            "{} event(s) ended other than expected: {}",
            wrong.len(),
            wrong.iter().take(3).cloned().collect::<Vec<_>>().join("; ")
        ));
    }
    if !unseen_keys.is_empty() {
        violations.push(format!(
            "{} delivered event(s) whose Idempotency-Key the target never accepted; first {:?}",
            unseen_keys.len(),
            first(unseen_keys.iter().copied())
        ));
    }
    let strangers: Vec<&String> = input
        .outcomes
        .iter()
        .map(|o| &o.event_id)
        .chain(input.dead_letters.iter().map(|d| &d.event_id))
        .filter(|id| !input.acknowledged.contains_key(*id))
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    if !strangers.is_empty() {
        violations.push(format!(
            "{} event(s) have results but were never acknowledged (written behind the source's back); first {:?}",
            strangers.len(),
            first(strangers)
        ));
    }

    // Duplicates, stage by stage: each stage's outputs beyond one per input
    // record, against what its faults had in flight.
    let mut ingest_added = 0;
    let mut transform_added = 0;
    let mut delivery_added = 0;
    for id in input.acknowledged.keys() {
        let written = n(&events, id);
        ingest_added += written.saturating_sub(1);
        let transformed = n(&requests, id) + n(&dl_transform, id) + n(&unrouted, id);
        transform_added += transformed.saturating_sub(written);
        let answered = n(&accepted, id) + n(&dl_delivery, id);
        delivery_added += answered.saturating_sub(n(&requests, id));
        let twice = n(&accepted, id).saturating_sub(1);
        f.end_to_end_duplicates += twice;
        f.delivered_twice += usize::from(twice > 0);
    }
    f.ingest = Duplicates {
        added: ingest_added,
        bound: input.ingest_unanswered_events,
    };
    f.transform = Duplicates {
        added: transform_added,
        bound: input.faults.iter().map(|x| x.transform_in_flight).sum(),
    };
    f.delivery = Duplicates {
        added: delivery_added,
        bound: input.faults.iter().map(|x| x.delivery_in_flight).sum(),
    };
    for (stage, d) in [
        ("ingest", f.ingest),
        ("transform", f.transform),
        ("delivery", f.delivery),
    ] {
        if d.added > d.bound {
            violations.push(format!(
                "{stage} added {} duplicate(s), more than the {} record(s) its faults had in flight",
                d.added, d.bound
            ));
        }
    }
    f.duplicates_after = after_each_fault(&ok, &input.faults);
    for d in &input.dead_letters {
        *f.dead_letter_classes
            .entry(format!("{}/{}", d.stage, d.class))
            .or_insert(0) += 1;
    }
    Report {
        figures: f,
        faults: input.faults.clone(),
        violations,
    }
}

/// Each 2xx answer for a key already accepted, counted against the last
/// fault before it.
fn after_each_fault(ok: &[&Answered], faults: &[Fault]) -> Vec<u64> {
    let mut by_time: Vec<&&Answered> = ok.iter().collect();
    by_time.sort_by(|a, b| a.at_secs.total_cmp(&b.at_secs));
    let mut seen = std::collections::HashSet::new();
    let mut after = vec![0; faults.len()];
    for a in by_time {
        if !seen.insert(a.key.as_str())
            && let Some(i) = faults.iter().rposition(|f| f.at_secs <= a.at_secs)
        {
            after[i] += 1;
        }
    }
    after
}

#[cfg(test)]
#[path = "checker_tests.rs"]
mod tests;
