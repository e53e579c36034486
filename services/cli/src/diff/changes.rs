//! What changed between two JSON values, as jq-style paths
//! (`.fields.labels[1]`) with the value before and after.

use serde::Serialize;
use serde_json::Value;

/// One changed place: `before` is absent for an added value, `after` for
/// a removed one.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Change {
    /// The jq path (`.` for the whole value).
    pub path: String,
    /// The value before.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub before: Option<Value>,
    /// The value after.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub after: Option<Value>,
}

/// The changes from `before` to `after`, deepest places first found, at
/// most `limit` of them.
pub fn changes(before: &Value, after: &Value, limit: usize) -> Vec<Change> {
    let mut out = Vec::new();
    walk(
        &mut String::new(),
        Some(before),
        Some(after),
        limit,
        &mut out,
    );
    out
}

fn walk(
    path: &mut String,
    before: Option<&Value>,
    after: Option<&Value>,
    limit: usize,
    out: &mut Vec<Change>,
) {
    if out.len() >= limit || before == after {
        return;
    }
    let len = path.len();
    match (before, after) {
        (Some(Value::Object(a)), Some(Value::Object(b))) => {
            let mut keys: Vec<&String> = a.keys().chain(b.keys()).collect();
            keys.sort();
            keys.dedup();
            for key in keys {
                push_key(path, key);
                walk(path, a.get(key), b.get(key), limit, out);
                path.truncate(len);
            }
        }
        (Some(Value::Array(a)), Some(Value::Array(b))) => {
            for i in 0..a.len().max(b.len()) {
                path.push_str(&format!("[{i}]"));
                walk(path, a.get(i), b.get(i), limit, out);
                path.truncate(len);
            }
        }
        _ => out.push(Change {
            path: if path.is_empty() {
                ".".into()
            } else {
                path.clone()
            },
            before: before.cloned(),
            after: after.cloned(),
        }),
    }
}

/// `.key` for identifier-like keys, `."a key"` for others (as jq writes
/// them).
fn push_key(path: &mut String, key: &str) {
    let plain = key
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if plain {
        path.push('.');
        path.push_str(key);
    } else {
        path.push('.');
        path.push_str(&Value::String(key.to_string()).to_string());
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn changed_added_and_removed_places_have_jq_paths() {
        let before = json!({"fields": {"summary": "a", "labels": ["x", "y"], "gone": 1}, "k": 1});
        let after =
            json!({"fields": {"summary": "b", "labels": ["x"], "custom field": true}, "k": 1});
        let got = changes(&before, &after, 10);
        let paths: Vec<&str> = got.iter().map(|c| c.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                ".fields.\"custom field\"",
                ".fields.gone",
                ".fields.labels[1]",
                ".fields.summary"
            ]
        );
        assert_eq!(got[0].before, None);
        assert_eq!(got[0].after, Some(json!(true)));
        assert_eq!(got[1].after, None);
        assert_eq!(got[3].before, Some(json!("a")));
        assert_eq!(changes(&before, &before, 10), []);
        assert_eq!(changes(&json!(1), &json!("1"), 10)[0].path, ".");
        assert_eq!(changes(&before, &after, 2).len(), 2);
    }
}
