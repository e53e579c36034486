//! The dead-letter cap, per source, owned by the shared consumer loop: a
//! burst of bad events from one source trips the cap for that source only
//! (its later events are held, not dead-lettered) while another source's
//! events keep being delivered; a fixed flows file releases the held
//! events and they are delivered. The same cap guards delivery.

use std::time::Duration;

use intops_kafka::{Producer, Record};
use intops_tests::{MockTarget, Pipeline, poll_until, stack, topic};

const WAIT: Duration = Duration::from_secs(120);
const BAD: usize = 200;
const GOOD: usize = 40;

/// Sources `alpha` and `beta` (no auth), both to target `crm`; `alpha`'s
/// mapping is `alpha_map`.
fn flows(base_url: &str, alpha_map: &str) -> String {
    format!(
        r#"
[[sources]]
id = "alpha"
kind = "webhook"
auth = "none"
entity_key = ".id"

[[sources]]
id = "beta"
kind = "webhook"
auth = "none"
entity_key = ".id"

[[targets]]
id = "crm"
base_url = "{base_url}"
concurrency = 4

[[flows]]
id = "alpha-to-crm"
source = "alpha"
target = "crm"
path = "/alpha"
map = '{alpha_map}'

[[flows]]
id = "beta-to-crm"
source = "beta"
target = "crm"
path = "/beta"
map = '{{id: .id}}'
"#
    )
}

const GOOD_MAP: &str = "{id: .id, s: .s}";
const BAD_MAP: &str = r#"{id: .id, s: error("mapping bug")}"#;

fn gauge_line(name: &str, stage: &str, scope: &str) -> String {
    format!("{name}{{stage=\"{stage}\",scope=\"{scope}\"}}")
}

/// `None` when the series is not exported (or the endpoint is down).
async fn metric(pipeline: &Pipeline, line: &str) -> Option<f64> {
    intops_tests::metrics::sum(pipeline.monitor, line).await
}

/// Posts `n` events numbered from `from` to `source`, in batches.
async fn post(pipeline: &Pipeline, source: &str, from: usize, n: usize) {
    let events: Vec<serde_json::Value> = (from..from + n)
        .map(|i| serde_json::json!({"id": format!("{source}-{i}"), "s": "x"}))
        .collect();
    for batch in events.chunks(25) {
        pipeline
            .post_json(source, &serde_json::Value::Array(batch.to_vec()))
            .await;
    }
}

/// Waits until `group` has committed every record of `topic`: it has
/// finished them all, so nothing it would still write is on its way.
async fn wait_all_committed(group: &str, topic: &str) {
    poll_until(
        &format!("{group} to commit all of {topic}"),
        WAIT,
        || async {
            let partitions = intops_tests::topic::partitions(topic)?;
            intops_tests::group::committed_and_ends(group, topic, partitions)
                .iter()
                .all(|(_, at, end)| at.unwrap_or(0) == *end)
                .then_some(())
        },
    )
    .await;
}

