//! Ingest alone: accepted events per second and per-request
//! acknowledgement latency, for single-event requests and for batches.

use std::time::{Duration, Instant};

use futures::StreamExt as _;
use intops_tests::pipeline::IngestOnly;
use intops_tests::stack;

use crate::Percentiles;

const FLOWS: &str = r#"
[[sources]]
id = "bench"
kind = "webhook"
auth = "none"
entity_key = ".sys_id"
max_body_bytes = 10485760
"#;

/// One ingest measurement.
pub struct Measured {
    pub rate: f64,
    pub latency_ms: Percentiles,
}

/// Posts `events` as requests of `batch` events, `concurrency` at a time.
pub async fn measure(
    events: &[String],
    batch: usize,
    concurrency: usize,
) -> anyhow::Result<Measured> {
    // The events topic with 6 partitions (the figures of earlier issues;
    // the services' default is 1 now): the idempotent producer keeps at
    // most 5 requests in flight per partition, so the count bounds both.
    let prefix = stack::random_prefix("ingestbench");
    let settings = intops_kafka::KafkaSettings::new(stack::bootstrap(), Default::default())?;
    let events_topic = intops_events::Topics::new(&prefix).events();
    intops_kafka::topics::ensure(
        &settings,
        &[intops_kafka::topics::TopicSpec::new(&events_topic, 6, 1)],
    )
    .await?;
    let ingest = IngestOnly::start_on_prefix(
        &prefix,
        FLOWS,
        &[],
        &stack::bootstrap(),
        Duration::from_secs(10),
    )
    .await?;
    let url = ingest.url("bench");
    let http = reqwest::Client::new();
    let bodies: Vec<String> = events
        .chunks(batch.max(1))
        .map(|c| {
            if c.len() == 1 {
                c[0].clone()
            } else {
                format!("[{}]", c.join(","))
            }
        })
        .collect();
    let started = Instant::now();
    let latencies = futures::stream::iter(bodies.into_iter().map(|body| {
        let http = http.clone();
        let url = url.clone();
        async move {
            let t = Instant::now();
            let r = http
                .post(&url)
                .header("content-type", "application/json")
                .body(body)
                .send()
                .await?;
            anyhow::ensure!(r.status() == 202, "ingest answered {}", r.status());
            Ok(t.elapsed().as_millis() as i64)
        }
    }))
    .buffer_unordered(concurrency.max(1))
    .collect::<Vec<anyhow::Result<i64>>>()
    .await
    .into_iter()
    .collect::<anyhow::Result<Vec<i64>>>()?;
    let secs = started.elapsed().as_secs_f64();
    ingest.stop().await?;
    Ok(Measured {
        rate: events.len() as f64 / secs,
        latency_ms: Percentiles::of(latencies),
    })
}
