//! Handler tests: one request through the handler against an in-process
//! HTTP target on 127.0.0.1, its outcome published to an in-memory
//! publisher ([`intops_kafka::testing::MemoryPublisher`]); no broker, no
//! registry. The policy's every branch is unit tested in `policy/tests.rs`.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State as Shared;
use axum::http::{HeaderMap, StatusCode};
use intops_events::{DeliveryRequest, Outcome, OutcomeStatus, RecordKind};
use intops_kafka::testing::{MemoryPublisher, Published, message, offline_codec};
use intops_kafka::{DeadLetterCap, Failure, Handled, ProcessError};
use intops_runtime::{CancellationToken, Readiness};
use tokio::sync::watch;

use super::{Handler, TargetRuntime};
use crate::gate::State;

/// Longest wait for the target to see a request (never reached when the
/// code works).
const DEADLINE: Duration = Duration::from_secs(20);

/// What the target answers: `script` first, then `then`.
#[derive(Debug, Default)]
struct Answers {
    script: VecDeque<u16>,
    then: u16,
    idempotency_keys: Vec<String>,
}

/// An HTTP target on a random local port answering as scripted.
struct Target {
    base_url: String,
    answers: Arc<Mutex<Answers>>,
    seen: watch::Receiver<usize>,
}

#[derive(Clone)]
struct TargetState {
    answers: Arc<Mutex<Answers>>,
    seen: Arc<watch::Sender<usize>>,
}

async fn answer(Shared(state): Shared<TargetState>, headers: HeaderMap) -> StatusCode {
    let status = {
        let mut answers = state.answers.lock().expect("answers");
        let key = headers
            .get("idempotency-key")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        answers.idempotency_keys.push(key);
        let then = answers.then;
        answers.script.pop_front().unwrap_or(then)
    };
    state.seen.send_modify(|n| *n += 1);
    StatusCode::from_u16(status).expect("status")
}

impl Target {
    async fn start(script: &[u16], then: u16) -> Self {
        let answers = Arc::new(Mutex::new(Answers {
            script: script.iter().copied().collect(),
            then,
            idempotency_keys: Vec::new(),
        }));
        let (seen_tx, seen) = watch::channel(0);
        let app = axum::Router::new()
            .fallback(answer)
            .with_state(TargetState {
                answers: answers.clone(),
                seen: Arc::new(seen_tx),
            });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self {
            base_url: format!("http://{addr}"),
            answers,
            seen,
        }
    }

    fn answer_from_now(&self, status: u16) {
        self.answers.lock().expect("answers").then = status;
    }

    fn requests(&self) -> usize {
        *self.seen.borrow()
    }

    fn idempotency_keys(&self) -> Vec<String> {
        self.answers
            .lock()
            .expect("answers")
            .idempotency_keys
            .clone()
    }

    /// Waits (event-driven, up to [`DEADLINE`]) until `n` requests came.
    async fn wait_requests(&self, n: usize) {
        let mut seen = self.seen.clone();
        tokio::time::timeout(DEADLINE, seen.wait_for(|s| *s >= n))
            .await
            .expect("requests in time")
            .expect("target running");
    }
}

/// The handler of target `crm` at `target`, with `settings` in its table.
fn handler(target: &Target, settings: &str) -> (Handler<MemoryPublisher>, MemoryPublisher) {
    let flows = intops_flows::load_str(&format!(
        r#"
[[sources]]
id = "app"
kind = "webhook"
auth = "none"
entity_key = ".id"

[[targets]]
id = "crm"
base_url = "{}"
{settings}

[[flows]]
id = "app-to-crm"
source = "app"
target = "crm"
path = "/records"
"#,
        target.base_url
    ))
    .expect("flows");
    let runtime = TargetRuntime::new(
        &flows,
        "crm",
        &Readiness::default(),
        Arc::new(DeadLetterCap::disabled("delivery")),
        None,
    )
    .expect("target");
    let publisher = MemoryPublisher::new("t");
    let handler = Handler::with_publisher(
        Arc::new(runtime),
        publisher.clone(),
        offline_codec().expect("codec"),
        Arc::new(crate::links::Links::offline()),
        CancellationToken::new(),
    );
    (handler, publisher)
}

fn request() -> DeliveryRequest {
    DeliveryRequest {
        tenant: None,
        link: None,
        event_id: "e1".into(),
        flow_id: "app-to-crm".into(),
        flow_version: "v1".into(),
        target_id: "crm".into(),
        entity_key: "k1".into(),
        method: "POST".into(),
        path: "/records".into(),
        headers: HashMap::new(),
        body: r#"{"id":"k1"}"#.into(),
        created_at: 1,
        ingested_at: 0,
    }
}

