//! Rust forms of the records in `schemas/*.avsc`. Field order and names
//! follow the schemas; timestamps are microseconds since the Unix epoch.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

/// One event captured from a source system (`<prefix>.events`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IntegrationEvent {
    /// UUIDv7 (or v5 from a dedupe key).
    pub event_id: String,
    /// Source id from the flows file.
    pub source_id: String,
    /// What happened (created, updated, ...).
    pub event_type: String,
    /// The source's key of the entity.
    pub entity_key: String,
    /// When the source says it happened.
    pub occurred_at: i64,
    /// When ingest accepted it.
    pub ingested_at: i64,
    /// Caller-supplied correlation id.
    pub correlation_id: Option<String>,
    /// Small string facts about the capture.
    pub attributes: HashMap<String, String>,
    /// The source's JSON, as received.
    pub payload: String,
    /// The tenant (a template's instance: docs/flows.md); `None` when
    /// none.
    #[serde(default)]
    pub tenant: Option<String>,
}

impl IntegrationEvent {
    /// The Kafka key every record derived from this event carries.
    pub fn kafka_key(&self) -> String {
        format!("{}:{}", self.source_id, self.entity_key)
    }
}

/// The header that carries a request's idempotency key.
pub const IDEMPOTENCY_KEY: &str = "Idempotency-Key";

/// One HTTP request a flow asks delivery to make (`<prefix>.deliveries.<target>`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeliveryRequest {
    /// The originating event.
    pub event_id: String,
    /// The flow that produced it.
    pub flow_id: String,
    /// Content hash of that flow.
    pub flow_version: String,
    /// The target to call.
    pub target_id: String,
    /// The event's entity key.
    pub entity_key: String,
    /// HTTP method.
    pub method: String,
    /// Path appended to the target's base URL.
    pub path: String,
    /// Extra headers from the flow (no credentials).
    pub headers: HashMap<String, String>,
    /// JSON body.
    pub body: String,
    /// When transform produced it.
    pub created_at: i64,
    /// The event's ingested_at (0 when unknown).
    pub ingested_at: i64,
    /// How delivery uses the flow's links; `None` for flows without.
    #[serde(default)]
    pub link: Option<LinkPlan>,
    /// The tenant (a template's instance: docs/flows.md); `None` when
    /// none.
    #[serde(default)]
    pub tenant: Option<String>,
}

/// Stands where a request needs the link (the target's record id, or for
/// a write-back the source's entity key) until delivery knows it: it
/// replaces this text with the link, percent-encoded in the path and
/// JSON-escaped in the body. Unreserved URL characters only, so a path
/// template's encoding leaves it whole.
pub const LINK_PLACEHOLDER: &str = "INTOPS_LINK_PLACEHOLDER_7c1e";

/// How delivery uses a flow's links (`DeliveryRequest.link`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LinkPlan {
    /// `capture` or `from` ([`LinkMode`]).
    pub mode: LinkMode,
    /// The flow whose links are looked up.
    pub link_flow: String,
    /// `capture`: finds the record id in a create's 2xx answer.
    #[serde(default)]
    pub capture: Option<String>,
    /// `capture`: the update's method.
    #[serde(default)]
    pub update_method: Option<String>,
    /// `capture`: the update's path (with [`LINK_PLACEHOLDER`]).
    #[serde(default)]
    pub update_path: Option<String>,
    /// `capture`: the update's headers; `None`: the request's.
    #[serde(default)]
    pub update_headers: Option<HashMap<String, String>>,
    /// `capture`: the update's body; `None`: the request's.
    #[serde(default)]
    pub update_body: Option<String>,
    /// Whether a request repeating the link's last write is skipped as an
    /// echo (`link.echo`, default true).
    #[serde(default = "skip_echoes_default")]
    pub skip_echoes: bool,
}

fn skip_echoes_default() -> bool {
    true
}

/// How a flow uses links, written as a string (`capture`, `from`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(into = "&'static str", try_from = "String")]
pub enum LinkMode {
    /// Creates the target's record and keeps its id; updates it after.
    Capture,
    /// Writes back along another flow's links.
    From,
}

/// What a request of a flow with links did (`Outcome.link_action`),
/// written as a string.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(into = "&'static str", try_from = "String")]
pub enum LinkAction {
    /// Sent without a link: the flow's request, creating the record.
    Create,
    /// Sent with a link: the flow's `update`.
    Update,
    /// Sent along another flow's link (`link = { from }`).
    WriteBack,
    /// Not sent: it would change nothing on the other side.
    Echo,
    /// Not sent: a write-back whose entity has no link.
    NoLink,
    /// Not sent: the echo of a write intops made into this side that
    /// crossed a newer write the other way (the newer change wins).
    Conflict,
}

