//! One delivery request: attempts until delivered or given up, as the
//! policy ([`policy`]) decides after each, then the outcome (and dead
//! letter).
//!
//! [`Handler::handle`] decodes ([`intops_kafka::decode`]) and hands the
//! request to [`Handler::process`], which publishes its outcome through
//! any [`Publish`]: the service's [`ServiceContext`], or an in-memory one
//! in the tests (`handler/tests.rs`). A request of a flow with links is
//! decided first (`handler/links.rs`): create, update, write-back, or not
//! sent at all (an echo, a write-back without a link).

use std::sync::Arc;
use std::time::{Duration, Instant};

use intops_events::{
    Codec, DeliveryRequest, LinkAction, Outcome, OutcomeStatus, RecordKind, Stage, now_micros,
};
use intops_flows::{Flows, Retry, StatusSet};
use intops_kafka::{
    DeadLetterCap, Failure, Handled, Message, OwnedMessage, ProcessError, Publish, ServiceContext,
};
use intops_runtime::metrics as m;
use intops_runtime::{CancellationToken, ConfigError, Readiness};

use crate::breaker::Breaker;
use crate::client::{Attempt, attempt, http_client};
use crate::credential::Credential;
use crate::gate::{Gate, State};
use crate::links::{Links, Owned};

mod links;
mod policy;
#[cfg(test)]
mod tests;

use links::{Decision, Step};

use policy::{FailureClass, Next, Policy, Progress, StatusRange};

/// A target's resolved settings and HTTP client.
#[derive(Debug)]
pub(crate) struct TargetRuntime {
    id: String,
    base_url: url::Url,
    credential: Credential,
    retryable: StatusSet,
    /// Retry, pause and probe settings: what next after an attempt.
    policy: Policy,
    /// Open, or paused by a pause status or an operator.
    pub(crate) gate: Gate,
    breaker: Breaker,
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
        board: Option<&crate::states::Board>,
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
            policy: Policy {
                retry: target.retry,
                pause_statuses: target.pause_statuses.clone(),
                probe_interval: target.probe_interval,
                max_pause: target.max_pause,
            },
            gate: Gate::reporting(id, readiness.clone(), board.cloned()),
            breaker: Breaker::reporting(id, target.circuit_breaker, board.cloned()),
            http,
            limiter,
            cap,
        })
    }
}

/// Handles records of one target's deliveries topic, publishing through
/// `P`.
#[derive(Debug, Clone)]
pub(crate) struct Handler<P = ServiceContext> {
    target: Arc<TargetRuntime>,
    publisher: P,
    codec: Arc<Codec>,
    /// The process's links (shared by its targets).
    links: Arc<Links>,
    /// Whether this consumer's misses still need a sync (`None`: always).
    owned: Option<Arc<Owned>>,
    shutdown: CancellationToken,
}

impl Handler {
    /// The service's handler: decodes with the context's codec and
    /// publishes through the context's producer.
    pub(crate) fn new(
        target: Arc<TargetRuntime>,
        ctx: ServiceContext,
        links: Arc<Links>,
        shutdown: CancellationToken,
    ) -> Self {
        let codec = ctx.codec.clone();
        Self::with_publisher(target, ctx, codec, links, shutdown)
    }
}

impl<P: Publish> Handler<P> {
    pub(crate) fn with_publisher(
        target: Arc<TargetRuntime>,
        publisher: P,
        codec: Arc<Codec>,
        links: Arc<Links>,
        shutdown: CancellationToken,
    ) -> Self {
        Self {
            target,
            publisher,
            codec,
            links,
            owned: None,
            shutdown,
        }
    }

    /// Syncs a miss only until the consumer with this assignment has
    /// synced since its latest rebalance ([`Owned`]).
    pub(crate) fn with_owned(mut self, owned: Owned) -> Self {
        self.owned = Some(Arc::new(owned));
        self
    }

