//! Links across a delivery crash and a restart, with delivery as its own
//! process and a Jira-shaped target that does not honour the
//! `Idempotency-Key` (like real Jira).
//!
//! What a SIGKILL between a create's 2xx and the link's acknowledgement
//! does (`a_kill_between_a_create_and_its_link_creates_once_more_counted`):
//! the pending link (no record id) was acknowledged before the create was
//! sent, so it is on the links topic; the create reached Jira and the
//! issue exists, but the answer never came back, so no record id was
//! captured and the deliveries record's offset was not stored. After the
//! restart the record comes again, the new process finds the pending
//! link, counts `intops_link_uncertain_creates_total{flow}` (1), logs
//! `creating again after an unconfirmed create`, and sends the create
//! again with the same `Idempotency-Key`. Jira ignores the key: the
//! incident now has two issues (at most one duplicate per crash), the link
//! points to the second, and every later update goes to that one (PUT, no
//! third create). The first issue is orphaned; an operator finds it by the
//! counter and the log line (docs/operations.md). An incident whose link
//! was acknowledged before the kill is updated through its link after the
//! restart, and its create, if it comes again, is an echo (not sent).
//!
//! `a_link_survives_a_graceful_restart`: create and link, SIGTERM,
//! start again: the index is read back from `<prefix>.links`, the next
//! update goes to the same issue.

use std::time::Duration;

use intops_events::{LinkAction, OutcomeStatus, Topics};
use intops_tests::itsm::JiraMock;
use intops_tests::metrics;
use intops_tests::snow_jira::{
    self, Delivery, Front, delivery_outcome, is_create, is_update_of, issues_of, requests_of,
    wait_all_committed, wait_linked,
};
use serde_json::json;

const WAIT: Duration = Duration::from_secs(120);
const RETRY: &str = r#"{ max_attempts = 3, initial_backoff = "50ms", max_backoff = "200ms" }"#;

