//! Kafka plumbing shared by the intops services.
//!
//! - [`KafkaSettings`]: client configuration from settings, with
//!   pass-through librdkafka options;
//! - [`topics`]: explicit topic creation with final partition counts;
//! - [`plan`]: every intops topic with its cleanup policy and retention;
//! - [`Producer`]: sends that complete only when the broker acknowledged;
//! - [`consume`]: the at-least-once consumer loop, the one writer of dead
//!   letters;
//! - [`DeadLetterCap`]: holds a source's records when too many failed;
//! - [`DeadLetterWriter`]: dead letters with full provenance, slim when
//!   the original does not fit;
//! - [`flow_versions`]: every flow version loaded, with its definition;
//! - [`latest`]: a compacted topic read into its latest record per key;
//! - [`Scan`]: the one topic scanner: reading topics without a consumer
//!   group (operator tools, the monitor, control commands, cursors);
//! - [`topics::partitions`]: the one look-up of a topic's partitions;
//! - [`KeyedLanes`]: work spread over lanes by key (the consumer loop, the
//!   CLI's replays and rewinds);
//! - [`blocking()`]: how async code makes librdkafka's blocking calls;
//! - [`backoff`]: the one jittered exponential backoff of every retry loop;
//! - [`decode()`]: the one decode-and-classify of a consumed record;
//! - [`Publish`]: the seam handlers publish through ([`testing`] has an
//!   in-memory one for handler tests).

pub mod backoff;
mod blocking;
pub mod cap;
mod config;
mod consumer;
mod context;
mod decode;
mod dlq;
pub mod drain;
mod error;
pub mod fetch;
pub mod flow_versions;
mod lane;
mod lanes;
pub mod latest;
mod offsets;
pub mod plan;
mod producer;
mod publish;
mod scan;
#[doc(hidden)]
pub mod testing;
pub mod topics;

pub use blocking::blocking;
pub use cap::{CapSettings, DeadLetterCap};
pub use config::{KafkaSettings, MAX_RECORD_BYTES, OPTION_ENV_PREFIX, PROMPT_FETCH_WAIT_ENV, Pace};
pub use consumer::{
    Ack, ConsumeOptions, Handled, ProcessError, REJECTED_CLASS, consume, new_consumer,
};
pub use context::ServiceContext;
pub use decode::{DECODE_CLASS, decode};
pub use dlq::{
    DeadLetterWriter, Failure, MAX_ERROR_TEXT_BYTES, headers as dlq_headers,
    truncate as truncate_text,
};
pub use drain::{Assignment, GroupConsumer, assignment_of};
pub use error::KafkaError;
pub use lanes::{KeyedLanes, LaneClosed};
pub use producer::{Producer, Record};
pub use publish::Publish;
pub use rdkafka::message::{Headers, Message, OwnedMessage};
pub use scan::{Scan, Scanned, Start};
