//! Splitting a request body into records: one JSON object, a JSON array of
//! objects, or NDJSON (one object per line). Each record keeps its JSON
//! text exactly as received.

use std::cell::OnceCell;

use intops_flows::{JqValue, parse_json};
use serde_json::value::RawValue;

use crate::error::IngestError;

/// One record: its JSON text as received and, once a jq program needed it,
/// its jq value (a plain path such as `.sys_id` is read from the text).
#[derive(Debug)]
pub(crate) struct Record {
    /// The record's JSON text, the event's payload.
    pub text: String,
    value: OnceCell<JqValue>,
}

impl Record {
    /// A record known by its text (webhooks).
    pub fn from_text(text: String) -> Self {
        Self {
            text,
            value: OnceCell::new(),
        }
    }

    /// A record already parsed (polled pages).
    pub fn from_value(value: JqValue) -> Self {
        Self {
            text: value.to_string(),
            value: OnceCell::from(value),
        }
    }

    /// The jq value, parsed on first use; `index` names the record in the
    /// error.
    pub fn value(&self, index: usize) -> Result<&JqValue, IngestError> {
        if let Some(value) = self.value.get() {
            return Ok(value);
        }
        let value = parse_json(self.text.as_bytes())
            .map_err(|e| IngestError::InvalidBody(format!("record {index}: {e}")))?;
        Ok(self.value.get_or_init(|| value))
    }
}

/// What a body may hold.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Shape {
    /// Deepest nesting of objects and arrays.
    pub max_depth: usize,
    /// Most records.
    pub max_records: usize,
}

/// Splits `body`; `ndjson` when the content type says so. The nesting
/// depth is checked before any parser sees the body (serde and jq recurse
/// per level).
pub(crate) fn split(body: &[u8], ndjson: bool, shape: Shape) -> Result<Vec<Record>, IngestError> {
    if intops_events::exceeds_depth(body, shape.max_depth) {
        return Err(IngestError::InvalidBody(format!(
            "the JSON nests deeper than the limit of {} levels",
            shape.max_depth
        )));
    }
    let text = std::str::from_utf8(body)
        .map_err(|e| IngestError::MalformedJson(format!("the body is not UTF-8: {e}")))?;
    if text.trim().is_empty() {
        return Err(IngestError::InvalidBody("the body is empty".into()));
    }
    let raws = if ndjson {
        ndjson_lines(text, shape.max_records)?
    } else {
        json_document(text)?
    };
    if raws.len() > shape.max_records {
        return Err(too_many(shape.max_records));
    }
    raws.into_iter()
        .enumerate()
        .map(|(i, raw)| {
            if !raw.trim_start().starts_with('{') {
                return Err(IngestError::InvalidBody(format!(
                    "record {i} is not a JSON object"
                )));
            }
            Ok(Record::from_text(raw.to_string()))
        })
        .collect()
}

fn json_document(text: &str) -> Result<Vec<&str>, IngestError> {
    let malformed = |e: serde_json::Error| {
        IngestError::MalformedJson(format!("line {}, column {}: {e}", e.line(), e.column()))
    };
    let trimmed = text.trim_start();
    if trimmed.starts_with('[') {
        // One pass checks the whole array's syntax and splits it.
        let items: Vec<&RawValue> = serde_json::from_str(text).map_err(malformed)?;
        if items.is_empty() {
            return Err(IngestError::InvalidBody(
                "the array holds no records".into(),
            ));
        }
        return Ok(items.iter().map(|r| r.get()).collect());
    }
    serde_json::from_str::<serde::de::IgnoredAny>(text).map_err(malformed)?;
    if trimmed.starts_with('{') {
        Ok(vec![text])
    } else {
        Err(IngestError::InvalidBody(
            "expected a JSON object, an array of objects, or NDJSON (application/x-ndjson)".into(),
        ))
    }
}

fn too_many(max: usize) -> IngestError {
    IngestError::TooLarge(format!(
        "the request holds more than the limit of {max} records; send smaller batches"
    ))
}