/// The handler's result once its outcome is acknowledged: the dead
/// letters (none when delivered) and the one outcome published.
async fn finish(handled: Handled, publisher: &MemoryPublisher) -> (Vec<Failure>, Outcome) {
    assert!(
        publisher.published().is_empty(),
        "the outcome waits for the loop (after any dead letter)"
    );
    let (failures, then) = match handled {
        Handled::Acknowledging(then) => (Vec::new(), then),
        Handled::DeadLetters {
            failures,
            then: Some(then),
        } => (failures, then),
        other => panic!("unexpected {other:?}"),
    };
    assert!(then.await.expect("outcome written"), "not interrupted");
    let published: Vec<Published> = publisher.published();
    assert_eq!(published.len(), 1, "one outcome: {published:?}");
    let p = &published[0];
    assert_eq!(
        (p.topic.as_str(), p.kind),
        ("t.outcomes", RecordKind::Outcome)
    );
    assert_eq!(p.key_text(), "app:k1", "the record's key");
    (failures, p.record::<Outcome>().expect("outcome").clone())
}

/// A permanent 4xx: one attempt, a dead letter with its class, status and
/// ids, and a `dead_lettered` outcome saying so.
#[tokio::test]
async fn a_permanent_4xx_is_dead_lettered_with_its_outcome() {
    let target = Target::start(&[], 422).await;
    let (handler, publisher) = handler(&target, "");
    let handled = handler
        .process(request(), b"app:k1")
        .await
        .expect("handled");
    let (failures, outcome) = finish(handled, &publisher).await;

    assert_eq!(target.requests(), 1, "a permanent answer is not retried");
    assert_eq!(failures.len(), 1);
    let f = &failures[0];
    assert_eq!(
        (f.class.as_str(), f.http_status, f.attempts),
        ("http_4xx", Some(422), 1)
    );
    assert!(!f.retryable);
    assert_eq!(f.event_id.as_deref(), Some("e1"));
    assert_eq!(f.flow_id.as_deref(), Some("app-to-crm"));
    assert_eq!(f.flow_version.as_deref(), Some("v1"));
    assert_eq!(f.target_id.as_deref(), Some("crm"));

    assert_eq!(outcome.status, OutcomeStatus::DeadLettered);
    assert_eq!((outcome.http_status, outcome.attempts), (Some(422), 1));
    assert_eq!(outcome.flow_id.as_deref(), Some("app-to-crm"));
    assert!(outcome.error.is_some());
}

/// Retryable answers are retried (same Idempotency-Key) until the target
/// accepts: a `delivered` outcome counting every attempt, no dead letter.
#[tokio::test]
async fn a_retryable_answer_is_retried_until_delivered() {
    let target = Target::start(&[503, 503], 201).await;
    let settings = r#"retry = { max_attempts = 5, initial_backoff = "1ms", max_backoff = "2ms" }"#;
    let (handler, publisher) = handler(&target, settings);
    let handled = handler
        .process(request(), b"app:k1")
        .await
        .expect("handled");
    let (failures, outcome) = finish(handled, &publisher).await;

    assert!(failures.is_empty(), "{failures:?}");
    assert_eq!(outcome.status, OutcomeStatus::Delivered);
    assert_eq!((outcome.http_status, outcome.attempts), (Some(201), 3));
    let keys = target.idempotency_keys();
    assert_eq!(keys.len(), 3);
    assert!(
        keys.iter().all(|k| !k.is_empty() && *k == keys[0]),
        "{keys:?}"
    );
}

/// A pause status (401) pauses the target without consuming attempts; the
/// record probes it until the target answers otherwise, which resumes it.
#[tokio::test]
async fn a_pause_status_pauses_the_target_until_a_probe_succeeds() {
    let target = Target::start(&[], 401).await;
    let settings = r#"probe_interval = "10ms"
max_pause = "1h""#;
    let (handler, publisher) = handler(&target, settings);
    let gate = handler.target.clone();
    let task = tokio::spawn(async move { handler.process(request(), b"app:k1").await });

    // The first answer and a probe: paused, nothing written.
    target.wait_requests(2).await;
    assert!(
        matches!(gate.gate.state(), State::Misconfigured(_)),
        "{:?}",
        gate.gate.state()
    );
    assert!(publisher.published().is_empty());

    // Credentials fixed: the next probe delivers and resumes the target.
    target.answer_from_now(200);
    let handled = task.await.expect("task").expect("handled");
    let (failures, outcome) = finish(handled, &publisher).await;
    assert!(failures.is_empty(), "{failures:?}");
    assert_eq!(outcome.status, OutcomeStatus::Delivered);
    assert_eq!(outcome.attempts, 1, "the 401s did not count");
    assert_eq!(gate.gate.state(), State::Open);
}

/// A record that is not Confluent-framed Avro is poison (class `decode`)
/// before any call to the target.
#[tokio::test]
async fn an_undecodable_record_is_poison() {
    let target = Target::start(&[], 200).await;
    let (handler, publisher) = handler(&target, "");
    let result = handler
        .handle(message("t.deliveries.crm", b"app:k1", b"\x01not avro"))
        .await;
    let Err(ProcessError::Poison(f)) = result else {
        panic!("expected poison, got {result:?}")
    };
    assert_eq!(f.class, "decode");
    assert_eq!(target.requests(), 0);
    assert!(publisher.published().is_empty());
}
