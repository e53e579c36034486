//! The fault suite (issue 14, items 7 and 8): signed events, with poison
//! interleaved and poison written straight to the events topic, flow
//! through the four services running as processes on a private broker
//! while, in turn, each service is killed with SIGKILL and restarted (the
//! consumers twice in a row, the second time while still joining), the
//! broker is killed and restarted, the target answers 500, 429 with
//! Retry-After, times out and answers 401 for a while, and a second
//! transform and delivery instance join and leave. Then one checker reads
//! the topics and the target: every acknowledged event is delivered,
//! dead-lettered or unrouted; duplicates stay within what each fault had
//! in flight; the target saw every delivered event's Idempotency-Key.
//!
//! The figures are printed as markdown tables (`--nocapture`).
//! `INTOPS_FAULT_LOGS=DIR` keeps the services' logs there.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use intops_events::Topics;
use intops_tests::MockTarget;
use intops_tests::broker::PrivateBroker;
use intops_tests::fault::checker::{self, Expect, Input};
use intops_tests::fault::fleet::{Fleet, Role};
use intops_tests::fault::load::{Load, Shape};
use intops_tests::fault::scenario::{self, Run};
use intops_tests::fault::{collect, poison, table};
use intops_tests::{poll_until, stack, topic};

const SECRET: &str = "fault-suite-secret";
/// How long the pipeline may take to settle every event at the end.
const DRAIN: Duration = Duration::from_secs(120);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faults_lose_nothing_and_repeat_only_what_was_in_flight() {
    // Alone: the suite loads the machine with its processes and faults,
    // and its figures are for that load only (intops_tests::serial).
    let _turn = intops_tests::serial::alone().await;
    let broker = PrivateBroker::start().await.expect("private broker");
    let target = MockTarget::start().await.expect("target");
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("shop"), SECRET).expect("secret");
    let flows_path = dir.path().join("flows.toml");
    let flows =
        scenario::flows(&target.base_url()).replace("{secrets}", &dir.path().display().to_string());
    std::fs::write(&flows_path, flows).expect("flows");
    let logs = std::env::var_os("INTOPS_FAULT_LOGS")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| dir.path().to_path_buf());
    std::fs::create_dir_all(&logs).expect("log dir");
    let prefix = stack::random_prefix("faults");
    let topics = Topics::new(&prefix);

    let mut fleet = Fleet::new(&broker.bootstrap(), &prefix, &flows_path, &logs);
    // Ingest creates the topics; the others start once they exist.
    fleet.start(Role::Ingest, 0);
    fleet.wait_ready(Role::Ingest, scenario::RECOVERY).await;
    for role in [Role::Transform, Role::Delivery, Role::Monitor] {
        fleet.start(role, 0);
    }
    fleet.wait_ready(Role::Monitor, scenario::RECOVERY).await;

    let load = Load::start(Shape {
        url: fleet.ingest_url(scenario::SOURCE),
        secret: SECRET.into(),
        batch: 4,
        per_second: 5,
        senders: 2,
        max_events: 3_000,
    });
    let mut run = Run {
        fleet,
        broker,
        target,
        topics: topics.clone(),
        load: Some(load),
        started: Instant::now(),
        faults: Vec::new(),
    };
    warm(&run, 50).await;

    // The faults, close together (a few seconds apart).
    run.kill_ingest().await;
    // Poison behind ingest's back, just before transform is killed, so the
    // restarted transform meets it again.
    let bootstrap = run.broker.bootstrap();
    let mut direct = BTreeMap::new();
    for (key, payload) in [
        ("k1", poison::deep("deep-1")),
        ("k2", poison::large("large-1")),
    ] {
        let id = poison::write(&bootstrap, &topics, scenario::SOURCE, key, payload).await;
        direct.insert(id, Expect::DeadLetter);
    }
    run.crash_loop(Role::Transform, Duration::from_secs(2))
        .await;
    run.crash_loop(Role::Delivery, Duration::from_secs(2)).await;
    run.kill_monitor().await;
    run.kill_broker(Duration::from_secs(1)).await;
    let trouble = Duration::from_secs(2);
    run.target_trouble("500", trouble, |t| t.set_status(500), |t| t.set_status(201))
        .await;
    run.target_trouble(
        "429 with Retry-After: 1",
        trouble,
        |t| {
            t.set_retry_after(Some(1));
            t.set_status(429);
        },
        |t| {
            t.set_status(201);
            t.set_retry_after(None);
        },
    )
    .await;
    run.target_trouble(
        "timeouts (3 s answers, 1 s timeout)",
        trouble,
        |t| {
            // The hung requests would answer 503, so none of them counts
            // as accepted after the client gave up.
            t.delay_next(12, Duration::from_secs(3));
            t.fail_next(12, 503);
        },
        |_| {},
    )
    .await;
    run.target_trouble("401", trouble, |t| t.set_status(401), |t| t.set_status(201))
        .await;
    run.rebalance(Duration::from_secs(5)).await;

    let sent = run.load.take().expect("load").finish().await;
    let mut acknowledged = sent.acknowledged;
    acknowledged.extend(direct);

    // Every event settles: wait until the outcomes could cover them all,
    // then until the checker finds nothing missing, or the deadline.
    let outcomes = topics.outcomes();
    let end = Instant::now() + DRAIN;
    while (topic::count_at(&bootstrap, &outcomes) as usize) < acknowledged.len() {
        run.fleet.assert_alive();
        assert!(
            Instant::now() < end,
            "fewer outcomes than acknowledged events after {DRAIN:?}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let report = loop {
        let mut input = Input {
            acknowledged: acknowledged.clone(),
            ingest_unanswered_events: sent.unanswered_events,
            flow_id: scenario::FLOW.into(),
            faults: run.faults.clone(),
            ..Input::default()
        };
        collect::records(
            &mut input,
            &bootstrap,
            &topics,
            scenario::TARGET,
            &run.target,
            run.started,
        )
        .await;
        let report = checker::check(&input);
        if report.figures.lost == 0 || Instant::now() > end {
            break report;
        }
        run.fleet.assert_alive();
        tokio::time::sleep(Duration::from_secs(2)).await;
    };
    run.fleet.assert_alive();
    let elapsed = run.started.elapsed().as_secs_f64();
    println!(
        "fault suite: {} requests unanswered and retried by the source\n\n{}",
        sent.unanswered_requests,
        table::markdown(&report, elapsed)
    );
    if !report.violations.is_empty() {
        println!(
            "groups' (committed, end) per partition: {}",
            run.describe_groups()
        );
    }
    report.assert_holds();
}

/// Waits until the target accepted `n` requests (the pipeline flows).
async fn warm(run: &Run, n: usize) {
    poll_until("the pipeline to deliver", scenario::RECOVERY, || async {
        (run.accepted() >= n).then_some(())
    })
    .await;
}
