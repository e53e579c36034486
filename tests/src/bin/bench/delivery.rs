//! Delivery alone: N delivery requests written straight to a target's
//! deliveries topic, then the delivery service (in-process) against a
//! local target answering 200 at once or after a fixed latency. After the
//! backlog, a paced phase at half that rate gives the latency of one
//! request from its write to its arrival at the target.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use intops_events::{DeliveryRequest, RecordKind, Topics, now_micros};
use intops_kafka::{KafkaSettings, Producer};
use intops_tests::{MockTarget, poll_until, stack};

/// What one configuration measured.
pub struct Measured {
    /// Deliveries per second through a backlog (first to last request at
    /// the target).
    pub rate: f64,
    /// The same between the 10th and the 90th percentile request.
    pub steady: f64,
    /// Written → at the target, in milliseconds, at half that rate.
    pub latency_ms: crate::Percentiles,
}

/// Measures `count` requests with target `concurrency`, answers taking
/// `latency`.
pub async fn measure(
    count: usize,
    concurrency: u32,
    latency: Duration,
) -> anyhow::Result<Measured> {
    let prefix = stack::random_prefix("deliverybench");
    let topics = Topics::new(&prefix);
    let settings = KafkaSettings::new(stack::bootstrap(), Default::default())?;
    let specs: Vec<_> = topics
        .all(["bench"])
        .into_iter()
        .map(|t| intops_kafka::topics::TopicSpec::new(t, 6, 1))
        .collect();
    intops_kafka::topics::ensure(&settings, &specs).await?;
    let target = MockTarget::start().await?;
    target.set_status(200);
    target.set_latency(latency);

    let codec = stack::codec();
    let producer = Producer::new(&settings)?;
    let deliveries = topics.deliveries("bench");
    let encode = async |key: String| -> anyhow::Result<(String, Vec<u8>)> {
        let request = DeliveryRequest {
            tenant: None,
            link: None,
            event_id: format!("event-{key}"),
            flow_id: "app-to-bench".into(),
            flow_version: "000000000000".into(),
            target_id: "bench".into(),
            entity_key: key.clone(),
            method: "POST".into(),
            path: "/records".into(),
            headers: Default::default(),
            body: format!(r#"{{"id":"{key}","summary":"a delivery of realistic size"}}"#),
            created_at: now_micros(),
            ingested_at: now_micros(),
        };
        let value = codec
            .encode(&deliveries, RecordKind::DeliveryRequest, &request)
            .await?;
        Ok((format!("app:{key}"), value))
    };
    let mut values = Vec::with_capacity(count);
    for i in 0..count {
        values.push(encode(format!("k{i}")).await?);
    }
    crate::produce_all(&producer, &deliveries, &values).await?;

    let dir = tempfile::tempdir()?;
    let flows_path = dir.path().join("flows.toml");
    let settings_text = format!("concurrency = {concurrency}\ntimeout = \"10s\"");
    std::fs::write(
        &flows_path,
        intops_tests::pipeline::app_flows(&target.base_url(), "bench", &settings_text, ""),
    )?;
    let mut common = intops_runtime::CommonArgs::local(flows_path, &prefix);
    common.connect.kafka_bootstrap = stack::bootstrap();
    common.connect.schema_registry_url = stack::registry_url();
    let shutdown = intops_runtime::CancellationToken::new();
    let args = intops_delivery::Args {
        common,
        targets: vec![],
        dlq_cap_window: 0,
        dlq_cap_ratio: 1.0,
        dlq_cap_consecutive: 0,
    };
    let task = tokio::spawn(intops_delivery::run(args, shutdown.clone()));
    poll_until("every delivery", Duration::from_secs(600), || async {
        (target.requests().len() >= count).then_some(())
    })
    .await;
    let requests = target.requests();
    let first = requests.first().map_or_else(Instant::now, |r| r.at);
    let last = requests.last().map_or_else(Instant::now, |r| r.at);
    let rate = count as f64 / last.duration_since(first).as_secs_f64().max(1e-6);
    // Without the start (lanes filling) and the end (the longest lanes
    // draining while others are done): the 10th to the 90th percentile.
    let (p10, p90) = (count / 10, count * 9 / 10);
    let steady = match (requests.get(p10), requests.get(p90)) {
        (Some(a), Some(b)) => {
            (p90 - p10) as f64 / b.at.duration_since(a.at).as_secs_f64().max(1e-6)
        }
        _ => rate,
    };

    // Paced: half the backlog rate for about five seconds.
    let paced = ((rate / 2.0) * 5.0).clamp(100.0, count as f64) as usize;
    let mut records = Vec::with_capacity(paced);
    for i in 0..paced {
        records.push(encode(format!("p{i}")).await?);
    }
    let mut interval = tokio::time::interval(Duration::from_secs_f64(2.0 / rate));
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut written = HashMap::with_capacity(paced);
    let mut sends = tokio::task::JoinSet::new();
    for (i, (key, value)) in records.into_iter().enumerate() {
        interval.tick().await;
        written.insert(format!("p{i}"), Instant::now());
        // Spawned, so the record is written now, not when awaited.
        let (producer, topic) = (producer.clone(), deliveries.clone());
        sends.spawn(async move {
            producer
                .send(intops_kafka::Record {
                    topic: &topic,
                    key: key.as_bytes(),
                    value: &value,
                    headers: &[],
                })
                .await
        });
    }
    while let Some(sent) = sends.join_next().await {
        sent??;
    }
    poll_until("every paced delivery", Duration::from_secs(600), || async {
        (target.requests().len() >= count + paced).then_some(())
    })
    .await;
    let latencies: Vec<i64> = target
        .requests()
        .iter()
        .filter_map(|r| {
            let id = r.json()["id"].as_str()?.to_string();
            let at = written.get(&id)?;
            Some(r.at.duration_since(*at).as_millis() as i64)
        })
        .collect();
    shutdown.cancel();
    task.await??;
    Ok(Measured {
        rate,
        steady,
        latency_ms: crate::Percentiles::of(latencies),
    })
}
