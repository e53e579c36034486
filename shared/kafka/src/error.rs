/// Failures of the Kafka plumbing, classified for the caller.
#[derive(Debug, thiserror::Error)]
pub enum KafkaError {
    /// The settings are unusable (fatal at start-up).
    #[error("invalid kafka settings: {0}")]
    Config(String),
    /// The broker did not acknowledge in time or is unreachable: retry.
    #[error("broker did not acknowledge: {0}")]
    Unavailable(String),
    /// The broker (or the producer's own checks) refused this one record
    /// for good: too large, corrupt, an invalid timestamp. Poison for that
    /// record; other records are unaffected.
    #[error("broker rejected the record: {0}")]
    Rejected(String),
    /// The broker refused the producer itself, whatever the record:
    /// not authorized, the topic or the acks setting invalid. Fatal (a
    /// configuration failure: every record would fail the same way).
    #[error("broker refused the producer: {0}")]
    Refused(String),
    /// An admin call failed.
    #[error("kafka admin call failed: {0}")]
    Admin(String),
    /// A handler failed in a way no retry fixes (a bug or misconfiguration):
    /// the service stops.
    #[error("processing failed: {0}")]
    Fatal(String),
    /// Encoding a dead letter failed.
    #[error(transparent)]
    Codec(#[from] intops_events::CodecError),
}

impl KafkaError {
    /// Whether trying again later can succeed.
    pub fn is_retryable(&self) -> bool {
        match self {
            KafkaError::Unavailable(_) => true,
            KafkaError::Codec(c) => c.is_retryable(),
            _ => false,
        }
    }

    /// Whether the failure belongs to one record (dead-letter it and go
    /// on) rather than to the service.
    pub fn is_record_level(&self) -> bool {
        matches!(self, KafkaError::Rejected(_))
    }
}

/// How a produce error is classified.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ProduceClass {
    /// This record can never be written: poison.
    Record,
    /// No record can be written with these settings: fatal.
    Config,
    /// Try again later.
    Transient,
}

/// The classification table of produce error codes. Record-level codes are
/// the ones the broker (or librdkafka's own checks before sending, which
/// use the same codes) gives for one record's size, format or content;
/// configuration codes are the ones every record would get.
pub(crate) fn produce_class(code: Option<rdkafka::types::RDKafkaErrorCode>) -> ProduceClass {
    use rdkafka::types::RDKafkaErrorCode as C;
    match code {
        Some(
            // Larger than message.max.bytes (librdkafka, before sending) or
            // than the topic's max.message.bytes (broker).
            C::MessageSizeTooLarge
            // RECORD_LIST_TOO_LARGE: the batch holding it is too large.
            | C::MessageBatchTooLarge
            | C::InvalidMessage
            | C::InvalidMessageSize
            | C::InvalidRecord
            | C::InvalidTimestamp
            | C::UnsupportedForMessageFormat
            | C::BadMessage,
        ) => ProduceClass::Record,
        Some(
            C::TopicAuthorizationFailed
            | C::ClusterAuthorizationFailed
            | C::TransactionalIdAuthorizationFailed
            | C::InvalidTopic
            | C::InvalidRequiredAcks
            | C::UnknownTopic
            | C::InvalidArgument
            | C::Fatal,
        ) => ProduceClass::Config,
        _ => ProduceClass::Transient,
    }
}

/// Classifies an rdkafka error from a produce call.
pub(crate) fn classify_produce(e: &rdkafka::error::KafkaError) -> KafkaError {
    match produce_class(e.rdkafka_error_code()) {
        ProduceClass::Record => KafkaError::Rejected(e.to_string()),
        ProduceClass::Config => KafkaError::Refused(e.to_string()),
        ProduceClass::Transient => KafkaError::Unavailable(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use rdkafka::types::RDKafkaErrorCode as C;

    use super::*;

    /// The table: one record's problem is poison, the producer's is fatal,
    /// everything else is retried.
    #[test]
    fn produce_errors_are_classified_per_record_or_per_service() {
        for code in [
            C::MessageSizeTooLarge,
            C::MessageBatchTooLarge,
            C::InvalidMessage,
            C::InvalidMessageSize,
            C::InvalidRecord,
            C::InvalidTimestamp,
            C::UnsupportedForMessageFormat,
            C::BadMessage,
        ] {
            assert_eq!(produce_class(Some(code)), ProduceClass::Record, "{code:?}");
        }
        for code in [
            C::TopicAuthorizationFailed,
            C::ClusterAuthorizationFailed,
            C::TransactionalIdAuthorizationFailed,
            C::InvalidTopic,
            C::InvalidRequiredAcks,
            C::UnknownTopic,
            C::InvalidArgument,
            C::Fatal,
        ] {
            assert_eq!(produce_class(Some(code)), ProduceClass::Config, "{code:?}");
        }
        for code in [
            C::MessageTimedOut,
            C::QueueFull,
            C::NotEnoughReplicas,
            C::NotEnoughReplicasAfterAppend,
            C::NotLeaderForPartition,
            C::UnknownTopicOrPartition,
            C::BrokerTransportFailure,
            C::AllBrokersDown,
            C::RequestTimedOut,
            C::KafkaStorageError,
        ] {
            assert_eq!(
                produce_class(Some(code)),
                ProduceClass::Transient,
                "{code:?}"
            );
        }
        assert_eq!(produce_class(None), ProduceClass::Transient);
    }

    #[test]
    fn only_rejected_records_are_record_level() {
        let e = rdkafka::error::KafkaError::MessageProduction(C::MessageSizeTooLarge);
        let k = classify_produce(&e);
        assert!(k.is_record_level() && !k.is_retryable(), "{k:?}");
        let e = rdkafka::error::KafkaError::MessageProduction(C::TopicAuthorizationFailed);
        let k = classify_produce(&e);
        assert!(!k.is_record_level() && !k.is_retryable(), "{k:?}");
        let e = rdkafka::error::KafkaError::MessageProduction(C::QueueFull);
        assert!(classify_produce(&e).is_retryable());
    }
}
