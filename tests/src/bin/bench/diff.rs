//! `intops flows diff` speed: N events written to `<prefix>.events` (the
//! topic as the services create it), the example flows recorded as the
//! deployed versions (as transform records them), then the release
//! `intops flows diff` run over them with a changed file, start to end.

use std::time::Instant;

use anyhow::Context as _;
use intops_events::{IntegrationEvent, RecordKind, now_micros};
use intops_kafka::flow_versions::{self, Loaded};
use intops_kafka::{Record, ServiceContext};
use intops_runtime::ConnectArgs;
use intops_tests::stack;

/// What one diff run measured.
pub struct DiffRun {
    /// Events compared per second over the whole command.
    pub rate: f64,
    pub secs: f64,
    /// The command's report.
    pub report: serde_json::Value,
    /// Events per second of reading and decoding the same topic alone, in
    /// this process (no routing): what the diff adds its work to.
    pub read_rate: f64,
}

/// Writes `count` events (the fixture with priorities 1 to 4 in turn) on
/// a topic of `partitions` partitions, records `flows_text`'s versions as
/// deployed, and runs `intops flows diff` with a changed copy.
pub async fn measure(
    count: usize,
    partitions: i32,
    flows_text: &str,
    payload: &str,
    bin_dir: &str,
) -> anyhow::Result<DiffRun> {
    let prefix = stack::random_prefix("diffbench");
    let mut connect = ConnectArgs::local(&prefix);
    connect.kafka_bootstrap = stack::bootstrap();
    connect.schema_registry_url = stack::registry_url();
    connect.topic_partitions = partitions;
    let ctx = ServiceContext::new(&connect)?;
    let events = ctx.topics.events();
    ctx.ensure_topics(std::slice::from_ref(&events)).await?;

    let flows = intops_flows::load_str(flows_text).map_err(|e| anyhow::anyhow!("{e}"))?;
    let loaded: Vec<Loaded<'_>> = flows
        .flows
        .iter()
        .map(|f| Loaded {
            flow_id: &f.id,
            version: &f.version,
            definition: &f.definition,
            source_id: &f.source,
            target_id: &f.target,
        })
        .collect();
    flow_versions::record(&ctx, &loaded, "bench").await?;

    let mut acks = Vec::with_capacity(count);
    for i in 0..count {
        // Bounded in flight: the producer's queue never fills.
        if acks.len() == 10_000 {
            for ack in acks.drain(..) {
                ack.await?;
            }
        }
        let key = format!("bench{i:027}");
        let priority = (i % 4 + 1).to_string();
        let event = IntegrationEvent {
            tenant: None,
            event_id: uuid::Uuid::now_v7().to_string(),
            source_id: "servicenow".into(),
            event_type: "created".into(),
            entity_key: key.clone(),
            occurred_at: now_micros(),
            ingested_at: now_micros(),
            correlation_id: None,
            attributes: Default::default(),
            payload: payload
                .replace("9d385017c611228701d22104cc95c371", &key)
                .replace(
                    r#""priority": "1""#,
                    &format!(r#""priority": "{priority}""#),
                ),
        };
        let value = ctx
            .codec
            .encode(&events, RecordKind::IntegrationEvent, &event)
            .await?;
        let record_key = event.kafka_key();
        loop {
            match ctx.producer.enqueue(Record {
                topic: &events,
                key: record_key.as_bytes(),
                value: &value,
                headers: &[],
            }) {
                Ok(ack) => {
                    acks.push(ack);
                    break;
                }
                Err(e) if e.is_retryable() => tokio::task::yield_now().await,
                Err(e) => return Err(e.into()),
            }
        }
    }
    for ack in acks {
        ack.await?;
    }

    let changed = flows_text
        .replace(
            r#"when = '.priority == "1"'"#,
            r#"when = '.priority == "1" or .priority == "2"'"#,
        )
        .replace(
            "summary: .short_description,",
            r#"summary: ("[" + .number + "] " + .short_description),"#,
        );
    anyhow::ensure!(changed != flows_text, "the change did not apply");
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("changed.toml");
    std::fs::write(&path, changed)?;
    let started = Instant::now();
    let out = tokio::process::Command::new(format!("{bin_dir}/intops"))
        .args(["flows", "diff"])
        .arg(&path)
        .args(["--since", "1h", "--json"])
        .env("INTOPS_TOPIC_PREFIX", &prefix)
        .env("INTOPS_KAFKA_BOOTSTRAP", stack::bootstrap())
        .env("INTOPS_SCHEMA_REGISTRY_URL", stack::registry_url())
        .output()
        .await
        .context("running intops flows diff")?;
    let secs = started.elapsed().as_secs_f64();
    anyhow::ensure!(
        out.status.code() == Some(1),
        "intops flows diff exited {} (expected 1: a change): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    anyhow::ensure!(
        report["events"].as_u64() == Some(count as u64),
        "the diff compared {} events, not {count}",
        report["events"]
    );
    let started = Instant::now();
    let mut scan = intops_kafka::Scan::open(
        &ctx.kafka,
        std::slice::from_ref(&events),
        intops_kafka::Start::Beginning,
        false,
    )
    .await?;
    let mut read = 0usize;
    while let Some(message) = scan.next().await? {
        use intops_kafka::Message as _;
        if let Some(bytes) = message.payload() {
            let _: IntegrationEvent = ctx.codec.decode(bytes).await?;
            read += 1;
        }
    }
    anyhow::ensure!(read == count, "read {read} of {count} events back");
    Ok(DiffRun {
        rate: count as f64 / secs,
        secs,
        report,
        read_rate: count as f64 / started.elapsed().as_secs_f64(),
    })
}
