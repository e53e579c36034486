//! Reads a compacted topic into its state: the latest record of each key,
//! a tombstone removing its key.

use std::collections::BTreeMap;

use serde::de::DeserializeOwned;

use crate::{KafkaError, Message as _, Scan, ServiceContext, Start, topics};

/// The latest record of each key of `topic`, up to its end as it was when
/// read. Empty when the topic does not exist. A record that does not
/// decode is skipped with a warning; an unreachable registry fails.
pub async fn read<T: DeserializeOwned>(
    ctx: &ServiceContext,
    topic: &str,
) -> Result<BTreeMap<String, T>, KafkaError> {
    let mut kept = BTreeMap::new();
    if !topics::exists(&ctx.kafka, topic).await? {
        return Ok(kept);
    }
    let mut scan = Scan::open(&ctx.kafka, &[topic.to_string()], Start::Beginning, false).await?;
    while let Some(message) = scan.next().await? {
        let Some(key) = message.key().and_then(|k| std::str::from_utf8(k).ok()) else {
            continue;
        };
        let Some(bytes) = message.payload() else {
            kept.remove(key);
            continue;
        };
        match ctx.codec.decode::<T>(bytes).await {
            Ok(record) => {
                kept.insert(key.to_string(), record);
            }
            Err(e) if e.is_retryable() => return Err(e.into()),
            Err(e) => {
                tracing::warn!(topic = %topic, offset = message.offset(), error = %e, "record does not decode, skipped");
            }
        }
    }
    Ok(kept)
}
