//! The seam between a handler and the broker: [`Publish`] writes one typed
//! record and waits for its acknowledgement. [`ServiceContext`] implements
//! it for production (registry codec, acknowledged producer);
//! [`crate::testing::MemoryPublisher`] records what a handler published
//! for handler tests without a broker or a registry.
//!
//! Handlers are generic over it (monomorphized: the production path calls
//! [`ServiceContext::publish`] directly, with no boxing per record).

use std::future::Future;

use intops_events::{RecordKind, Topics};
use serde::Serialize;

use crate::{KafkaError, ServiceContext};

/// Writes typed records to topics, acknowledged.
pub trait Publish: Clone + Send + Sync + 'static {
    /// Topic names under the deployment's prefix.
    fn topics(&self) -> &Topics;

    /// Encodes `record` as `kind` for `topic` and produces it under `key`,
    /// resolving once the broker acknowledged it (partition, offset).
    /// Failures are classified as [`KafkaError`]: retryable, record-level
    /// (this record can never be written) or fatal.
    ///
    /// `Clone + 'static` lets an in-memory publisher keep the record as it
    /// is; every record type of `intops-events` is both.
    fn publish<T>(
        &self,
        topic: &str,
        kind: RecordKind,
        key: &[u8],
        record: &T,
    ) -> impl Future<Output = Result<(i32, i64), KafkaError>> + Send
    where
        T: Serialize + Clone + Send + Sync + 'static;
}

impl Publish for ServiceContext {
    fn topics(&self) -> &Topics {
        &self.topics
    }

    fn publish<T>(
        &self,
        topic: &str,
        kind: RecordKind,
        key: &[u8],
        record: &T,
    ) -> impl Future<Output = Result<(i32, i64), KafkaError>> + Send
    where
        T: Serialize + Clone + Send + Sync + 'static,
    {
        // The inherent method (registry codec, acknowledged send).
        ServiceContext::publish(self, topic, kind, key, record)
    }
}
