//! The pipeline benchmark: in one run, the raw broker ceiling (rdkafka
//! producing and consuming N records of event size) and the end-to-end
//! rate of N events through ingest, transform, delivery and the monitor,
//! side by side, with end-to-end latency percentiles.
//!
//! Run against the local stack: `deploy/local/bench.sh` (see
//! docs/benchmarks.md).

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod broker;
mod delivery;
mod diff;
mod ingest;
mod links;
mod load;
mod monitor;
mod processes;
mod replay;
mod soak;
mod transform;

use std::time::{Duration, Instant};

use anyhow::Context as _;
use clap::Parser;
use futures::StreamExt as _;
use intops_events::{DeliveryRequest, Outcome};
use intops_tests::pipeline::{Profile, example_flows};
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
    #[arg(long, default_value_t = 20_000)]
    events: usize,
    /// Events per ingest request (NDJSON in the end-to-end phase, a JSON
    /// array in the links phase).
    #[arg(long, default_value_t = 200)]
    batch: usize,
    /// Ingest requests in flight at once (concurrent senders).
    #[arg(long, default_value_t = 4)]
    concurrency: usize,
    /// How the end-to-end phase configures the services: `defaults` (as
    /// the binaries start them) or `test` (the test harness's settings:
    /// 32 transform lanes, 3 partitions), for comparison.
    #[arg(long, default_value = "defaults")]
    e2e_profile: String,
    /// Events per second of the paced phase (one event per request), which
    /// measures latency below saturation.
    #[arg(long, default_value_t = 200)]
    paced_rate: u32,
    /// Skip the end-to-end phases (raw and ingest only; with
    /// `--links-only`: the links index only).
    #[arg(long)]
    skip_end_to_end: bool,
    /// Dead letters of the replay phase.
    #[arg(long, default_value_t = 20_000)]
    replay: usize,
    /// Distinct keys of those dead letters (0: all distinct).
    #[arg(long, default_value_t = 0)]
    replay_keys: usize,
    /// Run the raw ceiling and the replay phase only.
    #[arg(long)]
    replay_only: bool,
    /// Run the raw ceiling and the delivery phase only.
    #[arg(long)]
    delivery_only: bool,
    /// Run the monitor's fold (1 million outcomes) only.
    #[arg(long)]
    monitor_only: bool,
    /// Run `intops flows diff` over `--diff-events` recorded events only.
    #[arg(long)]
    diff_only: bool,
    /// Events of the `--diff-only` phase.
    #[arg(long, default_value_t = 100_000)]
    diff_events: usize,
    /// Run the in-process transform measurement only (no broker).
    #[arg(long)]
    transform_only: bool,
    /// Run the raw ceiling and the ingest phases only.
    #[arg(long)]
    ingest_only: bool,
    /// Run the raw ceiling and the end-to-end phases (saturated, paced)
    /// only.
    #[arg(long)]
    end_to_end_only: bool,
    /// With `--end-to-end-only`: also end to end with the four release
    /// binaries as separate processes (from `--bin-dir`), with each
    /// service's resident memory and CPU.
    #[arg(long)]
    processes: bool,
    /// Where the service binaries are (`--processes`).
    #[arg(long, default_value = "target/release")]
    bin_dir: std::path::PathBuf,
    /// 100-event ingest requests in flight at once (32 saturates ingest on
    /// the local stack; docs/benchmarks.md has the sweep).
    #[arg(long, default_value_t = 32)]
    ingest_concurrency: usize,
    /// Seconds of the paced phase.
    #[arg(long, default_value_t = 10)]
    paced_seconds: u32,
    /// With `--processes`: seconds of a soak at `--soak-fraction` of the
    /// measured rate (NDJSON requests of `--soak-batch` events), latency
    /// and memory per minute (docs/benchmarks.md ran 600).
    #[arg(long, default_value_t = 0)]
    soak_seconds: u32,
    /// Events per request of the soak; by default `--batch`, the request
    /// shape whose saturated rate the soak is a fraction of.
    #[arg(long)]
    soak_batch: Option<usize>,
    /// The soak's rate as a fraction of the four processes' saturated rate.
    #[arg(long, default_value_t = 0.5)]
    soak_fraction: f64,
    /// Run the raw ceiling and the links phases only: end to end with and
    /// without links (`--events` each), then the links index over
    /// `--links` links.
    #[arg(long)]
    links_only: bool,
    /// Links written for the index phase of `--links-only` (0: skip it).
    #[arg(long, default_value_t = 1_000_000)]
    links: usize,
    /// Events per entity key in the repeated-keys runs of `--links-only`.
    #[arg(long, default_value_t = 20)]
    links_per_key: usize,
    /// Internal: read `<prefix>.links` into a links index and print the
    /// measurement (the child process of the links index phase).
    #[arg(long, hide = true)]
    links_catch_up: Option<String>,
}

