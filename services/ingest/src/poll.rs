//! Polled sources: GET the source's URL with its cursor on an interval,
//! follow the pages, capture each record like a webhook record, and save
//! the position after each page's events are acknowledged. A failing
//! source backs off on its own; it never stops the others.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use backon::{BackoffBuilder, ExponentialBuilder};
use intops_events::{RecordKind, now_micros};
use intops_flows::{Flows, Poll, Secret, Source, parse_json, percent_encode};
use intops_kafka::ServiceContext;
use intops_runtime::metrics as m;
use intops_runtime::{CancellationToken, ConfigError};

use crate::cursors::{self, Position};
use crate::event;
use crate::records::Record;

/// A polled source with its request headers resolved.
#[derive(Debug)]
struct Polled {
    source_id: String,
    headers: Vec<(String, Secret)>,
}

/// Starts one task per polled source; they end with `shutdown`.
pub(crate) async fn start(
    flows: Arc<Flows>,
    ctx: ServiceContext,
    shutdown: CancellationToken,
) -> anyhow::Result<Vec<tokio::task::JoinHandle<()>>> {
    let mut polled = Vec::new();
    let mut problems = Vec::new();
    for source in flows.sources.values() {
        let Some(poll) = &source.poll else { continue };
        let mut headers = Vec::new();
        for (name, secret) in &poll.headers {
            match secret.resolve() {
                Ok(s) => headers.push((name.clone(), s)),
                Err(e) => problems.push(format!("sources[{}].poll.headers.{name}: {e}", source.id)),
            }
        }
        polled.push(Polled {
            source_id: source.id.clone(),
            headers,
        });
    }
    if !problems.is_empty() {
        return Err(ConfigError(problems).into());
    }
    if polled.is_empty() {
        return Ok(Vec::new());
    }
    ctx.ensure_topics(&[ctx.topics.ingest_cursors()]).await?;
    let mut positions = cursors::load(&ctx).await?;
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()?;
    Ok(polled
        .into_iter()
        .map(|p| {
            let position = positions.remove(&p.source_id);
            let task = Task {
                flows: flows.clone(),
                ctx: ctx.clone(),
                http: http.clone(),
                polled: p,
                shutdown: shutdown.clone(),
            };
            tokio::spawn(task.run(position))
        })
        .collect())
}

struct Task {
    flows: Arc<Flows>,
    ctx: ServiceContext,
    http: reqwest::Client,
    polled: Polled,
    shutdown: CancellationToken,
}

impl Task {
    async fn run(self, saved: Option<Position>) {
        let Some((source, poll)) = self.source() else {
            return;
        };
        let mut position = saved.unwrap_or_else(|| Position::new(poll.initial_cursor.clone()));
        tracing::info!(source = %source.id, cursor = %position.cursor, "polling");
        let mut backoff = new_backoff(poll.interval);
        loop {
            // Cancelling mid-run is safe: the position is saved only after
            // a page's events were acknowledged.
            let run = tokio::select! {
                () = self.shutdown.cancelled() => return,
                r = self.run_once(source, poll, &mut position) => r,
            };
            let wait = match run {
                Ok(events) => {
                    metrics::counter!(m::INGEST_POLL_RUNS, "source" => source.id.clone(), "result" => "ok").increment(1);
                    let now = SystemTime::now()
                        .duration_since(UNIX_EPOCH)
                        .unwrap_or_default();
                    metrics::gauge!(m::INGEST_POLL_LAST_SUCCESS, "source" => source.id.clone())
                        .set(now.as_secs_f64());
                    tracing::debug!(source = %source.id, events, cursor = %position.cursor, "poll run done");
                    backoff = new_backoff(poll.interval);
                    poll.interval
                }
                Err(e) => {
                    metrics::counter!(m::INGEST_POLL_RUNS, "source" => source.id.clone(), "result" => "error").increment(1);
                    let delay = backoff.next().unwrap_or(poll.interval);
                    tracing::warn!(source = %source.id, error = %e, delay_ms = delay.as_millis() as u64, "poll run failed");
                    delay
                }
            };
            tokio::select! {
                () = self.shutdown.cancelled() => return,
                () = tokio::time::sleep(wait) => {}
            }
        }
    }

