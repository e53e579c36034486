/// Failures of the Kafka plumbing, classified for the caller.
#[derive(Debug, thiserror::Error)]
pub enum KafkaError {
    /// The settings are unusable (fatal at start-up).
    #[error("invalid kafka settings: {0}")]
    Config(String),
    /// The broker did not acknowledge in time or is unreachable: retry.
    #[error("broker did not acknowledge: {0}")]
    Unavailable(String),
    /// The broker refused the record for good (too large, not allowed).
    #[error("broker rejected the record: {0}")]
    Rejected(String),
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
}

/// Classifies an rdkafka error from a produce call.
pub(crate) fn classify_produce(e: &rdkafka::error::KafkaError) -> KafkaError {
    use rdkafka::types::RDKafkaErrorCode as C;
    let permanent = matches!(
        e.rdkafka_error_code(),
        Some(
            C::MessageSizeTooLarge
                | C::InvalidMessage
                | C::InvalidMessageSize
                | C::TopicAuthorizationFailed
                | C::ClusterAuthorizationFailed
                | C::InvalidRecord
                | C::Fatal
        )
    );
    if permanent {
        KafkaError::Rejected(e.to_string())
    } else {
        KafkaError::Unavailable(e.to_string())
    }
}
