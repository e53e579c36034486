//! End to end with the four release binaries as separate processes, the
//! way a cluster runs them (`--processes`): the rate, the paced latency,
//! each service's resident memory and CPU and the broker's CPU, read from
//! /proc; then, with `--soak-seconds`, a soak at a fraction of the
//! measured rate (`--soak-fraction`), latency and memory per window.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::Context as _;
use intops_events::Outcome;
use intops_tests::pipeline::example_flows;
use intops_tests::{MockTarget, poll_until, stack, topic};
use rdkafka::message::Message;

use crate::soak::{Run, Soak, SoakPlan};
use crate::{Percentiles, SECRET, broker, links, load};

const SERVICES: [&str; 4] = [
    "intops-ingest",
    "intops-transform",
    "intops-delivery",
    "intops-monitor",
];

/// One service process and what /proc said of it.
pub struct Service {
    pub name: &'static str,
    child: Child,
    /// Resident memory (KiB) when the paced phase ended.
    pub rss_kb: u64,
    /// CPU seconds (user and system) during the saturated phase.
    pub cpu_saturated: f64,
}

/// The figures of the run.
pub struct Measured {
    pub rate: f64,
    pub secs: f64,
    pub paced: Percentiles,
    pub services: Vec<Service>,
    /// The broker's CPU (% of a core) idle with the four services
    /// running, saturated, paced (`None`: no broker PID found).
    pub broker_cpu: Option<(f64, f64, f64)>,
    pub soak: Option<Soak>,
}

/// Seconds of the broker's idle CPU measurement.
const IDLE_SECONDS: u64 = 10;

/// A free local port.
fn free_port() -> anyhow::Result<SocketAddr> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(l.local_addr()?)
}

/// Resident memory (KiB) and CPU seconds of process `pid`.
pub(crate) fn usage(pid: u32) -> anyhow::Result<(u64, f64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let rss = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .context("VmRSS")?;
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the command's closing parenthesis; utime and stime are
    // the 14th and 15th of the whole line.
    let rest = stat.rsplit_once(')').context("stat")?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| -> f64 { fields.get(i).and_then(|v| v.parse().ok()).unwrap_or(0.0) };
    // The kernel's USER_HZ is 100 on Linux.
    Ok((rss, (ticks(11) + ticks(12)) / 100.0))
}

fn spawn(binary: &str, dir: &Path, env: &[(&str, String)]) -> anyhow::Result<Child> {
    let mut c = Command::new(dir.join(binary));
    for (k, v) in env {
        c.env(k, v);
    }
    c.env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    c.spawn()
        .with_context(|| format!("{binary} in {}", dir.display()))
}

