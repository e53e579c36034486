//! Links expire (issue 16, item 5): a capture flow with
//! `link = { capture = ".key", expire_after = "2s" }` creates an issue and
//! keeps its key; once the link has been idle for 2 s the sweeper writes a
//! tombstone (`intops links show` finds nothing, the links topic's latest
//! record of the key is null), and the entity's next event creates again.

use std::time::Duration;

use intops_tests::conversation::{delivery_stages, latest_links, links_cli, trace};
use intops_tests::itsm::JiraMock;
use intops_tests::{Pipeline, poll_until};
use serde_json::json;

const WAIT: Duration = Duration::from_secs(60);
const FLOW: &str = "expiry-to-jira";

fn flows(jira: &JiraMock) -> String {
    format!(
        r#"
[[sources]]
id = "app"
kind = "webhook"
auth = "none"
entity_key = ".id"

[[targets]]
id = "expiry-jira"
base_url = "{}"

[[flows]]
id = "{FLOW}"
source = "app"
target = "expiry-jira"
method = "POST"
path = "/rest/api/3/issue"
map = '{{fields: {{summary: .title}}}}'
link = {{ capture = ".key", expire_after = "2s" }}
update = {{ method = "PUT", path = "/rest/api/3/issue/{{{{ $link }}}}" }}
"#,
        jira.base_url()
    )
}

fn calls(jira: &JiraMock) -> Vec<(String, String)> {
    jira.requests()
        .iter()
        .map(|r| (r.method.clone(), r.path.clone()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_idle_link_expires_as_a_tombstone_and_the_next_event_creates_again() {
    let _turn = intops_tests::serial::beside_others().await;
    let jira = JiraMock::start().await.expect("jira");
    let pipeline = Pipeline::start("expiry", &flows(&jira), &[])
        .await
        .expect("pipeline");
    let prefix = pipeline.prefix.as_str();
    let key = format!("{FLOW}:e-1");

    // Create, then update the same issue while the link is fresh.
    pipeline
        .post_json("app", &json!({"id": "e-1", "title": "first"}))
        .await;
    let second = pipeline
        .post_json("app", &json!({"id": "e-1", "title": "second"}))
        .await;
    poll_until("the create and the update", WAIT, || async {
        (jira.requests().len() >= 2).then_some(())
    })
    .await;
    assert_eq!(
        calls(&jira),
        [
            ("POST".into(), "/rest/api/3/issue".into()),
            ("PUT".into(), "/rest/api/3/issue/OPS-1".into())
        ]
    );
    let second = trace(pipeline.monitor, &second[0], WAIT, |t| {
        delivery_stages(t)
            .iter()
            .any(|s| s["status"] == "delivered")
    })
    .await;
    let d = delivery_stages(&second)[0];
    assert_eq!(
        (&d["link_action"], &d["record_id"]),
        (&json!("update"), &json!("OPS-1")),
        "{second}"
    );

    // Idle for 2 s: the sweeper (every 1 s here) writes the tombstone.
    poll_until("the tombstone on the links topic", WAIT, || async {
        matches!(latest_links(prefix).await.get(&key), Some(None)).then_some(())
    })
    .await;
    let gone = links_cli(prefix, &["show", FLOW, "e-1"]).await;
    assert_eq!((gone.code, gone.links.len()), (1, 0), "{}", gone.stderr);
    assert!(gone.stderr.contains("no link"), "{}", gone.stderr);
    let expired = intops_tests::metrics::sum_in_process(&format!(
        "intops_link_expired_total{{flow=\"{FLOW}\"}}"
    ));
    assert!(expired >= Some(1.0), "{expired:?}");

    // The next event of the entity creates again: a second issue.
    let third = pipeline
        .post_json("app", &json!({"id": "e-1", "title": "third"}))
        .await;
    let t = trace(pipeline.monitor, &third[0], WAIT, |t| {
        delivery_stages(t)
            .iter()
            .any(|s| s["status"] == "delivered")
    })
    .await;
    let d = delivery_stages(&t)[0];
    assert_eq!(
        (&d["link_action"], &d["record_id"]),
        (&json!("create"), &json!("OPS-2")),
        "{t}"
    );
    assert_eq!(
        calls(&jira),
        [
            ("POST".into(), "/rest/api/3/issue".into()),
            ("PUT".into(), "/rest/api/3/issue/OPS-1".into()),
            ("POST".into(), "/rest/api/3/issue".into())
        ]
    );
    assert_eq!(
        jira.issue("OPS-2").expect("OPS-2").fields["summary"],
        "third"
    );
    poll_until("the new link", WAIT, || async {
        let link = latest_links(prefix).await.get(&key).cloned().flatten()?;
        (link.record_id.as_deref() == Some("OPS-2")).then_some(())
    })
    .await;
    pipeline.stop().await.expect("clean stop");
}
