//! A target that keeps failing opens its circuit: no lane calls it until a
//! single probe goes out after `open_for`; the first answer closes it.

use std::time::Duration;

use intops_tests::{MockTarget, Pipeline, metrics, poll_until, topic};
use serde_json::json;

const WAIT: Duration = Duration::from_secs(60);
/// Target `crm-circuit`, an id no other scenario uses: the gauge is read
/// from the process's metrics, shared by every scenario of the stack binary.
const TARGET: &str = "crm-circuit";
const STATE: &str = r#"intops_delivery_circuit_state{target="crm-circuit"}"#;
const OPEN_FOR: Duration = Duration::from_millis(300);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_failing_target_opens_its_circuit_and_one_probe_closes_it() {
    let _turn = intops_tests::serial::beside_others().await;
    let target = MockTarget::start().await.expect("target");
    target.set_status(503);
    let flows = intops_tests::pipeline::app_flows(
        &target.base_url(),
        TARGET,
        r#"concurrency = 2
retry = { max_attempts = 10000, initial_backoff = "10ms", max_backoff = "10ms" }
circuit_breaker = { failures = 3, open_for = "300ms" }"#,
        "",
    );
    let p = Pipeline::start("circuit", &flows, &[])
        .await
        .expect("pipeline");
    p.post_json("app", &json!([{"id": "a"}, {"id": "b"}])).await;

    poll_until("the circuit open", WAIT, || async {
        (metrics::sum(p.ingest, STATE).await == Some(1.0)).then_some(())
    })
    .await;
    // While open, only single probes reach the target, each at least
    // open_for after the circuit (re)opened. Allow one request that was
    // already on its way when it opened.
    let opened_at = target.requests().len() + 1;
    poll_until("three probes", WAIT, || async {
        (target.requests().len() >= opened_at + 3).then_some(())
    })
    .await;
    let requests = target.requests();
    let probes = &requests[opened_at..opened_at + 3];
    for pair in probes.windows(2) {
        assert!(
            pair[1].at.duration_since(pair[0].at) >= OPEN_FOR,
            "probes are open_for apart, not a retry storm"
        );
    }

    target.set_status(200);
    let outcomes = format!("{}.outcomes", p.prefix);
    poll_until("both delivered", WAIT, || async {
        (topic::count(&outcomes) == 2).then_some(())
    })
    .await;
    poll_until("the circuit closed", WAIT, || async {
        (metrics::sum(p.ingest, STATE).await == Some(0.0)).then_some(())
    })
    .await;
    assert_eq!(topic::count(&format!("{}.dlq.delivery", p.prefix)), 0);
    p.stop().await.expect("clean stop");
}
