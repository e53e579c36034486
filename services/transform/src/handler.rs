//! One event through transform: decode, plan, produce every delivery
//! request, and report what failed for good. The consumer loop writes the
//! dead letters (or holds the record, when the source's dead-letter cap is
//! tripped), then the outcomes saying so, and only then stores the offset.
//!
//! [`Handler::handle`] decodes ([`intops_kafka::decode`]) and hands the
//! event to [`Handler::process`], which publishes through any
//! [`Publish`]: the service's [`ServiceContext`], or an in-memory one in
//! the tests (`handler/tests.rs`).

use std::sync::Arc;
use std::time::Duration;

use futures::future::join_all;
use intops_events::{
    Codec, DeliveryRequest, IntegrationEvent, Outcome, OutcomeStatus, RecordKind, Stage, now_micros,
};
use intops_flows::route::{FlowResult, Plan, plan};
use intops_flows::{Flow, JqError, SharedFlows};
use intops_kafka::backoff::retry_delays;
use intops_kafka::{
    Ack, Failure, Handled, KafkaError, MAX_ERROR_TEXT_BYTES, Message, OwnedMessage, ProcessError,
    Publish, REJECTED_CLASS, ServiceContext,
};
use intops_runtime::CancellationToken;
use intops_runtime::metrics as m;

#[cfg(test)]
mod tests;

/// Handles records of the events topic, publishing through `P`.
#[derive(Debug, Clone)]
pub(crate) struct Handler<P = ServiceContext> {
    flows: SharedFlows,
    publisher: P,
    codec: Arc<Codec>,
    shutdown: CancellationToken,
}

/// One flow (or the whole event, without a flow) that failed for good.
struct Failed<'f> {
    flow: Option<&'f Flow>,
    class: &'static str,
    message: String,
}

impl Handler {
    /// The service's handler: decodes with the context's codec and
    /// publishes through the context's producer.
    pub(crate) fn new(
        flows: SharedFlows,
        ctx: ServiceContext,
        shutdown: CancellationToken,
    ) -> Self {
        let codec = ctx.codec.clone();
        Self::with_publisher(flows, ctx, codec, shutdown)
    }
}

impl<P: Publish> Handler<P> {
    pub(crate) fn with_publisher(
        flows: SharedFlows,
        publisher: P,
        codec: Arc<Codec>,
        shutdown: CancellationToken,
    ) -> Self {
        Self {
            flows,
            publisher,
            codec,
            shutdown,
        }
    }

    /// Decodes the record (see [`intops_kafka::decode`]) and processes
    /// the event.
    pub(crate) async fn handle(&self, message: OwnedMessage) -> Result<Handled, ProcessError> {
        let event = intops_kafka::decode(&self.codec, message.payload()).await?;
        self.process(event).await
    }

    /// Plans the event and produces its delivery requests; failed flows
    /// come back as dead letters for the loop to write.
    pub(crate) async fn process(&self, event: IntegrationEvent) -> Result<Handled, ProcessError> {
        metrics::counter!(m::TRANSFORM_EVENTS, "source" => event.source_id.clone()).increment(1);
        // One version of the flows for the whole record, even mid-reload.
        let flows = self.flows.load_full();
        match plan(&flows, &event) {
            Plan::BadPayload(e) => {
                let class = match e {
                    JqError::TooDeep { .. } => "payload_too_deep",
                    _ => "payload",
                };
                Ok(self.dead_letters(
                    &event,
                    vec![Failed {
                        flow: None,
                        class,
                        message: e.to_string(),
                    }],
                ))
            }
            Plan::Unrouted => {
                metrics::counter!(m::TRANSFORM_UNROUTED, "source" => event.source_id.clone())
                    .increment(1);
                tracing::debug!(event_id = %event.event_id, source = %event.source_id, "event unrouted");
                let outcome = outcome(&event, OutcomeStatus::Unrouted, None, None);
                self.publisher
                    .publish(
                        &self.publisher.topics().outcomes(),
                        RecordKind::Outcome,
                        event.kafka_key().as_bytes(),
                        &outcome,
                    )
                    .await?;
                Ok(Handled::Done)
            }
            Plan::Routed(results) => {
                let mut failed = Vec::new();
                let mut requests = Vec::new();
                for result in results {
                    match result {
                        FlowResult::Deliver(flow, request) => requests.push((flow, request)),
                        FlowResult::Failed(flow, e) => failed.push(Failed {
                            flow: Some(flow),
                            class: match e {
                                JqError::Runtime(_) => "mapping",
                                _ => "mapping_output",
                            },
                            message: e.to_string(),
                        }),
                    }
                }
                let sent = join_all(
                    requests
                        .iter()
                        .map(|(flow, request)| self.deliver(&event, flow, request)),
                )
                .await;
                for ((flow, _), result) in requests.iter().zip(sent) {
                    match result {
                        Ok(()) => {}
                        // This flow's request can never be written (too
                        // large): its dead letter; the other flows go on.
                        Err(e) if e.is_record_level() => failed.push(Failed {
                            flow: Some(flow),
                            class: REJECTED_CLASS,
                            message: format!("delivery request refused: {e}"),
                        }),
                        Err(e) => return Err(e.into()),
                    }
                }
                if failed.is_empty() {
                    Ok(Handled::Done)
                } else {
                    Ok(self.dead_letters(&event, failed))
                }
            }
        }
    }

