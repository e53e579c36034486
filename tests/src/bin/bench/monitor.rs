//! The monitor's fold: outcomes decoded through the registry codec and
//! folded into the lineage index and the flows' health, as its reader does
//! (without the broker, whose read rate is measured separately), and the
//! process's resident memory before and after 1 million outcomes spread
//! over the whole 24 h window (every 5 s bucket of every flow filled: the
//! worst case for the health state).

use std::time::{Duration, Instant};

use intops_events::{Outcome, OutcomeStatus, RecordKind, Stage, now_micros};
use intops_monitor::health::Health;
use intops_monitor::lineage::Lineage;
use intops_tests::stack;

/// What the fold measured.
pub struct Folded {
    /// Outcomes per second decoded and folded into the health state.
    pub health_rate: f64,
    /// Outcomes per second decoded and folded into the lineage index.
    pub lineage_rate: f64,
    pub rss_before_mb: f64,
    pub rss_health_mb: f64,
    pub rss_after_mb: f64,
    pub buckets: usize,
    pub events_held: usize,
}

fn rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

/// Folds `count` outcomes of `flows` flows, spread over the last 24 h.
pub async fn fold(count: usize, flows: usize) -> anyhow::Result<Folded> {
    let mut text = String::from(
        "[[sources]]\nid = \"app\"\nkind = \"webhook\"\nauth = \"none\"\nentity_key = \".id\"\n",
    );
    for f in 0..flows {
        text.push_str(&format!(
            "[[targets]]\nid = \"t{f}\"\nbase_url = \"http://t{f}\"\n[[flows]]\nid = \"f{f}\"\nsource = \"app\"\ntarget = \"t{f}\"\npath = \"/\"\nslo = {{ success_ratio = 0.99, latency_p95 = \"30s\" }}\n"
        ));
    }
    let parsed = intops_flows::load_str(&text).map_err(|e| anyhow::anyhow!("{e}"))?;
    let codec = stack::codec();
    let topic = stack::random_prefix("monitorbench") + ".outcomes";
    let now = now_micros();
    let span = 86_400_000_000_i64 - 60_000_000;
    let mut values = Vec::with_capacity(count);
    for i in 0..count {
        let o = Outcome {
            tenant: None,
            link_action: None,
            record_id: None,
            event_id: format!("event-{i}"),
            stage: Stage::Delivery,
            status: if i % 50 == 0 {
                OutcomeStatus::DeadLettered
            } else {
                OutcomeStatus::Delivered
            },
            flow_id: Some(format!("f{}", i % flows)),
            target_id: Some(format!("t{}", i % flows)),
            attempts: 1 + (i % 3) as i32,
            http_status: Some(201),
            latency_ms: Some((i % 5_000) as i64),
            error: None,
            at: now - span + (i as i64 * (span / count as i64)),
        };
        values.push(codec.encode(&topic, RecordKind::Outcome, &o).await?);
    }
    let rss_before_mb = rss_mb();
    // Health first, then the lineage, to see each one's share of memory.
    let mut health = Health::new(&parsed, Duration::from_secs(86_400), now);
    let started = Instant::now();
    for value in &values {
        let o: Outcome = codec.decode(value).await?;
        health.on_outcome(&o);
    }
    let health_rate = count as f64 / started.elapsed().as_secs_f64();
    health.evaluate(now_micros());
    let rss_health_mb = rss_mb();
    let mut lineage = Lineage::new(100_000);
    let started = Instant::now();
    for value in &values {
        let o: Outcome = codec.decode(value).await?;
        lineage.on_outcome(&o);
    }
    let lineage_rate = count as f64 / started.elapsed().as_secs_f64();
    drop(values);
    Ok(Folded {
        health_rate,
        lineage_rate,
        rss_before_mb,
        rss_health_mb,
        rss_after_mb: rss_mb(),
        buckets: health.buckets(),
        events_held: lineage.len(),
    })
}
