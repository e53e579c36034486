//! A capture flow's `capture` program on a create's 2xx answer: the input
//! is the answer's JSON body (`null` when empty or not JSON), `$headers`
//! the answer's headers (an object, names lowercase; repeated headers
//! joined with ", "). A non-empty string or a number is the record id.
//!
//! The program comes as text on each request (`LinkPlan.capture`, as
//! transform's flows file has it); each text is compiled once.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use intops_flows::{JqProgram, JqValue, parse_json};

/// Longest record id kept; a longer one counts as no record id (the index
/// holds every link in memory).
pub const MAX_RECORD_ID_BYTES: usize = 1024;

/// Programs compiled at most this many at once (the flows files' capture
/// programs; more only when they change often).
const CACHED: usize = 256;

type Compiled = Arc<Result<JqProgram, String>>;

/// Compiled capture programs by text.
#[derive(Debug, Default)]
pub struct Captures {
    programs: Mutex<HashMap<String, Compiled>>,
}

impl Captures {
    /// The record id `code` finds in an answer with `body` and `headers`,
    /// or why none.
    pub fn record_id(
        &self,
        code: &str,
        body: &[u8],
        headers: &[(String, String)],
    ) -> Result<String, String> {
        let program = self.compiled(code);
        let program = program
            .as_ref()
            .as_ref()
            .map_err(|e| format!("the capture program does not compile: {e}"))?;
        let input = if body.iter().all(u8::is_ascii_whitespace) {
            JqValue::Null
        } else {
            parse_json(body).unwrap_or(JqValue::Null)
        };
        let id = program
            .first_text_with_vars(&input, &[headers_value(headers)])
            .map_err(|e| format!("the capture program {e}"))?;
        if id.len() > MAX_RECORD_ID_BYTES {
            return Err(format!(
                "the record id is longer than {MAX_RECORD_ID_BYTES} bytes"
            ));
        }
        // Such an id could not address the record in a path or a header
        // (every update would be refused), nor print safely.
        if id.trim() != id || id == "." || id == ".." || id.chars().any(char::is_control) {
            return Err(format!(
                "the record id {:?} has control characters or surrounding spaces, or is . or ..",
                id.chars().take(64).collect::<String>()
            ));
        }
        Ok(id)
    }

    fn compiled(&self, code: &str) -> Compiled {
        let mut programs = self.programs.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(p) = programs.get(code) {
            return p.clone();
        }
        if programs.len() >= CACHED {
            programs.clear();
        }
        let compiled =
            Arc::new(JqProgram::compile_with_vars(code, &["headers"]).map_err(|e| e.to_string()));
        programs.insert(code.to_string(), compiled.clone());
        compiled
    }
}

/// `$headers`: an object of the headers, names lowercase.
fn headers_value(headers: &[(String, String)]) -> JqValue {
    let mut object = serde_json::Map::new();
    for (name, value) in headers {
        let name = name.to_ascii_lowercase();
        match object.get_mut(&name) {
            Some(serde_json::Value::String(joined)) => {
                joined.push_str(", ");
                joined.push_str(value);
            }
            _ => {
                object.insert(name, serde_json::Value::String(value.clone()));
            }
        }
    }
    let text = serde_json::Value::Object(object).to_string();
    parse_json(text.as_bytes()).unwrap_or(JqValue::Null)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
            .collect()
    }

    #[test]
    fn a_string_or_number_in_the_body_is_the_record_id() {
        let c = Captures::default();
        let body = br#"{"id":"10001","key":"OPS-12","n":42}"#;
        assert_eq!(c.record_id(".key", body, &[]), Ok("OPS-12".into()));
        assert_eq!(c.record_id(".n", body, &[]), Ok("42".into()));
        assert_eq!(
            c.record_id(".result.sys_id // .key", body, &[]),
            Ok("OPS-12".into())
        );
    }

    #[test]
    fn the_headers_are_there_for_a_location() {
        let c = Captures::default();
        let h = headers(&[
            ("Location", "https://crm.example/records/r-7"),
            ("x-a", "1"),
            ("x-a", "2"),
        ]);
        let code = r#"$headers.location | split("/") | last"#;
        assert_eq!(c.record_id(code, b"", &h), Ok("r-7".into()));
        assert_eq!(c.record_id("$headers[\"x-a\"]", b"", &h), Ok("1, 2".into()));
    }

    #[test]
    fn no_id_says_why() {
        let c = Captures::default();
        for (code, body, why) in [
            (".key", &b"{}"[..], "null"),
            (".key", b"", "null"),
            (".key", b"not json", "null"),
            (".key", br#"{"key":""}"#, "empty"),
            (".key", br#"{"key":{"a":1}}"#, "expected a string or number"),
            (".key | error(\"x\")", br#"{"key":"a"}"#, "runtime"),
            (".[", b"{}", "does not compile"),
        ] {
            let e = c.record_id(code, body, &[]).expect_err(code);
            assert!(e.contains(why), "{code}: {e}");
        }
        let long = format!(r#"{{"key":"{}"}}"#, "x".repeat(MAX_RECORD_ID_BYTES + 1));
        let e = c.record_id(".key", long.as_bytes(), &[]).expect_err("long");
        assert!(e.contains("longer than"), "{e}");
        for unusable in [
            r#""OPS-1\n""#,
            r#""..""#,
            r#"" OPS-1""#,
            r#""OPS\u001b[31m""#,
        ] {
            let body = format!(r#"{{"key":{unusable}}}"#);
            let e = c
                .record_id(".key", body.as_bytes(), &[])
                .expect_err(unusable);
            assert!(e.contains("control characters"), "{unusable}: {e}");
        }
    }
}
