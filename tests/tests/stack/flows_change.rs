//! The change workflow of docs/operations.md on the real stack (issue 18):
//! record traffic, `intops flows diff` a changed file against the deployed
//! versions (exact counts, exit codes a deploy pipeline gates on), deploy
//! it by reload, see the new versions in `intops flows history`, and show
//! the old version's definition for a rollback.

use std::time::Duration;

use intops_tests::pipeline::app_flows;
use intops_tests::{MockTarget, Pipeline, cli, poll_until};
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(60);

/// The base flows: every record to `/records`, records with `n >= 3` to
/// `/big` too.
fn base_flows(target: &MockTarget) -> String {
    app_flows(
        &target.base_url(),
        "t",
        "",
        r#"
[[flows]]
id = "big-to-t"
source = "app"
when = '.n >= 3'
target = "t"
path = "/big"
map = '{id: .id}'
"#,
    )
}

/// The change: a new body field (which fails on a text `n`), a narrower
/// condition, and a new flow.
fn changed_flows(base: &str) -> String {
    let changed = base
        .replace(
            "map = '{id: .id, n: .n}'",
            "map = '{id: .id, n: .n, next: (.n + 1)}'",
        )
        .replace("when = '.n >= 3'", "when = '.n >= 5'");
    format!(
        "{changed}\n[[flows]]\nid = \"small-to-t\"\nsource = \"app\"\nwhen = '.n == 1'\ntarget = \"t\"\npath = \"/small\"\n"
    )
}

