//! Links (issue 16): what delivery's links index costs.
//!
//! - The index: `--links` Link records (realistic sizes: a 32-character
//!   sys_id-like entity key, an `OPS-<n>` record id, flow
//!   `snow-p1-to-jira`) written to a links topic created as the services
//!   create it (the topic plan: compacted, the binaries' partitions), then
//!   read into delivery's index by a fresh child process (so its resident
//!   memory holds nothing of the writing): records, links, catch-up time,
//!   the index's heap bytes and the process's resident memory before and
//!   after.
//! - End to end with and without links, same run: the example flows against
//!   a Jira-shaped target, once without the link (`link`/`update` lines
//!   removed) and once as shipped, each with all-distinct entity keys and
//!   with repeated keys (mostly updates).

use std::collections::HashSet;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use futures::StreamExt as _;
use intops_delivery::links::{Follower, LinkIndex};
use intops_events::{Link, LinkAction, LinkMode, Outcome, RecordKind, Stage, now_micros};
use intops_kafka::ServiceContext;
use intops_runtime::{CancellationToken, ConnectArgs};
use intops_tests::itsm::JiraMock;
use intops_tests::pipeline::example_flows;
use intops_tests::{Pipeline, poll_until, stack, topic};
use rand::Rng as _;

use crate::Percentiles;

/// The capture flow of the example flows file.
const FLOW: &str = "snow-p1-to-jira";
/// Links encoded and produced at a time.
const CHUNK: usize = 20_000;
/// Links in flight to the broker at once.
const IN_FLIGHT: usize = 2_000;
/// What the child process prints before its JSON line.
const MARK: &str = "links-catch-up ";

/// What the index phase measured.
pub struct Index {
    /// Records written (one link each, all distinct keys).
    pub written: usize,
    /// Seconds the writing took (encode and produce, acknowledged).
    pub write_secs: f64,
    /// Partitions of the links topic.
    pub partitions: i32,
    /// The topic's configs as the plan creates it.
    pub configs: String,
    /// What the child process measured.
    pub caught_up: CaughtUp,
}

/// The child's measurement of one catch-up.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub struct CaughtUp {
    /// Records read.
    pub records: u64,
    /// Links in the index afterwards.
    pub links: usize,
    /// Seconds `Follower::catch_up` took.
    pub secs: f64,
    /// `LinkIndex::heap_bytes` afterwards.
    pub heap_bytes: usize,
    /// VmRSS before the follower opened the topic (clients and codec up).
    pub rss_before_kb: u64,
    /// VmRSS after the catch-up (index and follower held).
    pub rss_after_kb: u64,
    /// CPU seconds (user and system, every thread) the process spent in the
    /// catch-up: records / this is the rate a broker that answers at once
    /// would allow.
    pub cpu_secs: f64,
}

/// The connection settings a delivery binary would use on this stack (its
/// defaults and environment), on topic prefix `prefix`.
fn connect(prefix: &str) -> anyhow::Result<ConnectArgs> {
    use clap::Parser as _;
    let defaults =
        intops_delivery::Args::try_parse_from(["intops-delivery", "--flows", "flows.toml"])?;
    let mut connect = defaults.common.connect;
    connect.kafka_bootstrap = stack::bootstrap();
    connect.schema_registry_url = stack::registry_url();
    connect.topic_prefix = prefix.to_string();
    Ok(connect)
}

fn rss_kb() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

/// CPU seconds (user + system) this process used so far.
fn cpu_secs() -> f64 {
    // /proc/self/stat: after the command's closing parenthesis, utime and
    // stime are the 12th and 13th fields, in USER_HZ (100 on Linux).
    std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|s| {
            let rest = s.rsplit_once(')')?.1;
            let fields: Vec<&str> = rest.split_whitespace().collect();
            let ticks =
                fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
            Some(ticks as f64 / 100.0)
        })
        .unwrap_or(0.0)
}

