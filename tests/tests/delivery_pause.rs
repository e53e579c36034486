//! 401/403 pause a target instead of dead-lettering every record; a probe
//! or an operator resumes it. Real broker and registry, four services.

use std::collections::HashSet;
use std::time::Duration;

use intops_tests::{MockTarget, Pipeline, cli, metrics, poll_until, topic};
use serde_json::json;

const WAIT: Duration = Duration::from_secs(60);
/// The flows with target `id`: tests share one metrics registry, so each
/// names its target differently.
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
        (metrics::sum(p.ingest, &name).await == value).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_401_pauses_the_target_and_a_probe_resumes_it_without_dead_letters() {
    let target = MockTarget::start().await.expect("target");
    target.set_status(401);
    let p = Pipeline::start("pause", &flows(&target, "crm"), &[])
        .await
        .expect("pipeline");
    post(&p, &["a", "b", "c"]).await;

    // Paused and probing: the same records are tried again and again,
    // where a permanent failure would have been dead-lettered at once.
    wait_paused(&p, "crm", 1.0).await;
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
    wait_paused(&p, "crm", 0.0).await;
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
