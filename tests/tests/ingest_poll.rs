//! A polled source against a local test server: pagination, a restart in
//! the middle of a run, and overlapping windows end with every record
//! exactly once on the events topic.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::{Query, State};
use axum::routing::get;
use intops_events::IntegrationEvent;
use intops_tests::pipeline::IngestOnly;
use intops_tests::{poll_until, stack, topic};
use rdkafka::message::Message;
use serde_json::{Value, json};
use tokio::sync::Notify;

const WAIT: Duration = Duration::from_secs(60);
const PAGE: usize = 10;

/// A source API: records sorted by `updated`, `?since=` (inclusive),
/// `&page=`, ten per page, a `next` link; page 1 can be held back.
#[derive(Default)]
struct Api {
    records: Mutex<Vec<Value>>,
    hold_page_1: Mutex<bool>,
    page_1_asked: Notify,
    release: Notify,
}

async fn search(
    State(api): State<Arc<Api>>,
    Query(q): Query<HashMap<String, String>>,
) -> axum::Json<Value> {
    let since = q.get("since").cloned().unwrap_or_default();
    let page: usize = q.get("page").and_then(|p| p.parse().ok()).unwrap_or(0);
    if page == 1 && *api.hold_page_1.lock().expect("lock") {
        api.page_1_asked.notify_one();
        api.release.notified().await;
    }
    let matching: Vec<Value> = api
        .records
        .lock()
        .expect("lock")
        .iter()
        .filter(|r| r["updated"].as_str().unwrap_or_default() >= since.as_str())
        .cloned()
        .collect();
    let items: Vec<Value> = matching
        .iter()
        .skip(page * PAGE)
        .take(PAGE)
        .cloned()
        .collect();
    let more = (page + 1) * PAGE < matching.len();
    let next = more.then(|| format!("/search?since={since}&page={}", page + 1));
    let next_page = more.then(|| (page + 1).to_string());
    axum::Json(json!({"items": items, "next": next, "next_page": next_page}))
}

fn record(i: usize, minute: usize) -> Value {
    json!({"id": format!("r{i}"), "updated": format!("2026-11-28T08:{minute:02}:00Z"), "n": i})
}

fn flows(base: &str) -> String {
    flows_with(base, "page=0", ".next")
}

fn flows_with(base: &str, page: &str, next: &str) -> String {
    format!(
        r#"
[[sources]]
id = "api"
kind = "poll"
entity_key = ".id"
dedupe_key = '.id + "@" + .updated'
[sources.poll]
url = "{base}/search?since={{{{cursor}}}}&{page}"
interval = "100ms"
initial_cursor = "2026-01-01T00:00:00Z"
records = ".items[]"
cursor = ".updated"
next = "{next}"
"#
    )
}

async fn captured(prefix: &str, count: usize) -> Vec<String> {
    let codec = stack::codec();
    let mut keys = Vec::new();
    for m in topic::read(&format!("{prefix}.events"), count, WAIT) {
        let e: IntegrationEvent = codec
            .decode(m.payload().expect("value"))
            .await
            .expect("decodes");
        let v: Value = serde_json::from_str(&e.payload).expect("payload");
        keys.push(format!(
            "{}@{}",
            v["id"].as_str().unwrap_or_default(),
            v["updated"].as_str().unwrap_or_default()
        ));
    }
    keys
}

/// Serves `api` on a loopback port; returns its base URL.
async fn serve(api: Arc<Api>) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    let router = Router::new().route("/search", get(search)).with_state(api);
    tokio::spawn(async move { axum::serve(listener, router).await });
    base
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn polled_records_arrive_exactly_once_across_pages_restarts_and_overlaps() {
    let api = Arc::new(Api::default());
    // 25 records; several share a minute, so the window boundary has ties.
    *api.records.lock().expect("lock") = (0..25).map(|i| record(i, i / 3)).collect();
    *api.hold_page_1.lock().expect("lock") = true;
    let base = serve(api.clone()).await;

    let flows = flows(&base);
    let bootstrap = stack::bootstrap();
    let ingest = IngestOnly::start("poll", &flows, &[], &bootstrap, Duration::from_secs(10))
        .await
        .expect("ingest");
    let prefix = ingest.prefix.clone();
    // First run: page 0 is captured, then ingest stops while page 1 is held.
    tokio::time::timeout(WAIT, api.page_1_asked.notified())
        .await
        .expect("page 1 requested");
    assert_eq!(captured(&prefix, PAGE).await.len(), PAGE);
    ingest.stop().await.expect("clean stop mid-run");
    *api.hold_page_1.lock().expect("lock") = false;
    api.release.notify_waiters();

    // The restart resumes from the saved cursor: the rest, nothing twice.
    let ingest =
        IngestOnly::start_on_prefix(&prefix, &flows, &[], &bootstrap, Duration::from_secs(10))
            .await
            .expect("restart");
    let all = captured(&prefix, 25).await;
    // Later records, one tied with the last cursor value.
    api.records
        .lock()
        .expect("lock")
        .extend([record(25, 8), record(26, 9)]);
    let all_after = captured(&prefix, 27).await;
    let runs = intops_tests::metrics::sum(
        ingest.addr,
        "intops_ingest_poll_runs_total{source=\"api\",result=\"ok\"}",
    )
    .await;
    poll_until("three more poll runs", WAIT, || async {
        (intops_tests::metrics::sum(
            ingest.addr,
            "intops_ingest_poll_runs_total{source=\"api\",result=\"ok\"}",
        )
        .await
            >= runs + 3.0)
            .then_some(())
    })
    .await;
    let settled = topic::read(&format!("{prefix}.events"), 27, WAIT);
    let mut unique = all_after.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(all.len(), 25);
    assert_eq!(unique.len(), 27, "each record exactly once: {all_after:?}");
    assert_eq!(settled.len(), 27);
    let total: i64 = {
        use rdkafka::ClientConfig;
        use rdkafka::consumer::{BaseConsumer, Consumer};
        let c: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", &bootstrap)
            .create()
            .expect("consumer");
        let t = format!("{prefix}.events");
        let md = c
            .fetch_metadata(Some(&t), Duration::from_secs(10))
            .expect("metadata");
        md.topics()[0]
            .partitions()
            .iter()
            .map(|p| {
                let (lo, hi) = c
                    .fetch_watermarks(&t, p.id(), Duration::from_secs(10))
                    .expect("watermarks");
                hi - lo
            })
            .sum()
    };
    assert_eq!(total, 27, "no duplicates after further runs");
    ingest.stop().await.expect("clean stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn next_page_cursors_fill_the_url_template() {
    let api = Arc::new(Api::default());
    *api.records.lock().expect("lock") = (0..25).map(|i| record(i, i)).collect();
    let base = serve(api.clone()).await;
    let flows = flows_with(&base, "page={{next}}", ".next_page");
    let ingest = IngestOnly::start(
        "pollnext",
        &flows,
        &[],
        &stack::bootstrap(),
        Duration::from_secs(10),
    )
    .await
    .expect("ingest");
    let mut keys = captured(&ingest.prefix, 25).await;
    keys.sort();
    keys.dedup();
    assert_eq!(keys.len(), 25, "all three pages, each record once");
    ingest.stop().await.expect("clean stop");
}