pub(crate) const SECRET: &str = "bench-secret";

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    // Logs of the in-process services (RUST_LOG, default warn).
    intops_runtime::telemetry::init(intops_runtime::telemetry::LogFormat::Text);
    // Before anything else is allocated: this process's resident memory is
    // part of the measurement.
    if let Some(prefix) = &args.links_catch_up {
        return links::catch_up_child(prefix).await;
    }
    let payload = include_str!("../../../fixtures/servicenow-incident-created.json");
    let events: Vec<String> = (0..args.events)
        .map(|i| payload.replace("9d385017c611228701d22104cc95c371", &format!("bench{i:027}")))
        .collect();
    let record_size = events[0].len();
    println!(
        "intops benchmark: {} events of {record_size} bytes",
        args.events
    );

    if args.monitor_only {
        let f = monitor::fold(1_000_000, 10).await?;
        println!(
            "monitor fold, 1,000,000 outcomes of 10 flows over 24 h: decode + health {:.0} outcomes/s, decode + lineage {:.0} outcomes/s; resident memory {:.0} MB before, {:.0} MB with the health state ({} buckets), {:.0} MB with the lineage index too ({} events)",
            f.health_rate,
            f.lineage_rate,
            f.rss_before_mb,
            f.rss_health_mb,
            f.buckets,
            f.rss_after_mb,
            f.events_held
        );
        return Ok(());
    }
    let flows_text = example_flows("http://127.0.0.1:1").replace("{secrets}/snow", "/dev/null");
    if args.diff_only {
        let partitions = services_partitions(&args)?;
        let bin_dir = args.bin_dir.display().to_string();
        let run =
            diff::measure(args.diff_events, partitions, &flows_text, payload, &bin_dir).await?;
        let flows: Vec<String> = run.report["flows"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|f| {
                format!(
                    "{}: routed {} -> {}, {} newly routed, {} bodies changed",
                    f["flow_id"].as_str().unwrap_or("?"),
                    f["routed_before"],
                    f["routed_after"],
                    f["newly_routed"],
                    f["body_changed"]
                )
            })
            .collect();
        println!(
            "intops flows diff (release binary, deployed versions as the base, example flows vs a wider condition and a changed summary; events topic of {partitions} partition(s), as the services create it): {} events in {:.2} s = {:.0} events/s, start-up and reading the versions included; {}; reading and decoding the same events alone (in-process scan, no routing; a floor of the diff's work, not a ceiling): {:.0} events/s",
            args.diff_events,
            run.secs,
            run.rate,
            flows.join("; "),
            run.read_rate
        );
        return Ok(());
    }
    if !args.links_only {
        let per_core = transform::in_process(
            &stack::codec(),
            &stack::random_prefix("benchcore"),
            &flows_text,
            payload,
            100_000,
        )
        .await?;
        println!(
            "transform in-process, one core (decode, route, map, encode; example flows, 256 distinct events rotated): {per_core:.0} events/s"
        );
        if args.transform_only {
            return Ok(());
        }
    }

    let partitions = services_partitions(&args)?;
    let full_run = !(args.end_to_end_only || args.links_only || args.replay_only);
    if full_run && partitions != 6 {
        println!(
            "  deviation: the ingest, transform-stage and delivery phases write topics of 6 partitions; the raw ceiling below has the end-to-end topics' {partitions}"
        );
    }
    let raw = raw_ceiling(&events, partitions).await?;
    println!(
        "raw broker ({partitions} partitions, as the end-to-end topics): produce {:.0} msg/s ({:.2}s), consume {:.0} msg/s ({:.2}s)",
        raw.produce_rate, raw.produce_secs, raw.consume_rate, raw.consume_secs
    );

    println!(
        "raw broker round trip, one record at a time: p50 {} us, p99 {} us",
        raw.round_trip_us.p50, raw.round_trip_us.p99
    );
    if args.links_only {
        return links_phase(&args, payload).await;
    }
    if args.end_to_end_only {
        let e2e = end_to_end_phase(&args, &events, &raw).await?;
        let processes = if args.processes {
            Some(processes_phase(&args, &events, &raw).await?)
        } else {
            None
        };
        comparable(&args, &raw, &e2e, processes.as_ref());
        return Ok(());
    }
    // The phases that write most (delivery, end to end, replay) run last:
    // on tansu, consuming phases run after the replay phase were ten times
    // slower than on a fresh stack (docs/benchmarks.md).
    if args.replay_only {
        return replay_phase(&args, raw.produce_rate).await;
    }
    if args.delivery_only {
        return delivery_phase(args.events, raw.consume_rate).await;
    }
    if !args.ingest_only {
        let stage = transform::on_broker(&flows_text, &events).await?;
        println!(
            "transform stage on the broker: {:.0} events/s; raw consume-and-produce loop: {:.0} msg/s ({:.0}%)",
            stage.transform,
            stage.raw_loop,
            100.0 * stage.transform / stage.raw_loop
        );
    }
    let single = ingest::measure(&events[..events.len().min(3000)], 1, 32).await?;
    println!(
        "ingest, single-event requests (32 in flight): {:.0} events/s ({:.0}% of raw produce), ack latency p50 {} ms, p99 {} ms",
        single.rate,
        100.0 * single.rate / raw.produce_rate,
        single.latency_ms.p50,
        single.latency_ms.p99
    );
    let batched = ingest::measure(&events, 100, args.ingest_concurrency).await?;
    println!(
        "ingest, 100-event batches ({} in flight): {:.0} events/s ({:.0}% of raw produce), ack latency p50 {} ms, p99 {} ms per request",
        args.ingest_concurrency,
        batched.rate,
        100.0 * batched.rate / raw.produce_rate,
        batched.latency_ms.p50,
        batched.latency_ms.p99
    );

    if args.skip_end_to_end || args.ingest_only {
        return Ok(());
    }
    delivery_phase(args.events, raw.consume_rate).await?;
    let e2e = end_to_end_phase(&args, &events, &raw).await?;
    replay_phase(&args, raw.produce_rate).await?;
    comparable(&args, &raw, &e2e, None);
    Ok(())
}

