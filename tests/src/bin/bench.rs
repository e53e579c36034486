//! The pipeline benchmark: in one run, the raw broker ceiling (rdkafka
//! producing and consuming N records of event size) and the end-to-end
//! rate of N events through ingest, transform, delivery and the monitor,
//! side by side, with end-to-end latency percentiles.
//!
//! Run against the local stack: `deploy/local/bench.sh` (see
//! docs/benchmarks.md).

use std::time::{Duration, Instant};

use anyhow::Context as _;
use clap::Parser;
use futures::StreamExt as _;
use intops_events::{Codec, Outcome, RegistrySettings};
use intops_tests::pipeline::example_flows;
use intops_tests::sign::intops_signature;
use intops_tests::{MockTarget, Pipeline, poll_until, stack, topic};
use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};

#[derive(Debug, Parser)]
#[command(
    name = "intops-bench",
    about = "raw broker ceiling vs end-to-end rate through the four services"
)]
struct Args {
    /// Events (and raw records) to send.
    #[arg(long, default_value_t = 5_000)]
    events: usize,
    /// Events per ingest request (JSON array).
    #[arg(long, default_value_t = 50)]
    batch: usize,
    /// Ingest requests in flight at once.
    #[arg(long, default_value_t = 8)]
    concurrency: usize,
}

const SECRET: &str = "bench-secret";

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let payload = include_str!("../../fixtures/servicenow-incident-created.json");
    let events: Vec<String> = (0..args.events)
        .map(|i| payload.replace("9d385017c611228701d22104cc95c371", &format!("bench{i:027}")))
        .collect();
    let record_size = events[0].len();
    println!(
        "intops benchmark: {} events of {record_size} bytes",
        args.events
    );

    let raw = raw_ceiling(&events).await?;
    println!(
        "raw broker: produce {:.0} msg/s ({:.2}s), consume {:.0} msg/s ({:.2}s)",
        raw.produce_rate, raw.produce_secs, raw.consume_rate, raw.consume_secs
    );

    let e2e = end_to_end(&args, &events).await?;
    println!(
        "end to end: {:.0} events/s ({} events in {:.2}s; ingest accepted all in {:.2}s)",
        e2e.rate, args.events, e2e.secs, e2e.ingest_secs
    );
    println!(
        "end-to-end latency (ingested -> delivered): p50 {} ms, p99 {} ms, max {} ms",
        e2e.p50, e2e.p99, e2e.max
    );
    println!(
        "ratio end-to-end / raw produce: {:.3} (design ceiling about 0.333: three records per delivered event)",
        e2e.rate / raw.produce_rate
    );
    Ok(())
}

struct Raw {
    produce_rate: f64,
    produce_secs: f64,
    consume_rate: f64,
    consume_secs: f64,
}

