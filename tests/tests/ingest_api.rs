//! Ingest against the real broker and registry: every bad input gets its
//! status and a JSON error and writes nothing; batches arrive whole and in
//! order; a broker outage gives 503 and a retry after it is accepted
//! without duplicates.

use std::collections::HashMap;
use std::time::Duration;

use intops_events::IntegrationEvent;
use intops_tests::broker::PrivateBroker;
use intops_tests::pipeline::IngestOnly;
use intops_tests::sign::intops_signature;
use intops_tests::{poll_until, stack, topic};
use rdkafka::message::Message;
use serde_json::{Value, json};

const SECRET: &str = "ingest-test-secret";
const WAIT: Duration = Duration::from_secs(60);

const FLOWS: &str = r#"
[[sources]]
id = "signed"
kind = "webhook"
auth = { hmac_sha256 = { file = "{secrets}/hmac" } }
entity_key = ".sys_id"
dedupe_key = '.sys_id + "@" + .sys_updated_on'
max_body_bytes = 4096

[[sources]]
id = "token"
kind = "webhook"
auth = { bearer = { file = "{secrets}/token" } }
entity_key = ".id"

[[sources]]
id = "limited"
kind = "webhook"
auth = "none"
entity_key = ".id"
rate_limit = "3/m"

[[sources]]
id = "open"
kind = "webhook"
auth = "none"
entity_key = ".id"
"#;

async fn start(name: &str, bootstrap: &str, ack_timeout: Duration) -> IngestOnly {
    IngestOnly::start(
        name,
        FLOWS,
        &[("hmac", SECRET), ("token", "tok-123")],
        bootstrap,
        ack_timeout,
    )
    .await
    .expect("ingest")
}

/// Status, JSON body and Retry-After of an answer.
type Answer = (u16, Value, Option<String>);

async fn post(url: &str, body: &str, headers: &[(&str, &str)]) -> Answer {
    let mut req = reqwest::Client::new().post(url).body(body.to_string());
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let r = req.send().await.expect("ingest answers");
    let status = r.status().as_u16();
    let retry_after = r
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .map(String::from);
    let body: Value = r.json().await.unwrap_or(Value::Null);
    (status, body, retry_after)
}

async fn post_signed(url: &str, body: &str) -> Answer {
    let sig = intops_signature(SECRET, body.as_bytes());
    post(
        url,
        body,
        &[
            ("x-intops-signature", &sig),
            ("content-type", "application/json"),
        ],
    )
    .await
}