/// Partitions of the topics the end-to-end phase's services create: the
/// test harness's 3, or what the binaries parse (`INTOPS_TOPIC_PARTITIONS`
/// or their default). The raw ceiling writes to as many.
fn services_partitions(args: &Args) -> anyhow::Result<i32> {
    if args.e2e_profile == "test" {
        return Ok(3);
    }
    let parsed = intops_transform::Args::try_parse_from(["intops-transform", "--flows", "-"])?;
    Ok(parsed.common.connect.topic_partitions)
}

/// The figures a peer can be compared on, in one block at the end.
fn comparable(args: &Args, raw: &Raw, e2e: &EndToEnd, processes: Option<&processes::Measured>) {
    let bound = broker::record_bound(raw.produce_rate, raw.consume_rate);
    println!("comparable figures (end to end; peers: docs/benchmarks.md):");
    println!(
        "  ratio to raw produce {:.3} ({:.0} / {:.0} msg/s, the same partitions); latency ingested -> delivered paced at {}/s: p50 {} ms, p99 {} ms; at saturation p50 {} ms, p99 {} ms",
        e2e.rate / raw.produce_rate,
        e2e.rate,
        raw.produce_rate,
        args.paced_rate,
        e2e.paced.p50,
        e2e.paced.p99,
        e2e.saturated.p50,
        e2e.saturated.p99
    );
    println!(
        "  the broker's record operations per delivered event: {} writes at {:.0} msg/s + {} reads at {:.0} msg/s = {:.0} events/s one after the other ({:.3} of raw produce); end to end reached {:.2} of that: a reference, not a ceiling (the raw reader's rate is set by tansu's fetch wait and its reading from the first record; the bound from the broker's profile is in docs/benchmarks.md)",
        broker::WRITES_PER_EVENT,
        raw.produce_rate,
        broker::READS_PER_EVENT,
        raw.consume_rate,
        bound,
        bound / raw.produce_rate,
        e2e.rate / bound
    );
    if let Some(m) = processes {
        println!(
            "  four processes: ratio {:.3} ({:.0} events/s); paced at {}/s p50 {} ms, p99 {} ms",
            m.rate / raw.produce_rate,
            m.rate,
            args.paced_rate,
            m.paced.p50,
            m.paced.p99
        );
        if let Some(soak) = &m.soak {
            println!(
                "  at {:.2} of saturation ({}/s for {} s): {}",
                args.soak_fraction,
                soak.rate,
                soak.seconds,
                soak.first_and_last()
            );
        }
    }
}

