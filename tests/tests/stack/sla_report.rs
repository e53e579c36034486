//! SLA reports on the real stack (issue 19, item 6): a month of two
//! tenants' history on the event topics becomes hourly rollups on
//! `<prefix>.rollups`; `intops report` prints one tenant's month per flow
//! and per day as JSON and CSV, and as an HTML page that headless
//! Chromium renders with a bar per day and the success-ratio line. Live
//! traffic lands in the current hour with the time the monitor judged the
//! flow.

use std::collections::HashMap;
use std::time::Duration;

use intops_events::{
    Codec, DeliveryRequest, IntegrationEvent, Outcome, OutcomeStatus, RecordKind, Stage,
};
use intops_kafka::{KafkaSettings, Producer, Record};
use intops_tests::{MockTarget, Pipeline, cli, poll_until, stack};
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(90);
/// 2026-11-01T00:00:00Z.
const NOV: i64 = 1_793_491_200_000_000;
const HOUR: i64 = 3_600_000_000;
const DAY: i64 = 24 * HOUR;

fn flows(initech: &MockTarget, umbrella: &MockTarget) -> String {
    format!(
        r#"
[[templates]]
id = "app-to-crm"
params = ["url"]

  [[templates.sources]]
  id = "app"
  kind = "webhook"
  auth = "none"
  entity_key = ".id"

  [[templates.targets]]
  id = "crm"
  base_url = "{{{{ $params.url }}}}"

  [[templates.flows]]
  id = "sync"
  source = "app"
  target = "crm"
  path = "/records"
  map = '{{id: .id}}'
  slo = {{ success_ratio = 0.9, latency_p95 = "30s" }}

[[tenants]]
id = "initech"
template = "app-to-crm"
params = {{ url = "{}" }}

[[tenants]]
id = "umbrella"
template = "app-to-crm"
params = {{ url = "{}" }}
"#,
        initech.base_url(),
        umbrella.base_url()
    )
}

/// Writes records straight to the pipeline's topics, as the services
/// would have written them at the time they carry.
struct History {
    prefix: String,
    codec: Codec,
    producer: Producer,
}

impl History {
    fn new(prefix: &str) -> Self {
        let settings =
            KafkaSettings::new(stack::bootstrap(), Default::default()).expect("settings");
        Self {
            prefix: prefix.to_string(),
            codec: stack::codec(),
            producer: Producer::new(&settings).expect("producer"),
        }
    }

    async fn write<T: serde::Serialize>(
        &self,
        topic: &str,
        kind: RecordKind,
        key: &str,
        record: &T,
    ) {
        let value = self
            .codec
            .encode(topic, kind, record)
            .await
            .expect("encode");
        self.producer
            .send(Record {
                topic,
                key: key.as_bytes(),
                value: &value,
                headers: &[],
            })
            .await
            .expect("produce");
    }

    fn outcome(tenant: &str, event_id: &str, status: OutcomeStatus, at: i64) -> Outcome {
        Outcome {
            event_id: event_id.to_string(),
            stage: if status == OutcomeStatus::Replayed {
                Stage::Replay
            } else {
                Stage::Delivery
            },
            status,
            flow_id: Some(format!("{tenant}.sync")),
            target_id: Some(format!("{tenant}.crm")),
            attempts: 1,
            http_status: Some(200),
            latency_ms: (status == OutcomeStatus::Delivered).then_some(200),
            error: None,
            at,
            link_action: None,
            record_id: None,
            tenant: Some(tenant.to_string()),
        }
    }

