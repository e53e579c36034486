//! The top-level fields of a payload that a source's flows read, without
//! building jq values for the rest. A ServiceNow record has dozens of
//! fields and a mapping reads a handful; parsing the whole record into a
//! jq value cost more than all of transform's other work on it
//! (docs/benchmarks.md).
//!
//! The payload is still checked as a whole (serde_json reads every byte),
//! but only the wanted fields become jq values. Text that serde_json
//! refuses, that is not an object, or that has a `\u` escape of a UTF-16
//! surrogate (which serde_json skips without checking its pairing), or that
//! nests deeper than the depth limit, gives `None`: the caller then parses
//! the whole payload with jaq, which also writes the error message for a
//! payload that is not JSON (or too deep).

use serde::Deserializer as _;
use serde::de::{DeserializeSeed, IgnoredAny, MapAccess, Visitor};
use serde_json::value::RawValue;

use jaq_json::{Map, Val};

use crate::program::parse_json;

/// An object holding the fields of `json` named in `keys` (sorted, without
/// duplicates) that it has, the last one where a key repeats, as jq keeps
/// it.
pub fn read(json: &str, keys: &[String]) -> Option<Val> {
    // Nesting too deep anywhere (even in a field no flow reads) is refused
    // as the whole-payload path refuses it (`parse_json`).
    if has_surrogate_escape(json)
        || intops_events::exceeds_depth(json.as_bytes(), intops_events::DEFAULT_MAX_JSON_DEPTH)
    {
        return None;
    }
    let mut de = serde_json::Deserializer::from_str(json);
    let found = (&mut de).deserialize_map(Wanted(keys)).ok()?;
    de.end().ok()?;
    let mut map = Map::with_capacity_and_hasher(keys.len(), Default::default());
    for (key, raw) in keys.iter().zip(found) {
        if let Some(raw) = raw {
            map.insert(
                Val::from(key.clone()),
                parse_json(raw.get().as_bytes()).ok()?,
            );
        }
    }
    Some(Val::obj(map))
}

/// Whether the text has an escape such as `\ud83d` (or text that looks so).
fn has_surrogate_escape(json: &str) -> bool {
    json.match_indices("\\u").any(|(i, _)| {
        matches!(
            json.as_bytes().get(i + 2..i + 4),
            Some([b'd' | b'D', b'8'..=b'9' | b'a'..=b'f' | b'A'..=b'F'])
        )
    })
}

struct Wanted<'k>(&'k [String]);

impl<'de> Visitor<'de> for Wanted<'_> {
    type Value = Vec<Option<&'de RawValue>>;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut found = vec![None; self.0.len()];
        while let Some(wanted) = map.next_key_seed(KeyIn(self.0))? {
            match wanted {
                Some(i) => found[i] = Some(map.next_value::<&'de RawValue>()?),
                None => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(found)
    }
}

/// Deserializes a key into its position among the wanted keys.
struct KeyIn<'k>(&'k [String]);

impl<'de> DeserializeSeed<'de> for KeyIn<'_> {
    type Value = Option<usize>;

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_str(self)
    }
}

impl Visitor<'_> for KeyIn<'_> {
    type Value = Option<usize>;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("an object key")
    }

    fn visit_str<E: serde::de::Error>(self, key: &str) -> Result<Self::Value, E> {
        Ok(self.0.binary_search_by(|k| k.as_str().cmp(key)).ok())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(names: &[&str]) -> Vec<String> {
        let mut k: Vec<String> = names.iter().map(|s| s.to_string()).collect();
        k.sort();
        k
    }

    #[test]
    fn reads_the_wanted_fields_as_jaq_does() {
        let wanted = keys(&["a", "n", "q\"k", "é"]);
        for json in [
            r#"{"a": "x", "b": [1, {"c": 2}], "n": 100000000000000000000001}"#,
            r#" {"a": 1, "a": 2, "é": "accent", "q\"k": {"x": null}} "#,
            r#"{"b": "only others"}"#,
            r#"{"a": "\u00e9\n", "n": -1.5e3}"#,
            "{}",
        ] {
            let whole = parse_json(json.as_bytes()).expect(json);
            let fields = read(json, &wanted).expect(json);
            let Val::Obj(fields) = fields else {
                panic!("object")
            };
            for key in &wanted {
                let key = Val::from(key.clone());
                let Val::Obj(w) = &whole else {
                    panic!("object")
                };
                assert_eq!(fields.get(&key), w.get(&key), "{key} in {json}");
            }
        }
    }

    /// Whatever jaq does not take as JSON is never read here either.
    #[test]
    fn refuses_what_jaq_refuses() {
        let wanted = keys(&["a"]);
        let mut refused = 0;
        let deep = format!(
            "{{\"a\": 1, \"b\": {}{}}}",
            "[".repeat(300),
            "]".repeat(300)
        );
        for text in [
            "",
            " ",
            "[1]",
            r#""text""#,
            "null",
            r#"{"a": 1"#,
            r#"{"a": 1,}"#,
            r#"{"a": 1} x"#,
            r#"{"a": 1} {}"#,
            r#"{"a": 01}"#,
            r#"{"a": 1.}"#,
            r#"{"a": .5}"#,
            r#"{"a": -}"#,
            r#"{"a": NaN}"#,
            r#"{"a": Infinity}"#,
            r#"{'a': 1}"#,
            r#"{"a": 1 /* c */}"#,
            r#"{"b": "\ud800"}"#,
            r#"{"b": "\uDC00x"}"#,
            r#"{"b": "\ud83d\ude00"}"#,
            "{\"b\": \"raw\u{1}control\"}",
            r#"{"b": "bad \x escape"}"#,
            r#"{"b": tru}"#,
            "\u{feff}{\"a\": 1}",
            deep.as_str(),
        ] {
            if parse_json(text.as_bytes()).is_err() {
                refused += 1;
                assert!(read(text, &wanted).is_none(), "{text:?}");
            }
        }
        assert!(refused >= 15, "jaq refused only {refused}");
    }
}
