//! Records as JSON for people and scripts: Confluent-framed Avro values
//! decoded through the registry, headers as text.

use base64::Engine;
use intops_events::{Codec, CodecError, KafkaHeader};
use intops_kafka::{Headers, Message, OwnedMessage};
use serde_json::{Map, Value, json};

/// A value as JSON: framed Avro decoded by its writer's schema; other
/// bytes as text when UTF-8 (parsed when JSON), else base64.
pub async fn value(codec: &Codec, bytes: Option<&[u8]>) -> Result<Value, CodecError> {
    let Some(bytes) = bytes else {
        return Ok(Value::Null);
    };
    if bytes.len() >= 5 && bytes[0] == 0 {
        let avro = codec.decode_value(bytes).await?;
        return Value::try_from(avro).map_err(|e| CodecError::Undecodable(e.to_string()));
    }
    Ok(raw(bytes))
}

/// Bytes that are not Avro: JSON, text or base64.
pub fn raw(bytes: &[u8]) -> Value {
    match std::str::from_utf8(bytes) {
        Ok(text) => serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.into())),
        Err(_) => json!({ "base64": base64::engine::general_purpose::STANDARD.encode(bytes) }),
    }
}

/// Text of optional bytes (keys): lossy UTF-8.
pub fn text(bytes: Option<&[u8]>) -> Option<String> {
    bytes.map(|b| String::from_utf8_lossy(b).into_owned())
}

/// A message's headers as a JSON object of text values.
pub fn message_headers(message: &OwnedMessage) -> Map<String, Value> {
    let mut out = Map::new();
    if let Some(hs) = message.headers() {
        for h in hs.iter() {
            out.insert(
                h.key.to_string(),
                text(h.value).map_or(Value::Null, Value::String),
            );
        }
    }
    out
}

/// Stored headers (of a dead letter's original) as a JSON object.
pub fn stored_headers(headers: &[KafkaHeader]) -> Map<String, Value> {
    headers
        .iter()
        .map(|h| {
            (
                h.key.clone(),
                text(h.value.as_deref()).map_or(Value::Null, Value::String),
            )
        })
        .collect()
}

/// One record as the JSON line `intops tap` prints.
pub async fn record(codec: &Codec, message: &OwnedMessage) -> Result<Value, CodecError> {
    Ok(json!({
        "topic": message.topic(),
        "partition": message.partition(),
        "offset": message.offset(),
        "timestamp": message.timestamp().to_millis(),
        "key": text(message.key()),
        "headers": message_headers(message),
        "value": value(codec, message.payload()).await?,
    }))
}
