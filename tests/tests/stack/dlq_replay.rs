//! Dead-letter inspection and replay, flow rewind and tap, through the
//! `intops` binary against the real broker and registry, with all four
//! services running and a target that fails until it is "fixed".

use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use intops_events::{AuditRecord, DeadLetter};
use intops_tests::{MockTarget, Pipeline, cli, poll_until, topic};
use rdkafka::message::Message;
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(90);

/// Target `crm` with quick retries, and a second flow (`app-audit`, to
/// `/audit`) for the rewind test.
fn flows(target: &MockTarget) -> String {
    intops_tests::pipeline::app_flows(
        &target.base_url(),
        "crm",
        r#"timeout = "5s"
concurrency = 8
retry = { max_attempts = 2, initial_backoff = "50ms", max_backoff = "100ms" }"#,
        r#"
[[flows]]
id = "app-audit"
source = "app"
target = "crm"
when = '.audit == true'
method = "POST"
path = "/audit"
map = '{id: .id}'
"#,
    )
}

/// Posts `records` as one batch; returns their event ids.
async fn post(p: &Pipeline, records: Vec<Value>) -> Vec<String> {
    p.post_json("app", &Value::Array(records)).await
}

async fn wait_count(topic_name: &str, n: i64) {
    poll_until(&format!("{n} record(s) in {topic_name}"), WAIT, || async {
        (topic::count(topic_name) == n).then_some(())
    })
    .await;
}

async fn wait_requests(target: &MockTarget, n: usize) {
    poll_until(&format!("{n} request(s) at the target"), WAIT, || async {
        (target.requests().len() >= n).then_some(())
    })
    .await;
    assert_eq!(target.requests().len(), n, "no more than {n} requests");
}

