//! Ingest reloads its flows file (issue 18, item 4): a changed source's
//! authentication applies to the next request, a new webhook source is
//! accepted, a new polled source starts polling, a removed one stops; a
//! file with a missing secret is refused, counted, and the last valid
//! sources keep running.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::routing::get;
use intops_tests::pipeline::IngestOnly;
use intops_tests::{poll_until, stack, topic};
use serde_json::json;

const WAIT: Duration = Duration::from_secs(60);

const V1: &str = r#"
[[sources]]
id = "app"
kind = "webhook"
auth = "none"
entity_key = ".id"
"#;

/// `app` now needs a bearer token; `app2` is new; `api` is polled.
fn v2(api: &str) -> String {
    format!(
        r#"
[[sources]]
id = "app"
kind = "webhook"
auth = {{ bearer = {{ file = "{{secrets}}/token" }} }}
entity_key = ".id"

[[sources]]
id = "app2"
kind = "webhook"
auth = "none"
entity_key = ".id"

[[sources]]
id = "api"
kind = "poll"
entity_key = ".id"
dedupe_key = ".id"
[sources.poll]
url = "{api}/items?since={{{{cursor}}}}"
interval = "200ms"
initial_cursor = "0"
records = ".items[]"
cursor = ".id"
"#
    )
}

/// A source API answering one record and counting the requests.
async fn api() -> (String, Arc<AtomicUsize>) {
    let asked = Arc::new(AtomicUsize::new(0));
    let app = Router::new()
        .route(
            "/items",
            get(|State(asked): State<Arc<AtomicUsize>>| async move {
                asked.fetch_add(1, Ordering::SeqCst);
                axum::Json(json!({"items": [{"id": "polled-1"}]}))
            }),
        )
        .with_state(asked.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}"), asked)
}

async fn post(url: &str, token: Option<&str>) -> u16 {
    let mut request = reqwest::Client::new().post(url).json(&json!({"id": "a1"}));
    if let Some(t) = token {
        request = request.bearer_auth(t);
    }
    request
        .send()
        .await
        .expect("ingest answers")
        .status()
        .as_u16()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sources_reload_without_a_restart_and_a_bad_file_is_refused() {
    let ingest = IngestOnly::start(
        "ingreload",
        V1,
        &[("token", "s3cret")],
        &stack::bootstrap(),
        Duration::from_secs(10),
    )
    .await
    .expect("ingest");
    assert_eq!(post(&ingest.url("app"), None).await, 202);
    assert_eq!(post(&ingest.url("app2"), None).await, 404);

    let (api_url, asked) = api().await;
    ingest.rewrite_flows(&v2(&api_url)).expect("rewrite");
    poll_until("the new webhook source", WAIT, || async {
        (post(&ingest.url("app2"), None).await == 202).then_some(())
    })
    .await;
    assert_eq!(post(&ingest.url("app"), None).await, 401);
    assert_eq!(post(&ingest.url("app"), Some("s3cret")).await, 202);
    let events = format!("{}.events", ingest.prefix);
    poll_until("the polled record on the events topic", WAIT, || async {
        let written = usize::try_from(topic::count(&events)).unwrap_or(0);
        let keys: Vec<String> = topic::read(&events, written, WAIT)
            .iter()
            .filter_map(|m| {
                rdkafka::message::Message::key(m).map(|k| String::from_utf8_lossy(k).into_owned())
            })
            .collect();
        keys.iter().any(|k| k == "api:polled-1").then_some(())
    })
    .await;

    // A file whose secret is missing is refused as a whole: `app` keeps
    // its token, `app2` stays, `api` keeps polling.
    let metrics = |result: &'static str| {
        let addr = ingest.addr;
        async move {
            intops_tests::metrics::sum(
                addr,
                &format!("intops_flows_reloads_total{{service=\"ingest\",result=\"{result}\"}}"),
            )
            .await
            .unwrap_or(0.0)
        }
    };
    let refused_before = metrics("error").await;
    ingest
        .rewrite_flows(
            &v2(&api_url)
                .replace("/token", "/missing")
                .replace("app2", "app3"),
        )
        .expect("rewrite");
    poll_until("the refused reload counted", WAIT, || async {
        (metrics("error").await > refused_before).then_some(())
    })
    .await;
    assert_eq!(post(&ingest.url("app2"), None).await, 202);
    assert_eq!(post(&ingest.url("app3"), None).await, 404);
    assert_eq!(post(&ingest.url("app"), Some("s3cret")).await, 202);

    // The polled source removed: its poller stops.
    ingest.rewrite_flows(V1).expect("rewrite");
    poll_until("the polled source's removal", WAIT, || async {
        (post(&ingest.url("app2"), None).await == 404).then_some(())
    })
    .await;
    // Stopped: the API is not asked for a second (five intervals).
    let mut last = (asked.load(Ordering::SeqCst), std::time::Instant::now());
    poll_until("the removed source's poller to stop", WAIT, || {
        let n = asked.load(Ordering::SeqCst);
        let quiet = if n != last.0 {
            last = (n, std::time::Instant::now());
            false
        } else {
            last.1.elapsed() >= Duration::from_secs(1)
        };
        async move { quiet.then_some(()) }
    })
    .await;
    ingest.stop().await.expect("clean stop");
}
