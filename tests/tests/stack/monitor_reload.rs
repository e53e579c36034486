//! The monitor reloads its flows file (issue 18, item 4): a flow's new
//! objective applies to the figures it already has (it turns failing and
//! alerts a webhook added by the same reload), a new flow shows up; a file
//! whose alert URL cannot be read is refused, counted, and the last valid
//! objectives and webhooks stay.

use std::time::Duration;

use intops_tests::pipeline::app_flows;
use intops_tests::{MockTarget, Pipeline, poll_until};
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(60);
const TARGET: &str = "crm-mreload";
const FLOW: &str = "app-to-crm-mreload";

async fn get(url: &str) -> Value {
    reqwest::get(url)
        .await
        .expect("monitor answers")
        .json()
        .await
        .expect("json")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn objectives_and_alerts_reload_without_a_restart() {
    let target = MockTarget::start().await.expect("target");
    let hook = MockTarget::start().await.expect("webhook receiver");
    let v1 = app_flows(&target.base_url(), TARGET, "", "");
    let p = Pipeline::start("mreload", &v1, &[])
        .await
        .expect("pipeline");
    let flow_url = format!("http://{}/api/v1/flows/{FLOW}", p.monitor);
    p.post_json("app", &json!([{"id": "m1", "n": 1}])).await;
    poll_until("the delivery in the flow's figures", WAIT, || async {
        let v = get(&flow_url).await;
        (v["flow"]["status"] == "healthy" && target.request_count() == 1).then_some(())
    })
    .await;

    let dir = p.flows_path().parent().expect("dir").to_path_buf();
    std::fs::write(dir.join("hook"), format!("{}/alerts", hook.base_url())).expect("hook");
    let v2 = app_flows(
        &target.base_url(),
        TARGET,
        "",
        &format!(
            r#"slo = {{ max_silence = "2s" }}

[[flows]]
id = "app-to-crm-mreload-2"
source = "app"
target = "{TARGET}"
path = "/more"

[[alerts]]
id = "ops"
kind = "generic"
url = {{ file = "{}/hook" }}
cooldown = "1s"
"#,
            dir.display()
        ),
    );
    std::fs::write(p.flows_path(), &v2).expect("reload");
    let failing = poll_until("the new objective applied", WAIT, || async {
        let v = get(&flow_url).await;
        (v["flow"]["status"] == "failing").then_some(v)
    })
    .await;
    let reason = failing["flow"]["reason"].as_str().unwrap_or_default();
    assert!(
        reason.starts_with("no delivery for"),
        "kept its delivery: {failing}"
    );
    let alert = poll_until("the alert on the new webhook", WAIT, || async {
        hook.requests().first().map(|r| r.json())
    })
    .await;
    assert_eq!(alert["flow_id"], FLOW, "{alert}");
    assert_eq!(alert["status"], "failing", "{alert}");
    let flows = get(&format!("http://{}/api/v1/flows", p.monitor)).await;
    assert!(
        flows["flows"]
            .as_array()
            .is_some_and(|f| f.iter().any(|f| f["flow_id"] == "app-to-crm-mreload-2")),
        "{flows}"
    );

    // An unreadable alert URL refuses the whole file.
    let refused = |result: &'static str| {
        let monitor = p.monitor;
        async move {
            intops_tests::metrics::sum(
                monitor,
                &format!("intops_flows_reloads_total{{service=\"monitor\",result=\"{result}\"}}"),
            )
            .await
            .unwrap_or(0.0)
        }
    };
    let before = refused("error").await;
    std::fs::write(
        p.flows_path(),
        v2.replace("/hook\"", "/missing\"")
            .replace("mreload-2", "mreload-3"),
    )
    .expect("reload");
    poll_until("the refused reload counted", WAIT, || async {
        (refused("error").await > before).then_some(())
    })
    .await;
    let flows = get(&format!("http://{}/api/v1/flows", p.monitor)).await;
    let ids: Vec<&str> = flows["flows"]
        .as_array()
        .map(|f| f.iter().filter_map(|f| f["flow_id"].as_str()).collect())
        .unwrap_or_default();
    assert!(
        ids.contains(&"app-to-crm-mreload-2") && !ids.contains(&"app-to-crm-mreload-3"),
        "{ids:?}"
    );
    p.stop().await.expect("clean stop");
}