/// End to end, saturated then paced, and the figures a peer can be
/// compared on, in one block.
async fn end_to_end_phase(args: &Args, events: &[String], raw: &Raw) -> anyhow::Result<EndToEnd> {
    let e2e = end_to_end(args, events).await?;
    println!(
        "end to end: {:.0} events/s ({} events in {:.2}s; ingest accepted all in {:.2}s; NDJSON batches of {} from {} senders)",
        e2e.rate, args.events, e2e.secs, e2e.ingest_secs, args.batch, args.concurrency
    );
    println!("  end-to-end deviations: {}", e2e.deviations);
    println!(
        "end-to-end latency at saturation (ingested -> delivered): p50 {} ms, p99 {} ms, max {} ms",
        e2e.saturated.p50, e2e.saturated.p99, e2e.saturated.max
    );
    println!(
        "end-to-end latency paced at {}/s for {}s (ingested -> delivered): p50 {} ms, p99 {} ms, max {} ms",
        args.paced_rate, args.paced_seconds, e2e.paced.p50, e2e.paced.p99, e2e.paced.max
    );
    println!(
        "  paced, where the time goes: ingested -> delivery request produced by transform p50 {} ms, p99 {} ms; -> delivered p50 {} ms, p99 {} ms",
        e2e.paced_to_transform.p50,
        e2e.paced_to_transform.p99,
        e2e.paced_from_transform.p50,
        e2e.paced_from_transform.p99
    );
    println!(
        "ratio end-to-end / raw produce: {:.3} (three records written per delivered event: at most about 0.333 if writes were the broker's only work)",
        e2e.rate / raw.produce_rate
    );
    Ok(e2e)
}