fn keys(target: &MockTarget) -> Vec<String> {
    target
        .requests()
        .iter()
        .map(|r| r.header("idempotency-key").unwrap_or_default().to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn replay_after_the_fix_delivers_every_dead_letter_once_and_only_once() {
    let _turn = intops_tests::serial::beside_others().await;
    let target = MockTarget::start().await.expect("target");
    target.set_status(400);
    let p = Pipeline::start("replay", &flows(&target), &[])
        .await
        .expect("pipeline");
    let records = (0..6)
        .map(|i| json!({"id": format!("r{i}"), "n": i}))
        .collect();
    let ids = post(&p, records).await;
    let prefix = p.prefix.as_str();
    let dlq = format!("{prefix}.dlq.delivery");
    let deliveries = format!("{prefix}.deliveries.crm");
    let outcomes = format!("{prefix}.outcomes");
    wait_count(&dlq, 6).await;
    wait_requests(&target, 6).await;

    // list: counts by stage, flow, target and error class.
    let list = cli::json(prefix, &["dlq", "list", "--json"]).await;
    assert_eq!(list["total"], 6, "{list}");
    assert_eq!(list["pending"], 6);
    let group = &list["groups"][0];
    assert_eq!(
        (
            &group["stage"],
            &group["flow"],
            &group["target"],
            &group["error_class"]
        ),
        (
            &json!("delivery"),
            &json!("app-to-crm"),
            &json!("crm"),
            &json!("http_4xx")
        )
    );
    assert_eq!(group["count"], 6);

    // show: one dead letter with its context and decoded payload.
    let shown = cli::run(prefix, &["dlq", "show", "--json", "--key", "app:r3"]).await;
    let lines: Vec<Value> = shown
        .lines()
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect();
    assert_eq!(lines.len(), 1, "{shown}");
    let letter = &lines[0];
    assert_eq!(letter["event_id"], json!(ids[3]));
    assert_eq!(letter["http_status"], 400);
    assert_eq!(letter["original"]["topic"], json!(deliveries));
    assert_eq!(letter["payload"]["event_id"], json!(ids[3]));
    assert_eq!(letter["payload"]["path"], "/records");
    assert_eq!(letter["replayed"], false);

    // Filters select exactly the matching records; a dry run writes nothing.
    let watched = [
        dlq.clone(),
        deliveries.clone(),
        outcomes.clone(),
        format!("{prefix}.dlq.replays"),
        format!("{prefix}.dlq.parked"),
        format!("{prefix}.audit"),
    ];
    let before: Vec<i64> = watched.iter().map(|t| topic::count(t)).collect();
    let cases: [(&[&str], i64); 12] = [
        (&[], 6),
        (&["--status", "400"], 6),
        (&["--status", "503"], 0),
        (&["--stage", "transform"], 0),
        (&["--stage", "delivery"], 6),
        (&["--key", "app:r1"], 1),
        (&["--event-id", &ids[2]], 1),
        (&["--flow", "app-to-crm", "--target", "crm"], 6),
        (&["--error-class", "exhausted"], 0),
        (&["--limit", "4"], 4),
        (&["--since", "1h"], 6),
        (&["--until", "1h"], 0),
    ];
    for (filters, selected) in cases {
        let mut args = vec!["dlq", "replay", "--dry-run", "--json"];
        args.extend_from_slice(filters);
        let report = cli::json(prefix, &args).await;
        assert_eq!(report["selected"], selected, "{filters:?}: {report}");
        assert_eq!(report["would_replay"], selected, "{filters:?}: {report}");
    }
    let after: Vec<i64> = watched.iter().map(|t| topic::count(t)).collect();
    assert_eq!(before, after, "a dry run changes no topic");

    // The target is fixed: one replay delivers each dead letter once.
    target.set_status(200);
    let first_keys = keys(&target);
    let report = cli::json(prefix, &["dlq", "replay", "--json", "--operator", "alice"]).await;
    assert_eq!(report["sent"], 6, "{report}");
    assert_eq!(report["parked"], 0);
    // 6 dead-lettered, 6 replayed and 6 delivered outcomes.
    wait_count(&outcomes, 18).await;
    wait_requests(&target, 12).await;
    let mut replayed_keys = keys(&target)[6..].to_vec();
    replayed_keys.sort();
    let mut originals = first_keys.clone();
    originals.sort();
    assert_eq!(replayed_keys, originals, "same Idempotency-Key, each once");

    // The monitor's lineage shows the replay and the delivery after it.
    let url = p.event_url(&ids[0]);
    let trace = poll_until("lineage with the replay", WAIT, || {
        let url = url.clone();
        async move {
            let v: Value = reqwest::get(&url).await.ok()?.json().await.ok()?;
            let stages: Vec<(String, String)> = v["stages"]
                .as_array()?
                .iter()
                .map(|s| {
                    (
                        s["stage"].as_str().unwrap_or("").to_string(),
                        s["status"].as_str().unwrap_or("").to_string(),
                    )
                })
                .collect();
            let replayed = stages
                .iter()
                .position(|s| *s == ("replay".into(), "replayed".into()))?;
            stages[replayed..]
                .iter()
                .any(|s| *s == ("delivery".into(), "delivered".into()))
                .then_some(v)
        }
    })
    .await;
    assert!(
        trace["stages"].as_array().is_some_and(|s| s.len() >= 4),
        "{trace}"
    );

    // A second replay sends nothing; --again sends again.
    let again = cli::json(prefix, &["dlq", "replay", "--json"]).await;
    assert_eq!(again["sent"], 0, "{again}");
    assert_eq!(again["skipped_already_replayed"], 6);
    assert_eq!(topic::count(&deliveries), 12, "nothing new to deliver");
    let list = cli::json(prefix, &["dlq", "list", "--json"]).await;
    assert_eq!(list["pending"], 0, "{list}");
    let forced = cli::json(
        prefix,
        &["dlq", "replay", "--json", "--again", "--limit", "2"],
    )
    .await;
    assert_eq!(forced["sent"], 2, "{forced}");
    wait_requests(&target, 14).await;

    // Every replay left an audit trail: started and finished, who, counts.
    let codec = intops_tests::stack::codec();
    let audit = topic::read(&format!("{prefix}.audit"), 6, WAIT);
    let mut finished = Vec::new();
    for m in &audit {
        let r: AuditRecord = codec
            .decode(m.payload().expect("value"))
            .await
            .expect("audit");
        assert_eq!(r.action, "dlq.replay");
        if r.phase == "finished" {
            finished.push(r);
        }
    }
    let alice = finished
        .iter()
        .find(|r| r.operator == "alice")
        .expect("alice's replay audited");
    assert_eq!(alice.counts.get("sent"), Some(&6));
    assert_eq!(alice.action_id, report["replay_id"].as_str().expect("id"));
    p.stop().await.expect("clean stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_loop_guard_parks_a_record_that_keeps_failing() {
    let _turn = intops_tests::serial::beside_others().await;
    let target = MockTarget::start().await.expect("target");
    target.set_status(400);
    let p = Pipeline::start("park", &flows(&target), &[])
        .await
        .expect("pipeline");
    let prefix = p.prefix.as_str();
    let ids = post(&p, vec![json!({"id": "loop", "n": 1})]).await;
    let dlq = format!("{prefix}.dlq.delivery");
    wait_count(&dlq, 1).await;
    for round in 1..=2 {
        let r = cli::json(prefix, &["dlq", "replay", "--json", "--max-replays", "2"]).await;
        assert_eq!(r["sent"], 1, "round {round}: {r}");
        // It fails again: a new dead letter that knows its replay count.
        wait_count(&dlq, 1 + round).await;
    }
    let r = cli::json(prefix, &["dlq", "replay", "--json", "--max-replays", "2"]).await;
    assert_eq!((&r["sent"], &r["parked"]), (&json!(0), &json!(1)), "{r}");

    let codec = intops_tests::stack::codec();
    let parked = topic::read(&format!("{prefix}.dlq.parked"), 1, WAIT);
    let letter: DeadLetter = codec
        .decode(parked[0].payload().expect("value"))
        .await
        .expect("parked dead letter");
    assert_eq!(letter.replay_count, 2);
    assert_eq!(letter.event_id.as_deref(), Some(ids[0].as_str()));
    let letters = topic::read(&dlq, 3, WAIT);
    let mut counts = Vec::new();
    for m in &letters {
        let d: DeadLetter = codec
            .decode(m.payload().expect("value"))
            .await
            .expect("letter");
        counts.push(d.replay_count);
    }
    counts.sort_unstable();
    assert_eq!(counts, [0, 1, 2]);
    assert_eq!(target.requests().len(), 3, "parked, not sent a fourth time");
    let list = cli::json(prefix, &["dlq", "list", "--json"]).await;
    assert_eq!(list["pending"], 0, "{list}");
    p.stop().await.expect("clean stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_interrupted_replay_completes_on_the_next_run() {
    let _turn = intops_tests::serial::beside_others().await;
    const N: usize = 40;
    let target = MockTarget::start().await.expect("target");
    target.set_status(400);
    let p = Pipeline::start("resume", &flows(&target), &[])
        .await
        .expect("pipeline");
    let prefix = p.prefix.as_str();
    let records = (0..N)
        .map(|i| json!({"id": format!("k{i}"), "n": i}))
        .collect();
    post(&p, records).await;
    wait_count(&format!("{prefix}.dlq.delivery"), N as i64).await;
    wait_requests(&target, N).await;
    target.set_status(200);

    let mut slow = cli::command(prefix, &["dlq", "replay", "--rate", "10"])
        .spawn()
        .expect("replay starts");
    poll_until("a part of the replay delivered", WAIT, || async {
        (target.requests().len() >= N + 10).then_some(())
    })
    .await;
    slow.kill().await.expect("kill the replay");

    let rest = cli::json(prefix, &["dlq", "replay", "--json"]).await;
    let sent = rest["sent"].as_i64().expect("sent");
    assert!(
        sent > 0 && sent < N as i64,
        "the second run sends the rest: {rest}"
    );
    let replayed = topic::count(&format!("{prefix}.deliveries.crm")) - N as i64;
    wait_requests(&target, N + usize::try_from(replayed).expect("count")).await;

    let mut per_key: HashMap<String, usize> = HashMap::new();
    for k in keys(&target) {
        *per_key.entry(k).or_default() += 1;
    }
    assert_eq!(per_key.len(), N);
    assert!(
        per_key.values().all(|n| *n >= 2),
        "every dead letter was replayed"
    );
    let duplicates = replayed - N as i64;
    eprintln!("interrupted replay: {duplicates} duplicate(s) from the in-flight window");
    assert!(
        (0..=3).contains(&duplicates),
        "duplicates only from the in-flight window at --rate 10: {duplicates}"
    );
    p.stop().await.expect("clean stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rewind_redelivers_the_corrected_mapping_for_one_flow_and_time_range() {
    let _turn = intops_tests::serial::beside_others().await;
    let target = MockTarget::start().await.expect("target");
    let p = Pipeline::start("rewind", &flows(&target), &[])
        .await
        .expect("pipeline");
    let prefix = p.prefix.as_str();
    let early = (0..3)
        .map(|i| json!({"id": format!("a{i}"), "n": i, "audit": true}))
        .collect();
    post(&p, early).await;
    wait_requests(&target, 6).await;
    let mid = humantime::format_rfc3339_micros(SystemTime::now()).to_string();
    let late = (0..2)
        .map(|i| json!({"id": format!("b{i}"), "n": i, "audit": true}))
        .collect();
    post(&p, late).await;
    wait_requests(&target, 10).await;
    let original_keys = keys(&target);

    // The corrected mapping, in the operator's copy of the flows file.
    let dir = tempfile::tempdir().expect("dir");
    let fixed = dir.path().join("flows.toml");
    std::fs::write(
        &fixed,
        flows(&target).replace(
            "map = '{id: .id, n: .n}'",
            "map = '{id: .id, n: .n, fixed: true}'",
        ),
    )
    .expect("write flows");
    let fixed = fixed.display().to_string();
    let deliveries = format!("{prefix}.deliveries.crm");
    let rewind = [
        "flow",
        "rewind",
        "--flow",
        "app-to-crm",
        "--since",
        "1h",
        "--until",
        &mid,
    ];

    let mut args = rewind.to_vec();
    args.extend(["--flows", &fixed, "--dry-run", "--json"]);
    let dry = cli::json(prefix, &args).await;
    assert_eq!(dry["matched"], 3, "{dry}");
    assert_eq!(dry["produced"], 0);
    assert_eq!(topic::count(&deliveries), 10, "a dry run produces nothing");

    let mut args = rewind.to_vec();
    args.extend(["--flows", &fixed, "--json", "--operator", "bob"]);
    let done = cli::json(prefix, &args).await;
    assert_eq!(done["produced"], 3, "{done}");
    wait_requests(&target, 13).await;
    let requests = target.requests();
    let mut ids: Vec<String> = Vec::new();
    for r in &requests[10..] {
        assert_eq!(r.path, "/records", "only the chosen flow");
        assert_eq!(r.json()["fixed"], true, "the corrected mapping");
        ids.push(r.json()["id"].as_str().expect("id").to_string());
        let key = r.header("idempotency-key").expect("key");
        assert!(key.contains(":rewind:"), "{key}");
        assert!(!original_keys.iter().any(|k| k == key));
    }
    ids.sort();
    assert_eq!(ids, ["a0", "a1", "a2"], "only events in the time range");

    // tap: any topic as JSON lines, filtered, ending at the end without --follow.
    let tapped = cli::run(
        prefix,
        &[
            "tap",
            "events",
            "--from-beginning",
            "--filter",
            r#".value.entity_key == "b1""#,
        ],
    )
    .await;
    let lines: Vec<Value> = tapped
        .lines()
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect();
    assert_eq!(lines.len(), 1, "{tapped}");
    assert_eq!(lines[0]["key"], "app:b1");
    assert_eq!(lines[0]["value"]["source_id"], "app");
    assert!(lines[0]["offset"].is_i64() && lines[0]["partition"].is_i64());
    let audit = cli::run(
        prefix,
        &["tap", "audit", "--from-beginning", "--limit", "5"],
    )
    .await;
    let actions: Vec<Value> = audit
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).expect("json line")["value"].clone())
        .collect();
    assert_eq!(actions.len(), 2, "started and finished: {audit}");
    assert!(
        actions
            .iter()
            .all(|a| a["action"] == "flow.rewind" && a["operator"] == "bob")
    );
    p.stop().await.expect("clean stop");
}

/// Dead letters are data anyone who can write the dead-letter topic can
/// forge: a replay sends only to this deployment's events and deliveries
/// topics, and skips (counts and names) any other original topic.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn replay_writes_only_to_this_deployments_topics() {
    let _turn = intops_tests::serial::beside_others().await;
    use intops_kafka::topics::TopicSpec;
    use intops_kafka::{KafkaSettings, Producer, Record};

    let target = MockTarget::start().await.expect("target");
    target.set_status(400);
    let p = Pipeline::start("foreign", &flows(&target), &[])
        .await
        .expect("pipeline");
    let prefix = p.prefix.as_str();
    post(&p, vec![json!({"id": "own", "n": 1})]).await;
    let dlq = format!("{prefix}.dlq.delivery");
    wait_count(&dlq, 1).await;
    wait_requests(&target, 1).await;

    // Copies of the real dead letter naming another deployment's
    // deliveries topic (which exists) and this deployment's control topic.
    let settings =
        KafkaSettings::new(intops_tests::stack::bootstrap(), Default::default()).expect("settings");
    let foreign = format!(
        "{}.deliveries.crm",
        intops_tests::stack::random_prefix("other")
    );
    intops_kafka::topics::ensure(&settings, &[TopicSpec::new(&foreign, 1, 1)])
        .await
        .expect("foreign topic");
    let control = format!("{prefix}.control");
    let control_before = topic::count(&control);
    let codec = intops_tests::stack::codec();
    let real: DeadLetter = codec
        .decode(topic::read(&dlq, 1, WAIT)[0].payload().expect("value"))
        .await
        .expect("dead letter");
    let producer = Producer::new(&settings).expect("producer");
    for original_topic in [&foreign, &control] {
        let forged = DeadLetter {
            original_topic: original_topic.clone(),
            ..real.clone()
        };
        let value = codec
            .encode(&dlq, intops_events::RecordKind::DeadLetter, &forged)
            .await
            .expect("encode");
        producer
            .send(Record {
                topic: &dlq,
                key: forged.original_key.as_deref().unwrap_or_default(),
                value: &value,
                headers: &[],
            })
            .await
            .expect("produce");
    }
    wait_count(&dlq, 3).await;

    target.set_status(201);
    let out = cli::output(prefix, &["dlq", "replay", "--json"]).await;
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(out.status.success(), "{stdout}\n{stderr}");
    let r: Value = serde_json::from_str(stdout.trim()).expect("json");
    assert_eq!(r["sent"], 1, "{r}");
    assert_eq!(r["skipped_foreign_topic"], 2, "{r}");
    for name in [&foreign, &control] {
        assert!(
            stderr.contains(&format!("{name:?}")) && stderr.contains("skipped"),
            "{stderr}"
        );
    }
    wait_requests(&target, 2).await;
    assert_eq!(
        topic::count(&foreign),
        0,
        "nothing written to another deployment"
    );
    assert_eq!(
        topic::count(&control),
        control_before,
        "nor to a topic of ours that is no source"
    );
    p.stop().await.expect("clean stop");
}
