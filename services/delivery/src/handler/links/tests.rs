//! Handler tests of flows with links: requests through the handler against
//! an in-process Jira-shaped target on 127.0.0.1 (POST creates `OPS-<n>`,
//! PUT and PATCH answer 204), links and outcomes published to an in-memory
//! publisher; the links index in memory ([`Links::offline`]).

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State as Shared;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::IntoResponse;
use intops_events::{
    DeliveryRequest, LINK_PLACEHOLDER, Link, LinkAction, LinkMode, LinkPlan, Outcome, OutcomeStatus,
};
use intops_kafka::testing::{MemoryPublisher, offline_codec};
use intops_kafka::{Handled, KafkaError};
use intops_runtime::{CancellationToken, Readiness};

use super::super::{Handler, TargetRuntime};
use crate::links::Links;

const P: &str = LINK_PLACEHOLDER;
const LINKS_TOPIC: &str = "t.links";
const DEADLINE: Duration = Duration::from_secs(20);

/// One request the target received.
#[derive(Debug, Clone)]
struct Seen {
    method: String,
    path: String,
    headers: HashMap<String, String>,
    body: String,
    idempotency_key: String,
    /// Links published when the request arrived.
    links_before: Vec<Link>,
}

#[derive(Clone)]
struct TargetState {
    seen: Arc<Mutex<Vec<Seen>>>,
    /// Answers to creates instead of the default, in order.
    create_answers: Arc<Mutex<VecDeque<(u16, String)>>>,
    publisher: MemoryPublisher,
}

async fn answer(
    Shared(state): Shared<TargetState>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> axum::response::Response {
    let text = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string()
    };
    let mut seen = state.seen.lock().expect("seen");
    seen.push(Seen {
        method: method.to_string(),
        path: uri.to_string(),
        headers: headers
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str().to_string(),
                    v.to_str().unwrap_or_default().to_string(),
                )
            })
            .collect(),
        body: String::from_utf8_lossy(&body).into_owned(),
        idempotency_key: text("idempotency-key"),
        links_before: state.publisher.records::<Link>(LINKS_TOPIC),
    });
    if method != Method::POST {
        return StatusCode::NO_CONTENT.into_response();
    }
    if let Some((status, body)) = state.create_answers.lock().expect("answers").pop_front() {
        return (StatusCode::from_u16(status).expect("status"), body).into_response();
    }
    let n = seen.iter().filter(|s| s.method == "POST").count();
    (
        StatusCode::CREATED,
        [("location", format!("/rest/api/3/issue/{}", 10000 + n))],
        format!(r#"{{"id":"{}","key":"OPS-{n}","self":"x"}}"#, 10000 + n),
    )
        .into_response()
}

/// The target, a handler of target `jira` at it, and what they share.
struct Setup {
    handler: Handler<MemoryPublisher>,
    publisher: MemoryPublisher,
    links: Arc<Links>,
    seen: Arc<Mutex<Vec<Seen>>>,
    create_answers: Arc<Mutex<VecDeque<(u16, String)>>>,
}

impl Setup {
    async fn start() -> Self {
        Self::start_with("").await
    }