fn incident(sys_id: &str, updated: &str) -> String {
    json!({"sys_id": sys_id, "sys_updated_on": updated, "number": "INC1", "priority": "1"})
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_bad_input_is_refused_clearly_and_writes_nothing() {
    let ingest = start("badinput", &stack::bootstrap(), Duration::from_secs(10)).await;
    let signed = ingest.url("signed");
    let ok = incident("a1", "2026-11-28 08:00:00");
    let cases: Vec<(&str, Answer, u16, &str, &str)> = vec![
        (
            "unknown source",
            post(&ingest.url("nosuch"), &ok, &[]).await,
            404,
            "unknown_source",
            "nosuch",
        ),
        (
            "no signature",
            post(&signed, &ok, &[]).await,
            401,
            "unauthorized",
            "X-Intops-Signature",
        ),
        (
            "wrong signature",
            post(
                &signed,
                &ok,
                &[(
                    "x-intops-signature",
                    &intops_signature("other", ok.as_bytes()),
                )],
            )
            .await,
            401,
            "unauthorized",
            "does not match",
        ),
        (
            "wrong token",
            post(
                &ingest.url("token"),
                r#"{"id":1}"#,
                &[("authorization", "Bearer nope")],
            )
            .await,
            401,
            "unauthorized",
            "token",
        ),
        (
            "malformed json",
            post_signed(&signed, "{\n  \"sys_id\": }").await,
            400,
            "malformed_json",
            "line 2",
        ),
        (
            "empty body",
            post_signed(&signed, "").await,
            400,
            "invalid_body",
            "empty",
        ),
        (
            "not an object",
            post_signed(&signed, "[1, 2]").await,
            400,
            "invalid_body",
            "record 0",
        ),
        (
            "scalar",
            post_signed(&signed, "\"hi\"").await,
            400,
            "invalid_body",
            "expected a JSON object",
        ),
        (
            "entity key missing in record 1",
            post_signed(&signed, &format!("[{ok}, {{\"sys_updated_on\": \"x\"}}]")).await,
            422,
            "unprocessable_record",
            "record 1: entity_key .sys_id",
        ),
        (
            "too large",
            post_signed(&signed, &format!("[{}]", vec![ok.as_str(); 60].join(","))).await,
            413,
            "payload_too_large",
            "4096",
        ),
        (
            "ndjson with a bad line",
            post(
                &ingest.url("open"),
                "{\"id\":1}\n{\"id\":\n",
                &[("content-type", "application/x-ndjson")],
            )
            .await,
            400,
            "malformed_json",
            "line 2",
        ),
    ];
    for (name, (status, body, _), want_status, want_code, want_detail) in &cases {
        assert_eq!(status, want_status, "{name}: {body}");
        assert_eq!(body["error"], *want_code, "{name}: {body}");
        let detail = body["detail"].as_str().unwrap_or_default();
        assert!(
            detail.contains(want_detail),
            "{name}: detail {detail:?} lacks {want_detail:?}"
        );
        assert!(
            !body.to_string().contains(SECRET) && !body.to_string().contains("tok-123"),
            "{name} leaks a secret"
        );
    }
    let events = format!("{}.events", ingest.prefix);
    assert_eq!(topic::count(&events), 0, "refused requests wrote nothing");

    // The rate limit: 3 events a minute; a 2-event batch, then 2 more.
    let limited = ingest.url("limited");
    let (status, _, _) = post(&limited, r#"[{"id":1},{"id":2}]"#, &[]).await;
    assert_eq!(status, 202);
    let (status, body, retry_after) = post(&limited, r#"[{"id":3},{"id":4}]"#, &[]).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (429, Some("rate_limited"))
    );
    let secs: u64 = retry_after.expect("Retry-After").parse().expect("seconds");
    assert!((1..=60).contains(&secs), "{secs}");

    // A valid request is written, so the zero above was not blindness.
    let (status, body, _) = post_signed(&signed, &ok).await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(topic::count(&events), 3);
    ingest.stop().await.expect("clean stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_event_ndjson_batch_arrives_whole_and_in_order_per_entity() {
    let ingest = start("ndjson", &stack::bootstrap(), Duration::from_secs(10)).await;
    let lines: Vec<String> = (0..1000)
        .map(|i| json!({"id": format!("e{}", i % 10), "seq": i}).to_string())
        .collect();
    let (status, body, _) = post(
        &ingest.url("open"),
        &lines.join("\n"),
        &[("content-type", "application/x-ndjson")],
    )
    .await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["accepted"], 1000);
    let ids: Vec<String> = body["event_ids"]
        .as_array()
        .expect("ids")
        .iter()
        .map(|v| v.as_str().unwrap_or_default().to_string())
        .collect();
    assert_eq!(ids.len(), 1000);

    let records = topic::read(&format!("{}.events", ingest.prefix), 1000, WAIT);
    let codec = stack::codec();
    let mut last_seq: HashMap<String, i64> = HashMap::new();
    let mut by_id: HashMap<String, i64> = HashMap::new();
    for m in &records {
        let e: IntegrationEvent = codec
            .decode(m.payload().expect("value"))
            .await
            .expect("decodes");
        assert_eq!(m.key(), Some(format!("open:{}", e.entity_key).as_bytes()));
        let seq = serde_json::from_str::<Value>(&e.payload).expect("payload")["seq"]
            .as_i64()
            .expect("seq");
        if let Some(prev) = last_seq.insert(e.entity_key.clone(), seq) {
            assert!(
                seq > prev,
                "entity {} went from {prev} to {seq}",
                e.entity_key
            );
        }
        by_id.insert(e.event_id, seq);
    }
    assert_eq!(by_id.len(), 1000, "no duplicates");
    for (i, id) in ids.iter().enumerate() {
        assert_eq!(
            by_id.get(id),
            Some(&(i as i64)),
            "event ids listed in input order"
        );
    }
    ingest.stop().await.expect("clean stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_outage_gives_503_and_a_retry_afterwards_is_not_duplicated() {
    let mut broker = PrivateBroker::start().await.expect("private broker");
    let ingest = start("outage", &broker.bootstrap(), Duration::from_secs(3)).await;
    let url = ingest.url("signed");
    let events = format!("{}.events", ingest.prefix);
    let first = incident("b1", "2026-11-28 08:00:00");
    let (status, before, _) = post_signed(&url, &first).await;
    assert_eq!(status, 202, "{before}");

    broker.kill().await;
    let health = format!("http://{}/readyz", ingest.addr);
    poll_until("readyz to report the broker down", WAIT, || async {
        let r = reqwest::get(&health).await.ok()?;
        (r.status() == 503).then_some(())
    })
    .await;
    let second = format!(
        "[{}, {}]",
        incident("b2", "2026-11-28 08:01:00"),
        incident("b3", "2026-11-28 08:01:00")
    );
    let (status, body, retry_after) = post_signed(&url, &second).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (503, Some("unavailable")),
        "{body}"
    );
    assert!(retry_after.is_some());

    broker.restart().await.expect("restart");
    let (status, retried, _) = poll_until("the retry to be accepted", WAIT, || async {
        let r = post_signed(&url, &second).await;
        (r.0 == 202).then_some(r)
    })
    .await;
    assert_eq!(status, 202);
    // Same dedupe keys, same ids, and one record each on the topic.
    let again = post_signed(&url, &first).await;
    assert_eq!(again.1["event_ids"], before["event_ids"]);
    let records = topic::read_from(&broker.bootstrap(), &events, 4, WAIT);
    let codec = stack::codec();
    let mut ids = Vec::new();
    for m in &records {
        let e: IntegrationEvent = codec
            .decode(m.payload().expect("value"))
            .await
            .expect("decodes");
        ids.push(e.event_id);
    }
    ids.sort();
    let mut expected: Vec<String> = retried["event_ids"]
        .as_array()
        .into_iter()
        .flatten()
        .chain(before["event_ids"].as_array().into_iter().flatten())
        .chain(before["event_ids"].as_array().into_iter().flatten())
        .filter_map(|v| v.as_str().map(String::from))
        .collect();
    expected.sort();
    assert_eq!(
        ids, expected,
        "the 503'd batch was not written behind the retry's back"
    );
    assert_eq!(topic::count_at(&broker.bootstrap(), &events), 4);
    ingest.stop().await.expect("clean stop");
}
