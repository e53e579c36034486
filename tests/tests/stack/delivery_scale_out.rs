//! Scaling delivery out mid-stream: a second instance joins the target's
//! consumer group while the first has requests in flight and queued. The
//! first finishes them and commits before giving partitions up (the
//! rebalance drain), so no request reaches the target twice and none is
//! skipped.

use std::time::Duration;

use intops_events::Topics;
use intops_runtime::CommonArgs;
use intops_tests::{deliveries, poll_until, stack};
use tokio_util::sync::CancellationToken;

const REQUESTS: usize = 400;
const KEYS: usize = 30;
const WAIT: Duration = Duration::from_secs(120);
const DRAINED: &str =
    "intops_consumer_rebalance_drains_total{stage=\"delivery\",result=\"drained\"}";

fn start_delivery(
    flows: &std::path::Path,
    prefix: &str,
    shutdown: &CancellationToken,
) -> tokio::task::JoinHandle<anyhow::Result<()>> {
    let mut common = CommonArgs::local(flows.to_path_buf(), prefix);
    common.connect.kafka_bootstrap = stack::bootstrap();
    common.connect.schema_registry_url = stack::registry_url();
    let args = intops_delivery::Args {
        common,
        targets: vec![],
        dlq_cap_window: 100,
        dlq_cap_ratio: 0.5,
        dlq_cap_consecutive: 50,
    };
    tokio::spawn(intops_delivery::run(args, shutdown.clone()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_second_instance_joining_mid_stream_repeats_nothing() {
    // Alone: the drain counter read below is the process's
    // (intops_tests::serial).
    let _turn = intops_tests::serial::alone().await;
    intops_runtime::telemetry::init(intops_runtime::telemetry::LogFormat::Text);
    let prefix = stack::random_prefix("dscale");
    let topics = Topics::new(&prefix);
    let ids = deliveries::produce(&topics, REQUESTS, KEYS).await;

    // 4 × 20 requests/s: about 5 s of work, so the first instance is far
    // from done when the second joins (after 40, and its own start-up),
    // and its drain stays well inside the 20 s bound.
    let (target, _dir, flows) = deliveries::crm_target(Duration::from_millis(50)).await;
    // Absent until some rebalance drained in this process.
    let drained_before = intops_tests::metrics::sum_in_process(DRAINED).unwrap_or(0.0);

    let shutdown = CancellationToken::new();
    let _stop = shutdown.clone().drop_guard();
    let first = start_delivery(&flows, &prefix, &shutdown);
    poll_until("the first instance to be mid-stream", WAIT, || async {
        (deliveries::received(&target).len() >= 40).then_some(())
    })
    .await;
    let second = start_delivery(&flows, &prefix, &shutdown);
    // The first instance counts its drain once it has committed.
    let drained = poll_until("a drained rebalance", WAIT, || async {
        let drained = intops_tests::metrics::sum_in_process(DRAINED)? - drained_before;
        (drained >= 1.0).then_some(drained)
    })
    .await;
    poll_until("every request delivered", WAIT, || async {
        (deliveries::received(&target).len() >= REQUESTS).then_some(())
    })
    .await;
    // Counted once the group committed every request: both instances have
    // finished all of them, so a repeat would have reached the target.
    let (group, requests) = (topics.group("delivery.crm"), topics.deliveries("crm"));
    poll_until("every request committed", WAIT, || async {
        intops_tests::group::committed_and_ends(&group, &requests, 3)
            .iter()
            .all(|(_, at, end)| *at == Some(*end))
            .then_some(())
    })
    .await;
    let seen = deliveries::received(&target);

    let missing = ids.iter().filter(|id| !seen.contains_key(*id)).count();
    let repeated: Vec<(&String, &usize)> = seen.iter().filter(|(_, n)| **n > 1).collect();
    println!(
        "scale-out: {drained} drained rebalances, {} requests repeated, {missing} missing",
        repeated.len()
    );
    assert_eq!(missing, 0, "requests never delivered");
    assert!(
        repeated.is_empty(),
        "requests delivered more than once across the rebalance: {repeated:?}"
    );

    shutdown.cancel();
    for task in [first, second] {
        tokio::time::timeout(WAIT, task)
            .await
            .expect("delivery stops")
            .expect("join")
            .expect("delivery ends cleanly");
    }
}
