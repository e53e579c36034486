//! A create dead-lettered and replayed after later events of the same
//! incident arrived, all four services in this process, a Jira-shaped
//! target.
//!
//! The first create is refused for good (400): dead letter, and its
//! pending link stays. The next event of the incident finds only that
//! pending link, so it creates (counted as an uncertain create) and its
//! answer's key becomes the link; the one after it updates. The replay
//! of the old create then finds the link and is sent as an update (PUT
//! to that key, the old event's `Idempotency-Key`): one issue, never a
//! second create. The replayed event's data is older than what Jira
//! holds: the replay's PUT writes it over the newer summary (replay
//! re-sends what the event said; it does not merge).

use std::time::Duration;

use intops_events::{LinkAction, OutcomeStatus};
use intops_tests::itsm::JiraMock;
use intops_tests::snow_jira::{
    self, SOURCE, delivery_outcome, is_create, is_update_of, issues_of, requests_of,
    wait_all_committed, wait_linked,
};
use intops_tests::{Pipeline, cli, metrics, poll_until, topic};
use serde_json::json;

const WAIT: Duration = Duration::from_secs(90);
const FLOW: &str = "snow-jira-replay";
const TARGET: &str = "jira-replay";
const RETRY: &str = r#"{ max_attempts = 3, initial_backoff = "50ms", max_backoff = "200ms" }"#;

async fn post(p: &Pipeline, summary: &str) -> String {
    let ids = p
        .post_json(
            SOURCE,
            &json!({"sys_id": "INC-RP", "short_description": summary}),
        )
        .await;
    ids[0].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_replayed_create_after_later_updates_updates_the_linked_issue() {
    let _turn = intops_tests::serial::beside_others().await;
    let started = std::time::Instant::now();
    let inc = "INC-RP";
    let jira = JiraMock::start().await.expect("jira");
    let p = Pipeline::start(
        "lreplay",
        &snow_jira::flows(&jira.base_url(), FLOW, TARGET, RETRY),
        &[],
    )
    .await
    .expect("pipeline");
    let prefix = p.prefix.clone();

    // The create is refused for good: dead-lettered, the pending link stays.
    jira.fail_next(1, 400);
    let first = post(&p, "v1").await;
    let o = delivery_outcome(&prefix, &first, |_| true, WAIT).await;
    assert_eq!(
        (o.status, o.link_action),
        (OutcomeStatus::DeadLettered, Some(LinkAction::Create)),
        "{o:?}"
    );
    let dlq = format!("{prefix}.dlq.delivery");
    poll_until("the dead letter", WAIT, || async {
        (topic::count(&dlq) == 1).then_some(())
    })
    .await;
    assert!(issues_of(&jira, inc).is_empty());
    let pending = snow_jira::link(&prefix, FLOW, inc).await.expect("link");
    assert_eq!(pending["pending"], true, "{pending}");

    // Later events of the incident: the first creates (no link yet) and
    // captures the key, the next updates that issue.
    let second = post(&p, "v2").await;
    let o = delivery_outcome(&prefix, &second, |_| true, WAIT).await;
    assert_eq!(
        (o.status, o.link_action),
        (OutcomeStatus::Delivered, Some(LinkAction::Create)),
        "{o:?}"
    );
    let key = wait_linked(&prefix, FLOW, inc, WAIT).await;
    assert_eq!(o.record_id.as_deref(), Some(key.as_str()));
    let third = post(&p, "v3").await;
    let o = delivery_outcome(&prefix, &third, |_| true, WAIT).await;
    assert_eq!(
        (o.status, o.link_action, o.record_id.as_deref()),
        (
            OutcomeStatus::Delivered,
            Some(LinkAction::Update),
            Some(key.as_str())
        ),
        "{o:?}"
    );

    // The old create, replayed: sent as an update of the linked issue.
    let report = cli::json(&prefix, &["dlq", "replay", "--json"]).await;
    assert_eq!(report["sent"], 1, "{report}");
    let o = delivery_outcome(
        &prefix,
        &first,
        |o| o.status == OutcomeStatus::Delivered,
        WAIT,
    )
    .await;
    assert_eq!(
        (o.link_action, o.record_id.as_deref()),
        (Some(LinkAction::Update), Some(key.as_str())),
        "{o:?}"
    );
    wait_all_committed(&prefix, TARGET, WAIT).await;

    let issues = issues_of(&jira, inc);
    assert_eq!(issues.len(), 1, "one issue: {issues:?}");
    assert_eq!(issues[0].key, key);
    let requests = requests_of(&jira, inc);
    let shape: Vec<(String, String, u16)> = requests
        .iter()
        .map(|r| (r.method.clone(), r.path.clone(), r.status))
        .collect();
    assert_eq!(requests.len(), 4, "{shape:?}");
    assert!(
        is_create(&requests[0]) && requests[0].status == 400,
        "{shape:?}"
    );
    assert!(
        is_create(&requests[1]) && requests[1].status == 201,
        "{shape:?}"
    );
    assert!(is_update_of(&requests[2], &key), "{shape:?}");
    let last = &requests[3];
    assert!(is_update_of(last, &key), "the replay's PUT: {shape:?}");
    assert_eq!(
        last.json()["fields"]["summary"],
        "v1",
        "the old event's data"
    );
    assert_eq!(
        last.header("idempotency-key"),
        requests[0].header("idempotency-key"),
        "the replay keeps the old event's Idempotency-Key"
    );
    assert_eq!(
        issues_of(&jira, inc)[0].fields["summary"],
        "v1",
        "the replay wrote the old event's summary over v3"
    );
    // The create after the dead-lettered one found its pending link.
    assert_eq!(
        metrics::sum_in_process(&format!(
            r#"intops_link_uncertain_creates_total{{flow="{FLOW}"}}"#
        )),
        Some(1.0)
    );
    println!(
        "links_replay: {shape:?} in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    p.stop().await.expect("clean stop");
}
