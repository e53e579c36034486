//! Handler tests: the handler over an in-memory publisher
//! ([`intops_kafka::testing::MemoryPublisher`]), no broker, no registry.

use std::collections::HashMap;
use std::sync::Arc;

use arc_swap::ArcSwap;
use intops_events::{DeliveryRequest, IntegrationEvent, Outcome, OutcomeStatus, RecordKind};
use intops_kafka::testing::{MemoryPublisher, message, offline_codec};
use intops_kafka::{Failure, Handled, KafkaError, ProcessError};
use intops_runtime::CancellationToken;

use super::Handler;

/// Three flows of source `app`: two that deliver, one whose mapping fails
/// when `.fail` is set; a fourth for `.kind == "other"` only.
const FLOWS: &str = r#"
[[sources]]
id = "app"
kind = "webhook"
auth = "none"
entity_key = ".id"

[[targets]]
id = "crm"
base_url = "http://crm.invalid"

[[targets]]
id = "audit"
base_url = "http://audit.invalid"

[[targets]]
id = "erp"
base_url = "http://erp.invalid"

[[flows]]
id = "app-to-crm"
source = "app"
when = '.kind == "ticket"'
target = "crm"
path = "/records"
map = '{id: .id}'

[[flows]]
id = "app-to-audit"
source = "app"
when = '.kind == "ticket"'
target = "audit"
path = "/log"

[[flows]]
id = "app-to-erp"
source = "app"
when = '.kind == "ticket"'
target = "erp"
path = "/orders"
map = 'if .fail then error("no order for " + .id) else {id: .id} end'
"#;

fn handler() -> (Handler<MemoryPublisher>, MemoryPublisher) {
    let flows = intops_flows::load_str(FLOWS).expect("flows");
    let publisher = MemoryPublisher::new("t");
    let handler = Handler::with_publisher(
        Arc::new(ArcSwap::from_pointee(flows)),
        publisher.clone(),
        offline_codec().expect("codec"),
        CancellationToken::new(),
    );
    (handler, publisher)
}

fn event(payload: &str) -> IntegrationEvent {
    IntegrationEvent {
        tenant: None,
        event_id: "e1".into(),
        source_id: "app".into(),
        event_type: "created".into(),
        entity_key: "k1".into(),
        occurred_at: 1,
        ingested_at: 2,
        correlation_id: None,
        attributes: HashMap::new(),
        payload: payload.into(),
    }
}

/// The dead letters of a [`Handled::DeadLetters`], after awaiting its
/// outcomes' acknowledgement.
async fn dead_letters(handled: Handled) -> Vec<Failure> {
    let Handled::DeadLetters { failures, then } = handled else {
        panic!("expected dead letters, got {handled:?}")
    };
    let then = then.expect("outcomes to acknowledge");
    assert!(then.await.expect("outcomes written"), "not interrupted");
    failures
}