/// Runs `events` (saturated) and `paced_rate` × `paced_seconds` single
/// events through the binaries in `bin_dir`.
pub async fn measure(
    bin_dir: &Path,
    events: &[String],
    batch: usize,
    senders: usize,
    paced_rate: u32,
    paced_seconds: u32,
    soak: &SoakPlan,
) -> anyhow::Result<Measured> {
    let target = MockTarget::start().await?;
    let dir = tempfile::tempdir()?;
    std::fs::write(dir.path().join("snow"), SECRET)?;
    let flows = links::unlinked(&example_flows(&target.base_url()))?
        .replace("{secrets}", &dir.path().display().to_string());
    let flows_path = dir.path().join("flows.toml");
    std::fs::write(&flows_path, flows)?;
    let prefix = stack::random_prefix("benchproc");
    let (ingest, monitor) = (free_port()?, free_port()?);
    let env = vec![
        ("INTOPS_FLOWS", flows_path.display().to_string()),
        ("INTOPS_TOPIC_PREFIX", prefix.clone()),
        ("INTOPS_KAFKA_BOOTSTRAP", stack::bootstrap()),
        ("INTOPS_SCHEMA_REGISTRY_URL", stack::registry_url()),
        ("INTOPS_INGEST_LISTEN", ingest.to_string()),
        ("INTOPS_MONITOR_LISTEN", monitor.to_string()),
    ];
    // Transform and delivery serve /readyz on an admin address: the idle
    // measurement starts once all four are ready (groups joined).
    let admin = [free_port()?, free_port()?];
    let mut services = Vec::new();
    for name in SERVICES {
        let mut env = env.clone();
        match name {
            "intops-transform" => env.push(("INTOPS_ADMIN_LISTEN", admin[0].to_string())),
            "intops-delivery" => env.push(("INTOPS_ADMIN_LISTEN", admin[1].to_string())),
            _ => {}
        }
        services.push(Service {
            name,
            child: spawn(name, bin_dir, &env)?,
            rss_kb: 0,
            cpu_saturated: 0.0,
        });
    }
    let http = reqwest::Client::new();
    for addr in [ingest, monitor, admin[0], admin[1]] {
        let url = format!("http://{addr}/readyz");
        poll_until("the service is ready", Duration::from_secs(120), || {
            let http = http.clone();
            let url = url.clone();
            async move {
                let ok = http.get(&url).send().await.ok()?.status().is_success();
                ok.then_some(())
            }
        })
        .await;
    }
    let url = format!("http://{ingest}/v1/sources/servicenow/events");
    let bodies = load::ndjson_batches(events, batch);
    // The broker with every consumer of the four services waiting: a
    // measurement window, not a wait for a condition.
    let broker_pid = broker::pid();
    let idle = broker::CpuMeter::start(broker_pid);
    tokio::time::sleep(Duration::from_secs(IDLE_SECONDS)).await;
    let broker_idle = idle.percent();
    let saturated_meter = broker::CpuMeter::start(broker_pid);
    let cpu_before: Vec<f64> = services
        .iter()
        .map(|s| usage(s.child.id()).map(|u| u.1).unwrap_or_default())
        .collect();
    let n = events.len();
    let (_, secs) =
        load::saturate_until_delivered(&http, &url, &bodies, senders, n, &target).await?;
    for (s, before) in services.iter_mut().zip(cpu_before) {
        s.cpu_saturated = usage(s.child.id()).map(|u| u.1).unwrap_or_default() - before;
    }

    let broker_saturated = saturated_meter.percent();

    let paced_n = (paced_rate * paced_seconds) as usize;
    let paced_meter = broker::CpuMeter::start(broker_pid);
    let paced_ids = load::paced(&http, &url, events, paced_rate, paced_seconds).await?;
    let broker_paced = paced_meter.percent();
    poll_until(
        "every paced event delivered",
        Duration::from_secs(600),
        || async { (target.request_count() >= n + paced_n).then_some(()) },
    )
    .await;
    for s in &mut services {
        s.rss_kb = usage(s.child.id()).map(|u| u.0).unwrap_or_default();
    }

    // The soak: a fraction of the saturated rate, in windows; memory after
    // each, latency of each from the outcomes below.
    let mut soak_run = Run::new(soak, n as f64 / secs);
    let children: Vec<&Child> = services.iter().map(|s| &s.child).collect();
    soak_run.send(&http, &url, events, &children).await?;
    soak_run.wait_delivered(&target, n + paced_n).await;
    let sent = n + paced_n + soak_run.events();

    let codec = stack::codec();
    let mut paced = Vec::new();
    let mut per_window: HashMap<usize, Vec<(i64, i64)>> = HashMap::new();
    let mut seen = HashSet::new();
    // As many outcomes as events sent; a redelivered one (after a
    // refusal or at-least-once) takes another's place: counted below.
    let deadline = Duration::from_secs(300 + sent as u64 / 2000);
    for m in &topic::read(&format!("{prefix}.outcomes"), sent, deadline) {
        let o: Outcome = codec.decode(m.payload().context("outcome value")?).await?;
        let latency = o.latency_ms.unwrap_or(0);
        if paced_ids.contains(&o.event_id) {
            paced.push(latency);
        }
        if let Some(w) = soak_run.window_of(&o.event_id)
            && seen.insert(o.event_id.clone())
        {
            per_window.entry(w).or_default().push((o.at, latency));
        }
    }
    for s in &mut services {
        let _ = Command::new("kill")
            .args(["-TERM", &s.child.id().to_string()])
            .status();
        let _ = s.child.wait();
    }
    let broker_cpu = match (broker_idle, broker_saturated, broker_paced) {
        (Some(i), Some(s), Some(p)) => Some((i, s, p)),
        _ => None,
    };
    Ok(Measured {
        rate: n as f64 / secs,
        secs,
        paced: Percentiles::of(paced),
        services,
        broker_cpu,
        soak: soak_run.fold(per_window),
    })
}
