//! A source sending signed events at a steady pace, retrying each request
//! until ingest answers 202, and remembering what ingest acknowledged.
//!
//! Every record carries a unique `id` (the source's dedupe key), so a retry
//! gets the same event id. Interleaved poison: every `POISON_EVERY`th
//! record's mapping fails (`n` is text), every `UNROUTED_EVERY`th matches
//! no flow (`kind = "skip"`).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio_util::sync::CancellationToken;

use super::checker::Expect;
use crate::sign::intops_signature;

/// Every this many records, one whose mapping fails.
pub const POISON_EVERY: usize = 37;
/// Every this many records, one no flow routes.
pub const UNROUTED_EVERY: usize = 53;
/// The header carrying the signed timestamp.
pub const TIMESTAMP_HEADER: &str = "X-Intops-Timestamp";

/// How the load is shaped.
#[derive(Debug, Clone)]
pub struct Shape {
    /// Ingest's webhook URL for the source.
    pub url: String,
    /// The source's HMAC secret.
    pub secret: String,
    /// Records per request.
    pub batch: usize,
    /// Requests each sender sends per second at most.
    pub per_second: u32,
    /// Concurrent senders.
    pub senders: usize,
    /// Records in all, at most.
    pub max_events: usize,
}

/// What the source saw.
#[derive(Debug, Default)]
pub struct Sent {
    /// Event ids ingest acknowledged, with what should become of each.
    pub acknowledged: BTreeMap<String, Expect>,
    /// Records in requests that got no 202 (retried).
    pub unanswered_events: u64,
    /// Requests that got no 202.
    pub unanswered_requests: u64,
}

/// The running source.
#[derive(Debug)]
pub struct Load {
    stop: CancellationToken,
    next: Arc<AtomicUsize>,
    acknowledged: Arc<AtomicU64>,
    tasks: tokio::task::JoinSet<Sent>,
}

fn record(i: usize, attempt: u32) -> (serde_json::Value, Expect) {
    let id = format!("ev-{i:06}");
    let k = format!("k{}", i % 60);
    if i % POISON_EVERY == POISON_EVERY - 1 {
        let v = serde_json::json!({"id": id, "k": k, "n": "not a number", "attempt": attempt});
        (v, Expect::DeadLetter)
    } else if i % UNROUTED_EVERY == UNROUTED_EVERY - 1 {
        let v = serde_json::json!({"id": id, "k": k, "n": i, "kind": "skip", "attempt": attempt});
        (v, Expect::Unrouted)
    } else {
        let v = serde_json::json!({"id": id, "k": k, "n": i, "attempt": attempt});
        (v, Expect::Deliver)
    }
}

impl Load {
    /// Starts sending.
    pub fn start(shape: Shape) -> Self {
        let stop = CancellationToken::new();
        let next = Arc::new(AtomicUsize::new(0));
        let acknowledged = Arc::new(AtomicU64::new(0));
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .expect("http client");
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..shape.senders {
            let (shape, stop, next, acked, http) = (
                shape.clone(),
                stop.clone(),
                next.clone(),
                acknowledged.clone(),
                http.clone(),
            );
            tasks.spawn(async move { send_all(shape, stop, next, acked, http).await });
        }
        Self {
            stop,
            next,
            acknowledged,
            tasks,
        }
    }

    /// Events acknowledged so far.
    pub fn acknowledged(&self) -> u64 {
        self.acknowledged.load(Ordering::SeqCst)
    }

    /// Records handed to senders so far.
    pub fn started(&self) -> usize {
        self.next.load(Ordering::SeqCst)
    }

    /// Stops taking new batches, lets the ones in flight finish (retrying
    /// until acknowledged), and returns what was acknowledged.
    pub async fn finish(mut self) -> Sent {
        self.stop.cancel();
        let mut all = Sent::default();
        while let Some(sent) = self.tasks.join_next().await {
            let sent = sent.expect("sender task");
            all.acknowledged.extend(sent.acknowledged);
            all.unanswered_events += sent.unanswered_events;
            all.unanswered_requests += sent.unanswered_requests;
        }
        all
    }
}

async fn send_all(
    shape: Shape,
    stop: CancellationToken,
    next: Arc<AtomicUsize>,
    acked: Arc<AtomicU64>,
    http: reqwest::Client,
) -> Sent {
    let mut sent = Sent::default();
    let mut pace = tokio::time::interval(Duration::from_secs(1) / shape.per_second.max(1));
    pace.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = stop.cancelled() => return sent,
            _ = pace.tick() => {}
        }
        let first = next.fetch_add(shape.batch, Ordering::SeqCst);
        if first >= shape.max_events {
            return sent;
        }
        let indexes: Vec<usize> = (first..(first + shape.batch).min(shape.max_events)).collect();
        let mut attempt = 0;
        let ids = loop {
            let (body, _) = batch(&indexes, attempt);
            match post(&http, &shape, &body).await {
                Ok(ids) => break ids,
                Err(why) => {
                    sent.unanswered_requests += 1;
                    sent.unanswered_events += indexes.len() as u64;
                    attempt += 1;
                    assert!(
                        attempt < 600,
                        "ingest never accepted records {indexes:?}: {why}"
                    );
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        };
        let (_, expects) = batch(&indexes, attempt);
        assert_eq!(ids.len(), expects.len(), "one event id per record");
        acked.fetch_add(ids.len() as u64, Ordering::SeqCst);
        sent.acknowledged.extend(ids.into_iter().zip(expects));
    }
}

fn batch(indexes: &[usize], attempt: u32) -> (String, Vec<Expect>) {
    let (records, expects): (Vec<_>, Vec<_>) = indexes.iter().map(|&i| record(i, attempt)).unzip();
    (serde_json::Value::Array(records).to_string(), expects)
}

/// Posts one signed request; the event ids on 202, else why not. A 4xx
/// other than 429 is a bug in the test or in ingest: it panics.
async fn post(http: &reqwest::Client, shape: &Shape, body: &str) -> Result<Vec<String>, String> {
    let ts = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
        .to_string();
    let signed = format!("{ts}{body}");
    let response = http
        .post(&shape.url)
        .header("content-type", "application/json")
        .header(TIMESTAMP_HEADER, &ts)
        .header(
            "x-intops-signature",
            intops_signature(&shape.secret, signed.as_bytes()),
        )
        .body(body.to_string())
        .send()
        .await
        .map_err(|e| format!("no answer: {e}"))?;
    let status = response.status().as_u16();
    let text = response
        .text()
        .await
        .map_err(|e| format!("{status}, body cut: {e}"))?;
    if status == 202 {
        let answer: serde_json::Value =
            serde_json::from_str(&text).map_err(|e| format!("202 with a bad body: {e}"))?;
        return Ok(answer["event_ids"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect());
    }
    assert!(
        !(400..500).contains(&status) || status == 429,
        "ingest refused a valid signed request with {status}: {text}"
    );
    Err(format!("{status}: {text}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn poison_and_unrouted_records_are_interleaved() {
        let expects: Vec<Expect> = (0..200).map(|i| record(i, 0).1).collect();
        let count = |e: Expect| expects.iter().filter(|x| **x == e).count();
        assert_eq!(count(Expect::DeadLetter), 200 / POISON_EVERY);
        assert_eq!(count(Expect::Unrouted), 3);
        assert_eq!(expects[POISON_EVERY - 1], Expect::DeadLetter);
    }

    #[test]
    fn a_retry_changes_the_body_but_not_the_id() {
        let (a, _) = record(5, 0);
        let (b, _) = record(5, 1);
        assert_ne!(a, b);
        assert_eq!(a["id"], b["id"]);
    }
}