    /// Decodes the record (see [`intops_kafka::decode`]) and delivers its
    /// request.
    pub(crate) async fn handle(&self, message: OwnedMessage) -> Result<Handled, ProcessError> {
        let request = intops_kafka::decode(&self.codec, message.payload()).await?;
        // Same key as the event, so one entity's records share a partition.
        let key = message.key().unwrap_or_default();
        self.process(request, key).await
    }

    /// Delivers `request`; the outcome (under `key`) is acknowledged in
    /// the background so the lane can send the next request.
    pub(crate) async fn process(
        &self,
        request: DeliveryRequest,
        key: &[u8],
    ) -> Result<Handled, ProcessError> {
        let step = match &request.link {
            None => None,
            Some(plan) => match self.decide(&request, plan).await? {
                Decision::Send(step) => Some(*step),
                Decision::Skip {
                    action,
                    record_id,
                    seen,
                } => {
                    let seen = seen.map(|link| self.seen_ack(*link));
                    return Ok(self.not_sent(&request, key, action, record_id, seen));
                }
                Decision::Refuse {
                    action,
                    record_id,
                    reason,
                } => {
                    let refused = Final::refused(reason);
                    return Ok(self.conclude(
                        &request,
                        key,
                        refused,
                        None,
                        Some((action, record_id)),
                    ));
                }
            },
        };
        let sent = step.as_ref().map_or(&request, |s| &s.request);
        let keep_answer = step.as_ref().is_some_and(Step::keep_answer);
        let last = self.attempt_until_final(sent, keep_answer).await?;
        Ok(self.conclude(&request, key, last, step, None))
    }

    /// The outcome (and dead letter) of `request` after its final answer;
    /// with a `step`, also its link. `refused` names the link action and
    /// record id of a request that could not be sent.
    fn conclude(
        &self,
        request: &DeliveryRequest,
        key: &[u8],
        last: Final,
        step: Option<Step>,
        refused: Option<(LinkAction, Option<String>)>,
    ) -> Handled {
        let Final {
            last,
            attempts,
            end,
            sent_at,
        } = last;
        let latency_ms = latency_ms(request);
        let (link_action, record_id) = match (&step, refused) {
            (Some(s), _) => (Some(s.action), s.record_id.clone()),
            (None, Some((action, record_id))) => (Some(action), record_id),
            (None, None) => (None, None),
        };
        let mut outcome = Outcome {
            tenant: request.tenant.clone(),
            link_action,
            record_id,
            event_id: request.event_id.clone(),
            stage: Stage::Delivery,
            status: OutcomeStatus::Delivered,
            flow_id: Some(request.flow_id.clone()),
            target_id: Some(request.target_id.clone()),
            attempts: i32::try_from(attempts).unwrap_or(i32::MAX),
            http_status: last.status().map(i32::from),
            latency_ms,
            error: None,
            at: now_micros(),
        };
        let target = self.target.id.clone();
        // The consumer loop writes the dead letter (or holds the record when
        // this source's dead-letter cap is tripped), then the outcome.
        let mut failures = Vec::new();
        let mut link_ack = None;
        match end {
            End::Delivered => {
                if let Some(step) = step {
                    let delivered = self.delivered(request, step, &last, sent_at);
                    link_ack = delivered.link;
                    outcome.record_id = delivered.record_id;
                    outcome.error = delivered.error.map(|e| {
                        intops_kafka::truncate_text(
                            &self.target.credential.redact(&e),
                            intops_kafka::MAX_ERROR_TEXT_BYTES,
                        )
                    });
                }
                if let Some(ms) = latency_ms {
                    metrics::histogram!(m::END_TO_END_SECONDS, "target" => target.clone(), "tenant" => request.tenant.clone().unwrap_or_default())
                        .record(ms as f64 / 1000.0);
                }
                tracing::debug!(target = %target, event_id = %request.event_id, status = outcome.http_status, attempts, "delivered");
            }
            End::GiveUp { class, reason } => {
                let failure = Failure {
                    retryable: class.retryable(),
                    attempts: outcome.attempts,
                    event_id: Some(request.event_id.clone()),
                    flow_id: Some(request.flow_id.clone()),
                    flow_version: Some(request.flow_version.clone()),
                    target_id: Some(request.target_id.clone()),
                    tenant: request.tenant.clone(),
                    http_status: outcome.http_status,
                    response_excerpt: last.excerpt().map(str::to_string),
                    ..Failure::new(class.as_str(), reason.clone())
                };
                outcome.status = OutcomeStatus::DeadLettered;
                outcome.error = Some(intops_kafka::truncate_text(
                    &reason,
                    intops_kafka::MAX_ERROR_TEXT_BYTES,
                ));
                failures.push(failure);
            }
        }
        metrics::counter!(m::DELIVERY_RESULTS, "target" => target, "flow" => request.flow_id.clone(), "status" => outcome.status.as_str(), "tenant" => request.tenant.clone().unwrap_or_default()).increment(1);
        count_link_action(request, outcome.link_action);
        let then = both(link_ack, self.write_outcome(key.to_vec(), outcome));
        if failures.is_empty() {
            Handled::Acknowledging(then)
        } else {
            Handled::DeadLetters {
                failures,
                then: Some(then),
            }
        }
    }

