//! Payload drift on the real stack (issue 18, item 3): ServiceNow events
//! whose `assignment_group` a flow reads, then the source renames the field
//! mid-stream; the monitor turns the flow degraded with the field, the
//! share and since when, alerts the webhook once, and shows the reason on
//! the status page and in the metrics.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use intops_tests::{MockTarget, Pipeline, poll_until};
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(60);
const FIXTURE: &str = include_str!("../../fixtures/servicenow-incident-created.json");

fn flows(target: &MockTarget) -> String {
    format!(
        r#"
[[sources]]
id = "snow"
kind = "webhook"
auth = "none"
entity_key = ".sys_id"

[[targets]]
id = "jira-drift"
base_url = "{}"

[[flows]]
id = "snow-drift"
source = "snow"
target = "jira-drift"
path = "/rest/api/3/issue"
map = '{{fields: {{summary: .short_description, group: .assignment_group.display_value}}}}'
slo = {{ drift = {{ window = "10s", min_events = 5 }} }}
owner = "service desk team"

[[alerts]]
id = "ops"
kind = "generic"
url = {{ file = "{{secrets}}/hook" }}
cooldown = "1s"
"#,
        target.base_url()
    )
}

/// `n` incidents of the fixture, `tag`ged sys_ids; `renamed` moves
/// `assignment_group` to `assignment_team`.
fn incidents(n: usize, tag: &str, renamed: bool) -> Value {
    let records: Vec<Value> = (0..n)
        .map(|i| {
            let mut v: Value = serde_json::from_str(FIXTURE).expect("fixture");
            v["sys_id"] = format!("{tag}-{i}").into();
            if renamed
                && let Some(group) = v.as_object_mut().and_then(|o| o.remove("assignment_group"))
            {
                v["assignment_team"] = group;
            }
            v
        })
        .collect();
    Value::Array(records)
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_renamed_field_degrades_the_flow_and_alerts_once() {
    let target = MockTarget::start().await.expect("target");
    let hook = MockTarget::start().await.expect("webhook receiver");
    let hook_url = format!("{}/alerts", hook.base_url());
    let p = Pipeline::start("drift", &flows(&target), &[("hook", hook_url.as_str())])
        .await
        .expect("pipeline");
    let flow_url = format!("http://{}/api/v1/flows/snow-drift", p.monitor);
    let get = |url: String| async move { reqwest::get(url).await.ok()?.json::<Value>().await.ok() };

    p.post_json("snow", &incidents(10, "before", false)).await;
    let sent_at = now_secs();
    poll_until("the first incidents delivered", WAIT, || async {
        (target.request_count() >= 10).then_some(())
    })
    .await;
    // The drift window is 10 s: the first incidents become the baseline
    // once they are older than that.
    poll_until(
        "the first incidents to age past the drift window",
        WAIT,
        || async { (now_secs() > sent_at + 11).then_some(()) },
    )
    .await;
    let healthy = get(flow_url.clone()).await.expect("flow");
    assert_eq!(healthy["flow"]["status"], "healthy", "{healthy}");

    p.post_json("snow", &incidents(10, "after", true)).await;
    let degraded = poll_until("the flow degraded by drift", WAIT, || async {
        let v = get(flow_url.clone()).await?;
        (v["flow"]["status"] == "degraded").then_some(v)
    })
    .await;
    let reason = degraded["flow"]["reason"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(
        reason.starts_with("reads .assignment_group: missing in 100% of events since "),
        "{reason}"
    );
    let alert = poll_until("the alert", WAIT, || async {
        hook.requests().first().map(|r| r.json())
    })
    .await;
    assert_eq!(alert["flow_id"], "snow-drift", "{alert}");
    assert_eq!(alert["status"], "degraded", "{alert}");
    assert_eq!(alert["reason"], reason.as_str(), "{alert}");
    assert_eq!(
        alert["owner"], "service desk team",
        "the alert names who answers"
    );

    let page = reqwest::get(format!("http://{}/", p.monitor))
        .await
        .expect("page")
        .text()
        .await
        .expect("text");
    assert!(
        page.contains("reads .assignment_group: missing in 100%"),
        "status page"
    );
    let drift = intops_tests::metrics::sum(
        p.monitor,
        "intops_flow_field_drift{flow=\"snow-drift\",field=\"assignment_group\"}",
    )
    .await;
    assert_eq!(drift, Some(1.0));
    assert_eq!(hook.request_count(), 1, "one alert");
    p.stop().await.expect("clean stop");
}