/// End to end with the binaries as processes (see `processes.rs`).
async fn processes_phase(
    args: &Args,
    events: &[String],
    raw: &Raw,
) -> anyhow::Result<processes::Measured> {
    let soak = soak::SoakPlan {
        seconds: args.soak_seconds,
        fraction: args.soak_fraction,
        batch: args.soak_batch.unwrap_or(args.batch),
    };
    let m = processes::measure(
        &args.bin_dir,
        events,
        args.batch,
        args.concurrency,
        args.paced_rate,
        args.paced_seconds,
        &soak,
    )
    .await?;
    println!(
        "end to end, four processes (the binaries with their defaults, from {}): {:.0} events/s ({} events in {:.2}s) = {:.3} of raw produce; paced at {}/s p50 {} ms, p99 {} ms",
        args.bin_dir.display(),
        m.rate,
        events.len(),
        m.secs,
        m.rate / raw.produce_rate,
        args.paced_rate,
        m.paced.p50,
        m.paced.p99
    );
    for s in &m.services {
        println!(
            "  {}: resident memory {:.0} MB after the paced phase; {:.1} CPU seconds in the saturated phase = {:.2} CPU seconds per 1,000 events",
            s.name,
            s.rss_kb as f64 / 1024.0,
            s.cpu_saturated,
            s.cpu_saturated * 1000.0 / events.len() as f64
        );
    }
    match m.broker_cpu {
        Some((idle, saturated, paced)) => println!(
            "  the broker (tansu): {idle:.0}% of a core idle with the four services waiting, {saturated:.0}% saturated, {paced:.0}% paced at {}/s",
            args.paced_rate
        ),
        None => println!("  the broker's CPU: no tansu PID file in INTOPS_STACK_DIR"),
    }
    if let Some(soak) = &m.soak {
        println!(
            "soak, four processes, {}/s ({:.2} of the rate above, NDJSON requests of {} events) for {} s: latency {}; {} requests refused with 503 and sent again{}",
            soak.rate,
            args.soak_fraction,
            soak.batch,
            soak.seconds,
            soak.first_and_last(),
            soak.refused,
            soak.last_refusal
                .as_ref()
                .map(|r| format!(" (last: {r})"))
                .unwrap_or_default()
        );
        let windows: Vec<String> = soak
            .windows
            .iter()
            .map(|w| {
                let p = &w.latency;
                match w.slowest_at_broker_s {
                    Some(at) => format!("{}/{}/{} @{at:.0}s", p.p50, p.p99, p.max),
                    None => format!("{}/{}/{}", p.p50, p.p99, p.max),
                }
            })
            .collect();
        println!(
            "  per {} s window (a window lasts longer while refused requests wait), p50/p99/max ms from ingest's acceptance @ when the slowest event was accepted, seconds after the broker started (tansu runs its maintenance then and every {}): {}; {} soak events' outcomes not read (duplicates read in their place)",
            soak.window_seconds,
            tansu_maintenance_interval(),
            windows.join(", "),
            soak.unread
        );
        for (i, s) in m.services.iter().enumerate() {
            let (first, last) = soak.rss_first_and_last(i);
            let per_window: Vec<String> = soak
                .windows
                .iter()
                .map(|w| {
                    format!(
                        "{:.0}",
                        w.rss_kb.get(i).copied().unwrap_or(0) as f64 / 1024.0
                    )
                })
                .collect();
            let cpu: Vec<String> = soak
                .windows
                .iter()
                .map(|w| format!("{:.0}", w.cpu_percent.get(i).copied().unwrap_or(0.0)))
                .collect();
            println!(
                "  {}: resident memory {:.0} MB after the first window, {:.0} MB at the end; per window, MB: {}; CPU per window, % of a core: {}",
                s.name,
                first as f64 / 1024.0,
                last as f64 / 1024.0,
                per_window.join(" "),
                cpu.join(" ")
            );
        }
    }
    println!(
        "  deviations: the target a local mock answering 201 at once, in the benchmark's process; the example flows without links; INTOPS_* variables in the environment count"
    );
    Ok(m)
}

/// The interval of tansu's maintenance pass as `deploy/local/start.sh`
/// starts it (`INTOPS_TANSU_MAINTENANCE_INTERVAL`, tansu's default 10m).
fn tansu_maintenance_interval() -> String {
    std::env::var("INTOPS_TANSU_MAINTENANCE_INTERVAL")
        .ok()
        .filter(|v| !v.is_empty())
        .map_or("10m (tansu's default)".to_string(), |v| {
            format!("{v} (INTOPS_TANSU_MAINTENANCE_INTERVAL, a deviation)")
        })
}

/// Delivery alone, against a target answering at once and after 20 ms
/// (see `delivery.rs`).
async fn delivery_phase(events: usize, raw_consume_rate: f64) -> anyhow::Result<()> {
    for (concurrency, latency_ms) in [(64, 0), (64, 20)] {
        let latency = Duration::from_millis(latency_ms);
        let delivery::Measured {
            rate,
            steady,
            latency_ms: delivery_ms,
        } = delivery::measure(events, concurrency, latency).await?;
        let limit = if latency_ms == 0 {
            String::new()
        } else {
            let ceiling = f64::from(concurrency) * 1000.0 / latency_ms as f64;
            format!(
                "; {:.0}% of concurrency / latency = {ceiling:.0}/s; steady (10th-90th percentile) {steady:.0}/s = {:.0}%",
                100.0 * rate / ceiling,
                100.0 * steady / ceiling
            )
        };
        println!(
            "delivery alone, concurrency {concurrency}, target answering in {latency_ms} ms: {rate:.0} deliveries/s ({:.0}% of raw consume{limit}); at half that rate, written -> at the target p50 {} ms, p99 {} ms",
            100.0 * rate / raw_consume_rate,
            delivery_ms.p50,
            delivery_ms.p99
        );
    }
    Ok(())
}

