//! Dead-letter replay speed: N dead letters (over K keys; one key's are
//! replayed in order, one at a time) written straight to a
//! dead-letter topic, then `intops dlq replay` (the release binary beside
//! this one) run to its end with no rate limit that binds.

use std::time::Instant;

use anyhow::Context as _;
use intops_events::{DeadLetter, DeliveryRequest, RecordKind, Stage, Topics, now_micros};
use intops_kafka::{KafkaSettings, Producer};
use intops_tests::stack;

/// What one replay run measured.
pub struct ReplayRun {
    /// Records per second over the whole command (start-up included).
    pub rate: f64,
    /// Seconds the command took.
    pub secs: f64,
    /// Records it sent.
    pub sent: i64,
    /// Seconds a dry run over the same dead letters took (read and decode).
    pub dry_secs: f64,
}

/// Writes `count` dead letters over `keys` distinct keys and replays them
/// with `intops` from `bin_dir`.
pub async fn measure(count: usize, keys: usize, bin_dir: &str) -> anyhow::Result<ReplayRun> {
    let keys = keys.max(1);
    let prefix = stack::random_prefix("replaybench");
    let topics = Topics::new(&prefix);
    let settings = KafkaSettings::new(stack::bootstrap(), Default::default())?;
    let deliveries = topics.deliveries("bench");
    let specs: Vec<_> = [topics.dlq_delivery(), deliveries.clone()]
        .into_iter()
        .map(|t| intops_kafka::topics::TopicSpec::new(t, 3, 1))
        .collect();
    intops_kafka::topics::ensure(&settings, &specs).await?;
    let codec = stack::codec();
    let request = DeliveryRequest {
        tenant: None,
        link: None,
        event_id: "e".into(),
        flow_id: "bench-flow".into(),
        flow_version: "000000000000".into(),
        target_id: "bench".into(),
        entity_key: "k".into(),
        method: "POST".into(),
        path: "/records".into(),
        headers: Default::default(),
        body: r#"{"summary":"a dead letter of realistic size","priority":"High"}"#.repeat(4),
        created_at: now_micros(),
        ingested_at: now_micros(),
    };
    let original = codec
        .encode(&deliveries, RecordKind::DeliveryRequest, &request)
        .await?;
    let producer = Producer::new(&settings)?;
    let dlq = topics.dlq_delivery();
    let mut letters = Vec::with_capacity(count);
    for i in 0..count {
        let letter = DeadLetter {
            tenant: None,
            stage: Stage::Delivery,
            error_class: "http_4xx".into(),
            error_message: "target answered 400".into(),
            retryable: false,
            attempts: 1,
            original_topic: deliveries.clone(),
            original_partition: 0,
            original_offset: i as i64,
            original_key: Some(format!("bench:{}", i % keys).into_bytes()),
            original_value: Some(original.clone()),
            original_headers: vec![],
            failed_at: now_micros(),
            replay_count: 0,
            event_id: Some(format!("event-{i}")),
            flow_id: Some("bench-flow".into()),
            flow_version: None,
            target_id: Some("bench".into()),
            http_status: Some(400),
            response_excerpt: Some("{\"error\":\"bad\"}".into()),
        };
        let value = codec.encode(&dlq, RecordKind::DeadLetter, &letter).await?;
        letters.push((format!("bench:{}", i % keys), value));
    }
    crate::produce_all(&producer, &dlq, &letters).await?;

    let intops = |args: &'static [&'static str]| {
        let mut c = tokio::process::Command::new(format!("{bin_dir}/intops"));
        c.args(args)
            .env("INTOPS_TOPIC_PREFIX", &prefix)
            .env("INTOPS_KAFKA_BOOTSTRAP", stack::bootstrap())
            .env("INTOPS_SCHEMA_REGISTRY_URL", stack::registry_url());
        c
    };
    let started = Instant::now();
    let dry = intops(&["dlq", "replay", "--dry-run", "--json"])
        .output()
        .await
        .context("run intops dlq replay --dry-run")?;
    anyhow::ensure!(dry.status.success(), "dry run failed");
    let dry_secs = started.elapsed().as_secs_f64();
    let started = Instant::now();
    let out = intops(&["dlq", "replay", "--json", "--rate", "1000000"])
        .output()
        .await
        .context("run intops dlq replay")?;
    let secs = started.elapsed().as_secs_f64();
    anyhow::ensure!(
        out.status.success(),
        "replay failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    let sent = report["sent"].as_i64().unwrap_or(0);
    anyhow::ensure!(
        sent == count as i64,
        "replay sent {sent} of {count}: {report}"
    );
    Ok(ReplayRun {
        rate: count as f64 / secs,
        secs,
        sent,
        dry_secs,
    })
}
