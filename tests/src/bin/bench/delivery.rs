//! Delivery alone: N delivery requests written straight to a target's
//! deliveries topic, then the delivery service (in-process) against a
//! local target answering 200 at once or after a fixed latency.

use std::time::{Duration, Instant};

use intops_events::{DeliveryRequest, RecordKind, Topics, now_micros};
use intops_kafka::{KafkaSettings, Producer};
use intops_tests::{MockTarget, poll_until, stack};

/// Deliveries per second (first to last request at the target) of
/// `count` requests with target `concurrency`, answers taking `latency`.
pub async fn measure(count: usize, concurrency: u32, latency: Duration) -> anyhow::Result<f64> {
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
    let mut values = Vec::with_capacity(count);
    for i in 0..count {
        let request = DeliveryRequest {
            event_id: format!("event-{i}"),
            flow_id: "app-to-bench".into(),
            flow_version: "000000000000".into(),
            target_id: "bench".into(),
            entity_key: format!("k{i}"),
            method: "POST".into(),
            path: "/records".into(),
            headers: Default::default(),
            body: format!(r#"{{"id":"k{i}","summary":"a delivery of realistic size"}}"#),
            created_at: now_micros(),
            ingested_at: now_micros(),
        };
        let value = codec
            .encode(&deliveries, RecordKind::DeliveryRequest, &request)
            .await?;
        values.push((format!("app:k{i}"), value));
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
    shutdown.cancel();
    task.await??;
    Ok(rate)
}
