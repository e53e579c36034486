use apache_avro::Schema;

/// The canonical record kinds and their schema text (`schemas/*.avsc`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordKind {
    /// `IntegrationEvent`.
    IntegrationEvent,
    /// `DeliveryRequest`.
    DeliveryRequest,
    /// `Outcome`.
    Outcome,
    /// `DeadLetter`.
    DeadLetter,
    /// `IngestCursor`.
    IngestCursor,
    /// `ReplayMarks`.
    ReplayMarks,
    /// `AuditRecord`.
    AuditRecord,
    /// `ControlCommand`.
    ControlCommand,
    /// `Link`.
    Link,
    /// `FlowVersion`.
    FlowVersion,
    /// `HourlyRollup`.
    HourlyRollup,
    /// `TargetState`.
    TargetState,
}

impl RecordKind {
    /// Every kind, in pipeline order.
    pub const ALL: [RecordKind; 12] = [
        RecordKind::IntegrationEvent,
        RecordKind::DeliveryRequest,
        RecordKind::Outcome,
        RecordKind::DeadLetter,
        RecordKind::IngestCursor,
        RecordKind::ReplayMarks,
        RecordKind::AuditRecord,
        RecordKind::ControlCommand,
        RecordKind::Link,
        RecordKind::FlowVersion,
        RecordKind::HourlyRollup,
        RecordKind::TargetState,
    ];

    /// The schema's JSON text as shipped in `schemas/`.
    pub fn schema_text(self) -> &'static str {
        match self {
            RecordKind::IntegrationEvent => include_str!("../../../schemas/integration_event.avsc"),
            RecordKind::DeliveryRequest => include_str!("../../../schemas/delivery_request.avsc"),
            RecordKind::Outcome => include_str!("../../../schemas/outcome.avsc"),
            RecordKind::DeadLetter => include_str!("../../../schemas/dead_letter.avsc"),
            RecordKind::IngestCursor => include_str!("../../../schemas/ingest_cursor.avsc"),
            RecordKind::ReplayMarks => include_str!("../../../schemas/replay_marks.avsc"),
            RecordKind::AuditRecord => include_str!("../../../schemas/audit_record.avsc"),
            RecordKind::ControlCommand => include_str!("../../../schemas/control_command.avsc"),
            RecordKind::Link => include_str!("../../../schemas/link.avsc"),
            RecordKind::FlowVersion => include_str!("../../../schemas/flow_version.avsc"),
            RecordKind::HourlyRollup => include_str!("../../../schemas/hourly_rollup.avsc"),
            RecordKind::TargetState => include_str!("../../../schemas/target_state.avsc"),
        }
    }

    /// The record's full name, as the registry and Avro readers see it.
    pub fn full_name(self) -> &'static str {
        match self {
            RecordKind::IntegrationEvent => "io.intops.v1.IntegrationEvent",
            RecordKind::DeliveryRequest => "io.intops.v1.DeliveryRequest",
            RecordKind::Outcome => "io.intops.v1.Outcome",
            RecordKind::DeadLetter => "io.intops.v1.DeadLetter",
            RecordKind::IngestCursor => "io.intops.v1.IngestCursor",
            RecordKind::ReplayMarks => "io.intops.v1.ReplayMarks",
            RecordKind::AuditRecord => "io.intops.v1.AuditRecord",
            RecordKind::ControlCommand => "io.intops.v1.ControlCommand",
            RecordKind::Link => "io.intops.v1.Link",
            RecordKind::FlowVersion => "io.intops.v1.FlowVersion",
            RecordKind::HourlyRollup => "io.intops.v1.HourlyRollup",
            RecordKind::TargetState => "io.intops.v1.TargetState",
        }
    }
}

/// Parses every shipped schema; fails on the first that does not parse.
pub fn parse_all_schemas() -> Result<Vec<(RecordKind, Schema)>, apache_avro::Error> {
    RecordKind::ALL
        .iter()
        .map(|k| Schema::parse_str(k.schema_text()).map(|s| (*k, s)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_schema_parses_with_its_declared_name() {
        for (kind, schema) in parse_all_schemas().expect("schemas parse") {
            let name = schema.name().expect("named record");
            assert_eq!(name.fullname(None), kind.full_name());
        }
    }
}
