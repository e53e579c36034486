//! The end-to-end phases' load: NDJSON batches from concurrent senders
//! (saturated), and single-event requests at a fixed rate (paced).

use std::collections::HashSet;
use std::time::{Duration, Instant};

use futures::StreamExt as _;

use crate::{post, post_ndjson};

/// `events` as NDJSON bodies of `batch` events (one event per line).
pub fn ndjson_batches(events: &[String], batch: usize) -> Vec<String> {
    events
        .chunks(batch.max(1))
        .map(|c| {
            c.iter()
                .map(|e| e.replace('\n', " "))
                .collect::<Vec<_>>()
                .join("\n")
        })
        .collect()
}

/// Posts every body to `url`, `senders` at a time; the seconds until
/// ingest accepted the last.
pub async fn saturate(
    http: &reqwest::Client,
    url: &str,
    bodies: &[String],
    senders: usize,
) -> anyhow::Result<f64> {
    let started = Instant::now();
    let answers = futures::stream::iter(bodies.iter().map(|b| post_ndjson(http, url, b)))
        .buffer_unordered(senders.max(1))
        .collect::<Vec<_>>()
        .await;
    let secs = started.elapsed().as_secs_f64();
    for a in answers {
        a?;
    }
    Ok(secs)
}

/// `rate` × `seconds` single-event requests of `events` (cycled) at
/// `rate` per second; the event ids ingest gave them.
pub async fn paced(
    http: &reqwest::Client,
    url: &str,
    events: &[String],
    rate: u32,
    seconds: u32,
) -> anyhow::Result<HashSet<String>> {
    let n = (rate * seconds) as usize;
    let mut ids = HashSet::new();
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / f64::from(rate.max(1))));
    let mut in_flight = futures::stream::FuturesUnordered::new();
    for event in events.iter().cycle().take(n) {
        tick.tick().await;
        in_flight.push(post(http, url, event));
        while let Some(Some(r)) = futures::FutureExt::now_or_never(in_flight.next()) {
            ids.extend(r?);
        }
    }
    while let Some(r) = in_flight.next().await {
        ids.extend(r?);
    }
    Ok(ids)
}