/// Writes `count` links to a new links topic, then has a child process
/// (this binary with `--links-catch-up <prefix>`) read them into an index.
pub async fn index(count: usize) -> anyhow::Result<Index> {
    let prefix = stack::random_prefix("linksbench");
    let ctx = ServiceContext::new(&connect(&prefix)?)?;
    let topic = ctx.topics.links();
    ctx.ensure_topics(std::slice::from_ref(&topic)).await?;
    let spec = ctx.plan.spec(&topic);
    let configs = spec
        .configs
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(", ");

    let mut rng = rand::rng();
    let started = Instant::now();
    let mut written = 0;
    while written < count {
        let n = CHUNK.min(count - written);
        let mut records = Vec::with_capacity(n);
        for i in written..written + n {
            let entity_key = format!("{:032x}", rng.random::<u128>());
            let now = now_micros();
            let link = Link {
                tenant: None,
                flow_id: FLOW.into(),
                mode: LinkMode::Capture,
                via_flow: None,
                entity_key: entity_key.clone(),
                target_id: "jira".into(),
                record_id: Some(format!("OPS-{}", i + 1)),
                event_id: uuid::Uuid::now_v7().to_string(),
                last_write: Some(format!("{:016x}", rng.random::<u64>())),
                created_at: now,
                updated_at: now,
                written_at: Some(now),
                seen_at: Some(now),
                basis_at: Some(now),
                earlier_written_at: None,
                earlier_basis_at: None,
            };
            let value = ctx.codec.encode(&topic, RecordKind::Link, &link).await?;
            records.push((Link::key_of(FLOW, &entity_key), value));
        }
        produce_retrying(&ctx.producer, &topic, &records).await?;
        written += n;
        // Progress on stderr: tansu slows down as its database grows.
        eprintln!(
            "links written: {written} in {:.1}s",
            started.elapsed().as_secs_f64()
        );
    }
    let write_secs = started.elapsed().as_secs_f64();
    drop(ctx);

    let exe = std::env::current_exe()?;
    let out = tokio::process::Command::new(exe)
        .args(["--links-catch-up", &prefix])
        .stderr(std::process::Stdio::inherit())
        .output()
        .await
        .context("starting the catch-up process")?;
    anyhow::ensure!(out.status.success(), "catch-up process: {}", out.status);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout
        .lines()
        .find_map(|l| l.strip_prefix(MARK))
        .context("the catch-up process printed no measurement")?;
    let caught_up: CaughtUp = serde_json::from_str(line)?;
    anyhow::ensure!(
        caught_up.links == written,
        "the index holds {} links of the {written} written",
        caught_up.links
    );
    Ok(Index {
        written,
        write_secs,
        partitions: spec.partitions,
        configs,
        caught_up,
    })
}

/// Produces every record, at most [`IN_FLIGHT`] at a time, sending the
/// ones the broker did not acknowledge again (up to five rounds): a million
/// records at once can keep tansu from answering for minutes, and the
/// broker is shared with whatever else runs on the stack.
async fn produce_retrying(
    producer: &intops_kafka::Producer,
    topic: &str,
    records: &[(String, Vec<u8>)],
) -> anyhow::Result<()> {
    let mut left: Vec<&(String, Vec<u8>)> = records.iter().collect();
    for round in 1..=5 {
        let results = futures::stream::iter(left.iter().map(|(k, v)| async move {
            producer
                .send(intops_kafka::Record {
                    topic,
                    key: k.as_bytes(),
                    value: v,
                    headers: &[],
                })
                .await
        }))
        .buffered(IN_FLIGHT)
        .collect::<Vec<_>>()
        .await;
        let failed: Vec<_> = left
            .iter()
            .zip(&results)
            .filter(|(_, r)| r.is_err())
            .map(|(record, _)| *record)
            .collect();
        if failed.is_empty() {
            return Ok(());
        }
        eprintln!(
            "round {round}: {} links not acknowledged, sending them again",
            failed.len()
        );
        left = failed;
    }
    anyhow::bail!("{} links never acknowledged", left.len())
}

/// The child: reads `<prefix>.links` into a new index as delivery does at
/// start and prints the measurement as one JSON line after [`MARK`].
pub async fn catch_up_child(prefix: &str) -> anyhow::Result<()> {
    let ctx = ServiceContext::new(&connect(prefix)?)?;
    let topic = ctx.topics.links();
    let index = std::sync::Arc::new(LinkIndex::new());
    let rss_before_kb = rss_kb();
    let cpu_before = cpu_secs();
    let mut follower = Follower::open(&ctx.kafka, ctx.codec.clone(), &topic, index.clone()).await?;
    let caught = follower
        .catch_up(&CancellationToken::new())
        .await?
        .context("catch-up cancelled")?;
    let measured = CaughtUp {
        records: caught.records,
        links: caught.links,
        secs: caught.elapsed.as_secs_f64(),
        heap_bytes: index.heap_bytes(),
        rss_before_kb,
        rss_after_kb: rss_kb(),
        cpu_secs: cpu_secs() - cpu_before,
    };
    println!("{MARK}{}", serde_json::to_string(&measured)?);
    drop(follower);
    Ok(())
}

