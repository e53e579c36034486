//! A polled source against a local test server: pagination, a restart in
//! the middle of a run, and overlapping windows end with every record
//! exactly once on the events topic.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::{Query, State};
use axum::response::IntoResponse as _;
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
    let _turn = intops_tests::serial::beside_others().await;
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
    .await
    .expect("poll runs counted");
    poll_until("three more poll runs", WAIT, || async {
        (intops_tests::metrics::sum(
            ingest.addr,
            "intops_ingest_poll_runs_total{source=\"api\",result=\"ok\"}",
        )
        .await
            >= Some(runs + 3.0))
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
    let total = topic::count_at(&bootstrap, &format!("{prefix}.events"));
    assert_eq!(total, 27, "no duplicates after further runs");
    ingest.stop().await.expect("clean stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn next_page_cursors_fill_the_url_template() {
    let _turn = intops_tests::serial::beside_others().await;
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

/// Requests a server saw: path and the `x-api-key` header.
type Seen = Arc<Mutex<Vec<(String, Option<String>)>>>;

/// A server that records every request and answers with `answer`.
async fn recording_server(
    answer: impl Fn(&str) -> axum::response::Response + Clone + Send + Sync + 'static,
) -> (String, Seen) {
    let seen: Seen = Arc::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    let s = seen.clone();
    let router = Router::new().fallback(move |req: axum::extract::Request| {
        let (s, answer) = (s.clone(), answer.clone());
        async move {
            let key = req
                .headers()
                .get("x-api-key")
                .and_then(|v| v.to_str().ok())
                .map(String::from);
            let path = req
                .uri()
                .path_and_query()
                .map(|p| p.to_string())
                .unwrap_or_default();
            s.lock().expect("lock").push((path.clone(), key));
            answer(&path)
        }
    });
    tokio::spawn(async move { axum::serve(listener, router).await });
    (base, seen)
}

fn guarded_flows(source: &str, base: &str) -> String {
    format!(
        r#"
[[sources]]
id = "{source}"
kind = "poll"
entity_key = ".id"
dedupe_key = '.id + "@" + .updated'
[sources.poll]
url = "{base}/search?since={{{{cursor}}}}"
interval = "100ms"
initial_cursor = "2026-01-01T00:00:00Z"
records = ".items[]"
cursor = ".updated"
next = ".next"
headers = {{ "x-api-key" = {{ file = "{{secrets}}/key" }} }}
"#
    )
}

const API_KEY: &str = "poll-secret-key";

/// Waits for `count` refused runs of `source`.
async fn refused_runs(ingest: &IngestOnly, source: &str, count: f64) {
    let line = format!("intops_ingest_poll_runs_total{{source=\"{source}\",result=\"refused\"}}");
    poll_until("refused poll runs", WAIT, || async {
        (intops_tests::metrics::sum(ingest.addr, &line).await >= Some(count)).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn next_links_to_another_origin_are_refused_and_get_no_secret() {
    let _turn = intops_tests::serial::beside_others().await;
    let (elsewhere, stolen) =
        recording_server(|_| axum::Json(json!({"items": []})).into_response()).await;
    let next = format!("{elsewhere}/steal");
    let (base, asked) = recording_server(move |_| {
        axum::Json(json!({
            "items": [record(1, 1)],
            "next": next,
        }))
        .into_response()
    })
    .await;
    let ingest = IngestOnly::start(
        "polloffsite",
        &guarded_flows("offsite", &base),
        &[("key", API_KEY)],
        &stack::bootstrap(),
        Duration::from_secs(10),
    )
    .await
    .expect("ingest");
    refused_runs(&ingest, "offsite", 2.0).await;
    assert!(
        stolen.lock().expect("lock").is_empty(),
        "the other origin was never called"
    );
    let asked = asked.lock().expect("lock").clone();
    assert!(
        asked.iter().all(|(_, key)| key.as_deref() == Some(API_KEY)),
        "the source itself gets its key: {asked:?}"
    );
    // The page before the link was captured once; nothing else.
    assert_eq!(
        captured(&ingest.prefix, 1).await,
        ["r1@2026-11-28T08:01:00Z"]
    );
    assert_eq!(topic::count(&format!("{}.events", ingest.prefix)), 1);
    ingest.stop().await.expect("clean stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redirects_are_not_followed() {
    let _turn = intops_tests::serial::beside_others().await;
    let (elsewhere, stolen) = recording_server(|_| {
        axum::Json(json!({"items": [record(9, 9)], "next": null})).into_response()
    })
    .await;
    let target = format!("{elsewhere}/moved");
    let (base, asked) = recording_server(move |_| {
        (
            axum::http::StatusCode::TEMPORARY_REDIRECT,
            [(axum::http::header::LOCATION, target.clone())],
        )
            .into_response()
    })
    .await;
    let ingest = IngestOnly::start(
        "pollredirect",
        &guarded_flows("redirected", &base),
        &[("key", API_KEY)],
        &stack::bootstrap(),
        Duration::from_secs(10),
    )
    .await
    .expect("ingest");
    refused_runs(&ingest, "redirected", 2.0).await;
    assert!(!asked.lock().expect("lock").is_empty());
    assert!(
        stolen.lock().expect("lock").is_empty(),
        "the redirect target was never called"
    );
    assert_eq!(topic::count(&format!("{}.events", ingest.prefix)), 0);
    ingest.stop().await.expect("clean stop");
}