    /// The outcome of a request not sent: an echo (`echo`) or a write-back
    /// without a link (`unrouted`, "no link").
    fn not_sent(
        &self,
        request: &DeliveryRequest,
        key: &[u8],
        action: LinkAction,
        record_id: Option<String>,
        seen: Option<intops_kafka::Ack>,
    ) -> Handled {
        let (status, error) = match action {
            LinkAction::Conflict => (OutcomeStatus::Echo, Some(CONFLICT.to_string())),
            LinkAction::NoLink => (OutcomeStatus::Unrouted, Some("no link".to_string())),
            _ => (OutcomeStatus::Echo, None),
        };
        tracing::debug!(target = %self.target.id, event_id = %request.event_id, action = %action, "not sent");
        let outcome = Outcome {
            tenant: request.tenant.clone(),
            event_id: request.event_id.clone(),
            stage: Stage::Delivery,
            status,
            flow_id: Some(request.flow_id.clone()),
            target_id: Some(request.target_id.clone()),
            attempts: 0,
            http_status: None,
            latency_ms: latency_ms(request),
            error,
            at: now_micros(),
            link_action: Some(action),
            record_id,
        };
        metrics::counter!(m::DELIVERY_RESULTS, "target" => self.target.id.clone(), "flow" => request.flow_id.clone(), "status" => status.as_str(), "tenant" => request.tenant.clone().unwrap_or_default()).increment(1);
        count_link_action(request, Some(action));
        Handled::Acknowledging(both(seen, self.write_outcome(key.to_vec(), outcome)))
    }

    /// Attempts until the policy says done or give up; an `Err` only when
    /// shutdown interrupts a wait (the record is then redelivered after
    /// restart).
    async fn attempt_until_final(
        &self,
        request: &DeliveryRequest,
        keep_answer: bool,
    ) -> Result<Final, ProcessError> {
        let target = &self.target;
        let mut backoff = backoff(target.policy.retry);
        let mut progress = Progress::new(Instant::now());
        loop {
            let (last, sent_at) = self
                .attempt_once(request, progress.probing(), keep_answer)
                .await?;
            let decision = target
                .policy
                .decide(&mut progress, &last, Instant::now(), &mut backoff);
            if decision.resume_target {
                target.gate.resume(true);
            }
            let end = match decision.next {
                Next::Retry(delay) => {
                    let reason = last.reason().unwrap_or_default();
                    tracing::info!(target = %target.id, event_id = %request.event_id, attempt = progress.attempts(), delay_ms = delay.as_millis() as u64, reason = %reason, "delivery failed, retrying");
                    self.unless_shutdown(tokio::time::sleep(delay), "during backoff")
                        .await?;
                    continue;
                }
                Next::Pause {
                    status,
                    probe_within,
                } => {
                    self.pause(status, probe_within, &mut progress).await?;
                    continue;
                }
                Next::Done => End::Delivered,
                Next::GiveUp(class) => End::GiveUp {
                    class,
                    reason: self.give_up_reason(request, &last, class, &progress),
                },
            };
            let attempts = progress.attempts();
            return Ok(Final {
                last,
                attempts,
                end,
                sent_at,
            });
        }
    }