    /// One event accepted at `at`, the request its flow made and the
    /// request's `status` 200 ms later.
    async fn event(&self, tenant: &str, n: &str, at: i64, status: OutcomeStatus) {
        let event_id = uuid::Uuid::now_v7().to_string();
        let entity_key = format!("h{n}");
        let event = IntegrationEvent {
            event_id: event_id.clone(),
            source_id: format!("{tenant}.app"),
            event_type: "created".into(),
            entity_key: entity_key.clone(),
            occurred_at: at,
            ingested_at: at,
            correlation_id: None,
            attributes: HashMap::new(),
            payload: json!({ "id": entity_key }).to_string(),
            tenant: Some(tenant.to_string()),
        };
        let key = format!("{tenant}.app:{entity_key}");
        self.write(
            &format!("{}.events", self.prefix),
            RecordKind::IntegrationEvent,
            &key,
            &event,
        )
        .await;
        let request = DeliveryRequest {
            event_id: event_id.clone(),
            flow_id: format!("{tenant}.sync"),
            flow_version: "v1".into(),
            target_id: format!("{tenant}.crm"),
            entity_key: entity_key.clone(),
            method: "POST".into(),
            path: "/records".into(),
            headers: HashMap::new(),
            body: json!({ "id": entity_key }).to_string(),
            created_at: at,
            ingested_at: at,
            link: None,
            tenant: Some(tenant.to_string()),
        };
        self.write(
            &format!("{}.deliveries.{tenant}.crm", self.prefix),
            RecordKind::DeliveryRequest,
            &key,
            &request,
        )
        .await;
        let outcome = Self::outcome(tenant, &event_id, status, at + 200_000);
        self.write(
            &format!("{}.outcomes", self.prefix),
            RecordKind::Outcome,
            &key,
            &outcome,
        )
        .await;
    }

    /// November: each day at 10:00 one event delivered; for initech on the
    /// 10th a second one dead-lettered in the same hour, replayed on the
    /// 11th.
    async fn november(&self, tenant: &str) {
        for day in 0..30 {
            let at = NOV + day * DAY + 10 * HOUR;
            self.event(tenant, &day.to_string(), at, OutcomeStatus::Delivered)
                .await;
        }
        if tenant == "initech" {
            let at = NOV + 9 * DAY + 10 * HOUR;
            self.event(tenant, "dead", at, OutcomeStatus::DeadLettered)
                .await;
            let replay = Self::outcome(tenant, "dead", OutcomeStatus::Replayed, NOV + 10 * DAY);
            self.write(
                &format!("{}.outcomes", self.prefix),
                RecordKind::Outcome,
                "initech.app:hdead",
                &replay,
            )
            .await;
        }
    }
}

async fn report(prefix: &str, tenant: &str, from: &str, to: &str, format: &str) -> String {
    cli::run(
        prefix,
        &[
            "report", "--tenant", tenant, "--from", from, "--to", to, "--format", format,
        ],
    )
    .await
}

