use std::time::Duration;

use apache_avro::types::Value;
use schema_registry_converter::async_impl::avro::{AvroDecoder, AvroEncoder};
use schema_registry_converter::async_impl::schema_registry::SrSettings;
use schema_registry_converter::error::SRCError;
use schema_registry_converter::schema_registry_common::{
    SchemaType, SubjectNameStrategy, SuppliedSchema,
};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::schemas::RecordKind;

/// Where the schema registry is and how to reach it.
#[derive(Clone)]
pub struct RegistrySettings {
    /// Base URL, for example `http://127.0.0.1:8081`.
    pub url: String,
    /// Optional basic auth (user, password).
    pub basic_auth: Option<(String, String)>,
    /// Per-request timeout.
    pub timeout: Duration,
}

impl std::fmt::Debug for RegistrySettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegistrySettings")
            .field("url", &self.url)
            .field(
                "basic_auth",
                &self.basic_auth.as_ref().map(|(u, _)| (u, "***")),
            )
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// Why a record could not be encoded or decoded.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    /// The registry could not be reached or refused the call: retry later.
    #[error("schema registry unavailable: {0}")]
    Registry(String),
    /// The bytes are not a Confluent-framed record of a known schema, or
    /// the record does not fit the expected type: the record is poison.
    #[error("undecodable record: {0}")]
    Undecodable(String),
    /// The value does not fit its schema: a bug or bad input, not retryable.
    #[error("record does not fit its schema: {0}")]
    Invalid(String),
    /// The registry settings are unusable.
    #[error("bad schema registry settings: {0}")]
    Settings(String),
}

impl CodecError {
    /// Whether trying again later can succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(self, CodecError::Registry(_))
    }
}

/// Encodes and decodes the canonical records, Confluent-framed (magic byte,
/// schema id, Avro binary), registering each schema under `<topic>-value`.
pub struct Codec {
    encoder: AvroEncoder,
    decoder: AvroDecoder,
}

impl std::fmt::Debug for Codec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Codec").finish_non_exhaustive()
    }
}

impl Codec {
    /// A codec talking to the registry described by `settings`.
    pub fn new(settings: &RegistrySettings) -> Result<Self, CodecError> {
        let build = || {
            let mut builder = SrSettings::new_builder(settings.url.clone());
            builder.set_timeout(settings.timeout);
            if let Some((user, password)) = &settings.basic_auth {
                builder.set_basic_authorization(user, Some(password.as_str()));
            }
            builder
                .build()
                .map_err(|e| CodecError::Settings(e.to_string()))
        };
        Ok(Self {
            encoder: AvroEncoder::new(build()?),
            decoder: AvroDecoder::new(build()?),
        })
    }

    /// Encodes `record` of `kind` for `topic`, registering the schema under
    /// `<topic>-value` on first use.
    pub async fn encode<T: Serialize>(
        &self,
        topic: &str,
        kind: RecordKind,
        record: &T,
    ) -> Result<Vec<u8>, CodecError> {
        let strategy = SubjectNameStrategy::TopicNameStrategyWithSchema(
            topic.to_string(),
            false,
            SuppliedSchema::new(
                Some(kind.full_name().to_string()),
                SchemaType::Avro,
                kind.schema_text().to_string(),
            ),
        );
        self.encoder
            .encode_struct(record, &strategy)
            .await
            .map_err(|e| classify(e, CodecError::Invalid))
    }

    /// Decodes Confluent-framed bytes into `T`, fetching the writer's
    /// schema by id.
    pub async fn decode<T: DeserializeOwned>(&self, bytes: &[u8]) -> Result<T, CodecError> {
        let value = self.decode_value(bytes).await?;
        apache_avro::from_value::<T>(&value).map_err(|e| CodecError::Undecodable(e.to_string()))
    }

    /// Decodes Confluent-framed bytes into a generic Avro value.
    pub async fn decode_value(&self, bytes: &[u8]) -> Result<Value, CodecError> {
        if bytes.len() < 5 || bytes[0] != 0 {
            return Err(CodecError::Undecodable(
                "value is not Confluent-framed Avro (missing magic byte 0 and schema id)".into(),
            ));
        }
        let decoded = match self.decoder.decode(Some(bytes)).await {
            Ok(decoded) => decoded,
            Err(e) => {
                let error = classify(e, CodecError::Undecodable);
                if error.is_retryable() {
                    // The converter caches failed look-ups; a registry outage
                    // must not make a schema id undecodable for good.
                    self.decoder.remove_errors_from_cache();
                }
                return Err(error);
            }
        };
        Ok(decoded.value)
    }
}

/// Registry transport failures are retryable; everything else is about the
/// record itself.
fn classify(e: SRCError, otherwise: fn(String) -> CodecError) -> CodecError {
    let text = e.to_string();
    if e.retriable || looks_like_transport(&text) {
        CodecError::Registry(text)
    } else {
        otherwise(text)
    }
}

fn looks_like_transport(text: &str) -> bool {
    let t = text.to_ascii_lowercase();
    t.contains("could not get") && t.contains("http")
        || t.contains("connect")
        || t.contains("timed out")
}