/// The example flows without links: `snow-p1-to-jira` without its `link`
/// and `update` lines, and `jira-to-snow` left out (its `link = { from }`
/// must name a flow with a capture; it takes no ServiceNow events).
pub fn unlinked(flows: &str) -> anyhow::Result<String> {
    let mut blocks = flows.split("[[flows]]");
    let mut text = blocks.next().unwrap_or_default().to_string();
    for block in blocks {
        if block.contains("id = \"jira-to-snow\"") {
            continue;
        }
        text.push_str("[[flows]]");
        for line in block.split_inclusive('\n') {
            let t = line.trim_start();
            if !(t.starts_with("link =") || t.starts_with("update =")) {
                text.push_str(line);
            }
        }
    }
    anyhow::ensure!(
        !text.contains("link =") && !text.contains("update =") && text.contains(FLOW),
        "could not take the links out of the example flows"
    );
    Ok(text)
}

/// `n` ServiceNow events over `keys` entity keys (key `i % keys`), each
/// with its own `short_description`, so every update changes the issue
/// (never an echo).
pub fn events(payload: &str, n: usize, keys: usize) -> Vec<String> {
    (0..n)
        .map(|i| {
            payload
                .replace(
                    "9d385017c611228701d22104cc95c371",
                    &format!("bench{:027}", i % keys.max(1)),
                )
                .replace(
                    "Email server down in Helsinki office",
                    &format!("Email server down in Helsinki office (change {i})"),
                )
        })
        .collect()
}

/// The in-process metrics' text (every service of this process).
fn metrics_text() -> String {
    intops_runtime::metrics::install()
        .map(|h| h.render())
        .unwrap_or_default()
}

/// The sum of the samples of lines starting with `name` and containing
/// `having`.
fn metric(text: &str, name: &str, having: &str) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(name) && l.contains(having))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// What one end-to-end run measured.
pub struct Run {
    pub rate: f64,
    pub secs: f64,
    pub ingest_secs: f64,
    /// Ingested -> delivered, from the delivery outcomes.
    pub latency: Percentiles,
    /// Requests the target received: creates (POST) and updates (PUT).
    pub posts: usize,
    pub puts: usize,
    /// Issues the target holds at the end.
    pub issues: usize,
    /// Outcomes by link action.
    pub creates: usize,
    pub updates: usize,
    pub echoes: usize,
    /// Links syncs (lookup misses waiting for the index) and their mean.
    pub syncs: f64,
    pub sync_mean_ms: f64,
    /// Mean seconds per HTTP attempt (delivery's own measure).
    pub attempt_mean_ms: f64,
}

/// Posts `events` (signed batches of `batch`, `concurrency` in flight)
/// through the four services with `flows` (the example flows' shape)
/// against a Jira-shaped target; the rate is from the first request until
/// delivery has had an answer for every event.
pub async fn end_to_end(
    flows: &str,
    events: &[String],
    batch: usize,
    concurrency: usize,
) -> anyhow::Result<Run> {
    let jira = JiraMock::start().await?;
    let pipeline = Pipeline::start(
        "linkse2e",
        &flows.replace("http://127.0.0.1:1", &jira.base_url()),
        &[("snow", crate::SECRET)],
    )
    .await?;
    let before = metrics_text();
    let http = reqwest::Client::new();
    let url = pipeline.ingest_url("servicenow");
    let bodies: Vec<String> = events
        .chunks(batch.max(1))
        .map(|c| format!("[{}]", c.join(",")))
        .collect();
    let n = events.len();
    let started = Instant::now();
    let answers = futures::stream::iter(bodies.iter().map(|b| crate::post(&http, &url, b)))
        .buffer_unordered(concurrency.max(1))
        .collect::<Vec<_>>()
        .await;
    let ingest_secs = started.elapsed().as_secs_f64();
    for a in answers {
        a?;
    }
    // Delivery's attempt counter, not the target's request log: copying
    // that log every 50 ms would cost the two cores more than it measures.
    let attempts_before = metric(&before, "intops_delivery_attempts_total", "");
    poll_until(
        "every event answered by the target",
        Duration::from_secs(3600),
        || async {
            let done = metric(&metrics_text(), "intops_delivery_attempts_total", "");
            (done - attempts_before >= n as f64).then_some(())
        },
    )
    .await;
    let secs = started.elapsed().as_secs_f64();
    let after = metrics_text();
    let delta = |name: &str| metric(&after, name, "") - metric(&before, name, "");
    let syncs = delta("intops_link_sync_seconds_count");
    let sync_secs = delta("intops_link_sync_seconds_sum");
    let attempts = delta("intops_delivery_request_seconds_count");
    let attempt_secs = delta("intops_delivery_request_seconds_sum");

    let requests = jira.requests();
    let posts = requests.iter().filter(|r| r.method == "POST").count();
    let puts = requests.iter().filter(|r| r.method == "PUT").count();
    let issues = jira.issues().len();
    drop(requests);

    let codec = stack::codec();
    let outcomes = topic::read(
        &format!("{}.outcomes", pipeline.prefix),
        n,
        Duration::from_secs(300),
    );
    let (mut latencies, mut creates, mut updates, mut echoes) = (Vec::new(), 0, 0, 0);
    let mut seen = HashSet::new();
    for m in &outcomes {
        let payload = rdkafka::message::Message::payload(m).context("outcome value")?;
        let o: Outcome = codec.decode(payload).await?;
        if o.stage != Stage::Delivery || !seen.insert(o.event_id.clone()) {
            continue;
        }
        latencies.push(o.latency_ms.unwrap_or(0));
        match o.link_action {
            Some(LinkAction::Create) => creates += 1,
            Some(LinkAction::Update) => updates += 1,
            Some(LinkAction::Echo) => echoes += 1,
            _ => {}
        }
    }
    pipeline.stop().await?;
    Ok(Run {
        rate: n as f64 / secs,
        secs,
        ingest_secs,
        latency: Percentiles::of(latencies),
        posts,
        puts,
        issues,
        creates,
        updates,
        echoes,
        syncs,
        sync_mean_ms: if syncs > 0.0 {
            1000.0 * sync_secs / syncs
        } else {
            0.0
        },
        attempt_mean_ms: if attempts > 0.0 {
            1000.0 * attempt_secs / attempts
        } else {
            0.0
        },
    })
}