/// Produces every record with the services' producer settings (acks=all,
/// idempotent, linger 5 ms) and reads them back.
async fn raw_ceiling(values: &[String]) -> anyhow::Result<Raw> {
    let prefix = stack::random_prefix("rawbench");
    let settings = intops_kafka::KafkaSettings::new(stack::bootstrap(), Default::default())?;
    let topic = format!("{prefix}.raw");
    intops_kafka::topics::ensure(
        &settings,
        &[intops_kafka::topics::TopicSpec::new(&topic, 6, 1)],
    )
    .await?;
    let producer: FutureProducer = settings.producer_config().create()?;
    let started = Instant::now();
    let sends = futures::stream::iter(values.iter().enumerate().map(|(i, v)| {
        let producer = producer.clone();
        let topic = topic.clone();
        async move {
            let key = format!("k{i}");
            producer
                .send(
                    FutureRecord::to(&topic).key(&key).payload(v),
                    Duration::from_secs(30),
                )
                .await
                .map(|_| ())
                .map_err(|(e, _)| e)
        }
    }))
    .buffer_unordered(10_000)
    .collect::<Vec<_>>()
    .await;
    let produce_secs = started.elapsed().as_secs_f64();
    for r in sends {
        r.context("raw produce")?;
    }

    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", stack::bootstrap())
        .set("broker.address.family", "v4")
        .set("group.id", format!("{prefix}.reader"))
        .set("enable.auto.commit", "false")
        .create()?;
    let mut tpl = TopicPartitionList::new();
    for p in 0..6 {
        tpl.add_partition_offset(&topic, p, Offset::Beginning)?;
    }
    consumer.assign(&tpl)?;
    let started = Instant::now();
    let mut n = 0;
    while n < values.len() {
        anyhow::ensure!(
            started.elapsed() < Duration::from_secs(300),
            "raw consume stalled at {n}"
        );
        if let Some(m) = consumer.poll(Duration::from_millis(500)) {
            m?.payload().context("payload")?;
            n += 1;
        }
    }
    let consume_secs = started.elapsed().as_secs_f64();
    Ok(Raw {
        produce_rate: values.len() as f64 / produce_secs,
        produce_secs,
        consume_rate: values.len() as f64 / consume_secs,
        consume_secs,
    })
}

struct EndToEnd {
    rate: f64,
    secs: f64,
    ingest_secs: f64,
    p50: i64,
    p99: i64,
    max: i64,
}

async fn end_to_end(args: &Args, events: &[String]) -> anyhow::Result<EndToEnd> {
    let target = MockTarget::start().await?;
    let pipeline = Pipeline::start(
        "bench",
        &example_flows(&target.base_url()),
        &[("snow", SECRET)],
    )
    .await?;
    let http = reqwest::Client::new();
    let url = pipeline.ingest_url("servicenow");
    let bodies: Vec<String> = events
        .chunks(args.batch.max(1))
        .map(|c| format!("[{}]", c.join(",")))
        .collect();

    let started = Instant::now();
    let answers = futures::stream::iter(bodies.iter().map(|body| {
        let http = http.clone();
        let url = url.clone();
        async move {
            let r = http
                .post(&url)
                .header("content-type", "application/json")
                .header(
                    "x-intops-signature",
                    intops_signature(SECRET, body.as_bytes()),
                )
                .body(body.clone())
                .send()
                .await?;
            anyhow::ensure!(r.status() == 202, "ingest answered {}", r.status());
            Ok(())
        }
    }))
    .buffer_unordered(args.concurrency.max(1))
    .collect::<Vec<anyhow::Result<()>>>()
    .await;
    let ingest_secs = started.elapsed().as_secs_f64();
    for a in answers {
        a?;
    }
    let n = events.len();
    poll_until(
        "every event delivered",
        Duration::from_secs(1800),
        || async { (target.requests().len() >= n).then_some(()) },
    )
    .await;
    let secs = started.elapsed().as_secs_f64();

    // Latencies from the delivery outcomes (ingested_at -> delivered).
    let codec = Codec::new(&RegistrySettings {
        url: stack::registry_url(),
        basic_auth: None,
        timeout: Duration::from_secs(10),
    })?;
    let outcomes = topic::read(
        &format!("{}.outcomes", pipeline.prefix),
        n,
        Duration::from_secs(120),
    );
    let mut latencies = Vec::with_capacity(n);
    for m in &outcomes {
        let o: Outcome = codec.decode(m.payload().context("outcome value")?).await?;
        latencies.push(o.latency_ms.unwrap_or(0));
    }
    latencies.sort_unstable();
    let pct = |p: f64| {
        latencies[((latencies.len() as f64 * p).ceil() as usize)
            .saturating_sub(1)
            .min(latencies.len() - 1)]
    };
    pipeline.stop().await?;
    Ok(EndToEnd {
        rate: n as f64 / secs,
        secs,
        ingest_secs,
        p50: pct(0.50),
        p99: pct(0.99),
        max: latencies.last().copied().unwrap_or(0),
    })
}
