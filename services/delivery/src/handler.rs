//! One delivery request: attempts with backoff until delivered, permanent
//! failure, or attempts exhausted; then the outcome (and dead letter).

use std::sync::Arc;
use std::time::{Duration, Instant};

use backon::{BackoffBuilder, ExponentialBuilder};
use intops_events::{
    CodecError, DeliveryRequest, Outcome, OutcomeStatus, RecordKind, Stage, now_micros,
};
use intops_flows::{Flows, Retry, StatusSet};
use intops_kafka::{
    DeadLetterCap, Failure, Handled, Message, OwnedMessage, ProcessError, ServiceContext,
};
use intops_runtime::metrics as m;
use intops_runtime::{CancellationToken, ConfigError, Readiness};

use crate::breaker::{Breaker, Verdict};
use crate::client::{Attempt, attempt, http_client};
use crate::credential::Credential;
use crate::gate::{Gate, State};

/// A target's resolved settings and HTTP client.
#[derive(Debug)]
pub(crate) struct TargetRuntime {
    id: String,
    base_url: url::Url,
    credential: Credential,
    retryable: StatusSet,
    pause_statuses: StatusSet,
    probe_interval: Duration,
    /// Longest time one record may keep the target paused.
    max_pause: Duration,
    /// Open, or paused by a pause status or an operator.
    pub(crate) gate: Gate,
    breaker: Breaker,
    retry: Retry,
    http: reqwest::Client,
    /// The target's `rate_limit`, shared by all its lanes.
    limiter: Option<governor::DefaultDirectRateLimiter>,
    /// The target's dead-letter cap (per source); `intops target resume`
    /// resets it, as a restart does.
    pub(crate) cap: Arc<DeadLetterCap>,
}

impl TargetRuntime {
    pub(crate) fn new(
        flows: &Flows,
        id: &str,
        readiness: &Readiness,
        cap: Arc<DeadLetterCap>,
    ) -> anyhow::Result<Self> {
        let target = flows
            .targets
            .get(id)
            .ok_or_else(|| ConfigError(vec![format!("unknown target {id:?}")]))?;
        let credential = Credential::resolve(target).map_err(|e| ConfigError(vec![e]))?;
        let base_url = intops_flows::target_url::parse_base_url(&target.base_url)
            .map_err(|e| ConfigError(vec![format!("targets[{id}].base_url: {e}")]))?;
        let http = http_client(target.timeout, target.concurrency)?;
        let limiter = target.rate_limit.and_then(|rate| {
            let burst = std::num::NonZeroU32::new(rate.count)?;
            let quota = governor::Quota::with_period(rate.per / rate.count)?.allow_burst(burst);
            Some(governor::RateLimiter::direct(quota))
        });
        Ok(Self {
            id: target.id.clone(),
            base_url,
            credential,
            retryable: target.retryable_statuses.clone(),
            pause_statuses: target.pause_statuses.clone(),
            probe_interval: target.probe_interval,
            max_pause: target.max_pause,
            gate: Gate::new(id, readiness.clone()),
            breaker: Breaker::new(id, target.circuit_breaker),
            retry: target.retry,
            http,
            limiter,
            cap,
        })
    }
}

/// Handles records of one target's deliveries topic.
#[derive(Debug, Clone)]
pub(crate) struct Handler {
    target: Arc<TargetRuntime>,
    ctx: ServiceContext,
    shutdown: CancellationToken,
}

impl Handler {
    pub(crate) fn new(
        target: Arc<TargetRuntime>,
        ctx: ServiceContext,
        shutdown: CancellationToken,
    ) -> Self {
        Self {
            target,
            ctx,
            shutdown,
        }
    }

