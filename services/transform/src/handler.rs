//! One event through transform: decode, plan, produce every output, and
//! only then let the loop store the offset.

use futures::future::try_join_all;
use intops_events::{
    CodecError, DeliveryRequest, IntegrationEvent, Outcome, OutcomeStatus, RecordKind, Stage,
    now_micros,
};
use intops_flows::{Flow, JqError};
use intops_kafka::{
    DeadLetterWriter, Failure, Message, OwnedMessage, ProcessError, ServiceContext,
};
use intops_runtime::metrics as m;
use intops_runtime::reload::SharedFlows;
use std::sync::Arc;

use crate::cap::DeadLetterCap;

use intops_flows::route::{FlowResult, Plan, plan};

/// Handles records of the events topic.
#[derive(Debug, Clone)]
pub(crate) struct Handler {
    flows: SharedFlows,
    cap: Arc<DeadLetterCap>,
    ctx: ServiceContext,
    dlq: DeadLetterWriter,
}

impl Handler {
    pub(crate) fn new(
        flows: SharedFlows,
        ctx: ServiceContext,
        dlq: DeadLetterWriter,
        cap: Arc<DeadLetterCap>,
    ) -> Self {
        Self {
            flows,
            ctx,
            dlq,
            cap,
        }
    }

    pub(crate) async fn handle(&self, message: OwnedMessage) -> Result<(), ProcessError> {
        if self.cap.is_tripped() {
            // Held, not dead-lettered: retried with backoff until the cap
            // is reset by a valid flows file.
            return Err(ProcessError::Retryable(
                "dead-letter cap tripped; waiting for a fixed flows file".into(),
            ));
        }
        let result = self.process(message).await;
        if let Ok(dead_lettered) = &result {
            self.cap.record(*dead_lettered);
        }
        result.map(|_| ())
    }

    /// Processes one record; `Ok(true)` when any part was dead-lettered.
    async fn process(&self, message: OwnedMessage) -> Result<bool, ProcessError> {
        let event = self.decode(&message).await?;
        metrics::counter!(m::TRANSFORM_EVENTS, "source" => event.source_id.clone()).increment(1);
        // One version of the flows for the whole record, even mid-reload.
        let flows = self.flows.load_full();
        match plan(&flows, &event) {
            Plan::BadPayload(e) => {
                self.dead_letter(&message, &event, None, "payload", &e)
                    .await?;
                Ok(true)
            }
            Plan::Unrouted => {
                metrics::counter!(m::TRANSFORM_UNROUTED, "source" => event.source_id.clone())
                    .increment(1);
                tracing::debug!(event_id = %event.event_id, source = %event.source_id, "event unrouted");
                self.outcome(&event, OutcomeStatus::Unrouted, None, None)
                    .await?;
                Ok(false)
            }
            Plan::Routed(results) => {
                let failed = results.iter().any(|r| matches!(r, FlowResult::Failed(..)));
                try_join_all(results.into_iter().map(|r| self.apply(&message, &event, r))).await?;
                Ok(failed)
            }
        }
    }

    async fn apply(
        &self,
        message: &OwnedMessage,
        event: &IntegrationEvent,
        result: FlowResult<'_>,
    ) -> Result<(), ProcessError> {
        match result {
            FlowResult::Deliver(flow, request) => self.deliver(event, flow, &request).await,
            FlowResult::Failed(flow, e) => {
                let class = if matches!(e, JqError::Runtime(_)) {
                    "mapping"
                } else {
                    "mapping_output"
                };
                self.dead_letter(message, event, Some(flow), class, &e)
                    .await
            }
        }
    }

    async fn decode(&self, message: &OwnedMessage) -> Result<IntegrationEvent, ProcessError> {
        let Some(bytes) = message.payload() else {
            return Err(ProcessError::Poison(Failure::new(
                "decode",
                "record has no value",
            )));
        };
        match self.ctx.codec.decode::<IntegrationEvent>(bytes).await {
            Ok(event) => Ok(event),
            Err(e @ CodecError::Registry(_)) => Err(ProcessError::Retryable(e.to_string())),
            Err(e) => Err(ProcessError::Poison(Failure::new("decode", e.to_string()))),
        }
    }

    async fn deliver(
        &self,
        event: &IntegrationEvent,
        flow: &Flow,
        request: &DeliveryRequest,
    ) -> Result<(), ProcessError> {
        let topic = self.ctx.topics.deliveries(&flow.target);
        self.produce(
            &topic,
            RecordKind::DeliveryRequest,
            &event.kafka_key(),
            request,
        )
        .await?;
        metrics::counter!(m::TRANSFORM_ROUTED, "flow" => flow.id.clone(), "target" => flow.target.clone()).increment(1);
        tracing::debug!(event_id = %event.event_id, flow = %flow.id, target = %flow.target, "event routed");
        Ok(())
    }

    async fn dead_letter(
        &self,
        message: &OwnedMessage,
        event: &IntegrationEvent,
        flow: Option<&Flow>,
        class: &str,
        error: &JqError,
    ) -> Result<(), ProcessError> {
        let failure = Failure {
            event_id: Some(event.event_id.clone()),
            flow_id: flow.map(|f| f.id.clone()),
            flow_version: flow.map(|f| f.version.clone()),
            target_id: flow.map(|f| f.target.clone()),
            attempts: 1,
            ..Failure::new(class, error.to_string())
        };
        self.dlq.write(message, &failure).await?;
        self.outcome(
            event,
            OutcomeStatus::DeadLettered,
            flow,
            Some(failure.message),
        )
        .await
    }

    async fn outcome(
        &self,
        event: &IntegrationEvent,
        status: OutcomeStatus,
        flow: Option<&Flow>,
        error: Option<String>,
    ) -> Result<(), ProcessError> {
        let outcome = Outcome {
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
        };
        self.produce(
            &self.ctx.topics.outcomes(),
            RecordKind::Outcome,
            &event.kafka_key(),
            &outcome,
        )
        .await
    }

    async fn produce<T: serde::Serialize>(
        &self,
        topic: &str,
        kind: RecordKind,
        key: &str,
        record: &T,
    ) -> Result<(), ProcessError> {
        self.ctx
            .publish(topic, kind, key.as_bytes(), record)
            .await?;
        Ok(())
    }
}
