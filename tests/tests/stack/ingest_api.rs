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
    let _turn = intops_tests::serial::beside_others().await;
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
    let _turn = intops_tests::serial::beside_others().await;
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
    let _turn = intops_tests::serial::beside_others().await;
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

const POISON_FLOWS: &str = r#"
[[sources]]
id = "open"
kind = "webhook"
auth = "none"
entity_key = ".id"

[[sources]]
id = "roomy"
kind = "webhook"
auth = "none"
entity_key = ".id"
max_body_bytes = 3000000

[[sources]]
id = "polled"
kind = "poll"
entity_key = ".id"
dedupe_key = ".id"
[sources.poll]
url = "http://127.0.0.1:9/never?since={{cursor}}"
interval = "1h"
records = ".items[]"
cursor = ".updated"

[[sources]]
id = "stamped"
kind = "webhook"
auth = { hmac_sha256 = { file = "{secrets}/hmac" }, timestamp_header = "X-Intops-Timestamp", tolerance = "5m" }
entity_key = ".id"
"#;

/// `{"id":"deep","v":` + `depth - 1` nested arrays around 1 + `}`: `depth`
/// levels in all.
fn nested(depth: usize) -> String {
    format!(
        "{{\"id\":\"deep\",\"v\":{}1{}}}",
        "[".repeat(depth - 1),
        "]".repeat(depth - 1)
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poison_inputs_are_refused_at_the_door_and_write_nothing() {
    let _turn = intops_tests::serial::beside_others().await;
    let ingest = IngestOnly::start(
        "poison",
        POISON_FLOWS,
        &[("hmac", SECRET)],
        &stack::bootstrap(),
        Duration::from_secs(10),
    )
    .await
    .expect("ingest");
    let open = ingest.url("open");
    let ndjson = [("content-type", "application/x-ndjson")];
    let many: Vec<String> = (0..1001).map(|i| format!("{{\"id\":{i}}}")).collect();
    let over_default_body = format!("{{\"id\":\"big\",\"pad\":\"{}\"}}", "x".repeat(900_000));
    let over_record = format!("{{\"id\":\"big\",\"pad\":\"{}\"}}", "x".repeat(1_000_000));
    let cases: Vec<(&str, Answer, u16, &str, &str)> = vec![
        (
            "nesting one level over the default limit",
            post(&open, &nested(65), &[]).await,
            400,
            "invalid_body",
            "limit of 64 levels",
        ),
        (
            "nesting a hundred thousand levels deep",
            post(&open, &nested(100_000), &[]).await,
            400,
            "invalid_body",
            "limit of 64 levels",
        ),
        (
            "deep ndjson line",
            post(&open, &format!("{{\"id\":1}}\n{}\n", nested(65)), &ndjson).await,
            400,
            "invalid_body",
            "limit of 64 levels",
        ),
        (
            "1001 records",
            post(&open, &many.join("\n"), &ndjson).await,
            413,
            "payload_too_large",
            "limit of 1000 records",
        ),
        (
            "1001 records as an array",
            post(&open, &format!("[{}]", many.join(",")), &[]).await,
            413,
            "payload_too_large",
            "limit of 1000 records",
        ),
        (
            "body over the default limit",
            post(&open, &over_default_body, &[]).await,
            413,
            "payload_too_large",
            "limit of 900000 bytes",
        ),
        (
            "record over the Kafka record limit",
            post(&ingest.url("roomy"), &over_record, &[]).await,
            413,
            "payload_too_large",
            "over the limit of 1000000 bytes",
        ),
        (
            "a post to a polled source",
            post(&ingest.url("polled"), r#"{"id":1}"#, &[]).await,
            405,
            "not_a_webhook_source",
            "polled",
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
    }
    let events = format!("{}.events", ingest.prefix);
    assert_eq!(topic::count(&events), 0, "refused requests wrote nothing");

    // At the limits everything is accepted: the refusals above were the
    // limits, not blindness.
    let (status, body, _) = post(&open, &nested(64), &[]).await;
    assert_eq!(status, 202, "{body}");
    let (status, body, _) = post(&open, &many[..1000].join("\n"), &ndjson).await;
    assert_eq!(status, 202, "{body}");
    let fits = format!("{{\"id\":\"big\",\"pad\":\"{}\"}}", "x".repeat(899_000));
    let (status, body, _) = post(&open, &fits, &[]).await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(topic::count(&events), 1002);
    ingest.stop().await.expect("clean stop");
}

/// A signature over `timestamp` then `body`, as `stamped` expects.
fn stamped_headers(timestamp: &str, body: &str) -> Vec<(&'static str, String)> {
    let signed = format!("{timestamp}{body}");
    vec![
        (
            "x-intops-signature",
            intops_signature(SECRET, signed.as_bytes()),
        ),
        ("x-intops-timestamp", timestamp.to_string()),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signed_request_replayed_within_its_window_is_refused() {
    let _turn = intops_tests::serial::beside_others().await;
    let ingest = IngestOnly::start(
        "replay",
        POISON_FLOWS,
        &[("hmac", SECRET)],
        &stack::bootstrap(),
        Duration::from_secs(10),
    )
    .await
    .expect("ingest");
    let url = ingest.url("stamped");
    let events = format!("{}.events", ingest.prefix);
    let body = r#"{"id":"r1"}"#;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    let first_ts = now.to_string();
    let headers = stamped_headers(&first_ts, body);
    let send = |h: Vec<(&'static str, String)>| {
        let url = url.clone();
        async move {
            let pairs: Vec<(&str, &str)> = h.iter().map(|(k, v)| (*k, v.as_str())).collect();
            post(&url, body, &pairs).await
        }
    };
    let (status, answer, _) = send(headers.clone()).await;
    assert_eq!(status, 202, "{answer}");
    let (status, answer, _) = send(headers.clone()).await;
    assert_eq!(
        (status, answer["error"].as_str()),
        (409, Some("replayed")),
        "{answer}"
    );
    assert!(
        answer["detail"]
            .as_str()
            .unwrap_or_default()
            .contains("already used"),
        "{answer}"
    );
    // The same body signed with a fresh timestamp is a new request.
    let (status, answer, _) = send(stamped_headers(&(now + 1).to_string(), body)).await;
    assert_eq!(status, 202, "{answer}");
    poll_until("both accepted events on the topic", WAIT, || async {
        (topic::count(&events) >= 2).then_some(())
    })
    .await;
    assert_eq!(topic::count(&events), 2, "the replay wrote nothing");
    ingest.stop().await.expect("clean stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_body_holds_the_only_slot_until_the_read_timeout() {
    let _turn = intops_tests::serial::beside_others().await;
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    let dir = tempfile::tempdir().expect("dir");
    let flows = dir.path().join("flows.toml");
    std::fs::write(
        &flows,
        "[[sources]]\nid = \"slow\"\nkind = \"webhook\"\nauth = \"none\"\nentity_key = \".id\"\n",
    )
    .expect("flows");
    let prefix = stack::random_prefix("slowbody");
    let mut common = intops_runtime::CommonArgs::local(flows, &prefix);
    common.connect.kafka_bootstrap = stack::bootstrap();
    common.connect.schema_registry_url = stack::registry_url();
    common.shutdown_timeout = Duration::from_secs(5);
    let listener = intops_runtime::admin::bind("127.0.0.1:0".parse().expect("addr"))
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let args = intops_ingest::IngestArgs {
        common,
        listen: addr,
        ack_timeout: Duration::from_secs(10),
    };
    let limits = intops_ingest::RequestLimits {
        max_concurrent_requests: 1,
        read_timeout: Duration::from_secs(1),
        ..Default::default()
    };
    let shutdown = intops_runtime::CancellationToken::new();
    let task = tokio::spawn(intops_ingest::run_with(
        args,
        limits,
        listener,
        shutdown.clone(),
    ));
    let ready = format!("http://{addr}/readyz");
    poll_until("ingest ready", WAIT, || async {
        let r = reqwest::get(&ready).await.ok()?;
        r.status().is_success().then_some(())
    })
    .await;
    let url = format!("http://{addr}/v1/sources/slow/events");

    // A request announcing 100 bytes and sending 10 holds the one slot.
    let mut slow = tokio::net::TcpStream::connect(addr).await.expect("connect");
    slow.write_all(
        b"POST /v1/sources/slow/events HTTP/1.1\r\nhost: x\r\nconnection: close\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{\"id\":\"s1\"",
    )
    .await
    .expect("write");
    // Probed with a body that writes nothing should it get through first.
    let (status, body, retry_after) = poll_until("the slot to be taken", WAIT, || async {
        let answer = post(&url, "not json", &[]).await;
        (answer.0 == 503).then_some(answer)
    })
    .await;
    assert_eq!(body["error"], "overloaded", "{body}");
    assert!(
        body["detail"]
            .as_str()
            .unwrap_or_default()
            .contains("limit of 1 requests"),
        "{body}"
    );
    assert_eq!(retry_after.as_deref(), Some("1"));

    // The slow body times out with 408, and the slot is free again.
    let mut answer = Vec::new();
    tokio::time::timeout(WAIT, slow.read_to_end(&mut answer))
        .await
        .expect("the read timeout answers the slow request")
        .expect("read");
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("request_timeout"), "{answer}");
    let events = format!("{prefix}.events");
    assert_eq!(topic::count(&events), 0, "neither request wrote anything");
    let (status_ok, body, _) = post(&url, r#"{"id":"fast"}"#, &[]).await;
    assert_eq!(status_ok, 202, "{body}");
    assert_eq!(status, 503);
    assert_eq!(topic::count(&events), 1);
    shutdown.cancel();
    tokio::time::timeout(WAIT, task)
        .await
        .expect("stops")
        .expect("joins")
        .expect("clean stop");
}