/// The links phases (see `links.rs`): end to end with and without links
/// first, then the index over many links (its million writes slow tansu's
/// later reads, see above).
async fn links_phase(args: &Args, payload: &str) -> anyhow::Result<()> {
    if !args.skip_end_to_end {
        links::compare(
            payload,
            args.events,
            args.links_per_key,
            args.batch,
            args.concurrency,
        )
        .await?;
    }
    if args.links == 0 {
        return Ok(());
    }
    let i = links::index(args.links).await?;
    let c = &i.caught_up;
    println!(
        "links index: {} links written in {:.1}s ({:.0} records/s) to a links topic of {} partitions ({}), created by the services' topic plan",
        i.written,
        i.write_secs,
        i.written as f64 / i.write_secs,
        i.partitions,
        i.configs
    );
    println!(
        "links index catch-up (Follower::open + catch_up, fresh process): {} records, {} links in {:.1}s = {:.0} records/s; index heap {:.0} MB ({:.0} bytes a link); resident memory {:.0} MB before, {:.0} MB after (+{:.0} MB, {:.0} bytes a link); the process used {:.1} CPU seconds for it ({:.0} records per CPU second)",
        c.records,
        c.links,
        c.secs,
        c.records as f64 / c.secs,
        c.heap_bytes as f64 / 1e6,
        c.heap_bytes as f64 / c.links.max(1) as f64,
        c.rss_before_kb as f64 / 1024.0,
        c.rss_after_kb as f64 / 1024.0,
        c.rss_after_kb.saturating_sub(c.rss_before_kb) as f64 / 1024.0,
        c.rss_after_kb.saturating_sub(c.rss_before_kb) as f64 * 1024.0 / c.links.max(1) as f64,
        c.cpu_secs,
        c.records as f64 / c.cpu_secs.max(0.01)
    );
    Ok(())
}

/// The dead-letter replay phase (see `replay.rs`).
async fn replay_phase(args: &Args, raw_produce_rate: f64) -> anyhow::Result<()> {
    let bin_dir = std::env::current_exe()?
        .parent()
        .map(|d| d.display().to_string())
        .unwrap_or_default();
    let keys = if args.replay_keys == 0 {
        args.replay
    } else {
        args.replay_keys
    };
    let replayed = replay::measure(args.replay, keys, &bin_dir).await?;
    println!(
        "dlq replay (intops dlq replay, whole command): {} dead letters over {keys} keys in {:.2}s = {:.0} records/s ({:.0}% of raw produce; each replay writes 3 records); its dry run (read and decode only) {:.2}s",
        replayed.sent,
        replayed.secs,
        replayed.rate,
        100.0 * replayed.rate / raw_produce_rate,
        replayed.dry_secs
    );
    Ok(())
}

/// Produces every (key, value) to `topic`, many in flight, and waits for
/// every acknowledgement.
async fn produce_all(
    producer: &intops_kafka::Producer,
    topic: &str,
    records: &[(String, Vec<u8>)],
) -> anyhow::Result<()> {
    futures::stream::iter(records.iter().map(|(k, v)| {
        producer.send(intops_kafka::Record {
            topic,
            key: k.as_bytes(),
            value: v,
            headers: &[],
        })
    }))
    .buffer_unordered(5000)
    .collect::<Vec<_>>()
    .await
    .into_iter()
    .collect::<Result<Vec<_>, _>>()?;
    Ok(())
}

pub(crate) struct Raw {
    round_trip_us: Percentiles,
    produce_rate: f64,
    produce_secs: f64,
    consume_rate: f64,
    consume_secs: f64,
}

