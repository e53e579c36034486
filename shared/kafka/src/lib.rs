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
//! - [`Scan`]: reading topics without a consumer group (operator tools);
//! - [`backoff`]: the one jittered exponential backoff of every retry loop.

pub mod backoff;
pub mod cap;
mod config;
mod consumer;
mod context;
mod dlq;
pub mod drain;
mod error;
mod lane;
mod offsets;
pub mod plan;
mod producer;
mod scan;
pub mod topics;

pub use cap::{CapSettings, DeadLetterCap};
pub use config::{KafkaSettings, MAX_RECORD_BYTES, OPTION_ENV_PREFIX};
pub use consumer::{
    Ack, ConsumeOptions, Handled, ProcessError, REJECTED_CLASS, consume, new_consumer,
};
pub use context::ServiceContext;
pub use dlq::{
    DeadLetterWriter, Failure, MAX_ERROR_TEXT_BYTES, headers as dlq_headers,
    truncate as truncate_text,
};
pub use drain::GroupConsumer;
pub use error::KafkaError;
pub use producer::{Producer, Record};
pub use rdkafka::message::{Headers, Message, OwnedMessage};
pub use scan::{Scan, Start};