    async fn start_with(settings: &str) -> Self {
        let publisher = MemoryPublisher::new("t");
        let seen = Arc::new(Mutex::new(Vec::new()));
        let create_answers = Arc::new(Mutex::new(VecDeque::new()));
        let app = axum::Router::new()
            .fallback(answer)
            .with_state(TargetState {
                seen: seen.clone(),
                create_answers: create_answers.clone(),
                publisher: publisher.clone(),
            });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move { axum::serve(listener, app).await });
        let flows = intops_flows::load_str(&format!(
            r#"
[[sources]]
id = "snow"
kind = "webhook"
auth = "none"
entity_key = ".sys_id"

[[targets]]
id = "jira"
base_url = "http://{addr}"
{settings}

[[flows]]
id = "snow-to-jira"
source = "snow"
target = "jira"
path = "/rest/api/3/issue"
link = {{ capture = ".key" }}
update = {{ method = "PUT", path = "/rest/api/3/issue/{{{{ $link }}}}" }}

[[sources]]
id = "jira"
kind = "webhook"
auth = "none"
entity_key = ".issue.key"

[[flows]]
id = "jira-to-snow"
source = "jira"
target = "jira"
link = {{ from = "snow-to-jira" }}
method = "PATCH"
path = "/api/now/table/incident/{{{{ $link }}}}"
"#
        ))
        .expect("flows");
        let runtime = TargetRuntime::new(
            &flows,
            "jira",
            &Readiness::default(),
            Arc::new(intops_kafka::DeadLetterCap::disabled("delivery")),
            None,
        )
        .expect("target");
        let links = Arc::new(Links::offline().with_write_backs(&flows));
        let handler = Handler::with_publisher(
            Arc::new(runtime),
            publisher.clone(),
            offline_codec().expect("codec"),
            links.clone(),
            CancellationToken::new(),
        );
        Self {
            handler,
            publisher,
            links,
            seen,
            create_answers,
        }
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().expect("seen").clone()
    }

    fn links_published(&self) -> Vec<Link> {
        self.publisher.records::<Link>(LINKS_TOPIC)
    }

    /// Processes `request` and waits for its acknowledgement; the outcome.
    async fn run(&self, request: DeliveryRequest) -> Outcome {
        let handled =
            tokio::time::timeout(DEADLINE, self.handler.process(request.clone(), b"snow:key"))
                .await
                .expect("in time")
                .expect("handled");
        let then = match handled {
            Handled::Acknowledging(then) => then,
            Handled::DeadLetters {
                then: Some(then), ..
            } => then,
            other => panic!("unexpected {other:?}"),
        };
        assert!(
            tokio::time::timeout(DEADLINE, then)
                .await
                .expect("in time")
                .expect("acknowledged"),
            "not interrupted"
        );
        self.publisher
            .records::<Outcome>("t.outcomes")
            .into_iter()
            .rev()
            .find(|o| o.event_id == request.event_id)
            .expect("an outcome")
    }
}