/// Prints one run's line.
pub fn print_run(label: &str, run: &Run, n: usize, baseline: Option<f64>) {
    let versus = baseline.map_or(String::new(), |b| {
        format!(
            " ({:.0}% of the same workload without links)",
            100.0 * run.rate / b
        )
    });
    println!(
        "  {label}: {:.0} events/s{versus} ({n} events in {:.2}s; ingest accepted all in {:.2}s); ingested -> delivered p50 {} ms, p99 {} ms; target got {} POST, {} PUT, holds {} issues; outcomes create {}, update {}, echo {}; link syncs {:.0} (mean {:.1} ms); HTTP attempt mean {:.1} ms",
        run.rate,
        run.secs,
        run.ingest_secs,
        run.latency.p50,
        run.latency.p99,
        run.posts,
        run.puts,
        run.issues,
        run.creates,
        run.updates,
        run.echoes,
        run.syncs,
        run.sync_mean_ms,
        run.attempt_mean_ms
    );
}

/// The end-to-end comparison: four runs, printed side by side.
pub async fn compare(
    payload: &str,
    n: usize,
    per_key: usize,
    batch: usize,
    concurrency: usize,
) -> anyhow::Result<()> {
    let shipped = example_flows("http://127.0.0.1:1");
    let without = unlinked(&shipped)?;
    let keys = (n / per_key.max(1)).max(1);
    let distinct = events(payload, n, n);
    let repeated = events(payload, n, keys);
    println!(
        "end to end with links beside without, same run: {n} events each, batches of {batch}, {concurrency} requests in flight, target Jira-shaped (intops_tests::itsm::JiraMock)"
    );
    let plain_distinct = end_to_end(&without, &distinct, batch, concurrency).await?;
    print_run("without links, distinct keys", &plain_distinct, n, None);
    let linked_distinct = end_to_end(&shipped, &distinct, batch, concurrency).await?;
    print_run(
        "with links, distinct keys (every event a create)",
        &linked_distinct,
        n,
        Some(plain_distinct.rate),
    );
    let label = format!("{keys} keys x {per_key} events");
    let plain_repeated = end_to_end(&without, &repeated, batch, concurrency).await?;
    print_run(&format!("without links, {label}"), &plain_repeated, n, None);
    let linked_repeated = end_to_end(&shipped, &repeated, batch, concurrency).await?;
    print_run(
        &format!("with links, {label} (first event of a key creates, the rest update)"),
        &linked_repeated,
        n,
        Some(plain_repeated.rate),
    );
    println!(
        "  deviations: the target is intops_tests::itsm::JiraMock in all four runs (POST /rest/api/3/issue answers 201 {{\"id\",\"key\",\"self\"}}, PUT 204; the generic mock target of the end-to-end phase answers 201 with an empty body, which would make every create a missing capture); \"without links\" is deploy/local/flows.toml without snow-p1-to-jira's link/update lines and without jira-to-snow (its link = {{ from }} needs a capture flow; it takes no ServiceNow events); each event's short_description differs (so no update is an echo); the services share the benchmark's process, transform {} lanes, topics of {} partitions; completion is read from delivery's attempt counter",
        intops_tests::pipeline::TRANSFORM_LANES,
        ConnectArgs::local("bench").topic_partitions,
    );
    Ok(())
}
