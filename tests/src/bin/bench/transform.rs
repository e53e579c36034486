//! Transform's per-record work in-process, on one core, without a broker:
//! the registry codec's decode of the event (the same calls the service
//! makes; the schema is fetched once and cached), every flow's condition
//! and mapping, and the codec's encode of each delivery request.
//!
//! The records are not one record decoded over and over: the ServiceNow
//! fixtures (created and updated, both routed by the example flows) are
//! framed as [`DISTINCT`] different events (own event id, entity key and
//! ticket number) and the run rotates through them.

use std::collections::HashMap;
use std::time::Instant;

use intops_events::{Codec, IntegrationEvent, RecordKind};
use intops_flows::route::{FlowResult, Plan, plan};

/// Distinct framed events the in-process run rotates through.
const DISTINCT: usize = 256;

/// The other ServiceNow fixture rotated beside the caller's `payload`.
const UPDATED: &str = include_str!("../../../fixtures/servicenow-incident-updated.json");

/// Events per second through decode → route → map → encode, over
/// [`DISTINCT`] different events made from `payload` and the updated-
/// incident fixture.
pub async fn in_process(
    codec: &Codec,
    prefix: &str,
    flows_text: &str,
    payload: &str,
    events: usize,
) -> anyhow::Result<f64> {
    let flows = intops_flows::load_str(flows_text)?;
    let events_topic = format!("{prefix}.events");
    let deliveries_topic = format!("{prefix}.deliveries.jira");
    let fixtures = [("created", payload), ("updated", UPDATED)];
    let mut framed = Vec::with_capacity(DISTINCT);
    for i in 0..DISTINCT {
        let (event_type, fixture) = fixtures[i % fixtures.len()];
        let entity_key = format!("bench{i:027}");
        let event = IntegrationEvent {
            tenant: None,
            event_id: uuid::Uuid::now_v7().to_string(),
            source_id: "servicenow".into(),
            event_type: event_type.into(),
            entity_key: entity_key.clone(),
            occurred_at: 1,
            ingested_at: 1,
            correlation_id: None,
            attributes: HashMap::new(),
            payload: fixture
                .replace("9d385017c611228701d22104cc95c371", &entity_key)
                .replace("INC0010023", &format!("INC{:07}", 10_000 + i)),
        };
        framed.push(
            codec
                .encode(&events_topic, RecordKind::IntegrationEvent, &event)
                .await?,
        );
    }
    // Warm-up: registers the delivery request schema and fills the caches.
    let mut produced = run(codec, &flows, &framed, &deliveries_topic, DISTINCT).await?;
    let started = Instant::now();
    produced += run(codec, &flows, &framed, &deliveries_topic, events).await?;
    let secs = started.elapsed().as_secs_f64();
    anyhow::ensure!(produced > 0, "the example flows routed nothing");
    Ok(events as f64 / secs)
}

/// Bytes of delivery requests made from `events` records taken in turn
/// from `framed`.
async fn run(
    codec: &Codec,
    flows: &intops_flows::Flows,
    framed: &[Vec<u8>],
    topic: &str,
    events: usize,
) -> anyhow::Result<usize> {
    let mut produced = 0;
    for record in framed.iter().cycle().take(events) {
        let decoded: IntegrationEvent = codec.decode(record).await?;
        if let Plan::Routed(results) = plan(flows, &decoded) {
            for r in results {
                if let FlowResult::Deliver(_, request) = r {
                    produced += codec
                        .encode(topic, RecordKind::DeliveryRequest, &*request)
                        .await?
                        .len();
                }
            }
        }
    }
    Ok(produced)
}

/// The transform stage on the broker, beside a raw consume-and-produce
/// loop over the same records, in events per second.
pub struct Stage {
    pub raw_loop: f64,
    pub transform: f64,
}

