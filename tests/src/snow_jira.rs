//! A ServiceNow-to-Jira capture flow for the links scenarios
//! (`tests/tests/stack/links_*.rs`): its flows file, ingest and transform
//! in this process in front of delivery run as its own process, and
//! what the scenarios read back (outcomes, links, the Jira mock's issues
//! and requests per incident).
//!
//! The flow posts `{fields: {summary: .short_description, labels:
//! [.sys_id]}}` to `/rest/api/3/issue`, captures `.key` and updates with
//! `PUT /rest/api/3/issue/{{ $link }}`: an incident's issues and requests
//! are the ones labelled with its `sys_id`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::Duration;

use intops_events::{Outcome, Stage};
use intops_runtime::{CancellationToken, CommonArgs};
use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use serde_json::Value;

use crate::itsm::{Issue, JiraMock};
use crate::pipeline::IngestOnly;
use crate::target::Captured;
use crate::{cli, poll_until, process, stack};

/// The source the scenarios post incidents to (no authentication).
pub const SOURCE: &str = "snow";

/// A flows file: source [`SOURCE`] (entity key `.sys_id`), target
/// `target` at `jira_base`, capture flow `flow` (ids unique per scenario:
/// the link metrics are labelled by flow). `retry` is the target's retry
/// table.
pub fn flows(jira_base: &str, flow: &str, target: &str, retry: &str) -> String {
    format!(
        r#"
[[sources]]
id = "{SOURCE}"
kind = "webhook"
auth = "none"
entity_key = ".sys_id"

[[targets]]
id = "{target}"
base_url = "{jira_base}"
timeout = "10s"
concurrency = 4
retry = {retry}

[[flows]]
id = "{flow}"
source = "{SOURCE}"
target = "{target}"
method = "POST"
path = "/rest/api/3/issue"
map = '{{fields: {{summary: .short_description, labels: [.sys_id]}}}}'
link = {{ capture = ".key" }}
update = {{ method = "PUT", path = "/rest/api/3/issue/{{{{ $link }}}}" }}
"#
    )
}

/// Ingest and transform in this process, on a random topic prefix, with
/// the flows file in a temporary directory (for delivery processes too).
#[derive(Debug)]
pub struct Front {
    /// The topic prefix.
    pub prefix: String,
    ingest: IngestOnly,
    shutdown: CancellationToken,
    transform: tokio::task::JoinHandle<anyhow::Result<()>>,
    dir: tempfile::TempDir,
}

impl Front {
    /// Writes `flows`, starts ingest (ready) and transform.
    pub async fn start(name: &str, flows: &str) -> anyhow::Result<Self> {
        let dir = tempfile::tempdir()?;
        std::fs::write(dir.path().join("flows.toml"), flows)?;
        let prefix = stack::random_prefix(name);
        let ingest = IngestOnly::start_on_prefix(
            &prefix,
            flows,
            &[],
            &stack::bootstrap(),
            Duration::from_secs(10),
        )
        .await?;
        let mut common = CommonArgs::local(dir.path().join("flows.toml"), &prefix);
        common.connect.kafka_bootstrap = stack::bootstrap();
        common.connect.schema_registry_url = stack::registry_url();
        let args = intops_transform::Args {
            common,
            concurrency: 32,
            dlq_cap_window: 20,
            dlq_cap_ratio: 0.5,
            dlq_cap_consecutive: 0,
        };
        let shutdown = CancellationToken::new();
        let transform = tokio::spawn(intops_transform::run(args, shutdown.clone()));
        Ok(Self {
            prefix,
            ingest,
            shutdown,
            transform,
            dir,
        })
    }

    /// The flows file.
    pub fn flows_path(&self) -> PathBuf {
        self.dir.path().join("flows.toml")
    }

    /// A directory that lives as long as this (for logs).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Posts one incident to [`SOURCE`]; its event id.
    pub async fn post(&self, incident: Value) -> String {
        let response = reqwest::Client::new()
            .post(self.ingest.url(SOURCE))
            .json(&incident)
            .send()
            .await
            .expect("ingest answers");
        assert_eq!(response.status(), 202, "ingest accepts {incident}");
        let answer: Value = response.json().await.expect("json answer");
        answer["event_ids"][0]
            .as_str()
            .expect("an event id")
            .to_string()
    }

    /// Stops transform and ingest; an error if either failed.
    pub async fn stop(self) -> anyhow::Result<()> {
        self.shutdown.cancel();
        tokio::time::timeout(Duration::from_secs(60), self.transform).await???;
        self.ingest.stop().await
    }
}