    /// Delivers the record's request; the outcome's acknowledgement is
    /// awaited in the background so the lane can send the next request.
    pub(crate) async fn handle(&self, message: OwnedMessage) -> Result<Handled, ProcessError> {
        let Some(bytes) = message.payload() else {
            return Err(ProcessError::Poison(Failure::new(
                "decode",
                "record has no value",
            )));
        };
        let request: DeliveryRequest = match self.ctx.codec.decode(bytes).await {
            Ok(r) => r,
            Err(e @ CodecError::Registry(_)) => return Err(ProcessError::Retryable(e.to_string())),
            Err(e) => return Err(ProcessError::Poison(Failure::new("decode", e.to_string()))),
        };
        let Final {
            last,
            attempts,
            paused_for,
        } = self.attempt_until_final(&request).await?;
        let latency_ms = latency_ms(&request);
        let mut outcome = Outcome {
            event_id: request.event_id.clone(),
            stage: Stage::Delivery,
            status: OutcomeStatus::Delivered,
            flow_id: Some(request.flow_id.clone()),
            target_id: Some(request.target_id.clone()),
            attempts: i32::try_from(attempts).unwrap_or(i32::MAX),
            http_status: None,
            latency_ms,
            error: None,
            at: now_micros(),
        };
        let target = self.target.id.clone();
        let failure = match last {
            // Kept its target paused too long: dead-lettered with the last
            // answer, so the target resumes with the next record.
            Attempt::Retryable {
                status,
                reason,
                excerpt,
                ..
            }
            | Attempt::Permanent {
                status,
                reason,
                excerpt,
            } if paused_for.is_some() => {
                let held = humantime::format_duration(Duration::from_secs(
                    paused_for.map_or(0, |d| d.as_secs()),
                ));
                let reason = format!(
                    "{reason}; the record kept the target paused for {held} (max_pause); dead-lettered so the target resumes"
                );
                Some(("paused".to_string(), status, reason, excerpt, false))
            }
            Attempt::Delivered { status } => {
                outcome.http_status = Some(i32::from(status));
                if let Some(ms) = latency_ms {
                    metrics::histogram!(m::END_TO_END_SECONDS, "target" => target.clone())
                        .record(ms as f64 / 1000.0);
                }
                tracing::debug!(target = %target, event_id = %request.event_id, status, attempts, "delivered");
                None
            }
            Attempt::Retryable {
                status,
                reason,
                excerpt,
                ..
            } => Some(("exhausted".to_string(), status, reason, excerpt, true)),
            Attempt::Permanent {
                status,
                reason,
                excerpt,
            } => {
                let class = match status {
                    Some(s) => format!("http_{}xx", s / 100),
                    None => "request".to_string(),
                };
                Some((class, status, reason, excerpt, false))
            }
        };
        // The consumer loop writes the dead letter (or holds the record when
        // this source's dead-letter cap is tripped), then the outcome.
        let mut failures = Vec::new();
        if let Some((class, status, reason, excerpt, retryable)) = failure {
            let failure = Failure {
                retryable,
                attempts: outcome.attempts,
                event_id: Some(request.event_id.clone()),
                flow_id: Some(request.flow_id.clone()),
                flow_version: Some(request.flow_version.clone()),
                target_id: Some(request.target_id.clone()),
                http_status: status.map(i32::from),
                response_excerpt: excerpt,
                ..Failure::new(&class, reason.clone())
            };
            outcome.status = OutcomeStatus::DeadLettered;
            outcome.http_status = failure.http_status;
            outcome.error = Some(intops_kafka::truncate_text(
                &reason,
                intops_kafka::MAX_ERROR_TEXT_BYTES,
            ));
            failures.push(failure);
        }
        metrics::counter!(m::DELIVERY_RESULTS, "target" => target, "flow" => request.flow_id.clone(), "status" => outcome.status.as_str()).increment(1);
        let then = self.write_outcome(&message, outcome);
        Ok(if failures.is_empty() {
            Handled::Acknowledging(then)
        } else {
            Handled::DeadLetters {
                failures,
                then: Some(then),
            }
        })
    }