fn summary(jira: &JiraMock, key: &str) -> Option<String> {
    jira.issue(key)?
        .fields
        .get("summary")?
        .as_str()
        .map(str::to_string)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_kill_between_a_create_and_its_link_creates_once_more_counted() {
    let _turn = intops_tests::serial::beside_others().await;
    const FLOW: &str = "snow-jira-crash";
    const TARGET: &str = "jira-crash";
    let started = std::time::Instant::now();
    let jira = JiraMock::start().await.expect("jira");
    let front = Front::start(
        "lcrash",
        &snow_jira::flows(&jira.base_url(), FLOW, TARGET, RETRY),
    )
    .await
    .expect("ingest and transform");
    let prefix = front.prefix.clone();
    let first = Delivery::start(&front, &front.dir().join("first.log"), "warn");
    first.ready(WAIT).await;

    // Incident A: created and its link acknowledged before the kill.
    let (a, b) = ("INC-A", "INC-B");
    let a_create = front
        .post(json!({"sys_id": a, "short_description": "A v1"}))
        .await;
    let key_a = wait_linked(&prefix, FLOW, a, WAIT).await;

    // Incident B: Jira makes the issue, its answer is held, and delivery
    // is killed before it could capture the key.
    let mut hold = jira.hold_next_create();
    let b_create = front
        .post(json!({"sys_id": b, "short_description": "B v1"}))
        .await;
    let held = hold.received(WAIT).await.expect("B's create reached Jira");
    first.kill();
    let killed = std::time::Instant::now();
    hold.release();
    assert!(is_create(&held), "{held:?}");
    assert_eq!(issues_of(&jira, b).len(), 1, "the issue exists in Jira");
    let pending = snow_jira::link(&prefix, FLOW, b)
        .await
        .expect("B's pending link, acknowledged before the create was sent");
    assert_eq!(pending["pending"], true, "{pending}");
    assert_eq!(pending["event_id"], b_create.as_str(), "{pending}");

    // On tansu the restarted member joins only after the killed one's
    // session expired (intops_tests::group).
    let topics = Topics::new(&prefix);
    intops_tests::group::wait_until_killed_member_is_gone(
        &topics.group(&format!("delivery.{TARGET}")),
        &topics.deliveries(TARGET),
        3,
        WAIT,
    )
    .await;
    let second = Delivery::start(&front, &front.dir().join("second.log"), "warn");
    let restarted = killed.elapsed();
    second.ready(WAIT).await;

    // The record comes again: the pending link makes it an uncertain
    // create, sent again (Jira ignores the Idempotency-Key: a second
    // issue), and the link captures the second issue's key.
    let key_b = wait_linked(&prefix, FLOW, b, WAIT).await;
    let relinked = killed.elapsed();
    let outcome = delivery_outcome(&prefix, &b_create, |o| o.record_id.is_some(), WAIT).await;
    assert_eq!(outcome.status, OutcomeStatus::Delivered, "{outcome:?}");
    assert_eq!(outcome.link_action, Some(LinkAction::Create), "{outcome:?}");
    assert_eq!(outcome.record_id.as_deref(), Some(key_b.as_str()));
    let uncertain = format!(r#"intops_link_uncertain_creates_total{{flow="{FLOW}"}}"#);
    assert_eq!(
        metrics::sum(second.admin, &uncertain).await,
        Some(1.0),
        "the repeated create is counted by the new process"
    );
    let b_issues: Vec<String> = issues_of(&jira, b).into_iter().map(|i| i.key).collect();
    assert_eq!(b_issues.len(), 2, "one duplicate: {b_issues:?}");
    assert!(b_issues.contains(&key_b), "{key_b} in {b_issues:?}");
    let b_creates: Vec<_> = requests_of(&jira, b)
        .into_iter()
        .filter(is_create)
        .collect();
    assert_eq!(b_creates.len(), 2);
    assert_eq!(
        b_creates[0].header("idempotency-key"),
        b_creates[1].header("idempotency-key"),
        "the create is sent again with the same Idempotency-Key"
    );

    // Later updates go to the linked issues: A's link from before the
    // kill, B's captured after it.
    let a_update = front
        .post(json!({"sys_id": a, "short_description": "A v2"}))
        .await;
    let b_update = front
        .post(json!({"sys_id": b, "short_description": "B v2"}))
        .await;
    for (event, key) in [(&a_update, &key_a), (&b_update, &key_b)] {
        let o = delivery_outcome(&prefix, event, |_| true, WAIT).await;
        assert_eq!(
            (o.status, o.link_action, o.record_id.as_deref()),
            (
                OutcomeStatus::Delivered,
                Some(LinkAction::Update),
                Some(key.as_str())
            ),
            "{o:?}"
        );
    }
    wait_all_committed(&prefix, TARGET, WAIT).await;
    assert_eq!(summary(&jira, &key_a).as_deref(), Some("A v2"));
    assert_eq!(summary(&jira, &key_b).as_deref(), Some("B v2"));
    let a_requests = requests_of(&jira, a);
    assert_eq!(a_requests.len(), 2, "A: one create, one update");
    assert!(is_create(&a_requests[0]) && is_update_of(&a_requests[1], &key_a));
    let b_requests = requests_of(&jira, b);
    assert_eq!(
        b_requests.iter().filter(|r| is_create(r)).count(),
        2,
        "no third create"
    );
    assert!(
        b_requests.last().is_some_and(|r| is_update_of(r, &key_b)),
        "B's update went to {key_b}: {:?}",
        b_requests.last()
    );
    assert_eq!(issues_of(&jira, a).len(), 1);
    // A's create, if it came again after the kill, was an echo.
    let a_outcomes: Vec<_> = snow_jira::outcomes(&prefix)
        .await
        .into_iter()
        .filter(|o| o.event_id == a_create && o.link_action.is_some())
        .map(|o| o.link_action)
        .collect();
    assert!(
        a_outcomes
            .iter()
            .skip(1)
            .all(|a| *a == Some(LinkAction::Echo)),
        "A's create: {a_outcomes:?}"
    );
    println!(
        "links_crash: kill -9 with B's create answered but not captured: B has issues {b_issues:?}, linked {key_b}; restarted {:.1} s after the kill (the killed member's session), B linked {:.1} s after the kill; A's create repeated as echo {} time(s); {:.1} s in all",
        restarted.as_secs_f64(),
        relinked.as_secs_f64(),
        a_outcomes.len().saturating_sub(1),
        started.elapsed().as_secs_f64()
    );

    let status = second.terminate();
    assert!(status.success(), "SIGTERM exit status {status}");
    front.stop().await.expect("clean stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_link_survives_a_graceful_restart() {
    let _turn = intops_tests::serial::beside_others().await;
    const FLOW: &str = "snow-jira-restart";
    const TARGET: &str = "jira-restart";
    let jira = JiraMock::start().await.expect("jira");
    let front = Front::start(
        "lrestart",
        &snow_jira::flows(&jira.base_url(), FLOW, TARGET, RETRY),
    )
    .await
    .expect("ingest and transform");
    let prefix = front.prefix.clone();
    let first = Delivery::start(&front, &front.dir().join("first.log"), "warn");
    first.ready(WAIT).await;

    let inc = "INC-R";
    front
        .post(json!({"sys_id": inc, "short_description": "v1"}))
        .await;
    let key = wait_linked(&prefix, FLOW, inc, WAIT).await;
    let status = first.terminate();
    assert!(status.success(), "SIGTERM exit status {status}");

    let second = Delivery::start(&front, &front.dir().join("second.log"), "warn");
    second.ready(WAIT).await;
    // Read back from the links topic at start: one link, this one.
    assert_eq!(
        metrics::sum(second.admin, "intops_links ").await,
        Some(1.0),
        "the restarted index holds the link"
    );
    let update = front
        .post(json!({"sys_id": inc, "short_description": "v2"}))
        .await;
    let o = delivery_outcome(&prefix, &update, |_| true, WAIT).await;
    assert_eq!(
        (o.status, o.link_action, o.record_id.as_deref()),
        (
            OutcomeStatus::Delivered,
            Some(LinkAction::Update),
            Some(key.as_str())
        ),
        "{o:?}"
    );
    wait_all_committed(&prefix, TARGET, WAIT).await;
    let requests = requests_of(&jira, inc);
    assert_eq!(requests.len(), 2, "one create, one update: {requests:?}");
    assert!(is_create(&requests[0]) && is_update_of(&requests[1], &key));
    assert_eq!(summary(&jira, &key).as_deref(), Some("v2"));
    assert!(
        metrics::absent_or_zero(
            second.admin,
            &format!(r#"intops_link_uncertain_creates_total{{flow="{FLOW}"}}"#)
        )
        .await,
        "a graceful restart leaves no uncertain create"
    );

    let status = second.terminate();
    assert!(status.success(), "SIGTERM exit status {status}");
    front.stop().await.expect("clean stop");
}
