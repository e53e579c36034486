use intops_events::{DeliveryRequest, IntegrationEvent, Outcome, OutcomeStatus, Stage};

use super::*;
use crate::test_flows::one_flow;

/// 2025-12-01T00:00:00Z.
const H: i64 = 1_764_547_200_000_000;
const FLOW: &str = "app-to-crm";

fn outcome(status: OutcomeStatus, stage: Stage, at: i64, latency_ms: Option<i64>) -> Outcome {
    Outcome {
        event_id: "e".into(),
        stage,
        status,
        flow_id: Some(FLOW.into()),
        target_id: Some("crm".into()),
        attempts: 1,
        http_status: None,
        latency_ms,
        error: None,
        at,
        link_action: None,
        record_id: None,
        tenant: Some("acme".into()),
    }
}

fn request(at: i64) -> DeliveryRequest {
    DeliveryRequest {
        event_id: "e".into(),
        flow_id: FLOW.into(),
        flow_version: "v".into(),
        target_id: "crm".into(),
        entity_key: "k".into(),
        method: "POST".into(),
        path: "/records".into(),
        headers: Default::default(),
        body: "{}".into(),
        created_at: at,
        ingested_at: at,
        link: None,
        tenant: Some("acme".into()),
    }
}

fn event(at: i64) -> IntegrationEvent {
    IntegrationEvent {
        event_id: "e".into(),
        source_id: "app".into(),
        event_type: "created".into(),
        entity_key: "k".into(),
        occurred_at: at,
        ingested_at: at,
        correlation_id: None,
        attributes: Default::default(),
        payload: "{}".into(),
        tenant: Some("acme".into()),
    }
}

fn find<'a>(records: &'a [HourlyRollup], scope: &str, hour: i64) -> &'a HourlyRollup {
    records
        .iter()
        .find(|r| r.scope == scope && r.hour == hour)
        .unwrap_or_else(|| panic!("{scope} rollup of hour {hour}"))
}

#[test]
fn records_are_counted_in_their_hour_and_replays_apart() {
    let mut r = Rollups::new(&one_flow(""));
    r.on_event(&event(H + 1), false);
    r.on_event(&event(H + 2), true);
    r.on_request(&request(H + 10), false);
    r.on_request(&request(H + 11), false);
    r.on_request(&request(H + 12), true);
    r.on_outcome(&outcome(
        OutcomeStatus::Delivered,
        Stage::Delivery,
        H + 20,
        Some(120),
    ));
    r.on_outcome(&outcome(
        OutcomeStatus::DeadLettered,
        Stage::Delivery,
        H + 21,
        None,
    ));
    r.on_outcome(&outcome(
        OutcomeStatus::DeadLettered,
        Stage::Transform,
        H + 22,
        None,
    ));
    r.on_outcome(&outcome(
        OutcomeStatus::Replayed,
        Stage::Replay,
        H + 23,
        None,
    ));
    r.on_outcome(&outcome(OutcomeStatus::Echo, Stage::Delivery, H + 24, None));
    r.on_outcome(&outcome(
        OutcomeStatus::Delivered,
        Stage::Delivery,
        H + HOUR_MICROS,
        Some(40),
    ));
    let out = r.take_dirty(H + 2 * HOUR_MICROS);
    assert_eq!(out.len(), 3, "{out:?}");
    let source = find(&out, "source", H);
    assert_eq!((source.id.as_str(), source.received), ("app", 1));
    let first = find(&out, "flow", H);
    assert_eq!(first.tenant.as_deref(), Some("acme"));
    assert_eq!(
        (
            first.received,
            first.delivered,
            first.dead_lettered,
            first.replayed
        ),
        (3, 1, 2, 1)
    );
    assert_eq!(first.latency_counts[2], 1, "120 ms is in the 250 ms bucket");
    let second = find(&out, "flow", H + HOUR_MICROS);
    assert_eq!((second.received, second.delivered), (0, 1));
    assert_eq!(second.latency_counts[0], 1);
    assert!(r.take_dirty(H + 2 * HOUR_MICROS).is_empty(), "written once");
}

#[test]
fn counts_never_fall_below_what_the_topic_held() {
    let mut r = Rollups::new(&one_flow(""));
    let mut kept = HourlyRollup {
        scope: "flow".into(),
        id: FLOW.into(),
        tenant: Some("acme".into()),
        hour: H,
        received: 5,
        delivered: 4,
        dead_lettered: 0,
        replayed: 0,
        latency_bounds_ms: LATENCY_BOUNDS_MS.to_vec(),
        latency_counts: vec![0; LATENCY_BOUNDS_MS.len()],
        healthy_ms: 60_000,
        degraded_ms: 0,
        failing_ms: 0,
        success_objective: None,
        latency_objective_ms: None,
        written_at: H,
    };
    kept.latency_counts[1] = 4;
    r.seed([kept], H + HOUR_MICROS);
    // The first records of the hour are gone; two are still there.
    r.on_request(&request(H + 5), false);
    r.on_outcome(&outcome(
        OutcomeStatus::DeadLettered,
        Stage::Delivery,
        H + 6,
        None,
    ));
    let out = r.take_dirty(H + HOUR_MICROS);
    let flow = find(&out, "flow", H);
    assert_eq!(
        (flow.received, flow.delivered, flow.dead_lettered),
        (5, 4, 1)
    );
    assert_eq!(flow.latency_counts[1], 4);
    assert_eq!(flow.healthy_ms, 60_000);
}

#[test]
fn time_in_each_state_is_added_with_the_objectives() {
    let flows = one_flow("slo = { success_ratio = 0.99, latency_p95 = \"30s\" }");
    let mut r = Rollups::new(&flows);
    let states = |s: Status| [(FLOW.to_string(), s)];
    r.observe(states(Status::Healthy), H);
    r.observe(states(Status::Healthy), H + 1_000_000);
    r.observe(states(Status::Failing), H + 1_500_000);
    // A stall longer than a step is not counted.
    r.observe(states(Status::Degraded), H + 60_000_000);
    r.observe(states(Status::Degraded), H + 62_000_000);
    let out = r.take_dirty(H + 62_000_000);
    let flow = find(&out, "flow", H);
    assert_eq!(
        (flow.healthy_ms, flow.degraded_ms, flow.failing_ms),
        (1_000, 2_000, 500)
    );
    assert_eq!(flow.success_objective, Some(0.99));
    assert_eq!(flow.latency_objective_ms, Some(30_000));
    assert_eq!(flow.tenant, None, "the flow's own tenant");
}

#[test]
fn written_hours_past_the_event_retention_are_forgotten() {
    let mut r = Rollups::new(&one_flow(""));
    r.on_request(&request(H), false);
    let written = r.take_dirty(H);
    assert_eq!(written.len(), 1);
    r.unwritten(&written);
    assert_eq!(r.take_dirty(H).len(), 1, "a failed write is retried");
    assert!(r.take_dirty(H + KEEP_MICROS + HOUR_MICROS).is_empty());
    assert!(r.entries.is_empty());
}
