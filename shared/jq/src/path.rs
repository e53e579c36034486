//! Plain-path programs (`.sys_id`, `.issue.key`, also with a string
//! default: `.event_type // "updated"`) read straight from a
//! record's JSON text, without building its jq value: ingest evaluates a
//! source's entity key for every record it accepts, and parsing a whole
//! record into a jq value costs more than all its other per-record work.
//!
//! Only an answer jq would give identically is returned: a non-empty string
//! found through objects. Anything else (a missing key, null, a number, a
//! non-object on the way, text serde_json refuses) gives `None`, and the
//! caller evaluates the program with jq, errors and all.

use serde::Deserializer as _;
use serde::de::{DeserializeSeed, IgnoredAny, MapAccess, Visitor};
use serde_json::value::RawValue;

/// The keys of a program that is only a path of identifiers, such as
/// `.issue.key`, or such a path with a string literal as its default
/// (`.type // "updated"`: where the path finds a non-empty string, `//`
/// gives that string); `None` for anything else.
pub(crate) fn plain_path(code: &str) -> Option<Vec<String>> {
    let code = match code.split_once("//") {
        Some((path, default)) => {
            serde_json::from_str::<String>(default.trim()).ok()?;
            path
        }
        None => code,
    };
    let code = code.trim();
    let rest = code.strip_prefix('.')?;
    let keys: Vec<String> = rest.split('.').map(str::to_string).collect();
    let identifier = |k: &String| {
        let mut chars = k.chars();
        chars
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
    };
    keys.iter().all(identifier).then_some(keys)
}

/// The non-empty string at `path` in the JSON text `json`, when every step
/// is an object holding the key.
pub(crate) fn string_at(json: &str, path: &[String]) -> Option<String> {
    let mut current = json;
    for key in path {
        current = field(current, key)?;
    }
    let text: String = serde_json::from_str(current).ok()?;
    (!text.is_empty()).then_some(text)
}

/// The text of `key`'s value in the JSON object `json` (the last one if the
/// key repeats, as jq keeps it).
fn field<'a>(json: &'a str, key: &str) -> Option<&'a str> {
    let mut de = serde_json::Deserializer::from_str(json);
    let found = (&mut de).deserialize_map(Field(key)).ok()?;
    de.end().ok()?;
    found.map(RawValue::get)
}

struct Field<'k>(&'k str);

impl<'de> Visitor<'de> for Field<'_> {
    type Value = Option<&'de RawValue>;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut found = None;
        while let Some(wanted) = map.next_key_seed(KeyIs(self.0))? {
            if wanted {
                found = Some(map.next_value::<&'de RawValue>()?);
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(found)
    }
}

/// Deserializes a key into whether it is the wanted one, without keeping it.
struct KeyIs<'k>(&'k str);

impl<'de> DeserializeSeed<'de> for KeyIs<'_> {
    type Value = bool;

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<bool, D::Error> {
        d.deserialize_str(self)
    }
}

impl Visitor<'_> for KeyIs<'_> {
    type Value = bool;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("an object key")
    }

    fn visit_str<E: serde::de::Error>(self, key: &str) -> Result<bool, E> {
        Ok(key == self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::JqProgram;
    use crate::program::parse_json;

    #[test]
    fn only_identifier_paths_are_plain() {
        assert_eq!(plain_path(" .sys_id "), Some(vec!["sys_id".to_string()]));
        assert_eq!(
            plain_path(".issue.key"),
            Some(vec!["issue".to_string(), "key".to_string()])
        );
        for code in [
            ".",
            ".a[0]",
            ".a | .b",
            r#".["a"]"#,
            ".a // .b",
            ".1a",
            "..",
            ".a.",
        ] {
            assert_eq!(plain_path(code), None, "{code}");
        }
    }

    /// Whenever the shortcut answers, jq answers the same.
    #[test]
    fn answers_only_what_jq_answers() {
        let records = [
            r#"{"sys_id": "abc", "n": 1}"#,
            r#" {"a": {"b": "deep"}, "sys_id": "x\"y\u00e9"} "#,
            r#"{"sys_id": "first", "sys_id": "last"}"#,
            r#"{"sys_id": null}"#,
            r#"{"sys_id": ""}"#,
            r#"{"sys_id": 42}"#,
            r#"{"a": "not an object"}"#,
            r#"{"a": {"c": 1}}"#,
            r#"{"a": [{"b": "x"}]}"#,
            r#"{"other": "x"}"#,
        ];
        let mut answered = 0;
        for program in [".sys_id", ".a.b", r#".sys_id // "dflt""#] {
            let jq = JqProgram::compile(program).expect("compiles");
            let path = plain_path(program).expect("plain");
            for record in records {
                let by_jq = jq.first_text(&parse_json(record.as_bytes()).expect("json"));
                // No answer means the caller asks jq.
                if let Some(text) = string_at(record, &path) {
                    answered += 1;
                    assert_eq!(Ok(text), by_jq, "{program} on {record}");
                }
            }
        }
        assert_eq!(answered, 7, "strings found through objects");
    }
}