    /// Pauses the target for a pause status and waits until the gate
    /// changes or the next probe is due.
    async fn pause(
        &self,
        status: u16,
        probe_within: Duration,
        progress: &mut Progress,
    ) -> Result<(), ProcessError> {
        let gate = &self.target.gate;
        gate.pause(State::Misconfigured(format!("target answered {status}")));
        let changed = gate.changed_within(probe_within);
        self.unless_shutdown(changed, "while the target is paused")
            .await?;
        // An operator's resume or pause ends this lane's probing.
        progress.set_probing(matches!(gate.state(), State::Misconfigured(_)));
        Ok(())
    }

    /// The dead letter's reason: the last answer's, and for `paused` how
    /// long the record held its target.
    fn give_up_reason(
        &self,
        request: &DeliveryRequest,
        last: &Attempt,
        class: FailureClass,
        progress: &Progress,
    ) -> String {
        let reason = last.reason().unwrap_or_default();
        if class != FailureClass::Paused {
            return reason.to_string();
        }
        // Kept its target paused too long: dead-lettered with the last
        // answer, so the target resumes with the next record.
        let held = progress.paused_for(Instant::now()).unwrap_or_default();
        tracing::warn!(target = %self.target.id, event_id = %request.event_id, status = last.status(), held_ms = held.as_millis() as u64, "record kept its target paused past max_pause: dead-lettering it, resuming the target");
        let held = humantime::format_duration(Duration::from_secs(held.as_secs()));
        format!(
            "{reason}; the record kept the target paused for {held} (max_pause); dead-lettered so the target resumes"
        )
    }

    /// One attempt: waits for the gate (unless this lane probes it), the
    /// breaker and the rate limit, then calls the target (keeping a 2xx
    /// answer with `keep_answer`); with when the request went out
    /// (microseconds: a conversation's echo comes after it).
    async fn attempt_once(
        &self,
        request: &DeliveryRequest,
        probing: bool,
        keep_answer: bool,
    ) -> Result<(Attempt, i64), ProcessError> {
        let target = &self.target;
        if !probing && !target.gate.wait_open(&self.shutdown).await {
            return Err(shutting_down("while the target is paused"));
        }
        let Some(permit) = target.breaker.admit(&self.shutdown).await else {
            return Err(shutting_down("while the circuit is open"));
        };
        if let Some(limiter) = &target.limiter
            && limiter.check().is_err()
        {
            metrics::counter!(m::DELIVERY_RATE_LIMITED, "target" => target.id.clone()).increment(1);
            self.unless_shutdown(limiter.until_ready(), "while rate limited")
                .await?;
        }
        let started = Instant::now();
        let in_flight = metrics::gauge!(m::DELIVERY_IN_FLIGHT, "target" => target.id.clone());
        in_flight.increment(1.0);
        let sent_at = now_micros();
        let result = attempt(
            &target.http,
            &target.base_url,
            &target.credential,
            &target.retryable,
            request,
            keep_answer,
        )
        .await;
        in_flight.decrement(1.0);
        metrics::counter!(m::DELIVERY_ATTEMPTS, "target" => target.id.clone(), "status" => StatusRange::label(result.status())).increment(1);
        metrics::histogram!(m::DELIVERY_REQUEST_SECONDS, "target" => target.id.clone())
            .record(started.elapsed().as_secs_f64());
        target.breaker.record(permit, policy::verdict(&result));
        Ok((result, sent_at))
    }