/// Fills an events topic with `payloads` (as IntegrationEvents), copies it
/// with a raw rdkafka loop, then runs transform alone over it.
pub async fn on_broker(flows_text: &str, payloads: &[String]) -> anyhow::Result<Stage> {
    use std::time::Duration;

    use futures::StreamExt as _;
    use intops_kafka::{KafkaSettings, Producer};
    use intops_tests::stack;
    use rdkafka::consumer::{Consumer, StreamConsumer};
    use rdkafka::message::Message;
    use rdkafka::producer::{FutureProducer, FutureRecord};

    let prefix = stack::random_prefix("stagebench");
    let settings = KafkaSettings::new(stack::bootstrap(), Default::default())?;
    let topics = intops_events::Topics::new(&prefix);
    let names = topics.all(["jira"]);
    let mut names = names;
    names.push(format!("{prefix}.rawcopy"));
    let specs: Vec<_> = names
        .iter()
        .map(|n| intops_kafka::topics::TopicSpec::new(n, 6, 1))
        .collect();
    intops_kafka::topics::ensure(&settings, &specs).await?;

    // Fill the events topic the way ingest writes it.
    let codec = stack::codec();
    let producer = Producer::new(&settings)?;
    let events_topic = topics.events();
    let mut values = Vec::with_capacity(payloads.len());
    for (i, p) in payloads.iter().enumerate() {
        let e = IntegrationEvent {
            tenant: None,
            event_id: uuid::Uuid::now_v7().to_string(),
            source_id: "servicenow".into(),
            event_type: "created".into(),
            entity_key: format!("k{i}"),
            occurred_at: 1,
            ingested_at: intops_events::now_micros(),
            correlation_id: None,
            attributes: HashMap::new(),
            payload: p.clone(),
        };
        values.push((
            format!("servicenow:k{i}"),
            codec
                .encode(&events_topic, RecordKind::IntegrationEvent, &e)
                .await?,
        ));
    }
    crate::produce_all(&producer, &events_topic, &values).await?;
    let n = values.len();

    // Raw loop: consume every record and produce it again, acks awaited.
    let consumer: StreamConsumer = settings
        .consumer_config(&format!("{prefix}.rawloop"))
        .create()?;
    consumer.subscribe(&[&events_topic])?;
    let raw: FutureProducer = settings.producer_config().create()?;
    let copy = format!("{prefix}.rawcopy");
    let started = std::time::Instant::now();
    let mut first = None;
    let mut acks = futures::stream::FuturesUnordered::new();
    let mut done = 0;
    while done < n {
        tokio::select! {
            m = consumer.recv(), if first.is_none() || acks.len() < 5000 => {
                let m = m?;
                first.get_or_insert_with(std::time::Instant::now);
                let (key, value) = (m.key().unwrap_or_default().to_vec(), m.payload().unwrap_or_default().to_vec());
                let raw = raw.clone();
                let copy = copy.clone();
                acks.push(async move {
                    raw.send(FutureRecord::to(&copy).key(&key).payload(&value), Duration::from_secs(30)).await.map(|_| ()).map_err(|(e, _)| e)
                });
            }
            Some(r) = acks.next() => {
                r?;
                done += 1;
            }
        }
    }
    let raw_secs = first
        .map_or_else(|| started.elapsed(), |f| f.elapsed())
        .as_secs_f64();
    drop(consumer);

    // Transform alone, timed from its first delivery request.
    let dir = tempfile::tempdir()?;
    let flows_path = dir.path().join("flows.toml");
    std::fs::write(&flows_path, flows_text)?;
    let mut common = intops_runtime::CommonArgs::local(flows_path, &prefix);
    common.connect.kafka_bootstrap = stack::bootstrap();
    common.connect.schema_registry_url = stack::registry_url();
    let shutdown = intops_runtime::CancellationToken::new();
    let args = intops_transform::Args {
        common,
        concurrency: 1024,
        dlq_cap_window: 0,
        dlq_cap_ratio: 1.0,
        dlq_cap_consecutive: 0,
    };
    let task = tokio::spawn(intops_transform::run(args, shutdown.clone()));
    let deliveries = topics.deliveries("jira");
    let count = || {
        let c: rdkafka::consumer::BaseConsumer = settings.admin_config().create().ok()?;
        let mut total = 0;
        for p in 0..6 {
            let (lo, hi) = c
                .fetch_watermarks(&deliveries, p, Duration::from_secs(10))
                .ok()?;
            total += hi - lo;
        }
        Some(total as usize)
    };
    let mut start: Option<(std::time::Instant, usize)> = None;
    loop {
        let c = count().unwrap_or(0);
        if c > 0 && start.is_none() {
            start = Some((std::time::Instant::now(), c));
        }
        if c >= n {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (t0, c0) = start.unwrap_or((std::time::Instant::now(), 0));
    let transform = (n - c0) as f64 / t0.elapsed().as_secs_f64().max(1e-6);
    shutdown.cancel();
    task.await??;
    Ok(Stage {
        raw_loop: n as f64 / raw_secs,
        transform,
    })
}
