//! The dead-letter cap: when most recent records fail (a bad deploy),
//! transform stops dead-lettering and holds the rest; a fixed flows file
//! releases them and they are delivered.

use std::time::Duration;

use intops_tests::pipeline::example_flows;
use intops_tests::sign::intops_signature;
use intops_tests::{MockTarget, Pipeline, poll_until};

const SECRET: &str = "cap-secret";
const WAIT: Duration = Duration::from_secs(90);
const EVENTS: usize = 200;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_bad_deploy_trips_the_cap_and_a_fix_releases_the_held_events() {
    let target = MockTarget::start().await.expect("target");
    let good = example_flows(&target.base_url());
    let bad = good.replace(
        "summary: .short_description,",
        r#"summary: error("mapping bug"),"#,
    );
    assert_ne!(bad, good);
    let pipeline = Pipeline::start("cap", &bad, &[("snow", SECRET)])
        .await
        .expect("pipeline");

    let batch: Vec<serde_json::Value> = (0..EVENTS)
        .map(|i| {
            serde_json::json!({"sys_id": format!("cap-{i}"), "number": format!("INC{i}"), "priority": "1",
                "short_description": "x", "description": "", "sys_created_on": "2026-11-28 08:00:00"})
        })
        .collect();
    let body = serde_json::to_string(&batch).expect("json");
    let r = reqwest::Client::new()
        .post(pipeline.ingest_url("servicenow"))
        .header(
            "x-intops-signature",
            intops_signature(SECRET, body.as_bytes()),
        )
        .body(body)
        .send()
        .await
        .expect("ingest");
    assert_eq!(r.status(), 202);

    poll_until("the cap to trip", WAIT, || async {
        (intops_tests::metrics::sum(pipeline.monitor, "intops_transform_dead_letter_cap_tripped")
            .await
            == 1.0)
            .then_some(())
    })
    .await;
    // Records are now held (retried), not dead-lettered.
    let held = intops_tests::metrics::sum(
        pipeline.monitor,
        "intops_consumer_errors_total{stage=\"transform\",class=\"retryable\"}",
    )
    .await;
    poll_until("held records to be retried", WAIT, || async {
        (intops_tests::metrics::sum(
            pipeline.monitor,
            "intops_consumer_errors_total{stage=\"transform\",class=\"retryable\"}",
        )
        .await
            > held + 2.0)
            .then_some(())
    })
    .await;
    let dlq = format!("{}.dlq.transform", pipeline.prefix);
    let dead = intops_tests::topic::count(&dlq);
    assert!(
        dead >= 11,
        "the cap trips after more than half of 20 failed: {dead}"
    );
    assert!(
        dead < EVENTS as i64,
        "the cap stopped the flood: {dead} of {EVENTS} dead-lettered"
    );
    assert!(target.requests().is_empty());

    // The fix: a valid flows file; the held events are delivered.
    std::fs::write(pipeline.flows_path(), &good).expect("write");
    let expected = EVENTS - dead as usize;
    poll_until("the held events to be delivered", WAIT, || async {
        (target.requests().len() >= expected).then_some(())
    })
    .await;
    assert_eq!(
        intops_tests::metrics::sum(pipeline.monitor, "intops_transform_dead_letter_cap_tripped")
            .await,
        0.0
    );
    assert_eq!(
        intops_tests::topic::count(&dlq),
        dead,
        "nothing more was dead-lettered"
    );
    pipeline.stop().await.expect("clean stop");
}
