//! Transform's per-record work in-process, on one core, without a broker
//! or registry: Avro decode of the event, every flow's condition and
//! mapping, Avro encode of the delivery request.

// Plain datum encoding, close to what the registry codec does per record;
// apache-avro 0.22 marks them deprecated in favour of its new readers.
#![allow(deprecated)]

use std::collections::HashMap;
use std::time::Instant;

use apache_avro::Schema;
use intops_events::{IntegrationEvent, RecordKind};
use intops_flows::route::{FlowResult, Plan, plan};

/// Events per second through decode → route → map → encode.
pub fn in_process(flows_text: &str, payload: &str, events: usize) -> anyhow::Result<f64> {
    let flows = intops_flows::load_str(flows_text)?;
    let event_schema = Schema::parse_str(RecordKind::IntegrationEvent.schema_text())?;
    let request_schema = Schema::parse_str(RecordKind::DeliveryRequest.schema_text())?;
    let event = IntegrationEvent {
        event_id: "01a22357-8714-74e3-ac1e-e593a53b7ac8".into(),
        source_id: "servicenow".into(),
        event_type: "created".into(),
        entity_key: "9d385017c611228701d22104cc95c371".into(),
        occurred_at: 1,
        ingested_at: 1,
        correlation_id: None,
        attributes: HashMap::new(),
        payload: payload.to_string(),
    };
    let value = apache_avro::to_value(&event)?.resolve(&event_schema)?;
    let datum = apache_avro::to_avro_datum(&event_schema, value)?;
    let started = Instant::now();
    let mut produced = 0usize;
    for _ in 0..events {
        let value = apache_avro::from_avro_datum(&event_schema, &mut datum.as_slice(), None)?;
        let decoded: IntegrationEvent = apache_avro::from_value(&value)?;
        if let Plan::Routed(results) = plan(&flows, &decoded) {
            for r in results {
                if let FlowResult::Deliver(_, request) = r {
                    let v = apache_avro::to_value(&*request)?.resolve(&request_schema)?;
                    produced += apache_avro::to_avro_datum(&request_schema, v)?.len();
                }
            }
        }
    }
    let secs = started.elapsed().as_secs_f64();
    anyhow::ensure!(produced > 0, "the example flows routed nothing");
    Ok(events as f64 / secs)
}
