//! The delivery process killed with SIGKILL mid-stream and restarted:
//! every delivery request reaches the target at least once, nothing is
//! skipped, duplicates come only from the work after the last commit and
//! are counted. Then a SIGTERM stop: exit 0 with every offset committed,
//! so the next start repeats nothing.

use std::time::Duration;

use intops_events::Topics;
use intops_tests::{deliveries, poll_until, process, stack};

const REQUESTS: usize = 600;
const KEYS: usize = 20;
const WAIT: Duration = Duration::from_secs(120);

/// Partitions whose committed offset for `group` is behind the end.
fn uncommitted(group: &str, topic: &str) -> Vec<(i32, Option<i64>, i64)> {
    intops_tests::group::committed_and_ends(group, topic, 3)
        .into_iter()
        .filter(|(_, at, end)| *at != Some(*end))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill_9_then_sigterm_loses_nothing_and_repeats_only_uncommitted_work() {
    let _turn = intops_tests::serial::beside_others().await;
    let prefix = stack::random_prefix("dcrash");
    let topics = Topics::new(&prefix);
    let ids = deliveries::produce(&topics, REQUESTS, KEYS).await;

    let (target, _dir, flows) = deliveries::crm_target(Duration::from_millis(20)).await;

    let mut first = process::start("intops-delivery", &flows, &prefix);
    poll_until("delivery to be mid-stream", WAIT, || async {
        (deliveries::received(&target).len() >= REQUESTS / 2).then_some(())
    })
    .await;
    first.kill().expect("kill -9");
    let _ = first.wait();
    let at_kill = target.requests().len();
    let committed_at_kill = intops_tests::group::committed_records(
        &topics.group("delivery.crm"),
        &topics.deliveries("crm"),
        3,
    );
    // On tansu the restarted member must join after the killed one's
    // session expired (see intops_tests::group).
    intops_tests::group::wait_until_killed_member_is_gone(
        &topics.group("delivery.crm"),
        &topics.deliveries("crm"),
        3,
        WAIT,
    )
    .await;

    let second = process::start("intops-delivery", &flows, &prefix);
    // Every request delivered, and the second process through its whole
    // share: every record after the killed one's commits (which the killed
    // one may already have delivered, so distinct ids alone come too soon
    // for the graceful stop's check below).
    let second_share = REQUESTS.saturating_sub(committed_at_kill);
    let seen = poll_until("every request delivered", WAIT, || async {
        let seen = deliveries::received(&target);
        (seen.len() >= REQUESTS && target.requests().len() >= at_kill + second_share)
            .then_some(seen)
    })
    .await;
    let missing: Vec<&String> = ids.iter().filter(|id| !seen.contains_key(*id)).collect();
    assert!(
        missing.is_empty(),
        "{} requests never delivered",
        missing.len()
    );
    let total: usize = seen.values().sum();
    let duplicates = total - REQUESTS;
    println!(
        "kill -9 after {at_kill} requests ({committed_at_kill} committed): {duplicates} duplicates of {REQUESTS} (concurrency 4, 20 ms target)"
    );
    // Only what the killed process delivered past its last commit may be
    // repeated: a committed record is never delivered again. Up to the
    // target's concurrency (4) requests may have been on the wire at the
    // kill and arrived after it was counted.
    let uncommitted_at_kill = at_kill.saturating_sub(committed_at_kill) + 4;
    assert!(
        duplicates <= uncommitted_at_kill,
        "{duplicates} duplicates, but at most {uncommitted_at_kill} deliveries were uncommitted or in flight at the kill"
    );

    // Graceful stop: exit 0, and every offset committed.
    let status = process::terminate(second);
    assert!(status.success(), "SIGTERM exit status {status}");
    let group = topics.group("delivery.crm");
    let behind = uncommitted(&group, &topics.deliveries("crm"));
    assert!(
        behind.is_empty(),
        "after a graceful stop, partitions (partition, committed, end) behind: {behind:?}"
    );
}