/// One flow's mapping fails: the others' requests are published, the
/// failing flow becomes a dead letter with its class and ids, and its
/// outcome is written only once the loop awaits `then` (after the dead
/// letter).
#[tokio::test]
async fn fan_out_with_one_failing_flow() {
    let (handler, publisher) = handler();
    let handled = handler
        .process(event(r#"{"id":"k1","kind":"ticket","fail":true}"#))
        .await
        .expect("handled");

    let requests: Vec<(String, DeliveryRequest)> = publisher
        .published()
        .iter()
        .map(|p| {
            assert_eq!(p.kind, RecordKind::DeliveryRequest);
            assert_eq!(p.key_text(), "app:k1", "the event's key");
            (
                p.topic.clone(),
                p.record::<DeliveryRequest>().expect("request").clone(),
            )
        })
        .collect();
    let mut routed: Vec<(&str, &str)> = requests
        .iter()
        .map(|(topic, r)| (topic.as_str(), r.flow_id.as_str()))
        .collect();
    routed.sort_unstable();
    assert_eq!(
        routed,
        [
            ("t.deliveries.audit", "app-to-audit"),
            ("t.deliveries.crm", "app-to-crm")
        ],
        "the good flows' requests, nothing for the failing one, no outcome yet"
    );

    let failures = dead_letters(handled).await;
    assert_eq!(failures.len(), 1);
    let f = &failures[0];
    assert_eq!(f.class, "mapping");
    assert!(f.message.contains("no order for k1"), "{}", f.message);
    assert_eq!(f.flow_id.as_deref(), Some("app-to-erp"));
    assert_eq!(f.target_id.as_deref(), Some("erp"));
    assert_eq!(f.event_id.as_deref(), Some("e1"));
    assert!(f.flow_version.is_some());

    let outcomes: Vec<Outcome> = publisher.records("t.outcomes");
    assert_eq!(outcomes.len(), 1);
    assert_eq!(outcomes[0].status, OutcomeStatus::DeadLettered);
    assert_eq!(outcomes[0].flow_id.as_deref(), Some("app-to-erp"));
    assert!(
        outcomes[0]
            .error
            .as_deref()
            .is_some_and(|e| e.contains("no order for k1"))
    );
}

/// No flow matches: one `unrouted` outcome under the event's key, and
/// nothing else.
#[tokio::test]
async fn an_unrouted_event_gets_an_unrouted_outcome_and_nothing_else() {
    let (handler, publisher) = handler();
    let handled = handler
        .process(event(r#"{"id":"k1","kind":"other"}"#))
        .await
        .expect("handled");
    assert!(matches!(handled, Handled::Done), "{handled:?}");
    let published = publisher.published();
    assert_eq!(published.len(), 1, "{published:?}");
    assert_eq!(published[0].topic, "t.outcomes");
    assert_eq!(published[0].kind, RecordKind::Outcome);
    assert_eq!(published[0].key_text(), "app:k1");
    let outcome = published[0].record::<Outcome>().expect("outcome");
    assert_eq!(outcome.status, OutcomeStatus::Unrouted);
    assert_eq!(
        (outcome.flow_id.as_deref(), outcome.event_id.as_str()),
        (None, "e1")
    );
}

/// A record that is not Confluent-framed Avro is poison (class `decode`),
/// without the registry and without publishing anything.
#[tokio::test]
async fn an_undecodable_record_is_poison() {
    let (handler, publisher) = handler();
    let result = handler
        .handle(message("t.events", b"app:k1", br#"{"id":"k1"}"#))
        .await;
    let Err(ProcessError::Poison(f)) = result else {
        panic!("expected poison, got {result:?}")
    };
    assert_eq!(f.class, "decode");
    assert!(publisher.published().is_empty());
}

/// A payload nested deeper than the limit: one dead letter without a
/// flow (`payload_too_deep`) and its outcome, no delivery request.
#[tokio::test]
async fn a_payload_too_deep_is_dead_lettered_without_a_flow() {
    let (handler, publisher) = handler();
    let payload = format!(
        r#"{{"id":"k1","kind":"ticket","x":{}{}}}"#,
        "[".repeat(200),
        "]".repeat(200)
    );
    let handled = handler.process(event(&payload)).await.expect("handled");
    let failures = dead_letters(handled).await;
    assert_eq!(failures.len(), 1);
    assert_eq!(failures[0].class, "payload_too_deep");
    assert_eq!(
        (
            failures[0].flow_id.as_deref(),
            failures[0].target_id.as_deref()
        ),
        (None, None)
    );
    let published = publisher.published();
    assert_eq!(published.len(), 1, "only the outcome: {published:?}");
    let outcome = published[0].record::<Outcome>().expect("outcome");
    assert_eq!(
        (outcome.status, outcome.flow_id.as_deref()),
        (OutcomeStatus::DeadLettered, None)
    );
}

/// A request the broker refuses for good (too large) is that flow's dead
/// letter (`record_rejected`); the other flows are delivered.
#[tokio::test]
async fn a_refused_request_is_its_flows_dead_letter_only() {
    let (handler, publisher) = handler();
    publisher.fail("t.deliveries.crm", 1, KafkaError::Rejected);
    let handled = handler
        .process(event(r#"{"id":"k1","kind":"ticket","fail":false}"#))
        .await
        .expect("handled");
    let requests: Vec<DeliveryRequest> = publisher
        .published()
        .iter()
        .filter_map(|p| p.record::<DeliveryRequest>().cloned())
        .collect();
    let mut flows: Vec<&str> = requests.iter().map(|r| r.flow_id.as_str()).collect();
    flows.sort_unstable();
    assert_eq!(flows, ["app-to-audit", "app-to-erp"]);
    let failures = dead_letters(handled).await;
    assert_eq!(failures.len(), 1);
    assert_eq!(failures[0].class, "record_rejected");
    assert_eq!(failures[0].flow_id.as_deref(), Some("app-to-crm"));
}

/// A request the broker cannot take now (away) fails the whole record
/// retryably: the loop handles it again, nothing is dead-lettered.
#[tokio::test]
async fn a_broker_away_makes_the_record_retryable() {
    let (handler, publisher) = handler();
    publisher.fail("t.deliveries.audit", 1, KafkaError::Unavailable);
    let result = handler
        .process(event(r#"{"id":"k1","kind":"ticket","fail":false}"#))
        .await;
    assert!(
        matches!(result, Err(ProcessError::Retryable(_))),
        "{result:?}"
    );
}

/// The outcome of a dead letter is retried while the broker is away (one
/// backoff, at most 200 ms), and written once.
#[tokio::test]
async fn outcomes_are_retried_while_the_broker_is_away() {
    let (handler, publisher) = handler();
    publisher.fail("t.outcomes", 1, KafkaError::Unavailable);
    let handled = handler
        .process(event(r#"{"id":"k1","kind":"ticket","fail":true}"#))
        .await
        .expect("handled");
    let failures = dead_letters(handled).await;
    assert_eq!(failures.len(), 1);
    let outcomes: Vec<Outcome> = publisher.records("t.outcomes");
    assert_eq!(outcomes.len(), 1);
}