/// A request of capture flow `snow-to-jira` for incident `entity`, as
/// transform makes it: the create, and the update in the plan.
fn capture_request(event: &str, entity: &str, summary: &str) -> DeliveryRequest {
    DeliveryRequest {
        tenant: None,
        event_id: event.into(),
        flow_id: "snow-to-jira".into(),
        flow_version: "v1".into(),
        target_id: "jira".into(),
        entity_key: entity.into(),
        method: "POST".into(),
        path: "/rest/api/3/issue".into(),
        headers: HashMap::new(),
        body: format!(r#"{{"fields":{{"summary":"{summary}"}}}}"#),
        created_at: 1,
        ingested_at: 0,
        link: Some(LinkPlan {
            mode: LinkMode::Capture,
            link_flow: "snow-to-jira".into(),
            capture: Some(".key".into()),
            update_method: Some("PUT".into()),
            update_path: Some(format!("/rest/api/3/issue/{P}")),
            update_headers: None,
            update_body: None,
            skip_echoes: true,
        }),
    }
}

/// A request of write-back flow `jira-to-snow` for Jira issue `issue`.
fn write_back_request(event: &str, issue: &str, note: &str) -> DeliveryRequest {
    DeliveryRequest {
        tenant: None,
        event_id: event.into(),
        flow_id: "jira-to-snow".into(),
        flow_version: "v1".into(),
        target_id: "jira".into(),
        entity_key: issue.into(),
        method: "PATCH".into(),
        path: format!("/api/now/table/incident/{P}"),
        headers: HashMap::new(),
        body: format!(r#"{{"work_notes":"{note}"}}"#),
        created_at: 1,
        ingested_at: 0,
        link: Some(LinkPlan {
            mode: LinkMode::From,
            link_flow: "snow-to-jira".into(),
            capture: None,
            update_method: None,
            update_path: None,
            update_headers: None,
            update_body: None,
            skip_echoes: true,
        }),
    }
}

/// The value of counter `name` with `flow` in the process's metrics.
fn counter(name: &str, flow: &str) -> u64 {
    let handle = intops_runtime::metrics::install().expect("recorder");
    let text = handle.render();
    let prefix = format!("{name}{{flow=\"{flow}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .map_or(0, |v| v.trim().parse::<f64>().unwrap_or_default() as u64)
}

/// A create captures the new issue's key; the next event of the incident
/// is sent as the update, to that issue, with its own Idempotency-Key.
#[tokio::test]
async fn a_create_then_an_update_uses_the_captured_id() {
    let s = Setup::start().await;
    let created = s.run(capture_request("e1", "inc-1", "Disk full")).await;
    assert_eq!(created.status, OutcomeStatus::Delivered);
    assert_eq!(created.link_action, Some(LinkAction::Create));
    assert_eq!(created.record_id.as_deref(), Some("OPS-1"));
    assert_eq!(created.error, None);

    let updated = s
        .run(capture_request("e2", "inc-1", "Disk full again"))
        .await;
    assert_eq!(updated.status, OutcomeStatus::Delivered);
    assert_eq!(updated.link_action, Some(LinkAction::Update));
    assert_eq!(updated.record_id.as_deref(), Some("OPS-1"));

    let seen = s.seen();
    assert_eq!(seen.len(), 2);
    assert_eq!(
        (seen[0].method.as_str(), seen[0].path.as_str()),
        ("POST", "/rest/api/3/issue")
    );
    assert_eq!(
        (seen[1].method.as_str(), seen[1].path.as_str()),
        ("PUT", "/rest/api/3/issue/OPS-1")
    );
    assert_eq!(seen[1].body, r#"{"fields":{"summary":"Disk full again"}}"#);
    assert_eq!(seen[0].idempotency_key, "e1:snow-to-jira");
    assert_eq!(seen[1].idempotency_key, "e2:snow-to-jira");

    // Pending, captured, updated: all under the flow and incident.
    let links = s.links_published();
    let ids: Vec<Option<&str>> = links.iter().map(|l| l.record_id.as_deref()).collect();
    assert_eq!(ids, [None, Some("OPS-1"), Some("OPS-1")]);
    assert!(links.iter().all(|l| (
        l.flow_id.as_str(),
        l.entity_key.as_str(),
        l.target_id.as_str()
    ) == ("snow-to-jira", "inc-1", "jira")));
    assert_eq!(links[2].event_id, "e2");
    assert!(links[1].updated_at < links[2].updated_at);
    let keys: Vec<String> = s
        .publisher
        .published()
        .iter()
        .filter(|p| p.topic == LINKS_TOPIC)
        .map(|p| p.key_text())
        .collect();
    assert!(keys.iter().all(|k| k == "snow-to-jira:inc-1"), "{keys:?}");
    // Another incident creates its own issue.
    let other = s.run(capture_request("e3", "inc-2", "Other")).await;
    assert_eq!(
        (other.link_action, other.record_id.as_deref()),
        (Some(LinkAction::Create), Some("OPS-2"))
    );
}

/// The update's path, headers and body get the record id: percent-encoded
/// in the path, as it is in a header, JSON-escaped in the body.
#[tokio::test]
async fn the_update_gets_the_link_in_path_headers_and_body() {
    let s = Setup::start().await;
    s.create_answers
        .lock()
        .expect("answers")
        .push_back((201, r#"{"key":"A/B \"1\""}"#.into()));
    let mut create = capture_request("e1", "inc-1", "x");
    s.run(create.clone()).await;

    if let Some(plan) = create.link.as_mut() {
        plan.update_method = Some("PATCH".into());
        plan.update_headers = Some(HashMap::from([(
            "X-Issue".to_string(),
            format!("issue {P}"),
        )]));
        plan.update_body = Some(format!(r#"{{"ref":"{P}","note":"see {P}!"}}"#));
    }
    create.event_id = "e2".into();
    let updated = s.run(create).await;
    assert_eq!(updated.record_id.as_deref(), Some("A/B \"1\""));
    let seen = s.seen();
    let update = &seen[1];
    assert_eq!(update.method, "PATCH");
    assert_eq!(update.path, "/rest/api/3/issue/A%2FB%20%221%22");
    assert_eq!(update.headers["x-issue"], "issue A/B \"1\"");
    assert_eq!(
        update.body,
        r#"{"ref":"A/B \"1\"","note":"see A/B \"1\"!"}"#
    );
}

/// A request that would write exactly what the link last wrote is not
/// sent: the update right after a create with the same data, and a second
/// identical update.
#[tokio::test]
async fn an_echo_is_not_sent() {
    let s = Setup::start().await;
    s.run(capture_request("e1", "inc-1", "Disk full")).await;
    // The target's webhook about the create comes back as the same data.
    let echo = s.run(capture_request("e2", "inc-1", "Disk full")).await;
    assert_eq!(echo.status, OutcomeStatus::Echo);
    assert_eq!(echo.link_action, Some(LinkAction::Echo));
    assert_eq!(echo.record_id.as_deref(), Some("OPS-1"));
    assert_eq!((echo.attempts, echo.http_status), (0, None));
    assert_eq!(s.seen().len(), 1, "only the create was sent");

    let real = s.run(capture_request("e3", "inc-1", "Disk fuller")).await;
    assert_eq!(real.link_action, Some(LinkAction::Update));
    let again = s.run(capture_request("e4", "inc-1", "Disk fuller")).await;
    assert_eq!(again.status, OutcomeStatus::Echo);
    assert_eq!(s.seen().len(), 2, "the create and one update");
    let links_written = s.links_published().len();
    assert_eq!(links_written, 3, "echoes write no link");
}

/// A write-back whose entity has no link: `unrouted`, "no link", nothing
/// sent.
#[tokio::test]
async fn a_write_back_without_a_link_is_unrouted() {
    let s = Setup::start().await;
    let outcome = s.run(write_back_request("e1", "OPS-404", "hello")).await;
    assert_eq!(outcome.status, OutcomeStatus::Unrouted);
    assert_eq!(outcome.link_action, Some(LinkAction::NoLink));
    assert_eq!(outcome.error.as_deref(), Some("no link"));
    assert_eq!(outcome.record_id, None);
    assert_eq!(outcome.flow_id.as_deref(), Some("jira-to-snow"));
    assert!(s.seen().is_empty());
    assert!(s.links_published().is_empty());
}

/// A write-back finds the incident behind the issue and patches it; its
/// own link follows the capture flow; the same comment again is an echo.
#[tokio::test]
async fn a_write_back_goes_to_the_linked_record() {
    let s = Setup::start().await;
    s.run(capture_request("e1", "a1b2c3", "Disk full")).await;
    let outcome = s.run(write_back_request("e2", "OPS-1", "on it")).await;
    assert_eq!(outcome.status, OutcomeStatus::Delivered);
    assert_eq!(outcome.link_action, Some(LinkAction::WriteBack));
    assert_eq!(outcome.record_id.as_deref(), Some("a1b2c3"));
    let seen = s.seen();
    assert_eq!(
        (seen[1].method.as_str(), seen[1].path.as_str()),
        ("PATCH", "/api/now/table/incident/a1b2c3")
    );
    assert_eq!(seen[1].body, r#"{"work_notes":"on it"}"#);
    assert_eq!(seen[1].idempotency_key, "e2:jira-to-snow");

    let own = s.links_published().pop().expect("own link");
    assert_eq!(own.flow_id, "jira-to-snow");
    assert_eq!(own.mode, LinkMode::From);
    assert_eq!(own.via_flow.as_deref(), Some("snow-to-jira"));
    assert_eq!(own.entity_key, "OPS-1");
    assert_eq!(own.record_id.as_deref(), Some("a1b2c3"));
    assert!(own.last_write.is_some());

    let echo = s.run(write_back_request("e3", "OPS-1", "on it")).await;
    assert_eq!(echo.status, OutcomeStatus::Echo);
    assert_eq!(echo.record_id.as_deref(), Some("a1b2c3"));
    assert_eq!(s.seen().len(), 2);
}

/// With `link.echo = false` (a flow that appends: comments, work notes)
/// the same text again is a new change: it is sent.
#[tokio::test]
async fn without_echo_skipping_the_same_request_is_sent_again() {
    let s = Setup::start().await;
    s.run(capture_request("e1", "a1b2c3", "Disk full")).await;
    let appending = |event: &str| {
        let mut r = write_back_request(event, "OPS-1", "+1");
        if let Some(plan) = r.link.as_mut() {
            plan.skip_echoes = false;
        }
        r
    };
    let first = s.run(appending("e2")).await;
    let second = s.run(appending("e3")).await;
    assert_eq!(first.link_action, Some(LinkAction::WriteBack));
    assert_eq!(second.status, OutcomeStatus::Delivered);
    assert_eq!(second.link_action, Some(LinkAction::WriteBack));
    assert_eq!(s.seen().len(), 3);
}

/// A 2xx without a record id in the answer: delivered, but the outcome
/// says why no link came, the metric counts it, and the pending link
/// stays (the next event creates again, counted as uncertain).
#[tokio::test]
async fn a_create_without_a_record_id_in_its_answer_is_visible_and_counted() {
    let s = Setup::start().await;
    let mut request = capture_request("e1", "inc-1", "x");
    // A flow id of this test alone: the metrics are the process's.
    request.flow_id = "missing-capture".into();
    if let Some(plan) = request.link.as_mut() {
        plan.link_flow = "missing-capture".into();
    }
    let missing_before = counter("intops_link_capture_missing_total", "missing-capture");
    let uncertain_before = counter("intops_link_uncertain_creates_total", "missing-capture");
    s.create_answers
        .lock()
        .expect("answers")
        .push_back((201, r#"{"id":"10001"}"#.into()));
    let outcome = s.run(request.clone()).await;
    assert_eq!(outcome.status, OutcomeStatus::Delivered);
    assert_eq!(outcome.link_action, Some(LinkAction::Create));
    assert_eq!(outcome.record_id, None);
    let error = outcome.error.unwrap_or_default();
    assert!(
        error.starts_with("capture found no record id in the answer: "),
        "{error}"
    );
    assert!(error.contains("null"), "{error}");
    assert_eq!(
        counter("intops_link_capture_missing_total", "missing-capture"),
        missing_before + 1
    );
    let pending = s.links.index.lookup("missing-capture", "inc-1");
    assert!(pending.is_some_and(|e| !e.is_linked()), "pending stays");

    // The next event creates again: an uncertain create.
    request.event_id = "e2".into();
    let again = s.run(request).await;
    assert_eq!(
        (again.link_action, again.record_id.as_deref()),
        (Some(LinkAction::Create), Some("OPS-2"))
    );
    assert_eq!(
        counter("intops_link_uncertain_creates_total", "missing-capture"),
        uncertain_before + 1
    );
}

/// The pending link is acknowledged before the create goes out; a pending
/// link already there (a create that may have reached the target) counts
/// an uncertain create, and the create is sent with the same
/// Idempotency-Key as before.
#[tokio::test]
async fn a_pending_link_is_written_before_a_create() {
    let s = Setup::start().await;
    let mut request = capture_request("e1", "inc-1", "x");
    request.flow_id = "pending-first".into();
    if let Some(plan) = request.link.as_mut() {
        plan.link_flow = "pending-first".into();
    }
    // A crash after the create's 2xx, before its link: the pending link
    // is on the topic, the record comes again.
    let mut pending = Link {
        tenant: None,
        flow_id: "pending-first".into(),
        mode: LinkMode::Capture,
        via_flow: None,
        entity_key: "inc-1".into(),
        target_id: "jira".into(),
        record_id: None,
        event_id: "e1".into(),
        last_write: None,
        created_at: 7,
        updated_at: 7,
        written_at: None,
        seen_at: None,
        basis_at: None,
        earlier_written_at: None,
        earlier_basis_at: None,
    };
    s.links.index.write_local(&mut pending);
    let before = counter("intops_link_uncertain_creates_total", "pending-first");

    let outcome = s.run(request).await;
    assert_eq!(outcome.link_action, Some(LinkAction::Create));
    assert_eq!(
        counter("intops_link_uncertain_creates_total", "pending-first"),
        before + 1
    );
    let seen = s.seen();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].idempotency_key, "e1:pending-first");
    // When the create arrived, the pending link was acknowledged.
    let at_create = &seen[0].links_before;
    assert_eq!(at_create.len(), 1, "{at_create:?}");
    assert_eq!(at_create[0].record_id, None);
    assert_eq!(at_create[0].created_at, 7, "first written at 7");
    let after = s.links_published();
    assert_eq!(
        after.last().and_then(|l| l.record_id.as_deref()),
        Some("OPS-1")
    );
    assert_eq!(after.last().map(|l| l.created_at), Some(7));
}

/// The link written after a 2xx is part of the acknowledgement: while the
/// broker refuses it, the record's acknowledgement waits.
#[tokio::test]
async fn the_link_write_is_acknowledged_before_the_record() {
    let s = Setup::start_with(
        r#"retry = { max_attempts = 3, initial_backoff = "1ms", max_backoff = "2ms" }"#,
    )
    .await;
    s.run(capture_request("e1", "inc-1", "a")).await;
    let written = s.links_published().len();
    s.publisher.fail(LINKS_TOPIC, 3, KafkaError::Unavailable);
    let outcome = s.run(capture_request("e2", "inc-1", "b")).await;
    assert_eq!(outcome.link_action, Some(LinkAction::Update));
    let links = s.links_published();
    assert_eq!(links.len(), written + 1, "written after the failures");
    assert_eq!(links.last().map(|l| l.event_id.as_str()), Some("e2"));
}

/// A link that cannot go into a header dead-letters the request (class
/// `request`) without sending it.
#[tokio::test]
async fn a_link_that_cannot_go_into_a_header_is_refused() {
    let s = Setup::start().await;
    // A source's entity key may hold anything; a write-back puts it where
    // `$link` stands (a record id with a line break is refused at capture:
    // see links/capture.rs).
    s.run(capture_request("e1", "inc\n1", "a")).await;
    let mut request = write_back_request("e2", "OPS-1", "x");
    request.headers = HashMap::from([("X-Incident".to_string(), P.to_string())]);
    let handled = s
        .handler
        .process(request, b"jira:OPS-1")
        .await
        .expect("handled");
    let Handled::DeadLetters { failures, .. } = handled else {
        panic!("expected a dead letter, got {handled:?}")
    };
    assert_eq!(failures.len(), 1);
    assert_eq!(failures[0].class, "request");
    assert!(
        failures[0].message.contains("X-Incident"),
        "{}",
        failures[0].message
    );
    assert_eq!(s.seen().len(), 1, "only the create");
}

/// A request ingested at `at`.
fn at(mut request: DeliveryRequest, at: i64) -> DeliveryRequest {
    request.ingested_at = at;
    request
}

/// The same field changed on both sides at once: the two writes cross.
/// The echo that would carry the older change back is not sent
/// (`conflict`), the newer change's goes through, and the conflict is
/// over for the next real change.
#[tokio::test]
async fn crossed_writes_skip_the_older_changes_echo_only() {
    let s = Setup::start().await;
    let now = intops_events::now_micros;
    s.run(at(capture_request("e1", "inc-1", "opened"), now()))
        .await;
    // ServiceNow changes (A1), then Jira (B1), before either was written.
    let a1 = now();
    let b1 = now();
    let sent = s
        .run(at(capture_request("a1", "inc-1", "from snow"), a1))
        .await;
    assert_eq!(sent.link_action, Some(LinkAction::Update));
    let sent = s
        .run(at(write_back_request("b1", "OPS-1", "from jira"), b1))
        .await;
    assert_eq!(sent.link_action, Some(LinkAction::WriteBack));
    let requests = s.seen().len();

    // Jira's webhook about intops's write of A1 carries the older change.
    let echo = s
        .run(at(write_back_request("b2", "OPS-1", "from snow"), now()))
        .await;
    assert_eq!(echo.status, OutcomeStatus::Echo);
    assert_eq!(echo.link_action, Some(LinkAction::Conflict));
    assert!(
        echo.error
            .as_deref()
            .is_some_and(|e| e.starts_with("conflict"))
    );
    assert_eq!(s.seen().len(), requests, "not sent");
    let recorded = s.links_published().pop().expect("the link records it");
    assert_eq!(recorded.flow_id, "jira-to-snow");
    assert_eq!(recorded.event_id, "b2");

    // A real change in Jira after that is sent.
    let real = s
        .run(at(
            write_back_request("b3", "OPS-1", "later in jira"),
            now(),
        ))
        .await;
    assert_eq!(real.link_action, Some(LinkAction::WriteBack));
    // ServiceNow's webhook about intops's write of B1 carries the newer
    // change to Jira.
    let newer = s
        .run(at(capture_request("a2", "inc-1", "from jira"), now()))
        .await;
    assert_eq!(newer.link_action, Some(LinkAction::Update));
    assert_eq!(s.seen().len(), requests + 2);
}

/// Changes to different fields cross (Jira's older, ServiceNow's newer):
/// the echoes repeat the last writes and are plain echoes, but the first
/// after the crossing is recorded as answered, so a later real change is
/// sent, not taken for a conflict's losing echo.
#[tokio::test]
async fn a_plain_echo_after_a_crossing_ends_it() {
    let s = Setup::start().await;
    let now = intops_events::now_micros;
    s.run(at(capture_request("e1", "inc-1", "opened"), now()))
        .await;
    let b1 = now();
    let a1 = now();
    s.run(at(capture_request("a1", "inc-1", "description"), a1))
        .await;
    s.run(at(write_back_request("b1", "OPS-1", "status"), b1))
        .await;
    let requests = s.seen().len();

    // ServiceNow's webhook about intops's write: the description as
    // already written to Jira.
    let echo = s
        .run(at(capture_request("a2", "inc-1", "description"), now()))
        .await;
    assert_eq!(echo.link_action, Some(LinkAction::Echo));
    let recorded = s.links_published().pop().expect("the echo is recorded");
    assert_eq!(recorded.event_id, "a2");

    let real = s
        .run(at(capture_request("a3", "inc-1", "a real change"), now()))
        .await;
    assert_eq!(real.link_action, Some(LinkAction::Update));
    assert_eq!(s.seen().len(), requests + 1);
}