/// A conversation's link (`<prefix>.links`, compacted, key
/// [`Link::key_of`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Link {
    /// The flow that writes through it.
    pub flow_id: String,
    /// `capture` or `from`.
    pub mode: LinkMode,
    /// `from`: the capture flow it follows.
    #[serde(default)]
    pub via_flow: Option<String>,
    /// The source's entity key.
    pub entity_key: String,
    /// The target's id.
    pub target_id: String,
    /// The target's record id; `None` while a create is unconfirmed.
    #[serde(default)]
    pub record_id: Option<String>,
    /// The event whose request last wrote through it.
    pub event_id: String,
    /// Digest of the last request written through it.
    #[serde(default)]
    pub last_write: Option<String>,
    /// When first written.
    pub created_at: i64,
    /// Last activity.
    pub updated_at: i64,
    /// When the last request through it went out to the target (`None`
    /// in links written before this field: `updated_at` stands in).
    #[serde(default)]
    pub written_at: Option<i64>,
    /// Ingest time of the event behind the request sent at `written_at`.
    #[serde(default)]
    pub basis_at: Option<i64>,
    /// Ingest time of the newest source event answered through it: sent,
    /// or skipped as a conflict (the conflict rule, docs/flows.md).
    #[serde(default)]
    pub seen_at: Option<i64>,
    /// The request before: when it went out.
    #[serde(default)]
    pub earlier_written_at: Option<i64>,
    /// The request before: the ingest time of its event.
    #[serde(default)]
    pub earlier_basis_at: Option<i64>,
    /// The tenant (a template's instance: docs/flows.md); `None` when
    /// none.
    #[serde(default)]
    pub tenant: Option<String>,
}

impl Link {
    /// The record key: `<flow_id>:<entity_key>`.
    pub fn key_of(flow_id: &str, entity_key: &str) -> String {
        format!("{flow_id}:{entity_key}")
    }
}

impl DeliveryRequest {
    /// The `Idempotency-Key` header value: stable for one event and flow,
    /// unless the request carries its own (a flow rewind does, so corrected
    /// data is not dropped by a target that remembers the first key).
    pub fn idempotency_key(&self) -> String {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(IDEMPOTENCY_KEY))
            .map(|(_, v)| v.clone())
            .unwrap_or_else(|| format!("{}:{}", self.event_id, self.flow_id))
    }
}

/// Which stage an outcome or dead letter comes from. Written as a string
/// (`transform`, `delivery`, `replay`) so readers never break on a new one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(into = "&'static str", try_from = "String")]
pub enum Stage {
    /// The transform service.
    Transform,
    /// The delivery service.
    Delivery,
    /// A dead-letter replay.
    Replay,
}

/// The result an outcome records, written as a string (`unrouted`,
/// `delivered`, `dead_lettered`, `replayed`, `parked`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(into = "&'static str", try_from = "String")]
pub enum OutcomeStatus {
    /// No flow matched the event.
    Unrouted,
    /// The target accepted the request.
    Delivered,
    /// The record went to a dead-letter topic.
    DeadLettered,
    /// A dead letter was sent back for another try.
    Replayed,
    /// A dead letter replayed too often was parked instead.
    Parked,
    /// Not sent: the request would change nothing on the other side (a
    /// change intops itself made, coming back).
    Echo,
}

macro_rules! string_enum {
    ($ty:ident { $($variant:ident => $text:literal),+ $(,)? }) => {
        impl $ty {
            /// The value as written in records.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($ty::$variant => $text),+
                }
            }
        }

        impl From<$ty> for &'static str {
            fn from(v: $ty) -> Self {
                v.as_str()
            }
        }

        impl TryFrom<String> for $ty {
            type Error = String;

            fn try_from(s: String) -> Result<Self, String> {
                match s.as_str() {
                    $($text => Ok($ty::$variant),)+
                    other => Err(format!("unknown {} {other:?}", stringify!($ty))),
                }
            }
        }

        impl std::fmt::Display for $ty {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

string_enum!(LinkMode { Capture => "capture", From => "from" });
string_enum!(LinkAction {
    Create => "create",
    Update => "update",
    WriteBack => "write_back",
    Echo => "echo",
    NoLink => "no_link",
    Conflict => "conflict",
});
string_enum!(Stage { Transform => "transform", Delivery => "delivery", Replay => "replay" });
string_enum!(OutcomeStatus {
    Unrouted => "unrouted",
    Delivered => "delivered",
    DeadLettered => "dead_lettered",
    Replayed => "replayed",
    Parked => "parked",
    Echo => "echo",
});

/// A final result of one stage for one event (`<prefix>.outcomes`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Outcome {
    /// The event this is about.
    pub event_id: String,
    /// The stage that decided it.
    pub stage: Stage,
    /// What was decided.
    pub status: OutcomeStatus,
    /// The flow, when about one.
    pub flow_id: Option<String>,
    /// The target, when about one.
    pub target_id: Option<String>,
    /// HTTP attempts made.
    pub attempts: i32,
    /// Last HTTP status.
    pub http_status: Option<i32>,
    /// Milliseconds since ingest.
    pub latency_ms: Option<i64>,
    /// Redacted reason for a failure.
    pub error: Option<String>,
    /// When it was decided.
    pub at: i64,
    /// For flows with links: what the request did.
    #[serde(default)]
    pub link_action: Option<LinkAction>,
    /// The target's record id (the link), when known.
    #[serde(default)]
    pub record_id: Option<String>,
    /// The tenant (a template's instance: docs/flows.md); `None` when
    /// none.
    #[serde(default)]
    pub tenant: Option<String>,
}

