//! Helpers for the conversation scenarios (issue 16): the links and
//! outcomes topics read to their end as an analyst reads them, `intops
//! links` with its exit code, the monitor's lineage and search, and waiting
//! until a pipeline between two mock systems is quiet.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use intops_events::{Link, Outcome, Stage, Topics};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use serde_json::Value;

use crate::itsm::{JiraMock, ServiceNowMock};
use crate::{poll_until, stack};

/// One record: key and value (`None`: a tombstone).
pub type Record = (Option<Vec<u8>>, Option<Vec<u8>>);

/// Every record of `topic` on the local stack from its beginning to the
/// end it has now, each partition in order; empty when the topic does not
/// exist. No consumer group, nothing committed.
pub async fn read_to_end(topic: &str) -> Vec<Record> {
    let topic = topic.to_string();
    tokio::task::spawn_blocking(move || read_to_end_blocking(&topic))
        .await
        .expect("reader task")
}

fn read_to_end_blocking(topic: &str) -> Vec<Record> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", stack::bootstrap())
        .set("broker.address.family", "v4")
        .set("group.id", "intops-tests-links-reader")
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    let Ok(partitions) =
        intops_kafka::topics::partitions(&consumer, topic, Duration::from_secs(10))
    else {
        return Vec::new();
    };
    let mut ends = BTreeMap::new();
    let mut assignment = TopicPartitionList::new();
    for p in partitions {
        let (low, high) = consumer
            .fetch_watermarks(topic, p, Duration::from_secs(10))
            .expect("watermarks");
        if high > low {
            ends.insert(p, high);
            assignment
                .add_partition_offset(topic, p, Offset::Beginning)
                .expect("partition");
        }
    }
    if ends.is_empty() {
        return Vec::new();
    }
    consumer.assign(&assignment).expect("assign");
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut out = Vec::new();
    while !ends.is_empty() {
        assert!(
            Instant::now() < deadline,
            "timed out reading {topic} to its end"
        );
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(200))
            && ends
                .get(&m.partition())
                .is_some_and(|end| m.offset() < *end)
        {
            out.push((m.key().map(<[u8]>::to_vec), m.payload().map(<[u8]>::to_vec)));
        }
        // By position, not by the last offset seen: a compacted topic may
        // have no record at `end - 1`.
        if let Ok(positions) = consumer.position() {
            for e in positions.elements() {
                if let Offset::Offset(at) = e.offset()
                    && ends.get(&e.partition()).is_some_and(|end| at >= *end)
                {
                    ends.remove(&e.partition());
                }
            }
        }
    }
    out
}

/// The links topic of `prefix` as an analyst joins on it: the latest
/// record per key (`<flow>:<entity key>`), `None` for a tombstone.
pub async fn latest_links(prefix: &str) -> BTreeMap<String, Option<Link>> {
    let codec = stack::codec();
    let mut latest = BTreeMap::new();
    for (key, value) in read_to_end(&Topics::new(prefix).links()).await {
        let key = String::from_utf8(key.expect("a link record has a key")).expect("utf-8 key");
        let link = match value {
            None => None,
            Some(bytes) => Some(codec.decode::<Link>(&bytes).await.expect("a link decodes")),
        };
        latest.insert(key, link);
    }
    latest
}

/// The delivery stage's outcomes of `prefix` written so far, in order per
/// partition.
pub async fn delivery_outcomes(prefix: &str) -> Vec<Outcome> {
    let codec = stack::codec();
    let mut out = Vec::new();
    for (_, value) in read_to_end(&Topics::new(prefix).outcomes()).await {
        let Some(bytes) = value else { continue };
        let o: Outcome = codec.decode(&bytes).await.expect("an outcome decodes");
        if o.stage == Stage::Delivery {
            out.push(o);
        }
    }
    out
}

/// What `intops links ...` did: exit code, the JSON objects it printed
/// (with `--json`), and its stderr.
#[derive(Debug)]
pub struct LinksRun {
    /// Exit code.
    pub code: i32,
    /// One object per printed line.
    pub links: Vec<Value>,
    /// What it said on stderr.
    pub stderr: String,
}

