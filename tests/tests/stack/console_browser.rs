//! The console in a real browser (headless Chromium over WebDriver) on the
//! real stack: a viewer signs in, opens the message feed, filters it,
//! opens an event (its timeline, its payload and request with the
//! configured fields masked), previews a replay and is offered no confirm;
//! an operator signs in, replays the dead letters from the page and sees
//! them delivered, pauses and resumes the target. With
//! `INTOPS_SCREENSHOTS_DIR` set (deploy/local/screenshots.sh) each page is
//! saved as a PNG for docs/console.md.

use std::time::Duration;

use intops_tests::browser::Browser;
use intops_tests::{MockTarget, Pipeline, poll_until, topic};
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(90);
/// Ids no other scenario uses (the process's metrics are shared).
const TARGET: &str = "crm-browser";
const FLOW: &str = "app-to-crm-browser";

fn flows(target: &MockTarget) -> String {
    format!(
        r#"
[[sources]]
id = "app"
kind = "webhook"
auth = "none"
entity_key = ".id"
redact = [".secret"]

[[targets]]
id = "{TARGET}"
base_url = "{}"
retry = {{ max_attempts = 1 }}
circuit_breaker = {{ failures = 0 }}
redact = [".n"]

[[flows]]
id = "{FLOW}"
source = "app"
target = "{TARGET}"
method = "POST"
path = "/records"
map = '{{id: .id, n: .n}}'
slo = {{ success_ratio = 0.9 }}
"#,
        target.base_url()
    )
}

