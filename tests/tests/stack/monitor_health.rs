//! The monitor's flow health against the real stack: a flow whose target
//! rejects everything turns failing within its objective's window, fires
//! exactly one alert to a local webhook receiver, recovers with exactly one
//! recovery message; lag shows while a target is paused and clears after;
//! a second monitor on the same topics gives the same figures.

use std::time::Duration;

use intops_tests::{MockTarget, Pipeline, cli, metrics, poll_until};
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(90);
/// The target, and so the flow `app-to-crm-health`: ids no other scenario
/// uses, as the metrics read below are the process's, shared by every
/// scenario of the stack binary.
const TARGET: &str = "crm-health";

fn flows(target: &MockTarget) -> String {
    intops_tests::pipeline::app_flows(
        &target.base_url(),
        TARGET,
        r#"retry = { max_attempts = 1 }
circuit_breaker = { failures = 0 }"#,
        r#"slo = { success_ratio = 0.9, window = "10s" }

[[alerts]]
id = "ops"
kind = "generic"
url = { file = "{secrets}/hook" }
cooldown = "1s"
"#,
    )
}

async fn get(url: &str) -> Value {
    reqwest::get(url)
        .await
        .expect("monitor answers")
        .json()
        .await
        .expect("json")
}

async fn wait_for(p: &Pipeline, what: &str, check: impl Fn(&Value) -> bool) -> Value {
    let url = format!("http://{}/api/v1/flows/app-to-crm-health", p.monitor);
    poll_until(what, WAIT, || async {
        let v = get(&url).await;
        check(&v["flow"]).then_some(v)
    })
    .await
}

async fn post(p: &Pipeline, n: usize, tag: &str) {
    let records: Vec<Value> = (0..n)
        .map(|i| json!({"id": format!("{tag}-{i}")}))
        .collect();
    p.post_json("app", &Value::Array(records)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_failing_flow_alerts_once_recovers_once_and_a_second_monitor_agrees() {
    let _turn = intops_tests::serial::beside_others().await;
    let target = MockTarget::start().await.expect("target");
    target.set_status(400);
    let hook = MockTarget::start().await.expect("webhook receiver");
    hook.set_status(200);
    let hook_url = format!("{}/alerts", hook.base_url());
    let p = Pipeline::start("health", &flows(&target), &[("hook", &hook_url)])
        .await
        .expect("pipeline");

    let v = wait_for(&p, "a healthy flow", |f| f["status"] == "healthy").await;
    assert_eq!(v["flow"]["target_id"], TARGET);

    post(&p, 3, "bad").await;
    // The flow turns failing with its first dead letter; the other two may
    // be counted a moment later.
    let v = wait_for(&p, "the flow failing with three dead letters", |f| {
        f["status"] == "failing" && f["window"]["dead_lettered"] == 3
    })
    .await;
    let reason = v["flow"]["reason"].as_str().unwrap_or_default();
    assert!(reason.contains("success ratio 0.00 below 0.9"), "{reason}");

    poll_until("an alert", WAIT, || async {
        (!hook.requests().is_empty()).then_some(())
    })
    .await;
    // More failures while failing: still one alert (de-duplicated).
    post(&p, 3, "worse").await;
    wait_for(&p, "six dead letters", |f| {
        f["window"]["dead_lettered"] == 6
    })
    .await;
    let alerts = hook.requests();
    assert_eq!(alerts.len(), 1, "one alert while failing");
    let alert = alerts[0].json();
    assert_eq!(alert["flow_id"], "app-to-crm-health");
    assert_eq!(alert["status"], "failing");
    assert_eq!(alert["recovered"], false);

    // Fixed: deliveries keep coming until the failures left the window.
    target.set_status(200);
    let url = format!("http://{}/api/v1/flows/app-to-crm-health", p.monitor);
    let mut n = 0;
    let v = poll_until("the flow healthy again", WAIT, || {
        n += 1;
        let (p, url, tag) = (&p, &url, format!("good{n}"));
        async move {
            if n % 10 == 1 {
                post(p, 1, &tag).await;
            }
            let v = get(url).await;
            (v["flow"]["status"] == "healthy"
                && v["flow"]["recent"]["delivered"].as_u64() > Some(0))
            .then_some(v)
        }
    })
    .await;
    assert_eq!(v["flow"]["recent"]["success_ratio"], 1.0);
    assert_eq!(v["flow"]["recent"]["dead_lettered"], 0);
    poll_until("a recovery message", WAIT, || async {
        (hook.requests().len() >= 2).then_some(())
    })
    .await;
    let recovery = hook.requests()[1].json();
    assert_eq!(recovery["status"], "healthy");
    assert_eq!(recovery["recovered"], true);
    assert_eq!(
        metrics::sum(
            p.monitor,
            r#"intops_flow_health{flow="app-to-crm-health",tenant=""}"#
        )
        .await,
        Some(0.0),
        "the evaluator exports the flow's health: 0 healthy"
    );

    // Lag: pause the target, write, see it; resume, see it clear.
    cli::run(
        &p.prefix,
        &["target", "pause", TARGET, "--operator", "test"],
    )
    .await;
    post(&p, 10, "held").await;
    wait_for(&p, "lag while paused", |f| f["lag"].as_i64() >= Some(10)).await;
    // This pipeline's groups only (`<prefix>.<role>`).
    let lag = format!("intops_consumer_lag{{group=\"{}.", p.prefix);
    assert!(
        metrics::sum(p.monitor, &lag).await >= Some(10.0),
        "lag gauge"
    );
    cli::run(
        &p.prefix,
        &["target", "resume", TARGET, "--operator", "test"],
    )
    .await;
    wait_for(&p, "lag cleared", |f| f["lag"] == 0).await;

    // A second monitor reading the same topics from the start agrees.
    let first = get(&format!(
        "http://{}/api/v1/flows/app-to-crm-health",
        p.monitor
    ))
    .await;
    let second = intops_tests::pipeline::start_monitor(&p)
        .await
        .expect("second monitor");
    let other = get(&format!(
        "http://{}/api/v1/flows/app-to-crm-health",
        second.addr
    ))
    .await;
    for figure in ["routed", "delivered", "dead_lettered", "retries"] {
        assert_eq!(
            other["flow"]["window"][figure], first["flow"]["window"][figure],
            "{figure}"
        );
    }
    second.stop().await.expect("second monitor stops");
    p.stop().await.expect("stop");
}