/// A delivery process on a [`Front`]'s topics and flows file; killed
/// (SIGKILL) when dropped, so a failing scenario leaves no process behind.
#[derive(Debug)]
pub struct Delivery {
    /// Its `/metrics` and `/readyz`.
    pub admin: SocketAddr,
    log: PathBuf,
    child: Option<Child>,
}

impl Delivery {
    /// Starts delivery on `front`'s topics, serving `/metrics` and
    /// `/readyz` on a free port, logging JSON lines to `log` (a file of
    /// its own; `RUST_LOG` = `log_filter` plus `intops_delivery=info`).
    pub fn start(front: &Front, log: &Path, log_filter: &str) -> Self {
        let admin = SocketAddr::from(([127, 0, 0, 1], stack::free_port()));
        let listen = admin.to_string();
        let filter = format!("{log_filter},intops_delivery=info");
        let child = process::spawn(
            "intops-delivery",
            &front.flows_path(),
            &front.prefix,
            &stack::bootstrap(),
            &[
                ("INTOPS_ADMIN_LISTEN", listen.as_str()),
                ("INTOPS_LOG_FORMAT", "json"),
                ("RUST_LOG", filter.as_str()),
            ],
            Some(log),
        );
        Self {
            admin,
            log: log.to_path_buf(),
            child: Some(child),
        }
    }

    /// Waits until it consumes (its links index caught up before) and its
    /// `/readyz` answers 200. `/readyz` alone is not enough: it answers
    /// 200 for a moment at start, after the topics were created and before
    /// the links index registered its check.
    pub async fn ready(&self, within: Duration) {
        poll_until("delivery to consume", within, || async {
            (!log_lines(&self.log, "delivery consuming").is_empty()).then_some(())
        })
        .await;
        wait_ready(self.admin, within).await;
    }

    /// SIGKILL, and waits until it is gone.
    pub fn kill(mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().expect("kill -9");
            let _ = child.wait();
        }
    }

    /// SIGTERM; its exit status.
    pub fn terminate(mut self) -> std::process::ExitStatus {
        process::terminate(self.child.take().expect("running"))
    }
}

impl Drop for Delivery {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Waits until `addr`'s `/readyz` answers 200 (delivery: its links index
/// caught up).
pub async fn wait_ready(addr: SocketAddr, within: Duration) {
    let url = format!("http://{addr}/readyz");
    poll_until(&format!("{url} to answer 200"), within, || {
        let url = url.clone();
        async move {
            let r = reqwest::get(&url).await.ok()?;
            r.status().is_success().then_some(())
        }
    })
    .await;
}

/// Every outcome in `<prefix>.outcomes` up to its end at the call.
pub async fn outcomes(prefix: &str) -> Vec<Outcome> {
    let topic = format!("{prefix}.outcomes");
    let values = tokio::task::spawn_blocking(move || read_to_end(&topic))
        .await
        .expect("reader");
    let codec = stack::codec();
    let mut out = Vec::new();
    for value in values {
        out.push(codec.decode(&value).await.expect("an outcome"));
    }
    out
}

/// The values of `topic` from its beginning to its high watermarks.
fn read_to_end(topic: &str) -> Vec<Vec<u8>> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", stack::bootstrap())
        .set("broker.address.family", "v4")
        .set("group.id", "intops-tests-reader")
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    let timeout = Duration::from_secs(10);
    let Ok(partitions) = intops_kafka::topics::partitions(&consumer, topic, timeout) else {
        return Vec::new();
    };
    let mut ends = std::collections::HashMap::new();
    let mut assignment = TopicPartitionList::new();
    for p in partitions {
        let (low, high) = consumer
            .fetch_watermarks(topic, p, timeout)
            .expect("watermarks");
        if high > low {
            ends.insert(p, high);
            assignment
                .add_partition_offset(topic, p, Offset::Beginning)
                .expect("partition");
        }
    }
    let mut out = Vec::new();
    if ends.is_empty() {
        return out;
    }
    consumer.assign(&assignment).expect("assign");
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !ends.is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "reading {topic} to its end timed out"
        );
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(200)) {
            if let Some(v) = m.payload() {
                out.push(v.to_vec());
            }
            if ends
                .get(&m.partition())
                .is_some_and(|end| m.offset() + 1 >= *end)
            {
                ends.remove(&m.partition());
            }
        }
    }
    out
}

