//! Canonical intops records (the Avro schemas in `schemas/`), their Rust
//! types, topic names, and the Confluent-framed codec through a schema
//! registry.

mod codec;
mod flow_version;
mod json_depth;
mod rollup;
mod schemas;
mod time;
mod topics;
mod types;

pub use codec::{Codec, CodecError, RegistrySettings};
pub use flow_version::FlowVersion;
pub use json_depth::{DEFAULT_MAX_JSON_DEPTH, exceeds_depth};
pub use rollup::{HOUR_MICROS, HourlyRollup, hour_of, quantile_bound};
pub use schemas::{RecordKind, parse_all_schemas};
pub use time::now_micros;
pub use topics::Topics;
pub use types::{
    AuditRecord, ControlCommand, DeadLetter, DeliveryRequest, IDEMPOTENCY_KEY, IngestCursor,
    IntegrationEvent, KafkaHeader, LINK_PLACEHOLDER, Link, LinkAction, LinkMode, LinkPlan, Outcome,
    OutcomeStatus, ReplayMark, ReplayMarks, Stage, TargetState,
};