async fn november_json(prefix: &str, tenant: &str) -> Value {
    let text = report(prefix, tenant, "2026-11-01", "2026-11-30", "json").await;
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("report json: {e}: {text}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_tenants_month_is_reported_per_flow_and_per_day() {
    let _turn = intops_tests::serial::beside_others().await;
    let (initech, umbrella) = (
        MockTarget::start().await.expect("target"),
        MockTarget::start().await.expect("target"),
    );
    let p = Pipeline::start("report", &flows(&initech, &umbrella), &[])
        .await
        .expect("pipeline");
    let history = History::new(&p.prefix);
    history.november("initech").await;
    history.november("umbrella").await;
    p.post_json("initech.app", &json!([{"id": "live-1"}, {"id": "live-2"}]))
        .await;

    let month = poll_until("initech's november on the rollups topic", WAIT, || async {
        // One report run that tansu stalls (seconds, under the suite's
        // load) is killed and run again rather than taking the whole wait.
        let r = tokio::time::timeout(Duration::from_secs(20), november_json(&p.prefix, "initech"))
            .await
            .ok()?;
        let f = &r["flows"][0];
        (f["received"] == 31
            && f["delivered"] == 30
            && f["dead_lettered"] == 1
            && f["replayed"] == 1
            && r["events"] == 31)
            .then_some(r)
    })
    .await;
    assert_eq!(month["tenant"], "initech");
    assert_eq!(month["from"], "2026-11-01T00:00:00.000Z");
    assert_eq!(
        month["to"], "2026-12-01T00:00:00.000Z",
        "--to is a whole day"
    );
    let flows = month["flows"].as_array().expect("flows");
    assert_eq!(flows.len(), 1, "only initech's flows: {month}");
    let f = &flows[0];
    assert_eq!(f["flow_id"], "initech.sync");
    assert_eq!(f["received"], 31);
    let ratio = f["success_ratio"].as_f64().expect("ratio");
    assert!((ratio - 30.0 / 31.0).abs() < 1e-9, "{ratio}");
    assert_eq!(
        (f["latency_p50_ms"].as_i64(), f["latency_p95_ms"].as_i64()),
        (Some(250), Some(250))
    );
    assert_eq!(f["success_objective"], 0.9);
    assert_eq!(f["latency_objective_ms"], 30_000);
    assert_eq!(f["objectives_met"], true, "{f}");
    assert_eq!(f["hours_with_results"], 30);
    let attainment = f["attainment"].as_f64().expect("attainment");
    assert!(
        (attainment - 29.0 / 30.0).abs() < 1e-9,
        "the 10th's hour missed: {attainment}"
    );
    assert_eq!(f["healthy_seconds"], 0, "no monitor ran in november");
    assert_eq!(f["unobserved_seconds"], 30 * 86_400);
    let days = month["days"].as_array().expect("days");
    assert_eq!(days.len(), 30);
    assert_eq!(days[0]["date"], "2026-11-01");
    assert_eq!(days[0]["events"], 1);
    assert_eq!(days[9]["events"], 2);
    assert_eq!(days[9]["dead_lettered"], 1);
    assert_eq!(days[9]["success_ratio"], 0.5);

    let other = poll_until("umbrella's november", WAIT, || async {
        let r = november_json(&p.prefix, "umbrella").await;
        (r["flows"][0]["delivered"] == 30 && r["events"] == 30).then_some(r)
    })
    .await;
    assert_eq!(other["flows"][0]["flow_id"], "umbrella.sync", "{other}");
    assert_eq!(other["flows"][0]["dead_lettered"], 0);

    // CSV: the month's total, then each day per flow and its usage.
    let csv = report(&p.prefix, "initech", "2026-11-01", "2026-11-30", "csv").await;
    let lines: Vec<&str> = csv.lines().collect();
    assert!(
        lines[0]
            .starts_with("period,flow_id,received,delivered,dead_lettered,replayed,success_ratio")
    );
    assert!(
        lines[1].starts_with("total,initech.sync,31,30,1,1,"),
        "{csv}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("2026-11-10,initech.sync,2,1,1,0,0.5,")),
        "{csv}"
    );
    assert!(
        lines.iter().any(|l| l.starts_with("2026-11-10,,2,")),
        "usage: {csv}"
    );

    // HTML: the page a service manager sends, as a browser renders it.
    let html = report(&p.prefix, "initech", "2026-11-01", "2026-11-30", "html").await;
    let dir = tempfile::tempdir().expect("dir");
    let page = dir.path().join("initech-2026-11.html");
    std::fs::write(&page, html).expect("page");
    let dom = crate::monitor_page::dump_dom(&format!("file://{}", page.display())).await;
    assert!(dom.contains("Service report: initech"), "{dom}");
    assert_eq!(dom.matches(r#"class="bar""#).count(), 30, "a bar per day");
    assert!(dom.contains(r#"id="success""#), "the success-ratio line");
    assert!(dom.contains("initech.sync"));

    // Live traffic: the current hour, with the time the monitor judged the
    // flow.
    poll_until("the live events in the current hour", WAIT, || async {
        let text = report(&p.prefix, "initech", "2h", "0s", "json").await;
        let now: Value = serde_json::from_str(&text).ok()?;
        let f = &now["flows"][0];
        // The history's requests, delivered again now, are a month late:
        // the flow is judged degraded rather than healthy.
        let judged = f["healthy_seconds"].as_i64()?
            + f["degraded_seconds"].as_i64()?
            + f["failing_seconds"].as_i64()?;
        (f["received"].as_i64()? >= 2 && judged > 0).then_some(())
    })
    .await;
    p.stop().await.expect("clean stop");
}