/// Waits until delivery's outcome of `event_id` is in `<prefix>.outcomes`
/// and satisfies `wanted` (the first such, in topic order).
pub async fn delivery_outcome(
    prefix: &str,
    event_id: &str,
    wanted: impl Fn(&Outcome) -> bool,
    within: Duration,
) -> Outcome {
    poll_until(
        &format!("delivery's outcome of {event_id}"),
        within,
        || async {
            outcomes(prefix)
                .await
                .into_iter()
                .find(|o| o.event_id == event_id && o.stage == Stage::Delivery && wanted(o))
        },
    )
    .await
}

/// `intops links show <flow> <entity key> --json`: the link as the CLI
/// prints it, `None` when there is none.
pub async fn link(prefix: &str, flow: &str, entity_key: &str) -> Option<Value> {
    let out = cli::output(prefix, &["links", "show", flow, entity_key, "--json"]).await;
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(text.trim()).ok()
}

/// Waits until the links topic holds `flow`'s link of `entity_key` with a
/// record id (the link write was acknowledged); that record id.
pub async fn wait_linked(prefix: &str, flow: &str, entity_key: &str, within: Duration) -> String {
    poll_until(
        &format!("a link of {flow}:{entity_key} with a record id"),
        within,
        || async {
            link(prefix, flow, entity_key).await?["record_id"]
                .as_str()
                .map(str::to_string)
        },
    )
    .await
}

fn labelled(fields: &serde_json::Map<String, Value>, sys_id: &str) -> bool {
    fields
        .get("labels")
        .and_then(Value::as_array)
        .is_some_and(|l| l.iter().any(|v| v == sys_id))
}

/// The issues made for incident `sys_id`.
pub fn issues_of(jira: &JiraMock, sys_id: &str) -> Vec<Issue> {
    jira.issues()
        .into_iter()
        .filter(|i| labelled(&i.fields, sys_id))
        .collect()
}

/// The requests Jira received for incident `sys_id` (by their body's
/// labels), in order.
pub fn requests_of(jira: &JiraMock, sys_id: &str) -> Vec<Captured> {
    jira.requests()
        .into_iter()
        .filter(|r| {
            r.json()
                .get("fields")
                .and_then(Value::as_object)
                .is_some_and(|f| labelled(f, sys_id))
        })
        .collect()
}

/// Whether `r` is a create (`POST /rest/api/3/issue`).
pub fn is_create(r: &Captured) -> bool {
    r.method == "POST" && r.path == "/rest/api/3/issue"
}

/// Whether `r` is an update of issue `key` (`PUT /rest/api/3/issue/<key>`).
pub fn is_update_of(r: &Captured, key: &str) -> bool {
    r.method == "PUT" && r.path == format!("/rest/api/3/issue/{key}")
}

/// The JSON log lines in `log` whose message is `message`.
pub fn log_lines(log: &Path, message: &str) -> Vec<Value> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["fields"]["message"] == message)
        .collect()
}

/// The last partition count `log`'s process reported holding after a
/// rebalance (`RUST_LOG` with `intops_kafka::drain=debug`); `None` before
/// its first rebalance.
pub fn partitions_held(log: &Path) -> Option<u64> {
    log_lines(log, "partitions assigned after rebalance")
        .last()
        .and_then(|l| l["fields"]["held"].as_u64())
}

/// Waits until delivery's group for `target` has committed every record of
/// its deliveries topic (3 partitions; an empty partition needs no
/// commit): it has finished all of them, so anything it would repeat has
/// happened.
pub async fn wait_all_committed(prefix: &str, target: &str, within: Duration) {
    let topics = intops_events::Topics::new(prefix);
    let (group, topic) = (
        topics.group(&format!("delivery.{target}")),
        topics.deliveries(target),
    );
    poll_until("every deliveries record committed", within, || async {
        crate::group::committed_and_ends(&group, &topic, 3)
            .iter()
            .all(|(_, at, end)| at.unwrap_or(0) == *end)
            .then_some(())
    })
    .await;
}

/// The sum of `name`'s series at `addr`'s `/metrics` that carry every one
/// of `labels` (in any order); `None` when the endpoint does not answer or
/// no such series is exported.
pub async fn series(addr: SocketAddr, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let text = crate::metrics::scrape(addr).await?;
    let prefix = format!("{name}{{");
    let samples: Vec<f64> = text
        .lines()
        .filter(|l| l.starts_with(&prefix))
        .filter(|l| {
            labels
                .iter()
                .all(|(k, v)| l.contains(&format!("{k}=\"{v}\"")))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .collect();
    (!samples.is_empty()).then(|| samples.iter().sum())
}