fn ndjson_lines(text: &str, max_records: usize) -> Result<Vec<&str>, IngestError> {
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        if out.len() == max_records {
            return Err(too_many(max_records));
        }
        serde_json::from_str::<serde::de::IgnoredAny>(line).map_err(|e| {
            IngestError::MalformedJson(format!("line {}, column {}: {e}", n + 1, e.column()))
        })?;
        out.push(line);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHAPE: Shape = Shape {
        max_depth: 64,
        max_records: 1000,
    };

    fn split(body: &[u8], ndjson: bool) -> Result<Vec<Record>, IngestError> {
        super::split(body, ndjson, SHAPE)
    }

    fn texts(records: &[Record]) -> Vec<&str> {
        records.iter().map(|r| r.text.as_str()).collect()
    }

    #[test]
    fn one_object_keeps_its_text_exactly() {
        let body = br#" {"z": 1, "a": [1, 2]} "#;
        assert_eq!(
            texts(&split(body, false).expect("valid")),
            [r#" {"z": 1, "a": [1, 2]} "#]
        );
    }

    #[test]
    fn arrays_split_into_records_in_order() {
        let records = split(br#"[{"b":1}, {"a":2}]"#, false).expect("valid");
        assert_eq!(texts(&records), [r#"{"b":1}"#, r#"{"a":2}"#]);
    }

    #[test]
    fn ndjson_splits_lines_and_skips_blank_ones() {
        let records = split(b"{\"a\":1}\n\n{\"b\":2}\r\n", true).expect("valid");
        assert_eq!(texts(&records), [r#"{"a":1}"#, r#"{"b":2}"#]);
    }

    #[test]
    fn bad_bodies_are_refused_clearly() {
        let err = split(b"{\n  \"a\": }", false).expect_err("malformed");
        assert!(
            matches!(&err, IngestError::MalformedJson(d) if d.contains("line 2")),
            "{err:?}"
        );
        let err = split(b"[{\"a\": 1},\n {\"b\": ]", false).expect_err("malformed array");
        assert!(
            matches!(&err, IngestError::MalformedJson(d) if d.starts_with("line 2, column")),
            "{err:?}"
        );
        let err = split(b"{\"a\":1}\n{\"b\":\n", true).expect_err("malformed ndjson");
        assert!(
            matches!(&err, IngestError::MalformedJson(d) if d.starts_with("line 2")),
            "{err:?}"
        );
        assert!(matches!(
            split(b"  ", false),
            Err(IngestError::InvalidBody(_))
        ));
        assert!(matches!(
            split(b"[]", false),
            Err(IngestError::InvalidBody(_))
        ));
        assert!(matches!(
            split(b"42", false),
            Err(IngestError::InvalidBody(_))
        ));
        assert!(
            matches!(split(b"[{}, 1]", false), Err(IngestError::InvalidBody(d)) if d.contains("record 1"))
        );
        assert!(
            matches!(split(b"{}\n[1]", true), Err(IngestError::InvalidBody(d)) if d.contains("record 1"))
        );
        assert!(matches!(
            split(&[0xff, 0xfe], false),
            Err(IngestError::MalformedJson(_))
        ));
    }

    #[test]
    fn nesting_over_the_limit_is_refused_before_parsing() {
        let deep = format!("{{\"a\":{}1{}}}", "[".repeat(100_000), "]".repeat(100_000));
        let shape = Shape {
            max_depth: 64,
            max_records: 10,
        };
        for ndjson in [false, true] {
            let e = super::split(deep.as_bytes(), ndjson, shape).expect_err("too deep");
            assert!(
                matches!(&e, IngestError::InvalidBody(d) if d.contains("limit of 64 levels")),
                "{e:?}"
            );
            assert_eq!(e.status(), axum::http::StatusCode::BAD_REQUEST);
        }
        let at_limit = format!("{{\"a\":{}1{}}}", "[".repeat(63), "]".repeat(63));
        assert!(super::split(at_limit.as_bytes(), false, shape).is_ok());
        let over = format!("{{\"a\":{}1{}}}", "[".repeat(64), "]".repeat(64));
        assert!(super::split(over.as_bytes(), false, shape).is_err());
    }

    #[test]
    fn more_records_than_the_limit_get_413() {
        let shape = Shape {
            max_depth: 64,
            max_records: 3,
        };
        assert_eq!(
            super::split(b"[{},{},{}]", false, shape)
                .expect("three")
                .len(),
            3
        );
        for (body, ndjson) in [(&b"[{},{},{},{}]"[..], false), (b"{}\n{}\n{}\n{}\n", true)] {
            let e = super::split(body, ndjson, shape).expect_err("four");
            assert!(
                matches!(&e, IngestError::TooLarge(d) if d.contains("limit of 3 records")),
                "{e:?}"
            );
        }
    }
}
