//! The status page in a real browser: headless Chromium (Debian's
//! `chromium`, installed by deploy/local/test.sh) loads the monitor's `/`
//! and the DOM shows a failing flow as failing, with its reason, the
//! recent dead letters and the search box.

use std::time::Duration;

use intops_tests::{MockTarget, Pipeline, poll_until};
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(90);

/// The DOM of `url` after Chromium loaded it.
pub(crate) async fn dump_dom(url: &str) -> String {
    let chromium = std::env::var("INTOPS_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    let profile = tempfile::tempdir().expect("profile dir");
    let run = tokio::process::Command::new(&chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(["--dump-dom", url])
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(WAIT, run)
        .await
        .expect("chromium finishes")
        .unwrap_or_else(|e| {
            panic!("cannot run {chromium} (deploy/local/test.sh installs it): {e}")
        });
    assert!(
        out.status.success(),
        "chromium failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The rows of the page's search-results table (`id="search"`), without
/// its header row; empty when the page shows no such table.
fn search_rows(dom: &str) -> Vec<&str> {
    let Some(start) = dom.find(r#"<table id="search""#) else {
        return Vec::new();
    };
    let table = &dom[start..];
    let table = &table[..table.find("</table>").expect("search table end")];
    table
        .split("<tr>")
        .skip(1)
        .filter(|row| !row.contains("<th>"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_status_page_shows_a_failing_flow_as_failing() {
    let _turn = intops_tests::serial::beside_others().await;
    let target = MockTarget::start().await.expect("target");
    target.set_status(400);
    let flows = intops_tests::pipeline::app_flows(
        &target.base_url(),
        "crm",
        "retry = { max_attempts = 1 }",
        r#"slo = { success_ratio = 0.9, window = "1m" }"#,
    );
    let p = Pipeline::start("page", &flows, &[])
        .await
        .expect("pipeline");
    p.post_json("app", &json!([{"id": "INC0099001"}, {"id": "INC0099002"}]))
        .await;
    let api = format!("http://{}/api/v1/flows/app-to-crm", p.monitor);
    poll_until("the flow failing", WAIT, || async {
        let v: Value = reqwest::get(&api).await.ok()?.json().await.ok()?;
        (v["flow"]["status"] == "failing").then_some(())
    })
    .await;

    let dom = dump_dom(&format!("http://{}/", p.monitor)).await;
    let row_start = dom.find(r#"id="flow-app-to-crm""#).expect("the flow's row");
    let row = &dom[row_start..row_start + dom[row_start..].find("</tr>").expect("row end")];
    assert!(row.contains(r#"data-status="failing""#), "{row}");
    assert!(
        row.contains(r#"class="status status-failing">failing<"#),
        "{row}"
    );
    assert!(row.contains("success ratio 0.00 below 0.9"), "{row}");
    assert!(
        dom.contains(r#"id="dead-letters""#),
        "recent dead letters listed"
    );
    assert!(dom.contains(r#"name="q""#), "the search box");

    // The query is echoed into the page (heading, search box), so look only
    // inside the results table: exactly the one matching event, linked.
    let found = dump_dom(&format!("http://{}/?q=INC0099001", p.monitor)).await;
    let rows = search_rows(&found);
    assert_eq!(rows.len(), 1, "one search result: {rows:?}");
    assert!(rows[0].contains("/api/v1/events/"), "{}", rows[0]);
    assert!(rows[0].contains("INC0099001"), "{}", rows[0]);
    p.stop().await.expect("stop");
}