    fn source(&self) -> Option<(&Source, &Poll)> {
        let source = self.flows.sources.get(&self.polled.source_id)?;
        Some((source, source.poll.as_ref()?))
    }

    /// One run: every page from the current cursor. Returns events captured.
    async fn run_once(
        &self,
        source: &Source,
        poll: &Poll,
        position: &mut Position,
    ) -> anyhow::Result<usize> {
        let with_cursor = poll
            .url
            .replace("{{cursor}}", &percent_encode(&position.cursor));
        let mut url = reqwest::Url::parse(&with_cursor.replace("{{next}}", ""))?;
        let mut captured = 0;
        loop {
            let mut request = self.http.get(url.clone());
            for (name, value) in &self.polled.headers {
                request = request.header(name, value.expose());
            }
            let response = request.send().await?;
            let status = response.status();
            anyhow::ensure!(status.is_success(), "source answered {status}");
            let page = parse_json(&response.bytes().await?)?;
            captured += self.capture_page(source, poll, &page, position).await?;
            let next = match &poll.next {
                Some(p) => p
                    .first(&page)?
                    .and_then(|v| serde_json::from_str::<String>(&v.to_string()).ok()),
                None => None,
            };
            match next.filter(|n| !n.is_empty()) {
                _ if self.shutdown.is_cancelled() => return Ok(captured),
                // A `{{next}}` in the URL takes a next-page cursor; without
                // it, `next` gives a link (absolute or relative).
                Some(n) if with_cursor.contains("{{next}}") => {
                    url =
                        reqwest::Url::parse(&with_cursor.replace("{{next}}", &percent_encode(&n)))?;
                }
                Some(n) => url = url.join(&n)?,
                _ => return Ok(captured),
            }
        }
    }

    /// Produces the page's new records, then saves the position.
    async fn capture_page(
        &self,
        source: &Source,
        poll: &Poll,
        page: &intops_flows::JqValue,
        position: &mut Position,
    ) -> anyhow::Result<usize> {
        let ingested_at = now_micros();
        let mut fresh = Vec::new();
        for (i, record) in poll.records.all(page)?.into_iter().enumerate() {
            let cursor = poll
                .cursor
                .first_text(&record)
                .map_err(|e| anyhow::anyhow!("record {i}: cursor: {e}"))?;
            let event = event::build(source, i, Record::from_value(record), ingested_at, None)?;
            if !position.covers(&cursor, &event.event_id) {
                fresh.push((cursor, event));
            }
        }
        let topic = self.ctx.topics.events();
        let keys: Vec<String> = fresh.iter().map(|(_, e)| e.kafka_key()).collect();
        futures::future::try_join_all(fresh.iter().zip(&keys).map(|((_, e), key)| {
            self.ctx
                .publish(&topic, RecordKind::IntegrationEvent, key.as_bytes(), e)
        }))
        .await?;
        let before = position.clone();
        for (cursor, event) in &fresh {
            position.advance(cursor, &event.event_id);
        }
        if *position != before {
            cursors::save(&self.ctx, &source.id, position).await?;
        }
        metrics::counter!(m::INGEST_EVENTS, "source" => source.id.clone())
            .increment(fresh.len() as u64);
        Ok(fresh.len())
    }
}

fn new_backoff(interval: Duration) -> backon::ExponentialBackoff {
    ExponentialBuilder::default()
        .with_min_delay(Duration::from_secs(1).min(interval))
        .with_max_delay(interval.max(Duration::from_secs(300)))
        .with_jitter()
        .without_max_times()
        .build()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_are_url_encoded() {
        assert_eq!(
            percent_encode("2026-11-28 08:00:00+02:00"),
            "2026-11-28%2008%3A00%3A00%2B02%3A00"
        );
    }
}