/// One Kafka header of a dead-lettered record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KafkaHeader {
    /// Header name.
    pub key: String,
    /// Header value, if any.
    #[serde(with = "apache_avro::serde::bytes_opt", default)]
    pub value: Option<Vec<u8>>,
}

/// A record a stage could not process (`<prefix>.dlq.<stage>`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeadLetter {
    /// The stage that gave up.
    pub stage: Stage,
    /// Short stable class of the error.
    pub error_class: String,
    /// Redacted, human-readable reason.
    pub error_message: String,
    /// Whether a replay may succeed without a fix.
    pub retryable: bool,
    /// Attempts made.
    pub attempts: i32,
    /// Where the record came from.
    pub original_topic: String,
    /// Its partition.
    pub original_partition: i32,
    /// Its offset.
    pub original_offset: i64,
    /// Its key.
    #[serde(with = "apache_avro::serde::bytes_opt", default)]
    pub original_key: Option<Vec<u8>>,
    /// Its value.
    #[serde(with = "apache_avro::serde::bytes_opt", default)]
    pub original_value: Option<Vec<u8>>,
    /// Its headers.
    pub original_headers: Vec<KafkaHeader>,
    /// When the stage gave up.
    pub failed_at: i64,
    /// Earlier replays of this record.
    pub replay_count: i32,
    /// The event, when decoded.
    pub event_id: Option<String>,
    /// The flow, when known.
    pub flow_id: Option<String>,
    /// The flow's version, when known.
    pub flow_version: Option<String>,
    /// The target, when known.
    pub target_id: Option<String>,
    /// Last HTTP status.
    pub http_status: Option<i32>,
    /// Redacted excerpt of the last response body.
    pub response_excerpt: Option<String>,
    /// The tenant (a template's instance: docs/flows.md); `None` when
    /// none.
    #[serde(default)]
    pub tenant: Option<String>,
}

/// How far ingest has polled one source (`<prefix>.ingest.cursors`,
/// compacted, keyed by source id).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IngestCursor {
    /// The polled source.
    pub source_id: String,
    /// Highest cursor value acknowledged.
    pub cursor: String,
    /// Event ids already captured at exactly that cursor value.
    pub seen_at_cursor: Vec<String>,
    /// When it was saved.
    pub updated_at: i64,
}

/// One dead letter a replay sent on (an item of [`ReplayMarks`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReplayMark {
    /// The dead-letter topic.
    pub dead_letter_topic: String,
    /// Its partition.
    pub dead_letter_partition: i32,
    /// Its offset.
    pub dead_letter_offset: i64,
    /// Where it went.
    pub sent_to: String,
    /// The replay count the sent record carries.
    pub replay_count: i32,
}

impl ReplayMark {
    /// Where a dead letter is stored, `topic/partition/offset`.
    pub fn key_of(topic: &str, partition: i32, offset: i64) -> String {
        format!("{topic}/{partition}/{offset}")
    }

    /// This mark's dead letter, as [`ReplayMark::key_of`].
    pub fn location(&self) -> String {
        Self::key_of(
            &self.dead_letter_topic,
            self.dead_letter_partition,
            self.dead_letter_offset,
        )
    }
}

/// Dead letters one replay sent on, one batch (`<prefix>.dlq.replays`,
/// key `<replay_id>/<batch number>`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReplayMarks {
    /// The replay.
    pub replay_id: String,
    /// The batch's dead letters.
    pub marks: Vec<ReplayMark>,
    /// When the batch was written.
    pub at: i64,
}

/// One operator action that wrote to the pipeline (`<prefix>.audit`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditRecord {
    /// The replay or rewind id.
    pub action_id: String,
    /// `dlq.replay` or `flow.rewind`.
    pub action: String,
    /// `started` or `finished`.
    pub phase: String,
    /// Who ran it.
    pub operator: String,
    /// Where it ran.
    pub host: String,
    /// The selection as given.
    pub filters: HashMap<String, String>,
    /// What happened.
    pub counts: HashMap<String, i64>,
    /// When.
    pub at: i64,
}

/// Whether one delivery replica sends to one target
/// (`<prefix>.target-states`, compacted, key [`TargetState::key_of`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TargetState {
    /// The target.
    pub target_id: String,
    /// The delivery replica.
    pub instance: String,
    /// Why it does not send; `None` while it sends.
    pub paused: Option<String>,
    /// `closed`, `open` or `half_open`.
    pub circuit: String,
    /// When it last changed.
    pub at: i64,
}

impl TargetState {
    /// The record's key: `<target_id>|<instance>`.
    pub fn key_of(target_id: &str, instance: &str) -> String {
        format!("{target_id}|{instance}")
    }
}

/// An operator's command about one target (`<prefix>.control`, compacted,
/// keyed by target id; the latest per target is in force).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ControlCommand {
    /// The target.
    pub target_id: String,
    /// `pause` or `resume`.
    pub command: String,
    /// Why.
    pub reason: Option<String>,
    /// Who.
    pub operator: String,
    /// When.
    pub at: i64,
}