/// Opens `url` until `css`'s text satisfies `check` (pages are rendered
/// from state that catches up within moments).
async fn until_text(
    b: &Browser,
    url: &str,
    css: &str,
    what: &str,
    check: impl Fn(&str) -> bool,
) -> String {
    poll_until(what, WAIT, || async {
        b.open(url).await.ok()?;
        let text = b.text(css).await.ok()?;
        check(&text).then_some(text)
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_viewer_reads_and_an_operator_replays_and_pauses_in_the_browser() {
    let _turn = intops_tests::serial::beside_others().await;
    let target = MockTarget::start().await.expect("target");
    target.set_status(400);
    let p = Pipeline::start("browser", &flows(&target), &[])
        .await
        .expect("pipeline");
    let monitor = intops_tests::pipeline::start_console(
        &p,
        &[
            ("olga", "operator", "olga-browser-token"),
            ("vic", "viewer", "vic-browser-token"),
        ],
    )
    .await
    .expect("console monitor");
    let base = format!("http://{}", monitor.addr);
    let records: Vec<Value> = ["b1", "b2"]
        .iter()
        .map(|id| json!({"id": id, "n": 7, "secret": "s3cr3t-value", "title": "printer on fire"}))
        .collect();
    p.post_json("app", &Value::Array(records)).await;
    let dlq = format!("{}.dlq.delivery", p.prefix);
    poll_until("two dead letters", WAIT, || async {
        (topic::count(&dlq) == 2).then_some(())
    })
    .await;

    let b = Browser::start().await.expect("browser");
    // A page without a caller asks for a sign-in.
    b.open(&format!("{base}/feed")).await.expect("open");
    assert!(
        b.has("a[href='/login']").await.expect("page"),
        "a sign-in link"
    );

    // The viewer signs in and reads the feed, filtered.
    b.open(&format!("{base}/login")).await.expect("open");
    b.submit("#login", &[("token", "vic-browser-token")])
        .await
        .expect("sign in");
    b.wait("h1", "intops monitor").await;
    b.screenshot("status").await.expect("screenshot");
    let feed = format!("{base}/feed?source=app");
    until_text(
        &b,
        &feed,
        "#feed",
        "both events dead-lettered in the feed",
        |t| t.matches("dead_lettered").count() == 2,
    )
    .await;
    b.submit("#feed-filters", &[("q", "b2")])
        .await
        .expect("filter");
    b.wait("p.muted", "1 event(s) match").await;
    assert_eq!(
        b.count("#feed tr").await.expect("rows"),
        2,
        "a header and b2's row"
    );
    b.screenshot("feed").await.expect("screenshot");

    // The event page: timeline, masked payload and request, the answer.
    b.click("#feed a[href^='/events/']")
        .await
        .expect("open the event");
    b.wait("#timeline", "accepted").await;
    let timeline = b.text("#timeline").await.expect("timeline");
    assert!(
        timeline.contains("ingest · accepted") && timeline.contains("dead_lettered"),
        "{timeline}"
    );
    let payload = b.text("#payload").await.expect("payload");
    assert!(
        payload.contains("printer on fire") && payload.contains("***"),
        "{payload}"
    );
    let page = b.client.source().await.expect("source");
    assert!(
        !page.contains("s3cr3t-value"),
        "the source's redacted field never shows"
    );
    let request = b.text("pre.request").await.expect("request");
    assert!(request.contains(r#""n": "***""#), "{request}");
    b.screenshot("event").await.expect("screenshot");

    // The viewer may preview a replay but is offered no confirm.
    b.open(&format!("{base}/dead-letters?target={TARGET}"))
        .await
        .expect("open");
    assert!(
        b.text("#dlq-total")
            .await
            .expect("total")
            .starts_with("2 dead letter(s), 2 not replayed")
    );
    b.screenshot("dead-letters").await.expect("screenshot");
    b.click("#preview-replay").await.expect("preview");
    let counts = b.wait("#preview-counts", "selected").await;
    assert!(
        counts.starts_with("2 selected: 2 would be replayed"),
        "{counts}"
    );
    assert!(
        b.has("#not-allowed").await.expect("notice"),
        "the viewer is told why"
    );
    assert!(
        !b.has("#confirm-replay").await.expect("page"),
        "no confirm for a viewer"
    );
    b.open(&format!("{base}/targets")).await.expect("open");
    assert!(b.has("#not-allowed").await.expect("notice"));
    assert!(
        !b.has("#targets form").await.expect("page"),
        "no pause for a viewer"
    );
    assert_eq!(
        topic::count(&format!("{}.audit", p.prefix)),
        0,
        "the viewer wrote nothing"
    );

    // The operator signs in (after the viewer signs out) and replays.
    b.click(".who button").await.expect("sign out");
    b.wait("h1", "Sign in").await;
    b.submit("#login", &[("token", "olga-browser-token")])
        .await
        .expect("sign in");
    b.wait("h1", "intops monitor").await;
    target.set_status(200);
    b.open(&format!("{base}/dead-letters?target={TARGET}"))
        .await
        .expect("open");
    b.click("#preview-replay").await.expect("preview");
    b.wait("#confirm-replay", "Replay 2").await;
    b.screenshot("replay-preview").await.expect("screenshot");
    b.click("#confirm-replay button").await.expect("confirm");
    // The progress page refreshes itself while the replay runs; the test
    // waits on its JSON (a page reloading every 2 s is no place to poll).
    b.wait("#replay-state", "olga").await;
    poll_until("the replay finished", WAIT, || async {
        let latest: Value = reqwest::Client::new()
            .get(format!("{base}/api/v1/replays/latest"))
            .bearer_auth("olga-browser-token")
            .send()
            .await
            .ok()?
            .json()
            .await
            .ok()?;
        (latest["running"] == false && latest["finished_at"].is_i64()).then_some(())
    })
    .await;
    b.open(&format!("{base}/replays/latest"))
        .await
        .expect("open");
    b.wait("#replay-state", "Finished").await;
    assert_eq!(
        b.text("#replay-counts").await.expect("counts"),
        "2 sent, 0 parked."
    );
    assert!(
        b.text("#replay-state")
            .await
            .expect("state")
            .ends_with("by olga")
    );
    b.screenshot("replay").await.expect("screenshot");
    poll_until("both replayed records delivered", WAIT, || async {
        (target.requests().iter().filter(|r| r.status == 200).count() == 2).then_some(())
    })
    .await;
    until_text(
        &b,
        &feed,
        "#feed",
        "both events delivered in the feed",
        |t| t.matches("delivered").count() == 2,
    )
    .await;

    // The flow's page charts the results.
    b.open(&format!("{base}/flows/{FLOW}")).await.expect("open");
    assert!(
        b.count("#chart-results rect.delivered")
            .await
            .expect("bars")
            >= 1
    );
    assert!(b.has("#chart-latency polyline").await.expect("line"));
    b.screenshot("flow").await.expect("screenshot");

    // Pause and resume from the targets page, with a reason.
    b.open(&format!("{base}/targets")).await.expect("open");
    b.submit(
        &format!("#target-{TARGET} form"),
        &[("reason", "crm upgrade")],
    )
    .await
    .expect("pause");
    b.wait(&format!("#target-{TARGET}"), "pause by olga").await;
    // The delivery replica reports its own pause a moment later.
    let row = until_text(
        &b,
        &format!("{base}/targets"),
        &format!("#target-{TARGET}"),
        "the replica paused by the operator",
        |t| t.contains("not sending: paused by olga: crm upgrade"),
    )
    .await;
    assert!(row.contains("pause by olga"), "{row}");
    b.screenshot("targets").await.expect("screenshot");
    b.submit(
        &format!("#target-{TARGET} form"),
        &[("reason", "upgrade done")],
    )
    .await
    .expect("resume");
    b.wait(&format!("#target-{TARGET}"), "resume by olga").await;
    until_text(
        &b,
        &format!("{base}/targets"),
        &format!("#target-{TARGET}"),
        "the target delivering again",
        |t| t.contains("delivering") && t.contains("sending, circuit closed"),
    )
    .await;

    b.close().await.expect("browser closes");
    monitor.stop().await.expect("console monitor stops");
    p.stop().await.expect("clean stop");
}