/// Produces every record with the services' producer settings (acks=all,
/// idempotent, linger 5 ms) and reads them back.
async fn raw_ceiling(values: &[String], partitions: i32) -> anyhow::Result<Raw> {
    let prefix = stack::random_prefix("rawbench");
    let settings = intops_kafka::KafkaSettings::new(stack::bootstrap(), Default::default())?;
    let topic = format!("{prefix}.raw");
    intops_kafka::topics::ensure(
        &settings,
        &[intops_kafka::topics::TopicSpec::new(&topic, partitions, 1)],
    )
    .await?;
    let producer: FutureProducer = settings.producer_config().create()?;
    // Warm up (connection, metadata, producer id) outside the timing, as
    // the services' producers are warm when they are measured.
    producer
        .send(
            FutureRecord::to(&topic).key("warm-up").payload("{}"),
            Duration::from_secs(30),
        )
        .await
        .map_err(|(e, _)| e)
        .context("raw warm-up")?;
    // One record at a time: the broker round trip a single-event request
    // cannot avoid (linger.ms included).
    let mut round_trips = Vec::new();
    for i in 0..200 {
        let t = Instant::now();
        producer
            .send(
                FutureRecord::to(&topic)
                    .key(&format!("rt{i}"))
                    .payload(&values[0]),
                Duration::from_secs(30),
            )
            .await
            .map_err(|(e, _)| e)
            .context("raw round trip")?;
        round_trips.push(t.elapsed().as_micros() as i64);
    }
    let round_trip_us = Percentiles::of(round_trips);
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
    for p in 0..partitions {
        tpl.add_partition_offset(&topic, p, Offset::Beginning)?;
    }
    consumer.assign(&tpl)?;
    let started = Instant::now();
    let mut n = 0;
    while n < values.len() + 201 {
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
        round_trip_us,
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
    saturated: Percentiles,
    paced: Percentiles,
    /// What differs from a deployment, printed beside the figures.
    deviations: String,
    /// Paced events: ingested -> delivery request produced by transform.
    paced_to_transform: Percentiles,
    /// Paced events: delivery request produced -> delivered.
    paced_from_transform: Percentiles,
}

pub(crate) struct Percentiles {
    p50: i64,
    p99: i64,
    max: i64,
}

impl Percentiles {
    pub(crate) fn of(mut latencies: Vec<i64>) -> Self {
        latencies.sort_unstable();
        let at = |p: f64| {
            let i = ((latencies.len() as f64 * p).ceil() as usize).saturating_sub(1);
            latencies.get(i).copied().unwrap_or(0)
        };
        Self {
            p50: at(0.50),
            p99: at(0.99),
            max: latencies.last().copied().unwrap_or(0),
        }
    }
}

pub(crate) async fn post(
    http: &reqwest::Client,
    url: &str,
    body: &str,
) -> anyhow::Result<Vec<String>> {
    post_as(http, url, body, "application/json").await
}

/// [`post`] of NDJSON (one event per line).
pub(crate) async fn post_ndjson(
    http: &reqwest::Client,
    url: &str,
    body: &str,
) -> anyhow::Result<Vec<String>> {
    post_as(http, url, body, "application/x-ndjson").await
}

/// Ingest answered 503 (overloaded, or the broker did not acknowledge in
/// time): a sender tries again after its Retry-After.
#[derive(Debug)]
pub(crate) struct Refused {
    pub body: String,
    /// Its Retry-After (1 s when absent).
    pub retry_after: Duration,
}

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ingest answered 503: {}", self.body)
    }
}

impl std::error::Error for Refused {}

async fn post_as(
    http: &reqwest::Client,
    url: &str,
    body: &str,
    content_type: &str,
) -> anyhow::Result<Vec<String>> {
    let r = http
        .post(url)
        .header("content-type", content_type)
        .header(
            "x-intops-signature",
            intops_signature(SECRET, body.as_bytes()),
        )
        .body(body.to_string())
        .send()
        .await?;
    if r.status() == reqwest::StatusCode::SERVICE_UNAVAILABLE {
        let after = r
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok())
            .unwrap_or(1);
        let body = r.text().await.unwrap_or_default();
        return Err(Refused {
            body,
            retry_after: Duration::from_secs(after),
        }
        .into());
    }
    anyhow::ensure!(r.status() == 202, "ingest answered {}", r.status());
    let v: serde_json::Value = r.json().await?;
    Ok(v["event_ids"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|id| id.as_str().map(String::from))
        .collect())
}