    async fn deliver(
        &self,
        event: &IntegrationEvent,
        flow: &Flow,
        request: &DeliveryRequest,
    ) -> Result<(), KafkaError> {
        let topic = self.publisher.topics().deliveries(&flow.target);
        self.publisher
            .publish(
                &topic,
                RecordKind::DeliveryRequest,
                event.kafka_key().as_bytes(),
                request,
            )
            .await?;
        metrics::counter!(m::TRANSFORM_ROUTED, "flow" => flow.id.clone(), "target" => flow.target.clone()).increment(1);
        tracing::debug!(event_id = %event.event_id, flow = %flow.id, target = %flow.target, "event routed");
        Ok(())
    }

    /// The dead letters of `failed` for the loop, then their outcomes.
    fn dead_letters(&self, event: &IntegrationEvent, failed: Vec<Failed<'_>>) -> Handled {
        let mut failures = Vec::with_capacity(failed.len());
        let mut outcomes = Vec::with_capacity(failed.len());
        for f in failed {
            let message = intops_kafka::truncate_text(&f.message, MAX_ERROR_TEXT_BYTES);
            failures.push(Failure {
                event_id: Some(event.event_id.clone()),
                flow_id: f.flow.map(|f| f.id.clone()),
                flow_version: f.flow.map(|f| f.version.clone()),
                target_id: f.flow.map(|f| f.target.clone()),
                tenant: f
                    .flow
                    .and_then(|f| f.tenant.clone())
                    .or_else(|| event.tenant.clone()),
                attempts: 1,
                ..Failure::new(f.class, message.clone())
            });
            outcomes.push(outcome(
                event,
                OutcomeStatus::DeadLettered,
                f.flow,
                Some(message),
            ));
        }
        Handled::DeadLetters {
            failures,
            then: Some(self.write_outcomes(event.kafka_key().into_bytes(), outcomes)),
        }
    }

    /// Writes the outcomes, retrying while the broker is away; `Ok(false)`
    /// when shutdown comes first (the record is handled again after
    /// restart).
    fn write_outcomes(&self, key: Vec<u8>, outcomes: Vec<Outcome>) -> Ack {
        let publisher = self.publisher.clone();
        let shutdown = self.shutdown.clone();
        Box::pin(async move {
            let topic = publisher.topics().outcomes();
            for outcome in &outcomes {
                let mut delays = retry_delays(Duration::from_millis(200), Duration::from_secs(30));
                loop {
                    match publisher
                        .publish(&topic, RecordKind::Outcome, &key, outcome)
                        .await
                    {
                        Ok(_) => break,
                        Err(e) if e.is_retryable() => {
                            tracing::warn!(event_id = %outcome.event_id, error = %e, "cannot write outcome, retrying");
                            let delay = delays.next().unwrap_or(Duration::from_secs(30));
                            tokio::select! {
                                () = shutdown.cancelled() => return Ok(false),
                                () = tokio::time::sleep(delay) => {}
                            }
                        }
                        Err(e) => return Err(e),
                    }
                }
            }
            Ok(true)
        })
    }
}

fn outcome(
    event: &IntegrationEvent,
    status: OutcomeStatus,
    flow: Option<&Flow>,
    error: Option<String>,
) -> Outcome {
    Outcome {
        tenant: flow
            .and_then(|f| f.tenant.clone())
            .or_else(|| event.tenant.clone()),
        link_action: None,
        record_id: None,
        event_id: event.event_id.clone(),
        stage: Stage::Transform,
        status,
        flow_id: flow.map(|f| f.id.clone()),
        target_id: flow.map(|f| f.target.clone()),
        attempts: 0,
        http_status: None,
        latency_ms: None,
        error,
        at: now_micros(),
    }
}