fn delivered(target: &MockTarget, path: &str) -> usize {
    target
        .requests()
        .iter()
        .filter(|r| r.path.as_str() == path)
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_burst_of_bad_events_holds_only_its_source_and_a_fix_releases_them() {
    let _turn = intops_tests::serial::alone().await;
    let target = MockTarget::start().await.expect("target");
    let good = flows(&target.base_url(), GOOD_MAP);
    let bad = flows(&target.base_url(), BAD_MAP);
    let pipeline = Pipeline::start("cap", &bad, &[]).await.expect("pipeline");
    let tripped = gauge_line("intops_dead_letter_cap_tripped", "transform", "alpha");

    // Interleaved: some of beta's events before, during and after alpha's
    // burst.
    post(&pipeline, "beta", 0, GOOD / 2).await;
    post(&pipeline, "alpha", 0, BAD).await;
    post(&pipeline, "beta", GOOD / 2, GOOD / 2).await;

    poll_until("alpha's cap to trip", WAIT, || async {
        (metric(&pipeline, &tripped).await == Some(1.0)).then_some(())
    })
    .await;
    // Every beta event is delivered while alpha is held.
    poll_until("beta's events delivered", WAIT, || async {
        (delivered(&target, "/beta") >= GOOD).then_some(())
    })
    .await;
    let dlq = format!("{}.dlq.transform", pipeline.prefix);
    poll_until("alpha's events dead-lettered or held", WAIT, || async {
        let held = metric(
            &pipeline,
            "intops_dead_letter_cap_held{stage=\"transform\"}",
        )
        .await?;
        let dead = topic::count(&dlq);
        (held as i64 + dead == BAD as i64).then_some(())
    })
    .await;
    let dead = topic::count(&dlq);
    // The test pipeline's transform cap: more than half of a source's last
    // 20 records failed (checked once 20 finished).
    eprintln!("transform cap: {dead} of {BAD} bad events dead-lettered, the rest held");
    assert!(dead >= 20, "the cap trips once the window is full: {dead}");
    assert!(
        dead < BAD as i64 / 2,
        "the cap stopped the flood: {dead} of {BAD} dead-lettered"
    );
    assert_eq!(metric(&pipeline, &tripped).await, Some(1.0), "still held");
    assert_eq!(
        metric(&pipeline, "intops_transform_dead_letter_cap_tripped").await,
        Some(1.0),
        "the alerting gauge is kept"
    );
    // beta never tripped: its gauge is absent or 0.
    assert!(
        intops_tests::metrics::absent_or_zero(
            pipeline.monitor,
            &gauge_line("intops_dead_letter_cap_tripped", "transform", "beta")
        )
        .await
    );
    assert_eq!(delivered(&target, "/alpha"), 0);

    // More of beta while alpha is still held.
    post(&pipeline, "beta", GOOD, GOOD).await;
    poll_until("beta's later events delivered", WAIT, || async {
        (delivered(&target, "/beta") >= 2 * GOOD).then_some(())
    })
    .await;

    // The fix: a valid flows file; alpha's held events are delivered.
    std::fs::write(pipeline.flows_path(), &good).expect("write");
    let expected = BAD - dead as usize;
    poll_until("the held events to be delivered", WAIT, || async {
        (delivered(&target, "/alpha") >= expected).then_some(())
    })
    .await;
    // Once transform and delivery have committed everything, nothing more
    // is on its way: each held event was delivered once, none repeated.
    let topics = intops_events::Topics::new(&pipeline.prefix);
    wait_all_committed(&topics.group("transform"), &topics.events()).await;
    wait_all_committed(&topics.group("delivery.crm"), &topics.deliveries("crm")).await;
    assert_eq!(
        delivered(&target, "/alpha"),
        expected,
        "held events delivered once"
    );
    assert_eq!(
        delivered(&target, "/beta"),
        2 * GOOD,
        "beta's events delivered once"
    );
    assert_eq!(metric(&pipeline, &tripped).await, Some(0.0));
    assert_eq!(
        metric(&pipeline, "intops_transform_dead_letter_cap_tripped").await,
        Some(0.0)
    );
    assert_eq!(topic::count(&dlq), dead, "nothing more was dead-lettered");
    pipeline.stop().await.expect("clean stop");
}

/// Delivery's loop writes its dead letters under the same cap: undecodable
/// requests of one source written straight to the target's topic trip it
/// for that source (the test pipeline's delivery cap: 50 in a row), while
/// the other source's requests are delivered.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn delivery_holds_a_failing_source_and_delivers_the_others() {
    let _turn = intops_tests::serial::alone().await;
    let target = MockTarget::start().await.expect("target");
    let pipeline = Pipeline::start("dcap", &flows(&target.base_url(), GOOD_MAP), &[])
        .await
        .expect("pipeline");
    let deliveries = format!("{}.deliveries.crm", pipeline.prefix);
    let producer = Producer::new(
        &intops_kafka::KafkaSettings::new(stack::bootstrap(), Default::default())
            .expect("settings"),
    )
    .expect("producer");
    post(&pipeline, "beta", 0, GOOD / 2).await;
    for i in 0..BAD {
        let key = format!("alpha:garbage-{i}");
        producer
            .send(Record {
                topic: &deliveries,
                key: key.as_bytes(),
                value: b"not an avro record",
                headers: &[],
            })
            .await
            .expect("produce");
    }
    post(&pipeline, "beta", GOOD / 2, GOOD / 2).await;

    let tripped = gauge_line("intops_dead_letter_cap_tripped", "delivery", "alpha");
    poll_until("delivery's cap to trip for alpha", WAIT, || async {
        (metric(&pipeline, &tripped).await == Some(1.0)).then_some(())
    })
    .await;
    poll_until("beta's events delivered", WAIT, || async {
        (delivered(&target, "/beta") >= GOOD).then_some(())
    })
    .await;
    let dlq = format!("{}.dlq.delivery", pipeline.prefix);
    poll_until("alpha's records dead-lettered or held", WAIT, || async {
        let held = metric(&pipeline, "intops_dead_letter_cap_held{stage=\"delivery\"}").await?;
        (held as i64 + topic::count(&dlq) == BAD as i64).then_some(())
    })
    .await;
    let dead = topic::count(&dlq);
    eprintln!("delivery cap: {dead} of {BAD} bad requests dead-lettered, the rest held");
    assert!(
        (50..BAD as i64 / 2).contains(&dead),
        "delivery's cap stopped the flood: {dead} of {BAD} dead-lettered"
    );

    // The operator says the cause is fixed: `intops target resume` resets
    // the target's cap, and the held records are handled again (still
    // undecodable, so more of them are dead-lettered until the cap trips
    // again).
    intops_tests::cli::run(&pipeline.prefix, &["target", "resume", "crm"]).await;
    poll_until("held records handled again after resume", WAIT, || async {
        (topic::count(&dlq) >= dead + 50).then_some(())
    })
    .await;
    pipeline.stop().await.expect("clean stop");
}