async fn end_to_end(args: &Args, events: &[String]) -> anyhow::Result<EndToEnd> {
    let target = MockTarget::start().await?;
    let profile = match args.e2e_profile.as_str() {
        "defaults" => Profile::Defaults,
        "test" => Profile::Test,
        other => anyhow::bail!("--e2e-profile {other:?}: expected defaults or test"),
    };
    // Without the example's links: every distinct incident would be a
    // create against a target that answers with no record id.
    let flows = links::unlinked(&example_flows(&target.base_url()))?;
    let pipeline = Pipeline::start_as("bench", &flows, &[("snow", SECRET)], profile).await?;
    let deviations = match profile {
        Profile::Defaults => "the four services share the benchmark's process (each with its own producer and consumers, as the binaries); every setting the binaries' default (INTOPS_* variables in the environment count: INTOPS_KAFKA_OPTION_SESSION_TIMEOUT_MS from bench.sh); the example flows without snow-p1-to-jira's link/update and without jira-to-snow; the target a local mock answering 201 at once".to_string(),
        Profile::Test => format!(
            "the test harness's settings: transform {} lanes (default 1024), topics of 3 partitions (default 1; the raw ceiling's 3 too), transform dead-letter window 20 (default 100); the services share the benchmark's process; the example flows without links; the target a local mock answering 201 at once",
            intops_tests::pipeline::TRANSFORM_LANES
        ),
    };
    let http = reqwest::Client::new();
    let url = pipeline.ingest_url("servicenow");
    let bodies = load::ndjson_batches(events, args.batch);
    let n = events.len();
    let (ingest_secs, secs) =
        load::saturate_until_delivered(&http, &url, &bodies, args.concurrency, n, &target).await?;

    // Paced phase: one event per request at a fixed rate.
    let paced_n = (args.paced_rate * args.paced_seconds) as usize;
    let paced_ids = load::paced(&http, &url, events, args.paced_rate, args.paced_seconds).await?;
    poll_until(
        "every paced event delivered",
        Duration::from_secs(600),
        || async { (target.request_count() >= n + paced_n).then_some(()) },
    )
    .await;

    // Latencies from the delivery outcomes (ingested_at -> delivered).
    let codec = stack::codec();
    let outcomes = topic::read(
        &format!("{}.outcomes", pipeline.prefix),
        n + paced_n,
        Duration::from_secs(120),
    );
    let mut decoded = Vec::with_capacity(outcomes.len());
    for m in &outcomes {
        let o: Outcome = codec.decode(m.payload().context("outcome value")?).await?;
        decoded.push(o);
    }
    let (mut saturated, mut paced) = (Vec::new(), Vec::new());
    for o in &decoded {
        let latency = o.latency_ms.unwrap_or(0);
        if paced_ids.contains(&o.event_id) {
            paced.push(latency)
        } else {
            saturated.push(latency)
        }
    }
    // Where a paced event's time goes: ingested -> its delivery request
    // produced by transform (`created_at`), and from there to delivered.
    let mut to_transform = std::collections::HashMap::new();
    for m in &topic::read(
        &format!("{}.deliveries.jira", pipeline.prefix),
        n + paced_n,
        Duration::from_secs(120),
    ) {
        let r: DeliveryRequest = codec.decode(m.payload().context("request value")?).await?;
        if paced_ids.contains(&r.event_id) {
            to_transform.insert(r.event_id.clone(), (r.created_at - r.ingested_at) / 1000);
        }
    }
    let (mut hop1, mut hop2) = (Vec::new(), Vec::new());
    for o in &decoded {
        if let (Some(first), Some(total)) = (to_transform.get(&o.event_id), o.latency_ms) {
            hop1.push(*first);
            hop2.push(total - first);
        }
    }
    pipeline.stop().await?;
    Ok(EndToEnd {
        paced_to_transform: Percentiles::of(hop1),
        paced_from_transform: Percentiles::of(hop2),
        rate: n as f64 / secs,
        secs,
        ingest_secs,
        saturated: Percentiles::of(saturated),
        paced: Percentiles::of(paced),
        deviations,
    })
}