/// `intops flows history --json`, one object per line.
async fn history(prefix: &str) -> Vec<Value> {
    let out = cli::output(prefix, &["flows", "history", "--json"]).await;
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// The current version of each flow in `history`.
fn current(history: &[Value]) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = history
        .iter()
        .filter(|v| v["current"] == true)
        .map(|v| {
            (
                v["flow_id"].as_str().unwrap_or_default().to_string(),
                v["version"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    out.sort();
    out
}

fn flow<'a>(report: &'a Value, id: &str) -> &'a Value {
    report["flows"]
        .as_array()
        .and_then(|flows| flows.iter().find(|f| f["flow_id"] == id))
        .unwrap_or_else(|| panic!("flow {id} in {report}"))
}

fn counts(f: &Value) -> [u64; 8] {
    [
        "events",
        "routed_before",
        "routed_after",
        "newly_routed",
        "no_longer_routed",
        "body_changed",
        "new_errors",
        "fixed_errors",
    ]
    .map(|k| f[k].as_u64().unwrap_or_else(|| panic!("{k} in {f}")))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_change_is_diffed_over_recorded_traffic_deployed_by_reload_and_kept() {
    let target = MockTarget::start().await.expect("target");
    let base = base_flows(&target);
    let pipeline = Pipeline::start("change", &base, &[])
        .await
        .expect("pipeline");
    let prefix = pipeline.prefix.clone();

    // Transform recorded the versions it started with.
    let started = poll_until("the started versions in history", WAIT, || async {
        let h = history(&prefix).await;
        (current(&h).len() == 2).then_some(h)
    })
    .await;
    let deployed = current(&started);
    assert_eq!(
        deployed.iter().map(|(f, _)| f.as_str()).collect::<Vec<_>>(),
        ["app-to-t", "big-to-t"]
    );

    // Traffic: n = 1..6 and one record whose n is text.
    let mut records: Vec<Value> = (1..=6)
        .map(|n| json!({"id": format!("r{n}"), "n": n}))
        .collect();
    records.push(json!({"id": "rx", "n": "x"}));
    let ids = pipeline.post_json("app", &Value::Array(records)).await;
    poll_until("the traffic delivered", WAIT, || async {
        (target.requests().len() >= 7 + 5).then_some(())
    })
    .await;

    let dir = tempfile::tempdir().expect("tempdir");
    let changed_path = dir.path().join("changed.toml");
    let changed = changed_flows(&base);
    std::fs::write(&changed_path, &changed).expect("write");
    let changed_arg = changed_path.to_str().expect("utf-8 path");

    // The diff against the deployed versions: exit 1, exact counts.
    let out = cli::output(
        &prefix,
        &["flows", "diff", changed_arg, "--since", "1h", "--json"],
    )
    .await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_str(stdout.trim()).expect("one JSON object");
    assert_eq!(report["events"], 7, "{report}");
    // events, routed before/after, newly, no longer, bodies, new/fixed errors
    assert_eq!(
        counts(flow(&report, "app-to-t")),
        [7, 7, 6, 0, 0, 6, 1, 0],
        "{report}"
    );
    assert_eq!(
        counts(flow(&report, "big-to-t")),
        [7, 5, 3, 0, 2, 0, 0, 0],
        "{report}"
    );
    assert_eq!(
        counts(flow(&report, "small-to-t")),
        [7, 0, 1, 1, 0, 0, 0, 0],
        "{report}"
    );
    let app = flow(&report, "app-to-t");
    let body = app["examples"]
        .as_array()
        .and_then(|e| e.iter().find(|e| e["kind"] == "body_changed"))
        .unwrap_or_else(|| panic!("a body example in {app}"));
    assert_eq!(body["changes"][0]["path"], ".next", "{body}");
    let error = app["examples"]
        .as_array()
        .and_then(|e| e.iter().find(|e| e["kind"] == "new_error"))
        .unwrap_or_else(|| panic!("an error example in {app}"));
    assert_eq!(error["entity_key"], "rx", "{error}");

    // The deployed file against itself changes nothing; a broken file is
    // an invalid input.
    let same_path = dir.path().join("same.toml");
    std::fs::write(&same_path, &base).expect("write");
    let same = cli::output(
        &prefix,
        &[
            "flows",
            "diff",
            same_path.to_str().expect("path"),
            "--since",
            "1h",
        ],
    )
    .await;
    assert_eq!(
        same.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&same.stdout)
    );
    let broken_path = dir.path().join("broken.toml");
    std::fs::write(&broken_path, changed.replace("'.n >= 5'", "'.n >='")).expect("write");
    let broken = cli::output(
        &prefix,
        &["flows", "diff", broken_path.to_str().expect("path")],
    )
    .await;
    assert_eq!(
        broken.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&broken.stderr)
    );

    // Deploy by reload: the new versions become current, the old ones stay.
    std::fs::write(pipeline.flows_path(), &changed).expect("deploy");
    let after = poll_until("the deployed change in history", WAIT, || async {
        let h = history(&prefix).await;
        // The new versions are written before the old ones are marked
        // no longer current: wait for both.
        (current(&h).len() == 3 && h.len() == 5).then_some(h)
    })
    .await;
    assert_eq!(
        after.len(),
        5,
        "two old versions and three current: {after:?}"
    );
    let now = current(&after);
    let old_app = &deployed[0].1;
    assert!(now.iter().all(|(_, v)| v != old_app), "{now:?}");
    let again = cli::output(&prefix, &["flows", "diff", changed_arg, "--since", "1h"]).await;
    assert_eq!(
        again.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&again.stdout)
    );

    // The way back: the old version's definition.
    let shown = cli::run(&prefix, &["flows", "show", "--version", old_app]).await;
    assert!(shown.contains("id = \"app-to-t\""), "{shown}");
    assert!(shown.contains("map = \"{id: .id, n: .n}\""), "{shown}");

    // The monitor's lineage links the version an event was routed with to
    // its definition.
    let url = poll_until("the routed stage in the event's lineage", WAIT, || async {
        let lineage: Value = reqwest::get(pipeline.event_url(&ids[0]))
            .await
            .ok()?
            .json()
            .await
            .ok()?;
        lineage["stages"]
            .as_array()?
            .iter()
            .find(|s| s["flow_id"] == "app-to-t")?["flow_version_url"]
            .as_str()
            .map(str::to_string)
    })
    .await;
    assert!(url.ends_with(old_app.as_str()), "{url}");
    let page = reqwest::get(format!("http://{}/events/{}", pipeline.monitor, ids[0]))
        .await
        .expect("monitor answers")
        .text()
        .await
        .expect("page");
    assert!(
        page.contains(&format!("href=\"{url}\"")),
        "the event page links the version"
    );
    let version: Value = reqwest::get(format!("http://{}{url}", pipeline.monitor))
        .await
        .expect("monitor answers")
        .json()
        .await
        .expect("json");
    assert_eq!(version["versions"][0]["flow_id"], "app-to-t", "{version}");
    assert_eq!(version["versions"][0]["current"], false, "{version}");
    pipeline.stop().await.expect("clean stop");
}
