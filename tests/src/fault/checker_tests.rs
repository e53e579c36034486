//! The checker on synthetic runs: it must fail when something is lost,
//! count duplicates, and hold the duplicates to the faults' bound.

use super::*;

const FLOW: &str = "shop-to-crm";

/// A clean run: `a` delivered, `b` dead-lettered by transform, `c`
/// unrouted, each written, routed and answered once.
fn clean() -> Input {
    let ids = ["a", "b", "c"];
    Input {
        acknowledged: BTreeMap::from([
            ("a".to_string(), Expect::Deliver),
            ("b".to_string(), Expect::DeadLetter),
            ("c".to_string(), Expect::Unrouted),
        ]),
        events: ids.iter().map(|s| s.to_string()).collect(),
        requests: vec!["a".into()],
        outcomes: vec![
            outcome("a", Stage::Delivery, OutcomeStatus::Delivered),
            outcome("b", Stage::Transform, OutcomeStatus::DeadLettered),
            outcome("c", Stage::Transform, OutcomeStatus::Unrouted),
        ],
        dead_letters: vec![DeadLetterSeen {
            event_id: "b".into(),
            stage: Stage::Transform,
            class: "mapping".into(),
        }],
        target: vec![answered("a", 201, 1.0)],
        flow_id: FLOW.into(),
        ..Input::default()
    }
}

fn answered(id: &str, status: u16, at_secs: f64) -> Answered {
    Answered {
        key: format!("{id}:{FLOW}"),
        status,
        at_secs,
    }
}

fn outcome(id: &str, stage: Stage, status: OutcomeStatus) -> OutcomeSeen {
    OutcomeSeen {
        event_id: id.into(),
        stage,
        status,
    }
}

fn kill(transform: u64, delivery: u64, at_secs: f64) -> Fault {
    Fault {
        name: "kill -9".into(),
        at_secs,
        transform_in_flight: transform,
        delivery_in_flight: delivery,
        ..Fault::default()
    }
}

#[test]
fn a_clean_run_holds() {
    let report = check(&clean());
    assert!(report.violations.is_empty(), "{:?}", report.violations);
    let f = &report.figures;
    assert_eq!(
        (
            f.acknowledged,
            f.delivered,
            f.dead_lettered_transform,
            f.unrouted
        ),
        (3, 1, 1, 1)
    );
    assert_eq!(f.end_to_end_duplicates, 0);
    report.assert_holds();
}

#[test]
fn a_lost_event_is_detected() {
    let mut input = clean();
    input
        .acknowledged
        .insert("lost".to_string(), Expect::Deliver);
    let report = check(&input);
    assert_eq!(report.figures.lost, 1);
    assert!(
        report.violations[0].contains("1 acknowledged event(s) lost")
            && report.violations[0].contains("1 not on the events topic, 0 with no"),
        "{:?}",
        report.violations
    );
}

#[test]
#[should_panic(expected = "lost")]
fn a_lost_event_fails_the_assertion() {
    let mut input = clean();
    input.events.push("d".into());
    input.acknowledged.insert("d".to_string(), Expect::Deliver);
    check(&input).assert_holds();
}

#[test]
fn a_delivered_event_the_target_never_accepted_is_detected() {
    let mut input = clean();
    input.target = vec![answered("a", 500, 1.0)];
    let report = check(&input);
    assert!(
        report
            .violations
            .iter()
            .any(|v| v.contains("Idempotency-Key the target never accepted")),
        "{:?}",
        report.violations
    );
}

#[test]
fn a_poison_event_that_was_delivered_is_detected() {
    let mut input = clean();
    input.acknowledged.insert("a".into(), Expect::DeadLetter);
    let report = check(&input);
    assert!(
        report
            .violations
            .iter()
            .any(|v| v.contains("a expected DeadLetter")),
        "{:?}",
        report.violations
    );
}

#[test]
fn a_result_for_an_event_never_acknowledged_is_detected() {
    let mut input = clean();
    input
        .outcomes
        .push(outcome("x", Stage::Delivery, OutcomeStatus::Delivered));
    let report = check(&input);
    assert!(
        report
            .violations
            .iter()
            .any(|v| v.contains("never acknowledged")),
        "{:?}",
        report.violations
    );
}

#[test]
fn duplicates_are_counted_per_stage_and_within_the_bound_pass() {
    let mut input = clean();
    // transform wrote `a`'s request twice; delivery sent both, and one of
    // them twice more.
    input.requests.push("a".into());
    input.target.extend([
        answered("a", 201, 2.5),
        answered("a", 503, 3.0),
        answered("a", 201, 3.5),
    ]);
    // ingest wrote `c` twice (an unanswered request, retried).
    input.events.push("c".into());
    input
        .outcomes
        .push(outcome("c", Stage::Transform, OutcomeStatus::Unrouted));
    input.ingest_unanswered_events = 4;
    input.faults = vec![kill(1, 0, 2.0), kill(0, 1, 3.2)];
    let report = check(&input);
    let f = &report.figures;
    // One extra 2xx after each fault.
    assert_eq!(f.duplicates_after, vec![1, 1]);
    assert_eq!(f.ingest, Duplicates { added: 1, bound: 4 });
    assert_eq!(f.transform, Duplicates { added: 1, bound: 1 });
    assert_eq!(f.delivery, Duplicates { added: 1, bound: 1 });
    assert_eq!((f.delivered_twice, f.end_to_end_duplicates), (1, 2));
    assert!(report.violations.is_empty(), "{:?}", report.violations);
}

#[test]
fn duplicates_beyond_what_was_in_flight_fail() {
    let mut input = clean();
    input.requests.extend(["a".into(), "a".into()]);
    input.target.push(answered("a", 201, 2.0));
    input.faults = vec![kill(1, 0, 1.5)];
    let report = check(&input);
    assert_eq!(report.figures.transform, Duplicates { added: 2, bound: 1 });
    assert_eq!(report.figures.delivery, Duplicates { added: 0, bound: 0 });
    assert!(
        report
            .violations
            .iter()
            .any(|v| v.starts_with("transform added 2 duplicate(s), more than the 1")),
        "{:?}",
        report.violations
    );
}

#[test]
fn a_duplicate_event_from_ingest_without_an_unanswered_request_fails() {
    let mut input = clean();
    input.events.push("a".into());
    input.requests.push("a".into());
    input.target.push(answered("a", 201, 2.0));
    let report = check(&input);
    assert_eq!(report.figures.ingest, Duplicates { added: 1, bound: 0 });
    // transform and delivery added nothing: one output per input record.
    assert_eq!(report.figures.transform.added, 0);
    assert_eq!(report.figures.delivery.added, 0);
    assert!(
        report
            .violations
            .iter()
            .any(|v| v.starts_with("ingest added 1")),
        "{:?}",
        report.violations
    );
}
