//! The console's API on the real stack: a monitor with a users file lists
//! dead letters, a viewer's replay and pause are refused, an operator's
//! dry run writes nothing, the operator's replay (the same code as
//! `intops dlq replay`) delivers every dead letter once and is audited
//! under the operator's name, and a pause and resume through the API hold
//! and release the target's records.

use std::time::Duration;

use intops_events::AuditRecord;
use intops_tests::{MockTarget, Pipeline, metrics, poll_until, topic};
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(90);
/// Ids no other scenario uses (the process's metrics are shared).
const TARGET: &str = "crm-console";

fn flows(target: &MockTarget) -> String {
    intops_tests::pipeline::app_flows(
        &target.base_url(),
        TARGET,
        r#"retry = { max_attempts = 1 }
circuit_breaker = { failures = 0 }
probe_interval = "200ms""#,
        "",
    )
}

/// A client of the monitor at `base` as the holder of `token`.
struct Console {
    base: String,
    token: &'static str,
}

impl Console {
    async fn get(&self, path: &str) -> (u16, Value) {
        let answer = reqwest::Client::new()
            .get(format!("{}{path}", self.base))
            .bearer_auth(self.token)
            .send()
            .await
            .expect("monitor answers");
        let status = answer.status().as_u16();
        (status, answer.json().await.expect("json"))
    }

    async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        let answer = reqwest::Client::new()
            .post(format!("{}{path}", self.base))
            .bearer_auth(self.token)
            .json(&body)
            .send()
            .await
            .expect("monitor answers");
        let status = answer.status().as_u16();
        (status, answer.json().await.expect("json"))
    }
}

