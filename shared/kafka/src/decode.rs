//! Decoding a consumed record with the registry codec, classified for the
//! consumer loop: the one decode-and-classify of transform and delivery.
//!
//! A registry that cannot be reached is retryable (the same record decodes
//! once it is back); a record without a value, bytes that are not
//! Confluent-framed Avro, an unknown schema or a record that does not fit
//! the expected type are poison, dead-lettered with class
//! [`DECODE_CLASS`].

use intops_events::{Codec, CodecError};
use serde::de::DeserializeOwned;

use crate::{Failure, ProcessError};

/// Dead-letter class of a record that cannot be decoded.
pub const DECODE_CLASS: &str = "decode";

/// Decodes a record's value (`None`: the record has none) into `T`,
/// classified as the module says. Bytes without the Confluent frame are
/// refused before the registry is asked.
pub async fn decode<T: DeserializeOwned>(
    codec: &Codec,
    value: Option<&[u8]>,
) -> Result<T, ProcessError> {
    let Some(bytes) = value else {
        return Err(ProcessError::Poison(Failure::new(
            DECODE_CLASS,
            "record has no value",
        )));
    };
    codec.decode(bytes).await.map_err(classify)
}

/// A codec failure for the loop: retryable when the registry is away,
/// poison (class [`DECODE_CLASS`]) otherwise.
fn classify(e: CodecError) -> ProcessError {
    if e.is_retryable() {
        ProcessError::Retryable(e.to_string())
    } else {
        ProcessError::Poison(Failure::new(DECODE_CLASS, e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use intops_events::IntegrationEvent;

    use super::*;
    use crate::testing::offline_codec;

    fn poison_class(result: Result<IntegrationEvent, ProcessError>) -> (String, String) {
        match result {
            Err(ProcessError::Poison(f)) => (f.class, f.message),
            other => panic!("expected poison, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn a_record_without_a_value_is_poison() {
        let codec = offline_codec().expect("codec");
        let (class, error) = poison_class(decode(&codec, None).await);
        assert_eq!(class, "decode");
        assert_eq!(error, "record has no value");
    }

    /// The codec's registry is a closed port: had it been asked, the
    /// failure would be retryable. Poison shows the frame check comes first.
    #[tokio::test]
    async fn bytes_that_are_not_confluent_framed_are_poison_without_the_registry() {
        let codec = offline_codec().expect("codec");
        for bytes in [
            &b"{\"json\": true}"[..],
            &[0, 0, 0][..],
            &[1, 0, 0, 0, 1, 2][..],
        ] {
            let (class, error) = poison_class(decode(&codec, Some(bytes)).await);
            assert_eq!(class, "decode");
            assert!(error.contains("not Confluent-framed"), "{error}");
        }
    }

    /// A framed record whose schema the (unreachable) registry must give
    /// is retryable: the same record decodes once the registry is back.
    #[tokio::test]
    async fn a_framed_record_with_the_registry_away_is_retryable() {
        let codec = offline_codec().expect("codec");
        let result: Result<IntegrationEvent, _> = decode(&codec, Some(&[0, 0, 0, 0, 7, 2])).await;
        assert!(
            matches!(&result, Err(ProcessError::Retryable(e)) if e.contains("registry unavailable")),
            "{result:?}"
        );
    }

    #[test]
    fn only_registry_failures_are_retryable() {
        assert!(matches!(
            classify(CodecError::Registry("down".into())),
            ProcessError::Retryable(_)
        ));
        for e in [
            CodecError::Undecodable("x".into()),
            CodecError::Invalid("x".into()),
            CodecError::Settings("x".into()),
        ] {
            assert!(matches!(classify(e), ProcessError::Poison(f) if f.class == "decode"));
        }
    }
}
