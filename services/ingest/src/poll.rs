//! Polled sources: GET the source's URL with its cursor on an interval,
//! follow the pages, capture each record like a webhook record, and save
//! the position after each page's events are acknowledged. A failing
//! source backs off on its own; it never stops the others.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use intops_events::{RecordKind, now_micros};
use intops_flows::{Flows, Poll, Source, parse_json, percent_encode};
use intops_kafka::ServiceContext;
use intops_kafka::backoff::{RetryDelays, retry_delays};
use intops_runtime::metrics as m;
use intops_runtime::{CancellationToken, Secret};

use crate::cursors::{self, Position};
use crate::poll_origin::{self, Refused};
use crate::records::Record;
use crate::{event, record_size};

/// A polled source's id and its request headers (secrets read).
#[derive(Debug)]
pub(crate) struct Polled {
    pub source_id: String,
    pub headers: Vec<(String, Secret)>,
}

/// Pages may nest this many levels deeper than a record may (envelopes).
const PAGE_DEPTH_MARGIN: usize = 16;

/// One polled source's poller.
pub(crate) struct Task {
    pub flows: Arc<Flows>,
    pub ctx: ServiceContext,
    pub http: reqwest::Client,
    pub polled: Polled,
    pub max_json_depth: usize,
    pub shutdown: CancellationToken,
}

impl Task {
    /// Polls until `shutdown`, from `saved` (or the initial cursor).
    pub(crate) async fn run(self, saved: Option<Position>) {
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
                    let result = if e.downcast_ref::<Refused>().is_some() {
                        "refused"
                    } else {
                        "error"
                    };
                    metrics::counter!(m::INGEST_POLL_RUNS, "source" => source.id.clone(), "result" => result).increment(1);
                    let delay = backoff.next().unwrap_or(poll.interval);
                    tracing::warn!(source = %source.id, result, error = %e, delay_ms = delay.as_millis() as u64, "poll run failed");
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
        let configured = url.clone();
        let mut captured = 0;
        loop {
            poll_origin::check_next(&configured, &url)?;
            let mut request = self.http.get(url.clone());
            for (name, value) in &self.polled.headers {
                request = request.header(name, value.expose());
            }
            let response = request.send().await?;
            let status = response.status();
            if status.is_redirection() {
                let location = response
                    .headers()
                    .get(reqwest::header::LOCATION)
                    .and_then(|v| v.to_str().ok());
                return Err(poll_origin::redirect(status, location, &url).into());
            }
            anyhow::ensure!(status.is_success(), "source answered {status}");
            let bytes = response.bytes().await?;
            let page_limit = self.max_json_depth.saturating_add(PAGE_DEPTH_MARGIN);
            if intops_events::exceeds_depth(&bytes, page_limit) {
                return Err(Refused(format!(
                    "the page from {} nests deeper than the limit of {page_limit} levels",
                    poll_origin::describe(&url)
                ))
                .into());
            }
            let page = parse_json(&bytes)?;
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
            let record = Record::from_value(record);
            if intops_events::exceeds_depth(record.text.as_bytes(), self.max_json_depth) {
                return Err(Refused(format!(
                    "record {i} nests deeper than the limit of {} levels",
                    self.max_json_depth
                ))
                .into());
            }
            let event = event::build(source, i, record, ingested_at, None)?;
            if !position.covers(&cursor, &event.event_id) {
                fresh.push((cursor, event));
            }
        }
        let topic = self.ctx.topics.events();
        // Encoded and size-checked before anything is produced.
        let mut encoded = Vec::with_capacity(fresh.len());
        for (i, (_, e)) in fresh.iter().enumerate() {
            let key = e.kafka_key();
            let value = self
                .ctx
                .codec
                .encode(&topic, RecordKind::IntegrationEvent, e)
                .await?;
            record_size::check(i, key.as_bytes(), &value).map_err(|e| Refused(e.to_string()))?;
            encoded.push((key, value));
        }
        futures::future::try_join_all(encoded.iter().map(|(key, value)| {
            self.ctx.producer.send(intops_kafka::Record {
                topic: &topic,
                key: key.as_bytes(),
                value,
                headers: &[],
            })
        }))
        .await?;
        let before = position.clone();
        for (cursor, event) in &fresh {
            position.advance(cursor, &event.event_id);
        }
        if *position != before {
            cursors::save(&self.ctx, &source.id, position).await?;
        }
        metrics::counter!(m::INGEST_EVENTS, "source" => source.id.clone(), "tenant" => source.tenant.clone().unwrap_or_default())
            .increment(fresh.len() as u64);
        Ok(fresh.len())
    }
}

fn new_backoff(interval: Duration) -> RetryDelays {
    retry_delays(
        Duration::from_secs(1).min(interval),
        interval.max(Duration::from_secs(300)),
    )
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
