//! A target's credential forms, its retryable status set and its retry
//! time bound, through the four services on the real broker and registry.

use std::time::Duration;

use base64::Engine;
use intops_events::DeadLetter;
use intops_tests::{MockTarget, Pipeline, topic};
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
async fn shutdown_lets_an_in_flight_request_finish_and_records_it() {
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
