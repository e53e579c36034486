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
    /// Extra CA certificates (PEM) to trust for an `https://` registry
    /// signed by a private CA.
    pub ca_pem: Option<Vec<u8>>,
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
            .field("ca_pem", &self.ca_pem.is_some())
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
            let mut client = reqwest::Client::builder();
            if let Some(pem) = &settings.ca_pem {
                let certs = reqwest::Certificate::from_pem_bundle(pem)
                    .map_err(|e| CodecError::Settings(format!("registry CA: {e}")))?;
                if certs.is_empty() {
                    return Err(CodecError::Settings(
                        "registry CA: no PEM certificate in the file".into(),
                    ));
                }
                for cert in certs {
                    client = client.add_root_certificate(cert);
                }
            }
            builder
                .build_with(client)
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

#[cfg(test)]
mod registry_client_tests {
    use std::io::{Read, Write};
    use std::net::TcpListener;
    use std::time::Duration;

    use super::*;

    fn settings(url: String) -> RegistrySettings {
        RegistrySettings {
            url,
            basic_auth: Some(("intops".into(), "s3cret".into())),
            timeout: Duration::from_secs(5),
            ca_pem: None,
        }
    }

    /// Basic auth reaches the registry on a schema lookup; the password
    /// stays out of Debug output. (A one-request HTTP listener stands in
    /// for the registry: this checks the client, not a registry.)
    #[tokio::test]
    async fn basic_auth_is_sent_to_the_registry() {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let server = std::thread::spawn(move || {
            let (mut conn, _) = listener.accept().expect("accept");
            let mut request = vec![0u8; 4096];
            let n = conn.read(&mut request).expect("read");
            let body = r#"{"error_code":40403,"message":"Schema not found"}"#;
            let answer = format!(
                "HTTP/1.1 404 Not Found\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            conn.write_all(answer.as_bytes()).expect("write");
            String::from_utf8_lossy(&request[..n]).into_owned()
        });
        let settings = settings(url);
        assert!(!format!("{settings:?}").contains("s3cret"));
        let codec = Codec::new(&settings).expect("codec");
        let framed = [0u8, 0, 0, 0, 42, 0];
        let error = codec.decode_value(&framed).await.expect_err("unknown id");
        assert!(!error.to_string().contains("s3cret"), "{error}");
        let request = server.join().expect("server");
        // base64("intops:s3cret")
        assert!(
            request
                .to_ascii_lowercase()
                .contains("authorization: basic aw50b3bzonmzy3jlda=="),
            "{request}"
        );
    }

    #[test]
    fn a_ca_file_that_is_not_pem_is_a_clear_error() {
        let mut s = settings("https://registry:8081".into());
        s.ca_pem = Some(b"not a certificate".to_vec());
        let e = Codec::new(&s).expect_err("not a certificate");
        assert!(e.to_string().contains("registry CA"), "{e}");
    }
}