    /// Attempts until a final answer; an `Err` only when shutdown interrupts
    /// a backoff (the record is then redelivered after restart).
    async fn attempt_until_final(&self, request: &DeliveryRequest) -> Result<Final, ProcessError> {
        let retry = self.target.retry;
        let mut backoff = ExponentialBuilder::default()
            .with_min_delay(retry.initial_backoff)
            .with_max_delay(retry.max_backoff)
            .with_jitter()
            .without_max_times()
            .build();
        let mut attempts = 0;
        let first = Instant::now();
        // Whether this lane got a pause status and now probes the target.
        let mut probing = false;
        // When this record first got a pause status.
        let mut paused_since: Option<Instant> = None;
        loop {
            if !probing && !self.target.gate.wait_open(&self.shutdown).await {
                return Err(ProcessError::Retryable(
                    "shutting down while the target is paused".into(),
                ));
            }
            let Some(permit) = self.target.breaker.admit(&self.shutdown).await else {
                return Err(ProcessError::Retryable(
                    "shutting down while the circuit is open".into(),
                ));
            };
            attempts += 1;
            if let Some(limiter) = &self.target.limiter
                && limiter.check().is_err()
            {
                metrics::counter!(m::DELIVERY_RATE_LIMITED, "target" => self.target.id.clone())
                    .increment(1);
                tokio::select! {
                    () = self.shutdown.cancelled() => return Err(ProcessError::Retryable("shutting down while rate limited".into())),
                    () = limiter.until_ready() => {}
                }
            }
            let started = Instant::now();
            let in_flight =
                metrics::gauge!(m::DELIVERY_IN_FLIGHT, "target" => self.target.id.clone());
            in_flight.increment(1.0);
            let result = attempt(
                &self.target.http,
                &self.target.base_url,
                &self.target.credential,
                &self.target.retryable,
                request,
            )
            .await;
            in_flight.decrement(1.0);
            let class = match &result {
                Attempt::Delivered { .. } => "2xx".to_string(),
                Attempt::Retryable {
                    status: Some(s), ..
                }
                | Attempt::Permanent {
                    status: Some(s), ..
                } => format!("{}xx", s / 100),
                _ => "error".to_string(),
            };
            metrics::counter!(m::DELIVERY_ATTEMPTS, "target" => self.target.id.clone(), "status" => class).increment(1);
            metrics::histogram!(m::DELIVERY_REQUEST_SECONDS, "target" => self.target.id.clone())
                .record(started.elapsed().as_secs_f64());
            let verdict = match result {
                Attempt::Retryable { .. } => Verdict::Failed,
                Attempt::Delivered { .. } | Attempt::Permanent { .. } => Verdict::Answered,
            };
            self.target.breaker.record(permit, verdict);
            if let Some(status) = result.status()
                && self.target.pause_statuses.contains(status)
            {
                // Misconfiguration, not a bad record: pause the target, keep
                // the record, and probe with it until another answer; but
                // for max_pause at most, since one record's answer may be
                // about that record only.
                attempts -= 1;
                let held = paused_since.get_or_insert_with(Instant::now).elapsed();
                if held >= self.target.max_pause {
                    tracing::warn!(
                        target = %self.target.id,
                        event_id = %request.event_id,
                        status,
                        held_ms = held.as_millis() as u64,
                        "record kept its target paused past max_pause: dead-lettering it, resuming the target"
                    );
                    self.target.gate.resume(true);
                    return Ok(Final {
                        last: result,
                        attempts: attempts.max(1),
                        paused_for: Some(held),
                    });
                }
                self.target
                    .gate
                    .pause(State::Misconfigured(format!("target answered {status}")));
                let wait = self
                    .target
                    .probe_interval
                    .min(self.target.max_pause.saturating_sub(held));
                tokio::select! {
                    () = self.shutdown.cancelled() => return Err(ProcessError::Retryable("shutting down while the target is paused".into())),
                    () = self.target.gate.changed_within(wait) => {}
                }
                // An operator's resume or pause ends this lane's probing.
                probing = matches!(self.target.gate.state(), State::Misconfigured(_));
                continue;
            }
            if probing {
                probing = false;
                self.target.gate.resume(true);
            }
            let done = |last| Final {
                last,
                attempts,
                paused_for: None,
            };
            let Attempt::Retryable {
                retry_after,
                reason,
                ..
            } = &result
            else {
                return Ok(done(result));
            };
            if attempts >= retry.max_attempts {
                return Ok(done(result));
            }
            // backon's jitter adds up to the delay again: keep it within
            // max_backoff, as documented.
            let delay = retry_after
                .or_else(|| backoff.next())
                .map_or(retry.max_backoff, |d| d.min(retry.max_backoff));
            if retry
                .max_elapsed
                .is_some_and(|max| first.elapsed() + delay > max)
            {
                return Ok(done(result));
            }
            tracing::info!(
                target = %self.target.id,
                event_id = %request.event_id,
                attempt = attempts,
                delay_ms = delay.as_millis() as u64,
                reason = %reason,
                "delivery failed, retrying"
            );
            tokio::select! {
                () = self.shutdown.cancelled() => return Err(ProcessError::Retryable("shutting down during backoff".into())),
                () = tokio::time::sleep(delay) => {}
            }
        }
    }

    /// Writes the outcome, retrying while the broker is away; resolves
    /// to `Ok(false)` if shutdown comes first (the record is then
    /// redelivered after restart, and delivered again with the same
    /// Idempotency-Key).
    fn write_outcome(&self, message: &OwnedMessage, outcome: Outcome) -> intops_kafka::Ack {
        // Same key as the event, so one entity's records share a partition.
        let key = message.key().unwrap_or_default().to_vec();
        let ctx = self.ctx.clone();
        let shutdown = self.shutdown.clone();
        let retry = self.target.retry;
        Box::pin(async move {
            let topic = ctx.topics.outcomes();
            let mut delays = ExponentialBuilder::default()
                .with_min_delay(retry.initial_backoff)
                .with_max_delay(retry.max_backoff)
                .with_jitter()
                .without_max_times()
                .build();
            loop {
                match ctx
                    .publish(&topic, RecordKind::Outcome, &key, &outcome)
                    .await
                {
                    Ok(_) => return Ok(true),
                    Err(e) if e.is_retryable() => {
                        tracing::warn!(event_id = %outcome.event_id, error = %e, "cannot write outcome, retrying");
                        let delay = delays.next().unwrap_or(retry.max_backoff);
                        tokio::select! {
                            () = shutdown.cancelled() => return Ok(false),
                            () = tokio::time::sleep(delay) => {}
                        }
                    }
                    Err(e) => return Err(e),
                }
            }
        })
    }
}

/// A request's final answer.
struct Final {
    /// The last attempt's result.
    last: Attempt,
    /// Attempts counted (probes of a paused target are not).
    attempts: u32,
    /// Set when the record kept its target paused past `max_pause`: how
    /// long it did.
    paused_for: Option<Duration>,
}

fn latency_ms(request: &DeliveryRequest) -> Option<i64> {
    (request.ingested_at > 0).then(|| (now_micros() - request.ingested_at) / 1000)
}