    /// Awaits `wait`, or fails retryably when shutdown comes first.
    async fn unless_shutdown<T>(
        &self,
        wait: impl Future<Output = T>,
        during: &str,
    ) -> Result<T, ProcessError> {
        tokio::select! {
            () = self.shutdown.cancelled() => Err(shutting_down(during)),
            t = wait => Ok(t),
        }
    }

    /// Writes the outcome, retrying while the broker is away; resolves
    /// to `Ok(false)` if shutdown comes first (the record is then
    /// redelivered after restart, and delivered again with the same
    /// Idempotency-Key).
    fn write_outcome(&self, key: Vec<u8>, outcome: Outcome) -> intops_kafka::Ack {
        let topic = self.publisher.topics().outcomes();
        self.write_record(topic, RecordKind::Outcome, key, outcome)
    }

    /// Writes `record` (`kind`) to `topic` under `key`, retrying while the
    /// broker is away; resolves to `Ok(false)` if shutdown comes first.
    fn write_record<T>(
        &self,
        topic: String,
        kind: RecordKind,
        key: Vec<u8>,
        record: T,
    ) -> intops_kafka::Ack
    where
        T: serde::Serialize + Clone + Send + Sync + 'static,
    {
        let publisher = self.publisher.clone();
        let shutdown = self.shutdown.clone();
        let retry = self.target.policy.retry;
        Box::pin(async move {
            let mut delays = backoff(retry);
            loop {
                match publisher.publish(&topic, kind, &key, &record).await {
                    Ok(_) => return Ok(true),
                    Err(e) if e.is_retryable() => {
                        tracing::warn!(%topic, error = %e, "cannot write a record, retrying");
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
    /// Delivered or given up.
    end: End,
    /// When the last attempt went out (microseconds; 0: none did).
    sent_at: i64,
}

impl Final {
    /// A request that cannot be sent: no attempt, dead-lettered (class
    /// `request`) with `reason`.
    fn refused(reason: String) -> Self {
        Self {
            last: Attempt::Permanent {
                status: None,
                reason: reason.clone(),
                excerpt: None,
            },
            attempts: 0,
            end: End::GiveUp {
                class: FailureClass::Request,
                reason,
            },
            sent_at: 0,
        }
    }
}

/// How a request ended.
enum End {
    Delivered,
    /// Dead-lettered with this class and reason.
    GiveUp {
        class: FailureClass,
        reason: String,
    },
}

/// A jittered exponential backoff within the retry settings, never
/// longer than `max_backoff`.
fn backoff(retry: Retry) -> impl Iterator<Item = Duration> {
    intops_kafka::backoff::retry_delays(retry.initial_backoff, retry.max_backoff)
}

/// The outcome's `error` of a conflict's skipped echo.
const CONFLICT: &str =
    "conflict: the other side changed too, and its newer change wins (this echo would undo it)";

/// Both acknowledgements, at the same time: `Ok(true)` when both are.
fn both(first: Option<intops_kafka::Ack>, second: intops_kafka::Ack) -> intops_kafka::Ack {
    let Some(first) = first else {
        return second;
    };
    Box::pin(async move {
        let (a, b) = tokio::join!(first, second);
        Ok(a? && b?)
    })
}

/// Counts a link action of a request of a flow with links.
fn count_link_action(request: &DeliveryRequest, action: Option<LinkAction>) {
    if let Some(action) = action {
        metrics::counter!(m::LINK_REQUESTS, "flow" => request.flow_id.clone(), "action" => action.as_str()).increment(1);
    }
}

fn shutting_down(during: &str) -> ProcessError {
    ProcessError::Retryable(format!("shutting down {during}"))
}

fn latency_ms(request: &DeliveryRequest) -> Option<i64> {
    (request.ingested_at > 0).then(|| (now_micros() - request.ingested_at) / 1000)
}
