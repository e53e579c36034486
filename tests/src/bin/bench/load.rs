//! The end-to-end phases' load: NDJSON batches from concurrent senders
//! (saturated), and events at a fixed rate (paced: single-event requests,
//! or small NDJSON batches for the soak).

use std::collections::HashSet;
use std::time::{Duration, Instant};

use futures::StreamExt as _;

use crate::{Refused, post, post_ndjson};

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

/// [`saturate`], then waits until `target` received every event: the
/// seconds until ingest accepted the last, and until the last arrived.
pub async fn saturate_until_delivered(
    http: &reqwest::Client,
    url: &str,
    bodies: &[String],
    senders: usize,
    events: usize,
    target: &intops_tests::MockTarget,
) -> anyhow::Result<(f64, f64)> {
    let started = Instant::now();
    let ingest_secs = saturate(http, url, bodies, senders).await?;
    intops_tests::poll_until(
        "every event delivered",
        Duration::from_secs(1800),
        || async { (target.request_count() >= events).then_some(()) },
    )
    .await;
    Ok((ingest_secs, started.elapsed().as_secs_f64()))
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
    let sent = paced_retrying(http, url, events, rate, seconds, 1, 0).await?;
    Ok(sent.ids)
}

/// What a paced run sent.
pub struct Sent {
    /// The event ids ingest gave.
    pub ids: HashSet<String>,
    /// Requests ingest refused with 503 and that were sent again.
    pub refused: usize,
    /// The last refusal's answer.
    pub last_refusal: Option<String>,
}

/// `rate` × `seconds` events of `events` (cycled) at `rate` per second,
/// in requests of `batch` events (NDJSON when more than one). A request
/// ingest refused with 503 is sent again after its Retry-After, as a
/// sender honouring it would, up to `max_refusals` times (then the run
/// fails); the refusals are counted.
pub async fn paced_retrying(
    http: &reqwest::Client,
    url: &str,
    events: &[String],
    rate: u32,
    seconds: u32,
    batch: usize,
    max_refusals: usize,
) -> anyhow::Result<Sent> {
    let batch = batch.max(1);
    let n = (rate * seconds) as usize;
    let bodies: Vec<String> = if batch == 1 {
        events.iter().cycle().take(n).cloned().collect()
    } else {
        let cycled: Vec<String> = events.iter().cycle().take(n).cloned().collect();
        ndjson_batches(&cycled, batch)
    };
    let per_second = f64::from(rate.max(1)) / batch as f64;
    let mut sent = Sent {
        ids: HashSet::new(),
        refused: 0,
        last_refusal: None,
    };
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / per_second));
    let mut in_flight = futures::stream::FuturesUnordered::new();
    for body in &bodies {
        tick.tick().await;
        in_flight.push(send(http, url, body, batch, max_refusals));
        while let Some(Some(r)) = futures::FutureExt::now_or_never(in_flight.next()) {
            sent.add(r?);
        }
    }
    while let Some(r) = in_flight.next().await {
        sent.add(r?);
    }
    Ok(sent)
}

/// Sends `body` until ingest accepts it (or refused it `max_refusals`
/// times): the ids it gave, and the refusals.
async fn send(
    http: &reqwest::Client,
    url: &str,
    body: &str,
    batch: usize,
    max_refusals: usize,
) -> anyhow::Result<(Vec<String>, Vec<String>)> {
    let mut refusals = Vec::new();
    loop {
        let answer = if batch == 1 {
            post(http, url, body).await
        } else {
            post_ndjson(http, url, body).await
        };
        match answer {
            Err(e) if refusals.len() < max_refusals => {
                let Some(refused) = e.downcast_ref::<Refused>() else {
                    return Err(e);
                };
                let after = refused.retry_after;
                refusals.push(e.to_string());
                tokio::time::sleep(after).await;
            }
            other => return other.map(|ids| (ids, refusals)),
        }
    }
}

impl Sent {
    fn add(&mut self, (ids, refusals): (Vec<String>, Vec<String>)) {
        self.ids.extend(ids);
        self.refused += refusals.len();
        if let Some(last) = refusals.into_iter().last() {
            self.last_refusal = Some(last);
        }
    }
}
