//! The webhooks a mock system sends for every write it receives: signed
//! like intops ingest expects, sent in order by one task, retried while
//! ingest cannot be reached (it may be starting).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, watch};

use crate::sign::intops_signature;

/// Where a mock sends its webhooks and how it signs them.
#[derive(Debug, Clone)]
pub struct WebhookTarget {
    /// The full URL (`http://127.0.0.1:8080/v1/sources/jira/events`).
    pub url: String,
    /// The HMAC-SHA256 secret.
    pub secret: String,
    /// The header carrying `sha256=<hex>`.
    pub header: String,
}

/// One webhook the mock sent (or gave up on).
#[derive(Debug, Clone)]
pub struct SentWebhook {
    /// The event (`jira:issue_created`, `comment_created`, `updated`).
    pub event: String,
    /// The record it is about (issue key, incident sys_id).
    pub record: String,
    /// The body sent.
    pub body: serde_json::Value,
    /// The receiver's status; `None` when it could not be reached before
    /// the mock gave up.
    pub status: Option<u16>,
    /// The receiver's answer (JSON, or a string when not JSON).
    pub answer: serde_json::Value,
    /// Attempts made.
    pub attempts: u32,
}

impl SentWebhook {
    /// The event ids ingest answered with (`event_ids` of a 202).
    pub fn event_ids(&self) -> Vec<String> {
        self.answer["event_ids"]
            .as_array()
            .map(|ids| {
                ids.iter()
                    .filter_map(|v| v.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default()
    }
}

#[derive(Debug)]
struct Queued {
    target: WebhookTarget,
    event: String,
    record: String,
    body: serde_json::Value,
}

/// The emitter of one mock: queue, sender task, what was sent.
#[derive(Debug)]
pub(crate) struct Webhooks {
    system: &'static str,
    log: bool,
    target: Mutex<Option<WebhookTarget>>,
    queue: mpsc::UnboundedSender<Queued>,
    pending: watch::Sender<usize>,
    sent: Arc<Mutex<Vec<SentWebhook>>>,
}

/// How long one webhook is retried while the receiver cannot be reached
/// or answers 429/5xx.
const GIVE_UP_AFTER: Duration = Duration::from_secs(120);

impl Webhooks {
    /// A new emitter; spawns its sender task (needs a tokio runtime). The
    /// task ends when the emitter is dropped and the queue is empty.
    pub(crate) fn new(system: &'static str, log: bool) -> Self {
        let (queue, rx) = mpsc::unbounded_channel();
        let (pending, _) = watch::channel(0usize);
        let sent = Arc::new(Mutex::new(Vec::new()));
        tokio::spawn(send_all(rx, pending.clone(), sent.clone(), system, log));
        Self {
            system,
            log,
            target: Mutex::new(None),
            queue,
            pending,
            sent,
        }
    }

    /// Sends later webhooks to `target` (`None`: none are sent).
    pub(crate) fn point_at(&self, target: Option<WebhookTarget>) {
        if let Ok(mut t) = self.target.lock() {
            *t = target;
        }
    }

    /// Queues one webhook, if a target is set.
    pub(crate) fn emit(&self, event: &str, record: &str, body: serde_json::Value) {
        let Some(target) = self.target.lock().ok().and_then(|t| t.clone()) else {
            return;
        };
        self.pending.send_modify(|n| *n += 1);
        let queued = Queued {
            target,
            event: event.to_string(),
            record: record.to_string(),
            body,
        };
        if self.queue.send(queued).is_err() {
            self.pending.send_modify(|n| *n = n.saturating_sub(1));
            if self.log {
                println!(
                    "{:<10} webhook {event} {record} dropped: sender stopped",
                    self.system
                );
            }
        }
    }

    /// Every webhook sent or given up so far, in order.
    pub(crate) fn sent(&self) -> Vec<SentWebhook> {
        self.sent.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// Waits until every queued webhook was sent (or given up); false
    /// when `within` passed first.
    pub(crate) async fn idle(&self, within: Duration) -> bool {
        let mut rx = self.pending.subscribe();
        tokio::time::timeout(within, rx.wait_for(|n| *n == 0))
            .await
            .is_ok_and(|r| r.is_ok())
    }
}

async fn send_all(
    mut rx: mpsc::UnboundedReceiver<Queued>,
    pending: watch::Sender<usize>,
    sent: Arc<Mutex<Vec<SentWebhook>>>,
    system: &'static str,
    log: bool,
) {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap_or_default();
    while let Some(q) = rx.recv().await {
        let record = send_one(&http, q).await;
        if log {
            let status = record
                .status
                .map_or_else(|| "unreachable".to_string(), |s| s.to_string());
            println!(
                "{system:<10} webhook {} {} -> {status} {}",
                record.event, record.record, record.answer
            );
        }
        if let Ok(mut s) = sent.lock() {
            s.push(record);
        }
        pending.send_modify(|n| *n = n.saturating_sub(1));
    }
}

async fn send_one(http: &reqwest::Client, q: Queued) -> SentWebhook {
    let body = serde_json::to_vec(&q.body).unwrap_or_default();
    let signature = intops_signature(&q.target.secret, &body);
    let started = Instant::now();
    let mut backoff = Duration::from_millis(50);
    let mut attempts = 0;
    loop {
        attempts += 1;
        let result = http
            .post(&q.target.url)
            .header("content-type", "application/json")
            .header(q.target.header.as_str(), signature.as_str())
            .body(body.clone())
            .send()
            .await;
        let (status, answer) = match result {
            Ok(r) => {
                let status = r.status().as_u16();
                let text = r.text().await.unwrap_or_default();
                let answer = serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text));
                (Some(status), answer)
            }
            Err(e) => (None, serde_json::Value::String(e.to_string())),
        };
        let retry = status.is_none_or(|s| s == 429 || s >= 500);
        if !retry || started.elapsed() >= GIVE_UP_AFTER {
            return SentWebhook {
                event: q.event,
                record: q.record,
                body: q.body,
                status,
                answer,
                attempts,
            };
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(2));
    }
}