async fn wait_paused(p: &Pipeline, value: f64) {
    let name = format!(r#"intops_delivery_target_paused{{target="{TARGET}"}}"#);
    poll_until(&format!("{name} = {value}"), WAIT, || async {
        (metrics::sum(p.ingest, &name).await == Some(value)).then_some(())
    })
    .await;
}

/// Waits until `GET /api/v1/targets` shows this test's target as `check`
/// wants; the target's JSON.
async fn wait_target(console: &Console, check: impl Fn(&Value) -> bool) -> Value {
    poll_until("the target's state in the API", WAIT, || async {
        let (status, all) = console.get("/api/v1/targets").await;
        let t = all["targets"]
            .as_array()?
            .iter()
            .find(|t| t["target_id"] == TARGET)?
            .clone();
        (status == 200 && check(&t)).then_some(t)
    })
    .await
}

async fn audited(prefix: &str, count: usize) -> Vec<AuditRecord> {
    let codec = intops_tests::stack::codec();
    let mut out = Vec::new();
    for m in topic::read(&format!("{prefix}.audit"), count, WAIT) {
        out.push(
            codec
                .decode::<AuditRecord>(rdkafka::Message::payload(&m).expect("value"))
                .await
                .expect("audit record"),
        );
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_operator_replays_and_pauses_through_the_api_and_a_viewer_cannot() {
    let _turn = intops_tests::serial::beside_others().await;
    let target = MockTarget::start().await.expect("target");
    target.set_status(400);
    let p = Pipeline::start("console", &flows(&target), &[])
        .await
        .expect("pipeline");
    let prefix = p.prefix.clone();
    let monitor = intops_tests::pipeline::start_console(
        &p,
        &[
            ("olga", "operator", "olga-token"),
            ("vic", "viewer", "vic-token"),
        ],
    )
    .await
    .expect("console monitor");
    let base = format!("http://{}", monitor.addr);
    let olga = Console {
        base: base.clone(),
        token: "olga-token",
    };
    let vic = Console {
        base,
        token: "vic-token",
    };

    let records: Vec<Value> = (0..3).map(|i| json!({"id": format!("c{i}")})).collect();
    p.post_json("app", &Value::Array(records)).await;
    let dlq = format!("{prefix}.dlq.delivery");
    poll_until("three dead letters", WAIT, || async {
        (topic::count(&dlq) == 3).then_some(())
    })
    .await;

    // Anyone named reads; the letters come newest first with their context.
    let (status, listed) = vic
        .get(&format!("/api/v1/dead-letters?target={TARGET}"))
        .await;
    assert_eq!(status, 200, "{listed}");
    assert_eq!(
        (listed["total"].clone(), listed["pending"].clone()),
        (json!(3), json!(3)),
        "{listed}"
    );
    let letters = listed["letters"].as_array().expect("letters");
    assert_eq!(letters.len(), 3, "{listed}");
    assert!(
        letters
            .iter()
            .all(|l| l["http_status"] == 400 && l["flow"] == "app-to-crm-console")
    );
    let (status, _) = vic.get("/api/v1/dead-letters?stage=sideways").await;
    assert_eq!(status, 400);

    // A viewer may preview but not replay or pause; nothing is written.
    let audit_before = topic::count(&format!("{prefix}.audit"));
    let (status, refused) = vic
        .post("/api/v1/dead-letters/replay", json!({"dry_run": false}))
        .await;
    assert_eq!(status, 403, "{refused}");
    let (status, refused) = vic
        .post(
            &format!("/api/v1/targets/{TARGET}/pause"),
            json!({"reason": "try"}),
        )
        .await;
    assert_eq!(status, 403, "{refused}");
    let (status, preview) = vic
        .post(
            "/api/v1/dead-letters/replay",
            json!({"dry_run": true, "target": TARGET}),
        )
        .await;
    assert_eq!(status, 200, "{preview}");
    assert_eq!(
        (preview["matched"].clone(), preview["replayed"].clone()),
        (json!(3), json!(3)),
        "{preview}"
    );
    assert_eq!(preview["dry_run"], true);
    assert_eq!(
        topic::count(&format!("{prefix}.audit")),
        audit_before,
        "a dry run and refusals write nothing"
    );
    assert_eq!(target.requests().len(), 3);

    // The operator replays after the fix: each dead letter delivered once.
    target.set_status(200);
    let (status, done) = olga
        .post(
            "/api/v1/dead-letters/replay",
            json!({"dry_run": false, "target": TARGET}),
        )
        .await;
    assert_eq!(status, 200, "{done}");
    assert_eq!(
        (done["matched"].clone(), done["replayed"].clone()),
        (json!(3), json!(3)),
        "{done}"
    );
    assert_eq!(done["operator"], "olga");
    poll_until("three replayed records delivered", WAIT, || async {
        (target.requests().len() >= 6).then_some(())
    })
    .await;
    let (_, latest) = olga.get("/api/v1/replays/latest").await;
    assert_eq!(
        (latest["running"].clone(), latest["sent"].clone()),
        (json!(false), json!(3)),
        "{latest}"
    );
    let (_, again) = olga
        .post(
            "/api/v1/dead-letters/replay",
            json!({"dry_run": false, "target": TARGET}),
        )
        .await;
    assert_eq!(again["matched"], 0, "an earlier replay sent them: {again}");
    let (_, listed) = vic
        .get(&format!("/api/v1/dead-letters?target={TARGET}"))
        .await;
    assert_eq!(listed["pending"], 0, "{listed}");

    // Pause through the API holds the target's records; resume sends them.
    let (status, paused) = olga
        .post(
            &format!("/api/v1/targets/{TARGET}/pause"),
            json!({"reason": "crm upgrade"}),
        )
        .await;
    assert_eq!(status, 200, "{paused}");
    wait_paused(&p, 1.0).await;
    // The replica reports the pause, and the API shows it beside the command.
    let shown = wait_target(&vic, |t| {
        t["state"] == "paused"
            && t["replicas"][0]["paused"] == "paused by olga: crm upgrade"
            && t["command"]["operator"] == "olga"
    })
    .await;
    assert_eq!(
        shown["replicas"].as_array().map(Vec::len),
        Some(1),
        "{shown}"
    );
    let deliveries = format!("{prefix}.deliveries.{TARGET}");
    let before = topic::count(&deliveries);
    p.post_json("app", &json!({"id": "held"})).await;
    poll_until("the held record on the deliveries topic", WAIT, || async {
        (topic::count(&deliveries) > before).then_some(())
    })
    .await;
    assert!(
        !target.requests().iter().any(|r| r.body.contains("held")),
        "nothing sent while paused"
    );
    let (status, resumed) = olga
        .post(
            &format!("/api/v1/targets/{TARGET}/resume"),
            json!({"reason": "upgrade done"}),
        )
        .await;
    assert_eq!(status, 200, "{resumed}");
    wait_paused(&p, 0.0).await;
    poll_until("the held record delivered after resume", WAIT, || async {
        target
            .requests()
            .iter()
            .any(|r| r.body.contains("held"))
            .then_some(())
    })
    .await;

    wait_target(&vic, |t| {
        t["state"] == "delivering" && t["replicas"][0]["paused"].is_null()
    })
    .await;

    // A target that answers 401 pauses itself (not an operator's doing):
    // the replica says why; a probe's other answer resumes it.
    target.set_status(401);
    p.post_json("app", &json!({"id": "unauthorized"})).await;
    wait_target(&vic, |t| {
        t["state"] == "paused"
            && t["replicas"][0]["paused"]
                .as_str()
                .is_some_and(|why| why.contains("401"))
    })
    .await;
    target.set_status(200);
    wait_target(&vic, |t| t["state"] == "delivering").await;

    // Every action is in the audit trail under the operator's name: two
    // replays (started and finished each), a pause and a resume.
    let audit_topic = format!("{prefix}.audit");
    let wanted = [
        ("dlq.replay", "olga", ""),
        ("target.pause", "olga", "crm upgrade"),
        ("target.resume", "olga", "upgrade done"),
    ];
    let trail = poll_until("the three actions audited", WAIT, || async {
        let trail = audited(
            &prefix,
            usize::try_from(topic::count(&audit_topic)).unwrap_or(0),
        )
        .await;
        let named: Vec<(String, String, String)> = trail
            .iter()
            .filter(|r| r.phase == "finished")
            .map(|r| {
                (
                    r.action.clone(),
                    r.operator.clone(),
                    r.filters.get("reason").cloned().unwrap_or_default(),
                )
            })
            .collect();
        wanted
            .iter()
            .all(|(a, o, why)| {
                named
                    .iter()
                    .any(|(na, no, nw)| na == a && no == o && nw == why)
            })
            .then_some(trail)
    })
    .await;
    assert_eq!(trail.len(), 6, "{trail:?}");
    assert!(trail.iter().all(|r| r.operator == "olga"), "{trail:?}");

    monitor.stop().await.expect("console monitor stops");
    p.stop().await.expect("clean stop");
}
