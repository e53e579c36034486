//! A pause status (401 by default, 403 when configured) pauses a target
//! instead of dead-lettering every record; a probe or an operator resumes
//! it, and a record that keeps it paused past `max_pause` is dead-lettered
//! so the target resumes. Real broker and registry, four services.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use intops_events::{DeadLetter, Outcome, OutcomeStatus};
use intops_tests::{MockTarget, Pipeline, cli, metrics, poll_until, topic};
use rdkafka::message::Message;
use serde_json::json;

const WAIT: Duration = Duration::from_secs(60);
/// The flows with target `id`: tests share one metrics registry (every
/// scenario of the stack binary does), so each names its target
/// differently, with ids no other scenario uses.
fn flows(target: &MockTarget, id: &str) -> String {
    let settings = "concurrency = 4\nprobe_interval = \"200ms\"";
    intops_tests::pipeline::app_flows(&target.base_url(), id, settings, "")
}

fn paused(id: &str) -> String {
    format!(r#"intops_delivery_target_paused{{target="{id}"}}"#)
}

async fn post(p: &Pipeline, ids: &[&str]) {
    let records: Vec<_> = ids.iter().map(|id| json!({ "id": id })).collect();
    p.post_json("app", &json!(records)).await;
}

async fn wait_requests(target: &MockTarget, n: usize) {
    poll_until(&format!("{n} request(s) at the target"), WAIT, || async {
        (target.requests().len() >= n).then_some(())
    })
    .await;
}

async fn wait_paused(p: &Pipeline, id: &str, value: f64) {
    let name = paused(id);
    poll_until(&format!("{name} = {value}"), WAIT, || async {
        (metrics::sum(p.ingest, &name).await == Some(value)).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_401_pauses_the_target_and_a_probe_resumes_it_without_dead_letters() {
    let _turn = intops_tests::serial::beside_others().await;
    let target = MockTarget::start().await.expect("target");
    target.set_status(401);
    let p = Pipeline::start("pause", &flows(&target, "crm-pause"), &[])
        .await
        .expect("pipeline");
    post(&p, &["a", "b", "c"]).await;

    // Paused and probing: the same records are tried again and again,
    // where a permanent failure would have been dead-lettered at once.
    wait_paused(&p, "crm-pause", 1.0).await;
    wait_requests(&target, 8).await;
    let dlq = format!("{}.dlq.delivery", p.prefix);
    let outcomes = format!("{}.outcomes", p.prefix);
    assert_eq!(topic::count(&dlq), 0, "nothing dead-lettered while paused");
    assert_eq!(topic::count(&outcomes), 0, "no final result while paused");

    // The credentials are fixed: the next probe resumes the target and
    // every record is delivered.
    target.set_status(200);
    poll_until("3 delivered outcomes", WAIT, || async {
        (topic::count(&outcomes) == 3).then_some(())
    })
    .await;
    wait_paused(&p, "crm-pause", 0.0).await;
    let keys: HashSet<String> = target
        .requests()
        .iter()
        .filter_map(|r| r.header("idempotency-key").map(str::to_string))
        .collect();
    assert_eq!(keys.len(), 3);
    assert_eq!(topic::count(&dlq), 0);
    p.stop().await.expect("clean stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_operator_pause_holds_records_until_resume() {
    let _turn = intops_tests::serial::beside_others().await;
    let target = MockTarget::start().await.expect("target");
    let p = Pipeline::start("oppause", &flows(&target, "erp"), &[])
        .await
        .expect("pipeline");
    let prefix = p.prefix.as_str();
    post(&p, &["first"]).await;
    wait_requests(&target, 1).await;

    let out = cli::run(
        prefix,
        &[
            "target",
            "pause",
            "erp",
            "--reason",
            "maintenance",
            "--operator",
            "carol",
        ],
    )
    .await;
    assert!(out.contains("pause sent"), "{out}");
    wait_paused(&p, "erp", 1.0).await;
    post(&p, &["held"]).await;
    poll_until("the held request on its topic", WAIT, || async {
        (topic::count(&format!("{prefix}.deliveries.erp")) == 2).then_some(())
    })
    .await;
    assert_eq!(target.requests().len(), 1, "nothing sent while paused");

    cli::run(prefix, &["target", "resume", "erp"]).await;
    wait_requests(&target, 2).await;
    wait_paused(&p, "erp", 0.0).await;
    assert_eq!(target.requests()[1].json()["id"], "held");

    let audit = cli::run(
        prefix,
        &["tap", "audit", "--from-beginning", "--limit", "2"],
    )
    .await;
    assert!(
        audit.contains("target.pause") && audit.contains("target.resume"),
        "{audit}"
    );
    assert!(audit.contains("carol"), "{audit}");
    p.stop().await.expect("clean stop");
}

/// A target answering 403 to the record whose `id` is `denied` (a
/// permission about that record only) and 201 to every other; returns its
/// base URL and the ids it received, in order.
async fn per_record_target() -> (String, Arc<Mutex<Vec<String>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    let router = axum::Router::new().fallback(move |body: String| {
        let id = serde_json::from_str::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| v["id"].as_str().map(str::to_string))
            .unwrap_or_default();
        let status = if id == "denied" {
            axum::http::StatusCode::FORBIDDEN
        } else {
            axum::http::StatusCode::CREATED
        };
        if let Ok(mut s) = log.lock() {
            s.push(id);
        }
        async move { (status, "no permission for this record") }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, router).await });
    (format!("http://{addr}"), seen)
}

fn ids(seen: &Mutex<Vec<String>>) -> Vec<String> {
    seen.lock().map(|s| s.clone()).unwrap_or_default()
}

async fn decode<T: serde::de::DeserializeOwned>(topic_name: &str, n: usize) -> Vec<T> {
    let mut out = Vec::new();
    for m in topic::read(topic_name, n, WAIT) {
        out.push(
            intops_tests::stack::codec()
                .decode(m.payload().expect("value"))
                .await
                .expect("decodes"),
        );
    }
    out
}

/// Both records reach a final result: the outcome of each, by status.
async fn wait_outcomes(p: &Pipeline, n: usize) -> Vec<Outcome> {
    let outcomes = format!("{}.outcomes", p.prefix);
    poll_until(&format!("{n} outcomes"), WAIT, || async {
        (topic::count(&outcomes) >= n as i64).then_some(())
    })
    .await;
    decode(&outcomes, n).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn by_default_a_403_dead_letters_its_record_and_the_next_record_is_delivered() {
    let _turn = intops_tests::serial::beside_others().await;
    let (base_url, seen) = per_record_target().await;
    let settings = "concurrency = 1\nprobe_interval = \"200ms\"";
    let flows = intops_tests::pipeline::app_flows(&base_url, "docs", settings, "");
    let p = Pipeline::start("forbid", &flows, &[])
        .await
        .expect("pipeline");
    post(&p, &["denied", "next"]).await;

    let letters: Vec<DeadLetter> = decode(&format!("{}.dlq.delivery", p.prefix), 1).await;
    assert_eq!(letters[0].error_class, "http_4xx");
    assert_eq!(letters[0].http_status, Some(403));
    let outcomes = wait_outcomes(&p, 2).await;
    let delivered = outcomes
        .iter()
        .filter(|o| o.status == OutcomeStatus::Delivered)
        .count();
    assert_eq!(delivered, 1, "{outcomes:?}");
    let seen = ids(&seen);
    assert_eq!(
        seen.iter().filter(|id| *id == "denied").count(),
        1,
        "a 403 is not a pause status by default: no probe ({seen:?})"
    );
    assert!(seen.contains(&"next".to_string()), "{seen:?}");
    // Never paused, so the gauge may never have been set: absent or 0.
    assert!(metrics::absent_or_zero(p.ingest, &paused("docs")).await);
    p.stop().await.expect("clean stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_record_keeping_its_target_paused_past_max_pause_is_dead_lettered_and_the_target_resumes()
{
    let _turn = intops_tests::serial::beside_others().await;
    let (base_url, seen) = per_record_target().await;
    let settings = r#"concurrency = 1
probe_interval = "200ms"
pause_statuses = [401, 403]
max_pause = "2s""#;
    let flows = intops_tests::pipeline::app_flows(&base_url, "wiki", settings, "");
    let p = Pipeline::start("maxpause", &flows, &[])
        .await
        .expect("pipeline");
    post(&p, &["denied"]).await;
    wait_paused(&p, "wiki", 1.0).await;
    post(&p, &["next"]).await;

    let letters: Vec<DeadLetter> = decode(&format!("{}.dlq.delivery", p.prefix), 1).await;
    let letter = &letters[0];
    assert_eq!(letter.error_class, "paused", "{}", letter.error_message);
    assert_eq!(letter.http_status, Some(403));
    assert!(
        letter.error_message.contains("max_pause"),
        "{}",
        letter.error_message
    );
    assert_eq!(
        letter.response_excerpt.as_deref(),
        Some("no permission for this record"),
        "the last answer"
    );
    let outcomes = wait_outcomes(&p, 2).await;
    assert!(
        outcomes
            .iter()
            .any(|o| o.status == OutcomeStatus::Delivered),
        "{outcomes:?}"
    );
    wait_paused(&p, "wiki", 0.0).await;
    let seen = ids(&seen);
    let denied = seen.iter().filter(|id| *id == "denied").count();
    assert!(denied >= 2, "probed while paused: {seen:?}");
    assert_eq!(
        seen.last().map(String::as_str),
        Some("next"),
        "the next record went out once the target resumed: {seen:?}"
    );
    assert_eq!(letters.len(), 1);
    p.stop().await.expect("clean stop");
}
