//! Whether an encoded event fits in one Kafka record: librdkafka refuses
//! records over `message.max.bytes` ([`MAX_RECORD_BYTES`]), counting the
//! key, the value, the headers and a fixed per-record overhead. Ingest
//! checks before producing, so an event that cannot be written is a 413
//! at the door, not a failed produce.

use intops_kafka::MAX_RECORD_BYTES;

use crate::error::IngestError;

/// librdkafka's worst-case overhead of one record in a v2 record batch
/// (`RD_KAFKAP_MESSAGE_V2_MAX_OVERHEAD`: length, attributes, timestamp and
/// offset deltas, key and value lengths, header count, as varints).
pub(crate) const RECORD_OVERHEAD: usize = 5 + 1 + 10 + 5 + 5 + 5 + 5;

/// Bytes one record takes against [`MAX_RECORD_BYTES`]. Ingest's event
/// records carry no Kafka headers.
pub(crate) fn record_bytes(key: &[u8], value: &[u8]) -> usize {
    RECORD_OVERHEAD + key.len() + value.len()
}

/// Refuses record `index` when it would not fit.
pub(crate) fn check(index: usize, key: &[u8], value: &[u8]) -> Result<(), IngestError> {
    let size = record_bytes(key, value);
    if size > MAX_RECORD_BYTES {
        return Err(IngestError::TooLarge(format!(
            "record {index} would be a Kafka record of {size} bytes (payload, envelope and key), over the limit of {MAX_RECORD_BYTES} bytes"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_up_to_the_limit_fit_and_larger_ones_are_refused_by_size() {
        let key = b"source:key";
        let fits = vec![b'x'; MAX_RECORD_BYTES - RECORD_OVERHEAD - key.len()];
        assert!(check(0, key, &fits).is_ok());
        let over = vec![b'x'; fits.len() + 1];
        let e = check(3, key, &over).expect_err("one byte over");
        let detail = e.to_string();
        assert!(
            detail.contains("record 3")
                && detail.contains(&(MAX_RECORD_BYTES + 1).to_string())
                && detail.contains(&MAX_RECORD_BYTES.to_string()),
            "{detail}"
        );
        assert_eq!(e.status(), axum::http::StatusCode::PAYLOAD_TOO_LARGE);
    }

    /// Avro bytes of a string: zigzag varint length, then the bytes.
    fn avro_string(len: usize) -> usize {
        let mut n = (len as u64) << 1;
        let mut bytes = 1;
        while n >= 0x80 {
            n >>= 7;
            bytes += 1;
        }
        bytes + len
    }

    #[test]
    fn a_default_size_body_fits_one_record_with_a_generous_envelope() {
        let flows = intops_flows::load_str(
            "[[sources]]\nid = \"s\"\nkind = \"webhook\"\nauth = \"none\"\nentity_key = \".id\"\n",
        )
        .expect("valid");
        let body = flows.sources["s"].max_body_bytes;
        // Ids and keys far above usual sizes.
        let (source_id, event_type, entity_key, correlation_id) = (128, 128, 1024, 1024);
        let value = 5 // Confluent framing: magic byte and schema id
            + avro_string(36) // event_id
            + avro_string(source_id)
            + avro_string(event_type)
            + avro_string(entity_key)
            + 2 * 10 // occurred_at, ingested_at (long varints)
            + 1 + avro_string(correlation_id) // union branch and string
            + 1 // empty attributes map
            + avro_string(body); // payload: the whole body
        let key = source_id + 1 + entity_key;
        let total = record_bytes(&vec![0; key], &vec![0; value]);
        assert!(
            total <= MAX_RECORD_BYTES,
            "default body {body} gives records of {total} bytes"
        );
    }
}