/// Runs `intops links <args> --json` on `prefix`'s topics.
pub async fn links_cli(prefix: &str, args: &[&str]) -> LinksRun {
    let mut all = vec!["links"];
    all.extend_from_slice(args);
    all.push("--json");
    let out = crate::cli::output(prefix, &all).await;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    LinksRun {
        code: out.status.code().unwrap_or(-1),
        links: stdout
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
            .collect(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// The monitor's lineage of `event_id` once `until` holds for it.
pub async fn trace(
    monitor: SocketAddr,
    event_id: &str,
    within: Duration,
    until: impl Fn(&Value) -> bool,
) -> Value {
    let url = format!("http://{monitor}/api/v1/events/{event_id}");
    poll_until(&format!("the lineage of {event_id}"), within, || {
        let url = url.clone();
        let until = &until;
        async move {
            let v: Value = reqwest::get(&url).await.ok()?.json().await.ok()?;
            until(&v).then_some(v)
        }
    })
    .await
}

/// The delivery stages of a lineage (`GET /api/v1/events/{id}`).
pub fn delivery_stages(trace: &Value) -> Vec<&Value> {
    trace["stages"]
        .as_array()
        .map(|s| s.iter().filter(|s| s["stage"] == "delivery").collect())
        .unwrap_or_default()
}

/// The monitor's `GET /api/v1/search?q=` (up to 100 hits).
pub async fn search(monitor: SocketAddr, q: &str) -> Value {
    let mut url = reqwest::Url::parse(&format!("http://{monitor}/api/v1/search")).expect("url");
    url.query_pairs_mut()
        .append_pair("q", q)
        .append_pair("limit", "100");
    reqwest::get(url)
        .await
        .expect("search answers")
        .json()
        .await
        .expect("search json")
}

/// The event ids ingest gave the webhooks of `record` (an issue key, a
/// sys_id) that a mock sent, in order.
pub fn webhook_event_ids(sent: &[crate::itsm::SentWebhook], record: &str) -> Vec<String> {
    sent.iter()
        .filter(|w| w.record == record)
        .flat_map(crate::itsm::SentWebhook::event_ids)
        .collect()
}

/// Two mock systems and the pipeline between them, for [`wait_quiet`].
#[derive(Debug, Clone, Copy)]
pub struct Between<'a> {
    /// The pipeline's topic prefix.
    pub prefix: &'a str,
    /// The target ids delivery sends to.
    pub targets: &'a [&'a str],
    /// The Jira-shaped system.
    pub jira: &'a JiraMock,
    /// The ServiceNow-shaped system.
    pub snow: &'a ServiceNowMock,
}

/// What must not move while the pipeline is quiet.
#[derive(Debug, PartialEq, Eq)]
struct Snapshot {
    jira_requests: usize,
    snow_requests: usize,
    jira_webhooks: usize,
    snow_webhooks: usize,
    /// (topic, partition, committed, end) of transform's and every target's
    /// delivery input.
    offsets: Vec<(String, i32, Option<i64>, i64)>,
}

impl Snapshot {
    /// Nothing queued anywhere: every webhook sent, every record of
    /// transform's and delivery's inputs committed.
    fn settled(&self) -> bool {
        self.offsets
            .iter()
            .all(|(_, _, at, end)| at.unwrap_or(0) >= *end)
    }
}

async fn snapshot(b: Between<'_>) -> Option<Snapshot> {
    // Webhooks first: a write the mock received before this point has
    // queued its webhook; once that is sent, its event is on the events
    // topic, so the offsets read next include it.
    let idle = Duration::from_millis(1);
    b.jira.wait_webhooks(idle).await.ok()?;
    b.snow.wait_webhooks(idle).await.ok()?;
    let topics = Topics::new(b.prefix);
    let mut inputs = vec![(topics.group("transform"), topics.events())];
    for t in b.targets {
        inputs.push((topics.group(&format!("delivery.{t}")), topics.deliveries(t)));
    }
    let offsets = tokio::task::spawn_blocking(move || {
        let mut offsets = Vec::new();
        for (group, topic) in inputs {
            let partitions = crate::topic::partitions(&topic).unwrap_or(0);
            for (p, at, end) in crate::group::committed_and_ends(&group, &topic, partitions) {
                offsets.push((topic.clone(), p, at, end));
            }
        }
        offsets
    })
    .await
    .ok()?;
    Some(Snapshot {
        jira_requests: b.jira.requests().len(),
        snow_requests: b.snow.requests().len(),
        jira_webhooks: b.jira.webhooks().len(),
        snow_webhooks: b.snow.webhooks().len(),
        offsets,
    })
}

/// Waits until the pipeline between the two systems is quiet: no webhook
/// queued in either mock, transform and delivery have committed every
/// record of their inputs, and nothing of that (nor either mock's request
/// count) moved for `stable`. Panics once `within` passed — a ping-pong
/// never gets there.
pub async fn wait_quiet(b: Between<'_>, stable: Duration, within: Duration) {
    let end = Instant::now() + within;
    let mut last: Option<(Snapshot, Instant)> = None;
    loop {
        let now = snapshot(b).await.filter(Snapshot::settled);
        last = match (now, last) {
            (Some(now), Some((before, since))) if now == before => {
                if since.elapsed() >= stable {
                    return;
                }
                Some((before, since))
            }
            (Some(now), _) => Some((now, Instant::now())),
            (None, _) => None,
        };
        assert!(
            Instant::now() < end,
            "not quiet within {within:?}: jira received {} request(s), servicenow {}; last settled state: {:?}",
            b.jira.requests().len(),
            b.snow.requests().len(),
            last.as_ref().map(|(s, _)| s)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
