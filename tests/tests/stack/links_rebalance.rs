//! Links across a rebalance: two delivery processes share a target's
//! three-partition deliveries topic, each creates the issues of the
//! incidents on its partitions and writes their links; one is stopped
//! (SIGTERM), its partitions move to the other, and every incident's next
//! event goes to its own issue (PUT), no new create. The survivor knows
//! the links the stopped one wrote because every replica holds every link:
//! its follower read them from `<prefix>.links` (and a lookup miss would
//! first sync to the topic's end).

use std::collections::HashMap;
use std::time::Duration;

use intops_events::{LinkAction, OutcomeStatus, Stage};
use intops_tests::itsm::JiraMock;
use intops_tests::poll_until;
use intops_tests::snow_jira::{
    self, Delivery, Front, is_create, is_update_of, issues_of, partitions_held, requests_of,
    series, wait_all_committed,
};
use serde_json::json;

const WAIT: Duration = Duration::from_secs(120);
const FLOW: &str = "snow-jira-rebalance";
const TARGET: &str = "jira-rebalance";
const INCIDENTS: usize = 30;
const RETRY: &str = r#"{ max_attempts = 3, initial_backoff = "50ms", max_backoff = "200ms" }"#;
/// Each process logs its partition count after every rebalance.
const LOG: &str = "warn,intops_kafka::drain=debug";

/// Waits until every one of `events` has a delivered delivery outcome;
/// its link action and record id per event.
async fn wait_delivered(
    prefix: &str,
    events: &[String],
) -> HashMap<String, (Option<LinkAction>, Option<String>)> {
    poll_until(
        &format!("{} delivered outcomes", events.len()),
        WAIT,
        || async {
            let mut seen = HashMap::new();
            for o in snow_jira::outcomes(prefix).await {
                if o.stage == Stage::Delivery
                    && o.status == OutcomeStatus::Delivered
                    && events.contains(&o.event_id)
                {
                    seen.insert(o.event_id.clone(), (o.link_action, o.record_id.clone()));
                }
            }
            (seen.len() == events.len()).then_some(seen)
        },
    )
    .await
}

async fn link_requests(replica: &Delivery, action: &str) -> f64 {
    series(
        replica.admin,
        "intops_link_requests_total",
        &[("flow", FLOW), ("action", action)],
    )
    .await
    .unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn after_a_rebalance_every_update_goes_to_its_own_linked_issue() {
    let _turn = intops_tests::serial::beside_others().await;
    let started = std::time::Instant::now();
    let jira = JiraMock::start().await.expect("jira");
    let front = Front::start(
        "lrebal",
        &snow_jira::flows(&jira.base_url(), FLOW, TARGET, RETRY),
    )
    .await
    .expect("ingest and transform");
    let prefix = front.prefix.clone();
    let (log_a, log_b) = (front.dir().join("a.log"), front.dir().join("b.log"));
    let a = Delivery::start(&front, &log_a, LOG);
    a.ready(WAIT).await;
    let b = Delivery::start(&front, &log_b, LOG);
    b.ready(WAIT).await;
    poll_until("both replicas to hold partitions", WAIT, || async {
        let (held_a, held_b) = (partitions_held(&log_a)?, partitions_held(&log_b)?);
        (held_a > 0 && held_b > 0 && held_a + held_b == 3).then_some(())
    })
    .await;

    // Both create issues and write links for the incidents of their
    // partitions.
    let incidents: Vec<String> = (0..INCIDENTS).map(|i| format!("INC-{i:02}")).collect();
    let mut creates = Vec::new();
    for inc in &incidents {
        creates.push(
            front
                .post(json!({"sys_id": inc, "short_description": format!("{inc} v1")}))
                .await,
        );
    }
    let created = wait_delivered(&prefix, &creates).await;
    wait_all_committed(&prefix, TARGET, WAIT).await;
    let (created_a, created_b) = (
        link_requests(&a, "create").await,
        link_requests(&b, "create").await,
    );
    assert_eq!(created_a + created_b, INCIDENTS as f64);
    assert!(
        created_a > 0.0 && created_b > 0.0,
        "both replicas created: {created_a} and {created_b}"
    );
    let mut key_of = HashMap::new();
    for (inc, event) in incidents.iter().zip(&creates) {
        let issues = issues_of(&jira, inc);
        assert_eq!(issues.len(), 1, "{inc}: {issues:?}");
        assert_eq!(
            created.get(event),
            Some(&(Some(LinkAction::Create), Some(issues[0].key.clone()))),
            "{inc}'s create outcome"
        );
        key_of.insert(inc.clone(), issues[0].key.clone());
    }

    // B stops; its partitions move to A.
    let status = b.terminate();
    assert!(status.success(), "SIGTERM exit status {status}");
    poll_until("A to hold every partition", WAIT, || async {
        (partitions_held(&log_a)? == 3).then_some(())
    })
    .await;

    let mut updates = Vec::new();
    for inc in &incidents {
        updates.push(
            front
                .post(json!({"sys_id": inc, "short_description": format!("{inc} v2")}))
                .await,
        );
    }
    let updated = wait_delivered(&prefix, &updates).await;
    wait_all_committed(&prefix, TARGET, WAIT).await;

    let posts = jira.requests().iter().filter(|r| is_create(r)).count();
    assert_eq!(posts, INCIDENTS, "no create after the rebalance");
    for (inc, event) in incidents.iter().zip(&updates) {
        let key = &key_of[inc];
        assert_eq!(
            updated.get(event),
            Some(&(Some(LinkAction::Update), Some(key.clone()))),
            "{inc}'s update outcome"
        );
        let requests = requests_of(&jira, inc);
        assert_eq!(requests.len(), 2, "{inc}: one create, one update");
        assert!(is_update_of(&requests[1], key), "{inc}: {:?}", requests[1]);
        assert_eq!(
            jira.issue(key).map(|i| i.fields["summary"].clone()),
            Some(json!(format!("{inc} v2")))
        );
    }
    assert_eq!(
        link_requests(&a, "update").await,
        INCIDENTS as f64,
        "A sent every update"
    );
    println!(
        "links_rebalance: creates {created_a} (A) + {created_b} (B); after B stopped, {INCIDENTS} updates by A, {posts} creates in all; {:.1} s",
        started.elapsed().as_secs_f64()
    );

    let status = a.terminate();
    assert!(status.success(), "SIGTERM exit status {status}");
    front.stop().await.expect("clean stop");
}
