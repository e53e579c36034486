//! A target's credential forms, its retryable status set and its retry
//! time bound, redirects (never followed) and requests that would leave the
//! target's base URL (never sent), through the four services on the real
//! broker and registry.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use base64::Engine;
use intops_events::{DeadLetter, DeliveryRequest, RecordKind, Topics};
use intops_kafka::{KafkaSettings, Producer, Record};
use intops_tests::{MockTarget, Pipeline, poll_until, topic};
use rdkafka::message::Message;
use serde_json::json;

const WAIT: Duration = Duration::from_secs(60);

fn flows(target: &MockTarget, target_settings: &str) -> String {
    intops_tests::pipeline::app_flows(&target.base_url(), "crm", target_settings, "")
}

async fn post(p: &Pipeline) {
    p.post_json("app", &json!({"id": "one"})).await;
}

async fn dead_letter(p: &Pipeline) -> DeadLetter {
    let letters = topic::read(&format!("{}.dlq.delivery", p.prefix), 1, WAIT);
    intops_tests::stack::codec()
        .decode(letters[0].payload().expect("value"))
        .await
        .expect("dead letter")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn basic_auth_is_sent_and_never_echoed_into_a_dead_letter() {
    let _turn = intops_tests::serial::beside_others().await;
    let target = MockTarget::start().await.expect("target");
    target.echo_headers();
    target.set_status(500);
    let settings = r#"auth = { basic = { username = "svc", password = { file = "{secrets}/pw" } } }
retryable_statuses = [503]"#;
    let p = Pipeline::start("basic", &flows(&target, settings), &[("pw", "s3cret-pw")])
        .await
        .expect("pipeline");
    post(&p).await;
    let letter = dead_letter(&p).await;

    let encoded = base64::engine::general_purpose::STANDARD.encode("svc:s3cret-pw");
    let requests = target.requests();
    assert_eq!(
        requests.len(),
        1,
        "500 is not in retryable_statuses: no retry"
    );
    assert_eq!(
        requests[0].header("authorization"),
        Some(format!("Basic {encoded}").as_str())
    );
    assert_eq!(letter.error_class, "http_5xx");
    assert_eq!(letter.http_status, Some(500));
    assert!(!letter.retryable);
    let excerpt = letter.response_excerpt.expect("excerpt");
    assert!(excerpt.contains("authorization: Basic ***"), "{excerpt}");
    assert!(
        !excerpt.contains(&encoded) && !excerpt.contains("s3cret-pw"),
        "{excerpt}"
    );
    p.stop().await.expect("clean stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_configured_status_is_retried_until_max_elapsed() {
    let _turn = intops_tests::serial::beside_others().await;
    let target = MockTarget::start().await.expect("target");
    target.set_status(409);
    let settings = r#"auth = { header = { name = "X-Api-Key", value = { file = "{secrets}/key" } } }
retryable_statuses = [409]
retry = { max_attempts = 1000, initial_backoff = "50ms", max_backoff = "50ms", max_elapsed = "1s" }
circuit_breaker = { failures = 0 }"#;
    let p = Pipeline::start("elapsed", &flows(&target, settings), &[("key", "k-777")])
        .await
        .expect("pipeline");
    post(&p).await;
    let letter = dead_letter(&p).await;

    assert_eq!(letter.error_class, "exhausted");
    assert_eq!(letter.http_status, Some(409));
    assert!(letter.retryable);
    let attempts = usize::try_from(letter.attempts).expect("attempts");
    assert!(attempts >= 2, "409 was retried: {attempts}");
    assert!(
        attempts < 1000,
        "max_elapsed ended the retries, not max_attempts"
    );
    let requests = target.requests();
    assert_eq!(requests.len(), attempts);
    assert!(
        requests
            .iter()
            .all(|r| r.header("x-api-key") == Some("k-777"))
    );
    p.stop().await.expect("clean stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_request_that_times_out_is_retried_with_the_same_key() {
    let _turn = intops_tests::serial::beside_others().await;
    let target = MockTarget::start().await.expect("target");
    target.delay_next(1, Duration::from_secs(3));
    let settings = r#"timeout = "300ms"
retry = { max_attempts = 5, initial_backoff = "50ms", max_backoff = "100ms" }"#;
    let p = Pipeline::start("timeout", &flows(&target, settings), &[])
        .await
        .expect("pipeline");
    post(&p).await;
    let outcomes = format!("{}.outcomes", p.prefix);
    let outcome = topic::read(&outcomes, 1, WAIT);
    let outcome: intops_events::Outcome = intops_tests::stack::codec()
        .decode(outcome[0].payload().expect("value"))
        .await
        .expect("outcome");
    assert_eq!(outcome.status, intops_events::OutcomeStatus::Delivered);
    assert_eq!(outcome.attempts, 2, "the timed-out attempt, then the retry");
    let requests = target.requests();
    assert_eq!(requests.len(), 2);
    assert_eq!(
        requests[0].header("idempotency-key"),
        requests[1].header("idempotency-key")
    );
    assert_eq!(topic::count(&format!("{}.dlq.delivery", p.prefix)), 0);
    p.stop().await.expect("clean stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_retry_after_longer_than_max_backoff_is_honoured_as_asked() {
    let _turn = intops_tests::serial::beside_others().await;
    let target = MockTarget::start().await.expect("target");
    target.set_retry_after(Some(2));
    target.fail_next(1, 429);
    let settings =
        r#"retry = { max_attempts = 5, initial_backoff = "50ms", max_backoff = "100ms" }"#;
    let p = Pipeline::start("retryafter", &flows(&target, settings), &[])
        .await
        .expect("pipeline");
    post(&p).await;
    let outcomes = format!("{}.outcomes", p.prefix);
    let outcome = topic::read(&outcomes, 1, WAIT);
    let outcome: intops_events::Outcome = intops_tests::stack::codec()
        .decode(outcome[0].payload().expect("value"))
        .await
        .expect("outcome");
    assert_eq!(outcome.status, intops_events::OutcomeStatus::Delivered);
    assert_eq!(outcome.attempts, 2, "the 429, then the retry");
    let requests = target.requests();
    assert_eq!(requests.len(), 2);
    // A lower bound only: the target asked for 2 s, max_backoff (100 ms)
    // does not cut it.
    let waited = requests[1].at.duration_since(requests[0].at);
    assert!(
        waited >= Duration::from_secs(2),
        "called again after {waited:?}"
    );
    p.stop().await.expect("clean stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn shutdown_lets_an_in_flight_request_finish_and_records_it() {
    let _turn = intops_tests::serial::beside_others().await;
    let target = MockTarget::start().await.expect("target");
    target.delay_next(1, Duration::from_secs(1));
    let p = Pipeline::start("drain", &flows(&target, ""), &[])
        .await
        .expect("pipeline");
    post(&p).await;
    intops_tests::poll_until("the request in flight", WAIT, || async {
        (!target.requests().is_empty()).then_some(())
    })
    .await;
    let outcomes = format!("{}.outcomes", p.prefix);
    // Stop while the target is still answering: delivery waits for the
    // answer and writes the outcome before it exits.
    p.stop().await.expect("clean stop");
    assert_eq!(
        topic::count(&outcomes),
        1,
        "the in-flight delivery was recorded"
    );
    let outcome: intops_events::Outcome = intops_tests::stack::codec()
        .decode(topic::read(&outcomes, 1, WAIT)[0].payload().expect("value"))
        .await
        .expect("outcome");
    assert_eq!(outcome.status, intops_events::OutcomeStatus::Delivered);
    assert_eq!(target.requests().len(), 1);
}

/// A target that answers every request `307` to `location`; returns its
/// base URL and how many requests it got.
async fn redirecting_target(location: String) -> (String, Arc<AtomicUsize>) {
    let hits = Arc::new(AtomicUsize::new(0));
    let counted = hits.clone();
    let router = axum::Router::new().fallback(move || {
        counted.fetch_add(1, Ordering::SeqCst);
        let location = location.clone();
        async move {
            (
                axum::http::StatusCode::TEMPORARY_REDIRECT,
                [(axum::http::header::LOCATION, location)],
                "moved",
            )
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, router).await });
    (format!("http://{addr}"), hits)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_redirect_is_dead_lettered_with_its_location_and_never_followed() {
    let _turn = intops_tests::serial::beside_others().await;
    let other = MockTarget::start().await.expect("the other host");
    let location = format!("{}/collect", other.base_url());
    let (base_url, hits) = redirecting_target(location.clone()).await;
    let settings =
        r#"auth = { header = { name = "X-Api-Key", value = { file = "{secrets}/key" } } }"#;
    let flows = intops_tests::pipeline::app_flows(&base_url, "crm", settings, "");
    let p = Pipeline::start("redirect", &flows, &[("key", "k-307")])
        .await
        .expect("pipeline");
    post(&p).await;
    let letter = dead_letter(&p).await;

    assert_eq!(letter.error_class, "http_3xx");
    assert_eq!(letter.http_status, Some(307));
    assert!(!letter.retryable);
    assert!(
        letter.error_message.contains(&location),
        "{}",
        letter.error_message
    );
    assert_eq!(
        letter.response_excerpt.as_deref(),
        Some(format!("Location: {location}").as_str())
    );
    assert_eq!(hits.load(Ordering::SeqCst), 1, "a 3xx is not retried");
    // The dead letter is written after the answer: had the redirect been
    // followed, the other host would have the request (and the key) by now.
    assert!(
        other.requests().is_empty(),
        "the other host received nothing: {:?}",
        other.requests()
    );
    p.stop().await.expect("clean stop");
}

/// Writes `requests` (path, headers) for target `crm` straight to its
/// deliveries topic, all under one key (so in this order).
async fn produce_requests(prefix: &str, requests: &[(&str, &[(&str, &str)])]) {
    let settings =
        KafkaSettings::new(intops_tests::stack::bootstrap(), Default::default()).expect("settings");
    let topic = Topics::new(prefix).deliveries("crm");
    let codec = intops_tests::stack::codec();
    let producer = Producer::new(&settings).expect("producer");
    for (i, (path, headers)) in requests.iter().enumerate() {
        let request = DeliveryRequest {
            tenant: None,
            link: None,
            event_id: format!("forged-{i}"),
            flow_id: "app-to-crm".into(),
            flow_version: "v1".into(),
            target_id: "crm".into(),
            entity_key: "forged".into(),
            method: "POST".into(),
            path: (*path).to_string(),
            headers: headers
                .iter()
                .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
                .collect::<HashMap<_, _>>(),
            body: json!({ "forged": i }).to_string(),
            created_at: 1,
            ingested_at: 1,
        };
        let value = codec
            .encode(&topic, RecordKind::DeliveryRequest, &request)
            .await
            .expect("encode");
        producer
            .send(Record {
                topic: &topic,
                key: b"app:forged",
                value: &value,
                headers: &[],
            })
            .await
            .expect("produce");
    }
}

async fn decode_all(topic_name: &str, n: usize) -> Vec<DeadLetter> {
    let mut letters = Vec::new();
    for m in topic::read(topic_name, n, WAIT) {
        letters.push(
            intops_tests::stack::codec()
                .decode(m.payload().expect("value"))
                .await
                .expect("dead letter"),
        );
    }
    letters
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_path_or_header_that_would_leave_the_target_is_dead_lettered_and_never_sent() {
    let _turn = intops_tests::serial::beside_others().await;
    let target = MockTarget::start().await.expect("target");
    let flows = format!(
        r#"
[[sources]]
id = "app"
kind = "webhook"
auth = "none"
entity_key = ".id"

[[targets]]
id = "crm"
base_url = "{}/api"

[[flows]]
id = "app-to-crm"
source = "app"
target = "crm"
path = "/records/{{{{ .ref }}}}"
headers = {{ "X-Note" = "{{{{ .note }}}}" }}
map = '{{id: .id}}'
"#,
        target.base_url()
    );
    let p = Pipeline::start("hostile", &flows, &[])
        .await
        .expect("pipeline");
    let prefix = p.prefix.clone();

    // Transform: a payload value making a dot segment, or a header line
    // break, is a mapping error, dead-lettered there.
    p.post_json(
        "app",
        &json!([
            {"id": "climb", "ref": "..", "note": "n"},
            {"id": "split", "ref": "r-2", "note": "a\r\nX-Evil: 1"},
            {"id": "good", "ref": "r-1", "note": "fine"},
        ]),
    )
    .await;
    let letters = decode_all(&format!("{prefix}.dlq.transform"), 2).await;
    let mut messages: Vec<&str> = letters.iter().map(|l| l.error_message.as_str()).collect();
    messages.sort_unstable();
    assert!(messages[0].contains("header value refused"), "{messages:?}");
    assert!(messages[1].contains("dot segment"), "{messages:?}");
    assert!(letters.iter().all(|l| l.error_class == "mapping_output"));
    assert_eq!(
        topic::count(&format!("{prefix}.deliveries.crm")),
        1,
        "only the good record became a request"
    );

    // Delivery: forged requests (written by something else) are refused
    // before anything is sent; the legitimate one after them goes out.
    let hostile: [(&str, &[(&str, &str)]); 6] = [
        ("@evil.example/x", &[]),
        ("//evil.example/x", &[]),
        ("/../admin", &[]),
        ("/%2e%2e/admin", &[]),
        ("/x", &[("X-Note", "a\r\nX-Evil: 1")]),
        ("/x", &[("Host", "evil.example")]),
    ];
    let mut requests = hostile.to_vec();
    requests.push(("/records/forged-ok", &[]));
    produce_requests(&prefix, &requests).await;
    let letters = decode_all(&format!("{prefix}.dlq.delivery"), hostile.len()).await;
    for l in &letters {
        assert_eq!(l.error_class, "request", "{}", l.error_message);
        assert_eq!(l.http_status, None, "never sent: {}", l.error_message);
        assert!(l.error_message.contains("refused"), "{}", l.error_message);
    }
    poll_until(
        "the good and the legitimate forged request",
        WAIT,
        || async { (target.requests().len() >= 2).then_some(()) },
    )
    .await;
    let paths: Vec<String> = target.requests().iter().map(|r| r.path.clone()).collect();
    assert_eq!(paths.len(), 2, "{paths:?}");
    assert!(paths.contains(&"/api/records/r-1".to_string()), "{paths:?}");
    assert!(
        paths.contains(&"/api/records/forged-ok".to_string()),
        "{paths:?}"
    );
    assert!(
        target
            .requests()
            .iter()
            .all(|r| r.header("x-evil").is_none())
    );
    p.stop().await.expect("clean stop");
}
