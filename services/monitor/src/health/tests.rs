use intops_events::{IntegrationEvent, LinkAction, Outcome, OutcomeStatus, Stage};

use super::*;

const S: i64 = 1_000_000;

fn flows(slo: &str) -> Flows {
    crate::test_flows::one_flow(slo)
}

fn outcome(status: OutcomeStatus, at: i64) -> Outcome {
    Outcome {
        tenant: None,
        link_action: None,
        record_id: None,
        event_id: "e".into(),
        stage: Stage::Delivery,
        status,
        flow_id: Some("app-to-crm".into()),
        target_id: Some("crm".into()),
        attempts: 2,
        http_status: Some(200),
        latency_ms: Some(120),
        error: None,
        at,
    }
}

#[test]
fn failures_turn_a_flow_failing_and_it_recovers_when_they_age_out() {
    let start = 1_000_000 * S;
    let mut h = Health::new(
        &flows(r#"slo = { success_ratio = 0.9, window = "1m" }"#),
        Duration::from_secs(86_400),
        start,
    );
    assert!(h.evaluate(start).is_empty());
    for i in 0..3 {
        h.on_outcome(&outcome(OutcomeStatus::DeadLettered, start + i * S));
    }
    h.on_outcome(&outcome(OutcomeStatus::Delivered, start + 5 * S));
    let changes = h.evaluate(start + 10 * S);
    assert_eq!(changes.len(), 1);
    assert_eq!(
        (changes[0].from, changes[0].to),
        (Status::Healthy, Status::Failing)
    );
    assert!(
        changes[0].reason.contains("success ratio 0.25 below 0.9"),
        "{}",
        changes[0].reason
    );
    assert!(
        h.evaluate(start + 11 * S).is_empty(),
        "no change, no second report"
    );

    // Two minutes later only deliveries are recent.
    h.on_outcome(&outcome(OutcomeStatus::Delivered, start + 120 * S));
    let changes = h.evaluate(start + 121 * S);
    assert_eq!(changes[0].to, Status::Healthy);
    let view = h.flow("app-to-crm", start + 121 * S).expect("flow");
    assert_eq!(view.window.delivered, 2);
    assert_eq!(view.window.dead_lettered, 3);
    assert_eq!(view.window.retries, 5);
    assert_eq!(view.recent.delivered, 1);
    assert_eq!(view.window.latency_ms.p50, Some(250));
    assert_eq!(view.seconds_since_success, Some(1));
}

#[test]
fn silence_fails_and_lag_degrades() {
    let start = 1_000_000 * S;
    let mut h = Health::new(
        &flows(r#"slo = { max_silence = "1m", max_lag = 10 }"#),
        Duration::from_secs(86_400),
        start,
    );
    h.set_lag("crm", 50);
    h.evaluate(start + S);
    let v = h.flow("app-to-crm", start + S).expect("flow");
    assert_eq!(v.status, Status::Degraded);
    assert!(
        v.reason.contains("consumer lag 50 above 10"),
        "{}",
        v.reason
    );
    h.set_lag("crm", 0);
    h.evaluate(start + 61 * S);
    let v = h.flow("app-to-crm", start + 61 * S).expect("flow");
    assert_eq!(v.status, Status::Failing);
    assert!(
        v.reason.contains("no delivery since the monitor started"),
        "{}",
        v.reason
    );
}

#[test]
fn without_objectives_dead_letters_degrade() {
    let start = 1_000_000 * S;
    let mut h = Health::new(&flows(""), Duration::from_secs(3_600), start);
    h.on_outcome(&outcome(OutcomeStatus::DeadLettered, start));
    h.evaluate(start + S);
    let v = h.flow("app-to-crm", start + S).expect("flow");
    assert_eq!(v.status, Status::Degraded);
    assert_eq!(v.reason, "1 dead letter(s) in 5m");
    // Outside the monitor's window, counts are forgotten.
    h.evaluate(start + 3_700 * S);
    assert_eq!(h.buckets(), 0);
}

#[test]
fn echoes_and_write_backs_without_a_link_are_neither_delivered_nor_failed() {
    let start = 1_000_000 * S;
    let mut h = Health::new(
        &flows(r#"slo = { success_ratio = 0.9, window = "1m", max_silence = "1m" }"#),
        Duration::from_secs(86_400),
        start,
    );
    h.on_outcome(&outcome(OutcomeStatus::Delivered, start));
    for at in [50, 100] {
        h.on_outcome(&Outcome {
            link_action: Some(LinkAction::Echo),
            record_id: Some("OPS-12".into()),
            ..outcome(OutcomeStatus::Echo, start + at * S)
        });
    }
    h.on_outcome(&Outcome {
        link_action: Some(LinkAction::NoLink),
        error: Some("no link".into()),
        http_status: None,
        attempts: 0,
        ..outcome(OutcomeStatus::Unrouted, start + 101 * S)
    });
    // 120 s after the last delivery but 20 s after the last echo: an echo
    // shows the flow answering its events, so it is not silent; the
    // recent window holds no delivered or failed request, so no ratio.
    h.evaluate(start + 120 * S);
    let v = h.flow("app-to-crm", start + 120 * S).expect("flow");
    assert_eq!(v.status, Status::Healthy, "{}", v.reason);
    assert_eq!(
        (
            v.window.delivered,
            v.window.dead_lettered,
            v.window.echoes,
            v.window.no_link
        ),
        (1, 0, 2, 1)
    );
    assert_eq!(v.window.success_ratio, Some(1.0));
    assert_eq!(v.recent.success_ratio, None);
    assert_eq!(v.window.retries, 1, "an echo made no attempt worth a retry");
    assert_eq!(
        h.unrouted(),
        0,
        "a flow routed it: not among the unrouted events"
    );
    assert_eq!(h.target("crm").map(|t| (t.echoes, t.no_link)), Some((2, 1)));
    // Silence after the last echo still counts.
    h.evaluate(start + 161 * S);
    let v = h.flow("app-to-crm", start + 161 * S).expect("flow");
    assert_eq!(v.status, Status::Failing, "{}", v.reason);
    // An event no flow routed is still counted apart.
    h.on_outcome(&Outcome {
        stage: Stage::Transform,
        flow_id: None,
        target_id: None,
        ..outcome(OutcomeStatus::Unrouted, start + 162 * S)
    });
    assert_eq!(h.unrouted(), 1);
}

/// A reload keeps a flow's figures and applies its new objectives; a
/// removed flow goes, a new one starts healthy.
#[test]
fn a_reload_keeps_the_figures_and_applies_the_new_objectives() {
    let start = 1_000_000 * S;
    let mut h = Health::new(&flows(""), Duration::from_secs(86_400), start);
    h.on_outcome(&outcome(OutcomeStatus::Delivered, start + S));
    h.evaluate(start + 2 * S);
    assert_eq!(
        h.flow("app-to-crm", start + 2 * S).expect("flow").status,
        Status::Healthy
    );

    let reloaded = crate::test_flows::one_flow(
        r#"slo = { max_silence = "1m" }

[[flows]]
id = "app-to-crm-2"
source = "app"
target = "crm"
path = "/more"
"#,
    );
    h.reconfigure(&reloaded, start + 3 * S);
    h.evaluate(start + 120 * S);
    let v = h.flow("app-to-crm", start + 120 * S).expect("flow kept");
    assert_eq!(v.status, Status::Failing);
    assert!(
        v.reason.contains("no delivery for"),
        "kept its last delivery: {}",
        v.reason
    );
    assert_eq!(
        h.flow("app-to-crm-2", start + 120 * S)
            .expect("new flow")
            .status,
        Status::Healthy
    );
    h.reconfigure(&flows(""), start + 121 * S);
    assert!(h.flow("app-to-crm-2", start + 121 * S).is_none());
}

fn event(at: i64, payload: serde_json::Value) -> IntegrationEvent {
    IntegrationEvent {
        tenant: None,
        event_id: format!("e{at}"),
        source_id: "app".into(),
        event_type: "updated".into(),
        entity_key: "k".into(),
        occurred_at: at,
        ingested_at: at,
        correlation_id: None,
        attributes: Default::default(),
        payload: payload.to_string(),
    }
}

fn drift_flows() -> Flows {
    crate::test_flows::one_flow(
        r#"map = '{group: .assignment_group, n: .number}'
slo = { drift = { window = "5m", min_events = 10 } }"#,
    )
}

/// A field the mapping reads that every event had and then stops coming
/// degrades the flow with the field, the share and since when; a field
/// that changes type likewise; too few events say nothing.
#[test]
fn a_field_the_flow_reads_going_missing_or_changing_type_degrades_it() {
    let start = 1_000_000 * S; // 13:46:40 UTC
    let mut h = Health::new(&drift_flows(), Duration::from_secs(86_400), start);
    for i in 0..30 {
        h.on_event(&event(
            start + i * S,
            serde_json::json!({"assignment_group": "ops", "number": "INC1"}),
        ));
    }
    h.evaluate(start + 40 * S);
    assert_eq!(
        h.flow("app-to-crm", start + 40 * S).expect("flow").status,
        Status::Healthy
    );

    // Ten minutes later the source renames the field and sends numbers.
    let later = start + 600 * S;
    for i in 0..9 {
        h.on_event(&event(
            later + i * S,
            serde_json::json!({"group": "ops", "number": 1}),
        ));
    }
    h.evaluate(later + 10 * S);
    assert_eq!(
        h.flow("app-to-crm", later + 10 * S).expect("flow").status,
        Status::Healthy,
        "nine events are too few to judge"
    );
    h.on_event(&event(
        later + 9 * S,
        serde_json::json!({"group": "ops", "number": 1}),
    ));
    let changes = h.evaluate(later + 10 * S);
    let v = h.flow("app-to-crm", later + 10 * S).expect("flow");
    assert_eq!(v.status, Status::Degraded);
    assert_eq!(
        v.reason,
        "reads .assignment_group: missing in 100% of events since 13:56; reads .number: number instead of string in 100% of events since 13:56"
    );
    assert_eq!(changes.len(), 1, "an alert goes out");
    let figures = h.field_figures(later + 10 * S);
    assert!(
        figures.contains(&("app-to-crm".into(), "assignment_group".into(), 1.0, true)),
        "{figures:?}"
    );
    assert!(
        figures.contains(&("app-to-crm".into(), "number".into(), 0.0, true)),
        "{figures:?}"
    );
}

/// `slo.drift.enabled = false` turns it off for the flow.
#[test]
fn drift_can_be_turned_off_per_flow() {
    let start = 1_000_000 * S;
    let flows = crate::test_flows::one_flow(
        r#"map = '{group: .assignment_group}'
slo = { drift = { enabled = false, min_events = 1 } }"#,
    );
    let mut h = Health::new(&flows, Duration::from_secs(86_400), start);
    h.on_event(&event(
        start,
        serde_json::json!({"assignment_group": "ops"}),
    ));
    h.on_event(&event(start + 700 * S, serde_json::json!({})));
    h.evaluate(start + 701 * S);
    assert_eq!(
        h.flow("app-to-crm", start + 701 * S).expect("flow").status,
        Status::Healthy
    );
}

/// A reload that changes a flow's drift window starts its field counts
/// afresh (they were counted in buckets of another width); one that keeps
/// it keeps them.
#[test]
fn a_reload_keeps_field_counts_only_where_they_mean_the_same() {
    let start = 1_000_000 * S;
    let mut h = Health::new(&drift_flows(), Duration::from_secs(86_400), start);
    h.on_event(&event(start, serde_json::json!({"number": "INC1"})));
    let missing = |h: &Health| {
        h.field_figures(start + S)
            .into_iter()
            .find(|(_, field, _, _)| field == "assignment_group")
            .map(|(_, _, share, _)| share)
    };
    assert_eq!(missing(&h), Some(1.0));
    h.reconfigure(&drift_flows(), start + S);
    assert_eq!(missing(&h), Some(1.0), "same window: kept");
    let wider = crate::test_flows::one_flow(
        r#"map = '{group: .assignment_group, n: .number}'
slo = { drift = { window = "20m", min_events = 10 } }"#,
    );
    h.reconfigure(&wider, start + S);
    assert_eq!(missing(&h), Some(0.0), "another width: afresh");
    h.on_event(&event(start + S, serde_json::json!({"number": "INC1"})));
    assert_eq!(missing(&h), Some(1.0), "counted in the new buckets");
}
