//! End to end through the real broker and registry: ingest, transform,
//! delivery and monitor, with the shipped example flows file.

use std::time::Duration;

use intops_tests::sign::intops_signature;
use intops_tests::{MockTarget, Pipeline, poll_until};
use serde_json::{Value, json};

const SECRET: &str = "snow-test-secret";
const WAIT: Duration = Duration::from_secs(60);

fn fixture(name: &str) -> String {
    let path = format!("{}/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// Waits until delivery to `target` has committed every request on its
/// topic, so it has finished them all: a request it would repeat has
/// reached the target by now, and counting the target's requests checks
/// "exactly once", not "at least once so far".
async fn wait_delivery_finished(pipeline: &Pipeline, target: &str) {
    let topics = intops_events::Topics::new(&pipeline.prefix);
    let group = topics.group(&format!("delivery.{target}"));
    let requests = topics.deliveries(target);
    poll_until(
        &format!("delivery to {target} to commit every request"),
        WAIT,
        || async {
            let partitions = intops_tests::topic::partitions(&requests)?;
            intops_tests::group::committed_and_ends(&group, &requests, partitions)
                .iter()
                .all(|(_, at, end)| at.unwrap_or(0) == *end)
                .then_some(())
        },
    )
    .await;
}

/// The example flows file, pointed at `target` and a file secret.
fn example_flows(target: &MockTarget) -> String {
    intops_tests::pipeline::example_flows(&target.base_url())
}

async fn post_signed(url: &str, body: &str, signature: &str) -> reqwest::Response {
    reqwest::Client::new()
        .post(url)
        .header("content-type", "application/json")
        .header("x-intops-signature", signature)
        .body(body.to_string())
        .send()
        .await
        .expect("ingest answers")
}

/// Posts one signed record as the ServiceNow source; returns its event id.
async fn send(pipeline: &Pipeline, body: &str) -> String {
    let signature = intops_signature(SECRET, body.as_bytes());
    let response = post_signed(&pipeline.ingest_url("servicenow"), body, &signature).await;
    assert_eq!(response.status(), 202);
    let accepted: Value = response.json().await.expect("json");
    assert_eq!(accepted["accepted"], 1);
    accepted["event_ids"][0]
        .as_str()
        .expect("event id")
        .to_string()
}

async fn trace(pipeline: &Pipeline, event_id: &str, until: impl Fn(&Value) -> bool) -> Value {
    let url = pipeline.event_url(event_id);
    poll_until(&format!("monitor trace of {event_id}"), WAIT, || {
        let url = url.clone();
        let until = &until;
        async move {
            let r = reqwest::get(&url).await.ok()?;
            let v: Value = r.json().await.ok()?;
            until(&v).then_some(v)
        }
    })
    .await
}

fn statuses(trace: &Value) -> Vec<(String, String)> {
    trace["stages"]
        .as_array()
        .map(|stages| {
            stages
                .iter()
                .map(|s| {
                    (
                        s["stage"].as_str().unwrap_or("").into(),
                        s["status"].as_str().unwrap_or("").into(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn signed_incident_is_delivered_mapped_and_traced() {
    let _turn = intops_tests::serial::beside_others().await;
    let target = MockTarget::start().await.expect("target");
    let pipeline = Pipeline::start("e2e", &example_flows(&target), &[("snow", SECRET)])
        .await
        .expect("pipeline");

    let body = fixture("servicenow-incident-created.json");
    let event_id = send(&pipeline, &body).await;
    assert_eq!(
        uuid::Uuid::parse_str(&event_id)
            .expect("uuid")
            .get_version_num(),
        7
    );

    let request = poll_until("the target to receive the issue", WAIT, || async {
        target.requests().into_iter().next()
    })
    .await;
    assert_eq!(request.method, "POST");
    assert_eq!(request.path, "/rest/api/3/issue");
    assert_eq!(
        request.header("idempotency-key"),
        Some(format!("{event_id}:snow-p1-to-jira").as_str())
    );
    assert_eq!(request.header("content-type"), Some("application/json"));
    assert_eq!(
        request.json(),
        json!({"fields": {
            "project": {"key": "OPS"},
            "issuetype": {"name": "Incident"},
            "summary": "Email server down in Helsinki office",
            "description": "Users cannot send or receive email since 08:10 EET.",
            "priority": {"name": "Highest"},
            "labels": ["servicenow", "INC0010023"],
            "customfield_10050": "2026-11-28T08:12:44Z"
        }})
    );

    let t = trace(&pipeline, &event_id, |v| {
        statuses(v).iter().any(|(_, s)| s == "delivered")
    })
    .await;
    assert_eq!(
        statuses(&t),
        [
            ("ingest".into(), "accepted".into()),
            ("transform".into(), "routed".into()),
            ("delivery".into(), "delivered".into())
        ]
    );
    assert_eq!(t["source_id"], "servicenow");
    assert_eq!(t["entity_key"], "9d385017c611228701d22104cc95c371");
    assert_eq!(t["stages"][1]["flow_id"], "snow-p1-to-jira");
    assert_eq!(t["stages"][2]["http_status"], 201);
    assert_eq!(t["stages"][2]["attempts"], 1);
    wait_delivery_finished(&pipeline, "jira").await;
    assert_eq!(target.requests().len(), 1, "delivered once");

    // Found by its ticket number, as an operator searches.
    let found: serde_json::Value = reqwest::get(format!(
        "http://{}/api/v1/search?q=INC0010023",
        pipeline.monitor
    ))
    .await
    .expect("search")
    .json()
    .await
    .expect("json");
    assert_eq!(found["total"], 1, "{found}");
    assert_eq!(found["events"][0]["event_id"], event_id.as_str());
    assert_eq!(found["events"][0]["last"]["status"], "delivered");

    let metrics = reqwest::get(format!("http://{}/metrics", pipeline.monitor))
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    assert!(
        metrics.contains("intops_monitor_records_total"),
        "{metrics}"
    );
    pipeline.stop().await.expect("clean stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bad_signature_is_refused_and_nothing_is_written() {
    let _turn = intops_tests::serial::beside_others().await;
    let target = MockTarget::start().await.expect("target");
    let pipeline = Pipeline::start("badsig", &example_flows(&target), &[("snow", SECRET)])
        .await
        .expect("pipeline");
    let url = pipeline.ingest_url("servicenow");

    let body = fixture("servicenow-incident-created.json");
    let forged = post_signed(
        &url,
        &body,
        &intops_signature("wrong-secret", body.as_bytes()),
    )
    .await;
    assert_eq!(forged.status(), 401);
    let error: Value = forged.json().await.expect("json error");
    assert_eq!(error["error"], "unauthorized");
    assert!(!error.to_string().contains(SECRET));
    let unsigned = reqwest::Client::new()
        .post(&url)
        .body(body.clone())
        .send()
        .await
        .expect("answer");
    assert_eq!(unsigned.status(), 401);

    // A correctly signed marker proves the pipeline was flowing; once it
    // is delivered, it must be the only event ever written.
    let marker = fixture("servicenow-incident-updated.json");
    let ok = post_signed(&url, &marker, &intops_signature(SECRET, marker.as_bytes())).await;
    assert_eq!(ok.status(), 202);
    poll_until("the marker's delivery", WAIT, || async {
        (!target.requests().is_empty()).then_some(())
    })
    .await;
    let requests = target.requests();
    assert_eq!(
        requests.len(),
        1,
        "only the marker is delivered: {requests:?}"
    );
    assert_eq!(
        intops_tests::topic::count(&format!("{}.events", pipeline.prefix)),
        1
    );
    pipeline.stop().await.expect("clean stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn unmatched_incident_is_reported_unrouted() {
    let _turn = intops_tests::serial::beside_others().await;
    let target = MockTarget::start().await.expect("target");
    let pipeline = Pipeline::start("unrouted", &example_flows(&target), &[("snow", SECRET)])
        .await
        .expect("pipeline");
    let body = fixture("servicenow-incident-created.json")
        .replace("\"priority\": \"1\"", "\"priority\": \"4\"");
    let event_id = send(&pipeline, &body).await;
    let t = trace(&pipeline, &event_id, |v| statuses(v).len() >= 2).await;
    assert_eq!(
        statuses(&t),
        [
            ("ingest".into(), "accepted".into()),
            ("transform".into(), "unrouted".into())
        ]
    );
    assert!(target.requests().is_empty());
    pipeline.stop().await.expect("clean stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rejected_delivery_becomes_a_dead_letter_with_context() {
    let _turn = intops_tests::serial::beside_others().await;
    use intops_events::DeadLetter;
    use intops_tests::topic;
    use rdkafka::message::Message;

    let target = MockTarget::start().await.expect("target");
    target.set_status(400);
    let pipeline = Pipeline::start("dlq", &example_flows(&target), &[("snow", SECRET)])
        .await
        .expect("pipeline");
    let body = fixture("servicenow-incident-created.json");
    let event_id = send(&pipeline, &body).await;

    // The trace carries the dead letter itself, read from the DLQ topic.
    let t = trace(&pipeline, &event_id, |v| {
        statuses(v).iter().any(|(_, s)| s == "dead_lettered") && v["dead_letters"].is_array()
    })
    .await;
    assert_eq!(
        statuses(&t).last(),
        Some(&("delivery".to_string(), "dead_lettered".to_string()))
    );
    assert_eq!(t["stages"][2]["http_status"], 400);
    let dead_view = &t["dead_letters"][0];
    assert_eq!(dead_view["stage"], "delivery");
    assert_eq!(dead_view["error_class"], "http_4xx");
    assert_eq!(dead_view["http_status"], 400);
    assert_eq!(dead_view["flow_id"], "snow-p1-to-jira");
    assert!(
        dead_view["original"]
            .as_str()
            .unwrap_or_default()
            .contains(".deliveries.jira/"),
        "{dead_view}"
    );
    assert_eq!(target.requests().len(), 1, "a 400 is not retried");

    let letters = topic::read(&format!("{}.dlq.delivery", pipeline.prefix), 1, WAIT);
    let letter = &letters[0];
    let requests_topic = format!("{}.deliveries.jira", pipeline.prefix);
    assert_eq!(
        topic::header(letter, "intops.original.topic").as_deref(),
        Some(requests_topic.as_str())
    );
    assert_eq!(
        topic::header(letter, "intops.error.class").as_deref(),
        Some("http_4xx")
    );
    assert_eq!(
        letter.key(),
        Some(&b"servicenow:9d385017c611228701d22104cc95c371"[..])
    );
    let codec = intops_tests::stack::codec();
    let dead: DeadLetter = codec
        .decode(letter.payload().expect("value"))
        .await
        .expect("dead letter decodes");
    assert_eq!(dead.event_id.as_deref(), Some(event_id.as_str()));
    assert_eq!(dead.flow_id.as_deref(), Some("snow-p1-to-jira"));
    assert_eq!(dead.target_id.as_deref(), Some("jira"));
    assert_eq!(dead.http_status, Some(400));
    assert!(!dead.retryable);
    assert_eq!(dead.attempts, 1);
    assert_eq!(dead.original_topic, requests_topic);
    assert_eq!(
        topic::header(letter, "intops.original.partition"),
        Some(dead.original_partition.to_string())
    );
    // The original record is kept byte for byte and still decodes.
    let original: intops_events::DeliveryRequest = codec
        .decode(dead.original_value.as_deref().expect("original value"))
        .await
        .expect("original decodes");
    assert_eq!(original.event_id, event_id);
    pipeline.stop().await.expect("clean stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_entitys_updates_arrive_in_order_while_others_interleave() {
    let _turn = intops_tests::serial::beside_others().await;
    let target = MockTarget::start().await.expect("target");
    let pipeline = Pipeline::start("order", &example_flows(&target), &[("snow", SECRET)])
        .await
        .expect("pipeline");
    let base: Value =
        serde_json::from_str(&fixture("servicenow-incident-updated.json")).expect("json");
    let keys = ["a", "b", "c", "d"];
    let per_key = 15;
    let mut records = Vec::new();
    for seq in 0..per_key {
        for key in keys {
            let mut r = base.clone();
            r["sys_id"] = json!(format!("order-{key}"));
            r["number"] = json!(format!("{key}-{seq:02}"));
            records.push(r);
        }
    }
    let body = serde_json::to_string(&records).expect("json");
    let response = post_signed(
        &pipeline.ingest_url("servicenow"),
        &body,
        &intops_signature(SECRET, body.as_bytes()),
    )
    .await;
    assert_eq!(response.status(), 202);
    let total = keys.len() * per_key;
    poll_until("every update delivered", WAIT, || async {
        (target.requests().len() >= total).then_some(())
    })
    .await;
    wait_delivery_finished(&pipeline, "jira").await;
    let labels: Vec<String> = target
        .requests()
        .iter()
        .map(|r| {
            r.json()["fields"]["labels"][1]
                .as_str()
                .unwrap_or_default()
                .to_string()
        })
        .collect();
    assert_eq!(labels.len(), total, "each update delivered once");
    for key in keys {
        let seen: Vec<&String> = labels
            .iter()
            .filter(|l| l.starts_with(&format!("{key}-")))
            .collect();
        let expected: Vec<String> = (0..per_key).map(|s| format!("{key}-{s:02}")).collect();
        assert_eq!(
            seen,
            expected.iter().collect::<Vec<_>>(),
            "updates of entity {key} out of order"
        );
    }
    pipeline.stop().await.expect("clean stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn failing_mapping_becomes_a_transform_dead_letter() {
    let _turn = intops_tests::serial::beside_others().await;
    use intops_events::{DeadLetter, IntegrationEvent};
    use intops_tests::topic;
    use rdkafka::message::Message;

    let target = MockTarget::start().await.expect("target");
    let flows = example_flows(&target).replace(
        "summary: .short_description,",
        r#"summary: (.short_description | error("no summary mapping")),"#,
    );
    let pipeline = Pipeline::start("tdlq", &flows, &[("snow", SECRET)])
        .await
        .expect("pipeline");
    let body = fixture("servicenow-incident-created.json");
    let event_id = send(&pipeline, &body).await;

    let t = trace(&pipeline, &event_id, |v| statuses(v).len() >= 2).await;
    assert_eq!(
        statuses(&t),
        [
            ("ingest".into(), "accepted".into()),
            ("transform".into(), "dead_lettered".into())
        ]
    );
    assert!(
        t["stages"][1]["error"]
            .as_str()
            .unwrap_or_default()
            .contains("no summary mapping"),
        "{t}"
    );

    let letters = topic::read(&format!("{}.dlq.transform", pipeline.prefix), 1, WAIT);
    let codec = intops_tests::stack::codec();
    let dead: DeadLetter = codec
        .decode(letters[0].payload().expect("value"))
        .await
        .expect("decodes");
    assert_eq!(dead.error_class, "mapping");
    assert_eq!(dead.flow_id.as_deref(), Some("snow-p1-to-jira"));
    assert_eq!(dead.flow_version.as_deref().map(str::len), Some(12));
    assert_eq!(dead.original_topic, format!("{}.events", pipeline.prefix));
    let original: IntegrationEvent = codec
        .decode(dead.original_value.as_deref().expect("value"))
        .await
        .expect("original");
    assert_eq!(original.event_id, event_id);
    assert_eq!(
        original.payload, body,
        "the payload is kept exactly as received"
    );
    assert!(target.requests().is_empty());
    pipeline.stop().await.expect("clean stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fan_out_to_two_targets_with_templates_and_a_failing_flow_that_does_not_block() {
    let _turn = intops_tests::serial::beside_others().await;
    let jira = MockTarget::start().await.expect("jira");
    let audit = MockTarget::start().await.expect("audit");
    let audit_flows = format!(
        r#"
[[targets]]
id = "audit"
base_url = "{}"

[[flows]]
id = "all-to-audit"
source = "servicenow"
target = "audit"
method = "PUT"
path = "/audit/{{{{ .number }}}}"
headers = {{ "X-Ticket" = "{{{{ .number }}}} state {{{{ .state }}}}" }}
map = '{{number: .number, state: (.state | tonumber)}}'
"#,
        audit.base_url()
    );
    let flows = format!("{}\n{audit_flows}", example_flows(&jira));
    let pipeline = Pipeline::start("fanout", &flows, &[("snow", SECRET)])
        .await
        .expect("pipeline");
    let bad = fixture("servicenow-incident-created.json")
        .replace("\"state\": \"1\"", "\"state\": \"New\"");
    assert!(bad.contains("\"state\": \"New\""));
    let bad_id = send(&pipeline, &bad).await;
    let good_id = send(&pipeline, &fixture("servicenow-incident-updated.json")).await;

    poll_until("both jira deliveries", WAIT, || async {
        (jira.requests().len() >= 2).then_some(())
    })
    .await;
    poll_until("the audit delivery", WAIT, || async {
        (!audit.requests().is_empty()).then_some(())
    })
    .await;
    wait_delivery_finished(&pipeline, "jira").await;
    let a = &audit.requests()[0];
    assert_eq!(
        (a.method.as_str(), a.path.as_str()),
        ("PUT", "/audit/INC0010023")
    );
    assert_eq!(a.header("x-ticket"), Some("INC0010023 state 2"));
    assert_eq!(a.json(), json!({"number": "INC0010023", "state": 2}));
    assert_eq!(
        a.header("idempotency-key"),
        Some(format!("{good_id}:all-to-audit").as_str())
    );
    let keys: Vec<String> = jira
        .requests()
        .iter()
        .filter_map(|r| r.header("idempotency-key").map(String::from))
        .collect();
    assert_eq!(
        keys,
        [
            format!("{bad_id}:snow-p1-to-jira"),
            format!("{good_id}:snow-p1-to-jira")
        ],
        "in order, per entity"
    );

    let letters = intops_tests::topic::read(&format!("{}.dlq.transform", pipeline.prefix), 1, WAIT);
    let dead: intops_events::DeadLetter = intops_tests::stack::codec()
        .decode(rdkafka::message::Message::payload(&letters[0]).expect("value"))
        .await
        .expect("decodes");
    assert_eq!(
        (dead.flow_id.as_deref(), dead.event_id.as_deref()),
        (Some("all-to-audit"), Some(bad_id.as_str()))
    );
    let t = trace(&pipeline, &bad_id, |v| {
        statuses(v).iter().any(|(_, s)| s == "delivered")
    })
    .await;
    let seen = statuses(&t);
    assert!(
        seen.contains(&("transform".into(), "dead_lettered".into())),
        "{seen:?}"
    );
    assert!(
        seen.contains(&("delivery".into(), "delivered".into())),
        "{seen:?}"
    );
    wait_delivery_finished(&pipeline, "audit").await;
    assert_eq!(audit.requests().len(), 1);
    pipeline.stop().await.expect("clean stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn undecodable_records_are_dead_lettered_and_the_partition_keeps_flowing() {
    let _turn = intops_tests::serial::beside_others().await;
    use intops_kafka::{KafkaSettings, Producer, Record};

    let target = MockTarget::start().await.expect("target");
    let pipeline = Pipeline::start("undecodable", &example_flows(&target), &[("snow", SECRET)])
        .await
        .expect("pipeline");
    let events = format!("{}.events", pipeline.prefix);
    let producer = Producer::new(
        &KafkaSettings::new(intops_tests::stack::bootstrap(), Default::default())
            .expect("settings"),
    )
    .expect("producer");
    let key = b"servicenow:9d385017c611228701d22104cc95c371";
    let not_avro = br#"{"plain":"json"}"#.to_vec();
    let unknown_schema = vec![0u8, 0x7f, 0xff, 0xff, 0xf0, 2, 4];
    for value in [&not_avro, &unknown_schema] {
        producer
            .send(Record {
                topic: &events,
                key,
                value,
                headers: &[("origin", b"test")],
            })
            .await
            .expect("produce");
    }
    // A valid event with the same key (so the same partition) afterwards.
    let good = send(&pipeline, &fixture("servicenow-incident-created.json")).await;
    poll_until("the valid event's delivery", WAIT, || async {
        (!target.requests().is_empty()).then_some(())
    })
    .await;
    assert_eq!(
        target.requests()[0].header("idempotency-key"),
        Some(format!("{good}:snow-p1-to-jira").as_str())
    );

    let letters = intops_tests::topic::read(&format!("{}.dlq.transform", pipeline.prefix), 2, WAIT);
    let codec = intops_tests::stack::codec();
    let mut originals = Vec::new();
    for m in &letters {
        let d: intops_events::DeadLetter = codec
            .decode(rdkafka::message::Message::payload(m).expect("value"))
            .await
            .expect("decodes");
        assert_eq!(d.error_class, "decode");
        assert_eq!(d.original_key.as_deref(), Some(&key[..]));
        assert_eq!(
            d.original_headers.first().map(|h| h.key.as_str()),
            Some("origin")
        );
        originals.push(d.original_value.expect("value kept"));
    }
    originals.sort();
    let mut expected = vec![not_avro, unknown_schema];
    expected.sort();
    assert_eq!(
        originals, expected,
        "the failed records are kept byte for byte"
    );
    pipeline.stop().await.expect("clean stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_target_rate_limit_spaces_the_requests() {
    let _turn = intops_tests::serial::beside_others().await;
    let target = MockTarget::start().await.expect("target");
    let flows = example_flows(&target)
        .replace("concurrency = 16", "concurrency = 16\nrate_limit = \"5/s\"");
    assert!(flows.contains("rate_limit = \"5/s\""));
    let pipeline = Pipeline::start("ratelimit", &flows, &[("snow", SECRET)])
        .await
        .expect("pipeline");
    let base: Value =
        serde_json::from_str(&fixture("servicenow-incident-created.json")).expect("json");
    let batch: Vec<Value> = (0..15)
        .map(|i| {
            let mut r = base.clone();
            r["sys_id"] = json!(format!("rate-{i}"));
            r
        })
        .collect();
    let body = serde_json::to_string(&batch).expect("json");
    let signature = intops_signature(SECRET, body.as_bytes());
    let r = post_signed(&pipeline.ingest_url("servicenow"), &body, &signature).await;
    assert_eq!(r.status(), 202);
    poll_until("all 15 deliveries", WAIT, || async {
        (target.requests().len() >= 15).then_some(())
    })
    .await;
    let requests = target.requests();
    let first = requests.iter().map(|r| r.at).min().expect("first");
    let last = requests.iter().map(|r| r.at).max().expect("last");
    // A burst of 5, then one every 200 ms: never faster than that.
    assert!(
        last - first >= Duration::from_millis(1700),
        "15 requests within {:?}",
        last - first
    );
    let waits =
        intops_tests::metrics::sum(pipeline.monitor, "intops_delivery_rate_limited_waits_total")
            .await;
    assert!(waits >= Some(1.0), "{waits:?}");
    pipeline.stop().await.expect("clean stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_failing_target_is_retried_with_the_same_idempotency_key() {
    let _turn = intops_tests::serial::beside_others().await;
    let target = MockTarget::start().await.expect("target");
    target.fail_next(2, 503);
    let pipeline = Pipeline::start("retry", &example_flows(&target), &[("snow", SECRET)])
        .await
        .expect("pipeline");
    let event_id = send(&pipeline, &fixture("servicenow-incident-created.json")).await;
    let t = trace(&pipeline, &event_id, |v| {
        statuses(v).iter().any(|(_, s)| s == "delivered")
    })
    .await;
    assert_eq!(t["stages"][2]["attempts"], 3, "{t}");
    assert_eq!(t["stages"][2]["http_status"], 201);
    let keys: Vec<String> = target
        .requests()
        .iter()
        .filter_map(|r| r.header("idempotency-key").map(String::from))
        .collect();
    assert_eq!(keys, vec![format!("{event_id}:snow-p1-to-jira"); 3]);
    pipeline.stop().await.expect("clean stop");
}
